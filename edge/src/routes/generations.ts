// /v1/generations: create a job (or answer from cache), read it, stream its events, cancel it.
import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import {
  type GenerationRequest,
  generationEventSchemas,
  generationRequestSchema,
  generationSchema,
  isTerminalStatus,
  type Model,
  RESULT_KEY_PATTERN,
} from '../../../shared/generation-api.ts'
import { PROBLEM_TYPES } from '../../../shared/problem.ts'
import { type RunRequest, runRequestSchema } from '../../../shared/run-protocol.ts'
import { runCost } from '../../../shared/sampling-options.ts'
import { SSE_CONTENT_TYPE } from '../../../shared/sse.ts'
import type { ApiKeyIdentity } from '../auth/api-key.ts'
import { requireApiKey } from '../auth/require-api-key.ts'
import { readConfig } from '../env.ts'
import type { AppEnv } from '../http/app-env.ts'
import { limitBody } from '../http/body-limit.ts'
import { createApiApp, problemResponseDoc } from '../http/openapi-app.ts'
import { parsePreferWait } from '../http/prefer-wait.ts'
import type { SubmitInput, SubmitResult } from '../jobs/generation-job.ts'
import { toGeneration } from '../jobs/job-state.ts'
import { MAX_OWNERS_PER_JOB } from '../jobs/owners.ts'
import { resolveModel, resolveRunRequest } from '../jobs/resolve-request.ts'
import { servedCatalog } from '../models/catalog.ts'
import { ApiError, invalidRequest, notFound } from '../problems/api-error.ts'
import type { JobSlot } from '../rate-limit/key-quota.ts'
import { rateLimit } from '../rate-limit/rate-limit.ts'
import { fingerprint, resultKey } from '../results/result-key.ts'
import { findResult } from '../results/result-store.ts'
import { MAX_ENDPOINTS_PER_RUN } from '../webhooks/outbox.ts'
import { webhookTargetError } from '../webhooks/webhook-target.ts'

const security = [{ bearerAuth: [] }]
const jsonGeneration = { 'application/json': { schema: generationSchema } }
const idParams = z.object({
  id: z.string().regex(RESULT_KEY_PATTERN, 'expected a generation id (64 hex digits)'),
})
const commonErrors = {
  401: problemResponseDoc('Missing or invalid API key'),
  429: problemResponseDoc('Rate limit or concurrent-jobs quota exceeded'),
}

/**
 * One message of the event stream, per event name: `event` names it, `id` is what Last-Event-ID resumes
 * after, `data` (one line of JSON on the wire) is the payload, a component of its own (`StepEvent`, ...).
 */
const eventMessages = Object.entries(generationEventSchemas).map(([name, data]) =>
  z.strictObject({
    event: z.literal(name),
    id: z.string().regex(/^\d+$/),
    data: data.meta({ id: `${name[0]?.toUpperCase()}${name.slice(1)}Event` }),
  }),
)
type EventMessage = (typeof eventMessages)[number]
const eventMessageSchema = z
  // A oneOf discriminated by `event`; generationEventSchemas has eight entries, so the list is not empty.
  .discriminatedUnion('event', eventMessages as [EventMessage, ...EventMessage[]])
  .meta({
    id: 'GenerationEventMessage',
    description:
      'One server-sent event of `GET /v1/generations/{id}/events`, by its fields: `event: step`, ' +
      '`id: 12`, `data: {...}`. Comment lines (`: heartbeat`, `: dropped: …`) carry no event.',
  })

const createGeneration = createRoute({
  method: 'post',
  path: '/v1/generations',
  operationId: 'createGeneration',
  summary: 'Create a generation',
  description:
    'Starts a job, joins an identical one in flight, or answers 200 from cache; in each case the ' +
    'calling key becomes an owner of the job (only owners may read, stream or cancel it). ' +
    '`model` picks one of the models GET /v1/models lists (absent: the default); absent options ' +
    'take that model’s defaults, and a distilled model refuses the steps, heavy schedule or ' +
    'guidance its `supports` does not list (400 naming the field). ' +
    '`Prefer: wait=N` (N <= 60) holds the request until the job ends or N seconds pass. A key may ' +
    'hold `concurrentJobs` jobs and `concurrentCost` row-steps (images x guidance rows x steps) at ' +
    'once. `webhookUrl` must be a public https URL (no loopback, private, link-local or other ' +
    'special-purpose address, no `localhost`/`*.internal`); it receives a signed POST when the job ' +
    'ends for this key, and redirects are not followed.',
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
    400: problemResponseDoc(
      'Invalid request, an unknown `model`, or options the model does not support; `errors` lists ' +
        'each invalid field',
    ),
    409: problemResponseDoc('The job already has as many webhook endpoints as allowed'),
    413: problemResponseDoc('Body too large'),
    422: problemResponseDoc('Idempotency-Key reused with another body'),
    ...commonErrors,
  },
})

