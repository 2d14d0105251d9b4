// Runs a request on the backends until one returns the result: a retryable failure before the result
// moves to the next backend with the same request (same seed, so the same pixels), up to a limit.
import type { RunEvent, RunRequest } from '../../../shared/run-protocol.ts'
import { BackendFailure, streamRun } from './backend-client.ts'
import { markHealthy, markUnhealthy, orderBackends } from './health.ts'

export type ResultEvent = Extract<RunEvent, { type: 'result' }>

export interface FailoverRun {
  backendUrls: readonly string[]
  maxAttempts: number
  secret: string
  request: RunRequest
  requestId: string
  signal: AbortSignal
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
        if (event.type === 'error') {
          const status = event.problem.status
          throw new BackendFailure(
            `${backendUrl} failed the run: ${event.problem.detail ?? event.problem.title}`,
            status >= 500,
            status >= 500 ? 502 : status,
          )
        }
        await run.onEvent(event, backendUrl)
      }
    } catch (error) {
      if (!(error instanceof BackendFailure) || run.signal.aborted) throw error
      lastFailure = error
      if (!error.retryable) throw error
      markUnhealthy(backendUrl)
    }
  }
  throw new BackendFailure(
    `no backend finished the run after ${run.maxAttempts} attempts; last: ${lastFailure?.message ?? 'no backends configured'}`,
    false,
    502,
    { cause: lastFailure },
  )
}
