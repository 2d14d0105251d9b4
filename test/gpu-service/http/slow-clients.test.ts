// POST /v1/runs against a client that does not read: the run's unwritten events are bounded. Through the
// app in this process (fake models), where an unread response body holds the SSE writer back.
import { describe, expect, it } from 'vitest'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import { fakeService } from '../../fixtures/fake-service-app.ts'
import { collect } from '../../fixtures/run-stream.ts'

const request: RunRequest = {
  classIndex: 3,
  count: 2,
  steps: 20,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 1,
  previewEvery: 1,
}

describe('POST /v1/runs with a slow client', () => {
  it('keeps every step and, of the previews not yet written, only the newest', async () => {
    const service = fakeService()
    const response = await service.signed('POST', '/v1/runs', {
      body: JSON.stringify({ ...request, runId: 'late' }),
    })
    expect(await service.runEnded('late')).toMatchObject({ outcome: 'completed' })
    const events = (await collect(response)).map((message) => message.event)
    const steps = events.filter((event) => event.type === 'step')
    expect(steps.map((event) => event.step)).toEqual([...Array(20).keys()])
    // One preview a step was sent; those the writer had not taken were replaced by the next one.
    const previews = events.filter((event) => event.type === 'preview')
    expect(previews.length).toBeLessThanOrEqual(3)
    expect(previews.at(-1)?.step).toBe(19)
    expect(events.slice(-3).map((event) => event.type)).toEqual(['step', 'preview', 'result'])
  })

  it('stops the run as disconnected when its events pass the limit, and logs why', async () => {
    const service = fakeService({ eventQueueLimits: { maxItems: 4, maxBytes: 1024 * 1024 } })
    const response = await service.signed('POST', '/v1/runs', {
      body: JSON.stringify({ ...request, steps: 200, previewEvery: 0, runId: 'stalled' }),
      headers: { 'x-request-id': 'req-stalled' },
    })
    const reason = 'more than 4 events waiting for the client'
    expect(await service.runEnded('stalled')).toMatchObject({
      requestId: 'req-stalled',
      outcome: 'disconnected',
      reason,
    })
    expect(service.logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'run event queue full',
        requestId: 'req-stalled',
        runId: 'stalled',
        reason,
      }),
    )
    const events = (await collect(response)).map((message) => message.event)
    expect(events.filter((event) => event.type === 'step').length).toBeLessThan(10)
    expect(events.at(-1)).toEqual({
      type: 'error',
      runId: 'stalled',
      problem: {
        type: '/problems/run-disconnected',
        status: 499,
        title: 'Client disconnected',
        detail: 'the client read the events too slowly',
        requestId: 'req-stalled',
      },
    })
    expect([service.scheduler.activeRuns, service.scheduler.queueDepth]).toEqual([0, 0])
  })
})
