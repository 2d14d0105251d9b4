// Jobs written straight into a Durable Object's storage, as a restarted isolate finds them: for tests of
// what a job does when it wakes (resume, migrate, time out, refuse a corrupt row).
import { evictDurableObject, runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import type { JobState } from '../../../edge/src/jobs/job-state.ts'
import { toHex } from '../../../shared/crypto.ts'
import { uniqueSeed } from './api.ts'
import { MODEL_ID } from './fake-backends.ts'

/** The owner (API key id) of every stored job made here. */
export const STORED_OWNER = 'f'.repeat(64)

/** A running one-owner job as version 2 stores it, with a fresh key. */
export function storedJob(overrides: Partial<JobState> = {}): JobState {
  const now = Date.now()
  return {
    version: 2,
    key: toHex(crypto.getRandomValues(new Uint8Array(32))),
    origin: 'https://edge.test',
    modelId: MODEL_ID,
    className: 'Coat',
    request: {
      classIndex: 4,
      count: 1,
      steps: 5,
      heavySchedule: { every: 2 },
      guidance: 2,
      seed: uniqueSeed(),
      previewEvery: 0,
    },
    status: 'running',
    run: 1,
    attempts: 1,
    step: 2,
    createdAt: now,
    startedAt: now,
    deadline: now + 60_000,
    owners: { [STORED_OWNER]: { joinedAt: now, fromEventId: 1, attached: true } },
    requestId: 'seeded',
    firstEventId: 1,
    ...overrides,
  }
}

/**
 * Writes `row` as the job row of the object named by its key, then evicts the object: its next call
 * loads the row, as after a restart.
 */
export async function seedStoredRow(row: Record<string, unknown>) {
  const stub = env.GENERATION_JOB.getByName(row.key as string)
  await runInDurableObject(stub, async (_instance, object) => {
    object.storage.sql.exec(
      'CREATE TABLE job (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)',
    )
    object.storage.sql.exec('INSERT INTO job (id, state) VALUES (1, ?)', JSON.stringify(row))
    await object.storage.setAlarm(Date.now() + 30_000)
  })
  await evictDurableObject(stub)
  return stub
}
