// The error every gpu-service command-line tool throws for a bad command line: its entry point prints the
// message with the usage text and exits with a usage status (64, EX_USAGE, for bench; 2 for sample and
// eval), where other failures exit 1.

/** A bad command line; `message` says what is wrong. */
export class UsageError extends Error {
  override name = 'UsageError'
}
