// `npm run eval`'s arguments against the chosen model: a model without `supports` keeps the K sweep at
// 50 steps, a distilled one is measured at its recommended setting and refuses settings it does not
// support, by flag; `--record` writes into that model's own manifest (exit codes: eval.test.ts).
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readEvalArgs, resolveEvalArgs } from '../../../gpu-service/src/cli/eval-args.ts'
import { chooseModel } from '../../../gpu-service/src/cli/model-choice.ts'
import { UsageError } from '../../../gpu-service/src/cli/usage-error.ts'
import type { ModelFolder } from '../../../gpu-service/src/onnx/models-folder.ts'
import {
  type ModelsFolder,
  STUDENT_FOLDER,
  STUDENT_ID,
  teacherAndStudent,
} from '../fixtures/models-folder.ts'

let folder: ModelsFolder
let teacher: ModelFolder
let student: ModelFolder
beforeAll(async () => {
  folder = await teacherAndStudent()
  teacher = await chooseModel(folder.dir, undefined)
  student = await chooseModel(folder.dir, STUDENT_ID)
})
afterAll(() => folder.remove())

/** The usage error's message for `argv` on `model`, or undefined when there is none. */
function refusal(argv: string[], model: () => ModelFolder): string | undefined {
  try {
    resolveEvalArgs(readEvalArgs(argv), model())
    return undefined
  } catch (error) {
    if (error instanceof UsageError) return error.message
    throw error
  }
}

describe('npm run eval arguments', () => {
  it('measures the default model for K = 1, 2, 4, 8 at 50 steps and its recommended guidance, into docs/eval', () => {
    expect(resolveEvalArgs(readEvalArgs([]), teacher)).toEqual({
      settings: {
        heavyIntervals: [1, 2, 4, 8],
        seeds: [0, 1, 2],
        samplesPerClass: 100,
        steps: 50,
        guidance: teacher.manifest.recommended.guidance,
        batch: 50,
      },
      out: 'docs/eval',
      record: false,
    })
  })

  it('measures a distilled model at its recommended setting, into docs/eval/<its subfolder>', () => {
    const { settings, out } = resolveEvalArgs(readEvalArgs(['--model', STUDENT_ID]), student)
    expect(settings).toMatchObject({ heavyIntervals: [2], steps: 4, guidance: 1 })
    expect(out).toBe(join('docs/eval', STUDENT_FOLDER))
  })

  it.each([
    [['--steps', '8'], '--steps: this model samples with 4 steps only'],
    [
      ['--intervals', '1,2,4'],
      '--intervals: K=1: at 4 steps this model runs the heavy encoder at {"steps":[0,2]} only\n' +
        '--intervals: K=4: at 4 steps this model runs the heavy encoder at {"steps":[0,2]} only',
    ],
    [['--guidance', '3'], '--guidance: this model was distilled at guidance 1 only'],
  ])('refuses %j for a distilled model, naming the flag', (argv, message) => {
    expect(refusal(argv, () => student)).toBe(message)
    expect(refusal(argv, () => teacher)).toBeUndefined()
  })

  it('names bad flags as they were typed', () => {
    expect(refusal(['--colour', 'red'], () => teacher)).toBe("Unknown option '--colour'")
    expect(refusal(['--samples-per-class', '1', '--intervals', '0'], () => teacher)).toBe(
      '--intervals: K must be >= 1\n--samples-per-class: Too small: expected number to be >=2',
    )
  })
})

describe('npm run eval', () => {
  it.each([
    [['--model', STUDENT_ID, '--steps', '50'], '--steps: this model samples with 4 steps only'],
    [['--model', 'dualrate-ffffffffffff'], '--model: no model dualrate-ffffffffffff in'],
  ])('refuses %j with exit 64 before loading anything', (argv, message) => {
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'gpu-service/src/cli/eval.ts', '--models', folder.dir, ...argv],
      { encoding: 'utf8' },
    )
    expect(child.status).toBe(64)
    expect(child.stdout).toBe('')
    expect(child.stderr).toContain(`eval: ${message}`)
    expect(child.stderr).toContain('usage: npm run eval --')
  })
})
