// What this isolate knows of the gpu-service fleet, and the load-aware choice of a backend for an attempt:
// the power of two choices (power-of-two.ts) over the backends whose circuit breaker lets an attempt
// through (circuit-breaker.ts) and that have not reported draining, judged by their load as last
// reported (the `accepted` event of a run, or GET /v1/load) plus what this isolate sent and saw end
// since. A report older than LOAD_MAX_AGE_MS no longer counts: it is refreshed before the choice, and
// until a fresh one comes only this isolate's own runs there are counted.
//
// Rows are not all equal: a backend on a slower device, with fewer threads or fewer run slots, or with a
// queue, takes longer per row. So each candidate's outstanding rows are weighed by what a row-step of its
// work has cost there lately: a peak-sensitive moving average over this isolate's attempts there (the
// peak EWMA of Finagle's load balancers: a slower sample counts at once, a faster one over DECAY_MS). An
// attempt's sample is its time from start to result (queue wait included) per step, divided by the rows
// it shared the backend with (its own and the others, averaged over its start and its end): a backend
// steps all its rows together, so an attempt's own time already grows with the load, and dividing by
// that load keeps the backend's speed apart from how busy it was. (Without it, outstanding rows x time
// per row-step counts the load twice, rows squared, and a slow backend balances at too large a share.)
// A backend not sampled for a while drifts back to the fleet's typical cost, so one that was slow once
// is tried again rather than starved of the samples that would show it recovered.
//
// The state is per isolate (module level), like health.ts: each isolate that runs job objects learns the
// fleet on its own, from its own runs. That is enough: reports are cheap (one rides on every `accepted`,
// a GET /v1/load costs a few counters on the service), so an isolate that just started is well informed
// after its first few attempts, and a report ages out within seconds anyway. Sharing the state (a
// Durable Object, KV) would put a round trip and a new point of failure in front of every run to save
// a handful of load requests. An isolate that is evicted forgets, and starts over with breakers closed.
import type { BackendLoad } from '../../../shared/run-protocol.ts'
import { fetchLoad } from './backend-client.ts'
import { type BreakerOptions, CircuitBreaker, DEFAULT_BREAKER } from './circuit-breaker.ts'
import { powerOfTwoChoices } from './power-of-two.ts'

/**
 * A load report older than this is stale: refreshed before the next choice, and not counted until then.
 * A few seconds: a 50-step run takes about that on a loaded backend, and every run accepted anywhere
 * in the fleet moves the figures.
 */
export const LOAD_MAX_AGE_MS = 2_000
/** How long a choice waits for GET /v1/load; past it the load is unknown (the breaker is not told). */
export const LOAD_REFRESH_TIMEOUT_MS = 500
/** A backend without GET /v1/load (older than it) is asked again after this long. */
export const LOAD_ROUTE_RECHECK_MS = 60_000
/** How fast the cost of a row-step forgets: faster samples, and a backend's silence, count over this. */
export const COST_DECAY_MS = 10_000

interface LoadReport {
  load: BackendLoad
  /** When it came (ms since the epoch); 0 once a failure made it stale. */
  at: number
  /** Model rows of this isolate's attempts begun there since the report. */
  startedRows: number
  /** Those attempts, counted as runs. */
  startedRuns: number
  /** Model rows of this isolate's attempts that ended there since the report and were counted in it. */
  endedRows: number
  /** Those attempts, counted as runs. */
  endedRuns: number
}

interface BackendState {
  breaker: CircuitBreaker
  /** The latest report; its `draining` holds until a later report says otherwise. */
  report: LoadReport | undefined
  /** Model rows of this isolate's attempts running there now. */
  inFlightRows: number
  /** Those attempts, counted as runs. */
  inFlightRuns: number
  /** The GET /v1/load under way, which concurrent choices share. */
  refreshing: Promise<void> | undefined
  /** The backend has no GET /v1/load: do not ask before this time. */
  noLoadRouteUntil: number
  /**
   * Peak EWMA of ms per row-step of the backend's work, from this isolate's attempts there (each one's
   * time per step over the rows it shared the backend with); undefined before the first.
   */
  costMs: number | undefined
  /** When costMs last took a sample. */
  costAt: number
}

const fleet = new Map<string, BackendState>()
/** The breaker of every backend this isolate meets from now on (tests shorten the cool-down). */
let breakerOptions: BreakerOptions = DEFAULT_BREAKER

