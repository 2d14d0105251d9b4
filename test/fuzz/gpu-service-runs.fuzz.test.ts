// Property-based fuzzing of the gpu-service's run routes (POST /v1/runs, and whatever else a request to
// /v1 can reach) through the real Hono app in this process, with the fake models behind a real step
// scheduler. Requests are random and adversarial: methods, paths, content types, headers, bodies of any
// bytes (invalid UTF-8 included), deeply nested or huge JSON, out-of-range numbers; signed as the edge
// signs (so validation is reached) or not. Properties: never a 5xx; every 4xx is problem+json that the
// shared schema accepts; a body is accepted exactly when the shared schema accepts it and names no model
// but the one loaded (another well-formed id: 404 model-not-loaded); a valid request runs. Each request is signed at its own second of a fake clock, so no two share a signature.
import fc from 'fast-check'
import { getPath } from 'hono/utils/url'
import { afterEach, describe, expect, it } from 'vitest'
import type { DualRateModels } from '../../gpu-service/src/sampler/sample.ts'
import { SIGNATURE_HEADER, signRequest } from '../../shared/request-signature.ts'
import {
  MODEL_NOT_LOADED_PROBLEM,
  type RunEvent,
  type RunRequest,
  runRequestSchema,
} from '../../shared/run-protocol.ts'
import {
  CLASS_COUNT,
  MAX_COUNT,
  MAX_GUIDANCE,
  MAX_SEED,
  MAX_STEPS,
} from '../../shared/sampling-options.ts'
import { fakeModels } from '../fixtures/fake-models.ts'
import { fakeService } from '../fixtures/fake-service-app.ts'
import { drain, readUntil } from '../fixtures/run-stream.ts'
import { TEST_SECRET } from '../fixtures/service.ts'
import { expectProblemJson, fuzzParameters, fuzzTimeoutMs } from './fuzz-config.ts'

const BASE = 'http://gpu-service.test'
const MAX_BODY_BYTES = 64 * 1024
const encoder = new TextEncoder()

/**
 * The fake models, each call waiting for the next turn of the event loop as a real model call does:
 * otherwise a run steps in microtasks to its end before the client reads its first event.
 */
function turnTakingModels(): DualRateModels<Float32Array> {
  const models = fakeModels()
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve))
  return {
    async heavy(feeds) {
      await nextTurn()
      return models.heavy(feeds)
    },
    async light(feeds) {
      await nextTurn()
      return models.light(feeds)
    },
  }
}

/** The service under test and the fake clock its signature check and our signer share. */
const clock = { now: Date.now() }
const service = fakeService({ models: turnTakingModels(), now: () => clock.now })
/** A well-formed model id the service has not loaded. */
const UNLOADED_MODEL = 'dualrate-ffffffffffff'

/** Bytes that print as text (or their size, when long) in a counterexample. */
function printable(bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(bytes.subarray(0, 120))
  const shown =
    bytes.length > 120 ? `${JSON.stringify(text)}... (${bytes.length} bytes)` : JSON.stringify(text)
  return Object.assign(bytes, { [fc.toStringMethod]: () => `bytes ${shown}` })
}

/** One request as the property sends it. */
interface FuzzRequest {
  method: string
  path: string
  contentType: string | undefined
  headers: Record<string, string>
  body: Uint8Array | undefined
  signature: 'valid' | 'absent' | 'garbage' | 'stale'
}

// Arbitraries --------------------------------------------------------------------------------------

const headerText = fc.string({
  unit: fc.constantFrom(...'ab-_=;/ .,:"\'\\%09AZ\t'.split('')),
  maxLength: 40,
})

const methods = fc.oneof(
  fc.constantFrom('POST', 'POST', 'POST', 'GET', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'),
  fc.constantFrom('post', 'Delete', 'QUERY', 'PROPFIND', 'X-RUN'),
)

const paths = fc.oneof(
  { weight: 6, arbitrary: fc.constant('/v1/runs') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '/v1/runs/',
      '/v1/runs?x=1',
      '/v1/runs#frag',
      '/v1//runs',
      '/v1/runs/../runs',
      '/v1/./runs',
      '/V1/RUNS',
      '/v1/runs/%2e%2e',
      '/v1/runs/%ZZ',
      '/v1/runs/%00',
      '/v1/runs/a%2Fb',
      '/v1/runs/%E2%82%AC',
      '/v1/runs/\u00e9t\u00e9',
      '/v1',
      '/v1/',
      '/v1/openapi.json',
      `/v1/runs/${'x'.repeat(5000)}`,
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .string({ unit: fc.constantFrom(...'abcXYZ019-_.~%/'.split('')), maxLength: 80 })
      .map((id) => `/v1/runs/${id}`),
  },
)

const contentTypes = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json; charset=utf-16',
  'application/problem+json',
  'application/vnd.api+json',
  'text/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  '',
  undefined,
)

