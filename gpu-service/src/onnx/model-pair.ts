// Loads the heavy/light pair named by one model folder's manifest.json (gpu-service/models for the default
// model; models-folder.ts finds the others) and adapts the two ONNX sessions to the sampler's
// DualRateModels interface.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { type Manifest, parseManifest } from '../../../shared/model-manifest.ts'
import type { DualRateModels, FeatureRows } from '../sampler/sample.ts'
import {
  DEFAULT_SESSION_CONFIG,
  type LoadedModel,
  loadModel,
  runChecked,
  type SessionConfig,
} from './session.ts'

export const MANIFEST_FILE = 'manifest.json'

export interface ModelPair {
  manifest: Manifest
  heavy: LoadedModel
  light: LoadedModel
  /** The pair as the sampler calls it; features stay ONNX tensors between the two models. */
  models: DualRateModels<ort.Tensor>
  /** The execution providers both sessions run on, e.g. ['cpu'] or ['cuda']. */
  executionProviders: readonly string[]
  release(): Promise<void>
}

/**
 * Reads and validates `modelsDir`/manifest.json; errors start with the file's path.
 *
 * @example
 * const manifest = await readManifest('gpu-service/models')
 */
export async function readManifest(modelsDir: string): Promise<Manifest> {
  const manifestPath = join(modelsDir, MANIFEST_FILE)
  try {
    return parseManifest(await readFile(manifestPath, 'utf8'))
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (error as Error).message
    throw new Error(`${manifestPath}: ${reason}`, { cause: error })
  }
}

/**
 * Reads and validates the manifest in `modelsDir`, then loads both models.
 *
 * @example
 * const pair = await loadModelPair('gpu-service/models')
 * const result = await sample(pair.models, pair.manifest, options)
 * await pair.release()
 */
export async function loadModelPair(
  modelsDir: string,
  config: SessionConfig = DEFAULT_SESSION_CONFIG,
): Promise<ModelPair> {
  const manifest = await readManifest(modelsDir)
  const heavy = await loadModel(modelsDir, 'heavy', manifest.models.heavy, config)
  const light = await loadModel(modelsDir, 'light', manifest.models.light, config)
  return {
    manifest,
    heavy,
    light,
    models: onnxDualRateModels(heavy, light, manifest),
    executionProviders: heavy.executionProviders,
    async release() {
      await heavy.session.release()
      await light.session.release()
    },
  }
}

/**
 * Wraps two sessions as the sampler's models. Feed tensors wrap the sampler's own buffers (no copy); the
 * heavy output stays an ONNX tensor, and a light call's feature rows are joined only when they are not
 * already one whole heavy output.
 *
 * @example
 * const models = onnxDualRateModels(heavy, light, manifest)
 */
export function onnxDualRateModels(
  heavy: LoadedModel,
  light: LoadedModel,
  manifest: Manifest,
): DualRateModels<ort.Tensor> {
  const { channels, height, width } = manifest.image
  const imageDims = (rows: number) => [rows, channels, height, width]
  const joinFeatures = featureJoiner()
  return {
    async heavy({ xS, s, label }) {
      const rows = label.length
      const outputs = await runChecked(heavy, {
        x_s: new ort.Tensor('float32', xS, imageDims(rows)),
        s: new ort.Tensor('float32', s, [rows]),
        label: new ort.Tensor('int64', label, [rows]),
      })
      return outputs.features as ort.Tensor
    },
    async light({ xT, t, label, features }) {
      const rows = label.length
      const joined = joinFeatures(features)
      try {
        const outputs = await runChecked(light, {
          x_t: new ort.Tensor('float32', xT, imageDims(rows)),
          t: new ort.Tensor('float32', t, [rows]),
          label: new ort.Tensor('int64', label, [rows]),
          features: joined.tensor,
        })
        return (outputs.x0 as ort.Tensor).data as Float32Array
      } finally {
        joined.release()
      }
    },
  }
}

/**
 * Whether the slices are one heavy output's rows, all of them, in order: the runs of a light call that
 * shared their last heavy call, in the same order (the scheduler keeps its runs in order).
 */
function coverWholeOutput(slices: readonly FeatureRows<ort.Tensor>[]): boolean {
  const features = slices[0]?.features
  let row = 0
  for (const slice of slices) {
    if (slice.features !== features || slice.offset !== row) return false
    row += slice.rows
  }
  return row === features?.dims[0]
}

/**
 * Joins the feature rows of several runs into one tensor, in order. Slices that cover a whole heavy
 * output in order are passed through (runs stepping in lockstep: 16 rows are 2.4 MB not copied each
 * step); otherwise rows are copied into a buffer reused across calls (a call that overlaps one still
 * using it gets a fresh buffer).
 */
function featureJoiner() {
  let shared = new Float32Array(0)
  let sharedInUse = false
  return (slices: readonly FeatureRows<ort.Tensor>[]) => {
    const first = slices[0]
    if (!first) throw new Error('light: no feature rows')
    if (coverWholeOutput(slices)) return { tensor: first.features, release() {} }
    const [, ...rowDims] = first.features.dims
    const rowValues = rowDims.reduce((product, dim) => product * dim, 1)
    const rows = slices.reduce((sum, slice) => sum + slice.rows, 0)
    const useShared = !sharedInUse
    if (useShared && shared.length < rows * rowValues) shared = new Float32Array(rows * rowValues)
    const buffer = useShared ? shared : new Float32Array(rows * rowValues)
    if (useShared) sharedInUse = true
    let row = 0
    for (const { features, offset, rows: count } of slices) {
      const values = features.data as Float32Array
      buffer.set(values.subarray(offset * rowValues, (offset + count) * rowValues), row * rowValues)
      row += count
    }
    return {
      tensor: new ort.Tensor('float32', buffer.subarray(0, rows * rowValues), [rows, ...rowDims]),
      release() {
        if (useShared) sharedInUse = false
      },
    }
  }
}
