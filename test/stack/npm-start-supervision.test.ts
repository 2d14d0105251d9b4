// `npm start` when one of its processes dies: a killed gpu-service is reported in one line and started
// again while the edge keeps serving; one that cannot come back is given up after 3 restarts in 60 s;
// a dead edge stops the stack cleanly with exit 1. Each case runs its own `npm start` on free ports (a
// temporary state and dev folder), beside the project's shared one. The restart budget itself (3 per
// 60 s, doubling delays) is checked as a unit.
import { type ChildProcess, spawn } from 'node:child_process'
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localStackFileSchema } from '../../client/cli/connection.ts'
import { assertPortFree, freePort } from '../../edge/scripts/local-stack.ts'
import { RestartBudget } from '../../edge/scripts/restart-budget.ts'

describe('RestartBudget', () => {
  it('grants 3 restarts per 60 s after 1, 2 and 4 s, then refuses until the window slides', () => {
    const budget = new RestartBudget()
    expect(budget.next(0)).toEqual({ restart: true, delayMs: 1_000, attempt: 1 })
    expect(budget.next(10_000)).toEqual({ restart: true, delayMs: 2_000, attempt: 2 })
    expect(budget.next(20_000)).toEqual({ restart: true, delayMs: 4_000, attempt: 3 })
    expect(budget.next(30_000)).toEqual({ restart: false, restarts: 3 })
    // The first restart has left the window: one more is allowed, after the third delay.
    expect(budget.next(60_001)).toEqual({ restart: true, delayMs: 4_000, attempt: 3 })
  })
})

/** The command lines of a process's children, read from /proc. */
async function children(parentPid: number): Promise<{ pid: number; commandLine: string }[]> {
  const found: { pid: number; commandLine: string }[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid !== parentPid) continue
      const commandLine = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ')
      found.push({ pid: Number(entry), commandLine })
    } catch {}
  }
  return found
}

/** One `npm start` of these tests: its own ports, state and dev folder; output collected. */
class NpmStart {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  readonly devDir: string
  readonly statePath: string
  readonly edgePort: number
  readonly backendPort: number
  output = ''

  private constructor(devDir: string, statePath: string, edgePort: number, backendPort: number) {
    this.devDir = devDir
    this.statePath = statePath
    this.edgePort = edgePort
    this.backendPort = backendPort
    this.child = spawn(
      process.execPath,
      [
        'edge/scripts/start.ts',
        `--edge-port=${edgePort}`,
        `--gpu-service-port=${backendPort}`,
        `--state=${statePath}`,
      ],
      { env: { ...process.env, DUALRATE_DEV_DIR: devDir, NO_COLOR: '1' } },
    )
    this.child.stdout?.on('data', (chunk) => (this.output += chunk))
    this.child.stderr?.on('data', (chunk) => (this.output += chunk))
    this.exited = new Promise((resolve) => this.child.once('exit', resolve))
  }

  /** Starts one and waits for its banner. */
  static async start(): Promise<NpmStart> {
    const devDir = await mkdtemp(join(tmpdir(), 'dualrate-supervision-dev-'))
    const statePath = await mkdtemp(join(tmpdir(), 'dualrate-supervision-state-'))
    for (const secret of ['hmac-secret', 'result-key-secret']) {
      await copyFile(join('.dev', secret), join(devDir, secret))
    }
    const started = new NpmStart(devDir, statePath, await freePort(), await freePort())
    await started.until(() => started.output.includes('Ctrl-C stops both.'), 240_000, 'the banner')
    return started
  }

  async until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`${what} not seen:\n${this.output.slice(-3000)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  /** The pid of its child process whose command line matches. */
  async processOf(pattern: RegExp): Promise<number> {
    const found = (await children(this.child.pid as number)).find((entry) =>
      pattern.test(entry.commandLine),
    )
    if (!found) throw new Error(`no child process matches ${pattern}`)
    return found.pid
  }

  /** Ctrl-C if it still runs, then its folders go. */
  async dispose(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGINT')
      await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 30_000))])
    }
    await rm(this.devDir, { recursive: true, force: true })
    await rm(this.statePath, { recursive: true, force: true })
  }
}

const GPU_SERVICE = /gpu-service\/src\/service\/main\.ts/

describe('npm start when a process dies', () => {
  let stack: NpmStart
  beforeAll(async () => {
    stack = await NpmStart.start()
  }, 250_000)
  afterAll(() => stack?.dispose(), 40_000)

  it('restarts a killed gpu-service, says so in one line, and the edge serves again', async () => {
    const killedPid = await stack.processOf(GPU_SERVICE)
    process.kill(killedPid, 'SIGKILL')
    await stack.until(() => stack.output.includes('is back'), 120_000, 'the restart')
    expect(stack.output).toContain(
      `npm start: the gpu-service (pid ${killedPid}) was killed by SIGKILL; restarting it in 1 s ` +
        '(restart 1 of at most 3 per 60 s).',
    )
    const back = /^npm start: the gpu-service is back \(pid (\d+), (http:\S+)\)\.$/m.exec(
      stack.output,
    )
    expect(back?.[2]).toBe(`http://127.0.0.1:${stack.backendPort}`)
    expect(Number(back?.[1])).not.toBe(killedPid)
    expect((await fetch(`http://127.0.0.1:${stack.backendPort}/readyz`)).status).toBe(200)

