import { decode } from 'fast-png'
import { describe, expect, it } from 'vitest'
import { encodeGrayPng, encodeGridPng, toGray8 } from '../../../gpu-service/src/image/png.ts'

describe('toGray8', () => {
  it('maps [-1, 1] to round((x + 1) / 2 * 255) and clamps outside', () => {
    expect([...toGray8(Float32Array.of(-1, -0.5, 0, 0.5, 1, -3, 2))]).toEqual([
      0, 64, 128, 191, 255, 0, 255,
    ])
  })
})

describe('encodeGrayPng', () => {
  it('writes an 8-bit single-channel PNG that decodes to the same bytes', () => {
    const image = Float32Array.from({ length: 28 * 28 }, (_, i) => (i % 28) / 13.5 - 1)
    const png = decode(encodeGrayPng(image, 28, 28))
    expect({
      width: png.width,
      height: png.height,
      depth: png.depth,
      channels: png.channels,
    }).toEqual({
      width: 28,
      height: 28,
      depth: 8,
      channels: 1,
    })
    expect([...png.data]).toEqual([...toGray8(image)])
  })

  it('rejects an image of the wrong size', () => {
    expect(() => encodeGrayPng(new Float32Array(10), 28, 28)).toThrow(
      new Error('image has 10 values, expected 28 x 28'),
    )
  })
})

describe('encodeGridPng', () => {
  it('lays images out row-major with gaps', () => {
    // Three 2x2 images, all black, white and mid-gray: ceil(sqrt(3)) = 2 columns, 2 rows, gap 1.
    const images = Float32Array.of(-1, -1, -1, -1, 1, 1, 1, 1, 0, 0, 0, 0)
    const png = decode(encodeGridPng(images, 3, 2, 2, { gap: 1 }))
    expect([png.width, png.height]).toEqual([7, 7])
    const G = 128
    // biome-ignore format: the grid reads as a picture
    expect([...png.data]).toEqual([
      G, G, G, G, G, G, G,
      G, 0, 0, G, 255, 255, G,
      G, 0, 0, G, 255, 255, G,
      G, G, G, G, G, G, G,
      G, 128, 128, G, G, G, G,
      G, 128, 128, G, G, G, G,
      G, G, G, G, G, G, G,
    ])
  })
})
