// The throughput benchmark: images/s of the gpu-service at several concurrencies with step-level batching
// on and off, and the client-side latency of each run, through the real HTTP service on loopback; beside
// each concurrency, the ceiling (ceiling.ts: the sampler alone in this process, no HTTP, the batch the
// service could form) and both sides' overhead ratio (wall time over ONNX Runtime time, per image).
// Writes docs/bench/gpu-service.json and .md. The numbers depend on the machine and on what else runs on
// it (the load average is recorded with them).
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import type { RunClient } from '../cli/run-client.ts'
import { loadModelPair, readManifest } from '../onnx/model-pair.ts'
import { parseServiceConfig } from '../service/config.ts'
import type { ThroughputArgs } from './args.ts'
import { type CeilingSample, ceilingBatchRuns, measureCeiling } from './ceiling.ts'
import { gitRevision, machineDescription } from './machine.ts'
import { writeReportFiles } from './report-files.ts'
import { withServiceProcess } from './service-process.ts'
import { percentile, type RunTiming, timedRun } from './timed-run.ts'

export interface ThroughputSetting {
  batching: boolean
  concurrency: number
  runs: number
  images: number
  wallSeconds: number
  imagesPerSecond: number
  /** Each repeat on its own, to show the spread. */
  repeatImagesPerSecond: number[]
  /** Client-side, from POST to the result event. */
  latencyMs: { p50: number; p95: number; max: number }
  /** Server-side means: queue wait and first step to result. */
  meanQueueMs: number
  meanRunMs: number
  /** Seconds inside ONNX Runtime per image (the service's dualrate_onnx_run_seconds_total). */
  onnxSecondsPerImage: number
  /** Wall time per image over ONNX Runtime time per image. */
  overheadRatio: number
}

/** The sampler alone at one concurrency's batch (ceiling.ts). */
export interface CeilingSetting {
  concurrency: number
  /** Runs stepped together: as many as the service could batch at this concurrency. */
  batchRuns: number
  images: number
  wallSeconds: number
  imagesPerSecond: number
  repeatImagesPerSecond: number[]
  onnxSecondsPerImage: number
  overheadRatio: number
}

export interface ThroughputReport {
  date: string
  machine: string
  revision: string
  command: string
  request: RunRequest
  limits: Record<string, unknown>
  loadAverageBefore: number[]
  loadAverageAfter: number[]
  settings: ThroughputSetting[]
  ceilings: CeilingSetting[]
}

/** One measurement: the runs' timings, the wall time they took together and the runtime's share. */
interface Sample {
  results: RunTiming[]
  wallSeconds: number
  onnxSeconds: number
}

/** The service's seconds inside ONNX Runtime so far, both networks of every model. */
async function onnxSeconds(client: RunClient): Promise<number> {
  const text = await (await fetch(`${client.baseUrl}/metrics`)).text()
  return [...text.matchAll(/^dualrate_onnx_run_seconds_total\{[^}]*\} (\S+)$/gm)].reduce(
    (sum, [, value]) => sum + Number(value),
    0,
  )
}

/** `runs` runs spread over `concurrency` clients, each sending its next run when the last one ends. */
async function measure(
  client: RunClient,
  request: RunRequest,
  concurrency: number,
  runs: number,
): Promise<Sample> {
  let next = 0
  const results: RunTiming[] = []
  const onnxSecondsBefore = await onnxSeconds(client)
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, clientIndex) => {
      while (next < runs) {
        const seed = next++
        results.push(
          await timedRun(client, { ...request, seed, classIndex: (seed + clientIndex) % 10 }),
        )
      }
    }),
  )
  const wallSeconds = (performance.now() - started) / 1000
  return { results, wallSeconds, onnxSeconds: (await onnxSeconds(client)) - onnxSecondsBefore }
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length

