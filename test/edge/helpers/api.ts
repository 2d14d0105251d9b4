// Calling the worker from workerd tests: API keys in the test KV, requests through the real app, and
// an SSE reader.
import { env, exports } from 'cloudflare:workers'
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { type ApiKeyLimits, createApiKey, DEFAULT_LIMITS } from '../../../edge/src/auth/api-key.ts'

export const ORIGIN = 'https://edge.test'

/** A stored API key; returns the bearer header value and the key's id (its hash). */
export async function createKey(limits: Partial<ApiKeyLimits> = {}, name = 'test') {
  const { key, storageKey, record } = await createApiKey(name, { ...DEFAULT_LIMITS, ...limits })
  await env.API_KEYS.put(storageKey, JSON.stringify(record))
  return { key, id: storageKey.slice('key:'.length), record, authorization: `Bearer ${key}` }
}

/** A request to the worker. */
export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`${ORIGIN}${path}`, init))
}

/** POST /v1/generations with a JSON body. */
export function postGeneration(
  authorization: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return call('/v1/generations', {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
}

export interface SseEvent {
  id: string | undefined
  event: string | undefined
  data: unknown
}

/** Reads an SSE response to its end (or until `stopAfter` returns true) and parses each event. */
export async function readEvents(
  response: Response,
  stopAfter: (event: SseEvent) => boolean = () => false,
): Promise<SseEvent[]> {
  const events: SseEvent[] = []
  const reader = (response.body as ReadableStream<Uint8Array>)
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())
    .getReader()
  while (true) {
    const { done, value } = await reader.read()
    if (done) break
    const event = { id: value.id, event: value.event, data: JSON.parse(value.data) }
    events.push(event)
    if (stopAfter(event)) {
      await reader.cancel()
      break
    }
  }
  return events
}

/** A unique seed per call, so tests never share result keys. */
let nextSeed = Math.floor(Math.random() * 1_000_000) * 1000
export const uniqueSeed = () => nextSeed++

/** Polls `condition` until it holds; throws after `timeoutMs`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const started = Date.now()
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
