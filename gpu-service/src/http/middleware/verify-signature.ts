// Edge -> service authentication: every /v1 request must carry a fresh HMAC-SHA256 signature over method,
// path, timestamp and body (shared/request-signature.ts), and each signature is good for one request: a
// replay within its window is refused too. Anything else is a 401 and runs nothing. The edge signs every
// request afresh, so legitimate traffic never repeats a signature.
import type { MiddlewareHandler } from 'hono'
import {
  MAX_SIGNATURE_AGE_SECONDS,
  MIN_SECRET_LENGTH,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifyRequest,
} from '../../../../shared/request-signature.ts'
import { problemResponse } from '../problem-response.ts'
import { ReplayCache } from './replay-cache.ts'

/**
 * Signatures remembered at once. The window is 300 s either side of the clock, so at most 600 s of
 * requests are live: 100,000 entries (about 15 MB) is more than 160 signed requests a second.
 */
export const DEFAULT_MAX_REPLAY_ENTRIES = 100_000

export interface VerifySignatureOptions {
  /** The secret shared with the edge. */
  secret: string
  /** Clock in ms, for tests. */
  now?: () => number
  /** Signatures remembered against replay; when it is full of live ones, requests get 503. */
  maxReplayEntries?: number
}

/**
 * Refuses requests whose signature is missing, wrong, stale or already used with 401 problem+json, and
 * all signed requests with 503 while the replay cache is full.
 *
 * @example
 * v1.use(verifySignature({ secret }))
 */
export function verifySignature(options: VerifySignatureOptions): MiddlewareHandler {
  if (typeof options.secret !== 'string' || options.secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`verifySignature: secret must be at least ${MIN_SECRET_LENGTH} characters`)
  }
  const { secret, now = Date.now, maxReplayEntries = DEFAULT_MAX_REPLAY_ENTRIES } = options
  const seen = new ReplayCache(maxReplayEntries)
  return async function verifySignature(c, next) {
    // Hono caches the body, so the route's JSON validator reads the same bytes again.
    const body = new Uint8Array(await c.req.arrayBuffer())
    const checkedAt = now()
    const check = await verifyRequest(
      secret,
      c.req.method,
      c.req.path,
      body,
      (name) => c.req.header(name),
      checkedAt,
    )
    if (!check.ok) {
      return problemResponse(c, { status: 401, title: 'Unauthorized', detail: check.reason })
    }
    // Verified, so both headers are present and well formed.
    const signature = c.req.header(SIGNATURE_HEADER) as string
    const timestamp = Number(c.req.header(TIMESTAMP_HEADER))
    const replay = seen.check(signature, timestamp, checkedAt)
    if (replay === 'replayed') {
      return problemResponse(c, {
        status: 401,
        title: 'Unauthorized',
        detail: 'replayed signature',
      })
    }
    if (replay === 'full') {
      return problemResponse(
        c,
        {
          status: 503,
          title: 'Replay cache full',
          detail: `${seen.maxEntries} signatures still within their ${MAX_SIGNATURE_AGE_SECONDS} s window are remembered, the limit; retry later`,
        },
        { 'retry-after': String(seen.secondsUntilRoom(checkedAt)) },
      )
    }
    await next()
  }
}