/** Pools the repeats of one setting: images over total wall time, latency percentiles over all runs. */
function summarize(batching: boolean, concurrency: number, samples: Sample[]): ThroughputSetting {
  const results = samples.flatMap((sample) => sample.results)
  const wallSeconds = samples.reduce((sum, sample) => sum + sample.wallSeconds, 0)
  const onnxSeconds = samples.reduce((sum, sample) => sum + sample.onnxSeconds, 0)
  const latencies = results.map((result) => result.latencyMs).sort((a, b) => a - b)
  const images = results.reduce((sum, result) => sum + result.images, 0)
  return {
    batching,
    concurrency,
    runs: results.length,
    images,
    wallSeconds,
    imagesPerSecond: images / wallSeconds,
    repeatImagesPerSecond: samples.map(
      (sample) =>
        sample.results.reduce((sum, result) => sum + result.images, 0) / sample.wallSeconds,
    ),
    latencyMs: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      max: latencies.at(-1) as number,
    },
    meanQueueMs: mean(results.map((result) => result.queueMs)),
    meanRunMs: mean(results.map((result) => result.wallMs)),
    onnxSecondsPerImage: onnxSeconds / images,
    overheadRatio: wallSeconds / onnxSeconds,
  }
}

/** Pools the repeats of one concurrency's ceiling like summarize. */
function summarizeCeiling(
  concurrency: number,
  batchRuns: number,
  samples: CeilingSample[],
): CeilingSetting {
  const sum = (key: keyof CeilingSample) =>
    samples.reduce((total, sample) => total + sample[key], 0)
  const images = sum('images')
  return {
    concurrency,
    batchRuns,
    images,
    wallSeconds: sum('wallSeconds'),
    imagesPerSecond: images / sum('wallSeconds'),
    repeatImagesPerSecond: samples.map((sample) => sample.images / sample.wallSeconds),
    onnxSecondsPerImage: sum('onnxSeconds') / images,
    overheadRatio: sum('wallSeconds') / sum('onnxSeconds'),
  }
}

const ratio = (value: number) => value.toFixed(2)
const msPerImage = (seconds: number) => (seconds * 1000).toFixed(1)

/** Service (batching on) against the ceiling per concurrency, with the earlier report's figures if given. */
function ceilingRows(report: ThroughputReport, before?: ThroughputReport): string[] {
  return report.ceilings.map((ceiling) => {
    const served = (of: ThroughputReport | undefined) =>
      of?.settings.find((s) => s.batching && s.concurrency === ceiling.concurrency)
    const service = served(report)
    const earlier = served(before)
    const earlierCeiling = before?.ceilings?.find((c) => c.concurrency === ceiling.concurrency)
    const beforeCells = before
      ? [
          earlier ? earlier.imagesPerSecond.toFixed(2) : '-',
          earlier && earlierCeiling
            ? `${((100 * earlier.imagesPerSecond) / earlierCeiling.imagesPerSecond).toFixed(0)} %`
            : '-',
          earlier?.overheadRatio ? ratio(earlier.overheadRatio) : '-',
        ]
      : []
    const cells = [
      ceiling.concurrency,
      ceiling.batchRuns,
      ceiling.imagesPerSecond.toFixed(2),
      service ? service.imagesPerSecond.toFixed(2) : '-',
      service ? `${((100 * service.imagesPerSecond) / ceiling.imagesPerSecond).toFixed(0)} %` : '-',
      msPerImage(ceiling.onnxSecondsPerImage),
      service ? msPerImage(service.onnxSecondsPerImage) : '-',
      ratio(ceiling.overheadRatio),
      service ? ratio(service.overheadRatio) : '-',
      ...beforeCells,
    ]
    return `| ${cells.join(' | ')} |`
  })
}

