// Sampler output to PNG: one 8-bit grayscale image per sample, and a grid of several for a quick look.
import { encode } from 'fast-png'

/** Grid separator lines: mid gray, apart from both the black background and white garments. */
const GRID_GAP_VALUE = 128

/**
 * Maps model values in [-1, 1] to bytes: round((x + 1) / 2 * 255), clamped to 0..255.
 *
 * @example
 * toGray8(Float32Array.of(-1, 0, 1)) // Uint8Array [0, 128, 255]
 */
export function toGray8(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const level = Math.round((((values[i] as number) + 1) / 2) * 255)
    bytes[i] = Math.min(255, Math.max(0, level))
  }
  return bytes
}

/**
 * Encodes one height x width image of values in [-1, 1] as an 8-bit grayscale PNG.
 *
 * @example
 * await writeFile('7-0.png', encodeGrayPng(result.images.subarray(0, 784), 28, 28))
 */
export function encodeGrayPng(image: Float32Array, width: number, height: number): Uint8Array {
  if (image.length !== width * height) {
    throw new Error(`image has ${image.length} values, expected ${width} x ${height}`)
  }
  return encode({ width, height, data: toGray8(image), depth: 8, channels: 1 })
}

export interface GridLayout {
  /** Images per row; default ceil(sqrt(count)). */
  columns?: number
  /** Pixels between images and around the edge; default 2. */
  gap?: number
}

/**
 * Encodes `count` images stored back to back in `images` as one grid PNG, row-major.
 *
 * @example
 * await writeFile('grid.png', encodeGridPng(result.images, result.count, 28, 28))
 */
export function encodeGridPng(
  images: Float32Array,
  count: number,
  width: number,
  height: number,
  layout: GridLayout = {},
): Uint8Array {
  const pixels = width * height
  if (count < 1 || images.length !== count * pixels) {
    throw new Error(`grid of ${count} images needs ${count * pixels} values, got ${images.length}`)
  }
  const columns = layout.columns ?? Math.ceil(Math.sqrt(count))
  const gap = layout.gap ?? 2
  const rows = Math.ceil(count / columns)
  const gridWidth = columns * (width + gap) + gap
  const gridHeight = rows * (height + gap) + gap
  const grid = new Uint8Array(gridWidth * gridHeight).fill(GRID_GAP_VALUE)
  for (let n = 0; n < count; n++) {
    const bytes = toGray8(images.subarray(n * pixels, (n + 1) * pixels))
    const left = gap + (n % columns) * (width + gap)
    const top = gap + Math.floor(n / columns) * (height + gap)
    for (let y = 0; y < height; y++) {
      grid.set(bytes.subarray(y * width, (y + 1) * width), (top + y) * gridWidth + left)
    }
  }
  return encode({ width: gridWidth, height: gridHeight, data: grid, depth: 8, channels: 1 })
}
