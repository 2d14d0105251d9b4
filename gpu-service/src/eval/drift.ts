// Feature drift (issue 8): how far the heavy features that the light denoiser reuses between heavy calls
// are from the features the heavy encoder would give on that step, and how much that moves the light
// net's x0. Trajectories run through the sampler's own SamplerRun and StepBatch with heavy every K, so
// they follow the reused features exactly as a served run does; on every step a probe around the models
// also runs the heavy encoder on the current x_t and the light denoiser with those fresh features. The
// fresh calls are side measurements: nothing they return reaches the trajectory.
import type { Tensor } from 'onnxruntime-node'
import type { Manifest } from '../../../shared/model-manifest.ts'
import { MAX_COUNT, modelRows, type SamplingOptions } from '../../../shared/sampling-options.ts'
import { ancestralStep, type PosteriorCoefficients } from '../sampler/ancestral-step.ts'
import type { DualRateModels, FeatureRows, HeavyFeeds, LightFeeds } from '../sampler/sample.ts'
import { SamplerRun } from '../sampler/sampler-run.ts'
import { StepBatch } from '../sampler/step-batch.ts'

/** The model pair and a way to read a heavy output's values (row-major, rows x feature values). */
export interface DriftModels<Features> {
  models: DualRateModels<Features>
  featureValues(features: Features): Float32Array
}

export interface DriftSettings {
  /** Images followed per K; trajectory i draws class i mod classes, so the classes are spread evenly. */
  trajectories: number
  steps: number
  heavyIntervals: number[]
  guidance: number
  seed: number
}

/** Mean, sample standard deviation and percentiles (linear interpolation) over trajectories. */
export interface Spread {
  mean: number
  std: number
  p10: number
  p50: number
  p90: number
}

/** The four per-image measures, each over trajectories (or over trajectories and steps, for a total). */
export interface DriftMeasures {
  /** cos(f_reused, f_fresh) over each image's flattened feature rows. */
  featureCosine: Spread
  /** ||f_reused - f_fresh|| / ||f_fresh||. */
  featureRelL2: Spread
  /** ||x0_reused - x0_fresh|| / ||x0_fresh|| of the guided x0 before the clip. */
  x0RelL2: Spread
  /** The same after the clip to manifest.schedule.clipX0: the x0 the posterior mean uses. */
  x0RelL2Clipped: Spread
}

export interface DriftStep extends DriftMeasures {
  /** 0-based step index. */
  step: number
  /** Time at the start of the step. */
  t: number
  /** Whether the heavy encoder ran on this step: the reused features are the fresh ones (1 and 0). */
  heavy: boolean
  /** Steps since the heavy call whose features this step uses; 0 on heavy steps. */
  staleness: number
}

export interface DriftInterval {
  heavyEvery: number
  steps: DriftStep[]
  /** Every (trajectory, non-heavy step) pooled; null when every step is heavy (K = 1). */
  reusedSteps: DriftMeasures | null
}

export interface DriftMeasurement {
  interval: DriftInterval
  /** The trajectories' final images, `trajectories * pixels`, trajectory i at i * pixels. */
  images: Float32Array
}

/** Progress of a measurement: the step of the interval just finished. */
export interface DriftProgress {
  heavyEvery: number
  step: number
  totalSteps: number
}

/**
 * The feature values of an ONNX heavy output, for `DriftModels.featureValues`.
 *
 * @example
 * const driftModels = { models: pair.models, featureValues: tensorValues }
 */
export function tensorValues(tensor: Tensor): Float32Array {
  return tensor.data as Float32Array
}

/** Distinct uint32 seed per (measurement seed, class, chunk of at most MAX_COUNT trajectories). */
function runSeed(seed: number, classIndex: number, chunk: number): number {
  return (
    (Math.imul(seed + 1, 0x2545f491) ^
      Math.imul(classIndex + 1, 0x9e3779b1) ^
      Math.imul(chunk + 1, 0x85ebca6b)) >>>
    0
  )
}

/**
 * The sampler runs that hold the trajectories at one K: per class in class order, at most MAX_COUNT
 * images a run. The same seeds at every K, so every K starts from the same x_T and draws the same noise.
 * Trajectory i of the measurement is image i of these runs taken in order.
 *
 * @example
 * const options = driftRunOptions(10, { trajectories: 256, steps: 50, heavyIntervals: [4], guidance: 1, seed: 0 }, 4)
 * options.map((o) => o.count) // [26, 26, 26, 26, 26, 26, 25, 25, 25, 25]
 */