/** The report as a Markdown page; `before`, an earlier report, adds its service figures for comparison. */
export function renderThroughputMarkdown(
  report: ThroughputReport,
  before?: ThroughputReport,
): string {
  const { request } = report
  const heavyEvery = 'every' in request.heavySchedule ? request.heavySchedule.every : '?'
  const rows = report.settings.map(
    (s) =>
      `| ${s.batching ? 'on' : 'off'} | ${s.concurrency} | ${s.runs} | ${s.imagesPerSecond.toFixed(2)} | ` +
      `${s.repeatImagesPerSecond.map((value) => value.toFixed(2)).join(', ')} | ` +
      `${s.latencyMs.p50.toFixed(0)} | ${s.latencyMs.p95.toFixed(0)} | ${s.meanQueueMs.toFixed(0)} | ` +
      `${s.meanRunMs.toFixed(0)} | ${msPerImage(s.onnxSecondsPerImage)} | ${ratio(s.overheadRatio)} |`,
  )
  const beforeHeader = before
    ? ` before: service images/s | before: of ceiling | before: service overhead |`
    : ''
  const beforeRule = before ? ' --- | --- | --- |' : ''
  const beforeNote = before
    ? `\nThe "before" columns are from ${before.date} at ${before.revision} (\`${before.command}\`), ` +
      `each against that run's own ceiling; compare the load averages before reading much into a change.\n`
    : ''
  return `# gpu-service benchmark

${report.date}, \`${report.command}\` at ${report.revision}, on ${report.machine}.
Load average (1, 5, 15 min) before: ${report.loadAverageBefore.map((v) => v.toFixed(2)).join(', ')};
after: ${report.loadAverageAfter.map((v) => v.toFixed(2)).join(', ')}.

Each run: ${request.count} image, ${request.steps} steps, heavy encoder every ${heavyEvery} steps,
guidance ${request.guidance} (${request.guidance === 1 ? 'one model row' : 'two model rows'} per image), through POST /v1/runs on loopback, signed.
Each client sends its next run when its last one ends. Each measurement gets a fresh
\`npm run gpu-service\` process (batching on or off), warmed up at the same concurrency; the modes
alternate over the repeats, which are pooled. Latency is client-side, POST to result. ONNX ms per image
is the time inside ONNX Runtime (the service's \`dualrate_onnx_run_seconds_total\`) per image; the
overhead ratio is wall time per image over it.

| batching | concurrency | runs | images/s | per repeat | p50 ms | p95 ms | mean queue ms | mean run ms | ONNX ms per image | overhead ratio |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

## Service against the ceiling

The ceiling is the sampler alone in the benchmark's process: no HTTP, no scheduler, no events or PNGs,
the same models folder and ONNX session settings as the service (\`DUALRATE_*\` environment), the same
request (one image per run, same steps, heavy schedule, guidance, seeds and classes). At each concurrency
it steps as many runs together as the service could batch there (one per client, at most
maxActiveRuns and maxBatchRows) in lockstep, so every heavy call holds every run's rows, and starts the
next batch when they finish: the best the service's batching could do with these models and threads.
Service figures are batching on. Overhead ratio: wall time per image over ONNX Runtime time per image.
The service, the benchmark's clients (in this process) and the ceiling share the machine's
${cpus().length} cores; anything else running on it shows in the load average above.
${beforeNote}
| concurrency | ceiling batch (runs) | ceiling images/s | service images/s | service / ceiling | ONNX ms per image: ceiling | ONNX ms per image: service | overhead ratio: ceiling | overhead ratio: service |${beforeHeader}
| --- | --- | --- | --- | --- | --- | --- | --- | --- |${beforeRule}
${ceilingRows(report, before).join('\n')}
`
}

/**
 * Runs the throughput benchmark and writes `gpu-service.json` and `.md` into `args.out`; returns the
 * Markdown.
 *
 * @example
 * console.log(await benchThroughput(parseBenchArgs(argv), 'npm run bench'))
 */
