// One gpu-service run over HTTP: a signed POST /v1/runs whose SSE response is parsed and validated event
// by event, and the signed DELETE that cancels a run. Failures say whether another backend may succeed,
// and keep two messages apart: the internal one (backend URL, network error, response body) goes to
// logs only; the public one is all a caller ever sees.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { signRequest } from '../../../shared/request-signature.ts'
import {
  type BackendLoad,
  LOAD_REPORT_HEADER,
  LOAD_REPORT_REQUESTED,
  loadResponseSchema,
  MODEL_NOT_LOADED_PROBLEM,
  RUN_PROBLEM_TYPES,
  type RunEvent,
  type RunRequest,
  runEventSchema,
} from '../../../shared/run-protocol.ts'
import { SSE_CONTENT_TYPE } from '../../../shared/sse.ts'

/** How long a backend may take to answer with response headers before it counts as down. */
export const CONNECT_TIMEOUT_MS = 10_000
/** How long a cancel may wait for the backend's confirmation; the job has ended before it is sent. */
export const CANCEL_TIMEOUT_MS = 5_000

/** Events read between two turns of the event loop (see streamRun). */
const EVENTS_PER_YIELD = 16

/** What a caller is told when a backend failed for reasons of its own (no URL, no error text). */
export const BACKEND_TROUBLE = 'The GPU backend failed while running the generation.'

export interface BackendFailureOptions {
  /** Another backend may succeed with the same request. */
  retryable: boolean
  /** The backend itself is at fault (down, draining, stalled): try it last for a while. */
  unhealthy?: boolean
  /** The backend said it is shutting down: it takes no new work. */
  draining?: boolean
  /** The backend has not loaded the model the run names: another may have it (never unhealthy). */
  modelNotLoaded?: boolean
  /** The HTTP status the job's failure reports. */
  status?: number
  /** The problem `type` the job's failure reports (a shared PROBLEM_TYPES value), if not the default. */
  type?: string
  /** What the caller is told; never a URL, a network error or a backend's body. */
  publicDetail?: string
  cause?: unknown
}

/**
 * A run that failed on one backend. `message` is for logs; `publicDetail` for the caller. Retryable
 * failures (connection refused or reset, 5xx, a stalled or broken stream) may succeed elsewhere; the
 * others (invalid input, the run's own deadline) would fail anywhere.
 */
export class BackendFailure extends Error {
  override name = 'BackendFailure'
  readonly retryable: boolean
  readonly unhealthy: boolean
  readonly draining: boolean
  readonly modelNotLoaded: boolean
  readonly status: number
  readonly type: string | undefined
  readonly publicDetail: string

  constructor(message: string, options: BackendFailureOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.retryable = options.retryable
    this.unhealthy = options.unhealthy ?? options.retryable
    this.draining = options.draining ?? false
    this.modelNotLoaded = options.modelNotLoaded ?? false
    this.status = options.status ?? 502
    this.type = options.type
    this.publicDetail = options.publicDetail ?? BACKEND_TROUBLE
  }
}

export interface BackendRun {
  backendUrl: string
  secret: string
  request: RunRequest
  requestId: string
  signal: AbortSignal
  /**
   * A stream that delivers nothing (not even a heartbeat comment) for this long has stalled: the
   * backend sends heartbeats while a run waits or steps, so silence means it is stuck or gone.
   */
  idleTimeoutMs: number
}

/** The reason an attempt's own timer aborted it. */
class AttemptTimeout extends Error {
  override name = 'AttemptTimeout'
}

/**
 * Streams the events of one run on one backend, validated with the shared schema.
 *
 * @example
 * for await (const event of streamRun({ backendUrl, secret, request, requestId, signal, idleTimeoutMs })) {
 *   if (event.type === 'result') return event
 * }
 */
