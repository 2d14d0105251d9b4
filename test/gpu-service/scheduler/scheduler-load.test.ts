// The scheduler's load numbers (StepScheduler.load): what GET /v1/load and the `accepted` event report.
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import type { DualRateModels } from '../../../gpu-service/src/sampler/sample.ts'
import {
  type RunObserver,
  type RunSummary,
  type SchedulerLimits,
  type SchedulerLoad,
  StepScheduler,
} from '../../../gpu-service/src/scheduler/step-scheduler.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { fakeModels } from '../../fixtures/fake-models.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const manifest = validManifest()
const limits: SchedulerLimits = {
  maxBatchRows: 128,
  maxActiveRows: 256,
  maxActiveRuns: 2,
  maxQueuedRuns: 8,
  runDeadlineMs: 60_000,
  batching: true,
}
/** One guided image: two rows. */
const options: SamplingOptions = {
  classIndex: 1,
  count: 1,
  steps: 1000,
  heavySchedule: { every: 4 },
  guidance: 2,
  seed: 3,
}

function slowModels(ms = 2): DualRateModels<Float32Array> {
  const models = fakeModels()
  return {
    async heavy(feeds) {
      await sleep(ms)
      return models.heavy(feeds)
    },
    async light(feeds) {
      await sleep(ms)
      return models.light(feeds)
    },
  }
}

/** An observer that records the load the scheduler reports at each callback. */
function watching(scheduler: () => StepScheduler<Float32Array>) {
  const seen: Record<string, SchedulerLoad> = {}
  let resolveEnded: (summary: RunSummary) => void = () => {}
  const ended = new Promise<RunSummary>((resolve) => {
    resolveEnded = resolve
  })
  const observer: RunObserver = {
    accepted: () => {
      seen.accepted = scheduler().load
    },
    started: () => {
      seen.started = scheduler().load
    },
    step: () => {},
    ended: (summary) => resolveEnded(summary),
  }
  return { seen, observer, ended }
}

describe('StepScheduler load', () => {
  it('is empty with the capacity of maxActiveRows before any run', () => {
    const scheduler = new StepScheduler([{ manifest, models: slowModels() }], limits)
    expect(scheduler.load).toEqual({
      queuedRuns: 0,
      queuedRows: 0,
      activeRuns: 0,
      activeRows: 0,
      capacityRows: 256,
      capacityRuns: 2,
      draining: false,
    })
  })

  it('counts a run in the queue when it is accepted and among the active ones once started', async () => {
    const scheduler = new StepScheduler([{ manifest, models: slowModels() }], limits)
    const run = watching(() => scheduler)
    scheduler.submit('first', options, run.observer)
    expect(run.seen).toEqual({
      accepted: { ...scheduler.load, queuedRuns: 1, queuedRows: 2, activeRuns: 0, activeRows: 0 },
      started: { ...scheduler.load, queuedRuns: 0, queuedRows: 0, activeRuns: 1, activeRows: 2 },
    })
    await scheduler.cancel('first')
    expect((await run.ended).outcome).toBe('cancelled')
  })

  it('counts runs and rows waiting behind maxActiveRuns apart from those stepping', async () => {
    const scheduler = new StepScheduler([{ manifest, models: slowModels() }], limits)
    const runs = ['a', 'b', 'c', 'd'].map((runId, index) => {
      const run = watching(() => scheduler)
      scheduler.submit(runId, { ...options, count: index + 1, seed: index }, run.observer)
      return run
    })
    await sleep(10)
    // a (2 rows) and b (4) step; c (6) and d (8) wait.
    expect(scheduler.load).toEqual({
      queuedRuns: 2,
      queuedRows: 14,
      activeRuns: 2,
      activeRows: 6,
      capacityRows: 256,
      capacityRuns: 2,
      draining: false,
    })
    const drained = scheduler.drain(0)
    expect(scheduler.load.draining).toBe(true)
    await drained
    for (const run of runs) expect((await run.ended).outcome).toBe('shutdown')
    expect(scheduler.load).toMatchObject({ queuedRuns: 0, activeRuns: 0, activeRows: 0 })
  })
})
