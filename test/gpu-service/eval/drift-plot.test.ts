// The drift plot renders to a PNG without a browser, from a measurement's intervals.
import { describe, expect, it } from 'vitest'
import type { DriftInterval, DriftMeasures, Spread } from '../../../gpu-service/src/eval/drift.ts'
import { driftPlotSpec, renderDriftPng } from '../../../gpu-service/src/eval/drift-plot.ts'

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

const flat = (value: number): Spread => ({
  mean: value,
  std: 0,
  p10: value,
  p50: value,
  p90: value,
})
const measures = (relL2: number): DriftMeasures => ({
  featureCosine: flat(1 - relL2),
  featureRelL2: flat(relL2),
  x0RelL2: flat(relL2 / 4),
  x0RelL2Clipped: flat(relL2 / 4),
})

function interval(heavyEvery: number, steps: number): DriftInterval {
  return {
    heavyEvery,
    steps: Array.from({ length: steps }, (_, step) => ({
      step,
      t: 1 - step / steps,
      heavy: step % heavyEvery === 0,
      staleness: step % heavyEvery,
      ...measures((step % heavyEvery) * 0.1),
    })),
    reusedSteps: measures(0.1),
  }
}

describe('drift plot', () => {
  it('plots both measures of every step of every K', () => {
    const spec = driftPlotSpec([interval(2, 6), interval(3, 6)], 'title')
    const values = (spec as { data: { values: unknown[] } }).data.values
    expect(values).toHaveLength(2 * 6 * 2)
    expect(values).toContainEqual({
      K: 'heavy every 3',
      heavyEvery: 3,
      measure: 'x0RelL2',
      step: 2,
      heavy: false,
      mean: 0.05,
      p10: 0.05,
      p90: 0.05,
    })
  })

  it('renders a PNG', async () => {
    const png = await renderDriftPng([interval(2, 6), interval(3, 6)], 'Feature drift')
    expect([...png.subarray(0, 8)]).toEqual(PNG_SIGNATURE)
    const header = new DataView(png.buffer, png.byteOffset + 16, 8)
    expect(header.getUint32(0)).toBeGreaterThan(500)
    expect(header.getUint32(4)).toBeGreaterThan(500)
  })
})
