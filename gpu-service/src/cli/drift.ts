// `npm run drift`: measures how far the heavy features reused between heavy calls drift from fresh ones,
// and what that does to the light net's x0 (gpu-service/src/eval/drift.ts), for heavy intervals K.
// Writes drift.json (the figures, with machine, date, command and model) and drift.png (the plot) into
// --out, and prints a summary table. Exit status 64 (EX_USAGE, sysexits.h) for a bad command line, 1 for
// any other failure.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import cliProgress from 'cli-progress'
import { z } from 'zod'
import { MAX_SEED, MAX_STEPS } from '../../../shared/sampling-options.ts'
import { gitRevision, machineDescription } from '../bench/machine.ts'
import {
  type DriftInterval,
  type DriftSettings,
  measureDrift,
  type Spread,
  tensorValues,
} from '../eval/drift.ts'
import { renderDriftPng } from '../eval/drift-plot.ts'
import { loadModelPair } from '../onnx/model-pair.ts'
import { parseSessionConfig } from '../service/config.ts'
import { parseFlags, runCli } from './cli-flags.ts'

const USAGE = `usage: npm run drift -- [options]
  --trajectories N   images followed per K, classes spread evenly (default 256)
  --steps N          sampler steps (default 50)
  --k 2,4,8          heavy intervals K to measure
  --seed N           unsigned 32-bit seed of the trajectories (default 0)
  --models DIR       model folder (default gpu-service/models); guidance is its recommended one
  --threads N        ONNX Runtime intra-op threads (default: DUALRATE_INTRA_OP_THREADS, else one per core)
  --out DIR          where drift.json and drift.png go (default docs/eval)
  -h, --help         this text`

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `expected at least ${min}`).max(max, `expected at most ${max}`))

const argsSchema = z.strictObject({
  trajectories: wholeNumber(1, 100_000).default(256),
  steps: wholeNumber(1, MAX_STEPS).default(50),
  k: z
    .string()
    .regex(/^\d+(,\d+)*$/, 'expected comma-separated whole numbers, e.g. 2,4,8')
    .transform((text) => text.split(',').map(Number))
    .pipe(z.array(z.number().min(1, 'expected K >= 1').max(MAX_STEPS)))
    .default([2, 4, 8]),
  seed: wholeNumber(0, MAX_SEED).default(0),
  models: z.string().min(1).default('gpu-service/models'),
  threads: wholeNumber(1, 256).optional(),
  out: z.string().min(1).default('docs/eval'),
  help: z.boolean().default(false),
})

