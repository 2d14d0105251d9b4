// `npm run sim:fleet`: a local fleet of three gpu-services behind the edge (wrangler dev), on loopback. The
// fleet is uneven on purpose: by default the third gpu-service's ONNX Runtime gets one intra-op thread, the
// others two, and each is capped by a cgroup quota (cpu-limit.ts) to a machine of its own: 0.6, 0.6 and
// 0.2 cores (`--cpu-limit 1:0.6 --cpu-limit 2:0.6 --cpu-limit 3:0.2`; `--cpu-limit none` for no caps).
// On one shared machine the caps are what make the backends separate machines of fixed sizes: fewer
// threads alone only give one a smaller share of cores the others leave idle, and an uncapped fleet's
// speeds move with whatever else the cores run. Phases, each on a fresh stack (local-stack.ts) and each a closed loop of
// `--concurrency` callers sending 50-step one-image jobs (fresh seeds: no cache hits) for `--seconds`:
//   rotation  BACKEND_ROUTING=rotation, the earlier per-job rotation;
//   load      BACKEND_ROUTING=load, the power of two choices by reported load;
//   faults    load routing, SIGTERM to the first gpu-service at `--sigterm-at` s (it drains) and SIGKILL
//             to the third at `--sigkill-at` s. Every accepted job must end `succeeded`, and its PNG
//             bytes must equal a direct run of the same request on the surviving gpu-service.
// `--phases` may name a policy more than once (rotation,load,load,rotation: drift on a shared machine
// then weighs on both alike); its phases are pooled for the comparison. Reports images/s, latency POST
// to end (p50/p95/p99) and how the jobs spread over the backends (each gpu-service's `run ended` log
// lines, matched to the jobs by run id), and writes docs/reliability/fleet.json and fleet.md (`--name`).
// Exits 1 when a fault phase lost a job or changed a pixel. Loopback only.
import { createWriteStream } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { RunRequest } from '../../shared/run-protocol.ts'
import { type CpuLimit, createCpuLimit } from './cpu-limit.ts'
import { runDirect } from './direct-run.ts'
import { type LocalStack, startLocalStack } from './local-stack.ts'
import { groupMembers } from './process-group.ts'
import { type LatencySummary, markdownTable, round, summarize } from './report.ts'

const USAGE = `usage: npm run sim:fleet -- [--seconds 60] [--concurrency 16] [--steps 50]
  [--threads 2,2,1] [--backend-env N:NAME=VALUE]... [--cpu-limit N:CORES|none]...
  [--phases rotation,load,faults]
  [--sigterm-at 20] [--sigkill-at 40] [--verify all|N] [--out docs/reliability] [--name fleet]
  [--log FILE]`

const PHASES = ['rotation', 'load', 'faults'] as const
type Phase = (typeof PHASES)[number]

