// Which active runs step on this tick: start-time fair queuing over the work each run has been given.
// Every run keeps a virtual time, the multiply-accumulates its model calls have cost since it was admitted
// plus the least virtual time among the runs active when it joined (so a newcomer neither waits for the
// others' history nor monopolizes the models until it catches up). A tick steps every run within one
// quantum of the least-served run: equal runs stay in step (and share calls), while a 128-row run that has
// had its share pauses until the small runs beside it catch up, so a one-image run is no longer paced by
// the large run's calls. A run's pixels do not depend on when it steps (each row depends only on its own
// inputs), so this changes latency only. (Fair queuing: Demers, Keshav, Shenker 1989; start-time fair
// queuing: Goyal, Vin, Cheng 1996.)

export interface ServedRun {
  /** Work given to this run so far, in MACs, on the shared virtual clock. */
  readonly virtualMacs: number
}

/**
 * The runs within `quantumMacs` of the least-served one, in their given order (never empty for a
 * non-empty input: the least-served run always steps).
 *
 * @example
 * dueRuns([{ virtualMacs: 0 }, { virtualMacs: 9e9 }], 1e9) // [{ virtualMacs: 0 }]
 */
export function dueRuns<Run extends ServedRun>(runs: readonly Run[], quantumMacs: number): Run[] {
  if (runs.length === 0) return []
  const least = Math.min(...runs.map((run) => run.virtualMacs))
  return runs.filter((run) => run.virtualMacs <= least + quantumMacs)
}

/**
 * Where a run joining `active` starts on the virtual clock: the least-served active run's time, or 0.
 *
 * @example
 * startingVirtualMacs([{ virtualMacs: 5e9 }, { virtualMacs: 2e9 }]) // 2e9
 */
export function startingVirtualMacs(active: readonly ServedRun[]): number {
  return active.length === 0 ? 0 : Math.min(...active.map((run) => run.virtualMacs))
}