function stateOf(url: string): BackendState {
  let state = fleet.get(url)
  if (!state) {
    state = {
      breaker: new CircuitBreaker(breakerOptions),
      report: undefined,
      inFlightRows: 0,
      inFlightRuns: 0,
      refreshing: undefined,
      noLoadRouteUntil: 0,
      costMs: undefined,
      costAt: 0,
    }
    fleet.set(url, state)
  }
  return state
}

const isFresh = (report: LoadReport | undefined, now: number): report is LoadReport =>
  report !== undefined && now - report.at <= LOAD_MAX_AGE_MS

/**
 * Outstanding model rows there, as well as this isolate knows: the fresh report's queued and active
 * rows, plus what this isolate began there since, less what of it ended; never less than this
 * isolate's own rows running there. Without a fresh report, those alone.
 */
function estimatedRows(state: BackendState, now: number): number {
  const report = state.report
  if (!isFresh(report, now)) return state.inFlightRows
  const { queuedRows, activeRows } = report.load
  const estimate = queuedRows + activeRows + report.startedRows - report.endedRows
  return Math.max(estimate, state.inFlightRows)
}

/**
 * Whether a run of `rows` sent there now would wait in its queue: the fresh report's runs and rows (as
 * estimatedRows counts them) leave no run slot or no room for its rows. Unknown (no fresh report, or a
 * service that does not report its run slots): false.
 */
function wouldQueue(state: BackendState, rows: number, now: number): boolean {
  const report = state.report
  if (!isFresh(report, now) || report.load.capacityRuns === undefined) return false
  const { queuedRuns, activeRuns, capacityRuns, capacityRows } = report.load
  const runs = Math.max(
    queuedRuns + activeRuns + report.startedRuns - report.endedRuns,
    state.inFlightRuns,
  )
  return runs >= capacityRuns || estimatedRows(state, now) + rows > capacityRows
}

/** Takes one attempt's ms per row-step into the backend's peak EWMA. */
function sampleCost(state: BackendState, msPerRowStep: number, now: number): void {
  const previous = state.costMs
  if (previous === undefined || msPerRowStep >= previous) state.costMs = msPerRowStep
  else {
    const kept = Math.exp(-(now - state.costAt) / COST_DECAY_MS)
    state.costMs = msPerRowStep + (previous - msPerRowStep) * kept
  }
  state.costAt = now
}

/**
 * What a row-step costs there now: its peak EWMA drifting toward `typical` (the fleet's median) the
 * longer it goes unsampled; `typical` itself for a backend never sampled.
 */
function costOf(state: BackendState, typical: number, now: number): number {
  if (state.costMs === undefined) return typical
  const kept = Math.exp(-(now - state.costAt) / COST_DECAY_MS)
  return typical + (state.costMs - typical) * kept
}

/** The median of the sampled costs of `urls`; 1 when none is sampled (then only rows count). */
function typicalCost(urls: readonly string[]): number {
  const sampled = urls
    .map((url) => stateOf(url).costMs)
    .filter((cost): cost is number => cost !== undefined)
    .sort((a, b) => a - b)
  if (sampled.length === 0) return 1
  const middle = Math.floor(sampled.length / 2)
  return sampled.length % 2 === 1
    ? (sampled[middle] as number)
    : ((sampled[middle - 1] as number) + (sampled[middle] as number)) / 2
}

function log(msg: string, fields: Record<string, unknown>): void {
  console.warn(JSON.stringify({ level: 'warn', msg, ...fields }))
}

/** Takes a load report (from an `accepted` event or GET /v1/load) as the backend's latest. */
export function recordLoad(url: string, load: BackendLoad, now = Date.now()): void {
  const state = stateOf(url)
  if (load.draining && !state.report?.load.draining) log('backend draining', { backend: url })
  state.report = { load, at: now, startedRows: 0, endedRows: 0, startedRuns: 0, endedRuns: 0 }
}

/** The backend said it is shutting down (a run's `run-shutdown` error): no new work until it says not. */
function recordDraining(url: string, now: number): void {
  const state = stateOf(url)
  const load = state.report?.load
  if (load) recordLoad(url, { ...load, draining: true }, now)
  else {
    log('backend draining', { backend: url })
    const unknown = { queuedRuns: 0, queuedRows: 0, activeRuns: 0, activeRows: 0, capacityRows: 1 }
    // Stale at once: only `draining` counts, and a refresh brings the real figures.
    state.report = {
      load: { ...unknown, draining: true },
      at: 0,
      startedRows: 0,
      endedRows: 0,
      startedRuns: 0,
      endedRuns: 0,
    }
  }
}

