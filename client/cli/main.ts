#!/usr/bin/env node
// `dual-rate`: the command-line client of the public API (package.json `bin`; `npx dual-rate ...` in this
// repository). generate / status / cancel / models; the API and key come from flags, the environment or
// the `.dev/local.json` that `npm start` writes.

import { parseArgs } from 'node:util'
import type { Generation, GenerationRequest, Model } from '../../shared/generation-api.ts'
import { describeHeavySchedule } from '../../shared/heavy-schedule.ts'
import type { HeavySchedule } from '../../shared/sampling-options.ts'
import { ApiClient } from '../api-client.ts'
import { formatDuration, formatMacs } from '../run-cost.ts'
import { type Connection, resolveConnection } from './connection.ts'
import { generate } from './generate.ts'
import { describeError, EXIT, UsageError } from './report-error.ts'

const USAGE = `usage: dual-rate <command> [options]

commands:
  generate --class NAME|INDEX [--model ID] [--steps N]
           [--heavy-every K | --heavy-calls N | --adaptive TOL] [--guidance W]
           [--seed S] [--count N] [-o FILE]
                                      run a generation with a progress bar, write the PNG
  status ID                           a generation's status, progress and result URLs
  cancel ID                           cancel a generation (stops the GPU work)
  models                              every model: classes, defaults, what it supports, costs

generate:
  --model ID       a model id as \`models\` lists it (default: the API's default model); a
                   distilled model takes only the steps, heavy schedule and guidance it lists,
                   and its own defaults for those left out
  --heavy-every K  the heavy encoder on every K-th step (1: every step, the baseline)
  --heavy-calls N  N heavy calls where the model's calibration placed them; only at a step
                   count \`models\` lists as calibrated (its calls line; e.g. --steps 50)
  --adaptive TOL   the run decides its heavy steps while sampling, refreshing once its x0
                   estimate has moved TOL (0 < TOL <= 1); at most every second step
                   (one heavy schedule at most; none: the model's default)

options:
  --api-base URL   the API (default: DUALRATE_API_BASE, then .dev/local.json from \`npm start\`)
  --api-key KEY    the API key (default: DUALRATE_API_KEY, then .dev/local.json)
  -h, --help       this text

Ctrl-C during generate cancels the job on the server.`

