// The signature check in front of /v1, through the app in this process (fake models): every way a
// signature can be wrong is a 401 problem and runs nothing; each signature is good for one request.
import { describe, expect, it } from 'vitest'
import { PROBLEM_CONTENT_TYPE, problemSchema } from '../../../shared/problem.ts'
import {
  SIGNATURE_HEADER,
  signRequest,
  TIMESTAMP_HEADER,
} from '../../../shared/request-signature.ts'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import { fakeModels, type ModelCall } from '../../fixtures/fake-models.ts'
import { fakeService } from '../../fixtures/fake-service-app.ts'
import { collect } from '../../fixtures/run-stream.ts'
import { TEST_SECRET } from '../../fixtures/service.ts'

const request: RunRequest = {
  classIndex: 3,
  count: 1,
  steps: 4,
  heavySchedule: { every: 2 },
  guidance: 2,
  seed: 1,
  previewEvery: 0,
}
const body = JSON.stringify(request)
/** A fixed clock for the service and the signer. */
const NOW = Date.UTC(2026, 10, 30, 12)

function serviceAt(clock: { now: number }, maxReplayEntries?: number) {
  const calls: ModelCall[] = []
  const service = fakeService({
    models: fakeModels(calls),
    now: () => clock.now,
    ...(maxReplayEntries && { maxReplayEntries }),
  })
  return { ...service, calls }
}

async function expectProblem(response: Response, status: number, title: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
  const problem = problemSchema.parse(await response.json())
  expect(problem).toMatchObject({ status, title })
  return problem
}

const sign = (method: string, path: string, signedBody: string, now = NOW) =>
  signRequest(TEST_SECRET, method, path, signedBody, now)

describe('the /v1 signature check', () => {
  it.each([
    ['missing', async () => ({}), 'missing signature headers'],
    [
      'without its timestamp',
      async () => ({
        [SIGNATURE_HEADER]: (await sign('POST', '/v1/runs', body))[SIGNATURE_HEADER],
      }),
      'missing signature headers',
    ],
    ['stale', () => sign('POST', '/v1/runs', body, NOW - 301_000), 'stale timestamp'],
    ['future', () => sign('POST', '/v1/runs', body, NOW + 301_000), 'stale timestamp'],
    [
      'body-modified',
      () => sign('POST', '/v1/runs', JSON.stringify({ ...request, count: 64 })),
      'signature mismatch',
    ],
    ['path-modified', () => sign('POST', '/v1/runs/other', body), 'signature mismatch'],
    ['method-modified', () => sign('PUT', '/v1/runs', body), 'signature mismatch'],
    [
      'other-secret',
      () => signRequest('another-secret-0123456789abcdef0123', 'POST', '/v1/runs', body, NOW),
      'signature mismatch',
    ],
    [
      'malformed',
      async () => ({ ...(await sign('POST', '/v1/runs', body)), [SIGNATURE_HEADER]: 'v1=xyz' }),
      'malformed signature',
    ],
    [
      'upper-case',
      async () => {
        const headers = await sign('POST', '/v1/runs', body)
        return { ...headers, [SIGNATURE_HEADER]: headers[SIGNATURE_HEADER]?.toUpperCase() ?? '' }
      },
      'malformed signature',
    ],
    [
      'malformed-timestamp',
      async () => ({ ...(await sign('POST', '/v1/runs', body)), [TIMESTAMP_HEADER]: '1e9' }),
      'malformed timestamp',
    ],
  ])(
    'refuses a %s signature with 401 problem+json, and runs nothing',
    async (_, headers, detail) => {
      const service = serviceAt({ now: NOW })
      const response = await service.app.request('/v1/runs', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await headers()) },
        body,
      })
      const problem = await expectProblem(response, 401, 'Unauthorized')
      expect(problem.detail).toBe(detail)
      expect(service.calls).toEqual([])
      expect(service.logs.filter((line) => line.msg === 'run ended')).toEqual([])
    },
  )

  it('refuses a replayed POST with 401 "replayed signature", and runs it once', async () => {
    const service = serviceAt({ now: NOW })
    const headers = {
      'content-type': 'application/json',
      ...(await sign('POST', '/v1/runs', body)),
    }
    const first = await service.app.request('/v1/runs', { method: 'POST', headers, body })
    expect(first.status).toBe(200)
    expect((await collect(first)).at(-1)?.event.type).toBe('result')
    const callsOfOneRun = service.calls.length
    const replay = await service.app.request('/v1/runs', { method: 'POST', headers, body })
    const problem = await expectProblem(replay, 401, 'Unauthorized')
    expect(problem.detail).toBe('replayed signature')
    expect(service.calls).toHaveLength(callsOfOneRun)
    expect(service.logs.filter((line) => line.msg === 'run ended')).toHaveLength(1)
  })

  it('refuses a replayed DELETE', async () => {
    const service = serviceAt({ now: NOW })
    const headers = await sign('DELETE', '/v1/runs/gone', '')
    const first = await service.app.request('/v1/runs/gone', { method: 'DELETE', headers })
    await expectProblem(first, 404, 'Run not found')
    const replay = await service.app.request('/v1/runs/gone', { method: 'DELETE', headers })
    expect((await expectProblem(replay, 401, 'Unauthorized')).detail).toBe('replayed signature')
  })

  it('accepts the same body signed again with another timestamp', async () => {
    const clock = { now: NOW }
    const service = serviceAt(clock)
    for (const signedAt of [NOW - 5_000, NOW, NOW + 200_000]) {
      const response = await service.signed('POST', '/v1/runs', { body, now: signedAt })
      expect(response.status).toBe(200)
      expect((await collect(response)).at(-1)?.event.type).toBe('result')
    }
  })

  it('still refuses a replay of a future-dated signature until its window has passed', async () => {
    const clock = { now: NOW }
    const service = serviceAt(clock)
    const headers = await sign('DELETE', '/v1/runs/x', '', NOW + 200_000)
    const send = () => service.app.request('/v1/runs/x', { method: 'DELETE', headers })
    expect((await send()).status).toBe(404)
    clock.now = NOW + 450_000
    expect((await expectProblem(await send(), 401, 'Unauthorized')).detail).toBe(
      'replayed signature',
    )
    clock.now = NOW + 501_000
    expect((await expectProblem(await send(), 401, 'Unauthorized')).detail).toBe('stale timestamp')
  })

  it('answers 503 with Retry-After while the replay cache is full of live signatures', async () => {
    const clock = { now: NOW }
    const service = serviceAt(clock, 2)
    const remove = (id: string, signedAt = NOW) =>
      service.signed('DELETE', `/v1/runs/${id}`, { now: signedAt })
    expect((await remove('a', NOW - 100_000)).status).toBe(404)
    expect((await remove('b')).status).toBe(404)
    const full = await remove('c')
    const problem = await expectProblem(full, 503, 'Replay cache full')
    expect(problem.detail).toBe(
      '2 signatures still within their 300 s window are remembered, the limit; retry later',
    )
    expect(full.headers.get('retry-after')).toBe('200')
    // The first signature has expired 200 s later, so there is room again.
    clock.now = NOW + 201_000
    expect((await remove('c', clock.now)).status).toBe(404)
  })
})
