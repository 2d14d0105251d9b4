// `npm run frontier`: the quality-cost frontier of the default model (issue 8): FD and class accuracy
// against MACs per image for uniform K, the calibrated placement with as many heavy calls, and adaptive
// tolerances, over several seeds; writes docs/eval/frontier.json, frontier.png and frontier.md.
// Exit status 64 (EX_USAGE) for a bad command line, 1 for any other failure.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { MAX_ADAPTIVE_TOLERANCE, MAX_COUNT } from '../../../shared/sampling-options.ts'
import { loadEvaluator } from '../eval/classifier.ts'
import {
  cheapestWithin,
  compareBudgets,
  type EarlierFrontier,
  type EvalResults,
  type FrontierPoint,
  frontierPoint,
  frontierSettings,
  keptScores,
  reusableScores,
  uniformTwins,
} from '../eval/frontier.ts'
import { renderFrontierPng } from '../eval/frontier-plot.ts'
import { renderFrontierReport } from '../eval/frontier-report.ts'
import { measureSchedules, type SeedScore } from '../eval/measure-claim.ts'
import { scoreTestSplit, TEST_SEEDS } from '../eval/test-split.ts'
import { loadModelPair } from '../onnx/model-pair.ts'
import { parseSessionConfig } from '../service/config.ts'
import { parseFlags, runCli } from './cli-flags.ts'
import { UsageError } from './usage-error.ts'

const USAGE = `usage: npm run frontier -- [options]
  --models DIR             model folder (default gpu-service/models, its default model)
  --out DIR                where frontier.json, frontier.png and frontier.md go (default docs/eval)
  --intervals 1,2,...      uniform heavy intervals K (default 1,2,3,4,6,8,12,16); the calibrated
                           placement with as many heavy calls is measured beside each K > 1, unless
                           it is K's own steps (calibration kept them on validation): then K's scores
  --tolerances 0.003,...   adaptive tolerances (default 0.003,0.01,0.02,0.05)
  --seeds 0,1,2            one full set of samples per seed
  --samples-per-class N    images per class per seed (default 100: 1,000 per setting and seed)
  --steps N                sampler steps (default: manifest.recommended.steps)
  --guidance W             classifier-free guidance (default: manifest.recommended.guidance)
  --batch N                images per sampler call (default 50)
  --reuse FILE             take the uniform points an npm run eval report (results.json) already scored
                           under the same model, seeds, samples, steps and guidance, instead of sampling
                           them again (the sampler is deterministic: same images, same scores)
  --keep FILE              keep the points an earlier frontier.json measured under the same conditions:
                           uniform ones, and calibrated ones whose placement is unchanged
                           (after npm run calibrate -- --record, only the moved placements are sampled)`

const intList = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'expected comma-separated non-negative integers')
  .transform((text) => text.split(',').map(Number))
const toleranceList = z
  .string()
  .regex(/^[0-9.]+(,[0-9.]+)*$/, 'expected comma-separated numbers')
  .transform((text) => text.split(',').map(Number))
  .refine(
    (values) => values.every((value) => value > 0 && value <= MAX_ADAPTIVE_TOLERANCE),
    `tolerances must be in (0, ${MAX_ADAPTIVE_TOLERANCE}]`,
  )
const argsSchema = z.strictObject({
  models: z.string().default('gpu-service/models'),
  out: z.string().default('docs/eval'),
  intervals: intList
    .default([1, 2, 3, 4, 6, 8, 12, 16])
    .refine((ks) => ks.every((k) => k >= 1), 'K must be >= 1'),
  tolerances: toleranceList.default([0.003, 0.01, 0.02, 0.05]),
  seeds: intList.default([...TEST_SEEDS]),
  samplesPerClass: z.coerce.number().int().min(2).default(100),
  steps: z.coerce.number().int().min(1).max(1000).optional(),
  guidance: z.coerce.number().min(0).max(20).optional(),
  batch: z.coerce.number().int().min(1).max(MAX_COUNT).default(50),
  reuse: z.string().optional(),
  keep: z.string().optional(),
  help: z.boolean().default(false),
})

