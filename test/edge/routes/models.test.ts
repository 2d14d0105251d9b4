// Choosing a model: GET /v1/models lists every model, and POST /v1/generations takes `model`, resolves
// defaults from it, refuses what a distilled model does not support, keys results by it and forwards it
// to the backend. The catalog here is the committed default model and a fixture 8-step student
// (test/edge/helpers/model-catalog.ts).
import { describe, expect, it } from 'vitest'
import defaultManifest from '../../../gpu-service/models/manifest.json' with { type: 'json' }
import { call, createKey, postGeneration, readEvents, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'
import {
  DEFAULT_MODEL_ID,
  STUDENT_MODEL_ID,
  studentManifest,
  useTwoModelCatalog,
} from '../helpers/model-catalog.ts'

type Job = {
  id: string
  status: string
  modelId: string
  request: { steps: number; heavySchedule: unknown; guidance: number; seed: number }
  urls: { self: string; events: string }
}
type Problem = { status: number; type: string; errors: { field: string; message: string }[] }

const backends = useFakeBackends()
useTwoModelCatalog()

const { heavy, light } = defaultManifest.models
const path = (url: string) => new URL(url).pathname
const sentRuns = () =>
  backends()
    .runRequests()
    .map((request) => JSON.parse(request.body))

async function post(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const { authorization } = await createKey()
  const response = await postGeneration(authorization, { class: 'Sneaker', ...body }, headers)
  return { response, authorization }
}

describe('GET /v1/models', () => {
  it('lists every model, the default first, with what each supports and costs per image', async () => {
    const response = await call('/v1/models')
    expect(response.status).toBe(200)
    const { data } = (await response.json()) as { data: Record<string, unknown>[] }
    expect(data.map((model) => [model.id, model.default])).toEqual([
      [DEFAULT_MODEL_ID, true],
      [STUDENT_MODEL_ID, false],
    ])
    // The default model recommends a calibrated number of heavy calls at its recommended steps.
    const { steps, heavyCalls, guidance } = defaultManifest.recommended
    const defaultRows = guidance === 1 ? 1 : 2
    expect(data[0]).not.toHaveProperty('supports')
    expect(data[0]).toMatchObject({
      defaults: { steps, heavySchedule: { calls: heavyCalls }, guidance },
      cost: {
        macsPerImage: defaultRows * (heavyCalls * heavy.macsPerCall + steps * light.macsPerCall),
      },
    })
    expect(data[1]).toMatchObject({
      description: studentManifest.description,
      teacherModelId: DEFAULT_MODEL_ID,
      supports: { steps: [8], heavySteps: { '8': [[0, 2, 4, 6], [0]] }, guidance: [1] },
      defaults: { steps: 8, heavySchedule: { every: 2 }, guidance: 1 },
      cost: {
        heavyMacsPerRow: heavy.macsPerCall,
        lightMacsPerRow: light.macsPerCall,
        macsPerImage: 4 * heavy.macsPerCall + 8 * light.macsPerCall,
      },
    })
  })
})

describe('POST /v1/generations with `model`', () => {
  it('rejects an unknown model id with 400 naming `model` and pointing at GET /v1/models', async () => {
    const { response } = await post({ model: 'dualrate-000000000000' })
    expect(response.status).toBe(400)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    const problem = (await response.json()) as Problem
    expect(problem.type).toBe('/problems/validation')
    expect(problem.errors).toEqual([
      {
        field: 'model',
        message:
          'unknown model "dualrate-000000000000"; GET /v1/models lists them: ' +
          `${DEFAULT_MODEL_ID}, ${STUDENT_MODEL_ID}`,
      },
    ])
    expect(backends().runRequests()).toEqual([])
  })

  it('rejects a model that is not a model id with 400 naming `model`', async () => {
    const { response } = await post({ model: 'mmd-8step' })
    expect(response.status).toBe(400)
    expect(((await response.json()) as Problem).errors).toEqual([
      {
        field: 'model',
        message: 'expected "dualrate-" and 12 hex digits, as GET /v1/models lists',
      },
    ])
  })

  for (const [field, options, message] of [
    ['steps', { steps: 50 }, 'this model samples with 8 steps only'],
    [
      'heavySchedule',
      { heavySchedule: { every: 4 } },
      'at 8 steps this model runs the heavy encoder at {"steps":[0,2,4,6]} or {"steps":[0]} only',
    ],
    ['guidance', { guidance: 2 }, 'this model was distilled at guidance 1 only'],
  ] as const) {
    it(`rejects ${field} the distilled model does not support with 400 naming ${field}`, async () => {
      const { response } = await post({ model: STUDENT_MODEL_ID, ...options })
      expect(response.status).toBe(400)
      const problem = (await response.json()) as Problem & { detail: string }
      expect(problem.type).toBe('/problems/validation')
      expect(problem.errors).toEqual([{ field, message }])
      expect(problem.detail).toBe(`${field}: ${message}`)
      expect(backends().runRequests()).toEqual([])
    })
  }

  it('names every unsupported field at once', async () => {
    const { response } = await post({ model: STUDENT_MODEL_ID, steps: 4, guidance: 3 })
    expect(((await response.json()) as Problem).errors.map((error) => error.field)).toEqual([
      'steps',
      'guidance',
    ])
  })

  it("fills absent options from the model's defaults and forwards the model to the backend", async () => {
    const seed = uniqueSeed()
    const { response, authorization } = await post({ model: STUDENT_MODEL_ID, seed })
    expect(response.status).toBe(202)
    const job = (await response.json()) as Job
    expect(job).toMatchObject({
      modelId: STUDENT_MODEL_ID,
      request: { steps: 8, heavySchedule: { every: 2 }, guidance: 1, seed },
    })
    const events = await readEvents(
      await call(path(job.urls.events), { headers: { authorization } }),
    )
    expect(events.find((event) => event.event === 'started')?.data).toEqual({
      attempt: 1,
      modelId: STUDENT_MODEL_ID,
    })
    expect(events.at(-1)?.event).toBe('succeeded')
    expect(sentRuns()).toEqual([
      expect.objectContaining({ model: STUDENT_MODEL_ID, steps: 8, heavySchedule: { every: 2 } }),
    ])
    const done = (await (
      await call(path(job.urls.self), { headers: { authorization } })
    ).json()) as Job
    expect(done).toMatchObject({ status: 'succeeded', modelId: STUDENT_MODEL_ID })
  })

  it('accepts a supported placement written as a list of heavy steps', async () => {
    const { response } = await post({
      model: STUDENT_MODEL_ID,
      heavySchedule: { steps: [0] },
      seed: uniqueSeed(),
    })
    expect(response.status).toBe(202)
  })

  it('runs a request without `model` on the default model, and names it to the backend', async () => {
    const { response } = await post({ steps: 3, seed: uniqueSeed() }, { prefer: 'wait=10' })
    const job = (await response.json()) as Job
    expect(job).toMatchObject({ status: 'succeeded', modelId: DEFAULT_MODEL_ID })
    expect(sentRuns()).toEqual([expect.objectContaining({ model: DEFAULT_MODEL_ID, steps: 3 })])
  })

  it('keys results by model: the same options on two models are two results', async () => {
    const options = { steps: 8, heavySchedule: { every: 2 }, guidance: 1, seed: uniqueSeed() }
    const onDefault = (await (await post(options)).response.json()) as Job
    const namedDefault = (await (
      await post({ ...options, model: DEFAULT_MODEL_ID })
    ).response.json()) as Job
    const onStudent = (await (
      await post({ ...options, model: STUDENT_MODEL_ID })
    ).response.json()) as Job
    expect(namedDefault.id).toBe(onDefault.id)
    expect(onStudent.id).not.toBe(onDefault.id)
    expect(onStudent.id).toMatch(/^[0-9a-f]{64}$/)
  })
})

describe('POST /v1/generations with a calibrated or adaptive heavy schedule', () => {
  const calibrated = Object.keys(defaultManifest.heavyPlacements ?? {}).map(Number)

  it('lists the step counts with calibrated placements on the model', async () => {
    const { data } = (await (await call('/v1/models')).json()) as {
      data: Record<string, unknown>[]
    }
    expect(data[0]?.calibratedSteps).toEqual(calibrated)
    expect(data[1]).not.toHaveProperty('calibratedSteps')
  })

  it('accepts {"calls": N} at a calibrated step count and forwards it as asked', async () => {
    const { response } = await post({ steps: 50, heavySchedule: { calls: 7 }, seed: uniqueSeed() })
    expect(response.status).toBe(202)
    expect(sentRuns()).toEqual([
      expect.objectContaining({ steps: 50, heavySchedule: { calls: 7 } }),
    ])
  })

  it('rejects {"calls": N} at a step count without placements with 400 naming heavySchedule', async () => {
    const { response } = await post({ steps: 40, heavySchedule: { calls: 5 } })
    expect(response.status).toBe(400)
    expect(((await response.json()) as Problem).errors).toEqual([
      {
        field: 'heavySchedule',
        message: `{"calls": N} needs a calibrated placement; this model has them for ${calibrated.join(', ')} steps`,
      },
    ])
    expect(backends().runRequests()).toEqual([])
  })

  it('rejects more calls than steps with 400 naming heavySchedule.calls', async () => {
    const { response } = await post({ steps: 50, heavySchedule: { calls: 51 } })
    expect(response.status).toBe(400)
    expect(((await response.json()) as Problem).errors).toEqual([
      { field: 'heavySchedule.calls', message: '51 heavy calls do not fit in 50 steps' },
    ])
  })

  it('accepts an adaptive schedule and rejects a tolerance out of range, naming it', async () => {
    const accepted = await post({
      heavySchedule: { adaptive: { tolerance: 0.05 } },
      seed: uniqueSeed(),
    })
    expect(accepted.response.status).toBe(202)
    const refused = await post({ heavySchedule: { adaptive: { tolerance: 0 } } })
    expect(refused.response.status).toBe(400)
    expect(((await refused.response.json()) as Problem).errors[0]?.field).toBe(
      'heavySchedule.adaptive.tolerance',
    )
  })

  it('rejects an adaptive schedule on a distilled model, which runs only its placements', async () => {
    const { response } = await post({
      model: STUDENT_MODEL_ID,
      heavySchedule: { adaptive: { tolerance: 0.05 } },
    })
    expect(response.status).toBe(400)
    expect(((await response.json()) as Problem).errors.map((error) => error.field)).toEqual([
      'heavySchedule',
    ])
  })
})
