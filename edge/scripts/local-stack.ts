// The whole stack on loopback: one or more real gpu-services with the committed models, `wrangler dev`
// with local Durable Objects, R2 and KV in front of them, and an API key created by the key script in
// that same state. The end-to-end tests, the fault suite, the edge benchmark and the load tool use it
// with free ports and a fresh state folder; `npm start` (start.ts) with fixed ports, the persistent
// .wrangler/state and its output streamed line by line. Each process can be killed and restarted (same
// port, same state) and its process group's memory read, for fault and load testing.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { writeDevVars } from './dev-vars.ts'
import { type GroupMember, groupMembers, signalGroup, stopGroup } from './process-group.ts'
import { prepareStackWranglerConfig } from './stack-wrangler-config.ts'

/** `edge` (wrangler dev), `gpu-service` when there is one backend, `gpu-service-1`... when several. */
export type StackProcess = 'edge' | `gpu-service${string}` | 'bare-worker'

/** How a process of the stack ended when nobody asked it to. */
export interface StackExit {
  source: StackProcess
  pid: number | undefined
  code: number | null
  signal: NodeJS.Signals | null
}

/** One process of the stack, as the leader of its own process group. */
export interface StackChild {
  readonly name: StackProcess
  /** Its base URL on loopback; the same port across restarts. */
  readonly url: string
  /** The pid (and process group id) of the running process; undefined while stopped. */
  readonly pid: number | undefined
  /** Sends a signal to the process group; false when nothing of it is running. */
  kill(signal?: NodeJS.Signals): boolean
  /** Stops it (SIGTERM, SIGKILL after 10 s) if it runs and starts it again; resolves once it is ready. */
  restart(): Promise<void>
  /** The resident memory of every live process in its group (wrangler: node, workerd, esbuild). */
  memory(): Promise<ProcessMemory>
  /** The last 16,000 characters it printed. */
  output(): string
}

export interface ProcessMemory {
  name: StackProcess
  pid: number | undefined
  /** The sum over `processes`. */
  rssBytes: number
  processes: GroupMember[]
}

export interface LocalStack {
  edgeUrl: string
  /** The first gpu-service's URL. */
  backendUrl: string
  /** Every gpu-service's URL, in BACKEND_URLS order. */
  backendUrls: string[]
  edge: StackChild
  backends: StackChild[]
  apiKey: string
  /** True when `reuseApiKey` was accepted, false when a key was created. */
  reusedApiKey: boolean
  /** The edge <-> gpu-service HMAC secret (for calling the gpu-service directly). */
  backendSecret: string
  /** wrangler dev's --persist-to folder (the key script's --persist-to). */
  statePath: string
  /** Settles at the first exit of a ready process that neither stop() nor restart() asked for. */
  exited: Promise<StackExit>
  /** Another API key in the stack's KV (the key script's `create`). */
  createKey(name: string, limits?: KeyLimits): Promise<string>
  /** The resident memory of every process of the stack, backends first. */
  memory(): Promise<ProcessMemory[]>
  stop(): Promise<void>
}

export interface KeyLimits {
  requestsPerMinute?: number
  concurrentJobs?: number
}

export interface BackendOptions {
  /** A loopback port; a free one when absent. */
  port?: number
  /** Added to this gpu-service's environment (after `backendEnv`), e.g. DUALRATE_INTRA_OP_THREADS. */
  env?: Record<string, string>
}

