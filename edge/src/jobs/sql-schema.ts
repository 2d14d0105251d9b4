// Small helpers for a Durable Object's SQLite schema: whether a table exists (a read that creates no
// storage), and adding columns that objects created by an earlier version lack.

/** True when `table` exists in this object's database. */
export function tableExists(sql: SqlStorage, table: string): boolean {
  return (
    sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table).toArray()
      .length > 0
  )
}

/**
 * Adds each column of `columns` (name -> SQL type and constraints) that `table` lacks. SQLite's ALTER
 * TABLE ADD COLUMN needs a default for NOT NULL columns.
 *
 * @example
 * addMissingColumns(sql, 'events', { audience: 'TEXT' })
 */
export function addMissingColumns(
  sql: SqlStorage,
  table: string,
  columns: Record<string, string>,
): void {
  const present = new Set(
    sql
      .exec<{ name: string }>('SELECT name FROM pragma_table_info(?)', table)
      .toArray()
      .map((column) => column.name),
  )
  for (const [name, definition] of Object.entries(columns)) {
    if (!present.has(name)) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`)
  }
}
