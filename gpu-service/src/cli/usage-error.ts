// The error every gpu-service command-line tool throws for a bad command line: its entry point prints the
// message with the usage text and exits 2, where other failures exit 1.

/** A bad command line; `message` lists every problem, one per line. */
export class UsageError extends Error {
  override name = 'UsageError'
}
