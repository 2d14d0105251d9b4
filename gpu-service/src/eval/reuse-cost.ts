// What reusing stale heavy features costs at each step, measured on the model itself: along trajectories
// that refresh the features on every step (the K = 1 reference), each light step is also run with the
// features of 1, 2, ... steps earlier, and the resulting step is compared with the fresh one. The table
// cost[step][age] drives the calibrated heavy placement (sampler/calibrated-schedule.ts).
//
// The cost is how far the step moves the trajectory off the reference: the RMS difference of the DDPM
// posterior means of x_tNext (Ho et al. 2020 eq. 7), i.e. the x0 error scaled by the weight the step
// gives x0. An x0 error early on, where that weight is small and later steps can correct it, costs
// less than the same error at the end, where x0 becomes the image.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { ancestralStep, posteriorCoefficients } from '../sampler/ancestral-step.ts'
import { type DualRateModels, type FeatureRows, sample } from '../sampler/sample.ts'
import { alphaBar, timestepPairs } from '../sampler/schedule.ts'

export interface ReuseCostSettings {
  steps: number
  /** Trajectories in all, spread evenly over the classes. */
  trajectories: number
  /** Images per sampler call. */
  batch: number
  guidance: number
  seed: number
  /** Oldest features measured; at most steps - 1 (a budget of one call reuses step 0's to the end). */
  maxAge: number
}

/** Mean and standard deviation over trajectories, per step and age; `null` where age > step. */
export interface ReuseCostTable {
  steps: number
  maxAge: number
  trajectories: number
  /** stateRms[step][age - 1]: RMS per pixel of the x_tNext posterior-mean difference, stale vs fresh. */
  stateRms: { mean: (number | null)[][]; std: (number | null)[][] }
  /** x0RelL2[step][age - 1]: ||x0_stale - x0_fresh|| / ||x0_fresh|| of the guided, clipped x0. */
  x0RelL2: { mean: (number | null)[][]; std: (number | null)[][] }
}

/**
 * Measures the reuse-cost table of a model pair.
 *
 * @example
 * const table = await measureReuseCost(pair.models, pair.manifest,
 *   { steps: 50, trajectories: 256, batch: 32, guidance: 1, seed: 0, maxAge: 49 })
 * table.stateRms.mean[40][7] // cost of step 40 reusing step 32's features
 */
export async function measureReuseCost<Features>(
  models: DualRateModels<Features>,
  manifest: Manifest,
  settings: ReuseCostSettings,
  onBatch?: (done: number, total: number) => void,
): Promise<ReuseCostTable> {
  const { steps, trajectories } = settings
  const maxAge = Math.min(settings.maxAge, steps - 1)
  const state = new Moments(steps, maxAge)
  const x0 = new Moments(steps, maxAge)
  let done = 0
  for (const options of referenceJobs(settings, manifest.classes.length)) {
    const measuring = measuringModels(models, manifest, options, maxAge, (step, age, diff) => {
      state.add(step, age, diff.stateRms)
      x0.add(step, age, diff.x0RelL2)
    })
    await sample(measuring, manifest, options)
    done += options.count
    onBatch?.(done, trajectories)
  }
  return {
    steps,
    maxAge,
    trajectories,
    stateRms: state.summary(),
    x0RelL2: x0.summary(),
  }
}

/**
 * The K = 1 reference runs a calibration measures along: `trajectories` images in sampler calls of at most
 * `batch`, spread evenly over the classes, each call with its own seed.
 *
 * @example
 * referenceJobs({ steps: 50, trajectories: 4, batch: 2, guidance: 1, seed: 0 }, 10).length // 4
 */
export function referenceJobs(
  settings: { steps: number; trajectories: number; batch: number; guidance: number; seed: number },
  classes: number,
): SamplingOptions[] {
  const { steps, trajectories, batch, guidance, seed } = settings
  const jobs: SamplingOptions[] = []
  const perClass = Math.ceil(trajectories / classes)
  for (let classIndex = 0, left = trajectories; left > 0; classIndex = (classIndex + 1) % classes) {
    const count = Math.min(batch, perClass, left)
    jobs.push({
      classIndex,
      count,
      steps,
      heavySchedule: { every: 1 },
      guidance,
      seed: seed * 1_000_003 + jobs.length,
    })
    left -= count
  }
  return jobs
}

interface StepDifference {
  stateRms: Float64Array
  x0RelL2: Float64Array
}

/**
 * The models, with every light call also run on older features and the step compared. The sampler gets
 * the fresh call's output, so the trajectory is the K = 1 reference.
 */
