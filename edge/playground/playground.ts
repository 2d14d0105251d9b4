// The playground page's script (bundled by edge/scripts/build-playground.ts): pick a model and the
// options (prefilled with the model's defaults and, for a distilled model, held to what it supports),
// the heavy schedule among every K steps, N calibrated calls and adaptive, run a generation through the
// public API with the typed client, show its live previews, which steps ran the heavy encoder and how
// many heavy calls it made, then the result enlarged, its cached URL, and its cost against
// heavy-every-step.

import { ApiClient, ApiProblemError, type GenerationEvent } from '../../client/api-client.ts'
import {
  compareWithHeavyEveryStep,
  formatDuration,
  formatMacs,
  type TimedStep,
} from '../../client/run-cost.ts'
import type { Generation, GenerationRequest, Model } from '../../shared/generation-api.ts'
import { describeHeavySchedule, heavySteps } from '../../shared/heavy-schedule.ts'
import type { Problem } from '../../shared/problem.ts'
import type { HeavySchedule } from '../../shared/sampling-options.ts'

const KEY_STORAGE = 'dualrate.apiKey'
/** The fragment parameter of the link `npm start` prints: `/#key=dr_…`. */
const KEY_FRAGMENT = 'key'
/** Previews per run: about ten, whatever the step count. */
const PREVIEWS_PER_RUN = 10
/**
 * The adaptive tolerance the field starts at: the middle of the tolerances `npm run frontier` measures
 * by default (0.003 to 0.05).
 */
const DEFAULT_ADAPTIVE_TOLERANCE = 0.02

/** The kinds of heavy schedule the page offers, as the Heavy schedule choice's option values. */
type HeavyKind = 'every' | 'calls' | 'adaptive'

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`the page has no #${id}`)
  return found as T
}

const ui = {
  modelId: element('model-id'),
  keyForm: element<HTMLFormElement>('key-form'),
  keyInput: element<HTMLInputElement>('api-key'),
  forgetKey: element<HTMLButtonElement>('forget-key'),
  keyStatus: element('key-status'),
  form: element<HTMLFormElement>('generate-form'),
  modelSelect: element<HTMLSelectElement>('model'),
  modelHelp: element('model-help'),
  classSelect: element<HTMLSelectElement>('class'),
  steps: element<HTMLInputElement>('steps'),
  stepsAllowed: element<HTMLDataListElement>('steps-allowed'),
  stepsHelp: element('steps-help'),
  heavyKind: element<HTMLSelectElement>('heavy-kind'),
  heavyKindHelp: element('heavy-kind-help'),
  heavyRows: [...document.querySelectorAll<HTMLElement>('[data-heavy-kind]')],
  heavyEvery: element<HTMLInputElement>('heavy-every'),
  heavyEveryAllowed: element<HTMLDataListElement>('heavy-every-allowed'),
  heavyEveryHelp: element('heavy-every-help'),
  heavyCalls: element<HTMLInputElement>('heavy-calls'),
  adaptiveTolerance: element<HTMLInputElement>('adaptive-tolerance'),
  guidance: element<HTMLInputElement>('guidance'),
  guidanceAllowed: element<HTMLDataListElement>('guidance-allowed'),
  guidanceHelp: element('guidance-help'),
  seed: element<HTMLInputElement>('seed'),
  generate: element<HTMLButtonElement>('generate'),
  cancel: element<HTMLButtonElement>('cancel'),
  error: element('error'),
  run: element('run'),
  runSummary: element('run-summary'),
  progress: element<HTMLProgressElement>('progress'),
  progressText: element('progress-text'),
  strip: element<HTMLOListElement>('step-strip'),
  heavySteps: element('heavy-steps'),
  previews: element<HTMLOListElement>('previews'),
  result: element('result'),
  resultImage: element<HTMLImageElement>('result-image'),
  resultCaption: element('result-caption'),
  resultUrl: element('result-url'),
  costRows: element<HTMLTableSectionElement>('cost-rows'),
  costNote: element('cost-note'),
}

/** Every model GET /v1/models lists, the default first. */
let models: Model[] = []
/** The model chosen in the form. */
let model: Model | undefined
/**
 * The heavy-schedule kind the user chose. The form shows every K steps instead while the choice is not
 * available (calibrated calls at a step count without placements), and the choice again once it is.
 */
