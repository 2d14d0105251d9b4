// `npm run sample`: draws images of one class with the dual-rate sampler and writes them as PNGs, with any
// model of the models folder (`--model ID`; absent: the default). Exit status 64 (EX_USAGE, sysexits.h)
// for a bad command line (an option the model does not support included), 1 for any other failure.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeGrayPng, encodeGridPng } from '../image/png.ts'
import { loadModelPair } from '../onnx/model-pair.ts'
import { sample } from '../sampler/sample.ts'
import { parseSessionConfig } from '../service/config.ts'
import { chooseModel } from './model-choice.ts'
import { DEFAULT_MODELS_DIR, readSampleArgs, resolveSampleArgs, USAGE } from './sample-args.ts'
import { EXIT_USAGE, UsageError } from './usage-error.ts'

async function main(argv: string[]): Promise<void> {
  const raw = readSampleArgs(argv)
  if (raw.help) {
    console.log(USAGE)
    return
  }
  const { dir, manifest } = await chooseModel(raw.models ?? DEFAULT_MODELS_DIR, raw.model)
  const { options, outDir } = resolveSampleArgs(raw, manifest)

  const pair = await loadModelPair(dir, parseSessionConfig(process.env))
  try {
    const result = await sample(pair.models, pair.manifest, options)
    const { width, height } = manifest.image
    await mkdir(outDir, { recursive: true })
    for (let n = 0; n < result.count; n++) {
      const image = result.images.subarray(n * result.pixels, (n + 1) * result.pixels)
      await writeFile(
        join(outDir, `${options.classIndex}-${n}.png`),
        encodeGrayPng(image, width, height),
      )
    }
    await writeFile(
      join(outDir, 'grid.png'),
      encodeGridPng(result.images, result.count, width, height),
    )
    const className = manifest.classes[options.classIndex]
    const macsPerImage = result.macs / result.count / 1e6
    console.log(
      `wrote ${result.count} x ${className} (class ${options.classIndex}) and grid.png to ${outDir}: ` +
        `${options.steps} steps, ${result.heavyCalls} heavy + ${result.lightCalls} light calls, ` +
        `${macsPerImage.toFixed(1)} MMACs per image, ${result.wallMs.toFixed(0)} ms, ` +
        `model ${manifest.modelId}`,
    )
  } finally {
    await pair.release()
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`sample: ${error.message.replaceAll('\n', '\nsample: ')}\n\n${USAGE}`)
    process.exitCode = EXIT_USAGE
    return
  }
  console.error(`sample: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})
