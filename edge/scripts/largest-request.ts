// `npm run measure:largest`: what the largest request the API accepts costs the edge, measured on the
// whole local stack on loopback (wrangler dev + a real gpu-service with the committed models): count 64,
// guidance 2 (128 rows a model call), 1,000 steps, a preview on every step. Reports the bytes a live
// SSE subscriber receives, the job's Durable Object storage on disk (wrangler dev keeps it as SQLite
// files under the state folder) during and after the run, what a late subscriber reads, the images in
// R2, and the resident memory of the edge's processes (wrangler + workerd) before, at peak and after.
// Writes docs/reliability/largest-request.json. A script, not a test: it takes minutes on two cores.
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { EventSourceParserStream } from 'eventsource-parser/stream'
import { startLocalStack } from './local-stack.ts'

const LARGEST = {
  class: 'Sneaker',
  count: 64,
  guidance: 2,
  steps: 1000,
  previewEvery: 1,
  seed: 64_000,
  heavySchedule: { every: 8 },
}
const OUT = 'docs/reliability/largest-request.json'
const MiB = 1024 * 1024
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits

/** Every file under `dir` whose path matches `pattern`, with its size. */
async function files(dir: string, pattern: RegExp): Promise<{ path: string; bytes: number }[]> {
  const found: { path: string; bytes: number }[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    if (pattern.test(path)) found.push({ path, bytes: (await stat(path)).size })
  }
  return found
}

/** Bytes of the job objects' SQLite files (database and write-ahead log). */
async function jobStorageBytes(statePath: string): Promise<number> {
  const stored = await files(statePath, /GenerationJob.*\.sqlite(-wal|-shm)?$/)
  return stored.reduce((sum, file) => sum + file.bytes, 0)
}

/** Reads an SSE response to its end: bytes, events by name, and the last event. */
async function readStream(response: Response) {
  let bytes = 0
  const counted = (response.body as ReadableStream<Uint8Array>).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytes += chunk.byteLength
        controller.enqueue(chunk)
      },
    }),
  )
  const events: Record<string, number> = {}
  let last = ''
  for await (const message of counted
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())) {
    const name = message.event ?? 'message'
    events[name] = (events[name] ?? 0) + 1
    last = name
  }
  return { bytes, events, last }
}

async function main(): Promise<void> {
  console.log('Starting the local stack (wrangler dev + gpu-service) on loopback…')
  const stack = await startLocalStack({
    // The largest request takes minutes on CPU; the production deadlines assume a GPU.
    backendEnv: { DUALRATE_RUN_DEADLINE_MS: '1800000' },
    edgeVars: { JOB_TIMEOUT_SECONDS: '1800' },
  })
  try {
    const edgeMemory = async () =>
      (await stack.memory()).find((process) => process.name === 'edge')?.rssBytes ?? 0
    const before = await edgeMemory()
    const storageBefore = await jobStorageBytes(stack.statePath)
    let peakMemory = before
    let peakStorage = storageBefore
    const sampler = setInterval(async () => {
      peakMemory = Math.max(peakMemory, await edgeMemory())
      peakStorage = Math.max(peakStorage, await jobStorageBytes(stack.statePath))
    }, 500)

    const authorization = `Bearer ${stack.apiKey}`
    const started = performance.now()
    const created = await fetch(`${stack.edgeUrl}/v1/generations`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify(LARGEST),
    })
    if (created.status !== 202) {
      throw new Error(`POST answered ${created.status}: ${await created.text()}`)
    }
    const { id } = (await created.json()) as { id: string }
    console.log(`Job ${id.slice(0, 12)}… accepted; following its events live…`)
    const live = await readStream(
      await fetch(`${stack.edgeUrl}/v1/generations/${id}/events`, { headers: { authorization } }),
    )
    const runSeconds = (performance.now() - started) / 1000
    clearInterval(sampler)
    if (live.last !== 'succeeded') throw new Error(`the job ended with ${live.last}`)

    const lateStarted = performance.now()
    const late = await readStream(
      await fetch(`${stack.edgeUrl}/v1/generations/${id}/events`, { headers: { authorization } }),
    )
    const lateMs = performance.now() - lateStarted
    // Give the memory a moment to settle after the run.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    const after = await edgeMemory()
    const storageAfter = await jobStorageBytes(stack.statePath)
    const r2 = await files(stack.statePath, /[/\\]r2[/\\]/)

    const report = {
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}`,
      command: 'npm run measure:largest',
      request: LARGEST,
      runSeconds: round(runSeconds),
      liveSubscriber: { mib: round(live.bytes / MiB, 2), events: live.events },
      lateSubscriber: {
        mib: round(late.bytes / MiB, 2),
        events: late.events,
        ms: Math.round(lateMs),
      },
      jobStorageMiB: {
        before: round(storageBefore / MiB, 2),
        peak: round(peakStorage / MiB, 2),
        after: round(storageAfter / MiB, 2),
      },
      r2MiB: round(r2.reduce((sum, file) => sum + file.bytes, 0) / MiB, 2),
      edgeRssMiB: {
        before: round(before / MiB),
        peak: round(peakMemory / MiB),
        after: round(after / MiB),
      },
      note:
        'jobStorageMiB: the SQLite files of the GenerationJob objects under wrangler dev state (page ' +
        'and WAL files; the WAL is checkpointed, not shrunk). edgeRssMiB: wrangler + workerd processes.',
    }
    await mkdir('docs/reliability', { recursive: true })
    await writeFile(OUT, `${JSON.stringify(report, null, 2)}\n`)
    console.log(JSON.stringify(report, null, 2))
    console.log(`Wrote ${OUT}`)
  } finally {
    await stack.stop()
  }
}

await main()
