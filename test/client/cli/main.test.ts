// The `dual-rate` bin as a user runs it: a child process talking to the fake API on loopback.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { freePort } from '../../../edge/scripts/local-stack.ts'
import { DEFAULT_MODEL_ID, STUDENT_MODEL_ID } from '../../edge/helpers/model-catalog.ts'
import {
  FAKE_API_KEY,
  type FakeApi,
  type FakeApiOptions,
  JOB_ID,
  startFakeApi,
  TINY_PNG,
} from '../helpers/fake-api.ts'
import { runCli, STEPS_TOO_BIG } from '../helpers/run-cli.ts'

let api: FakeApi | undefined
let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dualrate-cli-'))
})
afterEach(async () => {
  await api?.close()
  api = undefined
  await rm(dir, { recursive: true, force: true })
})

// No .dev/local.json of the developer's: an empty dev dir.
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { devDir: dir, env })

async function withApi(options: FakeApiOptions = {}) {
  api = await startFakeApi(options)
  return { DUALRATE_API_BASE: api.url, DUALRATE_API_KEY: FAKE_API_KEY }
}

describe('dual-rate generate', () => {
  it('writes the PNG, prints the cached result URL, and reports progress and cost on stderr', async () => {
    const env = await withApi({ steps: 8, heavyEvery: 4 })
    const output = join(dir, 'sneaker.png')
    const args = [...'generate --class Sneaker --heavy-every 4 --seed 7 -o'.split(' '), output]
    const { code, stdout, stderr } = await cli(args, env).finished
    expect(code).toBe(0)
    expect(stdout).toBe(`${api?.url}/v1/results/${JOB_ID}.png\n`)
    expect(await readFile(output)).toEqual(TINY_PNG)
    expect(stderr).toContain(
      `Sneaker #7: 8 steps, heavy every 4, guidance 2, seed 7, model ${DEFAULT_MODEL_ID}`,
    )
    expect(stderr).toMatch(/8\/8 steps \| heavy encoder 2x/)
    expect(stderr).toContain(`wrote ${output}`)
    expect(stderr).toContain('heavy encoder: 2 calls in 8 steps (every 4)')
    expect(stderr).toMatch(/cost: 2 heavy \+ 8 light calls, .* \(\d+ % of heavy-every-step's /)
    const body = JSON.parse(api?.requests.find((r) => r.method === 'POST')?.body ?? '')
    expect(body).toEqual({
      class: 'Sneaker',
      heavySchedule: { every: 4 },
      seed: 7,
    })
  })

  it("sends --model as the request's model and reports the model the job runs on", async () => {
    const env = await withApi({ steps: 8, heavyEvery: 2 })
    const output = join(dir, 'student.png')
    const args = ['generate', '--class', 'Sneaker', '--model', STUDENT_MODEL_ID, '-o', output]
    const { code, stderr } = await cli(args, env).finished
    expect(code).toBe(0)
    const body = JSON.parse(api?.requests.find((r) => r.method === 'POST')?.body ?? '')
    expect(body).toEqual({ class: 'Sneaker', model: STUDENT_MODEL_ID })
    expect(stderr).toContain(`, model ${STUDENT_MODEL_ID} (job `)
    expect(stderr).toMatch(/cost: 4 heavy \+ 8 light calls, /)
  })

  it('sends --heavy-calls as calibrated calls and reports the heavy calls the run made', async () => {
    const env = await withApi({ decidedHeavySteps: [0, 9, 17, 26, 35, 42, 47] })
    const args = ['generate', '--class', 'Sneaker', '--steps', '50', '--heavy-calls', '7']
    const { code, stderr } = await cli([...args, '-o', join(dir, 'calls.png')], env).finished
    expect(code).toBe(0)
    const body = JSON.parse(api?.requests.find((r) => r.method === 'POST')?.body ?? '')
    expect(body).toEqual({ class: 'Sneaker', steps: 50, heavySchedule: { calls: 7 } })
    expect(stderr).toContain('Sneaker #7: 50 steps, heavy 7 calibrated calls, guidance 2, seed 7')
    expect(stderr).toMatch(/50\/50 steps \| heavy encoder 7x/)
    expect(stderr).toContain('heavy encoder: 7 calls in 50 steps (7 calibrated calls)')
  })

  it('sends --adaptive as an adaptive schedule and reports the heavy calls it decided on', async () => {
    const env = await withApi({ steps: 50, decidedHeavySteps: [0, 2, 5, 11, 20, 34] })
    const args = ['generate', '--class', 'Sneaker', '--adaptive', '0.05']
    const { code, stderr } = await cli([...args, '-o', join(dir, 'adaptive.png')], env).finished
    expect(code).toBe(0)
    const body = JSON.parse(api?.requests.find((r) => r.method === 'POST')?.body ?? '')
    expect(body).toEqual({ class: 'Sneaker', heavySchedule: { adaptive: { tolerance: 0.05 } } })
    expect(stderr).toMatch(/50\/50 steps \| heavy encoder 6x/)
    expect(stderr).toContain('heavy encoder: 6 calls in 50 steps (adaptive, tolerance 0.05)')
    expect(stderr).toMatch(/cost: 6 heavy \+ 50 light calls, /)
  })

  it('refuses two heavy schedules at once with exit status 64, naming both flags', async () => {
    const env = await withApi()
    const { code, stderr } = await cli(
      ['generate', '--class', 'Sneaker', '--heavy-every', '4', '--adaptive', '0.05'],
      env,
    ).finished
    expect(code).toBe(64)
    expect(stderr).toBe(
      'error: generate takes one heavy schedule at most, not --heavy-every and --adaptive ' +
        '(--heavy-every K, --heavy-calls N or --adaptive TOL)\n',
    )
    const notNumber = await cli(['generate', '--class', '7', '--heavy-calls', 'seven'], env)
      .finished
    expect(notNumber.code).toBe(64)
    expect(notNumber.stderr).toBe('error: --heavy-calls must be a number, not "seven"\n')
    expect(api?.requests.filter((request) => request.method === 'POST')).toEqual([])
  })

  it('says when the result came from cache', async () => {
    const env = await withApi({ cached: true })
    const { code, stderr } = await cli(['generate', '--class', '7', '-o', join(dir, 'x.png')], env)
      .finished
    expect(code).toBe(0)
    expect(stderr).toContain('served from cache: no GPU work')
  })

  it('cancels the job on the server on Ctrl-C and exits 130', async () => {
    const env = await withApi({ steps: 400, stepDelayMs: 25 })
    const run = cli(['generate', '--class', 'Sneaker', '-o', join(dir, 'x.png')], env)
    await until(() => api?.requests.some((request) => request.path.endsWith('/events')) ?? false)
    await new Promise((resolve) => setTimeout(resolve, 200))
    run.child.kill('SIGINT')
    const { code, stderr } = await run.finished
    expect(code).toBe(130)
    expect(api?.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: `/v1/generations/${JOB_ID}/cancel`,
    })
    expect(stderr).toMatch(/canceled after \d+ of 400 steps \(status canceled\)/)
  })

  it('prints an API error as its problem title, detail and fields, without a stack trace', async () => {
    const env = await withApi({
      createProblem: STEPS_TOO_BIG,
    })
    const { code, stdout, stderr } = await cli(
      ['generate', '--class', 'Sneaker', '--steps', '5000'],
      env,
    ).finished
    expect(code).toBe(1)
    expect(stdout).toBe('')
    expect(stderr).toBe(
      'error: Invalid request (HTTP 400)\n  1 invalid field\n' +
        '  - steps: Too big: expected number to be <=1000\n',
    )
  })

  it('prints the fields once when the detail only joins them (as the edge words a validation problem)', async () => {
    const message = '{"calls": N} needs a calibrated placement; this model has them for 50 steps'
    const env = await withApi({
      createProblem: {
        ...STEPS_TOO_BIG,
        detail: `heavySchedule: ${message}`,
        errors: [{ field: 'heavySchedule', message }],
      },
    })
    const args = ['generate', '--class', 'Sneaker', '--steps', '40', '--heavy-calls', '7']
    const { code, stderr } = await cli(args, env).finished
    expect(code).toBe(1)
    expect(stderr).toBe(`error: Invalid request (HTTP 400)\n  - heavySchedule: ${message}\n`)
  })

  it('explains a missing or wrong key', async () => {
    const env = await withApi()
    const { code, stderr } = await cli(['generate', '--class', 'Sneaker'], {
      ...env,
      DUALRATE_API_KEY: 'dr_wrong',
    }).finished
    expect(code).toBe(1)
    expect(stderr).toBe(
      'error: Unauthorized (HTTP 401)\n' +
        '  Pass --api-key, set DUALRATE_API_KEY, or use the key `npm start` printed.\n',
    )
  })

  it('says when the API cannot be reached', async () => {
    const port = await freePort()
    const { code, stderr } = await cli(['models', '--api-base', `http://127.0.0.1:${port}`])
      .finished
    expect(code).toBe(1)
    expect(stderr).toBe(
      `error: cannot reach the API at http://127.0.0.1:${port} (ECONNREFUSED)\n` +
        '  Is the stack running? Start it with `npm start`, or pass --api-base.\n',
    )
  })

  it('rejects a missing class or a non-numeric option with exit status 64', async () => {
    const env = await withApi()
    const missing = await cli(['generate'], env).finished
    expect(missing.code).toBe(64)
    expect(missing.stderr).toBe(
      'error: generate needs --class (a class name or index; see `models`)\n',
    )
    const notNumber = await cli(['generate', '--class', '7', '--seed', 'seven'], env).finished
    expect(notNumber.stderr).toBe('error: --seed must be a number, not "seven"\n')
    expect(api?.requests.filter((request) => request.method === 'POST')).toEqual([])
  })
})

describe('dual-rate models, status, cancel', () => {
  it('lists every model, the default marked, with classes, per-call costs and cost per image', async () => {
    const env = await withApi()
    const { code, stdout } = await cli(['models'], env).finished
    expect(code).toBe(0)
    const [first = '', second = ''] = stdout.split('\n\n')
    expect(first).toMatch(
      new RegExp(`^model {5}${DEFAULT_MODEL_ID} \\(default\\), 28x28, 1 channel$`, 'm'),
    )
    expect(first).toMatch(/^classes {3}0 T-shirt\/top, 1 Trouser, .*7 Sneaker/m)
    expect(first).toMatch(/^limits {4}count <= 64, steps <= 1000, guidance <= 20$/m)
    expect(first).toMatch(/^calls {5}calibrated heavy placements at 50 steps \(--heavy-calls N\)$/m)
    // The default model recommends 5 calibrated heavy calls: 5 x 321 + 50 x 17.7 MMAC.
    expect(first).toMatch(/^defaults {2}50 steps, heavy 5 calibrated calls, guidance 1$/m)
    expect(first).toMatch(
      /^cost {6}heavy 321 MMAC, light 17.7 MMAC per image row and call; 2.49 GMAC per image at the defaults$/m,
    )
    expect(second).toMatch(new RegExp(`^model {5}${STUDENT_MODEL_ID}, 28x28, 1 channel$`, 'm'))
    expect(second).toMatch(new RegExp(`^teacher {3}${DEFAULT_MODEL_ID}$`, 'm'))
    expect(second).not.toMatch(/^calls /m)
    expect(second).toMatch(/^defaults {2}8 steps, heavy every 2, guidance 1$/m)
    expect(second).toMatch(
      /^supports {2}steps 8; at 8 steps heavy at \[0,2,4,6\] or \[0\]; guidance 1$/m,
    )
  })

  it('names --model and the heavy-schedule flags in its help', async () => {
    const { code, stdout } = await cli(['--help']).finished
    expect(code).toBe(0)
    expect(stdout).toMatch(/^ {2}generate --class NAME\|INDEX \[--model ID\]/m)
    expect(stdout).toMatch(/^ {11}\[--heavy-every K \| --heavy-calls N \| --adaptive TOL\]/m)
    expect(stdout).toMatch(/^ {2}--model ID {7}a model id as `models` lists it/m)
    expect(stdout).toMatch(/^ {2}--heavy-calls N {2}N heavy calls where the model's calibration/m)
    expect(stdout).toMatch(/^ {2}--adaptive TOL {3}the run decides its heavy steps while sampling/m)
  })

  it('shows a generation and cancels it', async () => {
    const env = await withApi()
    const status = await cli(['status', JOB_ID], env).finished
    expect(status.stdout).toMatch(/^status {4}running$/m)
    const canceled = await cli(['cancel', JOB_ID], env).finished
    expect(canceled.code).toBe(0)
    expect(canceled.stdout).toMatch(/^status {4}canceled$/m)
  })
})

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
