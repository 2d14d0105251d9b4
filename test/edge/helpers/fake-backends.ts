// Fake gpu-service backends for workerd tests: `fetch` is replaced (the worker and its Durable Objects
// share the test isolate) and each backend origin answers POST /v1/runs with the run protocol's SSE
// events, or fails the way a test asks; `.test` hosts answer as webhook receivers, and every other host
// is unreachable, so no test sends traffic off this machine. Every request is recorded for assertions.
// Like a gpu-service, a backend answers GET /v1/load[/{probeId}] with its load (by default its own runs
// in flight, all active) and adds the load to `accepted` when the request asks (x-dualrate-load-report);
// `setLoad` fixes the figures, or makes it an older service without either.
import { afterEach, beforeEach, vi } from 'vitest'
import {
  type BackendLoad,
  LOAD_REPORT_HEADER,
  LOAD_REPORT_REQUESTED,
  MODEL_NOT_LOADED_PROBLEM,
  type RunEvent,
} from '../../../shared/run-protocol.ts'
import { formatSse } from '../../../shared/sse.ts'

/** A 1x1 grey PNG: stands in for generated images. */
export const TINY_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg=='

export type BackendBehavior =
  /**
   * A complete run; `stepDelayMs` paces the steps. `ignoresAbort` keeps streaming after the caller
   * aborted (a stale stream whose events must no longer count).
   */
  | {
      kind: 'ok'
      stepDelayMs?: number
      /** The model it reports running, whatever the run names (default: the one named, else MODEL_ID). */
      modelId?: string
      /**
       * The models it has loaded: a run naming another is refused with 404 model-not-loaded, as a
       * gpu-service refuses it. Absent: every model.
       */
      models?: readonly string[]
      ignoresAbort?: boolean
      /** Each preview image as this base64 text instead of a 1x1 PNG (to make previews large). */
      previewImage?: string
    }
  /** Connection refused: fetch rejects. */
  | { kind: 'refuse' }
  /** Answers this status with a problem body (of this `type`, else about:blank). */
  | { kind: 'status'; status: number; type?: string }
  /** Streams `steps` steps, then the connection resets. */
  | { kind: 'reset-after'; steps: number }
  /** Streams `error` with this problem status (and type) after `steps` steps. */
  | { kind: 'error-event'; steps: number; status: number; type?: string }
  /** Streams `steps` steps, then goes silent (no heartbeat) without closing: a stalled backend. */
  | { kind: 'stall-after'; steps: number }

export interface RecordedRequest {
  url: string
  method: string
  headers: Headers
  body: string
}

export interface FakeBackends {
  /** Every request sent to a fake origin (backends and webhook receivers). */
  requests: RecordedRequest[]
  runRequests(): RecordedRequest[]
  /** Run ids whose streams were aborted by the caller. */
  aborted: string[]
  /** Set what one origin does from now on. */
  set(origin: string, behavior: BackendBehavior): void
  /** Answer for webhook receivers (any other origin); default 204; 'hang' never answers. */
  webhookStatus: (request: RecordedRequest) => number | 'hang'
  /** When true, DELETE /v1/runs/:id never answers (a hung backend); the caller's signal still aborts. */
  deleteHangs: boolean
  /**
   * The load one origin reports from now on: these figures over its live ones, or `legacy` for a
   * service older than load reports (no GET /v1/load: 404; `accepted` without `load`).
   */
  setLoad(origin: string, load: Partial<BackendLoad> | 'legacy'): void
  /** The GET /v1/load requests sent so far. */
  loadRequests(): RecordedRequest[]
  restore(): void
}

/** A fake backend's own runs in flight: all active, none queued. */
interface LiveLoad {
  runs: number
  rows: number
}

export const MODEL_ID = 'dualrate-547fb728e629'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Installs fake backends for these origins.
 *
 * @example
 * const backends = installFakeBackends({ 'http://backend-a.test': { kind: 'ok' } })
 * afterEach(() => backends.restore())
 */
