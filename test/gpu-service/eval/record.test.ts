// eval --record writes the recommendation into the evaluated model's own manifest, and never leaves an
// invalid one behind.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { recordRecommended } from '../../../gpu-service/src/eval/record.ts'
import { readModelsFolder } from '../../../gpu-service/src/onnx/models-folder.ts'
import {
  type ModelsFolder,
  modelsFolder,
  STUDENT_FOLDER,
  STUDENT_SUPPORTS,
  studentManifest,
} from '../fixtures/models-folder.ts'

let folder: ModelsFolder
let studentDir: string
beforeEach(async () => {
  // A student distilled at two guidance scales, so that there are two settings it supports.
  folder = await modelsFolder({ root: true })
  const supports = { ...STUDENT_SUPPORTS, guidance: [1, 2] }
  await folder.addModel(STUDENT_FOLDER, { ...(await studentManifest()), supports })
  studentDir = join(folder.dir, STUDENT_FOLDER)
})
afterEach(() => folder.remove())

const manifestText = (dir: string) => readFile(join(dir, 'manifest.json'), 'utf8')

describe('recordRecommended', () => {
  it("writes into the subfolder model's manifest and leaves the default model's alone", async () => {
    const rootBefore = await manifestText(folder.dir)
    const studentBefore = JSON.parse(await manifestText(studentDir))
    const recommended = { steps: 4, heavyEvery: 2, guidance: 2 }
    expect(studentBefore.recommended).not.toEqual(recommended)

    const path = await recordRecommended(studentDir, recommended)
    expect(path).toBe(join(studentDir, 'manifest.json'))
    expect(JSON.parse(await manifestText(studentDir))).toEqual({ ...studentBefore, recommended })
    expect(await manifestText(folder.dir)).toBe(rootBefore)
    expect((await readModelsFolder(folder.dir))[1]?.manifest.recommended).toEqual(recommended)
  })

  it('refuses a setting the model does not support, naming the file and leaving it as it was', async () => {
    const before = await manifestText(studentDir)
    // {every: 3} at 4 steps is [0, 3]: not the placement the student was distilled for.
    await expect(
      recordRecommended(studentDir, { steps: 4, heavyEvery: 3, guidance: 1 }),
    ).rejects.toThrow(
      new Error(
        `${join(studentDir, 'manifest.json')}: not recorded: Invalid model manifest:\n` +
          '  recommended: not supported: at 4 steps this model runs the heavy encoder at ' +
          '{"steps":[0,2]} only',
      ),
    )
    expect(await manifestText(studentDir)).toBe(before)
  })

  it('keeps a calibrated heavyCalls recommendation while the recommended step count stays', async () => {
    const root = JSON.parse(await manifestText(folder.dir))
    const withCalls = { ...root.recommended, heavyCalls: 5 }
    await recordRecommended(folder.dir, withCalls)
    await recordRecommended(folder.dir, { steps: 50, heavyEvery: 4, guidance: 1 })
    expect(JSON.parse(await manifestText(folder.dir)).recommended).toEqual({
      steps: 50,
      heavyEvery: 4,
      guidance: 1,
      heavyCalls: 5,
    })
    // Another step count has no calibrated placements: the calibrated recommendation goes.
    await recordRecommended(folder.dir, { steps: 40, heavyEvery: 4, guidance: 1 })
    expect(JSON.parse(await manifestText(folder.dir)).recommended).toEqual({
      steps: 40,
      heavyEvery: 4,
      guidance: 1,
    })
  })
})
