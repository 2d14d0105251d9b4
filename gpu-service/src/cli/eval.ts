// `npm run eval`: measures quality and cost of the committed pair for heavy intervals K through the
// TypeScript sampler, and writes docs/eval/results.json, docs/eval/README.md and one sample grid per K.
// Exit status 2 for a bad command line, 1 for any other failure.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { z } from 'zod'
import { MAX_COUNT } from '../../../shared/sampling-options.ts'
import { loadEvaluator } from '../eval/classifier.ts'
import { loadFashionMnist } from '../eval/fashion-mnist.ts'
import { frechetDistance, gaussianStats } from '../eval/frechet-distance.ts'
import {
  GRID_COLUMNS,
  type IntervalScores,
  measureClaim,
  summarize,
} from '../eval/measure-claim.ts'
import { type EvalReport, renderReport } from '../eval/report.ts'
import { encodeGridPng } from '../image/png.ts'
import { loadModelPair, MANIFEST_FILE } from '../onnx/model-pair.ts'
import { parseSessionConfig } from '../service/config.ts'
import { UsageError } from './usage-error.ts'

const USAGE = `usage: npm run eval -- [options]
  --models DIR             model folder (default gpu-service/models)
  --out DIR                where results.json, README.md and grids go (default docs/eval)
  --intervals 1,2,4,8      heavy intervals K to measure
  --seeds 0,1,2            one full set of samples per seed
  --samples-per-class N    images per class per seed (default 100: 1,000 per setting and seed)
  --steps N                sampler steps (default 50)
  --guidance W             classifier-free guidance for every setting (default: manifest.recommended)
  --batch N                images per sampler call (default 50)
  --record                 write the recommended setting found here into the manifest`

const list = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'expected comma-separated non-negative integers')
  .transform((text) => text.split(',').map(Number))
const argsSchema = z.strictObject({
  models: z.string().default('gpu-service/models'),
  out: z.string().default('docs/eval'),
  intervals: list.default([1, 2, 4, 8]).refine((ks) => ks.every((k) => k >= 1), 'K must be >= 1'),
  seeds: list.default([0, 1, 2]),
  samplesPerClass: z.coerce.number().int().min(2).default(100),
  steps: z.coerce.number().int().min(1).max(1000).default(50),
  guidance: z.coerce.number().min(0).max(20).optional(),
  batch: z.coerce.number().int().min(1).max(MAX_COUNT).default(50),
  record: z.boolean().default(false),
  help: z.boolean().default(false),
})

function readArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      models: { type: 'string' },
      out: { type: 'string' },
      intervals: { type: 'string' },
      seeds: { type: 'string' },
      'samples-per-class': { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      batch: { type: 'string' },
      record: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  const { 'samples-per-class': samplesPerClass, ...rest } = values
  const parsed = argsSchema.safeParse({ ...rest, samplesPerClass })
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `--${issue.path.join('.')}: ${issue.message}`)
    throw new UsageError(lines.join('\n'))
  }
  return parsed.data
}

function ratio(
  scores: IntervalScores[],
  k: number,
  metric: 'fd' | 'macsPerImage' | 'wallMsPerImage',
) {
  const base = scores.find((s) => s.heavyEvery === 1)
  const other = scores.find((s) => s.heavyEvery === k)
  if (!base || !other) return null
  return (
    summarize(other.seeds.map((s) => s[metric])).mean /
    summarize(base.seeds.map((s) => s[metric])).mean
  )
}