export async function benchThroughput(args: ThroughputArgs, command: string): Promise<string> {
  const config = parseServiceConfig({ ...process.env, PORT: '0' })
  const manifest = await readManifest(config.modelsDir)
  const before =
    args.before === undefined
      ? undefined
      : (JSON.parse(await readFile(args.before, 'utf8')) as ThroughputReport)
  const request: RunRequest = {
    classIndex: 0,
    count: 1,
    steps: args.steps ?? manifest.recommended.steps,
    heavySchedule: { every: args.heavyEvery },
    guidance: args.guidance ?? manifest.recommended.guidance,
    seed: 0,
    previewEvery: 0,
  }
  const secret = randomBytes(32).toString('hex')
  const loadAverageBefore = loadavg()
  const settings: ThroughputSetting[] = []
  const ceilings: CeilingSetting[] = []
  const modes = [true, false]
  // The ceiling's sessions live in this process, idle while a service process measures.
  const pair = await loadModelPair(config.modelsDir, config.session)
  try {
    for (const concurrency of args.concurrency) {
      const runs = Math.max(args.runs, 2 * concurrency)
      const samples: Sample[][] = modes.map(() => [])
      const ceilingSamples: CeilingSample[] = []
      const batchRuns = ceilingBatchRuns(concurrency, request, config.scheduler)
      // Warm-up: first calls of the ceiling's batch shapes.
      await measureCeiling(pair, request, batchRuns, batchRuns)
      // Modes alternate, so drift in the machine's other load touches both alike; the ceiling comes
      // between them.
      for (let repeat = 0; repeat < args.repeats; repeat++) {
        const order = repeat % 2 === 0 ? [0, 1] : [1, 0]
        for (const [position, mode] of order.entries()) {
          if (position === 1)
            ceilingSamples.push(await measureCeiling(pair, request, batchRuns, runs))
          const env = { DUALRATE_BATCHING: modes[mode] ? 'on' : 'off' }
          const sample = await withServiceProcess(env, secret, async (client) => {
            // Warm-up at the same concurrency: first calls of each batch shape and the JIT.
            await measure(client, request, concurrency, concurrency)
            return measure(client, request, concurrency, runs)
          })
          samples[mode]?.push(sample)
        }
      }
      for (const [mode, batching] of modes.entries()) {
        const setting = summarize(batching, concurrency, samples[mode] as Sample[])
        settings.push(setting)
        console.log(
          `batching ${batching ? 'on ' : 'off'}  concurrency ${String(concurrency).padStart(2)}: ` +
            `${setting.imagesPerSecond.toFixed(2)} images/s ` +
            `(${setting.repeatImagesPerSecond.map((value) => value.toFixed(2)).join(', ')}), ` +
            `p50 ${setting.latencyMs.p50.toFixed(0)} ms, p95 ${setting.latencyMs.p95.toFixed(0)} ms, ` +
            `overhead ${setting.overheadRatio.toFixed(2)}`,
        )
      }
      const ceiling = summarizeCeiling(concurrency, batchRuns, ceilingSamples)
      ceilings.push(ceiling)
      console.log(
        `ceiling      concurrency ${String(concurrency).padStart(2)}: ` +
          `${ceiling.imagesPerSecond.toFixed(2)} images/s ` +
          `(${ceiling.repeatImagesPerSecond.map((value) => value.toFixed(2)).join(', ')}), ` +
          `${batchRuns} runs a batch, overhead ${ceiling.overheadRatio.toFixed(2)}`,
      )
    }
  } finally {
    await pair.release()
  }
  const report: ThroughputReport = {
    date: new Date().toISOString(),
    machine: machineDescription(config),
    revision: gitRevision(),
    command,
    request,
    // Batching is what the settings vary; the other limits are the service's defaults or environment.
    limits: { ...config.scheduler, batching: 'varied' },
    loadAverageBefore,
    loadAverageAfter: loadavg(),
    settings,
    ceilings,
  }
  const markdown = renderThroughputMarkdown(report, before)
  await writeReportFiles(args.out, 'gpu-service', report, markdown)
  return markdown
}
