// What a generation job remembers (one row of its Durable Object, validated with a versioned Zod schema
// on every load), and how each owner sees it as the public `Generation` resource.
//
// One job (one result key) is shared by every API key that asked for the same pixels, but each key sees
// its own view: a key that canceled sees `canceled` even while the run goes on for the others, and a key
// whose run ended keeps that ending when a later request starts the job again.
import { z } from 'zod'
import {
  GENERATION_STATUSES,
  type Generation,
  TERMINAL_STATUSES,
} from '../../../shared/generation-api.ts'
import { problemSchema } from '../../../shared/problem.ts'
import { runRequestSchema, runTimingsSchema } from '../../../shared/run-protocol.ts'
import { imageUrls } from '../results/result-store.ts'

export type RunTimings = z.infer<typeof runTimingsSchema>

/** The version written now; older rows are migrated on load (see `parseJobState`). */
export const JOB_STATE_VERSION = 2

/** How one owner's view of the job ended: a snapshot taken when it ended for that owner. */
const ownerOutcomeSchema = z.strictObject({
  status: z.enum(TERMINAL_STATUSES),
  /** The terminal event this owner's stream ends with. */
  eventId: z.number().int().positive(),
  finishedAt: z.number(),
  step: z.number().int().nonnegative(),
  attempts: z.number().int().nonnegative(),
  startedAt: z.number().optional(),
  timings: runTimingsSchema.optional(),
  error: problemSchema.optional(),
})
export type OwnerOutcome = z.infer<typeof ownerOutcomeSchema>

const ownerSchema = z.strictObject({
  joinedAt: z.number(),
  /** The first event of the run this owner joined: its streams replay from here. */
  fromEventId: z.number().int().nonnegative(),
  /** Holds a concurrent-jobs slot and follows the current run. */
  attached: z.boolean(),
  /** Set once the job ended for this owner (its own cancel, or the end of the run it followed). */
  outcome: ownerOutcomeSchema.optional(),
})
export type Owner = z.infer<typeof ownerSchema>

export const jobStateSchema = z.strictObject({
  version: z.literal(JOB_STATE_VERSION),
  /** The result key, which is also the job id. */
  key: z.string(),
  /** Origin of the API the job was created through; URLs in events and bodies start with it. */
  origin: z.string(),
  modelId: z.string(),
  className: z.string(),
  request: runRequestSchema,
  /** The shared status of the current run (see `job-machine.ts` for its transitions). */
  status: z.enum(GENERATION_STATUSES),
  /** Runs of this job so far; a run that failed or was canceled is followed by a new one on request. */
  run: z.number().int().positive(),
  /** Backend attempts of the current run (failovers and resumptions included). */
  attempts: z.number().int().nonnegative(),
  /** Steps done in the current attempt. */
  step: z.number().int().nonnegative(),
  createdAt: z.number(),
  startedAt: z.number().optional(),
  finishedAt: z.number().optional(),
  /** When the current run times out (alarm); cleared when it ends. */
  deadline: z.number().optional(),
  /** When the event log of the ended run is pruned (alarm); cleared once done. */
  pruneAt: z.number().optional(),
  timings: runTimingsSchema.optional(),
  error: problemSchema.optional(),
  /** The backend attempt in progress, for cancellation. Never shown to callers. */
  backend: z.strictObject({ url: z.string(), runId: z.string() }).optional(),
  requestId: z.string(),
  /** First event of the current run. */
  firstEventId: z.number().int().nonnegative(),
  /** The terminal event of the current run, once it has ended. */
  endEventId: z.number().int().positive().optional(),
  /** API key id (SHA-256 of the key) -> that key's relation to this job. */
  owners: z.record(z.string(), ownerSchema),
})
export type JobState = z.infer<typeof jobStateSchema>

/** The row written by the first version (no `version`): one owners list of slot holders. */
const jobStateV1Schema = z.looseObject({
  key: z.string(),
  status: z.enum(GENERATION_STATUSES),
  owners: z.array(z.string()),
  backendUrl: z.string().optional(),
  runId: z.string().optional(),
  firstEventId: z.number().int().nonnegative(),
})

