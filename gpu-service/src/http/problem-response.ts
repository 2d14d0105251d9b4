// The service's error answers: RFC 9457 problem+json from shared/problem.ts, built in one place for the
// error handler, the validation hook, the auth middleware and the stream's `error` events.
import { STATUS_CODES } from 'node:http'
import type { Context, ErrorHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { ZodError } from 'zod'
import { type Issue, listIssues } from '../../../shared/issues.ts'
import {
  PROBLEM_CONTENT_TYPE,
  type Problem,
  type ProblemInit,
  problem,
} from '../../../shared/problem.ts'
import type { Logger } from '../service/logger.ts'

/**
 * A problem+json response; the request id (if any) is added as an extension member.
 *
 * @example
 * return problemResponse(c, { status: 401, title: 'Unauthorized', detail: 'stale timestamp' })
 */
export function problemResponse(
  c: Context,
  init: ProblemInit,
  headers: Record<string, string> = {},
): Response {
  const body = withRequestId(c, init)
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { ...headers, 'content-type': PROBLEM_CONTENT_TYPE },
  })
}

/** The problem object itself, with the request id; for `error` events inside a stream. */
export function withRequestId(c: Context, init: ProblemInit): Problem {
  const requestId: string | undefined = c.get('requestId')
  return problem({ ...init, extensions: { ...init.extensions, ...(requestId && { requestId }) } })
}

/**
 * An exception carrying a problem response, for handlers whose typed routes only return success
 * bodies; the error handler answers with it as it is.
 *
 * @example
 * throw problemException(c, { status: 404, title: 'Run not found' })
 */
export function problemException(
  c: Context,
  init: ProblemInit,
  headers: Record<string, string> = {},
): HTTPException {
  const res = problemResponse(c, init, headers)
  return new HTTPException(res.status as ContentfulStatusCode, { res })
}

/**
 * The 400 answer for a request that fails its Zod schema: one `errors` entry per issue.
 *
 * @example
 * if (!result.success) return invalidRequest(c, result.error)
 */
export function invalidRequest(c: Context, error: ZodError): Response {
  return invalidFields(c, listIssues(error))
}

/**
 * The 400 answer for a request whose fields are refused after the schema (a model's supported options,
 * say), in the shape of invalidRequest: one `errors` entry per field.
 *
 * @example
 * return invalidFields(c, [{ path: 'steps', message: 'this model samples with 8 steps only' }])
 */
export function invalidFields(c: Context, errors: Issue[]): Response {
  return problemResponse(c, {
    status: 400,
    title: 'Invalid request',
    detail: errors.map((issue) => `${issue.path}: ${issue.message}`).join('; '),
    extensions: { errors },
  })
}

/**
 * The app's one error handler: HTTP exceptions keep their status and message; anything else is logged
 * with the request id and answered with a generic 500.
 *
 * @example
 * app.onError(problemErrorHandler(logger))
 */
export function problemErrorHandler(logger: Logger): ErrorHandler {
  return function problemErrorHandler(error, c) {
    if (error instanceof HTTPException) {
      if (error.res) return error.getResponse()
      const status = error.status
      return problemResponse(c, {
        status,
        title: STATUS_CODES[status] ?? 'Error',
        ...(error.message && { detail: error.message }),
      })
    }
    logger.error('unhandled error', {
      requestId: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      error,
    })
    return problemResponse(c, { status: 500, title: 'Internal Server Error' })
  }
}
