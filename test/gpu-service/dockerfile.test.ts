// gpu-service/Dockerfile, checked without a Docker engine: dockerfile-utils (the linter behind VS Code's
// Dockerfile support) with every rule an error, and the properties the image promises.
import { readFileSync } from 'node:fs'
import { matchesGlob } from 'node:path'
import { ValidationSeverity, validate } from 'dockerfile-utils'
import { describe, expect, it } from 'vitest'
import { readModelsFolder } from '../../gpu-service/src/onnx/models-folder.ts'

const dockerfile = readFileSync('gpu-service/Dockerfile', 'utf8')
/** Instructions with continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n\s*/g, ' ')
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.startsWith('#'))
const finalStage = instructions.slice(
  instructions.findLastIndex((line) => line.startsWith('FROM ')),
)

/** Dockerfile.dockerignore's patterns, in order. */
const ignorePatterns = readFileSync('gpu-service/Dockerfile.dockerignore', 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'))

/**
 * Whether `path` reaches the build context, by Docker's rules: the last pattern matching the path or a
 * folder above it decides, and `!` lets it in.
 */
function inBuildContext(path: string): boolean {
  const parts = path.split('/')
  const selfAndFolders = parts.map((_, index) => parts.slice(0, index + 1).join('/'))
  let included = true
  for (const line of ignorePatterns) {
    const negated = line.startsWith('!')
    const pattern = (negated ? line.slice(1) : line).replace(/\/$/, '')
    if (selfAndFolders.some((candidate) => matchesGlob(candidate, pattern))) included = negated
  }
  return included
}

describe('gpu-service/Dockerfile', () => {
  it('passes dockerfile-utils with warnings counted as errors', () => {
    const strict = ValidationSeverity.ERROR
    const diagnostics = validate(dockerfile, {
      deprecatedMaintainer: strict,
      directiveCasing: strict,
      emptyContinuationLine: strict,
      instructionCasing: strict,
      instructionCmdMultiple: strict,
      instructionEntrypointMultiple: strict,
      instructionHealthcheckMultiple: strict,
      instructionJSONInSingleQuotes: strict,
      instructionWorkdirRelative: strict,
    })
    expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([])
  })

  it('builds the CPU image by default and the CUDA image from an NVIDIA CUDA cuDNN runtime base', () => {
    expect(instructions).toContain('ARG VARIANT=cpu')
    expect(instructions).toContain(`FROM runtime-\${VARIANT}`)
    expect(instructions.find((line) => line.startsWith('ARG CUDA_IMAGE='))).toMatch(
      /^ARG CUDA_IMAGE=nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/,
    )
    expect(instructions).toContain(`FROM \${CUDA_IMAGE} AS runtime-cuda`)
  })

  it('installs without the CUDA provider, and the CUDA variant fetches it and checks that it arrived', () => {
    const install = instructions
      .find((line) => line.startsWith('RUN ') && line.includes('npm ci'))
      ?.replace(/\s+/g, ' ')
    expect(install).toMatch(/^RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev /)
    expect(install).toContain(
      'if [ "$VARIANT" = "cuda" ]; then ONNXRUNTIME_NODE_INSTALL=cuda12 node ' +
        'node_modules/onnxruntime-node/script/install.js && test -f ' +
        'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so; fi',
    )
    const packageJson = JSON.parse(readFileSync('package.json', 'utf8'))
    expect(packageJson.allowScripts['onnxruntime-node']).toBe(false)
  })

  it('runs as a non-root user, with a health check, in production mode', () => {
    expect(finalStage).toContain('USER 10001:10001')
    expect(
      finalStage.some((line) => line.startsWith('HEALTHCHECK ') && line.includes('/healthz')),
    ).toBe(true)
    expect(finalStage.find((line) => line.startsWith('ENV NODE_ENV=production'))).toContain(
      'HOST=0.0.0.0',
    )
    expect(finalStage.at(-1)).toBe('CMD ["node", "gpu-service/src/service/main.ts"]')
  })

  it("copies every model's manifest and ONNX files, the default's and each subfolder model's", async () => {
    expect(finalStage).toContain('COPY gpu-service/models ./gpu-service/models')
    const needed = (await readModelsFolder('gpu-service/models')).flatMap(({ dir, manifest }) =>
      ['manifest.json', manifest.models.heavy.file, manifest.models.light.file].map(
        (file) => `${dir}/${file}`,
      ),
    )
    // As a distilled student will be committed, beside the default model.
    needed.push(
      'gpu-service/models/mmd-8step/manifest.json',
      'gpu-service/models/mmd-8step/heavy.onnx',
      'gpu-service/models/mmd-8step/light.onnx',
    )
    expect(needed.filter((path) => !inBuildContext(path))).toEqual([])
    const notNeeded = [
      'gpu-service/models/evaluator/classifier.onnx',
      'gpu-service/models/evaluator/evaluator.json',
      'gpu-service/models/golden.json',
      'gpu-service/models/MODEL_CARD.md',
      'gpu-service/training/train.py',
    ]
    expect(notNeeded.filter(inBuildContext)).toEqual([])
  })
})