function options() {
  try {
    const { values } = parseArgs({
      options: {
        seconds: { type: 'string', default: '60' },
        concurrency: { type: 'string', default: '16' },
        steps: { type: 'string', default: '50' },
        threads: { type: 'string', default: '2,2,1' },
        'backend-env': { type: 'string', multiple: true, default: [] },
        'cpu-limit': { type: 'string', multiple: true, default: ['1:0.6', '2:0.6', '3:0.2'] },
        name: { type: 'string', default: 'fleet' },
        phases: { type: 'string', default: PHASES.join(',') },
        'sigterm-at': { type: 'string', default: '20' },
        'sigkill-at': { type: 'string', default: '40' },
        verify: { type: 'string', default: 'all' },
        out: { type: 'string', default: 'docs/reliability' },
        log: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
    if (values.help) {
      console.log(USAGE)
      process.exit(0)
    }
    const whole = (text: string, flag: string, min: number, max: number) => {
      const value = Number(text)
      if (!/^\d+$/.test(text) || value < min || value > max) {
        throw new Error(`--${flag} must be a whole number from ${min} to ${max}, not ${text}`)
      }
      return value
    }
    const threads = values.threads.split(',').map((text) => whole(text.trim(), 'threads', 1, 64))
    if (threads.length !== 3) throw new Error('--threads takes three counts, one per gpu-service')
    const phases = values.phases.split(',').map((name) => name.trim())
    for (const phase of phases) {
      if (!(PHASES as readonly string[]).includes(phase)) {
        throw new Error(`--phases takes ${PHASES.join(', ')}, not ${phase}`)
      }
    }
    // N:NAME=VALUE adds to the Nth gpu-service's environment, e.g. 3:DUALRATE_MAX_ACTIVE_RUNS=1.
    const backendEnv: Record<string, string>[] = [{}, {}, {}]
    for (const entry of values['backend-env']) {
      const match = /^([123]):([A-Z_][A-Z0-9_]*)=(.*)$/.exec(entry)
      if (!match) throw new Error(`--backend-env takes N:NAME=VALUE with N 1 to 3, not ${entry}`)
      const [, index, name, value] = match as unknown as [string, string, string, string]
      ;(backendEnv[Number(index) - 1] as Record<string, string>)[name] = value
    }
    // N:CORES caps the Nth gpu-service's CPU time, e.g. 3:0.2 for a fifth of a core.
    const cpuLimits: (number | undefined)[] = [undefined, undefined, undefined]
    const limitEntries = values['cpu-limit'].filter((entry) => entry !== 'none')
    if (limitEntries.length < values['cpu-limit'].length && limitEntries.length > 0) {
      throw new Error('--cpu-limit none cannot be combined with a limit')
    }
    for (const entry of limitEntries) {
      const match = /^([123]):(\d+(?:\.\d+)?)$/.exec(entry)
      const cores = Number(match?.[2])
      if (!match || !(cores >= 0.01 && cores <= 64)) {
        throw new Error(
          `--cpu-limit takes N:CORES with N 1 to 3 and CORES 0.01 to 64, or none, not ${entry}`,
        )
      }
      cpuLimits[Number(match[1]) - 1] = cores
    }
    if (!/^[a-z0-9-]+$/.test(values.name)) {
      throw new Error(`--name takes lower-case letters, digits and -, not ${values.name}`)
    }
    const seconds = whole(values.seconds, 'seconds', 1, 3600)
    // The faults land within the load (only checked when the fault phase runs).
    const faultLimit = phases.includes('faults') ? seconds : 3600
    const sigtermAt = whole(values['sigterm-at'], 'sigterm-at', 0, faultLimit)
    const sigkillAt = whole(values['sigkill-at'], 'sigkill-at', 0, faultLimit)
    return {
      seconds,
      concurrency: whole(values.concurrency, 'concurrency', 1, 256),
      steps: whole(values.steps, 'steps', 1, 1000),
      threads,
      backendEnv,
      /** CPU cores each gpu-service may use (a cgroup quota); undefined: no cap. */
      cpuLimits,
      /** The report's file name, without .json / .md. */
      name: values.name,
      phases: phases as Phase[],
      sigtermAt,
      sigkillAt,
      verify: values.verify === 'all' ? Infinity : whole(values.verify, 'verify', 0, 1_000_000),
      out: values.out,
      /** Every output line of the stacks' processes goes here (wrangler at log level info). */
      log: values.log,
    }
  } catch (error) {
    console.error(`npm run sim:fleet: ${(error as Error).message}\n\n${USAGE}`)
    process.exit(64)
  }
}

const settings = options()
const log = settings.log === undefined ? undefined : createWriteStream(settings.log)
const PREFER_WAIT_SECONDS = 60
/** After the load stops, jobs not yet ended are polled for at most this long. */
const DRAIN_TIMEOUT_MS = 120_000
/** wrangler dev's own 503 when its proxy loses the worker mid-request (see load.ts); sent again. */
const DEV_PROXY_DROP = 'Your worker restarted mid-request'
const TERMINAL = new Set(['succeeded', 'failed', 'canceled'])

interface ResolvedRequest {
  classIndex: number
  count: number
  steps: number
  heavySchedule: RunRequest['heavySchedule']
  guidance: number
  seed: number
}

interface JobAnswer {
  id: string
  status: string
  request: ResolvedRequest
  progress: { attempts: number }
  urls: { images?: string[] }
  error?: unknown
}

interface Job {
  id: string
  sentAt: number
  endedAt?: number
  status?: string
  attempts?: number
  request?: ResolvedRequest
  images?: string[]
  error?: unknown
}

/** One phase's bookkeeping. */
class PhaseRun {
  readonly jobs = new Map<string, Job>()
  readonly failures: string[] = []
  /** POST answers by status. */
  readonly answers: Record<string, number> = {}
  devProxyRetries = 0
  /** completed run ids by gpu-service, from its `run ended` log lines. */
  readonly completedRuns = new Map<string, string[]>()
  /** Every run outcome by gpu-service (completed, shutdown, disconnected...). */
  readonly outcomes = new Map<string, Record<string, number>>()
  readonly events: { atSeconds: number; what: string }[] = []
  startedAt = 0
  measuring = false

  fail(message: string): void {
    this.failures.push(message)
    if (this.failures.length <= 10) console.error(`sim:fleet: ${message}`)
  }

  /** gpu-service names by URL, to name backends in the edge's log lines. */
  backendNames = new Map<string, string>()

  /**
   * An output line while the phase measures: a gpu-service's `run ended`; the edge's routing warnings
   * (breaker opened or closed, draining) and a reload of the worker, as events.
   */
  onLine(source: string, line: string): void {
    if (!this.measuring) return
    if (source === 'edge') {
      // wrangler dev rebuilds and reloads the worker when a source file changes: in-flight requests drop.
      if (/Parsed \d+ valid header rule|Reloading/.test(line))
        this.note('wrangler dev reloaded the worker')
      const warning = /\{"level":"warn","msg":"(backend [a-z ]+)","backend":"([^"]+)"/.exec(line)
      if (warning)
        this.note(`edge: ${warning[1]}: ${this.backendNames.get(warning[2] ?? '') ?? warning[2]}`)
      return
    }
    if (!source.startsWith('gpu-service') || !line.includes('"run ended"')) return
    let entry: { msg?: string; runId?: string; outcome?: string }
    try {
      entry = JSON.parse(line)
    } catch {
      return
    }
    if (entry.msg !== 'run ended' || !entry.runId || !entry.outcome) return
    const outcomes = this.outcomes.get(source) ?? {}
    outcomes[entry.outcome] = (outcomes[entry.outcome] ?? 0) + 1
    this.outcomes.set(source, outcomes)
    if (entry.outcome !== 'completed') return
    const runs = this.completedRuns.get(source) ?? []
    runs.push(entry.runId)
    this.completedRuns.set(source, runs)
  }

  note(what: string): void {
    const atSeconds = round((Date.now() - this.startedAt) / 1000)
    this.events.push({ atSeconds, what })
    console.log(`sim:fleet:   ${atSeconds} s: ${what}`)
  }
}

let nextSeed = 2_000_000 + Math.floor(Math.random() * 1_000_000) * 1_000

async function post(stack: LocalStack, phase: PhaseRun, body: object): Promise<Response> {
  const idempotencyKey = `sim-${crypto.randomUUID()}`
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': idempotencyKey,
        prefer: `wait=${PREFER_WAIT_SECONDS}`,
      },
      body: JSON.stringify(body),
    })
    if (response.status !== 503 || attempt >= 2) return response
    const text = await response.clone().text()
    if (!text.startsWith(DEV_PROXY_DROP)) return response
    phase.devProxyRetries += 1
  }
}