const FLAGS = {
  models: { type: 'string' },
  out: { type: 'string' },
  intervals: { type: 'string' },
  tolerances: { type: 'string' },
  seeds: { type: 'string' },
  'samples-per-class': { type: 'string' },
  steps: { type: 'string' },
  guidance: { type: 'string' },
  batch: { type: 'string' },
  reuse: { type: 'string' },
  keep: { type: 'string' },
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
  const evaluator = await loadEvaluator(args.models, session)
  try {
    const { manifest } = pair
    const steps = args.steps ?? manifest.recommended.steps
    const guidance = args.guidance ?? manifest.recommended.guidance
    const placements = manifest.heavyPlacements?.[String(steps)]
    if (!placements) {
      throw new UsageError(
        `--steps: ${manifest.modelId} has no calibrated placements for ${steps} steps; run npm run calibrate -- --steps ${steps} --record first`,
      )
    }
    const { reference } = await scoreTestSplit(evaluator)
    const settings = frontierSettings(steps, args.intervals, args.tolerances)
    const measure = {
      seeds: args.seeds,
      samplesPerClass: args.samplesPerClass,
      steps,
      guidance,
      batch: args.batch,
    }
    const reused = args.reuse
      ? reusableScores(
          JSON.parse(await readFile(args.reuse, 'utf8')) as EvalResults,
          settings,
          measure,
          manifest.modelId,
        )
      : new Map<string, never>()
    if (reused.size > 0) console.log(`reusing ${[...reused.keys()].join(', ')} from ${args.reuse}`)
    const earlier = args.keep
      ? (JSON.parse(await readFile(args.keep, 'utf8')) as EarlierFrontier)
      : null
    const kept = earlier
      ? keptScores(earlier, settings, measure, manifest.modelId, placements)
      : new Map<string, never>()
    // A calibrated placement that is a uniform setting's steps gives that setting's pixels: its scores.
    const twins = uniformTwins(settings, steps, placements)
    for (const name of [...reused.keys(), ...twins.keys()]) kept.delete(name)
    if (kept.size > 0) console.log(`keeping ${[...kept.keys()].join(', ')} from ${args.keep}`)
    for (const [calibrated, uniform] of twins) {
      console.log(`${calibrated}: the placement is ${uniform}'s steps, so ${uniform}'s scores`)
    }
    const toMeasure = settings.filter(
      (setting) => !reused.has(setting.name) && !kept.has(setting.name) && !twins.has(setting.name),
    )
    const started = performance.now()
    const scores = await measureSchedules(
      pair.models,
      manifest,
      evaluator,
      reference,
      toMeasure,
      measure,
      console.log,
    )
    const measured = new Map(scores.map((scored) => [scored.setting.name, scored.seeds]))
    const seedsOf = (name: string) =>
      reused.get(name) ?? kept.get(name) ?? (measured.get(name) as SeedScore[])
    const points: FrontierPoint[] = settings.map((setting) => {
      const twin = twins.get(setting.name)
      return frontierPoint(
        setting,
        seedsOf(twin ?? setting.name),
        setting.family === 'calibrated'
          ? placements[(setting.plannedCalls as number) - 1]
          : undefined,
        twin,
      )
    })
    const budgets = compareBudgets(points)
    const cheapest = cheapestWithin(points, 0.05)
    const report = {
      modelId: manifest.modelId,
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, onnxruntime-node ${session.device}`,
      seconds: (performance.now() - started) / 1000,
      command: ['npm run frontier', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' '),
      settings: measure,
      recommended: manifest.recommended,
      reused: args.reuse ? { from: args.reuse, points: [...reused.keys()] } : null,
      kept:
        args.keep && earlier
          ? {
              from: args.keep,
              date: earlier.date,
              command: earlier.command,
              points: [...kept.keys()],
            }
          : null,
      points,
      budgets,
      cheapestWithin5Percent: cheapest?.name ?? null,
    }
    await mkdir(args.out, { recursive: true })
    await writeFile(join(args.out, 'frontier.json'), `${JSON.stringify(report, null, 2)}\n`)
    const title = `${manifest.modelId}: ${steps} steps, guidance ${guidance}, ${args.seeds.length} seeds x ${10 * args.samplesPerClass} samples`
    await writeFile(join(args.out, 'frontier.png'), await renderFrontierPng(points, title))
    const markdown = renderFrontierReport(report)
    await writeFile(join(args.out, 'frontier.md'), markdown)
    console.log(markdown)
  } finally {
    await pair.release()
    await evaluator.release()
  }
}

runCli('frontier', USAGE, () => main(process.argv.slice(2)))
