// The drift measurement's figure (docs/eval/drift.png): per heavy interval K, the feature rel-L2 and the
// x0 change against the step, mean as a line and the 10th-90th percentile band over trajectories. A
// vega-lite spec, rendered by plot-png.ts.
import type { TopLevelSpec } from 'vega-lite'
import type { DriftInterval, DriftMeasures } from './drift.ts'
import { PLOT_FONT as FONT, renderPng } from './plot-png.ts'

const PANELS: readonly { measure: keyof DriftMeasures; axis: string; title: string }[] = [
  {
    measure: 'featureRelL2',
    axis: 'feature rel-L2',
    title: 'Heavy features reused vs fresh: ||f_reused − f_fresh|| / ||f_fresh||',
  },
  {
    measure: 'x0RelL2',
    axis: 'x0 rel-L2',
    title: "Light net's x0 (guided, before clip): ||x0_reused − x0_fresh|| / ||x0_fresh||",
  },
]

/**
 * The plot's vega-lite spec: one row per measure, one column per K, y shared along a row.
 *
 * @example
 * const spec = driftPlotSpec(intervals, 'Feature drift, 256 trajectories, 50 steps')
 */
export function driftPlotSpec(intervals: readonly DriftInterval[], title: string): TopLevelSpec {
  const values = intervals.flatMap(({ heavyEvery, steps }) =>
    steps.flatMap((step) =>
      PANELS.map(({ measure }) => ({
        K: `heavy every ${heavyEvery}`,
        heavyEvery,
        measure,
        step: step.step,
        heavy: step.heavy,
        mean: step[measure].mean,
        p10: step[measure].p10,
        p90: step[measure].p90,
      })),
    ),
  )
  const x = { field: 'step', type: 'quantitative', title: 'step (0 = pure noise)' } as const
  const color = {
    field: 'K',
    type: 'nominal',
    legend: null,
    sort: { field: 'heavyEvery' },
  } as const
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: 'line: mean over trajectories; band: 10th to 90th percentile; 0 on heavy steps',
    },
    background: 'white',
    config: { font: FONT, view: { stroke: '#ccc' } },
    data: { values },
    vconcat: PANELS.map(({ measure, axis, title: panelTitle }) => ({
      title: { text: panelTitle, anchor: 'start', fontSize: 13 },
      transform: [{ filter: { field: 'measure', equal: measure } }],
      facet: {
        column: {
          field: 'K',
          type: 'nominal',
          title: null,
          sort: { field: 'heavyEvery' },
          header: { labelFontSize: 13 },
        },
      },
      spec: {
        width: 260,
        height: 170,
        layer: [
          {
            mark: { type: 'area', opacity: 0.25 },
            encoding: {
              x,
              y: { field: 'p10', type: 'quantitative', title: axis },
              y2: { field: 'p90' },
              color,
            },
          },
          {
            mark: { type: 'line', strokeWidth: 1.5 },
            encoding: { x, y: { field: 'mean', type: 'quantitative' }, color },
          },
        ],
      },
    })),
  }
}

/**
 * The drift plot as PNG bytes.
 *
 * @example
 * await writeFile('docs/eval/drift.png', await renderDriftPng(intervals, title))
 */
export function renderDriftPng(
  intervals: readonly DriftInterval[],
  title: string,
): Promise<Uint8Array> {
  return renderPng(driftPlotSpec(intervals, title))
}
