// The playground's model choice in a real browser (Debian's Chromium, headless, offline flags): the built
// page served by the client tests' fake API, which lists the default model and a fixture 8-step student
// (the local stack serves one model only, so the choice is tested here). The rest of the page is tested
// against the whole stack in test/stack/playground.test.ts. So are the heavy-schedule kinds that depend on
// the model: calibrated calls need a model with calibrated placements at the chosen step count.
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildPlayground } from '../../edge/scripts/build-playground.ts'
import { FAKE_API_KEY, type FakeApi, startFakeApi } from '../client/helpers/fake-api.ts'
import { DEFAULT_MODEL_ID, STUDENT_MODEL_ID } from '../edge/helpers/model-catalog.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const OFFLINE_FLAGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-sync']

let browser: Browser
let api: FakeApi
let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dualrate-playground-'))
  await buildPlayground(dir)
  api = await startFakeApi({ steps: 8, heavyEvery: 2, staticDir: dir })
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: OFFLINE_FLAGS })
})
afterAll(async () => {
  await browser?.close()
  await api?.close()
  await rm(dir, { recursive: true, force: true })
})

async function openPlayground(): Promise<Page> {
  const page = await (await browser.newContext()).newPage()
  await page.goto(`${api.url}/#key=${FAKE_API_KEY}`)
  await expect.poll(() => page.getByRole('combobox', { name: 'Class' }).inputValue()).toBe('7')
  return page
}

const field = (page: Page, name: string) => page.getByRole('spinbutton', { name, exact: true })
const heavyKind = (page: Page) => page.getByRole('combobox', { name: 'Heavy schedule' })
const heavyKindEnabled = (page: Page) =>
  heavyKind(page)
    .locator('option')
    .evaluateAll((options) =>
      options.map((option) => {
        const { value, disabled } = option as unknown as { value: string; disabled: boolean }
        return `${value}${disabled ? ' (off)' : ''}`
      }),
    )

/** Runs the form and answers the body it posted. */
async function generateAndReadBody(page: Page): Promise<Record<string, unknown>> {
  const before = api.requests.length
  await page.getByRole('button', { name: 'Generate' }).click()
  await page.getByRole('img', { name: /^Generated Sneaker, seed / }).waitFor({ timeout: 30_000 })
  const posted = api.requests.slice(before).find((request) => request.method === 'POST')
  return JSON.parse(posted?.body ?? '{}')
}

describe('the playground’s model choice', () => {
  it('offers every model from /v1/models, the default chosen, its options free', async () => {
    const page = await openPlayground()
    const models = page.getByRole('combobox', { name: 'Model' })
    expect(await models.locator('option').allTextContents()).toEqual([
      `${DEFAULT_MODEL_ID} (default)`,
      STUDENT_MODEL_ID,
    ])
    expect(await models.inputValue()).toBe(DEFAULT_MODEL_ID)
    expect(await field(page, 'Steps').inputValue()).toBe('50')
    expect(await field(page, 'Steps').isEditable()).toBe(true)
    expect(await field(page, 'Guidance').isEditable()).toBe(true)
    expect(await page.locator('#model-help').textContent()).toMatch(
      / GMAC per image at its defaults\.$/,
    )
    await page.close()
  })

  it('prefills a distilled model’s defaults, fixes what it supports one value of, and sends its id', async () => {
    const page = await openPlayground()
    await page.getByRole('combobox', { name: 'Model' }).selectOption(STUDENT_MODEL_ID)
    expect(await page.locator('#model-id').textContent()).toBe(STUDENT_MODEL_ID)
    expect({
      steps: await field(page, 'Steps').inputValue(),
      heavyEvery: await field(page, 'Heavy encoder every K steps').inputValue(),
      guidance: await field(page, 'Guidance').inputValue(),
    }).toEqual({ steps: '8', heavyEvery: '2', guidance: '1' })
    // One step count and one guidance: fixed; two heavy placements at 8 steps: every 2 or every 8.
    expect(await field(page, 'Steps').isEditable()).toBe(false)
    expect(await field(page, 'Guidance').isEditable()).toBe(false)
    expect(await field(page, 'Heavy encoder every K steps').isEditable()).toBe(true)
    expect(await page.locator('#heavy-every-help').textContent()).toBe(
      'This model runs it every 2 or 8 steps at 8 steps.',
    )
    expect(
      await page
        .locator('#heavy-every-allowed option')
        .evaluateAll((options) =>
          options.map((option) => (option as unknown as { value: string }).value),
        ),
    ).toEqual(['2', '8'])
    expect(await page.locator('#model-help').textContent()).toContain(
      `Distilled from ${DEFAULT_MODEL_ID}.`,
    )

    await page.getByRole('button', { name: 'Generate' }).click()
    await page.getByRole('img', { name: /^Generated Sneaker, seed / }).waitFor({ timeout: 30_000 })
    const posted = api.requests.filter((request) => request.method === 'POST').at(-1)
    expect(JSON.parse(posted?.body ?? '{}')).toMatchObject({
      model: STUDENT_MODEL_ID,
      steps: 8,
      heavySchedule: { every: 2 },
      guidance: 1,
    })
    expect(await page.locator('#run-summary').textContent()).toContain(
      `, model ${STUDENT_MODEL_ID}:`,
    )

    // Back to the default: its defaults again, nothing fixed, no model named in the request.
    await page.getByRole('combobox', { name: 'Model' }).selectOption(DEFAULT_MODEL_ID)
    expect(await field(page, 'Steps').inputValue()).toBe('50')
    expect(await field(page, 'Steps').isEditable()).toBe(true)
    expect(await page.locator('#heavy-every-help').textContent()).toBe(
      '1 runs it on every step (the baseline).',
    )
    await page.close()
  })
})

