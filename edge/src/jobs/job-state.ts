// What a generation job remembers (persisted as one row of its Durable Object), and how it is shown to
// callers as the public `Generation` resource.
import type { Generation, GenerationStatus } from '../../../shared/generation-api.ts'
import { TERMINAL_STATUSES } from '../../../shared/generation-api.ts'
import type { Problem } from '../../../shared/problem.ts'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import { imageUrls } from '../results/result-store.ts'

export type RunTimings = NonNullable<Generation['timings']>

export interface JobState {
  /** The result key, which is also the job id. */
  key: string
  /** Origin of the API the job was created through; URLs in events and bodies start with it. */
  origin: string
  modelId: string
  className: string
  request: RunRequest
  status: GenerationStatus
  /** Backend attempts of the current run (failovers included). */
  attempts: number
  /** Steps done in the current attempt. */
  step: number
  createdAt: number
  startedAt?: number
  finishedAt?: number
  /** When the job times out (alarm); cleared when it ends. */
  deadline?: number
  timings?: RunTimings
  error?: Problem
  /** API key ids that hold a concurrent-jobs slot for this job. */
  owners: string[]
  /** The backend run in progress, for cancellation. */
  backendUrl?: string
  runId?: string
  requestId: string
  /** First event of this run of the job: late subscribers replay from here. */
  firstEventId: number
}

export const isTerminal = (status: GenerationStatus) => TERMINAL_STATUSES.includes(status)

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString())

/**
 * The public resource for a job.
 *
 * @example
 * return c.json(toGeneration(await stub.snapshot()))
 */
export function toGeneration(state: JobState): Generation {
  const base = `${state.origin}/v1/generations/${state.key}`
  const { previewEvery, classIndex, ...options } = state.request
  const generation: Generation = {
    id: state.key,
    status: state.status,
    modelId: state.modelId,
    request: { classIndex, className: state.className, ...options, previewEvery },
    progress: { step: state.step, totalSteps: state.request.steps, attempts: state.attempts },
    createdAt: new Date(state.createdAt).toISOString(),
    urls: { self: base, events: `${base}/events`, cancel: `${base}/cancel` },
  }
  const startedAt = iso(state.startedAt)
  const finishedAt = iso(state.finishedAt)
  if (startedAt) generation.startedAt = startedAt
  if (finishedAt) generation.finishedAt = finishedAt
  if (state.timings) generation.timings = state.timings
  if (state.error) generation.error = state.error
  if (state.status === 'succeeded') {
    generation.urls.images = imageUrls(state.origin, state.key, state.request.count)
  }
  return generation
}