/** A failure of the backend itself: counts against its breaker, and its report is stale from now. */
function recordBackendFailure(url: string, reason: string, now: number): void {
  const state = stateOf(url)
  const before = state.breaker.state(now)
  state.breaker.failed(now)
  if (state.report) state.report.at = 0
  const after = state.breaker.state(now)
  if (after !== before) {
    log('backend breaker opened', { backend: url, failures: state.breaker.failures, reason })
  }
}

async function refresh(url: string, secret: string, requestId: string): Promise<void> {
  const state = stateOf(url)
  const answer = await fetchLoad(url, secret, requestId, LOAD_REFRESH_TIMEOUT_MS)
  const now = Date.now()
  if (answer.kind === 'load') recordLoad(url, answer.load, now)
  else if (answer.kind === 'unsupported') state.noLoadRouteUntil = now + LOAD_ROUTE_RECHECK_MS
  else if (answer.backendDown) recordBackendFailure(url, `GET /v1/load: ${answer.reason}`, now)
}

/**
 * Refreshes the stale reports of the backends that could be chosen (closed or half-open breaker), in
 * parallel, each at most LOAD_REFRESH_TIMEOUT_MS; a failed refresh counts against the breaker, so a
 * half-open backend that is still down opens again without costing a job an attempt.
 */
async function refreshStale(urls: readonly string[], secret: string, requestId: string) {
  const now = Date.now()
  const waits: Promise<void>[] = []
  for (const url of urls) {
    const state = stateOf(url)
    if (state.breaker.state(now) === 'open' || isFresh(state.report, now)) continue
    if (state.noLoadRouteUntil > now) continue
    state.refreshing ??= refresh(url, secret, requestId).finally(() => {
      state.refreshing = undefined
    })
    waits.push(state.refreshing)
  }
  await Promise.all(waits)
}

export interface ChooseBackend {
  /** BACKEND_URLS. */
  urls: readonly string[]
  /** BACKEND_WEIGHTS, one per URL (1 each when absent). */
  weights?: readonly number[]
  /** Backends this job has tried already: the others come first. */
  tried: ReadonlySet<string>
  /** Backends not to choose at all (those that said they have not loaded the job's model). */
  exclude?: ReadonlySet<string>
  secret: string
  requestId: string
  /** For tests: the coin of the power of two choices. */
  random?: () => number
}

/**
 * The backend for the next attempt, or undefined when every backend not excluded has reported
 * draining. Among the backends not draining whose breaker lets an attempt through (untried ones
 * first), the power of two choices by estimated load per weight; when every breaker refuses, the one
 * open longest, so that a job is never failed without an attempt (a lone backend back from a restart
 * is found at once).
 *
 * @example
 * const backendUrl = await chooseBackend({ urls, weights, tried, secret, requestId })
 */
export async function chooseBackend(options: ChooseBackend): Promise<string | undefined> {
  await refreshStale(choosable(options), options.secret, options.requestId)
  return pick(options, Date.now())
}

/**
 * chooseBackend, and the attempt of `rows` model rows begun there in the same step: jobs that choose at
 * the same moment (all waiting for the same refresh, say) each see the rows of those chosen before them,
 * so a burst spreads instead of following one stale figure.
 *
 * @example
 * const claimed = await claimBackend({ urls, weights, tried, secret, requestId, rows: 2 })
 * if (claimed) run(claimed.url, claimed.attempt)
 */
export async function claimBackend(
  options: ChooseBackend & { rows: number; rowSteps: number },
): Promise<{ url: string; attempt: AttemptRecord } | undefined> {
  await refreshStale(choosable(options), options.secret, options.requestId)
  const url = pick(options, Date.now())
  return url === undefined
    ? undefined
    : { url, attempt: beginAttempt(url, options.rows, options.rowSteps) }
}

/** The backends a choice may fall on: every URL but the excluded. */
function choosable({ urls, exclude }: ChooseBackend): readonly string[] {
  return exclude ? urls.filter((url) => !exclude.has(url)) : urls
}

function pick(options: ChooseBackend & { rows?: number }, now: number): string | undefined {
  const { urls, tried } = options
  const live = choosable(options).filter((url) => !stateOf(url).report?.load.draining)
  const allowed = live.filter((url) => stateOf(url).breaker.allows(now))
  const untried = allowed.filter((url) => !tried.has(url))
  const pool = untried.length > 0 ? untried : allowed
  if (pool.length > 0) {
    const weightOf = (url: string) => options.weights?.[urls.indexOf(url)] ?? 1
    const typical = typicalCost(urls)
    // The time to work off what is there, per step: outstanding rows x cost per row-step there.
    const candidates = pool.map((url) => ({
      url,
      weight: weightOf(url),
      load: estimatedRows(stateOf(url), now) * costOf(stateOf(url), typical, now),
      // A backend where this run would wait in the queue loses to one where it starts at once.
      queues: wouldQueue(stateOf(url), options.rows ?? 1, now),
    }))
    return powerOfTwoChoices(candidates, options.random)?.url
  }
  const openLongest = [...live].sort(
    (a, b) =>
      Number(tried.has(a)) - Number(tried.has(b)) ||
      stateOf(a).breaker.openedAt - stateOf(b).breaker.openedAt,
  )
  return openLongest[0]
}

