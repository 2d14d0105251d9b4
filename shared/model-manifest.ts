// The model manifest (gpu-service/models/manifest.json), written by the Python export and checked on load.
import { z } from 'zod'
import { formatIssue, listIssues } from './issues.ts'
import { unsupportedOptions } from './model-support.ts'

/** Names of the dynamic batch dimension in declared tensor shapes. */
export const BATCH_DIM = 'batch'

/** The tensor names the sampler feeds and reads; the export writes exactly these. */
export const HEAVY_INPUTS = ['x_s', 's', 'label'] as const
export const HEAVY_OUTPUTS = ['features'] as const
export const LIGHT_INPUTS = ['x_t', 't', 'label', 'features'] as const
export const LIGHT_OUTPUTS = ['x0'] as const

const positiveInt = z.number().int().positive()

/** A model's id: "dualrate-" and 12 hex digits of its weights' hash. */
export const modelIdSchema = z
  .string()
  .regex(
    /^dualrate-[0-9a-f]{12}$/,
    'expected "dualrate-" and 12 hex digits, as GET /v1/models lists',
  )
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (sha256)')

export const tensorSpecSchema = z.object({
  name: z.string().min(1),
  dtype: z.enum(['float32', 'int64']),
  shape: z.array(z.union([z.literal(BATCH_DIM), positiveInt])),
})

export const modelSpecSchema = z.object({
  file: z.string().min(1),
  sha256: sha256Hex,
  /** Multiply-accumulates for one image row of the batch. */
  macsPerCall: z.number().int().nonnegative(),
  params: positiveInt,
  inputs: z.array(tensorSpecSchema).min(1),
  outputs: z.array(tensorSpecSchema).min(1),
})

/**
 * What a model was trained for, when it is narrower than "any steps, any schedule, any guidance": a
 * distilled few-step student (Salimans et al. 2024, moment matching) samples well only on the time grid
 * and heavy-encoder placement it was distilled on, and bakes the guidance it was distilled at into one
 * row per image. Absent means the model accepts every valid sampling option.
 */
