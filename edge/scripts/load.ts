// `npm run load`: the whole local stack on loopback under more load than it may take, for a fixed time.
// Starts wrangler dev and one or two gpu-services (local-stack.ts), creates API keys whose concurrent-job
// quotas add up to less than the load, and keeps `--concurrency` requests in flight for `--seconds`:
// short runs with fresh seeds (misses), some repeats of finished ones (cache hits), waited for with
// `Prefer: wait` or followed over SSE. Every answer must be a success (200, 202) or a designed refusal
// (429, 503 as problem+json with Retry-After); every accepted job must end (followed, then polled after
// the load stops, bounded) and succeed. Records latencies of accepted jobs to their end, cache hits, and
// the resident memory of every process at start, end, peak and after an idle spell. Writes
// docs/reliability/load.json, prints a summary, and exits 1 on any failure. Every POST carries an
// Idempotency-Key; one that wrangler dev's own proxy dropped (its bare 503, see `post`) is sent again and
// counted as such. Loopback only; a measurement of this machine under its own load, not a capacity figure.
import { createWriteStream } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { PROBLEM_CONTENT_TYPE } from '../../shared/problem.ts'
import { type LocalStack, type ProcessMemory, startLocalStack } from './local-stack.ts'
import { round, summarize } from './report.ts'

const USAGE = `usage: npm run load -- [--seconds 60] [--concurrency 32] [--backends 1|2] [--steps 10]
  [--keys 2] [--key-concurrent-jobs 12] [--repeat-every 10] [--stream-every 4]
  [--settle-seconds 30] [--backend-env NAME=VALUE]... [--out docs/reliability] [--log FILE]`

