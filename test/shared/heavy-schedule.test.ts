import { describe, expect, it } from 'vitest'
import { heavyStepMask, heavySteps } from '../../shared/heavy-schedule.ts'

describe('heavySteps', () => {
  it('runs every K-th step from step 0', () => {
    expect(heavySteps({ every: 4 }, 10)).toEqual([0, 4, 8])
    expect(heavySteps({ every: 4 }, 8)).toEqual([0, 4])
    expect(heavySteps({ every: 1 }, 3)).toEqual([0, 1, 2])
  })

  it('runs only step 0 when K is at least the step count', () => {
    expect(heavySteps({ every: 50 }, 50)).toEqual([0])
    expect(heavySteps({ every: 99 }, 50)).toEqual([0])
  })

  it('sorts and deduplicates an explicit list and always includes step 0', () => {
    expect(heavySteps({ steps: [20, 10, 10] }, 50)).toEqual([0, 10, 20])
    expect(heavySteps({ steps: [] }, 50)).toEqual([0])
  })

  it('rejects explicit steps out of range, naming the step', () => {
    expect(() => heavySteps({ steps: [0, 50] }, 50)).toThrow(
      new RangeError('heavy step 50 is out of range for 50 steps (0..49)'),
    )
    expect(() => heavySteps({ steps: [-1] }, 50)).toThrow(/heavy step -1 is out of range/)
  })

  it('rejects K below 1', () => {
    expect(() => heavySteps({ every: 0 }, 50)).toThrow(
      new RangeError('heavy schedule "every" must be a positive integer, got 0'),
    )
  })
})

describe('heavyStepMask', () => {
  it('flags the heavy steps', () => {
    expect(heavyStepMask({ every: 3 }, 7)).toEqual([true, false, false, true, false, false, true])
    expect(heavyStepMask({ steps: [2] }, 4)).toEqual([true, false, true, false])
  })
})
