// `npm run calibrate`: measures what reusing stale features costs at each step of the model's recommended
// step count (eval/reuse-cost.ts), places every budget of N heavy calls where reuse hurts most
// (sampler/calibrated-schedule.ts), writes the table and placements to docs/eval/reuse-cost.json, and with
// --record stores the placements in the manifest, where `heavySchedule: {"calls": N}` finds them.
// Exit status 64 (EX_USAGE) for a bad command line, 1 for any other failure.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { SingleBar } from 'cli-progress'
import { z } from 'zod'
import { MAX_COUNT } from '../../../shared/sampling-options.ts'
import { measureReuseCost } from '../eval/reuse-cost.ts'
import { loadModelPair, MANIFEST_FILE } from '../onnx/model-pair.ts'
import { placeHeavyCalls, scheduleCost } from '../sampler/calibrated-schedule.ts'
import { parseSessionConfig } from '../service/config.ts'
import { parseFlags, runCli } from './cli-flags.ts'
import { UsageError } from './usage-error.ts'

const USAGE = `usage: npm run calibrate -- [options]
  --models DIR          model folder (default gpu-service/models)
  --out DIR             where reuse-cost.json goes (default docs/eval)
  --steps N             step count to calibrate (default: manifest.recommended.steps)
  --trajectories N      reference trajectories, spread over the classes (default 256)
  --batch N             images per sampler call (default 32)
  --guidance W          classifier-free guidance (default: manifest.recommended.guidance)
  --seed N              seed of the trajectories (default 0)
  --record              store the placements in the manifest (heavyPlacements)`

const argsSchema = z.strictObject({
  models: z.string().default('gpu-service/models'),
  out: z.string().default('docs/eval'),
  steps: z.coerce.number().int().min(2).max(1000).optional(),
  trajectories: z.coerce.number().int().min(1).default(256),
  batch: z.coerce.number().int().min(1).max(MAX_COUNT).default(32),
  guidance: z.coerce.number().min(0).max(20).optional(),
  seed: z.coerce.number().int().min(0).default(0),
  record: z.boolean().default(false),
  help: z.boolean().default(false),
})

const FLAGS = {
  models: { type: 'string' },
  out: { type: 'string' },
  steps: { type: 'string' },
  trajectories: { type: 'string' },
  batch: { type: 'string' },
  guidance: { type: 'string' },
  seed: { type: 'string' },
  record: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, FLAGS, argsSchema)
  if (args.help) {
    console.log(USAGE)
    return
  }
  const session = parseSessionConfig(process.env)
  const pair = await loadModelPair(args.models, session)
  try {
    const { manifest } = pair
    if (manifest.supports) {
      throw new UsageError(
        `${manifest.modelId} is distilled for fixed heavy placements; calibrate its teacher instead`,
      )
    }
    const steps = args.steps ?? manifest.recommended.steps
    const guidance = args.guidance ?? manifest.recommended.guidance
    const started = performance.now()
    const bar = new SingleBar({ format: 'calibrate [{bar}] {value}/{total} trajectories | {eta}s' })
    bar.start(args.trajectories, 0)
    const table = await measureReuseCost(
      pair.models,
      manifest,
      {
        steps,
        trajectories: args.trajectories,
        batch: args.batch,
        guidance,
        seed: args.seed,
        maxAge: steps - 1,
      },
      (done) => bar.update(done),
    )
    bar.stop()
    const cost = (step: number, age: number) => table.stateRms.mean[step]?.[age - 1] ?? 0
    const placements = Array.from({ length: steps }, (_, i) => placeHeavyCalls(cost, steps, i + 1))
    const uniform = (every: number) =>
      Array.from({ length: Math.ceil(steps / every) }, (_, i) => i * every)
    const comparison = [1, 2, 3, 4, 6, 8, 12, 16]
      .filter((every) => every <= steps)
      .map((every) => {
        const calls = Math.ceil(steps / every)
        return {
          every,
          calls,
          uniformCost: scheduleCost(cost, steps, uniform(every)),
          calibratedCost: scheduleCost(cost, steps, placements[calls - 1] as number[]),
          calibrated: placements[calls - 1],
        }
      })
    const report = {
      modelId: manifest.modelId,
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, onnxruntime-node ${session.device}`,
      seconds: (performance.now() - started) / 1000,
      command: ['npm run calibrate', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' '),
      settings: { steps, guidance, trajectories: args.trajectories, seed: args.seed },
      costMetric:
        'RMS per pixel of the DDPM posterior mean of x_tNext with stale minus fresh features',
      comparison,
      placements,
      table,
    }
    await mkdir(args.out, { recursive: true })
    const outFile = join(args.out, 'reuse-cost.json')
    await writeFile(outFile, `${JSON.stringify(report)}\n`)
    console.log('K   calls  uniform cost  calibrated cost  calibrated placement')
    for (const row of comparison) {
      console.log(
        `${String(row.every).padEnd(4)}${String(row.calls).padEnd(7)}${row.uniformCost.toFixed(4).padEnd(14)}` +
          `${row.calibratedCost.toFixed(4).padEnd(17)}[${row.calibrated?.join(',')}]`,
      )
    }
    console.log(`wrote ${outFile} in ${report.seconds.toFixed(0)} s`)
    if (args.record) {
      const manifestPath = join(args.models, MANIFEST_FILE)
      const raw = JSON.parse(await readFile(manifestPath, 'utf8'))
      raw.heavyPlacements = { ...raw.heavyPlacements, [String(steps)]: placements }
      await writeFile(manifestPath, `${JSON.stringify(raw, null, 2)}\n`)
      console.log(`recorded ${steps}-step placements for 1..${steps} calls in ${manifestPath}`)
    }
  } finally {
    await pair.release()
  }
}

runCli('calibrate', USAGE, () => main(process.argv.slice(2)))
