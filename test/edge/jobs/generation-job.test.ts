import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { JobState } from '../../../edge/src/jobs/job-state.ts'
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { MODEL_ID, useFakeBackends } from '../helpers/fake-backends.ts'

const backends = useFakeBackends()

const slow = (stepDelayMs: number) => {
  backends().set('http://backend-a.test', { kind: 'ok', stepDelayMs })
  backends().set('http://backend-b.test', { kind: 'ok', stepDelayMs })
}

async function startJob(authorization: string, body: Record<string, unknown>) {
  const response = await postGeneration(authorization, { seed: uniqueSeed(), ...body })
  return (await response.json()) as { id: string; urls: { events: string } }
}

function subscribe(authorization: string, id: string, lastEventId?: string) {
  return call(`/v1/generations/${id}/events`, {
    headers: { authorization, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
  })
}

describe('GET /v1/generations/:id/events', () => {
  it('writes each event with its id, name and JSON data (exact wire text)', async () => {
    const { authorization } = await createKey()
    const seed = uniqueSeed()
    const job = await startJob(authorization, {
      class: 1,
      steps: 2,
      seed,
      heavySchedule: { every: 2 },
    })
    await env.GENERATION_JOB.getByName(job.id).waitForCompletion(5_000)
    const response = await subscribe(authorization, job.id)
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    expect(response.headers.get('cache-control')).toBe('no-cache, no-transform')
    const image = `https://edge.test/v1/results/${job.id}.png`
    expect(await response.text()).toBe(
      `event: queued\nid: 1\ndata: {"id":"${job.id}"}\n\n` +
        `event: started\nid: 2\ndata: {"attempt":1,"modelId":"${MODEL_ID}"}\n\n` +
        'event: step\nid: 3\ndata: {"step":0,"totalSteps":2,"t":1,"heavy":true,"elapsedMs":0}\n\n' +
        'event: step\nid: 4\ndata: {"step":1,"totalSteps":2,"t":0.5,"heavy":false,"elapsedMs":1}\n\n' +
        `event: succeeded\nid: 5\ndata: {"images":["${image}"],"timings":{"heavyCalls":1,"lightCalls":2,"macs":1,"queueMs":0,"wallMs":1}}\n\n`,
    )
  })

  it('resumes after Last-Event-ID without losing or repeating events', async () => {
    const { authorization } = await createKey()
    const job = await startJob(authorization, { class: 1, steps: 6 })
    await env.GENERATION_JOB.getByName(job.id).waitForCompletion(5_000)
    const all = await readEvents(await subscribe(authorization, job.id))
    const resumed = await readEvents(await subscribe(authorization, job.id, '4'))
    expect(resumed.map((event) => event.id)).toEqual(all.slice(4).map((event) => event.id))
    expect(resumed[0]?.id).toBe('5')
  })

  it('sends every event to several subscribers, and a late one gets the history first', async () => {
    slow(15)
    const { authorization } = await createKey()
    const job = await startJob(authorization, { class: 2, steps: 20, previewEvery: 5 })
    const early = readEvents(await subscribe(authorization, job.id))
    await new Promise((resolve) => setTimeout(resolve, 120))
    const late = readEvents(await subscribe(authorization, job.id))
    const [earlyEvents, lateEvents] = await Promise.all([early, late])
    expect(lateEvents).toEqual(earlyEvents)
    expect(earlyEvents.filter((event) => event.event === 'preview')).toHaveLength(4)
    expect(earlyEvents.at(-1)?.event).toBe('succeeded')
  })

  it('keeps an idle stream open with heartbeat comments', async () => {
    slow(100)
    const { authorization } = await createKey()
    const job = await startJob(authorization, { class: 3, steps: 8 })
    const response = await subscribe(authorization, job.id)
    const reader = (response.body as ReadableStream<Uint8Array>)
      .pipeThrough(new TextDecoderStream())
      .getReader()
    let text = ''
    while (!text.includes(': heartbeat\n\n')) {
      const { done, value } = await reader.read()
      if (done) break
      text += value
    }
    await reader.cancel()
    expect(text).toContain(': heartbeat\n\n')
    await env.GENERATION_JOB.getByName(job.id).cancel()
  })

  it('answers 404 for a job that does not exist', async () => {
    const { authorization } = await createKey()
    expect((await subscribe(authorization, '12'.repeat(32))).status).toBe(404)
  })
})

/** Writes a job straight into a fresh object's storage, as a restarted isolate would find it. */
async function seedStoredJob(overrides: Partial<JobState>) {
  const key = Array.from(crypto.getRandomValues(new Uint8Array(32)), (byte) =>
    byte.toString(16).padStart(2, '0'),
  ).join('')
  const state: JobState = {
    key,
    origin: 'https://edge.test',
    modelId: MODEL_ID,
    className: 'Coat',
    request: {
      classIndex: 4,
      count: 1,
      steps: 5,
      heavySchedule: { every: 2 },
      guidance: 2,
      seed: uniqueSeed(),
      previewEvery: 0,
    },
    status: 'running',
    attempts: 1,
    step: 2,
    createdAt: Date.now(),
    startedAt: Date.now(),
    deadline: Date.now() + 60_000,
    owners: [],
    requestId: 'seeded',
    firstEventId: 1,
    ...overrides,
  }
  const stub = env.GENERATION_JOB.getByName(key)
  await runInDurableObject(stub, async (_instance, object) => {
    object.storage.sql.exec('INSERT INTO job (id, state) VALUES (1, ?)', JSON.stringify(state))
    await object.storage.setAlarm(Date.now() + 30_000)
  })
  // A new instance: the in-memory state now comes from SQLite, as after a restart.
  await evictDurableObject(stub)
  return stub
}

describe('GenerationJob durability', () => {
  it('loads its state from SQLite after a restart and its alarm resumes the lost run', async () => {
    const stub = await seedStoredJob({})
    expect((await stub.snapshot())?.status).toBe('running')
    expect(backends().runRequests()).toHaveLength(0)
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const done = await stub.waitForCompletion(5_000)
    expect(done?.status).toBe('succeeded')
    expect(done?.attempts).toBe(2)
    expect(backends().runRequests()).toHaveLength(1)
    expect(JSON.parse(backends().runRequests()[0]?.body ?? '{}').seed).toBe(done?.request.seed)
  })

  it('fails the job with 504 when the alarm finds it past its deadline, and cancels the backend run', async () => {
    const stub = await seedStoredJob({
      deadline: Date.now() - 1,
      backendUrl: 'http://backend-a.test',
      runId: 'seeded-run-1',
    })
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const state = await stub.snapshot()
    expect(state?.status).toBe('failed')
    expect(state?.error).toMatchObject({ status: 504, title: 'Generation timed out' })
    const deletes = backends().requests.filter((request) => request.method === 'DELETE')
    expect(deletes.map((request) => request.url)).toEqual([
      'http://backend-a.test/v1/runs/seeded-run-1',
    ])
    expect(backends().runRequests()).toHaveLength(0)
  })

  it('stays idle after it ends: no alarm left unless a webhook is due', async () => {
    const { authorization } = await createKey()
    const job = await startJob(authorization, { class: 1, steps: 2 })
    const stub = env.GENERATION_JOB.getByName(job.id)
    await stub.waitForCompletion(5_000)
    expect(await runDurableObjectAlarm(stub)).toBe(false)
  })
})
