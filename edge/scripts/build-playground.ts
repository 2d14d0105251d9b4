// Builds the playground page (edge/playground/) into dist/playground/, the worker's static assets
// (wrangler.toml [assets]): the TypeScript bundled for the browser with esbuild, the HTML, CSS and the
// `_headers` file copied. wrangler.toml's [build] runs it before every `wrangler dev` and `wrangler
// deploy`; `npm test` runs it before the workerd tests. Nothing is fetched from a CDN at run time.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, type Plugin } from 'esbuild'

const SOURCE_DIR = 'edge/playground'
export const PLAYGROUND_OUT_DIR = 'dist/playground'
const COPIED = ['index.html', 'playground.css', '_headers']

/**
 * Leaves zod's `locales` namespace out of the bundle (260 kB of the 470 kB). The shared schemas import
 * `z`, zod's namespace object, which keeps every export reachable; the page shows English messages
 * only, and zod loads the English locale on its own, not through this namespace.
 */
const withoutZodLocales: Plugin = {
  name: 'without-zod-locales',
  setup(context) {
    context.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'empty' } : undefined,
    )
    context.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: '', loader: 'js' }))
  },
}

/**
 * Writes the playground's files to `outDir`. Each file is replaced atomically and only when its bytes
 * change: several `wrangler dev` (the end-to-end tests) may build and serve the folder at once.
 *
 * @example
 * await buildPlayground() // dist/playground/{index.html, playground.js, playground.css, _headers}
 */
export async function buildPlayground(outDir = PLAYGROUND_OUT_DIR): Promise<void> {
  const bundle = await build({
    entryPoints: [join(SOURCE_DIR, 'playground.ts')],
    outdir: outDir,
    entryNames: 'playground',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
    plugins: [withoutZodLocales],
    write: false,
  })
  const files = [
    ...bundle.outputFiles.map((file) => ({ name: basename(file.path), contents: file.contents })),
    ...(await Promise.all(
      COPIED.map(async (name) => ({ name, contents: await readFile(join(SOURCE_DIR, name)) })),
    )),
  ]
  await mkdir(outDir, { recursive: true })
  await Promise.all(
    files.map(({ name, contents }) => replaceIfChanged(join(outDir, name), contents)),
  )
}

async function replaceIfChanged(path: string, contents: Uint8Array): Promise<void> {
  const current = await readFile(path).catch(() => null)
  if (current?.equals(contents)) return
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, contents)
  await rename(temporary, path)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildPlayground()
}
