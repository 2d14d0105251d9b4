// /v1/generations: create a job (or answer from cache), read it, stream its events, cancel it.
import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import {
  type GenerationRequest,
  generationRequestSchema,
  generationSchema,
  RESULT_KEY_PATTERN,
} from '../../../shared/generation-api.ts'
import { type RunRequest, runRequestSchema } from '../../../shared/run-protocol.ts'
import { SSE_CONTENT_TYPE } from '../../../shared/sse.ts'
import type { ApiKeyIdentity } from '../auth/api-key.ts'
import { requireApiKey } from '../auth/require-api-key.ts'
import { readConfig } from '../env.ts'
import type { AppEnv } from '../http/app-env.ts'
import { limitBody } from '../http/body-limit.ts'
import { createApiApp, problemResponseDoc } from '../http/openapi-app.ts'
import { parsePreferWait } from '../http/prefer-wait.ts'
import { ApiError, invalidRequest, notFound, PROBLEM_TYPES } from '../http/problem.ts'
import { isTerminal, type JobState, toGeneration } from '../jobs/job-state.ts'
import { resolveRunRequest } from '../jobs/resolve-request.ts'
import { model } from '../models/manifest.ts'
import { rateLimit } from '../rate-limit/rate-limit.ts'
import { fingerprint, resultKey } from '../results/result-key.ts'
import { findResult } from '../results/result-store.ts'

const security = [{ bearerAuth: [] }]
const jsonGeneration = { 'application/json': { schema: generationSchema } }
const idParams = z.object({
  id: z.string().regex(RESULT_KEY_PATTERN, 'expected a generation id (64 hex digits)'),
})
const commonErrors = {
  401: problemResponseDoc('Missing or invalid API key'),
  429: problemResponseDoc('Rate limit or concurrent-jobs quota exceeded'),
}

const createGeneration = createRoute({
  method: 'post',
  path: '/v1/generations',
  summary: 'Create a generation',
  description:
    'Starts a job, joins an identical one in flight, or answers 200 from cache. `Prefer: wait=N` ' +
    '(N <= 60) holds the request until the job ends or N seconds pass.',
  security,
  request: {
    headers: z.object({
      'idempotency-key': z.string().min(1).max(255).optional(),
      prefer: z.string().max(200).optional(),
    }),
    body: { required: true, content: { 'application/json': { schema: generationRequestSchema } } },
  },
  responses: {
    200: {
      description: 'Finished (a cached result, or the job ended while waiting)',
      content: jsonGeneration,
    },
    202: { description: 'Accepted: the job is queued or running', content: jsonGeneration },
    400: problemResponseDoc('Invalid request; `errors` lists each invalid field'),
    413: problemResponseDoc('Body too large'),
    422: problemResponseDoc('Idempotency-Key reused with another body'),
    ...commonErrors,
  },
})

const getGeneration = createRoute({
  method: 'get',
  path: '/v1/generations/{id}',
  summary: 'Get a generation',
  security,
  request: { params: idParams },
  responses: {
    200: { description: 'The job', content: jsonGeneration },
    404: problemResponseDoc('No such generation'),
    ...commonErrors,
  },
})

const streamEvents = createRoute({
  method: 'get',
  path: '/v1/generations/{id}/events',
  summary: 'Stream a generation’s events (SSE)',
  description:
    'Events `queued`, `started`, `step`, `preview`, `succeeded`, `failed`, `canceled`, each with an ' +
    '`id`. Send `Last-Event-ID` to resume; a late subscriber gets the history first.',
  security,
  request: {
    params: idParams,
    headers: z.object({
      'last-event-id': z
        .string()
        .regex(/^\d{1,15}$/)
        .optional(),
    }),
  },
  responses: {
    200: {
      description: 'Server-sent events',
      content: { [SSE_CONTENT_TYPE]: { schema: z.string() } },
    },
    404: problemResponseDoc('No such generation'),
    ...commonErrors,
  },
})

const cancelGeneration = createRoute({
  method: 'post',
  path: '/v1/generations/{id}/cancel',
  summary: 'Cancel a generation',
  description: 'Stops the GPU work: the backend run is cancelled, not just hidden.',
  security,
  request: { params: idParams },
  responses: {
    200: { description: 'The job after cancellation', content: jsonGeneration },
    404: problemResponseDoc('No such generation'),
    ...commonErrors,
  },
})

export const generations = createApiApp()

generations.use('/v1/generations', requireApiKey(), rateLimit(), limitBody())
generations.use('/v1/generations/*', requireApiKey(), rateLimit())

