import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import type { DualRateModels } from '../../../gpu-service/src/sampler/sample.ts'
import { sample } from '../../../gpu-service/src/sampler/sample.ts'
import {
  MAX_PASSES,
  type RunObserver,
  type RunSummary,
  type SchedulerLimits,
  SchedulerRejection,
  StepScheduler,
} from '../../../gpu-service/src/scheduler/step-scheduler.ts'
import { jsonLogger } from '../../../gpu-service/src/service/logger.ts'
import type { SamplingOptions } from '../../../shared/sampling-options.ts'
import { fakeModels, type ModelCall } from '../../fixtures/fake-models.ts'
import { validManifest } from '../../fixtures/manifest.ts'

const manifest = validManifest()
const limits: SchedulerLimits = {
  maxBatchRows: 128,
  maxActiveRows: 256,
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

/**
 * Records what a run's observer is told; `ended` resolves with the summary. With a `timeline`, also
 * appends `<name> <what>` there, to see the order across runs.
 */
function recorder(name = '', timeline: string[] = []) {
  const log: string[] = []
  const record = (line: string) => {
    log.push(line)
    timeline.push(`${name} ${line}`)
  }
  let resolveEnded: (summary: RunSummary) => void = () => {}
  const ended = new Promise<RunSummary>((resolve) => {
    resolveEnded = resolve
  })
  const observer: RunObserver = {
    accepted: (position) => record(`accepted ${position}`),
    started: () => record('started'),
    step: ({ step }) => record(`step ${step}`),
    ended: (summary) => {
      record(`ended ${summary.outcome}`)
      resolveEnded(summary)
    },
  }
  return { log, observer, ended }
}

/** A logger whose lines land in `lines`, parsed. */
function captureLogger() {
  const lines: Record<string, unknown>[] = []
  return { lines, logger: jsonLogger((line) => lines.push(JSON.parse(line))) }
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
    const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], limits)
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
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls) }], limits)
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
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls) }], {
      ...limits,
      batching: false,
    })
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
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls) }], {
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
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls, 5) }], limits)
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
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls) }], {
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
    const failingOnce: DualRateModels<Float32Array> = {
      heavy: models.heavy,
      light: async (feeds) => {
        if (failures-- > 0) throw new Error('device lost')
        return models.light(feeds)
      },
    }
    const scheduler = new StepScheduler([{ manifest, models: failingOnce }], limits)
    const [failed, next] = [recorder(), recorder()]
    scheduler.submit('failed', options, failed.observer)
    const summary = await failed.ended
    expect(summary).toMatchObject({ outcome: 'failed', error: new Error('device lost') })
    scheduler.submit('next', options, next.observer)
    expect((await next.ended).outcome).toBe('completed')
  })

  it.each([
    ['accepted', 0],
    ['started', 0],
    ['step', 1],
  ] as const)(
    'ends a run whose %s observer throws as failed, once, logs it, and the other runs complete',
    async (callback, stepsCompleted) => {
      const { lines, logger } = captureLogger()
      const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], limits, {
        logger,
      })
      const [broken, healthy] = [recorder(), recorder()]
      const exited = scheduler.submit('broken', options, {
        ...broken.observer,
        [callback]: () => {
          throw new Error('client gone')
        },
      })
      scheduler.submit('healthy', { ...options, classIndex: 5 }, healthy.observer)
      const summary = await exited
      expect(summary).toMatchObject({
        outcome: 'failed',
        stepsCompleted,
        error: new Error('client gone'),
      })
      expect(await broken.ended).toBe(summary)
      expect(broken.log.filter((line) => line.startsWith('ended'))).toEqual(['ended failed'])
      expect((await healthy.ended).outcome).toBe('completed')
      expect(lines).toEqual([
        expect.objectContaining({
          level: 'error',
          msg: 'run observer failed',
          runId: 'broken',
          callback,
          error: expect.objectContaining({ name: 'Error', message: 'client gone' }),
        }),
      ])
      expect([scheduler.activeRuns, scheduler.queueDepth]).toEqual([0, 0])
    },
  )

  it('exits a run whose ended observer throws as failed; cancel and drain still answer', async () => {
    const { lines, logger } = captureLogger()
    const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], limits, { logger })
    const throwingEnded = (run: ReturnType<typeof recorder>): RunObserver => ({
      ...run.observer,
      ended: (summary) => {
        run.observer.ended(summary)
        throw new Error('stream closed')
      },
    })
    const [done, cancelled, long, healthy] = [recorder(), recorder(), recorder(), recorder()]
    const doneExited = scheduler.submit('done', options, throwingEnded(done))
    scheduler.submit('cancelled', { ...options, steps: 1000 }, throwingEnded(cancelled))
    scheduler.submit('long', { ...options, steps: 1000 }, throwingEnded(long))
    scheduler.submit('healthy', { ...options, classIndex: 5 }, healthy.observer)

    // The observer heard "completed"; the run exits as failed, without images.
    const summary = await doneExited
    expect(done.log.filter((line) => line.startsWith('ended'))).toEqual(['ended completed'])
    expect(summary).toMatchObject({ outcome: 'failed', error: new Error('stream closed') })
    expect(summary.images).toBeUndefined()
    expect(await scheduler.cancel('cancelled')).toMatchObject({ outcome: 'failed' })
    expect(cancelled.log.at(-1)).toBe('ended cancelled')
    expect((await healthy.ended).outcome).toBe('completed')
    await scheduler.drain(0)
    expect(long.log.at(-1)).toBe('ended shutdown')
    expect([scheduler.activeRuns, scheduler.queueDepth]).toEqual([0, 0])
    expect(lines.map((line) => [line.msg, line.runId, line.callback])).toEqual([
      ['run observer failed', 'done', 'ended'],
      ['run observer failed', 'cancelled', 'ended'],
      ['run observer failed', 'long', 'ended'],
    ])
  })

  it('fails a run whose options the sampler refuses, and goes on with the others', async () => {
    const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], limits)
    const [bad, good] = [recorder(), recorder()]
    const exited = scheduler.submit('bad', { ...options, steps: 0 }, bad.observer)
    scheduler.submit('good', options, good.observer)
    expect(await exited).toMatchObject({ outcome: 'failed', stepsCompleted: 0 })
    expect(bad.log).toEqual(['accepted 0', 'ended failed'])
    expect((await good.ended).outcome).toBe('completed')
  })

  it('goes on with the next runs after an observer throws something that is not an Error', async () => {
    const { logger } = captureLogger()
    const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], limits, { logger })
    const exited = scheduler.submit('odd', options, {
      ...recorder().observer,
      started: () => {
        throw 'a string'
      },
    })
    expect(await exited).toMatchObject({ outcome: 'failed', error: new Error('a string') })
    const next = recorder()
    scheduler.submit('next', options, next.observer)
    expect((await next.ended).outcome).toBe('completed')
  })

  it('drains: refuses new runs, finishes within the grace period, stops the rest after it', async () => {
    const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], limits)
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