let chosenHeavyKind: HeavyKind = 'every'
/** The fields' own help texts, which a model's constraints are added to. */
const baseHelp = {
  heavyEvery: ui.heavyEveryHelp.textContent ?? '',
  guidance: ui.guidanceHelp.textContent ?? '',
}
/** The generation being followed, so Cancel can stop it. */
let current: { id: string } | undefined

const storedKey = () => localStorage.getItem(KEY_STORAGE) ?? ''
const client = () => new ApiClient({ apiBase: location.origin, apiKey: storedKey() })

async function start(): Promise<void> {
  const linked = takeKeyFromFragment()
  ui.keyInput.value = storedKey()
  showKeyStatus(linked ? 'Key from the link saved in this browser.' : undefined)
  ui.keyForm.addEventListener('submit', (event) => {
    event.preventDefault()
    localStorage.setItem(KEY_STORAGE, ui.keyInput.value.trim())
    showKeyStatus('Key saved in this browser.')
  })
  ui.forgetKey.addEventListener('click', () => {
    localStorage.removeItem(KEY_STORAGE)
    ui.keyInput.value = ''
    showKeyStatus('Key removed from this browser.')
  })
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault()
    void generate()
  })
  ui.cancel.addEventListener('click', () => void cancel())
  ui.modelSelect.addEventListener('change', () => {
    const chosen = models.find((entry) => entry.id === ui.modelSelect.value)
    if (chosen) chooseModel(chosen)
  })
  // A distilled model's heavy placements, and where calibrated calls work, depend on the step count.
  ui.steps.addEventListener('input', () => {
    if (!model) return
    constrainHeavyEvery(model)
    showHeavyKinds(model)
  })
  ui.heavyKind.addEventListener('change', () => {
    chosenHeavyKind = ui.heavyKind.value as HeavyKind
    if (model) showHeavyKinds(model)
  })

  try {
    models = await client().listModels()
  } catch (error) {
    showError(error)
    return
  }
  const initial = models.find((entry) => entry.default) ?? models[0]
  if (!initial) return
  for (const entry of models) {
    const label = `${entry.id}${entry.default ? ' (default)' : ''}`
    ui.modelSelect.add(new Option(label, entry.id))
  }
  chooseModel(initial)
  ui.classSelect.value = String(
    initial.classes.find((entry) => entry.name === 'Sneaker')?.index ?? 0,
  )
  ui.generate.disabled = false
}

/**
 * Shows a model's classes and fills the options with its defaults; for a distilled model, holds each
 * option to the values it supports (a single value is fixed, several are offered as suggestions) and
 * says which in the field's help. The API refuses anything else with 400 naming the field.
 */
function chooseModel(chosen: Model): void {
  model = chosen
  ui.modelSelect.value = chosen.id
  ui.modelId.textContent = chosen.id
  const selectedClass = ui.classSelect.value
  ui.classSelect.replaceChildren(
    ...chosen.classes.map((entry) => new Option(entry.name, String(entry.index))),
  )
  if (chosen.classes.some((entry) => String(entry.index) === selectedClass)) {
    ui.classSelect.value = selectedClass
  }
  const { defaults, limits, supports } = chosen
  ui.steps.value = String(defaults.steps)
  // Every K prefilled at the default's cost where it has one: K itself, or about as many calls.
  ui.heavyEvery.value = String(
    'every' in defaults.heavySchedule
      ? defaults.heavySchedule.every
      : 'calls' in defaults.heavySchedule
        ? Math.ceil(defaults.steps / defaults.heavySchedule.calls)
        : 1,
  )
  chosenHeavyKind = heavyKindOf(defaults.heavySchedule)
  // As many calibrated calls as the default schedule makes, so the two compare at equal cost.
  ui.heavyCalls.value = String(
    'calls' in defaults.heavySchedule
      ? defaults.heavySchedule.calls
      : 'adaptive' in defaults.heavySchedule
        ? defaults.steps
        : heavySteps(defaults.heavySchedule, defaults.steps).length,
  )
  ui.adaptiveTolerance.value = String(
    'adaptive' in defaults.heavySchedule
      ? defaults.heavySchedule.adaptive.tolerance
      : DEFAULT_ADAPTIVE_TOLERANCE,
  )
  ui.guidance.value = String(defaults.guidance)
  ui.seed.max = String(limits.maxSeed)
  constrain(ui.steps, ui.stepsAllowed, supports?.steps, { min: 1, max: limits.maxSteps })
  ui.stepsHelp.textContent = supports ? `This model samples with ${list(supports.steps)} only.` : ''
  constrain(ui.guidance, ui.guidanceAllowed, supports?.guidance, {
    min: 0,
    max: limits.maxGuidance,
  })
  ui.guidanceHelp.textContent = supports
    ? `${baseHelp.guidance} This model was distilled at ${list(supports.guidance)} only.`
    : baseHelp.guidance
  constrainHeavyEvery(chosen)
  showHeavyKinds(chosen)
  const parts = [
    chosen.description,
    chosen.teacherModelId && `Distilled from ${chosen.teacherModelId}.`,
    `${formatMacs(chosen.cost.macsPerImage)} per image at its defaults.`,
  ]
  ui.modelHelp.textContent = parts.filter(Boolean).join(' ')
}