/** One attempt on one backend, as the fleet state follows it. */
export interface AttemptRecord {
  /** The run's `accepted` event: its load, when it carries one, is the backend's latest report. */
  accepted(load: BackendLoad | undefined): void
  /** A result: the backend works (its breaker closes), and its time per row-step is sampled. */
  succeeded(): void
  /**
   * The attempt failed: `unhealthy` when the backend is at fault (down, draining, stalled), `draining`
   * when it said it is shutting down.
   */
  failed(failure: { unhealthy: boolean; draining: boolean; reason: string }): void
  /** Always last, once. */
  ended(): void
}

/**
 * Follows an attempt of `rows` model rows and `rowSteps` row-steps on a backend: it counts in the
 * backend's load from now until `ended`, its outcome feeds the breaker, and a result its cost per row-step.
 *
 * @example
 * const attempt = beginAttempt(backendUrl, modelRows(request), runCost(request))
 * try { ...; attempt.succeeded() } catch (failure) { attempt.failed(failure) } finally { attempt.ended() }
 */
export function beginAttempt(url: string, rows: number, rowSteps = rows): AttemptRecord {
  const state = stateOf(url)
  const beganAt = Date.now()
  // The rows this attempt joins there, its own included, as this isolate knows them.
  const rowsAtBegin = estimatedRows(state, beganAt) + rows
  const probe = state.breaker.begin(beganAt)
  state.inFlightRows += rows
  state.inFlightRuns += 1
  const reportAtBegin = state.report
  if (reportAtBegin) {
    reportAtBegin.startedRows += rows
    reportAtBegin.startedRuns += 1
  }
  let wasAccepted = false
  let verdict = false
  return {
    accepted(load) {
      wasAccepted = true
      if (load) recordLoad(url, load)
    },
    succeeded() {
      verdict = true
      const now = Date.now()
      // Still counted in flight here, so the estimate at the end includes this attempt's rows.
      const sharedRows = Math.max(rows, (rowsAtBegin + estimatedRows(state, now)) / 2)
      const steps = Math.max(1, rowSteps) / Math.max(1, rows)
      sampleCost(state, (now - beganAt) / steps / sharedRows, now)
      const before = state.breaker.state(now)
      state.breaker.succeeded()
      if (before !== 'closed') log('backend breaker closed', { backend: url })
    },
    failed({ unhealthy, draining, reason }) {
      const now = Date.now()
      if (draining) recordDraining(url, now)
      if (!unhealthy) return
      verdict = true
      recordBackendFailure(url, reason, now)
    },
    ended() {
      if (probe && !verdict) state.breaker.released()
      state.inFlightRows -= rows
      state.inFlightRuns -= 1
      // Counted in the report it began under (startedRows), or in a later one if it was live by then.
      const report = state.report
      if (report && (report === reportAtBegin || wasAccepted)) {
        report.endedRows += rows
        report.endedRuns += 1
      }
    },
  }
}

/** What this isolate knows of one backend, for logs and tests. */
export interface BackendView {
  breaker: ReturnType<CircuitBreaker['state']>
  failures: number
  load: BackendLoad | undefined
  reportAgeMs: number | undefined
  estimatedRows: number
  /** Peak EWMA of ms per row-step, as last sampled; undefined before the first result. */
  costMs: number | undefined
}

export function viewBackend(url: string, now = Date.now()): BackendView {
  const state = stateOf(url)
  return {
    breaker: state.breaker.state(now),
    failures: state.breaker.failures,
    load: state.report?.load,
    reportAgeMs: state.report && now - state.report.at,
    estimatedRows: estimatedRows(state, now),
    costMs: state.costMs,
  }
}

/** Forgets everything this isolate learned; tests start from a fresh fleet, with breakers of their own. */
export function forgetFleet(options: { breaker?: BreakerOptions } = {}): void {
  fleet.clear()
  breakerOptions = options.breaker ?? DEFAULT_BREAKER
}
