// `npm run bench:edge`: the latency the edge adds, measured on loopback against the whole local stack
// (wrangler dev + a real gpu-service with the committed models). Cache hit: POST /v1/generations of a
// finished request, and GET of its image, where the edge is all there is. Miss: a new request through
// the edge (POST with Prefer: wait) against the same run sent straight to the gpu-service (signed POST
// /v1/runs read to its result), interleaved pair by pair. Writes docs/bench/edge.json and .md; with
// --before an earlier edge.json, the page also compares the two runs. A script, not a test: the numbers
// depend on the machine and its load (recorded with them).
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { parseFlags, runCli } from '../../gpu-service/src/cli/cli-flags.ts'
import type { RunRequest } from '../../shared/run-protocol.ts'
import { MAX_STEPS } from '../../shared/sampling-options.ts'
import { runDirect } from './direct-run.ts'
import { startBareWorker, startLocalStack } from './local-stack.ts'
import { type LatencySummary, markdownTable, round, summarize as summary } from './report.ts'

const USAGE = `usage: npm run bench:edge -- [--hits N] [--misses N] [--steps N] [--out DIR] [--before FILE]

  --hits N       cache-hit POSTs, image GETs and GET /v1/models, each (default 200)
  --misses N     new requests, each paired with the same run sent straight to the gpu-service (default 60)
  --steps N      sampler steps of each run (default 10)
  --out DIR      where edge.json and edge.md go (default docs/bench)
  --before FILE  an earlier edge.json: the page also compares the two runs`