export function driftRunOptions(
  classes: number,
  settings: DriftSettings,
  heavyEvery: number,
): SamplingOptions[] {
  const { trajectories, steps, guidance, seed } = settings
  const options: SamplingOptions[] = []
  for (let classIndex = 0; classIndex < classes; classIndex++) {
    const ofClass =
      Math.floor(trajectories / classes) + (classIndex < trajectories % classes ? 1 : 0)
    for (let chunk = 0; chunk * MAX_COUNT < ofClass; chunk++) {
      options.push({
        classIndex,
        count: Math.min(MAX_COUNT, ofClass - chunk * MAX_COUNT),
        steps,
        heavySchedule: { every: heavyEvery },
        guidance,
        seed: runSeed(seed, classIndex, chunk),
      })
    }
  }
  return options
}

/**
 * Runs every K of `settings` and measures the drift on every step.
 *
 * @example
 * const pair = await loadModelPair('gpu-service/models')
 * const results = await measureDrift({ models: pair.models, featureValues: tensorValues }, pair.manifest, {
 *   trajectories: 256, steps: 50, heavyIntervals: [2, 4, 8], guidance: 1, seed: 0,
 * })
 */
export async function measureDrift<Features>(
  driftModels: DriftModels<Features>,
  manifest: Manifest,
  settings: DriftSettings,
  onProgress?: (progress: DriftProgress) => void,
): Promise<DriftMeasurement[]> {
  const measurements: DriftMeasurement[] = []
  for (const heavyEvery of settings.heavyIntervals) {
    measurements.push(
      await measureInterval(driftModels, manifest, settings, heavyEvery, onProgress),
    )
  }
  return measurements
}

async function measureInterval<Features>(
  driftModels: DriftModels<Features>,
  manifest: Manifest,
  settings: DriftSettings,
  heavyEvery: number,
  onProgress?: (progress: DriftProgress) => void,
): Promise<DriftMeasurement> {
  const runs = driftRunOptions(manifest.classes.length, settings, heavyEvery).map(
    (options) => new SamplerRun<Features>(manifest, options),
  )
  const first = runs[0]
  if (!first) throw new RangeError('a drift measurement needs at least one trajectory')
  const rows = runs.reduce((sum, run) => sum + run.rows, 0)
  const probe = new DriftProbe(driftModels, manifest, settings)
  // One batch holds every run: all share the step count and the heavy schedule, so they step together.
  const batch = new StepBatch(probe, manifest, rows)
  const perStep: { event: Omit<DriftStep, keyof DriftMeasures>; values: StepValues }[] = []
  let lastHeavyStep = 0
  while (!first.done) {
    if (first.heavyDue) await batch.heavy(runs)
    const [event] = await batch.light(runs)
    if (!event) throw new Error('the light call returned no step event')
    if (event.heavy) lastHeavyStep = event.step
    perStep.push({
      event: {
        step: event.step,
        t: event.t,
        heavy: event.heavy,
        staleness: event.step - lastHeavyStep,
      },
      values: probe.take(),
    })
    onProgress?.({ heavyEvery, step: event.step, totalSteps: first.totalSteps })
  }
  const reused = perStep.filter(({ event }) => !event.heavy).map(({ values }) => values)
  const images = new Float32Array(runs.reduce((sum, run) => sum + run.images.length, 0))
  let filled = 0
  for (const run of runs) {
    images.set(run.images, filled)
    filled += run.images.length
  }
  return {
    interval: {
      heavyEvery,
      steps: perStep.map(({ event, values }) => ({ ...event, ...measuresOf([values]) })),
      reusedSteps: reused.length > 0 ? measuresOf(reused) : null,
    },
    images,
  }
}

/** One step's per-trajectory values of the four measures. */
interface StepValues {
  featureCosine: Float64Array
  featureRelL2: Float64Array
  x0RelL2: Float64Array
  x0RelL2Clipped: Float64Array
}

