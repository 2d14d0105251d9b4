// The evaluation report: its JSON shape and the markdown table rendered from it (docs/eval/README.md).
import type { ClaimSettings, SeedScore, Summary } from './measure-claim.ts'

export interface EvalReport {
  modelId: string
  date: string
  machine: string
  /** Wall-clock length of the whole evaluation. */
  seconds: number
  command: string
  settings: ClaimSettings
  classifierTestAccuracy: number
  /** Width of the evaluator feature vectors FD is computed in. */
  featureDim: number
  /** FD of as many real training images as one sample set: the floor a perfect sampler would reach. */
  realFd: number
  intervals: {
    heavyEvery: number
    seeds: SeedScore[]
    classAccuracy: Summary
    fd: Summary
    macsPerImage: Summary
    wallMsPerImage: Summary
  }[]
  /** Means at K over means at K=1; null when K or K=1 was not measured. */
  ratios: { fdK4: number | null; fdK8: number | null; macsK4: number | null; wallK4: number | null }
  accuracyK1: number | null
  accuracyK4: number | null
  recommended: { steps: number; heavyEvery: number; guidance: number }
}

const pm = ({ mean, std }: Summary, digits: number, scale = 1) =>
  `${(mean * scale).toFixed(digits)} ± ${(std * scale).toFixed(digits)}`

function bar(
  label: string,
  value: number | null,
  pass: (v: number) => boolean,
  shown: (v: number) => string,
) {
  if (value === null) return `| ${label} | not measured | - |`
  return `| ${label} | ${shown(value)} | ${pass(value) ? 'pass' : 'FAIL'} |`
}

/**
 * Markdown: settings, one row per heavy interval (mean ± std over seeds), and the bars of issue 2.
 *
 * @example
 * await writeFile('docs/eval/README.md', renderReport(report))
 */
export function renderReport(report: EvalReport): string {
  const { settings, ratios } = report
  const perSetting = settings.samplesPerClass * 10
  const rows = report.intervals.map(
    (row) =>
      `| ${row.heavyEvery} | ${pm(row.classAccuracy, 1, 100)} % | ${pm(row.fd, 2)} | ` +
      `${(row.macsPerImage.mean / 1e9).toFixed(2)} | ${pm(row.wallMsPerImage, 1)} |`,
  )
  const percent = (v: number) => `${(v * 100).toFixed(1)} %`
  const times = (v: number) => `${v.toFixed(3)}x`
  return `# Dual-rate evaluation: quality and cost against the heavy interval K

Model \`${report.modelId}\`, measured ${report.date.slice(0, 10)} on ${report.machine}.
Command: \`${report.command}\`

${settings.steps} ancestral steps, guidance ${settings.guidance}, ${perSetting} samples per setting and seed
(${settings.samplesPerClass} per class), seeds ${settings.seeds.join(', ')}; mean ± std over seeds. Class
accuracy and FD use the evaluator classifier (test accuracy ${percent(report.classifierTestAccuracy)}); FD is
against the 10,000 test images in its ${report.featureDim}-d feature space. ${perSetting} real training images score FD
${report.realFd.toFixed(2)}, the floor for a set of this size. MACs count both networks, guidance rows included. Wall time per image is the median over sampler calls
(${settings.batch} images each) of call time / images, mean ± std over seeds; the run took ${(report.seconds / 60).toFixed(0)} minutes.

| heavy every K | class accuracy | FD | GMACs / image | wall ms / image |
| ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}

| bar | measured | |
| --- | ---: | --- |
${bar('classifier test accuracy >= 90 %', report.classifierTestAccuracy, (v) => v >= 0.9, percent)}
${bar('class accuracy at K=1 >= 90 %', report.accuracyK1, (v) => v >= 0.9, percent)}
${bar('class accuracy at K=4 >= 90 %', report.accuracyK4, (v) => v >= 0.9, percent)}
${bar('FD(K=4) / FD(K=1) <= 1.15', ratios.fdK4, (v) => v <= 1.15, times)}
${bar('FD(K=8) / FD(K=1) <= 1.30', ratios.fdK8, (v) => v <= 1.3, times)}
${bar('MACs(K=4) / MACs(K=1) <= 1/3', ratios.macsK4, (v) => v <= 1 / 3, times)}
${bar('wall(K=4) / wall(K=1) <= 1/2.5', ratios.wallK4, (v) => v <= 1 / 2.5, times)}

Recommended uniform K (the cheapest K within the K=4 quality bar, or the smallest K measured when none is or K=1
was not measured; recorded in the model's manifest with \`--record\`; a calibrated number of heavy calls the
frontier found cheaper, \`recommended.heavyCalls\`, stays the default where the manifest has one):
${settings.steps} steps, heavy every ${report.recommended.heavyEvery}, guidance ${report.recommended.guidance}.
Sample grids (one row per class, seed ${settings.seeds[0]}): ${report.intervals.map((r) => `[K=${r.heavyEvery}](grid-k${r.heavyEvery}.png)`).join(', ')}.
${FURTHER_PAGES}`
}

/** The other evaluation pages of the default model, each written by its own command. */
const FURTHER_PAGES = `
More measurements of the default model:
- Feature drift (how far reused heavy features are from fresh ones, step by step, and what that does to
  x0), \`npm run drift\`: [drift.md](drift.md).
- What reusing features of each age costs at each step, how far a step's error carries to the image, and
  the calibrated placements of every budget of heavy calls, \`npm run calibrate\`: [reuse-cost.json](reuse-cost.json).
- The quality-cost frontier (uniform, calibrated and adaptive heavy schedules), \`npm run frontier\`:
  [frontier.md](frontier.md); its cheapest setting within 5 % of K=1, 5 calibrated calls, is the default.
`
