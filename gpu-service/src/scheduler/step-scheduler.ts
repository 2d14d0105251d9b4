// Step-level continuous batching. Each tick gathers the active runs whose heavy schedule falls on their
// next step into one heavy call and all active runs into one light call; runs join from a bounded FIFO
// queue and leave (done, cancelled, past their deadline) between model calls. With batching off each run
// gets its own calls, round robin: the baseline the benchmark compares against.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import {
  type DualRateModels,
  modelRows,
  SamplerRun,
  type StepEvent,
} from '../sampler/sampler-run.ts'
import { StepBatch } from '../sampler/step-batch.ts'

export interface SchedulerLimits {
  /** Rows in one model call; a run's rows never split, so this must hold the largest run. */
  maxBatchRows: number
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

/** One run's progress, called in this order: accepted, started, step..., ended (always, once). */
export interface RunObserver {
  accepted(queuePosition: number): void
  started(): void
  step(event: StepEvent): void
  ended(summary: RunSummary): void
}

/** Service-wide counters; every method is optional so tests can leave it out. */
export interface SchedulerTelemetry {
  modelCall?(model: 'heavy' | 'light', rows: number, seconds: number): void
  /** One run moved one step, `seconds` after its previous step (or its start). */
  runStepped?(seconds: number): void
  runEnded?(summary: RunSummary): void
}

export type RejectionReason = 'queue_full' | 'draining' | 'duplicate_run_id'

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

interface ScheduledRun<Features> {
  runId: string
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
  ended: boolean
  exited: Promise<RunSummary>
  exit(summary: RunSummary): void
}

/** Run wall time assumed before any run has finished, for Retry-After. */
const INITIAL_RUN_SECONDS = 1
/** Weight of the newest run in the running mean of run durations. */
const RUN_SECONDS_SMOOTHING = 0.2

/**
 * Schedules sampling runs onto the model pair with step-level batching.
 *
 * @example
 * const scheduler = new StepScheduler(pair.models, pair.manifest, limits)
 * scheduler.submit('run-1', options, { accepted, started, step, ended })
 * await scheduler.cancel('run-1', 'cancelled')
 */
export class StepScheduler<Features> {
  readonly #manifest: Manifest
  readonly #limits: SchedulerLimits
  readonly #telemetry: SchedulerTelemetry
  readonly #batch: StepBatch<Features>
  readonly #queue: ScheduledRun<Features>[] = []
  readonly #active: ScheduledRun<Features>[] = []
  readonly #runs = new Map<string, ScheduledRun<Features>>()
  #loop: Promise<void> = Promise.resolve()
  #looping = false
  #draining = false
  #runSeconds = INITIAL_RUN_SECONDS

  constructor(
    models: DualRateModels<Features>,
    manifest: Manifest,
    limits: SchedulerLimits,
    telemetry: SchedulerTelemetry = {},
  ) {
    for (const key of ['maxBatchRows', 'maxActiveRuns', 'runDeadlineMs'] as const) {
      if (!Number.isInteger(limits[key]) || limits[key] < 1) {
        throw new RangeError(`${key} must be a positive integer, got ${limits[key]}`)
      }
    }
    if (!Number.isInteger(limits.maxQueuedRuns) || limits.maxQueuedRuns < 0) {
      throw new RangeError(`maxQueuedRuns must be a whole number, got ${limits.maxQueuedRuns}`)
    }
    this.#manifest = manifest
    this.#limits = { ...limits }
    this.#telemetry = telemetry
    this.#batch = new StepBatch(models, manifest, limits.maxBatchRows)
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
   * Queues a run and starts it as soon as a slot is free. Throws a SchedulerRejection when the queue is
   * full, the scheduler is draining or the id is taken; nothing runs then. The observer's `accepted`
   * is called before this returns.
   */
  submit(runId: string, options: SamplingOptions, observer: RunObserver): void {
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
    const admittable = this.#queue.length === 0 && this.#hasSlotFor(rows)
    if (!admittable && this.#queue.length >= this.#limits.maxQueuedRuns) {
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
      options,
      rows,
      observer,
      acceptedAt: now,
      deadline: now + this.#limits.runDeadlineMs,
      stepsReported: 0,
      ended: false,
      exited,
      exit,
    }
    this.#runs.set(runId, run)
    this.#queue.push(run)
    observer.accepted(this.#queue.length - 1)
    this.#admit()
    this.#wake()
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

  #hasSlotFor(rows: number): boolean {
    const activeRows = this.#active.reduce((sum, run) => sum + run.rows, 0)
    return (
      this.#active.length < this.#limits.maxActiveRuns &&
      activeRows + rows <= this.#limits.maxBatchRows
    )
  }

  /** Moves runs from the head of the queue into free slots, in order. */
  #admit(): void {
    while (
      this.#queue.length > 0 &&
      this.#hasSlotFor((this.#queue[0] as ScheduledRun<Features>).rows)
    ) {
      const run = this.#queue.shift() as ScheduledRun<Features>
      run.startedAt = performance.now()
      run.lastStepAt = run.startedAt
      run.sampler = new SamplerRun<Features>(this.#manifest, run.options)
      this.#active.push(run)
      run.observer.started()
    }
  }

  #wake(): void {
    if (this.#looping) return
    this.#looping = true
    this.#loop = this.#runLoop()
  }

  async #runLoop(): Promise<void> {
    try {
      // Runs submitted in the same turn of the event loop share the first tick.
      await Promise.resolve()
      for (;;) {
        this.#reap()
        this.#admit()
        if (this.#active.length === 0) return
        const batches = this.#limits.batching
          ? [[...this.#active]]
          : this.#active.map((run) => [run])
        for (const batch of batches) {
          try {
            await this.#tick(batch)
          } catch (error) {
            // Last resort (a throwing `ended` or `started`): the batch fails, the loop goes on.
            for (const run of batch) this.#end(run, 'failed', error as Error)
          }
        }
      }
    } finally {
      // In the same synchronous step as the last empty check, so a new submit always finds the loop
      // running or starts it.
      this.#looping = false
    }
  }

  /** One step for `runs`: a heavy call for those due, a light call for all; stopped runs drop out. */
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
      try {
        run.observer.step(event)
      } catch (error) {
        // One run's failing observer ends that run only.
        this.#end(run, 'failed', error as Error)
        continue
      }
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
    const started = performance.now()
    try {
      const result =
        model === 'heavy' ? await this.#batch.heavy(samplers) : await this.#batch.light(samplers)
      this.#telemetry.modelCall?.(model, rows, (performance.now() - started) / 1000)
      return result
    } catch (error) {
      for (const run of runs) this.#end(run, 'failed', error as Error)
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
    if (outcome === 'completed') {
      this.#runSeconds += RUN_SECONDS_SMOOTHING * (summary.wallMs / 1000 - this.#runSeconds)
    }
    this.#telemetry.runEnded?.(summary)
    run.observer.ended(summary)
    run.exit(summary)
  }

  /** Seconds until a queue slot is likely free: the running mean of run durations, at least 1. */
  #retryAfter(): number {
    return Math.max(1, Math.ceil(this.#runSeconds))
  }
}
