// Probes and metrics, outside /v1 and its signature check: /healthz (the process answers), /readyz (models
// loaded and warmed, not draining; names the device, the execution providers in use and every model
// served) and /metrics (Prometheus text format).
import { Hono } from 'hono'
import type { Manifest, ModelSupport } from '../../../../shared/model-manifest.ts'
import type { ServiceMetrics } from '../../service/metrics.ts'
import { problemResponse } from '../problem-response.ts'

/** One model as /readyz lists it: what a run's `model` may name, and what the model runs best. */
export interface ReadyModel {
  id: string
  /** The model a run without `model` runs on; exactly one is. */
  default: boolean
  description?: string
  teacherModelId?: string
  /** Only these steps, heavy placements and guidance (a distilled student); absent: any valid ones. */
  supports?: ModelSupport
  recommended: Manifest['recommended']
}

/** Where the service stands: loading -> ready -> draining. */
export interface Readiness {
  ready: boolean
  draining: boolean
  /**
   * Once the models are loaded: DUALRATE_DEVICE, the execution providers its sessions run on and the
   * models served, the default first.
   */
  engine?: { device: string; executionProviders: readonly string[]; models: ReadyModel[] }
}

/**
 * A model as /readyz lists it.
 *
 * @example
 * readyModel(manifest, true) // { id: 'dualrate-547fb728e629', default: true, recommended: { ... } }
 */
export function readyModel(manifest: Manifest, isDefault: boolean): ReadyModel {
  const { modelId, description, teacherModelId, supports, recommended } = manifest
  return {
    id: modelId,
    default: isDefault,
    ...(description !== undefined && { description }),
    ...(teacherModelId !== undefined && { teacherModelId }),
    ...(supports !== undefined && { supports }),
    recommended,
  }
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