/**
 * The heavy-every-K values a distilled model supports at this step count (every K from 1 to the step
 * count whose heavy steps are one of its placements); undefined for a model that takes any.
 */
function supportedHeavyEvery(chosen: Model, steps: number): number[] | undefined {
  if (!chosen.supports) return undefined
  if (!Number.isInteger(steps) || steps < 1) return []
  const placements = new Set(
    (chosen.supports.heavySteps[String(steps)] ?? []).map((placement) => placement.join()),
  )
  return Array.from({ length: steps }, (_, index) => index + 1).filter((every) =>
    placements.has(heavySteps({ every }, steps).join()),
  )
}

function constrainHeavyEvery(chosen: Model): void {
  const allowed = supportedHeavyEvery(chosen, Number(ui.steps.value))
  constrain(ui.heavyEvery, ui.heavyEveryAllowed, allowed?.length ? allowed : undefined, {
    min: 1,
    max: chosen.limits.maxSteps,
  })
  ui.heavyEveryHelp.textContent =
    allowed === undefined
      ? baseHelp.heavyEvery
      : allowed.length === 0
        ? `This model runs no heavy schedule at ${ui.steps.value} steps.`
        : `This model runs it every ${list(allowed)} steps at ${ui.steps.value} steps.`
  if (allowed?.length && !allowed.includes(Number(ui.heavyEvery.value))) {
    ui.heavyEvery.value = String(allowed[0])
  }
}

function heavyKindOf(schedule: HeavySchedule): HeavyKind {
  if ('calls' in schedule) return 'calls'
  if ('adaptive' in schedule) return 'adaptive'
  return 'every'
}

/**
 * Which heavy-schedule kinds the model runs at this step count: a distilled model only the placements
 * it was distilled for (every K steps); another model calibrated calls only at a step count it has
 * calibrated placements for (`calibratedSteps`), adaptive always.
 */
function availableHeavyKinds(chosen: Model, steps: number): Record<HeavyKind, boolean> {
  return {
    every: true,
    calls: !chosen.supports && (chosen.calibratedSteps ?? []).includes(steps),
    adaptive: !chosen.supports,
  }
}

/**
 * Enables the kinds the model runs at the current step count, shows the chosen kind's field (every K
 * steps while the choice is not available) and says in the choice's help where calibrated calls work.
 */
function showHeavyKinds(chosen: Model): void {
  const available = availableHeavyKinds(chosen, Number(ui.steps.value))
  for (const option of ui.heavyKind.options) {
    option.disabled = !available[option.value as HeavyKind]
  }
  const shown = available[chosenHeavyKind] ? chosenHeavyKind : 'every'
  ui.heavyKind.value = shown
  for (const row of ui.heavyRows) row.hidden = row.dataset.heavyKind !== shown
  ui.heavyCalls.max = ui.steps.value
  const calibrated = chosen.calibratedSteps ?? []
  ui.heavyKindHelp.textContent = chosen.supports
    ? 'This model runs only the heavy placements it was distilled for: every K steps.'
    : calibrated.length > 0
      ? `Calibrated calls work at ${list(calibrated)} steps only, where this model has calibrated placements.`
      : 'This model has no calibrated placements: calibrated calls are off.'
}