function options() {
  try {
    const { values } = parseArgs({
      options: {
        seconds: { type: 'string', default: '60' },
        concurrency: { type: 'string', default: '32' },
        backends: { type: 'string', default: '1' },
        steps: { type: 'string', default: '10' },
        keys: { type: 'string', default: '2' },
        'key-concurrent-jobs': { type: 'string', default: '12' },
        'repeat-every': { type: 'string', default: '10' },
        'stream-every': { type: 'string', default: '4' },
        'settle-seconds': { type: 'string', default: '30' },
        'backend-env': { type: 'string', multiple: true, default: [] },
        out: { type: 'string', default: 'docs/reliability' },
        log: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
    if (values.help) {
      console.log(USAGE)
      process.exit(0)
    }
    const count = (flag: keyof typeof values, min: number, max: number) => {
      const text = String(values[flag])
      const value = Number(text)
      if (!/^\d+$/.test(text) || value < min || value > max) {
        throw new Error(`--${flag} must be a whole number from ${min} to ${max}, not ${text}`)
      }
      return value
    }
    const backendEnv: Record<string, string> = {}
    for (const entry of values['backend-env']) {
      const [name, ...rest] = entry.split('=')
      if (!name || rest.length === 0)
        throw new Error(`--backend-env takes NAME=VALUE, not ${entry}`)
      backendEnv[name] = rest.join('=')
    }
    return {
      seconds: count('seconds', 1, 3600),
      concurrency: count('concurrency', 1, 1000),
      backends: count('backends', 1, 2),
      steps: count('steps', 1, 1000),
      keys: count('keys', 1, 100),
      keyConcurrentJobs: count('key-concurrent-jobs', 1, 1000),
      repeatEvery: count('repeat-every', 0, 1000),
      streamEvery: count('stream-every', 0, 1000),
      settleSeconds: count('settle-seconds', 0, 600),
      backendEnv,
      out: values.out,
      /** Every output line of the stack's processes goes here (wrangler at log level info). */
      log: values.log,
    }
  } catch (error) {
    console.error(`npm run load: ${(error as Error).message}\n\n${USAGE}`)
    process.exit(64)
  }
}

const settings = options()
/** A request the tool waits on this long in one POST (the API's maximum). */
const PREFER_WAIT_SECONDS = 60
/** After the load stops, jobs not yet seen ending are polled for at most this long. */
const DRAIN_TIMEOUT_MS = 120_000
/** How long a refused caller waits before its next request (it does not honour Retry-After: load). */
const REFUSAL_PAUSE_MS = 100
const TERMINAL = new Set(['succeeded', 'failed', 'canceled'])

interface Job {
  id: string
  key: string
  body: GenerationBody
  sentAt: number
  /** When the tool saw it end. */
  endedAt?: number
  status?: string
  error?: unknown
}

interface GenerationBody {
  class: number
  steps: number
  heavySchedule: { every: number }
  seed: number
}

interface GenerationAnswer {
  id: string
  status: string
  error?: unknown
}

const byStatus: Record<string, number> = {}
const refusals: Record<string, number> = {}
const failures: string[] = []
/** Failures by kind, e.g. `POST 503` or `job failed`. */
const failureKinds: Record<string, number> = {}
const jobs = new Map<string, Job>()
const succeededBodies: GenerationBody[] = []
const cacheHitMs: number[] = []
let sent = 0
let nextSeed = 1_000_000 + Math.floor(Math.random() * 1_000_000) * 1_000

function fail(message: string, kind: string): void {
  failures.push(message)
  failureKinds[kind] = (failureKinds[kind] ?? 0) + 1
  if (failures.length <= 10) console.error(`load: ${message}`)
}

/**
 * wrangler dev's proxy answers this 503 itself when its connection to the local worker drops mid-request
 * (workerd logs "stream disconnected prematurely"); no deployed edge has that proxy. Still a failure: a
 * client got a 5xx. Named apart so a reader can tell it from the API's own answers.
 */
const DEV_PROXY_DROP = 'Your worker restarted mid-request'
/** How often one POST is sent again after wrangler dev's proxy dropped it (with its Idempotency-Key). */
const DEV_PROXY_RETRIES = 2
/** POSTs sent again after the proxy dropped them. */
let devProxyRetries = 0

function finish(job: Job, status: string, error?: unknown): void {
  if (job.status !== undefined && TERMINAL.has(job.status)) return
  job.status = status
  job.endedAt = Date.now()
  if (error !== undefined) job.error = error
  if (status === 'succeeded') succeededBodies.push(job.body)
  else
    fail(
      `job ${job.id.slice(0, 12)}… ended ${status}: ${JSON.stringify(error ?? null)}`,
      `job ${status}`,
    )
}

async function post(
  stack: LocalStack,
  key: string,
  body: GenerationBody,
  wait: boolean,
): Promise<{ status: number; answer?: GenerationAnswer; problem?: unknown; refusal?: boolean }> {
  // As a careful client does: an Idempotency-Key on every POST, so a POST that wrangler dev's proxy
  // dropped on its way to the worker (its bare 503 "Your worker restarted mid-request": the proxy lost
  // its connection to the worker, "stream disconnected prematurely"; no deployed edge has this proxy)
  // can be sent again and get the same job. Each such retry is counted, never hidden.
  const idempotencyKey = `load-${crypto.randomUUID()}`
  let response: Response
  let text: string
  for (let attempt = 0; ; attempt++) {
    response = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        'idempotency-key': idempotencyKey,
        ...(wait ? { prefer: `wait=${PREFER_WAIT_SECONDS}` } : {}),
      },
      body: JSON.stringify(body),
    })
    text = await response.text()
    const dropped = response.status === 503 && text.startsWith(DEV_PROXY_DROP)
    if (!dropped || attempt >= DEV_PROXY_RETRIES) break
    devProxyRetries += 1
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = text.slice(0, 200)
  }
  if (response.status === 200 || response.status === 202) {
    return { status: response.status, answer: parsed as GenerationAnswer }
  }
  // A designed refusal is a problem+json with its type and Retry-After; a bare 503 (a proxy, a worker
  // being reloaded) is not one.
  const refusal =
    (response.status === 429 || response.status === 503) &&
    (response.headers.get('content-type') ?? '').startsWith(PROBLEM_CONTENT_TYPE) &&
    typeof (parsed as { type?: unknown }).type === 'string' &&
    response.headers.has('retry-after')
  return { status: response.status, problem: parsed, refusal }
}

/** Follows a job's SSE stream to its terminal event: `ended`, `refused` (429/503) or `cut` short. */
async function follow(stack: LocalStack, job: Job): Promise<'ended' | 'refused' | 'cut'> {
  const response = await fetch(`${stack.edgeUrl}/v1/generations/${job.id}/events`, {
    headers: { authorization: `Bearer ${job.key}` },
    signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS),
  })
  if (response.status !== 200 || !response.body) {
    const text = await response.text()
    const problem = (response.headers.get('content-type') ?? '').startsWith(PROBLEM_CONTENT_TYPE)
    if ((response.status === 429 || response.status === 503) && problem) return 'refused'
    fail(
      `GET events answered ${response.status}: ${text.slice(0, 200)}`,
      `GET events ${response.status}`,
    )
    return 'cut'
  }
  const messages = response.body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())
  for await (const message of messages) {
    if (message.event && TERMINAL.has(message.event)) {
      const data = JSON.parse(message.data) as { problem?: unknown }
      finish(job, message.event, data.problem)
      return 'ended'
    }
  }
  return 'cut'
}

