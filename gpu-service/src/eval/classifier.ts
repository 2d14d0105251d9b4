// The evaluator: a Fashion-MNIST classifier (gpu-service/models/evaluator/) whose logits give class
// accuracy and whose penultimate features give the Frechet distance. Loaded through the same session module
// as the diffusion pair.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { z } from 'zod'
import { modelSpecSchema } from '../../../shared/model-manifest.ts'
import { type LoadedModel, loadModel, runChecked, type SessionConfig } from '../onnx/session.ts'

export const evaluatorSpecSchema = modelSpecSchema.extend({
  testAccuracy: z.number().min(0).max(1),
  epochs: z.number().int().positive(),
  trainSeconds: z.number().nonnegative(),
  device: z.string(),
  torchVersion: z.string(),
})
export type EvaluatorSpec = z.infer<typeof evaluatorSpecSchema>

export interface Classified {
  /** Arg-max class per image. */
  predictions: Uint8Array
  /** `count * featureDim` penultimate activations. */
  features: Float32Array
  featureDim: number
}

export interface Evaluator {
  spec: EvaluatorSpec
  classify(images: Float32Array, count: number): Promise<Classified>
  release(): Promise<void>
}

/**
 * Loads evaluator/evaluator.json and classifier.onnx from `modelsDir`.
 *
 * @example
 * const evaluator = await loadEvaluator('gpu-service/models', { device: 'cpu' })
 */
export async function loadEvaluator(modelsDir: string, config: SessionConfig): Promise<Evaluator> {
  const dir = join(modelsDir, 'evaluator')
  const spec = evaluatorSpecSchema.parse(
    JSON.parse(await readFile(join(dir, 'evaluator.json'), 'utf8')),
  )
  const model: LoadedModel = await loadModel(dir, 'classifier', spec, config)
  const pixels = 28 * 28
  const batch = 500
  return {
    spec,
    async classify(images, count) {
      const predictions = new Uint8Array(count)
      let features = new Float32Array(0)
      let featureDim = 0
      for (let start = 0; start < count; start += batch) {
        const rows = Math.min(batch, count - start)
        const outputs = await runChecked(model, {
          image: new ort.Tensor(
            'float32',
            images.subarray(start * pixels, (start + rows) * pixels),
            [rows, 1, 28, 28],
          ),
        })
        const logits = outputs.logits?.data as Float32Array
        const rowFeatures = outputs.features as ort.Tensor
        featureDim = rowFeatures.dims[1] as number
        if (features.length === 0) features = new Float32Array(count * featureDim)
        features.set(rowFeatures.data as Float32Array, start * featureDim)
        const classes = logits.length / rows
        for (let row = 0; row < rows; row++) {
          let best = 0
          for (let c = 1; c < classes; c++) {
            if ((logits[row * classes + c] as number) > (logits[row * classes + best] as number))
              best = c
          }
          predictions[start + row] = best
        }
      }
      return { predictions, features, featureDim }
    },
    release: () => model.session.release(),
  }
}
