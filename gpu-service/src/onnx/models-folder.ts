// The models folder (DUALRATE_MODELS_DIR, gpu-service/models): its own manifest.json is the default model,
// and every immediate subfolder holding a manifest.json is one more model (a distilled student, say), with
// its ONNX files beside its manifest. Other subfolders (evaluator/) are not models. Every manifest is
// checked with the shared schema before anything loads, and a folder that cannot be served as a whole
// (no default, two folders with one model id, one invalid manifest) is an error naming the file.
import type { Stats } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Manifest } from '../../../shared/model-manifest.ts'
import { loadModelPair, MANIFEST_FILE, type ModelPair, readManifest } from './model-pair.ts'
import { DEFAULT_SESSION_CONFIG, type SessionConfig } from './session.ts'

/** One model of the models folder: where its files are and what its manifest says. */
export interface ModelFolder {
  /** The folder holding its manifest.json and ONNX files. */
  dir: string
  manifest: Manifest
  /** The models folder's own manifest: what a request without `model` runs on. */
  isDefault: boolean
}

/**
 * Reads and validates every manifest of the models folder: the default model first, then the subfolders'
 * models by folder name. Throws, naming the file, when the root manifest is missing or any manifest is
 * invalid, and when two manifests declare one model id.
 *
 * @example
 * const folders = await readModelsFolder('gpu-service/models')
 * folders[0]?.manifest.modelId // the default model
 */
export async function readModelsFolder(modelsDir: string): Promise<ModelFolder[]> {
  const subfolders = await modelSubfolders(modelsDir)
  const rootManifest = join(modelsDir, MANIFEST_FILE)
  if (!(await isFile(rootManifest)) && subfolders.length > 0) {
    const names = subfolders.map((dir) => basename(dir)).join(', ')
    throw new Error(
      `${rootManifest}: not found; the default model's manifest belongs there, beside the ` +
        `subfolder models (${names})`,
    )
  }
  const folders: ModelFolder[] = [
    { dir: modelsDir, manifest: await readManifest(modelsDir), isDefault: true },
  ]
  for (const dir of subfolders) {
    folders.push({ dir, manifest: await readManifest(dir), isDefault: false })
  }
  const seen = new Map<string, string>()
  for (const { dir, manifest } of folders) {
    const first = seen.get(manifest.modelId)
    if (first !== undefined) {
      throw new Error(
        `${join(dir, MANIFEST_FILE)}: modelId ${manifest.modelId} is already the model of ` +
          `${join(first, MANIFEST_FILE)}; each model folder needs its own id`,
      )
    }
    seen.set(manifest.modelId, dir)
  }
  return folders
}

/** The models folder, loaded: one session pair per model, the default first. */
export interface LoadedModels {
  /** Every model, the default first, each with its folder. */
  pairs: (ModelPair & { dir: string })[]
  /** Releases every session. */
  release(): Promise<void>
}

/**
 * Reads the models folder (readModelsFolder) and loads every model's pair. Nothing is left loaded when
 * one fails.
 *
 * @example
 * const loaded = await loadModelsFolder('gpu-service/models', { device: 'cpu' })
 * const scheduler = new StepScheduler(loaded.pairs, limits)
 */
export async function loadModelsFolder(
  modelsDir: string,
  config: SessionConfig = DEFAULT_SESSION_CONFIG,
): Promise<LoadedModels> {
  const folders = await readModelsFolder(modelsDir)
  const pairs: LoadedModels['pairs'] = []
  const release = async () => {
    for (const pair of pairs) await pair.release()
  }
  try {
    for (const { dir } of folders) pairs.push({ ...(await loadModelPair(dir, config)), dir })
  } catch (error) {
    await release()
    throw error
  }
  return { pairs, release }
}

/** Immediate subfolders holding a manifest.json, by name; hidden folders are skipped. */
async function modelSubfolders(modelsDir: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(modelsDir)
  } catch (error) {
    // A missing folder is reported as its missing manifest (readManifest names the path).
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const dirs: string[] = []
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue
    const dir = join(modelsDir, name)
    if ((await statOf(dir))?.isDirectory() && (await isFile(join(dir, MANIFEST_FILE)))) {
      dirs.push(dir)
    }
  }
  return dirs
}

async function isFile(path: string): Promise<boolean> {
  return (await statOf(path))?.isFile() ?? false
}

/** The file's stat, or undefined when there is nothing there (a dangling link included). */
async function statOf(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}