/**
 * Holds a number input to `allowed` (its range, suggested values, fixed when there is one) or, without
 * a list, to the API's limits.
 */
function constrain(
  input: HTMLInputElement,
  suggestions: HTMLDataListElement,
  allowed: readonly number[] | undefined,
  limits: { min: number; max: number },
): void {
  input.min = String(allowed ? Math.min(...allowed) : limits.min)
  input.max = String(allowed ? Math.max(...allowed) : limits.max)
  input.readOnly = allowed?.length === 1
  if (allowed?.length === 1) input.value = String(allowed[0])
  suggestions.replaceChildren(...(allowed ?? []).map((value) => new Option('', String(value))))
}

/** `8`, `2 or 8`, `1, 2 or 4`. */
function list(values: readonly number[]): string {
  if (values.length <= 1) return values.join('')
  return `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`
}

/**
 * Saves a key passed as `#key=…` (the link `npm start` prints; a browser never sends the fragment to a
 * server) and removes it from the address bar and this history entry. True when there was one.
 */
function takeKeyFromFragment(): boolean {
  const fragment = new URLSearchParams(location.hash.slice(1))
  const key = fragment.get(KEY_FRAGMENT)?.trim()
  if (key === undefined) return false
  fragment.delete(KEY_FRAGMENT)
  const rest = fragment.toString()
  history.replaceState(
    history.state,
    '',
    `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`,
  )
  if (!key) return false
  localStorage.setItem(KEY_STORAGE, key)
  return true
}

function showKeyStatus(message?: string): void {
  ui.keyStatus.textContent =
    message ?? (storedKey() ? 'A key is saved in this browser.' : 'No key saved yet.')
}

function readRequest(): GenerationRequest {
  const number = (input: HTMLInputElement) => Number(input.value)
  const steps = number(ui.steps)
  const request: GenerationRequest = {
    class: Number(ui.classSelect.value),
    steps,
    heavySchedule: readHeavySchedule(),
    guidance: number(ui.guidance),
    previewEvery: Math.max(1, Math.round(steps / PREVIEWS_PER_RUN)),
  }
  if (ui.seed.value.trim() !== '') request.seed = number(ui.seed)
  // The default model needs no name (a request naming it gets the same result).
  if (model && !model.default) request.model = model.id
  return request
}

/** The schedule of the kind shown, from its field. */
function readHeavySchedule(): HeavySchedule {
  switch (ui.heavyKind.value as HeavyKind) {
    case 'calls':
      return { calls: Number(ui.heavyCalls.value) }
    case 'adaptive':
      return { adaptive: { tolerance: Number(ui.adaptiveTolerance.value) } }
    default:
      return { every: Number(ui.heavyEvery.value) }
  }
}

async function generate(): Promise<void> {
  hideError()
  if (!storedKey()) {
    showProblem({
      type: 'about:blank',
      status: 401,
      title: 'No API key',
      detail: 'Enter your API key above and save it first.',
    })
    ui.keyInput.focus()
    return
  }
  const request = readRequest()
  ui.generate.disabled = true
  ui.result.hidden = true
  try {
    const api = client()
    const { cached, generation } = await api.createGeneration(request)
    current = { id: generation.id }
    resetRun(generation)
    if (cached) {
      markAllSteps(generation)
      ui.runSummary.textContent = `${describe(generation)}: served from cache, no GPU work.`
      showResult(generation, generation.urls.images ?? [], generation.timings, [])
      return
    }
    ui.cancel.disabled = false
    await follow(api, generation)
  } catch (error) {
    showError(error)
  } finally {
    current = undefined
    ui.generate.disabled = false
    ui.cancel.disabled = true
  }
}

