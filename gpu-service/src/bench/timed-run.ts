// One run through POST /v1/runs, timed from the client's side: the benchmark's unit of measurement.
// The benchmark's clients share the machine with the service, so they read a run's stream frugally: a
// step event is known by its `event:` field alone, and only the result (or an error) is parsed and
// checked against the shared schema. Reading every event through readRunEvents' web streams and schema
// took 16 ms of CPU per one-image run at concurrency 4 on the 2-core benchmark machine, about an eighth of
// what the service had.
import { randomUUID } from 'node:crypto'
import { createParser } from 'eventsource-parser'
import { type RunEvent, type RunRequest, runEventSchema } from '../../../shared/run-protocol.ts'
import { type RunClient, signedFetch } from '../cli/run-client.ts'

export interface RunTiming {
  /** Client-side, from sending the POST to the result event. */
  latencyMs: number
  images: number
  heavyCalls: number
  lightCalls: number
  macs: number
  /** Server-side: acceptance to first step. */
  queueMs: number
  /** Server-side: first step to result. */
  wallMs: number
}

/**
 * Sends one run and reads its stream to the result; throws on an error event or a refused request.
 * `onEvent` sees every event's type as it arrives (the fairness benchmark waits for a run's first step).
 * Each run gets its own runId, as the edge's do, so two equal requests in one second are not one
 * signature (which the service would refuse as a replay).
 *
 * @example
 * const { latencyMs } = await timedRun(client, request)
 */
export async function timedRun(
  client: RunClient,
  request: RunRequest,
  onEvent: (type: RunEvent['type']) => void = () => {},
): Promise<RunTiming> {
  const started = performance.now()
  const body = { runId: `bench-${randomUUID()}`, ...request }
  const response = await signedFetch(client, 'POST', '/v1/runs', { body })
  if (response.status !== 200 || !response.body) {
    throw new Error(`POST /v1/runs: ${response.status} ${await response.text()}`)
  }
  let last: RunEvent | undefined
  const parser = createParser({
    onEvent(message) {
      const type = message.event as RunEvent['type']
      onEvent(type)
      if (type === 'result' || type === 'error')
        last = runEventSchema.parse(JSON.parse(message.data))
    },
  })
  const decoder = new TextDecoder()
  const reader = response.body.getReader()
  while (last === undefined) {
    const { done, value } = await reader.read()
    if (done) break
    parser.feed(decoder.decode(value, { stream: true }))
  }
  await reader.cancel()
  if (last?.type === 'error') throw new Error(`run failed: ${JSON.stringify(last.problem)}`)
  if (last?.type !== 'result') throw new Error('the stream ended without a result')
  return { latencyMs: performance.now() - started, images: last.images.length, ...last.timings }
}

/**
 * Nearest-rank percentile of ascending values.
 *
 * @example
 * percentile([1, 2, 3, 4], 50) // 2
 */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}
