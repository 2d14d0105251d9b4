// Load-aware routing against real gpu-services on loopback (edge/scripts/local-stack.ts, two backends,
// BACKEND_ROUTING unset: `load`): the edge reads each service's GET /v1/load and sends no job to one that
// is draining. Which backend ran a job is read from the services' own `run ended` log lines (a run id
// begins with the first 24 digits of its job id).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runDirect } from '../../edge/scripts/direct-run.ts'
import { type LocalStack, startLocalStack } from '../../edge/scripts/local-stack.ts'
import { signedFetch } from '../../gpu-service/src/cli/run-client.ts'
import { type BackendLoad, loadResponseSchema } from '../../shared/run-protocol.ts'

/** Completed run ids by gpu-service name. */
const completed = new Map<string, string[]>()
/** Every POST /v1/runs a gpu-service logged, by name, as it arrived. */
const runPosts = new Map<string, number>()

function onLog(source: string, line: string): void {
  if (!source.startsWith('gpu-service') || !line.startsWith('{')) return
  const entry = JSON.parse(line) as {
    msg?: string
    runId?: string
    outcome?: string
    method?: string
    path?: string
  }
  if (entry.msg === 'request' && entry.method === 'POST' && entry.path === '/v1/runs') {
    runPosts.set(source, (runPosts.get(source) ?? 0) + 1)
  }
  if (entry.msg !== 'run ended' || entry.outcome !== 'completed' || !entry.runId) return
  completed.set(source, [...(completed.get(source) ?? []), entry.runId])
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('a fleet of two gpu-services behind the edge', () => {
  let stack: LocalStack
  beforeAll(async () => {
    stack = await startLocalStack({
      backends: [{ env: { DUALRATE_DRAIN_GRACE_MS: '120000' } }, {}],
      onLog,
    })
  })
  afterAll(() => stack?.stop())

  const loadOf = async (backendUrl: string): Promise<BackendLoad> => {
    const client = { baseUrl: backendUrl, secret: stack.backendSecret }
    const response = await signedFetch(client, 'GET', `/v1/load/${crypto.randomUUID()}`)
    return loadResponseSchema.parse(await response.json()).load
  }

  async function job(seed: number) {
    const response = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.apiKey}`,
        'content-type': 'application/json',
        prefer: 'wait=60',
      },
      body: JSON.stringify({ class: 3, steps: 10, seed }),
    })
    return (await response.json()) as {
      id: string
      status: string
      progress: { attempts: number }
    }
  }

  const ranOn = (name: string, jobId: string) =>
    (completed.get(name) ?? []).some((runId) => runId.startsWith(jobId.slice(0, 24)))

  it('sends no job to a gpu-service that is draining; its own runs finish there', async () => {
    const [first, second] = stack.backends
    if (!first || !second) throw new Error('two gpu-services expected')
    // A long run straight to the first service keeps it draining for a while after SIGTERM.
    const long = runDirect({
      backendUrl: first.url,
      secret: stack.backendSecret,
      request: {
        classIndex: 1,
        count: 4,
        steps: 300,
        heavySchedule: { every: 2 },
        guidance: 2,
        seed: 1,
        previewEvery: 0,
      },
    })
    await until(
      'the long run is active',
      async () => ((await loadOf(first.url)).activeRuns > 0 ? true : undefined),
      30_000,
    )
    first.kill('SIGTERM')
    expect(await loadOf(first.url)).toMatchObject({ draining: true, activeRuns: 1 })

    const seeds = Array.from(
      { length: 6 },
      (_, index) => 7_000_000 + (Date.now() % 100_000) + index,
    )
    const jobs: Awaited<ReturnType<typeof job>>[] = []
    for (const seed of seeds) jobs.push(await job(seed))
    expect(jobs.map((each) => each.status)).toEqual(seeds.map(() => 'succeeded'))
    // Not even tried there (a refused attempt would have failed over, with attempts 2).
    expect(jobs.map((each) => each.progress.attempts)).toEqual(seeds.map(() => 1))
    // The first service saw one POST /v1/runs: the long run's own.
    expect(runPosts.get(first.name)).toBe(1)
    // A `run ended` line is written as the result goes out; give the last one a moment to arrive.
    await until(
      'every job in the log of the second service',
      async () => (jobs.every((each) => ranOn(second.name, each.id)) ? true : undefined),
      2_000,
    )
    expect(jobs.filter((each) => ranOn(first.name, each.id))).toEqual([])
    // Draining let the run it had finish.
    expect((await long).images).toHaveLength(4)
  })
})
