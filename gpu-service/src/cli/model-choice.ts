// Which model a command-line tool runs: `--model ID` picks it from the models folder (models-folder.ts:
// the folder's own manifest is the default, each subfolder with a manifest one more model), absent means
// the default. A model that declares what it supports (a distilled student) refuses other options, each
// named by the flag that asked for it, as the service refuses them by field.
import { basename } from 'node:path'
import { modelIdSchema } from '../../../shared/model-manifest.ts'
import {
  calibratedStepCounts,
  type SupportIssue,
  unsupportedOptions,
} from '../../../shared/model-support.ts'
import { type ModelFolder, readModelsFolder } from '../onnx/models-folder.ts'
import { UsageError } from './usage-error.ts'

/**
 * The folder of the model `modelId` in `modelsDir`, or of the default model when it is undefined. A
 * malformed or unknown id is a UsageError listing the models there; a models folder that cannot be read
 * throws readModelsFolder's error (naming the file).
 *
 * @example
 * const { dir, manifest } = await chooseModel('gpu-service/models', 'dualrate-0123456789ab')
 */
export async function chooseModel(
  modelsDir: string,
  modelId: string | undefined,
): Promise<ModelFolder> {
  if (modelId !== undefined) {
    const parsed = modelIdSchema.safeParse(modelId)
    if (!parsed.success) {
      throw new UsageError(`--model: ${parsed.error.issues[0]?.message}, got "${modelId}"`)
    }
  }
  const folders = await readModelsFolder(modelsDir)
  const chosen = folders.find((folder) =>
    modelId === undefined ? folder.isDefault : folder.manifest.modelId === modelId,
  )
  if (!chosen) {
    const held = folders.map(
      (folder) =>
        `${folder.manifest.modelId} (${folder.isDefault ? 'default' : basename(folder.dir)})`,
    )
    throw new UsageError(
      `--model: no model ${modelId} in ${modelsDir}; it holds ${held.join(', ')}`,
    )
  }
  return chosen
}

/** The flag that set each option a model may refuse. */
export type SupportFlags = Record<SupportIssue['path'][0], string>

/**
 * One `--flag: why` line per option the model does not support (what a distilled student was not
 * distilled for, or `--heavy-calls` at a step count without calibrated placements).
 *
 * @example
 * unsupportedFlags(manifest, options, { steps: '--steps', heavySchedule: '--heavy-every', guidance: '--guidance' })
 * // ['--steps: this model samples with 8 steps only']
 */
export function unsupportedFlags(
  manifest: Pick<ModelFolder['manifest'], 'supports' | 'heavyPlacements'>,
  options: Parameters<typeof unsupportedOptions>[1],
  flags: SupportFlags,
): string[] {
  const calibrated = calibratedStepCounts(manifest.heavyPlacements)
  return unsupportedOptions(manifest.supports, options, calibrated).map(
    (issue) => `${flags[issue.path[0]]}: ${issue.message}`,
  )
}
