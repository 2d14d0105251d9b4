// A typed client of the public API (/v1) for Node and the browser. Request and response types are the
// shared Zod schemas' types (shared/generation-api.ts, the same schemas the edge validates with and
// generates its OpenAPI document from), and every answer is parsed with them, so a contract change breaks
// here at compile time or at the first response, not somewhere downstream.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import {
  type Generation,
  type GenerationEventData,
  type GenerationEventName,
  type GenerationRequest,
  generationEventSchemas,
  generationSchema,
  isTerminalStatus,
  type Model,
  modelListSchema,
} from '../shared/generation-api.ts'
import { type Problem, problemSchema } from '../shared/problem.ts'

export interface ApiClientOptions {
  /** The API's origin, e.g. `http://127.0.0.1:8787` (a trailing slash is fine). */
  apiBase: string
  /** Sent as `Authorization: Bearer <key>`; `/v1/models` and result images need none. */
  apiKey?: string | undefined
  /** Replaces the global fetch (tests, proxies). */
  fetch?: typeof fetch
}

/** One event of a generation's SSE stream, typed by its name. */
export type GenerationEvent = {
  [Name in GenerationEventName]: { id: number; name: Name; data: GenerationEventData<Name> }
}[GenerationEventName]

/** The names of the events after which a generation's stream ends. */
export const TERMINAL_EVENTS: readonly GenerationEventName[] = ['succeeded', 'failed', 'canceled']

/** The API answered with an error: its problem+json body (RFC 9457), or one made from the status. */
export class ApiProblemError extends Error {
  override name = 'ApiProblemError'
  readonly problem: Problem
  constructor(problem: Problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title)
    this.problem = problem
  }
  get status(): number {
    return this.problem.status
  }
}

/** How long to wait before reconnecting a stream that ended without a terminal event. */
const RECONNECT_DELAY_MS = 500
const MAX_RECONNECTS = 5

/**
 * The public API, typed.
 *
 * @example
 * const api = new ApiClient({ apiBase: 'http://127.0.0.1:8787', apiKey })
 * const { generation } = await api.createGeneration({ class: 'Sneaker', seed: 7 })
 * const models = await api.listModels() // a request may name one: { class: 'Sneaker', model: models[1].id }
 * for await (const event of api.streamEvents(generation.id)) console.log(event.name, event.data)
 */
export class ApiClient {
  readonly apiBase: string
  readonly #apiKey: string | undefined
  readonly #fetch: typeof fetch

  constructor(options: ApiClientOptions) {
    this.apiBase = options.apiBase.replace(/\/+$/, '')
    this.#apiKey = options.apiKey
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init))
  }

  /**
   * GET /v1/models: every model a request may name in `model`, the default first (`default: true`),
   * each with its classes, defaults, limits, what a distilled model supports, and its costs.
   */
  async listModels(signal?: AbortSignal): Promise<Model[]> {
    const response = await this.#request('GET', '/v1/models', { signal })
    return modelListSchema.parse(await response.json()).data
  }

  /**
   * POST /v1/generations. `cached` is true when the answer is a finished result (200) rather than an
   * accepted job (202); `waitSeconds` sends `Prefer: wait=N`.
   */
  async createGeneration(
    request: GenerationRequest,
    options: { idempotencyKey?: string; waitSeconds?: number; signal?: AbortSignal } = {},
  ): Promise<{ cached: boolean; generation: Generation }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey
    if (options.waitSeconds !== undefined) headers.prefer = `wait=${options.waitSeconds}`
    const response = await this.#request('POST', '/v1/generations', {
      headers,
      body: JSON.stringify(request),
      signal: options.signal,
    })
    const generation = generationSchema.parse(await response.json())
    return { cached: response.status === 200, generation }
  }

  /** GET /v1/generations/:id */
  async getGeneration(id: string, signal?: AbortSignal): Promise<Generation> {
    const response = await this.#request('GET', `/v1/generations/${encodeURIComponent(id)}`, {
      signal,
    })
    return generationSchema.parse(await response.json())
  }

  /** POST /v1/generations/:id/cancel: stops the GPU work; answers the job after cancellation. */
  async cancelGeneration(id: string, signal?: AbortSignal): Promise<Generation> {
    const response = await this.#request(
      'POST',
      `/v1/generations/${encodeURIComponent(id)}/cancel`,
      { signal },
    )
    return generationSchema.parse(await response.json())
  }

  /**
   * GET /v1/generations/:id/events, parsed and typed, until a terminal event (`succeeded`, `failed`,
   * `canceled`). A stream that ends early is resumed with `Last-Event-ID`, so no event is lost or
   * repeated. Events of names this client does not know are skipped.
   */
  async *streamEvents(
    id: string,
    options: { lastEventId?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<GenerationEvent> {
    let lastEventId = options.lastEventId
    for (let reconnects = 0; reconnects <= MAX_RECONNECTS; reconnects++) {
      if (reconnects > 0) await delay(RECONNECT_DELAY_MS, options.signal)
      const response = await this.#request(
        'GET',
        `/v1/generations/${encodeURIComponent(id)}/events`,
        {
          headers: lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) },
          signal: options.signal,
        },
      )
      if (!response.body) throw new Error('the event stream has no body')
      const messages = response.body
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(new EventSourceParserStream())
      for await (const message of messages) {
        const event = parseEvent(message.event, message.id, message.data)
        if (!event) continue
        lastEventId = event.id
        yield event
        if (TERMINAL_EVENTS.includes(event.name)) return
      }
    }
    throw new Error(`the event stream of ${id} kept ending before the job finished`)
  }

  async #request(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: string; signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers }
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`
    if (path.endsWith('/events')) headers.accept = 'text/event-stream'
    const response = await this.#fetch(`${this.apiBase}${path}`, {
      method,
      headers,
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.signal ? { signal: init.signal } : {}),
    })
    if (!response.ok) throw new ApiProblemError(await readProblem(response))
    return response
  }
}

/** True when a status is final (no more events will follow). */
export { isTerminalStatus }

function parseEvent(
  name: string | undefined,
  id: string | undefined,
  data: string,
): GenerationEvent | null {
  if (name === undefined || !(name in generationEventSchemas)) return null
  const eventName = name as GenerationEventName
  const parsed = generationEventSchemas[eventName].parse(JSON.parse(data))
  return { id: Number(id), name: eventName, data: parsed } as GenerationEvent
}

/** The problem+json body of an error response, or a problem made from its status line. */
async function readProblem(response: Response): Promise<Problem> {
  const text = await response.text()
  try {
    const parsed = problemSchema.safeParse(JSON.parse(text))
    if (parsed.success) return parsed.data
  } catch {}
  return {
    type: 'about:blank',
    status: response.status,
    title: response.statusText || `HTTP ${response.status}`,
    ...(text ? { detail: text.slice(0, 300) } : {}),
  }
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted()
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        reject(signal.reason)
      },
      { once: true },
    )
  })
}