export function installFakeBackends(initial: Record<string, BackendBehavior>): FakeBackends {
  const behaviors = new Map(Object.entries(initial))
  const loads = new Map<string, Partial<BackendLoad> | 'legacy'>()
  const live = new Map<string, LiveLoad>()
  const fake: FakeBackends = {
    requests: [],
    runRequests: () => fake.requests.filter((request) => request.url.endsWith('/v1/runs')),
    aborted: [],
    set: (origin, behavior) => behaviors.set(origin, behavior),
    webhookStatus: () => 204,
    deleteHangs: false,
    setLoad: (origin, load) => loads.set(origin, load),
    loadRequests: () =>
      fake.requests.filter((request) => new URL(request.url).pathname.startsWith('/v1/load')),
    restore: () => spy.mockRestore(),
  }
  /** What an origin reports now; undefined for a legacy one. */
  const loadOf = (origin: string): BackendLoad | undefined => {
    const fixed = loads.get(origin)
    if (fixed === 'legacy') return undefined
    const own = live.get(origin) ?? { runs: 0, rows: 0 }
    return {
      queuedRuns: 0,
      queuedRows: 0,
      activeRuns: own.runs,
      activeRows: own.rows,
      capacityRows: 256,
      draining: false,
      ...fixed,
    }
  }
  const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const request = new Request(input, init)
    const url = new URL(request.url)
    const recorded: RecordedRequest = {
      url: request.url,
      method: request.method,
      headers: request.headers,
      body: await request.text(),
    }
    fake.requests.push(recorded)
    const behavior = behaviors.get(url.origin)
    if (!behavior) {
      if (url.hostname.endsWith('.test')) {
        const status = fake.webhookStatus(recorded)
        if (status === 'hang') return hangUntilAborted(init?.signal ?? undefined)
        return new Response(null, { status })
      }
      // Tests send no traffic off this machine: anything else fails like an unreachable host.
      throw new TypeError(`fake network: no route to ${url.origin}`)
    }
    if (request.method === 'DELETE') {
      if (fake.deleteHangs) return hangUntilAborted(init?.signal ?? undefined)
      return Response.json({ ok: true })
    }
    if (behavior.kind === 'refuse')
      throw new TypeError('Network connection lost: connection refused')
    if (request.method === 'GET' && url.pathname.startsWith('/v1/load')) {
      const load = loadOf(url.origin)
      if (!load) {
        return Response.json(
          { type: 'about:blank', status: 404, title: 'Not Found' },
          { status: 404, headers: { 'content-type': 'application/problem+json' } },
        )
      }
      return Response.json({ load })
    }
    if (behavior.kind === 'status') {
      return Response.json(
        { type: behavior.type ?? 'about:blank', status: behavior.status, title: 'fake failure' },
        { status: behavior.status, headers: { 'content-type': 'application/problem+json' } },
      )
    }
    const run = JSON.parse(recorded.body) as FakeRun
    const loaded = behavior.kind === 'ok' ? behavior.models : undefined
    if (loaded && !loaded.includes(run.model ?? MODEL_ID)) {
      return Response.json(
        {
          type: MODEL_NOT_LOADED_PROBLEM,
          status: 404,
          title: 'Model not loaded',
          detail: `model ${run.model} is not loaded here (fake detail from http://backend.internal)`,
        },
        { status: 404, headers: { 'content-type': 'application/problem+json' } },
      )
    }
    const origin = url.origin
    const rows = run.guidance !== 1 ? 2 * run.count : run.count
    const own = live.get(origin) ?? { runs: 0, rows: 0 }
    live.set(origin, { runs: own.runs + 1, rows: own.rows + rows })
    let counted = true
    const ended = () => {
      if (!counted) return
      counted = false
      const now = live.get(origin) ?? { runs: 1, rows }
      live.set(origin, { runs: now.runs - 1, rows: now.rows - rows })
    }
    const reportLoad = request.headers.get(LOAD_REPORT_HEADER) === LOAD_REPORT_REQUESTED
    const load = reportLoad ? loadOf(origin) : undefined
    return new Response(
      streamRun(run, behavior, init?.signal ?? undefined, fake, { load, ended }),
      { headers: { 'content-type': 'text/event-stream' } },
    )
  })
  return fake
}

/** Both configured backends healthy: the default of most tests. */
export const BOTH_OK: Record<string, BackendBehavior> = {
  'http://backend-a.test': { kind: 'ok' },
  'http://backend-b.test': { kind: 'ok' },
}

