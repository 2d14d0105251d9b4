// Calibration's check against the uniform baseline: at each compared budget of heavy calls, the placement
// the cost model chose and uniform every K with as many calls are both sampled on validation seeds and
// scored by FD; the calibrated placement ships only where it beats uniform by more than a margin, else the
// uniform steps do (same steps, same pixels as `{"every": K}`). Validation seeds must not be the test
// seeds the reports are scored on (test-split.ts), or the reports would check the choice on the data that
// made it.
import { heavySteps } from '../../../shared/heavy-schedule.ts'
import type { HeavySchedule } from '../../../shared/sampling-options.ts'
import { type SeedScore, type Summary, summarize } from './measure-claim.ts'

export type KeptPlacement = 'calibrated' | 'uniform'

/**
 * Which placement a budget ships, from the mean validation FD of each: the calibrated one only when its
 * FD is lower than uniform's by more than `margin` (0: strictly lower). A tie, a smaller win, or an FD
 * that is not a number keeps uniform, the baseline the product promises to match.
 *
 * @example
 * keptPlacement({ uniform: 5.0, calibrated: 4.6 }, 0.01) // 'calibrated'
 * keptPlacement({ uniform: 4.17, calibrated: 4.165 }, 0.01) // 'uniform': a win within the margin
 */
export function keptPlacement(
  fd: { uniform: number; calibrated: number },
  margin: number,
): KeptPlacement {
  if (!Number.isFinite(margin) || margin < 0) {
    throw new RangeError(`margin must be a finite FD >= 0, got ${margin}`)
  }
  return fd.calibrated < fd.uniform - margin ? 'calibrated' : 'uniform'
}

/** One schedule sampled on the validation seeds. */
export interface ScheduleValidation {
  /** The heavy steps it ran (the key under which a later run may reuse it). */
  heavySteps: number[]
  fd: Summary
  classAccuracy: Summary
  seeds: SeedScore[]
  /** What sampling and scoring it took when it was measured. */
  seconds: number
  /** Taken from an earlier report rather than sampled in this run. */
  reused: boolean
}

/** The validation of one compared budget. */
export interface BudgetValidation {
  every: number
  calls: number
  /** Null where the calibrated placement is uniform's own steps: nothing to sample or decide. */
  uniform: ScheduleValidation | null
  calibrated: ScheduleValidation | null
  /** Calibrated mean FD minus uniform's (negative: calibrated better); null where not sampled. */
  fdDifference: number | null
  kept: KeptPlacement
}

/** How validation samples: seeds (none of the test seeds), images per class, images per call, margin. */
export interface ValidationSettings {
  seeds: number[]
  samplesPerClass: number
  batch: number
  margin: number
}

/** A compared budget: uniform every K, and the calibrated placement of as many calls. */
export interface ComparedBudget {
  every: number
  calls: number
  calibrated: readonly number[]
}

/**
 * Validates each budget: samples uniform `{every: K}` and the calibrated placement (`{steps: [...]}`, so
 * the manifest's current placements play no part) through `measure`, unless `earlier` already holds a
 * schedule with the same heavy steps (the sampler and evaluator are deterministic), and decides which to
 * keep. A budget whose calibrated placement is uniform's is not sampled and keeps uniform.
 *
 * @example
 * const validated = await validatePlacements(comparison, 50, 0.01, new Map(), async (schedule) =>
 *   (await measureSchedules(models, manifest, evaluator, reference, [{ name, heavySchedule: schedule }],
 *     settings, console.log))[0].seeds)
 */
export async function validatePlacements(
  budgets: readonly ComparedBudget[],
  steps: number,
  margin: number,
  earlier: ReadonlyMap<string, ScheduleValidation>,
  measure: (heavySchedule: HeavySchedule) => Promise<SeedScore[]>,
): Promise<BudgetValidation[]> {
  const validate = async (schedule: HeavySchedule): Promise<ScheduleValidation> => {
    const stepsRun = heavySteps(schedule, steps)
    const found = earlier.get(stepsRun.join())
    if (found) return { ...found, reused: true }
    const started = performance.now()
    const seeds = await measure(schedule)
    return {
      heavySteps: stepsRun,
      fd: summarize(seeds.map((s) => s.fd)),
      classAccuracy: summarize(seeds.map((s) => s.classAccuracy)),
      seeds,
      seconds: (performance.now() - started) / 1000,
      reused: false,
    }
  }
  const validated: BudgetValidation[] = []
  for (const { every, calls, calibrated } of budgets) {
    const uniformSteps = heavySteps({ every }, steps)
    if (uniformSteps.join() === heavySteps({ steps: [...calibrated] }, steps).join()) {
      validated.push({
        every,
        calls,
        uniform: null,
        calibrated: null,
        fdDifference: null,
        kept: 'uniform',
      })
      continue
    }
    const uniform = await validate({ every })
    const placed = await validate({ steps: [...calibrated] })
    validated.push({
      every,
      calls,
      uniform,
      calibrated: placed,
      fdDifference: placed.fd.mean - uniform.fd.mean,
      kept: keptPlacement({ uniform: uniform.fd.mean, calibrated: placed.fd.mean }, margin),
    })
  }
  return validated
}