export interface LocalStackOptions extends KeyLimits {
  /** How many gpu-services, or one entry per gpu-service; 1 when absent. */
  backends?: number | BackendOptions[]
  /** Loopback ports; free ones when absent. A port in use fails with PortInUseError before any start. */
  edgePort?: number
  /** The first gpu-service's port (when `backends` does not give it). */
  backendPort?: number
  /** wrangler dev's --persist-to; a fresh temporary folder, removed by stop(), when absent. */
  statePath?: string
  /** The name of the API key created for the stack. */
  keyName?: string
  /** A key from an earlier start to keep using when the edge still accepts it. */
  reuseApiKey?: string | undefined
  /** Receives each output line of every process as it arrives. */
  onLog?: (source: StackProcess, line: string) => void
  /** Called at every exit of a ready process that neither stop() nor restart() asked for. */
  onExit?: (exit: StackExit) => void
  /** wrangler dev's --log-level. */
  edgeLogLevel?: 'debug' | 'info' | 'log' | 'warn' | 'error' | 'none'
  /** Added to every gpu-service's environment. */
  backendEnv?: Record<string, string>
  /** Extra edge variables (wrangler dev --var), e.g. BACKEND_MAX_ATTEMPTS; BACKEND_URLS is set here. */
  edgeVars?: Record<string, string>
  /** Aborting it while the stack starts stops every process; startLocalStack then rejects. */
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

/** How much of a process's output is kept for the error report when it fails to start. */
const OUTPUT_TAIL_CHARS = 16_000

interface ProcessSpec {
  name: StackProcess
  url: string
  /** Polled until it answers 2xx. */
  readyUrl: string
  readyTimeoutMs: number
  command: string
  /** Arguments of each start (wrangler dev gets a fresh inspector port each time). */
  args: () => Promise<string[]>
  env: Record<string, string>
  onLine?: ((line: string) => void) | undefined
  onExit: (exit: StackExit) => void
}

/** A process of the stack that can be started, stopped, killed and restarted on the same port. */
class ManagedProcess implements StackChild {
  readonly #spec: ProcessSpec
  #child: ChildProcess | null = null
  /** The child that stop() or restart() is ending: its exit is expected, not reported. */
  readonly #expectedExits = new WeakSet<ChildProcess>()
  #starting: AbortController | null = null
  #output = ''

  constructor(spec: ProcessSpec) {
    this.#spec = spec
  }

  get name() {
    return this.#spec.name
  }
  get url() {
    return this.#spec.url
  }
  get pid() {
    const child = this.#child
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined
  }

  output(): string {
    return this.#output
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    const pid = this.pid
    return pid !== undefined && signalGroup(pid, signal)
  }

  async memory(): Promise<ProcessMemory> {
    const pid = this.pid
    const processes = pid === undefined ? [] : await groupMembers(pid)
    const rssBytes = processes.reduce((sum, member) => sum + member.rssBytes, 0)
    return { name: this.name, pid, rssBytes, processes }
  }

  /** Spawns the process and waits until it is ready; a start that fails leaves nothing running. */
  async start(signal?: AbortSignal): Promise<void> {
    const starting = new AbortController()
    this.#starting = starting
    const abort = () => starting.abort(signal?.reason)
    signal?.addEventListener('abort', abort, { once: true })
    if (signal?.aborted) abort()
    const child = this.#spawn(await this.#spec.args())
    try {
      await waitFor(this.#spec.readyUrl, child, () => this.#output, this.#spec.readyTimeoutMs, {
        signal: starting.signal,
      })
    } catch (error) {
      this.#expectedExits.add(child)
      await stopGroup(child)
      throw error
    } finally {
      signal?.removeEventListener('abort', abort)
      if (this.#starting === starting) this.#starting = null
    }
  }

  async stop(): Promise<void> {
    this.#starting?.abort(new Error(`${this.name} stopped while starting`))
    const child = this.#child
    if (!child) return
    this.#expectedExits.add(child)
    await stopGroup(child)
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.start()
  }

