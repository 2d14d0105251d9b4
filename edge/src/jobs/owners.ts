// The owners of a job (the API keys that asked for it) as pure functions over its state: what an owner
// sees once the job ends for it, and how the bounded owner list makes room.
import type { TerminalStatus } from '../../../shared/generation-api.ts'
import type { JobState, OwnerOutcome } from './job-state.ts'

/** Owners one job remembers; past it the longest-detached owner is forgotten to make room. */
export const MAX_OWNERS_PER_JOB = 256

/**
 * What an owner attached to the current run sees once it ends with `eventId`: a snapshot, so a later
 * run of the same job does not change how this one ended for it.
 *
 * @example
 * owner.outcome = outcomeOf(state, event.id)
 */
export function outcomeOf(state: JobState, eventId: number): OwnerOutcome {
  const outcome: OwnerOutcome = {
    status: state.status as TerminalStatus,
    eventId,
    finishedAt: state.finishedAt ?? Date.now(),
    step: state.step,
    attempts: state.attempts,
  }
  if (state.startedAt !== undefined) outcome.startedAt = state.startedAt
  if (state.timings) outcome.timings = state.timings
  if (state.error) outcome.error = state.error
  return outcome
}

/**
 * True when `owner` is or can become an owner: there is room, or the longest-detached owner is
 * forgotten to make it (an active owner is never dropped; the caller refuses when all are active).
 *
 * @example
 * if (!makeRoomForOwner(state, apiKeyId)) return { kind: 'busy', reason: 'owners' }
 */
export function makeRoomForOwner(state: JobState, owner: string): boolean {
  const entries = Object.entries(state.owners)
  if (state.owners[owner] || entries.length < MAX_OWNERS_PER_JOB) return true
  const detached = entries
    .filter(([, entry]) => !entry.attached)
    .sort(([, a], [, b]) => (a.outcome?.finishedAt ?? 0) - (b.outcome?.finishedAt ?? 0))[0]
  if (!detached) return false
  delete state.owners[detached[0]]
  return true
}

/** The ids of the owners still following the current run. */
export function attachedOwners(state: JobState): string[] {
  return Object.entries(state.owners)
    .filter(([, entry]) => entry.attached)
    .map(([id]) => id)
}
