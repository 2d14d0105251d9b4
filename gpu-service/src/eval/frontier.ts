// The quality-cost frontier: which heavy schedules to measure (uniform every K, the calibrated placement
// with the same number of heavy calls, adaptive tolerances), and what the measurements say: per budget,
// calibrated against uniform; the cheapest setting whose FD stays within a margin of heavy-every-step.
import { heavySteps } from '../../../shared/heavy-schedule.ts'
import type { HeavySchedule } from '../../../shared/sampling-options.ts'
import type { ScheduleSetting, SeedScore, Summary } from './measure-claim.ts'
import { summarize } from './measure-claim.ts'

export type ScheduleFamily = 'uniform' | 'calibrated' | 'adaptive' | 'last-step check'

export interface FrontierSetting extends ScheduleSetting {
  family: ScheduleFamily
  /** Heavy calls per image before sampling (adaptive: unknown until it has run). */
  plannedCalls: number | null
}

/**
 * The settings of one frontier: every K, the calibrated placement of as many calls as every K makes
 * (none for K = 1, which is the same placement), and each adaptive tolerance.
 *
 * @example
 * frontierSettings(50, [1, 8], [0.02]) // K=1, K=8, 7 calibrated calls, adaptive 0.02
 */
export function frontierSettings(
  steps: number,
  intervals: readonly number[],
  tolerances: readonly number[],
): FrontierSetting[] {
  const uniform = intervals.map((every): FrontierSetting => {
    const heavySchedule = { every }
    return {
      family: 'uniform',
      name: `every ${every}`,
      heavySchedule,
      plannedCalls: heavySteps(heavySchedule, steps).length,
    }
  })
  const calibrated = uniform
    .filter((setting) => (setting.plannedCalls as number) < steps)
    .map(
      (setting): FrontierSetting => ({
        family: 'calibrated',
        name: `${setting.plannedCalls} calibrated`,
        heavySchedule: { calls: setting.plannedCalls as number },
        plannedCalls: setting.plannedCalls,
      }),
    )
  const adaptive = tolerances.map(
    (tolerance): FrontierSetting => ({
      family: 'adaptive',
      name: `adaptive ${tolerance}`,
      heavySchedule: { adaptive: { tolerance } },
      plannedCalls: null,
    }),
  )
  return [...uniform, ...calibrated, ...adaptive, ...lastStepChecks(steps)]
}

/**
 * Whether fresh features on the last step help: every step but the last, and every second step plus the
 * last, beside every 1 and every 2. (They do not: the calibration keeps calls off the last step.)
 *
 * @example
 * lastStepChecks(4).map((s) => s.heavySchedule) // [{ steps: [0, 1, 2] }, { steps: [0, 2, 3] }]
 */
export function lastStepChecks(steps: number): FrontierSetting[] {
  if (steps < 3) return []
  const all = Array.from({ length: steps }, (_, step) => step)
  const settings = [
    { name: 'every 1 but the last', steps: all.slice(0, -1) },
    { name: 'every 2 and the last', steps: [...all.filter((step) => step % 2 === 0), steps - 1] },
  ]
  return settings.map(({ name, steps: heavy }) => ({
    family: 'last-step check',
    name,
    heavySchedule: { steps: [...new Set(heavy)] },
    plannedCalls: new Set(heavy).size,
  }))
}

export interface FrontierPoint {
  family: ScheduleFamily
  name: string
  heavySchedule: HeavySchedule
  seeds: SeedScore[]
  heavyCalls: Summary
  gmacsPerImage: Summary
  fd: Summary
  classAccuracy: Summary
  wallMsPerImage: Summary
  /** A calibrated point's heavy steps: a later calibration that moves them makes the point stale. */
  placement?: number[]
  /**
   * A calibrated point whose placement is this uniform setting's steps (calibration kept them where its
   * own placement did not beat uniform on validation): the same pixels, so that point's scores.
   */
  sameStepsAs?: string
}

/**
 * One measured setting, summarised over its seeds (a calibrated one with the placement it ran, and the
 * uniform setting it shares its steps and scores with, if any).
 */
