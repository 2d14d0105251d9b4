// Figures for the evaluation pages: a vega-lite spec compiled and rendered headless to SVG by vega, then
// to PNG by resvg; no canvas, no browser.
import { Resvg } from '@resvg/resvg-js'
import { parse, View } from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

/** DejaVu Sans ships with most Linux images; resvg falls back to any system font without it. */
export const PLOT_FONT = 'DejaVu Sans'

/**
 * Renders a vega-lite spec to PNG bytes at twice its CSS size.
 *
 * @example
 * await writeFile('docs/eval/drift.png', await renderPng(driftPlotSpec(intervals, title)))
 */
export async function renderPng(spec: TopLevelSpec): Promise<Uint8Array> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' })
  try {
    const svg = await view.toSVG()
    const resvg = new Resvg(svg, {
      fitTo: { mode: 'zoom', value: 2 },
      font: { loadSystemFonts: true, defaultFontFamily: PLOT_FONT, sansSerifFamily: PLOT_FONT },
    })
    return resvg.render().asPng()
  } finally {
    view.finalize()
  }
}
