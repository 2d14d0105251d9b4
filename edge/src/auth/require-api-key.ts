// Middleware: `Authorization: Bearer <key>` against the hashed keys in KV; 401 problem+json otherwise.
import { createMiddleware } from 'hono/factory'
import { PROBLEM_TYPES } from '../../../shared/problem.ts'
import type { AppEnv } from '../http/app-env.ts'
import { ApiError } from '../problems/api-error.ts'
import { findApiKey } from './api-key.ts'

const BEARER = /^Bearer +([^\s]+) *$/i

function unauthorized(detail: string): ApiError {
  return new ApiError(
    { status: 401, type: PROBLEM_TYPES.unauthorized, title: 'Unauthorized', detail },
    { 'www-authenticate': 'Bearer realm="dualrate"' },
  )
}

/**
 * Rejects requests without a valid API key; sets `apiKey` for the routes behind it.
 *
 * @example
 * app.use('/v1/generations/*', requireApiKey())
 */
export function requireApiKey() {
  return createMiddleware<AppEnv>(async function requireApiKey(c, next) {
    const header = c.req.header('authorization')
    if (!header) throw unauthorized('Send an API key as "Authorization: Bearer <key>".')
    const presented = BEARER.exec(header)?.[1]
    const identity = presented ? await findApiKey(c.env.API_KEYS, presented) : null
    if (!identity) throw unauthorized('The API key is not valid.')
    c.set('apiKey', identity)
    await next()
  })
}