const getGeneration = createRoute({
  method: 'get',
  path: '/v1/generations/{id}',
  operationId: 'getGeneration',
  summary: 'Get a generation',
  security,
  request: { params: idParams },
  responses: {
    200: { description: 'The job', content: jsonGeneration },
    404: problemResponseDoc('No such generation (or not one of this key)'),
    ...commonErrors,
  },
})

const streamEvents = createRoute({
  method: 'get',
  path: '/v1/generations/{id}/events',
  operationId: 'streamGenerationEvents',
  summary: 'Stream a generation’s events (SSE)',
  description:
    'Events `queued`, `started`, `step`, `preview`, `retrying`, `succeeded`, `failed`, `canceled`, ' +
    'each with an `id`. Send `Last-Event-ID` to resume; a late subscriber gets the history first ' +
    '(only the latest `preview` is kept; live subscribers get every one). `retrying` means the run ' +
    'starts over (another backend, or the job resumed), so steps begin at 0 again; a job resumed ' +
    'after a restart keeps its other events but not the progress (`step`, `preview`) of the attempt ' +
    'it lost, and its ids continue above every id given before. A subscriber ' +
    'that falls far behind gets the comment `: dropped: …` and the stream closes: reconnect with ' +
    '`Last-Event-ID`. At most 8 streams per key and 64 per job are open at once (429 beyond).',
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
      description:
        'Server-sent events; the schema describes each message (`GenerationEventMessage`), not the ' +
        'stream as one value',
      content: { [SSE_CONTENT_TYPE]: { schema: eventMessageSchema } },
    },
    404: problemResponseDoc('No such generation (or not one of this key)'),
    ...commonErrors,
    429: problemResponseDoc('Rate limit exceeded, or too many open event streams'),
  },
})

const cancelGeneration = createRoute({
  method: 'post',
  path: '/v1/generations/{id}/cancel',
  operationId: 'cancelGeneration',
  summary: 'Cancel a generation',
  description:
    'Cancels the job for the calling key: its streams end with `canceled`, its webhook reports ' +
    '`generation.canceled`, its quota is freed. The GPU work stops when no other key that sent the ' +
    'same request is still waiting on it. A job that has already ended is answered as it is.',
  security,
  request: { params: idParams },
  responses: {
    200: { description: 'The job after cancellation', content: jsonGeneration },
    404: problemResponseDoc('No such generation (or not one of this key)'),
    ...commonErrors,
  },
})

export const generations = createApiApp()

// One authentication and one rate-limit charge per request: '/v1/generations/*' also matches the
// collection itself, so the body limit is the only addition for POST /v1/generations.
generations.use('/v1/generations/*', requireApiKey(), rateLimit())
generations.use('/v1/generations', limitBody())