async function follow(api: ApiClient, generation: Generation): Promise<void> {
  const total = generation.request.steps
  let steps: TimedStep[] = []
  const render = (event: GenerationEvent) => {
    switch (event.name) {
      case 'queued':
        ui.progressText.textContent = 'Queued.'
        break
      case 'retrying':
        // The run starts over (another backend, or the job resumed): steps begin at 0 again.
        steps = []
        resetStrip(total)
        ui.progressText.textContent =
          event.data.reason === 'backend-failed'
            ? `A GPU backend failed; retrying elsewhere (attempt ${event.data.attempt}).`
            : `The job was restarted; resuming (attempt ${event.data.attempt}).`
        break
      case 'started':
        steps = []
        resetStrip(total)
        ui.progressText.textContent =
          event.data.attempt > 1 ? `Running (attempt ${event.data.attempt}).` : 'Running.'
        break
      case 'step': {
        const { step, heavy, elapsedMs, totalSteps } = event.data
        steps[step] = { heavy, elapsedMs }
        markStep(step, heavy)
        const done = step + 1
        // The backend's count of this attempt's heavy calls; an older backend sends none.
        const heavyCalls = event.data.heavyCalls ?? steps.filter((entry) => entry?.heavy).length
        const remainingMs = (elapsedMs / done) * (totalSteps - done)
        ui.progress.max = totalSteps
        ui.progress.value = done
        ui.progressText.textContent =
          `Step ${done} of ${totalSteps} · heavy calls: ${heavyCalls} · ` +
          `${formatDuration(elapsedMs)} elapsed · about ${formatDuration(remainingMs)} left`
        break
      }
      case 'preview':
        addPreview(event.data.step, event.data.images[0])
        break
      case 'succeeded':
        ui.runSummary.textContent = `${describe(generation)}: done.`
        showResult(generation, event.data.images, event.data.timings, steps)
        break
      case 'failed':
        ui.runSummary.textContent = `${describe(generation)}: failed.`
        showProblem(event.data.problem)
        break
      case 'canceled':
        ui.runSummary.textContent = `${describe(generation)}: canceled after ${
          steps.filter(Boolean).length
        } of ${total} steps.`
        break
    }
  }
  for await (const event of api.streamEvents(generation.id)) render(event)
}

async function cancel(): Promise<void> {
  if (!current) return
  ui.cancel.disabled = true
  ui.progressText.textContent = 'Cancelling…'
  try {
    await client().cancelGeneration(current.id)
  } catch (error) {
    showError(error)
  }
}

function describe(generation: Generation): string {
  const { className, seed, steps, heavySchedule, guidance } = generation.request
  const every = `heavy ${describeHeavySchedule(heavySchedule)}`
  // The default model goes unnamed, as in the request.
  const ranOn = models.find((entry) => entry.id === generation.modelId)
  const on = ranOn?.default === false ? `, model ${generation.modelId}` : ''
  return `${className}, seed ${seed}, ${steps} steps, ${every}, guidance ${guidance}${on}`
}

function resetRun(generation: Generation): void {
  ui.run.hidden = false
  ui.runSummary.textContent = `${describe(generation)}: started.`
  ui.previews.replaceChildren()
  ui.heavySteps.textContent = ''
  resetStrip(generation.request.steps)
  ui.progress.max = generation.request.steps
  ui.progress.value = 0
  ui.progressText.textContent = ''
}

function resetStrip(total: number): void {
  ui.strip.replaceChildren(
    ...Array.from({ length: total }, (_, index) => {
      const square = document.createElement('li')
      square.className = 'pending'
      square.title = `step ${index + 1}`
      return square
    }),
  )
}

function markStep(step: number, heavy: boolean): void {
  const square = ui.strip.children[step]
  if (square) {
    square.className = heavy ? 'heavy' : 'light'
    square.setAttribute('title', `step ${step + 1}: ${heavy ? 'heavy encoder + light' : 'light'}`)
  }
  const heavyIndices = [...ui.strip.children].flatMap((child, index) =>
    child.className === 'heavy' ? [index + 1] : [],
  )
  ui.heavySteps.textContent = `The heavy encoder ran at steps ${heavyIndices.join(', ')}.`
}

/**
 * A cached result has no step events: a fixed schedule is shown as requested; a calibrated or adaptive
 * one only by its count of heavy calls, which the result reports.
 */
function markAllSteps(generation: Generation): void {
  const { steps, heavySchedule } = generation.request
  if ('every' in heavySchedule || 'steps' in heavySchedule) {
    for (let step = 0; step < steps; step++) {
      markStep(
        step,
        'every' in heavySchedule
          ? step % heavySchedule.every === 0
          : step === 0 || heavySchedule.steps.includes(step),
      )
    }
  } else {
    for (let step = 0; step < steps; step++) markStep(step, false)
    const calls = generation.timings?.heavyCalls
    ui.heavySteps.textContent =
      calls === undefined
        ? ''
        : `The heavy encoder ran ${calls} times (${describeHeavySchedule(heavySchedule)}).`
  }
  ui.progress.value = steps
}

