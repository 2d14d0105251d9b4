// The one place that creates ONNX Runtime sessions: execution provider and thread options come from
// config, and every run is checked against the manifest's declared tensors before it reaches the runtime.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { BATCH_DIM, type ModelSpec, type TensorSpec } from '../../../shared/model-manifest.ts'

/** Device name -> execution providers in preference order (CPU last, for ops a GPU provider lacks). */
export const EXECUTION_PROVIDERS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  cpu: Object.freeze(['cpu']),
  cuda: Object.freeze(['cuda', 'cpu']),
  tensorrt: Object.freeze(['tensorrt', 'cuda', 'cpu']),
})

export interface SessionConfig {
  /** A key of EXECUTION_PROVIDERS. */
  device: string
  /** Threads inside one operator; unset lets ONNX Runtime choose (one per core). */
  intraOpThreads?: number
  /** Threads across independent operators; unset lets ONNX Runtime choose. */
  interOpThreads?: number
}

export const DEFAULT_SESSION_CONFIG: SessionConfig = Object.freeze({ device: 'cpu' })

/**
 * The execution providers for a device; throws naming the known devices when it is not one of them.
 *
 * @example
 * executionProvidersFor('cuda') // ['cuda', 'cpu']
 */
export function executionProvidersFor(device: string): readonly string[] {
  const providers = Object.hasOwn(EXECUTION_PROVIDERS, device) ? EXECUTION_PROVIDERS[device] : null
  if (!providers) {
    const known = Object.keys(EXECUTION_PROVIDERS).join(', ')
    throw new Error(`Unknown ONNX device "${device}"; expected one of: ${known}`)
  }
  return providers
}

/**
 * Session config from the environment: DUALRATE_DEVICE (default cpu), DUALRATE_INTRA_OP_THREADS,
 * DUALRATE_INTER_OP_THREADS.
 *
 * @example
 * const config = sessionConfigFromEnv(process.env)
 */
export function sessionConfigFromEnv(env: Record<string, string | undefined>): SessionConfig {
  const config: SessionConfig = { device: env.DUALRATE_DEVICE || DEFAULT_SESSION_CONFIG.device }
  executionProvidersFor(config.device)
  const intraOpThreads = threadCount(env, 'DUALRATE_INTRA_OP_THREADS')
  const interOpThreads = threadCount(env, 'DUALRATE_INTER_OP_THREADS')
  if (intraOpThreads !== undefined) config.intraOpThreads = intraOpThreads
  if (interOpThreads !== undefined) config.interOpThreads = interOpThreads
  return config
}

function threadCount(env: Record<string, string | undefined>, name: string): number | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got "${text}"`)
  }
  return value
}

/** A session together with the manifest entry that describes it. */
export interface LoadedModel {
  /** Manifest key, used in error messages: "heavy" or "light". */
  name: string
  spec: ModelSpec
  session: ort.InferenceSession
}

/**
 * Loads `spec.file` from `modelsDir`, checks its sha256 against the manifest, creates the session and
 * checks the session's input and output names against the manifest.
 *
 * @example
 * const heavy = await loadModel('gpu-service/models', 'heavy', manifest.models.heavy, { device: 'cpu' })
 */
export async function loadModel(
  modelsDir: string,
  name: string,
  spec: ModelSpec,
  config: SessionConfig,
): Promise<LoadedModel> {
  const path = join(modelsDir, spec.file)
  const bytes = await readFile(path)
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  if (sha256 !== spec.sha256) {
    throw new Error(`${name}: ${path} has sha256 ${sha256}, manifest declares ${spec.sha256}`)
  }
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [...executionProvidersFor(config.device)],
    graphOptimizationLevel: 'all',
  }
  if (config.intraOpThreads !== undefined) options.intraOpNumThreads = config.intraOpThreads
  if (config.interOpThreads !== undefined) options.interOpNumThreads = config.interOpThreads
  const session = await ort.InferenceSession.create(bytes, options)
  checkNames(name, 'inputs', session.inputNames, spec.inputs)
  checkNames(name, 'outputs', session.outputNames, spec.outputs)
  return { name, spec, session }
}

function checkNames(
  model: string,
  kind: 'inputs' | 'outputs',
  actual: readonly string[],
  declared: readonly TensorSpec[],
): void {
  const expected = declared.map((spec) => spec.name)
  if ([...actual].sort().join() !== [...expected].sort().join()) {
    throw new Error(
      `${model}: session ${kind} [${actual.join(', ')}] differ from manifest [${expected.join(', ')}]`,
    )
  }
}

/** What checkTensors needs of a tensor: its element type and dims. */
export interface TensorLike {
  type: string
  dims: readonly number[]
}

/**
 * Checks tensors by name against declared specs: no missing or unknown names, dtype equal, dims equal,
 * where every "batch" dim takes one common size (`expectedBatch` when given). Throws naming the model,
 * the tensor and the dims; returns the batch size (undefined when no dim is "batch").
 *
 * @example
 * const batch = checkTensors('heavy', 'input', manifest.models.heavy.inputs, feeds)
 */
export function checkTensors(
  model: string,
  kind: 'input' | 'output',
  specs: readonly TensorSpec[],
  tensors: Readonly<Record<string, TensorLike>>,
  expectedBatch?: number,
): number | undefined {
  const declared = new Set(specs.map((spec) => spec.name))
  for (const name of Object.keys(tensors)) {
    if (!declared.has(name)) {
      throw new Error(`${model}: unknown ${kind} "${name}"; expected ${[...declared].join(', ')}`)
    }
  }
  let batch = expectedBatch
  for (const spec of specs) {
    const tensor = tensors[spec.name]
    if (!tensor) throw new Error(`${model}: missing ${kind} "${spec.name}"`)
    const expected = `[${spec.shape.join(', ')}]`
    const dims = `[${tensor.dims.join(', ')}]`
    if (tensor.type !== spec.dtype) {
      throw new Error(
        `${model}: ${kind} "${spec.name}" has dtype ${tensor.type}, expected ${spec.dtype}`,
      )
    }
    const common = batch
    let batchMismatch = false
    const fits =
      tensor.dims.length === spec.shape.length &&
      spec.shape.every((size, axis) => {
        const actual = tensor.dims[axis] as number
        if (size !== BATCH_DIM) return actual === size
        batch ??= actual
        batchMismatch = actual !== batch || actual < 1
        return !batchMismatch
      })
    if (!fits) {
      const batchNote = batchMismatch && common !== undefined ? ` with batch = ${common}` : ''
      throw new Error(
        `${model}: ${kind} "${spec.name}" has dims ${dims}, expected ${expected}${batchNote}`,
      )
    }
  }
  return batch
}

/**
 * Runs a session after checking every feed against the manifest, and checks the outputs the same way.
 *
 * @example
 * const { features } = await runChecked(heavy, { x_s, s, label })
 */
export async function runChecked(
  model: LoadedModel,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const batch = checkTensors(model.name, 'input', model.spec.inputs, feeds)
  const outputs = await model.session.run(feeds)
  checkTensors(model.name, 'output', model.spec.outputs, outputs, batch)
  return outputs
}
