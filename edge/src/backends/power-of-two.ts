// The power of two choices (Azar et al. 1994, "Balanced allocations"; Mitzenmacher 2001): draw two
// distinct backends at random and send the work to the less loaded one. Against a random pick the
// fullest of n bins drops from about log n / log log n to log log n, and, unlike always taking the least
// loaded, a stale load figure does not send a whole burst to the same backend (Mitzenmacher 2000, "How
// useful is old information?"). Weights scale both halves: a backend of
// weight 2 is drawn twice as often and its load counts half, so with equal loads it gets exactly twice
// the share (two candidates: ties are settled by a coin weighted the same way).

export interface Candidate {
  url: string
  /** Relative capacity (BACKEND_WEIGHTS), positive. */
  weight: number
  /** Estimated outstanding work (model rows queued and active); lower is better. */
  load: number
  /** The work would wait in this backend's queue: it loses to a candidate where it would not. */
  queues?: boolean
}

/**
 * The less loaded (per unit of weight) of two candidates drawn by weight, one where the work would not
 * wait in a queue before one where it would; undefined for none.
 *
 * @example
 * powerOfTwoChoices([{ url: a, weight: 1, load: 9 }, { url: b, weight: 1, load: 2 }]) // b
 */
export function powerOfTwoChoices(
  candidates: readonly Candidate[],
  random: () => number = Math.random,
): Candidate | undefined {
  if (candidates.length <= 1) return candidates[0]
  const first = weightedDraw(candidates, random)
  const second = weightedDraw(
    candidates.filter((candidate) => candidate !== first),
    random,
  )
  if (Boolean(first.queues) !== Boolean(second.queues)) return first.queues ? second : first
  const firstScore = first.load / first.weight
  const secondScore = second.load / second.weight
  if (firstScore !== secondScore) return firstScore < secondScore ? first : second
  return random() * (first.weight + second.weight) < first.weight ? first : second
}

/** One candidate, each with probability weight / total weight. */
function weightedDraw(candidates: readonly Candidate[], random: () => number): Candidate {
  const total = candidates.reduce((sum, candidate) => sum + candidate.weight, 0)
  let point = random() * total
  for (const candidate of candidates) {
    point -= candidate.weight
    if (point < 0) return candidate
  }
  // Rounding left a sliver past the last one.
  return candidates.at(-1) as Candidate
}