export const modelSupportSchema = z.strictObject({
  /** Step counts the model samples with. */
  steps: z.array(positiveInt).min(1),
  /**
   * Per step count (the key, in decimal), the heavy-encoder placements allowed: each a sorted list of
   * 0-based step indices starting at 0, as `heavySteps` resolves a request's schedule.
   */
  heavySteps: z.record(
    z.string().regex(/^[1-9][0-9]*$/, 'expected a step count'),
    z.array(z.array(z.number().int().nonnegative()).min(1)).min(1),
  ),
  /** Guidance scales the model was distilled at (1: conditional only, one row per image). */
  guidance: z.array(z.number().nonnegative()).min(1),
})
export type ModelSupport = z.infer<typeof modelSupportSchema>

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    modelId: modelIdSchema,
    createdAt: z.iso.datetime({ offset: true, local: true }),
    image: z.object({ channels: positiveInt, height: positiveInt, width: positiveInt }),
    classes: z.array(z.string().min(1)).min(1),
    nullClass: z.number().int().nonnegative(),
    schedule: z.object({
      kind: z.literal('cosine'),
      cosineOffset: z.number().positive(),
      alphaBarMin: z.number().positive().lt(1),
      prediction: z.literal('x0'),
      clipX0: z.tuple([z.number(), z.number()]),
    }),
    models: z.object({ heavy: modelSpecSchema, light: modelSpecSchema }),
    training: z.object({
      config: z.record(z.string(), z.unknown()),
      stepsTrained: z.number().int().nonnegative(),
      seconds: z.number().nonnegative(),
      device: z.string().min(1),
      datasetSha256: sha256Hex,
      torchVersion: z.string().min(1),
    }),
    recommended: z.object({
      steps: positiveInt,
      /** The uniform interval K of the recommended setting (evaluations compare every K against it). */
      heavyEvery: positiveInt,
      guidance: z.number().nonnegative(),
      /**
       * When present, requests that name no schedule run the calibrated placement of this many calls
       * (`{"calls": N}`, from heavyPlacements at `steps`) instead of every `heavyEvery`: recorded when
       * the frontier (npm run frontier) finds it cheaper at an FD within 5 % of heavy-every-step.
       */
      heavyCalls: positiveInt.optional(),
    }),
    golden: z.object({ file: z.string().min(1) }),
    /** One line for people choosing a model (GET /v1/models). */
    description: z.string().min(1).max(200).optional(),
    /** The model a distilled student was distilled from. */
    teacherModelId: modelIdSchema.optional(),
    supports: modelSupportSchema.optional(),
    /**
     * Calibrated heavy placements (npm run calibrate), by step count (the key, in decimal): entry N - 1
     * is where N heavy calls go, chosen from measured reuse costs; `heavySchedule: {"calls": N}` uses it.
     */
    heavyPlacements: z
      .record(
        z.string().regex(/^[1-9][0-9]*$/, 'expected a step count'),
        z.array(z.array(z.number().int().nonnegative()).min(1)),
      )
      .optional(),
  })
  .superRefine((manifest, ctx) => {
    if (manifest.supports) checkSupports(manifest, manifest.supports, ctx)
    if (manifest.heavyPlacements) checkPlacements(manifest.heavyPlacements, ctx)
    const { heavyCalls, steps } = manifest.recommended
    if (heavyCalls !== undefined && !manifest.heavyPlacements?.[String(steps)]?.[heavyCalls - 1]) {
      ctx.addIssue({
        code: 'custom',
        path: ['recommended', 'heavyCalls'],
        message: `no calibrated placement of ${heavyCalls} calls at ${steps} steps (heavyPlacements)`,
      })
    }
    if (manifest.nullClass < manifest.classes.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['nullClass'],
        message: `must not be a real class index (0..${manifest.classes.length - 1})`,
      })
    }
    const [low, high] = manifest.schedule.clipX0
    if (!(low < high)) {
      ctx.addIssue({
        code: 'custom',
        path: ['schedule', 'clipX0'],
        message: 'expected [low, high]',
      })
    }
    const { heavy, light } = manifest.models
    const expectNames = (
      specs: readonly TensorSpec[],
      names: readonly string[],
      path: (string | number)[],
    ) => {
      // Feeds go by name, so order is free; the set of names is not.
      const declared = specs.map((spec) => spec.name)
      if ([...declared].sort().join() !== [...names].sort().join()) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `expected tensors [${names.join(', ')}], got [${declared.join(', ')}]`,
        })
      }
    }
    expectNames(heavy.inputs, HEAVY_INPUTS, ['models', 'heavy', 'inputs'])
    expectNames(heavy.outputs, HEAVY_OUTPUTS, ['models', 'heavy', 'outputs'])
    expectNames(light.inputs, LIGHT_INPUTS, ['models', 'light', 'inputs'])
    expectNames(light.outputs, LIGHT_OUTPUTS, ['models', 'light', 'outputs'])
    // The light model consumes exactly what the heavy model produces.
    const produced = heavy.outputs.find((spec) => spec.name === 'features')
    const consumedIndex = light.inputs.findIndex((spec) => spec.name === 'features')
    const consumed = light.inputs[consumedIndex]
    if (produced && consumed && JSON.stringify(produced.shape) !== JSON.stringify(consumed.shape)) {
      ctx.addIssue({
        code: 'custom',
        path: ['models', 'light', 'inputs', consumedIndex, 'shape'],
        message: `must equal heavy features shape [${produced.shape.join(', ')}]`,
      })
    }
  })

/** Heavy steps of one run: sorted, distinct, from step 0, each below `steps`. */
function isPlacement(placement: readonly number[], steps: number): boolean {
  return (
    placement[0] === 0 &&
    placement.every((step, i) => step < steps && (i === 0 || step > (placement[i - 1] ?? -1)))
  )
}

