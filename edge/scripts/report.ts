// What the measuring scripts (bench:edge, load, sim:fleet) report with: nearest-rank latency percentiles
// in ms, and Markdown tables padded as the formatter writes them.

/**
 * The nearest-rank percentile of a sample (NaN for an empty one).
 *
 * @example
 * percentile([5, 1, 3], 50) // 3
 */
export function percentile(sample: readonly number[], p: number): number {
  const sorted = [...sample].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1] ?? Number.NaN
}

/** Two decimals, as the reports print milliseconds. */
export const round = (ms: number) => Math.round(ms * 100) / 100

export interface LatencySummary {
  n: number
  p50: number
  p95: number
  p99: number
  max: number
  mean: number
}

/**
 * Count, p50, p95, p99, max and mean of a sample, rounded to 0.01.
 *
 * @example
 * summarize([12, 15, 40]) // { n: 3, p50: 15, p95: 40, p99: 40, max: 40, mean: 22.33 }
 */
export function summarize(sample: readonly number[]): LatencySummary {
  return {
    n: sample.length,
    p50: round(percentile(sample, 50)),
    p95: round(percentile(sample, 95)),
    p99: round(percentile(sample, 99)),
    max: round(sample.length === 0 ? Number.NaN : Math.max(...sample)),
    mean: round(sample.reduce((sum, value) => sum + value, 0) / sample.length),
  }
}

/**
 * A Markdown table with padded columns (as the formatter writes it).
 *
 * @example
 * markdownTable(['policy', 'p95 ms'], [['load', 5761]])
 */
export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows].map((row) => row.map(String))
  const widths = header.map((_, column) =>
    Math.max(3, ...cells.map((row) => row[column]?.length ?? 0)),
  )
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`
  const [head = [], ...body] = cells
  return [line(head), line(widths.map((width) => '-'.repeat(width))), ...body.map(line)].join('\n')
}
