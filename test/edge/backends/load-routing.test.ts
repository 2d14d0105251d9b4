// Load-aware routing against fake backends: through the real app (BACKEND_URLS: A and B, BACKEND_ROUTING
// unset, so `load`), and through runWithFailover itself for three backends, weights and the rotation.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { type FailoverRun, runWithFailover } from '../../../edge/src/backends/failover.ts'
import {
  beginAttempt,
  COST_DECAY_MS,
  chooseBackend,
  forgetFleet,
  LOAD_REFRESH_TIMEOUT_MS,
  LOAD_ROUTE_RECHECK_MS,
  recordLoad,
  viewBackend,
} from '../../../edge/src/backends/fleet.ts'
import { markHealthy } from '../../../edge/src/backends/health.ts'
import { RUN_PROBLEM_TYPES, type RunRequest } from '../../../shared/run-protocol.ts'
import { createKey, postGeneration, uniqueSeed } from '../helpers/api.ts'
import { type FakeBackends, installFakeBackends } from '../helpers/fake-backends.ts'

const A = 'http://backend-a.test'
const B = 'http://backend-b.test'
const C = 'http://backend-c.test'
const SECRET = 'test-backend-secret-0123456789abcdef'

let fakes: FakeBackends
beforeEach(() => {
  forgetFleet()
  fakes = installFakeBackends({
    [A]: { kind: 'ok' },
    [B]: { kind: 'ok' },
    [C]: { kind: 'ok' },
  })
})
afterEach(() => fakes.restore())

/** A job through the app, waited for. */
async function job() {
  const { authorization } = await createKey()
  const response = await postGeneration(
    authorization,
    { class: 1, steps: 4, seed: uniqueSeed() },
    { prefer: 'wait=10' },
  )
  return (await response.json()) as { status: string; progress: { attempts: number } }
}

/** The origins of the run requests so far, in order. */
const origins = () => fakes.runRequests().map((request) => new URL(request.url).origin)
const count = (origin: string) => origins().filter((each) => each === origin).length

/** A load report of an idle backend with 16 rows of room. */
const IDLE_LOAD = {
  queuedRuns: 0,
  queuedRows: 0,
  activeRuns: 0,
  activeRows: 0,
  capacityRows: 16,
  draining: false,
}

const request: RunRequest = {
  classIndex: 1,
  count: 1,
  steps: 3,
  heavySchedule: { every: 2 },
  guidance: 1,
  seed: 5,
  previewEvery: 0,
}

/**
 * One attempt of one row and 10 row-steps on `url` that succeeds after `ms` of (faked) Date time; the
 * clock is put back, so attempts sampled one after another all begin at the same moment.
 */
function succeedAfter(url: string, ms: number): void {
  const attempt = beginAttempt(url, 1, 10)
  vi.setSystemTime(Date.now() + ms)
  attempt.succeeded()
  attempt.ended()
  vi.setSystemTime(Date.now() - ms)
}

/** One run through runWithFailover itself, as the job object calls it. */
function failover(options: Partial<FailoverRun> = {}) {
  return runWithFailover({
    backendUrls: [A, B, C],
    maxAttempts: 3,
    secret: SECRET,
    request: { ...request, seed: uniqueSeed() },
    requestId: 'load-routing-test',
    signal: new AbortController().signal,
    idleTimeoutMs: 500,
    spread: 0,
    runIdPrefix: `run-${crypto.randomUUID()}`,
    onAttempt() {},
    onEvent() {},
    ...options,
  })
}

