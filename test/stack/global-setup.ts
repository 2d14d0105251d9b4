// The `stack` test project runs against one real local stack started the way a user starts it: `npm
// start`'s script (edge/scripts/start.ts) on free ports, with a fresh wrangler state folder and its own
// dev folder (holding copies of the development secrets, so .dev.vars keeps its contents). The test
// files read what it printed and wrote through inject('stack'). Teardown is a test of its own: Ctrl-C
// (SIGINT) must stop both processes, exit 0 and free both ports, or the run fails.
import { spawn } from 'node:child_process'
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { localStackFileSchema } from '../../client/cli/connection.ts'
import { writeDevVars } from '../../edge/scripts/dev-vars.ts'
import { assertPortFree, freePort } from '../../edge/scripts/local-stack.ts'

export interface StackUnderTest {
  apiBase: string
  apiKey: string
  backendUrl: string
  edgePort: number
  /** DUALRATE_DEV_DIR of the stack: its local.json. */
  devDir: string
  /** What `npm start` printed up to its banner. */
  startOutput: string
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackUnderTest
  }
}

const READY_LINE = 'Dual-Rate is running.'
const START_TIMEOUT_MS = 240_000
const STOP_TIMEOUT_MS = 30_000

export default async function setup(project: TestProject) {
  await writeDevVars()
  const devDir = await mkdtemp(join(tmpdir(), 'dualrate-stack-dev-'))
  const statePath = await mkdtemp(join(tmpdir(), 'dualrate-stack-state-'))
  for (const secret of ['hmac-secret', 'result-key-secret']) {
    await copyFile(join('.dev', secret), join(devDir, secret))
  }
  const edgePort = await freePort()
  const backendPort = await freePort()
  const child = spawn(
    process.execPath,
    [
      'edge/scripts/start.ts',
      `--edge-port=${edgePort}`,
      `--gpu-service-port=${backendPort}`,
      `--state=${statePath}`,
    ],
    { env: { ...process.env, DUALRATE_DEV_DIR: devDir, NO_COLOR: '1' } },
  )
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))

  /** Ctrl-C, as a user stops it (start.ts then stops its own children); SIGKILL if that hangs. */
  const stop = async () => {
    child.kill('SIGINT')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    const code = await exited
    clearTimeout(timer)
    await rm(devDir, { recursive: true, force: true })
    await rm(statePath, { recursive: true, force: true })
    return code
  }
  try {
    await Promise.race([
      until(() => output.includes(READY_LINE), START_TIMEOUT_MS),
      exited.then((code) => {
        throw new Error(`npm start exited (${code}) before it was ready`)
      }),
    ])
    // The banner is printed in one write after local.json is written.
    await until(() => output.includes('Ctrl-C stops both.'), 5_000)
  } catch (error) {
    await stop()
    throw new Error(`${(error as Error).message}\n${output.slice(-4000)}`)
  }
  const local = localStackFileSchema.parse(
    JSON.parse(await readFile(join(devDir, 'local.json'), 'utf8')),
  )
  project.provide('stack', {
    ...local,
    backendUrl: `http://127.0.0.1:${backendPort}`,
    edgePort,
    devDir,
    startOutput: output,
  })

  return async function stopWithCtrlC() {
    const code = await stop()
    if (code !== 0) {
      throw new Error(
        `npm start did not stop cleanly on Ctrl-C (exit ${code}):\n${output.slice(-4000)}`,
      )
    }
    if (!output.includes('Stopped.')) throw new Error('npm start did not say "Stopped."')
    await assertPortFree(edgePort, 'edge')
    await assertPortFree(backendPort, 'gpu-service')
  }
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
