// `npm start`: the whole system on this machine. The gpu-service on CPU with the committed models and the
// edge under `wrangler dev` (local Durable Objects, R2 and KV in .wrangler/state), sharing a generated
// HMAC secret (.dev/hmac-secret); a local API key in that KV, kept across restarts in .dev/local.json
// with the API base, so the CLI and tests find the stack. The banner's playground link carries that key in
// its fragment (`/#key=…`: a browser never sends the fragment, so no server log sees it), which the page
// saves in the browser and removes from the address bar. Both processes' logs are prefixed; Ctrl-C
// stops both. A gpu-service that dies is reported in one line and started again (at most 3 times in
// 60 s, after 1, 2, 4 s) while the edge keeps running; an edge that dies stops the stack with exit 1.
// Options: --edge-port (8787), --gpu-service-port (8788), --state (.wrangler/state, the folder
// `npm run keys` uses by default); DUALRATE_DEV_DIR moves .dev.
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs, styleText } from 'node:util'
import {
  devDir,
  LOCAL_STACK_FILE,
  type LocalStackFile,
  readLocalStackFile,
} from '../../client/cli/connection.ts'
import {
  type LocalStack,
  PortInUseError,
  type StackExit,
  type StackProcess,
  startLocalStack,
} from './local-stack.ts'
import { RestartBudget } from './restart-budget.ts'

const { values } = parseArgs({
  options: {
    'edge-port': { type: 'string', default: '8787' },
    'gpu-service-port': { type: 'string', default: '8788' },
    state: { type: 'string', default: '.wrangler/state' },
  },
})
const edgePort = port(values['edge-port'], '--edge-port')
const backendPort = port(values['gpu-service-port'], '--gpu-service-port')
const colors = process.stdout.isTTY && !process.env.NO_COLOR
const paint = (color: Parameters<typeof styleText>[0], text: string) =>
  colors ? styleText(color, text) : text

function port(text: string, flag: string): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1 || value > 65_535) {
    console.error(`npm start: ${flag} must be a port number (1-65535), not ${JSON.stringify(text)}`)
    process.exit(64)
  }
  return value
}

const PREFIX = {
  'gpu-service': paint('cyan', 'gpu-service │'),
  edge: paint('magenta', 'edge        │'),
}

/** One log line, prefixed; the gpu-service's JSON lines become `time level message key=value`. */
function printLog(source: StackProcess, line: string): void {
  if (line.trim() === '') return
  if (source === 'edge') console.log(`${PREFIX.edge} ${line}`)
  else console.log(`${PREFIX['gpu-service']} ${readableJson(line)}`)
}

function readableJson(line: string): string {
  let entry: Record<string, unknown>
  try {
    entry = JSON.parse(line)
  } catch {
    return line
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.msg !== 'string') return line
  const { time, level, msg, ...fields } = entry
  const clock = typeof time === 'string' ? time.slice(11, 19) : ''
  const levelText = String(level ?? 'info').padEnd(5)
  const painted =
    level === 'error'
      ? paint('red', levelText)
      : level === 'warn'
        ? paint('yellow', levelText)
        : levelText
  const rest = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
  return [clock, painted, msg, ...rest].filter(Boolean).join(' ')
}

function banner(stack: LocalStack, localFile: string): string {
  const request = JSON.stringify({ class: 'Sneaker', heavySchedule: { every: 4 }, seed: 7 })
  const keyNote = stack.reusedApiKey ? 'kept from the last start' : 'new'
  const playground = `${stack.edgeUrl}/#key=${encodeURIComponent(stack.apiKey)}`
  return [
    '',
    paint('bold', 'Dual-Rate is running.'),
    `  Playground   ${paint('underline', playground)}   (saves the key in your browser)`,
    `  API base     ${stack.edgeUrl}   (routes under /v1; reference ${stack.edgeUrl}/docs)`,
    `  API key      ${stack.apiKey}   (${keyNote}; both saved in ${localFile})`,
    `  gpu-service  ${stack.backendUrl}   (CPU, gpu-service/models)`,
    '',
    'Try it:',
    `  curl -s ${stack.edgeUrl}/v1/generations -H "authorization: Bearer ${stack.apiKey}" \\`,
    `    -H 'content-type: application/json' -H 'prefer: wait=60' -d '${request}'`,
    '  npx dual-rate generate --class Sneaker --heavy-every 4 --seed 7 -o sneaker.png',
    '',
    'Ctrl-C stops both.',
    '',
  ].join('\n')
}

/**
 * `the gpu-service (pid 123) was killed by SIGKILL`, `the edge (wrangler dev, pid 7) exited with code 1`,
 * or `the gpu-service did not start` for a restart that never became ready (no pid, no exit status).
 */
function describeExit(exit: StackExit): string {
  const details = [exit.source === 'edge' ? 'wrangler dev' : '', exit.pid ? `pid ${exit.pid}` : '']
    .filter(Boolean)
    .join(', ')
  const who = details ? `the ${exit.source} (${details})` : `the ${exit.source}`
  if (exit.signal) return `${who} was killed by ${exit.signal}`
  if (exit.code !== null) return `${who} exited with code ${exit.code}`
  return `${who} did not start`
}

