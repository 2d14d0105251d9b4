import { describe, expect, it } from 'vitest'
import { describeHeavySchedule, heavyStepMask, heavySteps } from '../../shared/heavy-schedule.ts'
import {
  calibratedStepCounts,
  defaultHeavySchedule,
  macsPerImage,
  unsupportedOptions,
} from '../../shared/model-support.ts'

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

describe('heavySteps with calibrated placements', () => {
  const placements = { 4: [[0], [0, 3], [0, 2, 3], [0, 1, 2, 3]] }

  it("resolves {calls: N} to the model's placement of N calls", () => {
    expect(heavySteps({ calls: 2 }, 4, placements)).toEqual([0, 3])
    expect(heavyStepMask({ calls: 3 }, 4, placements)).toEqual([true, false, true, true])
  })

  it('refuses {calls: N} where the model has no placement, and an adaptive schedule', () => {
    expect(() => heavySteps({ calls: 2 }, 5, placements)).toThrow(
      'no calibrated placement of 2 heavy calls in 5 steps',
    )
    expect(() => heavySteps({ adaptive: { tolerance: 0.1 } }, 5)).toThrow('decided during sampling')
  })

  it('describes each kind of schedule in a few words', () => {
    expect(describeHeavySchedule({ every: 4 })).toBe('every 4')
    expect(describeHeavySchedule({ steps: [0, 3] })).toBe('at [0,3]')
    expect(describeHeavySchedule({ calls: 1 })).toBe('1 calibrated call')
    expect(describeHeavySchedule({ adaptive: { tolerance: 0.02 } })).toBe(
      'adaptive, tolerance 0.02',
    )
  })
})

describe('unsupportedOptions and macsPerImage for the new schedules', () => {
  const options = { steps: 4, guidance: 1 }

  it('takes {calls: N} only at a calibrated step count', () => {
    expect(unsupportedOptions(undefined, { ...options, heavySchedule: { calls: 2 } }, [4])).toEqual(
      [],
    )
    expect(unsupportedOptions(undefined, { ...options, heavySchedule: { calls: 2 } }, [])).toEqual([
      {
        path: ['heavySchedule'],
        message: '{"calls": N} needs a calibrated placement; this model has none',
      },
    ])
  })

  it('defaults to calibrated calls only at a calibrated step count, elsewhere to as many per step, uniform', () => {
    const defaults = { steps: 50, heavySchedule: { calls: 5 } }
    expect(defaultHeavySchedule(defaults, [50], 50)).toEqual({ calls: 5 })
    expect(defaultHeavySchedule(defaults, [50], 20)).toEqual({ every: 10 })
    expect(defaultHeavySchedule({ steps: 50, heavySchedule: { calls: 7 } }, [50], 100)).toEqual({
      every: 8,
    })
    expect(defaultHeavySchedule({ steps: 50, heavySchedule: { every: 8 } }, [50], 20)).toEqual({
      every: 8,
    })
  })

  it('lists the calibrated step counts in order', () => {
    expect(calibratedStepCounts({ 50: [], 8: [] })).toEqual([8, 50])
    expect(calibratedStepCounts(undefined)).toEqual([])
  })

  it('prices an adaptive schedule at its most, a heavy call on every step', () => {
    const cost = { heavyMacsPerRow: 10, lightMacsPerRow: 1 }
    expect(
      macsPerImage(cost, { ...options, heavySchedule: { adaptive: { tolerance: 0.1 } } }),
    ).toBe(44)
    expect(
      macsPerImage(cost, { ...options, heavySchedule: { calls: 2 } }, { 4: [[0], [0, 3]] }),
    ).toBe(24)
  })
})