/**
 * Installs fresh fake backends before each test of the file and removes them after; call the
 * returned function inside a test to reach them.
 *
 * @example
 * const backends = useFakeBackends()
 * it('…', () => { backends().set('http://backend-a.test', { kind: 'refuse' }) })
 */
export function useFakeBackends(
  initial: Record<string, BackendBehavior> = BOTH_OK,
): () => FakeBackends {
  let current: FakeBackends | undefined
  beforeEach(() => {
    current = installFakeBackends(initial)
  })
  afterEach(() => current?.restore())
  return () => {
    if (!current) throw new Error('useFakeBackends: only inside a test')
    return current
  }
}

interface FakeRun {
  runId: string
  model?: string
  steps: number
  count: number
  guidance: number
  previewEvery: number
  heavySchedule: { every?: number }
}

function streamRun(
  run: FakeRun,
  behavior: Exclude<BackendBehavior, { kind: 'refuse' } | { kind: 'status' }>,
  signal: AbortSignal | undefined,
  fake: FakeBackends,
  /** The load `accepted` carries (when asked), and the call that takes the run out of the load. */
  { load, ended }: { load: BackendLoad | undefined; ended: () => void },
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder()
  const every = run.heavySchedule.every ?? 1
  return new ReadableStream({
    async start(controller) {
      const send = (event: RunEvent) => {
        try {
          controller.enqueue(encoder.encode(formatSse({ event: event.type, data: event })))
        } catch {
          // The reader went away.
        }
      }
      const ignoresAbort = behavior.kind === 'ok' && behavior.ignoresAbort === true
      const stopped = () => signal?.aborted === true && !ignoresAbort
      signal?.addEventListener('abort', () => {
        ended()
        fake.aborted.push(run.runId)
        if (ignoresAbort) return
        try {
          controller.error(new Error('aborted'))
        } catch {}
      })
      const runId = run.runId
      send({ type: 'accepted', runId, queuePosition: 0, ...(load && { load }) })
      // Like a gpu-service, it runs the model the request names (unless told to misbehave).
      const modelId = (behavior.kind === 'ok' && behavior.modelId) || run.model || MODEL_ID
      send({ type: 'started', runId, modelId })
      const limit = behavior.kind === 'ok' ? run.steps : behavior.steps
      for (let step = 0; step < limit; step++) {
        if (behavior.kind === 'ok' && behavior.stepDelayMs) await sleep(behavior.stepDelayMs)
        if (stopped()) return
        send({
          type: 'step',
          runId,
          step,
          totalSteps: run.steps,
          t: 1 - step / run.steps,
          heavy: step % every === 0,
          elapsedMs: step,
        })
        if (
          run.previewEvery > 0 &&
          ((step + 1) % run.previewEvery === 0 || step === run.steps - 1)
        ) {
          const image = (behavior.kind === 'ok' && behavior.previewImage) || TINY_PNG_BASE64
          const images = Array.from({ length: run.count }, () => image)
          send({ type: 'preview', runId, step, images })
        }
      }
      // The run is over for the backend once its last event is out (a stalled one when aborted).
      if (behavior.kind !== 'stall-after') ended()
      if (behavior.kind === 'reset-after') {
        controller.error(new Error('connection reset'))
        return
      }
      if (behavior.kind === 'stall-after') return
      if (behavior.kind === 'error-event') {
        send({
          type: 'error',
          runId,
          problem: {
            type: behavior.type ?? 'about:blank',
            status: behavior.status,
            title: 'fake run error',
            detail: 'internal detail from http://backend.internal:9999/secret',
          },
        })
        controller.close()
        return
      }
      send({
        type: 'result',
        runId,
        modelId,
        images: Array.from({ length: run.count }, () => TINY_PNG_BASE64),
        timings: {
          heavyCalls: Math.ceil(run.steps / every),
          lightCalls: run.steps,
          macs: 1,
          queueMs: 0,
          wallMs: 1,
        },
      })
      controller.close()
    },
  })
}

/** A response that never comes; rejects like fetch when the signal aborts. */
function hangUntilAborted(signal: AbortSignal | undefined): Promise<Response> {
  return new Promise((_resolve, reject) => {
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
}
