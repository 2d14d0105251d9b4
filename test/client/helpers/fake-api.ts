// A fake of the public API on loopback (node:http) for the client and CLI tests: one generation job
// whose SSE stream steps on a timer, cancellation, problem+json errors, and a result PNG. Every request
// is recorded. The real edge is tested in workerd and end to end; this fake pins down what the client
// does with each answer. It serves two models, the committed default and a fixture 8-step student
// (test/edge/helpers/model-catalog.ts), and a job runs on the model, steps and heavy schedule its request
// names; step events count the heavy calls so far, as the edge passes them on from the backend.
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Generation, GenerationEventName } from '../../../shared/generation-api.ts'
import { PROBLEM_CONTENT_TYPE, type Problem } from '../../../shared/problem.ts'
import type { HeavySchedule } from '../../../shared/sampling-options.ts'
import { formatSse, SSE_CONTENT_TYPE } from '../../../shared/sse.ts'
import { twoModelCatalog } from '../../edge/helpers/model-catalog.ts'

export const FAKE_API_KEY = 'dr_test_key'
export const JOB_ID = 'a'.repeat(64)
/** A 1x1 grey PNG. */
export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg==',
  'base64',
)

export interface FakeApiOptions {
  /** Steps of a job whose request names none. */
  steps?: number
  /** The heavy schedule of a job whose request names none: every K steps. */
  heavyEvery?: number
  /**
   * Where a job asking for calibrated calls or an adaptive schedule runs the heavy encoder (the real
   * backend decides); default: N calls spread evenly, or an adaptive run on every third step.
   */
  decidedHeavySteps?: number[]
  /** Delay between step events. */
  stepDelayMs?: number
  /** POST /v1/generations answers this problem instead of a job. */
  createProblem?: Problem & Record<string, unknown>
  /** Answer POST /v1/generations with the finished result (200) instead of a job (202). */
  cached?: boolean
  /** The first event stream closes after this many events, without a terminal event. */
  dropFirstStreamAfter?: number
  /** Serve the files of this folder at the root (`/` is its index.html): a built playground. */
  staticDir?: string
}

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
  body: string
}

export interface FakeApi {
  url: string
  requests: RecordedRequest[]
  close(): Promise<void>
}

type Event = { name: GenerationEventName; data: unknown }

/** The files of a built playground, by path. */
const STATIC_FILES: Record<string, { name: string; type: string }> = {
  '/': { name: 'index.html', type: 'text/html; charset=utf-8' },
  '/playground.js': { name: 'playground.js', type: 'text/javascript' },
  '/playground.css': { name: 'playground.css', type: 'text/css' },
}

/**
 * Starts the fake on a free loopback port.
 *
 * @example
 * const api = await startFakeApi({ steps: 8 })
 * try { ... } finally { await api.close() }
 */
