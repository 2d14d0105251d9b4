// The benchmark's command line: which mode, and that mode's options. Every problem is a UsageError, so the
// entry point can print the usage and one line saying what was wrong.
import { parseArgs } from 'node:util'
import { z } from 'zod'
import { UsageError } from '../cli/usage-error.ts'

export const USAGE = `Usage: npm run bench -- [--mode throughput|fairness] [options]

  --mode <name>         throughput (default): images/s and latency at several concurrencies,
                        batching on and off; fairness: a one-image run's latency while a
                        maximum-size run (64 guided images) is active
  --out <dir>           where the report files go (default docs/bench)
  --repeats <n>         measurements per setting (default 2 for throughput, 5 for fairness)
  -h, --help            this text

fairness only:
  --big-steps <n>       steps of the maximum-size run (default 50, like the one-image run)

throughput only:
  --concurrency <list>  concurrent clients, e.g. 1,4,16 (default 1,4,16)
  --runs <n>            runs per setting and repeat, at least 2 per client (default 16)
  --steps <n>           sampler steps per run (default: manifest recommended)
  --heavy-every <k>     heavy encoder every k steps (default 4)
  --guidance <w>        classifier-free guidance (default: manifest recommended)
  --before <file>       an earlier gpu-service.json whose service figures the report sets beside
                        this run's`

export interface ThroughputArgs {
  mode: 'throughput'
  concurrency: number[]
  runs: number
  repeats: number
  steps: number | undefined
  heavyEvery: number
  guidance: number | undefined
  out: string
  /** An earlier report (gpu-service.json) to compare with. */
  before: string | undefined
}

export interface FairnessArgs {
  mode: 'fairness'
  repeats: number
  bigSteps: number
  out: string
}

export type BenchArgs = ThroughputArgs | FairnessArgs | { mode: 'help' }

const THROUGHPUT_ONLY = [
  'concurrency',
  'runs',
  'steps',
  'heavy-every',
  'guidance',
  'before',
] as const

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `expected at least ${min}`).max(max, `expected at most ${max}`))

const argsSchema = z.object({
  mode: z
    .enum(['throughput', 'fairness'], { error: 'expected throughput or fairness' })
    .default('throughput'),
  concurrency: z
    .string()
    .regex(/^\d+(,\d+)*$/, 'expected comma-separated whole numbers, e.g. 1,4,16')
    .transform((text) => text.split(',').map(Number))
    .pipe(z.array(z.number().min(1, 'expected 1 to 64').max(64, 'expected 1 to 64')))
    .default([1, 4, 16]),
  runs: wholeNumber(1).default(16),
  repeats: wholeNumber(1).optional(),
  steps: wholeNumber(1, 1000).optional(),
  'heavy-every': wholeNumber(1, 1000).default(4),
  'big-steps': wholeNumber(1, 1000).default(50),
  guidance: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'expected a number from 0 to 20')
    .transform(Number)
    .pipe(z.number().max(20, 'expected a number from 0 to 20'))
    .optional(),
  out: z.string().min(1).default('docs/bench'),
  before: z.string().min(1).optional(),
})

/**
 * Reads the benchmark's arguments; throws a UsageError with one line for the first problem.
 *
 * @example
 * parseBenchArgs(['--mode', 'fairness', '--repeats', '3']) // { mode: 'fairness', repeats: 3, out: 'docs/bench' }
 */
export function parseBenchArgs(argv: string[]): BenchArgs {
  let values: Record<string, string | boolean | undefined>
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        mode: { type: 'string' },
        concurrency: { type: 'string' },
        runs: { type: 'string' },
        repeats: { type: 'string' },
        steps: { type: 'string' },
        'heavy-every': { type: 'string' },
        'big-steps': { type: 'string' },
        guidance: { type: 'string' },
        out: { type: 'string' },
        before: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (error) {
    // node:util's message for an unknown flag, a stray argument or a missing value: its first sentence.
    const [sentence] = (error as Error).message.split(/\.(?:\s|$)/)
    throw new UsageError(sentence as string)
  }
  if (values.help) return { mode: 'help' }
  const parsed = argsSchema.safeParse(values)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UsageError(`--${String(issue?.path[0])}: ${issue?.message}`)
  }
  const args = parsed.data
  if (args.mode === 'fairness') {
    const misplaced = THROUGHPUT_ONLY.find((name) => values[name] !== undefined)
    if (misplaced) throw new UsageError(`--${misplaced} applies to --mode throughput only`)
    return {
      mode: 'fairness',
      repeats: args.repeats ?? 5,
      bigSteps: args['big-steps'],
      out: args.out,
    }
  }
  if (values['big-steps'] !== undefined) {
    throw new UsageError('--big-steps applies to --mode fairness only')
  }
  return {
    mode: 'throughput',
    concurrency: args.concurrency,
    runs: args.runs,
    repeats: args.repeats ?? 2,
    steps: args.steps,
    heavyEvery: args['heavy-every'],
    guidance: args.guidance,
    out: args.out,
    before: args.before,
  }
}