  #spawn(args: string[]): ChildProcess {
    // Its own process group, so a signal ends the child and what it started (workerd) together; a Ctrl-C
    // in the terminal reaches only the parent, which stops the stack in order.
    const child = spawn(this.#spec.command, args, {
      env: { ...process.env, ...this.#spec.env },
      detached: true,
    })
    this.#child = child
    let partial = ''
    const onLine = this.#spec.onLine
    const collect = (chunk: Buffer) => {
      const text = chunk.toString()
      this.#output = (this.#output + text).slice(-OUTPUT_TAIL_CHARS)
      if (!onLine) return
      const lines = (partial + text).split(/\r?\n/)
      partial = lines.pop() ?? ''
      for (const line of lines) onLine(line)
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    // A failed spawn (ENOENT) also ends in 'exit' or is reported by waitFor; keep it from throwing.
    child.once('error', () => {})
    child.once('exit', (code, signal) => {
      if (partial && onLine) onLine(partial)
      partial = ''
      // Exits during start are the start's failure (waitFor reports them), not a crash to report.
      if (this.#expectedExits.has(child) || this.#starting) return
      this.#spec.onExit({ source: this.name, pid: child.pid, code, signal })
    })
    return child
  }
}

async function waitFor(
  url: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs: number,
  { signal }: { signal?: AbortSignal },
) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    signal?.throwIfAborted()
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`
      throw new Error(`${url}: process exited (${how}):\n${output().slice(-2000)}`)
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

function backendList(options: LocalStackOptions): BackendOptions[] {
  const backends = options.backends ?? 1
  const list = Array.isArray(backends)
    ? backends
    : Array.from({ length: backends }, () => ({}) as BackendOptions)
  if (list.length === 0) throw new Error('a local stack needs at least one gpu-service')
  const first = list[0] as BackendOptions
  if (first.port === undefined && options.backendPort !== undefined) {
    return [{ ...first, port: options.backendPort }, ...list.slice(1)]
  }
  return list
}

/**
 * Starts the gpu-services and wrangler dev on loopback and creates (or reuses) an API key.
 *
 * @example
 * const stack = await startLocalStack({ backends: 2 })
 * try {
 *   stack.backends[0]?.kill('SIGKILL') // jobs fail over to the other backend
 *   await stack.edge.restart() // same port, same Durable Object state
 * } finally {
 *   await stack.stop()
 * }
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const backendOptions = backendList(options)
  const backendName = (index: number): StackProcess =>
    backendOptions.length === 1 ? 'gpu-service' : `gpu-service-${index + 1}`
  if (options.edgePort !== undefined) await assertPortFree(options.edgePort, 'edge')
  for (const [index, backend] of backendOptions.entries()) {
    if (backend.port !== undefined) await assertPortFree(backend.port, backendName(index))
  }
  const { BACKEND_SECRET } = await writeDevVars()
  const wranglerConfig = await prepareStackWranglerConfig()
  const temporaryState = options.statePath === undefined
  const state = options.statePath ?? (await mkdtemp(join(tmpdir(), 'dualrate-edge-')))
  const backendPorts: number[] = []
  for (const backend of backendOptions) backendPorts.push(backend.port ?? (await freePort()))
  const edgePort = options.edgePort ?? (await freePort())
  const backendUrls = backendPorts.map((port) => `http://127.0.0.1:${port}`)
  const edgeUrl = `http://127.0.0.1:${edgePort}`
  const onLog = options.onLog

  let stopping = false
  let firstExit: ((exit: StackExit) => void) | undefined
  const exited = new Promise<StackExit>((resolve) => {
    firstExit = resolve
  })
  const onExit = (exit: StackExit) => {
    if (stopping) return
    firstExit?.(exit)
    options.onExit?.(exit)
  }

