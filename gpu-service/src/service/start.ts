// Starts the gpu-service: listens at once (so /healthz answers while models load), loads and warms every
// model of the models folder (models-folder.ts: the default and one per subfolder), then opens /v1 to runs. `shutdown` drains: new runs are refused, in-flight runs get the
// grace period, then the listener closes and the sessions are released.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdaptorServer } from '@hono/node-server'
import { createApp } from '../http/app.ts'
import { type Readiness, readyModel } from '../http/routes/health.ts'
import type { RunEngine } from '../http/routes/runs.ts'
import type { ModelPair } from '../onnx/model-pair.ts'
import { type LoadedModels, loadModelsFolder } from '../onnx/models-folder.ts'
import { sample } from '../sampler/sample.ts'
import { StepScheduler } from '../scheduler/step-scheduler.ts'
import type { ServiceConfig } from './config.ts'
import type { Logger } from './logger.ts'
import { createServiceMetrics, type ServiceMetrics } from './metrics.ts'

export interface RunningService {
  /** `http://host:port`, with the port the system chose when config.port is 0. */
  url: string
  /**
   * Resolves once every model is loaded and warmed; rejects if one cannot be (ExecutionProviderError
   * when the device's execution provider cannot be loaded; an Error naming the file for a models
   * folder that cannot be served: no default manifest, an invalid one, one model id twice).
   */
  ready: Promise<void>
  metrics: ServiceMetrics
  /** Drains for up to `graceMs` (default config.drainGraceMs), then closes everything. */
  shutdown(graceMs?: number): Promise<void>
}

/**
 * @example
 * const service = await startService(parseServiceConfig(process.env), { logger, hmacSecret })
 * await service.ready
 */
export async function startService(
  config: ServiceConfig,
  { logger, hmacSecret }: { logger: Logger; hmacSecret: string },
): Promise<RunningService> {
  const metrics = createServiceMetrics()
  const readiness: Readiness = { ready: false, draining: false }
  let engine: RunEngine | undefined
  let loaded: LoadedModels | undefined
  const openStreams = new Set<Promise<void>>()
  const app = createApp({
    hmacSecret,
    readiness,
    engine: () => engine,
    metrics,
    logger,
    heartbeatMs: config.heartbeatMs,
    openStreams,
  })
  const server = createAdaptorServer({ fetch: app.fetch }) as Server
  // Keep idle connections open longer than the clients' pools do (Node's default is 5 s): a client that
  // reuses a connection the server has just closed gets a reset, and the edge then counts a healthy
  // backend's run as failed (seen as unexplained failovers under wrangler dev in npm run sim:fleet).
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const host = config.host.includes(':') ? `[${config.host}]` : config.host

  const ready = (async () => {
    loaded = await loadModelsFolder(config.modelsDir, config.session)
    const { pairs } = loaded
    const started = performance.now()
    for (const pair of pairs) await warmUp(pair)
    const scheduler = new StepScheduler(pairs, config.scheduler, {
      telemetry: metrics.telemetry,
      logger,
    })
    // Every session was created with the same configuration, so they all run on the same providers.
    const { executionProviders } = pairs[0] as ModelPair
    metrics.watch(scheduler)
    metrics.watchModels(pairs)
    metrics.executionProvidersInUse(executionProviders)
    engine = { scheduler }
    readiness.engine = {
      device: config.session.device,
      executionProviders,
      models: pairs.map((pair, index) => readyModel(pair.manifest, index === 0)),
    }
    readiness.ready = true
    logger.info('ready', {
      modelId: scheduler.manifestOf()?.modelId,
      models: pairs.map((pair) => ({ modelId: pair.manifest.modelId, dir: pair.dir })),
      device: config.session.device,
      executionProviders,
      warmUpMs: Math.round(performance.now() - started),
      ...config.scheduler,
    })
  })()
  // The caller awaits `ready`; this keeps an early failure from being an unhandled rejection.
  ready.catch(() => {})

  return {
    url: `http://${host}:${port}`,
    ready,
    metrics,
    async shutdown(graceMs = config.drainGraceMs) {
      readiness.draining = true
      await ready.catch(() => {})
      await engine?.scheduler.drain(graceMs)
      // Every run has ended; let the streams write their last event before the sockets close.
      await settledWithin([...openStreams], CLOSE_WAIT_MS)
      await settledWithin([new Promise((resolve) => server.close(resolve))], CLOSE_WAIT_MS)
      server.closeAllConnections()
      await loaded?.release()
    },
  }
}

/**
 * How long an idle keep-alive connection stays open: above the 60 s idle timeout common to load
 * balancers and connection pools in front of the service, so the client side always closes first.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000

/** How long shutdown waits for streams to flush and idle keep-alive connections to close. */
const CLOSE_WAIT_MS = 1_000

async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    Promise.allSettled(promises),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ])
  clearTimeout(timer)
}

/** One small run through both models, so the first request does not pay for session start-up. */
async function warmUp(pair: ModelPair): Promise<void> {
  await sample(pair.models, pair.manifest, {
    classIndex: 0,
    count: 1,
    steps: 2,
    heavySchedule: { every: 1 },
    guidance: 2,
    seed: 0,
  })
}
