// POST /v1/runs streams a run's events as SSE while the step scheduler works on it; DELETE /v1/runs/:id
// stops it before its next model call. The request is validated with the shared schema first, then
// against the model it names (absent: the default model): a bad body, a model not loaded here, options
// the model does not support, a full queue or a draining service is answered before anything runs. Each run's unwritten
// events wait in a bounded queue: a newer preview replaces an unwritten older one, and a client too slow
// for the limits has its run stopped as disconnected (logged with the reason).
import { randomUUID } from 'node:crypto'
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { RequestIdVariables } from 'hono/request-id'
import { stream } from 'hono/streaming'
import { calibratedStepCounts, unsupportedOptions } from '../../../../shared/model-support.ts'
import { problemSchema } from '../../../../shared/problem.ts'
import {
  LOAD_REPORT_HEADER,
  LOAD_REPORT_REQUESTED,
  MODEL_NOT_LOADED_PROBLEM,
  RUN_PROBLEM_TYPES,
  type RunCancellation,
  type RunEvent,
  runCancellationSchema,
  runEventSchema,
  runIdSchema,
  runRequestSchema,
} from '../../../../shared/run-protocol.ts'
import { MAX_STEPS } from '../../../../shared/sampling-options.ts'
import { formatSse, SSE_CONTENT_TYPE, SSE_HEARTBEAT } from '../../../../shared/sse.ts'
import {
  type RunSummary,
  SchedulerRejection,
  type StepScheduler,
} from '../../scheduler/step-scheduler.ts'
import type { Logger } from '../../service/logger.ts'
import type { ServiceMetrics } from '../../service/metrics.ts'
import { EventQueue, type EventQueueLimits } from '../event-queue.ts'
import {
  invalidFields,
  invalidRequest,
  problemException,
  withRequestId,
} from '../problem-response.ts'
import { OUTCOME_PROBLEMS, runEventObserver } from '../run-events.ts'

/** What serves runs once the models are loaded and warmed: the scheduler knows the models it serves. */
export interface RunEngine {
  scheduler: StepScheduler<unknown>
}

export interface RunsRouteOptions {
  /** Undefined until the models are loaded and warmed: runs are refused with 503 until then. */
  engine(): RunEngine | undefined
  metrics: ServiceMetrics
  logger: Logger
  heartbeatMs: number
  /** Open SSE streams, each settled once its last event is written: shutdown waits for them. */
  openStreams: Set<Promise<void>>
  /** Bounds of each run's unwritten events (default RUN_EVENT_QUEUE_LIMITS). */
  eventQueueLimits?: EventQueueLimits
}

/**
 * A run has at most MAX_STEPS step events, one queued preview and a few others; a 64-image preview or
 * result is about 64 KB of base64 PNGs. So no client that reads at all reaches these: they stop a
 * stalled one before it holds more than a megabyte.
 */
export const RUN_EVENT_QUEUE_LIMITS: EventQueueLimits = Object.freeze({
  maxItems: 2 * MAX_STEPS,
  maxBytes: 1024 * 1024,
})

/** Bytes of an event on the wire, near enough: its images, plus a step event's worth of fields. */
function eventBytes(event: RunEvent): number {
  const images = 'images' in event ? event.images : []
  return images.reduce((sum, image) => sum + image.length + 3, 200)
}

/** Seconds a client should wait before retrying while the models load. */
const NOT_READY_RETRY_SECONDS = 5

const problemContent = { 'application/problem+json': { schema: problemSchema } }

