// From what a caller sent to what the job runs: class names become indices, absent options take the
// model's defaults, a missing seed is drawn, and the result is checked as the gpu-service will check it.
import type { GenerationRequest } from '../../../shared/generation-api.ts'
import { type RunRequest, runRequestSchema } from '../../../shared/run-protocol.ts'
import { MAX_SEED } from '../../../shared/sampling-options.ts'
import { fieldErrors, invalidRequest } from '../http/problem.ts'
import type { model as servedModel } from '../models/manifest.ts'

type ServedModel = typeof servedModel

/** A uniformly drawn seed in [0, MAX_SEED]. */
export function drawSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] ?? 0
}

/**
 * The run request for a generation request; throws the 400 `invalidRequest` for an unknown class name
 * or options that contradict each other (a heavy step past the last step).
 *
 * @example
 * const run = resolveRunRequest({ class: 'Sneaker' }, model, drawSeed)
 * run.steps // the model's recommended steps
 */
export function resolveRunRequest(
  body: GenerationRequest,
  model: ServedModel,
  seed: () => number = drawSeed,
): RunRequest {
  const classIndex =
    typeof body.class === 'number'
      ? body.class
      : model.classes.find(
          (entry) => entry.name.toLowerCase() === body.class.toString().toLowerCase(),
        )?.index
  if (classIndex === undefined || classIndex >= model.classes.length) {
    const names = model.classes.map((entry) => entry.name).join(', ')
    throw invalidRequest([{ field: 'class', message: `unknown class; expected one of: ${names}` }])
  }
  const candidate = {
    classIndex,
    count: body.count ?? model.defaults.count,
    steps: body.steps ?? model.defaults.steps,
    heavySchedule: body.heavySchedule ?? model.defaults.heavySchedule,
    guidance: body.guidance ?? model.defaults.guidance,
    seed: body.seed ?? Math.min(seed(), MAX_SEED),
    previewEvery: body.previewEvery ?? model.defaults.previewEvery,
  }
  const checked = runRequestSchema.safeParse(candidate)
  if (!checked.success) throw invalidRequest(fieldErrors(checked.error))
  return checked.data
}
