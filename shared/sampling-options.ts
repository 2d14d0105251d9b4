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

/** When the heavy context encoder runs: every K-th step, or at an explicit list of step indices. */
export const heavyScheduleSchema = z.union([
  z.strictObject({ every: z.number().int().min(1).max(MAX_STEPS) }),
  z.strictObject({ steps: z.array(stepIndex).max(MAX_STEPS) }),
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
