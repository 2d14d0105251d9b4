// Reads gpu-service/models/golden.json: inputs and the outputs PyTorch's export produced for them,
// each tensor as base64 of little-endian raw values.
import { readFileSync } from 'node:fs'
import * as ort from 'onnxruntime-node'
import { z } from 'zod'

const goldenTensorSchema = z.object({
  dtype: z.enum(['float32', 'int64']),
  dims: z.array(z.number().int().nonnegative()),
  data: z.base64(),
})
const goldenCaseSchema = z.object({
  inputs: z.record(z.string(), goldenTensorSchema),
  outputs: z.record(z.string(), goldenTensorSchema),
})
const goldenSchema = z.object({ heavy: goldenCaseSchema, light: goldenCaseSchema })

export interface GoldenCase {
  inputs: Record<string, ort.Tensor>
  outputs: Record<string, ort.Tensor>
}

function toTensor({ dtype, dims, data }: z.infer<typeof goldenTensorSchema>): ort.Tensor {
  const bytes = Buffer.from(data, 'base64')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const size = dims.reduce((product, dim) => product * dim, 1)
  const width = dtype === 'float32' ? 4 : 8
  if (bytes.byteLength !== size * width) {
    throw new Error(
      `golden ${dtype}[${dims}] has ${bytes.byteLength} bytes, expected ${size * width}`,
    )
  }
  if (dtype === 'float32') {
    const values = Float32Array.from({ length: size }, (_, i) => view.getFloat32(i * 4, true))
    return new ort.Tensor('float32', values, dims)
  }
  const values = BigInt64Array.from({ length: size }, (_, i) => view.getBigInt64(i * 8, true))
  return new ort.Tensor('int64', values, dims)
}

export function readGolden(path: string): { heavy: GoldenCase; light: GoldenCase } {
  const golden = goldenSchema.parse(JSON.parse(readFileSync(path, 'utf8')))
  const convert = (entries: Record<string, z.infer<typeof goldenTensorSchema>>) =>
    Object.fromEntries(Object.entries(entries).map(([name, tensor]) => [name, toTensor(tensor)]))
  return {
    heavy: { inputs: convert(golden.heavy.inputs), outputs: convert(golden.heavy.outputs) },
    light: { inputs: convert(golden.light.inputs), outputs: convert(golden.light.outputs) },
  }
}
