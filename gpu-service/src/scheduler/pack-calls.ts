// Splits one tick's runs into model calls: each call holds at most `maxRows` rows and a run's rows are
// never split across calls (its feature rows and x0 rows stay one slice). First fit, in the order given,
// so the earliest admitted runs fill the first call and a small run fills a gap beside a large one.

/**
 * Packs items into as few groups of at most `maxRows` rows as first fit finds, keeping their order
 * within each group. Throws a RangeError for an item larger than `maxRows`.
 *
 * @example
 * packCalls([{ rows: 128 }, { rows: 1 }, { rows: 2 }], 128) // [[{ rows: 128 }], [{ rows: 1 }, { rows: 2 }]]
 */
export function packCalls<Item extends { readonly rows: number }>(
  items: readonly Item[],
  maxRows: number,
): Item[][] {
  const calls: { rows: number; items: Item[] }[] = []
  for (const item of items) {
    if (item.rows > maxRows) {
      throw new RangeError(`an item of ${item.rows} rows exceeds maxRows ${maxRows}`)
    }
    const call = calls.find((candidate) => candidate.rows + item.rows <= maxRows)
    if (call) {
      call.items.push(item)
      call.rows += item.rows
    } else {
      calls.push({ rows: item.rows, items: [item] })
    }
  }
  return calls.map((call) => call.items)
}