export async function startFakeApi(options: FakeApiOptions = {}): Promise<FakeApi> {
  const requests: RecordedRequest[] = []
  let canceled = false
  let streams = 0
  let url = ''
  const models = twoModelCatalog.models
  /** The model of the job: the one the latest POST named, else the default. */
  let model = twoModelCatalog.defaultModel
  const defaultSteps = options.steps ?? 8
  const defaultSchedule: HeavySchedule = { every: options.heavyEvery ?? 4 }
  /** The job's steps and heavy schedule: those the latest POST named, else the options'. */
  let steps = defaultSteps
  let heavySchedule: HeavySchedule = defaultSchedule

  const heavyAt = (step: number): boolean => {
    if ('every' in heavySchedule) return step % heavySchedule.every === 0
    if ('steps' in heavySchedule) return step === 0 || heavySchedule.steps.includes(step)
    if (options.decidedHeavySteps) return options.decidedHeavySteps.includes(step)
    if ('calls' in heavySchedule) {
      const { calls } = heavySchedule
      return Array.from({ length: calls }, (_, i) => Math.floor((i * steps) / calls)).includes(step)
    }
    return step % 3 === 0
  }
  /** Heavy calls up to and including each step. */
  const heavyCallsSoFar = () => {
    let calls = 0
    return Array.from({ length: steps }, (_, step) => (calls += heavyAt(step) ? 1 : 0))
  }
  const timings = () => {
    const heavyCalls = heavyCallsSoFar().at(-1) ?? 0
    return {
      heavyCalls,
      lightCalls: steps,
      macs: 2 * (heavyCalls * model.cost.heavyMacsPerRow + steps * model.cost.lightMacsPerRow),
      queueMs: 0,
      wallMs: 80,
    }
  }
  const generation = (status: Generation['status']): Generation => ({
    id: JOB_ID,
    status,
    modelId: model.id,
    request: {
      classIndex: 7,
      className: 'Sneaker',
      count: 1,
      steps,
      heavySchedule,
      guidance: 2,
      seed: 7,
      previewEvery: 0,
    },
    progress: { step: status === 'succeeded' ? steps : 0, totalSteps: steps, attempts: 1 },
    createdAt: '2026-01-01T00:00:00.000Z',
    ...(status === 'succeeded' ? { timings: timings() } : {}),
    urls: {
      self: `${url}/v1/generations/${JOB_ID}`,
      events: `${url}/v1/generations/${JOB_ID}/events`,
      cancel: `${url}/v1/generations/${JOB_ID}/cancel`,
      ...(status === 'succeeded' ? { images: [`${url}/v1/results/${JOB_ID}.png`] } : {}),
    },
  })
  const events = (): Event[] => {
    const heavyCalls = heavyCallsSoFar()
    return [
      { name: 'queued', data: { id: JOB_ID } },
      { name: 'started', data: { attempt: 1, modelId: model.id } },
      ...Array.from({ length: steps }, (_, step) => ({
        name: 'step' as const,
        data: {
          step,
          totalSteps: steps,
          t: 1 - step / steps,
          heavy: heavyAt(step),
          heavyCalls: heavyCalls[step],
          elapsedMs: 10 * (step + 1),
        },
      })),
      {
        name: 'succeeded',
        data: { images: [`${url}/v1/results/${JOB_ID}.png`], timings: timings() },
      },
    ]
  }

  const json = (
    response: ServerResponse,
    status: number,
    body: unknown,
    type = 'application/json',
  ) => {
    response.writeHead(status, { 'content-type': type })
    response.end(JSON.stringify(body))
  }
  const problem = (response: ServerResponse, body: Problem) =>
    json(response, body.status, body, PROBLEM_CONTENT_TYPE)

  async function streamEvents(request: IncomingMessage, response: ServerResponse) {
    streams++
    const dropAfter = streams === 1 ? options.dropFirstStreamAfter : undefined
    response.writeHead(200, { 'content-type': SSE_CONTENT_TYPE })
    const after = Number(request.headers['last-event-id'] ?? 0)
    let sent = 0
    for (const [index, event] of events().entries()) {
      const id = index + 1
      if (id <= after) continue
      if (canceled) {
        response.end(formatSse({ event: 'canceled', id: String(id), data: {} }))
        return
      }
      if (dropAfter !== undefined && sent === dropAfter) {
        response.end()
        return
      }
      if (event.name === 'step') await new Promise((r) => setTimeout(r, options.stepDelayMs ?? 0))
      if (response.destroyed) return
      response.write(formatSse({ event: event.name, id: String(id), data: event.data }))
      sent++
    }
    response.end()
  }

  const server = createServer(async (request, response) => {
    let body = ''
    for await (const chunk of request) body += chunk
    const path = request.url ?? '/'
    requests.push({ method: request.method ?? '', path, headers: request.headers, body })
    if (request.method === 'GET' && path === '/v1/models')
      return json(response, 200, { data: models })
    const file = options.staticDir && request.method === 'GET' && STATIC_FILES[path]
    if (file && options.staticDir) {
      response.writeHead(200, { 'content-type': file.type })
      return response.end(await readFile(`${options.staticDir}/${file.name}`))
    }
    if (request.method === 'GET' && path === `/v1/results/${JOB_ID}.png`) {
      response.writeHead(200, { 'content-type': 'image/png' })
      return response.end(TINY_PNG)
    }
    if (request.headers.authorization !== `Bearer ${FAKE_API_KEY}`) {
      return problem(response, { type: 'about:blank', status: 401, title: 'Unauthorized' })
    }
    if (request.method === 'POST' && path === '/v1/generations') {
      if (options.createProblem) return problem(response, options.createProblem)
      const named = JSON.parse(body) as {
        model?: string
        steps?: number
        heavySchedule?: HeavySchedule
      }
      model = models.find((entry) => entry.id === named.model) ?? twoModelCatalog.defaultModel
      steps = named.steps ?? defaultSteps
      heavySchedule = named.heavySchedule ?? defaultSchedule
      return options.cached
        ? json(response, 200, generation('succeeded'))
        : json(response, 202, generation('queued'))
    }
    if (request.method === 'GET' && path === `/v1/generations/${JOB_ID}/events`) {
      return streamEvents(request, response)
    }
    if (request.method === 'GET' && path === `/v1/generations/${JOB_ID}`) {
      return json(response, 200, generation(canceled ? 'canceled' : 'running'))
    }
    if (request.method === 'POST' && path === `/v1/generations/${JOB_ID}/cancel`) {
      canceled = true
      return json(response, 200, generation('canceled'))
    }
    problem(response, {
      type: 'about:blank',
      status: 404,
      title: 'Not found',
      detail: `No route ${path}.`,
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
