import { describe, expect, it } from 'vitest'
import { alphaBar, alphaSigma, timestepPairs } from '../../../gpu-service/src/sampler/schedule.ts'

const schedule = { cosineOffset: 0.008, alphaBarMin: 1e-5 }

// Computed independently with Python's math module:
// f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
// alpha_bar = min(1, max(1e-5, f(t) / f(0))); alpha = sqrt(alpha_bar); sigma = sqrt(1 - alpha_bar)
const reference: [t: number, alphaBar: number, alpha: number, sigma: number][] = [
  [0, 1, 1, 0],
  [0.02, 0.9982524864661346, 0.9991258611737235, 0.0418032718081417],
  [0.1, 0.972092737113969, 0.9859476340627675, 0.1670546703508494],
  [0.25, 0.8470121613269047, 0.9203326362391506, 0.39113659848331156],
  [0.5, 0.49384359044063775, 0.7027400589411691, 0.7114467018402448],
  [0.75, 0.1442721023857358, 0.3798316763853902, 0.9250556186599075],
  [0.9, 0.024091724140085854, 0.15521508992390481, 0.9878806992040658],
  [0.99, 0.00024285722793500594, 0.015583877179155575, 0.9998785640126829],
  // Clamped to alphaBarMin near t = 1.
  [0.999, 1e-5, 0.0031622776601683794, 0.9999949999875],
  [1, 1e-5, 0.0031622776601683794, 0.9999949999875],
]

describe('cosine schedule', () => {
  it.each(reference)('at t = %f matches the reference table', (t, bar, alpha, sigma) => {
    expect(alphaBar(t, schedule)).toBeCloseTo(bar, 14)
    const values = alphaSigma(t, schedule)
    expect(values.alpha).toBeCloseTo(alpha, 14)
    expect(values.sigma).toBeCloseTo(sigma, 14)
  })

  it('is exactly 1 at t = 0, so the last step lands on clean data', () => {
    expect(alphaBar(0, schedule)).toBe(1)
  })
})

describe('timestepPairs', () => {
  it('walks t_i = 1 - i / N down to exactly 0', () => {
    expect(timestepPairs(4)).toEqual([
      { t: 1, tNext: 0.75 },
      { t: 0.75, tNext: 0.5 },
      { t: 0.5, tNext: 0.25 },
      { t: 0.25, tNext: 0 },
    ])
  })

  it('ends on tNext === 0 for awkward step counts', () => {
    for (const steps of [1, 3, 7, 50, 999]) {
      const pairs = timestepPairs(steps)
      expect(pairs).toHaveLength(steps)
      expect(pairs.at(-1)?.tNext).toBe(0)
      expect(pairs[0]?.t).toBe(1)
    }
  })

  it('rejects a step count that is not a positive integer', () => {
    expect(() => timestepPairs(0)).toThrow(
      new RangeError('steps must be a positive integer, got 0'),
    )
  })
})
