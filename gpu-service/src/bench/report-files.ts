// Writes a benchmark's report as `<name>.json` (the figures) and `<name>.md` (the table) into one folder.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * @example
 * await writeReportFiles('docs/bench', 'gpu-service', report, renderMarkdown(report))
 */
export async function writeReportFiles(
  dir: string,
  name: string,
  report: unknown,
  markdown: string,
): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const files = [join(dir, `${name}.json`), join(dir, `${name}.md`)]
  await writeFile(files[0] as string, `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(files[1] as string, markdown)
  return files
}
