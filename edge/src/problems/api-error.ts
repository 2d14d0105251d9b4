// The problems the edge answers with, as values any layer may throw (RFC 9457 problem+json): `ApiError`
// carries a problem to the app's error handler (http/problem.ts writes it), and `invalidRequest` is the one
// shape of a 400 listing each invalid field. Jobs, auth, rate limits and routes share them; none of it
// writes a response.
import type { z } from 'zod'
import { listIssues } from '../../../shared/issues.ts'
import { PROBLEM_TYPES, type Problem, type ProblemInit, problem } from '../../../shared/problem.ts'

/** A failure that should reach the caller as this problem (and these headers). */
export class ApiError extends Error {
  override name = 'ApiError'
  readonly problem: Problem
  readonly headers: Record<string, string>

  constructor(init: ProblemInit, headers: Record<string, string> = {}) {
    super(init.detail ?? init.title)
    this.problem = problem(init)
    this.headers = headers
  }
}

/** Where a validation failure was found, for the `errors` extension of a 400. */
export type FieldError = { field: string; message: string }

/**
 * The 400 for invalid input: one `errors` entry per invalid field, located by dotted path.
 *
 * @example
 * throw invalidRequest([{ field: 'class', message: 'unknown class "Hat"' }])
 */
export function invalidRequest(errors: FieldError[]): ApiError {
  return new ApiError({
    status: 400,
    type: PROBLEM_TYPES.validation,
    title: 'Invalid request',
    detail: errors.map((error) => `${error.field}: ${error.message}`).join('; '),
    extensions: { errors },
  })
}

/** The 404 problem. */
export function notFound(detail: string): ApiError {
  return new ApiError({ status: 404, type: PROBLEM_TYPES.notFound, title: 'Not found', detail })
}

/** A ZodError as field errors. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return listIssues(error).map((issue) => ({ field: issue.path, message: issue.message }))
}