/** One caller: a request at a time until the deadline, each followed to its end. */
async function caller(stack: LocalStack, keys: string[], index: number, deadline: number) {
  let turn = 0
  while (Date.now() < deadline) {
    turn += 1
    const key = keys[(index + turn) % keys.length] as string
    const repeat =
      settings.repeatEvery > 0 && turn % settings.repeatEvery === 0 && succeededBodies.length > 0
    const body: GenerationBody = repeat
      ? (succeededBodies[Math.floor(Math.random() * succeededBodies.length)] as GenerationBody)
      : {
          class: nextSeed % 10,
          steps: settings.steps,
          heavySchedule: { every: 4 },
          seed: nextSeed++,
        }
    const stream = !repeat && settings.streamEvery > 0 && turn % settings.streamEvery === 0
    const sentAt = Date.now()
    sent += 1
    let outcome: Awaited<ReturnType<typeof post>>
    try {
      outcome = await post(stack, key, body, !stream)
    } catch (error) {
      byStatus.network = (byStatus.network ?? 0) + 1
      fail(`POST failed: ${(error as Error).message}`, 'POST network error')
      continue
    }
    byStatus[outcome.status] = (byStatus[outcome.status] ?? 0) + 1
    if (!outcome.answer && !outcome.refusal) {
      const proxy = String(outcome.problem).startsWith(DEV_PROXY_DROP)
      fail(
        `POST answered ${outcome.status}: ${JSON.stringify(outcome.problem).slice(0, 300)}`,
        proxy ? `POST ${outcome.status} from wrangler dev's proxy` : `POST ${outcome.status}`,
      )
      continue
    }
    if (!outcome.answer) {
      const label = `${outcome.status} ${(outcome.problem as { type: string }).type}`
      refusals[label] = (refusals[label] ?? 0) + 1
      await new Promise((resolve) => setTimeout(resolve, REFUSAL_PAUSE_MS))
      continue
    }
    const answer = outcome.answer
    if (repeat && outcome.status === 200 && answer.status === 'succeeded') {
      cacheHitMs.push(Date.now() - sentAt)
      continue
    }
    const job: Job = jobs.get(`${key}:${answer.id}`) ?? { id: answer.id, key, body, sentAt }
    jobs.set(`${key}:${answer.id}`, job)
    if (TERMINAL.has(answer.status)) finish(job, answer.status, answer.error)
    else if (stream) {
      const followed = await follow(stack, job).catch((error: unknown) => error)
      // A stream may only end with the job; the job is still polled to its end afterwards.
      if (followed !== 'ended' && followed !== 'refused' && job.status === undefined) {
        fail(
          `the event stream of ${job.id.slice(0, 12)}… ended before the job: ${String(followed)}`,
          'event stream cut short',
        )
      }
    }
  }
}

/** Polls every job not yet seen ending until it ends or the drain time is over. */
async function drain(stack: LocalStack): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS
  let open = [...jobs.values()].filter((job) => job.status === undefined)
  while (open.length > 0 && Date.now() < deadline) {
    for (const job of open) {
      const response = await fetch(`${stack.edgeUrl}/v1/generations/${job.id}`, {
        headers: { authorization: `Bearer ${job.key}` },
      })
      if (response.status !== 200) {
        fail(`GET ${job.id.slice(0, 12)}… answered ${response.status}`, `GET ${response.status}`)
        job.status = `http-${response.status}`
        continue
      }
      const answer = (await response.json()) as GenerationAnswer
      if (TERMINAL.has(answer.status)) finish(job, answer.status, answer.error)
    }
    open = open.filter((job) => job.status === undefined)
    if (open.length > 0) await new Promise((resolve) => setTimeout(resolve, 250))
  }
  for (const job of open) {
    fail(`job ${job.id.slice(0, 12)}… did not end within the drain time`, 'job never ended')
  }
}

