// Turns the scheduler's view of a run (accepted, started, steps, end) into the events of the run protocol
// (shared/run-protocol.ts): step events with elapsed time, x0 previews at the requested cadence and the
// result as base64 PNGs, or an error event with a problem. A problem says how the run ended (its `type`,
// from the shared protocol, tells the edge whether another backend may succeed) and never why a run
// failed inside: stack traces, file paths and error messages stay in the service's log.
import type { Problem, ProblemInit } from '../../../shared/problem.ts'
import { RUN_PROBLEM_TYPES, type RunEvent } from '../../../shared/run-protocol.ts'
import { encodeGrayPng } from '../image/png.ts'
import type { RunObserver, RunOutcome, RunSummary } from '../scheduler/step-scheduler.ts'

export interface RunEventsOptions {
  runId: string
  modelId: string
  /** Preview every N steps and on the last step; 0 for none. */
  previewEvery: number
  width: number
  height: number
  send(event: RunEvent): void
  /** The problem for a run that did not complete (the caller adds the request id). */
  problemOf(outcome: Exclude<RunOutcome, 'completed'>, summary: RunSummary): Problem
}

/** Problem members for each way a run can end without a result; `type` from RUN_PROBLEM_TYPES. */
export const OUTCOME_PROBLEMS: Readonly<Record<Exclude<RunOutcome, 'completed'>, ProblemInit>> =
  Object.freeze({
    cancelled: {
      type: RUN_PROBLEM_TYPES.cancelled,
      status: 409,
      title: 'Run cancelled',
      detail: 'DELETE /v1/runs/:id stopped it',
    },
    disconnected: {
      type: RUN_PROBLEM_TYPES.disconnected,
      status: 499,
      title: 'Client disconnected',
    },
    deadline_exceeded: {
      type: RUN_PROBLEM_TYPES.deadlineExceeded,
      status: 504,
      title: 'Run deadline exceeded',
    },
    shutdown: {
      type: RUN_PROBLEM_TYPES.shutdown,
      status: 503,
      title: 'Service shutting down',
      detail: 'retry on another instance',
    },
    failed: { type: RUN_PROBLEM_TYPES.failed, status: 500, title: 'Internal Server Error' },
  })

/**
 * A scheduler observer that sends protocol events through `send`.
 *
 * @example
 * scheduler.submit(runId, options, runEventObserver({ runId, modelId, previewEvery: 5, width: 28,
 *   height: 28, send: (event) => queue.push(event),
 *   problemOf: (outcome) => problem(OUTCOME_PROBLEMS[outcome]) }))
 */
export function runEventObserver(options: RunEventsOptions): RunObserver {
  const { runId, modelId, previewEvery, width, height, send } = options
  const pixels = width * height
  const pngs = (images: Float32Array) =>
    Array.from({ length: images.length / pixels }, (_, n) =>
      Buffer.from(
        encodeGrayPng(images.subarray(n * pixels, (n + 1) * pixels), width, height),
      ).toString('base64'),
    )
  let startedAt = 0
  return {
    accepted(queuePosition) {
      send({ type: 'accepted', runId, queuePosition })
    },
    started() {
      startedAt = performance.now()
      send({ type: 'started', runId, modelId })
    },
    step({ step, totalSteps, t, heavy, heavyCalls, x0 }) {
      const elapsedMs = performance.now() - startedAt
      send({ type: 'step', runId, step, totalSteps, t, heavy, heavyCalls, elapsedMs })
      const previewDue =
        previewEvery > 0 && ((step + 1) % previewEvery === 0 || step === totalSteps - 1)
      if (previewDue) send({ type: 'preview', runId, step, images: pngs(x0) })
    },
    ended(summary) {
      if (summary.outcome === 'completed' && summary.images) {
        const { heavyCalls, lightCalls, macs, queueMs, wallMs } = summary
        send({
          type: 'result',
          runId,
          modelId,
          images: pngs(summary.images),
          timings: { heavyCalls, lightCalls, macs, queueMs, wallMs },
        })
        return
      }
      const outcome = summary.outcome === 'completed' ? 'failed' : summary.outcome
      send({ type: 'error', runId, problem: options.problemOf(outcome, summary) })
    },
  }
}
