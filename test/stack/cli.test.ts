// The `dual-rate` CLI against the real stack, finding it through the local.json `npm start` wrote.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode } from 'fast-png'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { runCli } from '../client/helpers/run-cli.ts'

const stack = inject('stack')
let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dualrate-stack-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const cli = (args: string[]) => runCli(args, { devDir: stack.devDir })

/** Sum of a counter's samples on the gpu-service's /metrics whose labels match. */
async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${stack.backendUrl}/metrics`)).text()
  return text
    .split('\n')
    .filter((line) => line.startsWith(name) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
}

/** Runs the gpu-service ended early: cancelled by DELETE, or by the edge closing the stream first. */
const stoppedRuns = async () =>
  (await metric('dualrate_runs_total', 'outcome="cancelled"')) +
  (await metric('dualrate_runs_total', 'outcome="disconnected"'))

describe('dual-rate against the local stack', () => {
  it('generates a Sneaker: a 28x28 PNG on disk, its cached URL on stdout', async () => {
    const output = join(dir, 'sneaker.png')
    const { code, stdout, stderr } = await cli([
      ...'generate --class Sneaker --heavy-every 4 --seed 70 --steps 20 -o'.split(' '),
      output,
    ]).finished
    expect(stderr).toMatch(/20\/20 steps \| heavy encoder 5x/)
    expect(code).toBe(0)
    const url = stdout.trim()
    expect(url).toMatch(new RegExp(`^${stack.apiBase}/v1/results/[0-9a-f]{64}\\.png$`))
    const image = decode(await readFile(output))
    expect([image.width, image.height, image.channels]).toEqual([28, 28, 1])
    const served = new Uint8Array(await (await fetch(url)).arrayBuffer())
    expect(served).toEqual(new Uint8Array(await readFile(output)))

    const again = await cli([
      'generate',
      '--class=Sneaker',
      '--heavy-every=4',
      '--seed=70',
      '--steps=20',
      `--output=${join(dir, 'again.png')}`,
    ]).finished
    expect(again.stderr).toContain('served from cache: no GPU work')
    expect(again.stdout.trim()).toBe(url)
  })

  it('cancels the job on Ctrl-C: the gpu-service stops the run', async () => {
    const stoppedBefore = await stoppedRuns()
    const stepsBefore = await metric('dualrate_steps_total')
    const run = cli([
      'generate',
      '--class',
      'Coat',
      '--steps',
      '1000',
      // Guidance 1: the fastest steps, where the edge's job once fell behind the backend's stream and
      // took the cancel only after the run had finished.
      '--guidance',
      '1',
      '--seed',
      '71',
    ])
    const deadline = Date.now() + 60_000
    // Well into the run, when the backend is ahead of the edge's job.
    while ((await metric('dualrate_steps_total')) < stepsBefore + 200) {
      if (Date.now() > deadline) throw new Error('the run never got going')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    run.child.kill('SIGINT')
    const { code, stderr } = await run.finished
    expect(code).toBe(130)
    expect(stderr).toMatch(/canceled after \d+ of 1000 steps \(status canceled\)/)
    await expect.poll(stoppedRuns).toBe(stoppedBefore + 1)
    expect(await metric('dualrate_active_runs')).toBe(0)
    expect((await metric('dualrate_steps_total')) - stepsBefore).toBeLessThan(1000)
  })
})
