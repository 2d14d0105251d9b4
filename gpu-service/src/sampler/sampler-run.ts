// The state of one sampling request between steps: its x_t, noise streams, heavy features and counters.
// The per-step math lives here and nowhere else; `sample()` and the step scheduler both drive runs through
// the batched model calls of step-batch.ts, one run or many at a time.

import { heavyStepMask, isAdaptive } from '../../../shared/heavy-schedule.ts'
import type { Manifest } from '../../../shared/model-manifest.ts'
import {
  modelRows,
  type SamplingOptions,
  samplingOptionsSchema,
} from '../../../shared/sampling-options.ts'
import { AdaptiveHeavySchedule } from './adaptive-schedule.ts'
import { ancestralStep, posteriorCoefficients } from './ancestral-step.ts'
import { imageNoiseStreams, type NormalStream } from './rng.ts'
import { alphaBar, type TimestepPair, timestepPairs } from './schedule.ts'

/** Heavy encoder feeds for `rows` image rows: x_s is `rows * pixels` long, s and label `rows`. */
export interface HeavyFeeds {
  xS: Float32Array
  s: Float32Array
  label: BigInt64Array
}

/**
 * Rows `[offset, offset + rows)` of one heavy call's output: the features one run keeps between heavy
 * calls. The light call receives one slice per run, in row order, and the model adapter joins them.
 */
export interface FeatureRows<Features> {
  features: Features
  offset: number
  rows: number
}

/** Light denoiser feeds; `features` holds, in row order, the feature rows of every run in the call. */
export interface LightFeeds<Features> {
  xT: Float32Array
  t: Float32Array
  label: BigInt64Array
  features: readonly FeatureRows<Features>[]
}

/**
 * The model pair as the sampler sees it. The sampler reuses its feed buffers between calls, so a model
 * must not keep them; the x0 it returns is read before the next call.
 */
export interface DualRateModels<Features> {
  heavy(feeds: HeavyFeeds): Promise<Features>
  /** Returns x0 predictions, `rows * pixels` long. */
  light(feeds: LightFeeds<Features>): Promise<Float32Array>
}

export interface StepEvent {
  /** 0-based step index. */
  step: number
  totalSteps: number
  /** Time at the start of the step. */
  t: number
  /** Whether the heavy encoder ran on this step. */
  heavy: boolean
  /** Heavy calls of the run so far, this step's included. */
  heavyCalls: number
  /** The guided, clipped x0 estimate, `count * pixels`; overwritten by the next step, copy to keep it. */
  x0: Float32Array
}

export interface SampleResult {
  /** Final images, `count * pixels` values in the clip range ([-1, 1]), image n at n * pixels. */
  images: Float32Array
  count: number
  pixels: number
  heavyCalls: number
  lightCalls: number
  /** Multiply-accumulates of all model calls: macsPerCall times rows, summed. */
  macs: number
  wallMs: number
}

export { modelRows }

/**
 * One request's sampler state. Each step: `writeModelRows` (x_t, t and labels for the model calls),
 * `acceptFeatures` when `heavyDue`, then `advance` with the light model's x0 rows (stages 2-5).
 *
 * @example
 * const run = new SamplerRun(manifest, options)
 * while (!run.done) {
 *   // fill feeds with run.writeModelRows(...), call the models, then:
 *   const event = run.advance(x0Rows)
 * }
 */
export class SamplerRun<Features> {
  readonly count: number
  readonly pixels: number
  /** Rows per model call (see modelRows). */
  readonly rows: number
  readonly totalSteps: number
  heavyCalls = 0
  lightCalls = 0
  macs = 0

  readonly #manifest: Manifest
  readonly #guidance: number
  readonly #pairs: TimestepPair[]
  /** Fixed schedules: one flag per step. Adaptive ones: step 0 only, the rest decided by #adaptive. */
  readonly #heavyAt: boolean[]
  readonly #adaptive: AdaptiveHeavySchedule | null
  readonly #streams: NormalStream[]
  readonly #label: BigInt64Array
  readonly #x: Float32Array
  readonly #noise: Float32Array
  readonly #x0: Float32Array
  /** Image n's slice of x and of noise, where its stream's draws go. */
  readonly #xSlices: Float32Array[]
  readonly #noiseSlices: Float32Array[]
  #step = 0
  #features: FeatureRows<Features> | undefined
  #heavyThisStep = false

