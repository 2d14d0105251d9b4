// The job's status as a small explicit state machine. A run moves queued -> running -> one terminal
// status and never back; a terminal status is final for that run. A new run of the same job (after a
// failure or a cancel, or when a stored result has expired) is a new run number, not a transition, and
// events of any run that is no longer current are ignored.
import {
  type GenerationStatus,
  isTerminalStatus,
  type TerminalStatus,
} from '../../../shared/generation-api.ts'

const TRANSITIONS: Readonly<Record<GenerationStatus, readonly GenerationStatus[]>> = Object.freeze({
  queued: ['running', 'succeeded', 'failed', 'canceled'],
  running: ['succeeded', 'failed', 'canceled'],
  succeeded: [],
  failed: [],
  canceled: [],
})

/**
 * Whether a run may move from `from` to `to`.
 *
 * @example
 * canMove('running', 'succeeded') // true
 * canMove('canceled', 'running') // false: terminal states are final
 */
export function canMove(from: GenerationStatus, to: GenerationStatus): boolean {
  return TRANSITIONS[from].includes(to)
}

/**
 * Whether a request for this job starts a new run rather than joining the current one: the current run
 * ended without a result (failed, canceled), or its result has since expired from storage.
 *
 * @example
 * startsNewRun('failed', false) // true
 * startsNewRun('running', false) // false: join it
 */
export function startsNewRun(status: GenerationStatus, resultStored: boolean): boolean {
  if (!isTerminalStatus(status)) return false
  return status !== 'succeeded' || !resultStored
}

/** Names one execution of one run, so late events of an older one can be told apart. */
export interface RunToken {
  run: number
  signal: AbortSignal
}

/**
 * Whether events of the execution `token` may still change the job: same run, not aborted, not ended.
 *
 * @example
 * if (!isCurrent(state, token)) return // a stale stream's event
 */
export function isCurrent(
  state: { run: number; status: GenerationStatus } | null,
  token: RunToken,
): boolean {
  return (
    state !== null &&
    state.run === token.run &&
    !token.signal.aborted &&
    !isTerminalStatus(state.status)
  )
}

export type { TerminalStatus }