function addPreview(step: number, image: string | undefined): void {
  if (!image) return
  const item = document.createElement('li')
  const figure = document.createElement('figure')
  const img = document.createElement('img')
  img.src = `data:image/png;base64,${image}`
  img.alt = `Estimate after step ${step + 1}`
  img.width = 84
  img.height = 84
  const caption = document.createElement('figcaption')
  caption.textContent = `step ${step + 1}`
  figure.append(img, caption)
  item.append(figure)
  ui.previews.append(item)
}

function showResult(
  generation: Generation,
  images: string[],
  timings: Generation['timings'],
  steps: TimedStep[],
): void {
  const url = images[0]
  if (!url) return
  ui.result.hidden = false
  ui.resultImage.src = url
  ui.resultImage.alt = `Generated ${generation.request.className}, seed ${generation.request.seed}`
  ui.resultCaption.textContent = describe(generation)
  const link = document.createElement('a')
  link.href = url
  link.textContent = url
  ui.resultUrl.replaceChildren(link)
  // The per-call costs of the model the job ran on.
  const ranOn = models.find((entry) => entry.id === generation.modelId)
  if (!timings || !ranOn) return
  const { run, heavyEveryStep, timeBasis } = compareWithHeavyEveryStep(
    ranOn.cost,
    generation.request,
    timings,
    steps.filter(Boolean),
  )
  const share = (part: number, whole: number) =>
    whole > 0 ? `${Math.round((100 * part) / whole)} %` : '–'
  const rows: [string, string, string, string][] = [
    [
      'Heavy encoder calls',
      String(run.heavyCalls),
      String(heavyEveryStep.heavyCalls),
      share(run.heavyCalls, heavyEveryStep.heavyCalls),
    ],
    [
      'Light denoiser calls',
      String(run.lightCalls),
      String(heavyEveryStep.lightCalls),
      share(run.lightCalls, heavyEveryStep.lightCalls),
    ],
    [
      'Multiply-accumulates',
      formatMacs(run.macs),
      formatMacs(heavyEveryStep.macs),
      share(run.macs, heavyEveryStep.macs),
    ],
    [
      'Time',
      formatDuration(run.ms),
      `≈ ${formatDuration(heavyEveryStep.ms)}`,
      share(run.ms, heavyEveryStep.ms),
    ],
  ]
  ui.costRows.replaceChildren(
    ...rows.map(([name, ...cells]) => {
      const row = document.createElement('tr')
      const header = document.createElement('th')
      header.scope = 'row'
      header.textContent = name
      row.append(header)
      for (const cell of cells) row.insertCell().textContent = cell
      return row
    }),
  )
  ui.costNote.textContent =
    'MACs are exact (per-call costs from /v1/models). Heavy-every-step time is an estimate: ' +
    (timeBasis === 'heavy-steps'
      ? "every step timed like this run's heavy steps."
      : 'this run’s time scaled by MACs (a cached result has no step timings).')
}

function hideError(): void {
  ui.error.hidden = true
  ui.error.replaceChildren()
}

function showError(error: unknown): void {
  if (error instanceof ApiProblemError) {
    showProblem(error.problem)
    return
  }
  showProblem({
    type: 'about:blank',
    status: 0,
    title: 'Something went wrong',
    detail: error instanceof Error ? error.message : String(error),
  })
}

/** A problem+json body: its title, detail and each invalid field. */
function showProblem(problem: Problem): void {
  const title = document.createElement('strong')
  title.textContent = problem.title
  const parts: Node[] = [title]
  if (problem.detail) parts.push(document.createTextNode(` ${problem.detail}`))
  if (Array.isArray(problem.errors)) {
    const list = document.createElement('ul')
    for (const entry of problem.errors as { field?: unknown; message?: unknown }[]) {
      const item = document.createElement('li')
      item.textContent = `${String(entry.field)}: ${String(entry.message)}`
      list.append(item)
    }
    parts.push(list)
  }
  ui.error.replaceChildren(...parts)
  ui.error.hidden = false
}

void start()
