// `npm run calibrate`: measures what reusing stale features costs at each step of the model's recommended
// step count (eval/reuse-cost.ts) and how far a step's error carries to the final image
// (eval/propagation-gain.ts), places every budget of N heavy calls where reuse hurts the image most
// (sampler/calibrated-schedule.ts); with --validate-seeds, samples each compared budget's placement beside
// uniform every K on those seeds and keeps uniform's steps where the placement does not beat it
// (eval/placement-validation.ts); writes the table, gains, validation and placements to
// docs/eval/reuse-cost.json, and with --record stores the placements in the manifest, where
// `heavySchedule: {"calls": N}` finds them.
// Exit status 64 (EX_USAGE) for a bad command line, 1 for any other failure.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { SingleBar } from 'cli-progress'
import { z } from 'zod'
import { describeHeavySchedule, heavySteps } from '../../../shared/heavy-schedule.ts'
import { type HeavySchedule, MAX_COUNT } from '../../../shared/sampling-options.ts'
import { type Evaluator, loadEvaluator } from '../eval/classifier.ts'
import type { GaussianStats } from '../eval/frechet-distance.ts'
import { measureSchedules, type SeedScore } from '../eval/measure-claim.ts'
import {
  type BudgetValidation,
  type ComparedBudget,
  type EarlierValidation,
  earlierValidation,
  type ScheduleValidation,
  shippedPlacements,
  type ValidationSettings,
  validatePlacements,
  validationTable,
} from '../eval/placement-validation.ts'
import { measurePropagationGain, type PropagationGain } from '../eval/propagation-gain.ts'
import { measureReuseCost, type ReuseCostTable } from '../eval/reuse-cost.ts'
import { scoreTestSplit, TEST_SEEDS } from '../eval/test-split.ts'
import { loadModelPair, MANIFEST_FILE, type ModelPair } from '../onnx/model-pair.ts'
import type { SessionConfig } from '../onnx/session.ts'
import { placeHeavyCalls, scheduleCost } from '../sampler/calibrated-schedule.ts'
import { parseSessionConfig } from '../service/config.ts'
import { parseFlags, runCli } from './cli-flags.ts'
import { UsageError } from './usage-error.ts'

// The default margin: at an equal call count the uniform placement is free to keep (same steps, same
// pixels, the same FD on the test seeds as every K), while a calibrated placement whose validation win is
// within the noise can lose to it on the test seeds by that noise (docs/eval/frontier.md, 13 and 17 calls:
// +0.01 and +0.03). So a win must be one the reports can show: 0.01 FD, the precision they print FD at.
// No larger default: sizing it by the noise of paired FD differences would need that noise measured, and
// the only measurement of it is on the test seeds, which must not set it. With several validation seeds,
// the spread of the per-seed differences (printed, and in reuse-cost.json) is the way to choose a larger one.
const DEFAULT_VALIDATE_MARGIN = 0.01

const USAGE = `usage: npm run calibrate -- [options]
  --models DIR          model folder (default gpu-service/models)
  --out DIR             where reuse-cost.json goes (default docs/eval)
  --steps N             step count to calibrate (default: manifest.recommended.steps)
  --trajectories N      reference trajectories, spread over the classes (default 256)
  --batch N             images per sampler call, trajectories and validation (default 32)
  --guidance W          classifier-free guidance (default: manifest.recommended.guidance)
  --seed N              seed of the trajectories (default 0)
  --gain-trajectories N trajectories for the propagation gain (default 128)
  --probe-age N         age of the stale features injected to measure the gain (default 4)
  --validate-seeds LIST comma-separated sampler seeds, none of the test seeds ${TEST_SEEDS.join(',')} (the project's
                        validation seed is 100): at each compared budget (uniform every K of
                        1,2,3,4,6,8,12,16), sample the calibrated placement and every K on them and keep
                        every K's steps unless the placement's mean FD is lower by more than the margin
                        (default: no validation, every placement is the cost model's)
  --validate-samples N  validation images per class per seed (default 100: 1,000 per schedule and seed)
  --validate-margin F   FD by which the calibrated placement must beat uniform to be kept (default
                        ${DEFAULT_VALIDATE_MARGIN}; 0: strictly lower)
  --table FILE          take the reuse-cost table (and the propagation gain, when measured with the same
                        --gain-trajectories and --probe-age) from an earlier reuse-cost.json of the same
                        model, steps, guidance and seed instead of measuring again (both are deterministic),
                        and its validation scores of the same heavy steps, when validated with the same
                        seeds, samples and batch
  --record              store the placements in the manifest (heavyPlacements)`

