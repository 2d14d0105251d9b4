// docs/eval/frontier.md: the frontier's results page, rendered from what `npm run frontier` measured.
import type { Manifest } from '../../../shared/model-manifest.ts'
import type { BudgetComparison, FrontierPoint } from './frontier.ts'
import type { Summary } from './measure-claim.ts'

export interface FrontierReport {
  modelId: string
  date: string
  machine: string
  seconds: number
  command: string
  /** Points taken from an earlier `npm run eval` report rather than sampled again. */
  reused: { from: string; points: string[] } | null
  /** Points kept from an earlier `npm run frontier` report (when it was measured, and its command). */
  kept: { from: string; date: string; command: string; points: string[] } | null
  settings: { seeds: number[]; samplesPerClass: number; steps: number; guidance: number }
  recommended: Manifest['recommended']
  points: FrontierPoint[]
  budgets: BudgetComparison[]
  cheapestWithin5Percent: string | null
}

const pm = (s: Summary, digits: number, scale = 1) =>
  `${(s.mean * scale).toFixed(digits)} ± ${(s.std * scale).toFixed(digits)}`

/**
 * The page: how it was measured, every point, calibrated against uniform per budget, and the verdicts.
 *
 * @example
 * await writeFile('docs/eval/frontier.md', renderFrontierReport(report))
 */
export function renderFrontierReport(report: FrontierReport): string {
  const { settings } = report
  const samples = 10 * settings.samplesPerClass
  const reference = report.points.find((p) => p.name === 'every 1')
  const rows = [...report.points]
    .sort((a, b) => a.gmacsPerImage.mean - b.gmacsPerImage.mean)
    .map(
      (p) =>
        `| ${p.name} | ${p.family} | ${pm(p.heavyCalls, 1)} | ${p.gmacsPerImage.mean.toFixed(2)} | ${pm(p.fd, 2)} | ${pm(p.classAccuracy, 1, 100)} % |`,
    )
  const budgets = report.budgets.map(
    (b) =>
      `| ${b.heavyCalls} | ${b.uniform} | ${b.uniformFd.toFixed(2)} | ${b.calibratedFd.toFixed(2)} | ${b.perSeedDifference.map((d) => `${d > 0 ? '+' : ''}${d.toFixed(2)}`).join(', ')} | ${b.sameSteps ? 'yes: uniform placement kept by validation' : b.calibratedAtLeastAsGood ? 'yes' : 'no'} |`,
  )
  const twins = report.points.filter((p) => p.sameStepsAs !== undefined)
  const allAsGood = report.budgets.every((b) => b.calibratedAtLeastAsGood)
  const smallest = report.budgets.slice(0, 2)
  const smallestBetter = smallest.every((b) => b.calibratedFd < b.uniformFd)
  const cheapest = report.points.find((p) => p.name === report.cheapestWithin5Percent)
  const { heavyCalls, heavyEvery } = report.recommended
  const current = report.points.find((p) =>
    heavyCalls === undefined
      ? p.family === 'uniform' && 'every' in p.heavySchedule && p.heavySchedule.every === heavyEvery
      : p.family === 'calibrated' &&
        'calls' in p.heavySchedule &&
        p.heavySchedule.calls === heavyCalls,
  )
  return `# The quality-cost frontier

Model \`${report.modelId}\`, ${settings.steps} steps, guidance ${settings.guidance} (the recommended
guidance), seeds ${settings.seeds.join(', ')}, ${samples} samples per point and seed; mean ± std over seeds.
FD is measured in the evaluator classifier's feature space against the test split (see README.md in this
folder). Measured on ${report.machine}, ${report.date.slice(0, 10)}, in ${(report.seconds / 60).toFixed(0)} min:
\`${report.command}\`.${
    report.reused && report.reused.points.length > 0
      ? `\nThe points ${report.reused.points.join(', ')} are the scores \`npm run eval\` recorded in \`${report.reused.from}\`
under the same model, seeds, samples, steps and guidance (the sampler is deterministic, so sampling them
again gives the same images); their wall times are from that run.`
      : ''
  }${
    report.kept && report.kept.points.length > 0
      ? `\nThe points ${report.kept.points.join(', ')} were measured on ${report.kept.date.slice(0, 10)} by
\`${report.kept.command}\` and kept from \`${report.kept.from}\` (same model, seeds, samples, steps and
guidance; a calibrated point only where its placement is unchanged); the minutes above are the rest.`
      : ''
  }${
    twins.length > 0
      ? `\n${twins.map((p) => `${p.name} runs the steps of ${p.sameStepsAs}`).join('; ')}: \`npm run calibrate\` kept the
uniform placement where its own did not beat uniform on validation seeds; same steps, same images, so the
uniform point's scores.`
      : ''
  }

![FD and class accuracy against GMACs per image](frontier.png)

Schedules: **uniform** runs the heavy encoder every K steps; **calibrated** spends the same number of heavy
calls where \`npm run calibrate\` measured reuse to hurt the final image most: each step's shift of the
trajectory with stale features, times how far a shift at that step carries to the image, never on the last
step, unless that placement did not beat uniform on validation seeds, where it keeps uniform's steps
(\`heavySchedule: {"calls": N}\`, placements in the model manifest, measurements in reuse-cost.json); **adaptive** decides during sampling from the run's own x0
(\`heavySchedule: {"adaptive": {"tolerance": T}}\`). The **last-step checks** run every step but the last, and every second
step plus the last, to set beside every 1 and every 2: what fresh features on the final step do to FD.

| setting | schedule | heavy calls / image | GMACs / image | FD | class accuracy |
| --- | --- | ---: | ---: | ---: | ---: |
${rows.join('\n')}

## Calibrated against uniform, at equal heavy calls

| heavy calls | uniform | uniform FD | calibrated FD | calibrated - uniform, per seed | calibrated at least as good |
| ---: | --- | ---: | ---: | --- | --- |
${budgets.join('\n')}

- At least as good at every budget: **${allAsGood ? 'yes' : 'no'}**.
- Strictly better at the two smallest budgets: **${smallestBetter ? 'yes' : 'no'}**.
- Cheapest setting with FD within 5 % of heavy-every-step${reference ? ` (FD ${reference.fd.mean.toFixed(2)})` : ''}: **${cheapest ? `${cheapest.name}, ${cheapest.gmacsPerImage.mean.toFixed(2)} GMACs per image, FD ${cheapest.fd.mean.toFixed(2)}` : 'none'}**${current ? `; the manifest's recommended ${current.name} costs ${current.gmacsPerImage.mean.toFixed(2)} GMACs at FD ${current.fd.mean.toFixed(2)}` : ''}.
`
}