/** Each process's resident memory, in MiB. */
function memoryTable(sample: ProcessMemory[]) {
  return Object.fromEntries(
    sample.map((entry) => [
      entry.name,
      {
        rssMiB: round(entry.rssBytes / 2 ** 20),
        processes: entry.processes.map((member) => ({
          command: member.command,
          rssMiB: round(member.rssBytes / 2 ** 20),
        })),
      },
    ]),
  )
}

/** Each process's RSS change from one sample to a later one, in MiB. */
function growth(from: ProcessMemory[], to: ProcessMemory[]): Record<string, number> {
  return Object.fromEntries(
    to.map((entry) => {
      const start = from.find((first) => first.name === entry.name)
      return [entry.name, round((entry.rssBytes - (start?.rssBytes ?? 0)) / 2 ** 20)]
    }),
  )
}

async function main(): Promise<number> {
  console.log(
    `load: starting the stack (${settings.backends} gpu-service${settings.backends > 1 ? 's' : ''})…`,
  )
  const log = settings.log === undefined ? undefined : createWriteStream(settings.log)
  const stack = await startLocalStack({
    backends: settings.backends,
    backendEnv: settings.backendEnv,
    ...(log && {
      edgeLogLevel: 'info' as const,
      onLog: (source: string, line: string) => log.write(`${source} ${line}\n`),
    }),
  })
  try {
    const keys: string[] = []
    for (let index = 0; index < settings.keys; index++) {
      keys.push(
        await stack.createKey(`load-${index + 1}`, {
          requestsPerMinute: 100_000,
          concurrentJobs: settings.keyConcurrentJobs,
        }),
      )
    }
    // Warm the worker, the job objects and the ONNX sessions, so start-up is not measured as load.
    const warm = await post(
      stack,
      keys[0] as string,
      { class: 0, steps: settings.steps, heavySchedule: { every: 4 }, seed: 1 },
      true,
    )
    if (warm.answer?.status !== 'succeeded') throw new Error(`warm-up: ${JSON.stringify(warm)}`)

    const memoryAtStart = await stack.memory()
    const peakRss = new Map(memoryAtStart.map((entry) => [entry.name, entry.rssBytes]))
    const sampler = setInterval(async () => {
      for (const entry of await stack.memory()) {
        peakRss.set(entry.name, Math.max(peakRss.get(entry.name) ?? 0, entry.rssBytes))
      }
    }, 2_000)
    console.log(
      `load: ${settings.concurrency} callers for ${settings.seconds} s, ${settings.keys} keys of ` +
        `${settings.keyConcurrentJobs} concurrent jobs, ${settings.steps}-step runs…`,
    )
    const startedAt = Date.now()
    const deadline = startedAt + settings.seconds * 1000
    await Promise.all(
      Array.from({ length: settings.concurrency }, (_, index) =>
        caller(stack, keys, index, deadline),
      ),
    )
    const loadEndedAt = Date.now()
    await drain(stack)
    clearInterval(sampler)
    const memoryAtEnd = await stack.memory()
    for (const entry of memoryAtEnd) {
      peakRss.set(entry.name, Math.max(peakRss.get(entry.name) ?? 0, entry.rssBytes))
    }
    // Idle for a while: what the processes give back (caches, idle Durable Objects) is not a leak.
    await new Promise((resolve) => setTimeout(resolve, settings.settleSeconds * 1000))
    const memorySettled = await stack.memory()
    const backendCounters = await Promise.all(
      stack.backendUrls.map(async (url, index) => {
        const text = await (await fetch(`${url}/metrics`)).text()
        const runs = Object.fromEntries(
          [...text.matchAll(/^dualrate_runs_total\{outcome="([a-z_]+)"\} (\d+)$/gm)].map(
            (match) => [match[1], Number(match[2])],
          ),
        )
        return [stack.backends[index]?.name ?? url, { runsByOutcome: runs }] as const
      }),
    )

    const accepted = [...jobs.values()]
    const ended = accepted.filter((job) => job.endedAt !== undefined)
    const terminal: Record<string, number> = {}
    for (const job of accepted)
      terminal[job.status ?? 'open'] = (terminal[job.status ?? 'open'] ?? 0) + 1
    const toEnd = ended
      .filter((job) => job.status === 'succeeded')
      .map((job) => (job.endedAt as number) - job.sentAt)
    const loadSeconds = (loadEndedAt - startedAt) / 1000
    const report = {
      measuredAt: new Date().toISOString(),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: round(totalmem() / 2 ** 30),
        node: process.version,
        loadAverage1mAtEnd: round(loadavg()[0] ?? 0),
      },
      setup: {
        stack: `wrangler dev + ${settings.backends} gpu-service(s) on CPU, loopback`,
        seconds: settings.seconds,
        concurrency: settings.concurrency,
        keys: settings.keys,
        keyConcurrentJobs: settings.keyConcurrentJobs,
        request: { steps: settings.steps, heavyEvery: 4, guidance: 'default', count: 1 },
        repeatEvery: settings.repeatEvery,
        streamEvery: settings.streamEvery,
        backendEnv: settings.backendEnv,
      },
      requests: {
        sent,
        perSecond: round(sent / loadSeconds),
        byStatus,
        refusals,
        cacheHits: cacheHitMs.length,
        /** POSTs wrangler dev's proxy dropped, sent again with their Idempotency-Key (not API answers). */
        devProxyRetries,
      },
      jobs: {
        accepted: accepted.length,
        byEnd: terminal,
        succeededPerSecond: round(toEnd.length / loadSeconds),
      },
      latencyMs: {
        acceptedJobToEnd: summarize(toEnd),
        cacheHit: summarize(cacheHitMs),
      },
      memory: {
        start: memoryTable(memoryAtStart),
        end: memoryTable(memoryAtEnd),
        [`after${settings.settleSeconds}sIdle`]: memoryTable(memorySettled),
        peakRssMiB: Object.fromEntries(
          [...peakRss].map(([name, bytes]) => [name, round(bytes / 2 ** 20)]),
        ),
        growthMiB: growth(memoryAtStart, memoryAtEnd),
        growthAfterIdleMiB: growth(memoryAtStart, memorySettled),
      },
      backends: Object.fromEntries(backendCounters),
      failures: { count: failures.length, byKind: failureKinds, first: failures.slice(0, 20) },
      passed: failures.length === 0,
    }
    await mkdir(settings.out, { recursive: true })
    await writeFile(join(settings.out, 'load.json'), `${JSON.stringify(report, null, 2)}\n`)
    printSummary(report)
    return report.passed ? 0 : 1
  } finally {
    await stack.stop()
    log?.end()
  }
}