export async function* streamRun(run: BackendRun): AsyncGenerator<RunEvent> {
  const body = JSON.stringify(run.request)
  const headers = {
    ...(await signRequest(run.secret, 'POST', '/v1/runs', body)),
    'content-type': 'application/json',
    accept: SSE_CONTENT_TYPE,
    'x-request-id': run.requestId,
    // The backend's load on `accepted`: what load-aware routing learns from (an older service ignores it).
    [LOAD_REPORT_HEADER]: LOAD_REPORT_REQUESTED,
  }
  const attempt = new AbortController()
  const abort = () => attempt.abort(run.signal.reason)
  run.signal.addEventListener('abort', abort)
  let timer: ReturnType<typeof setTimeout> | null = null
  const armTimer = (ms: number, what: string) => {
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(() => attempt.abort(new AttemptTimeout(`${what} within ${ms} ms`)), ms)
  }
  const timedOut = () => attempt.signal.reason instanceof AttemptTimeout
  try {
    let response: Response
    armTimer(CONNECT_TIMEOUT_MS, 'no response')
    try {
      response = await fetch(`${run.backendUrl}/v1/runs`, {
        method: 'POST',
        headers,
        body,
        signal: attempt.signal,
      })
    } catch (error) {
      if (run.signal.aborted) throw error
      throw new BackendFailure(`${run.backendUrl} unreachable: ${describe(error, attempt)}`, {
        retryable: true,
        cause: error,
      })
    }
    if (!response.ok || !response.body) {
      const detail = await response.text().catch(() => '')
      throw httpFailure(run.backendUrl, response.status, detail)
    }
    // Every chunk, heartbeats included, proves the backend alive; silence past the limit aborts.
    armTimer(run.idleTimeoutMs, 'no bytes')
    const watched = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          armTimer(run.idleTimeoutMs, 'no bytes')
          controller.enqueue(chunk)
        },
      }),
    )
    const messages = watched
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
    let received = 0
    try {
      for await (const message of messages) {
        const event = runEventSchema.safeParse({ type: message.event, ...parseJson(message.data) })
        if (!event.success) {
          throw new BackendFailure(
            `${run.backendUrl} sent an invalid ${message.event ?? 'message'} event`,
            { retryable: true },
          )
        }
        yield event.data
        if (event.data.type === 'result' || event.data.type === 'error') return
        // Back to the event loop now and then. When the backend is ahead (fast CPU steps), every read
        // resolves from the buffer as a microtask, and the job's Durable Object took no other call until
        // the stream ended: a cancel waited for the whole run (measured under wrangler dev: 1.3 s, run
        // finished; with a yield per event, 30 ms). Not after every event: a timer turn costs about
        // 3 ms in workerd, which made a 2,000-event run take 6.4 s instead of 0.1 s.
        if (++received % EVENTS_PER_YIELD === 0)
          await new Promise((resolve) => setTimeout(resolve, 0))
      }
    } catch (error) {
      if (error instanceof BackendFailure || run.signal.aborted) throw error
      const what = timedOut() ? 'stalled' : 'stream broke'
      throw new BackendFailure(`${run.backendUrl} ${what}: ${describe(error, attempt)}`, {
        retryable: true,
        cause: error,
      })
    }
    throw new BackendFailure(`${run.backendUrl} closed the stream before the result`, {
      retryable: true,
    })
  } finally {
    if (timer !== null) clearTimeout(timer)
    run.signal.removeEventListener('abort', abort)
    attempt.abort()
  }
}

/**
 * The failure for a backend's HTTP error answer. 5xx, 429 and an authentication refusal (a backend
 * with another secret is misconfigured, not the request) may succeed elsewhere, and so may a 404 saying
 * the backend has not loaded the model the run names (a fleet mid-rollout runs different model sets);
 * the other 4xx would fail anywhere (the edge validated the request with the same schema the backend
 * uses).
 */
function httpFailure(backendUrl: string, status: number, body: string): BackendFailure {
  const type = (parseJson(body) as { type?: unknown }).type
  if (status === 404 && type === MODEL_NOT_LOADED_PROBLEM) {
    return new BackendFailure(`${backendUrl} has not loaded the model: ${body.slice(0, 300)}`, {
      retryable: true,
      // Healthy, and maybe serving other models well: its breaker is not told.
      unhealthy: false,
      modelNotLoaded: true,
      status: 503,
    })
  }
  const retryable = status >= 500 || status === 429 || status === 401 || status === 403
  // A service that refuses the run because it is shutting down says so with the run-shutdown type.
  const draining = type === RUN_PROBLEM_TYPES.shutdown
  return new BackendFailure(`${backendUrl} answered ${status}: ${body.slice(0, 300)}`, {
    retryable,
    draining,
    status: 502,
    publicDetail: retryable ? BACKEND_TROUBLE : 'The GPU backend refused the run.',
  })
}

