// The error every gpu-service command-line tool throws for a bad command line: its entry point prints the
// message with the usage text and exits with EXIT_USAGE, where other failures exit 1.

/** sysexits.h EX_USAGE: the command line was wrong. */
export const EXIT_USAGE = 64

/** A bad command line; `message` says what is wrong. */
export class UsageError extends Error {
  override name = 'UsageError'
}
