// `npm run eval -- --record`: writes the recommended setting the evaluation found into the evaluated
// model's own manifest (the models folder's for the default model, its subfolder's for another), and only
// if the manifest stays valid: the service refuses to start on an invalid one, and a distilled model's
// recommendation must be a setting it supports.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Manifest, parseManifest } from '../../../shared/model-manifest.ts'
import { MANIFEST_FILE } from '../onnx/model-pair.ts'

/**
 * Sets `recommended` in `modelDir`/manifest.json, every other field as it was; returns the file's path.
 * A calibrated `heavyCalls` the manifest recommends (recorded from the frontier, which `npm run eval` does
 * not measure) stays while the recommended step count does. Throws, naming the file and leaving it
 * untouched, when the result would not be a valid manifest.
 *
 * @example
 * await recordRecommended('gpu-service/models/mmd-8step', { steps: 8, heavyEvery: 2, guidance: 1 })
 */
export async function recordRecommended(
  modelDir: string,
  recommended: Manifest['recommended'],
): Promise<string> {
  const manifestPath = join(modelDir, MANIFEST_FILE)
  const raw = JSON.parse(await readFile(manifestPath, 'utf8'))
  const { heavyCalls, steps } = raw.recommended ?? {}
  raw.recommended =
    heavyCalls !== undefined && recommended.heavyCalls === undefined && steps === recommended.steps
      ? { ...recommended, heavyCalls }
      : recommended
  try {
    parseManifest(raw)
  } catch (error) {
    throw new Error(`${manifestPath}: not recorded: ${(error as Error).message}`)
  }
  await writeFile(manifestPath, `${JSON.stringify(raw, null, 2)}\n`)
  return manifestPath
}