const options = {
  'api-base': { type: 'string' },
  'api-key': { type: 'string' },
  class: { type: 'string' },
  model: { type: 'string' },
  steps: { type: 'string' },
  'heavy-every': { type: 'string' },
  'heavy-calls': { type: 'string' },
  adaptive: { type: 'string' },
  guidance: { type: 'string' },
  seed: { type: 'string' },
  count: { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv)
  const [command, ...rest] = positionals
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return command === undefined && !values.help ? EXIT.usage : EXIT.ok
  }
  const connection = await resolveConnection({
    apiBase: values['api-base'],
    apiKey: values['api-key'],
  })
  const api = new ApiClient(connection)
  connectionForErrors = connection
  switch (command) {
    case 'generate':
      return withInterrupt((interrupt) =>
        generate(
          api,
          { request: generationRequest(values), output: values.output },
          { stdout: process.stdout, stderr: process.stderr, interrupt },
        ),
      )
    case 'status':
      printGeneration(await api.getGeneration(requireId(rest, 'status')))
      return EXIT.ok
    case 'cancel':
      printGeneration(await api.cancelGeneration(requireId(rest, 'cancel')))
      return EXIT.ok
    case 'models':
      for (const [index, model] of (await api.listModels()).entries()) {
        if (index > 0) process.stdout.write('\n')
        printModel(model)
      }
      return EXIT.ok
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
  }
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true })
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${USAGE}`)
  }
}

/** The request body from the flags; ranges are left to the API, which answers with every bad field. */
function generationRequest(values: Record<string, string | boolean | undefined>) {
  const text = (name: string) => values[name] as string | undefined
  const className = text('class')
  if (!className)
    throw new UsageError('generate needs --class (a class name or index; see `models`)')
  const number = (name: string): number | undefined => {
    const value = text(name)
    if (value === undefined) return undefined
    const parsed = Number(value)
    if (value.trim() === '' || !Number.isFinite(parsed)) {
      throw new UsageError(`--${name} must be a number, not ${JSON.stringify(value)}`)
    }
    return parsed
  }
  const request: GenerationRequest = {
    class: /^\d+$/.test(className) ? Number(className) : className,
  }
  // Checked by the API, which names the field and lists the models when it does not know the id.
  const model = text('model')
  if (model !== undefined) request.model = model
  const fields = {
    steps: number('steps'),
    guidance: number('guidance'),
    seed: number('seed'),
    count: number('count'),
    heavySchedule: heavySchedule(text, number),
  }
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) Object.assign(request, { [name]: value })
  }
  return request
}

/** The heavy-schedule flags, each with the schedule it asks for. */
const HEAVY_SCHEDULE_FLAGS = {
  'heavy-every': (every: number): HeavySchedule => ({ every }),
  'heavy-calls': (calls: number): HeavySchedule => ({ calls }),
  adaptive: (tolerance: number): HeavySchedule => ({ adaptive: { tolerance } }),
} as const

/** The schedule of the one heavy-schedule flag given, or undefined (the model's default) for none. */
function heavySchedule(
  text: (name: string) => string | undefined,
  number: (name: string) => number | undefined,
): HeavySchedule | undefined {
  const flags = Object.keys(HEAVY_SCHEDULE_FLAGS) as (keyof typeof HEAVY_SCHEDULE_FLAGS)[]
  const given = flags.filter((flag) => text(flag) !== undefined)
  if (given.length > 1) {
    throw new UsageError(
      `generate takes one heavy schedule at most, not ${given.map((flag) => `--${flag}`).join(' and ')} ` +
        '(--heavy-every K, --heavy-calls N or --adaptive TOL)',
    )
  }
  const [flag] = given
  return flag === undefined ? undefined : HEAVY_SCHEDULE_FLAGS[flag](number(flag) as number)
}

function requireId(rest: string[], command: string): string {
  const [id] = rest
  if (!id) throw new UsageError(`${command} needs a generation id: dual-rate ${command} ID`)
  return id
}

function printGeneration(generation: Generation): void {
  const { request, progress, timings } = generation
  const lines = [
    `id        ${generation.id}`,
    `status    ${generation.status}`,
    `progress  ${progress.step}/${progress.totalSteps} steps (${progress.attempts} backend attempt(s))`,
    `model     ${generation.modelId}`,
    `request   ${request.className}, ${request.count} image(s), ${request.steps} steps, heavy ${JSON.stringify(request.heavySchedule)}, guidance ${request.guidance}, seed ${request.seed}`,
  ]
  if (timings) {
    lines.push(
      `timings   ${timings.heavyCalls} heavy + ${timings.lightCalls} light calls, ${formatMacs(timings.macs)}, ${formatDuration(timings.wallMs)}`,
    )
  }
  if (generation.error) {
    lines.push(
      `error     ${generation.error.title}${generation.error.detail ? `: ${generation.error.detail}` : ''}`,
    )
  }
  for (const url of generation.urls.images ?? []) lines.push(`image     ${url}`)
  process.stdout.write(`${lines.join('\n')}\n`)
}

function printModel(model: Model): void {
  const { defaults, limits, cost, supports } = model
  const lines = [
    `model     ${model.id}${model.default ? ' (default)' : ''}, ${model.image.width}x${model.image.height}, ${model.image.channels} channel`,
  ]
  if (model.description) lines.push(`about     ${model.description}`)
  if (model.teacherModelId) lines.push(`teacher   ${model.teacherModelId}`)
  lines.push(
    `classes   ${model.classes.map((entry) => `${entry.index} ${entry.name}`).join(', ')}`,
    `defaults  ${defaults.steps} steps, heavy ${describeHeavySchedule(defaults.heavySchedule)}, guidance ${defaults.guidance}`,
  )
  if (model.calibratedSteps?.length) {
    lines.push(
      `calls     calibrated heavy placements at ${model.calibratedSteps.join(', ')} steps (--heavy-calls N)`,
    )
  }
  if (supports) {
    const placements = Object.entries(supports.heavySteps).map(
      ([steps, allowed]) =>
        `at ${steps} steps heavy at ${allowed.map((steps) => `[${steps.join(',')}]`).join(' or ')}`,
    )
    lines.push(
      `supports  steps ${supports.steps.join(' or ')}; ${placements.join('; ')}; guidance ${supports.guidance.join(' or ')}`,
    )
  } else {
    lines.push(
      `limits    count <= ${limits.maxCount}, steps <= ${limits.maxSteps}, guidance <= ${limits.maxGuidance}`,
    )
  }
  lines.push(
    `cost      heavy ${formatMacs(cost.heavyMacsPerRow)}, light ${formatMacs(cost.lightMacsPerRow)} per image row and call; ${formatMacs(cost.macsPerImage)} per image at the defaults`,
  )
  process.stdout.write(`${lines.join('\n')}\n`)
}

/** Runs `action` with a signal that the first Ctrl-C aborts; a second Ctrl-C exits at once. */
async function withInterrupt(action: (interrupt: AbortSignal) => Promise<number>): Promise<number> {
  const controller = new AbortController()
  const onInterrupt = () => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted)
    controller.abort()
  }
  process.on('SIGINT', onInterrupt)
  try {
    return await action(controller.signal)
  } finally {
    process.off('SIGINT', onInterrupt)
  }
}

let connectionForErrors: Connection | undefined

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  const { lines, exitCode } = describeError(error, connectionForErrors?.apiBase)
  process.stderr.write(`${lines.join('\n')}\n`)
  process.exitCode = exitCode
}
