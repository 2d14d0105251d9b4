import { describe, expect, it } from 'vitest'
import {
  compareWithHeavyEveryStep,
  formatDuration,
  formatMacs,
  meanHeavyStepMs,
  modelRows,
} from '../../client/run-cost.ts'

// The committed model's per-row costs (gpu-service/models/manifest.json).
const cost = { heavyMacsPerRow: 320_578_880, lightMacsPerRow: 17_654_528 }

describe('modelRows', () => {
  it('counts a conditional and an unconditional row per image under guidance, one when it is 1', () => {
    expect(modelRows({ count: 3, guidance: 2 })).toBe(6)
    expect(modelRows({ count: 3, guidance: 0 })).toBe(6)
    expect(modelRows({ count: 3, guidance: 1 })).toBe(3)
  })
})

describe('compareWithHeavyEveryStep', () => {
  const request = { count: 1, guidance: 2, steps: 50 }
  // What the gpu-service reported for a 50-step K=4 guided run: 2 rows x (13 heavy + 50 light).
  const timings = { heavyCalls: 13, lightCalls: 50, macs: 10_100_503_680, queueMs: 0, wallMs: 531 }

  it('gives the baseline exact MACs: rows x steps x (heavy + light)', () => {
    const { run, heavyEveryStep } = compareWithHeavyEveryStep(cost, request, timings)
    expect(run).toEqual({ heavyCalls: 13, lightCalls: 50, macs: 10_100_503_680, ms: 531 })
    expect(heavyEveryStep.macs).toBe(2 * 50 * (320_578_880 + 17_654_528))
    expect(heavyEveryStep).toMatchObject({ heavyCalls: 50, lightCalls: 50 })
  })

  it("times the baseline like this run's heavy steps when step timings are known", () => {
    const steps = [
      { heavy: true, elapsedMs: 30 },
      { heavy: false, elapsedMs: 40 },
      { heavy: false, elapsedMs: 50 },
      { heavy: false, elapsedMs: 60 },
      { heavy: true, elapsedMs: 100 },
    ]
    const comparison = compareWithHeavyEveryStep(cost, { ...request, steps: 5 }, timings, steps)
    // Heavy steps took 30 and 40 ms: 35 ms a step, 5 steps.
    expect(comparison.heavyEveryStep.ms).toBe(175)
    expect(comparison.timeBasis).toBe('heavy-steps')
  })

  it('scales the time by MACs when no step was timed (a cached result)', () => {
    const comparison = compareWithHeavyEveryStep(cost, request, timings)
    expect(comparison.timeBasis).toBe('macs')
    expect(comparison.heavyEveryStep.ms).toBeCloseTo((531 * 33_823_340_800) / 10_100_503_680, 6)
  })
})

describe('meanHeavyStepMs', () => {
  it('is null without a heavy step', () => {
    expect(meanHeavyStepMs([{ heavy: false, elapsedMs: 10 }])).toBeNull()
  })
})

describe('formatting', () => {
  it('writes MACs with three significant digits and a unit', () => {
    expect(formatMacs(17_654_528)).toBe('17.7 MMAC')
    expect(formatMacs(33_823_340_800)).toBe('33.8 GMAC')
    expect(formatMacs(512)).toBe('512 MAC')
  })

  it('writes durations in ms, s or min', () => {
    expect(formatDuration(840.4)).toBe('840 ms')
    expect(formatDuration(12_345)).toBe('12.3 s')
    expect(formatDuration(125_000)).toBe('2 min 5 s')
  })
})
