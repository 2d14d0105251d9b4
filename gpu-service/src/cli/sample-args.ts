// Command-line arguments of `npm run sample`, turned into validated sampler options. Pure: the caller
// reads the chosen model's manifest (it supplies class names, recommended defaults and, for a distilled
// model, what it supports) and prints the errors.
import { parseArgs } from 'node:util'
import { formatIssue, listIssues } from '../../../shared/issues.ts'
import { type Manifest, recommendedOptions } from '../../../shared/model-manifest.ts'
import { calibratedStepCounts, defaultHeavySchedule } from '../../../shared/model-support.ts'
import { type SamplingOptions, samplingOptionsSchema } from '../../../shared/sampling-options.ts'
import { unsupportedFlags } from './model-choice.ts'
import { UsageError } from './usage-error.ts'

export const DEFAULT_MODELS_DIR = 'gpu-service/models'
export const DEFAULT_COUNT = 8
export const DEFAULT_SEED = 0

export const USAGE = `Usage: npm run sample -- --class <name|index> --out-dir <dir> [options]

  --class <name|index>   Fashion-MNIST class, e.g. Sneaker or 7
  --out-dir <dir>        where <classIndex>-<n>.png and grid.png are written
  --count <n>            images, 1..64 (default ${DEFAULT_COUNT})
  --steps <n>            sampler steps, 1..1000 (default: manifest recommended)
  --heavy-every <k>      run the heavy encoder every k steps
                         (no heavy flag: the manifest's recommended schedule)
  --heavy-steps <list>   or at these step indices, e.g. 0,10,20 (step 0 is always included)
  --heavy-calls <n>      or n calls where the model's calibration placed them (npm run calibrate)
  --adaptive <tol>       or decided while sampling: refresh once x0 has moved tol (0 < tol <= 1)
  --guidance <w>         classifier-free guidance scale, 0..20 (default: manifest recommended)
  --seed <n>             unsigned 32-bit seed (default ${DEFAULT_SEED})
  --model <id>           which model of the models folder (default: the folder's own manifest)
  --models <dir>         models folder (default ${DEFAULT_MODELS_DIR})
  --help                 show this text`

const ARG_OPTIONS = {
  class: { type: 'string' },
  'out-dir': { type: 'string' },
  count: { type: 'string' },
  steps: { type: 'string' },
  'heavy-every': { type: 'string' },
  'heavy-steps': { type: 'string' },
  'heavy-calls': { type: 'string' },
  adaptive: { type: 'string' },
  guidance: { type: 'string' },
  seed: { type: 'string' },
  model: { type: 'string' },
  models: { type: 'string' },
  help: { type: 'boolean' },
} as const

export type RawSampleArgs = ReturnType<typeof parseArgs<{ options: typeof ARG_OPTIONS }>>['values']

/**
 * Parses flags without interpreting them; unknown flags and positionals are usage errors.
 *
 * @example
 * const raw = readSampleArgs(process.argv.slice(2))
 */