function finish(job: Job, answer: JobAnswer): void {
  job.status = answer.status
  job.endedAt = Date.now()
  job.attempts = answer.progress.attempts
  job.request = answer.request
  if (answer.urls.images) job.images = answer.urls.images
  if (answer.error !== undefined) job.error = answer.error
}

/** One caller of the closed loop: a job at a time, each waited for, until the deadline. */
async function caller(stack: LocalStack, phase: PhaseRun, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const seed = nextSeed++
    const body = {
      class: seed % 10,
      count: 1,
      steps: settings.steps,
      heavySchedule: { every: 4 },
      seed,
    }
    const sentAt = Date.now()
    let response: Response
    try {
      response = await post(stack, phase, body)
    } catch (error) {
      phase.fail(`POST failed: ${(error as Error).message}`)
      continue
    }
    phase.answers[response.status] = (phase.answers[response.status] ?? 0) + 1
    if (response.status !== 200 && response.status !== 202) {
      phase.fail(`POST answered ${response.status}: ${(await response.text()).slice(0, 200)}`)
      continue
    }
    const answer = (await response.json()) as JobAnswer
    const job: Job = { id: answer.id, sentAt }
    phase.jobs.set(answer.id, job)
    if (TERMINAL.has(answer.status)) finish(job, answer)
  }
}

