// One sampler step for several runs at once: the runs' rows are stacked into one heavy call (for the runs
// whose schedule refreshes features on this step) and one light call (for all of them). Each row depends
// only on its own inputs, so a run's images do not depend on which runs share its calls.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { DualRateModels, SamplerRun, StepEvent } from './sampler-run.ts'

/**
 * Owns the stacked feed buffers (allocated once for `maxRows` rows) and calls the models for a batch of
 * runs. Calls must not overlap: the feeds are reused.
 *
 * @example
 * const batch = new StepBatch(models, manifest, 128)
 * await batch.heavy(runs.filter((run) => run.heavyDue))
 * const events = await batch.light(runs)
 */
export class StepBatch<Features> {
  readonly maxRows: number
  readonly #models: DualRateModels<Features>
  readonly #pixels: number
  readonly #x: Float32Array
  readonly #time: Float32Array
  readonly #label: BigInt64Array

  constructor(models: DualRateModels<Features>, manifest: Manifest, maxRows: number) {
    if (!Number.isInteger(maxRows) || maxRows < 1) {
      throw new RangeError(`maxRows must be a positive integer, got ${maxRows}`)
    }
    const { channels, height, width } = manifest.image
    this.maxRows = maxRows
    this.#models = models
    this.#pixels = channels * height * width
    this.#x = new Float32Array(maxRows * this.#pixels)
    this.#time = new Float32Array(maxRows)
    this.#label = new BigInt64Array(maxRows)
  }

  /** Runs the heavy encoder once for every run given (all must be `heavyDue`); each keeps its rows. */
  async heavy(runs: readonly SamplerRun<Features>[]): Promise<void> {
    if (runs.length === 0) return
    const rows = this.#stack(runs)
    const features = await this.#models.heavy({
      xS: this.#x.subarray(0, rows * this.#pixels),
      s: this.#time.subarray(0, rows),
      label: this.#label.subarray(0, rows),
    })
    let offset = 0
    for (const run of runs) {
      run.acceptFeatures({ features, offset, rows: run.rows })
      offset += run.rows
    }
  }

  /** Runs the light denoiser once for every run given and advances each by one step. */
  async light(runs: readonly SamplerRun<Features>[]): Promise<StepEvent[]> {
    if (runs.length === 0) return []
    const rows = this.#stack(runs)
    const x0Rows = await this.#models.light({
      xT: this.#x.subarray(0, rows * this.#pixels),
      t: this.#time.subarray(0, rows),
      label: this.#label.subarray(0, rows),
      features: runs.map((run) => run.features),
    })
    if (x0Rows.length !== rows * this.#pixels) {
      throw new Error(
        `light model returned ${x0Rows.length} values, expected ${rows * this.#pixels}`,
      )
    }
    let offset = 0
    return runs.map((run) => {
      const event = run.advance(
        x0Rows.subarray(offset * this.#pixels, (offset + run.rows) * this.#pixels),
      )
      offset += run.rows
      return event
    })
  }

  /** Writes the runs' rows one after another into the feed buffers; returns the row count. */
  #stack(runs: readonly SamplerRun<Features>[]): number {
    let offset = 0
    for (const run of runs) {
      if (offset + run.rows > this.maxRows) {
        throw new RangeError(`batch of ${offset + run.rows} rows exceeds maxRows ${this.maxRows}`)
      }
      run.writeModelRows(
        this.#x.subarray(offset * this.#pixels, (offset + run.rows) * this.#pixels),
        this.#time.subarray(offset, offset + run.rows),
        this.#label.subarray(offset, offset + run.rows),
      )
      offset += run.rows
    }
    return offset
  }
}
