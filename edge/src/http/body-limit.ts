// Middleware: request bodies above the configured size are refused with a 413 problem before parsing.
import { bodyLimit } from 'hono/body-limit'
import { createMiddleware } from 'hono/factory'
import { PROBLEM_TYPES } from '../../../shared/problem.ts'
import { readConfig } from '../env.ts'
import { ApiError } from '../problems/api-error.ts'
import type { AppEnv } from './app-env.ts'

/**
 * Limits the body to MAX_BODY_BYTES (default 16 KiB; a generation request is well under 1 KiB).
 *
 * @example
 * app.use('/v1/generations', limitBody())
 */
export function limitBody() {
  return createMiddleware<AppEnv>(async function limitBody(c, next) {
    const maxSize = readConfig(c.env).maxBodyBytes
    const limit = bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError({
          status: 413,
          type: PROBLEM_TYPES.tooLarge,
          title: 'Payload too large',
          detail: `Request bodies are limited to ${maxSize} bytes.`,
        })
      },
    })
    await limit(c, next)
  })
}