export function frontierPoint(
  setting: FrontierSetting,
  seeds: SeedScore[],
  placement?: readonly number[],
  sameStepsAs?: string,
): FrontierPoint {
  return {
    family: setting.family,
    name: setting.name,
    heavySchedule: setting.heavySchedule,
    ...(placement ? { placement: [...placement] } : {}),
    ...(sameStepsAs ? { sameStepsAs } : {}),
    seeds,
    heavyCalls: summarize(seeds.map((s) => s.heavyCallsPerImage)),
    gmacsPerImage: summarize(seeds.map((s) => s.macsPerImage / 1e9)),
    fd: summarize(seeds.map((s) => s.fd)),
    classAccuracy: summarize(seeds.map((s) => s.classAccuracy)),
    wallMsPerImage: summarize(seeds.map((s) => s.wallMsPerImage)),
  }
}

export interface BudgetComparison {
  heavyCalls: number
  uniform: string
  calibrated: string
  uniformFd: number
  calibratedFd: number
  /** Calibrated minus uniform FD for each seed both ran (same seeds: the same noise and classes). */
  perSeedDifference: number[]
  /** Calibrated FD at most uniform FD (means over seeds). */
  calibratedAtLeastAsGood: boolean
  /** The calibrated placement is the uniform steps: one set of scores, equal by construction. */
  sameSteps: boolean
}

/**
 * Calibrated against uniform at each number of heavy calls both were measured at, fewest calls first.
 *
 * @example
 * compareBudgets(points).every((row) => row.calibratedAtLeastAsGood)
 */
export function compareBudgets(points: readonly FrontierPoint[]): BudgetComparison[] {
  const rows: BudgetComparison[] = []
  for (const uniform of points.filter((p) => p.family === 'uniform')) {
    const calls = uniform.heavyCalls.mean
    const calibrated = points.find((p) => p.family === 'calibrated' && p.heavyCalls.mean === calls)
    if (!calibrated) continue
    rows.push({
      heavyCalls: calls,
      uniform: uniform.name,
      calibrated: calibrated.name,
      uniformFd: uniform.fd.mean,
      calibratedFd: calibrated.fd.mean,
      perSeedDifference: calibrated.seeds.flatMap((c) => {
        const u = uniform.seeds.find((s) => s.seed === c.seed)
        return u ? [c.fd - u.fd] : []
      }),
      calibratedAtLeastAsGood: calibrated.fd.mean <= uniform.fd.mean,
      sameSteps: calibrated.sameStepsAs === uniform.name,
    })
  }
  return rows.sort((a, b) => a.heavyCalls - b.heavyCalls)
}

/**
 * The cheapest setting (fewest MACs per image, then lowest FD) whose mean FD is within `margin` (0.05: 5 %) of the
 * heavy-every-step setting's, or null when there is no every-1 point.
 *
 * @example
 * cheapestWithin(points, 0.05)?.name // 'every 8'
 */
export function cheapestWithin(
  points: readonly FrontierPoint[],
  margin: number,
): FrontierPoint | null {
  const reference = points.find(
    (p) => p.family === 'uniform' && 'every' in p.heavySchedule && p.heavySchedule.every === 1,
  )
  if (!reference) return null
  const bound = reference.fd.mean * (1 + margin)
  const within = points.filter((p) => p.fd.mean <= bound)
  // Equal MACs (a calibrated placement and its uniform twin): the lower FD wins.
  const cheaper = (p: FrontierPoint, best: FrontierPoint) =>
    p.gmacsPerImage.mean < best.gmacsPerImage.mean ||
    (p.gmacsPerImage.mean === best.gmacsPerImage.mean && p.fd.mean < best.fd.mean)
  return within.reduce((best, p) => (cheaper(p, best) ? p : best))
}

/**
 * The calibrated settings whose current placement is exactly the heavy steps of a uniform setting with
 * as many calls (where calibration's validation kept uniform's steps), by calibrated name, the uniform
 * name. The sampler sees only the steps, so such a setting makes the uniform one's pixels: it takes that
 * point's scores instead of being sampled again.
 *
 * @example
 * uniformTwins(settings, 50, manifest.heavyPlacements['50']) // Map { '13 calibrated' => 'every 4' }
 */