/** A valid run request, over the whole range of the shared schema. */
const validRequests: fc.Arbitrary<RunRequest> = fc
  .record({
    classIndex: fc.integer({ min: 0, max: CLASS_COUNT - 1 }),
    count: fc.integer({ min: 1, max: MAX_COUNT }),
    steps: fc.integer({ min: 1, max: MAX_STEPS }),
    guidance: fc.oneof(
      fc.constantFrom(0, 1, MAX_GUIDANCE),
      fc.double({ min: 0, max: MAX_GUIDANCE, noNaN: true }),
    ),
    seed: fc.oneof(fc.constantFrom(0, MAX_SEED), fc.integer({ min: 0, max: MAX_SEED })),
    previewEvery: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: MAX_STEPS })),
    every: fc.integer({ min: 1, max: MAX_STEPS }),
    heavySteps: fc.option(fc.array(fc.nat(), { maxLength: 20 })),
    runId: fc.option(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), { nil: undefined }),
    model: fc.option(fc.constant(service.manifest.modelId), { nil: undefined }),
  })
  .map(({ every, heavySteps, runId, model, ...options }) => ({
    ...options,
    heavySchedule: heavySteps
      ? { steps: heavySteps.map((step) => step % options.steps) }
      : { every },
    ...(runId !== undefined && { runId }),
    ...(model !== undefined && { model }),
  }))

/** Values to put where a field of a valid request goes: wrong types, out of range, odd numbers. */
const adversarialValues = fc.oneof(
  fc.constantFrom(
    -1,
    -0,
    0.5,
    1e21,
    Number.MAX_SAFE_INTEGER + 2,
    MAX_SEED + 1,
    MAX_STEPS + 1,
    MAX_COUNT + 1,
    MAX_GUIDANCE + 1e-9,
    '',
    '1',
    'NaN',
    true,
    null,
    [],
    {},
    { every: 0 },
    { steps: [MAX_STEPS] },
    { every: 1, steps: [] },
    { __proto__: { every: 1 } },
    UNLOADED_MODEL,
    'dualrate-547FB728E629',
  ),
  fc.jsonValue({ maxDepth: 3 }),
)

/** A valid request with one field replaced, removed or added. */
const mutatedRequests = fc
  .tuple(
    validRequests,
    fc.constantFrom(
      'classIndex',
      'count',
      'steps',
      'guidance',
      'seed',
      'previewEvery',
      'heavySchedule',
      'runId',
      'model',
      '__proto__',
      'constructor',
      'extra',
    ),
    fc.option(adversarialValues, { nil: undefined }),
  )
  .map(([request, key, value]) => {
    const mutated: Record<string, unknown> = { ...request }
    if (value === undefined) delete mutated[key]
    else Object.defineProperty(mutated, key, { value, enumerable: true, writable: true })
    return JSON.stringify(mutated)
  })

/** JSON text the serializer would never write: raw number tokens, duplicate keys, deep nesting. */
const oddJsonTexts = fc.oneof(
  fc
    .tuple(
      validRequests,
      fc.constantFrom('count', 'steps', 'guidance', 'seed', 'classIndex'),
      fc.constantFrom(
        '1e309',
        '-1e309',
        '1E2',
        '1.0',
        '-0',
        '0x10',
        '01',
        '1e-400',
        'NaN',
        'Infinity',
      ),
    )
    .map(([request, key, token]) =>
      JSON.stringify(request).replace(new RegExp(`"${key}":[^,}]+`), `"${key}":${token}`),
    ),
  validRequests.map((request) => `${JSON.stringify(request).slice(0, -1)},"count":0}`),
  fc
    .tuple(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom('[', '{"a":'))
    .map(([depth, open]) => {
      const close = open === '[' ? ']' : '}'
      return `${open.repeat(depth)}1${close.repeat(depth)}`.slice(0, MAX_BODY_BYTES)
    }),
  fc.constantFrom('', ' ', 'null', '[]', '"x"', '{', '{"count":', '\ufeff{}', '{}'.repeat(3)),
  fc.constant(`{"padding":"${'x'.repeat(MAX_BODY_BYTES)}"}`),
)

