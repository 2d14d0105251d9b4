// Runs a request on the backends until one returns the result: a retryable failure before the result
// moves to the next backend with the same request (same seed, so the same pixels), up to a limit. A
// failure the request itself causes (its own deadline, invalid input) is neither retried nor held
// against the backend.
import { PROBLEM_TYPES } from '../../../shared/problem.ts'
import {
  RETRYABLE_RUN_PROBLEMS,
  RUN_PROBLEM_TYPES,
  type RunEvent,
  type RunRequest,
} from '../../../shared/run-protocol.ts'
import { BACKEND_TROUBLE, BackendFailure, streamRun } from './backend-client.ts'
import { markHealthy, markUnhealthy, orderBackends } from './health.ts'

export type ResultEvent = Extract<RunEvent, { type: 'result' }>
type ErrorEvent = Extract<RunEvent, { type: 'error' }>

export interface FailoverRun {
  backendUrls: readonly string[]
  maxAttempts: number
  secret: string
  request: RunRequest
  requestId: string
  signal: AbortSignal
  /** See BackendRun.idleTimeoutMs. */
  idleTimeoutMs: number
  /** Spreads jobs over healthy backends (any number derived from the job). */
  spread: number
  /** Attempt n runs as `${runIdPrefix}-${n}`, so the caller can cancel it before it is accepted. */
  runIdPrefix: string
  /** Called when an attempt starts on a backend (1-based). */
  onAttempt(attempt: number, backendUrl: string, runId: string): void
  /** Every event of the current attempt, before the result. */
  onEvent(event: RunEvent, backendUrl: string): void | Promise<void>
}

/**
 * The result event of the first attempt that succeeds; throws the last BackendFailure when every
 * attempt fails or one fails in a way no other backend would fix.
 *
 * @example
 * const result = await runWithFailover({ backendUrls, maxAttempts: 3, secret, request, ... })
 */
export async function runWithFailover(run: FailoverRun): Promise<ResultEvent> {
  const order = orderBackends(run.backendUrls, run.spread)
  let lastFailure: BackendFailure | undefined
  for (let attempt = 1; attempt <= run.maxAttempts; attempt++) {
    const backendUrl = order[(attempt - 1) % order.length]
    if (backendUrl === undefined) break
    const runId = `${run.runIdPrefix}-${attempt}`
    run.onAttempt(attempt, backendUrl, runId)
    try {
      const request = { ...run.request, runId }
      for await (const event of streamRun({ ...run, request, backendUrl })) {
        if (event.type === 'result') {
          markHealthy(backendUrl)
          return event
        }
        if (event.type === 'error') throw runFailure(backendUrl, event)
        await run.onEvent(event, backendUrl)
      }
    } catch (error) {
      if (!(error instanceof BackendFailure) || run.signal.aborted) throw error
      lastFailure = error
      if (error.unhealthy) markUnhealthy(backendUrl)
      if (!error.retryable) throw error
    }
  }
  throw new BackendFailure(
    `no backend finished the run after ${run.maxAttempts} attempts; last: ${lastFailure?.message ?? 'no backends configured'}`,
    {
      retryable: false,
      unhealthy: false,
      status: 502,
      publicDetail: `No GPU backend could finish the generation (${run.maxAttempts} attempts).`,
      cause: lastFailure,
    },
  )
}

/** The failure for a run's `error` event, classified by its problem type (shared/run-protocol.ts). */
function runFailure(backendUrl: string, event: ErrorEvent): BackendFailure {
  const { type, status, title, detail } = event.problem
  const message = `${backendUrl} failed the run: ${type} ${status} ${detail ?? title}`
  // A backend that predates typed problems says 504 for its deadline.
  const deadline =
    type === RUN_PROBLEM_TYPES.deadlineExceeded || (type === 'about:blank' && status === 504)
  if (deadline) {
    return new BackendFailure(message, {
      retryable: false,
      status: 504,
      type: PROBLEM_TYPES.timeout,
      publicDetail: 'The run took longer than a GPU backend allows for one run.',
    })
  }
  const retryable = RETRYABLE_RUN_PROBLEMS.has(type) || (type === 'about:blank' && status >= 500)
  return new BackendFailure(message, {
    retryable,
    // A draining backend should get no new work; one run's failure says nothing of the backend.
    unhealthy: type === RUN_PROBLEM_TYPES.shutdown,
    status: 502,
    publicDetail: retryable ? BACKEND_TROUBLE : 'The GPU backend stopped the run.',
  })
}