describe('load-aware routing', () => {
  it('sends each job to the less loaded of the two backends', async () => {
    fakes.setLoad(A, { activeRuns: 20, activeRows: 40 })
    fakes.setLoad(B, { activeRuns: 1, activeRows: 2 })
    for (let index = 0; index < 4; index++) expect((await job()).status).toBe('succeeded')
    expect(origins()).toEqual([B, B, B, B])
    fakes.setLoad(B, { activeRuns: 30, activeRows: 60, queuedRuns: 2, queuedRows: 4 })
    // B's next `accepted` reports it busier than A: the job after that goes to A.
    await job()
    expect((await job()).status).toBe('succeeded')
    expect(origins().at(-1)).toBe(A)
  })

  it('learns the load from the accepted event, without asking again while the report is fresh', async () => {
    await job()
    const asked = fakes.loadRequests().length
    await job()
    // Both reports came with the first job (A and B were asked before it, one rode on its accepted).
    expect(fakes.loadRequests()).toHaveLength(asked)
    expect(viewBackend(origins()[0] ?? A).load).toMatchObject({ capacityRows: 256 })
  })

  it('asks again at once when a load request fails before any answer, and counts one failure', async () => {
    let lost = 2
    const fetchBefore = globalThis.fetch
    globalThis.fetch = async (input, init) => {
      const url = new Request(input, init).url
      if (url.startsWith(`${A}/v1/load`) && lost-- > 0) throw new Error('Network connection lost.')
      return fetchBefore(input, init)
    }
    try {
      await chooseBackend({ urls: [A, B], tried: new Set(), secret: SECRET, requestId: 'lost' })
    } finally {
      globalThis.fetch = fetchBefore
    }
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', failures: 0 })
    expect(viewBackend(A).load).toMatchObject({ capacityRows: 256 })
  })

  it('waits at most LOAD_REFRESH_TIMEOUT_MS for a load answer, and does not hold a slow one against it', async () => {
    const fetchBefore = globalThis.fetch
    globalThis.fetch = async (input, init) => {
      const request = new Request(input, init)
      if (!request.url.startsWith(`${A}/v1/load`)) return fetchBefore(input, init)
      return new Promise((_resolve, reject) => {
        request.signal.addEventListener('abort', () => reject(request.signal.reason))
      })
    }
    const started = Date.now()
    try {
      await chooseBackend({ urls: [A, B], tried: new Set(), secret: SECRET, requestId: 'slow' })
    } finally {
      globalThis.fetch = fetchBefore
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(LOAD_REFRESH_TIMEOUT_MS - 20)
    expect(Date.now() - started).toBeLessThan(LOAD_REFRESH_TIMEOUT_MS + 400)
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', failures: 0, load: undefined })
  })

  it('signs every GET /v1/load on a path of its own (a repeated signature is refused)', async () => {
    for (let index = 0; index < 3; index++) {
      forgetFleet()
      await job()
    }
    const paths = fakes.loadRequests().map((each) => new URL(each.url).pathname)
    expect(paths.length).toBeGreaterThanOrEqual(6)
    expect(new Set(paths).size).toBe(paths.length)
    for (const path of paths) expect(path).toMatch(/^\/v1\/load\/[0-9a-f-]{36}$/)
    const signatures = fakes.loadRequests().map((each) => each.headers.get('x-dualrate-signature'))
    expect(new Set(signatures).size).toBe(signatures.length)
  })

  it('never sends work to a backend that reported draining, even when the other one fails', async () => {
    fakes.setLoad(A, { draining: true })
    expect((await job()).status).toBe('succeeded')
    fakes.set(B, { kind: 'refuse' })
    expect((await job()).status).toBe('failed')
    expect(count(A)).toBe(0)
  })

  it('takes a run-shutdown error as draining: later jobs avoid that backend', async () => {
    fakes.setLoad(A, 'legacy') // no GET /v1/load to say otherwise
    fakes.setLoad(C, { activeRows: 100 })
    fakes.set(A, { kind: 'error-event', steps: 1, status: 503, type: RUN_PROBLEM_TYPES.shutdown })
    fakes.setLoad(B, { activeRows: 50 }) // B busier than A, so A is tried first
    await failover({ backendUrls: [A, B] })
    expect(origins()).toEqual([A, B])
    expect(viewBackend(A).load?.draining).toBe(true)
    fakes.setLoad(B, { activeRows: 500 })
    for (let index = 0; index < 3; index++) await failover({ backendUrls: [A, B] })
    expect(count(A)).toBe(1)
  })

  it('takes a 503 refusal of type run-shutdown as draining: no second job is sent there', async () => {
    fakes.set(A, { kind: 'status', status: 503, type: RUN_PROBLEM_TYPES.shutdown })
    fakes.setLoad(A, 'legacy') // no GET /v1/load to say otherwise
    fakes.setLoad(B, { activeRows: 50 }) // B busier than A, so A is tried first
    for (let index = 0; index < 3; index++) await failover({ backendUrls: [A, B] })
    expect(origins()).toEqual([A, B, B, B])
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', load: { draining: true } })
  })

  it('still works with backends older than load reports (accepted without load, no /v1/load)', async () => {
    fakes.setLoad(A, 'legacy')
    fakes.setLoad(B, 'legacy')
    for (let index = 0; index < 4; index++) expect((await job()).status).toBe('succeeded')
    expect(viewBackend(A).load).toBeUndefined()
    expect(viewBackend(B).load).toBeUndefined()
    // Each answered 404 once; neither is asked again for LOAD_ROUTE_RECHECK_MS.
    expect(fakes.loadRequests()).toHaveLength(2)
    expect(LOAD_ROUTE_RECHECK_MS).toBe(60_000)
    const accepted = fakes.runRequests().map((each) => each.headers.get('x-dualrate-load-report'))
    expect(accepted).toEqual(['1', '1', '1', '1'])
  })

  it('picks the less loaded of two among three backends, never the most loaded', async () => {
    fakes.setLoad(A, { activeRows: 0 })
    fakes.setLoad(B, { activeRows: 30 })
    fakes.setLoad(C, { activeRows: 60 })
    const picks: string[] = []
    for (let index = 0; index < 60; index++) {
      picks.push(
        (await chooseBackend({
          urls: [A, B, C],
          tried: new Set(),
          secret: SECRET,
          requestId: 'pick',
        })) ?? '',
      )
    }
    expect(picks.filter((url) => url === C)).toHaveLength(0)
    // A wins whenever it is one of the two drawn: two times in three.
    expect(picks.filter((url) => url === A).length).toBeGreaterThan(25)
  })

  it('gives idle backends work in proportion to BACKEND_WEIGHTS', async () => {
    // Idle, the scores tie and the weighted coin decides; loaded, rows count per unit of weight
    // (power-of-two.test.ts), so the heavier backend carries that much more before it loses.
    fakes.setLoad(A, { activeRows: 0 })
    fakes.setLoad(B, { activeRows: 0 })
    const picks: string[] = []
    for (let index = 0; index < 2_000; index++) {
      const url = await chooseBackend({
        urls: [A, B],
        weights: [3, 1],
        tried: new Set(),
        secret: SECRET,
        requestId: 'weights',
      })
      picks.push(url ?? '')
    }
    const shareOfA = picks.filter((url) => url === A).length / picks.length
    expect(shareOfA).toBeGreaterThan(0.7)
    expect(shareOfA).toBeLessThan(0.8)
  })

  it('counts its own runs in flight on top of the last report, so a burst spreads', async () => {
    fakes.set(A, { kind: 'ok', stepDelayMs: 30 })
    fakes.set(B, { kind: 'ok', stepDelayMs: 30 })
    fakes.setLoad(A, { activeRows: 0 })
    fakes.setLoad(B, { activeRows: 0 })
    await Promise.all(Array.from({ length: 8 }, () => failover({ backendUrls: [A, B] })))
    // Fixed reports of 0 rows each: only this isolate's own count tells the two apart.
    expect(count(A)).toBeGreaterThanOrEqual(3)
    expect(count(B)).toBeGreaterThanOrEqual(3)
  })
})

describe('circuit breaker per backend', () => {
  const coolDownMs = 300
  beforeEach(() => forgetFleet({ breaker: { failureThreshold: 3, coolDownMs } }))

  /** A answers every run with 503 (its GET /v1/load still works); B is busy, so A looks best. */
  function failingA() {
    fakes.set(A, { kind: 'status', status: 503 })
    fakes.setLoad(B, { activeRows: 100 })
  }

  it('opens after three failures in a row: no more work for that backend', async () => {
    // A cool-down no two jobs outlast: on two busy cores a job through the app takes about 150 ms, so
    // with 300 ms the breaker half-opened before the fifth job and let a probe through.
    forgetFleet({ breaker: { failureThreshold: 3, coolDownMs: 10_000 } })
    failingA()
    for (let index = 0; index < 5; index++) expect((await job()).status).toBe('succeeded')
    expect(count(A)).toBe(3)
    expect(count(B)).toBe(5)
    expect(viewBackend(A)).toMatchObject({ breaker: 'open', failures: 3 })
  })

  it('half-opens after the cool-down and closes when its one probe succeeds', async () => {
    failingA()
    for (let index = 0; index < 3; index++) await job()
    expect(viewBackend(A).breaker).toBe('open')
    await new Promise((resolve) => setTimeout(resolve, coolDownMs + 50))
    expect(viewBackend(A).breaker).toBe('half-open')
    fakes.set(A, { kind: 'ok' })
    expect((await job()).status).toBe('succeeded')
    expect([count(A), origins().at(-1)]).toEqual([4, A])
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', failures: 0 })
  })

  it('opens again at once when the probe fails', async () => {
    failingA()
    for (let index = 0; index < 3; index++) await job()
    await new Promise((resolve) => setTimeout(resolve, coolDownMs + 50))
    await job()
    expect(count(A)).toBe(4)
    expect(viewBackend(A).breaker).toBe('open')
    await job()
    expect(count(A)).toBe(4)
  })

  it('lets only one probe through while it runs', async () => {
    failingA()
    for (let index = 0; index < 3; index++) await job()
    await new Promise((resolve) => setTimeout(resolve, coolDownMs + 50))
    fakes.set(A, { kind: 'ok', stepDelayMs: 100 })
    const [probe, other] = await Promise.all([job(), job()])
    expect([probe.status, other.status]).toEqual(['succeeded', 'succeeded'])
    expect(count(A)).toBe(4)
  })

  it('opens on failed load requests alone, so a dead backend costs no job an attempt', async () => {
    fakes.set(A, { kind: 'refuse' })
    fakes.setLoad(B, { activeRows: 100 })
    const choose = () =>
      chooseBackend({ urls: [A, B], tried: new Set(), secret: SECRET, requestId: 'dead' })
    // Unknown load counts as none: A looks best until its breaker opens.
    expect([await choose(), await choose()]).toEqual([A, A])
    expect(await choose()).toBe(B)
    expect(viewBackend(A)).toMatchObject({ breaker: 'open', failures: 3 })
    // Each refresh tries three times (a connection lost before any answer may be a stale one).
    expect(fakes.loadRequests().filter((each) => each.url.startsWith(A))).toHaveLength(9)
    expect(await choose()).toBe(B)
    expect(fakes.loadRequests().filter((each) => each.url.startsWith(A))).toHaveLength(9)
  })
})

describe('rotation routing (BACKEND_ROUTING=rotation)', () => {
  beforeEach(() => {
    for (const url of [A, B, C]) markHealthy(url)
  })

  it('keeps the per-job rotation and ignores the load', async () => {
    fakes.setLoad(A, { activeRows: 1000 })
    for (const spread of [0, 1, 2, 3]) await failover({ routing: 'rotation', spread })
    expect(origins()).toEqual([A, B, C, A])
    expect(fakes.loadRequests()).toEqual([])
  })

  it('fails over to the next backend in the rotation with the same seed', async () => {
    fakes.set(A, { kind: 'refuse' })
    const seed = uniqueSeed()
    await failover({ routing: 'rotation', request: { ...request, seed } })
    expect(origins()).toEqual([A, B])
    expect(fakes.runRequests().map((each) => JSON.parse(each.body).seed)).toEqual([seed, seed])
  })

  it('weighs outstanding rows by what a row-step has cost there: equal rows go to the faster backend', async () => {
    vi.useFakeTimers({ now: 1_000_000, toFake: ['Date'] })
    try {
      // One finished attempt each: 10 row-steps in 100 ms on A, in 1,000 ms on B.
      succeedAfter(A, 100)
      succeedAfter(B, 1_000)
      expect(viewBackend(A).costMs).toBe(10)
      expect(viewBackend(B).costMs).toBe(100)
      fakes.setLoad(A, { activeRows: 8 })
      fakes.setLoad(B, { activeRows: 4 })
      const picks = new Set<string | undefined>()
      for (let index = 0; index < 20; index++) {
        picks.add(
          await chooseBackend({
            urls: [A, B],
            tried: new Set(),
            secret: SECRET,
            requestId: 'cost',
          }),
        )
      }
      // By rows alone B (4) would win; by time, A (8 x 10 ms) beats B (4 x 100 ms).
      expect([...picks]).toEqual([A])
      // Unsampled for a while, B drifts back to the typical cost and is tried again.
      vi.setSystemTime(Date.now() + 6 * COST_DECAY_MS)
      const later = new Set<string | undefined>()
      for (let index = 0; index < 40; index++) {
        later.add(
          await chooseBackend({
            urls: [A, B],
            tried: new Set(),
            secret: SECRET,
            requestId: 'cost',
          }),
        )
      }
      expect(later.has(B)).toBe(true)
    } finally {
      vi.useRealTimers()
    }
  })

  it("samples a backend's speed, not how busy it was: a run beside three others that took 4x as long costs the same", async () => {
    vi.useFakeTimers({ now: 2_000_000, toFake: ['Date'] })
    try {
      // A steps this run together with 3 rows it reported; B runs it alone. Each takes 10 steps.
      recordLoad(A, { ...IDLE_LOAD, activeRuns: 3, activeRows: 3 })
      succeedAfter(A, 400)
      succeedAfter(B, 100)
      // 400 ms / 10 steps / 4 rows sharing A, and 100 ms / 10 steps / 1 row on B: the same speed.
      expect(viewBackend(A).costMs).toBe(10)
      expect(viewBackend(B).costMs).toBe(10)
    } finally {
      vi.useRealTimers()
    }
  })

  it('does not queue a run behind full run slots while another backend has a slot free', async () => {
    // A has one run slot, taken; B has 16, busy with more rows: a run sent to A would wait.
    fakes.setLoad(A, { activeRuns: 1, activeRows: 1, capacityRuns: 1 })
    fakes.setLoad(B, { activeRuns: 6, activeRows: 12, capacityRuns: 16 })
    const picks = new Set<string | undefined>()
    for (let index = 0; index < 20; index++) {
      picks.add(
        await chooseBackend({ urls: [A, B], tried: new Set(), secret: SECRET, requestId: 'slots' }),
      )
    }
    expect([...picks]).toEqual([B])
  })
})
