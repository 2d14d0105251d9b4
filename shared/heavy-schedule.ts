// Which sampler steps run the heavy context encoder. The schedule is data ({ every: K }, an explicit list
// of step indices, or N calls at the model's calibrated placement), resolved here once; the sampling loop
// only looks the step up. An adaptive schedule has no fixed steps: the run decides as it samples.
import type { HeavySchedule } from './sampling-options.ts'

/** A model's calibrated placements (manifest `heavyPlacements`): by step count, entry N - 1 for N calls. */
export type HeavyPlacements = Readonly<Record<string, readonly (readonly number[])[]>>

/** True for a schedule decided during sampling, which `heavySteps` cannot list in advance. */
export function isAdaptive(
  schedule: HeavySchedule,
): schedule is Extract<HeavySchedule, { adaptive: unknown }> {
  return 'adaptive' in schedule
}

/**
 * The calibrated placement of `calls` heavy calls in `steps` steps, or undefined when the model has none.
 *
 * @example
 * calibratedPlacement(manifest.heavyPlacements, 50, 7) // [0, 9, 17, 26, 35, 42, 47]
 */
export function calibratedPlacement(
  placements: HeavyPlacements | undefined,
  steps: number,
  calls: number,
): readonly number[] | undefined {
  return placements?.[String(steps)]?.[calls - 1]
}

/**
 * The sorted, distinct step indices (0-based) at which the heavy encoder runs. Step 0 is always one of
 * them: the light model has no features before the first heavy call.
 *
 * @example
 * heavySteps({ every: 4 }, 10) // [0, 4, 8]
 * heavySteps({ steps: [7, 3] }, 10) // [0, 3, 7]
 * heavySteps({ calls: 2 }, 50, manifest.heavyPlacements) // the calibrated placement
 */
export function heavySteps(
  schedule: HeavySchedule,
  steps: number,
  placements?: HeavyPlacements,
): number[] {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps must be a positive integer, got ${steps}`)
  }
  if ('adaptive' in schedule) {
    throw new RangeError('an adaptive heavy schedule is decided during sampling, not in advance')
  }
  if ('calls' in schedule) {
    const placement = calibratedPlacement(placements, steps, schedule.calls)
    if (!placement) {
      throw new RangeError(
        `no calibrated placement of ${schedule.calls} heavy calls in ${steps} steps`,
      )
    }
    return [...placement]
  }
  if ('every' in schedule) {
    const { every } = schedule
    if (!Number.isInteger(every) || every < 1) {
      throw new RangeError(`heavy schedule "every" must be a positive integer, got ${every}`)
    }
    return Array.from({ length: Math.ceil(steps / every) }, (_, i) => i * every)
  }
  for (const step of schedule.steps) {
    if (!Number.isInteger(step) || step < 0 || step >= steps) {
      throw new RangeError(
        `heavy step ${step} is out of range for ${steps} steps (0..${steps - 1})`,
      )
    }
  }
  return [...new Set([0, ...schedule.steps])].sort((a, b) => a - b)
}

/**
 * One flag per step: true where the heavy encoder runs.
 *
 * @example
 * heavyStepMask({ every: 2 }, 4) // [true, false, true, false]
 */
export function heavyStepMask(
  schedule: HeavySchedule,
  steps: number,
  placements?: HeavyPlacements,
): boolean[] {
  const mask = new Array<boolean>(steps).fill(false)
  for (const step of heavySteps(schedule, steps, placements)) mask[step] = true
  return mask
}

/**
 * A schedule in a few words, for people (CLI lines, the playground's summary).
 *
 * @example
 * describeHeavySchedule({ every: 4 }) // 'every 4'
 * describeHeavySchedule({ steps: [0, 3, 7] }) // 'at [0,3,7]'
 * describeHeavySchedule({ calls: 7 }) // '7 calibrated calls'
 * describeHeavySchedule({ adaptive: { tolerance: 0.02 } }) // 'adaptive, tolerance 0.02'
 */
export function describeHeavySchedule(schedule: HeavySchedule): string {
  if ('every' in schedule) return `every ${schedule.every}`
  if ('steps' in schedule) return `at [${schedule.steps.join(',')}]`
  if ('calls' in schedule)
    return `${schedule.calls} calibrated call${schedule.calls === 1 ? '' : 's'}`
  return `adaptive, tolerance ${schedule.adaptive.tolerance}`
}
