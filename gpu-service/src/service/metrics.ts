// Prometheus metrics of the service (prom-client): runs by outcome, queue depth, active runs, model calls,
// rows per call, step latency and the execution providers in use. One registry per service, so tests can
// run several services at once.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { RunOutcome, SchedulerTelemetry, StepScheduler } from '../scheduler/step-scheduler.ts'

/** Outcome label of runs_total: how a run ended, or `rejected` when it was never accepted. */
export type RunOutcomeLabel = RunOutcome | 'rejected'

export interface ServiceMetrics {
  registry: Registry
  /** What the scheduler reports, turned into counters and histograms. */
  telemetry: SchedulerTelemetry
  /** Reads queue depth and active runs from the scheduler at each scrape. */
  watch(scheduler: Pick<StepScheduler<unknown>, 'queueDepth' | 'activeRuns'>): void
  runRejected(): void
  /** Records the providers the loaded sessions run on: dualrate_execution_provider{provider} 1. */
  executionProvidersInUse(providers: readonly string[]): void
}

/**
 * Creates the metrics in a fresh registry, with Node's default process metrics.
 *
 * @example
 * const metrics = createServiceMetrics()
 * const scheduler = new StepScheduler(models, manifest, limits, { telemetry: metrics.telemetry })
 * metrics.watch(scheduler)
 * app.get('/metrics', async (c) => c.text(await metrics.registry.metrics()))
 */
export function createServiceMetrics(): ServiceMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  let scheduler: Pick<StepScheduler<unknown>, 'queueDepth' | 'activeRuns'> | undefined

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
  const modelCalls = new Counter({
    name: 'dualrate_model_calls_total',
    help: 'Model calls by model (heavy encoder, light denoiser)',
    labelNames: ['model'],
    registers,
  })
  const batchRows = new Histogram({
    name: 'dualrate_batch_rows',
    help: 'Image rows per model call (guided images count twice)',
    labelNames: ['model'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers,
  })
  const modelCallSeconds = new Histogram({
    name: 'dualrate_model_call_seconds',
    help: 'Duration of one batched model call',
    labelNames: ['model'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
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
      modelCall(model, rows, seconds) {
        modelCalls.inc({ model })
        batchRows.observe({ model }, rows)
        modelCallSeconds.observe({ model }, seconds)
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
    runRejected() {
      runs.inc({ outcome: 'rejected' satisfies RunOutcomeLabel })
    },
    executionProvidersInUse(providers) {
      executionProvider.reset()
      for (const provider of providers) executionProvider.set({ provider }, 1)
    },
  }
}
