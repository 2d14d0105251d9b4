import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { readConfig } from '../../edge/src/env.ts'

describe('readConfig', () => {
  it('reads the variables into typed settings with defaults', () => {
    const config = readConfig({ ...env, JOB_TIMEOUT_SECONDS: '90' })
    expect(config).toMatchObject({
      backendUrls: ['http://backend-a.test', 'http://backend-b.test'],
      corsOrigins: ['https://app.example'],
      jobTimeoutMs: 90_000,
      backendMaxAttempts: 3,
      maxBodyBytes: 16_384,
    })
  })

  it('names every bad variable', () => {
    expect(() =>
      readConfig({ ...env, BACKEND_URLS: 'ftp://x, not a url', BACKEND_SECRET: 'short' }),
    ).toThrow(
      /Invalid worker configuration:\n {2}BACKEND_URLS\[0\]: .*\n {2}BACKEND_URLS\[1\]: .*\n {2}BACKEND_SECRET: must be at least 32 characters/,
    )
  })
})