const OPTIONS = {
  hits: { type: 'string' },
  misses: { type: 'string' },
  steps: { type: 'string' },
  out: { type: 'string' },
  before: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

const argsSchema = z.strictObject({
  hits: z.coerce.number().int().min(1).default(200),
  // 60 pairs: on a shared 2-core machine the paired difference of 30 moved by 10 ms between runs.
  misses: z.coerce.number().int().min(1).default(60),
  steps: z.coerce.number().int().min(1).max(MAX_STEPS).default(10),
  out: z.string().default('docs/bench'),
  before: z.string().optional(),
  help: z.boolean().default(false),
})

async function timed(action: () => Promise<void>): Promise<number> {
  const started = performance.now()
  await action()
  return performance.now() - started
}

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, OPTIONS, argsSchema)
  if (args.help) {
    console.log(USAGE)
    return
  }
  const { hits, misses, steps } = args
  const stack = await startLocalStack()
  const bare = await startBareWorker().catch(async (error: unknown) => {
    await stack.stop()
    throw error
  })
  try {
    const authorization = `Bearer ${stack.apiKey}`
    const generate = async (body: object, prefer?: string) => {
      const response = await fetch(`${stack.edgeUrl}/v1/generations`, {
        method: 'POST',
        headers: {
          authorization,
          'content-type': 'application/json',
          ...(prefer ? { prefer } : {}),
        },
        body: JSON.stringify(body),
      })
      const job = (await response.json()) as { status: string; urls: { images?: string[] } }
      if (job.status !== 'succeeded')
        throw new Error(`job ended ${job.status} (${response.status})`)
      return job
    }
    const request = (seed: number): RunRequest => ({
      classIndex: 7,
      count: 1,
      steps,
      heavySchedule: { every: 4 },
      guidance: 2,
      seed,
      previewEvery: 0,
    })
    const publicBody = (seed: number) => ({
      class: 7,
      steps,
      heavySchedule: { every: 4 },
      guidance: 2,
      seed,
    })

    // Warm both paths (module load, first Durable Object, ONNX sessions) before measuring.
    const warm = await generate(publicBody(1), 'wait=60')
    for (let index = 0; index < 5; index++) await generate(publicBody(1))

    const hitPost: number[] = []
    const hitImage: number[] = []
    const floor: number[] = []
    const bareFloor: number[] = []
    const imageUrl = warm.urls.images?.[0] ?? ''
    for (let index = 0; index < hits; index++) {
      hitPost.push(await timed(async () => void (await generate(publicBody(1)))))
      hitImage.push(
        await timed(async () => {
          const response = await fetch(imageUrl)
          await response.arrayBuffer()
          if (!response.ok) throw new Error(`image ${response.status}`)
        }),
      )
      floor.push(
        await timed(async () => {
          const response = await fetch(`${stack.edgeUrl}/v1/models`)
          await response.arrayBuffer()
          if (!response.ok) throw new Error(`models ${response.status}`)
        }),
      )
      bareFloor.push(
        await timed(async () => {
          const response = await fetch(bare.url)
          await response.arrayBuffer()
          if (!response.ok) throw new Error(`bare worker ${response.status}`)
        }),
      )
    }

    const missEdge: number[] = []
    const missDirect: number[] = []
    const added: number[] = []
    for (let index = 0; index < misses; index++) {
      const seed = 10_000 + index
      const direct = await timed(async () => {
        await runDirect({
          backendUrl: stack.backendUrl,
          secret: stack.backendSecret,
          request: request(seed),
          requestId: `bench-direct-${index}`,
        })
      })
      const edge = await timed(async () => void (await generate(publicBody(seed), 'wait=60')))
      missDirect.push(direct)
      missEdge.push(edge)
      added.push(edge - direct)
    }

    const report = {
      measuredAt: new Date().toISOString(),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        node: process.version,
        loadAverage1m: round(loadavg()[0] ?? 0),
      },
      setup: {
        stack:
          'wrangler dev (local workerd, Durable Objects, R2, KV) + gpu-service on CPU, loopback',
        request: { class: 7, steps, heavyEvery: 4, guidance: 2, count: 1 },
        note: 'sequential requests; the gpu-service sees one run at a time',
      },
      cacheHit: {
        'POST /v1/generations (200 from cache)': summary(hitPost),
        'GET /v1/results/<key>.png (Cache API)': summary(hitImage),
        'GET /v1/models (no storage: the floor)': summary(floor),
        'GET of a bare worker (no edge code at all)': summary(bareFloor),
      },
      miss: {
        'gpu-service direct (POST /v1/runs to result)': summary(missDirect),
        'edge (POST /v1/generations, Prefer: wait)': summary(missEdge),
        'added by the edge (paired difference)': summary(added),
      },
    }
    await mkdir(args.out, { recursive: true })
    await writeFile(join(args.out, 'edge.json'), `${JSON.stringify(report, null, 2)}\n`)
    const table = (entries: Record<string, ReturnType<typeof summary>>) =>
      markdownTable(
        ['path', 'n', 'p50', 'p95', 'mean'],
        Object.entries(entries).map(([name, stats]) => [
          name,
          stats.n,
          stats.p50,
          stats.p95,
          stats.mean,
        ]),
      )
    const markdown = `# Edge latency (npm run bench:edge)

Measured ${report.measuredAt} on ${report.machine.cpu} (${report.machine.cores} cores, Node ${report.machine.node},
1-minute load average ${report.machine.loadAverage1m} at the end). ${report.setup.stack}; ${report.setup.note}.
Request: class 7, ${steps} steps, heavy encoder every 4 steps, guidance 2, one image. Milliseconds.

## Cache hit (no gpu-service work: all of it is the edge)

${table(report.cacheHit)}

The last two rows are the floor every request pays here. \`GET /v1/models\` is a public route that reads no
storage (no key, no Durable Object, no R2). The bare worker (edge/scripts/bare-worker/) answers \`{}\` with
no binding and no middleware, under the same \`wrangler dev\`: its time is the client, wrangler dev's proxy
worker and workerd's own dispatch, before any of the edge's code.

## Miss, relative to calling the gpu-service directly

Each pair runs the same request shape with a new seed, first straight to the gpu-service, then through the
edge; "added" is the per-pair difference.

${table(report.miss)}

Local workerd is not Cloudflare's network: R2, KV and Durable Object calls are local here, so these are the
edge's own processing costs, not production round trips.
`
    const before = args.before
      ? (JSON.parse(await readFile(args.before, 'utf8')) as typeof report)
      : undefined
    const comparison = before ? `\n${compare(before, report)}` : ''
    await writeFile(join(args.out, 'edge.md'), markdown + comparison)
    console.log(markdown + comparison)
  } finally {
    await Promise.all([stack.stop(), bare.stop()])
  }
}

runCli('bench:edge', USAGE, () => main(process.argv.slice(2)))

type Report = {
  measuredAt: string
  machine: { cpu: string; cores: number; loadAverage1m: number }
  cacheHit: Record<string, LatencySummary>
  miss: Record<string, LatencySummary>
}

/** The before/after section: p50 and p95 of every row both reports have. */
function compare(before: Report, after: Report): string {
  const rows: (string | number)[][] = []
  for (const group of ['cacheHit', 'miss'] as const) {
    for (const [name, now] of Object.entries(after[group])) {
      const then = before[group][name]
      if (then) rows.push([name, then.p50, now.p50, then.p95, now.p95])
    }
  }
  const table = markdownTable(['path', 'p50 before', 'p50 after', 'p95 before', 'p95 after'], rows)
  return `## Before and after

Before: measured ${before.measuredAt} on ${before.machine.cpu} (${before.machine.cores} cores, 1-minute load
average ${before.machine.loadAverage1m} at the end), same command. Milliseconds.

${table}
`
}
