// What every fuzz file (test/fuzz/*.fuzz.test.ts, the "fuzz" vitest project) shares: how many cases and
// which seed, from the environment, and the check that a refusal is an RFC 9457 problem.
//
//   npm test         FUZZ_RUNS unset: 200 cases a property, seed 1 (FUZZ_SEED to change it)
//   npm run fuzz     FUZZ_RUNS=10000: a random seed unless FUZZ_SEED is set, printed either way
//
// A failure prints the seed and fast-check's counterexample path; FUZZ_SEED=<seed> repeats the run.
import type fc from 'fast-check'
import { expect } from 'vitest'
import { PROBLEM_CONTENT_TYPE, type Problem, problemSchema } from '../../shared/problem.ts'

export interface FuzzSettings {
  numRuns: number
  seed: number
}

const DEFAULT_RUNS = 200
const DEFAULT_SEED = 1

function wholeNumber(name: string, text: string): number {
  if (!/^-?\d+$/.test(text)) throw new Error(`${name} must be a whole number, got "${text}"`)
  return Number(text)
}

/**
 * Cases and seed from FUZZ_RUNS and FUZZ_SEED (see the file header).
 *
 * @example
 * fuzzSettings({ FUZZ_RUNS: '10000' }) // { numRuns: 10000, seed: <random> }
 */
export function fuzzSettings(env: Record<string, string | undefined> = process.env): FuzzSettings {
  const runs = env.FUZZ_RUNS ? wholeNumber('FUZZ_RUNS', env.FUZZ_RUNS) : undefined
  if (runs !== undefined && runs < 1) throw new Error(`FUZZ_RUNS must be at least 1, got ${runs}`)
  const seed = env.FUZZ_SEED
    ? wholeNumber('FUZZ_SEED', env.FUZZ_SEED)
    : runs === undefined
      ? DEFAULT_SEED
      : Math.floor(Math.random() * 0x7fff_ffff)
  return { numRuns: runs ?? DEFAULT_RUNS, seed }
}

/** This process's settings: one seed for every property of the run, random or not. */
const settingsFromEnv = fuzzSettings()

/**
 * fast-check parameters for one property, printing the seed so that a failure can be repeated.
 *
 * @example
 * await fc.assert(fc.asyncProperty(requests, check), fuzzParameters('POST /v1/runs bodies'))
 */
export function fuzzParameters(
  property: string,
  settings = settingsFromEnv,
): fc.Parameters<unknown> {
  console.log(
    `fuzz: ${property}: ${settings.numRuns} cases, seed ${settings.seed} ` +
      `(repeat: FUZZ_SEED=${settings.seed} FUZZ_RUNS=${settings.numRuns})`,
  )
  return { numRuns: settings.numRuns, seed: settings.seed }
}

/** A test timeout that grows with the number of cases: `msPerCase` each, and a minute to start. */
export function fuzzTimeoutMs(msPerCase: number, settings = settingsFromEnv): number {
  return 60_000 + settings.numRuns * msPerCase
}

/**
 * Checks that a response is a problem: `application/problem+json`, a body the shared schema accepts,
 * and the response's own status in it. Returns the problem (undefined for a HEAD answer, which has no
 * body).
 *
 * @example
 * if (response.status >= 400) await expectProblemJson(response)
 */
export async function expectProblemJson(
  response: Response,
  method = 'GET',
): Promise<Problem | undefined> {
  expect(response.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
  if (method.toUpperCase() === 'HEAD') return undefined
  const text = await response.text()
  const problem = problemSchema.parse(JSON.parse(text))
  expect(problem.status).toBe(response.status)
  return problem
}
