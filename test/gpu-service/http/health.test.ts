// Probes, metrics, the OpenAPI document and unknown paths, through the real service on loopback.
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signedFetch } from '../../../gpu-service/src/cli/run-client.ts'
import { parseServiceConfig } from '../../../gpu-service/src/service/config.ts'
import { jsonLogger } from '../../../gpu-service/src/service/logger.ts'
import { KEEP_ALIVE_TIMEOUT_MS, startService } from '../../../gpu-service/src/service/start.ts'
import { parseManifest } from '../../../shared/model-manifest.ts'
import { PROBLEM_CONTENT_TYPE } from '../../../shared/problem.ts'
import { startTestService, TEST_SECRET, type TestService } from '../../fixtures/service.ts'

/** The part of the OpenAPI document the test reads. */
interface OpenApiDocument {
  paths: Record<
    string,
    {
      post?: {
        requestBody: {
          content: Record<string, { schema: { required: string[]; additionalProperties: boolean } }>
        }
      }
    }
  >
}

describe('probes and metrics', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService()
  })
  afterAll(() => service.shutdown(0))

  it('GET /healthz and /readyz answer 200 once the models are loaded and warmed', async () => {
    const health = await fetch(`${service.url}/healthz`)
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }])
    const ready = await fetch(`${service.url}/readyz`)
    const { models, ...engine } = (await ready.json()) as { models: Record<string, unknown>[] }
    expect([ready.status, engine]).toEqual([
      200,
      { status: 'ready', device: 'cpu', executionProviders: ['cpu'] },
    ])
    // The committed model is the default; subfolder models (distilled students) may follow it.
    const committed = parseManifest(await readFile('gpu-service/models/manifest.json', 'utf8'))
    expect(models[0]).toEqual({
      id: committed.modelId,
      default: true,
      recommended: committed.recommended,
    })
    expect(models.slice(1).every((model) => model.default === false)).toBe(true)
    expect(service.logs.find((line) => line.msg === 'ready')).toMatchObject({
      device: 'cpu',
      executionProviders: ['cpu'],
    })
  })

  it('keeps idle connections open longer than the 60 s pools in front of it (Keep-Alive header)', async () => {
    const { request } = await import('node:http')
    const header = await new Promise<string | string[] | undefined>((resolve, reject) => {
      request(
        `${service.url}/healthz`,
        { agent: false, headers: { connection: 'keep-alive' } },
        (res) => {
          res.resume()
          resolve(res.headers['keep-alive'])
        },
      )
        .on('error', reject)
        .end()
    })
    expect(header).toBe(`timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}`)
    expect(KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(60_000)
  })

  it('GET /metrics names the execution provider in use', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text()
    expect(text).toContain('# TYPE dualrate_execution_provider gauge')
    expect(text.match(/^dualrate_execution_provider\{.*$/gm)).toEqual([
      'dualrate_execution_provider{provider="cpu"} 1',
    ])
  })

  it('GET /metrics is Prometheus text with the run, queue, call, batch and step series', async () => {
    const response = await fetch(`${service.url}/metrics`)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    for (const name of [
      '# TYPE dualrate_runs_total counter',
      '# TYPE dualrate_queue_depth gauge',
      '# TYPE dualrate_active_runs gauge',
      '# TYPE dualrate_model_calls_total counter',
      '# TYPE dualrate_batch_rows histogram',
      '# TYPE dualrate_model_call_seconds histogram',
      '# TYPE dualrate_step_seconds histogram',
      '# TYPE dualrate_steps_total counter',
      '# TYPE dualrate_onnx_run_seconds_total counter',
      '# TYPE process_cpu_seconds_total counter',
    ]) {
      expect(text).toContain(name)
    }
    expect(await service.metric('dualrate_queue_depth')).toBe(0)
  })

  it('GET /metrics counts the seconds inside ONNX Runtime per network and model, warm-up included', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text()
    const seconds = new Map(
      [
        ...text.matchAll(
          /^dualrate_onnx_run_seconds_total\{model="(\w+)",model_id="([^"]+)"\} (.+)$/gm,
        ),
      ].map(([, model, modelId, value]) => [`${modelId} ${model}`, Number(value)]),
    )
    const ready = (await (await fetch(`${service.url}/readyz`)).json()) as {
      models: { id: string }[]
    }
    const expected = ready.models.flatMap((model) => [`${model.id} heavy`, `${model.id} light`])
    expect([...seconds.keys()].sort()).toEqual(expected.sort())
    for (const value of seconds.values()) expect(value).toBeGreaterThan(0)
  })

  it('GET /openapi.json documents the run routes from the shared schemas', async () => {
    const document = (await (await fetch(`${service.url}/openapi.json`)).json()) as OpenApiDocument
    expect(Object.keys(document.paths)).toEqual([
      '/v1/runs',
      '/v1/runs/{runId}',
      '/v1/load',
      '/v1/load/{probeId}',
    ])
    const body = document.paths['/v1/runs']?.post?.requestBody.content['application/json']?.schema
    expect(body?.required).toEqual([
      'classIndex',
      'count',
      'steps',
      'heavySchedule',
      'guidance',
      'seed',
    ])
    expect(body?.additionalProperties).toBe(false)
  })

  it('answers unknown paths with 404 problem+json carrying the request id', async () => {
    const response = await fetch(`${service.url}/nowhere`, { headers: { 'x-request-id': 'r-404' } })
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
    expect(await response.json()).toEqual({
      type: 'about:blank',
      status: 404,
      title: 'Not Found',
      requestId: 'r-404',
    })
    const signed = await signedFetch(service.client, 'GET', '/v1/nowhere')
    expect(signed.status).toBe(404)
  })
})

describe('before the models are ready', () => {
  it('keeps /readyz at 503 and refuses runs with 503 while the models cannot load', async () => {
    const logs: Record<string, unknown>[] = []
    const service = await startService(
      parseServiceConfig({ PORT: '0', DUALRATE_MODELS_DIR: 'test/no-such-models' }),
      { logger: jsonLogger((line) => logs.push(JSON.parse(line))), hmacSecret: TEST_SECRET },
    )
    try {
      await expect(service.ready).rejects.toThrow(
        new Error('test/no-such-models/manifest.json: not found'),
      )
      expect((await fetch(`${service.url}/healthz`)).status).toBe(200)
      const ready = await fetch(`${service.url}/readyz`)
      expect([ready.status, ((await ready.json()) as { detail: string }).detail]).toEqual([
        503,
        'loading and warming the models',
      ])
      const run = await signedFetch(
        { baseUrl: service.url, secret: TEST_SECRET },
        'POST',
        '/v1/runs',
        {
          body: {
            classIndex: 0,
            count: 1,
            steps: 1,
            heavySchedule: { every: 1 },
            guidance: 1,
            seed: 0,
          },
        },
      )
      expect(run.status).toBe(503)
      expect(run.headers.get('retry-after')).toBe('5')
      expect(await run.json()).toMatchObject({ title: 'Service not ready' })
    } finally {
      await service.shutdown(0)
    }
  })
})