/** Bytes that are not UTF-8, or not text at all. */
const oddBytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom(
    Uint8Array.of(0xff, 0xfe, 0x7b, 0x7d),
    Uint8Array.of(0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d),
    Uint8Array.of(0xed, 0xa0, 0x80),
    Uint8Array.of(0xc0, 0xaf),
    Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  ),
  validRequests.map((request) => {
    const bytes = encoder.encode(JSON.stringify(request))
    return Uint8Array.of(...bytes.subarray(0, 10), 0xff, ...bytes.subarray(10))
  }),
)

/** Bodies, as the bytes sent. */
const bodies: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    {
      weight: 3,
      arbitrary: validRequests.map((request) => encoder.encode(JSON.stringify(request))),
    },
    { weight: 4, arbitrary: mutatedRequests.map((text) => encoder.encode(text)) },
    {
      weight: 1,
      arbitrary: validRequests.map((request) =>
        encoder.encode(JSON.stringify({ ...request, model: UNLOADED_MODEL })),
      ),
    },
    { weight: 3, arbitrary: oddJsonTexts.map((text) => encoder.encode(text)) },
    { weight: 2, arbitrary: fc.jsonValue().map((value) => encoder.encode(JSON.stringify(value))) },
    { weight: 2, arbitrary: oddBytes },
  )
  .map(printable)

const extraHeaders = fc.dictionary(
  fc.constantFrom(
    'x-request-id',
    'accept',
    'content-encoding',
    'transfer-encoding',
    'x-forwarded-for',
    'x-extra',
  ),
  headerText,
  { maxKeys: 3 },
)

/** Any request to /v1. */
const anyRequests: fc.Arbitrary<FuzzRequest> = fc.record({
  method: methods,
  path: paths,
  contentType: contentTypes,
  headers: extraHeaders,
  body: fc.option(bodies, { nil: undefined }),
  signature: fc.constantFrom('valid', 'valid', 'valid', 'absent', 'garbage', 'stale'),
})

/** Signed POST /v1/runs with a JSON content type: what the body validation sees. */
const signedRunPosts: fc.Arbitrary<FuzzRequest> = fc.record({
  method: fc.constant('POST'),
  path: fc.constant('/v1/runs'),
  contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8'),
  headers: fc.constant({}),
  body: bodies,
  signature: fc.constant('valid'),
})

// Sending and checking -------------------------------------------------------------------------------

/** Builds the Request; undefined when the platform refuses to (a header value it cannot carry). */
async function toRequest(request: FuzzRequest): Promise<Request | undefined> {
  const url = `${BASE}${request.path}`
  const canHaveBody = !['GET', 'HEAD'].includes(request.method.toUpperCase())
  const body = canHaveBody ? (request.body ?? new Uint8Array()) : new Uint8Array()
  const headers: Record<string, string> = { ...request.headers }
  if (request.contentType !== undefined) headers['content-type'] = request.contentType
  clock.now += 1000
  if (request.signature !== 'absent') {
    let pathAsSeen: string
    try {
      pathAsSeen = getPath(new Request(url))
    } catch {
      return undefined
    }
    const signedAt = request.signature === 'stale' ? clock.now - 301_000 : clock.now
    Object.assign(
      headers,
      await signRequest(TEST_SECRET, request.method, pathAsSeen, body, signedAt),
    )
    if (request.signature === 'garbage') headers[SIGNATURE_HEADER] = `v1=${'0'.repeat(64)}`
  }
  try {
    return new Request(url, {
      method: request.method,
      headers,
      ...(canHaveBody && request.body !== undefined && { body: request.body }),
    })
  } catch {
    return undefined
  }
}

/** Reads a run's stream far enough to see it run, stops it, and reads the rest; returns its events. */
async function watchRun(response: Response): Promise<RunEvent[]> {
  const { events, rest } = await readUntil(
    response,
    (event) => event.type === 'step' || event.type === 'result' || event.type === 'error',
  )
  const accepted = events[0]
  if (accepted?.type === 'accepted') await service.scheduler.cancel(accepted.runId)
  events.push(...(await drain(rest)))
  return events
}