function measuresOf(steps: readonly StepValues[]): DriftMeasures {
  const pooled = (key: keyof StepValues) => spread(steps.flatMap((values) => [...values[key]]))
  return {
    featureCosine: pooled('featureCosine'),
    featureRelL2: pooled('featureRelL2'),
    x0RelL2: pooled('x0RelL2'),
    x0RelL2Clipped: pooled('x0RelL2Clipped'),
  }
}

/**
 * Mean, sample standard deviation (0 for one value) and the 10th, 50th and 90th percentiles, linearly
 * interpolated between order statistics (numpy's default).
 *
 * @example
 * spread([1, 2, 3, 4]) // { mean: 2.5, std: 1.29..., p10: 1.3, p50: 2.5, p90: 3.7 }
 */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spread of no values')
  const sorted = [...values].sort((a, b) => a - b)
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length
  const squares = sorted.reduce((sum, value) => sum + (value - mean) ** 2, 0)
  const std = sorted.length > 1 ? Math.sqrt(squares / (sorted.length - 1)) : 0
  const percentile = (p: number) => {
    const rank = (p / 100) * (sorted.length - 1)
    const below = Math.floor(rank)
    const low = sorted[below] as number
    const high = sorted[Math.min(below + 1, sorted.length - 1)] as number
    return low + (rank - below) * (high - low)
  }
  return { mean, std, p10: percentile(10), p50: percentile(50), p90: percentile(90) }
}

/** Stages 2-3 of the step only: ancestralStep with a zero posterior, run for the x0 it writes. */
const X0_ONLY: PosteriorCoefficients = Object.freeze({
  posteriorMeanCoefX0: 0,
  posteriorMeanCoefXt: 0,
  posteriorVariance: 0,
})
const NO_CLIP: readonly [number, number] = [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY]

/**
 * The models as the sampler sees them, with the drift measured inside each light call: the light call
 * with the features the sampler passes (reused; its x0 is what the sampler gets), then the heavy encoder
 * on the same rows (x_s = x_t, s = t) and the light call with those fresh features. Feature rows of one
 * image (its conditional and, when guided, unconditional row) are compared together; x0 is compared after
 * guidance, as the sampler's own ancestralStep combines it, before and after the clip.
 */
class DriftProbe<Features> implements DualRateModels<Features> {
  readonly #inner: DualRateModels<Features>
  readonly #featureValues: (features: Features) => Float32Array
  readonly #pixels: number
  readonly #rowsPerImage: number
  readonly #guidance: number
  readonly #clipX0: readonly [number, number]
  /** One run's scratch: the x that ancestralStep updates (discarded) and its x0 outputs. */
  readonly #scratchX: Float32Array
  readonly #guidedReused: Float32Array
  readonly #guidedFresh: Float32Array
  #x0Reused = new Float32Array(0)
  #last: StepValues | undefined

  constructor(driftModels: DriftModels<Features>, manifest: Manifest, settings: DriftSettings) {
    const { channels, height, width } = manifest.image
    this.#inner = driftModels.models
    this.#featureValues = driftModels.featureValues
    this.#pixels = channels * height * width
    this.#rowsPerImage = modelRows({ count: 1, guidance: settings.guidance })
    this.#guidance = settings.guidance
    this.#clipX0 = manifest.schedule.clipX0
    this.#scratchX = new Float32Array(MAX_COUNT * this.#pixels)
    this.#guidedReused = new Float32Array(MAX_COUNT * this.#pixels)
    this.#guidedFresh = new Float32Array(MAX_COUNT * this.#pixels)
  }

  heavy(feeds: HeavyFeeds): Promise<Features> {
    return this.#inner.heavy(feeds)
  }

