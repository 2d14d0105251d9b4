import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode } from 'fast-png'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ModelsFolder,
  STUDENT_FOLDER,
  STUDENT_ID,
  TEACHER_ID,
  teacherAndStudent,
} from '../fixtures/models-folder.ts'

const outDir = mkdtempSync(join(tmpdir(), 'dualrate-sample-'))
afterAll(() => rmSync(outDir, { recursive: true, force: true }))
/** Stands for outDir in test names, which should not carry a random path. */
const OUT = '<out-dir>'

/** Runs the CLI as `npm run sample` does, in a child process. */
function runSample(args: string[]) {
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'gpu-service/src/cli/sample.ts', ...args],
    { encoding: 'utf8', env: { ...process.env, DUALRATE_INTRA_OP_THREADS: '1' } },
  )
  return { status: child.status, stdout: child.stdout, stderr: child.stderr }
}

describe('npm run sample', () => {
  it('writes <classIndex>-<n>.png per image and grid.png', () => {
    const result = runSample([
      '--class',
      'sneaker',
      '--count',
      '3',
      '--steps',
      '8',
      '--heavy-every',
      '4',
      '--out-dir',
      outDir,
    ])
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(
      /^wrote 3 x Sneaker \(class 7\) and grid\.png to .*: 8 steps, 2 heavy \+ 8 light calls/,
    )
    expect(readdirSync(outDir).sort()).toEqual(['7-0.png', '7-1.png', '7-2.png', 'grid.png'])
    const png = decode(readFileSync(join(outDir, '7-0.png')))
    expect([png.width, png.height, png.channels, png.depth]).toEqual([28, 28, 1, 8])
  })

  it.each([
    [
      ['--class', 'Sock', '--out-dir', OUT],
      '--class: unknown class "Sock"; expected one of T-shirt/top,',
    ],
    [
      ['--class', '3', '--count', '0', '--out-dir', OUT],
      '--count: Too small: expected number to be >=1',
    ],
    [
      ['--class', '3', '--guidance', '21', '--out-dir', OUT],
      '--guidance: Too big: expected number to be <=20',
    ],
    [
      ['--class', '3', '--steps', 'many', '--out-dir', OUT],
      '--steps: expected a number, got "many"',
    ],
    [
      ['--class', '3', '--steps', '10', '--heavy-steps', '0,10', '--out-dir', OUT],
      '--heavy-steps: step 10 is out of range for 10 steps (0..9)',
    ],
    [
      ['--class', '3', '--heavy-every', '2', '--heavy-steps', '0,4', '--out-dir', OUT],
      '--heavy-steps: give one of --heavy-every, --heavy-steps, --heavy-calls, --adaptive, not several',
    ],
    [
      ['--class', '3', '--steps', '40', '--heavy-calls', '5', '--out-dir', OUT],
      '--heavy-calls: {"calls": N} needs a calibrated placement; this model has them for 50 steps',
    ],
    [
      ['--class', '3', '--steps', '10', '--heavy-calls', '11', '--out-dir', OUT],
      '--heavy-calls: 11 heavy calls do not fit in 10 steps',
    ],
    [
      ['--class', '3', '--adaptive', '0', '--out-dir', OUT],
      '--adaptive: Too small: expected number to be >0',
    ],
    [['--class', '3'], '--out-dir: required'],
    [['--class', '3', '--out-dir', OUT, '--colour', 'red'], "Unknown option '--colour'"],
  ])('rejects %j with exit 64 and a message', (args, message) => {
    const result = runSample(args.map((arg) => (arg === OUT ? outDir : arg)))
    expect(result.status).toBe(64)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain(`sample: ${message}`)
    expect(result.stderr).toContain('Usage: npm run sample --')
  })

  it('exits 1 naming the file when the models directory has no manifest', () => {
    const result = runSample(['--class', '3', '--out-dir', outDir, '--models', 'test/fixtures'])
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch('sample: test/fixtures/manifest.json: not found\n')
  })
})

describe('npm run sample --model', () => {
  let folder: ModelsFolder
  beforeAll(async () => {
    folder = await teacherAndStudent()
  })
  afterAll(() => folder.remove())

  /** `npm run sample` on the teacher-and-student folder. */
  const sampleWith = (args: string[]) =>
    runSample([
      '--models',
      folder.dir,
      '--class',
      '3',
      '--out-dir',
      join(outDir, 'by-model'),
      ...args,
    ])

  it("samples with the model chosen, by default at that model's recommended setting", () => {
    const result = sampleWith(['--model', STUDENT_ID, '--count', '1'])
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(
      new RegExp(`: 4 steps, 2 heavy \\+ 4 light calls, .* ms, model ${STUDENT_ID}\n$`),
    )
  })

  it.each([
    [['--steps', '8'], '--steps: this model samples with 4 steps only'],
    [
      ['--heavy-steps', '0,1'],
      '--heavy-steps: at 4 steps this model runs the heavy encoder at {"steps":[0,2]} only',
    ],
    [['--guidance', '2'], '--guidance: this model was distilled at guidance 1 only'],
  ])(
    'refuses %j, which the model does not support, with exit 64 naming the flag',
    (args, message) => {
      const result = sampleWith(['--model', STUDENT_ID, ...args])
      expect(result.status).toBe(64)
      expect(result.stderr).toContain(`sample: ${message}\n`)
    },
  )

  it('refuses a model the folder does not hold with exit 64, listing the ones it does', () => {
    const result = sampleWith(['--model', 'dualrate-ffffffffffff'])
    expect(result.status).toBe(64)
    expect(result.stderr).toContain(
      `sample: --model: no model dualrate-ffffffffffff in ${folder.dir}; it holds ` +
        `${TEACHER_ID} (default), ${STUDENT_ID} (${STUDENT_FOLDER})\n`,
    )
  })
})