const seedList = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'expected comma-separated non-negative integers')
  .transform((text) => text.split(',').map(Number))
  .refine(
    (seeds) => seeds.every((seed) => !TEST_SEEDS.includes(seed)),
    `must not include the test seeds ${TEST_SEEDS.join(', ')}: the reports check the choice on them`,
  )

const argsSchema = z.strictObject({
  models: z.string().default('gpu-service/models'),
  out: z.string().default('docs/eval'),
  steps: z.coerce.number().int().min(2).max(1000).optional(),
  trajectories: z.coerce.number().int().min(1).default(256),
  batch: z.coerce.number().int().min(1).max(MAX_COUNT).default(32),
  guidance: z.coerce.number().min(0).max(20).optional(),
  seed: z.coerce.number().int().min(0).default(0),
  gainTrajectories: z.coerce.number().int().min(1).default(128),
  probeAge: z.coerce.number().int().min(1).default(4),
  validateSeeds: seedList.optional(),
  validateSamples: z.coerce.number().int().min(2).default(100),
  validateMargin: z.coerce.number().min(0).default(DEFAULT_VALIDATE_MARGIN),
  table: z.string().optional(),
  record: z.boolean().default(false),
  help: z.boolean().default(false),
})

const FLAGS = {
  models: { type: 'string' },
  out: { type: 'string' },
  steps: { type: 'string' },
  trajectories: { type: 'string' },
  batch: { type: 'string' },
  guidance: { type: 'string' },
  seed: { type: 'string' },
  'gain-trajectories': { type: 'string' },
  'probe-age': { type: 'string' },
  'validate-seeds': { type: 'string' },
  'validate-samples': { type: 'string' },
  'validate-margin': { type: 'string' },
  table: { type: 'string' },
  record: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

async function main(argv: string[]): Promise<void> {
  const args = parseFlags(argv, FLAGS, argsSchema)
  if (args.help) {
    console.log(USAGE)
    return
  }
  const session = parseSessionConfig(process.env)
  const pair = await loadModelPair(args.models, session)
  try {
    const { manifest } = pair
    if (manifest.supports) {
      throw new UsageError(
        `${manifest.modelId} is distilled for fixed heavy placements; calibrate its teacher instead`,
      )
    }
    const steps = args.steps ?? manifest.recommended.steps
    const guidance = args.guidance ?? manifest.recommended.guidance
    const started = performance.now()
    const measured = {
      steps,
      trajectories: args.trajectories,
      batch: args.batch,
      guidance,
      seed: args.seed,
    }
    const earlier = args.table
      ? await earlierMeasurement(args.table, manifest.modelId, measured)
      : null
    // What each measurement took when it was made (carried over when --table reuses it).
    const measurementSeconds = {
      table: earlier?.measurementSeconds?.table ?? earlier?.seconds ?? 0,
      propagation: 0,
      validation: 0,
    }
    const timed = async <T>(part: keyof typeof measurementSeconds, measure: () => Promise<T>) => {
      const partStarted = performance.now()
      const result = await measure()
      measurementSeconds[part] = (performance.now() - partStarted) / 1000
      return result
    }
    const table =
      earlier?.table ??
      (await timed('table', () =>
        withProgress('reuse cost', args.trajectories, (onBatch) =>
          measureReuseCost(pair.models, manifest, { ...measured, maxAge: steps - 1 }, onBatch),
        ),
      ))
    const sameGain =
      earlier?.propagation?.trajectories === args.gainTrajectories &&
      earlier.propagation.probeAge === args.probeAge
    if (sameGain) measurementSeconds.propagation = earlier.measurementSeconds?.propagation ?? 0
    const propagation =
      (sameGain ? earlier?.propagation : undefined) ??
      (await timed('propagation', () =>
        withProgress('propagation gain', args.gainTrajectories, (onBatch) =>
          measurePropagationGain(
            pair.models,
            manifest,
            { ...measured, trajectories: args.gainTrajectories, probeAge: args.probeAge },
            onBatch,
          ),
        ),
      ))
    // What a stale step costs the image: its shift of x_tNext, times how much of a shift at that step
    // reaches the final image.
    const cost = (step: number, age: number) =>
      (propagation.gain[step] ?? 0) * (table.stateRms.mean[step]?.[age - 1] ?? 0)
    // Never the last step (below every step): fresh features there cost FD (PlacementRules.lastStep).
    const rules = { lastStep: false }
    const calibrated = Array.from({ length: steps }, (_, i) =>
      placeHeavyCalls(cost, steps, i + 1, rules),
    )
    // `calibrated` here is always the cost model's placement; `placements` below is what ships.
    const comparison = [1, 2, 3, 4, 6, 8, 12, 16]
      .filter((every) => every <= steps)
      .map((every) => {
        const calls = Math.ceil(steps / every)
        const placement = calibrated[calls - 1] as number[]
        return {
          every,
          calls,
          uniformCost: scheduleCost(cost, steps, heavySteps({ every }, steps)),
          calibratedCost: scheduleCost(cost, steps, placement),
          calibrated: placement,
        }
      })
    const validationSettings: ValidationSettings | null = args.validateSeeds
      ? {
          seeds: args.validateSeeds,
          samplesPerClass: args.validateSamples,
          batch: args.batch,
          margin: args.validateMargin,
        }
      : null
    const validated = validationSettings
      ? await validateAgainstUniform(
          pair,
          args.models,
          session,
          comparison,
          { steps, guidance, ...validationSettings },
          earlier
            ? earlierValidation(earlier, manifest.modelId, measured, validationSettings)
            : new Map(),
        )
      : []
    measurementSeconds.validation = validated
      .flatMap((budget) => [budget.uniform, budget.calibrated])
      .reduce((sum, schedule) => sum + (schedule?.seconds ?? 0), 0)
    const placements = shippedPlacements(calibrated, validated, steps)
    const report = {
      modelId: manifest.modelId,
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, onnxruntime-node ${session.device}`,
      seconds: (performance.now() - started) / 1000,
      measurementSeconds,
      command: ['npm run calibrate', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' '),
      settings: {
        steps,
        guidance,
        trajectories: args.trajectories,
        seed: args.seed,
        gainTrajectories: args.gainTrajectories,
        probeAge: args.probeAge,
      },
      tableFrom: args.table ?? null,
      rules,
      costMetric:
        'propagation gain of the step (RMS change of the final image over the RMS shift of x_tNext) x RMS per pixel of the DDPM posterior mean of x_tNext with stale minus fresh features',
      comparison,
      validation: validationSettings ? { ...validationSettings, budgets: validated } : null,
      placements,
      propagation,
      table,
    }
    await mkdir(args.out, { recursive: true })
    const outFile = join(args.out, 'reuse-cost.json')
    await writeFile(outFile, `${JSON.stringify(report)}\n`)
    console.log('K   calls  uniform cost  calibrated cost  calibrated placement')
    for (const row of comparison) {
      console.log(
        `${String(row.every).padEnd(4)}${String(row.calls).padEnd(7)}${row.uniformCost.toFixed(4).padEnd(14)}` +
          `${row.calibratedCost.toFixed(4).padEnd(17)}[${row.calibrated?.join(',')}]`,
      )
    }
    if (validationSettings) {
      const { seeds, samplesPerClass, margin } = validationSettings
      console.log(
        `\nvalidation: seeds ${seeds.join(', ')}, ${manifest.classes.length * samplesPerClass} images per schedule and seed, margin ${margin} FD`,
      )
      for (const line of validationTable(validated)) console.log(line)
    }
    console.log(`wrote ${outFile} in ${report.seconds.toFixed(0)} s`)
    if (args.record) {
      const manifestPath = join(args.models, MANIFEST_FILE)
      const raw = JSON.parse(await readFile(manifestPath, 'utf8'))
      raw.heavyPlacements = { ...raw.heavyPlacements, [String(steps)]: placements }
      await writeFile(manifestPath, `${JSON.stringify(raw, null, 2)}\n`)
      console.log(`recorded ${steps}-step placements for 1..${steps} calls in ${manifestPath}`)
    }
  } finally {
    await pair.release()
  }
}

/** Runs a measurement behind a progress bar counting trajectories. */
async function withProgress<T>(
  name: string,
  total: number,
  measure: (onBatch: (done: number) => void) => Promise<T>,
): Promise<T> {
  const bar = new SingleBar({ format: `${name} [{bar}] {value}/{total} trajectories | {eta}s` })
  bar.start(total, 0)
  try {
    return await measure((done) => bar.update(done))
  } finally {
    bar.stop()
  }
}

/** What a run can take over from an earlier reuse-cost.json (--table). */
interface EarlierCalibration extends EarlierValidation {
  settings: { steps: number; trajectories: number; guidance: number; seed: number }
  seconds: number
  measurementSeconds?: { table: number; propagation: number }
  table: ReuseCostTable
  propagation?: PropagationGain
}

/**
 * Samples each compared budget's calibrated placement beside uniform every K on the validation seeds
 * (the scores `earlier` holds for the same heavy steps are taken instead) and decides which ships. The
 * evaluator and the test split's FD reference are loaded only when something is to be sampled.
 */
async function validateAgainstUniform(
  pair: ModelPair,
  modelsDir: string,
  session: SessionConfig,
  comparison: readonly ComparedBudget[],
  settings: ValidationSettings & { steps: number; guidance: number },
  earlier: ReadonlyMap<string, ScheduleValidation>,
): Promise<BudgetValidation[]> {
  let evaluator: Evaluator | undefined
  let reference: GaussianStats | undefined
  const measure = async (heavySchedule: HeavySchedule): Promise<SeedScore[]> => {
    evaluator ??= await loadEvaluator(modelsDir, session)
    reference ??= (await scoreTestSplit(evaluator)).reference
    const [scored] = await measureSchedules(
      pair.models,
      pair.manifest,
      evaluator,
      reference,
      [{ name: describeHeavySchedule(heavySchedule), heavySchedule }],
      settings,
      console.log,
    )
    return scored?.seeds ?? []
  }
  try {
    return await validatePlacements(comparison, settings.steps, settings.margin, earlier, measure)
  } finally {
    await evaluator?.release()
  }
}

/** The measurements of an earlier run, refused unless it was measured under the same conditions. */
async function earlierMeasurement(
  file: string,
  modelId: string,
  expected: { steps: number; trajectories: number; guidance: number; seed: number },
): Promise<EarlierCalibration> {
  const earlier = JSON.parse(await readFile(file, 'utf8')) as EarlierCalibration
  const { settings } = earlier
  const same =
    earlier.modelId === modelId &&
    settings.steps === expected.steps &&
    settings.trajectories === expected.trajectories &&
    settings.guidance === expected.guidance &&
    settings.seed === expected.seed
  if (!same) {
    throw new UsageError(
      `--table: ${file} was measured for ${earlier.modelId}, ${JSON.stringify(settings)}; this run is ${modelId}, ${JSON.stringify(expected)}`,
    )
  }
  return earlier
}

runCli('calibrate', USAGE, () => main(process.argv.slice(2)))
