// Failover through the real app (BACKEND_URLS: A and B, load routing, the default): what a job does
// when its backend fails, and what the failure does to the backend's standing.
import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it } from 'vitest'
import { forgetFleet, viewBackend } from '../../../edge/src/backends/fleet.ts'
import { RUN_PROBLEM_TYPES } from '../../../shared/run-protocol.ts'
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'

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
    progress: { attempts: number }
    error?: { status: number; detail: string }
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

  it('fails over from a backend that serves another model, caching nothing under this model id', async () => {
    fakes().set(A, { kind: 'ok', modelId: 'dualrate-000000000000' })
    fakes().set(B, { kind: 'ok', modelId: 'dualrate-000000000000' })
    const job = await run()
    expect(job.status).toBe('failed')
    expect(fakes().runRequests()).toHaveLength(3)
    expect(await env.RESULTS.head(`results/${job.id}/result.json`)).toBeNull()
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
