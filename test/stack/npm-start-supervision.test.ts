// `npm start` when one of its processes dies: a killed gpu-service is reported in one line and started
// again while the edge keeps serving; a dead edge stops the stack cleanly with exit 1. Its own `npm
// start` on free ports (a temporary state and dev folder), beside the project's shared one. The
// restart budget itself (3 per 60 s, doubling delays) is checked as a unit.
import { type ChildProcess, spawn } from 'node:child_process'
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
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

describe('npm start supervision', () => {
  let child: ChildProcess
  let output = ''
  let exited: Promise<number | null>
  let devDir: string
  let statePath: string
  let edgePort: number
  let backendPort: number

  const until = async (condition: () => boolean, timeoutMs: number, what: string) => {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`${what} not seen:\n${output.slice(-3000)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const processOf = async (pattern: RegExp) => {
    const found = (await children(child.pid as number)).find((entry) =>
      pattern.test(entry.commandLine),
    )
    if (!found) throw new Error(`no child process matches ${pattern}`)
    return found.pid
  }

  beforeAll(async () => {
    devDir = await mkdtemp(join(tmpdir(), 'dualrate-supervision-dev-'))
    statePath = await mkdtemp(join(tmpdir(), 'dualrate-supervision-state-'))
    for (const secret of ['hmac-secret', 'result-key-secret']) {
      await copyFile(join('.dev', secret), join(devDir, secret))
    }
    edgePort = await freePort()
    backendPort = await freePort()
    child = spawn(
      process.execPath,
      [
        'edge/scripts/start.ts',
        `--edge-port=${edgePort}`,
        `--gpu-service-port=${backendPort}`,
        `--state=${statePath}`,
      ],
      { env: { ...process.env, DUALRATE_DEV_DIR: devDir, NO_COLOR: '1' } },
    )
    child.stdout?.on('data', (chunk) => (output += chunk))
    child.stderr?.on('data', (chunk) => (output += chunk))
    exited = new Promise((resolve) => child.once('exit', resolve))
    await until(() => output.includes('Ctrl-C stops both.'), 240_000, 'the banner')
  }, 250_000)

  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000))])
    }
    await rm(devDir, { recursive: true, force: true })
    await rm(statePath, { recursive: true, force: true })
  }, 40_000)

  it('restarts a killed gpu-service, says so in one line, and the edge serves again', async () => {
    const killedPid = await processOf(/gpu-service\/src\/service\/main\.ts/)
    process.kill(killedPid, 'SIGKILL')
    await until(() => output.includes('is back'), 120_000, 'the restart')
    expect(output).toContain(
      `npm start: the gpu-service (pid ${killedPid}) was killed by SIGKILL; restarting it in 1 s ` +
        '(restart 1 of at most 3 per 60 s).',
    )
    const back = /^npm start: the gpu-service is back \(pid (\d+), (http:\S+)\)\.$/m.exec(output)
    expect(back?.[2]).toBe(`http://127.0.0.1:${backendPort}`)
    expect(Number(back?.[1])).not.toBe(killedPid)
    expect((await fetch(`http://127.0.0.1:${backendPort}/readyz`)).status).toBe(200)

    const { apiKey, apiBase } = localStackFileSchema.parse(
      JSON.parse(await readFile(join(devDir, 'local.json'), 'utf8')),
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
    expect(output).not.toContain('ESRCH')
    expect(output).not.toMatch(/^\s+at /m)
    expect(child.exitCode).toBe(null)
  }, 150_000)

  it('stops everything with exit 1 and one clear line when the edge dies', async () => {
    // The wrangler process itself, not its group: workerd is left behind and must be stopped too.
    const edgePid = await processOf(/node_modules\/\.bin\/wrangler dev/)
    process.kill(edgePid, 'SIGKILL')
    expect(await exited).toBe(1)
    expect(output).toContain(
      `npm start: the edge (wrangler dev, pid ${edgePid}) was killed by SIGKILL; stopping the gpu-service.`,
    )
    expect(output).toMatch(/^Stopped\.$/m)
    expect(output).not.toContain('ESRCH')
    expect(output).not.toMatch(/^\s+at /m)
    await assertPortFree(edgePort, 'edge')
    await assertPortFree(backendPort, 'gpu-service')
  }, 60_000)
})
