// Structured logs: one JSON object per line on stdout, with the request id the edge passed through, so a
// run can be followed from the edge's logs into the service's.

export type LogLevel = 'info' | 'warn' | 'error'
export type LogFields = Record<string, unknown>

export interface Logger {
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
}

/**
 * A logger writing `{"time","level","msg",...fields}` lines; errors in fields become name, message, stack.
 *
 * @example
 * const logger = jsonLogger()
 * logger.info('run ended', { requestId, runId, outcome: 'completed' })
 */
export function jsonLogger(
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  const log =
    (level: LogLevel) =>
    (message: string, fields: LogFields = {}) => {
      const entry = { time: new Date().toISOString(), level, msg: message, ...fields }
      write(
        `${JSON.stringify(entry, (_, value) => (value instanceof Error ? errorFields(value) : value))}\n`,
      )
    }
  return { info: log('info'), warn: log('warn'), error: log('error') }
}

function errorFields(error: Error) {
  return { name: error.name, message: error.message, stack: error.stack }
}