function measuringModels<Features>(
  models: DualRateModels<Features>,
  manifest: Manifest,
  options: SamplingOptions,
  maxAge: number,
  record: (step: number, age: number, diff: StepDifference) => void,
): DualRateModels<Features> {
  const pairs = timestepPairs(options.steps)
  const history: Features[] = []
  const { channels, height, width } = manifest.image
  const pixels = channels * height * width
  const imageValues = options.count * pixels
  return {
    async heavy(feeds) {
      const features = await models.heavy(feeds)
      history.push(features)
      return features
    },
    async light(feeds) {
      const step = history.length - 1
      const fresh = await models.light(feeds)
      const pair = pairs[step]
      if (!pair) throw new Error(`light call past the last step (${step})`)
      const coefficients = posteriorCoefficients(
        alphaBar(pair.t, manifest.schedule),
        alphaBar(pair.tNext, manifest.schedule),
      )
      const stepOf = (x0Rows: Float32Array) => {
        const x = feeds.xT.slice(0, imageValues)
        const x0 = new Float32Array(imageValues)
        ancestralStep(
          {
            x,
            x0Cond: x0Rows.subarray(0, imageValues),
            x0Uncond: x0Rows.length > imageValues ? x0Rows.subarray(imageValues) : null,
            x0,
            noise: null,
          },
          { guidance: options.guidance, clipX0: manifest.schedule.clipX0, coefficients },
        )
        return { mean: x, x0 }
      }
      const reference = stepOf(fresh)
      for (let age = 1; age <= Math.min(step, maxAge); age++) {
        const old = history[step - age] as Features
        const features: FeatureRows<Features>[] = feeds.features.map((rows) => ({
          ...rows,
          features: old,
        }))
        const stale = stepOf(await models.light({ ...feeds, features }))
        record(step, age, compareImages(reference, stale, options.count, pixels))
      }
      return fresh
    },
  }
}

function compareImages(
  fresh: { mean: Float32Array; x0: Float32Array },
  stale: { mean: Float32Array; x0: Float32Array },
  count: number,
  pixels: number,
): StepDifference {
  const stateRms = new Float64Array(count)
  const x0RelL2 = new Float64Array(count)
  for (let n = 0; n < count; n++) {
    let meanSq = 0
    let x0Sq = 0
    let x0Norm = 0
    for (let i = n * pixels; i < (n + 1) * pixels; i++) {
      const dm = (stale.mean[i] as number) - (fresh.mean[i] as number)
      const dx = (stale.x0[i] as number) - (fresh.x0[i] as number)
      meanSq += dm * dm
      x0Sq += dx * dx
      x0Norm += (fresh.x0[i] as number) ** 2
    }
    stateRms[n] = Math.sqrt(meanSq / pixels)
    x0RelL2[n] = Math.sqrt(x0Sq / Math.max(x0Norm, Number.MIN_VALUE))
  }
  return { stateRms, x0RelL2 }
}

/** Running sums per (step, age) for a mean and a population standard deviation. */
class Moments {
  readonly #n: Float64Array
  readonly #sum: Float64Array
  readonly #sumSq: Float64Array
  readonly steps: number
  readonly maxAge: number
  constructor(steps: number, maxAge: number) {
    this.steps = steps
    this.maxAge = maxAge
    this.#n = new Float64Array(steps * maxAge)
    this.#sum = new Float64Array(steps * maxAge)
    this.#sumSq = new Float64Array(steps * maxAge)
  }

  add(step: number, age: number, values: Float64Array): void {
    const cell = step * this.maxAge + age - 1
    for (const value of values) {
      ;(this.#n[cell] as number) += 1
      ;(this.#sum[cell] as number) += value
      ;(this.#sumSq[cell] as number) += value * value
    }
  }

  summary(): { mean: (number | null)[][]; std: (number | null)[][] } {
    const mean: (number | null)[][] = []
    const std: (number | null)[][] = []
    for (let step = 0; step < this.steps; step++) {
      const meanRow: (number | null)[] = []
      const stdRow: (number | null)[] = []
      for (let age = 1; age <= this.maxAge; age++) {
        const cell = step * this.maxAge + age - 1
        const n = this.#n[cell] as number
        if (n === 0) {
          meanRow.push(null)
          stdRow.push(null)
          continue
        }
        const m = (this.#sum[cell] as number) / n
        meanRow.push(m)
        stdRow.push(Math.sqrt(Math.max(0, (this.#sumSq[cell] as number) / n - m * m)))
      }
      mean.push(meanRow)
      std.push(stdRow)
    }
    return { mean, std }
  }
}
