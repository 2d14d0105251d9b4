// The public generation API the edge serves (/v1/generations): what a caller sends, the job resource it
// gets back, and the events of a job's SSE stream. The OpenAPI document is generated from these schemas.
import { z } from 'zod'
import { modelIdSchema, modelSupportSchema } from './model-manifest.ts'
import { problemSchema } from './problem.ts'
import { runTimingsSchema } from './run-protocol.ts'
import {
  CLASS_COUNT,
  heavyScheduleSchema,
  MAX_COUNT,
  MAX_GUIDANCE,
  MAX_SEED,
  MAX_STEPS,
} from './sampling-options.ts'

export const GENERATION_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const
export type GenerationStatus = (typeof GENERATION_STATUSES)[number]
export const TERMINAL_STATUSES = ['succeeded', 'failed', 'canceled'] as const
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number]

/**
 * True when a status is final: no event follows it and the job never leaves it.
 *
 * @example
 * if (isTerminalStatus(generation.status)) return generation
 */
export function isTerminalStatus(status: GenerationStatus): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly GenerationStatus[]).includes(status)
}

/** Longest `Prefer: wait=N` honoured, in seconds. */
export const MAX_PREFER_WAIT_SECONDS = 60

/** A result key: 64 hex digits of an HMAC over the model id and the canonical request. */
export const RESULT_KEY_PATTERN = /^[0-9a-f]{64}$/

/** POST /v1/generations body. Absent options take the model's recommended values; no seed draws one. */
export const generationRequestSchema = z
  .strictObject({
    class: z
      .union([
        z
          .number()
          .int()
          .min(0)
          .max(CLASS_COUNT - 1),
        z.string().min(1).max(64),
      ])
      .meta({ description: 'Class index, or class name as listed by GET /v1/models.' }),
    model: modelIdSchema.optional().meta({
      description:
        'Model id as listed by GET /v1/models; absent means the default model. A distilled model ' +
        'accepts only the steps, heavy schedules and guidance its `supports` lists.',
    }),
    count: z.number().int().min(1).max(MAX_COUNT).optional(),
    steps: z.number().int().min(1).max(MAX_STEPS).optional(),
    heavySchedule: heavyScheduleSchema.optional().meta({
      description:
        'When the heavy encoder runs: every K-th step ({"every": K}), at listed steps ({"steps": [...]}), ' +
        'N calibrated calls ({"calls": N}) or decided while sampling ({"adaptive": {"tolerance": T}}). ' +
        "Absent: the model's defaults.heavySchedule; where that is calibrated calls and the request's " +
        'steps have no calibrated placements, every ceil(defaults.steps / calls) steps.',
    }),
    guidance: z.number().min(0).max(MAX_GUIDANCE).optional(),
    seed: z.number().int().min(0).max(MAX_SEED).optional(),
    previewEvery: z.number().int().min(0).max(MAX_STEPS).optional().meta({
      description: 'Send a `preview` event every N steps; 0 or absent sends none.',
    }),
    webhookUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .optional()
      .meta({
        description: 'Receives a signed POST (Standard Webhooks) when the job ends.',
      }),
  })
  .meta({ id: 'GenerationRequest' })
export type GenerationRequest = z.infer<typeof generationRequestSchema>

/** The sampler options the job runs with, every default filled in. */
export const resolvedGenerationSchema = z
  .strictObject({
    classIndex: z.number().int(),
    className: z.string(),
    count: z.number().int(),
    steps: z.number().int(),
    heavySchedule: heavyScheduleSchema,
    guidance: z.number(),
    seed: z.number().int(),
    previewEvery: z.number().int(),
  })
  .meta({ id: 'ResolvedGeneration' })

export const generationUrlsSchema = z.strictObject({
  self: z.url(),
  events: z.url(),
  cancel: z.url(),
  /** One URL per image once the job has succeeded. */
  images: z.array(z.url()).optional(),
})