/** Polls the jobs not yet ended (a wait longer than Prefer allows) until they end or time runs out. */
async function drain(stack: LocalStack, phase: PhaseRun): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS
  let open = [...phase.jobs.values()].filter((job) => job.status === undefined)
  while (open.length > 0 && Date.now() < deadline) {
    for (const job of open) {
      const response = await fetch(`${stack.edgeUrl}/v1/generations/${job.id}`, {
        headers: { authorization: `Bearer ${stack.apiKey}` },
      })
      if (response.ok) {
        const answer = (await response.json()) as JobAnswer
        if (TERMINAL.has(answer.status)) finish(job, answer)
      }
    }
    open = open.filter((job) => job.status === undefined)
    if (open.length > 0) await new Promise((resolve) => setTimeout(resolve, 250))
  }
  for (const job of open)
    phase.fail(`job ${job.id.slice(0, 12)}… did not end within the drain time`)
  for (const job of phase.jobs.values()) {
    if (job.status !== undefined && job.status !== 'succeeded') {
      phase.fail(
        `job ${job.id.slice(0, 12)}… ended ${job.status}: ${JSON.stringify(job.error ?? null)}`,
      )
    }
  }
}

/** Which gpu-service completed each job (its run ids begin with the job id's first 24 digits). */
function backendOfJobs(phase: PhaseRun): Map<string, string> {
  const byPrefix = new Map<string, string>()
  for (const [source, runIds] of phase.completedRuns) {
    for (const runId of runIds) byPrefix.set(runId.slice(0, 24), source)
  }
  const byJob = new Map<string, string>()
  for (const job of phase.jobs.values()) {
    const source = byPrefix.get(job.id.slice(0, 24))
    if (source) byJob.set(job.id, source)
  }
  return byJob
}

interface PhaseReport {
  phase: Phase
  routing: 'rotation' | 'load'
  loadAverage1m: { start: number; end: number }
  jobs: { accepted: number; succeeded: number; failedOver: number; byEnd: Record<string, number> }
  imagesPerSecond: number
  latencyMs: LatencySummary
  /** Jobs completed by each gpu-service (their `run ended` lines), with the latency of those jobs. */
  backends: Record<
    string,
    {
      intraOpThreads: number
      cpuLimitCores?: number
      jobs: number
      share: number
      latencyMs: LatencySummary
      runOutcomes: Record<string, number>
    }
  >
  postAnswers: Record<string, number>
  devProxyRetries: number
  events: { atSeconds: number; what: string }[]
  failures: { count: number; first: string[] }
  pixels?: PixelCheck
}

/** A phase's raw figures, for pooling phases of the same routing (not written out). */
interface PhaseSample {
  routing: 'rotation' | 'load'
  latenciesMs: number[]
  images: number
  seconds: number
}
const samples = new Map<PhaseReport, PhaseSample>()

interface PixelCheck {
  compared: number
  identical: number
  differing: string[]
  survivor: string
}

