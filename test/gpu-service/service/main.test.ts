// `npm run gpu-service` as a child process: configuration errors, and the drain on SIGTERM.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { signedFetch } from '../../../gpu-service/src/cli/run-client.ts'
import { drain, readUntil } from '../../fixtures/run-stream.ts'
import { TEST_SECRET } from '../../fixtures/service.ts'

const MAIN = 'gpu-service/src/service/main.ts'
// `npm install` skips onnxruntime-node's CUDA download (package.json allowScripts): the CUDA provider
// cannot load here, which is the failure the service must not hide.
const CUDA_PROVIDER_INSTALLED = readdirSync(
  join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin'),
  { recursive: true },
).some((file) => String(file).endsWith('libonnxruntime_providers_cuda.so'))

interface Child {
  process: ChildProcessWithoutNullStreams
  lines: Record<string, unknown>[]
  stderr: () => string
  exited: Promise<number | null>
  /** Resolves with the first log line whose msg is `message`. */
  line(message: string): Promise<Record<string, unknown>>
}

/** Starts the service the way `npm run gpu-service` does, with `env` on top of the test's own. */
function startChild(env: Record<string, string>): Child {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, NODE_ENV: 'test', PORT: '0', DUALRATE_HMAC_SECRET: TEST_SECRET, ...env },
  })
  const lines: Record<string, unknown>[] = []
  const waiting: { message: string; resolve: (line: Record<string, unknown>) => void }[] = []
  createInterface({ input: child.stdout }).on('line', (text) => {
    const line = JSON.parse(text)
    lines.push(line)
    for (const waiter of waiting.filter((candidate) => candidate.message === line.msg)) {
      waiter.resolve(line)
    }
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  return {
    process: child,
    lines,
    stderr: () => stderr,
    exited,
    line: (message) =>
      new Promise((resolve) => {
        const found = lines.find((line) => line.msg === message)
        if (found) resolve(found)
        else waiting.push({ message, resolve })
      }),
  }
}

const longRun = {
  classIndex: 3,
  count: 1,
  steps: 40,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 1,
}

describe('npm run gpu-service', () => {
  it('exits 78 naming every bad variable, before loading anything', async () => {
    const child = startChild({ PORT: 'eighty', DUALRATE_BATCHING: 'maybe' })
    expect(await child.exited).toBe(78)
    expect(child.stderr()).toBe(
      [
        'gpu-service: invalid configuration',
        'gpu-service: PORT: expected a whole number',
        'gpu-service: DUALRATE_BATCHING: Invalid option: expected one of "on"|"off"',
        '',
      ].join('\n'),
    )
    expect(child.lines).toEqual([])
  })

  it.skipIf(CUDA_PROVIDER_INSTALLED)(
    'exits 78 with one line naming the device, the provider and the reason when CUDA cannot load',
    async () => {
      const child = startChild({ DUALRATE_DEVICE: 'cuda' })
      expect(await child.exited).toBe(78)
      // Linux x64 has a CUDA backend whose library is missing; other builds have no CUDA backend.
      const reason =
        process.platform === 'linux' && process.arch === 'x64'
          ? 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'
          : 'no available backend found. ERR: [cuda] backend not found.'
      // ONNX Runtime's own log lines come first (they name the library that did not load).
      expect(child.stderr().trimEnd().split('\n').at(-1)).toBe(
        `gpu-service: DUALRATE_DEVICE=cuda: the cuda execution provider could not be loaded (${reason}); ` +
          "not falling back to the CPU: install the provider's libraries (gpu-service/Dockerfile, " +
          'VARIANT=cuda) or set DUALRATE_DEVICE=cpu',
      )
      expect(child.lines.map((line) => line.msg)).not.toContain('ready')
    },
  )

  it('on SIGTERM refuses new runs, finishes the one in flight, and exits 0', async () => {
    const child = startChild({ DUALRATE_DRAIN_GRACE_MS: '20000' })
    const run = { ...longRun, steps: 150 }
    const { url } = (await child.line('listening')) as { url: string }
    await child.line('ready')
    const client = { baseUrl: url, secret: TEST_SECRET }
    const { events, rest } = await readUntil(
      await signedFetch(client, 'POST', '/v1/runs', { body: run }),
      (event) => event.type === 'step',
    )
    child.process.kill('SIGTERM')
    await child.line('draining')
    const refused = await signedFetch(client, 'POST', '/v1/runs', { body: { ...run, seed: 2 } })
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({ title: 'Service shutting down' })
    expect((await fetch(`${url}/readyz`)).status).toBe(503)
    events.push(...(await drain(rest)))
    expect(events.at(-1)?.type).toBe('result')
    expect(events.filter((event) => event.type === 'step')).toHaveLength(150)
    expect(await child.exited).toBe(0)
    expect(child.lines.at(-1)).toMatchObject({ msg: 'stopped', signal: 'SIGTERM' })
  })

  it('stops runs still going when the grace period ends, and exits 0', async () => {
    const child = startChild({ DUALRATE_DRAIN_GRACE_MS: '200' })
    const { url } = (await child.line('listening')) as { url: string }
    await child.line('ready')
    const client = { baseUrl: url, secret: TEST_SECRET }
    const { events, rest } = await readUntil(
      await signedFetch(client, 'POST', '/v1/runs', { body: { ...longRun, steps: 1000 } }),
      (event) => event.type === 'step',
    )
    const signalled = Date.now()
    child.process.kill('SIGTERM')
    events.push(...(await drain(rest)))
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      problem: { status: 503, title: 'Service shutting down' },
    })
    expect(await child.exited).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(5_000)
    expect(child.lines.find((line) => line.msg === 'run ended')).toMatchObject({
      outcome: 'shutdown',
    })
  })
})
