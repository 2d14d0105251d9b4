// `npm run eval`: measures quality and cost of a model of the models folder (`--model ID`; absent: the
// default) for heavy intervals K through the TypeScript sampler, and writes results.json, README.md and
// one sample grid per K (docs/eval, or docs/eval/<subfolder> for a subfolder's model). Exit status 64
// (EX_USAGE, sysexits.h) for a bad command line (a setting the model does not support included), 1 for
// any other failure.
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { loadEvaluator } from '../eval/classifier.ts'
import { loadFashionMnist } from '../eval/fashion-mnist.ts'
import { frechetDistance, gaussianStats } from '../eval/frechet-distance.ts'
import {
  GRID_COLUMNS,
  type IntervalScores,
  measureClaim,
  summarize,
} from '../eval/measure-claim.ts'
import { recordRecommended } from '../eval/record.ts'
import { type EvalReport, renderReport } from '../eval/report.ts'
import { scoreTestSplit } from '../eval/test-split.ts'
import { encodeGridPng } from '../image/png.ts'
import { loadModelPair } from '../onnx/model-pair.ts'
import { parseSessionConfig } from '../service/config.ts'
import { runCli } from './cli-flags.ts'
import { readEvalArgs, resolveEvalArgs, USAGE } from './eval-args.ts'
import { chooseModel } from './model-choice.ts'

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
  const args = readEvalArgs(argv)
  if (args.help) {
    console.log(USAGE)
    return
  }
  const folder = await chooseModel(args.models, args.model)
  const { settings, out, record } = resolveEvalArgs(args, folder)
  const session = parseSessionConfig(process.env)
  const pair = await loadModelPair(folder.dir, session)
  const evaluator = await loadEvaluator(args.models, session)
  try {
    const manifest = pair.manifest
    console.log(`model ${manifest.modelId} (${folder.dir})`)
    const testSplit = await scoreTestSplit(evaluator)
    const { reference, classifierAccuracy: classifierTestAccuracy } = testSplit
    console.log(
      `evaluator: ${(classifierTestAccuracy * 100).toFixed(2)}% on ${testSplit.count} test images`,
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
    // Recommend the cheapest K whose quality stays within the K=4 bar of heavy-every-step; without one
    // (or without K=1 to compare with: a distilled model's fixed placement), the smallest K measured.
    // Every K measured is one the model supports, so the recommendation is too.
    const acceptable = scores
      .filter((s) => (fdRatio(s.heavyEvery) ?? Number.POSITIVE_INFINITY) <= 1.15)
      .filter((s) => (accuracyOf(s.heavyEvery) ?? 0) >= 0.9)
      .map((s) => s.heavyEvery)
    const recommendedK =
      acceptable.length > 0 ? Math.max(...acceptable) : Math.min(...settings.heavyIntervals)
    const report: EvalReport = {
      modelId: manifest.modelId,
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, onnxruntime-node ${session.device}`,
      seconds: (performance.now() - evalStarted) / 1000,
      command: `npm run eval -- ${argv.join(' ')}`.trim(),
      settings,
      classifierTestAccuracy,
      featureDim: testSplit.featureDim,
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
      recommended: { steps: settings.steps, heavyEvery: recommendedK, guidance: settings.guidance },
    }
    await mkdir(out, { recursive: true })
    const { width, height } = manifest.image
    for (const { heavyEvery, gridImages } of scores) {
      const count = gridImages.length / (width * height)
      await writeFile(
        join(out, `grid-k${heavyEvery}.png`),
        encodeGridPng(gridImages, count, width, height, { columns: GRID_COLUMNS }),
      )
    }
    await writeFile(join(out, 'results.json'), `${JSON.stringify(report, null, 2)}\n`)
    await writeFile(join(out, 'README.md'), renderReport(report))
    console.log(renderReport(report))
    if (record) {
      const manifestPath = await recordRecommended(folder.dir, report.recommended)
      console.log(`recorded recommended ${JSON.stringify(report.recommended)} in ${manifestPath}`)
    }
  } finally {
    await pair.release()
    await evaluator.release()
  }
}

runCli('eval', USAGE, () => main(process.argv.slice(2)))
