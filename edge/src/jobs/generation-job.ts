// One Durable Object per result key: the single place where a generation runs. Identical requests from
// any number of API keys meet here (single-flight: one GPU run), but each key is an owner with its own
// view: only owners may read, stream or cancel the job, a cancel detaches that owner only, and the run
// stops when no owner is left. State and event log live in SQLite, survive restarts (validated by a
// versioned schema on load), and an alarm enforces the deadline, resumes a run lost with its isolate,
// retries webhooks and prunes the event log of an ended job.
import { DurableObject } from 'cloudflare:workers'
import { isTerminalStatus, type TerminalStatus } from '../../../shared/generation-api.ts'
import { PROBLEM_TYPES, type ProblemInit, problem } from '../../../shared/problem.ts'
import type { RunEvent, RunRequest } from '../../../shared/run-protocol.ts'
import { BackendFailure, cancelRun } from '../backends/backend-client.ts'
import { type ResultEvent, runWithFailover } from '../backends/failover.ts'
import { type Env, readConfig } from '../env.ts'
import {
  findResult,
  imageUrls,
  type ResultRecord,
  saveImages,
  saveRecord,
} from '../results/result-store.ts'
import { WebhookOutbox } from '../webhooks/outbox.ts'
import { webhookMessage } from '../webhooks/webhook-message.ts'
import { EventLog, type LoggedEvent } from './event-log.ts'
import { failureLogLine, failureProblem } from './failure-problem.ts'
import { canMove, isCurrent, type RunToken, startsNewRun } from './job-machine.ts'
import {
  JOB_STATE_VERSION,
  type JobState,
  type JobView,
  parseJobState,
  type RunTimings,
  viewFor,
} from './job-state.ts'
import { attachedOwners, makeRoomForOwner, outcomeOf } from './owners.ts'
import { addMissingColumns, tableExists } from './sql-schema.ts'
import { Subscribers } from './subscribers.ts'

/**
 * While a job is active its alarm fires at least this often (watchdog and keep-alive): a run lost with
 * its object (a restart, a deploy) resumes within this time even when no client calls (measured under
 * wrangler dev with 30 s: resumed 27 s after the restart).
 */
export const WATCHDOG_MS = 10_000

export interface SubmitInput {
  key: string
  origin: string
  modelId: string
  className: string
  request: RunRequest
  /** The API key id asking. */
  owner: string
  requestId: string
  webhook?: { url: string; secret: string }
  /** The stored result the route found for this key (a cache hit): the job answers from it. */
  stored?: { timings: RunTimings; createdAt: string }
  /**
   * `Prefer: wait`: the answer waits until the job has ended for this owner or this many ms have
   * passed (one call instead of submit, then waitForCompletion).
   */
  waitMs?: number
}

export type SubmitResult =
  /** `alreadyEnded`: the job had ended before this owner joined, so no run holds its slot. */
  | { kind: 'joined'; view: JobView; alreadyEnded: boolean }
  /** Refused: the job has as many active owners, or pending webhook endpoints, as it may. */
  | { kind: 'busy'; reason: 'owners' | 'webhooks' }