generations.openapi(createGeneration, async (c) => {
  const body = c.req.valid('json')
  const headers = c.req.valid('header')
  const apiKey = c.get('apiKey')
  const config = readConfig(c.env)
  checkWebhookUrl(body.webhookUrl, config.allowHttpWebhooks)
  const request = await resolveOnce(c, apiKey, body, headers['idempotency-key'])
  const key = await resultKey(config.resultKeySecret, model.id, request)
  const origin = new URL(c.req.url).origin
  const className = model.classes[request.classIndex]?.name ?? String(request.classIndex)

  const cached = await findResult(c.env.RESULTS, key)
  if (cached) {
    const state: JobState = {
      key,
      origin,
      modelId: cached.modelId,
      className,
      request,
      status: 'succeeded',
      attempts: 0,
      step: request.steps,
      createdAt: Date.parse(cached.createdAt),
      finishedAt: Date.parse(cached.createdAt),
      timings: cached.timings,
      owners: [],
      requestId: c.get('requestId'),
      firstEventId: 0,
    }
    return c.json(toGeneration(state), 200, { location: toGeneration(state).urls.self })
  }

  const quota = c.env.KEY_QUOTA.getByName(apiKey.id)
  const slot = await quota.acquireJob(
    key,
    apiKey.limits.concurrentJobs,
    config.jobTimeoutMs + 60_000,
  )
  if (!slot.acquired) {
    throw new ApiError(
      {
        status: 429,
        type: PROBLEM_TYPES.concurrencyQuota,
        title: 'Too many concurrent jobs',
        detail: `This key may run ${apiKey.limits.concurrentJobs} jobs at once; ${slot.active} are active.`,
      },
      { 'retry-after': '5' },
    )
  }
  const job = c.env.GENERATION_JOB.getByName(key)
  let state: JobState = await job.submit({
    key,
    origin,
    modelId: model.id,
    className,
    request,
    owner: apiKey.id,
    requestId: c.get('requestId'),
    ...(body.webhookUrl ? { webhook: { url: body.webhookUrl, secret: apiKey.webhookSecret } } : {}),
  })
  // Joined a job that had already ended (a race with its result becoming visible): no slot held.
  if (isTerminal(state.status)) await quota.releaseJob(key)

  const wait = parsePreferWait(headers.prefer)
  if (wait !== null) {
    c.header('preference-applied', `wait=${wait}`)
    if (!isTerminal(state.status)) state = (await job.waitForCompletion(wait * 1000)) ?? state
  }
  const generation = toGeneration(state)
  c.header('location', generation.urls.self)
  return isTerminal(state.status) ? c.json(generation, 200) : c.json(generation, 202)
})

generations.openapi(getGeneration, async (c) => {
  const { id } = c.req.valid('param')
  const state = await c.env.GENERATION_JOB.getByName(id).snapshot()
  if (!state) throw notFound(`No generation ${id}.`)
  return c.json(toGeneration(state), 200)
})

generations.openapi(streamEvents, async (c) => {
  const { id } = c.req.valid('param')
  const lastEventId = c.req.valid('header')['last-event-id']
  const stream = await c.env.GENERATION_JOB.getByName(id).subscribe(
    lastEventId === undefined ? null : Number(lastEventId),
  )
  if (!stream) throw notFound(`No generation ${id}.`)
  return new Response(stream, {
    headers: {
      'content-type': `${SSE_CONTENT_TYPE}; charset=utf-8`,
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    },
  }) as never
})

generations.openapi(cancelGeneration, async (c) => {
  const { id } = c.req.valid('param')
  const state = await c.env.GENERATION_JOB.getByName(id).cancel()
  if (!state) throw notFound(`No generation ${id}.`)
  return c.json(toGeneration(state), 200)
})

/**
 * The run request for this body. With an Idempotency-Key, the first request's resolution (its drawn
 * seed above all) is stored and every retry with the same body gets it back; another body is a 422.
 */
async function resolveOnce(
  c: Context<AppEnv>,
  apiKey: ApiKeyIdentity,
  body: GenerationRequest,
  idempotencyKey: string | undefined,
): Promise<RunRequest> {
  const resolved = resolveRunRequest(body, model)
  if (idempotencyKey === undefined) return resolved
  const record = c.env.IDEMPOTENCY.getByName(`${apiKey.id}:${idempotencyKey}`)
  const claim = await record.claim(await fingerprint(body), resolved)
  if (!('value' in claim)) {
    throw new ApiError({
      status: 422,
      type: PROBLEM_TYPES.idempotencyMismatch,
      title: 'Idempotency-Key reused',
      detail: 'This Idempotency-Key was first used with a different request body.',
    })
  }
  return runRequestSchema.parse(claim.value)
}

function checkWebhookUrl(url: string | undefined, allowHttp: boolean): void {
  if (url === undefined || url.startsWith('https:') || (allowHttp && url.startsWith('http:')))
    return
  throw invalidRequest([{ field: 'webhookUrl', message: 'must be an https URL' }])
}
