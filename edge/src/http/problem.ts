// Writes a problem (RFC 9457 problem+json) as the HTTP response; the problems themselves, and the
// ApiError that carries one, live in problems/api-error.ts where every layer can throw them.
import { PROBLEM_CONTENT_TYPE, type Problem } from '../../../shared/problem.ts'

/**
 * The HTTP response for a problem; `requestId` goes in as an extension member so a report can be traced.
 *
 * @example
 * return problemResponse({ status: 404, title: 'Not found' }, c.get('requestId'))
 */
export function problemResponse(
  body: Problem,
  requestId: string | undefined,
  headers: Record<string, string> = {},
): Response {
  const withId = requestId === undefined ? body : { ...body, requestId }
  return new Response(JSON.stringify(withId), {
    status: body.status,
    headers: { ...headers, 'content-type': PROBLEM_CONTENT_TYPE },
  })
}
