// A generation belongs to the keys that asked for it: identical requests share one GPU run, but only
// owners may read, stream or cancel it, a cancel detaches one owner, and the run stops when none is left.
import { env } from 'cloudflare:workers'
import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { call, createKey, postGeneration, readEvents, uniqueSeed, until } from '../helpers/api.ts'
import { type RecordedRequest, useFakeBackends } from '../helpers/fake-backends.ts'

const backends = useFakeBackends({
  'http://backend-a.test': { kind: 'ok', stepDelayMs: 20 },
  'http://backend-b.test': { kind: 'ok', stepDelayMs: 20 },
})

type Key = Awaited<ReturnType<typeof createKey>>
type Job = {
  id: string
  status: string
  progress: { step: number }
  urls: { images?: string[] }
}

const HOOK = 'https://hooks.test/owner'

const get = (key: Key, id: string) =>
  call(`/v1/generations/${id}`, { headers: { authorization: key.authorization } })
const events = (key: Key, id: string) =>
  call(`/v1/generations/${id}/events`, { headers: { authorization: key.authorization } })
const cancel = (key: Key, id: string) =>
  call(`/v1/generations/${id}/cancel`, {
    method: 'POST',
    headers: { authorization: key.authorization },
  })
async function submit(key: Key, body: Record<string, unknown>, headers = {}) {
  const response = await postGeneration(key.authorization, body, headers)
  return { status: response.status, job: (await response.json()) as Job }
}

/** The 404 every route answers a key that is not an owner: the same as for an id that never existed. */
async function expectHidden(response: Response, id: string) {
  expect(response.status).toBe(404)
  expect(response.headers.get('content-type')).toBe('application/problem+json')
  const problem = (await response.json()) as Record<string, unknown>
  expect(problem).toMatchObject({
    type: '/problems/not-found',
    status: 404,
    detail: `No generation ${id}.`,
  })
}

const hookCalls = () =>
  backends().requests.filter((request: RecordedRequest) => request.url.startsWith(HOOK))
const hookBodies = (key: Key) =>
  hookCalls()
    .filter((request) => {
      try {
        new Webhook(key.record.webhookSecret).verify(request.body, {
          'webhook-id': request.headers.get('webhook-id') ?? '',
          'webhook-timestamp': request.headers.get('webhook-timestamp') ?? '',
          'webhook-signature': request.headers.get('webhook-signature') ?? '',
        })
        return true
      } catch {
        return false
      }
    })
    .map((request) => JSON.parse(request.body) as { type: string; data: { id: string } })

describe('access to a generation', () => {
  it('answers GET, events and cancel of another key’s running job with the unknown-id 404', async () => {
    const alice = await createKey()
    const mallory = await createKey()
    const { job } = await submit(alice, { class: 1, steps: 30, seed: uniqueSeed() })
    await expectHidden(await get(mallory, job.id), job.id)
    await expectHidden(await events(mallory, job.id), job.id)
    await expectHidden(await cancel(mallory, job.id), job.id)
    await expectHidden(await get(mallory, 'ab'.repeat(32)), 'ab'.repeat(32))
    // Mallory's cancel changed nothing: Alice's job runs to its end.
    const done = await env.GENERATION_JOB.getByName(job.id).waitForCompletion(alice.id, 5_000)
    expect(done?.status).toBe('succeeded')
  })

  it('hides a finished job from other keys, though its image URLs are public', async () => {
    const alice = await createKey()
    const mallory = await createKey()
    const { job } = await submit(
      alice,
      { class: 2, steps: 2, seed: uniqueSeed() },
      { prefer: 'wait=10' },
    )
    expect(job.status).toBe('succeeded')
    await expectHidden(await get(mallory, job.id), job.id)
    await expectHidden(await events(mallory, job.id), job.id)
    await expectHidden(await cancel(mallory, job.id), job.id)
    const image = await call(new URL(job.urls.images?.[0] ?? '').pathname)
    expect(image.status).toBe(200)
  })

  it('makes every key that sent the same request an owner of the one shared run', async () => {
    const keys = [await createKey(), await createKey(), await createKey()]
    const body = { class: 3, steps: 10, seed: uniqueSeed() }
    const jobs = await Promise.all(keys.map((key) => submit(key, body)))
    const id = jobs[0]?.job.id ?? ''
    expect(new Set(jobs.map(({ job }) => job.id))).toEqual(new Set([id]))
    for (const key of keys) expect((await get(key, id)).status).toBe(200)
    const streams = await Promise.all(keys.map(async (key) => readEvents(await events(key, id))))
    for (const stream of streams) expect(stream.at(-1)?.event).toBe('succeeded')
    expect(backends().runRequests()).toHaveLength(1)
  })

  it('makes a key an owner when its request is answered from cache', async () => {
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 4, steps: 2, seed: uniqueSeed() }
    const first = await submit(alice, body, { prefer: 'wait=10' })
    expect(first.job.status).toBe('succeeded')
    await expectHidden(await get(bob, first.job.id), first.job.id)
    const cached = await submit(bob, body)
    expect(cached.status).toBe(200)
    const view = await get(bob, first.job.id)
    expect(view.status).toBe(200)
    expect(((await view.json()) as Job).status).toBe('succeeded')
    const stream = await readEvents(await events(bob, first.job.id))
    expect(stream.map((event) => event.event)).toContain('succeeded')
  })
})