async function main(argv: string[]): Promise<void> {
  const args = readArgs(argv)
  if (args.help) {
    console.log(USAGE)
    return
  }
  const session = parseSessionConfig(process.env)
  const pair = await loadModelPair(args.models, session)
  const evaluator = await loadEvaluator(args.models, session)
  try {
    const manifest = pair.manifest
    const guidance = args.guidance ?? manifest.recommended.guidance
    const test = await loadFashionMnist('test')
    const testScores = await evaluator.classify(test.images, test.count)
    let correct = 0
    for (let i = 0; i < test.count; i++) if (testScores.predictions[i] === test.labels[i]) correct++
    const classifierTestAccuracy = correct / test.count
    const reference = gaussianStats(testScores.features, testScores.featureDim)
    console.log(
      `evaluator: ${(classifierTestAccuracy * 100).toFixed(2)}% on ${test.count} test images`,
    )

    // Floor for FD: real training images scored like a sample set of the same size.
    const train = await loadFashionMnist('train')
    const realCount = Math.min(train.count, manifest.classes.length * args.samplesPerClass)
    const realScores = await evaluator.classify(
      train.images.subarray(0, realCount * 784),
      realCount,
    )
    const realFd = frechetDistance(
      gaussianStats(realScores.features, realScores.featureDim),
      reference,
    )

    const settings = {
      heavyIntervals: args.intervals,
      seeds: args.seeds,
      samplesPerClass: args.samplesPerClass,
      steps: args.steps,
      guidance,
      batch: args.batch,
    }
    const evalStarted = performance.now()
    const scores = await measureClaim(
      pair.models,
      manifest,
      evaluator,
      reference,
      settings,
      console.log,
    )

    const fdRatio = (k: number) => ratio(scores, k, 'fd')
    const accuracyOf = (k: number) => {
      const found = scores.find((s) => s.heavyEvery === k)
      return found ? summarize(found.seeds.map((s) => s.classAccuracy)).mean : null
    }
    // Recommend the cheapest K whose quality stays within the K=4 bar of heavy-every-step.
    const acceptable = scores
      .filter((s) => (fdRatio(s.heavyEvery) ?? Number.POSITIVE_INFINITY) <= 1.15)
      .filter((s) => (accuracyOf(s.heavyEvery) ?? 0) >= 0.9)
      .map((s) => s.heavyEvery)
    const recommendedK = acceptable.length > 0 ? Math.max(...acceptable) : 1
    const report: EvalReport = {
      modelId: manifest.modelId,
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, onnxruntime-node ${session.device}`,
      seconds: (performance.now() - evalStarted) / 1000,
      command: `npm run eval -- ${argv.join(' ')}`.trim(),
      settings,
      classifierTestAccuracy,
      featureDim: testScores.featureDim,
      realFd,
      intervals: scores.map(({ heavyEvery, seeds }) => ({
        heavyEvery,
        seeds,
        classAccuracy: summarize(seeds.map((s) => s.classAccuracy)),
        fd: summarize(seeds.map((s) => s.fd)),
        macsPerImage: summarize(seeds.map((s) => s.macsPerImage)),
        wallMsPerImage: summarize(seeds.map((s) => s.wallMsPerImage)),
      })),
      ratios: {
        fdK4: fdRatio(4),
        fdK8: fdRatio(8),
        macsK4: ratio(scores, 4, 'macsPerImage'),
        wallK4: ratio(scores, 4, 'wallMsPerImage'),
      },
      accuracyK1: accuracyOf(1),
      accuracyK4: accuracyOf(4),
      recommended: { steps: args.steps, heavyEvery: recommendedK, guidance },
    }
    await mkdir(args.out, { recursive: true })
    const { width, height } = manifest.image
    for (const { heavyEvery, gridImages } of scores) {
      const count = gridImages.length / (width * height)
      await writeFile(
        join(args.out, `grid-k${heavyEvery}.png`),
        encodeGridPng(gridImages, count, width, height, { columns: GRID_COLUMNS }),
      )
    }
    await writeFile(join(args.out, 'results.json'), `${JSON.stringify(report, null, 2)}\n`)
    await writeFile(join(args.out, 'README.md'), renderReport(report))
    console.log(renderReport(report))
    if (args.record) {
      const manifestPath = join(args.models, MANIFEST_FILE)
      const raw = JSON.parse(await readFile(manifestPath, 'utf8'))
      raw.recommended = report.recommended
      await writeFile(manifestPath, `${JSON.stringify(raw, null, 2)}\n`)
      console.log(`recorded recommended ${JSON.stringify(report.recommended)} in ${manifestPath}`)
    }
  } finally {
    await pair.release()
    await evaluator.release()
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (
    error instanceof UsageError ||
    (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
  ) {
    console.error(`eval: ${(error as Error).message.replaceAll('\n', '\neval: ')}\n\n${USAGE}`)
    process.exitCode = 2
    return
  }
  console.error(`eval: ${(error as Error).stack ?? error}`)
  process.exitCode = 1
})
