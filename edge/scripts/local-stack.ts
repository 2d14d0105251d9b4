// The whole stack on loopback for the end-to-end test and the edge benchmark: a real gpu-service with
// the committed models, `wrangler dev` with local Durable Objects, R2 and KV in a fresh state folder,
// and an API key created by the key script in that same state.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { writeDevVars } from './dev-vars.ts'

export interface LocalStack {
  edgeUrl: string
  backendUrl: string
  apiKey: string
  /** The edge <-> gpu-service HMAC secret (for calling the gpu-service directly). */
  backendSecret: string
  /** wrangler dev's --persist-to folder (the key script's --persist-to). */
  statePath: string
  stop(): Promise<void>
}

/** A port the kernel just gave out and took back (loopback only). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(),
      )
    })
  })
}

async function waitFor(url: string, child: ChildProcess, output: () => string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`${url}: process exited (${child.exitCode}):\n${output().slice(-2000)}`)
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) })
      await response.body?.cancel()
      if (response.ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms:\n${output().slice(-2000)}`)
}

function start(command: string, args: string[], env: Record<string, string>) {
  // Its own process group, so stop() ends the child and what it started (workerd) together.
  const child = spawn(command, args, { env: { ...process.env, ...env }, detached: true })
  let output = ''
  child.stdout?.on('data', (chunk) => (output += chunk))
  child.stderr?.on('data', (chunk) => (output += chunk))
  return { child, output: () => output }
}

function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
    }, 10_000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM')
  })
}

/**
 * Starts gpu-service and wrangler dev on free loopback ports and creates an API key.
 *
 * @example
 * const stack = await startLocalStack()
 * try { await fetch(`${stack.edgeUrl}/v1/models`) } finally { await stack.stop() }
 */
export async function startLocalStack(
  options: { requestsPerMinute?: number; concurrentJobs?: number } = {},
): Promise<LocalStack> {
  const { BACKEND_SECRET } = await writeDevVars()
  const state = await mkdtemp(join(tmpdir(), 'dualrate-edge-'))
  const [backendPort, edgePort, inspectorPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
  ]
  const backendUrl = `http://127.0.0.1:${backendPort}`
  const edgeUrl = `http://127.0.0.1:${edgePort}`
  const backend = start(process.execPath, ['gpu-service/src/service/main.ts'], {
    PORT: String(backendPort),
    DUALRATE_HMAC_SECRET: BACKEND_SECRET,
    DUALRATE_HEARTBEAT_MS: '1000',
  })
  const edge = start(
    'node_modules/.bin/wrangler',
    [
      'dev',
      '--ip=127.0.0.1',
      `--port=${edgePort}`,
      `--inspector-port=${inspectorPort}`,
      `--persist-to=${state}`,
      `--var=BACKEND_URLS:${backendUrl}`,
      '--show-interactive-dev-session=false',
      '--log-level=warn',
    ],
    { WRANGLER_SEND_METRICS: 'false' },
  )
  const stop = async () => {
    await Promise.all([stopGroup(edge.child), stopGroup(backend.child)])
    await rm(state, { recursive: true, force: true })
  }
  try {
    await Promise.all([
      waitFor(`${backendUrl}/readyz`, backend.child, backend.output, 180_000),
      waitFor(`${edgeUrl}/v1/models`, edge.child, edge.output, 120_000),
    ])
    const { stdout } = await promisify(execFile)(process.execPath, [
      'node_modules/tsx/dist/cli.mjs',
      'edge/scripts/keys.ts',
      'create',
      '--name=local-stack',
      `--persist-to=${state}`,
      `--rpm=${options.requestsPerMinute ?? 10_000}`,
      `--concurrent=${options.concurrentJobs ?? 16}`,
      '--json',
    ])
    const { key } = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { key: string }
    return {
      edgeUrl,
      backendUrl,
      apiKey: key,
      backendSecret: BACKEND_SECRET,
      statePath: state,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}
