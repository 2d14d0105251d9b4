// The fairness benchmark: how long a one-image run takes while a maximum-size run (64 guided images, 128
// model rows, a whole model call) is active. The big run is sent first; once it has taken its first step
// the small run is sent, and its client-side latency (POST to result) is measured, with the small run
// alone on the same service as the reference. Writes gpu-service-fairness.json and .md (with
// `-big-steps-N` in the name when the big run's steps are not the default 50).
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import type { RunRequest } from '../../../shared/run-protocol.ts'
import type { RunClient } from '../cli/run-client.ts'
import { parseServiceConfig } from '../service/config.ts'
import type { FairnessArgs } from './args.ts'
import { gitRevision, machineDescription } from './machine.ts'
import { writeReportFiles } from './report-files.ts'
import { withServiceProcess } from './service-process.ts'
import { percentile, type RunTiming, timedRun } from './timed-run.ts'

/** One image, no guidance (one model row), 50 steps, heavy encoder every 8. */
export const SMALL_RUN: RunRequest = {
  classIndex: 7,
  count: 1,
  steps: 50,
  heavySchedule: { every: 8 },
  guidance: 1,
  seed: 0,
  previewEvery: 0,
}

/** The largest valid run: 64 images with guidance, so 128 model rows. */
export const BIG_RUN: RunRequest = { ...SMALL_RUN, classIndex: 0, count: 64, guidance: 2 }

export interface FairnessTrial {
  /** The small run, sent once the big one had taken its first step. */
  small: RunTiming
  /** The big run, from its own POST. */
  big: RunTiming
  /** From sending the small run to the big run's result. */
  bigRemainingMs: number
}

export interface FairnessReport {
  date: string
  machine: string
  revision: string
  command: string
  limits: Record<string, unknown>
  smallRun: RunRequest
  bigRun: RunRequest
  loadAverageBefore: number[]
  loadAverageAfter: number[]
  /** The small run with nothing else on the service. */
  alone: RunTiming[]
  trials: FairnessTrial[]
  summary: {
    aloneMedianMs: number
    besideBigMedianMs: number
    besideBigMaxMs: number
    besideBigMedianQueueMs: number
    bigRemainingMedianMs: number
  }
}

const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  )

/** Sends the big run, waits for its first step, then times the small run beside it. */
async function trial(client: RunClient, bigRun: RunRequest, seed: number): Promise<FairnessTrial> {
  let firstStep: () => void = () => {}
  const stepped = new Promise<void>((resolve) => {
    firstStep = resolve
  })
  let bigEndedAt = 0
  const big = timedRun(client, { ...bigRun, seed }, (type) => {
    if (type === 'step') firstStep()
  }).then((timing) => {
    bigEndedAt = performance.now()
    return timing
  })
  await Promise.race([stepped, big])
  const sentAt = performance.now()
  const small = await timedRun(client, { ...SMALL_RUN, seed })
  const bigTiming = await big
  return { small, big: bigTiming, bigRemainingMs: bigEndedAt - sentAt }
}