export function uniformTwins(
  settings: readonly FrontierSetting[],
  steps: number,
  placements: readonly (readonly number[])[],
): Map<string, string> {
  const twins = new Map<string, string>()
  for (const uniform of settings) {
    if (uniform.family !== 'uniform') continue
    const uniformSteps = heavySteps(uniform.heavySchedule, steps).join()
    for (const calibrated of settings) {
      if (calibrated.family !== 'calibrated' || calibrated.plannedCalls !== uniform.plannedCalls)
        continue
      const placement = placements[(calibrated.plannedCalls as number) - 1]
      if (placement && heavySteps({ steps: [...placement] }, steps).join() === uniformSteps) {
        twins.set(calibrated.name, uniform.name)
      }
    }
  }
  return twins
}

/** The parts of an `npm run eval` report (docs/eval/results.json) a frontier can reuse. */
export interface EvalResults {
  modelId: string
  settings: { seeds: number[]; samplesPerClass: number; steps: number; guidance: number }
  intervals: { heavyEvery: number; seeds: SeedScore[] }[]
}

/**
 * The uniform settings an earlier `npm run eval` already scored under exactly these conditions (model,
 * seeds, samples, steps, guidance), by setting name. The sampler and the evaluator are deterministic, so
 * sampling them again would give the same images and the same scores; a frontier reuses them rather than
 * spend the time.
 *
 * @example
 * const reused = reusableScores(results, settings, measure, manifest.modelId) // Map { 'every 1' => [...] }
 */
export function reusableScores(
  results: EvalResults,
  settings: readonly FrontierSetting[],
  measure: EvalResults['settings'],
  modelId: string,
): Map<string, SeedScore[]> {
  const reused = new Map<string, SeedScore[]>()
  if (!measuredLike(results, measure, modelId)) return reused
  for (const setting of settings) {
    if (setting.family !== 'uniform' || !('every' in setting.heavySchedule)) continue
    const { every } = setting.heavySchedule
    const found = results.intervals.find((interval) => interval.heavyEvery === every)
    if (found) reused.set(setting.name, found.seeds)
  }
  return reused
}

/** Whether an earlier report sampled the same model with the same seeds, samples, steps and guidance. */
function measuredLike(
  earlier: { modelId: string; settings: EvalResults['settings'] },
  measure: EvalResults['settings'],
  modelId: string,
): boolean {
  const { settings } = earlier
  return (
    earlier.modelId === modelId &&
    settings.seeds.join() === measure.seeds.join() &&
    settings.samplesPerClass === measure.samplesPerClass &&
    settings.steps === measure.steps &&
    settings.guidance === measure.guidance
  )
}

/** The parts of an earlier `npm run frontier` report (docs/eval/frontier.json) a frontier can keep. */
export interface EarlierFrontier {
  modelId: string
  date: string
  command: string
  settings: EvalResults['settings']
  points: Pick<FrontierPoint, 'family' | 'name' | 'seeds' | 'placement'>[]
}

/**
 * The points an earlier frontier measured under exactly these conditions, by setting name: uniform points,
 * and calibrated points only where the earlier run recorded the same placement as the manifest's now.
 * Adaptive points and the last-step checks are always sampled again: the rules that decide them live in
 * the sampler's code, not in data a report could compare. After a new calibration, only the calibrated
 * points it moved need sampling again.
 *
 * @example
 * keptScores(earlier, settings, measure, manifest.modelId, manifest.heavyPlacements['50'])
 */
export function keptScores(
  earlier: EarlierFrontier,
  settings: readonly FrontierSetting[],
  measure: EvalResults['settings'],
  modelId: string,
  placements: readonly (readonly number[])[],
): Map<string, SeedScore[]> {
  const kept = new Map<string, SeedScore[]>()
  if (!measuredLike(earlier, measure, modelId)) return kept
  for (const setting of settings) {
    if (setting.family !== 'uniform' && setting.family !== 'calibrated') continue
    const point = earlier.points.find((p) => p.name === setting.name && p.family === setting.family)
    if (!point) continue
    if (setting.family === 'calibrated') {
      const calls = setting.plannedCalls as number
      if (point.placement?.join() !== placements[calls - 1]?.join()) continue
    }
    kept.set(setting.name, point.seeds)
  }
  return kept
}