generations.openapi(createGeneration, async (c) => {
  const body = c.req.valid('json')
  const headers = c.req.valid('header')
  const apiKey = c.get('apiKey')
  const config = readConfig(c.env)
  if (body.webhookUrl !== undefined) {
    const refused = webhookTargetError(body.webhookUrl, config.webhookPolicy)
    if (refused) throw invalidRequest([{ field: 'webhookUrl', message: refused }])
  }
  const model = resolveModel(body, servedCatalog())
  const request = await resolveOnce(c, apiKey, body, model, headers['idempotency-key'])
  // The model is part of the key: equal options on two models are two results.
  const key = await resultKey(config.resultKeySecret, model.id, request)
  const job = c.env.GENERATION_JOB.getByName(key)
  const input: SubmitInput = {
    key,
    origin: new URL(c.req.url).origin,
    modelId: model.id,
    className: model.classes[request.classIndex]?.name ?? String(request.classIndex),
    request,
    owner: apiKey.id,
    requestId: c.get('requestId'),
    ...(body.webhookUrl ? { webhook: { url: body.webhookUrl, secret: apiKey.webhookSecret } } : {}),
  }

  const cached = await findResult(c.env.RESULTS, key)
  if (cached) {
    // A finished result: no slot, no GPU work; the key still becomes an owner (it may read the job
    // and gets its webhook).
    // RPC wraps the result type; it is the SubmitResult the object returned.
    const joined = (await job.submit({ ...input, stored: cached })) as SubmitResult
    if (joined.kind === 'busy') throw busy(joined.reason)
    const generation = toGeneration(joined.view)
    return c.json(generation, 200, { location: generation.urls.self })
  }

  const quota = c.env.KEY_QUOTA.getByName(apiKey.id)
  const slot = await quota.acquireJob(key, runCost(request), {
    maxJobs: apiKey.limits.concurrentJobs,
    maxCost: apiKey.limits.concurrentCost,
    ttlMs: config.jobTimeoutMs + 60_000,
  })
  if (!slot.acquired) throw quotaExceeded(apiKey, slot)
  // With Prefer: wait, the job holds its answer until it ends: one call to the object, not two.
  const wait = parsePreferWait(headers.prefer)
  if (wait !== null) c.header('preference-applied', `wait=${wait}`)
  const joined = (await job.submit(
    wait === null ? input : { ...input, waitMs: wait * 1000 },
  )) as SubmitResult
  if (joined.kind === 'busy') {
    await quota.releaseJob(key)
    throw busy(joined.reason)
  }
  // Joined a job that had already ended (a race with its result becoming visible): no slot held.
  if (joined.alreadyEnded) await quota.releaseJob(key)
  const generation = toGeneration(joined.view)
  c.header('location', generation.urls.self)
  return isTerminalStatus(joined.view.status) ? c.json(generation, 200) : c.json(generation, 202)
})

// GET, events and cancel answer the same 404 to a key that is not an owner as to an unknown id, so a
// job's existence is never revealed to another key.
generations.openapi(getGeneration, async (c) => {
  const { id } = c.req.valid('param')
  const view = await c.env.GENERATION_JOB.getByName(id).snapshot(c.get('apiKey').id)
  if (!view) throw notFound(`No generation ${id}.`)
  return c.json(toGeneration(view), 200)
})

generations.openapi(streamEvents, async (c) => {
  const { id } = c.req.valid('param')
  const lastEventId = c.req.valid('header')['last-event-id']
  const stream = await c.env.GENERATION_JOB.getByName(id).subscribe(
    c.get('apiKey').id,
    lastEventId === undefined ? null : Number(lastEventId),
  )
  if (stream === 'not-found') throw notFound(`No generation ${id}.`)
  if (stream === 'too-many') {
    throw new ApiError(
      {
        status: 429,
        type: PROBLEM_TYPES.tooManyStreams,
        title: 'Too many event streams',
        detail: 'This generation already has as many open event streams as allowed; close one.',
      },
      { 'retry-after': '5' },
    )
  }
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
  const view = await c.env.GENERATION_JOB.getByName(id).cancel(c.get('apiKey').id)
  if (!view) throw notFound(`No generation ${id}.`)
  return c.json(toGeneration(view), 200)
})

function quotaExceeded(
  apiKey: ApiKeyIdentity,
  slot: Extract<JobSlot, { acquired: false }>,
): ApiError {
  const { concurrentJobs, concurrentCost } = apiKey.limits
  const detail =
    slot.reason === 'jobs'
      ? `This key may run ${concurrentJobs} jobs at once; ${slot.active} are active.`
      : `This key may run ${concurrentCost} row-steps (images x guidance rows x steps) at once; ` +
        `${slot.activeCost} are in use.`
  return new ApiError(
    {
      status: 429,
      type: PROBLEM_TYPES.concurrencyQuota,
      title: 'Too many concurrent jobs',
      detail,
    },
    { 'retry-after': '5' },
  )
}

function busy(reason: 'owners' | 'webhooks'): ApiError {
  return reason === 'owners'
    ? new ApiError(
        {
          status: 429,
          type: PROBLEM_TYPES.generationBusy,
          title: 'Generation busy',
          detail: `This generation already has ${MAX_OWNERS_PER_JOB} callers waiting on it.`,
        },
        { 'retry-after': '5' },
      )
    : new ApiError({
        status: 409,
        type: PROBLEM_TYPES.webhookLimit,
        title: 'Too many webhooks',
        detail: `This generation already has ${MAX_ENDPOINTS_PER_RUN} webhook endpoints waiting.`,
      })
}

/**
 * The run request for this body. With an Idempotency-Key, the first request's resolution (its drawn
 * seed above all) is stored and every retry with the same body gets it back; another body is a 422.
 */
async function resolveOnce(
  c: Context<AppEnv>,
  apiKey: ApiKeyIdentity,
  body: GenerationRequest,
  model: Model,
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
