// `npm run bench`: images/s of the gpu-service at several concurrencies with step-level batching on and
// off, and the latency of a 50-step K=4 run, measured through the real HTTP service on loopback. Writes
// docs/bench/gpu-service.json and .md and prints the table. A script, not a test: the numbers depend on
// the machine and on what else runs on it (the load average is recorded with them).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { z } from 'zod'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import { readManifest } from '../onnx/model-pair.ts'
import { parseServiceConfig } from '../service/config.ts'
import { type RunClient, readRunEvents, signedFetch } from './run-client.ts'

const USAGE = `Usage: npm run bench -- [options]

  --concurrency <list>  concurrent clients, e.g. 1,4,16 (default 1,4,16)
  --runs <n>            runs per setting and repeat, at least 2 per client (default 16)
  --repeats <n>         measurements per setting, batching on and off alternating (default 2)
  --steps <n>           sampler steps per run (default: manifest recommended)
  --heavy-every <k>     heavy encoder every k steps (default 4, the setting issue 3 asks figures for)
  --guidance <w>        classifier-free guidance (default: manifest recommended)
  --out <dir>           where gpu-service.json and gpu-service.md go (default docs/bench)`

const list = z
  .string()
  .transform((text) => text.split(',').map(Number))
  .pipe(z.array(z.number().int().min(1).max(64)).min(1))
const argsSchema = z.object({
  concurrency: list.default([1, 4, 16]),
  runs: z.coerce.number().int().min(1).default(16),
  repeats: z.coerce.number().int().min(1).default(2),
  steps: z.coerce.number().int().min(1).max(1000).optional(),
  heavyEvery: z.coerce.number().int().min(1).max(1000).default(4),
  guidance: z.coerce.number().min(0).max(20).optional(),
  out: z.string().default('docs/bench'),
  help: z.boolean().default(false),
})

interface Setting {
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

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

async function runOnce(client: RunClient, request: RunRequest) {
  const started = performance.now()
  const response = await signedFetch(client, 'POST', '/v1/runs', { body: request })
  if (response.status !== 200)
    throw new Error(`POST /v1/runs: ${response.status} ${await response.text()}`)
  for await (const { event } of readRunEvents(response)) {
    if (event.type === 'error') throw new Error(`run failed: ${JSON.stringify(event.problem)}`)
    if (event.type === 'result') {
      return {
        latencyMs: performance.now() - started,
        images: event.images.length,
        ...event.timings,
      }
    }
  }
  throw new Error('the stream ended without a result')
}

type RunTiming = Awaited<ReturnType<typeof runOnce>>

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
          await runOnce(client, { ...request, seed, classIndex: (seed + clientIndex) % 10 }),
        )
      }
    }),
  )
  return { results, wallSeconds: (performance.now() - started) / 1000 }
}

/** Pools the repeats of one setting: images over total wall time, latency percentiles over all runs. */
function summarize(batching: boolean, concurrency: number, samples: Sample[]): Setting {
  const results = samples.flatMap((sample) => sample.results)
  const wallSeconds = samples.reduce((sum, sample) => sum + sample.wallSeconds, 0)
  const latencies = results.map((result) => result.latencyMs).sort((a, b) => a - b)
  const images = results.reduce((sum, result) => sum + result.images, 0)
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length
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

/**
 * Runs `measure` against a fresh `npm run gpu-service` process (own ONNX sessions and thread pools: two
 * services in one process were measured to slow each other unevenly), stopped with SIGTERM afterwards.
 */
async function withServiceProcess<T>(
  batching: boolean,
  secret: string,
  measure: (client: RunClient) => Promise<T>,
): Promise<T> {
  const child = spawn(process.execPath, ['gpu-service/src/service/main.ts'], {
    env: {
      ...process.env,
      PORT: '0',
      DUALRATE_HMAC_SECRET: secret,
      DUALRATE_BATCHING: batching ? 'on' : 'off',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let listening = ''
      // Read every log line (an unread pipe would block the service); the url comes before ready.
      createInterface({ input: child.stdout }).on('line', (line) => {
        const entry = JSON.parse(line) as { msg: string; url?: string }
        if (entry.msg === 'listening') listening = entry.url ?? ''
        if (entry.msg === 'ready') resolve(listening)
      })
      void exited.then((code) => reject(new Error(`gpu-service exited with ${code} before ready`)))
    })
    return await measure({ baseUrl: url, secret })
  } finally {
    child.kill('SIGTERM')
    await exited
  }
}

function renderMarkdown(report: {
  date: string
  machine: string
  command: string
  request: RunRequest
  loadAverageBefore: number[]
  loadAverageAfter: number[]
  settings: Setting[]
}): string {
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

${report.date}, \`${report.command}\`, on ${report.machine}.
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

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      concurrency: { type: 'string' },
      runs: { type: 'string' },
      repeats: { type: 'string' },
      steps: { type: 'string' },
      'heavy-every': { type: 'string' },
      guidance: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  const { 'heavy-every': heavyEvery, ...rest } = values
  const parsed = argsSchema.safeParse({ ...rest, heavyEvery })
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `--${issue.path.join('.')}: ${issue.message}`)
    console.error(`bench: ${lines.join('\nbench: ')}\n\n${USAGE}`)
    process.exitCode = 2
    return
  }
  const args = parsed.data
  if (args.help) {
    console.log(USAGE)
    return
  }
  const env = parseServiceConfig({ ...process.env, PORT: '0' })
  const manifest = await readManifest(env.modelsDir)
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
  const settings: Setting[] = []
  const modes = [true, false]
  for (const concurrency of args.concurrency) {
    const runs = Math.max(args.runs, 2 * concurrency)
    const samples: Sample[][] = modes.map(() => [])
    // Modes alternate, so drift in the machine's other load touches both alike.
    for (let repeat = 0; repeat < args.repeats; repeat++) {
      const order = repeat % 2 === 0 ? [0, 1] : [1, 0]
      for (const mode of order) {
        const sample = await withServiceProcess(modes[mode] as boolean, secret, async (client) => {
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
  const report = {
    date: new Date().toISOString(),
    machine:
      `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}, ` +
      `onnxruntime-node ${env.session.device}` +
      (env.session.intraOpThreads ? `, ${env.session.intraOpThreads} intra-op threads` : ''),
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
    request,
    // Batching is what the settings vary; the other limits are the service's defaults or environment.
    limits: { ...env.scheduler, batching: 'varied' },
    loadAverageBefore,
    loadAverageAfter: loadavg(),
    settings,
  }
  await mkdir(args.out, { recursive: true })
  const files = [join(args.out, 'gpu-service.json'), join(args.out, 'gpu-service.md')]
  await writeFile(files[0] as string, `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(files[1] as string, renderMarkdown(report))
  console.log(`\n${await readFile(files[1] as string, 'utf8')}`)
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : error}`)
  process.exitCode = 1
})
