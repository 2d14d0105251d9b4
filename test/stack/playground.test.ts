// The playground page at `/` in a real browser: Debian's Chromium, headless, driven by playwright-core
// against the local stack (no browser download: executablePath). Chromium runs with the flags that keep
// it off the network, and the test checks that the page itself fetches nothing but its own origin.
import { createRequire } from 'node:module'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { HeavySchedule } from '../../shared/sampling-options.ts'

const stack = inject('stack')
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const OFFLINE_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

let browser: Browser
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: OFFLINE_FLAGS })
})
afterAll(async () => {
  await browser?.close()
})

// Records when previews and the result image appear, in page time, to check that previews arrive
// before the final image. Plain JS: this file type-checks without the DOM library.
const TIMELINE_SCRIPT = `
  window.timeline = []
  document.addEventListener('DOMContentLoaded', () => {
    const mark = (what) => window.timeline.push({ what, at: performance.now() })
    new MutationObserver(() => mark('preview')).observe(document.getElementById('previews'), {
      childList: true,
    })
    document.getElementById('result-image').addEventListener('load', () => mark('result'))
  })
`

/** A fresh page (own localStorage) with the key saved, and every URL it requested. */
async function openPlayground(
  options: { bypassCSP?: boolean } = {},
): Promise<{ page: Page; requested: string[]; errors: string[] }> {
  const context = await browser.newContext(options)
  const page = await context.newPage()
  const requested: string[] = []
  const errors: string[] = []
  page.on('request', (request) => requested.push(request.url()))
  page.on('pageerror', (error) => errors.push(error.message))
  // When previews and the result appear, in page time: "previews arrive" before the final image.
  await page.addInitScript(TIMELINE_SCRIPT)
  await page.goto(`${stack.apiBase}/`)
  await expect.poll(() => page.getByRole('combobox', { name: 'Class' }).inputValue()).toBe('7')
  await page.getByLabel('API key', { exact: true }).fill(stack.apiKey)
  await page.getByRole('button', { name: 'Save key' }).click()
  return { page, requested, errors }
}

async function setOptions(page: Page, options: Record<string, string>) {
  for (const [label, value] of Object.entries(options)) {
    await page.getByRole('spinbutton', { name: label, exact: true }).fill(value)
  }
}