function printSummary(report: {
  requests: {
    sent: number
    perSecond: number
    byStatus: Record<string, number>
    devProxyRetries: number
  }
  jobs: { accepted: number; byEnd: Record<string, number> }
  latencyMs: Record<string, { n: number; p50: number; p95: number; p99: number }>
  memory: {
    growthMiB: Record<string, number>
    growthAfterIdleMiB: Record<string, number>
    peakRssMiB: Record<string, number>
  }
  failures: { count: number; byKind: Record<string, number> }
  passed: boolean
}) {
  const line = (entries: Record<string, number>) =>
    Object.entries(entries)
      .map(([name, value]) => `${name} ${value}`)
      .join(', ')
  const latency = (name: string) => {
    const stats = report.latencyMs[name]
    return stats ? `n ${stats.n}, p50 ${stats.p50}, p95 ${stats.p95}, p99 ${stats.p99} ms` : ''
  }
  console.log(
    [
      '',
      `requests     ${report.requests.sent} (${report.requests.perSecond}/s): ${line(report.requests.byStatus)}`,
      `  retried    ${report.requests.devProxyRetries} POSTs dropped by wrangler dev's proxy, sent again with their Idempotency-Key`,
      `jobs         ${report.jobs.accepted} accepted: ${line(report.jobs.byEnd)}`,
      `to the end   ${latency('acceptedJobToEnd')}`,
      `cache hits   ${latency('cacheHit')}`,
      `RSS growth   ${line(report.memory.growthMiB)} MiB (peak ${line(report.memory.peakRssMiB)} MiB)`,
      `  after idle ${line(report.memory.growthAfterIdleMiB)} MiB (${settings.settleSeconds} s later)`,
      `failures     ${report.failures.count}${report.failures.count ? `: ${line(report.failures.byKind)}` : ''}`,
      `${report.passed ? 'PASSED' : 'FAILED'}; written to ${join(settings.out, 'load.json')}`,
    ].join('\n'),
  )
}

process.exit(await main())