  const backends = backendOptions.map((backend, index) => {
    const name = backendName(index)
    return new ManagedProcess({
      name,
      url: backendUrls[index] as string,
      readyUrl: `${backendUrls[index]}/readyz`,
      readyTimeoutMs: 180_000,
      command: process.execPath,
      args: async () => ['gpu-service/src/service/main.ts'],
      env: {
        PORT: String(backendPorts[index]),
        DUALRATE_HMAC_SECRET: BACKEND_SECRET,
        DUALRATE_HEARTBEAT_MS: '1000',
        ...options.backendEnv,
        ...backend.env,
      },
      onLine: onLog && ((line) => onLog(name, line)),
      onExit,
    })
  })
  const vars = { ...options.edgeVars, BACKEND_URLS: backendUrls.join(',') }
  const edge = new ManagedProcess(
    wranglerDev({
      name: 'edge',
      config: wranglerConfig,
      port: edgePort,
      readyPath: '/v1/models',
      args: [
        `--persist-to=${state}`,
        ...Object.entries(vars).map(([name, value]) => `--var=${name}:${value}`),
      ],
      logLevel: options.edgeLogLevel ?? 'warn',
      onLine: onLog && ((line) => onLog('edge', line)),
      onExit,
    }),
  )
  const all = [...backends, edge]

  const stop = async () => {
    stopping = true
    await Promise.all(all.map((child) => child.stop()))
    if (temporaryState) await rm(state, { recursive: true, force: true })
  }
  const createStackKey = (name: string, limits: KeyLimits = {}) =>
    createKey(state, name, {
      requestsPerMinute: limits.requestsPerMinute ?? options.requestsPerMinute,
      concurrentJobs: limits.concurrentJobs ?? options.concurrentJobs,
    })
  try {
    await Promise.all(all.map((child) => child.start(options.signal)))
    const reusedApiKey =
      options.reuseApiKey !== undefined && (await edgeAccepts(edgeUrl, options.reuseApiKey))
    const apiKey = reusedApiKey
      ? (options.reuseApiKey as string)
      : await createStackKey(options.keyName ?? 'local-stack')
    return {
      edgeUrl,
      backendUrl: backendUrls[0] as string,
      backendUrls,
      edge,
      backends,
      apiKey,
      reusedApiKey,
      backendSecret: BACKEND_SECRET,
      statePath: state,
      exited,
      createKey: createStackKey,
      memory: () => Promise.all(all.map((child) => child.memory())),
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/**
 * The bare worker (edge/scripts/bare-worker/) under `wrangler dev`, on a free loopback port: what a request
 * costs here before any of the edge's code runs. Stop it with `stop()`.
 */
export async function startBareWorker(): Promise<{ url: string; stop: () => Promise<void> }> {
  const worker = new ManagedProcess(
    wranglerDev({
      name: 'bare-worker',
      config: 'edge/scripts/bare-worker/wrangler.toml',
      port: await freePort(),
      readyPath: '/',
      args: [],
      logLevel: 'warn',
      onExit: () => {},
    }),
  )
  await worker.start()
  return { url: worker.url, stop: () => worker.stop() }
}

/** `wrangler dev` of `config` on loopback `port`, a fresh inspector port each start, without network. */
function wranglerDev(options: {
  name: StackProcess
  config: string
  port: number
  /** Polled until it answers 2xx. */
  readyPath: string
  /** Arguments after the common ones (state, vars). */
  args: string[]
  logLevel: string
  onLine?: ((line: string) => void) | undefined
  onExit: (exit: StackExit) => void
}): ProcessSpec {
  const url = `http://127.0.0.1:${options.port}`
  return {
    name: options.name,
    url,
    readyUrl: `${url}${options.readyPath}`,
    readyTimeoutMs: 120_000,
    command: 'node_modules/.bin/wrangler',
    args: async () => [
      'dev',
      `--config=${options.config}`,
      '--ip=127.0.0.1',
      `--port=${options.port}`,
      `--inspector-port=${await freePort()}`,
      ...options.args,
      '--show-interactive-dev-session=false',
      `--log-level=${options.logLevel}`,
    ],
    // No network: no metrics, and the fallback `request.cf` instead of fetching one from Cloudflare.
    env: { WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    onLine: options.onLine,
    onExit: options.onExit,
  }
}

/** The key script's `create`, on the stack's local KV state; returns the new key. */
async function createKey(
  statePath: string,
  name: string,
  limits: { requestsPerMinute?: number | undefined; concurrentJobs?: number | undefined },
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
