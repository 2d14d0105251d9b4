// Edge -> service authentication: every /v1 request must carry a fresh HMAC-SHA256 signature over method,
// path, timestamp and body (shared/request-signature.ts). Anything else is a 401 and runs nothing.
import type { MiddlewareHandler } from 'hono'
import { MIN_SECRET_LENGTH, verifyRequest } from '../../../../shared/request-signature.ts'
import { problemResponse } from '../problem-response.ts'

export interface VerifySignatureOptions {
  /** The secret shared with the edge. */
  secret: string
  /** Clock in ms, for tests. */
  now?: () => number
}

/**
 * Refuses requests whose signature is missing, wrong or stale with 401 problem+json.
 *
 * @example
 * v1.use(verifySignature({ secret }))
 */
export function verifySignature(options: VerifySignatureOptions): MiddlewareHandler {
  if (typeof options.secret !== 'string' || options.secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`verifySignature: secret must be at least ${MIN_SECRET_LENGTH} characters`)
  }
  const { secret, now = Date.now } = options
  return async function verifySignature(c, next) {
    // Hono caches the body, so the route's JSON validator reads the same bytes again.
    const body = new Uint8Array(await c.req.arrayBuffer())
    const check = await verifyRequest(
      secret,
      c.req.method,
      c.req.path,
      body,
      (name) => c.req.header(name),
      now(),
    )
    if (!check.ok) {
      return problemResponse(c, { status: 401, title: 'Unauthorized', detail: check.reason })
    }
    await next()
  }
}