describe('StepScheduler admission', () => {
  /** The largest valid run: 64 guided images, 128 rows, a whole model call. */
  const big: SamplingOptions = { ...options, classIndex: 0, count: 64, guidance: 2, steps: 6 }
  const small: SamplingOptions = { ...options, classIndex: 5, count: 1, guidance: 1, seed: 7 }

  it('runs one-image runs beside a 128-row run, in calls of at most maxBatchRows rows', async () => {
    const calls: ModelCall[] = []
    const timeline: string[] = []
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls) }], limits)
    const runs = [
      { name: 'big', options: big },
      { name: 'small', options: small },
      { name: 'guided', options: { ...small, classIndex: 6, guidance: 3, count: 2 } },
    ].map((run) => ({ ...run, ...recorder(run.name, timeline) }))
    for (const run of runs) scheduler.submit(run.name, run.options, run.observer)
    const summaries = await Promise.all(runs.map((run) => run.ended))
    // All three started before any step: nothing waited for the big run.
    expect(timeline.slice(0, 6)).toEqual([
      'big accepted 0',
      'big started',
      'small accepted 0',
      'small started',
      'guided accepted 0',
      'guided started',
    ])
    for (const [index, run] of runs.entries()) {
      expect(summaries[index]?.outcome).toBe('completed')
      const alone = await sample(fakeModels(), manifest, run.options)
      expect(summaries[index]?.images).toEqual(alone.images)
    }
    // The small runs share one call (1 + 4 rows), never a call with the big run, and by fair share
    // they are not paced by it: both end before the big run has taken half its steps.
    const light = calls.filter((call) => call.model === 'light')
    expect(light.filter((call) => call.rows === 5)).toHaveLength(small.steps)
    expect(light.filter((call) => call.rows === 128)).toHaveLength(big.steps)
    expect(calls.every((call) => call.rows <= limits.maxBatchRows)).toBe(true)
    const bigStepsBefore = (name: string) =>
      timeline
        .slice(0, timeline.indexOf(`${name} ended completed`))
        .filter((line) => line.startsWith('big step')).length
    expect(bigStepsBefore('small')).toBeLessThan(big.steps / 2)
    expect(bigStepsBefore('guided')).toBeLessThan(big.steps / 2)
  })

  it('gives equal runs the same turns, so they keep sharing one call', async () => {
    const calls: ModelCall[] = []
    const scheduler = new StepScheduler([{ manifest, models: slowModels(calls) }], limits)
    const runs = [0, 1, 2].map((classIndex) => ({
      options: { ...small, classIndex },
      ...recorder(`run-${classIndex}`),
    }))
    for (const [index, run] of runs.entries()) {
      scheduler.submit(`equal-${index}`, run.options, run.observer)
    }
    await Promise.all(runs.map((run) => run.ended))
    const light = calls.filter((call) => call.model === 'light')
    expect(light.map((call) => call.rows)).toEqual(Array.from({ length: small.steps }, () => 3))
  })

  it('keeps maxActiveRows: a run that does not fit waits, and later runs that fit pass it', async () => {
    const timeline: string[] = []
    const scheduler = new StepScheduler([{ manifest, models: slowModels([]) }], {
      ...limits,
      maxBatchRows: 4,
      maxActiveRows: 4,
    })
    const [first, wide, narrow] = [
      recorder('first', timeline),
      recorder('wide', timeline),
      recorder('narrow', timeline),
    ]
    scheduler.submit('first', { ...small, count: 2, steps: 20 }, first.observer)
    scheduler.submit('wide', { ...small, count: 4, classIndex: 1 }, wide.observer)
    scheduler.submit('narrow', { ...small, count: 2, classIndex: 2 }, narrow.observer)
    expect(timeline).toEqual([
      'first accepted 0',
      'first started',
      'wide accepted 0',
      'narrow accepted 1',
      'narrow started',
    ])
    expect([scheduler.activeRuns, scheduler.queueDepth]).toEqual([2, 1])
    await Promise.all([first.ended, wide.ended, narrow.ended])
    expect(wide.log.at(-1)).toBe('ended completed')
    expect(timeline.indexOf('wide started')).toBeGreaterThan(
      timeline.indexOf('narrow ended completed'),
    )
  })

  it(`lets a waiting run be passed ${MAX_PASSES} times, then holds later runs until it fits`, async () => {
    const timeline: string[] = []
    const scheduler = new StepScheduler([{ manifest, models: slowModels([], 1) }], {
      ...limits,
      maxBatchRows: 4,
      maxActiveRows: 4,
      maxActiveRuns: 8,
      maxQueuedRuns: 8,
    })
    const blocker = recorder('blocker', timeline)
    const wide = recorder('wide', timeline)
    scheduler.submit('blocker', { ...small, steps: 1000 }, blocker.observer)
    scheduler.submit('wide', { ...small, count: 4, classIndex: 1, steps: 2 }, wide.observer)
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      const passer = recorder(`passer-${pass}`, timeline)
      scheduler.submit(`passer-${pass}`, { ...small, steps: 2, seed: pass }, passer.observer)
      expect(passer.log).toEqual(['accepted 1', 'started'])
      await passer.ended
    }
    const held = recorder('held', timeline)
    scheduler.submit('held', { ...small, steps: 2, seed: 99 }, held.observer)
    await sleep(20)
    expect(held.log).toEqual(['accepted 1'])
    expect(wide.log).toEqual(['accepted 0'])
    await scheduler.cancel('blocker')
    await Promise.all([wide.ended, held.ended])
    expect(timeline.indexOf('held started')).toBeGreaterThan(timeline.indexOf('wide started'))
    expect([wide.log.at(-1), held.log.at(-1)]).toEqual(['ended completed', 'ended completed'])
  })

  it('refuses maxActiveRows below maxBatchRows', () => {
    expect(
      () =>
        new StepScheduler([{ manifest, models: slowModels([]) }], { ...limits, maxActiveRows: 64 }),
    ).toThrow(new RangeError('maxActiveRows (64) must be at least maxBatchRows (128)'))
  })
})

