import { describe, expect, it } from 'vitest'
import { ReplayCache } from '../../../gpu-service/src/http/middleware/replay-cache.ts'

const T = 1_800_000_000 // seconds
const ms = (seconds: number) => seconds * 1000

describe('ReplayCache', () => {
  it('accepts a signature once, then reports it replayed', () => {
    const cache = new ReplayCache(10)
    expect(cache.check('v1=aa', T, ms(T))).toBe('fresh')
    expect(cache.check('v1=aa', T, ms(T + 1))).toBe('replayed')
    expect(cache.check('v1=bb', T, ms(T + 1))).toBe('fresh')
    expect(cache.size).toBe(2)
  })

  it('remembers a signature until its timestamp is 300 s behind the clock, whichever side it was on', () => {
    const cache = new ReplayCache(10)
    cache.check('v1=past', T - 290, ms(T))
    cache.check('v1=future', T + 290, ms(T))
    expect(cache.check('v1=past', T - 290, ms(T + 10))).toBe('replayed')
    expect(cache.check('v1=future', T + 290, ms(T + 580))).toBe('replayed')
    // By T + 11, "past" (T - 290 + 300 = T + 10) has gone; "future" stays until T + 590.
    cache.check('v1=other', T, ms(T + 11))
    expect(cache.size).toBe(2)
    cache.check('v1=later', T + 300, ms(T + 591))
    expect(cache.size).toBe(1)
  })

  it('says it is full instead of forgetting a live signature, and has room again once one expires', () => {
    const cache = new ReplayCache(2)
    expect(cache.check('v1=a', T - 100, ms(T))).toBe('fresh')
    expect(cache.check('v1=b', T, ms(T))).toBe('fresh')
    expect(cache.check('v1=c', T, ms(T))).toBe('full')
    expect(cache.check('v1=a', T - 100, ms(T))).toBe('replayed')
    expect(cache.secondsUntilRoom(ms(T))).toBe(200)
    expect(cache.check('v1=c', T + 201, ms(T + 201))).toBe('fresh')
    expect(cache.check('v1=a', T - 100, ms(T + 201))).toBe('full')
  })

  it('refuses a size that is not a positive integer', () => {
    expect(() => new ReplayCache(0)).toThrow(
      new RangeError('maxEntries must be a positive integer, got 0'),
    )
  })
})