/** GET /v1/generations/:id, and the body of POST /v1/generations. */
export const generationSchema = z
  .strictObject({
    id: z.string(),
    status: z.enum(GENERATION_STATUSES),
    modelId: z.string(),
    request: resolvedGenerationSchema,
    progress: z.strictObject({
      step: z.number().int().nonnegative(),
      totalSteps: z.number().int().positive(),
      /** Backend attempts so far; more than one means a failover happened. */
      attempts: z.number().int().nonnegative(),
    }),
    createdAt: z.iso.datetime(),
    startedAt: z.iso.datetime().optional(),
    finishedAt: z.iso.datetime().optional(),
    timings: runTimingsSchema.optional(),
    error: problemSchema.optional(),
    urls: generationUrlsSchema,
  })
  .meta({ id: 'Generation' })
export type Generation = z.infer<typeof generationSchema>

/** The `data` of each SSE event of GET /v1/generations/:id/events, by event name. */
export const generationEventSchemas = {
  queued: z.strictObject({ id: z.string() }),
  /**
   * The run starts again, so step numbers begin at 0 once more: on another backend after one failed
   * (`backend-failed`), or after the job itself was restarted mid-run (`job-resumed`). The pixels stay
   * the same (same seed).
   */
  retrying: z.strictObject({
    attempt: z.number().int().min(2),
    reason: z.enum(['backend-failed', 'job-resumed']),
  }),
  started: z.strictObject({ attempt: z.number().int().positive(), modelId: z.string() }),
  step: z.strictObject({
    step: z.number().int().nonnegative(),
    totalSteps: z.number().int().positive(),
    t: z.number(),
    heavy: z.boolean(),
    /** Heavy-encoder calls of this attempt so far, this step's included (absent from older backends). */
    heavyCalls: z.number().int().nonnegative().optional(),
    elapsedMs: z.number().nonnegative(),
  }),
  preview: z.strictObject({
    step: z.number().int().nonnegative(),
    /** The current x0 estimate of each image as a small PNG, base64. */
    images: z.array(z.string()),
  }),
  succeeded: z.strictObject({ images: z.array(z.url()), timings: runTimingsSchema }),
  failed: z.strictObject({ problem: problemSchema }),
  canceled: z.strictObject({}),
} as const
export type GenerationEventName = keyof typeof generationEventSchemas
export type GenerationEventData<Name extends GenerationEventName> = z.infer<
  (typeof generationEventSchemas)[Name]
>

/** GET /v1/models: what a caller may ask for, and what it gets when it asks for nothing. */
export const modelSchema = z
  .strictObject({
    id: z.string(),
    /** The model a request without `model` runs on; exactly one model is the default. */
    default: z.boolean(),
    description: z.string().optional(),
    /** For a distilled model: the model it was distilled from. */
    teacherModelId: z.string().optional(),
    supports: modelSupportSchema.optional().meta({
      description:
        'Present on a distilled few-step model: the only step counts, heavy-encoder placements (0-based ' +
        'step indices, by step count) and guidance it accepts. Absent: every valid option.',
    }),
    calibratedSteps: z
      .array(z.number().int())
      .optional()
      .meta({
        description:
          'Step counts with calibrated heavy placements: there `heavySchedule: {"calls": N}` runs N ' +
          'heavy calls where reuse was measured to hurt most, for any N from 1 to the step count.',
      }),
    image: z.strictObject({
      channels: z.number().int(),
      height: z.number().int(),
      width: z.number().int(),
    }),
    classes: z.array(z.strictObject({ index: z.number().int(), name: z.string() })),
    defaults: z.strictObject({
      count: z.number().int(),
      steps: z.number().int(),
      heavySchedule: heavyScheduleSchema,
      guidance: z.number(),
      previewEvery: z.number().int(),
    }),
    limits: z.strictObject({
      maxCount: z.number().int(),
      maxSteps: z.number().int(),
      maxGuidance: z.number(),
      maxSeed: z.number().int(),
    }),
    cost: z
      .strictObject({
        heavyMacsPerRow: z.number().nonnegative(),
        lightMacsPerRow: z.number().nonnegative(),
        /** One image at the model's defaults. */
        macsPerImage: z.number().nonnegative(),
      })
      .meta({
        description:
          'Multiply-accumulates of one image row in one heavy or light model call. A guided image ' +
          '(guidance other than 1) is two rows; a run costs rows x (heavy calls x heavy + steps x light).',
      }),
  })
  .meta({ id: 'Model' })
export const modelListSchema = z
  .strictObject({ data: z.array(modelSchema) })
  .meta({ id: 'ModelList' })
export type Model = z.infer<typeof modelSchema>
