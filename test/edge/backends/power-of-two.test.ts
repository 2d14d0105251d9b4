// The power of two choices, with a seeded coin so that shares can be counted.
import { describe, expect, it } from 'vitest'
import { type Candidate, powerOfTwoChoices } from '../../../edge/src/backends/power-of-two.ts'

/** mulberry32: a small seeded generator of numbers in [0, 1). */
function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** How often each URL wins over `picks` choices. */
function shares(candidates: Candidate[], picks: number, seed = 7): Record<string, number> {
  const random = seeded(seed)
  const wins: Record<string, number> = Object.fromEntries(candidates.map(({ url }) => [url, 0]))
  for (let pick = 0; pick < picks; pick++) {
    const chosen = powerOfTwoChoices(candidates, random)
    if (chosen) wins[chosen.url] = (wins[chosen.url] ?? 0) + 1
  }
  return Object.fromEntries(Object.entries(wins).map(([url, count]) => [url, count / picks]))
}

const backend = (url: string, load: number, weight = 1): Candidate => ({ url, load, weight })

describe('powerOfTwoChoices', () => {
  it('picks nothing from none and the only one from one', () => {
    expect(powerOfTwoChoices([])).toBeUndefined()
    expect(powerOfTwoChoices([backend('a', 99)])?.url).toBe('a')
  })

  it('picks the less loaded of the two it draws', () => {
    // 0.1 draws a (of a, b, c); 0.9 draws c (of b, c): a with 4 rows beats c with 9.
    const coins = [0.1, 0.9]
    const random = () => coins.shift() ?? 0
    const chosen = powerOfTwoChoices([backend('a', 4), backend('b', 0), backend('c', 9)], random)
    expect(chosen?.url).toBe('a')
  })

  it('prefers a backend where the work starts at once to a less loaded one where it would queue', () => {
    const full = { ...backend('slots-full', 1), queues: true }
    const free = backend('slot-free', 40)
    expect(shares([full, free], 1_000)).toEqual({ 'slots-full': 0, 'slot-free': 1 })
    // Both would queue: the load decides again.
    const both = [full, { ...free, queues: true }]
    expect(shares(both, 1_000)).toEqual({ 'slots-full': 1, 'slot-free': 0 })
  })

  it('never picks the most loaded of three, and the least loaded whenever it is drawn (2 in 3)', () => {
    const won = shares([backend('a', 0), backend('b', 5), backend('c', 10)], 6_000)
    expect(won.c).toBe(0)
    expect(won.a).toBeCloseTo(2 / 3, 1)
    expect(won.b).toBeCloseTo(1 / 3, 1)
  })

  it('gives equally loaded backends shares in proportion to their weights', () => {
    const won = shares([backend('a', 0, 3), backend('b', 0, 1)], 8_000)
    expect(won.a).toBeGreaterThan(0.73)
    expect(won.a).toBeLessThan(0.77)
  })

  it('judges load per unit of weight: twice the weight carries twice the rows for the same score', () => {
    expect(powerOfTwoChoices([backend('a', 4, 2), backend('b', 3, 1)])?.url).toBe('a')
    expect(powerOfTwoChoices([backend('a', 8, 2), backend('b', 3, 1)])?.url).toBe('b')
  })
})
