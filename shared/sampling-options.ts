// What a caller may ask of the sampler: one class, how many images, how many steps, when the heavy encoder
// runs, guidance strength and seed. Checked at every boundary (edge input, edge -> gpu-service, CLI).
import { z } from 'zod'

export const CLASS_COUNT = 10
export const MAX_COUNT = 64
export const MAX_STEPS = 1000
export const MAX_GUIDANCE = 20
export const MAX_SEED = 0xffff_ffff

const stepIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_STEPS - 1)
const classIndex = z
  .number()
  .int()
  .min(0)
  .max(CLASS_COUNT - 1)

/** Largest tolerance of an adaptive heavy schedule (see gpu-service/src/sampler/adaptive-schedule.ts). */
export const MAX_ADAPTIVE_TOLERANCE = 1

/**
 * When the heavy context encoder runs: every K-th step; at an explicit list of step indices; N calls
 * placed where the model's calibration measured reuse to hurt most (manifest `heavyPlacements`); or
 * decided during sampling from the run's own x0 estimates, refreshing once they have moved `tolerance`.
 */
export const heavyScheduleSchema = z.union([
  z.strictObject({ every: z.number().int().min(1).max(MAX_STEPS) }),
  z.strictObject({ steps: z.array(stepIndex).max(MAX_STEPS) }),
  z.strictObject({ calls: z.number().int().min(1).max(MAX_STEPS) }),
  z.strictObject({
    adaptive: z.strictObject({
      tolerance: z.number().positive().max(MAX_ADAPTIVE_TOLERANCE),
    }),
  }),
])

export const samplingOptionsSchema = z
  .strictObject({
    classIndex,
    count: z.number().int().min(1).max(MAX_COUNT),
    steps: z.number().int().min(1).max(MAX_STEPS),
    heavySchedule: heavyScheduleSchema,
    /** Classifier-free guidance scale w: uncond + w * (cond - uncond); 1 means conditional only. */
    guidance: z.number().min(0).max(MAX_GUIDANCE),
    seed: z.number().int().min(0).max(MAX_SEED),
  })
  .superRefine((options, ctx) => {
    if ('calls' in options.heavySchedule && options.heavySchedule.calls > options.steps) {
      ctx.addIssue({
        code: 'custom',
        path: ['heavySchedule', 'calls'],
        message: `${options.heavySchedule.calls} heavy calls do not fit in ${options.steps} steps`,
      })
    }
    if (!('steps' in options.heavySchedule)) return
    options.heavySchedule.steps.forEach((step, index) => {
      if (step >= options.steps) {
        ctx.addIssue({
          code: 'custom',
          path: ['heavySchedule', 'steps', index],
          message: `step ${step} is out of range for ${options.steps} steps (0..${options.steps - 1})`,
        })
      }
    })
  })

export type HeavySchedule = z.infer<typeof heavyScheduleSchema>
export type SamplingOptions = z.infer<typeof samplingOptionsSchema>

/**
 * Rows of one model call for a request: classifier-free guidance other than 1 runs a conditional and an
 * unconditional row per image in the same call (Ho & Salimans 2022), guidance 1 only the conditional.
 *
 * @example
 * modelRows({ count: 4, guidance: 2 }) // 8
 */
export function modelRows({
  count,
  guidance,
}: Pick<SamplingOptions, 'count' | 'guidance'>): number {
  return guidance !== 1 ? 2 * count : count
}

/**
 * What a request costs the GPU tier, in row-steps: rows x steps. Quotas count this, so one key's
 * largest request weighs what it costs, not the same as a one-image run.
 *
 * @example
 * runCost({ count: 64, guidance: 2, steps: 1000 }) // 128000, the largest a request can be
 */
export function runCost(options: Pick<SamplingOptions, 'count' | 'guidance' | 'steps'>): number {
  return modelRows(options) * options.steps
}

/** The cost of the largest valid request. */
export const MAX_RUN_COST = 2 * MAX_COUNT * MAX_STEPS