/** The report as a Markdown page. */
export function renderFairnessMarkdown(report: FairnessReport): string {
  const ms = (value: number) => value.toFixed(0)
  const rows = report.trials.map(
    ({ small, big, bigRemainingMs }, index) =>
      `| ${index + 1} | ${ms(small.latencyMs)} | ${ms(small.queueMs)} | ${ms(small.wallMs)} | ` +
      `${ms(bigRemainingMs)} | ${ms(big.latencyMs)} |`,
  )
  const { summary, bigRun } = report
  return `# gpu-service fairness benchmark

${report.date}, \`${report.command}\` at ${report.revision}, on ${report.machine}.
Load average (1, 5, 15 min) before: ${report.loadAverageBefore.map((v) => v.toFixed(2)).join(', ')};
after: ${report.loadAverageAfter.map((v) => v.toFixed(2)).join(', ')}.
Scheduler limits: ${JSON.stringify(report.limits)}.

Small run: 1 image, guidance 1 (one model row), 50 steps, heavy encoder every 8. Big run: 64 images,
guidance 2 (128 model rows), ${bigRun.steps} steps, heavy encoder every 8. One \`npm run gpu-service\` process,
warmed up; in each trial the big run is sent, and once it has taken its first step the small run is
sent. Latency is client-side, POST to result.

**Small run beside the big one: median ${ms(summary.besideBigMedianMs)} ms** (max ${ms(summary.besideBigMaxMs)} ms,
median queue wait ${ms(summary.besideBigMedianQueueMs)} ms); alone: median ${ms(summary.aloneMedianMs)} ms.
The big run still had a median ${ms(summary.bigRemainingMedianMs)} ms to go when the small run was sent.

| trial | small latency ms | small queue ms | small run ms | big remaining ms | big latency ms |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Small run alone, latency ms: ${report.alone.map((timing) => ms(timing.latencyMs)).join(', ')}.
`
}

/**
 * Runs the fairness benchmark and writes `gpu-service-fairness.json` and `.md` into `args.out`;
 * returns the Markdown.
 *
 * @example
 * console.log(await benchFairness({ mode: 'fairness', repeats: 5, bigSteps: 50, out: 'docs/bench' }, command))
 */
export async function benchFairness(args: FairnessArgs, command: string): Promise<string> {
  const config = parseServiceConfig({ ...process.env, PORT: '0' })
  const bigRun = { ...BIG_RUN, steps: args.bigSteps }
  const secret = randomBytes(32).toString('hex')
  const loadAverageBefore = loadavg()
  const { alone, trials } = await withServiceProcess(
    { DUALRATE_BATCHING: 'on' },
    secret,
    async (client) => {
      // Warm-up: the first calls of each batch shape, alone and together.
      await timedRun(client, { ...SMALL_RUN, steps: 9 })
      await Promise.all([
        timedRun(client, { ...BIG_RUN, steps: 9 }),
        timedRun(client, { ...SMALL_RUN, steps: 9 }),
      ])
      const alone: RunTiming[] = []
      for (let seed = 0; seed < args.repeats; seed++) {
        alone.push(await timedRun(client, { ...SMALL_RUN, seed }))
      }
      const trials: FairnessTrial[] = []
      for (let seed = 0; seed < args.repeats; seed++) {
        const result = await trial(client, bigRun, seed)
        trials.push(result)
        console.log(
          `trial ${seed + 1}: small run ${result.small.latencyMs.toFixed(0)} ms ` +
            `(queue ${result.small.queueMs.toFixed(0)} ms), ` +
            `big run ${result.big.latencyMs.toFixed(0)} ms`,
        )
      }
      return { alone, trials }
    },
  )
  const besideBig = trials.map(({ small }) => small.latencyMs)
  const report: FairnessReport = {
    date: new Date().toISOString(),
    machine: machineDescription(config),
    revision: gitRevision(),
    command,
    limits: { ...config.scheduler },
    smallRun: SMALL_RUN,
    bigRun,
    loadAverageBefore,
    loadAverageAfter: loadavg(),
    alone,
    trials,
    summary: {
      aloneMedianMs: median(alone.map((timing) => timing.latencyMs)),
      besideBigMedianMs: median(besideBig),
      besideBigMaxMs: Math.max(...besideBig),
      besideBigMedianQueueMs: median(trials.map(({ small }) => small.queueMs)),
      bigRemainingMedianMs: median(trials.map(({ bigRemainingMs }) => bigRemainingMs)),
    },
  }
  const markdown = renderFairnessMarkdown(report)
  const name = `gpu-service-fairness${args.bigSteps === BIG_RUN.steps ? '' : `-big-steps-${args.bigSteps}`}`
  await writeReportFiles(args.out, name, report, markdown)
  return markdown
}
