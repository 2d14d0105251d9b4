import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkTensors,
  ExecutionProviderError,
  executionProvidersFor,
  type LoadedModel,
  loadModel,
  runChecked,
} from '../../../gpu-service/src/onnx/session.ts'
import { parseManifest } from '../../../shared/model-manifest.ts'
import { validManifest } from '../../fixtures/manifest.ts'
import { readGolden } from './golden.ts'

const MODELS_DIR = 'gpu-service/models'
// `npm install` skips onnxruntime-node's CUDA download (package.json allowScripts), so the CUDA provider
// cannot load here unless someone fetched it on purpose.
const CUDA_PROVIDER_INSTALLED = readdirSync(
  join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin'),
  { recursive: true },
).some((file) => String(file).endsWith('libonnxruntime_providers_cuda.so'))
const heavySpec = validManifest().models.heavy

const tensor = (type: string, dims: number[]) => ({ type, dims })
const heavyFeeds = (batch: number) => ({
  x_s: tensor('float32', [batch, 1, 28, 28]),
  s: tensor('float32', [batch]),
  label: tensor('int64', [batch]),
})

describe('executionProvidersFor', () => {
  it('maps each accelerator to its own providers, with no CPU fallback', () => {
    expect(executionProvidersFor('cpu')).toEqual(['cpu'])
    expect(executionProvidersFor('cuda')).toEqual(['cuda'])
    expect(executionProvidersFor('tensorrt')).toEqual(['tensorrt', 'cuda'])
  })

  it('names the known devices when the device is unknown', () => {
    expect(() => executionProvidersFor('tpu')).toThrow(
      new Error('Unknown ONNX device "tpu"; expected one of: cpu, cuda, tensorrt'),
    )
    expect(() => executionProvidersFor('toString')).toThrow(/Unknown ONNX device "toString"/)
  })
})

describe('checkTensors', () => {
  it('accepts feeds matching the declared shapes and returns the batch size', () => {
    expect(checkTensors('heavy', 'input', heavySpec.inputs, heavyFeeds(3))).toBe(3)
  })

  it('names the model, the input and both dims when a dim is wrong', () => {
    const feeds = { ...heavyFeeds(2), x_s: tensor('float32', [2, 1, 32, 32]) }
    expect(() => checkTensors('heavy', 'input', heavySpec.inputs, feeds)).toThrow(
      new Error('heavy: input "x_s" has dims [2, 1, 32, 32], expected [batch, 1, 28, 28]'),
    )
  })

  it('requires one batch size across all inputs', () => {
    const feeds = { ...heavyFeeds(2), label: tensor('int64', [3]) }
    expect(() => checkTensors('heavy', 'input', heavySpec.inputs, feeds)).toThrow(
      new Error('heavy: input "label" has dims [3], expected [batch] with batch = 2'),
    )
  })

  it('checks outputs against the batch of the inputs', () => {
    const outputs = { features: tensor('float32', [4, 8, 28, 28]) }
    expect(() => checkTensors('heavy', 'output', heavySpec.outputs, outputs, 2)).toThrow(
      new Error(
        'heavy: output "features" has dims [4, 8, 28, 28], expected [batch, 8, 28, 28] with batch = 2',
      ),
    )
  })

  it('names a wrong dtype, a missing input and an unknown input', () => {
    expect(() =>
      checkTensors('heavy', 'input', heavySpec.inputs, {
        ...heavyFeeds(1),
        label: tensor('int32', [1]),
      }),
    ).toThrow(new Error('heavy: input "label" has dtype int32, expected int64'))
    const { s: _s, ...withoutS } = heavyFeeds(1)
    expect(() => checkTensors('heavy', 'input', heavySpec.inputs, withoutS)).toThrow(
      new Error('heavy: missing input "s"'),
    )
    expect(() =>
      checkTensors('heavy', 'input', heavySpec.inputs, {
        ...heavyFeeds(1),
        t: tensor('float32', [1]),
      }),
    ).toThrow(new Error('heavy: unknown input "t"; expected x_s, s, label'))
  })
})

