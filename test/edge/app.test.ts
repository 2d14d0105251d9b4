import { describe, expect, it } from 'vitest'
import manifest from '../../gpu-service/models/manifest.json' with { type: 'json' }
import { call } from './helpers/api.ts'

describe('GET /v1/models', () => {
  it('lists the model from the manifest with its classes, defaults and limits', async () => {
    const response = await call('/v1/models')
    expect(response.status).toBe(200)
    const { data } = (await response.json()) as { data: Record<string, unknown>[] }
    expect(data).toHaveLength(1)
    expect(data[0]).toMatchObject({
      id: manifest.modelId,
      image: { channels: 1, height: 28, width: 28 },
      // Defaults are what `npm run eval -- --record` measured best, so they follow the manifest.
      defaults: {
        count: 1,
        steps: manifest.recommended.steps,
        heavySchedule: { every: manifest.recommended.heavyEvery },
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
      'elapsedMs',
    ])
    expect(Object.keys(document.components.schemas.GenerationRequest?.properties ?? {})).toEqual([
      'class',
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
