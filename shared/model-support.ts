// Whether a model can run a request: a distilled few-step student declares the step counts, heavy-encoder
// placements and guidance it was distilled for (manifest `supports`); anything else would sample off its
// training distribution, so every boundary (edge input, gpu-service, CLI) refuses it with the field named.
import { type HeavyPlacements, heavySteps, isAdaptive } from './heavy-schedule.ts'
import type { ModelSupport } from './model-manifest.ts'
import { type HeavySchedule, modelRows, type SamplingOptions } from './sampling-options.ts'

/**
 * The step counts a model has calibrated heavy placements for (manifest `heavyPlacements`), where
 * `heavySchedule: {"calls": N}` works for every N from 1 to the step count.
 *
 * @example
 * calibratedStepCounts(manifest.heavyPlacements) // [50]
 */
export function calibratedStepCounts(placements: HeavyPlacements | undefined): number[] {
  return Object.keys(placements ?? {})
    .map(Number)
    .sort((a, b) => a - b)
}

/**
 * The heavy schedule a request that names none runs at `steps`: the model's default schedule, except
 * that a default of calibrated calls exists only at the step counts with placements; at another step
 * count it becomes every ceil(default steps / calls) steps, about as many calls per step, uniform.
 *
 * @example
 * defaultHeavySchedule({ steps: 50, heavySchedule: { calls: 5 } }, [50], 50) // { calls: 5 }
 * defaultHeavySchedule({ steps: 50, heavySchedule: { calls: 5 } }, [50], 20) // { every: 10 }
 */
export function defaultHeavySchedule(
  defaults: { steps: number; heavySchedule: HeavySchedule },
  calibratedSteps: readonly number[] | undefined,
  steps: number,
): HeavySchedule {
  const schedule = defaults.heavySchedule
  if (!('calls' in schedule) || (calibratedSteps ?? []).includes(steps)) return schedule
  return { every: Math.ceil(defaults.steps / schedule.calls) }
}

/** One refused option, located by its field in the request. */
export interface SupportIssue {
  path: ['steps'] | ['heavySchedule'] | ['guidance']
  message: string
}

type Options = Pick<SamplingOptions, 'steps' | 'heavySchedule' | 'guidance'>

/**
 * The options a model does not support; empty when it runs them. A model without `supports` runs every
 * valid option, except `heavySchedule: {"calls": N}` at a step count it has no calibrated placements for.
 *
 * @example
 * unsupportedOptions({ steps: [8], heavySteps: { 8: [[0, 2, 4, 6]] }, guidance: [1] },
 *   { steps: 50, heavySchedule: { every: 8 }, guidance: 1 })
 * // [{ path: ['steps'], message: 'this model samples with 8 steps only' }]
 */
export function unsupportedOptions(
  supports: ModelSupport | undefined,
  options: Options,
  calibratedSteps: readonly number[] = [],
): SupportIssue[] {
  const schedule = options.heavySchedule
  if ('calls' in schedule && !calibratedSteps.includes(options.steps)) {
    const calibrated = calibratedSteps
    return [
      {
        path: ['heavySchedule'],
        message:
          calibrated.length > 0
            ? `{"calls": N} needs a calibrated placement; this model has them for ${calibrated.join(', ')} steps`
            : '{"calls": N} needs a calibrated placement; this model has none',
      },
    ]
  }
  if (!supports) return []
  const issues: SupportIssue[] = []
  if (!supports.steps.includes(options.steps)) {
    issues.push({
      path: ['steps'],
      message: `this model samples with ${list(supports.steps)} steps only`,
    })
  } else {
    const allowedPlacements = supports.heavySteps[String(options.steps)] ?? []
    // A student has no calibrated placements, so `calls` is refused above before it gets here.
    const asked =
      isAdaptive(schedule) || 'calls' in schedule
        ? null
        : heavySteps(schedule, options.steps).join()
    if (!allowedPlacements.some((placement) => placement.join() === asked)) {
      const allowed = allowedPlacements.map((placement) => `{"steps":[${placement.join(',')}]}`)
      issues.push({
        path: ['heavySchedule'],
        message: `at ${options.steps} steps this model runs the heavy encoder at ${allowed.join(' or ')} only`,
      })
    }
  }
  if (!supports.guidance.includes(options.guidance)) {
    issues.push({
      path: ['guidance'],
      message: `this model was distilled at guidance ${list(supports.guidance)} only`,
    })
  }
  return issues
}

/** Per-row MACs of one call of each network (manifest `macsPerCall`). */
export interface RowCost {
  heavyMacsPerRow: number
  lightMacsPerRow: number
}

/**
 * Multiply-accumulates of one image of a run: its rows (two with guidance other than 1) times the heavy
 * calls' and every step's light call's cost. An adaptive schedule is priced at its most (a heavy call on
 * every step); its result reports what it spent.
 *
 * @example
 * macsPerImage({ heavyMacsPerRow: 320e6, lightMacsPerRow: 17e6 }, { steps: 8, heavySchedule: { every: 2 }, guidance: 1 })
 * // 1 * (4 * 320e6 + 8 * 17e6)
 */
export function macsPerImage(
  cost: RowCost,
  options: Options,
  placements?: HeavyPlacements,
): number {
  const rows = modelRows({ count: 1, guidance: options.guidance })
  const heavyCalls = isAdaptive(options.heavySchedule)
    ? options.steps
    : heavySteps(options.heavySchedule, options.steps, placements).length
  return rows * (heavyCalls * cost.heavyMacsPerRow + options.steps * cost.lightMacsPerRow)
}

function list(values: readonly number[]): string {
  if (values.length === 1) return String(values[0])
  return `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`
}
