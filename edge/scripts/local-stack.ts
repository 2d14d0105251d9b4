// The whole stack on loopback: a real gpu-service with the committed models, `wrangler dev` with local
// Durable Objects, R2 and KV, and an API key created by the key script in that same state. The end-to-end
// tests and the edge benchmark use it with free ports and a fresh state folder; `npm start`
// (start.ts) with fixed ports, the persistent .wrangler/state and its output streamed line by line.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { writeDevVars } from './dev-vars.ts'

export type StackProcess = 'gpu-service' | 'edge'

export interface LocalStack {
  edgeUrl: string
  backendUrl: string
  apiKey: string
  /** True when `reuseApiKey` was accepted, false when a key was created. */
  reusedApiKey: boolean
  /** The edge <-> gpu-service HMAC secret (for calling the gpu-service directly). */
  backendSecret: string
  /** wrangler dev's --persist-to folder (the key script's --persist-to). */
  statePath: string
  /** Settles when either process exits before stop() was called. */
  exited: Promise<{ source: StackProcess; code: number | null; signal: NodeJS.Signals | null }>
  stop(): Promise<void>
}

export interface LocalStackOptions {
  requestsPerMinute?: number
  concurrentJobs?: number
  /** Loopback ports; free ones when absent. A port in use fails with PortInUseError before any start. */
  edgePort?: number
  backendPort?: number
  /** wrangler dev's --persist-to; a fresh temporary folder, removed by stop(), when absent. */
  statePath?: string
  /** The name of the API key created for the stack. */
  keyName?: string
  /** A key from an earlier start to keep using when the edge still accepts it. */
  reuseApiKey?: string | undefined
  /** Receives each output line of both processes as it arrives. */
  onLog?: (source: StackProcess, line: string) => void
  /** wrangler dev's --log-level. */
  edgeLogLevel?: 'debug' | 'info' | 'log' | 'warn' | 'error' | 'none'
  /** Added to the gpu-service's environment. */
  backendEnv?: Record<string, string>
  /** Aborting it while the stack starts stops both processes; startLocalStack then rejects. */
  signal?: AbortSignal
}

/** A port the stack needs is taken. */
export class PortInUseError extends Error {
  override name = 'PortInUseError'
  readonly port: number
  /** The process that needs the port. */
  readonly owner: StackProcess
  constructor(port: number, owner: StackProcess) {
    super(`port ${port} (${owner}) is already in use on 127.0.0.1`)
    this.port = port
    this.owner = owner
  }
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

/** Throws PortInUseError when something already listens on 127.0.0.1:port. */
export function assertPortFree(port: number, owner: StackProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(port, owner) : error),
    )
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()))
  })
}

async function waitFor(
  url: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs: number,
  signal?: AbortSignal,
) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    signal?.throwIfAborted()
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

/** How much of a process's output is kept for the error report when it fails to start. */
const OUTPUT_TAIL_CHARS = 16_000

function start(
  command: string,
  args: string[],
  env: Record<string, string>,
  onLine?: (line: string) => void,
) {
  // Its own process group, so stop() ends the child and what it started (workerd) together; a Ctrl-C
  // in the terminal reaches only the parent, which stops the stack in order.
  const child = spawn(command, args, { env: { ...process.env, ...env }, detached: true })
  let output = ''
  let partial = ''
  const collect = (chunk: Buffer) => {
    const text = chunk.toString()
    output = (output + text).slice(-OUTPUT_TAIL_CHARS)
    if (!onLine) return
    const lines = (partial + text).split(/\r?\n/)
    partial = lines.pop() ?? ''
    for (const line of lines) onLine(line)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  child.once('exit', () => {
    if (partial && onLine) onLine(partial)
  })
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
 * Starts gpu-service and wrangler dev on loopback and creates (or reuses) an API key.
 *
 * @example
 * const stack = await startLocalStack()
 * try { await fetch(`${stack.edgeUrl}/v1/models`) } finally { await stack.stop() }
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  if (options.edgePort !== undefined) await assertPortFree(options.edgePort, 'edge')
  if (options.backendPort !== undefined) await assertPortFree(options.backendPort, 'gpu-service')
  const { BACKEND_SECRET } = await writeDevVars()
  const temporaryState = options.statePath === undefined
  const state = options.statePath ?? (await mkdtemp(join(tmpdir(), 'dualrate-edge-')))
  const backendPort = options.backendPort ?? (await freePort())
  const edgePort = options.edgePort ?? (await freePort())
  const inspectorPort = await freePort()
  const backendUrl = `http://127.0.0.1:${backendPort}`
  const edgeUrl = `http://127.0.0.1:${edgePort}`
  const onLog = options.onLog
  const backend = start(
    process.execPath,
    ['gpu-service/src/service/main.ts'],
    {
      PORT: String(backendPort),
      DUALRATE_HMAC_SECRET: BACKEND_SECRET,
      DUALRATE_HEARTBEAT_MS: '1000',
      ...options.backendEnv,
    },
    onLog && ((line) => onLog('gpu-service', line)),
  )
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
      `--log-level=${options.edgeLogLevel ?? 'warn'}`,
    ],
    // No network: no metrics, and the fallback `request.cf` instead of fetching one from Cloudflare.
    { WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    onLog && ((line) => onLog('edge', line)),
  )
  let stopping = false
  const exited = new Promise<Awaited<LocalStack['exited']>>((resolve) => {
    const report =
      (source: StackProcess) => (code: number | null, signal: NodeJS.Signals | null) => {
        if (!stopping) resolve({ source, code, signal })
      }
    backend.child.once('exit', report('gpu-service'))
    edge.child.once('exit', report('edge'))
  })
  const stop = async () => {
    stopping = true
    await Promise.all([stopGroup(edge.child), stopGroup(backend.child)])
    if (temporaryState) await rm(state, { recursive: true, force: true })
  }
  try {
    await Promise.all([
      waitFor(`${backendUrl}/readyz`, backend.child, backend.output, 180_000, options.signal),
      waitFor(`${edgeUrl}/v1/models`, edge.child, edge.output, 120_000, options.signal),
    ])
    const reusedApiKey =
      options.reuseApiKey !== undefined && (await edgeAccepts(edgeUrl, options.reuseApiKey))
    const apiKey = reusedApiKey
      ? (options.reuseApiKey as string)
      : await createKey(state, options.keyName ?? 'local-stack', options)
    return {
      edgeUrl,
      backendUrl,
      apiKey,
      reusedApiKey,
      backendSecret: BACKEND_SECRET,
      statePath: state,
      exited,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** The key script's `create`, on the stack's local KV state; returns the new key. */
async function createKey(
  statePath: string,
  name: string,
  limits: Pick<LocalStackOptions, 'requestsPerMinute' | 'concurrentJobs'>,
): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    'node_modules/tsx/dist/cli.mjs',
    'edge/scripts/keys.ts',
    'create',
    `--name=${name}`,
    `--persist-to=${statePath}`,
    `--rpm=${limits.requestsPerMinute ?? 10_000}`,
    `--concurrent=${limits.concurrentJobs ?? 16}`,
    '--json',
  ])
  const { key } = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { key: string }
  return key
}

/** Whether the edge knows this key: an unknown job is 404 for a valid key, 401 otherwise. */
async function edgeAccepts(edgeUrl: string, apiKey: string): Promise<boolean> {
  const response = await fetch(`${edgeUrl}/v1/generations/${'0'.repeat(64)}`, {
    headers: { authorization: `Bearer ${apiKey}` },
  })
  await response.body?.cancel()
  return response.status === 404
}
