// How the CLI tells a person what went wrong: an API error as its problem+json title, detail and invalid
// fields; an unreachable API with what to check; anything else as one line (the stack only with
// DUALRATE_DEBUG=1). Never a bare stack trace for an expected failure.
import { ApiProblemError } from '../api-client.ts'
import { ConnectionError } from './connection.ts'

export class UsageError extends Error {
  override name = 'UsageError'
}

/** Exit statuses: sysexits.h EX_USAGE for bad arguments, 130 for an interrupt (128 + SIGINT). */
export const EXIT = { ok: 0, failed: 1, usage: 64, interrupted: 130 } as const

/**
 * The lines to print for an error, and the exit status.
 *
 * @example
 * const { lines, exitCode } = describeError(error, apiBase)
 * process.stderr.write(`${lines.join('\n')}\n`)
 */
export function describeError(
  error: unknown,
  apiBase?: string,
): { lines: string[]; exitCode: number } {
  if (error instanceof ApiProblemError) {
    const { problem } = error
    const lines = [`error: ${problem.title} (HTTP ${problem.status})`]
    const fieldErrors = (Array.isArray(problem.errors) ? problem.errors : []).map((entry) => {
      const { field, message } = entry as { field?: unknown; message?: unknown }
      return `${String(field)}: ${String(message)}`
    })
    // The edge's validation detail joins the field errors, which follow one a line.
    if (problem.detail && problem.detail !== fieldErrors.join('; ')) {
      lines.push(`  ${problem.detail}`)
    }
    for (const fieldError of fieldErrors) lines.push(`  - ${fieldError}`)
    if (problem.status === 401) {
      lines.push('  Pass --api-key, set DUALRATE_API_KEY, or use the key `npm start` printed.')
    }
    return { lines, exitCode: EXIT.failed }
  }
  if (error instanceof UsageError || error instanceof ConnectionError) {
    return {
      lines: [`error: ${error.message}`],
      exitCode: error instanceof UsageError ? EXIT.usage : EXIT.failed,
    }
  }
  const code = networkErrorCode(error)
  if (code) {
    return {
      lines: [
        `error: cannot reach the API at ${apiBase ?? '(unknown)'} (${code})`,
        '  Is the stack running? Start it with `npm start`, or pass --api-base.',
      ],
      exitCode: EXIT.failed,
    }
  }
  const message = error instanceof Error ? error.message : String(error)
  const lines = [`error: ${message}`]
  if (process.env.DUALRATE_DEBUG && error instanceof Error && error.stack) lines.push(error.stack)
  return { lines, exitCode: EXIT.failed }
}

/** undici's `fetch failed` hides the socket error in `cause`. */
function networkErrorCode(error: unknown): string | undefined {
  if (!(error instanceof TypeError) || error.message !== 'fetch failed') return undefined
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause
  if (typeof cause?.code === 'string') return cause.code
  return typeof cause?.message === 'string' ? cause.message : 'network error'
}