describe('the playground page', () => {
  it('is served by the worker with a strict CSP and labelled controls filled from /v1/models', async () => {
    const response = await fetch(`${stack.apiBase}/`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    expect(response.headers.get('content-security-policy')).toContain(
      "default-src 'none'; script-src 'self'",
    )
    const [model] = (
      (await (await fetch(`${stack.apiBase}/v1/models`)).json()) as {
        data: { defaults: { steps: number; heavySchedule: HeavySchedule; guidance: number } }[]
      }
    ).data
    const defaults = model?.defaults
    if (!defaults) throw new Error('GET /v1/models listed no model')
    const { page } = await openPlayground()
    const classes = page.getByRole('combobox', { name: 'Class' })
    expect(await classes.locator('option').allTextContents()).toHaveLength(10)
    const field = (name: string) => page.getByRole('spinbutton', { name, exact: true }).inputValue()
    const kind = page.getByRole('combobox', { name: 'Heavy schedule' })
    // The default model's default schedule: every K steps, or a calibrated number of calls.
    const schedule =
      'calls' in defaults.heavySchedule
        ? { kind: 'calls', value: await field('Calibrated heavy calls') }
        : { kind: 'every', value: await field('Heavy encoder every K steps') }
    expect({
      steps: await field('Steps'),
      kind: await kind.inputValue(),
      schedule: schedule.value,
      guidance: await field('Guidance'),
    }).toEqual({
      steps: String(defaults.steps),
      kind: schedule.kind,
      schedule: String(
        'calls' in defaults.heavySchedule
          ? defaults.heavySchedule.calls
          : 'every' in defaults.heavySchedule && defaults.heavySchedule.every,
      ),
      guidance: String(defaults.guidance),
    })
    await page.close()
  })

  it('takes the key from the link npm start prints and removes it from the address bar', async () => {
    const link = /^ {2}Playground {3}(\S+)/m.exec(stack.startOutput)?.[1] ?? ''
    expect(link).toBe(`${stack.apiBase}/#key=${stack.apiKey}`)
    const page = await (await browser.newContext()).newPage()
    const requested: string[] = []
    page.on('request', (request) => requested.push(request.url()))
    await page.goto(link)
    await expect
      .poll(() => page.getByRole('status').first().textContent())
      .toBe('Key from the link saved in this browser.')
    expect(page.url()).toBe(`${stack.apiBase}/`)
    expect(await page.evaluate("localStorage.getItem('dualrate.apiKey')")).toBe(stack.apiKey)
    expect(await page.getByLabel('API key', { exact: true }).inputValue()).toBe(stack.apiKey)
    // No request carries the key outside the fragment (which Chromium never sends).
    const sent = requested.map((address) => address.replace(/#.*$/, ''))
    expect(sent.filter((address) => address.includes(stack.apiKey))).toEqual([])

    // The saved key works: a run needs no pasting.
    await expect.poll(() => page.getByRole('combobox', { name: 'Class' }).inputValue()).toBe('7')
    await setOptions(page, { Steps: '4', 'Heavy encoder every K steps': '2', Guidance: '1' })
    await page.getByRole('spinbutton', { name: 'Seed' }).fill('2403')
    await page.getByRole('button', { name: 'Generate' }).click()
    await page
      .getByRole('img', { name: 'Generated Sneaker, seed 2403' })
      .waitFor({ timeout: 60_000 })
    await page.reload()
    expect(page.url()).toBe(`${stack.apiBase}/`)
    await expect
      .poll(() => page.getByRole('status').first().textContent())
      .toBe('A key is saved in this browser.')
    await page.close()
  })

  it('keeps the API key in the browser across reloads', async () => {
    const { page } = await openPlayground()
    await page.reload()
    expect(await page.getByLabel('API key', { exact: true }).inputValue()).toBe(stack.apiKey)
    await expect
      .poll(() => page.getByRole('status').first().textContent())
      .toBe('A key is saved in this browser.')
    await page.close()
  })

  it('runs a generation from the keyboard: previews arrive, heavy steps are marked, the result renders pixelated with its URL and cost', async () => {
    const { page, requested, errors } = await openPlayground()
    await setOptions(page, { Steps: '24', 'Heavy encoder every K steps': '4', Guidance: '2' })
    await page.getByRole('spinbutton', { name: 'Seed' }).fill('2401')
    await page.getByRole('spinbutton', { name: 'Seed' }).press('Enter')

    const result = page.getByRole('img', { name: 'Generated Sneaker, seed 2401' })
    await result.waitFor({ timeout: 60_000 })
    await expect
      .poll(() => page.evaluate("document.getElementById('result-image').naturalWidth"))
      .toBe(28)
    expect(
      await page.evaluate(
        "getComputedStyle(document.getElementById('result-image')).imageRendering",
      ),
    ).toBe('pixelated')
    expect((await result.boundingBox())?.width).toBe(224)

    // previewEvery = 24 / 10 rounded = 2: at most twelve previews (steps 2, 4, ..., 24), all before the
    // final image loaded. Fewer may arrive by design: a preview is a snapshot, so the gpu-service's queue
    // and the edge's event log keep only the latest one for a reader that is behind (a busy CI machine).
    const captions = await page.locator('#previews figcaption').allTextContents()
    const previewSteps = captions.map((caption) => Number(caption.replace('step ', '')))
    expect(previewSteps.length).toBeGreaterThanOrEqual(1)
    expect(previewSteps.length).toBeLessThanOrEqual(12)
    expect(previewSteps.every((step) => step % 2 === 0)).toBe(true)
    expect(previewSteps).toEqual([...previewSteps].sort((a, b) => a - b))
    expect(previewSteps.at(-1)).toBe(24)
    const timeline = (await page.evaluate('timeline')) as { what: string; at: number }[]
    const firstPreview = timeline.find((entry) => entry.what === 'preview')?.at ?? Infinity
    const resultShown = timeline.find((entry) => entry.what === 'result')?.at ?? -Infinity
    expect(firstPreview).toBeLessThan(resultShown)

    expect(await page.locator('#step-strip li.heavy').count()).toBe(6)
    expect(await page.locator('#step-strip li.light').count()).toBe(18)
    expect(await page.locator('#heavy-steps').textContent()).toBe(
      'The heavy encoder ran at steps 1, 5, 9, 13, 17, 21.',
    )

    const link = page.locator('#result-url a')
    const url = (await link.getAttribute('href')) ?? ''
    expect(url).toMatch(new RegExp(`^${stack.apiBase}/v1/results/[0-9a-f]{64}\\.png$`))
    expect(await link.textContent()).toBe(url)

    // 2 rows x (6 heavy + 24 light) against 2 rows x 24 x (heavy + light): 29 % of the MACs.
    const cost = page.getByRole('table', { name: /Cost compared with running the heavy encoder/ })
    const macsRow = cost.getByRole('row', { name: /Multiply-accumulates/ })
    expect(await macsRow.locator('td').allTextContents()).toEqual([
      '4.69 GMAC',
      '16.2 GMAC',
      '29 %',
    ])
    expect(
      await cost
        .getByRole('row', { name: /Heavy encoder calls/ })
        .locator('td')
        .allTextContents(),
    ).toEqual(['6', '24', '25 %'])

    expect(errors).toEqual([])
    const origins = new Set(requested.map((address) => new URL(address).origin))
    expect([...origins].filter((origin) => origin !== stack.apiBase && origin !== 'null')).toEqual(
      [],
    )
    await page.close()
  })

  it('runs an adaptive schedule: the heavy calls the page counts are the ones the run reports', async () => {
    const { page, errors } = await openPlayground()
    await setOptions(page, { Steps: '24', Guidance: '2' })
    await page.getByRole('combobox', { name: 'Heavy schedule' }).selectOption('adaptive')
    await page.getByRole('spinbutton', { name: 'Adaptive tolerance', exact: true }).fill('0.05')
    await page.getByRole('spinbutton', { name: 'Seed' }).fill('2404')
    await page.getByRole('button', { name: 'Generate' }).click()
    await page
      .getByRole('img', { name: 'Generated Sneaker, seed 2404' })
      .waitFor({ timeout: 60_000 })
    const progress = (await page.locator('#progress-text').textContent()) ?? ''
    const heavyCalls = Number(/ · heavy calls: (\d+) · /.exec(progress)?.[1])
    // Step 0 always, then at most every second step.
    expect(heavyCalls).toBeGreaterThanOrEqual(1)
    expect(heavyCalls).toBeLessThanOrEqual(12)
    expect(await page.locator('#step-strip li.heavy').count()).toBe(heavyCalls)
    const cost = page.getByRole('table', { name: /Cost compared with running the heavy encoder/ })
    expect(
      await cost
        .getByRole('row', { name: /Heavy encoder calls/ })
        .locator('td')
        .first()
        .textContent(),
    ).toBe(String(heavyCalls))
    expect(await page.locator('#run-summary').textContent()).toBe(
      'Sneaker, seed 2404, 24 steps, heavy adaptive, tolerance 0.05, guidance 2: done.',
    )
    expect(errors).toEqual([])
    await page.close()
  })

  it('cancels a second run: the page says so and the gpu-service stops it', async () => {
    const { page } = await openPlayground()
    await setOptions(page, { Steps: '1000', 'Heavy encoder every K steps': '4', Guidance: '2' })
    await page.getByRole('spinbutton', { name: 'Seed' }).fill('2402')
    await page.getByRole('button', { name: 'Generate' }).click()
    await page.getByText(/^Step \d+ of 1000/).waitFor({ timeout: 60_000 })
    await page.getByRole('button', { name: 'Cancel' }).click()
    await expect
      .poll(() => page.locator('#run-summary').textContent(), { timeout: 30_000 })
      .toMatch(
        /^Sneaker, seed 2402, 1000 steps, heavy every 4, guidance 2: canceled after \d+ of 1000 steps\.$/,
      )
    expect(await page.getByRole('button', { name: 'Generate' }).isEnabled()).toBe(true)
    expect(await page.getByRole('button', { name: 'Cancel' }).isDisabled()).toBe(true)
    expect(await page.locator('#result').isHidden()).toBe(true)

    // The edge stops the backend run (DELETE, or closing its stream first): nothing is left running.
    const metrics = await (await fetch(`${stack.backendUrl}/metrics`)).text()
    expect(metrics).toMatch(/^dualrate_runs_total\{outcome="(cancelled|disconnected)"\} [1-9]/m)
    expect(metrics).toMatch(/^dualrate_active_runs 0$/m)
    await page.close()
  })

  it('has no WCAG 2 A or AA violations (axe-core) with a result and its cost on screen', async () => {
    // axe is injected as a script: the page's CSP would refuse it, so this context bypasses CSP.
    const { page } = await openPlayground({ bypassCSP: true })
    await setOptions(page, { Steps: '24', 'Heavy encoder every K steps': '4', Guidance: '2' })
    await page.getByRole('spinbutton', { name: 'Seed' }).fill('2401')
    await page.getByRole('button', { name: 'Generate' }).click()
    await page.getByRole('img', { name: 'Generated Sneaker, seed 2401' }).waitFor()
    await page.addScriptTag({ path: createRequire(import.meta.url).resolve('axe-core/axe.min.js') })
    const { violations } = (await page.evaluate(
      "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } })",
    )) as { violations: { id: string; nodes: { target: string[] }[] }[] }
    expect(
      violations.map(({ id, nodes }) => `${id}: ${nodes.map((n) => n.target).join(' ')}`),
    ).toEqual([])
    await page.close()
  })

  it('shows the problem the API answers for an invalid request, field by field', async () => {
    const { page } = await openPlayground()
    await setOptions(page, { Steps: '0' })
    await page.getByRole('button', { name: 'Generate' }).click()
    const alert = page.getByRole('alert')
    await alert.waitFor()
    expect(await alert.locator('strong').textContent()).toBe('Invalid request')
    expect(await alert.locator('li').first().textContent()).toMatch(/^steps: /)
    await page.close()
  })
})
