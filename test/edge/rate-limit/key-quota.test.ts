import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'

const policy = { limit: 3, windowSeconds: 60 }

describe('KeyQuota.take (token bucket)', () => {
  it('allows a burst of `limit`, then refills one request every window/limit seconds', async () => {
    const quota = env.KEY_QUOTA.getByName(`bucket-${crypto.randomUUID()}`)
    const t0 = 1_000_000
    expect(await quota.take(policy, t0)).toEqual({ allowed: true, remaining: 2, resetSeconds: 20 })
    expect(await quota.take(policy, t0)).toEqual({ allowed: true, remaining: 1, resetSeconds: 40 })
    expect(await quota.take(policy, t0)).toEqual({ allowed: true, remaining: 0, resetSeconds: 60 })
    expect(await quota.take(policy, t0)).toEqual({ allowed: false, remaining: 0, resetSeconds: 20 })
    expect(await quota.take(policy, t0 + 20_000)).toMatchObject({ allowed: true, remaining: 0 })
  })
})

describe('KeyQuota jobs', () => {
  it('counts each job once, refuses past the maximum, and forgets expired slots', async () => {
    const quota = env.KEY_QUOTA.getByName(`jobs-${crypto.randomUUID()}`)
    const t0 = 1_000_000
    const limits = { maxJobs: 2, maxCost: 1_000, ttlMs: 1_000 }
    expect(await quota.acquireJob('a', 10, limits, t0)).toEqual({ acquired: true })
    expect(await quota.acquireJob('a', 10, limits, t0)).toEqual({ acquired: true })
    expect(await quota.acquireJob('b', 10, limits, t0)).toEqual({ acquired: true })
    expect(await quota.acquireJob('c', 10, limits, t0)).toEqual({
      acquired: false,
      reason: 'jobs',
      active: 2,
      activeCost: 20,
    })
    await quota.releaseJob('a')
    expect(await quota.acquireJob('c', 10, limits, t0)).toEqual({ acquired: true })
    expect(await quota.acquireJob('d', 10, limits, t0 + 1_000)).toEqual({ acquired: true })
  })

  it('refuses a job whose cost would pass the cost budget, whatever the job count', async () => {
    const quota = env.KEY_QUOTA.getByName(`cost-${crypto.randomUUID()}`)
    const limits = { maxJobs: 10, maxCost: 1_000, ttlMs: 60_000 }
    expect(await quota.acquireJob('big', 900, limits)).toEqual({ acquired: true })
    expect(await quota.acquireJob('small', 200, limits)).toEqual({
      acquired: false,
      reason: 'cost',
      active: 1,
      activeCost: 900,
    })
    expect(await quota.acquireJob('tiny', 100, limits)).toEqual({ acquired: true })
    await quota.releaseJob('big')
    expect(await quota.acquireJob('small', 200, limits)).toEqual({ acquired: true })
  })
})
