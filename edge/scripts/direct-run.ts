// One run sent straight to a gpu-service, as the edge sends it (signed POST /v1/runs, SSE back), for the
// scripts and tests that compare the edge with the backend: the edge benchmark's baseline and the fault
// suite's undisturbed reference images. Independent of the worker's own backend client on purpose.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import type { z } from 'zod'
import { signRequest } from '../../shared/request-signature.ts'
import {
  type RunEvent,
  type RunRequest,
  runEventSchema,
  type runTimingsSchema,
} from '../../shared/run-protocol.ts'

export interface DirectRun {
  backendUrl: string
  /** The gpu-service's DUALRATE_HMAC_SECRET. */
  secret: string
  request: RunRequest
  requestId?: string
  signal?: AbortSignal
}

export interface DirectResult {
  modelId: string
  /** The PNG files exactly as the gpu-service sent them. */
  images: Uint8Array[]
  timings: z.infer<typeof runTimingsSchema>
}

/** A run the gpu-service refused or ended with an `error` event. */
export class DirectRunError extends Error {
  override name = 'DirectRunError'
  readonly status: number
  constructor(message: string, status: number) {
    super(message)
    this.status = status
  }
}

/**
 * Every event of one run, validated with the shared schema.
 *
 * @example
 * for await (const event of directRunEvents({ backendUrl, secret, request })) console.log(event.type)
 */
export async function* directRunEvents(run: DirectRun): AsyncGenerator<RunEvent> {
  // A run id of its own, as the edge gives each attempt: the gpu-service refuses a repeated signature,
  // and two identical bodies signed in the same second would sign the same.
  const body = JSON.stringify({ runId: `direct-${crypto.randomUUID()}`, ...run.request })
  const response = await fetch(`${run.backendUrl}/v1/runs`, {
    method: 'POST',
    headers: {
      ...(await signRequest(run.secret, 'POST', '/v1/runs', body)),
      'content-type': 'application/json',
      'x-request-id': run.requestId ?? `direct-${run.request.seed}`,
    },
    body,
    ...(run.signal ? { signal: run.signal } : {}),
  })
  if (!response.ok || !response.body) {
    throw new DirectRunError(
      `POST /v1/runs answered ${response.status}: ${await response.text()}`,
      response.status,
    )
  }
  const messages = response.body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())
  for await (const message of messages) yield runEventSchema.parse(JSON.parse(message.data))
}

/**
 * Runs a request on one gpu-service to its result.
 *
 * @example
 * const { images } = await runDirect({ backendUrl, secret, request: { classIndex: 7, count: 1, ... } })
 */
export async function runDirect(run: DirectRun): Promise<DirectResult> {
  for await (const event of directRunEvents(run)) {
    if (event.type === 'error') {
      throw new DirectRunError(
        `run failed: ${event.problem.title} (${event.problem.status})`,
        event.problem.status,
      )
    }
    if (event.type === 'result') {
      return {
        modelId: event.modelId,
        images: event.images.map((base64) => new Uint8Array(Buffer.from(base64, 'base64'))),
        timings: event.timings,
      }
    }
  }
  throw new DirectRunError('the run stream ended without a result', 502)
}