const postRun = createRoute({
  method: 'post',
  path: '/runs',
  summary: 'Start a run and stream its events',
  request: {
    body: { content: { 'application/json': { schema: runRequestSchema } }, required: true },
  },
  responses: {
    200: {
      description:
        'SSE: accepted (with the load when the request carries x-dualrate-load-report: 1), started, ' +
        'step..., preview..., then result or error',
      content: { [SSE_CONTENT_TYPE]: { schema: runEventSchema } },
    },
    400: {
      description: 'The body fails the run request schema, or asks what its model does not support',
      content: problemContent,
    },
    401: { description: 'Missing, wrong or stale signature', content: problemContent },
    404: {
      description: `The model named is not loaded here (type ${MODEL_NOT_LOADED_PROBLEM})`,
      content: problemContent,
    },
    409: { description: 'A run with this runId is in progress', content: problemContent },
    503: {
      description: 'Queue full, not ready or shutting down; see Retry-After',
      content: problemContent,
    },
  },
})

const deleteRun = createRoute({
  method: 'delete',
  path: '/runs/{runId}',
  summary: 'Cancel a queued or active run',
  request: { params: z.object({ runId: runIdSchema }) },
  responses: {
    200: {
      description: 'The run has stopped; no model call of it starts after this answer',
      content: { 'application/json': { schema: runCancellationSchema } },
    },
    404: { description: 'No queued or active run with this id', content: problemContent },
  },
})

/**
 * The 404 for a run naming a model this service has not loaded: the edge may find it on another backend
 * (a fleet mid-rollout), so the type says exactly that.
 */
function modelNotLoaded(c: Context, scheduler: StepScheduler<unknown>, model: string | undefined) {
  const loaded = scheduler.manifests.map((manifest) => manifest.modelId).join(', ')
  return problemException(c, {
    type: MODEL_NOT_LOADED_PROBLEM,
    status: 404,
    title: 'Model not loaded',
    detail: `model ${model} is not loaded here (loaded: ${loaded})`,
  })
}

/**
 * The /v1 run routes (mounted under /v1, behind the signature check).
 *
 * @example
 * v1.route('/', runsRoutes({ engine: () => engine, metrics, logger, heartbeatMs: 15_000 }))
 */
