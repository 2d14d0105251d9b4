import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import type { DualRateModels } from '../../../gpu-service/src/sampler/sample.ts'
import { sample } from '../../../gpu-service/src/sampler/sample.ts'
import {
  type RunObserver,
  type RunSummary,
  type SchedulerLimits,
  SchedulerRejection,
  StepScheduler,
} from '../../../gpu-service/src/scheduler/step-scheduler.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { fakeModels, type ModelCall } from '../../fixtures/fake-models.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const manifest = validManifest()
const limits: SchedulerLimits = {
  maxBatchRows: 128,
  maxActiveRuns: 4,
  maxQueuedRuns: 4,
  runDeadlineMs: 60_000,
  batching: true,
}
const options: SamplingOptions = {
  classIndex: 2,
  count: 1,
  steps: 6,
  heavySchedule: { every: 2 },
  guidance: 2,
  seed: 3,
}

/** The fake pair, each call taking `ms` so that cancellations land between calls. */
function slowModels(calls: ModelCall[], ms = 2): DualRateModels<Float32Array> {
  const models = fakeModels(calls)
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

/** Records what a run's observer is told; `ended` resolves with the summary. */
function recorder() {
  const log: string[] = []
  let resolveEnded: (summary: RunSummary) => void = () => {}
  const ended = new Promise<RunSummary>((resolve) => {
    resolveEnded = resolve
  })
  const observer: RunObserver = {
    accepted: (position) => log.push(`accepted ${position}`),
    started: () => log.push('started'),
    step: ({ step }) => log.push(`step ${step}`),
    ended: (summary) => {
      log.push(`ended ${summary.outcome}`)
      resolveEnded(summary)
    },
  }
  return { log, observer, ended }
}

function rejectionOf(submit: () => void): SchedulerRejection | undefined {
  try {
    submit()
  } catch (error) {
    if (error instanceof SchedulerRejection) return error
    throw error
  }
  return undefined
}

/** Labels of a call's conditional rows tell the runs apart: each test run has its own class. */
const classesIn = (call: ModelCall) => [...new Set(call.label.filter((label) => label < 10n))]

describe('StepScheduler', () => {
  it('runs a run through accepted, started, every step and ended, with the pixels of sample()', async () => {
    const scheduler = new StepScheduler(slowModels([]), manifest, limits)
    const run = recorder()
    scheduler.submit('a', options, run.observer)
    const summary = await run.ended
    expect(run.log).toEqual([
      'accepted 0',
      'started',
      ...[0, 1, 2, 3, 4, 5].map((step) => `step ${step}`),
      'ended completed',
    ])
    const alone = await sample(fakeModels(), manifest, options)
    expect(summary.images).toEqual(alone.images)
    expect(summary).toMatchObject({ stepsCompleted: 6, heavyCalls: 3, lightCalls: 6 })
    expect(summary.macs).toBe(alone.macs)
  })

  it('puts concurrent runs into shared calls, and each keeps the pixels it gets alone', async () => {
    const calls: ModelCall[] = []
    const scheduler = new StepScheduler(slowModels(calls), manifest, limits)
    const runs = [0, 1, 2].map((i) => ({
      ...recorder(),
      options: { ...options, classIndex: i, seed: 10 + i, count: i + 1 },
    }))
    for (const [i, run] of runs.entries()) scheduler.submit(`r${i}`, run.options, run.observer)
    for (const run of runs) {
      const summary = await run.ended
      expect(summary.images).toEqual((await sample(fakeModels(), manifest, run.options)).images)
    }
    const light = calls.filter((call) => call.model === 'light')
    expect(light).toHaveLength(6)
    expect(light.map((call) => call.rows)).toEqual([12, 12, 12, 12, 12, 12])
  })

  it('with batching off gives each run its own calls, round robin', async () => {
    const calls: ModelCall[] = []
    const scheduler = new StepScheduler(slowModels(calls), manifest, { ...limits, batching: false })
    const runs = [0, 1].map(() => recorder())
    scheduler.submit('r0', { ...options, classIndex: 0 }, runs[0]?.observer as RunObserver)
    scheduler.submit('r1', { ...options, classIndex: 1 }, runs[1]?.observer as RunObserver)
    await Promise.all(runs.map((run) => run.ended))
    const light = calls.filter((call) => call.model === 'light')
    expect(light.map((call) => classesIn(call).join())).toEqual(
      Array.from({ length: 6 }, () => ['0', '1']).flat(),
    )
    expect(light.every((call) => call.rows === 2)).toBe(true)
  })

  it('queues beyond maxActiveRuns and refuses beyond maxQueuedRuns, running nothing', async () => {
    const calls: ModelCall[] = []
    const scheduler = new StepScheduler(slowModels(calls), manifest, {
      ...limits,
      maxActiveRuns: 1,
      maxQueuedRuns: 1,
    })
    const [first, second] = [recorder(), recorder()]
    scheduler.submit('first', options, first.observer)
    scheduler.submit('second', options, second.observer)
    expect(second.log).toEqual(['accepted 0'])
    expect([scheduler.activeRuns, scheduler.queueDepth]).toEqual([1, 1])
    const rejection = rejectionOf(() =>
      scheduler.submit('third', { ...options, classIndex: 9 }, recorder().observer),
    )
    expect(rejection).toMatchObject({
      reason: 'queue_full',
      message: '1 runs are waiting, the limit is 1',
      retryAfterSeconds: 1,
    })
    await Promise.all([first.ended, second.ended])
    expect(calls.some((call) => classesIn(call).includes(9n))).toBe(false)
    expect(() => scheduler.submit('first', options, recorder().observer)).not.toThrow()
  })

  it('cancels an active run before its next model call and answers once it has stopped', async () => {
    const calls: ModelCall[] = []
    const scheduler = new StepScheduler(slowModels(calls, 5), manifest, limits)
    const [keep, stop] = [recorder(), recorder()]
    scheduler.submit('keep', { ...options, classIndex: 0, steps: 12 }, keep.observer)
    scheduler.submit('stop', { ...options, classIndex: 1, steps: 12 }, stop.observer)
    while (!stop.log.includes('step 2')) await sleep(1)
    const summary = await scheduler.cancel('stop')
    const callsAtCancel = calls.filter((call) => classesIn(call).includes(1n)).length
    expect(summary?.outcome).toBe('cancelled')
    expect(summary?.stepsCompleted).toBeGreaterThanOrEqual(3)
    expect(summary?.stepsCompleted).toBeLessThan(12)
    await keep.ended
    // No call of the cancelled run after the answer; the other run went on without it.
    expect(calls.filter((call) => classesIn(call).includes(1n))).toHaveLength(callsAtCancel)
    expect(stop.log.at(-1)).toBe('ended cancelled')
    expect(stop.log.filter((line) => line.startsWith('step'))).toHaveLength(
      summary?.stepsCompleted as number,
    )
    expect(keep.log.at(-1)).toBe('ended completed')
    expect(await scheduler.cancel('stop')).toBeUndefined()
  })

  it('ends a queued run at once when cancelled, and a run past its deadline', async () => {
    const calls: ModelCall[] = []
    const scheduler = new StepScheduler(slowModels(calls), manifest, {
      ...limits,
      maxActiveRuns: 1,
      runDeadlineMs: 40,
    })
    const [slow, queued] = [recorder(), recorder()]
    scheduler.submit('slow', { ...options, steps: 1000 }, slow.observer)
    scheduler.submit('queued', { ...options, classIndex: 9 }, queued.observer)
    expect(await scheduler.cancel('queued', 'disconnected')).toMatchObject({
      outcome: 'disconnected',
      stepsCompleted: 0,
      wallMs: 0,
    })
    expect(queued.log).toEqual(['accepted 0', 'ended disconnected'])
    const summary = await slow.ended
    expect(summary.outcome).toBe('deadline_exceeded')
    expect(summary.stepsCompleted).toBeLessThan(1000)
    expect(calls.some((call) => classesIn(call).includes(9n))).toBe(false)
  })

  it('fails the runs of a model call that throws and goes on with the next', async () => {
    let failures = 1
    const models = fakeModels()
    const scheduler = new StepScheduler(
      {
        heavy: models.heavy,
        light: async (feeds) => {
          if (failures-- > 0) throw new Error('device lost')
          return models.light(feeds)
        },
      },
      manifest,
      limits,
    )
    const [failed, next] = [recorder(), recorder()]
    scheduler.submit('failed', options, failed.observer)
    const summary = await failed.ended
    expect(summary).toMatchObject({ outcome: 'failed', error: new Error('device lost') })
    scheduler.submit('next', options, next.observer)
    expect((await next.ended).outcome).toBe('completed')
  })

  it('fails only the run whose observer throws; the runs batched with it go on', async () => {
    const scheduler = new StepScheduler(slowModels([]), manifest, limits)
    const [broken, healthy] = [recorder(), recorder()]
    scheduler.submit('broken', options, {
      ...broken.observer,
      step: () => {
        throw new Error('client gone')
      },
    })
    scheduler.submit('healthy', { ...options, classIndex: 5 }, healthy.observer)
    expect(await broken.ended).toMatchObject({
      outcome: 'failed',
      stepsCompleted: 1,
      error: new Error('client gone'),
    })
    expect((await healthy.ended).outcome).toBe('completed')
  })

  it('drains: refuses new runs, finishes within the grace period, stops the rest after it', async () => {
    const scheduler = new StepScheduler(slowModels([]), manifest, limits)
    const [short, long] = [recorder(), recorder()]
    scheduler.submit('short', options, short.observer)
    scheduler.submit('long', { ...options, steps: 1000 }, long.observer)
    const drained = scheduler.drain(100)
    expect(rejectionOf(() => scheduler.submit('late', options, recorder().observer))).toMatchObject(
      {
        reason: 'draining',
        message: 'the service is shutting down',
      },
    )
    await drained
    expect((await short.ended).outcome).toBe('completed')
    expect((await long.ended).outcome).toBe('shutdown')
    expect([scheduler.activeRuns, scheduler.queueDepth]).toEqual([0, 0])
  })
})
