import { afterEach, describe, expect, it } from 'vitest'
import { ApiClient, ApiProblemError, type GenerationEvent } from '../../client/api-client.ts'
import { DEFAULT_MODEL_ID, STUDENT_MODEL_ID } from '../edge/helpers/model-catalog.ts'
import { FAKE_API_KEY, type FakeApi, JOB_ID, startFakeApi } from './helpers/fake-api.ts'
import { STEPS_TOO_BIG } from './helpers/run-cli.ts'

let api: FakeApi | undefined
afterEach(async () => {
  await api?.close()
  api = undefined
})

async function collect(events: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> {
  const all: GenerationEvent[] = []
  for await (const event of events) all.push(event)
  return all
}

describe('ApiClient', () => {
  it('lists models without a key, parsed with the shared schema (per-row costs included)', async () => {
    api = await startFakeApi()
    const [model] = await new ApiClient({ apiBase: `${api.url}/` }).listModels()
    expect(model?.classes[7]).toEqual({ index: 7, name: 'Sneaker' })
    expect(model?.cost.heavyMacsPerRow).toBeGreaterThan(model?.cost.lightMacsPerRow ?? Infinity)
    expect(api.requests[0]?.headers.authorization).toBeUndefined()
  })

  it('lists every model, the default first, and sends the model a request names', async () => {
    api = await startFakeApi()
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const models = await client.listModels()
    expect(models.map((model) => [model.id, model.default])).toEqual([
      [DEFAULT_MODEL_ID, true],
      [STUDENT_MODEL_ID, false],
    ])
    expect(models[1]?.supports?.steps).toEqual([8])
    const { generation } = await client.createGeneration({ class: 7, model: STUDENT_MODEL_ID })
    expect(generation.modelId).toBe(STUDENT_MODEL_ID)
    const posted = api.requests.find((request) => request.method === 'POST')
    expect(JSON.parse(posted?.body ?? '')).toEqual({ class: 7, model: STUDENT_MODEL_ID })
  })

  it('creates a generation with the bearer key, Prefer and Idempotency-Key headers', async () => {
    api = await startFakeApi()
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const { cached, generation } = await client.createGeneration(
      { class: 'Sneaker', seed: 7 },
      { idempotencyKey: 'retry-1', waitSeconds: 5 },
    )
    expect(cached).toBe(false)
    expect(generation.status).toBe('queued')
    const [request] = api.requests
    expect(request?.headers).toMatchObject({
      authorization: `Bearer ${FAKE_API_KEY}`,
      'idempotency-key': 'retry-1',
      prefer: 'wait=5',
      'content-type': 'application/json',
    })
    expect(JSON.parse(request?.body ?? '')).toEqual({ class: 'Sneaker', seed: 7 })
  })

  it('reports a cached result (200) as cached', async () => {
    api = await startFakeApi({ cached: true })
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const { cached, generation } = await client.createGeneration({ class: 7 })
    expect(cached).toBe(true)
    expect(generation.urls.images).toEqual([`${api.url}/v1/results/${JOB_ID}.png`])
  })

  it('throws the problem+json body of an error as ApiProblemError', async () => {
    api = await startFakeApi({
      createProblem: STEPS_TOO_BIG,
    })
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const error = await client.createGeneration({ class: 7, steps: 5000 }).catch((e) => e)
    expect(error).toBeInstanceOf(ApiProblemError)
    expect(error.message).toBe('Invalid request: 1 invalid field')
    expect(error.status).toBe(400)
    expect(error.problem.errors).toEqual([
      { field: 'steps', message: 'Too big: expected number to be <=1000' },
    ])
  })

  it('makes a problem from the status line when the body is not problem+json', async () => {
    const client = new ApiClient({
      apiBase: 'http://api.test',
      fetch: async () =>
        new Response('upstream exploded', { status: 502, statusText: 'Bad Gateway' }),
    })
    const error = await client.listModels().catch((e) => e)
    expect(error).toBeInstanceOf(ApiProblemError)
    expect(error.problem).toMatchObject({
      status: 502,
      title: 'Bad Gateway',
      detail: 'upstream exploded',
    })
  })

  it('streams typed events in order up to the terminal event, steps with the heavy calls so far', async () => {
    api = await startFakeApi({ steps: 4, heavyEvery: 2 })
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const events = await collect(client.streamEvents(JOB_ID))
    expect(events.map((event) => event.name)).toEqual([
      'queued',
      'started',
      'step',
      'step',
      'step',
      'step',
      'succeeded',
    ])
    expect(events.map((event) => event.id)).toEqual([1, 2, 3, 4, 5, 6, 7])
    const heavy = events.flatMap((event) => (event.name === 'step' ? [event.data.heavy] : []))
    expect(heavy).toEqual([true, false, true, false])
    const heavyCalls = events.flatMap((event) =>
      event.name === 'step' ? [event.data.heavyCalls] : [],
    )
    expect(heavyCalls).toEqual([1, 1, 2, 2])
  })

  it('resumes a stream that ended early with Last-Event-ID, losing and repeating nothing', async () => {
    api = await startFakeApi({ steps: 4, dropFirstStreamAfter: 3 })
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const events = await collect(client.streamEvents(JOB_ID))
    expect(events.map((event) => event.id)).toEqual([1, 2, 3, 4, 5, 6, 7])
    const streams = api.requests.filter((request) => request.path.endsWith('/events'))
    expect(streams.map((request) => request.headers['last-event-id'])).toEqual([undefined, '3'])
  })

  it('cancels: the stream ends with `canceled`', async () => {
    api = await startFakeApi({ steps: 50, stepDelayMs: 20 })
    const client = new ApiClient({ apiBase: api.url, apiKey: FAKE_API_KEY })
    const names: string[] = []
    for await (const event of client.streamEvents(JOB_ID)) {
      names.push(event.name)
      if (event.name === 'step' && event.data.step === 1) {
        expect((await client.cancelGeneration(JOB_ID)).status).toBe('canceled')
      }
    }
    expect(names.at(-1)).toBe('canceled')
    expect(names.filter((name) => name === 'step').length).toBeLessThan(50)
  })
})