  constructor(manifest: Manifest, options: SamplingOptions) {
    const { classIndex, count, steps, heavySchedule, guidance, seed } =
      samplingOptionsSchema.parse(options)
    const { channels, height, width } = manifest.image
    this.#manifest = manifest
    this.#guidance = guidance
    this.count = count
    this.pixels = channels * height * width
    this.rows = modelRows({ count, guidance })
    this.totalSteps = steps
    this.#pairs = timestepPairs(steps)
    if (isAdaptive(heavySchedule)) {
      this.#adaptive = new AdaptiveHeavySchedule(heavySchedule.adaptive.tolerance)
      this.#heavyAt = Array.from({ length: steps }, (_, step) => step === 0)
    } else {
      // A {calls: N} schedule resolves through the model's calibrated placements.
      this.#adaptive = null
      this.#heavyAt = heavyStepMask(heavySchedule, steps, manifest.heavyPlacements)
    }
    this.#streams = imageNoiseStreams(seed, count)
    // Every buffer the steps touch, allocated once.
    this.#label = new BigInt64Array(this.rows).fill(BigInt(classIndex), 0, count)
    this.#label.fill(BigInt(manifest.nullClass), count)
    this.#x = new Float32Array(count * this.pixels)
    this.#noise = new Float32Array(count * this.pixels)
    this.#x0 = new Float32Array(count * this.pixels)
    const imageSlices = (buffer: Float32Array) =>
      this.#streams.map((_, n) => buffer.subarray(n * this.pixels, (n + 1) * this.pixels))
    this.#xSlices = imageSlices(this.#x)
    this.#noiseSlices = imageSlices(this.#noise)
    // x_T: each image's first draws.
    this.#fillFromStreams(this.#xSlices)
  }

  /** The next step's index; equals totalSteps once done. */
  get step(): number {
    return this.#step
  }

  get done(): boolean {
    return this.#step >= this.totalSteps
  }

  /** Whether the heavy schedule refreshes the features on the next step. */
  get heavyDue(): boolean {
    return !this.done && (this.#heavyAt[this.#step] as boolean)
  }

  /** The feature rows of the last heavy call, for the light call. */
  get features(): FeatureRows<Features> {
    if (this.#features === undefined) throw new Error('heavy schedule must include step 0')
    return this.#features
  }

  /**
   * Writes this run's model rows for the next step: x_t (`rows * pixels`), t (`rows`) and labels
   * (`rows`). Heavy and light calls of a step see the same rows (x_s = x_t, s = t).
   */
  writeModelRows(x: Float32Array, time: Float32Array, label: BigInt64Array): void {
    const { t } = this.#pair()
    const imageValues = this.count * this.pixels
    x.set(this.#x, 0)
    if (this.rows > this.count) x.set(this.#x, imageValues)
    time.fill(t, 0, this.rows)
    label.set(this.#label, 0)
  }

  /** Keeps the features a heavy call computed for this run's rows of the next step. */
  acceptFeatures(features: FeatureRows<Features>): void {
    if (!this.heavyDue) throw new Error(`step ${this.#step} does not run the heavy encoder`)
    this.#features = features
    this.#heavyThisStep = true
    this.heavyCalls++
    this.macs += this.rows * this.#manifest.models.heavy.macsPerCall
  }

  /**
   * Stages 2-5 of the step with stage 1's output (the light model's x0 for this run's rows), then moves
   * to the next step. The returned event's x0 is overwritten by the next step.
   */
  advance(x0Rows: Float32Array): StepEvent {
    if (this.done) throw new Error('the run has no steps left')
    if (this.heavyDue && !this.#heavyThisStep) {
      throw new Error(`step ${this.#step} needs the heavy encoder before the light call`)
    }
    const imageValues = this.count * this.pixels
    if (x0Rows.length !== this.rows * this.pixels) {
      throw new Error(`x0 rows have ${x0Rows.length} values, expected ${this.rows * this.pixels}`)
    }
    const step = this.#step
    const { t, tNext } = this.#pair()
    const last = step === this.totalSteps - 1
    if (!last) this.#fillFromStreams(this.#noiseSlices)
    const coefficients = posteriorCoefficients(
      alphaBar(t, this.#manifest.schedule),
      alphaBar(tNext, this.#manifest.schedule),
    )
    ancestralStep(
      {
        x: this.#x,
        x0Cond: x0Rows.subarray(0, imageValues),
        x0Uncond: this.rows > this.count ? x0Rows.subarray(imageValues) : null,
        x0: this.#x0,
        noise: last ? null : this.#noise,
      },
      {
        guidance: this.#guidance,
        clipX0: this.#manifest.schedule.clipX0,
        coefficients,
      },
    )
    this.lightCalls++
    this.macs += this.rows * this.#manifest.models.light.macsPerCall
    const heavy = this.#heavyThisStep
    this.#heavyThisStep = false
    if (this.#adaptive && !last) {
      const refresh = this.#adaptive.observe(this.#x0, coefficients.posteriorMeanCoefX0, heavy)
      // Never on the last step, where fresh features cost FD (measured: docs/eval/frontier.md, the
      // last-step checks); the calibrated placements keep off it too.
      this.#heavyAt[step + 1] = refresh && step + 1 < this.totalSteps - 1
    }
    this.#step++
    return {
      step,
      totalSteps: this.totalSteps,
      t,
      heavy,
      heavyCalls: this.heavyCalls,
      x0: this.#x0,
    }
  }

  /** The images so far (final once done), `count * pixels`; the run's own buffer. */
  get images(): Float32Array {
    return this.#x
  }

  #pair(): TimestepPair {
    return this.#pairs[this.#step] as TimestepPair
  }

  /** Draws each image's next values from its own stream into its slice. */
  #fillFromStreams(slices: Float32Array[]): void {
    for (let n = 0; n < this.count; n++) this.#streams[n]?.fill(slices[n] as Float32Array)
  }
}