/**
 * The options a request that names none runs: the recommended steps and guidance, and the calibrated
 * placement of `heavyCalls` calls where the manifest recommends one, else every `heavyEvery`.
 *
 * @example
 * recommendedOptions(manifest) // { steps: 50, heavySchedule: { every: 8 }, guidance: 1 }
 */
export function recommendedOptions(manifest: { recommended: Manifest['recommended'] }): {
  steps: number
  heavySchedule: { every: number } | { calls: number }
  guidance: number
} {
  const { steps, heavyEvery, heavyCalls, guidance } = manifest.recommended
  const heavySchedule = heavyCalls === undefined ? { every: heavyEvery } : { calls: heavyCalls }
  return { steps, heavySchedule, guidance }
}

/** A student's declared support must include its own recommended setting, with valid placements. */
function checkSupports(
  manifest: { recommended: Manifest['recommended'] },
  supports: ModelSupport,
  ctx: z.RefinementCtx,
): void {
  for (const [key, placements] of Object.entries(supports.heavySteps)) {
    const steps = Number(key)
    if (!supports.steps.includes(steps)) {
      ctx.addIssue({
        code: 'custom',
        path: ['supports', 'heavySteps', key],
        message: `${steps} is not one of supports.steps`,
      })
    }
    placements.forEach((placement, index) => {
      if (!isPlacement(placement, steps)) {
        ctx.addIssue({
          code: 'custom',
          path: ['supports', 'heavySteps', key, index],
          message: `expected sorted distinct step indices from 0, below ${steps}`,
        })
      }
    })
  }
  for (const steps of supports.steps) {
    if (!(String(steps) in supports.heavySteps)) {
      ctx.addIssue({
        code: 'custom',
        path: ['supports', 'heavySteps'],
        message: `no placement for ${steps} steps`,
      })
    }
  }
  for (const issue of unsupportedOptions(supports, recommendedOptions(manifest))) {
    ctx.addIssue({
      code: 'custom',
      path: ['recommended'],
      message: `not supported: ${issue.message}`,
    })
  }
}

/** Placement N - 1 of an S-step table must be N sorted distinct steps from 0, each below S. */
function checkPlacements(table: Record<string, number[][]>, ctx: z.RefinementCtx): void {
  for (const [key, placements] of Object.entries(table)) {
    const steps = Number(key)
    if (placements.length !== steps) {
      ctx.addIssue({
        code: 'custom',
        path: ['heavyPlacements', key],
        message: `expected one placement per budget 1..${steps}, got ${placements.length}`,
      })
    }
    placements.forEach((placement, index) => {
      if (placement.length !== index + 1 || !isPlacement(placement, steps)) {
        ctx.addIssue({
          code: 'custom',
          path: ['heavyPlacements', key, index],
          message: `expected ${index + 1} sorted distinct step indices from 0, below ${steps}`,
        })
      }
    })
  }
}

export type TensorSpec = z.infer<typeof tensorSpecSchema>
export type ModelSpec = z.infer<typeof modelSpecSchema>
export type Manifest = z.infer<typeof manifestSchema>

/**
 * Parses and validates a manifest (JSON text or an already parsed value). On failure the Error lists
 * every invalid path, one per line.
 *
 * @example
 * const manifest = parseManifest(await readFile('gpu-service/models/manifest.json', 'utf8'))
 * manifest.models.heavy.macsPerCall
 */
export function parseManifest(json: unknown): Manifest {
  let value = json
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json)
    } catch (error) {
      throw new Error(`Invalid model manifest: not JSON (${(error as Error).message})`)
    }
  }
  const result = manifestSchema.safeParse(value)
  if (!result.success) {
    const lines = listIssues(result.error).map((issue) => `  ${formatIssue(issue)}`)
    throw new Error(`Invalid model manifest:\n${lines.join('\n')}`)
  }
  return result.data
}