/** The answer to one request: never a 5xx, a problem for every 4xx, a well-formed stream for a 200. */
async function send(request: FuzzRequest) {
  const built = await toRequest(request)
  if (!built) return undefined
  const response = await service.app.request(built)
  const path = getPath(built)
  expect(response.status, `${request.method} ${path}`).toBeLessThan(500)
  if (response.status >= 400) {
    return { response, path, problem: await expectProblemJson(response, request.method) }
  }
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toBe('text/event-stream')
  const events = await watchRun(response)
  expect(events[0]?.type).toBe('accepted')
  expect(['result', 'error']).toContain(events.at(-1)?.type)
  return { response, path, events }
}

/**
 * What the shared schema says of a body, decoded as a JSON body is (UTF-8, BOM dropped), and whether a
 * valid one names a model other than the one loaded.
 */
function schemaVerdict(
  body: Uint8Array,
): 'too large' | 'not JSON' | 'invalid' | 'model not loaded' | 'valid' {
  if (body.length > MAX_BODY_BYTES) return 'too large'
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder().decode(body))
  } catch {
    return 'not JSON'
  }
  const parsed = runRequestSchema.safeParse(value)
  if (!parsed.success) return 'invalid'
  const { model } = parsed.data
  return model === undefined || model === service.manifest.modelId ? 'valid' : 'model not loaded'
}

afterEach(() => {
  expect([service.scheduler.activeRuns, service.scheduler.queueDepth]).toEqual([0, 0])
})

describe('POST /v1/runs under fuzzing', () => {
  it(
    'answers any request to /v1 with a run or a 4xx problem+json, never a 5xx',
    async () => {
      await fc.assert(
        fc.asyncProperty(anyRequests, async (request) => {
          const answer = await send(request)
          // Under /v1 the body limit comes first (an oversized body is not even hashed), then the
          // signature; other paths (routing is case-sensitive) are simply not found.
          const underV1 = answer?.path === '/v1' || answer?.path.startsWith('/v1/')
          const sendsBody = !['GET', 'HEAD'].includes(request.method.toUpperCase())
          const tooLarge = sendsBody && (request.body?.length ?? 0) > MAX_BODY_BYTES
          if (answer && request.signature !== 'valid') {
            expect(answer.response.status).toBe(underV1 ? (tooLarge ? 413 : 401) : 404)
          }
        }),
        fuzzParameters('any request to /v1'),
      )
    },
    fuzzTimeoutMs(50),
  )

  it(
    'accepts a signed body exactly when the shared schema does, and says why it refuses one',
    async () => {
      await fc.assert(
        fc.asyncProperty(signedRunPosts, async (request) => {
          const answer = await send(request)
          if (!answer) throw new Error('a signed JSON POST could not be built')
          const verdict = schemaVerdict(request.body as Uint8Array)
          const expected = {
            'too large': 413,
            'not JSON': 400,
            invalid: 400,
            'model not loaded': 404,
            valid: 200,
          }[verdict]
          expect(answer.response.status, verdict).toBe(expected)
          if (verdict === 'model not loaded') {
            expect(answer.problem?.type).toBe(MODEL_NOT_LOADED_PROBLEM)
          }
          if (verdict === 'invalid') {
            expect(answer.problem?.title).toBe('Invalid request')
            expect(answer.problem?.errors).toEqual(
              expect.arrayContaining([{ path: expect.any(String), message: expect.any(String) }]),
            )
          }
        }),
        fuzzParameters('signed POST /v1/runs bodies'),
      )
    },
    fuzzTimeoutMs(50),
  )

  it(
    'runs every valid signed request: accepted, started, stepping',
    async () => {
      await fc.assert(
        fc.asyncProperty(validRequests, async (runRequest) => {
          const answer = await send({
            method: 'POST',
            path: '/v1/runs',
            contentType: 'application/json',
            headers: {},
            body: printable(encoder.encode(JSON.stringify(runRequest))),
            signature: 'valid',
          })
          expect(answer?.response.status).toBe(200)
          const types = answer?.events?.map((event) => event.type) ?? []
          expect(types.slice(0, 3)).toEqual(['accepted', 'started', 'step'])
          const last = answer?.events?.at(-1)
          if (last?.type === 'error') expect(last.problem.type).toBe('/problems/run-cancelled')
          if (last?.type === 'result') expect(last.images).toHaveLength(runRequest.count)
        }),
        fuzzParameters('valid POST /v1/runs'),
      )
    },
    fuzzTimeoutMs(100),
  )
})
