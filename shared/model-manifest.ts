// The model manifest (gpu-service/models/manifest.json), written by the Python export and checked on load.
import { z } from 'zod'
import { formatIssue, listIssues } from './issues.ts'

/** Names of the dynamic batch dimension in declared tensor shapes. */
export const BATCH_DIM = 'batch'

/** The tensor names the sampler feeds and reads; the export writes exactly these. */
export const HEAVY_INPUTS = ['x_s', 's', 'label'] as const
export const HEAVY_OUTPUTS = ['features'] as const
export const LIGHT_INPUTS = ['x_t', 't', 'label', 'features'] as const
export const LIGHT_OUTPUTS = ['x0'] as const

const positiveInt = z.number().int().positive()
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

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    modelId: z.string().regex(/^dualrate-[0-9a-f]{12}$/, 'expected "dualrate-" and 12 hex digits'),
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
      heavyEvery: positiveInt,
      guidance: z.number().nonnegative(),
    }),
    golden: z.object({ file: z.string().min(1) }),
  })
  .superRefine((manifest, ctx) => {
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
