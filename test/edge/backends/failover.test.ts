// Failover through the real app (BACKEND_URLS: A and B, load routing, the default): what a job does
// when its backend fails, and what the failure does to the backend's standing.
import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it } from 'vitest'
import { type FailoverRun, runWithFailover } from '../../../edge/src/backends/failover.ts'
import { forgetFleet, viewBackend } from '../../../edge/src/backends/fleet.ts'
import { MODEL_NOT_LOADED_PROBLEM, RUN_PROBLEM_TYPES } from '../../../shared/run-protocol.ts'
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { MODEL_ID, useFakeBackends } from '../helpers/fake-backends.ts'
import { STUDENT_MODEL_ID, useTwoModelCatalog } from '../helpers/model-catalog.ts'

const A = 'http://backend-a.test'
const B = 'http://backend-b.test'

const fakes = useFakeBackends()
beforeEach(() => forgetFleet())

/** B reports a heavy load, so the load-aware choice sends a job's first attempt to A. */
const preferA = () => fakes().setLoad(B, { activeRuns: 50, activeRows: 100 })

async function run(body: Record<string, unknown> = {}) {
  const { authorization } = await createKey()
  const response = await postGeneration(
    authorization,
    { class: 1, steps: 4, seed: uniqueSeed(), ...body },
    { prefer: 'wait=10' },
  )
  const job = (await response.json()) as {
    id: string
    status: string
    modelId: string
    progress: { attempts: number }
    error?: { type: string; status: number; title: string; detail: string }
  }
  return job
}

const origins = () =>
  fakes()
    .runRequests()
    .map((request) => new URL(request.url).origin)
const seeds = () =>
  fakes()
    .runRequests()
    .map((request) => JSON.parse(request.body).seed as number)

describe('backend failover', () => {
  for (const [failure, behavior] of [
    ['connection refused', { kind: 'refuse' }],
    ['a 503', { kind: 'status', status: 503 }],
    ['a reset mid-stream', { kind: 'reset-after', steps: 2 }],
    ['a 5xx error event', { kind: 'error-event', steps: 1, status: 500 }],
  ] as const) {
    it(`retries on the other backend with the same seed after ${failure}`, async () => {
      fakes().set(A, behavior)
      preferA()
      const job = await run()
      expect(origins()).toEqual([A, B])
      expect(new Set(seeds()).size).toBe(1)
      expect(job).toMatchObject({ status: 'succeeded', progress: { attempts: 2 } })
    })
  }

  it('stops sending work to a backend that refuses connections: its breaker opens', async () => {
    fakes().set(A, { kind: 'refuse' })
    for (let index = 0; index < 4; index++) {
      expect(await run()).toMatchObject({ status: 'succeeded' })
    }
    // Its failed load requests count too, so at most one job spent an attempt on it.
    expect(origins().filter((origin) => origin === A).length).toBeLessThanOrEqual(1)
    expect(origins().filter((origin) => origin === B)).toHaveLength(4)
    expect(viewBackend(A)).toMatchObject({ breaker: 'open', failures: 3 })
  })

  it('fails the job with a clear 502 problem when every attempt fails', async () => {
    fakes().set(A, { kind: 'refuse' })
    fakes().set(B, { kind: 'status', status: 500 })
    const job = await run()
    expect(job.status).toBe('failed')
    expect(job.error?.status).toBe(502)
    expect(job.error?.detail).toBe('No GPU backend could finish the generation (3 attempts).')
    expect(fakes().runRequests()).toHaveLength(3)
  })

  it('does not retry a run the backend rejected as invalid (4xx)', async () => {
    fakes().set(A, { kind: 'status', status: 400 })
    fakes().set(B, { kind: 'status', status: 400 })
    const job = await run()
    expect(job.status).toBe('failed')
    // The edge validated the request with the backend's own schema: a refusal is the backend's fault.
    expect(job.error).toMatchObject({ status: 502, detail: 'The GPU backend refused the run.' })
    expect(fakes().runRequests()).toHaveLength(1)
  })

  it('fails over from a backend that runs another model, caching nothing under this model id', async () => {
    fakes().set(A, { kind: 'ok', modelId: 'dualrate-000000000000' })
    fakes().set(B, { kind: 'ok', modelId: 'dualrate-000000000000' })
    const job = await run()
    expect(job.status).toBe('failed')
    expect(fakes().runRequests()).toHaveLength(3)
    expect(await env.RESULTS.head(`results/${job.id}/result.json`)).toBeNull()
    // It may serve its own model well: the mismatch is not held against it.
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', failures: 0 })
  })

  it('gives up on a backend whose stream goes silent (no event, no heartbeat) and fails over', async () => {
    fakes().set(A, { kind: 'stall-after', steps: 2 })
    preferA()
    const job = await run()
    expect(origins()).toEqual([A, B])
    expect(job).toMatchObject({ status: 'succeeded', progress: { attempts: 2 } })
    const [stalled] = fakes().runRequests()
    expect(fakes().aborted).toContain(JSON.parse(stalled?.body ?? '{}').runId)
  })

  it('does not retry a run that passed its own deadline, nor hold it against the backend', async () => {
    const deadline = RUN_PROBLEM_TYPES.deadlineExceeded
    fakes().set(A, { kind: 'error-event', steps: 1, status: 504, type: deadline })
    fakes().set(B, { kind: 'error-event', steps: 1, status: 504, type: deadline })
    const job = await run()
    expect(job.status).toBe('failed')
    expect(job.error).toMatchObject({
      status: 504,
      type: '/problems/timeout',
      detail: 'The run took longer than a GPU backend allows for one run.',
    })
    expect(fakes().runRequests()).toHaveLength(1)
    const [first = A] = origins()
    expect(viewBackend(first)).toMatchObject({ breaker: 'closed', failures: 0 })
  })

  it('keeps backend URLs, network errors and backend bodies out of the problem', async () => {
    fakes().set(A, { kind: 'error-event', steps: 1, status: 500 })
    fakes().set(B, { kind: 'refuse' })
    const job = await run()
    expect(job.status).toBe('failed')
    const text = JSON.stringify(job.error)
    for (const leak of ['backend-a', 'backend-b', '.test', 'http', 'refused', 'internal detail']) {
      expect(text).not.toContain(leak)
    }
  })

  it('says so in the stream when a run restarts on another backend (retrying, then steps from 0)', async () => {
    fakes().set(A, { kind: 'stall-after', steps: 2 })
    preferA()
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, { class: 1, steps: 3, seed: uniqueSeed() })
    const { id } = (await response.json()) as { id: string }
    const events = await readEvents(
      await call(`/v1/generations/${id}/events`, { headers: { authorization } }),
    )
    const names = events.map((event) => event.event)
    expect(names).toEqual([
      'queued',
      'started',
      'step',
      'step',
      'retrying',
      'started',
      'step',
      'step',
      'step',
      'succeeded',
    ])
    expect(events[4]?.data).toEqual({ attempt: 2, reason: 'backend-failed' })
  })
})

