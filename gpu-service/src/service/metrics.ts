// Prometheus metrics of the service (prom-client): runs by outcome, queue depth, active runs, rows in use,
// waiting and available, model calls (by network and model id), rows per call, step latency and the
// execution providers in use. One registry per service, so tests can run several services at once.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { OnnxRunTime } from '../onnx/session.ts'
import type { RunOutcome, SchedulerTelemetry, StepScheduler } from '../scheduler/step-scheduler.ts'

/** What the gauges read from the scheduler at each scrape. */
type WatchedScheduler = Pick<StepScheduler<unknown>, 'queueDepth' | 'activeRuns' | 'load'>

/** A loaded pair's sessions, for the runtime's own time per network. */
export interface WatchedModelPair {
  manifest: { modelId: string }
  heavy: { runTime: OnnxRunTime }
  light: { runTime: OnnxRunTime }
}

/** Outcome label of runs_total: how a run ended, or `rejected` when it was never accepted. */
export type RunOutcomeLabel = RunOutcome | 'rejected'

export interface ServiceMetrics {
  registry: Registry
  /** What the scheduler reports, turned into counters and histograms. */
  telemetry: SchedulerTelemetry
  /** Reads queue depth, active runs and rows, and row capacity from the scheduler at each scrape. */
  watch(scheduler: WatchedScheduler): void
  /** Reads each session's time inside ONNX Runtime at each scrape (dualrate_onnx_run_seconds_total). */
  watchModels(pairs: readonly WatchedModelPair[]): void
  runRejected(): void
  /** Records the providers the loaded sessions run on: dualrate_execution_provider{provider} 1. */
  executionProvidersInUse(providers: readonly string[]): void
}

/**
 * Creates the metrics in a fresh registry, with Node's default process metrics.
 *
 * @example
 * const metrics = createServiceMetrics()
 * const scheduler = new StepScheduler(loaded.pairs, limits, { telemetry: metrics.telemetry })
 * metrics.watch(scheduler)
 * app.get('/metrics', async (c) => c.text(await metrics.registry.metrics()))
 */
export function createServiceMetrics(): ServiceMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  let scheduler: WatchedScheduler | undefined
  let modelPairs: readonly WatchedModelPair[] = []

  const runs = new Counter({
    name: 'dualrate_runs_total',
    help: 'Runs by outcome: completed, cancelled, disconnected, deadline_exceeded, shutdown, failed, rejected',
    labelNames: ['outcome'],
    registers,
  })
  new Gauge({
    name: 'dualrate_queue_depth',
    help: 'Runs waiting for a slot',
    registers,
    collect() {
      this.set(scheduler?.queueDepth ?? 0)
    },
  })
  new Gauge({
    name: 'dualrate_active_runs',
    help: 'Runs stepping now',
    registers,
    collect() {
      this.set(scheduler?.activeRuns ?? 0)
    },
  })
  // Rows, not runs, are what fills the models: a 64-image guided run is 128 rows, a one-image run 1.
  // Autoscaling (deploy/k8s) compares the rows in use and waiting with the rows that may step at once.
  new Gauge({
    name: 'dualrate_active_rows',
    help: 'Image rows of the runs stepping now (guided images count twice)',
    registers,
    collect() {
      this.set(scheduler?.load.activeRows ?? 0)
    },
  })
  new Gauge({
    name: 'dualrate_queued_rows',
    help: 'Image rows of the runs waiting for a slot',
    registers,
    collect() {
      this.set(scheduler?.load.queuedRows ?? 0)
    },
  })
  new Gauge({
    name: 'dualrate_capacity_rows',
    help: 'Image rows that may step at once (DUALRATE_MAX_ACTIVE_ROWS); 0 until the models are loaded',
    registers,
    collect() {
      this.set(scheduler?.load.capacityRows ?? 0)
    },
  })
  // `model` is the network (heavy encoder, light denoiser), `model_id` the loaded model it belongs to.
  const modelCalls = new Counter({
    name: 'dualrate_model_calls_total',
    help: 'Model calls by network (heavy encoder, light denoiser) and model id',
    labelNames: ['model', 'model_id'],
    registers,
  })
  const batchRows = new Histogram({
    name: 'dualrate_batch_rows',
    help: 'Image rows per model call (guided images count twice)',
    labelNames: ['model', 'model_id'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers,
  })
  const modelCallSeconds = new Histogram({
    name: 'dualrate_model_call_seconds',
    help: 'Duration of one batched model call',
    labelNames: ['model', 'model_id'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  })
  // Beside model_call_seconds (the scheduler's view: the call, its feeds and the sampler's step math),
  // the runtime's own time: what the service spends per image over this is its serving overhead.
  new Counter({
    name: 'dualrate_onnx_run_seconds_total',
    help: 'Time inside ONNX Runtime, by network (heavy encoder, light denoiser) and model id',
    labelNames: ['model', 'model_id'],
    registers,
    collect() {
      this.reset()
      for (const pair of modelPairs) {
        for (const model of ['heavy', 'light'] as const) {
          this.inc({ model, model_id: pair.manifest.modelId }, pair[model].runTime.seconds)
        }
      }
    },
  })
  const steps = new Counter({
    name: 'dualrate_steps_total',
    help: 'Sampler steps completed, over all runs',
    registers,
  })
  // An info metric (value 1, the facts in labels): which ONNX Runtime provider serves the models.
  const executionProvider = new Gauge({
    name: 'dualrate_execution_provider',
    help: 'Execution providers the ONNX sessions run on (1 each, once the models are loaded)',
    labelNames: ['provider'],
    registers,
  })
  const stepSeconds = new Histogram({
    name: 'dualrate_step_seconds',
    help: "Time from a run's previous step (or its start) to its next step",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  })

  return {
    registry,
    telemetry: {
      modelCall(model, rows, seconds, modelId) {
        const labels = { model, model_id: modelId }
        modelCalls.inc(labels)
        batchRows.observe(labels, rows)
        modelCallSeconds.observe(labels, seconds)
      },
      runStepped(seconds) {
        steps.inc()
        stepSeconds.observe(seconds)
      },
      runEnded(summary) {
        runs.inc({ outcome: summary.outcome })
      },
    },
    watch(watched) {
      scheduler = watched
    },
    watchModels(pairs) {
      modelPairs = pairs
    },
    runRejected() {
      runs.inc({ outcome: 'rejected' satisfies RunOutcomeLabel })
    },
    executionProvidersInUse(providers) {
      executionProvider.reset()
      for (const provider of providers) executionProvider.set({ provider }, 1)
    },
  }
}
