// One run through POST /v1/runs, timed from the client's side: the benchmark's unit of measurement.
import { randomUUID } from 'node:crypto'
import type { RunEvent, RunRequest } from '../../../shared/run-protocol.ts'
import { type RunClient, readRunEvents, signedFetch } from '../cli/run-client.ts'

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
 * `onEvent` sees every event as it arrives (the fairness benchmark waits for a run's first step). Each
 * run gets its own runId, as the edge's do, so two equal requests in one second are not one signature
 * (which the service would refuse as a replay).
 *
 * @example
 * const { latencyMs } = await timedRun(client, request)
 */
export async function timedRun(
  client: RunClient,
  request: RunRequest,
  onEvent: (event: RunEvent) => void = () => {},
): Promise<RunTiming> {
  const started = performance.now()
  const body = { runId: `bench-${randomUUID()}`, ...request }
  const response = await signedFetch(client, 'POST', '/v1/runs', { body })
  if (response.status !== 200) {
    throw new Error(`POST /v1/runs: ${response.status} ${await response.text()}`)
  }
  for await (const { event } of readRunEvents(response)) {
    onEvent(event)
    if (event.type === 'error') throw new Error(`run failed: ${JSON.stringify(event.problem)}`)
    if (event.type === 'result') {
      return {
        latencyMs: performance.now() - started,
        images: event.images.length,
        ...event.timings,
      }
    }
  }
  throw new Error('the stream ended without a result')
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
