// The problem a caller sees for a failed run. Built from what the failure says is public: never a
// backend URL, a network error or a backend's body (those go to the logs).
import { PROBLEM_TYPES, type ProblemInit } from '../../../shared/problem.ts'
import { BACKEND_TROUBLE, BackendFailure } from '../backends/backend-client.ts'

/**
 * @example
 * await finish('failed', failureProblem(error))
 */
export function failureProblem(error: unknown): ProblemInit {
  if (error instanceof BackendFailure) {
    return {
      status: error.status,
      type: error.type ?? PROBLEM_TYPES.backendUnavailable,
      title: 'Generation failed',
      detail: error.publicDetail,
    }
  }
  return {
    status: 500,
    type: PROBLEM_TYPES.internal,
    title: 'Generation failed',
    detail: BACKEND_TROUBLE,
  }
}

/** What the logs get: the error's own message, with the job it belongs to. */
export function failureLogLine(
  job: { key: string; requestId: string; run: number; attempts: number },
  error: unknown,
): string {
  return JSON.stringify({
    level: 'error',
    msg: 'generation failed',
    requestId: job.requestId,
    job: job.key,
    run: job.run,
    attempts: job.attempts,
    error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
  })
}