describe('a backend that has not loaded the model', () => {
  useTwoModelCatalog()
  /** A has only the default model loaded (a gpu-service answers 404 model-not-loaded for others). */
  const onlyDefaultOnA = () => fakes().set(A, { kind: 'ok', models: [MODEL_ID] })

  it('is skipped for another backend that has it, without counting against its breaker', async () => {
    onlyDefaultOnA()
    preferA()
    const job = await run({ model: STUDENT_MODEL_ID, steps: 8 })
    expect(origins()).toEqual([A, B])
    expect(job).toMatchObject({ status: 'succeeded', modelId: STUDENT_MODEL_ID })
    expect(
      fakes()
        .runRequests()
        .map((request) => JSON.parse(request.body).model),
    ).toEqual([STUDENT_MODEL_ID, STUDENT_MODEL_ID])
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', failures: 0 })
  })

  it('keeps serving the models it has: its breaker stays closed after many refusals', async () => {
    onlyDefaultOnA()
    preferA()
    for (let index = 0; index < 4; index++) {
      expect(await run({ model: STUDENT_MODEL_ID, steps: 8 })).toMatchObject({
        status: 'succeeded',
      })
    }
    expect(viewBackend(A)).toMatchObject({ breaker: 'closed', failures: 0 })
    expect(await run()).toMatchObject({ status: 'succeeded' })
    expect(origins().at(-1)).toBe(A)
  })

  it('fails the job with a 503 naming the model, once every backend said it has not loaded it', async () => {
    fakes().set(A, { kind: 'ok', models: [MODEL_ID] })
    fakes().set(B, { kind: 'status', status: 404, type: MODEL_NOT_LOADED_PROBLEM })
    const job = await run({ model: STUDENT_MODEL_ID, steps: 8 })
    expect(job.status).toBe('failed')
    expect(job.error).toEqual({
      type: '/problems/backend-unavailable',
      status: 503,
      title: 'Generation failed',
      detail:
        `No GPU backend has model ${STUDENT_MODEL_ID} loaded at the moment; try again later, or ` +
        'another model (GET /v1/models).',
    })
    // Each backend asked once: a refusal is not retried on the backend that gave it.
    expect(origins().sort()).toEqual([A, B])
  })

  it('does not spend an attempt on a refusal, with either routing policy', async () => {
    const C = 'http://backend-c.test'
    fakes().set(C, { kind: 'ok' })
    for (const routing of ['load', 'rotation'] as const) {
      fakes().set(A, { kind: 'ok', models: [MODEL_ID] })
      fakes().set(B, { kind: 'ok', models: [MODEL_ID] })
      const before = fakes().runRequests().length
      const result = await runWithFailover(failoverRun({ routing, maxAttempts: 1 }, [A, B, C]))
      expect(result.modelId).toBe(STUDENT_MODEL_ID)
      const tried = origins().slice(before)
      // Whatever the order, C ran it: the refusals of A and B left its one attempt.
      expect(tried.at(-1)).toBe(C)
      expect(new Set(tried).size).toBe(tried.length)
    }
  })
})

/** A direct runWithFailover of a student run, as the job object calls it. */
function failoverRun(options: Partial<FailoverRun>, backendUrls: string[]): FailoverRun {
  return {
    backendUrls,
    maxAttempts: 3,
    secret: 'test-backend-secret-0123456789abcdef',
    request: {
      model: STUDENT_MODEL_ID,
      classIndex: 1,
      count: 1,
      steps: 8,
      heavySchedule: { every: 2 },
      guidance: 1,
      seed: uniqueSeed(),
      previewEvery: 0,
    },
    requestId: 'model-not-loaded-test',
    signal: new AbortController().signal,
    idleTimeoutMs: 500,
    spread: 0,
    runIdPrefix: `run-${crypto.randomUUID()}`,
    onAttempt() {},
    onEvent() {},
    ...options,
  }
}