/**
 * Asks a backend to stop a run (DELETE /v1/runs/:id, signed); resolves whether it confirmed, within
 * CANCEL_TIMEOUT_MS (a hung backend never holds a cancel up).
 */
export async function cancelRun(
  backendUrl: string,
  secret: string,
  runId: string,
  requestId: string,
  timeoutMs = CANCEL_TIMEOUT_MS,
): Promise<boolean> {
  const path = `/v1/runs/${encodeURIComponent(runId)}`
  const headers = { ...(await signRequest(secret, 'DELETE', path, '')), 'x-request-id': requestId }
  try {
    const response = await fetch(`${backendUrl}${path}`, {
      method: 'DELETE',
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    })
    await response.body?.cancel()
    return response.ok
  } catch {
    return false
  }
}

/** What GET /v1/load told: the load, no such route (a service that predates it), or a failure. */
export type LoadAnswer =
  | { kind: 'load'; load: BackendLoad }
  | { kind: 'unsupported' }
  | { kind: 'failed'; reason: string; backendDown: boolean }

/** Tries of one GET /v1/load that fails before any answer (see fetchLoad). */
const LOAD_TRIES = 3

/**
 * Asks a backend for its load (signed GET /v1/load/{probeId}, a fresh id each time: the signature
 * covers the path, and the backend refuses a signature it has seen, so two asks in the same second
 * must sign different paths). A request that fails before any answer is sent again, up to LOAD_TRIES
 * in all: it is idempotent, and under load wrangler dev's fetch failed this way ("Network connection
 * lost") three times in a row against a gpu-service that was up and answering, which opened its breaker
 * (a pooled keep-alive connection the service had just closed, most likely). A dead backend refuses
 * all of them within milliseconds. Never throws; gives up after `timeoutMs` in all, and an answer
 * that late says nothing of the backend's health.
 *
 * @example
 * const answer = await fetchLoad(backendUrl, secret, requestId, 500)
 * if (answer.kind === 'load' && answer.load.draining) skip(backendUrl)
 */
export async function fetchLoad(
  backendUrl: string,
  secret: string,
  requestId: string,
  timeoutMs: number,
): Promise<LoadAnswer> {
  const signal = AbortSignal.timeout(timeoutMs)
  let reason = ''
  for (let attempt = 1; attempt <= LOAD_TRIES && !signal.aborted; attempt++) {
    const path = `/v1/load/${crypto.randomUUID()}`
    let response: Response
    try {
      const headers = { ...(await signRequest(secret, 'GET', path, '')), 'x-request-id': requestId }
      response = await fetch(`${backendUrl}${path}`, { headers, signal })
    } catch (error) {
      reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      continue
    }
    if (response.status === 404) {
      await response.body?.cancel()
      return { kind: 'unsupported' }
    }
    if (!response.ok) {
      await response.body?.cancel()
      return {
        kind: 'failed',
        reason: `answered ${response.status}`,
        // A 5xx is the backend's own trouble; a 401 (another secret) or 400 says nothing of its health.
        backendDown: response.status >= 500,
      }
    }
    const parsed = loadResponseSchema.safeParse(await response.json().catch(() => undefined))
    if (!parsed.success)
      return { kind: 'failed', reason: 'sent an invalid load', backendDown: false }
    return { kind: 'load', load: parsed.data.load }
  }
  // Slow is not down: on a busy machine a healthy service's answer can come later than a choice may
  // wait (measured under wrangler dev on 2 busy cores: 40 ms by the service's clock, past 500 ms at the
  // edge). A hung one is caught by its runs' own timeouts.
  if (signal.aborted) {
    return { kind: 'failed', reason: `no answer within ${timeoutMs} ms`, backendDown: false }
  }
  return { kind: 'failed', reason, backendDown: true }
}

function parseJson(text: string): object {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null ? value : {}
  } catch {
    return {}
  }
}

function describe(error: unknown, attempt: AbortController): string {
  if (attempt.signal.reason instanceof AttemptTimeout) return attempt.signal.reason.message
  return error instanceof Error ? error.message : String(error)
}
