// Probes and metrics, outside /v1 and its signature check: /healthz (the process answers), /readyz (models
// loaded and warmed, not draining; names the device and the execution providers in use) and /metrics
// (Prometheus text format).
import { Hono } from 'hono'
import type { ServiceMetrics } from '../../service/metrics.ts'
import { problemResponse } from '../problem-response.ts'

/** Where the service stands: loading -> ready -> draining. */
export interface Readiness {
  ready: boolean
  draining: boolean
  /** Once the models are loaded: DUALRATE_DEVICE and the execution providers its sessions run on. */
  engine?: { device: string; executionProviders: readonly string[] }
}

/**
 * @example
 * app.route('/', healthRoutes({ readiness, metrics }))
 */
export function healthRoutes(options: { readiness: Readiness; metrics: ServiceMetrics }) {
  const { readiness, metrics } = options
  const app = new Hono()
  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', (c) => {
    if (readiness.ready && !readiness.draining) {
      return c.json({ status: 'ready', ...readiness.engine })
    }
    const detail = readiness.draining ? 'draining' : 'loading and warming the models'
    return problemResponse(c, { status: 503, title: 'Not ready', detail })
  })
  app.get('/metrics', async (c) => {
    const text = await metrics.registry.metrics()
    return c.body(text, 200, { 'content-type': metrics.registry.contentType })
  })
  return app
}
