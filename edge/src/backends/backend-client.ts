// One gpu-service run over HTTP: a signed POST /v1/runs whose SSE response is parsed and validated event
// by event, and the signed DELETE that cancels a run. Failures say whether another backend may succeed.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { signRequest } from '../../../shared/request-signature.ts'
import { type RunEvent, type RunRequest, runEventSchema } from '../../../shared/run-protocol.ts'
import { SSE_CONTENT_TYPE } from '../../../shared/sse.ts'

/** How long a backend may take to answer with response headers before it counts as down. */
export const CONNECT_TIMEOUT_MS = 10_000

/**
 * A run that failed on one backend. `retryable` failures (connection refused or reset, 5xx, a stream
 * that ends before its result) may succeed elsewhere; the others (a 4xx, a run the backend rejected)
 * would fail anywhere.
 */
export class BackendFailure extends Error {
  override name = 'BackendFailure'
  readonly retryable: boolean
  /** The HTTP status the job's failure reports. */
  readonly status: number

  constructor(message: string, retryable: boolean, status = 502, options?: ErrorOptions) {
    super(message, options)
    this.retryable = retryable
    this.status = status
  }
}

export interface BackendRun {
  backendUrl: string
  secret: string
  request: RunRequest
  requestId: string
  signal: AbortSignal
}

/**
 * Streams the events of one run on one backend, validated with the shared schema.
 *
 * @example
 * for await (const event of streamRun({ backendUrl, secret, request, requestId, signal })) {
 *   if (event.type === 'result') return event
 * }
 */
export async function* streamRun(run: BackendRun): AsyncGenerator<RunEvent> {
  const body = JSON.stringify(run.request)
  const headers = {
    ...(await signRequest(run.secret, 'POST', '/v1/runs', body)),
    'content-type': 'application/json',
    accept: SSE_CONTENT_TYPE,
    'x-request-id': run.requestId,
  }
  const attempt = new AbortController()
  const abort = () => attempt.abort(run.signal.reason)
  run.signal.addEventListener('abort', abort)
  const connectTimer = setTimeout(
    () => attempt.abort(new Error(`no response within ${CONNECT_TIMEOUT_MS} ms`)),
    CONNECT_TIMEOUT_MS,
  )
  try {
    let response: Response
    try {
      response = await fetch(`${run.backendUrl}/v1/runs`, {
        method: 'POST',
        headers,
        body,
        signal: attempt.signal,
      })
    } catch (error) {
      if (run.signal.aborted) throw error
      throw new BackendFailure(`${run.backendUrl} unreachable: ${describe(error)}`, true, 502, {
        cause: error,
      })
    } finally {
      clearTimeout(connectTimer)
    }
    if (!response.ok || !response.body) {
      const detail = await response.text().catch(() => '')
      const retryable = response.status >= 500 || response.status === 429
      throw new BackendFailure(
        `${run.backendUrl} answered ${response.status}: ${detail.slice(0, 300)}`,
        retryable,
        retryable ? 502 : response.status,
      )
    }
    const messages = response.body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream())
    try {
      for await (const message of messages) {
        const event = runEventSchema.safeParse({ type: message.event, ...JSON.parse(message.data) })
        if (!event.success) {
          throw new BackendFailure(
            `${run.backendUrl} sent an invalid ${message.event ?? 'message'} event`,
            true,
          )
        }
        yield event.data
        if (event.data.type === 'result' || event.data.type === 'error') return
        // Back to the event loop between events. When the backend is ahead (fast CPU steps), every read
        // resolves from the buffer as a microtask, and the job's Durable Object took no other call until
        // the stream ended: a cancel waited for the whole run (measured under wrangler dev: 1.3 s, run
        // finished; with this, 30 ms).
        await new Promise((resolve) => setTimeout(resolve, 0))
      }
    } catch (error) {
      if (error instanceof BackendFailure || run.signal.aborted) throw error
      throw new BackendFailure(`${run.backendUrl} stream broke: ${describe(error)}`, true, 502, {
        cause: error,
      })
    }
    throw new BackendFailure(`${run.backendUrl} closed the stream before the result`, true)
  } finally {
    run.signal.removeEventListener('abort', abort)
    attempt.abort()
  }
}

/** Asks a backend to stop a run (DELETE /v1/runs/:id, signed); resolves whether it confirmed. */
export async function cancelRun(
  backendUrl: string,
  secret: string,
  runId: string,
  requestId: string,
): Promise<boolean> {
  const path = `/v1/runs/${encodeURIComponent(runId)}`
  const headers = { ...(await signRequest(secret, 'DELETE', path, '')), 'x-request-id': requestId }
  try {
    const response = await fetch(`${backendUrl}${path}`, { method: 'DELETE', headers })
    await response.body?.cancel()
    return response.ok
  } catch {
    return false
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
