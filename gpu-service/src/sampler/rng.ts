// Seeded noise for the sampler. Each image n of a request draws from its own xoroshiro128+ stream,
// derived from (seed, n) by n jumps of 2^64, so image n's pixels depend on neither the batch nor count.
// Per image the draw order is fixed: x_T first, then one noise image per step (none on the last step).
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64'
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator'

/** A stream of standard normal values (Box-Muller, both values of each pair used). */
export class NormalStream {
  readonly #generator: JumpableRandomGenerator
  #spare = Number.NaN

  constructor(generator: JumpableRandomGenerator) {
    this.#generator = generator
  }

  /** Next standard normal value. */
  next(): number {
    if (!Number.isNaN(this.#spare)) {
      const value = this.#spare
      this.#spare = Number.NaN
      return value
    }
    // u1 in (0, 1] keeps the log finite; Box & Muller 1958.
    const u1 = 1 - uniformFloat64(this.#generator)
    const u2 = uniformFloat64(this.#generator)
    const radius = Math.sqrt(-2 * Math.log(u1))
    this.#spare = radius * Math.sin(2 * Math.PI * u2)
    return radius * Math.cos(2 * Math.PI * u2)
  }

  /** Fills `out` with the next `out.length` values, in order. */
  fill(out: Float32Array): void {
    for (let i = 0; i < out.length; i++) out[i] = this.next()
  }
}

/**
 * The noise streams of images 0..count-1 of a request.
 *
 * @example
 * const [first, second] = imageNoiseStreams(42, 2)
 * first.fill(xT.subarray(0, 784))
 */
export function imageNoiseStreams(seed: number, count: number): NormalStream[] {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new RangeError(`seed must be an unsigned 32-bit integer, got ${seed}`)
  }
  const base = xoroshiro128plus(seed)
  return Array.from({ length: count }, () => {
    const stream = new NormalStream(base.clone())
    base.jump()
    return stream
  })
}
