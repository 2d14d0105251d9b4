// Middleware: per-key request rate with the IETF RateLimit header fields
// (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` and `RateLimit`), 429 + Retry-After beyond it.
import { createMiddleware } from 'hono/factory'
import { PROBLEM_TYPES } from '../../../shared/problem.ts'
import type { AppEnv } from '../http/app-env.ts'
import { ApiError } from '../problems/api-error.ts'

const POLICY_NAME = 'requests'
const WINDOW_SECONDS = 60

/**
 * Charges each request to the caller's key; runs after `requireApiKey()`.
 *
 * @example
 * app.use('/v1/generations/*', requireApiKey(), rateLimit())
 */
export function rateLimit() {
  return createMiddleware<AppEnv>(async function rateLimit(c, next) {
    const key = c.get('apiKey')
    const policy = { limit: key.limits.requestsPerMinute, windowSeconds: WINDOW_SECONDS }
    const decision = await c.env.KEY_QUOTA.getByName(key.id).take(policy)
    const headers: Record<string, string> = {
      'ratelimit-policy': `"${POLICY_NAME}";q=${policy.limit};w=${policy.windowSeconds}`,
      ratelimit: `"${POLICY_NAME}";r=${decision.remaining};t=${decision.resetSeconds}`,
    }
    if (!decision.allowed) {
      throw new ApiError(
        {
          status: 429,
          type: PROBLEM_TYPES.rateLimited,
          title: 'Too many requests',
          detail: `This key allows ${policy.limit} requests per ${policy.windowSeconds} s.`,
        },
        { ...headers, 'retry-after': String(decision.resetSeconds) },
      )
    }
    await next()
    for (const [name, value] of Object.entries(headers)) c.header(name, value)
  })
}
