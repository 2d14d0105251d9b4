// One Durable Object per result key: the single place where a generation runs. Identical requests meet
// here (single-flight); the job's state and event log live in its SQLite storage, survive restarts, and
// an alarm enforces the deadline, restarts a run lost with its isolate, and retries webhooks.
import { DurableObject } from 'cloudflare:workers'
import { type ProblemInit, problem } from '../../../shared/problem.ts'
import type { RunEvent, RunRequest } from '../../../shared/run-protocol.ts'
import { BackendFailure, cancelRun } from '../backends/backend-client.ts'
import { runWithFailover } from '../backends/failover.ts'
import { type Env, readConfig } from '../env.ts'
import { PROBLEM_TYPES } from '../http/problem.ts'
import { imageUrls, saveResult } from '../results/result-store.ts'
import { WebhookOutbox } from '../webhooks/outbox.ts'
import { EventLog, eventText, type LoggedEvent } from './event-log.ts'
import { isTerminal, type JobState } from './job-state.ts'
import { Subscribers } from './subscribers.ts'

/** While a job is active its alarm fires at least this often (watchdog and keep-alive). */
export const WATCHDOG_MS = 30_000

export interface SubmitInput {
  key: string
  origin: string
  modelId: string
  className: string
  request: RunRequest
  owner: string
  requestId: string
  webhook?: { url: string; secret: string }
}

