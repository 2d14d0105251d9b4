// Passive health of the backends, per isolate: a backend that just failed is tried last until its
// cool-down passes (or the time it asked for in Retry-After), so one dead backend costs one attempt.
const unhealthyUntil = new Map<string, number>()

export const COOL_DOWN_MS = 30_000

/**
 * Backends in the order to try: healthy ones first, rotated by `spread` so jobs share the load, then
 * those cooling down, soonest back first.
 *
 * @example
 * const [first, ...fallbacks] = orderBackends(config.backendUrls, resultKey.charCodeAt(0))
 */
export function orderBackends(urls: readonly string[], spread: number, now = Date.now()): string[] {
  const offset = urls.length === 0 ? 0 : Math.abs(Math.trunc(spread)) % urls.length
  const rotated = [...urls.slice(offset), ...urls.slice(0, offset)]
  const downUntil = (url: string) => {
    const until = unhealthyUntil.get(url) ?? 0
    return until > now ? until : 0
  }
  // Array.prototype.sort is stable, so healthy backends keep their rotated order.
  return rotated.sort((a, b) => downUntil(a) - downUntil(b))
}

export function markUnhealthy(url: string, forMs = COOL_DOWN_MS, now = Date.now()): void {
  unhealthyUntil.set(url, now + forMs)
}

export function markHealthy(url: string): void {
  unhealthyUntil.delete(url)
}
