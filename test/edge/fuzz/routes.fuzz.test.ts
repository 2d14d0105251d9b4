// Property-based fuzzing of every public route of the worker (fast-check): random and adversarial
// methods, paths, headers, content types, bodies (random JSON, invalid UTF-8, deep nesting, numbers out
// of range, private webhook targets). Whatever arrives, the API never answers 5xx, and every 4xx is a
// problem+json body whose status matches. `npm test` runs a seed-fixed sample (FUZZ_RUNS, FUZZ_SEED in
// vitest.config.ts); `npm run fuzz` runs 10,000 cases per route. Fake backends answer jobs; nothing
// leaves the test isolate.
import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { problemSchema } from '../../../shared/problem.ts'
import { call, createKey, postGeneration, uniqueSeed } from '../helpers/api.ts'
import { useFakeBackends } from '../helpers/fake-backends.ts'

useFakeBackends()

const settings = env as unknown as { FUZZ_RUNS?: string; FUZZ_SEED?: string }
const RUNS = Number(settings.FUZZ_RUNS ?? '100')
const SEED = Number(settings.FUZZ_SEED ?? '1')
/** Generous: the full run sends 10,000 requests per route through the worker. */
const TIMEOUT_MS = 60_000 + RUNS * 60

interface Attempt {
  method: string
  path: string
  headers: Record<string, string>
  body?: Uint8Array | string
}

/** Sends one fuzzed request; false when the runtime refused to build it (it never reached the API). */
async function send(attempt: Attempt): Promise<Response | null> {
  let init: RequestInit
  try {
    init = {
      method: attempt.method,
      headers: new Headers(attempt.headers),
      ...(attempt.body === undefined || ['GET', 'HEAD'].includes(attempt.method)
        ? {}
        : { body: attempt.body }),
    }
    new Request(`https://edge.test${attempt.path}`, init)
  } catch {
    return null
  }
  return call(attempt.path, init)
}

/** Answers seen per route, printed after each route's run (the figures docs/reliability.md quotes). */
const statuses = new Map<string, number>()

/** The property: no 5xx; every 4xx a problem+json whose status matches the response. */
async function expectNoServerError(attempt: Attempt): Promise<void> {
  const response = await send(attempt)
  const label = response ? String(response.status) : 'not sendable'
  statuses.set(label, (statuses.get(label) ?? 0) + 1)
  if (!response) return
  const text = attempt.method === 'HEAD' ? '' : await readSome(response)
  if (response.status >= 500) {
    throw new Error(
      `${attempt.method} ${attempt.path} -> ${response.status}: ${text.slice(0, 300)}`,
    )
  }
  if (response.status >= 400 && attempt.method !== 'HEAD') {
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    const problem = problemSchema.parse(JSON.parse(text))
    expect(problem.status).toBe(response.status)
  }
}

/** The body as text, or its start for a stream (an SSE stream of a running job never ends). */
async function readSome(response: Response): Promise<string> {
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
    await response.body?.cancel()
    return ''
  }
  return response.text()
}

