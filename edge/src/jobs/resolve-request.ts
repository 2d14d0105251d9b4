// From what a caller sent to what the job runs: the model named (or the default), class names become
// indices, absent options take the model's recommended values, a missing seed is drawn, and the result
// is checked as the gpu-service will check it, then against what the model supports (a distilled
// few-step model samples only the step counts, heavy placements and guidance it was distilled for).
import type { GenerationRequest, Model } from '../../../shared/generation-api.ts'
import { defaultHeavySchedule, unsupportedOptions } from '../../../shared/model-support.ts'
import { type RunRequest, runRequestSchema } from '../../../shared/run-protocol.ts'
import { MAX_SEED } from '../../../shared/sampling-options.ts'
import type { ModelCatalog } from '../models/catalog.ts'
import { fieldErrors, invalidRequest } from '../problems/api-error.ts'

/** A uniformly drawn seed in [0, MAX_SEED]. */
export function drawSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] ?? 0
}

/**
 * The model a request runs on: the one it names, or the catalog's default. Throws the 400
 * `invalidRequest` naming `model` for an id the catalog does not have.
 *
 * @example
 * resolveModel({ class: 'Sneaker' }, catalog).id // the default model's id
 */
export function resolveModel(body: Pick<GenerationRequest, 'model'>, catalog: ModelCatalog): Model {
  if (body.model === undefined) return catalog.defaultModel
  const found = catalog.find(body.model)
  if (found) return found
  const ids = catalog.models.map((model) => model.id).join(', ')
  throw invalidRequest([
    {
      field: 'model',
      message: `unknown model ${JSON.stringify(body.model)}; GET /v1/models lists them: ${ids}`,
    },
  ])
}

/**
 * The run request for a generation request on `model` (the model itself is not part of it: the job
 * sends its id with each attempt); throws the 400 `invalidRequest` for an unknown class name, options
 * that contradict each other (a heavy step past the last step), or options the model does not support
 * (each refused field named: `steps`, `heavySchedule`, `guidance`).
 *
 * @example
 * const run = resolveRunRequest({ class: 'Sneaker' }, model, drawSeed)
 * run.steps // the model's recommended steps
 */
export function resolveRunRequest(
  body: GenerationRequest,
  model: Model,
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
  const steps = body.steps ?? model.defaults.steps
  const candidate = {
    classIndex,
    count: body.count ?? model.defaults.count,
    steps,
    heavySchedule:
      body.heavySchedule ?? defaultHeavySchedule(model.defaults, model.calibratedSteps, steps),
    guidance: body.guidance ?? model.defaults.guidance,
    seed: body.seed ?? Math.min(seed(), MAX_SEED),
    previewEvery: body.previewEvery ?? model.defaults.previewEvery,
  }
  const checked = runRequestSchema.safeParse(candidate)
  if (!checked.success) throw invalidRequest(fieldErrors(checked.error))
  const unsupported = unsupportedOptions(model.supports, checked.data, model.calibratedSteps)
  if (unsupported.length > 0) {
    throw invalidRequest(
      unsupported.map((issue) => ({ field: issue.path.join('.'), message: issue.message })),
    )
  }
  return checked.data
}
