// Calibration ships a placement only where it beats uniform on validation seeds; elsewhere uniform's steps.
import { describe, expect, it } from 'vitest'
import type { SeedScore } from '../../../gpu-service/src/eval/measure-claim.ts'
import {
  earlierValidation,
  keptPlacement,
  shippedPlacements,
  validatePlacements,
  validationTable,
} from '../../../gpu-service/src/eval/placement-validation.ts'
import type { HeavySchedule } from '../../../shared/sampling-options.ts'

const score = (seed: number, fd: number): SeedScore => ({
  seed,
  classAccuracy: 0.9,
  fd,
  macsPerImage: 1e9,
  wallMsPerImage: 1,
  totalWallMsPerImage: 1,
  heavyCallsPerImage: 4,
})

describe('keptPlacement', () => {
  it('keeps the calibrated placement when its validation FD is lower than uniform by more than the margin', () => {
    expect(keptPlacement({ uniform: 5.0, calibrated: 4.6 }, 0.01)).toBe('calibrated')
  })

  it('keeps uniform when the calibrated placement wins by the margin or less', () => {
    expect(keptPlacement({ uniform: 4.17, calibrated: 4.165 }, 0.01)).toBe('uniform')
    // A win of exactly the margin (values exact in binary) is not more than it.
    expect(keptPlacement({ uniform: 4.25, calibrated: 4.125 }, 0.125)).toBe('uniform')
  })

  it('keeps uniform when the calibrated placement is worse', () => {
    expect(keptPlacement({ uniform: 4.17, calibrated: 4.2 }, 0)).toBe('uniform')
  })

  it('with margin 0, keeps calibrated only when strictly lower: a tie keeps uniform', () => {
    expect(keptPlacement({ uniform: 4.17, calibrated: 4.169 }, 0)).toBe('calibrated')
    expect(keptPlacement({ uniform: 4.17, calibrated: 4.17 }, 0)).toBe('uniform')
  })

  it('keeps uniform when an FD is not a number', () => {
    expect(keptPlacement({ uniform: 4.17, calibrated: Number.NaN }, 0)).toBe('uniform')
    expect(keptPlacement({ uniform: Number.NaN, calibrated: 4.17 }, 0)).toBe('uniform')
  })

  it('refuses a negative margin, naming it', () => {
    expect(() => keptPlacement({ uniform: 5, calibrated: 4 }, -0.1)).toThrow(
      new RangeError('margin must be a finite FD >= 0, got -0.1'),
    )
  })
})

describe('validatePlacements', () => {
  // 8 steps: every 2 is [0, 2, 4, 6], every 4 is [0, 4]; every 1 is all 8 steps.
  const budgets = [
    { every: 1, calls: 8, calibrated: [0, 1, 2, 3, 4, 5, 6, 7] },
    { every: 2, calls: 4, calibrated: [0, 1, 3, 5] },
    { every: 4, calls: 2, calibrated: [0, 3] },
  ]
  // A sampler whose FD per heavy-step list is set by the test, for seeds 100 and 101.
  const fakeMeasure = (fds: Record<string, [number, number]>) => {
    const sampled: string[] = []
    const measure = async (schedule: HeavySchedule) => {
      const key = JSON.stringify(schedule)
      sampled.push(key)
      const [a, b] = fds[key] as [number, number]
      return [score(100, a), score(101, b)]
    }
    return { sampled, measure }
  }

  it('samples uniform every K and the calibrated steps, and keeps whichever wins by the margin', async () => {
    const { sampled, measure } = fakeMeasure({
      '{"every":2}': [4.2, 4.3],
      '{"steps":[0,1,3,5]}': [4.25, 4.3],
      '{"every":4}': [5.0, 5.2],
      '{"steps":[0,3]}': [4.6, 4.8],
    })
    const validated = await validatePlacements(budgets, 8, 0.01, new Map(), measure)
    expect(validated.map((b) => [b.calls, b.kept])).toEqual([
      [8, 'uniform'],
      [4, 'uniform'],
      [2, 'calibrated'],
    ])
    expect(sampled).toEqual([
      '{"every":2}',
      '{"steps":[0,1,3,5]}',
      '{"every":4}',
      '{"steps":[0,3]}',
    ])
    const [, four, two] = validated
    expect(four?.uniform?.heavySteps).toEqual([0, 2, 4, 6])
    expect(four?.fdDifference).toBeCloseTo(0.025, 9)
    expect(two?.calibrated?.fd.mean).toBeCloseTo(4.7, 9)
    expect(two?.calibrated?.seeds.map((s) => s.fd)).toEqual([4.6, 4.8])
    expect(two?.calibrated?.reused).toBe(false)
  })

  it('does not sample a budget whose calibrated placement is the uniform steps', async () => {
    const { sampled, measure } = fakeMeasure({})
    const [every1] = await validatePlacements(budgets.slice(0, 1), 8, 0.01, new Map(), measure)
    expect(sampled).toEqual([])
    expect(every1).toEqual({
      every: 1,
      calls: 8,
      uniform: null,
      calibrated: null,
      fdDifference: null,
      kept: 'uniform',
    })
  })

  it('takes the scores an earlier run validated for the same heavy steps instead of sampling them', async () => {
    const first = await validatePlacements(
      budgets.slice(2),
      8,
      0.01,
      new Map(),
      fakeMeasure({ '{"every":4}': [5.0, 5.2], '{"steps":[0,3]}': [4.6, 4.8] }).measure,
    )
    const earlier = earlierValidation(
      {
        modelId: 'm',
        settings: { steps: 8, guidance: 1 },
        validation: { ...SETTINGS, budgets: first },
      },
      'm',
      { steps: 8, guidance: 1 },
      SETTINGS,
    )
    const unchanged = fakeMeasure({})
    const again = await validatePlacements(budgets.slice(2), 8, 0.5, earlier, unchanged.measure)
    expect(unchanged.sampled).toEqual([])
    expect([again[0]?.uniform?.reused, again[0]?.calibrated?.reused]).toEqual([true, true])
    // A larger margin decides again from the same scores: -0.4 FD is no longer enough.
    expect([first[0]?.kept, again[0]?.kept]).toEqual(['calibrated', 'uniform'])
    // A placement that moved is sampled again, uniform's scores are still taken.
    const moved = fakeMeasure({ '{"steps":[0,2]}': [4.9, 5.0] })
    const [after] = await validatePlacements(
      [{ every: 4, calls: 2, calibrated: [0, 2] }],
      8,
      0.01,
      earlier,
      moved.measure,
    )
    expect(moved.sampled).toEqual(['{"steps":[0,2]}'])
    expect([after?.uniform?.reused, after?.calibrated?.reused]).toEqual([true, false])
  })
})