async function runPhase(phaseName: Phase): Promise<PhaseReport> {
  const routing = phaseName === 'rotation' ? 'rotation' : 'load'
  const phase = new PhaseRun()
  console.log(
    `sim:fleet: ${phaseName}: starting 3 gpu-services (intra-op threads ${settings.threads.join(', ')}) and the edge (BACKEND_ROUTING=${routing})…`,
  )
  const stack = await startLocalStack({
    backends: settings.threads.map((threads, index) => ({
      env: { DUALRATE_INTRA_OP_THREADS: String(threads), ...settings.backendEnv[index] },
    })),
    edgeVars: { BACKEND_ROUTING: routing },
    concurrentJobs: settings.concurrency * 2,
    requestsPerMinute: 100_000,
    onLog: (source, line) => {
      phase.onLine(source, line)
      log?.write(`${phaseName} ${source} ${line}\n`)
    },
    ...(log && { edgeLogLevel: 'info' as const }),
  })
  const limits: CpuLimit[] = []
  try {
    for (const [index, cores] of settings.cpuLimits.entries()) {
      const backend = stack.backends[index]
      if (cores === undefined || backend?.pid === undefined) continue
      const limit = await createCpuLimit(`dualrate-sim-${backend.name}`, cores).catch(
        (error: Error) => {
          throw new Error(`${error.message} (--cpu-limit none runs the fleet uncapped)`)
        },
      )
      limits.push(limit)
      await limit.add((await groupMembers(backend.pid)).map((member) => member.pid))
    }
    // Warm the worker, the job objects and each backend's first batched calls; not measured.
    await Promise.all(
      Array.from({ length: settings.concurrency }, async (_, index) => {
        const response = await post(stack, phase, { class: index % 10, steps: 10, seed: index + 1 })
        await response.body?.cancel()
      }),
    )
    for (const key of Object.keys(phase.answers)) delete phase.answers[key]
    for (const child of stack.backends) phase.backendNames.set(child.url, child.name)
    const loadAtStart = round(loadavg()[0] ?? 0)
    console.log(
      `sim:fleet: ${phaseName}: ${settings.concurrency} callers for ${settings.seconds} s, ${settings.steps}-step jobs (load average ${loadAtStart})…`,
    )
    phase.startedAt = Date.now()
    phase.measuring = true
    const deadline = phase.startedAt + settings.seconds * 1000
    const timers: NodeJS.Timeout[] = []
    if (phaseName === 'faults') {
      const [drained, , killed] = stack.backends
      timers.push(
        setTimeout(() => {
          phase.note(`SIGTERM to ${drained?.name} (drains)`)
          drained?.kill('SIGTERM')
        }, settings.sigtermAt * 1000),
        setTimeout(() => {
          phase.note(`SIGKILL to ${killed?.name}`)
          killed?.kill('SIGKILL')
        }, settings.sigkillAt * 1000),
      )
    }
    await Promise.all(
      Array.from({ length: settings.concurrency }, () => caller(stack, phase, deadline)),
    )
    for (const timer of timers) clearTimeout(timer)
    await drain(stack, phase)
    // The `run ended` lines of the last runs are written before their results; let them arrive.
    await new Promise((resolve) => setTimeout(resolve, 500))
    phase.measuring = false
    const report = summarizePhase(phaseName, routing, phase, loadAtStart, stack)
    if (phaseName === 'faults') report.pixels = await comparePixels(stack, phase)
    for (const message of report.pixels?.differing ?? []) phase.fail(message)
    report.failures = { count: phase.failures.length, first: phase.failures.slice(0, 20) }
    return report
  } finally {
    await stack.stop()
    for (const limit of limits) await limit.release()
  }
}

function summarizePhase(
  phaseName: Phase,
  routing: 'rotation' | 'load',
  phase: PhaseRun,
  loadAtStart: number,
  stack: LocalStack,
): PhaseReport {
  const jobs = [...phase.jobs.values()]
  const succeeded = jobs.filter((job) => job.status === 'succeeded')
  const latency = (list: Job[]) =>
    summarize(list.map((job) => (job.endedAt as number) - job.sentAt))
  const lastEnd = Math.max(...succeeded.map((job) => job.endedAt as number))
  const byEnd: Record<string, number> = {}
  for (const job of jobs) byEnd[job.status ?? 'open'] = (byEnd[job.status ?? 'open'] ?? 0) + 1
  const backendOf = backendOfJobs(phase)
  const backends: PhaseReport['backends'] = {}
  for (const [index, child] of stack.backends.entries()) {
    const mine = succeeded.filter((job) => backendOf.get(job.id) === child.name)
    backends[child.name] = {
      intraOpThreads: settings.threads[index] ?? 0,
      ...(settings.cpuLimits[index] !== undefined && { cpuLimitCores: settings.cpuLimits[index] }),
      jobs: mine.length,
      share: round(mine.length / Math.max(1, succeeded.length)),
      latencyMs: latency(mine),
      runOutcomes: phase.outcomes.get(child.name) ?? {},
    }
  }
  const seconds = (lastEnd - phase.startedAt) / 1000
  const report: PhaseReport = {
    phase: phaseName,
    routing,
    loadAverage1m: { start: loadAtStart, end: round(loadavg()[0] ?? 0) },
    jobs: {
      accepted: jobs.length,
      succeeded: succeeded.length,
      failedOver: jobs.filter((job) => (job.attempts ?? 1) > 1).length,
      byEnd,
    },
    imagesPerSecond: round(succeeded.length / seconds),
    latencyMs: latency(succeeded),
    backends,
    postAnswers: { ...phase.answers },
    devProxyRetries: phase.devProxyRetries,
    events: phase.events,
    failures: { count: 0, first: [] },
  }
  samples.set(report, {
    routing,
    latenciesMs: succeeded.map((job) => (job.endedAt as number) - job.sentAt),
    images: succeeded.length,
    seconds,
  })
  return report
}

