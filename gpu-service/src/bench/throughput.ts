// The throughput benchmark: images/s of the gpu-service at several concurrencies with step-level batching
// on and off, and the client-side latency of each run, through the real HTTP service on loopback.
// Writes docs/bench/gpu-service.json and .md. The numbers depend on the machine and on what else runs on
// it (the load average is recorded with them).
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import type { RunClient } from '../cli/run-client.ts'
import { readManifest } from '../onnx/model-pair.ts'
import { parseServiceConfig } from '../service/config.ts'
import type { ThroughputArgs } from './args.ts'
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
}

/** One measurement: the runs' timings and the wall time they took together. */
interface Sample {
  results: RunTiming[]
  wallSeconds: number
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
  return { results, wallSeconds: (performance.now() - started) / 1000 }
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length

/** Pools the repeats of one setting: images over total wall time, latency percentiles over all runs. */
function summarize(batching: boolean, concurrency: number, samples: Sample[]): ThroughputSetting {
  const results = samples.flatMap((sample) => sample.results)
  const wallSeconds = samples.reduce((sum, sample) => sum + sample.wallSeconds, 0)
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
  }
}

/** The report as a Markdown page. */
export function renderThroughputMarkdown(report: ThroughputReport): string {
  const { request } = report
  const heavyEvery = 'every' in request.heavySchedule ? request.heavySchedule.every : '?'
  const rows = report.settings.map(
    (s) =>
      `| ${s.batching ? 'on' : 'off'} | ${s.concurrency} | ${s.runs} | ${s.imagesPerSecond.toFixed(2)} | ` +
      `${s.repeatImagesPerSecond.map((value) => value.toFixed(2)).join(', ')} | ` +
      `${s.latencyMs.p50.toFixed(0)} | ${s.latencyMs.p95.toFixed(0)} | ${s.meanQueueMs.toFixed(0)} | ` +
      `${s.meanRunMs.toFixed(0)} |`,
  )
  return `# gpu-service benchmark

${report.date}, \`${report.command}\` at ${report.revision}, on ${report.machine}.
Load average (1, 5, 15 min) before: ${report.loadAverageBefore.map((v) => v.toFixed(2)).join(', ')};
after: ${report.loadAverageAfter.map((v) => v.toFixed(2)).join(', ')}.

Each run: ${request.count} image, ${request.steps} steps, heavy encoder every ${heavyEvery} steps,
guidance ${request.guidance} (${request.guidance === 1 ? 'one model row' : 'two model rows'} per image), through POST /v1/runs on loopback, signed.
Each client sends its next run when its last one ends. Each measurement gets a fresh
\`npm run gpu-service\` process (batching on or off), warmed up at the same concurrency; the modes
alternate over the repeats, which are pooled. Latency is client-side, POST to result.

| batching | concurrency | runs | images/s | per repeat | p50 ms | p95 ms | mean queue ms | mean run ms |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
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
  const modes = [true, false]
  for (const concurrency of args.concurrency) {
    const runs = Math.max(args.runs, 2 * concurrency)
    const samples: Sample[][] = modes.map(() => [])
    // Modes alternate, so drift in the machine's other load touches both alike.
    for (let repeat = 0; repeat < args.repeats; repeat++) {
      const order = repeat % 2 === 0 ? [0, 1] : [1, 0]
      for (const mode of order) {
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
          `p50 ${setting.latencyMs.p50.toFixed(0)} ms, p95 ${setting.latencyMs.p95.toFixed(0)} ms`,
      )
    }
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
  }
  const markdown = renderThroughputMarkdown(report)
  await writeReportFiles(args.out, 'gpu-service', report, markdown)
  return markdown
}