/**
 * The placements calibration ships: the cost model's, with each budget that kept uniform replaced by the
 * uniform steps of as many calls.
 *
 * @example
 * shippedPlacements(placements, validated, 50)[12] // [0, 4, 8, ..., 48] where 13 calls kept uniform
 */
export function shippedPlacements(
  placements: readonly (readonly number[])[],
  validated: readonly BudgetValidation[],
  steps: number,
): number[][] {
  const shipped = placements.map((placement) => [...placement])
  for (const { every, calls, kept } of validated) {
    if (kept === 'uniform') shipped[calls - 1] = heavySteps({ every }, steps)
  }
  return shipped
}

/** The parts of an earlier `npm run calibrate` report (reuse-cost.json) whose validation a run can reuse. */
export interface EarlierValidation {
  modelId: string
  settings: { steps: number; guidance: number }
  validation?: (ValidationSettings & { budgets: BudgetValidation[] }) | null
}

/**
 * The schedules an earlier calibration validated under exactly these conditions (model, steps, guidance,
 * validation seeds, samples per class and batch, which decides each call's noise), by their heavy steps
 * joined with commas. The margin is not a condition: it decides from the scores, it does not change them.
 *
 * @example
 * const earlier = earlierValidation(report, 'dualrate-547fb728e629', { steps: 50, guidance: 1 }, settings)
 * earlier.get('0,4,8,12,16,20,24,28,32,36,40,44,48') // every 4's scores, if validated alike
 */
export function earlierValidation(
  report: EarlierValidation,
  modelId: string,
  run: { steps: number; guidance: number },
  settings: ValidationSettings,
): Map<string, ScheduleValidation> {
  const found = new Map<string, ScheduleValidation>()
  const { validation } = report
  const alike =
    validation &&
    report.modelId === modelId &&
    report.settings.steps === run.steps &&
    report.settings.guidance === run.guidance &&
    validation.seeds.join() === settings.seeds.join() &&
    validation.samplesPerClass === settings.samplesPerClass &&
    validation.batch === settings.batch
  if (!alike) return found
  for (const budget of validation.budgets) {
    for (const schedule of [budget.uniform, budget.calibrated]) {
      if (schedule) found.set(schedule.heavySteps.join(), schedule)
    }
  }
  return found
}

/**
 * The validation as a table for the terminal: per budget, both mean FDs, their difference per seed,
 * class accuracy, and the placement kept.
 *
 * @example
 * for (const line of validationTable(validated)) console.log(line)
 */
export function validationTable(validated: readonly BudgetValidation[]): string[] {
  const header =
    'K   calls  uniform FD  calibrated FD  difference  per seed               accuracy u / c   kept'
  const rows = validated.map(({ every, calls, uniform, calibrated, fdDifference, kept }) => {
    const lead = `${String(every).padEnd(4)}${String(calls).padEnd(7)}`
    if (!uniform || !calibrated || fdDifference === null) {
      return `${lead}the calibrated placement is uniform's steps: not sampled`
    }
    const perSeed = calibrated.seeds
      .map((c) => signed(c.fd - (uniform.seeds.find((u) => u.seed === c.seed)?.fd ?? Number.NaN)))
      .join(', ')
    const accuracy = `${percent(uniform.classAccuracy.mean)} / ${percent(calibrated.classAccuracy.mean)}`
    return (
      `${lead}${uniform.fd.mean.toFixed(3).padEnd(12)}${calibrated.fd.mean.toFixed(3).padEnd(15)}` +
      `${signed(fdDifference).padEnd(12)}${perSeed.padEnd(23)}${accuracy.padEnd(17)}${kept}`
    )
  })
  return [header, ...rows]
}

const signed = (value: number) => `${value > 0 ? '+' : ''}${value.toFixed(3)}`
const percent = (value: number) => `${(value * 100).toFixed(1)} %`
