// Measures the dual-rate claim through the TypeScript sampler: for each heavy interval K, draw
// samplesPerClass images per class under each seed, then score class accuracy and Frechet distance (in the
// evaluator classifier's feature space) against the test split, plus MACs and wall time per image.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { HeavySchedule } from '../../../shared/sampling-options.ts'
import type { DualRateModels } from '../sampler/sample.ts'
import { sample } from '../sampler/sample.ts'
import type { Evaluator } from './classifier.ts'
import { frechetDistance, type GaussianStats, gaussianStats } from './frechet-distance.ts'

export interface ClaimSettings {
  heavyIntervals: number[]
  seeds: number[]
  samplesPerClass: number
  steps: number
  guidance: number
  /** Images per sampler call (guidance doubles the rows). */
  batch: number
}

export interface SeedScore {
  seed: number
  classAccuracy: number
  fd: number
  macsPerImage: number
  /**
   * Median over sampler calls of (call wall time / images in the call). The median, not the total, so a
   * burst of other work on the machine during a few calls does not decide the cost comparison.
   */
  wallMsPerImage: number
  /** Total sampler wall time / images, for reference (sensitive to other load on the machine). */
  totalWallMsPerImage: number
  heavyCallsPerImage: number
}

export interface IntervalScores {
  heavyEvery: number
  seeds: SeedScore[]
  /** Seed 0's first images, `classes * gridColumns` in class order, for the sample grid. */
  gridImages: Float32Array
}

export const GRID_COLUMNS = 10

/** Distinct uint32 seed per (run seed, class, chunk) so every chunk of images draws fresh noise. */
function chunkSeed(seed: number, classIndex: number, chunk: number): number {
  return (
    (Math.imul(seed + 1, 0x9e3779b1) ^
      Math.imul(classIndex + 1, 0x85ebca6b) ^
      (chunk * 0xc2b2ae35)) >>>
    0
  )
}

/** One sampler setting to score: a name for reports and the heavy schedule it runs. */
export interface ScheduleSetting {
  name: string
  heavySchedule: HeavySchedule
}

export interface ScheduleScores {
  setting: ScheduleSetting
  seeds: SeedScore[]
  /** Seed 0's first images, `classes * gridColumns` in class order, for the sample grid. */
  gridImages: Float32Array
}

/** What every setting shares: seeds, samples, steps, guidance, batch. */
export type MeasureSettings = Omit<ClaimSettings, 'heavyIntervals'>

/**
 * Runs every (seed, K) setting. Seeds are the outer loop so slow drift of the machine touches all K alike.
 *
 * @example
 * const scores = await measureClaim(pair.models, pair.manifest, evaluator, testStats, settings, console.log)
 */
export async function measureClaim<Features>(
  models: DualRateModels<Features>,
  manifest: Manifest,
  evaluator: Evaluator,
  reference: GaussianStats,
  settings: ClaimSettings,
  log: (line: string) => void,
): Promise<IntervalScores[]> {
  const { heavyIntervals, ...shared } = settings
  const schedules = heavyIntervals.map((heavyEvery) => ({
    name: `K=${heavyEvery}`,
    heavySchedule: { every: heavyEvery },
  }))
  const scores = await measureSchedules(
    models,
    manifest,
    evaluator,
    reference,
    schedules,
    shared,
    log,
  )
  return scores.map(({ seeds, gridImages }, i) => ({
    heavyEvery: heavyIntervals[i] as number,
    seeds,
    gridImages,
  }))
}

/**
 * Scores each heavy schedule: per seed, samplesPerClass images of every class, their class accuracy and
 * FD against the reference, MACs, heavy calls and wall time per image. The same seeds draw the same noise
 * for every schedule, so settings differ only by where the heavy encoder runs.
 *
 * @example
 * const scores = await measureSchedules(pair.models, pair.manifest, evaluator, testStats,
 *   [{ name: '7 calibrated', heavySchedule: { calls: 7 } }], settings, console.log)
 */
export async function measureSchedules<Features>(
  models: DualRateModels<Features>,
  manifest: Manifest,
  evaluator: Evaluator,
  reference: GaussianStats,
  schedules: readonly ScheduleSetting[],
  settings: MeasureSettings,
  log: (line: string) => void,
): Promise<ScheduleScores[]> {
  const classes = manifest.classes.length
  const pixels = manifest.image.channels * manifest.image.height * manifest.image.width
  const perSetting = classes * settings.samplesPerClass
  const scores = schedules.map((setting) => ({
    setting,
    seeds: [] as SeedScore[],
    gridImages: new Float32Array(classes * GRID_COLUMNS * pixels),
  }))
  const started = performance.now()
  const total = settings.seeds.length * schedules.length
  let done = 0
  for (const seed of settings.seeds) {
    for (const scored of scores) {
      const images = new Float32Array(perSetting * pixels)
      const labels = new Uint8Array(perSetting)
      let wallMs = 0
      const callMsPerImage: number[] = []
      let macs = 0
      let heavyCalls = 0
      let filled = 0
      for (let classIndex = 0; classIndex < classes; classIndex++) {
        for (let chunk = 0, left = settings.samplesPerClass; left > 0; chunk++) {
          const count = Math.min(settings.batch, left)
          const result = await sample(models, manifest, {
            classIndex,
            count,
            steps: settings.steps,
            heavySchedule: scored.setting.heavySchedule,
            guidance: settings.guidance,
            seed: chunkSeed(seed, classIndex, chunk),
          })
          images.set(result.images, filled * pixels)
          labels.fill(classIndex, filled, filled + count)
          wallMs += result.wallMs
          callMsPerImage.push(result.wallMs / count)
          macs += result.macs
          heavyCalls += result.heavyCalls * count
          filled += count
          left -= count
        }
        if (seed === settings.seeds[0]) {
          const first = images.subarray(
            (filled - settings.samplesPerClass) * pixels,
            (filled - settings.samplesPerClass + Math.min(GRID_COLUMNS, settings.samplesPerClass)) *
              pixels,
          )
          scored.gridImages.set(first, classIndex * GRID_COLUMNS * pixels)
        }
      }
      const { predictions, features, featureDim } = await evaluator.classify(images, perSetting)
      let correct = 0
      for (let i = 0; i < perSetting; i++) if (predictions[i] === labels[i]) correct++
      const score: SeedScore = {
        seed,
        classAccuracy: correct / perSetting,
        fd: frechetDistance(gaussianStats(features, featureDim), reference),
        macsPerImage: macs / perSetting,
        wallMsPerImage: median(callMsPerImage),
        totalWallMsPerImage: wallMs / perSetting,
        heavyCallsPerImage: heavyCalls / perSetting,
      }
      scored.seeds.push(score)
      done++
      const elapsed = (performance.now() - started) / 1000
      log(
        `${scored.setting.name} seed=${seed}: class accuracy ${(score.classAccuracy * 100).toFixed(1)}% ` +
          `FD ${score.fd.toFixed(2)} ${score.heavyCallsPerImage.toFixed(1)} heavy calls ` +
          `${score.wallMsPerImage.toFixed(1)} ms/image ` +
          `[${done}/${total}, ${elapsed.toFixed(0)} s, ETA ${((elapsed / done) * (total - done)).toFixed(0)} s]`,
      )
    }
  }
  return scores
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

export interface Summary {
  mean: number
  std: number
}

/** Mean and sample standard deviation (0 for a single value). */
export function summarize(values: number[]): Summary {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length
  const variance =
    values.length > 1
      ? values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1)
      : 0
  return { mean, std: Math.sqrt(variance) }
}