  async light(feeds: LightFeeds<Features>): Promise<Float32Array> {
    const rows = feeds.label.length
    // Copied: a model may reuse its output buffer on the next call.
    const reusedOutput = await this.#inner.light(feeds)
    if (this.#x0Reused.length !== reusedOutput.length) {
      this.#x0Reused = new Float32Array(reusedOutput.length)
    }
    this.#x0Reused.set(reusedOutput)
    const fresh = await this.#inner.heavy({ xS: feeds.xT, s: feeds.t, label: feeds.label })
    const x0Fresh = await this.#inner.light({
      ...feeds,
      features: [{ features: fresh, offset: 0, rows }],
    })
    const freshValues = this.#featureValues(fresh)
    const rowValues = freshValues.length / rows
    const images = rows / this.#rowsPerImage
    const values: StepValues = {
      featureCosine: new Float64Array(images),
      featureRelL2: new Float64Array(images),
      x0RelL2: new Float64Array(images),
      x0RelL2Clipped: new Float64Array(images),
    }
    let row = 0
    let image = 0
    for (const slice of feeds.features) {
      const count = slice.rows / this.#rowsPerImage
      for (let n = 0; n < count; n++, image++) {
        const rowsOfImage = this.#rowsPerImage === 1 ? [n] : [n, count + n]
        const { cosine, relL2 } = compareFeatures(
          rowsOfImage.map((r) => this.#rowValues(slice, r, rowValues)),
          rowsOfImage.map((r) =>
            freshValues.subarray((row + r) * rowValues, (row + r + 1) * rowValues),
          ),
        )
        values.featureCosine[image] = cosine
        values.featureRelL2[image] = relL2
      }
      this.#compareX0(row, count, x0Fresh, values.x0RelL2, image - count, NO_CLIP)
      this.#compareX0(row, count, x0Fresh, values.x0RelL2Clipped, image - count, this.#clipX0)
      row += slice.rows
    }
    this.#last = values
    return this.#x0Reused
  }

  /** The values measured by the last light call; each call's values are taken once. */
  take(): StepValues {
    const values = this.#last
    if (!values) throw new Error('no light call since the last take()')
    this.#last = undefined
    return values
  }

  /** Row `r` of a run's slice of a heavy output. */
  #rowValues(slice: FeatureRows<Features>, r: number, rowValues: number): Float32Array {
    const offset = (slice.offset + r) * rowValues
    return this.#featureValues(slice.features).subarray(offset, offset + rowValues)
  }

  /** Relative L2 of the guided x0 (clipped to `clip`) of one run's `count` images, from row `row`. */
  #compareX0(
    row: number,
    count: number,
    x0Fresh: Float32Array,
    into: Float64Array,
    firstImage: number,
    clip: readonly [number, number],
  ): void {
    const pixels = this.#pixels
    const guided = (x0Rows: Float32Array, out: Float32Array) => {
      const cond = x0Rows.subarray(row * pixels, (row + count) * pixels)
      const uncond =
        this.#rowsPerImage === 1
          ? null
          : x0Rows.subarray((row + count) * pixels, (row + 2 * count) * pixels)
      ancestralStep(
        {
          x: this.#scratchX.subarray(0, count * pixels),
          x0Cond: cond,
          x0Uncond: uncond,
          x0: out.subarray(0, count * pixels),
          noise: null,
        },
        { guidance: this.#guidance, clipX0: clip, coefficients: X0_ONLY },
      )
    }
    guided(this.#x0Reused, this.#guidedReused)
    guided(x0Fresh, this.#guidedFresh)
    for (let n = 0; n < count; n++) {
      const range = [n * pixels, (n + 1) * pixels] as const
      into[firstImage + n] = compareFeatures(
        [this.#guidedReused.subarray(...range)],
        [this.#guidedFresh.subarray(...range)],
      ).relL2
    }
  }
}

/**
 * Cosine similarity and relative L2 distance ||reused - fresh|| / ||fresh|| of two vectors, each given
 * as parts that together form the flattened vector; sums in float64.
 *
 * @example
 * compareFeatures([new Float32Array([1, 0])], [new Float32Array([1, 1])]) // { cosine: 0.707..., relL2: 0.707... }
 */
export function compareFeatures(
  reused: readonly Float32Array[],
  fresh: readonly Float32Array[],
): { cosine: number; relL2: number } {
  let dot = 0
  let reusedSquared = 0
  let freshSquared = 0
  let differenceSquared = 0
  reused.forEach((part, index) => {
    const other = fresh[index]
    if (!other || other.length !== part.length) {
      throw new RangeError('compared vectors have different lengths')
    }
    for (let i = 0; i < part.length; i++) {
      const a = part[i] as number
      const b = other[i] as number
      dot += a * b
      reusedSquared += a * a
      freshSquared += b * b
      differenceSquared += (a - b) ** 2
    }
  })
  return {
    cosine: dot / Math.sqrt(reusedSquared * freshSquared),
    relL2: Math.sqrt(differenceSquared / freshSquared),
  }
}
