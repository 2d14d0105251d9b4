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
      // 16 images a step: a run long enough that the cancel lands before its end even on a machine
      // whose two cores also run the edge, the CLI and other test files (on such a CI machine a
      // one-image run at guidance 1 ended 4 s after the interrupt, before the cancel got through).
      // The fast-steps case, a cancel taken while the job reads a buffered backend stream, is
      // specified deterministically in test/edge/jobs/interleavings.test.ts.
      '--count',
      '16',
      '--guidance',
      '1',
      '--seed',
      '71',
    ])
    const deadline = Date.now() + 60_000
    // The run is going on the gpu-service.
    while ((await metric('dualrate_steps_total')) < stepsBefore + 50) {
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
