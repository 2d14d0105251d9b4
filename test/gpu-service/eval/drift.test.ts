// The drift measurement with the committed ONNX pair on tiny runs: what it measures on heavy and reused
// steps, and that the trajectories it measures are the sampler's own, pixel for pixel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  compareFeatures,
  type DriftMeasurement,
  type DriftSettings,
  driftRunOptions,
  measureDrift,
  spread,
  tensorValues,
} from '../../../gpu-service/src/eval/drift.ts'
import { loadModelPair, type ModelPair } from '../../../gpu-service/src/onnx/model-pair.ts'
import { sample } from '../../../gpu-service/src/sampler/sample.ts'
import { timestepPairs } from '../../../gpu-service/src/sampler/schedule.ts'

const tiny: DriftSettings = {
  trajectories: 4,
  steps: 6,
  heavyIntervals: [2, 3],
  guidance: 1,
  seed: 3,
}

describe('spread', () => {
  it('gives mean, sample std and linearly interpolated percentiles', () => {
    const { mean, std, p10, p50, p90 } = spread([4, 1, 3, 2])
    expect(mean).toBe(2.5)
    expect(std).toBeCloseTo(Math.sqrt(5 / 3), 12)
    expect([p10, p50, p90].map((p) => Number(p.toFixed(12)))).toEqual([1.3, 2.5, 3.7])
  })

  it('gives std 0 and every percentile equal to the value for one value', () => {
    expect(spread([0.25])).toEqual({ mean: 0.25, std: 0, p10: 0.25, p50: 0.25, p90: 0.25 })
  })
})

describe('compareFeatures', () => {
  it('compares the concatenation of the parts', () => {
    const { cosine, relL2 } = compareFeatures(
      [new Float32Array([1, 0]), new Float32Array([0])],
      [new Float32Array([1, 1]), new Float32Array([0])],
    )
    expect(cosine).toBeCloseTo(Math.SQRT1_2, 12)
    expect(relL2).toBeCloseTo(Math.SQRT1_2, 12)
  })

  it('rejects parts of different lengths', () => {
    expect(() => compareFeatures([new Float32Array(2)], [new Float32Array(3)])).toThrow(
      new RangeError('compared vectors have different lengths'),
    )
  })
})

describe('driftRunOptions', () => {
  it('spreads trajectories evenly over the classes, the first classes taking the remainder', () => {
    const options = driftRunOptions(10, { ...tiny, trajectories: 256 }, 4)
    expect(options.map((o) => [o.classIndex, o.count])).toEqual(
      [26, 26, 26, 26, 26, 26, 25, 25, 25, 25].map((count, classIndex) => [classIndex, count]),
    )
    expect(options.every((o) => 'every' in o.heavySchedule && o.heavySchedule.every === 4)).toBe(
      true,
    )
  })

  it('splits a class into runs of at most 64 images, each with its own seed, the same at every K', () => {
    const options = driftRunOptions(10, { ...tiny, trajectories: 1300 }, 2)
    expect(options.filter((o) => o.classIndex === 9).map((o) => o.count)).toEqual([64, 64, 2])
    expect(new Set(options.map((o) => o.seed)).size).toBe(options.length)
    expect(driftRunOptions(10, { ...tiny, trajectories: 1300 }, 8).map((o) => o.seed)).toEqual(
      options.map((o) => o.seed),
    )
  })
})

describe('measureDrift with the committed ONNX pair', () => {
  let pair: ModelPair
  let unguided: DriftMeasurement[]
  let guided: DriftMeasurement[]
  const guidedSettings: DriftSettings = {
    ...tiny,
    trajectories: 2,
    heavyIntervals: [2],
    guidance: 2,
  }

  beforeAll(async () => {
    // One thread: the measurement batches every class into one call, sample() one class at a time.
    pair = await loadModelPair('gpu-service/models', { device: 'cpu', intraOpThreads: 1 })
    const driftModels = { models: pair.models, featureValues: tensorValues }
    unguided = await measureDrift(driftModels, pair.manifest, tiny)
    guided = await measureDrift(driftModels, pair.manifest, guidedSettings)
  })
  afterAll(async () => {
    await pair.release()
  })

  it('marks heavy steps and counts the steps since the last heavy call', () => {
    const [k2, k3] = unguided.map(({ interval }) => interval)
    expect(k2?.heavyEvery).toBe(2)
    expect(k2?.steps.map((s) => [s.heavy, s.staleness])).toEqual([
      [true, 0],
      [false, 1],
      [true, 0],
      [false, 1],
      [true, 0],
      [false, 1],
    ])
    expect(k3?.steps.map((s) => s.staleness)).toEqual([0, 1, 2, 0, 1, 2])
    expect(k3?.steps.map((s) => s.t)).toEqual(timestepPairs(6).map(({ t }) => t))
  })

  it('finds cosine 1 and relative L2 0 on heavy steps, where the fresh call repeats the heavy one', () => {
    for (const { interval } of [...unguided, ...guided]) {
      for (const step of interval.steps.filter((s) => s.heavy)) {
        expect(step.featureCosine.p10).toBeCloseTo(1, 9)
        expect(step.featureCosine.p90).toBeCloseTo(1, 9)
        expect(step.featureRelL2.p90).toBe(0)
        expect(step.x0RelL2.p90).toBe(0)
        expect(step.x0RelL2Clipped.p90).toBe(0)
      }
    }
  })

  it('finds reused features drifted on the other steps: cosine within [-1, 1) and distances above 0', () => {
    for (const { interval } of [...unguided, ...guided]) {
      const reused = interval.steps.filter((s) => !s.heavy)
      expect(reused.length).toBeGreaterThan(0)
      for (const { featureCosine, featureRelL2, x0RelL2, x0RelL2Clipped } of reused) {
        expect(featureCosine.p10).toBeGreaterThanOrEqual(-1)
        expect(featureCosine.p90).toBeLessThan(1)
        expect(featureRelL2.p10).toBeGreaterThan(0)
        expect(x0RelL2.p10).toBeGreaterThan(0)
        expect(x0RelL2Clipped.p10).toBeGreaterThanOrEqual(0)
      }
      expect(interval.reusedSteps?.featureRelL2.mean).toBeGreaterThan(0)
    }
  })

  it('follows the reused features: the final images are what sample() gives for the same runs', async () => {
    for (const [settings, measurements] of [
      [tiny, unguided],
      [guidedSettings, guided],
    ] as const) {
      for (const { interval, images } of measurements) {
        const options = driftRunOptions(pair.manifest.classes.length, settings, interval.heavyEvery)
        const alone = await Promise.all(options.map((o) => sample(pair.models, pair.manifest, o)))
        const expected = new Float32Array(images.length)
        let filled = 0
        for (const result of alone) {
          expected.set(result.images, filled)
          filled += result.images.length
        }
        expect(filled).toBe(settings.trajectories * 784)
        expect(images).toEqual(expected)
      }
    }
  })
})
