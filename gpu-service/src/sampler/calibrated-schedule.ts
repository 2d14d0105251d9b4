// Where to spend a budget of N heavy-encoder calls in an S-step run, given a measured cost of reusing
// stale features: cost(step, age) is what the light net's step loses when its features are `age` steps
// old (gpu-service/src/eval/reuse-cost.ts measures it). Uniform schedules ({ every: K }) spend calls
// evenly; where reuse hurts unevenly along the trajectory, an optimal placement does better at the same
// price. Pure: the measurement comes in, the placement goes out.

/** Measured loss of a light step at `step` that reuses features computed `age` (>= 1) steps earlier. */
export type ReuseCost = (step: number, age: number) => number

/** Where heavy calls may go. */
export interface PlacementRules {
  /**
   * Whether a budget below `steps` may spend a call on the last step. Measured: fresh features on the
   * last step cost FD (docs/eval/frontier.md: 4.61 with every step fresh against 4.23 without the
   * last, at seed 0), so the calibration leaves it out. A budget of every step includes it regardless.
   */
  lastStep: boolean
}

/**
 * The N heavy steps (sorted, from 0) that minimise the summed reuse cost of the other steps: exact, by
 * dynamic programming over (calls left, last heavy step), O(N S^2). Step 0 always runs the heavy
 * encoder, since the light net has no features before the first call.
 *
 * @example
 * placeHeavyCalls((step, age) => age * (step > 6 ? 10 : 1), 10, 2) // [0, 7]
 * placeHeavyCalls((_, age) => age, 6, 3, { lastStep: false }) // [0, 2, 4]: never step 5
 */
export function placeHeavyCalls(
  cost: ReuseCost,
  steps: number,
  calls: number,
  rules: PlacementRules = { lastStep: true },
): number[] {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps must be a positive integer, got ${steps}`)
  }
  if (!Number.isInteger(calls) || calls < 1 || calls > steps) {
    throw new RangeError(`calls must be an integer from 1 to ${steps}, got ${calls}`)
  }
  // Heavy calls go on steps below `end`.
  const end = rules.lastStep || calls === steps ? steps : steps - 1
  // span[j][k]: the cost of steps j+1 .. k-1 reusing step j's features (the next heavy call at k).
  const span = Array.from({ length: steps }, (_, j) => {
    const row = new Float64Array(steps + 1)
    for (let k = j + 2; k <= steps; k++) {
      row[k] = (row[k - 1] as number) + checked(cost, k - 1, k - 1 - j)
    }
    return row
  })
  // best[n][j]: the least cost of steps j .. S-1 with a heavy call at j and n more calls after it.
  const best = Array.from({ length: calls }, () => new Float64Array(steps).fill(Infinity))
  const next = Array.from({ length: calls }, () => new Int32Array(steps).fill(-1))
  for (let j = 0; j < end; j++)
    (best[0] as Float64Array)[j] = (span[j] as Float64Array)[steps] as number
  for (let n = 1; n < calls; n++) {
    const here = best[n] as Float64Array
    const after = best[n - 1] as Float64Array
    for (let j = 0; j + n < end; j++) {
      for (let k = j + 1; k + n - 1 < end; k++) {
        const total = ((span[j] as Float64Array)[k] as number) + (after[k] as number)
        if (total < (here[j] as number)) {
          here[j] = total
          ;(next[n] as Int32Array)[j] = k
        }
      }
    }
  }
  const placement = [0]
  for (let n = calls - 1, j = 0; n > 0; n--) {
    j = (next[n] as Int32Array)[j] as number
    placement.push(j)
  }
  return placement
}

/**
 * The summed reuse cost of a placement: what `placeHeavyCalls` minimises, for comparing schedules.
 *
 * @example
 * scheduleCost((step, age) => age, 4, [0, 2]) // steps 1 and 3 at age 1: 2
 */
export function scheduleCost(
  cost: ReuseCost,
  steps: number,
  heavySteps: readonly number[],
): number {
  const heavy = new Set(heavySteps)
  if (!heavy.has(0)) throw new RangeError('a placement must include step 0')
  let total = 0
  let last = 0
  for (let step = 1; step < steps; step++) {
    if (heavy.has(step)) last = step
    else total += checked(cost, step, step - last)
  }
  return total
}

function checked(cost: ReuseCost, step: number, age: number): number {
  const value = cost(step, age)
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `reuse cost at step ${step}, age ${age} must be finite and >= 0, got ${value}`,
    )
  }
  return value
}
