// `dual-rate generate`: submit a generation, follow its SSE stream with a progress bar, write the PNG(s),
// print the cached result URL(s). An interrupt (Ctrl-C) cancels the job on the server, which stops the
// GPU work, before the command exits.

import { writeFile } from 'node:fs/promises'
import type { Generation, GenerationRequest } from '../../shared/generation-api.ts'
import { describeHeavySchedule } from '../../shared/heavy-schedule.ts'
import { type ApiClient, ApiProblemError } from '../api-client.ts'
import {
  compareWithHeavyEveryStep,
  formatDuration,
  formatMacs,
  type TimedStep,
} from '../run-cost.ts'
import { createProgressBar, type ProgressBar } from './progress-bar.ts'
import { EXIT } from './report-error.ts'

export interface GenerateIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WriteStream
  /** Aborted when the user interrupts (Ctrl-C). */
  interrupt: AbortSignal
}

/**
 * Runs one generation to its end and writes its images; returns the exit status.
 *
 * @example
 * const exitCode = await generate(api, { request: { class: 'Sneaker', seed: 7 } }, io)
 */
export async function generate(
  api: ApiClient,
  { request, output }: { request: GenerationRequest; output?: string | undefined },
  io: GenerateIo,
): Promise<number> {
  const models = await api.listModels()
  // Not aborted by an interrupt: a job created while the user pressed Ctrl-C must still be cancelled.
  const { cached, generation } = await api.createGeneration(request)
  const { id } = generation
  // The per-call costs of the model the job runs on (the one named, or the default).
  const model = models.find((entry) => entry.id === generation.modelId)
  const label = `${generation.request.className} #${generation.request.seed}`
  const say = (line: string) => io.stderr.write(`${line}\n`)
  say(
    `${label}: ${describeRequest(generation.request)}, model ${generation.modelId} (job ${id.slice(0, 12)}…)`,
  )

  let images = generation.urls.images ?? []
  let timings = generation.timings
  const steps: TimedStep[] = []
  if (cached) {
    say('served from cache: no GPU work')
  } else {
    const bar = createProgressBar(io.stderr)
    const outcome = await follow(api, id, generation.request.steps, label, bar, steps, io)
    bar.stop()
    if (outcome.kind === 'interrupted') {
      say(`cancelling ${id.slice(0, 12)}… on the server`)
      const canceled = await api.cancelGeneration(id)
      say(
        `canceled after ${canceled.progress.step} of ${canceled.progress.totalSteps} steps (status ${canceled.status})`,
      )
      return EXIT.interrupted
    }
    if (outcome.kind === 'canceled') {
      say('the job was canceled (by another caller of the same request)')
      return EXIT.failed
    }
    if (outcome.kind === 'failed') throw new ApiProblemError(outcome.problem)
    images = outcome.images
    timings = outcome.timings
  }

  const paths = outputPaths(output ?? defaultOutput(generation.request), images.length)
  for (const [index, url] of images.entries()) {
    const response = await fetch(url)
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`)
    await writeFile(paths[index] as string, new Uint8Array(await response.arrayBuffer()))
  }
  say(`wrote ${paths.join(', ')}`)
  if (timings) say(describeHeavyCalls(generation.request, timings.heavyCalls))
  if (timings && model) {
    const { run, heavyEveryStep, timeBasis } = compareWithHeavyEveryStep(
      model.cost,
      generation.request,
      timings,
      steps,
    )
    const share = (part: number, whole: number) =>
      whole > 0 ? `${Math.round((100 * part) / whole)} %` : 'n/a'
    say(
      `cost: ${run.heavyCalls} heavy + ${run.lightCalls} light calls, ${formatMacs(run.macs)} ` +
        `(${share(run.macs, heavyEveryStep.macs)} of heavy-every-step's ${formatMacs(heavyEveryStep.macs)}), ` +
        `${formatDuration(run.ms)} (heavy every step: ~${formatDuration(heavyEveryStep.ms)}, ` +
        `estimated from ${timeBasis === 'heavy-steps' ? "this run's heavy steps" : 'MACs'})`,
    )
  }
  for (const url of images) io.stdout.write(`${url}\n`)
  return EXIT.ok
}

