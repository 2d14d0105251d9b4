// The frontier figure (docs/eval/frontier.png): FD and class accuracy against GMACs per image, one
// colour per schedule family, the mean over seeds as a point with a +-1 std bar.
import type { TopLevelSpec } from 'vega-lite'
import type { FrontierPoint } from './frontier.ts'
import { PLOT_FONT, renderPng } from './plot-png.ts'

/**
 * The frontier's vega-lite spec: FD (left) and class accuracy (right) against MACs per image.
 *
 * @example
 * await writeFile('docs/eval/frontier.png', await renderPng(frontierPlotSpec(points, title)))
 */
export function frontierPlotSpec(points: readonly FrontierPoint[], title: string): TopLevelSpec {
  const values = points.flatMap((point) => [
    {
      family: point.family,
      name: point.name,
      gmacs: point.gmacsPerImage.mean,
      metric: 'FD (lower is better)',
      mean: point.fd.mean,
      low: point.fd.mean - point.fd.std,
      high: point.fd.mean + point.fd.std,
    },
    {
      family: point.family,
      name: point.name,
      gmacs: point.gmacsPerImage.mean,
      metric: 'class accuracy % (higher is better)',
      mean: point.classAccuracy.mean * 100,
      low: (point.classAccuracy.mean - point.classAccuracy.std) * 100,
      high: (point.classAccuracy.mean + point.classAccuracy.std) * 100,
    },
  ])
  const x = {
    field: 'gmacs',
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'GMACs per image (log)',
  }
  const color = { field: 'family', type: 'nominal' as const, title: 'schedule' }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 380,
      height: 280,
      layer: [
        {
          mark: { type: 'rule' },
          encoding: {
            x,
            y: { field: 'low', type: 'quantitative', title: null, scale: { zero: false } },
            y2: { field: 'high' },
            color,
          },
        },
        {
          mark: { type: 'line', point: true, opacity: 0.8 },
          encoding: {
            x,
            y: { field: 'mean', type: 'quantitative', scale: { zero: false } },
            color,
            order: { field: 'gmacs' },
            tooltip: [{ field: 'name' }, { field: 'mean' }],
          },
        },
      ],
    },
    config: { font: PLOT_FONT, view: { stroke: '#ccc' } },
  }
}

/** The frontier figure as PNG bytes. */
export function renderFrontierPng(
  points: readonly FrontierPoint[],
  title: string,
): Promise<Uint8Array> {
  return renderPng(frontierPlotSpec(points, title))
}