export function runsRoutes(options: RunsRouteOptions) {
  const { metrics, logger, heartbeatMs, openStreams } = options
  const eventQueueLimits = options.eventQueueLimits ?? RUN_EVENT_QUEUE_LIMITS
  const app = new OpenAPIHono<{ Variables: RequestIdVariables }>({
    defaultHook: (result, c) => (result.success ? undefined : invalidRequest(c, result.error)),
  })

  const readyEngine = (c: Context) => {
    const engine = options.engine()
    if (engine) return engine
    throw problemException(
      c,
      { status: 503, title: 'Service not ready', detail: 'the models are loading' },
      { 'retry-after': String(NOT_READY_RETRY_SECONDS) },
    )
  }

  app.openapi(postRun, (c) => {
    const { scheduler } = readyEngine(c)
    const { model, runId = randomUUID(), previewEvery, ...sampling } = c.req.valid('json')
    const manifest = scheduler.manifestOf(model)
    if (!manifest) throw modelNotLoaded(c, scheduler, model)
    // A distilled student samples well only with what it was distilled for (shared/model-support.ts).
    const unsupported = unsupportedOptions(
      manifest.supports,
      sampling,
      calibratedStepCounts(manifest.heavyPlacements),
    )
    if (unsupported.length > 0) {
      const errors = unsupported.map(({ path, message }) => ({ path: path.join('.'), message }))
      throw new HTTPException(400, { res: invalidFields(c, errors) })
    }
    const requestId = c.get('requestId')
    // The load rides on `accepted` only when asked for: an edge that predates the field refuses it.
    const reportLoad = c.req.header(LOAD_REPORT_HEADER) === LOAD_REPORT_REQUESTED
    /** Why the run's event queue overflowed, if it did. */
    let overflow: string | undefined
    const queue = new EventQueue<RunEvent>({
      ...eventQueueLimits,
      sizeOf: eventBytes,
      // A preview is a snapshot of x0: the newest one makes an unwritten older one useless.
      replaceKey: (event) => (event.type === 'preview' ? 'preview' : undefined),
      onOverflow(reason) {
        overflow = reason
        logger.warn('run event queue full', { requestId, runId, reason })
        void scheduler.cancel(runId, 'disconnected')
      },
    })
    const observer = runEventObserver({
      runId,
      modelId: manifest.modelId,
      previewEvery,
      width: manifest.image.width,
      height: manifest.image.height,
      // The result or error event ends the stream; it is written even after an overflow. `accepted`
      // is sent inside submit(), with this run queued: the load it carries counts the run.
      send: (event) => {
        if (event.type === 'result' || event.type === 'error') queue.close(event)
        else if (event.type === 'accepted' && reportLoad)
          queue.push({ ...event, load: scheduler.load })
        else queue.push(event)
      },
      problemOf: (outcome) =>
        withRequestId(
          c,
          overflow && outcome === 'disconnected'
            ? { ...OUTCOME_PROBLEMS.disconnected, detail: 'the client read the events too slowly' }
            : OUTCOME_PROBLEMS[outcome],
        ),
    })
    const logEnd = (summary: RunSummary) => {
      const { images: _images, error, ...fields } = summary
      const line = {
        requestId,
        ...fields,
        modelId: manifest.modelId,
        count: sampling.count,
        steps: sampling.steps,
        ...(overflow && { reason: overflow }),
      }
      if (error) logger.error('run ended', { ...line, error })
      else logger.info('run ended', line)
    }
    try {
      scheduler.submit(
        runId,
        sampling,
        {
          ...observer,
          ended(summary) {
            observer.ended(summary)
            queue.close()
            logEnd(summary)
          },
        },
        manifest.modelId,
      )
    } catch (error) {
      if (!(error instanceof SchedulerRejection)) throw error
      metrics.runRejected()
      logger.warn('run rejected', { requestId, runId, reason: error.reason })
      if (error.reason === 'model_not_loaded') throw modelNotLoaded(c, scheduler, model)
      if (error.reason === 'duplicate_run_id') {
        throw problemException(c, { status: 409, title: 'Run exists', detail: error.message })
      }
      const draining = error.reason === 'draining'
      throw problemException(
        c,
        {
          // The type the run's own `error` event has when a shutdown stops it: the edge sends this
          // backend no more work (a queue full is for now only).
          ...(draining && { type: RUN_PROBLEM_TYPES.shutdown }),
          status: 503,
          title: draining ? 'Service shutting down' : 'Queue full',
          detail: error.message,
        },
        { 'retry-after': String(error.retryAfterSeconds ?? NOT_READY_RETRY_SECONDS) },
      )
    }

    c.header('content-type', SSE_CONTENT_TYPE)
    c.header('cache-control', 'no-cache')
    c.header('x-accel-buffering', 'no')
    return stream(c, async (sse) => {
      // The client went away: stop the run before its next model call.
      sse.onAbort(() => {
        queue.close()
        void scheduler.cancel(runId, 'disconnected')
      })
      const heartbeat = setInterval(() => void sse.write(SSE_HEARTBEAT), heartbeatMs)
      const written = (async () => {
        let id = 0
        for await (const event of queue) {
          await sse.write(formatSse({ event: event.type, id: String(id++), data: event }))
        }
      })()
      openStreams.add(written)
      try {
        await written
      } finally {
        openStreams.delete(written)
        clearInterval(heartbeat)
      }
    })
  })

  app.openapi(deleteRun, async (c) => {
    const { scheduler } = readyEngine(c)
    const { runId } = c.req.valid('param')
    const summary = await scheduler.cancel(runId)
    if (!summary) {
      throw problemException(c, {
        status: 404,
        title: 'Run not found',
        detail: `no queued or active run ${runId}`,
      })
    }
    const { stepsCompleted, heavyCalls, lightCalls } = summary
    return c.json({ runId, stepsCompleted, heavyCalls, lightCalls } satisfies RunCancellation, 200)
  })

  return app
}