describe('the playground’s heavy schedule', () => {
  it("starts on the default model's calibrated calls, offers them only at a calibrated step count, and sends {calls}", async () => {
    const page = await openPlayground()
    // The default model recommends 5 calibrated calls at 50 steps (its manifest's recommended.heavyCalls).
    expect(await heavyKind(page).inputValue()).toBe('calls')
    expect(await field(page, 'Calibrated heavy calls').inputValue()).toBe('5')
    expect(await field(page, 'Heavy encoder every K steps').isVisible()).toBe(false)
    expect(await heavyKindEnabled(page)).toEqual(['every', 'calls', 'adaptive'])
    expect(await page.locator('#heavy-kind-help').textContent()).toBe(
      'Calibrated calls work at 50 steps only, where this model has calibrated placements.',
    )
    // Every K is prefilled at about the same cost: 5 calls in 50 steps, every 10.
    await heavyKind(page).selectOption('every')
    expect(await field(page, 'Heavy encoder every K steps').inputValue()).toBe('10')
    await heavyKind(page).selectOption('calls')

    // 40 steps have no placements: every K steps until the steps are 50 again.
    await field(page, 'Steps').fill('40')
    expect(await heavyKindEnabled(page)).toEqual(['every', 'calls (off)', 'adaptive'])
    expect(await heavyKind(page).inputValue()).toBe('every')
    expect(await field(page, 'Heavy encoder every K steps').isVisible()).toBe(true)
    expect(await field(page, 'Calibrated heavy calls').isVisible()).toBe(false)
    await field(page, 'Steps').fill('50')
    expect(await heavyKind(page).inputValue()).toBe('calls')
    expect(await field(page, 'Calibrated heavy calls').inputValue()).toBe('5')

    const body = await generateAndReadBody(page)
    expect(body).toMatchObject({ steps: 50, heavySchedule: { calls: 5 } })
    expect(body.model).toBeUndefined()
    expect(await page.locator('#progress-text').textContent()).toMatch(
      /^Step 50 of 50 · heavy calls: 5 · /,
    )
    expect(await page.locator('#step-strip li.heavy').count()).toBe(5)
    expect(await page.locator('#run-summary').textContent()).toContain(
      ', 50 steps, heavy 5 calibrated calls, guidance ',
    )
    await page.close()
  })

  it('sends an adaptive tolerance and shows the heavy calls the run decided on', async () => {
    const page = await openPlayground()
    await heavyKind(page).selectOption('adaptive')
    expect(await field(page, 'Adaptive tolerance').inputValue()).toBe('0.02')
    await field(page, 'Adaptive tolerance').fill('0.05')
    const body = await generateAndReadBody(page)
    expect(body).toMatchObject({ steps: 50, heavySchedule: { adaptive: { tolerance: 0.05 } } })
    // The fake API's adaptive run calls the heavy encoder on every third step: 17 of 50.
    expect(await page.locator('#progress-text').textContent()).toMatch(
      /^Step 50 of 50 · heavy calls: 17 · /,
    )
    expect(await page.locator('#step-strip li.heavy').count()).toBe(17)
    await page.close()
  })

  it('offers a distilled model neither calibrated calls nor adaptive, and says so', async () => {
    const page = await openPlayground()
    await heavyKind(page).selectOption('adaptive')
    await page.getByRole('combobox', { name: 'Model' }).selectOption(STUDENT_MODEL_ID)
    expect(await heavyKindEnabled(page)).toEqual(['every', 'calls (off)', 'adaptive (off)'])
    expect(await heavyKind(page).inputValue()).toBe('every')
    expect(await page.locator('#heavy-kind-help').textContent()).toBe(
      'This model runs only the heavy placements it was distilled for: every K steps.',
    )
    await page.close()
  })

  it('has no WCAG 2 A or AA violations (axe-core) with the adaptive field shown', async () => {
    const page = await openPlayground()
    await heavyKind(page).selectOption('adaptive')
    await page.addScriptTag({ path: createRequire(import.meta.url).resolve('axe-core/axe.min.js') })
    const { violations } = (await page.evaluate(
      "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } })",
    )) as { violations: { id: string; nodes: { target: string[] }[] }[] }
    expect(
      violations.map(({ id, nodes }) => `${id}: ${nodes.map((n) => n.target).join(' ')}`),
    ).toEqual([])
    await page.close()
  })
})
