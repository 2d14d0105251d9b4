// Process-level failures as JSON log lines: an unhandled promise rejection is logged and the service goes
// on (its runs are guarded one by one); an uncaught exception is logged and the process exits 70
// (EX_SOFTWARE, sysexits.h), since its state is unknown and the orchestrator should restart it.

import type { Logger } from './logger.ts'

/** Exit status after an uncaught exception. */
export const EXIT_SOFTWARE = 70

/** What logProcessErrors needs of `process`. */
export interface ProcessEvents {
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown
  on(event: 'uncaughtException', listener: (error: Error, origin: string) => void): unknown
  exit(code: number): void
}

/**
 * Logs unhandled rejections and uncaught exceptions through `logger`; exits after the latter.
 *
 * @example
 * logProcessErrors(jsonLogger())
 */
export function logProcessErrors(logger: Logger, target: ProcessEvents = process): void {
  target.on('unhandledRejection', (reason) => {
    logger.error('unhandled rejection', { error: reason })
  })
  target.on('uncaughtException', (error, origin) => {
    logger.error('uncaught exception', { origin, error })
    target.exit(EXIT_SOFTWARE)
  })
}