export class GenerationJob extends DurableObject<Env> {
  #state: JobState | null = null
  readonly #log: EventLog
  readonly #outbox: WebhookOutbox
  readonly #subscribers: Subscribers
  /** The backend run this instance is driving; null after a restart until the alarm resumes it. */
  #execution: AbortController | null = null
  /** Storing a result and ending the job as succeeded: a cancel or a deadline waits for it. */
  #storing: Promise<void> | null = null
  /**
   * Writing the record that makes a stored result findable, which the job does not wait for before it
   * says succeeded (its images are stored by then); a submit waits for it before it looks the result up.
   */
  #recording: Promise<void> | null = null
  /** The tables exist (created by this instance's first submit). */
  #schemaReady = false
  readonly #waiters = new Set<() => void>()
  /** Set when the stored row fails its schema: every call throws it rather than guess. */
  #corrupt: Error | null = null

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.#log = new EventLog(ctx.storage.sql)
    this.#outbox = new WebhookOutbox(ctx.storage.sql)
    this.#subscribers = new Subscribers(
      {
        page: (afterId, owner, limit) => this.#page(afterId, owner, limit),
        ended: (owner) => this.#state?.owners[owner]?.outcome !== undefined,
      },
      { heartbeatMs: readConfig(env).heartbeatMs },
    )
    ctx.blockConcurrencyWhile(async () => {
      // An object that never had a job stays without storage: reading an unknown id writes nothing.
      if (!tableExists(ctx.storage.sql, 'job')) return
      this.#createSchema()
      const row = ctx.storage.sql.exec<{ state: string }>('SELECT state FROM job').toArray()[0]
      try {
        this.#state = row ? parseJobState(JSON.parse(row.state)) : null
      } catch (error) {
        // Loud, but not fatal to the object: every call answers with this error (a logged 500).
        this.#corrupt = error instanceof Error ? error : new Error(String(error))
        console.error(JSON.stringify({ level: 'error', msg: this.#corrupt.message }))
        return
      }
      // This object was restarted while the job ran: resume at once rather than at the watchdog.
      if (this.#state && !isTerminalStatus(this.#state.status)) {
        await ctx.storage.setAlarm(Date.now())
      }
    })
  }

  /**
   * Makes `input.owner` an owner of the job for this key: joins the run in progress, starts a new one
   * (nothing yet, or the last run failed, was canceled or its result expired), or answers from a stored
   * result. Returns that owner's view, or why the job refused another owner.
   */
  async submit(input: SubmitInput): Promise<SubmitResult> {
    this.#assertIntact()
    this.#createSchema()
    // The one await before deciding: whether a succeeded run's result is still stored (its record
    // may still be on its way from this object).
    if (input.stored === undefined && this.#state?.status === 'succeeded' && this.#recording) {
      await this.#recording
    }
    const resultStored =
      input.stored !== undefined ||
      (this.#state?.status === 'succeeded' &&
        (await findResult(this.env.RESULTS, input.key)) !== null)
    const now = Date.now()
    let state = this.#state
    const alreadyEnded =
      state !== null && isTerminalStatus(state.status) && !startsNewRun(state.status, resultStored)
    if (state && !makeRoomForOwner(state, input.owner)) {
      return { kind: 'busy', reason: 'owners' }
    }
    if (input.stored && (!state || isTerminalStatus(state.status))) {
      if (state?.status !== 'succeeded')
        state = this.#recordStoredResult(input, input.stored, state)
      this.#joinEnded(state, input, now)
    } else if (!state || startsNewRun(state.status, resultStored)) {
      if (
        input.webhook &&
        !this.#outbox.register(input.owner, input.webhook.url, input.webhook.secret)
      ) {
        return { kind: 'busy', reason: 'webhooks' }
      }
      state = this.#newRun(input, state, now)
      this.#save()
      await this.#scheduleAlarm()
      this.#start()
    } else if (!isTerminalStatus(state.status)) {
      const owner = state.owners[input.owner]
      if (
        input.webhook &&
        !this.#outbox.register(input.owner, input.webhook.url, input.webhook.secret)
      ) {
        return { kind: 'busy', reason: 'webhooks' }
      }
      if (!owner?.attached) {
        state.owners[input.owner] = {
          joinedAt: now,
          fromEventId: state.firstEventId,
          attached: true,
        }
      }
      this.#save()
    } else {
      this.#joinEnded(state, input, now)
    }
    const view = viewFor(state, input.owner) as JobView
    if (input.waitMs === undefined || isTerminalStatus(view.status)) {
      return { kind: 'joined', view, alreadyEnded }
    }
    const waited = await this.waitForCompletion(input.owner, input.waitMs)
    return { kind: 'joined', view: waited ?? view, alreadyEnded }
  }

  /** The job as `owner` sees it, or null when that key is not an owner (or there is no job). */
  snapshot(owner: string): JobView | null {
    this.#assertIntact()
    return viewFor(this.#state, owner)
  }

  /** Resolves with `owner`'s view once the job has ended for it or `timeoutMs` has passed. */
  async waitForCompletion(owner: string, timeoutMs: number): Promise<JobView | null> {
    this.#assertIntact()
    const until = Date.now() + timeoutMs
    for (;;) {
      const view = viewFor(this.#state, owner)
      const left = until - Date.now()
      if (!view || isTerminalStatus(view.status) || left <= 0) return view
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer)
          this.#waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, left)
        this.#waiters.add(done)
      })
    }
  }

  /**
   * `owner`'s events as an SSE byte stream: those after `lastEventId` (all of its run when absent),
   * then live events until the job ends for it. 'not-found' for a key that is not an owner;
   * 'too-many' when the job or the owner has as many streams open as allowed.
   */
  subscribe(
    owner: string,
    lastEventId: number | null,
  ): ReadableStream<Uint8Array> | 'not-found' | 'too-many' {
    this.#assertIntact()
    const entry = this.#state?.owners[owner]
    if (!entry) return 'not-found'
    const afterId = Math.max(lastEventId ?? 0, entry.fromEventId - 1)
    return this.#subscribers.open(owner, afterId) ?? 'too-many'
  }

  /**
   * Cancels the job for `owner`: it detaches (its slot, webhook and streams end with `canceled`), and
   * when no owner is left the backend run is stopped. A result that is already being stored stands.
   * Null for a key that is not an owner.
   */
  async cancel(owner: string): Promise<JobView | null> {
    this.#assertIntact()
    if (!this.#state?.owners[owner]) return null
    if (this.#storing) await this.#storing.catch(() => {})
    const state = this.#state
    const entry = state?.owners[owner]
    if (!state || !entry) return null
    if (entry.outcome || !entry.attached) return viewFor(state, owner)
    if (attachedOwners(state).some((id) => id !== owner)) {
      await this.#detach(state, owner)
      return viewFor(this.#state, owner)
    }
    const backend = state.backend
    this.#stopExecution()
    await this.#finish('canceled')
    if (backend) await this.#cancelBackendRun(backend)
    return viewFor(this.#state, owner)
  }

  /** Webhook delivery state per endpoint (tests and diagnostics). */
  webhookDeliveries() {
    return tableExists(this.ctx.storage.sql, 'webhooks') ? this.#outbox.list() : []
  }

  /**
   * What this job stores (measurements): event rows and bytes, the database's size, and the progress
   * events it holds in memory instead.
   */
  storageStats(): { events: number; dataBytes: number; databaseBytes: number; heldEvents: number } {
    const stored = tableExists(this.ctx.storage.sql, 'events')
      ? this.#log.size()
      : { events: 0, dataBytes: 0, heldEvents: 0 }
    return { ...stored, databaseBytes: this.ctx.storage.sql.databaseSize }
  }

  override async alarm(): Promise<void> {
    const state = this.#state
    const now = Date.now()
    if (state && !isTerminalStatus(state.status)) {
      if (state.deadline !== undefined && now >= state.deadline) await this.#timeOut(state)
      else if (!this.#execution) this.#start()
    }
    if (state?.pruneAt !== undefined && now >= state.pruneAt && isTerminalStatus(state.status)) {
      this.#log.prune()
      this.#outbox.prune()
      delete state.pruneAt
      this.#save()
    }
    if (state) await this.#outbox.deliverDue(now, readConfig(this.env).webhookPolicy)
    await this.#scheduleAlarm()
  }

  #assertIntact(): void {
    if (this.#corrupt) throw this.#corrupt
  }

  // --- Owners --------------------------------------------------------------------------------------

  /** `input.owner` joins a run that has ended: its view is that ending, its webhook is sent now. */
  #joinEnded(state: JobState, input: SubmitInput, now: number): void {
    const endEventId = state.endEventId ?? state.firstEventId
    const known = state.owners[input.owner]
    // The same key asking again for an ending it already has: nothing to store, no write to wait for.
    if (
      !input.webhook &&
      known &&
      !known.attached &&
      known.fromEventId === state.firstEventId &&
      known.outcome?.eventId === endEventId &&
      known.outcome.status === state.status
    ) {
      return
    }
    state.owners[input.owner] = {
      joinedAt: now,
      fromEventId: state.firstEventId,
      attached: false,
      outcome: outcomeOf(state, endEventId),
    }
    if (input.webhook) {
      this.#outbox.register(input.owner, input.webhook.url, input.webhook.secret)
      this.#sealWebhook(input.owner, state, now)
    }
    this.#save()
    void this.#scheduleAlarm()
  }

  /** `owner` leaves a run that goes on for others: its streams, waiters and webhook see `canceled`. */
  async #detach(state: JobState, owner: string): Promise<void> {
    const entry = state.owners[owner]
    if (!entry) return
    const now = Date.now()
    const event = this.#log.append('canceled', {}, { audience: owner, now })
    entry.attached = false
    entry.outcome = { ...outcomeOf(state, event.id), status: 'canceled', finishedAt: now }
    delete entry.outcome.timings
    delete entry.outcome.error
    this.#sealWebhook(owner, state, now)
    this.#save()
    this.#subscribers.broadcast(event)
    this.#wakeWaiters()
    await this.env.KEY_QUOTA.getByName(owner).releaseJob(state.key)
    await this.#scheduleAlarm()
  }

  // --- Runs ----------------------------------------------------------------------------------------

  #newRun(input: SubmitInput, previous: JobState | null, now: number): JobState {
    const state = this.#nextRunState(input, previous, {
      status: 'queued',
      step: 0,
      createdAt: now,
      deadline: now + readConfig(this.env).jobTimeoutMs,
    })
    state.owners[input.owner] = { joinedAt: now, fromEventId: state.firstEventId, attached: true }
    this.#state = state
    this.#subscribers.broadcast(this.#log.append('queued', { id: input.key }, { now }))
    return state
  }

  /** A job made from a stored result (its object lost its state, or never ran it here). */
  #recordStoredResult(
    input: SubmitInput,
    stored: NonNullable<SubmitInput['stored']>,
    previous: JobState | null,
  ): JobState {
    const finishedAt = Date.parse(stored.createdAt)
    const state = this.#nextRunState(input, previous, {
      status: 'succeeded',
      step: input.request.steps,
      createdAt: finishedAt,
      finishedAt,
      timings: stored.timings,
      pruneAt: Date.now() + readConfig(this.env).eventRetentionMs,
    })
    const images = imageUrls(input.origin, input.key, input.request.count)
    state.endEventId = this.#log.append('succeeded', { images, timings: stored.timings }).id
    this.#state = state
    return state
  }

  /** The next run's state: the request's fields, the next run number, and the owners of earlier runs. */
  #nextRunState(
    input: SubmitInput,
    previous: JobState | null,
    fields: Pick<JobState, 'status' | 'step' | 'createdAt'> & Partial<JobState>,
  ): JobState {
    return {
      version: JOB_STATE_VERSION,
      key: input.key,
      origin: input.origin,
      modelId: input.modelId,
      className: input.className,
      request: input.request,
      run: (previous?.run ?? 0) + 1,
      attempts: 0,
      requestId: input.requestId,
      firstEventId: this.#log.nextId(),
      // Owners of earlier runs keep their view of how those ended.
      owners: { ...previous?.owners },
      ...fields,
    }
  }

  #start(): void {
    const state = this.#state
    if (!state) return
    const controller = new AbortController()
    this.#execution = controller
    this.#execute({ run: state.run, signal: controller.signal }).finally(() => {
      if (this.#execution === controller) this.#execution = null
    })
  }

  #stopExecution(): void {
    this.#execution?.abort(new Error('job stopped'))
    this.#execution = null
  }

  async #execute(token: RunToken): Promise<void> {
    const state = this.#state
    if (!state) return
    const config = readConfig(this.env)
    try {
      const result = await runWithFailover({
        backendUrls: config.backendUrls,
        routing: config.backendRouting,
        backendWeights: config.backendWeights,
        maxAttempts: config.backendMaxAttempts,
        secret: config.backendSecret,
        // Named on every attempt, the default model too: a backend whose own default differs (a
        // fleet mid-rollout) still runs the model this job's result key was made for.
        request: { ...state.request, model: state.modelId },
        requestId: state.requestId,
        signal: token.signal,
        idleTimeoutMs: config.backendIdleTimeoutMs,
        spread: Number.parseInt(state.key.slice(0, 8), 16),
        runIdPrefix: `${state.key.slice(0, 24)}-${state.run}-${state.attempts}`,
        onAttempt: (attempt, backendUrl, runId) => {
          if (!isCurrent(this.#state, token)) return
          state.attempts += 1
          state.step = 0
          state.backend = { url: backendUrl, runId }
          this.#save()
          if (state.attempts > 1) {
            const reason = attempt > 1 ? 'backend-failed' : 'job-resumed'
            this.#emit(this.#log.append('retrying', { attempt: state.attempts, reason }))
          }
        },
        onEvent: (event) => {
          if (isCurrent(this.#state, token)) this.#onBackendEvent(state, event)
        },
      })
      if (!isCurrent(this.#state, token)) return
      if (result.modelId !== state.modelId) {
        throw new BackendFailure(`backend returned model ${result.modelId}`, { retryable: false })
      }
      const storing = this.#storeAndSucceed(state, result)
      this.#storing = storing
      try {
        await storing
      } finally {
        if (this.#storing === storing) this.#storing = null
      }
    } catch (error) {
      if (!isCurrent(this.#state, token)) return
      console.error(failureLogLine(state, error))
      await this.#finish('failed', failureProblem(error))
    }
  }

  /**
   * Stores the images, then ends the job as succeeded: one step, so nothing can end it in between.
   * The result's record follows the images but is not waited for: `succeeded` needs the images stored
   * (its URLs must work), while the record only lets later requests find the result without this
   * object, which answers for it meanwhile (submit waits for #recording). A record that is never
   * written (a failed put, an object lost before it) makes the next identical request run again, to
   * the same pixels.
   */
  async #storeAndSucceed(state: JobState, result: ResultEvent): Promise<void> {
    const images = result.images.map((base64) =>
      Uint8Array.from(atob(base64), (char) => char.charCodeAt(0)),
    )
    await this.storeResult(state, result, images)
    this.#recordResult({
      key: state.key,
      modelId: state.modelId,
      count: images.length,
      timings: result.timings,
      createdAt: new Date().toISOString(),
    })
    if (this.#state !== state || isTerminalStatus(state.status)) return
    state.timings = result.timings
    await this.#finish('succeeded')
  }

  /** Writes a result's images to R2 (a method of its own so tests can hold it to interleave a cancel). */
  protected async storeResult(
    state: JobState,
    _result: ResultEvent,
    images: Uint8Array[],
  ): Promise<void> {
    await saveImages(this.env.RESULTS, state.key, images)
  }

  /** Writes the record of a result whose images are stored, in the background (see #storeAndSucceed). */
  #recordResult(record: ResultRecord): void {
    const recording = saveRecord(this.env.RESULTS, record)
      .catch((error: unknown) => {
        const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
        console.error(
          JSON.stringify({
            level: 'error',
            msg: 'result record not stored',
            key: record.key,
            reason,
          }),
        )
      })
      .finally(() => {
        if (this.#recording === recording) this.#recording = null
      })
    this.#recording = recording
  }

  #onBackendEvent(state: JobState, event: RunEvent): void {
    switch (event.type) {
      case 'started':
        if (event.modelId !== state.modelId) {
          // Another backend may run the model asked for; this one may serve its own model well, so
          // the mismatch is not held against it (a service that predates `model` runs its default).
          throw new BackendFailure(
            `backend runs model ${event.modelId}, the job asked for ${state.modelId}`,
            { retryable: true, unhealthy: false },
          )
        }
        if (canMove(state.status, 'running')) {
          state.status = 'running'
          state.startedAt ??= Date.now()
          this.#save()
        }
        this.#emit(this.#log.append('started', { attempt: state.attempts, modelId: event.modelId }))
        return
      case 'step': {
        // Progress lives in memory (the log holds steps there too); a restart begins a new attempt at step 0.
        const { step, totalSteps, t, heavy, heavyCalls, elapsedMs } = event
        state.step = step + 1
        const data = { step, totalSteps, t, heavy, elapsedMs }
        this.#emit(
          this.#log.append('step', heavyCalls === undefined ? data : { ...data, heavyCalls }),
        )
        return
      }
      case 'preview':
        this.#emit(this.#log.append('preview', { step: event.step, images: event.images }))
        return
      default:
        return
    }
  }

  /** The deadline passed: a result being stored stands, otherwise the job fails and the run stops. */
  async #timeOut(state: JobState): Promise<void> {
    if (this.#storing) await this.#storing.catch(() => {})
    if (isTerminalStatus(state.status)) return
    const backend = state.backend
    this.#stopExecution()
    await this.#finish('failed', {
      status: 504,
      type: PROBLEM_TYPES.timeout,
      title: 'Generation timed out',
      detail: `The job did not finish within ${readConfig(this.env).jobTimeoutMs / 1000} s.`,
    })
    if (backend) await this.#cancelBackendRun(backend)
  }

  /**
   * Ends the current run for every owner still attached: records the outcome (only if the machine
   * allows the move: terminal states are final), frees their slots, wakes waiters, ends streams,
   * seals webhooks.
   */
  async #finish(status: TerminalStatus, failure?: ProblemInit): Promise<void> {
    const state = this.#state
    if (!state || !canMove(state.status, status)) return
    const now = Date.now()
    state.status = status
    state.finishedAt = now
    state.pruneAt = now + readConfig(this.env).eventRetentionMs
    delete state.deadline
    delete state.backend
    let event: LoggedEvent
    if (status === 'succeeded' && state.timings) {
      const images = imageUrls(state.origin, state.key, state.request.count)
      event = this.#log.append('succeeded', { images, timings: state.timings }, { now })
    } else if (status === 'failed') {
      state.error = problem(failure ?? { status: 500, title: 'Generation failed' })
      event = this.#log.append('failed', { problem: state.error }, { now })
    } else {
      event = this.#log.append('canceled', {}, { now })
    }
    state.endEventId = event.id
    const released: string[] = []
    for (const [id, owner] of Object.entries(state.owners)) {
      if (!owner.attached) continue
      owner.attached = false
      owner.outcome = outcomeOf(state, event.id)
      released.push(id)
      this.#sealWebhook(id, state, now)
    }
    this.#save()
    this.#emit(event)
    this.#wakeWaiters()
    await Promise.all(
      released.map((owner) => this.env.KEY_QUOTA.getByName(owner).releaseJob(state.key)),
    )
    // Delivery runs from the alarm (due now), so ending a job never waits on a slow receiver.
    await this.#scheduleAlarm()
  }

  async #cancelBackendRun(backend: { url: string; runId: string }): Promise<void> {
    const config = readConfig(this.env)
    const requestId = this.#state?.requestId ?? ''
    const confirmed = await cancelRun(backend.url, config.backendSecret, backend.runId, requestId)
    if (!confirmed) {
      console.warn(
        JSON.stringify({ level: 'warn', msg: 'backend did not confirm the cancel', requestId }),
      )
    }
  }

  // --- Storage, events, alarm ----------------------------------------------------------------------

  #page(afterId: number, owner: string, limit: number): LoggedEvent[] {
    const entry = this.#state?.owners[owner]
    if (!entry) return []
    return this.#log.page(afterId, owner, limit, entry.outcome?.eventId)
  }

  /** Gives `owner`'s endpoints the message for how the job ended for it. */
  #sealWebhook(owner: string, state: JobState, now: number): void {
    const outcome = state.owners[owner]?.outcome
    if (outcome) this.#outbox.seal(owner, webhookMessage(state, owner, outcome), now)
  }

  #emit(event: LoggedEvent): void {
    this.#subscribers.broadcast(event)
  }

  #wakeWaiters(): void {
    for (const wake of [...this.#waiters]) wake()
  }

  #createSchema(): void {
    if (this.#schemaReady) return
    this.#schemaReady = true
    const sql = this.ctx.storage.sql
    sql.exec(
      'CREATE TABLE IF NOT EXISTS job (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)',
    )
    this.#log.createSchema()
    this.#outbox.createSchema()
    // Objects created by the first version have tables without these columns.
    addMissingColumns(sql, 'events', { audience: 'TEXT' })
    addMissingColumns(sql, 'webhooks', {
      owner: "TEXT NOT NULL DEFAULT ''",
      lease_until: 'INTEGER',
      given_up_at: 'INTEGER',
    })
  }

  #save(): void {
    this.ctx.storage.sql.exec(
      'INSERT OR REPLACE INTO job (id, state) VALUES (1, ?)',
      JSON.stringify(this.#state),
    )
  }

  /** The next alarm: the watchdog while active, the next webhook retry, the log's pruning; or none. */
  async #scheduleAlarm(): Promise<void> {
    const state = this.#state
    const times: number[] = []
    if (state && !isTerminalStatus(state.status)) {
      times.push(Math.min(Date.now() + WATCHDOG_MS, state.deadline ?? Number.POSITIVE_INFINITY))
    }
    if (state?.pruneAt !== undefined) times.push(state.pruneAt)
    const webhookAt = state ? this.#outbox.nextAttemptAt() : null
    if (webhookAt !== null) times.push(webhookAt)
    if (times.length === 0) await this.ctx.storage.deleteAlarm()
    else await this.ctx.storage.setAlarm(Math.min(...times))
  }
}
