import { runDurableObjectAlarm } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { call, createKey, postGeneration, readEvents, uniqueSeed, until } from '../helpers/api.ts'
import { MODEL_ID, useFakeBackends } from '../helpers/fake-backends.ts'
import { STORED_OWNER, seedStoredRow, storedJob } from '../helpers/stored-job.ts'

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
    const { authorization, id } = await createKey()
    const seed = uniqueSeed()
    const job = await startJob(authorization, {
      class: 1,
      steps: 2,
      seed,
      heavySchedule: { every: 2 },
    })
    await env.GENERATION_JOB.getByName(job.id).waitForCompletion(id, 5_000)
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
    const { authorization, id } = await createKey()
    const job = await startJob(authorization, { class: 1, steps: 6 })
    await env.GENERATION_JOB.getByName(job.id).waitForCompletion(id, 5_000)
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
    const previews = (events: typeof earlyEvents) =>
      events.filter((event) => event.event === 'preview')
    const others = (events: typeof earlyEvents) =>
      events.filter((event) => event.event !== 'preview')
    expect(others(lateEvents)).toEqual(others(earlyEvents))
    expect(previews(earlyEvents)).toHaveLength(4)
    // History keeps only the latest preview (each supersedes the last); live ones all arrive.
    expect(previews(earlyEvents).slice(-previews(lateEvents).length)).toEqual(previews(lateEvents))
    expect(earlyEvents.at(-1)?.event).toBe('succeeded')
  })

  it('keeps an idle stream open with heartbeat comments', async () => {
    slow(100)
    const { authorization, id } = await createKey()
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
    await env.GENERATION_JOB.getByName(job.id).cancel(id)
  })

  it('answers 404 for a job that does not exist', async () => {
    const { authorization } = await createKey()
    expect((await subscribe(authorization, '12'.repeat(32))).status).toBe(404)
  })
})

describe('GenerationJob durability', () => {
  it('loads its state from SQLite after a restart and resumes the lost run (a retrying event says so)', async () => {
    const stub = await seedStoredRow(storedJob())
    // Any call wakes the object, which then resumes at once instead of at the 10 s watchdog.
    expect((await stub.snapshot(STORED_OWNER))?.status).toBe('running')
    const done = await stub.waitForCompletion(STORED_OWNER, 5_000)
    expect(done?.status).toBe('succeeded')
    expect(done?.attempts).toBe(2)
    expect(backends().runRequests()).toHaveLength(1)
    expect(JSON.parse(backends().runRequests()[0]?.body ?? '{}').seed).toBe(done?.request.seed)
  })

  it('migrates a version 1 row (an owners list, backend fields at the top level)', async () => {
    const v2 = storedJob({ deadline: Date.now() - 1 })
    const { version: _version, run: _run, owners: _owners, ...common } = v2
    const stub = await seedStoredRow({
      ...common,
      owners: [STORED_OWNER],
      backendUrl: 'http://backend-a.test',
      runId: 'seeded-run-1',
    })
    expect(await stub.snapshot(STORED_OWNER)).toMatchObject({ run: 1, version: 2 })
    expect(await stub.snapshot('someone-else')).toBeNull()
    // Past its deadline: the alarm that waking it scheduled fails it and cancels the recorded run.
    expect(await stub.waitForCompletion(STORED_OWNER, 5_000)).toMatchObject({ status: 'failed' })
    // The run is canceled on the backend after the job has ended (a cancel never holds the job up).
    const deletes = () => backends().requests.filter((request) => request.method === 'DELETE')
    await until(async () => deletes().length > 0)
    expect(deletes().map((request) => request.url)).toEqual([
      'http://backend-a.test/v1/runs/seeded-run-1',
    ])
  })

  it('refuses a corrupt row loudly, naming the field, instead of running with it', async () => {
    const stub = await seedStoredRow({ ...storedJob(), status: 'paused' })
    const error = await stub.snapshot(STORED_OWNER).then(
      () => null,
      (thrown: unknown) => thrown,
    )
    expect(String(error)).toMatch(/^Error: Stored job state is invalid \(status: Invalid option/)
  })

  it('fails the job with 504 when the alarm finds it past its deadline, and cancels the backend run', async () => {
    const stub = await seedStoredRow(
      storedJob({
        deadline: Date.now() - 1,
        backend: { url: 'http://backend-a.test', runId: 'seeded-run-1' },
      }),
    )
    const state = await stub.waitForCompletion(STORED_OWNER, 5_000)
    expect(state?.status).toBe('failed')
    expect(state?.error).toMatchObject({ status: 504, title: 'Generation timed out' })
    // The run is canceled on the backend after the job has ended (a cancel never holds the job up).
    const deletes = () => backends().requests.filter((request) => request.method === 'DELETE')
    await until(async () => deletes().length > 0)
    expect(deletes().map((request) => request.url)).toEqual([
      'http://backend-a.test/v1/runs/seeded-run-1',
    ])
    expect(backends().runRequests()).toHaveLength(0)
  })

  it('after it ends, its only alarm prunes the event log to the terminal event; then it stays idle', async () => {
    const { authorization, id } = await createKey()
    const job = await startJob(authorization, { class: 1, steps: 3 })
    const stub = env.GENERATION_JOB.getByName(job.id)
    await stub.waitForCompletion(id, 5_000)
    // Stored: queued, started, succeeded; the three steps are held in memory.
    expect(await stub.storageStats()).toMatchObject({ events: 3, heldEvents: 3 })
    // EVENT_RETENTION_SECONDS is 3 in the test configuration; the alarm prunes on its own.
    await until(async () => (await stub.storageStats()).events === 1)
    expect((await stub.storageStats()).heldEvents).toBe(0)
    const events = await readEvents(await subscribe(authorization, job.id))
    expect(events.map((event) => event.event)).toEqual(['succeeded'])
    expect((await stub.snapshot(id))?.status).toBe('succeeded')
    expect(await runDurableObjectAlarm(stub)).toBe(false)
  })
})
