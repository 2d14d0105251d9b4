// The error event of each way a run ends without a result: its problem type comes from the shared
// protocol (the edge decides from it whether to retry elsewhere), and it carries nothing of the service's
// insides. Through the app in this process, with the fake models.
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { OUTCOME_PROBLEMS } from '../../../gpu-service/src/http/run-events.ts'
import type { DualRateModels } from '../../../gpu-service/src/sampler/sample.ts'
import { problemSchema } from '../../../shared/problem.ts'
import {
  RETRYABLE_RUN_PROBLEMS,
  RUN_PROBLEM_TYPES,
  type RunEvent,
  type RunRequest,
} from '../../../shared/run-protocol.ts'
import { fakeModels } from '../../fixtures/fake-models.ts'
import { fakeService } from '../../fixtures/fake-service-app.ts'
import { collect, readUntil } from '../../fixtures/run-stream.ts'

const request: RunRequest = {
  classIndex: 3,
  count: 1,
  steps: 8,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 1,
  previewEvery: 0,
}

/** The fake models, each call yielding to the event loop first, so runs can be stopped mid-way. */
function pacedModels(): DualRateModels<Float32Array> {
  const models = fakeModels()
  return {
    heavy: async (feeds) => {
      await sleep(1)
      return models.heavy(feeds)
    },
    light: async (feeds) => {
      await sleep(1)
      return models.light(feeds)
    },
  }
}

const lastEvent = async (response: Response): Promise<RunEvent | undefined> =>
  (await collect(response)).at(-1)?.event

describe('OUTCOME_PROBLEMS', () => {
  it('gives every outcome its problem type from the shared protocol', () => {
    expect(
      Object.fromEntries(
        Object.entries(OUTCOME_PROBLEMS).map(([outcome, { type }]) => [outcome, type]),
      ),
    ).toEqual({
      cancelled: RUN_PROBLEM_TYPES.cancelled,
      disconnected: RUN_PROBLEM_TYPES.disconnected,
      deadline_exceeded: RUN_PROBLEM_TYPES.deadlineExceeded,
      shutdown: RUN_PROBLEM_TYPES.shutdown,
      failed: RUN_PROBLEM_TYPES.failed,
    })
  })

  it('marks only a shutdown and an internal failure as worth another backend', () => {
    const retryable = Object.entries(OUTCOME_PROBLEMS)
      .filter(([, { type }]) => RETRYABLE_RUN_PROBLEMS.has(type as string))
      .map(([outcome]) => outcome)
    expect(retryable).toEqual(['shutdown', 'failed'])
  })
})

describe('POST /v1/runs error events', () => {
  it('a run that fails inside ends with a bare 500 run-failed problem; the log has the error', async () => {
    const models = fakeModels()
    const service = fakeService({
      models: {
        heavy: models.heavy,
        light: async () => {
          throw new Error("ENOENT: no such file or directory, open '/srv/models/light.onnx'")
        },
      },
    })
    const response = await service.signed('POST', '/v1/runs', {
      body: JSON.stringify({ ...request, runId: 'broken' }),
      headers: { 'x-request-id': 'req-broken' },
    })
    expect(await lastEvent(response)).toEqual({
      type: 'error',
      runId: 'broken',
      problem: {
        type: '/problems/run-failed',
        status: 500,
        title: 'Internal Server Error',
        requestId: 'req-broken',
      },
    })
    const line = await service.runEnded('broken')
    expect(line).toMatchObject({
      level: 'error',
      requestId: 'req-broken',
      outcome: 'failed',
      error: { message: "ENOENT: no such file or directory, open '/srv/models/light.onnx'" },
    })
    expect((line.error as { stack: string }).stack).toMatch(/^Error: ENOENT/)
  })

  it('a cancelled run ends with a 409 run-cancelled problem', async () => {
    const service = fakeService({ models: pacedModels() })
    const response = await service.signed('POST', '/v1/runs', {
      body: JSON.stringify({ ...request, steps: 1000, runId: 'stop-me' }),
    })
    const { rest } = await readUntil(response, (event) => event.type === 'step')
    expect((await service.signed('DELETE', '/v1/runs/stop-me')).status).toBe(200)
    const events = []
    for await (const { event } of rest) events.push(event)
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      problem: { type: '/problems/run-cancelled', status: 409, title: 'Run cancelled' },
    })
  })

  it('a run past its deadline ends with a 504 run-deadline-exceeded problem', async () => {
    const service = fakeService({ models: pacedModels(), limits: { runDeadlineMs: 30 } })
    const response = await service.signed('POST', '/v1/runs', {
      body: JSON.stringify({ ...request, steps: 1000 }),
    })
    expect(await lastEvent(response)).toMatchObject({
      type: 'error',
      problem: { type: '/problems/run-deadline-exceeded', status: 504 },
    })
  })

  it('a run stopped by shutdown ends with a 503 run-shutdown problem', async () => {
    const service = fakeService({ models: pacedModels() })
    const response = await service.signed('POST', '/v1/runs', {
      body: JSON.stringify({ ...request, steps: 1000 }),
    })
    const { rest } = await readUntil(response, (event) => event.type === 'step')
    await service.scheduler.drain(0)
    const events = []
    for await (const { event } of rest) events.push(event)
    const last = events.at(-1)
    expect(last).toMatchObject({
      type: 'error',
      problem: { type: '/problems/run-shutdown', status: 503, title: 'Service shutting down' },
    })
    if (last?.type === 'error') expect(problemSchema.parse(last.problem)).toEqual(last.problem)
  })
})
