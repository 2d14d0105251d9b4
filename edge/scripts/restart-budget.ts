// How often `npm start` brings a crashed gpu-service back: at most `maxRestarts` within a sliding window,
// each after a doubling delay (1 s, 2 s, 4 s). One more crash inside the window is a fault that restarting
// will not fix (a bad model file, a port taken), so the supervisor stops instead of looping.

export type RestartDecision =
  | { restart: true; delayMs: number /** 1-based, within the window. */; attempt: number }
  | { restart: false /** Restarts already spent within the window. */; restarts: number }

export interface RestartBudgetOptions {
  maxRestarts?: number
  windowMs?: number
  firstDelayMs?: number
}

export class RestartBudget {
  readonly maxRestarts: number
  readonly windowMs: number
  readonly firstDelayMs: number
  /** When each restart within the window was granted. */
  #granted: number[] = []

  constructor({
    maxRestarts = 3,
    windowMs = 60_000,
    firstDelayMs = 1_000,
  }: RestartBudgetOptions = {}) {
    this.maxRestarts = maxRestarts
    this.windowMs = windowMs
    this.firstDelayMs = firstDelayMs
  }

  /**
   * Whether a process that just exited may start again, and after how long.
   *
   * @example
   * const budget = new RestartBudget() // 3 per 60 s
   * budget.next(0) // { restart: true, delayMs: 1000, attempt: 1 }
   */
  next(now = Date.now()): RestartDecision {
    this.#granted = this.#granted.filter((at) => now - at < this.windowMs)
    if (this.#granted.length >= this.maxRestarts) {
      return { restart: false, restarts: this.#granted.length }
    }
    const delayMs = this.firstDelayMs * 2 ** this.#granted.length
    this.#granted.push(now)
    return { restart: true, delayMs, attempt: this.#granted.length }
  }
}