/**
 * A stored row as the current state: validated, and migrated from version 1. Throws an Error naming
 * the first bad fields for a row that is neither, so a corrupt job fails loudly instead of misbehaving.
 *
 * @example
 * const state = parseJobState(JSON.parse(row.state))
 */
export function parseJobState(stored: unknown): JobState {
  try {
    return parseOrMigrate(stored)
  } catch (error) {
    if (!(error instanceof z.ZodError)) throw error
    const fields = error.issues
      .slice(0, 3)
      .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
    throw new Error(`Stored job state is invalid (${fields.join('; ')})`)
  }
}

function parseOrMigrate(stored: unknown): JobState {
  if (typeof stored === 'object' && stored !== null && !('version' in stored)) {
    const v1 = jobStateV1Schema.parse(stored)
    const { owners, backendUrl, runId, ...rest } = v1
    const joinedAt = typeof rest.createdAt === 'number' ? rest.createdAt : 0
    return jobStateSchema.parse({
      ...rest,
      version: JOB_STATE_VERSION,
      run: 1,
      ...(backendUrl && runId ? { backend: { url: backendUrl, runId } } : {}),
      // Version 1 kept only the slot holders of an active job; they follow the run.
      owners: Object.fromEntries(
        owners.map((id) => [id, { joinedAt, fromEventId: v1.firstEventId, attached: true }]),
      ),
    })
  }
  return jobStateSchema.parse(stored)
}

/** The job as one owner sees it: its own ending, if it has one, over the shared state. */
export type JobView = Omit<JobState, 'owners' | 'backend'>

/**
 * The view of `ownerId`, or null when that key is not an owner (the route answers 404 then, so a job's
 * existence is not revealed to other keys).
 *
 * @example
 * const view = viewFor(state, apiKey.id)
 * if (!view) throw notFound(`No generation ${id}.`)
 */
export function viewFor(state: JobState | null, ownerId: string): JobView | null {
  const owner = state?.owners[ownerId]
  if (!state || !owner) return null
  const { owners: _owners, backend: _backend, ...shared } = state
  const outcome = owner.outcome
  if (!outcome) return shared
  const { timings: _timings, error: _error, ...rest } = shared
  const view: JobView = {
    ...rest,
    status: outcome.status,
    finishedAt: outcome.finishedAt,
    step: outcome.step,
    attempts: outcome.attempts,
  }
  delete view.deadline
  if (outcome.startedAt !== undefined) view.startedAt = outcome.startedAt
  else delete view.startedAt
  if (outcome.timings) view.timings = outcome.timings
  if (outcome.error) view.error = outcome.error
  return view
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString())

/**
 * The public resource for an owner's view of a job.
 *
 * @example
 * return c.json(toGeneration(view))
 */
export function toGeneration(view: JobView): Generation {
  const base = `${view.origin}/v1/generations/${view.key}`
  const { previewEvery, classIndex, runId: _runId, ...options } = view.request
  const generation: Generation = {
    id: view.key,
    status: view.status,
    modelId: view.modelId,
    request: { classIndex, className: view.className, ...options, previewEvery },
    progress: { step: view.step, totalSteps: view.request.steps, attempts: view.attempts },
    createdAt: new Date(view.createdAt).toISOString(),
    urls: { self: base, events: `${base}/events`, cancel: `${base}/cancel` },
  }
  const startedAt = iso(view.startedAt)
  const finishedAt = iso(view.finishedAt)
  if (startedAt) generation.startedAt = startedAt
  if (finishedAt) generation.finishedAt = finishedAt
  if (view.timings) generation.timings = view.timings
  if (view.error) generation.error = view.error
  if (view.status === 'succeeded') {
    generation.urls.images = imageUrls(view.origin, view.key, view.request.count)
  }
  return generation
}
