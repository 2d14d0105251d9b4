import { describe, expect, it } from 'vitest'
import {
  cheapestWithin,
  compareBudgets,
  type FrontierPoint,
  frontierPoint,
  frontierSettings,
  keptScores,
  lastStepChecks,
  reusableScores,
  uniformTwins,
} from '../../../gpu-service/src/eval/frontier.ts'
import {
  type FrontierReport,
  renderFrontierReport,
} from '../../../gpu-service/src/eval/frontier-report.ts'
import type { SeedScore } from '../../../gpu-service/src/eval/measure-claim.ts'

const seed = (fd: number, heavyCalls: number, gmacs: number): SeedScore => ({
  seed: 0,
  classAccuracy: 0.9,
  fd,
  macsPerImage: gmacs * 1e9,
  wallMsPerImage: 1,
  totalWallMsPerImage: 1,
  heavyCallsPerImage: heavyCalls,
})

/** The results page of a one-seed frontier of `points`, with what `sources` says was reused or kept. */
const frontierPage = (
  points: FrontierPoint[],
  cheapest: string,
  sources: Pick<FrontierReport, 'reused' | 'kept'> = { reused: null, kept: null },
) =>
  renderFrontierReport({
    modelId: 'dualrate-000000000000',
    date: '2026-12-01T00:00:00Z',
    machine: 'test',
    seconds: 60,
    command: 'npm run frontier',
    ...sources,
    settings: { seeds: [0], samplesPerClass: 100, steps: 50, guidance: 1 },
    recommended: { steps: 50, heavyEvery: 8, guidance: 1 },
    points,
    budgets: compareBudgets(points),
    cheapestWithin5Percent: cheapest,
  })

describe('frontierSettings', () => {
  it('pairs each K > 1 with the calibrated placement of as many calls, then the adaptive tolerances and the last-step checks', () => {
    const settings = frontierSettings(50, [1, 8], [0.02])
    expect(settings.map((s) => [s.family, s.name])).toEqual([
      ['uniform', 'every 1'],
      ['uniform', 'every 8'],
      ['calibrated', '7 calibrated'],
      ['adaptive', 'adaptive 0.02'],
      ['last-step check', 'every 1 but the last'],
      ['last-step check', 'every 2 and the last'],
    ])
    expect(settings.slice(0, 4).map((s) => s.heavySchedule)).toEqual([
      { every: 1 },
      { every: 8 },
      { calls: 7 },
      { adaptive: { tolerance: 0.02 } },
    ])
  })

  it('checks the last step both ways: every step but the last, and every second step plus the last', () => {
    expect(lastStepChecks(6).map((s) => [s.heavySchedule, s.plannedCalls])).toEqual([
      [{ steps: [0, 1, 2, 3, 4] }, 5],
      [{ steps: [0, 2, 4, 5] }, 4],
    ])
    expect(lastStepChecks(5).map((s) => s.heavySchedule)).toEqual([
      { steps: [0, 1, 2, 3] },
      { steps: [0, 2, 4] },
    ])
    expect(lastStepChecks(2)).toEqual([])
  })
})