describe('the committed ONNX pair', () => {
  const manifest = parseManifest(readFileSync(join(MODELS_DIR, 'manifest.json'), 'utf8'))
  const golden = readGolden(join(MODELS_DIR, manifest.golden.file))
  let heavy: LoadedModel
  let light: LoadedModel

  beforeAll(async () => {
    heavy = await loadModel(MODELS_DIR, 'heavy', manifest.models.heavy, { device: 'cpu' })
    light = await loadModel(MODELS_DIR, 'light', manifest.models.light, { device: 'cpu' })
  })
  afterAll(async () => {
    await heavy.session.release()
    await light.session.release()
  })

  it.each(['heavy', 'light'] as const)(
    '%s reproduces the golden outputs within 1e-4',
    async (name) => {
      const model = name === 'heavy' ? heavy : light
      const outputs = await runChecked(model, golden[name].inputs)
      for (const [outputName, expected] of Object.entries(golden[name].outputs)) {
        const actual = outputs[outputName] as ort.Tensor
        expect(actual.dims).toEqual(expected.dims)
        const actualData = actual.data as Float32Array
        const expectedData = expected.data as Float32Array
        let maxAbsError = 0
        for (let i = 0; i < expectedData.length; i++) {
          maxAbsError = Math.max(
            maxAbsError,
            Math.abs((actualData[i] as number) - (expectedData[i] as number)),
          )
        }
        expect(maxAbsError).toBeLessThanOrEqual(1e-4)
      }
    },
  )

  it('counts the time inside the runtime, not the wait for its turn on a busy event loop', async () => {
    const before = { ...heavy.runTime }
    const started = performance.now()
    // Work queued ahead of the run's turn: the main thread is busy for 50 ms before the runtime starts.
    setImmediate(() => {
      while (performance.now() - started < 50) {}
    })
    await runChecked(heavy, golden.heavy.inputs)
    const awaitedSeconds = (performance.now() - started) / 1000
    const runSeconds = heavy.runTime.seconds - before.seconds
    expect(heavy.runTime.calls).toBe(before.calls + 1)
    expect(runSeconds).toBeGreaterThan(0)
    expect(runSeconds).toBeLessThan(awaitedSeconds - 0.05)
  })

  it('rejects feeds with the wrong shape before they reach the runtime', async () => {
    const feeds = { ...golden.heavy.inputs, s: new ort.Tensor('float32', new Float32Array(5), [5]) }
    await expect(runChecked(heavy, feeds)).rejects.toThrow(
      /^heavy: input "s" has dims \[5\], expected \[batch\] with batch = \d+$/,
    )
  })

  describe('loadModel', () => {
    let dir: string
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'dualrate-models-'))
    })
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    it('refuses a model file whose sha256 differs from the manifest', async () => {
      await writeFile(join(dir, 'heavy.onnx'), 'not the model')
      const actual = createHash('sha256').update('not the model').digest('hex')
      await expect(
        loadModel(dir, 'heavy', manifest.models.heavy, { device: 'cpu' }),
      ).rejects.toThrow(
        `heavy: ${join(dir, 'heavy.onnx')} has sha256 ${actual}, manifest declares ${manifest.models.heavy.sha256}`,
      )
    })

    it('refuses a session whose inputs differ from the manifest', async () => {
      await copyFile(join(MODELS_DIR, manifest.models.light.file), join(dir, 'light.onnx'))
      // The light model's own file declared as the heavy model: sha256 matches, names do not.
      const spec = {
        ...manifest.models.heavy,
        file: 'light.onnx',
        sha256: manifest.models.light.sha256,
      }
      await expect(loadModel(dir, 'heavy', spec, { device: 'cpu' })).rejects.toThrow(
        'heavy: session inputs [x_t, t, label, features] differ from manifest [x_s, s, label]',
      )
    })

    it.skipIf(CUDA_PROVIDER_INSTALLED)(
      'fails with ExecutionProviderError when the CUDA provider cannot load, instead of using the CPU',
      async () => {
        const error = await loadModel(MODELS_DIR, 'heavy', manifest.models.heavy, {
          device: 'cuda',
        }).catch((caught: unknown) => caught)
        expect(error).toBeInstanceOf(ExecutionProviderError)
        const { name, device, provider, reason, message } = error as ExecutionProviderError
        // Linux x64: the provider library is missing; builds without a CUDA backend: no backend.
        expect(reason).toMatch(
          /^OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library$|\[cuda\] backend not found/,
        )
        expect({ name, device, provider, message }).toEqual({
          name: 'ExecutionProviderError',
          device: 'cuda',
          provider: 'cuda',
          message: `device cuda: the cuda execution provider could not be loaded: ${reason}`,
        })
      },
    )

    it('names the provider that failed among several', () => {
      const reason =
        'OrtSessionOptionsAppendExecutionProvider_TensorRT: Failed to load shared library'
      expect(
        new ExecutionProviderError('tensorrt', ['tensorrt', 'cuda'], new Error(reason)),
      ).toMatchObject({
        provider: 'tensorrt',
        message: `device tensorrt: the tensorrt execution provider could not be loaded: ${reason}`,
      })
      const cudaError = new Error('CUDA failure 100: no CUDA-capable device is detected ;\n GPU=0')
      expect(new ExecutionProviderError('tensorrt', ['tensorrt', 'cuda'], cudaError)).toMatchObject(
        {
          provider: 'tensorrt + cuda',
          reason: 'CUDA failure 100: no CUDA-capable device is detected ; GPU=0',
        },
      )
    })
  })
})
