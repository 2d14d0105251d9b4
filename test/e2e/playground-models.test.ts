// The playground's model choice in a real browser (Debian's Chromium, headless, offline flags): the built
// page served by the client tests' fake API, which lists the default model and a fixture 8-step student
// (the local stack serves one model only, so the choice is tested here). The rest of the page is tested
// against the whole stack in test/stack/playground.test.ts.
import { mkdtemp, rm } from 'node:fs/promises'
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
