// Which sampler steps run the heavy context encoder. The schedule is data ({ every: K } or an explicit
// list of step indices), resolved here once; the sampling loop only looks the step up.
import type { HeavySchedule } from './sampling-options.ts'

/**
 * The sorted, distinct step indices (0-based) at which the heavy encoder runs. Step 0 is always one of
 * them: the light model has no features before the first heavy call.
 *
 * @example
 * heavySteps({ every: 4 }, 10) // [0, 4, 8]
 * heavySteps({ steps: [7, 3] }, 10) // [0, 3, 7]
 */
export function heavySteps(schedule: HeavySchedule, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps must be a positive integer, got ${steps}`)
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
export function heavyStepMask(schedule: HeavySchedule, steps: number): boolean[] {
  const mask = new Array<boolean>(steps).fill(false)
  for (const step of heavySteps(schedule, steps)) mask[step] = true
  return mask
}