    const { apiKey, apiBase } = localStackFileSchema.parse(
      JSON.parse(await readFile(join(stack.devDir, 'local.json'), 'utf8')),
    )
    const response = await fetch(`${apiBase}/v1/generations`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/json',
        prefer: 'wait=60',
      },
      body: JSON.stringify({ class: 'Bag', steps: 20, seed: 424_242 }),
    })
    expect(response.status).toBe(200)
    expect(((await response.json()) as { status: string }).status).toBe('succeeded')
    expect(stack.output).not.toContain('ESRCH')
    expect(stack.output).not.toMatch(/^\s+at /m)
    expect(stack.child.exitCode).toBe(null)
  }, 150_000)

  it('stops everything with exit 1 and one clear line when the edge dies', async () => {
    // The wrangler process itself, not its group: workerd is left behind and must be stopped too.
    const edgePid = await stack.processOf(/node_modules\/\.bin\/wrangler dev/)
    process.kill(edgePid, 'SIGKILL')
    expect(await stack.exited).toBe(1)
    expect(stack.output).toContain(
      `npm start: the edge (wrangler dev, pid ${edgePid}) was killed by SIGKILL; stopping the gpu-service.`,
    )
    expect(stack.output).toMatch(/^Stopped\.$/m)
    expect(stack.output).not.toContain('ESRCH')
    expect(stack.output).not.toMatch(/^\s+at /m)
    await assertPortFree(stack.edgePort, 'edge')
    await assertPortFree(stack.backendPort, 'gpu-service')
  }, 60_000)
})

describe('npm start when a gpu-service cannot come back', () => {
  let stack: NpmStart
  let squatter: Server | undefined
  beforeAll(async () => {
    stack = await NpmStart.start()
  }, 250_000)
  afterAll(async () => {
    squatter?.close()
    await stack?.dispose()
  }, 40_000)

  it('gives up after 3 restarts in 60 s (1, 2, 4 s apart) and stops the edge, exit 1', async () => {
    const killedPid = await stack.processOf(GPU_SERVICE)
    process.kill(killedPid, 'SIGKILL')
    await stack.until(() => stack.output.includes('restarting it in 1 s'), 10_000, 'the report')
    // Something else takes the port (and answers nothing): every restart fails to listen.
    const server = createServer((socket) => socket.destroy())
    squatter = server
    await new Promise<void>((resolve) => server.listen(stack.backendPort, '127.0.0.1', resolve))
    const startedAt = Date.now()
    expect(await stack.exited).toBe(1)
    const gaveUpMs = Date.now() - startedAt

    const lines = stack.output.split('\n').filter((line) => line.startsWith('npm start: '))
    expect(lines[0]).toBe(
      `npm start: the gpu-service (pid ${killedPid}) was killed by SIGKILL; restarting it in 1 s ` +
        '(restart 1 of at most 3 per 60 s).',
    )
    const refused = expect.stringMatching(
      /^npm start: the gpu-service did not come back: http:\/\/127\.0\.0\.1:\d+\/readyz: process exited \(code \d+\)\.$/,
    )
    expect(lines.slice(1)).toEqual([
      refused,
      'npm start: the gpu-service did not start; restarting it in 2 s (restart 2 of at most 3 per 60 s).',
      refused,
      'npm start: the gpu-service did not start; restarting it in 4 s (restart 3 of at most 3 per 60 s).',
      refused,
      'npm start: the gpu-service did not start, after 3 restarts within 60 s; stopping the edge.',
    ])
    expect(stack.output).toContain(`http://127.0.0.1:${stack.backendPort}/readyz: process exited`)
    expect(gaveUpMs).toBeGreaterThan(6_000)
    expect(stack.output).toMatch(/^Stopped\.$/m)
    expect(stack.output).not.toMatch(/^\s+at /m)
    await assertPortFree(stack.edgePort, 'edge')
  }, 120_000)
})