const methods = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS')
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/)
const junk = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('..', '%2e%2e', '%00', '%ff', '%2F', '\\', '../../etc/passwd', 'a'.repeat(3_000)),
)
/** Header values: any ASCII, control characters included (the runtime refuses some: never sent). */
const headerJunk = fc.oneof(
  fc.string({ unit: 'binary-ascii', maxLength: 80 }),
  fc.constantFrom('a'.repeat(8_000), '"', ',', ';', '=', 'wait=', 'W/"x"'),
)
const segment = fc.oneof(
  hex64,
  junk.map((text) => encodeURIComponent(text)),
  junk,
)
const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, 5e-324, 0.5, 1e21),
)
const anyValue = fc.oneof(
  number,
  junk,
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 4 }),
)
const privateTargets = fc.constantFrom(
  'https://127.0.0.1/h',
  'https://[::1]/h',
  'https://localhost/h',
  'https://0x7f.1/h',
  'https://2130706433/h',
  'https://10.1.2.3/h',
  'https://169.254.169.254/h',
  'https://[::ffff:10.0.0.1]/h',
  'https://x.internal/h',
  'http://hooks.test/h',
  'https://user:pass@hooks.test/h',
  'javascript:alert(1)',
)
const generationBody = fc.record(
  {
    class: fc.oneof(
      fc.integer({ min: -3, max: 12 }),
      fc.constantFrom('Sneaker', 'sneaker', 'Hat'),
      anyValue,
    ),
    count: fc.oneof(fc.integer({ min: -2, max: 70 }), anyValue),
    steps: fc.oneof(fc.integer({ min: -2, max: 12 }), fc.constantFrom(1000, 1001), anyValue),
    heavySchedule: fc.oneof(
      fc.record({ every: fc.oneof(fc.integer({ min: -1, max: 20 }), anyValue) }),
      fc.record({
        steps: fc.array(fc.oneof(fc.integer({ min: -2, max: 20 }), anyValue), { maxLength: 8 }),
      }),
      anyValue,
    ),
    guidance: fc.oneof(fc.double({ min: -1, max: 25, noNaN: true }), anyValue),
    seed: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 + 5 }), anyValue),
    previewEvery: fc.oneof(fc.integer({ min: -1, max: 12 }), anyValue),
    webhookUrl: fc.oneof(privateTargets, fc.webUrl(), anyValue),
    extra: anyValue,
  },
  { requiredKeys: [] },
)
/** Bodies the API accepts, so the fuzz also reaches job creation, quotas and cache hits. */
const validBody = fc.record(
  {
    class: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constantFrom('Sneaker', 'Bag', 'coat')),
    count: fc.integer({ min: 1, max: 4 }),
    steps: fc.integer({ min: 1, max: 8 }),
    guidance: fc.constantFrom(0, 1, 1.5, 20),
    seed: fc.integer({ min: 0, max: 20 }),
    previewEvery: fc.integer({ min: 0, max: 3 }),
    webhookUrl: fc.constantFrom('https://hooks.test/fuzz', 'https://hooks.example.com/x'),
  },
  { requiredKeys: ['class'] },
)
const rawBody = fc.oneof(
  { weight: 4, arbitrary: validBody.map((body) => JSON.stringify(body)) },
  { weight: 4, arbitrary: generationBody.map((body) => JSON.stringify(body)) },
  fc.jsonValue({ maxDepth: 6 }).map((value) => JSON.stringify(value)),
  fc.uint8Array({ maxLength: 512 }),
  fc.integer({ min: 1, max: 10_000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
  fc
    .integer({ min: 1, max: 5_000 })
    .map((depth) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
  fc.constantFrom(
    '',
    '{',
    '{"class":1,}',
    '{"class":1e400}',
    '{"class":-0}',
    '\uFEFF{"class":1}',
    'null',
  ),
  fc.integer({ min: 16_000, max: 40_000 }).map((size) => `{"class":1,"x":"${'x'.repeat(size)}"}`),
)
const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=utf-16',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
  ),
  headerJunk,
)

/** Headers a caller may send, with a valid key most of the time (so validation is reached). */
function headers(authorization: string) {
  return fc.record(
    {
      authorization: fc.oneof(
        { weight: 6, arbitrary: fc.constant(authorization) },
        { weight: 1, arbitrary: headerJunk.map((text) => `Bearer ${text}`) },
        { weight: 1, arbitrary: headerJunk },
      ),
      'content-type': contentType,
      prefer: fc.oneof(
        fc.constantFrom('wait=0', 'wait=1', 'wait=99999999999', 'respond-async'),
        headerJunk,
      ),
      'idempotency-key': fc.oneof(fc.uuid(), headerJunk),
      'last-event-id': fc.oneof(
        fc.nat().map(String),
        fc.constantFrom('-1', '1e9', '999999999999999999'),
        headerJunk,
      ),
      'if-none-match': fc.oneof(fc.constant('*'), headerJunk),
      origin: fc.oneof(fc.constant('https://app.example'), headerJunk),
    },
    { requiredKeys: ['authorization'] },
  )
}

async function fuzzKey() {
  return createKey({ requestsPerMinute: 1_000_000, concurrentJobs: 4 }, 'fuzz')
}

async function ownJob(authorization: string): Promise<string> {
  const created = await postGeneration(authorization, { class: 1, steps: 2, seed: uniqueSeed() })
  return ((await created.json()) as { id: string }).id
}

async function run(route: string, property: fc.IAsyncProperty<[Attempt]>) {
  statuses.clear()
  await fc.assert(property, { numRuns: RUNS, seed: SEED, endOnFailure: true })
  const counts = Object.fromEntries([...statuses].sort(([a], [b]) => a.localeCompare(b)))
  console.log(`fuzz ${route}: ${RUNS} cases (seed ${SEED}), answers ${JSON.stringify(counts)}`)
}

describe('fuzzing every public route: never a 5xx, every 4xx a problem', () => {
  it('POST /v1/generations', { timeout: TIMEOUT_MS }, async () => {
    const { authorization } = await fuzzKey()
    await run(
      'POST /v1/generations',
      fc.asyncProperty(
        fc.record({ headers: headers(authorization), body: rawBody }).map(
          ({ headers, body }): Attempt => ({
            method: 'POST',
            path: '/v1/generations',
            headers,
            body,
          }),
        ),
        expectNoServerError,
      ),
    )
  })

  it('GET and POST /v1/generations/{id}[/events|/cancel]', { timeout: TIMEOUT_MS }, async () => {
    const owner = await fuzzKey()
    const other = await fuzzKey()
    const known = await ownJob(owner.authorization)
    const id = fc.oneof(fc.constant(known), hex64, segment)
    const suffix = fc.constantFrom('', '/events', '/cancel', '/', '/events/', '/cancel/x')
    await run(
      'GET and POST /v1/generations/{id}[/events|/cancel]',
      fc.asyncProperty(
        fc
          .record({
            method: methods,
            id,
            suffix,
            query: fc.oneof(
              fc.constant(''),
              junk.map((text) => `?${encodeURIComponent(text)}`),
            ),
            headers: fc.oneof(headers(owner.authorization), headers(other.authorization)),
          })
          .map(
            ({ method, id, suffix, query, headers }): Attempt => ({
              method,
              path: `/v1/generations/${id}${suffix}${query}`,
              headers,
            }),
          ),
        expectNoServerError,
      ),
    )
  })

  it('GET /v1/results/{name}', { timeout: TIMEOUT_MS }, async () => {
    const name = fc.oneof(
      hex64.map((key) => `${key}.png`),
      fc
        .tuple(hex64, fc.integer({ min: -1, max: 200 }))
        .map(([key, index]) => `${key}-${index}.png`),
      segment,
    )
    await run(
      'GET /v1/results/{name}',
      fc.asyncProperty(
        fc.record({ method: methods, name, headers: headers('') }).map(
          ({ method, name, headers }): Attempt => ({
            method,
            path: `/v1/results/${name}`,
            headers,
          }),
        ),
        expectNoServerError,
      ),
    )
  })

  it('GET /v1/models, /openapi.json, /docs and any other path', {
    timeout: TIMEOUT_MS,
  }, async () => {
    const { authorization } = await fuzzKey()
    const path = fc.oneof(
      fc.constantFrom('/v1/models', '/openapi.json', '/docs', '/', '/v1', '/v1/', '/v2/models'),
      fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => `/${parts.join('/')}`),
    )
    await run(
      'GET /v1/models, /openapi.json, /docs and any other path',
      fc.asyncProperty(
        fc
          .record({
            method: methods,
            path,
            headers: headers(authorization),
            body: fc.option(rawBody),
          })
          .map(
            ({ method, path, headers, body }): Attempt => ({
              method,
              path,
              headers,
              ...(body === null ? {} : { body }),
            }),
          ),
        expectNoServerError,
      ),
    )
  })
})