describe('StepScheduler with several models', () => {
  const student = { ...validManifest(), modelId: 'dualrate-00000000000b' }

  /** Both models' fakes, each recording its own calls, and the most calls ever in flight at once. */
  function twoModels() {
    const teacherCalls: ModelCall[] = []
    const studentCalls: ModelCall[] = []
    let inFlight = 0
    const track = (models: DualRateModels<Float32Array>): DualRateModels<Float32Array> => ({
      async heavy(feeds) {
        track.most = Math.max(track.most, ++inFlight)
        await sleep(2)
        inFlight--
        return models.heavy(feeds)
      },
      async light(feeds) {
        track.most = Math.max(track.most, ++inFlight)
        await sleep(2)
        inFlight--
        return models.light(feeds)
      },
    })
    track.most = 0
    const served = [
      { manifest, models: track(fakeModels(teacherCalls)) },
      { manifest: student, models: track(fakeModels(studentCalls)) },
    ]
    return { served, teacherCalls, studentCalls, mostInFlight: () => track.most }
  }

  it("batches each model's runs apart, one call at a time, each run with the pixels it gets alone", async () => {
    const { served, teacherCalls, studentCalls, mostInFlight } = twoModels()
    const telemetry: string[] = []
    const scheduler = new StepScheduler(served, limits, {
      telemetry: {
        modelCall: (model, _rows, _seconds, modelId) => telemetry.push(`${modelId} ${model}`),
      },
    })
    const runs = [0, 1, 2, 3].map((classIndex) => ({
      ...recorder(),
      options: { ...options, classIndex, seed: 20 + classIndex },
      modelId: classIndex < 2 ? undefined : student.modelId,
    }))
    for (const [index, run] of runs.entries()) {
      scheduler.submit(`m${index}`, run.options, run.observer, run.modelId)
    }
    for (const run of runs) {
      const summary = await run.ended
      const alone = await sample(fakeModels(), run.modelId ? student : manifest, run.options)
      expect(summary.images).toEqual(alone.images)
    }
    // Classes 0 and 1 ran on the default model, 2 and 3 on the student: never in one call.
    const classes = (calls: ModelCall[]) => [...new Set(calls.flatMap(classesIn))].sort()
    expect(classes(teacherCalls)).toEqual([0n, 1n])
    expect(classes(studentCalls)).toEqual([2n, 3n])
    // Within a model the runs still share calls: one light call a step for both of its runs.
    for (const calls of [teacherCalls, studentCalls]) {
      const light = calls.filter((call) => call.model === 'light')
      expect(light.map((call) => call.rows)).toEqual(Array(options.steps).fill(4))
    }
    expect(mostInFlight()).toBe(1)
    expect(telemetry.filter((line) => line.endsWith('light'))).toEqual(
      Array.from({ length: options.steps }, () => [
        `${manifest.modelId} light`,
        `${student.modelId} light`,
      ]).flat(),
    )
  })

  it('counts the runs of every model against maxActiveRuns, and in the load', async () => {
    const { served } = twoModels()
    const scheduler = new StepScheduler(served, { ...limits, maxActiveRuns: 2 })
    const runs = [recorder(), recorder(), recorder()]
    scheduler.submit('teacher', { ...options, steps: 50 }, runs[0]?.observer as RunObserver)
    scheduler.submit(
      'student',
      { ...options, steps: 50, count: 3 },
      runs[1]?.observer as RunObserver,
      student.modelId,
    )
    scheduler.submit(
      'waiting',
      { ...options, guidance: 1 },
      runs[2]?.observer as RunObserver,
      student.modelId,
    )
    expect(scheduler.load).toEqual({
      queuedRuns: 1,
      queuedRows: 1,
      activeRuns: 2,
      activeRows: 2 + 6,
      capacityRows: limits.maxActiveRows,
      capacityRuns: 2,
      draining: false,
    })
    await scheduler.drain(0)
  })

  it("keeps the fair share across models: a one-image run is not paced by another model's 128-row run", async () => {
    const { served } = twoModels()
    const timeline: string[] = []
    const scheduler = new StepScheduler(served, limits)
    const big = recorder('big', timeline)
    const small = recorder('small', timeline)
    const bigOptions = { ...options, classIndex: 0, count: 64, guidance: 2, steps: 6 }
    scheduler.submit('big', bigOptions, big.observer)
    scheduler.submit(
      'small',
      { ...options, count: 1, guidance: 1 },
      small.observer,
      student.modelId,
    )
    await Promise.all([big.ended, small.ended])
    const bigStepsBeforeSmallEnded = timeline
      .slice(0, timeline.indexOf('small ended completed'))
      .filter((line) => line.startsWith('big step')).length
    expect(bigStepsBeforeSmallEnded).toBeLessThan(bigOptions.steps / 2)
  })

  it('serves the default model when none is named, and refuses one it does not serve', () => {
    const { served } = twoModels()
    const scheduler = new StepScheduler(served, limits)
    expect(scheduler.manifests.map((served) => served.modelId)).toEqual([
      manifest.modelId,
      student.modelId,
    ])
    expect(scheduler.manifestOf()).toBe(manifest)
    expect(scheduler.manifestOf(student.modelId)).toBe(student)
    expect(scheduler.manifestOf('dualrate-ffffffffffff')).toBeUndefined()
    const run = recorder()
    const rejection = rejectionOf(() =>
      scheduler.submit('unknown', options, run.observer, 'dualrate-ffffffffffff'),
    )
    expect(rejection).toMatchObject({
      reason: 'model_not_loaded',
      message: 'model dualrate-ffffffffffff is not loaded',
    })
    expect(run.log).toEqual([])
    expect([scheduler.activeRuns, scheduler.queueDepth]).toEqual([0, 0])
  })

  it('refuses no models, and a model given twice', () => {
    expect(() => new StepScheduler([], limits)).toThrow(
      new RangeError('a scheduler needs at least one model'),
    )
    const models = slowModels([])
    expect(
      () =>
        new StepScheduler(
          [
            { manifest, models },
            { manifest, models },
          ],
          limits,
        ),
    ).toThrow(new RangeError(`model ${manifest.modelId} is given twice`))
  })
})
