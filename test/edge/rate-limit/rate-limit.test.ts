import { evictDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { call, createKey, postGeneration, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'

const backends = useFakeBackends({
  'http://backend-a.test': { kind: 'ok', stepDelayMs: 50 },
  'http://backend-b.test': { kind: 'ok', stepDelayMs: 50 },
})

describe('per-key rate limit', () => {
  it('sends RateLimit-Policy and RateLimit headers counting down', async () => {
    const { authorization } = await createKey({ requestsPerMinute: 5 })
    const probe = () => call(`/v1/generations/${'ef'.repeat(32)}`, { headers: { authorization } })
    const first = await probe()
    expect(first.headers.get('ratelimit-policy')).toBe('"requests";q=5;w=60')
    expect(first.headers.get('ratelimit')).toMatch(/^"requests";r=4;t=\d+$/)
    const second = await probe()
    expect(second.headers.get('ratelimit')).toMatch(/^"requests";r=3;t=\d+$/)
  })

  it('answers 429 with Retry-After once the key has used its requests', async () => {
    const { authorization } = await createKey({ requestsPerMinute: 2 })
    const probe = () => call(`/v1/generations/${'ef'.repeat(32)}`, { headers: { authorization } })
    await probe()
    await probe()
    const limited = await probe()
    expect(limited.status).toBe(429)
    expect(limited.headers.get('content-type')).toBe('application/problem+json')
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(limited.headers.get('ratelimit')).toMatch(/^"requests";r=0;t=\d+$/)
    expect(((await limited.json()) as { type: string }).type).toBe('/problems/rate-limited')
  })

  it('keeps a used bucket when the key object is evicted and started again', async () => {
    const { authorization, id } = await createKey({ requestsPerMinute: 2 })
    const probe = () => call(`/v1/generations/${'ef'.repeat(32)}`, { headers: { authorization } })
    await probe()
    await probe()
    await evictDurableObject(env.KEY_QUOTA.getByName(id))
    expect((await probe()).status).toBe(429)
  })

  it('charges a POST /v1/generations once: a 60-per-minute key gets 60 POSTs', async () => {
    const { authorization } = await createKey({ requestsPerMinute: 60, concurrentJobs: 100 })
    const first = await postGeneration(authorization, { class: 1, steps: 1, seed: uniqueSeed() })
    expect(first.headers.get('ratelimit')).toMatch(/^"requests";r=59;t=\d+$/)
    const second = await postGeneration(authorization, { class: 1, steps: 1, seed: uniqueSeed() })
    expect(second.headers.get('ratelimit')).toMatch(/^"requests";r=58;t=\d+$/)
  })

  it('limits each key on its own', async () => {
    const busy = await createKey({ requestsPerMinute: 1 })
    const idle = await createKey({ requestsPerMinute: 1 })
    const probe = (authorization: string) =>
      call(`/v1/generations/${'ef'.repeat(32)}`, { headers: { authorization } })
    await probe(busy.authorization)
    expect((await probe(busy.authorization)).status).toBe(429)
    expect((await probe(idle.authorization)).status).toBe(404)
  })
})

describe('concurrent-jobs quota', () => {
  it('answers 429 when the key already runs its quota of jobs, and frees the slot when a job ends', async () => {
    backends().set('http://backend-a.test', { kind: 'ok', stepDelayMs: 5 })
    backends().set('http://backend-b.test', { kind: 'ok', stepDelayMs: 5 })
    const { authorization, id } = await createKey({ concurrentJobs: 1 })
    const first = await postGeneration(authorization, { class: 1, steps: 20, seed: uniqueSeed() })
    expect(first.status).toBe(202)
    const second = await postGeneration(authorization, { class: 1, steps: 20, seed: uniqueSeed() })
    expect(second.status).toBe(429)
    expect(((await second.json()) as { type: string }).type).toBe('/problems/concurrency-quota')
    const { id: jobId } = (await first.json()) as { id: string }
    await env.GENERATION_JOB.getByName(jobId).waitForCompletion(id, 5_000)
    expect(await env.KEY_QUOTA.getByName(id).activeJobs()).toEqual([])
    const third = await postGeneration(authorization, { class: 1, steps: 2, seed: uniqueSeed() })
    expect(third.status).toBe(202)
  })

  it('counts cost (rows x steps): a maximum-size job holds the whole default budget', async () => {
    const { authorization } = await createKey({ concurrentJobs: 4 })
    const largest = { class: 1, count: 64, guidance: 2, steps: 1000, seed: uniqueSeed() }
    const big = await postGeneration(authorization, largest)
    expect(big.status).toBe(202)
    const small = await postGeneration(authorization, { class: 1, steps: 2, seed: uniqueSeed() })
    expect(small.status).toBe(429)
    const problem = (await small.json()) as { type: string; detail: string }
    expect(problem.type).toBe('/problems/concurrency-quota')
    expect(problem.detail).toBe(
      'This key may run 128000 row-steps (images x guidance rows x steps) at once; 128000 are in use.',
    )
    const { id } = (await big.json()) as { id: string }
    await call(`/v1/generations/${id}/cancel`, { method: 'POST', headers: { authorization } })
    const after = await postGeneration(authorization, { class: 1, steps: 2, seed: uniqueSeed() })
    expect(after.status).toBe(202)
  })

  it('does not count a cache hit against the quota', async () => {
    backends().set('http://backend-a.test', { kind: 'ok' })
    const { authorization, id } = await createKey({ concurrentJobs: 1 })
    const body = { class: 2, steps: 2, seed: uniqueSeed() }
    await postGeneration(authorization, body, { prefer: 'wait=5' })
    const cached = await postGeneration(authorization, body)
    expect(cached.status).toBe(200)
    expect(await env.KEY_QUOTA.getByName(id).activeJobs()).toEqual([])
  })
})
