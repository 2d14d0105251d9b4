// A small client of the run protocol for the benchmark and the tests: signs requests as the edge does and
// reads a run's SSE stream (eventsource-parser) into validated events.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { signRequest } from '../../../shared/request-signature.ts'
import { type RunEvent, runEventSchema } from '../../../shared/run-protocol.ts'

export interface RunClient {
  baseUrl: string
  secret: string
}

export interface SignedFetchOptions {
  body?: unknown
  signal?: AbortSignal
  headers?: Record<string, string>
  /** Signing clock in ms (a stale signature for tests). */
  now?: number
}

/**
 * A request signed like the edge signs it; a body is sent as JSON.
 *
 * @example
 * const response = await signedFetch(client, 'DELETE', `/v1/runs/${runId}`)
 */
export async function signedFetch(
  client: RunClient,
  method: string,
  path: string,
  options: SignedFetchOptions = {},
): Promise<Response> {
  const body = options.body === undefined ? '' : JSON.stringify(options.body)
  const signature = await signRequest(client.secret, method, path, body, options.now)
  return fetch(`${client.baseUrl}${path}`, {
    method,
    headers: {
      ...(body && { 'content-type': 'application/json' }),
      ...signature,
      ...options.headers,
    },
    ...(body && { body }),
    ...(options.signal && { signal: options.signal }),
  })
}

/** One SSE message of a run stream: its `id` and the validated event. */
export interface RunStreamMessage {
  id: string | undefined
  event: RunEvent
}

/**
 * The events of a run stream, in order, each checked against the shared schema and its `event:` field.
 *
 * @example
 * for await (const { event } of readRunEvents(response)) if (event.type === 'result') return event
 */
export async function* readRunEvents(response: Response): AsyncGenerator<RunStreamMessage> {
  if (!response.body) throw new Error(`response ${response.status} has no body`)
  const messages = response.body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())
  for await (const message of messages) {
    const event = runEventSchema.parse(JSON.parse(message.data))
    if (message.event !== event.type) {
      throw new Error(`SSE event field "${message.event}" differs from data type "${event.type}"`)
    }
    yield { id: message.id, event }
  }
}
