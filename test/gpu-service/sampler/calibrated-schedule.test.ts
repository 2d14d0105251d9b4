import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  placeHeavyCalls,
  scheduleCost,
} from '../../../gpu-service/src/sampler/calibrated-schedule.ts'

/** Every placement of `calls` heavy steps in `steps` that starts at 0. */
function allPlacements(steps: number, calls: number): number[][] {
  const out: number[][] = []
  const walk = (from: number, chosen: number[]) => {
    if (chosen.length === calls) return void out.push(chosen)
    for (let step = from; step < steps; step++) walk(step + 1, [...chosen, step])
  }
  walk(1, [0])
  return out
}

describe('placeHeavyCalls', () => {
  it('runs the heavy encoder on step 0 alone for a budget of one call', () => {
    expect(placeHeavyCalls((_, age) => age, 6, 1)).toEqual([0])
  })

  it('runs it on every step when the budget covers every step', () => {
    expect(placeHeavyCalls((_, age) => age, 5, 5)).toEqual([0, 1, 2, 3, 4])
  })

  it('spends the calls where reuse hurts: late steps ten times dearer get the second call', () => {
    expect(placeHeavyCalls((step, age) => age * (step > 6 ? 10 : 1), 10, 2)).toEqual([0, 7])
  })

  it('spreads the calls evenly when every step costs the same per step of age', () => {
    expect(placeHeavyCalls((_, age) => age, 8, 4)).toEqual([0, 2, 4, 6])
  })

  it('finds a placement no other placement beats (exhaustive check on small runs)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.float({ min: 0, max: 10, noNaN: true }), { minLength: 64, maxLength: 64 }),
        (steps, wanted, table) => {
          const calls = Math.min(wanted, steps)
          const cost = (step: number, age: number) => table[step * 8 + age - 1] as number
          const placed = placeHeavyCalls(cost, steps, calls)
          expect(placed).toHaveLength(calls)
          expect(placed[0]).toBe(0)
          const best = Math.min(
            ...allPlacements(steps, calls).map((p) => scheduleCost(cost, steps, p)),
          )
          expect(scheduleCost(cost, steps, placed)).toBeCloseTo(best, 9)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('keeps calls off the last step when told to, unless the budget is every step', () => {
    const lateHurts = (step: number, age: number) => age * (step === 5 ? 100 : 1)
    expect(placeHeavyCalls(lateHurts, 6, 3)).toContain(5)
    expect(placeHeavyCalls(lateHurts, 6, 3, { lastStep: false })).toEqual([0, 2, 4])
    expect(placeHeavyCalls(lateHurts, 6, 5, { lastStep: false })).toEqual([0, 1, 2, 3, 4])
    expect(placeHeavyCalls(lateHurts, 6, 6, { lastStep: false })).toEqual([0, 1, 2, 3, 4, 5])
  })

  it('finds the best placement off the last step (exhaustive check on small runs)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.integer({ min: 1, max: 7 }),
        fc.array(fc.float({ min: 0, max: 10, noNaN: true }), { minLength: 64, maxLength: 64 }),
        (steps, wanted, table) => {
          const calls = Math.min(wanted, steps - 1)
          const cost = (step: number, age: number) => table[step * 8 + age - 1] as number
          const placed = placeHeavyCalls(cost, steps, calls, { lastStep: false })
          expect(placed).toHaveLength(calls)
          expect(placed).not.toContain(steps - 1)
          const best = Math.min(
            ...allPlacements(steps, calls)
              .filter((p) => !p.includes(steps - 1))
              .map((p) => scheduleCost(cost, steps, p)),
          )
          expect(scheduleCost(cost, steps, placed)).toBeCloseTo(best, 9)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('refuses a budget outside 1..steps and a negative cost, naming the value', () => {
    expect(() => placeHeavyCalls((_, age) => age, 4, 0)).toThrow(
      'calls must be an integer from 1 to 4, got 0',
    )
    expect(() => placeHeavyCalls((_, age) => age, 4, 5)).toThrow('got 5')
    expect(() => placeHeavyCalls(() => -1, 4, 2)).toThrow('must be finite and >= 0, got -1')
  })
})

describe('scheduleCost', () => {
  it('sums the cost of every light step that reuses features', () => {
    expect(scheduleCost((_, age) => age, 4, [0, 2])).toBe(2)
    expect(scheduleCost((_, age) => age, 4, [0])).toBe(1 + 2 + 3)
  })

  it('refuses a placement without step 0', () => {
    expect(() => scheduleCost((_, age) => age, 4, [1])).toThrow('must include step 0')
  })
})
