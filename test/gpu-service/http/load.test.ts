// GET /v1/load and the load on `accepted`, through the real service on loopback with the committed models.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signedFetch } from '../../../gpu-service/src/cli/run-client.ts'
import { PROBLEM_CONTENT_TYPE } from '../../../shared/problem.ts'
import { signRequest } from '../../../shared/request-signature.ts'
import {
  LOAD_REPORT_HEADER,
  loadResponseSchema,
  type RunRequest,
} from '../../../shared/run-protocol.ts'
import { drain, readUntil } from '../../fixtures/run-stream.ts'
import { startTestService, TEST_SECRET, type TestService } from '../../fixtures/service.ts'

/** One guided image: two model rows. */
const request: RunRequest = {
  classIndex: 3,
  count: 1,
  steps: 500,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 11,
  previewEvery: 0,
}

/** GET /v1/load/{probeId}, signed, with a fresh id: two calls in one second sign differently. */
async function load(service: TestService) {
  const response = await signedFetch(service.client, 'GET', `/v1/load/${crypto.randomUUID()}`)
  expect(response.status).toBe(200)
  return loadResponseSchema.parse(await response.json()).load
}

describe('GET /v1/load', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({ DUALRATE_MAX_ACTIVE_RUNS: '1' })
  })
  afterAll(() => service.shutdown(0))

  it('answers the idle scheduler: nothing queued or active, capacity maxActiveRows, not draining', async () => {
    const response = await signedFetch(service.client, 'GET', '/v1/load')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await response.json()).toEqual({
      load: {
        queuedRuns: 0,
        queuedRows: 0,
        activeRuns: 0,
        activeRows: 0,
        capacityRows: 256,
        capacityRuns: 1,
        draining: false,
      },
    })
  })

  it('counts the runs and rows queued and active while they run', async () => {
    const active = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, runId: 'load-active' },
    })
    await readUntil(active, (event) => event.type === 'started')
    const queued = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, count: 3, runId: 'load-queued' },
    })
    const accepted = await readUntil(queued, (event) => event.type === 'accepted')
    expect(await load(service)).toEqual({
      queuedRuns: 1,
      queuedRows: 6,
      activeRuns: 1,
      activeRows: 2,
      capacityRows: 256,
      capacityRuns: 1,
      draining: false,
    })
    for (const runId of ['load-queued', 'load-active']) {
      const cancel = await signedFetch(service.client, 'DELETE', `/v1/runs/${runId}`)
      expect(cancel.status).toBe(200)
    }
    await drain(accepted.rest)
    expect(await load(service)).toMatchObject({ queuedRuns: 0, activeRuns: 0, activeRows: 0 })
  })

  it('refuses a replayed signature of /v1/load, but not two probes with ids of their own', async () => {
    // Signed two minutes back: the first test's GET /v1/load may have signed this very second.
    const headers = await signRequest(TEST_SECRET, 'GET', '/v1/load', '', Date.now() - 120_000)
    const first = await fetch(`${service.url}/v1/load`, { headers })
    expect(first.status).toBe(200)
    const replay = await fetch(`${service.url}/v1/load`, { headers })
    expect(replay.status).toBe(401)
    expect(replay.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
    expect(await replay.json()).toMatchObject({ detail: 'replayed signature' })
    // The same second, distinct paths: distinct signatures.
    await load(service)
    await load(service)
  })

  it('refuses an unsigned request with 401 and a bad probe id with 400', async () => {
    const unsigned = await fetch(`${service.url}/v1/load`)
    expect(unsigned.status).toBe(401)
    expect(await unsigned.json()).toMatchObject({ detail: 'missing signature headers' })
    const bad = await signedFetch(service.client, 'GET', `/v1/load/${'x'.repeat(65)}`)
    expect(bad.status).toBe(400)
  })
})

describe('the load on accepted', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService()
  })
  afterAll(() => service.shutdown(0))

  it('carries the load, this run counted, when the request asks with x-dualrate-load-report: 1', async () => {
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, steps: 3, runId: 'with-load' },
      headers: { [LOAD_REPORT_HEADER]: '1' },
    })
    const { events, rest } = await readUntil(response, (event) => event.type === 'accepted')
    await drain(rest)
    // Accepted inside submit(), before admission: the run is still in the queue.
    expect(events).toEqual([
      {
        type: 'accepted',
        runId: 'with-load',
        queuePosition: 0,
        load: {
          queuedRuns: 1,
          queuedRows: 2,
          activeRuns: 0,
          activeRows: 0,
          capacityRows: 256,
          capacityRuns: 16,
          draining: false,
        },
      },
    ])
  })

  it('is the event it always was without the header (an older edge refuses unknown fields)', async () => {
    const response = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, steps: 3, runId: 'without-load' },
    })
    const { events, rest } = await readUntil(response, (event) => event.type === 'accepted')
    await drain(rest)
    expect(events).toEqual([{ type: 'accepted', runId: 'without-load', queuePosition: 0 }])
  })
})

describe('GET /v1/load while draining', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService()
  })

  it('says draining from SIGTERM on, while its runs finish, and refuses new runs as run-shutdown', async () => {
    const active = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, runId: 'draining-run' },
    })
    const { rest } = await readUntil(active, (event) => event.type === 'started')
    const stopped = service.shutdown(30_000)
    expect(await load(service)).toMatchObject({ activeRuns: 1, draining: true })
    // A run sent now is refused with the problem type a shutdown gives a run it stops.
    const refused = await signedFetch(service.client, 'POST', '/v1/runs', {
      body: { ...request, runId: 'too-late' },
    })
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({
      type: '/problems/run-shutdown',
      title: 'Service shutting down',
    })
    const cancel = await signedFetch(service.client, 'DELETE', '/v1/runs/draining-run')
    expect(cancel.status).toBe(200)
    await drain(rest)
    await stopped
  })
})
