// Runs a request on the backends until one returns the result: a retryable failure before the result
// moves to the next backend with the same request (same seed, so the same pixels), up to a limit. A
// failure the request itself causes (its own deadline, invalid input) is neither retried nor held
// against the backend. A backend that has not loaded the run's model (404 model-not-loaded) is healthy:
// the run moves on to another backend without spending an attempt or telling that backend's breaker, and
// the job tries it no more. Which backend each attempt goes to is the routing policy's choice: `load` (the
// default) asks the fleet state (fleet.ts: power of two choices by reported load, circuit breakers, no
// draining backend), `rotation` is the earlier per-job rotation with passive health (health.ts).
import { PROBLEM_TYPES } from '../../../shared/problem.ts'
import {
  RETRYABLE_RUN_PROBLEMS,
  RUN_PROBLEM_TYPES,
  type RunEvent,
  type RunRequest,
} from '../../../shared/run-protocol.ts'
import { modelRows, runCost } from '../../../shared/sampling-options.ts'
import { BACKEND_TROUBLE, BackendFailure, streamRun } from './backend-client.ts'
import { type AttemptRecord, claimBackend } from './fleet.ts'
import { markHealthy, markUnhealthy, orderBackends } from './health.ts'

/** How a job's attempts pick their backend (BACKEND_ROUTING). */
export const BACKEND_ROUTINGS = ['load', 'rotation'] as const
export type BackendRouting = (typeof BACKEND_ROUTINGS)[number]

export type ResultEvent = Extract<RunEvent, { type: 'result' }>
type ErrorEvent = Extract<RunEvent, { type: 'error' }>

export interface FailoverRun {
  backendUrls: readonly string[]
  /** `load` when absent. */
  routing?: BackendRouting
  /** Relative capacity of each backend, in backendUrls order (load routing); 1 each when absent. */
  backendWeights?: readonly number[]
  maxAttempts: number
  secret: string
  request: RunRequest
  requestId: string
  signal: AbortSignal
  /** See BackendRun.idleTimeoutMs. */
  idleTimeoutMs: number
  /** Spreads jobs over healthy backends (any number derived from the job; rotation routing). */
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
 * attempt fails or one fails in a way no other backend would fix, and a 503 when no backend has the
 * run's model loaded.
 *
 * @example
 * const result = await runWithFailover({ backendUrls, maxAttempts: 3, secret, request, ... })
 */
export async function runWithFailover(run: FailoverRun): Promise<ResultEvent> {
  const route = run.routing === 'rotation' ? rotationRoute(run) : loadRoute(run)
  /** Backends that said they have not loaded the model: not asked again by this run. */
  const withoutModel = new Set<string>()
  let lastFailure: BackendFailure | undefined
  // A refusal for want of the model costs no attempt; each backend refuses at most once (it is
  // excluded after), so the loop still ends.
  let budget = run.maxAttempts
  for (let attempt = 1; attempt <= budget; attempt++) {
    const next = await route.next(withoutModel)
    if (next === undefined) break
    const { backendUrl, record } = next
    const runId = `${run.runIdPrefix}-${attempt}`
    try {
      run.onAttempt(attempt, backendUrl, runId)
      const request = { ...run.request, runId }
      for await (const event of streamRun({ ...run, request, backendUrl })) {
        if (event.type === 'result') {
          record.succeeded()
          return event
        }
        if (event.type === 'error') throw runFailure(backendUrl, event)
        if (event.type === 'accepted') record.accepted(event.load)
        await run.onEvent(event, backendUrl)
      }
    } catch (error) {
      if (!(error instanceof BackendFailure) || run.signal.aborted) throw error
      record.failed({
        unhealthy: error.unhealthy,
        draining: error.draining,
        reason: error.message,
      })
      if (error.modelNotLoaded) {
        withoutModel.add(backendUrl)
        budget++
        // Only when nothing else went wrong is "no backend has the model" the story to tell.
        lastFailure ??= error
        continue
      }
      lastFailure = error
      if (!error.retryable) throw error
    } finally {
      record.ended()
    }
  }
  if (lastFailure?.modelNotLoaded) throw modelNotLoaded(run.request.model, lastFailure)
  const last = lastFailure?.message ?? 'no backend available (none configured, or all draining)'
  throw new BackendFailure(
    `no backend finished the run after ${run.maxAttempts} attempts; last: ${last}`,
    {
      retryable: false,
      unhealthy: false,
      status: 502,
      publicDetail: `No GPU backend could finish the generation (${run.maxAttempts} attempts).`,
      cause: lastFailure,
    },
  )
}

/**
 * The failure when every backend that answered said it has not loaded the model: the model is listed
 * (the edge's catalog has it) but no backend serves it yet, so it is unavailable for now.
 */
function modelNotLoaded(model: string | undefined, cause: BackendFailure): BackendFailure {
  const name = model === undefined ? 'the default model' : `model ${model}`
  return new BackendFailure(`no backend has loaded ${name}; last: ${cause.message}`, {
    retryable: false,
    unhealthy: false,
    modelNotLoaded: true,
    status: 503,
    publicDetail: `No GPU backend has ${name} loaded at the moment; try again later, or another model (GET /v1/models).`,
    cause,
  })
}

/** Where a job's attempts go, and what the routing learns from each. */
interface Route {
  /**
   * The backend for the next attempt, never one of `exclude`, and the record that follows the
   * attempt; none left: undefined.
   */
  next(
    exclude: ReadonlySet<string>,
  ): Promise<{ backendUrl: string; record: AttemptRecord } | undefined>
}

/** Load-aware: each attempt claims a backend from the fleet state, which follows it (fleet.ts). */
function loadRoute(run: FailoverRun): Route {
  const tried = new Set<string>()
  return {
    async next(exclude) {
      const claimed = await claimBackend({
        urls: run.backendUrls,
        ...(run.backendWeights && { weights: run.backendWeights }),
        tried,
        exclude,
        secret: run.secret,
        requestId: run.requestId,
        rows: modelRows(run.request),
        rowSteps: runCost(run.request),
      })
      if (!claimed) return undefined
      tried.add(claimed.url)
      return { backendUrl: claimed.url, record: claimed.attempt }
    },
  }
}

/** The earlier policy: a per-job rotation, healthy backends first (health.ts); loads are ignored. */
function rotationRoute(run: FailoverRun): Route {
  const order = orderBackends(run.backendUrls, run.spread)
  let cursor = 0
  return {
    async next(exclude) {
      const offset = order.findIndex(
        (_, i) => !exclude.has(order[(cursor + i) % order.length] ?? ''),
      )
      if (offset < 0) return undefined
      const backendUrl = order[(cursor + offset) % order.length]
      if (backendUrl === undefined) return undefined
      cursor += offset + 1
      const record: AttemptRecord = {
        accepted() {},
        succeeded: () => markHealthy(backendUrl),
        failed: ({ unhealthy }) => {
          if (unhealthy) markUnhealthy(backendUrl)
        },
        ended() {},
      }
      return { backendUrl, record }
    },
  }
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
  const shutdown = type === RUN_PROBLEM_TYPES.shutdown
  return new BackendFailure(message, {
    retryable,
    // A draining backend should get no new work; one run's failure says nothing of the backend.
    unhealthy: shutdown,
    draining: shutdown,
    status: 502,
    publicDetail: retryable ? BACKEND_TROUBLE : 'The GPU backend stopped the run.',
  })
}
