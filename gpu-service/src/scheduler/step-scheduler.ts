// Step-level continuous batching. Every tick, each active run advances one step: the active runs are
// packed, first fit in admission order, into model calls of at most maxBatchRows rows (a run's rows never
// split across calls); within a call, the runs whose heavy schedule falls on their next step share one
// heavy encoder call and all of them share one light denoiser call. Runs leave (done, cancelled, past
// their deadline, failed) between model calls. With batching off each run gets its own calls, round
// robin: the baseline the benchmark compares against.
//
// Several models. The scheduler serves every model it is given (the first is the default): each run
// names one, and only runs of the same model share a call (the runs of each model are packed apart).
// Everything else is shared: one loop makes one model call at a time (so the sessions' thread pools never
// compete for the cores), and admission, the fair share and the load count the runs of all models alike.
//
// Admission. A run is admitted while fewer than maxActiveRuns runs are active and its rows fit beside the
// active rows within maxActiveRows (by default two full model calls). The queue is taken in order, but a
// run that does not fit yet may be passed by later runs that do, so a 128-row run does not hold up the
// one-image runs behind it, nor a one-image run sit behind a 128-row one. A run passed MAX_PASSES times
// holds its place: nothing behind it is admitted until it fits, so its wait is bounded by the runs
// already active, which leave within their steps or deadline.
//
// Observers are callers' code: a callback that throws ends its run as failed (its `ended` is still called
// once, unless `ended` itself threw), the error is logged, and the loop goes on with the other runs.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import {
  type DualRateModels,
  modelRows,
  SamplerRun,
  type StepEvent,
} from '../sampler/sampler-run.ts'
import { StepBatch } from '../sampler/step-batch.ts'
import { jsonLogger, type Logger } from '../service/logger.ts'
import { dueRuns, startingVirtualMacs } from './fair-share.ts'
import { packCalls } from './pack-calls.ts'

/** A model the scheduler serves: its manifest and its pair of networks. */
export interface ServedModel<Features> {
  manifest: Manifest
  models: DualRateModels<Features>
}

export interface SchedulerLimits {
  /** Rows in one model call; a run's rows never split, so this must hold the largest run. */
  maxBatchRows: number
  /** Rows of all runs stepping at once, over the calls of a tick; at least maxBatchRows. */
  maxActiveRows: number
  /** Runs stepping at once. */
  maxActiveRuns: number
  /** Runs waiting for a slot; one more is refused (load shedding). */
  maxQueuedRuns: number
  /** From acceptance to result, queue wait included. */
  runDeadlineMs: number
  /** false: one run's rows per model call. */
  batching: boolean
}

/** How a run ended. */
export type RunOutcome =
  | 'completed'
  | 'cancelled'
  | 'disconnected'
  | 'deadline_exceeded'
  | 'shutdown'
  | 'failed'

export interface RunSummary {
  runId: string
  outcome: RunOutcome
  /** Steps reported through the observer (a step in flight when the run stopped is not). */
  stepsCompleted: number
  /** Model calls made, the one in flight when the run stopped included. */
  heavyCalls: number
  lightCalls: number
  macs: number
  /** Acceptance to first step (to the end, for a run that never started). */
  queueMs: number
  /** First step to the end; 0 for a run that never started. */
  wallMs: number
  /** The final images (`count * pixels`), for a completed run. */
  images?: Float32Array
  /** What went wrong, for a failed run. */
  error?: Error
}

/**
 * One run's progress, called in this order: accepted, started, step..., ended (always, once). A callback
 * that throws ends the run as failed.
 */
export interface RunObserver {
  accepted(queuePosition: number): void
  started(): void
  step(event: StepEvent): void
  ended(summary: RunSummary): void
}

/** Service-wide counters; every method is optional so tests can leave it out. */
export interface SchedulerTelemetry {
  /** One batched call of `model` (heavy encoder or light denoiser) of the model `modelId`. */
  modelCall?(model: 'heavy' | 'light', rows: number, seconds: number, modelId: string): void
  /** One run moved one step, `seconds` after its previous step (or its start). */
  runStepped?(seconds: number): void
  runEnded?(summary: RunSummary): void
}