/** Exits of the stack's processes, in order, for the supervisor to take one at a time. */
class ExitQueue {
  readonly #pending: StackExit[] = []
  #wake: (() => void) | undefined

  push(exit: StackExit): void {
    this.#pending.push(exit)
    this.#wake?.()
  }

  async next(): Promise<StackExit> {
    while (this.#pending.length === 0) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
      this.#wake = undefined
    }
    return this.#pending.shift() as StackExit
  }
}

/**
 * Keeps the stack up until Ctrl-C: restarts a gpu-service that died (within the restart budget) and
 * gives up, stopping everything, when the edge dies or the budget is spent. Resolves with the exit status.
 */
async function supervise(stack: LocalStack, exits: ExitQueue, stopped: Promise<void>) {
  const budget = new RestartBudget()
  const interrupted = stopped.then(() => 'interrupted' as const)
  for (;;) {
    const exit = await Promise.race([interrupted, exits.next()])
    if (exit === 'interrupted') return 0
    if (exit.source === 'edge') {
      console.error(`\nnpm start: ${describeExit(exit)}; stopping the gpu-service.`)
      return 1
    }
    const backend = stack.backends.find((child) => child.name === exit.source)
    const decision = budget.next()
    if (!backend || !decision.restart) {
      console.error(
        `\nnpm start: ${describeExit(exit)}, after ${budget.maxRestarts} restarts within ` +
          `${budget.windowMs / 1000} s; stopping the edge.`,
      )
      return 1
    }
    console.error(
      `\nnpm start: ${describeExit(exit)}; restarting it in ${decision.delayMs / 1000} s ` +
        `(restart ${decision.attempt} of at most ${budget.maxRestarts} per ${budget.windowMs / 1000} s).`,
    )
    const delay = new Promise<'delayed'>((resolve) =>
      setTimeout(() => resolve('delayed'), decision.delayMs),
    )
    if ((await Promise.race([interrupted, delay])) === 'interrupted') return 0
    const restarting = backend.restart().then(
      () => 'ready' as const,
      (error: unknown) => error,
    )
    const outcome = await Promise.race([interrupted, restarting])
    if (outcome === 'interrupted') return 0
    if (outcome === 'ready') {
      console.error(`npm start: the ${backend.name} is back (pid ${backend.pid}, ${backend.url}).`)
      continue
    }
    // waitFor's message: `<url>: process exited (code 1):` then the output, which the log already shows.
    const reason = (outcome instanceof Error ? outcome.message : String(outcome))
      .split('\n')[0]
      ?.replace(/:$/, '')
    console.error(`npm start: the ${backend.name} did not come back: ${reason}.`)
    exits.push({ source: backend.name, pid: undefined, code: null, signal: null })
  }
}

async function main(): Promise<number> {
  const localFile = join(devDir(), LOCAL_STACK_FILE)
  const apiBase = `http://127.0.0.1:${edgePort}`
  const saved = await readLocalStackFile(localFile).catch(() => undefined)
  const starting = new AbortController()
  const exits = new ExitQueue()
  let stack: LocalStack | undefined
  let stopRequested: (() => void) | undefined
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve
  })
  const onSignal = (signal: NodeJS.Signals) => {
    if (starting.signal.aborted) return
    console.log(
      `\n${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping the edge and the gpu-service…`,
    )
    starting.abort(new Error('interrupted'))
    stopRequested?.()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  console.log(
    `Starting the gpu-service on :${backendPort} (CPU) and the edge on :${edgePort} (wrangler dev)…`,
  )
  try {
    stack = await startLocalStack({
      edgePort,
      backendPort,
      statePath: values.state,
      keyName: 'local',
      reuseApiKey: saved?.apiBase === apiBase ? saved.apiKey : undefined,
      onLog: printLog,
      onExit: (exit) => exits.push(exit),
      edgeLogLevel: 'info',
      // A quick Ctrl-C: in-flight local runs get 3 s, not the production 25 s.
      backendEnv: { DUALRATE_DRAIN_GRACE_MS: '3000' },
      signal: starting.signal,
    })
  } catch (error) {
    if (starting.signal.aborted) return 130
    if (error instanceof PortInUseError) {
      const flag = error.owner === 'edge' ? '--edge-port' : '--gpu-service-port'
      console.error(
        `\nnpm start: ${error.message}.\n` +
          `  Stop what listens there (see \`ss -ltnp 'sport = :${error.port}'\`), or choose another ` +
          `port: npm start -- ${flag} ${error.port + 10}`,
      )
      return 1
    }
    console.error(`\nnpm start: ${error instanceof Error ? error.message : String(error)}`)
    return 1
  }

  const local: LocalStackFile = { apiBase: stack.edgeUrl, apiKey: stack.apiKey }
  await mkdir(devDir(), { recursive: true })
  await writeFile(localFile, `${JSON.stringify(local, null, 2)}\n`, { mode: 0o600 })
  await chmod(localFile, 0o600)
  console.log(banner(stack, localFile))

  const status = await supervise(stack, exits, stopped)
  await stack.stop()
  console.log('Stopped.')
  return status
}

process.exit(await main())
