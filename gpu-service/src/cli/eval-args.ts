// Command-line arguments of `npm run eval`, resolved against the chosen model. Pure: the caller picks the
// model (model-choice.ts) and prints the errors. A model without `supports` is measured at 50 steps for
// K = 1, 2, 4, 8 by default; a distilled model at its recommended setting, and any setting it does not
// support is refused by flag.
import { basename, join } from 'node:path'
import { z } from 'zod'
import { MAX_COUNT } from '../../../shared/sampling-options.ts'
import type { ClaimSettings } from '../eval/measure-claim.ts'
import type { ModelFolder } from '../onnx/models-folder.ts'
import { parseFlags } from './cli-flags.ts'
import { unsupportedFlags } from './model-choice.ts'
import { DEFAULT_MODELS_DIR } from './sample-args.ts'
import { UsageError } from './usage-error.ts'

export const DEFAULT_OUT_DIR = 'docs/eval'
const DEFAULT_STEPS = 50
const DEFAULT_INTERVALS = [1, 2, 4, 8]

export const USAGE = `usage: npm run eval -- [options]
  --model ID               which model of the models folder (default: the folder's own manifest)
  --models DIR             models folder (default ${DEFAULT_MODELS_DIR}); its evaluator/ scores every model
  --out DIR                where results.json, README.md and grids go (default ${DEFAULT_OUT_DIR}, or
                           ${DEFAULT_OUT_DIR}/<subfolder> for a subfolder's model)
  --intervals 1,2,4,8      heavy intervals K to measure (default ${DEFAULT_INTERVALS.join(',')}; a distilled
                           model: its recommended K)
  --seeds 0,1,2            one full set of samples per seed
  --samples-per-class N    images per class per seed (default 100: 1,000 per setting and seed)
  --steps N                sampler steps (default ${DEFAULT_STEPS}; a distilled model: its recommended steps)
  --guidance W             classifier-free guidance for every setting (default: manifest.recommended)
  --batch N                images per sampler call (default 50)
  --record                 write the recommended setting found here into the model's own manifest`

const list = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'expected comma-separated non-negative integers')
  .transform((text) => text.split(',').map(Number))
const argsSchema = z.strictObject({
  model: z.string().optional(),
  models: z.string().default(DEFAULT_MODELS_DIR),
  out: z.string().optional(),
  intervals: list.refine((ks) => ks.every((k) => k >= 1), 'K must be >= 1').optional(),
  seeds: list.default([0, 1, 2]),
  samplesPerClass: z.coerce.number().int().min(2).default(100),
  steps: z.coerce.number().int().min(1).max(1000).optional(),
  guidance: z.coerce.number().min(0).max(20).optional(),
  batch: z.coerce.number().int().min(1).max(MAX_COUNT).default(50),
  record: z.boolean().default(false),
  help: z.boolean().default(false),
})
export type EvalArgs = z.infer<typeof argsSchema>

/**
 * Parses and checks the flags on their own; the model's defaults come later (resolveEvalArgs).
 * Throws a UsageError naming every bad flag.
 *
 * @example
 * const args = readEvalArgs(['--model', 'dualrate-0123456789ab', '--seeds', '0'])
 */
export function readEvalArgs(argv: string[]): EvalArgs {
  return parseFlags(argv, FLAGS, argsSchema)
}

const FLAGS = {
  model: { type: 'string' },
  models: { type: 'string' },
  out: { type: 'string' },
  intervals: { type: 'string' },
  seeds: { type: 'string' },
  'samples-per-class': { type: 'string' },
  steps: { type: 'string' },
  guidance: { type: 'string' },
  batch: { type: 'string' },
  record: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export interface EvalCommand {
  settings: ClaimSettings
  out: string
  record: boolean
}

/**
 * The measurement for `folder`'s model: its defaults filled in, and every setting checked against what
 * it supports. Throws a UsageError naming each flag whose setting the model does not support.
 *
 * @example
 * const { settings, out } = resolveEvalArgs(readEvalArgs(argv), await chooseModel(modelsDir, id))
 */
export function resolveEvalArgs(args: EvalArgs, folder: ModelFolder): EvalCommand {
  const { recommended, supports } = folder.manifest
  const steps = args.steps ?? (supports ? recommended.steps : DEFAULT_STEPS)
  const heavyIntervals = args.intervals ?? (supports ? [recommended.heavyEvery] : DEFAULT_INTERVALS)
  const guidance = args.guidance ?? recommended.guidance
  const problems = new Set<string>()
  for (const every of heavyIntervals) {
    const flags = {
      steps: '--steps',
      heavySchedule: `--intervals: K=${every}`,
      guidance: '--guidance',
    }
    const options = { steps, heavySchedule: { every }, guidance }
    for (const line of unsupportedFlags(folder.manifest, options, flags)) problems.add(line)
  }
  if (problems.size > 0) throw new UsageError([...problems].join('\n'))
  return {
    settings: {
      heavyIntervals,
      seeds: args.seeds,
      samplesPerClass: args.samplesPerClass,
      steps,
      guidance,
      batch: args.batch,
    },
    out:
      args.out ??
      (folder.isDefault ? DEFAULT_OUT_DIR : join(DEFAULT_OUT_DIR, basename(folder.dir))),
    record: args.record,
  }
}
