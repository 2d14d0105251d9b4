// The one place that creates ONNX Runtime sessions: the device's execution providers
// (execution-providers.ts) and thread options come from config (service/config.ts reads them from the
// environment), and every run is checked against the manifest's declared tensors before it reaches the
// runtime.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { BATCH_DIM, type ModelSpec, type TensorSpec } from '../../../shared/model-manifest.ts'
import { ExecutionProviderError, executionProvidersFor } from './execution-providers.ts'

export {
  EXECUTION_PROVIDERS,
  ExecutionProviderError,
  executionProvidersFor,
} from './execution-providers.ts'

export interface SessionConfig {
  /** A key of EXECUTION_PROVIDERS. */
  device: string
  /** Threads inside one operator; unset lets ONNX Runtime choose (one per core). */
  intraOpThreads?: number
  /** Threads across independent operators; unset lets ONNX Runtime choose. */
  interOpThreads?: number
  /**
   * Whether idle intra-op threads spin waiting for the next operator (ONNX Runtime's default) instead of
   * sleeping; unset keeps the default.
   */
  intraOpSpinning?: boolean
}

export const DEFAULT_SESSION_CONFIG: SessionConfig = Object.freeze({ device: 'cpu' })

/** A session together with the manifest entry that describes it. */
export interface LoadedModel {
  /** Manifest key, used in error messages: "heavy" or "light". */
  name: string
  spec: ModelSpec
  session: ort.InferenceSession
  /** The execution providers the session was created with: the ones in use (see execution-providers.ts). */
  executionProviders: readonly string[]
  /** What the runtime itself has spent on this session's runs so far (see runChecked). */
  readonly runTime: OnnxRunTime
}

/** Running totals of one session's runs: how many, and the seconds inside ONNX Runtime. */
export interface OnnxRunTime {
  calls: number
  seconds: number
}

/**
 * Loads `spec.file` from `modelsDir`, checks its sha256 against the manifest, creates the session and
 * checks the session's input and output names against the manifest. With an accelerator, a session that
 * cannot be created (the provider's libraries or device missing) throws ExecutionProviderError: the
 * bytes passed their checksum, so the provider is what failed, and nothing falls back to the CPU.
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
  const executionProviders = executionProvidersFor(config.device)
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [...executionProviders],
    graphOptimizationLevel: 'all',
  }
  if (config.intraOpThreads !== undefined) options.intraOpNumThreads = config.intraOpThreads
  if (config.interOpThreads !== undefined) options.interOpNumThreads = config.interOpThreads
  if (config.intraOpSpinning !== undefined) {
    const allowSpinning = config.intraOpSpinning ? '1' : '0'
    options.extra = { session: { intra_op: { allow_spinning: allowSpinning } } }
  }
  let session: ort.InferenceSession
  try {
    session = await ort.InferenceSession.create(bytes, options)
  } catch (error) {
    if (config.device === 'cpu') throw error
    throw new ExecutionProviderError(config.device, executionProviders, error)
  }
  checkNames(name, 'inputs', session.inputNames, spec.inputs)
  checkNames(name, 'outputs', session.outputNames, spec.outputs)
  return { name, spec, session, executionProviders, runTime: { calls: 0, seconds: 0 } }
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
 * Adds the run's time inside ONNX Runtime to `model.runTime`.
 *
 * @example
 * const { features } = await runChecked(heavy, { x_s, s, label })
 */
export async function runChecked(
  model: LoadedModel,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const batch = checkTensors(model.name, 'input', model.spec.inputs, feeds)
  // onnxruntime-node runs a session synchronously inside a setImmediate callback that session.run
  // queues before its first await. Immediates queued just before and just after it run right before
  // and right after it, in the same turn, so they time the runtime alone: the wait for that turn, in
  // which a service answers HTTP and writes events, is not counted.
  let runStarted = 0
  setImmediate(() => {
    runStarted = performance.now()
  })
  const running = model.session.run(feeds)
  const runEnded = new Promise<number>((resolve) => setImmediate(() => resolve(performance.now())))
  const [outputs, endedAt] = await Promise.all([running, runEnded])
  model.runTime.calls++
  model.runTime.seconds += (endedAt - runStarted) / 1000
  checkTensors(model.name, 'output', model.spec.outputs, outputs, batch)
  return outputs
}
