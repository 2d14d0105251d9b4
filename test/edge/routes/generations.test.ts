import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { type FakeBackends, installFakeBackends } from '../helpers/fake-backends.ts'

let backends: FakeBackends
beforeEach(() => {
  backends = installFakeBackends({
    'http://backend-a.test': { kind: 'ok' },
    'http://backend-b.test': { kind: 'ok' },
  })
})
afterEach(() => backends.restore())

describe('POST /v1/generations', () => {
  it('answers 202 with the job and its URLs, then the job succeeds', async () => {
    const { authorization } = await createKey()
    const response = await postGeneration(authorization, {
      class: 'Sneaker',
      steps: 8,
      seed: uniqueSeed(),
    })
    expect(response.status).toBe(202)
    const job = (await response.json()) as { id: string; status: string; urls: { events: string } }
    expect(job.status).toBe('queued')
    expect(response.headers.get('location')).toBe(`https://edge.test/v1/generations/${job.id}`)
    const events = await readEvents(
      await call(new URL(job.urls.events).pathname, { headers: { authorization } }),
    )
    expect(events.map((event) => event.event)).toEqual([
      'queued',
      'started',
      ...Array(8).fill('step'),
      'succeeded',
    ])
  })
})
