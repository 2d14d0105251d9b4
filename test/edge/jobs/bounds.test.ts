// Every list, stream and table of a job has a bound: the largest request the API accepts stores one
// preview, history streams in pages, subscribers are capped and a lagging one is dropped, and ids
// nobody created cost no storage.
import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { LAGGING_COMMENT } from '../../../edge/src/jobs/subscribers.ts'
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'

const backends = useFakeBackends()
const A = 'http://backend-a.test'
const B = 'http://backend-b.test'

type Job = { id: string; status: string }

const subscribe = (authorization: string, id: string, headers: Record<string, string> = {}) =>
  call(`/v1/generations/${id}/events`, { headers: { authorization, ...headers } })

describe('storage of the largest request', () => {
  it('stores only the record of count 64, 1000 steps, previewEvery 1; holds every step and the latest preview', {
    timeout: 60_000,
  }, async () => {
    const { authorization, id: owner } = await createKey()
    const largest = {
      class: 1,
      count: 64,
      steps: 1000,
      guidance: 2,
      previewEvery: 1,
      seed: uniqueSeed(),
    }
    const job = (await (await postGeneration(authorization, largest)).json()) as Job
    const stub = env.GENERATION_JOB.getByName(job.id)
    expect((await stub.waitForCompletion(owner, 20_000))?.status).toBe('succeeded')
    const stats = await stub.storageStats()
    // Stored: queued, started, succeeded. Held in memory: 1000 steps and the last preview.
    expect(stats.events).toBe(3)
    expect(stats.heldEvents).toBe(1001)
    // A late subscriber reads the 1004 events in pages, in order, and nothing else.
    const events = await readEvents(await subscribe(authorization, job.id))
    expect(events.map((event) => Number(event.id))).toEqual(
      [...events.map((event) => Number(event.id))].sort((a, b) => a - b),
    )
    expect(events.filter((event) => event.event === 'step')).toHaveLength(1000)
    expect(events.filter((event) => event.event === 'preview')).toHaveLength(1)
    expect(events.at(-1)?.event).toBe('succeeded')
  })
})

describe('subscribers', () => {
  it('caps streams per owner (8) with a 429 problem; other owners may still subscribe', async () => {
    backends().set(A, { kind: 'ok', stepDelayMs: 50 })
    backends().set(B, { kind: 'ok', stepDelayMs: 50 })
    const alice = await createKey()
    const bob = await createKey()
    const body = { class: 2, steps: 100, seed: uniqueSeed() }
    const job = (await (await postGeneration(alice.authorization, body)).json()) as Job
    await postGeneration(bob.authorization, body)
    const open = await Promise.all(
      Array.from({ length: 8 }, () => subscribe(alice.authorization, job.id)),
    )
    for (const response of open) expect(response.status).toBe(200)
    const refused = await subscribe(alice.authorization, job.id)
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('5')
    expect(await refused.json()).toMatchObject({
      type: '/problems/too-many-streams',
      status: 429,
    })
    const other = await subscribe(bob.authorization, job.id)
    expect(other.status).toBe(200)
    // A stream that closes frees its place.
    await open[0]?.body?.cancel()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const again = await subscribe(alice.authorization, job.id)
    expect(again.status).toBe(200)
    for (const response of [...open.slice(1), other, again]) await response.body?.cancel()
    await call(`/v1/generations/${job.id}/cancel`, {
      method: 'POST',
      headers: { authorization: alice.authorization },
    })
    await call(`/v1/generations/${job.id}/cancel`, {
      method: 'POST',
      headers: { authorization: bob.authorization },
    })
  })

  it('drops a subscriber that stops reading, with a clear comment; it resumes with Last-Event-ID', async () => {
    // Previews of 8 images of 256 KiB each: the lag limit (4 MiB) is passed within a few events.
    backends().set(A, { kind: 'ok', stepDelayMs: 5, previewImage: 'A'.repeat(256 * 1024) })
    backends().set(B, { kind: 'ok', stepDelayMs: 5, previewImage: 'A'.repeat(256 * 1024) })
    const { authorization, id: owner } = await createKey()
    const body = { class: 3, count: 8, steps: 40, previewEvery: 1, seed: uniqueSeed() }
    const job = (await (await postGeneration(authorization, body)).json()) as Job
    const stalled = await subscribe(authorization, job.id)
    // Never read while the job runs.
    await env.GENERATION_JOB.getByName(job.id).waitForCompletion(owner, 10_000)
    const text = await stalled.text()
    expect(text.endsWith(LAGGING_COMMENT)).toBe(true)
    expect(text).not.toContain('event: succeeded')
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((match) => match[1] ?? '')
    const resumed = await readEvents(
      await subscribe(authorization, job.id, { 'last-event-id': ids.at(-1) ?? '0' }),
    )
    expect(Number(resumed[0]?.id)).toBeGreaterThan(Number(ids.at(-1)))
    expect(resumed.at(-1)?.event).toBe('succeeded')
  })
})

describe('unknown ids', () => {
  it('create no storage when read, streamed or canceled', async () => {
    const { authorization } = await createKey()
    const id = Array.from(crypto.getRandomValues(new Uint8Array(32)), (byte) =>
      byte.toString(16).padStart(2, '0'),
    ).join('')
    expect((await call(`/v1/generations/${id}`, { headers: { authorization } })).status).toBe(404)
    expect((await subscribe(authorization, id)).status).toBe(404)
    const cancel = await call(`/v1/generations/${id}/cancel`, {
      method: 'POST',
      headers: { authorization },
    })
    expect(cancel.status).toBe(404)
    const tables = await runInDurableObject(env.GENERATION_JOB.getByName(id), (_instance, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((row) => row.name)
        .filter((name) => !name.startsWith('_cf_') && !name.startsWith('sqlite_')),
    )
    expect(tables).toEqual([])
  })
})
