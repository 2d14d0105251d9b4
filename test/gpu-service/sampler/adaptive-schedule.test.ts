import { describe, expect, it } from 'vitest'
import { AdaptiveHeavySchedule } from '../../../gpu-service/src/sampler/adaptive-schedule.ts'

const image = (value: number) => new Float32Array(4).fill(value)

describe('AdaptiveHeavySchedule', () => {
  it('asks for the heavy encoder once the weighted x0 change since the last heavy call reaches the tolerance', () => {
    const schedule = new AdaptiveHeavySchedule(0.25)
    expect(schedule.observe(image(0), 0.5, true)).toBe(false)
    // RMS change 0.2 at weight 0.5: 0.1, then 0.2 more: 0.3 >= 0.25.
    expect(schedule.observe(image(0.2), 0.5, false)).toBe(false)
    expect(schedule.accumulated).toBeCloseTo(0.1, 6)
    expect(schedule.observe(image(0.6), 0.5, false)).toBe(true)
  })

  it('starts the sum again at a heavy step', () => {
    const schedule = new AdaptiveHeavySchedule(0.25)
    schedule.observe(image(0), 1, true)
    schedule.observe(image(0.3), 1, false)
    expect(schedule.observe(image(0.6), 1, true)).toBe(false)
    expect(schedule.accumulated).toBe(0)
    expect(schedule.observe(image(0.7), 1, false)).toBe(false)
  })

  it('never asks while the estimate stands still', () => {
    const schedule = new AdaptiveHeavySchedule(0.01)
    schedule.observe(image(0.5), 1, true)
    for (let step = 0; step < 10; step++) expect(schedule.observe(image(0.5), 1, false)).toBe(false)
  })

  it('refuses a tolerance that is not a positive number', () => {
    expect(() => new AdaptiveHeavySchedule(0)).toThrow(
      'adaptive tolerance must be a positive number, got 0',
    )
    expect(() => new AdaptiveHeavySchedule(Number.NaN)).toThrow('got NaN')
  })
})
