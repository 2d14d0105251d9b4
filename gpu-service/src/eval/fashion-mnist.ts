// Reads Fashion-MNIST IDX files (gzip) from Debian's dataset-fashion-mnist, the same files training used,
// so the evaluation compares samples with the real test split. Nothing is downloaded.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'

export const DEFAULT_DATA_DIR = '/usr/share/datasets/fashion-mnist'

const IMAGE_MAGIC = 0x803
const LABEL_MAGIC = 0x801
const FILES = {
  train: ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'],
  test: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
} as const

export interface LabelledImages {
  /** `count * 784` values in [-1, 1], the range the diffusion model works in. */
  images: Float32Array
  labels: Uint8Array
  count: number
}

/**
 * Loads one split; a missing file is reported with the Debian package that provides it.
 *
 * @example
 * const test = await loadFashionMnist('test')
 */
export async function loadFashionMnist(
  split: keyof typeof FILES,
  dataDir = process.env.FASHION_MNIST_DIR || DEFAULT_DATA_DIR,
): Promise<LabelledImages> {
  const [imageFile, labelFile] = FILES[split]
  const [imageBytes, labelBytes] = await Promise.all(
    [imageFile, labelFile].map(async (file) => {
      const path = join(dataDir, file)
      try {
        return gunzipSync(await readFile(path))
      } catch (error) {
        throw new Error(
          `cannot read ${path}: install Debian's dataset-fashion-mnist or set FASHION_MNIST_DIR`,
          { cause: error },
        )
      }
    }),
  )
  const images = parseIdx(imageBytes as Buffer, IMAGE_MAGIC, imageFile)
  const labels = parseIdx(labelBytes as Buffer, LABEL_MAGIC, labelFile)
  if (images.count !== labels.count) {
    throw new Error(
      `${imageFile} has ${images.count} images but ${labelFile} ${labels.count} labels`,
    )
  }
  const scaled = new Float32Array(images.values.length)
  for (let i = 0; i < scaled.length; i++) scaled[i] = (images.values[i] as number) / 127.5 - 1
  return { images: scaled, labels: labels.values, count: images.count }
}

function parseIdx(
  bytes: Buffer,
  magic: number,
  file: string,
): { count: number; values: Uint8Array } {
  const found = bytes.readUInt32BE(0)
  if (found !== magic)
    throw new Error(`${file}: IDX magic ${found.toString(16)}, expected ${magic.toString(16)}`)
  const count = bytes.readUInt32BE(4)
  const header = magic === IMAGE_MAGIC ? 16 : 8
  return {
    count,
    values: new Uint8Array(bytes.buffer, bytes.byteOffset + header, bytes.length - header),
  }
}
