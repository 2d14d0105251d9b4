// The edge -> gpu-service run protocol: the request the edge forwards, and the events the service streams
// back as it works. Both sides validate with these schemas; framing is SSE (see sse.ts).
import { z } from 'zod'
import { modelIdSchema } from './model-manifest.ts'
import { problemSchema } from './problem.ts'
import { MAX_STEPS, samplingOptionsSchema } from './sampling-options.ts'

/** A run's id: chosen by the caller (the edge's own id, so it can cancel before `accepted`) or the service. */
export const runIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1 to 64 letters, digits, "-" or "_"')

/** POST /v1/runs body: sampler options, how often to send an x0 preview (0 = never), an optional id. */
export const runRequestSchema = samplingOptionsSchema.safeExtend({
  /** Which loaded model runs it (GET /readyz lists them); absent means the service's default model. */
  model: modelIdSchema.optional(),
  /** Send a `preview` event every N steps (and on the last step); 0 sends none. */
  previewEvery: z.number().int().min(0).max(MAX_STEPS).default(0),
  runId: runIdSchema.optional(),
})
export type RunRequest = z.infer<typeof runRequestSchema>

/**
 * Problem `type`s of a run's `error` event, one per way a run ends without a result. The edge decides
 * from the type whether another backend may succeed: a run past its own deadline would time out
 * anywhere, so only a shutdown (draining) or an internal failure is worth another attempt.
 */
export const RUN_PROBLEM_TYPES = {
  cancelled: '/problems/run-cancelled',
  disconnected: '/problems/run-disconnected',
  deadlineExceeded: '/problems/run-deadline-exceeded',
  shutdown: '/problems/run-shutdown',
  failed: '/problems/run-failed',
} as const

/**
 * Problem `type` of POST /v1/runs (HTTP 404) when the request names a model this service has not loaded:
 * a fleet mid-rollout may run different model sets, so the edge tries another backend, and holds it
 * against none.
 */
export const MODEL_NOT_LOADED_PROBLEM = '/problems/model-not-loaded'

/** Error-event problem types after which the same request may succeed on another backend. */
export const RETRYABLE_RUN_PROBLEMS: ReadonlySet<string> = new Set([
  RUN_PROBLEM_TYPES.shutdown,
  RUN_PROBLEM_TYPES.failed,
])

const runId = runIdSchema
const base64Png = z.string().min(1)
const count = z.number().int().nonnegative()

/**
 * A gpu-service's load at one moment, from its step scheduler: what the edge routes by. Rows are model
 * rows (an image, or two with guidance other than 1); `capacityRows` is how many may step at once.
 */
export const backendLoadSchema = z.strictObject({
  /** Runs accepted and waiting for a slot. */
  queuedRuns: count,
  queuedRows: count,
  /** Runs stepping now. */
  activeRuns: count,
  activeRows: count,
  capacityRows: z.number().int().positive(),
  /** Runs that may step at once (DUALRATE_MAX_ACTIVE_RUNS): past it, a new run waits in the queue. */
  capacityRuns: z.number().int().positive().optional(),
  /** Shutting down: it takes no new run. */
  draining: z.boolean(),
})
export type BackendLoad = z.infer<typeof backendLoadSchema>

/**
 * Request header that asks the service to add its load to the `accepted` event. Opt-in, so an edge that
 * predates the field (its `accepted` schema is strict) keeps working against a newer service; the
 * service ignores any other value, and an older service ignores the header.
 */
export const LOAD_REPORT_HEADER = 'x-dualrate-load-report'
export const LOAD_REPORT_REQUESTED = '1'

/**
 * GET /v1/load answer (signed like every /v1 route). `GET /v1/load/{probeId}` answers the same: the
 * signature covers the path but not the query, and the service refuses a repeated signature, so a
 * caller that may ask twice within a second (the timestamp's resolution) puts a fresh id in the path.
 */
export const loadResponseSchema = z.strictObject({ load: backendLoadSchema })
export type LoadResponse = z.infer<typeof loadResponseSchema>
export const probeIdSchema = runIdSchema

export const runTimingsSchema = z.strictObject({
  heavyCalls: z.number().int().nonnegative(),
  lightCalls: z.number().int().nonnegative(),
  /** Multiply-accumulates of every model call of this run (guidance rows included). */
  macs: z.number().nonnegative(),
  /** Queue wait before the first step. */
  queueMs: z.number().nonnegative(),
  /** First step to result. */
  wallMs: z.number().nonnegative(),
})

/** One event of a run's stream; `type` is also the SSE `event:` field. */
export const runEventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('accepted'),
    runId,
    queuePosition: z.number().int().nonnegative(),
    /** The service's load with this run queued; only when the request asked (LOAD_REPORT_HEADER). */
    load: backendLoadSchema.optional(),
  }),
  z.strictObject({ type: z.literal('started'), runId, modelId: z.string() }),
  z.strictObject({
    type: z.literal('step'),
    runId,
    step: z.number().int().nonnegative(),
    totalSteps: z.number().int().positive(),
    t: z.number(),
    heavy: z.boolean(),
    /** Heavy calls so far, this step's included; optional so an edge accepts a service that predates it. */
    heavyCalls: z.number().int().nonnegative().optional(),
    elapsedMs: z.number().nonnegative(),
  }),
  z.strictObject({
    type: z.literal('preview'),
    runId,
    step: z.number().int().nonnegative(),
    /** The current x0 estimate of each image as a PNG, base64. */
    images: z.array(base64Png),
  }),
  z.strictObject({
    type: z.literal('result'),
    runId,
    modelId: z.string(),
    images: z.array(base64Png),
    timings: runTimingsSchema,
  }),
  z.strictObject({ type: z.literal('error'), runId, problem: problemSchema }),
])
export type RunEvent = z.infer<typeof runEventSchema>
export type RunEventType = RunEvent['type']

/** DELETE /v1/runs/:id answer, sent once the run has stopped: what it did before it stopped. */
export const runCancellationSchema = z.strictObject({
  runId,
  /** Steps completed; no model call of this run starts after the answer. */
  stepsCompleted: z.number().int().nonnegative(),
  heavyCalls: z.number().int().nonnegative(),
  lightCalls: z.number().int().nonnegative(),
})
export type RunCancellation = z.infer<typeof runCancellationSchema>