describe('POST /v1/generations/:id/cancel with several owners', () => {
  it('detaches only the owner that cancels; the run goes on for the other', async () => {
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 5, steps: 40, seed: uniqueSeed() }
    const { job } = await submit(alice, body)
    await submit(bob, body)
    const aliceStream = readEvents(await events(alice, job.id))
    const bobStream = readEvents(await events(bob, job.id))
    await until(async () => ((await (await get(alice, job.id)).json()) as Job).progress.step > 2)
    const canceled = await cancel(alice, job.id)
    expect(canceled.status).toBe(200)
    expect(((await canceled.json()) as Job).status).toBe('canceled')
    expect((await aliceStream).at(-1)?.event).toBe('canceled')
    // Bob's stream never sees Alice's cancel and ends with the result.
    const bobEvents = await bobStream
    expect(bobEvents.map((event) => event.event)).not.toContain('canceled')
    expect(bobEvents.at(-1)?.event).toBe('succeeded')
    // Each keeps its own view; the backend run was never stopped.
    expect(((await (await get(alice, job.id)).json()) as Job).status).toBe('canceled')
    expect(((await (await get(bob, job.id)).json()) as Job).status).toBe('succeeded')
    expect(backends().requests.filter((request) => request.method === 'DELETE')).toEqual([])
    expect(await env.KEY_QUOTA.getByName(alice.id).activeJobs()).toEqual([])
  })

  it('stops the backend run when the last of three owners leaves', async () => {
    const keys = [await createKey(), await createKey(), await createKey()]
    const body = { class: 6, steps: 200, seed: uniqueSeed() }
    const [first] = await Promise.all(keys.map((key) => submit(key, body)))
    const id = first?.job.id ?? ''
    const deletes = () => backends().requests.filter((request) => request.method === 'DELETE')
    for (const [index, key] of keys.entries()) {
      expect(deletes()).toHaveLength(0)
      const response = await cancel(key, id)
      expect(((await response.json()) as Job).status).toBe('canceled')
      expect(await env.KEY_QUOTA.getByName(key.id).activeJobs()).toEqual([])
      if (index < keys.length - 1) expect(backends().aborted).toHaveLength(0)
    }
    expect(deletes()).toHaveLength(1)
    expect(backends().aborted).toHaveLength(1)
  })

  it('lets an owner that canceled join again with a new request, seeing the run once more', async () => {
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 7, steps: 30, seed: uniqueSeed() }
    const { job } = await submit(alice, body)
    await submit(bob, body)
    await cancel(alice, job.id)
    const again = await submit(alice, body)
    expect(again.job.status).not.toBe('canceled')
    const done = await env.GENERATION_JOB.getByName(job.id).waitForCompletion(alice.id, 5_000)
    expect(done?.status).toBe('succeeded')
  })

  it('leaves a finished result as it is: a cancel after success answers succeeded', async () => {
    const alice = await createKey()
    const { job } = await submit(
      alice,
      { class: 8, steps: 2, seed: uniqueSeed() },
      { prefer: 'wait=10' },
    )
    const response = await cancel(alice, job.id)
    expect(response.status).toBe(200)
    expect(((await response.json()) as Job).status).toBe('succeeded')
  })
})

describe('webhooks of several owners', () => {
  it('sends each owner the outcome it saw: canceled to the one that left, succeeded to the other', async () => {
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 9, steps: 30, seed: uniqueSeed(), webhookUrl: HOOK }
    const { job } = await submit(alice, body)
    await submit(bob, body)
    await cancel(alice, job.id)
    await env.GENERATION_JOB.getByName(job.id).waitForCompletion(bob.id, 5_000)
    await until(() => hookCalls().length === 2)
    expect(hookBodies(alice)).toEqual([
      expect.objectContaining({
        type: 'generation.canceled',
        data: expect.objectContaining({ id: job.id }),
      }),
    ])
    expect(hookBodies(bob)).toEqual([
      expect.objectContaining({
        type: 'generation.succeeded',
        data: expect.objectContaining({ id: job.id }),
      }),
    ])
  })

  it('delivers the webhook of a request answered from cache', async () => {
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 0, steps: 2, seed: uniqueSeed() }
    const first = await submit(alice, body, { prefer: 'wait=10' })
    const cached = await submit(bob, { ...body, webhookUrl: HOOK })
    expect(cached.status).toBe(200)
    await until(() => hookCalls().length === 1)
    expect(hookBodies(bob)).toEqual([
      expect.objectContaining({
        type: 'generation.succeeded',
        data: expect.objectContaining({ id: first.job.id }),
      }),
    ])
  })
})
