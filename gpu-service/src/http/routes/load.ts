// GET /v1/load: the service's load as its step scheduler counts it (runs and rows queued and active, the
// rows it may step at once, whether it is draining), for the edge to route by. Signed like every /v1
// route and as cheap as reading a few counters. `GET /v1/load/{probeId}` answers the same: the signature
// covers the path and not the query, and a signature is good for one request, so a caller asking more
// than once a second signs a path with a fresh id in it.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { RequestIdVariables } from 'hono/request-id'
import { problemSchema } from '../../../../shared/problem.ts'
import {
  type LoadResponse,
  loadResponseSchema,
  probeIdSchema,
} from '../../../../shared/run-protocol.ts'
import { invalidRequest, problemException } from '../problem-response.ts'
import type { Readiness } from './health.ts'
import type { RunEngine } from './runs.ts'

export interface LoadRouteOptions {
  /** Undefined until the models are loaded and warmed: answered with 503 until then. */
  engine(): RunEngine | undefined
  /** `draining` is set at SIGTERM, a moment before the scheduler itself stops taking runs. */
  readiness: Readiness
}

/** Seconds a caller should wait before asking again while the models load (as POST /v1/runs says). */
const NOT_READY_RETRY_SECONDS = 5

const problemContent = { 'application/problem+json': { schema: problemSchema } }

const responses = {
  200: {
    description: 'The load now',
    content: { 'application/json': { schema: loadResponseSchema } },
  },
  401: { description: 'Missing, wrong, stale or replayed signature', content: problemContent },
  503: { description: 'The models are not loaded yet; see Retry-After', content: problemContent },
} as const

const getLoad = createRoute({
  method: 'get',
  path: '/load',
  summary: "The service's load: runs and rows queued and active, capacity, draining",
  responses,
})

const getLoadProbe = createRoute({
  method: 'get',
  path: '/load/{probeId}',
  summary: 'The same, under a path of its own so that each signature is unique',
  request: { params: z.object({ probeId: probeIdSchema }) },
  responses,
})

/**
 * The load route (mounted under /v1, behind the signature check).
 *
 * @example
 * app.route('/v1', loadRoutes({ engine: () => engine, readiness }))
 */
export function loadRoutes(options: LoadRouteOptions) {
  const app = new OpenAPIHono<{ Variables: RequestIdVariables }>({
    defaultHook: (result, c) => (result.success ? undefined : invalidRequest(c, result.error)),
  })
  const answer = (c: Context) => {
    const engine = options.engine()
    if (!engine) {
      throw problemException(
        c,
        { status: 503, title: 'Service not ready', detail: 'the models are loading' },
        { 'retry-after': String(NOT_READY_RETRY_SECONDS) },
      )
    }
    const load = engine.scheduler.load
    const body: LoadResponse = {
      load: { ...load, draining: load.draining || options.readiness.draining },
    }
    return c.json(body, 200)
  }
  app.openapi(getLoad, answer)
  app.openapi(getLoadProbe, answer)
  return app
}