const FLAGS = {
  trajectories: { type: 'string' },
  steps: { type: 'string' },
  k: { type: 'string' },
  seed: { type: 'string' },
  models: { type: 'string' },
  threads: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** drift.json: the figures and where they come from. */
export interface DriftReport {
  modelId: string
  date: string
  machine: string
  revision: string
  command: string
  seconds: number
  settings: DriftSettings & { classes: string[] }
  /** What each measure is, in words, so the file stands alone. */
  measures: Record<string, string>
  intervals: DriftInterval[]
}

const MEASURES = {
  featureCosine:
    'cosine similarity of the heavy features the light net reuses on the step and the features the heavy encoder gives on that step, per image over its flattened feature rows',
  featureRelL2: '||f_reused - f_fresh|| / ||f_fresh||, per image',
  x0RelL2:
    "||x0_reused - x0_fresh|| / ||x0_fresh|| of the light net's x0 with the reused and with the fresh features, after guidance and before the clip, per image",
  x0RelL2Clipped: 'the same after the clip to manifest.schedule.clipX0 (the x0 the posterior uses)',
  spread:
    'mean, sample std and 10th/50th/90th percentiles over trajectories; reusedSteps pools every (trajectory, non-heavy step)',
  staleness: 'steps since the heavy call whose features the step uses; 0 on heavy steps',
} as const

const pm = ({ mean, std }: Spread, digits: number) =>
  `${mean.toFixed(digits)} ± ${std.toFixed(digits)}`

/** One row per K: the reused steps pooled, and the step where reuse moves x0 most on average. */
function summaryTable(intervals: readonly DriftInterval[]): string {
  const rows = intervals.map(({ heavyEvery, steps, reusedSteps }) => {
    if (!reusedSteps) return `| ${heavyEvery} | every step heavy | | | | |`
    const worst = steps.reduce((a, b) => (b.x0RelL2.mean > a.x0RelL2.mean ? b : a))
    return (
      `| ${heavyEvery} | ${pm(reusedSteps.featureCosine, 4)} | ${pm(reusedSteps.featureRelL2, 3)} | ` +
      `${pm(reusedSteps.x0RelL2, 4)} | ${pm(reusedSteps.x0RelL2Clipped, 4)} | ` +
      `${worst.step} (t = ${worst.t.toFixed(2)}, ${worst.staleness} stale): ${worst.x0RelL2.mean.toFixed(4)} |`
    )
  })
  return [
    '| K | feature cosine | feature rel-L2 | x0 rel-L2 | x0 rel-L2, clipped | largest mean x0 rel-L2 at step |',
    '| ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
  ].join('\n')
}

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, FLAGS, argsSchema)
  if (args.help) {
    console.log(USAGE)
    return
  }
  const session = parseSessionConfig(process.env)
  if (args.threads !== undefined) session.intraOpThreads = args.threads
  const pair = await loadModelPair(args.models, session)
  const { manifest } = pair
  const settings: DriftSettings = {
    trajectories: args.trajectories,
    steps: args.steps,
    heavyIntervals: args.k,
    guidance: manifest.recommended.guidance,
    seed: args.seed,
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{label} {bar} {value}/{total} steps | {duration_formatted} | ETA {eta_formatted}',
      barsize: 30,
      hideCursor: process.stderr.isTTY ? true : null,
      noTTYOutput: !process.stderr.isTTY,
      notTTYSchedule: 10_000,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  )
  const totalSteps = args.k.length * args.steps
  const started = performance.now()
  let measurements: Awaited<ReturnType<typeof measureDrift>>
  try {
    bar.start(totalSteps, 0, { label: `K=${args.k[0]}` })
    let done = 0
    measurements = await measureDrift(
      { models: pair.models, featureValues: tensorValues },
      manifest,
      settings,
      ({ heavyEvery }) => bar.update(++done, { label: `K=${heavyEvery}` }),
    )
  } finally {
    bar.stop()
    await pair.release()
  }
  const seconds = (performance.now() - started) / 1000
  const intervals = measurements.map(({ interval }) => interval)
  const report: DriftReport = {
    modelId: manifest.modelId,
    date: new Date().toISOString(),
    machine: machineDescription({ session }),
    revision: gitRevision(),
    command: argv.length > 0 ? `npm run drift -- ${argv.join(' ')}` : 'npm run drift',
    seconds,
    settings: { ...settings, classes: manifest.classes },
    measures: MEASURES,
    intervals,
  }
  await mkdir(args.out, { recursive: true })
  await writeFile(join(args.out, 'drift.json'), `${JSON.stringify(report, null, 2)}\n`)
  const title = `Feature drift of ${manifest.modelId}: ${settings.trajectories} trajectories, ${settings.steps} steps, guidance ${settings.guidance}`
  await writeFile(join(args.out, 'drift.png'), await renderDriftPng(intervals, title))
  console.log(
    `\n${summaryTable(intervals)}\n\nReused steps pooled, mean ± std over trajectories and steps; ` +
      `${settings.trajectories} trajectories, ${settings.steps} steps, ${seconds.toFixed(0)} s. ` +
      `Wrote ${join(args.out, 'drift.json')} and ${join(args.out, 'drift.png')}.`,
  )
}

runCli('drift', USAGE, () => main(process.argv.slice(2)))