/** The undisturbed phases of one routing policy, pooled: all their jobs, images over summed time. */
function pooled(phases: PhaseReport[], routing: 'rotation' | 'load') {
  const mine = phases
    .filter((phase) => phase.phase === routing)
    .map((phase) => samples.get(phase) as PhaseSample)
  if (mine.length === 0) return undefined
  const images = mine.reduce((sum, sample) => sum + sample.images, 0)
  const seconds = mine.reduce((sum, sample) => sum + sample.seconds, 0)
  return {
    phases: mine.length,
    jobs: images,
    imagesPerSecond: round(images / seconds),
    latencyMs: summarize(mine.flatMap((sample) => sample.latenciesMs)),
  }
}

/**
 * The PNG bytes each succeeded job serves against a direct run of its resolved request on the
 * surviving gpu-service (the second), `--verify` jobs of them (all by default), four at a time.
 */
async function comparePixels(stack: LocalStack, phase: PhaseRun): Promise<PixelCheck> {
  const survivor = stack.backends[1]
  if (!survivor) throw new Error('the fault phase needs three gpu-services')
  const jobs = [...phase.jobs.values()].filter((job) => job.status === 'succeeded')
  const sample = jobs.slice(0, Math.min(jobs.length, settings.verify))
  console.log(
    `sim:fleet: faults: comparing the pixels of ${sample.length} jobs with direct runs on ${survivor.name}…`,
  )
  const differing: string[] = []
  let identical = 0
  let next = 0
  const worker = async () => {
    while (next < sample.length) {
      const job = sample[next++] as Job
      const { classIndex, count, steps, heavySchedule, guidance, seed } =
        job.request as ResolvedRequest
      const request: RunRequest = {
        classIndex,
        count,
        steps,
        heavySchedule,
        guidance,
        seed,
        previewEvery: 0,
      }
      const served = await Promise.all(
        (job.images ?? []).map(
          async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer()),
        ),
      )
      const direct = await runDirect({
        backendUrl: survivor.url,
        secret: stack.backendSecret,
        request,
        requestId: `sim-verify-${job.id.slice(0, 12)}`,
      })
      const same =
        served.length === direct.images.length &&
        served.length > 0 &&
        served.every((bytes, index) =>
          Buffer.from(bytes).equals(Buffer.from(direct.images[index] as Uint8Array)),
        )
      if (same) identical += 1
      else
        differing.push(
          `job ${job.id.slice(0, 12)}… (seed ${request.seed}) differs from its direct run`,
        )
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
  return { compared: sample.length, identical, differing, survivor: survivor.name }
}

/** How the comparison was made when a policy ran more than once. */
function pooledNote(phases: PhaseReport[]): string {
  const runs = phases.filter((phase) => phase.phase === 'rotation').length
  return runs > 1 ? ` (each policy's ${runs} phases pooled)` : ''
}

/** A reduction in percent as words: "12.5 % lower", or "3 % higher" for a negative one. */
function change(reductionPercent: number): string {
  return reductionPercent >= 0
    ? `${reductionPercent} % lower`
    : `${round(-reductionPercent)} % higher`
}

/** "2 threads", with the extra environment of that gpu-service. */
function describeBackend(index: number): string {
  const threads = settings.threads[index] ?? 0
  const extra = Object.entries(settings.backendEnv[index] ?? {}).map(
    ([name, value]) => `${name}=${value}`,
  )
  const cores = settings.cpuLimits[index]
  const cap = cores === undefined ? [] : [`CPU capped at ${cores} cores (cgroup quota)`]
  return [`${threads} intra-op thread${threads > 1 ? 's' : ''}`, ...cap, ...extra].join(', ')
}

async function main(): Promise<number> {
  const command = `npm run sim:fleet${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
  const startedAt = new Date().toISOString()
  const phases: PhaseReport[] = []
  for (const phase of settings.phases) phases.push(await runPhase(phase))
  const rotation = pooled(phases, 'rotation')
  const load = pooled(phases, 'load')
  const comparison =
    rotation && load
      ? {
          p95ReductionPercent: round(100 * (1 - load.latencyMs.p95 / rotation.latencyMs.p95)),
          p50ReductionPercent: round(100 * (1 - load.latencyMs.p50 / rotation.latencyMs.p50)),
          throughputRatio: round(load.imagesPerSecond / rotation.imagesPerSecond),
          goal: 'load routing: p95 at least 25 % lower than rotation, throughput equal or better',
          goalMet:
            load.latencyMs.p95 <= 0.75 * rotation.latencyMs.p95 &&
            load.imagesPerSecond >= rotation.imagesPerSecond,
        }
      : undefined
  const faultPhases = phases.filter((phase) => phase.phase === 'faults')
  const faultsPassed = faultPhases.every((phase) => phase.failures.count === 0)
  const report = {
    measuredAt: startedAt,
    command,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: round(totalmem() / 2 ** 30),
      node: process.version,
    },
    setup: {
      stack: 'wrangler dev (local workerd) + 3 gpu-services on CPU, loopback, all on this machine',
      intraOpThreads: settings.threads,
      backendEnv: settings.backendEnv,
      cpuLimitCores: settings.cpuLimits.map((cores) => cores ?? null),
      seconds: settings.seconds,
      concurrency: settings.concurrency,
      request: { count: 1, steps: settings.steps, heavyEvery: 4, guidance: 'default (1)' },
      latency: 'POST /v1/generations (Prefer: wait=60) to the job end, client side',
      faults: { sigtermAtSeconds: settings.sigtermAt, sigkillAtSeconds: settings.sigkillAt },
    },
    phases,
    /** Each policy's undisturbed phases pooled (the comparison's basis when a policy ran more than once). */
    byRouting: { rotation, load },
    comparison,
    faultsPassed,
  }
  await mkdir(settings.out, { recursive: true })
  await writeFile(
    join(settings.out, `${settings.name}.json`),
    `${JSON.stringify(report, null, 2)}\n`,
  )
  const rows: (string | number)[][] = phases.map((phase, index) => [
    `${index + 1}. ${phase.phase}`,
    phase.routing,
    phase.jobs.accepted,
    phase.jobs.succeeded,
    phase.imagesPerSecond,
    phase.latencyMs.p50,
    phase.latencyMs.p95,
    phase.latencyMs.p99,
    Object.values(phase.backends)
      .map((backend) => backend.jobs)
      .join(' / '),
    `${phase.loadAverage1m.start} → ${phase.loadAverage1m.end}`,
  ])
  // A policy that ran more than once gets a pooled row: the comparison is made on those.
  for (const [routing, pool] of Object.entries({ rotation, load })) {
    if (!pool || pool.phases < 2) continue
    const { latencyMs } = pool
    rows.push([
      `${routing}, ${pool.phases} phases pooled`,
      routing,
      pool.jobs,
      pool.jobs,
      pool.imagesPerSecond,
      latencyMs.p50,
      latencyMs.p95,
      latencyMs.p99,
      '',
      '',
    ])
  }
  const table = markdownTable(
    [
      'phase',
      'routing',
      'jobs',
      'succeeded',
      'images/s',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'jobs by backend (1 / 2 / 3)',
      'load avg',
    ],
    rows,
  )
  const summaryLines = [
    table,
    '',
    comparison
      ? `load vs rotation: p95 ${change(comparison.p95ReductionPercent)}, p50 ${change(comparison.p50ReductionPercent)}, throughput x${comparison.throughputRatio}; goal (p95 -25 %, throughput >=) ${comparison.goalMet ? 'met' : 'not met'}`
      : '',
    ...faultPhases.map(
      (faults) =>
        `faults: ${faults.jobs.accepted} accepted, ${faults.jobs.succeeded} succeeded, ${faults.jobs.failedOver} failed over; pixels ${faults.pixels?.identical}/${faults.pixels?.compared} identical to direct runs on ${faults.pixels?.survivor}; ${faults.failures.count} failures`,
    ),
  ]
  await writeFile(join(settings.out, `${settings.name}.md`), markdownReport(report, phases, table))
  console.log(`\n${summaryLines.join('\n')}`)
  console.log(`written to ${join(settings.out, settings.name)}.json and .md`)
  return faultsPassed ? 0 : 1
}

/** fleet.md: how it was measured, the figures, and what they can and cannot show. */
function markdownReport(
  report: {
    measuredAt: string
    command: string
    machine: { cpu: string; cores: number; memoryGiB: number; node: string }
    comparison?:
      | { p95ReductionPercent: number; throughputRatio: number; goalMet: boolean }
      | undefined
  },
  phases: PhaseReport[],
  table: string,
): string {
  const { machine, comparison } = report
  const faults = phases.find((phase) => phase.phase === 'faults')
  const spread = phases.map(
    (phase, index) =>
      `- ${index + 1}. ${phase.phase}: ${Object.entries(phase.backends)
        .map(
          ([name, backend]) =>
            `${name} ${backend.jobs} jobs, p50 ${backend.latencyMs.p50} ms, p95 ${backend.latencyMs.p95} ms`,
        )
        .join('; ')}`,
  )
  return `# Fleet simulation (npm run sim:fleet)

Measured ${report.measuredAt} on ${machine.cpu} (${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}).
Command: \`${report.command}\`. Figures: [${settings.name}.json](${settings.name}.json).

Three gpu-services on CPU (${settings.threads.map((_, index) => `${index + 1}: ${describeBackend(index)}`).join('; ')})
behind the edge under \`wrangler dev\`, each phase on a fresh stack, in the order listed: ${settings.concurrency}
callers in a closed loop for ${settings.seconds} s, each sending a one-image ${settings.steps}-step job (heavy every 4,
a fresh seed, so no cache hit) and waiting for its end (\`Prefer: wait=60\`). Latency is the caller's, POST to
the job's end; images/s counts the phase's jobs over the time to its last end.

${table}

${
  comparison
    ? `Load routing against the rotation${pooledNote(phases)}: p95 ${change(comparison.p95ReductionPercent)}, throughput x${comparison.throughputRatio}. The goal (p95 at least 25 % lower, throughput equal or better) is **${comparison.goalMet ? 'met' : 'not met'}** in this run.`
    : ''
}

Jobs completed by each backend (its \`run ended\` log lines), and those jobs' p95:

${spread.join('\n')}

${
  faults
    ? `Faults (load routing): ${faults.events.map((event) => `${event.what} at ${event.atSeconds} s`).join(', ')}. ${faults.jobs.accepted} jobs accepted, ${faults.jobs.succeeded} succeeded, ${faults.jobs.failedOver} of them after a failover; ${faults.failures.count} failures. The PNG bytes of ${faults.pixels?.compared} jobs were compared with a direct run of the same request on ${faults.pixels?.survivor}: ${faults.pixels?.identical} identical.`
    : ''
}

## What this can and cannot show

Everything runs on this one machine: three compute-bound gpu-services, workerd and wrangler's proxy, and the
load generator share its ${machine.cores} cores. Fewer ONNX Runtime threads alone do not make a backend
slower here (it takes the cycles the others leave idle); a CPU cap (\`--cpu-limit\`, a cgroup CFS quota)
does: a capped backend is a machine of a fixed size, which no share of the others' idle time can speed up.
With every backend capped, the fleet is three machines of known sizes, and what is left of the cores runs
the edge and the load. An uncapped backend draws on the same cores as the others, so its speed moves with
theirs. The per-backend latencies above show how uneven the fleet really was. \`wrangler dev\` runs
every job object in one isolate, so the edge's fleet state is one shared view here; in production each isolate
learns alone. Each policy ran once, one after the other, on a machine that other work may share (the load
averages are in the table): differences of a few percent are noise.
`
}

process.exit(
  await main().catch((error: Error) => {
    console.error(`npm run sim:fleet: ${error.message}`)
    return 1
  }),
)