export interface SchedulerOptions {
  telemetry?: SchedulerTelemetry
  /** Where a throwing observer is reported (default: JSON lines on stdout). */
  logger?: Logger
}

/** The scheduler's numbers at one moment (shared/run-protocol.ts BackendLoad has the same fields). */
export interface SchedulerLoad {
  queuedRuns: number
  queuedRows: number
  activeRuns: number
  activeRows: number
  /** maxActiveRows: rows that may step at once. */
  capacityRows: number
  /** maxActiveRuns: runs that may step at once. */
  capacityRuns: number
  /** drain() was called: no new run is taken. */
  draining: boolean
}

export type RejectionReason = 'queue_full' | 'draining' | 'duplicate_run_id' | 'model_not_loaded'

/** A run the scheduler would not take; nothing of it ran. */
export class SchedulerRejection extends Error {
  override name = 'SchedulerRejection'
  readonly reason: RejectionReason
  /** For queue_full and draining: when a retry may succeed. */
  readonly retryAfterSeconds: number | undefined

  constructor(reason: RejectionReason, message: string, retryAfterSeconds?: number) {
    super(message)
    this.reason = reason
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** A served model with its call buffers. */
interface ModelSlot<Features> {
  manifest: Manifest
  batch: StepBatch<Features>
}

interface ScheduledRun<Features> {
  runId: string
  model: ModelSlot<Features>
  options: SamplingOptions
  rows: number
  observer: RunObserver
  acceptedAt: number
  deadline: number
  startedAt?: number
  /** Steps reported through the observer. */
  stepsReported: number
  /** When the run's last step (or its start) was; step latency is measured from here. */
  lastStepAt?: number
  sampler?: SamplerRun<Features>
  stopReason?: RunOutcome
  /** Later runs admitted while this one waited; at MAX_PASSES it holds its place. */
  passes: number
  /** Its place on the fair-share clock when admitted (see fair-share.ts). */
  virtualStartMacs: number
  /** virtualStartMacs plus the MACs of its model calls so far. */
  readonly virtualMacs: number
  ended: boolean
  exited: Promise<RunSummary>
  exit(summary: RunSummary): void
}

/** Run wall time assumed before any run has finished, for Retry-After. */
const INITIAL_RUN_SECONDS = 1
/** Weight of the newest run in the running mean of run durations. */
const RUN_SECONDS_SMOOTHING = 0.2
/**
 * Times a waiting run may be passed by later ones before it holds its place (see the file header): the
 * default maxActiveRuns, so a large run waits for at most about one full set of small runs.
 */
export const MAX_PASSES = 16

/**
 * Schedules sampling runs onto one or more model pairs with step-level batching; the first model given
 * is the default.
 *
 * @example
 * const scheduler = new StepScheduler([teacher, student], limits, { telemetry, logger })
 * const exited = scheduler.submit('run-1', options, { accepted, started, step, ended })
 * scheduler.submit('run-2', studentOptions, observer, student.manifest.modelId)
 * await scheduler.cancel('run-1', 'cancelled')
 */
export class StepScheduler<Features> {
  /** By model id, the default first. */
  readonly #models = new Map<string, ModelSlot<Features>>()
  readonly #defaultModel: ModelSlot<Features>
  readonly #limits: SchedulerLimits
  readonly #telemetry: SchedulerTelemetry
  readonly #logger: Logger
  readonly #queue: ScheduledRun<Features>[] = []
  readonly #active: ScheduledRun<Features>[] = []
  readonly #runs = new Map<string, ScheduledRun<Features>>()
  #loop: Promise<void> = Promise.resolve()
  #looping = false
  #draining = false
  #runSeconds = INITIAL_RUN_SECONDS
  readonly #quantumMacs: number

  constructor(
    served: readonly ServedModel<Features>[],
    limits: SchedulerLimits,
    { telemetry = {}, logger = jsonLogger() }: SchedulerOptions = {},
  ) {
    for (const key of [
      'maxBatchRows',
      'maxActiveRows',
      'maxActiveRuns',
      'runDeadlineMs',
    ] as const) {
      if (!Number.isInteger(limits[key]) || limits[key] < 1) {
        throw new RangeError(`${key} must be a positive integer, got ${limits[key]}`)
      }
    }
    if (limits.maxActiveRows < limits.maxBatchRows) {
      throw new RangeError(
        `maxActiveRows (${limits.maxActiveRows}) must be at least maxBatchRows (${limits.maxBatchRows})`,
      )
    }
    if (!Number.isInteger(limits.maxQueuedRuns) || limits.maxQueuedRuns < 0) {
      throw new RangeError(`maxQueuedRuns must be a whole number, got ${limits.maxQueuedRuns}`)
    }
    for (const { manifest, models } of served) {
      if (this.#models.has(manifest.modelId)) {
        throw new RangeError(`model ${manifest.modelId} is given twice`)
      }
      const batch = new StepBatch(models, manifest, limits.maxBatchRows)
      this.#models.set(manifest.modelId, { manifest, batch })
    }
    const [first] = this.#models.values()
    if (!first) throw new RangeError('a scheduler needs at least one model')
    this.#defaultModel = first
    // One step (heavy and light) of a full call of the costliest model: no run gets further ahead of
    // the least-served one than that before it yields its turn (fair-share.ts). Virtual time counts
    // MACs, so runs of a cheap and a costly model share the machine by the work they are given.
    this.#quantumMacs = Math.max(
      ...served.map(
        ({ manifest }) =>
          limits.maxBatchRows *
          (manifest.models.heavy.macsPerCall + manifest.models.light.macsPerCall),
      ),
    )
    this.#limits = { ...limits }
    this.#telemetry = telemetry
    this.#logger = logger
  }

  /** The manifests of the models served, the default first. */
  get manifests(): Manifest[] {
    return [...this.#models.values()].map((model) => model.manifest)
  }

  /**
   * The manifest of the model `modelId`, or of the default model when none is named; undefined for a
   * model this scheduler does not serve.
   */
  manifestOf(modelId?: string): Manifest | undefined {
    return modelId === undefined ? this.#defaultModel.manifest : this.#models.get(modelId)?.manifest
  }

  /** Runs waiting for a slot. */
  get queueDepth(): number {
    return this.#queue.length
  }

  /** Runs stepping now. */
  get activeRuns(): number {
    return this.#active.length
  }

  /**
   * What the scheduler holds now, for load reports (GET /v1/load, the `accepted` event): read only,
   * counted on the spot (a few dozen runs at most), nothing here changes what it schedules.
   */
  get load(): SchedulerLoad {
    return {
      queuedRuns: this.#queue.length,
      queuedRows: this.#queue.reduce((sum, run) => sum + run.rows, 0),
      activeRuns: this.#active.length,
      activeRows: this.#activeRows,
      capacityRows: this.#limits.maxActiveRows,
      capacityRuns: this.#limits.maxActiveRuns,
      draining: this.#draining,
    }
  }

  /**
   * Queues a run of the model `modelId` (default: the default model) and starts it as soon as a slot is
   * free. Throws a SchedulerRejection when the model is not served, the queue is full, the scheduler is
   * draining or the id is taken; nothing runs then. The observer's `accepted` is called before this
   * returns. Resolves (never rejects) with the run's summary once it has ended.
   */
  submit(
    runId: string,
    options: SamplingOptions,
    observer: RunObserver,
    modelId?: string,
  ): Promise<RunSummary> {
    const model = modelId === undefined ? this.#defaultModel : this.#models.get(modelId)
    if (!model) {
      throw new SchedulerRejection('model_not_loaded', `model ${modelId} is not loaded`)
    }
    if (this.#draining) {
      throw new SchedulerRejection('draining', 'the service is shutting down', this.#retryAfter())
    }
    if (this.#runs.has(runId)) {
      throw new SchedulerRejection('duplicate_run_id', `run ${runId} already exists`)
    }
    const rows = modelRows(options)
    if (rows > this.#limits.maxBatchRows) {
      throw new RangeError(`run of ${rows} rows exceeds maxBatchRows ${this.#limits.maxBatchRows}`)
    }
    if (!this.#admissibleNow(rows) && this.#queue.length >= this.#limits.maxQueuedRuns) {
      throw new SchedulerRejection(
        'queue_full',
        `${this.#queue.length} runs are waiting, the limit is ${this.#limits.maxQueuedRuns}`,
        this.#retryAfter(),
      )
    }
    const now = performance.now()
    let exit: (summary: RunSummary) => void = () => {}
    const exited = new Promise<RunSummary>((resolve) => {
      exit = resolve
    })
    const run: ScheduledRun<Features> = {
      runId,
      model,
      options,
      rows,
      observer,
      acceptedAt: now,
      deadline: now + this.#limits.runDeadlineMs,
      stepsReported: 0,
      passes: 0,
      virtualStartMacs: 0,
      get virtualMacs() {
        return this.virtualStartMacs + (this.sampler?.macs ?? 0)
      },
      ended: false,
      exited,
      exit,
    }
    this.#runs.set(runId, run)
    this.#queue.push(run)
    const queuePosition = this.#queue.length - 1
    this.#notify(run, 'accepted', () => observer.accepted(queuePosition))
    this.#admit()
    this.#wake()
    return exited
  }

  /**
   * Stops a run before its next model call and frees its slot. Resolves once no call of the run is in
   * flight, with what it did; undefined for an unknown (or already ended) run.
   */
  async cancel(
    runId: string,
    reason: 'cancelled' | 'disconnected' = 'cancelled',
  ): Promise<RunSummary | undefined> {
    const run = this.#runs.get(runId)
    if (!run) return undefined
    this.#stop(run, reason)
    return run.exited
  }

  /**
   * Refuses new runs, lets queued and active runs finish for up to `graceMs`, then stops the rest with
   * outcome "shutdown". Resolves when no run is left.
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true
    const everyRunExited = () => Promise.all([...this.#runs.values()].map((run) => run.exited))
    let timer: NodeJS.Timeout | undefined
    const graceOver = new Promise<'grace over'>((resolve) => {
      timer = setTimeout(() => resolve('grace over'), graceMs)
    })
    const first = await Promise.race([everyRunExited(), graceOver])
    clearTimeout(timer)
    if (first === 'grace over') {
      for (const run of [...this.#runs.values()]) this.#stop(run, 'shutdown')
      await everyRunExited()
    }
    await this.#loop
  }

  get #activeRows(): number {
    return this.#active.reduce((sum, run) => sum + run.rows, 0)
  }

  /** Whether `rows` fit beside the active runs. */
  #fits(rows: number): boolean {
    return (
      this.#active.length < this.#limits.maxActiveRuns &&
      this.#activeRows + rows <= this.#limits.maxActiveRows
    )
  }

  /** Whether a new run of `rows` would be admitted at once: it fits and no waiting run holds its place. */
  #admissibleNow(rows: number): boolean {
    return this.#fits(rows) && !this.#queue.some((run) => run.passes >= MAX_PASSES)
  }

  /**
   * Moves queued runs into free slots: in queue order, each run that fits is admitted, one that does not
   * is passed (and counts it), and one passed MAX_PASSES times stops the scan until it fits.
   */
  #admit(): void {
    let index = 0
    while (index < this.#queue.length && this.#active.length < this.#limits.maxActiveRuns) {
      const run = this.#queue[index] as ScheduledRun<Features>
      if (!this.#fits(run.rows)) {
        if (run.passes >= MAX_PASSES) return
        index++
        continue
      }
      this.#queue.splice(index, 1)
      for (const passed of this.#queue.slice(0, index)) passed.passes++
      run.startedAt = performance.now()
      run.lastStepAt = run.startedAt
      run.virtualStartMacs = startingVirtualMacs(this.#active)
      try {
        run.sampler = new SamplerRun<Features>(run.model.manifest, run.options)
      } catch (error) {
        // Options the shared schema refuses (callers validate first); the run fails, nothing stops.
        this.#end(run, 'failed', asError(error))
        continue
      }
      this.#active.push(run)
      this.#notify(run, 'started', () => run.observer.started())
    }
  }

  /**
   * The model calls of one tick: the runs due by fair share, each model's packed into calls of their own
   * (one run a call without batching, the baseline: there every active run steps each tick, round
   * robin). Models take their turns in the order their first due run was admitted.
   */
  #callGroups(): ScheduledRun<Features>[][] {
    if (!this.#limits.batching) return this.#active.map((run) => [run])
    const byModel = new Map<ModelSlot<Features>, ScheduledRun<Features>[]>()
    for (const run of dueRuns(this.#active, this.#quantumMacs)) {
      const runs = byModel.get(run.model)
      if (runs) runs.push(run)
      else byModel.set(run.model, [run])
    }
    return [...byModel.values()].flatMap((runs) => packCalls(runs, this.#limits.maxBatchRows))
  }

  #wake(): void {
    if (this.#looping) return
    this.#looping = true
    this.#loop = this.#runLoop().catch((error: unknown) => {
      // Not reached unless the loop itself has a bug; no run may be left waiting on it.
      this.#logger.error('scheduler loop failed', { error })
      for (const run of [...this.#runs.values()]) this.#end(run, 'failed', asError(error))
    })
  }

  async #runLoop(): Promise<void> {
    try {
      // Runs submitted in the same turn of the event loop share the first tick.
      await Promise.resolve()
      for (;;) {
        this.#reap()
        this.#admit()
        if (this.#active.length === 0) return
        for (const group of this.#callGroups()) {
          try {
            await this.#tick(group)
          } catch (error) {
            // Last resort (observers and model calls have their own): the group fails, the loop goes on.
            this.#logger.error('scheduler tick failed', {
              runIds: group.map((run) => run.runId),
              error,
            })
            for (const run of group) this.#end(run, 'failed', asError(error))
          }
        }
      }
    } finally {
      // In the same synchronous step as the last empty check, so a new submit always finds the loop
      // running or starts it.
      this.#looping = false
    }
  }

  /**
   * One step for the runs of one call group (all of one model): a heavy call for those due, a light call
   * for all; stopped runs drop out.
   */
  async #tick(runs: ScheduledRun<Features>[]): Promise<void> {
    const heavy = this.#live(runs).filter((run) => run.sampler?.heavyDue)
    if (heavy.length > 0) await this.#call('heavy', heavy)
    const live = this.#live(runs)
    if (live.length === 0) return
    const events = await this.#call('light', live)
    const now = performance.now()
    for (const [index, run] of live.entries()) {
      const event = events?.[index]
      // A run stopped while the call was in flight sends nothing more.
      if (!event || run.ended || run.stopReason !== undefined) continue
      this.#telemetry.runStepped?.((now - (run.lastStepAt ?? now)) / 1000)
      run.lastStepAt = now
      run.stepsReported++
      // One run's failing observer ends that run only.
      if (!this.#notify(run, 'step', () => run.observer.step(event))) continue
      if (run.sampler?.done) this.#end(run, 'completed')
    }
    this.#reap()
  }

  /** One batched model call; if it throws, its runs end as failed and nothing is returned. */
  async #call(model: 'heavy', runs: ScheduledRun<Features>[]): Promise<undefined>
  async #call(model: 'light', runs: ScheduledRun<Features>[]): Promise<StepEvent[] | undefined>
  async #call(model: 'heavy' | 'light', runs: ScheduledRun<Features>[]) {
    const samplers = runs.map((run) => run.sampler as SamplerRun<Features>)
    const rows = runs.reduce((sum, run) => sum + run.rows, 0)
    const { batch, manifest } = (runs[0] as ScheduledRun<Features>).model
    const started = performance.now()
    try {
      const result = model === 'heavy' ? await batch.heavy(samplers) : await batch.light(samplers)
      const seconds = (performance.now() - started) / 1000
      this.#telemetry.modelCall?.(model, rows, seconds, manifest.modelId)
      return result
    } catch (error) {
      for (const run of runs) this.#end(run, 'failed', asError(error))
      return undefined
    }
  }

  /** The runs of `runs` still stepping: not ended, not asked to stop, not past their deadline. */
  #live(runs: ScheduledRun<Features>[]): ScheduledRun<Features>[] {
    this.#reap()
    return runs.filter((run) => !run.ended)
  }

  /** Ends every run that was asked to stop or is past its deadline, queued or active. */
  #reap(): void {
    const now = performance.now()
    for (const run of [...this.#queue, ...this.#active]) {
      if (run.stopReason !== undefined) this.#end(run, run.stopReason)
      else if (now > run.deadline) this.#end(run, 'deadline_exceeded')
    }
  }

  /** Asks a run to stop: a queued run ends now, an active one at the next check before a model call. */
  #stop(run: ScheduledRun<Features>, reason: RunOutcome): void {
    if (run.ended || run.stopReason !== undefined) return
    run.stopReason = reason
    if (!run.sampler || !this.#looping) this.#end(run, reason)
  }

  #end(run: ScheduledRun<Features>, outcome: RunOutcome, error?: Error): void {
    if (run.ended) return
    run.ended = true
    for (const list of [this.#queue, this.#active]) {
      const index = list.indexOf(run)
      if (index >= 0) list.splice(index, 1)
    }
    this.#runs.delete(run.runId)
    const now = performance.now()
    const sampler = run.sampler
    const summary: RunSummary = {
      runId: run.runId,
      outcome,
      stepsCompleted: run.stepsReported,
      heavyCalls: sampler?.heavyCalls ?? 0,
      lightCalls: sampler?.lightCalls ?? 0,
      macs: sampler?.macs ?? 0,
      queueMs: (run.startedAt ?? now) - run.acceptedAt,
      wallMs: run.startedAt === undefined ? 0 : now - run.startedAt,
    }
    if (outcome === 'completed' && sampler) summary.images = sampler.images
    if (error) summary.error = error
    let final = summary
    try {
      run.observer.ended(summary)
    } catch (error) {
      // Too late to tell the observer; the run counts, and exits, as failed.
      this.#logObserverError(run, 'ended', error)
      const { images: _images, ...rest } = summary
      final = { ...rest, outcome: 'failed', error: asError(error) }
    }
    if (final.outcome === 'completed') {
      this.#runSeconds += RUN_SECONDS_SMOOTHING * (final.wallMs / 1000 - this.#runSeconds)
    }
    try {
      this.#telemetry.runEnded?.(final)
    } catch (error) {
      this.#logger.error('scheduler telemetry failed', { runId: run.runId, error })
    }
    run.exit(final)
  }

  /**
   * Calls one of a run's observer callbacks (not `ended`, which #end calls itself). If it throws, the
   * error is logged and the run ends as failed; returns whether the callback returned normally.
   */
  #notify(
    run: ScheduledRun<Features>,
    callback: 'accepted' | 'started' | 'step',
    call: () => void,
  ): boolean {
    try {
      call()
      return true
    } catch (error) {
      this.#logObserverError(run, callback, error)
      this.#end(run, 'failed', asError(error))
      return false
    }
  }

  #logObserverError(run: ScheduledRun<Features>, callback: keyof RunObserver, error: unknown) {
    this.#logger.error('run observer failed', { runId: run.runId, callback, error })
  }

  /** Seconds until a queue slot is likely free: the running mean of run durations, at least 1. */
  #retryAfter(): number {
    return Math.max(1, Math.ceil(this.#runSeconds))
  }
}

/** What was thrown, as an Error (observers may throw anything). */
function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown))
}