const SETTINGS = { seeds: [100, 101], samplesPerClass: 100, batch: 32, margin: 0.01 }

describe('earlierValidation', () => {
  // A schedule validated on seeds 100 and 101 in `seconds`.
  const validated = (heavySteps: number[], fds: [number, number], seconds: number) => ({
    heavySteps,
    fd: { mean: (fds[0] + fds[1]) / 2, std: 0.1 },
    classAccuracy: { mean: 0.9, std: 0 },
    seeds: [score(100, fds[0]), score(101, fds[1])],
    seconds,
    reused: false,
  })
  const budgets = [
    {
      every: 4,
      calls: 2,
      uniform: validated([0, 4], [5.0, 5.2], 60),
      calibrated: validated([0, 3], [4.6, 4.8], 61),
      fdDifference: -0.4,
      kept: 'calibrated' as const,
    },
  ]
  const report = {
    modelId: 'dualrate-000000000000',
    settings: { steps: 8, guidance: 1 },
    validation: { ...SETTINGS, budgets },
  }
  const run = { steps: 8, guidance: 1 }

  it('finds the validated schedules by their heavy steps when model, steps, guidance, seeds, samples and batch match', () => {
    const found = earlierValidation(report, 'dualrate-000000000000', run, SETTINGS)
    expect([...found.keys()]).toEqual(['0,4', '0,3'])
    expect(found.get('0,3')?.seconds).toBe(61)
  })

  it('ignores the margin, which decides from the scores without changing them', () => {
    const found = earlierValidation(report, 'dualrate-000000000000', run, {
      ...SETTINGS,
      margin: 1,
    })
    expect(found.size).toBe(2)
  })

  it('finds nothing when any sampling condition differs, or the report has no validation', () => {
    const model = 'dualrate-000000000000'
    expect(earlierValidation(report, 'dualrate-111111111111', run, SETTINGS).size).toBe(0)
    expect(earlierValidation(report, model, { ...run, guidance: 2 }, SETTINGS).size).toBe(0)
    expect(earlierValidation(report, model, { ...run, steps: 10 }, SETTINGS).size).toBe(0)
    expect(earlierValidation(report, model, run, { ...SETTINGS, seeds: [100] }).size).toBe(0)
    expect(earlierValidation(report, model, run, { ...SETTINGS, samplesPerClass: 50 }).size).toBe(0)
    expect(earlierValidation(report, model, run, { ...SETTINGS, batch: 50 }).size).toBe(0)
    expect(earlierValidation({ ...report, validation: null }, model, run, SETTINGS).size).toBe(0)
  })
})

describe('shippedPlacements', () => {
  it("replaces each budget that kept uniform with uniform's steps, and leaves every other placement", () => {
    const placements = [[0], [0, 3], [0, 2, 5], [0, 1, 3, 5]]
    const decided = [
      {
        every: 4,
        calls: 2,
        uniform: null,
        calibrated: null,
        fdDifference: -0.4,
        kept: 'calibrated' as const,
      },
      {
        every: 2,
        calls: 4,
        uniform: null,
        calibrated: null,
        fdDifference: 0.02,
        kept: 'uniform' as const,
      },
    ]
    expect(shippedPlacements(placements, decided, 8)).toEqual([
      [0],
      [0, 3],
      [0, 2, 5],
      [0, 2, 4, 6],
    ])
    expect(placements[3]).toEqual([0, 1, 3, 5])
  })
})

describe('validationTable', () => {
  it('prints both FDs, the per-seed differences, accuracy and the placement kept', async () => {
    const validated = await validatePlacements(
      [
        { every: 4, calls: 2, calibrated: [0, 3] },
        { every: 1, calls: 8, calibrated: [0, 1, 2, 3, 4, 5, 6, 7] },
      ],
      8,
      0.01,
      new Map(),
      async (schedule) =>
        'every' in schedule
          ? [score(100, 5.0), score(101, 5.2)]
          : [score(100, 4.6), score(101, 4.9)],
    )
    const [header, budget, same] = validationTable(validated)
    expect(header).toMatch(/^K {3}calls {2}uniform FD {2}calibrated FD {2}difference/)
    expect(budget).toBe(
      `4   2      5.100       4.750          -0.350      -0.400, -0.300         90.0 % / 90.0 %  calibrated`,
    )
    expect(same).toBe("1   8      the calibrated placement is uniform's steps: not sampled")
  })
})