export class GenerationJob extends DurableObject<Env> {
  #state: JobState | null = null
  readonly #log: EventLog
  readonly #outbox: WebhookOutbox
  readonly #subscribers: Subscribers
  /** The backend run this instance is driving; null after a restart until the alarm resumes it. */
  #run: AbortController | null = null
  readonly #waiters = new Set<() => void>()

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.#log = new EventLog(ctx.storage.sql)
    this.#outbox = new WebhookOutbox(ctx.storage.sql)
    this.#subscribers = new Subscribers(readConfig(env).heartbeatMs)
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        'CREATE TABLE IF NOT EXISTS job (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)',
      )
      const row = ctx.storage.sql.exec<{ state: string }>('SELECT state FROM job').toArray()[0]
      this.#state = row ? (JSON.parse(row.state) as JobState) : null
    })
  }

  /**
   * Joins the job for this key, starting it unless it is already queued, running or done.
   * Returns the job as it now stands.
   */
  async submit(input: SubmitInput): Promise<JobState> {
    const current = this.#state
    if (current && (current.status === 'succeeded' || !isTerminal(current.status))) {
      if (!isTerminal(current.status)) {
        if (!current.owners.includes(input.owner)) current.owners.push(input.owner)
        if (input.webhook) this.#outbox.register(input.webhook.url, input.webhook.secret)
        this.#save()
      }
      return current
    }
    const now = Date.now()
    const config = readConfig(this.env)
    this.#state = {
      key: input.key,
      origin: input.origin,
      modelId: input.modelId,
      className: input.className,
      request: input.request,
      status: 'queued',
      attempts: 0,
      step: 0,
      createdAt: now,
      deadline: now + config.jobTimeoutMs,
      owners: [input.owner],
      requestId: input.requestId,
      firstEventId: this.#log.nextId(),
    }
    if (input.webhook) this.#outbox.register(input.webhook.url, input.webhook.secret)
    this.#save()
    this.#emit(this.#log.append('queued', { id: input.key }))
    await this.#scheduleAlarm()
    this.#start()
    return this.#state
  }

  /** The job, or null when this key has never had one. */
  snapshot(): JobState | null {
    return this.#state
  }

  /** Resolves with the job once it has ended or `timeoutMs` has passed, whichever is first. */
  async waitForCompletion(timeoutMs: number): Promise<JobState | null> {
    if (!this.#state || isTerminal(this.#state.status)) return this.#state
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#waiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      this.#waiters.add(done)
    })
    return this.#state
  }

  /**
   * The job's events as an SSE byte stream: those after `lastEventId` (all of this run when absent),
   * then live events until the job ends.
   */
  subscribe(lastEventId: number | null): ReadableStream<Uint8Array> | null {
    const state = this.#state
    if (!state) return null
    const from = Math.max(lastEventId ?? 0, state.firstEventId - 1)
    const history = this.#log.after(from).map(eventText)
    return this.#subscribers.open(history, isTerminal(state.status))
  }

  /** Stops the job: the backend run is aborted and cancelled on the backend, not just hidden. */
  async cancel(): Promise<JobState | null> {
    const state = this.#state
    if (!state || isTerminal(state.status)) return state
    await this.#stopBackendRun()
    await this.#finish('canceled')
    return this.#state
  }

  /** Webhook delivery state per endpoint. */
  webhookDeliveries() {
    return this.#outbox.list()
  }

  override async alarm(): Promise<void> {
    const state = this.#state
    const now = Date.now()
    if (state && !isTerminal(state.status)) {
      if (state.deadline !== undefined && now >= state.deadline) {
        await this.#stopBackendRun()
        await this.#finish('failed', {
          status: 504,
          type: PROBLEM_TYPES.timeout,
          title: 'Generation timed out',
          detail: `The job did not finish within ${readConfig(this.env).jobTimeoutMs / 1000} s.`,
        })
      } else if (!this.#run) {
        // This instance lost the run (the object was restarted); the same seed gives the same pixels.
        this.#start()
      }
    }
    await this.#outbox.deliverDue(now)
    await this.#scheduleAlarm()
  }

  #start(): void {
    const controller = new AbortController()
    this.#run = controller
    this.#execute(controller).finally(() => {
      if (this.#run === controller) this.#run = null
    })
  }

  async #execute(controller: AbortController): Promise<void> {
    const state = this.#state
    if (!state) return
    const config = readConfig(this.env)
    try {
      const result = await runWithFailover({
        backendUrls: config.backendUrls,
        maxAttempts: config.backendMaxAttempts,
        secret: config.backendSecret,
        request: state.request,
        requestId: state.requestId,
        signal: controller.signal,
        spread: Number.parseInt(state.key.slice(0, 8), 16),
        runIdPrefix: `${state.key.slice(0, 24)}-${state.firstEventId}-${state.attempts}`,
        onAttempt: (_attempt, backendUrl, runId) => {
          state.attempts += 1
          state.step = 0
          state.backendUrl = backendUrl
          state.runId = runId
          this.#save()
        },
        onEvent: (event) => this.#onBackendEvent(state, event),
      })
      if (controller.signal.aborted) return
      if (result.modelId !== state.modelId) {
        throw new BackendFailure(`backend returned model ${result.modelId}`, false)
      }
      const images = result.images.map((base64) =>
        Uint8Array.from(atob(base64), (char) => char.charCodeAt(0)),
      )
      await saveResult(
        this.env.RESULTS,
        {
          key: state.key,
          modelId: state.modelId,
          count: images.length,
          timings: result.timings,
          createdAt: new Date().toISOString(),
        },
        images,
      )
      state.timings = result.timings
      await this.#finish('succeeded')
    } catch (error) {
      if (controller.signal.aborted) return
      const failure =
        error instanceof BackendFailure
          ? {
              status: error.status,
              type: PROBLEM_TYPES.backendUnavailable,
              title: 'Generation failed',
              detail: error.message,
            }
          : { status: 500, type: PROBLEM_TYPES.internal, title: 'Generation failed' }
      if (!(error instanceof BackendFailure)) {
        console.error(
          JSON.stringify({ requestId: state.requestId, job: state.key, error: String(error) }),
        )
      }
      await this.#finish('failed', failure)
    }
  }

  #onBackendEvent(state: JobState, event: RunEvent): void {
    switch (event.type) {
      case 'accepted':
        return
      case 'started':
        if (event.modelId !== state.modelId) {
          throw new BackendFailure(
            `backend serves model ${event.modelId}, this API serves ${state.modelId}`,
            true,
          )
        }
        state.status = 'running'
        state.startedAt ??= Date.now()
        this.#save()
        this.#emit(this.#log.append('started', { attempt: state.attempts, modelId: event.modelId }))
        return
      case 'step': {
        // Progress lives in memory and in the event log; a restart begins a new attempt at step 0 anyway.
        state.step += 1
        const { step, totalSteps, t, heavy, elapsedMs } = event
        this.#emit(this.#log.append('step', { step, totalSteps, t, heavy, elapsedMs }))
        return
      }
      case 'preview':
        this.#emit(this.#log.append('preview', { step: event.step, images: event.images }))
        return
      default:
        return
    }
  }

  /** Ends the job: records the outcome, frees quota slots, wakes waiters, closes streams, queues webhooks. */
  async #finish(status: 'succeeded' | 'failed' | 'canceled', failure?: ProblemInit): Promise<void> {
    const state = this.#state
    if (!state || isTerminal(state.status)) return
    state.status = status
    state.finishedAt = Date.now()
    delete state.deadline
    const owners = state.owners
    state.owners = []
    let event: LoggedEvent
    if (status === 'succeeded' && state.timings) {
      const images = imageUrls(state.origin, state.key, state.request.count)
      event = this.#log.append('succeeded', { images, timings: state.timings })
    } else if (status === 'failed') {
      state.error = problem(failure ?? { status: 500, title: 'Generation failed' })
      event = this.#log.append('failed', { problem: state.error })
    } else {
      event = this.#log.append('canceled', {})
    }
    this.#save()
    this.#emit(event)
    this.#subscribers.closeAll()
    await Promise.all(
      owners.map((owner) => this.env.KEY_QUOTA.getByName(owner).releaseJob(state.key)),
    )
    this.#outbox.seal(
      `msg_${state.key.slice(0, 24)}_${event.id}`,
      JSON.stringify({
        type: `generation.${status}`,
        timestamp: new Date(state.finishedAt).toISOString(),
        data: { id: state.key, status, eventId: event.id, ...(event.data as object) },
      }),
      Date.now(),
    )
    // Delivery runs from the alarm (due now), so ending a job never waits on a slow receiver.
    await this.#scheduleAlarm()
    for (const wake of [...this.#waiters]) wake()
  }

  async #stopBackendRun(): Promise<void> {
    const state = this.#state
    this.#run?.abort(new Error('job stopped'))
    this.#run = null
    if (state?.backendUrl && state.runId) {
      const config = readConfig(this.env)
      await cancelRun(state.backendUrl, config.backendSecret, state.runId, state.requestId)
    }
  }

  #emit(event: LoggedEvent): void {
    this.#subscribers.broadcast(eventText(event))
  }

  #save(): void {
    this.ctx.storage.sql.exec(
      'INSERT OR REPLACE INTO job (id, state) VALUES (1, ?)',
      JSON.stringify(this.#state),
    )
  }

  /** The next alarm: the watchdog while active, else the next webhook retry, else none. */
  async #scheduleAlarm(): Promise<void> {
    const state = this.#state
    const times: number[] = []
    if (state && !isTerminal(state.status)) {
      times.push(Math.min(Date.now() + WATCHDOG_MS, state.deadline ?? Number.POSITIVE_INFINITY))
    }
    const webhookAt = this.#outbox.nextAttemptAt()
    if (webhookAt !== null) times.push(webhookAt)
    if (times.length === 0) await this.ctx.storage.deleteAlarm()
    else await this.ctx.storage.setAlarm(Math.min(...times))
  }
}