type Outcome =
  | { kind: 'succeeded'; images: string[]; timings: NonNullable<Generation['timings']> }
  | { kind: 'failed'; problem: ApiProblemError['problem'] }
  | { kind: 'canceled' }
  | { kind: 'interrupted' }

async function follow(
  api: ApiClient,
  id: string,
  totalSteps: number,
  label: string,
  bar: ProgressBar,
  steps: TimedStep[],
  io: GenerateIo,
): Promise<Outcome> {
  bar.start(totalSteps, label)
  let heavyCalls = 0
  try {
    for await (const event of api.streamEvents(id, { signal: io.interrupt })) {
      switch (event.name) {
        case 'step':
          // The backend's own count of this attempt's heavy calls; older backends send none.
          heavyCalls = event.data.heavyCalls ?? heavyCalls + (event.data.heavy ? 1 : 0)
          steps[event.data.step] = { heavy: event.data.heavy, elapsedMs: event.data.elapsedMs }
          bar.update({
            stepsDone: event.data.step + 1,
            totalSteps: event.data.totalSteps,
            heavyCalls,
          })
          break
        case 'retrying':
          bar.note(
            event.data.reason === 'backend-failed'
              ? `a GPU backend failed; retrying elsewhere (attempt ${event.data.attempt})`
              : `the job restarted; resuming (attempt ${event.data.attempt})`,
          )
          break
        case 'started':
          // A new attempt (failover to another backend) starts the steps again.
          heavyCalls = 0
          steps.length = 0
          bar.update({ stepsDone: 0, totalSteps, heavyCalls })
          break
        case 'succeeded':
          return { kind: 'succeeded', images: event.data.images, timings: event.data.timings }
        case 'failed':
          return { kind: 'failed', problem: event.data.problem }
        case 'canceled':
          return { kind: 'canceled' }
      }
    }
  } catch (error) {
    if (io.interrupt.aborted) return { kind: 'interrupted' }
    throw error
  }
  return io.interrupt.aborted ? { kind: 'interrupted' } : { kind: 'canceled' }
}

function describeRequest(request: Generation['request']): string {
  const schedule = `heavy ${describeHeavySchedule(request.heavySchedule)}`
  const count = request.count === 1 ? '' : `${request.count} images, `
  return `${count}${request.steps} steps, ${schedule}, guidance ${request.guidance}, seed ${request.seed}`
}

/**
 * How often the heavy encoder ran, against the steps and the schedule asked for: what a calibrated or
 * adaptive schedule spent is known only from the run.
 *
 * @example
 * describeHeavyCalls({ steps: 50, heavySchedule: { adaptive: { tolerance: 0.05 } } }, 9)
 * // 'heavy encoder: 9 calls in 50 steps (adaptive, tolerance 0.05)'
 */
export function describeHeavyCalls(
  request: Pick<Generation['request'], 'steps' | 'heavySchedule'>,
  heavyCalls: number,
): string {
  const calls = `${heavyCalls} call${heavyCalls === 1 ? '' : 's'}`
  return `heavy encoder: ${calls} in ${request.steps} steps (${describeHeavySchedule(request.heavySchedule)})`
}

/** `sneaker-7.png` for class "Sneaker" and seed 7. */
function defaultOutput(request: Generation['request']): string {
  const slug = request.className.toLowerCase().replace(/[^a-z0-9]+/g, '-')
  return `${slug}-${request.seed}.png`
}

/** One path per image: the path itself for one image, `name-0.png`, `name-1.png`, ... for several. */
export function outputPaths(output: string, count: number): string[] {
  if (count <= 1) return [output]
  const dot = output.toLowerCase().endsWith('.png') ? output.length - 4 : output.length
  return Array.from(
    { length: count },
    (_, index) => `${output.slice(0, dot)}-${index}${output.slice(dot)}`,
  )
}