describe('compareBudgets and cheapestWithin', () => {
  const settings = frontierSettings(50, [1, 8, 16], [])
  const [k1, k8, k16, c7, c4] = settings
  const points = [
    frontierPoint(k1 as never, [seed(4.0, 50, 16.9)]),
    frontierPoint(k8 as never, [seed(4.3, 7, 3.1)]),
    frontierPoint(k16 as never, [seed(5.0, 4, 2.1)]),
    frontierPoint(c7 as never, [seed(4.1, 7, 3.1)]),
    frontierPoint(c4 as never, [seed(5.2, 4, 2.1)]),
  ]

  it('compares calibrated with uniform at each number of heavy calls, fewest first', () => {
    expect(
      compareBudgets(points).map((row) => [row.heavyCalls, row.calibratedAtLeastAsGood]),
    ).toEqual([
      [4, false],
      [7, true],
    ])
  })

  it('finds the cheapest setting with FD within the margin of heavy-every-step', () => {
    expect(cheapestWithin(points, 0.05)?.name).toBe('7 calibrated')
    expect(cheapestWithin(points, 0.1)?.name).toBe('7 calibrated')
    expect(cheapestWithin(points, 0.3)?.name).toBe('every 16')
  })

  it('says on the results page when calibrated loses a budget', () => {
    const page = frontierPage(points, '7 calibrated', {
      reused: { from: 'docs/eval/results.json', points: ['every 1'] },
      kept: {
        from: 'docs/eval/frontier.json',
        date: '2026-11-30T00:00:00Z',
        command: 'npm run frontier -- --reuse docs/eval/results.json',
        points: ['every 16'],
      },
    })
    expect(page).toContain('At least as good at every budget: **no**')
    expect(page).toContain('| 4 | every 16 | 5.00 | 5.20 | +0.20 | no |')
    expect(page).toContain('The points every 1 are the scores `npm run eval` recorded')
    expect(page).toContain('The points every 16 were measured on 2026-11-30 by')
  })

  it('reuses the uniform points an eval report scored under the same conditions, and no others', () => {
    const results = {
      modelId: 'dualrate-000000000000',
      settings: { seeds: [0, 1], samplesPerClass: 100, steps: 50, guidance: 1 },
      intervals: [{ heavyEvery: 8, seeds: [seed(4.3, 7, 3.1)] }],
    }
    const measure = { seeds: [0, 1], samplesPerClass: 100, steps: 50, guidance: 1 }
    const reused = reusableScores(results, settings, measure, 'dualrate-000000000000')
    expect([...reused.keys()]).toEqual(['every 8'])
    expect(
      reusableScores(results, settings, { ...measure, seeds: [0] }, 'dualrate-000000000000').size,
    ).toBe(0)
    expect(reusableScores(results, settings, measure, 'dualrate-111111111111').size).toBe(0)
  })

  it("keeps an earlier frontier's uniform points, a calibrated one only while its placement is unchanged, never an adaptive one", () => {
    const placements = Array.from({ length: 50 }, (_, i) =>
      Array.from({ length: i + 1 }, (_, j) => j),
    )
    const [adaptive] = frontierSettings(50, [], [0.05])
    const earlier = {
      modelId: 'dualrate-000000000000',
      date: '2026-11-30T00:00:00Z',
      command: 'npm run frontier',
      settings: { seeds: [0], samplesPerClass: 100, steps: 50, guidance: 1 },
      points: [
        frontierPoint(k16 as never, [seed(5.0, 4, 2.1)]),
        frontierPoint(c7 as never, [seed(4.1, 7, 3.1)], placements[6]),
        frontierPoint(c4 as never, [seed(5.2, 4, 2.1)], [0, 15, 32, 44]),
        frontierPoint(adaptive as never, [seed(4.9, 5, 2.5)]),
      ],
    }
    const measure = { seeds: [0], samplesPerClass: 100, steps: 50, guidance: 1 }
    const withAdaptive = [...settings, adaptive as never]
    const kept = keptScores(earlier, withAdaptive, measure, 'dualrate-000000000000', placements)
    expect([...kept.keys()]).toEqual(['every 16', '7 calibrated'])
    expect(
      keptScores(
        earlier,
        settings,
        { ...measure, guidance: 2 },
        'dualrate-000000000000',
        placements,
      ).size,
    ).toBe(0)
  })
})

describe('uniformTwins', () => {
  // 50 steps; 13 calls kept uniform every 4's steps on validation, 4 and 7 calls kept their own.
  const placements = Array.from({ length: 50 }, (_, i) =>
    Array.from({ length: i + 1 }, (_, j) => j),
  )
  placements[12] = Array.from({ length: 13 }, (_, i) => 4 * i)
  placements[3] = [0, 11, 28, 43]
  const settings = frontierSettings(50, [1, 4, 8, 16], [0.02])

  it('pairs a calibrated setting with the uniform setting whose steps its placement is, and no other', () => {
    expect([...uniformTwins(settings, 50, placements)]).toEqual([['13 calibrated', 'every 4']])
  })

  it('gives a twin the uniform scores, equal at its budget, and says why on the results page', () => {
    const [k1, k4, , , c13] = settings
    const every4 = [seed(4.17, 13, 5.05)]
    const points = [
      frontierPoint(k1 as never, [seed(4.65, 50, 16.9)]),
      frontierPoint(k4 as never, every4),
      frontierPoint(c13 as never, every4, placements[12], 'every 4'),
    ]
    const [row] = compareBudgets(points)
    expect(row).toMatchObject({ heavyCalls: 13, sameSteps: true, calibratedAtLeastAsGood: true })
    expect(row?.perSeedDifference).toEqual([0])
    const page = frontierPage(points, 'every 4')
    expect(page).toContain(
      '| 13 | every 4 | 4.17 | 4.17 | 0.00 | yes: uniform placement kept by validation |',
    )
    expect(page).toContain(
      '13 calibrated runs the steps of every 4: `npm run calibrate` kept the\nuniform placement',
    )
  })
})
