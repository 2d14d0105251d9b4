import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  ConfigError,
  parseServiceConfig,
  parseSessionConfig,
  resolveHmacSecret,
} from '../../../gpu-service/src/service/config.ts'

describe('parseServiceConfig', () => {
  it('has defaults that work locally: 127.0.0.1:8788, CPU, batching on', () => {
    expect(parseServiceConfig({})).toEqual({
      production: false,
      port: 8788,
      host: '127.0.0.1',
      modelsDir: 'gpu-service/models',
      hmacSecret: undefined,
      devDir: '.dev',
      session: { device: 'cpu', intraOpSpinning: false },
      scheduler: {
        maxBatchRows: 128,
        maxActiveRows: 256,
        maxActiveRuns: 16,
        maxQueuedRuns: 64,
        runDeadlineMs: 120_000,
        batching: true,
      },
      drainGraceMs: 25_000,
      heartbeatMs: 15_000,
    })
  })

  it('reads every variable, and treats empty ones as unset', () => {
    const config = parseServiceConfig({
      PORT: '0',
      HOST: '0.0.0.0',
      DUALRATE_DEVICE: 'cuda',
      DUALRATE_INTRA_OP_THREADS: '4',
      DUALRATE_INTER_OP_THREADS: '',
      DUALRATE_BATCHING: 'off',
      DUALRATE_MAX_QUEUED_RUNS: '0',
      DUALRATE_HMAC_SECRET: 'x'.repeat(32),
    })
    expect(config).toMatchObject({
      port: 0,
      host: '0.0.0.0',
      session: { device: 'cuda', intraOpThreads: 4 },
      scheduler: { batching: false, maxQueuedRuns: 0 },
      hmacSecret: 'x'.repeat(32),
    })
  })

  it('names every bad variable', () => {
    expect(() =>
      parseServiceConfig({
        PORT: '80a',
        DUALRATE_DEVICE: 'tpu',
        DUALRATE_MAX_BATCH_ROWS: '64',
        DUALRATE_HMAC_SECRET: 'short',
      }),
    ).toThrow(
      new ConfigError(
        [
          'PORT: expected a whole number',
          'DUALRATE_HMAC_SECRET: must be at least 32 characters',
          'DUALRATE_DEVICE: Invalid option: expected one of "cpu"|"cuda"|"tensorrt"',
          'DUALRATE_MAX_BATCH_ROWS: Too small: expected number to be >=128',
        ].join('\n'),
      ),
    )
  })

  it('bounds the rows stepping at once to two model calls by default, and to at least one', () => {
    expect(parseServiceConfig({ DUALRATE_MAX_BATCH_ROWS: '200' }).scheduler).toMatchObject({
      maxBatchRows: 200,
      maxActiveRows: 400,
    })
    expect(parseServiceConfig({ DUALRATE_MAX_ACTIVE_ROWS: '1000' }).scheduler).toMatchObject({
      maxBatchRows: 128,
      maxActiveRows: 1000,
    })
    expect(() =>
      parseServiceConfig({ DUALRATE_MAX_BATCH_ROWS: '256', DUALRATE_MAX_ACTIVE_ROWS: '128' }),
    ).toThrow(
      new ConfigError('DUALRATE_MAX_ACTIVE_ROWS: must be at least DUALRATE_MAX_BATCH_ROWS (256)'),
    )
  })

  it('requires the HMAC secret in production', () => {
    expect(() => parseServiceConfig({ NODE_ENV: 'production' })).toThrow(
      new ConfigError('DUALRATE_HMAC_SECRET: required when NODE_ENV is production'),
    )
  })
})

describe('parseSessionConfig', () => {
  it('defaults to CPU with runtime-chosen threads that sleep rather than spin when idle', () => {
    expect(parseSessionConfig({})).toEqual({ device: 'cpu', intraOpSpinning: false })
    expect(parseServiceConfig({}).session).toEqual({ device: 'cpu', intraOpSpinning: false })
  })

  it('reads device, thread counts and spinning, as the service does', () => {
    const env = {
      DUALRATE_DEVICE: 'cuda',
      DUALRATE_INTRA_OP_THREADS: '2',
      DUALRATE_INTER_OP_THREADS: '1',
      DUALRATE_INTRA_OP_SPINNING: 'on',
    }
    expect(parseSessionConfig(env)).toEqual({
      device: 'cuda',
      intraOpThreads: 2,
      interOpThreads: 1,
      intraOpSpinning: true,
    })
    expect(parseServiceConfig(env).session).toEqual(parseSessionConfig(env))
  })

  it('refuses what the service refuses, with the same lines, and ignores other variables', () => {
    const env = {
      DUALRATE_DEVICE: 'tpu',
      DUALRATE_INTRA_OP_THREADS: '2.0',
      DUALRATE_INTER_OP_THREADS: '0',
      DUALRATE_INTRA_OP_SPINNING: 'yes',
      PORT: 'not read here',
    }
    const lines = [
      'DUALRATE_DEVICE: Invalid option: expected one of "cpu"|"cuda"|"tensorrt"',
      'DUALRATE_INTRA_OP_THREADS: expected a whole number',
      'DUALRATE_INTER_OP_THREADS: Too small: expected number to be >=1',
      'DUALRATE_INTRA_OP_SPINNING: Invalid option: expected one of "on"|"off"',
    ]
    expect(() => parseSessionConfig(env)).toThrow(new ConfigError(lines.join('\n')))
    expect(() => parseServiceConfig({ ...env, PORT: '1' })).toThrow(
      new ConfigError(lines.join('\n')),
    )
  })
})

describe('resolveHmacSecret', () => {
  let devDir = ''
  afterEach(() => rm(devDir, { recursive: true, force: true }))

  it('generates a development secret once, readable by the owner only, and reuses it', async () => {
    devDir = join(await mkdtemp(join(tmpdir(), 'dualrate-dev-')), '.dev')
    const first = await resolveHmacSecret({ hmacSecret: undefined, devDir })
    expect(first.source).toBe('generated')
    expect(first.secret).toMatch(/^[0-9a-f]{64}$/)
    expect((await stat(join(devDir, 'hmac-secret'))).mode & 0o777).toBe(0o600)
    expect(await resolveHmacSecret({ hmacSecret: undefined, devDir })).toEqual({
      secret: first.secret,
      source: 'dev-file',
    })
    await writeFile(join(devDir, 'hmac-secret'), 'too short\n')
    const replaced = await resolveHmacSecret({ hmacSecret: undefined, devDir })
    expect(replaced.source).toBe('generated')
    expect((await readFile(join(devDir, 'hmac-secret'), 'utf8')).trim()).toBe(replaced.secret)
  })

  it('prefers the configured secret', async () => {
    devDir = await mkdtemp(join(tmpdir(), 'dualrate-dev-'))
    expect(await resolveHmacSecret({ hmacSecret: 's'.repeat(40), devDir })).toEqual({
      secret: 's'.repeat(40),
      source: 'env',
    })
  })
})