export function readSampleArgs(argv: string[]): RawSampleArgs {
  try {
    return parseArgs({ args: argv, options: ARG_OPTIONS, strict: true, allowPositionals: false })
      .values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

export interface SampleCommand {
  options: SamplingOptions
  outDir: string
}

/** The flags that choose the heavy schedule; at most one may be given. */
const HEAVY_FLAGS = ['heavy-every', 'heavy-steps', 'heavy-calls', 'adaptive'] as const

/** Where a sampling option came from on the command line, for error messages. */
const FLAG_OF_OPTION: Record<string, string> = {
  classIndex: '--class',
  count: '--count',
  steps: '--steps',
  'heavySchedule.every': '--heavy-every',
  'heavySchedule.steps': '--heavy-steps',
  'heavySchedule.calls': '--heavy-calls',
  'heavySchedule.adaptive.tolerance': '--adaptive',
  guidance: '--guidance',
  seed: '--seed',
}

/**
 * Resolves flags against the manifest (class names, recommended steps, heavy schedule and guidance) and
 * validates them with the shared sampling-options schema and the model's `supports`. Throws a
 * UsageError listing every problem.
 *
 * @example
 * const { options, outDir } = resolveSampleArgs(readSampleArgs(['--class', 'Sneaker', '--out-dir', 'out']), manifest)
 */
export function resolveSampleArgs(raw: RawSampleArgs, manifest: Manifest): SampleCommand {
  const problems: string[] = []
  const number = (flag: keyof typeof ARG_OPTIONS, fallback: number): number => {
    const text = raw[flag]
    if (typeof text !== 'string') return fallback
    const value = Number(text)
    if (text.trim() === '' || !Number.isFinite(value)) {
      problems.push(`--${flag}: expected a number, got "${text}"`)
      return fallback
    }
    return value
  }

  if (raw['out-dir'] === undefined || raw['out-dir'] === '') problems.push('--out-dir: required')
  const classIndex = resolveClass(raw.class, manifest, problems)
  const steps = number('steps', manifest.recommended.steps)
  const heavyFlags = HEAVY_FLAGS.filter((flag) => raw[flag] !== undefined)
  if (heavyFlags.length > 1) {
    problems.push(`--${heavyFlags[1]}: give one of --${HEAVY_FLAGS.join(', --')}, not several`)
  }
  const heavyFlag = heavyFlags[0]
  let heavySchedule: SamplingOptions['heavySchedule'] = defaultHeavySchedule(
    recommendedOptions(manifest),
    calibratedStepCounts(manifest.heavyPlacements),
    steps,
  )
  if (heavyFlag === 'heavy-every') {
    heavySchedule = { every: number('heavy-every', manifest.recommended.heavyEvery) }
  } else if (heavyFlag === 'heavy-steps') {
    heavySchedule = { steps: parseStepList(raw['heavy-steps'] as string, problems) }
  } else if (heavyFlag === 'heavy-calls') {
    heavySchedule = { calls: number('heavy-calls', 0) }
  } else if (heavyFlag === 'adaptive') {
    heavySchedule = { adaptive: { tolerance: number('adaptive', 0) } }
  }
  const candidate = {
    classIndex,
    count: number('count', DEFAULT_COUNT),
    steps,
    heavySchedule,
    guidance: number('guidance', manifest.recommended.guidance),
    seed: number('seed', DEFAULT_SEED),
  }

  const result = samplingOptionsSchema.safeParse(candidate)
  if (!result.success) {
    for (const issue of listIssues(result.error)) {
      const optionPath = issue.path.replace(/\[\d+\]$/, '')
      const flag = FLAG_OF_OPTION[optionPath] ?? issue.path
      problems.push(formatIssue({ path: flag, message: issue.message }))
    }
  }
  if (result.success) {
    problems.push(
      ...unsupportedFlags(manifest, result.data, {
        steps: '--steps',
        heavySchedule: `--${heavyFlag}`,
        guidance: '--guidance',
      }),
    )
  }
  if (problems.length > 0 || !result.success) throw new UsageError(problems.join('\n'))
  return { options: result.data, outDir: raw['out-dir'] as string }
}

function resolveClass(text: string | undefined, manifest: Manifest, problems: string[]): number {
  if (text === undefined || text === '') {
    problems.push('--class: required (a class name or index)')
    return 0
  }
  if (/^\d+$/.test(text)) return Number(text)
  const index = manifest.classes.findIndex((name) => name.toLowerCase() === text.toLowerCase())
  if (index < 0) {
    problems.push(
      `--class: unknown class "${text}"; expected one of ${manifest.classes.join(', ')}`,
    )
    return 0
  }
  return index
}

function parseStepList(text: string, problems: string[]): number[] {
  const parts = text.split(',').map((part) => part.trim())
  if (parts.some((part) => !/^\d+$/.test(part))) {
    problems.push(`--heavy-steps: expected comma-separated step indices, got "${text}"`)
    return []
  }
  return parts.map(Number)
}
