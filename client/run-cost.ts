// What a run cost, next to the same run with the heavy encoder on every step (the sampler dual-rate saves
// against). MACs are exact: rows x (heavy calls x heavy MACs per row + light calls x light MACs per row),
// with the per-row costs from GET /v1/models. Time is an estimate, from this run's own heavy steps when
// its step events were seen, otherwise in proportion to MACs.
import type { Generation } from '../shared/generation-api.ts'
import type { RowCost } from '../shared/model-support.ts'
import { modelRows } from '../shared/sampling-options.ts'

export interface RunCost {
  heavyCalls: number
  lightCalls: number
  macs: number
  ms: number
}

export interface CostComparison {
  run: RunCost
  heavyEveryStep: RunCost
  /** How `heavyEveryStep.ms` was estimated. */
  timeBasis: 'heavy-steps' | 'macs'
}

/** A step as its SSE event reports it: whether the heavy encoder ran, ms since the run started. */
export interface TimedStep {
  heavy: boolean
  elapsedMs: number
}

export { modelRows }

/**
 * This run's cost and the heavy-every-step baseline's.
 *
 * @example
 * const comparison = compareWithHeavyEveryStep(model.cost, generation.request, generation.timings, steps)
 * console.log(`${(comparison.run.macs / comparison.heavyEveryStep.macs * 100).toFixed(0)} % of the MACs`)
 */
export function compareWithHeavyEveryStep(
  cost: RowCost,
  request: Pick<Generation['request'], 'count' | 'guidance' | 'steps'>,
  timings: NonNullable<Generation['timings']>,
  steps: readonly TimedStep[] = [],
): CostComparison {
  const rows = modelRows(request)
  const run: RunCost = {
    heavyCalls: timings.heavyCalls,
    lightCalls: timings.lightCalls,
    macs: timings.macs,
    ms: timings.wallMs,
  }
  const baselineMacs = rows * request.steps * (cost.heavyMacsPerRow + cost.lightMacsPerRow)
  const heavyStepMs = meanHeavyStepMs(steps)
  const heavyEveryStep: RunCost = {
    heavyCalls: request.steps,
    lightCalls: request.steps,
    macs: baselineMacs,
    ms:
      heavyStepMs === null
        ? run.macs > 0
          ? (run.ms * baselineMacs) / run.macs
          : 0
        : heavyStepMs * request.steps,
  }
  return { run, heavyEveryStep, timeBasis: heavyStepMs === null ? 'macs' : 'heavy-steps' }
}

/** Mean duration of the steps that ran the heavy encoder, or null when none was timed. */
export function meanHeavyStepMs(steps: readonly TimedStep[]): number | null {
  let total = 0
  let heavySteps = 0
  steps.forEach((step, index) => {
    if (!step.heavy) return
    total += step.elapsedMs - (index === 0 ? 0 : (steps[index - 1]?.elapsedMs ?? 0))
    heavySteps++
  })
  return heavySteps === 0 ? null : total / heavySteps
}

/**
 * A multiply-accumulate count for people: `1.23 GMAC`.
 *
 * @example
 * formatMacs(17_654_528) // '17.7 MMAC'
 */
export function formatMacs(macs: number): string {
  const units: [number, string][] = [
    [1e12, 'TMAC'],
    [1e9, 'GMAC'],
    [1e6, 'MMAC'],
    [1e3, 'kMAC'],
  ]
  for (const [scale, unit] of units) {
    if (macs >= scale) return `${(macs / scale).toPrecision(3)} ${unit}`
  }
  return `${macs} MAC`
}

/**
 * A duration for people: `840 ms`, `12.3 s`, `2 min 5 s`.
 *
 * @example
 * formatDuration(12_345) // '12.3 s'
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const seconds = Math.round(ms / 1000)
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`
}
