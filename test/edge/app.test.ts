import { describe, expect, it } from 'vitest'
import manifest from '../../gpu-service/models/manifest.json' with { type: 'json' }
import { recommendedOptions } from '../../shared/model-manifest.ts'
import { call } from './helpers/api.ts'

describe('GET /v1/models', () => {
  it('lists the default model from the manifest first, with its classes, defaults and limits', async () => {
    const response = await call('/v1/models')
    expect(response.status).toBe(200)
    const { data } = (await response.json()) as { data: Record<string, unknown>[] }
    // The default model, then the committed few-step students (test/edge/models covers the list).
    expect(data.map((model) => model.default)).toEqual([true, false, false])
    expect(data[0]).toMatchObject({
      id: manifest.modelId,
      image: { channels: 1, height: 28, width: 28 },
      // Defaults are what `npm run eval -- --record` measured best, so they follow the manifest.
      defaults: {
        count: 1,
        steps: manifest.recommended.steps,
        heavySchedule: recommendedOptions(manifest).heavySchedule,
        guidance: manifest.recommended.guidance,
        previewEvery: 0,
      },
      limits: { maxCount: 64, maxSteps: 1000, maxGuidance: 20 },
      cost: {
        heavyMacsPerRow: manifest.models.heavy.macsPerCall,
        lightMacsPerRow: manifest.models.light.macsPerCall,
      },
    })
    expect((data[0]?.classes as unknown[] | undefined)?.[7]).toEqual({ index: 7, name: 'Sneaker' })
  })
})

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document of every route, generated from the shared schemas', async () => {
    const document = (await (await call('/openapi.json')).json()) as {
      openapi: string
      paths: Record<string, Record<string, unknown>>
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> }
    }
    expect(document.openapi).toBe('3.1.0')
    expect(Object.keys(document.paths).sort()).toEqual([
      '/v1/generations',
      '/v1/generations/{id}',
      '/v1/generations/{id}/cancel',
      '/v1/generations/{id}/events',
      '/v1/models',
      '/v1/results/{name}',
    ])
    expect(Object.keys(document.components.schemas.StepEvent?.properties ?? {})).toEqual([
      'step',
      'totalSteps',
      't',
      'heavy',
      'heavyCalls',
      'elapsedMs',
    ])
    expect(Object.keys(document.components.schemas.GenerationRequest?.properties ?? {})).toEqual([
      'class',
      'model',
      'count',
      'steps',
      'heavySchedule',
      'guidance',
      'seed',
      'previewEvery',
      'webhookUrl',
    ])
  })
})

describe('GET /openapi.json for clients and linters', () => {
  interface Operation {
    operationId?: string
    security?: Record<string, string[]>[]
    responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>
  }
  const document = async () =>
    (await (await call('/openapi.json')).json()) as {
      info: { license?: Record<string, string> }
      servers: { url: string }[]
      paths: Record<string, Record<string, Operation>>
      components: { schemas: Record<string, { oneOf?: Record<string, unknown>[] }> }
    }
  const operations = (paths: Record<string, Record<string, Operation>>) =>
    Object.entries(paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({
        route: `${method} ${path}`,
        operation,
      })),
    )

  it('gives every operation a stable operationId and a 4xx answer', async () => {
    const ids = Object.fromEntries(
      operations((await document()).paths).map(({ route, operation }) => [
        route,
        [
          operation.operationId,
          Object.keys(operation.responses).some((status) => /^4/.test(status)),
        ],
      ]),
    )
    expect(ids).toEqual({
      'post /v1/generations': ['createGeneration', true],
      'get /v1/generations/{id}': ['getGeneration', true],
      'get /v1/generations/{id}/events': ['streamGenerationEvents', true],
      'post /v1/generations/{id}/cancel': ['cancelGeneration', true],
      'get /v1/results/{name}': ['getResultImage', true],
      'get /v1/models': ['listModels', true],
    })
  })

  it('says which operations need a key and which are public (security: [])', async () => {
    const security = Object.fromEntries(
      operations((await document()).paths).map(({ route, operation }) => [
        route,
        operation.security,
      ]),
    )
    const bearer = [{ bearerAuth: [] }]
    expect(security).toEqual({
      'post /v1/generations': bearer,
      'get /v1/generations/{id}': bearer,
      'get /v1/generations/{id}/events': bearer,
      'post /v1/generations/{id}/cancel': bearer,
      'get /v1/results/{name}': [],
      'get /v1/models': [],
    })
  })

  it('names its servers (this edge, then the local stack) and its license', async () => {
    const { servers, info } = await document()
    expect(servers.map((server) => server.url)).toEqual(['/', 'http://127.0.0.1:8787'])
    expect(info.license).toEqual({
      name: 'UNLICENSED: proprietary, no license is granted',
      identifier: 'LicenseRef-Proprietary',
    })
  })

  it('describes each SSE message as one of the event components, by its event name', async () => {
    const { paths, components } = await document()
    const stream = paths['/v1/generations/{id}/events']?.get?.responses['200']?.content
    expect(stream?.['text/event-stream']?.schema).toEqual({
      $ref: '#/components/schemas/GenerationEventMessage',
    })
    const messages = components.schemas.GenerationEventMessage?.oneOf ?? []
    expect(
      messages.map((message) => {
        const { event, data } = message.properties as Record<
          string,
          { enum?: string[]; $ref?: string }
        >
        return [event?.enum?.[0], data?.$ref]
      }),
    ).toEqual(
      ['queued', 'retrying', 'started', 'step', 'preview', 'succeeded', 'failed', 'canceled'].map(
        (name) => [name, `#/components/schemas/${name[0]?.toUpperCase()}${name.slice(1)}Event`],
      ),
    )
  })
})

describe('GET /docs', () => {
  it('renders a human-readable reference with every operation and no scripts', async () => {
    const response = await call('/docs')
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await response.text()
    expect(html).toContain('<code>/v1/generations/{id}/events</code>')
    expect(html).toContain('<h3>GenerationRequest</h3>')
    expect(html).not.toContain('<script')
  })
})

describe('every response', () => {
  it('carries a request id, echoing a valid one the caller sent', async () => {
    const generated = await call('/v1/models')
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const echoed = await call('/v1/models', { headers: { 'x-request-id': 'trace-123' } })
    expect(echoed.headers.get('x-request-id')).toBe('trace-123')
    const missing = await call('/nope')
    expect(missing.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('carries security headers, errors included', async () => {
    for (const response of [await call('/v1/models'), await call('/nope')]) {
      expect(response.headers.get('x-content-type-options')).toBe('nosniff')
      expect(response.headers.get('strict-transport-security')).toMatch(/max-age=/)
      expect(response.headers.get('content-security-policy')).toBe(
        "default-src 'none'; frame-ancestors 'none'",
      )
    }
  })

  it('answers an unknown route with 404 problem+json', async () => {
    const response = await call('/nope')
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    expect(await response.json()).toMatchObject({ status: 404, title: 'Not found' })
  })
})

describe('CORS', () => {
  it('answers a preflight from a configured origin, before authentication', async () => {
    const response = await call('/v1/generations', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, idempotency-key',
      },
    })
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(response.headers.get('access-control-allow-headers')).toMatch(/Idempotency-Key/)
  })

  it('does not allow an origin that is not configured', async () => {
    const response = await call('/v1/models', { headers: { origin: 'https://evil.example' } })
    expect(response.headers.get('access-control-allow-origin')).toBeNull()
  })
})
