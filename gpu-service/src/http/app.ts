// The gpu-service HTTP app, composed from its parts: request ids and one log line per request, the probes,
// and under /v1 the signature check, the run routes and the load report. Errors of every part become
// problem+json here.
import { OpenAPIHono } from '@hono/zod-openapi'
import { bodyLimit } from 'hono/body-limit'
import { type RequestIdVariables, requestId } from 'hono/request-id'
import type { Logger } from '../service/logger.ts'
import type { ServiceMetrics } from '../service/metrics.ts'
import type { EventQueueLimits } from './event-queue.ts'
import { verifySignature } from './middleware/verify-signature.ts'
import { problemErrorHandler, problemResponse } from './problem-response.ts'
import { healthRoutes, type Readiness } from './routes/health.ts'
import { loadRoutes } from './routes/load.ts'
import { type RunEngine, runsRoutes } from './routes/runs.ts'

/** Run requests are small JSON (a heavy schedule lists at most 1000 steps). */
const MAX_BODY_BYTES = 64 * 1024

export interface AppOptions {
  hmacSecret: string
  readiness: Readiness
  engine(): RunEngine | undefined
  metrics: ServiceMetrics
  logger: Logger
  heartbeatMs: number
  openStreams: Set<Promise<void>>
  /** Bounds of each run's unwritten events (default: routes/runs.ts RUN_EVENT_QUEUE_LIMITS). */
  eventQueueLimits?: EventQueueLimits
  /** The signature check's clock in ms, and how many signatures it remembers against replay. */
  signature?: { now?: () => number; maxReplayEntries?: number }
}

/**
 * @example
 * serve({ fetch: createApp(options).fetch, port: 8788 })
 */
export function createApp(options: AppOptions) {
  const { logger } = options
  const app = new OpenAPIHono<{ Variables: RequestIdVariables }>()
  app.use(requestId())
  app.use(async function logRequest(c, next) {
    const started = performance.now()
    await next()
    logger.info('request', {
      requestId: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - started),
    })
  })
  app.route('/', healthRoutes(options))

  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => problemResponse(c, { status: 413, title: 'Payload Too Large' }),
    }),
  )
  app.use('/v1/*', verifySignature({ ...options.signature, secret: options.hmacSecret }))
  app.route('/v1', runsRoutes(options))
  app.route('/v1', loadRoutes(options))

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Dual-Rate gpu-service',
      version: '1',
      description:
        'Every /v1 request is signed: x-dualrate-timestamp and x-dualrate-signature ' +
        '(HMAC-SHA256 over method, path, timestamp and body hash; shared/request-signature.ts).',
    },
  })
  app.notFound((c) => problemResponse(c, { status: 404, title: 'Not Found' }))
  app.onError(problemErrorHandler(logger))
  return app
}
