// The models folder: the default model at its root, one more per subfolder with a manifest, and loud
// failures (naming the file) for a folder the service could not serve as a whole.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadModelsFolder, readModelsFolder } from '../../../gpu-service/src/onnx/models-folder.ts'
import { sample } from '../../../gpu-service/src/sampler/sample.ts'
import {
  COMMITTED_MODELS,
  committedManifest,
  type ModelsFolder,
  modelsFolder,
  STUDENT_FOLDER,
  STUDENT_ID,
  studentManifest,
  TEACHER_ID,
  teacherAndStudent,
} from '../fixtures/models-folder.ts'

let folder: ModelsFolder | undefined
afterEach(async () => {
  await folder?.remove()
  folder = undefined
})

describe('readModelsFolder', () => {
  it('lists the default model first, then each subfolder with a manifest; evaluator/ is no model', async () => {
    folder = await teacherAndStudent()
    await mkdir(join(folder.dir, 'notes'))
    const folders = await readModelsFolder(folder.dir)
    expect(
      folders.map(({ dir, manifest, isDefault }) => [dir, manifest.modelId, isDefault]),
    ).toEqual([
      [folder.dir, TEACHER_ID, true],
      [join(folder.dir, STUDENT_FOLDER), STUDENT_ID, false],
    ])
    expect(folders[1]?.manifest.supports).toEqual((await studentManifest()).supports)
  })

  it('reads the committed folder with its own manifest as the default', async () => {
    const folders = await readModelsFolder(COMMITTED_MODELS)
    expect(folders[0]).toMatchObject({ dir: COMMITTED_MODELS, isDefault: true })
    expect(folders[0]?.manifest.modelId).toBe(TEACHER_ID)
    expect(folders.map((entry) => entry.dir)).not.toContain(join(COMMITTED_MODELS, 'evaluator'))
  })

  it('refuses subfolder models without a default manifest at the root, naming the file', async () => {
    folder = await modelsFolder({ root: false })
    await folder.addModel('mmd-8step', await studentManifest())
    await expect(readModelsFolder(folder.dir)).rejects.toThrow(
      new Error(
        `${join(folder.dir, 'manifest.json')}: not found; the default model's manifest belongs ` +
          'there, beside the subfolder models (mmd-8step)',
      ),
    )
  })

  it('refuses two manifests with one model id, naming both files', async () => {
    folder = await modelsFolder({ root: true })
    await folder.addModel('copy', await committedManifest())
    await expect(readModelsFolder(folder.dir)).rejects.toThrow(
      new Error(
        `${join(folder.dir, 'copy', 'manifest.json')}: modelId ${TEACHER_ID} is already the model ` +
          `of ${join(folder.dir, 'manifest.json')}; each model folder needs its own id`,
      ),
    )
  })

  it("refuses an invalid subfolder manifest, naming the file and the schema's reasons", async () => {
    folder = await modelsFolder({ root: true })
    const student = await studentManifest()
    await folder.addModel(STUDENT_FOLDER, {
      ...student,
      recommended: { ...student.recommended, steps: 8 },
    })
    await expect(readModelsFolder(folder.dir)).rejects.toThrow(
      new Error(
        `${join(folder.dir, STUDENT_FOLDER, 'manifest.json')}: Invalid model manifest:\n` +
          '  recommended: not supported: this model samples with 4 steps only',
      ),
    )
  })

  it('reports a missing folder as its missing default manifest', async () => {
    await expect(readModelsFolder('test/no-such-models')).rejects.toThrow(
      new Error('test/no-such-models/manifest.json: not found'),
    )
  })
})

describe('loadModelsFolder', () => {
  it("loads every model's pair from its own folder, the default first", async () => {
    folder = await teacherAndStudent()
    const loaded = await loadModelsFolder(folder.dir, { device: 'cpu', intraOpThreads: 1 })
    try {
      expect(loaded.pairs.map((pair) => [pair.manifest.modelId, pair.dir])).toEqual([
        [TEACHER_ID, folder.dir],
        [STUDENT_ID, join(folder.dir, STUDENT_FOLDER)],
      ])
      const options = {
        classIndex: 1,
        count: 1,
        steps: 4,
        heavySchedule: { every: 2 },
        guidance: 1,
        seed: 3,
      }
      const [teacher, student] = loaded.pairs
      if (!teacher || !student) throw new Error('two pairs expected')
      // The same weights under two ids: the same pixels from either pair.
      const fromTeacher = await sample(teacher.models, teacher.manifest, options)
      const fromStudent = await sample(student.models, student.manifest, options)
      expect(fromStudent.images).toEqual(fromTeacher.images)
    } finally {
      await loaded.release()
    }
  })

  it("names a subfolder model's ONNX file whose checksum differs from its manifest", async () => {
    folder = await modelsFolder({ root: true })
    const student = await studentManifest()
    const light = { ...student.models.light, file: 'other.onnx' }
    await folder.addModel(STUDENT_FOLDER, { ...student, models: { ...student.models, light } })
    await writeFile(join(folder.dir, STUDENT_FOLDER, 'other.onnx'), 'not a model')
    await expect(loadModelsFolder(folder.dir)).rejects.toThrow(
      `light: ${join(folder.dir, STUDENT_FOLDER, 'other.onnx')} has sha256`,
    )
  })
})
