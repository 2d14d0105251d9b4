// The playground page's script (bundled by edge/scripts/build-playground.ts): pick the options, run a
// generation through the public API with the typed client, show its live previews and which steps ran
// the heavy encoder, then the result enlarged, its cached URL, and its cost against heavy-every-step.
import { ApiClient, ApiProblemError, type GenerationEvent } from '../../client/api-client.ts'
import {
  compareWithHeavyEveryStep,
  formatDuration,
  formatMacs,
  type TimedStep,
} from '../../client/run-cost.ts'
import type { Generation, GenerationRequest, Model } from '../../shared/generation-api.ts'
import type { Problem } from '../../shared/problem.ts'

const KEY_STORAGE = 'dualrate.apiKey'
/** The fragment parameter of the link `npm start` prints: `/#key=dr_…`. */
const KEY_FRAGMENT = 'key'
/** Previews per run: about ten, whatever the step count. */
const PREVIEWS_PER_RUN = 10

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
  classSelect: element<HTMLSelectElement>('class'),
  steps: element<HTMLInputElement>('steps'),
  heavyEvery: element<HTMLInputElement>('heavy-every'),
  guidance: element<HTMLInputElement>('guidance'),
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

let model: Model | undefined
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

  try {
    ;[model] = await client().listModels()
  } catch (error) {
    showError(error)
    return
  }
  if (!model) return
  ui.modelId.textContent = model.id
  for (const entry of model.classes) ui.classSelect.add(new Option(entry.name, String(entry.index)))
  ui.classSelect.value = String(model.classes.find((entry) => entry.name === 'Sneaker')?.index ?? 0)
  ui.steps.value = String(model.defaults.steps)
  ui.steps.max = String(model.limits.maxSteps)
  ui.heavyEvery.value = String(
    'every' in model.defaults.heavySchedule ? model.defaults.heavySchedule.every : 1,
  )
  ui.guidance.value = String(model.defaults.guidance)
  ui.guidance.max = String(model.limits.maxGuidance)
  ui.seed.max = String(model.limits.maxSeed)
  ui.generate.disabled = false
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
    heavySchedule: { every: number(ui.heavyEvery) },
    guidance: number(ui.guidance),
    previewEvery: Math.max(1, Math.round(steps / PREVIEWS_PER_RUN)),
  }
  if (ui.seed.value.trim() !== '') request.seed = number(ui.seed)
  return request
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
        const heavyCalls = steps.filter((entry) => entry?.heavy).length
        const remainingMs = (elapsedMs / done) * (totalSteps - done)
        ui.progress.max = totalSteps
        ui.progress.value = done
        ui.progressText.textContent =
          `Step ${done} of ${totalSteps} · heavy encoder ${heavyCalls}× · ` +
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
  const every =
    'every' in heavySchedule ? `heavy every ${heavySchedule.every}` : 'listed heavy steps'
  return `${className}, seed ${seed}, ${steps} steps, ${every}, guidance ${guidance}`
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

/** A cached result has no step events: its schedule is shown as requested. */
function markAllSteps(generation: Generation): void {
  const { steps, heavySchedule } = generation.request
  for (let step = 0; step < steps; step++) {
    markStep(
      step,
      'every' in heavySchedule
        ? step % heavySchedule.every === 0
        : heavySchedule.steps.includes(step),
    )
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
  if (!timings || !model) return
  const { run, heavyEveryStep, timeBasis } = compareWithHeavyEveryStep(
    model.cost,
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
