// startService with a models folder of several models: every model loaded, warmed and listed in /readyz,
// and a folder that cannot be served as a whole stops the start, naming the file.
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseServiceConfig } from '../../../gpu-service/src/service/config.ts'
import { jsonLogger } from '../../../gpu-service/src/service/logger.ts'
import { startService } from '../../../gpu-service/src/service/start.ts'
import { startTestService, TEST_SECRET, type TestService } from '../../fixtures/service.ts'
import {
  committedManifest,
  type ModelsFolder,
  modelsFolder,
  STUDENT_FOLDER,
  STUDENT_ID,
  STUDENT_SUPPORTS,
  studentManifest,
  TEACHER_ID,
  teacherAndStudent,
} from '../fixtures/models-folder.ts'

describe('startService with several models', () => {
  let folder: ModelsFolder
  let service: TestService
  beforeAll(async () => {
    folder = await teacherAndStudent()
    service = await startTestService({
      DUALRATE_MODELS_DIR: folder.dir,
      DUALRATE_INTRA_OP_THREADS: '1',
    })
  })
  afterAll(async () => {
    await service.shutdown(0)
    await folder.remove()
  })

  it('lists every model in /readyz: the default first, then the subfolder models with their support', async () => {
    const ready = await fetch(`${service.url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({
      status: 'ready',
      device: 'cpu',
      executionProviders: ['cpu'],
      models: [
        {
          id: TEACHER_ID,
          default: true,
          recommended: (await committedManifest()).recommended,
        },
        {
          id: STUDENT_ID,
          default: false,
          description: 'the committed pair, declared as a 4-step student',
          teacherModelId: TEACHER_ID,
          supports: STUDENT_SUPPORTS,
          recommended: { steps: 4, heavyEvery: 2, guidance: 1 },
        },
      ],
    })
  })

  it('says in its ready line which models it loaded from which folders', () => {
    expect(service.logs.find((line) => line.msg === 'ready')).toMatchObject({
      modelId: TEACHER_ID,
      models: [
        { modelId: TEACHER_ID, dir: folder.dir },
        { modelId: STUDENT_ID, dir: join(folder.dir, STUDENT_FOLDER) },
      ],
    })
  })
})

describe('startService with a models folder it cannot serve', () => {
  /** Starts the service on `folder` and returns why it did not get ready; /readyz stays 503. */
  async function startFailure(folder: ModelsFolder): Promise<unknown> {
    const service = await startService(
      parseServiceConfig({ PORT: '0', DUALRATE_MODELS_DIR: folder.dir }),
      { logger: jsonLogger(() => {}), hmacSecret: TEST_SECRET },
    )
    try {
      const reason = await service.ready.then(
        () => undefined,
        (error: unknown) => error,
      )
      expect((await fetch(`${service.url}/readyz`)).status).toBe(503)
      return reason
    } finally {
      await service.shutdown(0)
      await folder.remove()
    }
  }

  it('fails when two model folders declare one model id', async () => {
    const folder = await modelsFolder({ root: true })
    await folder.addModel('copy', await committedManifest())
    expect(await startFailure(folder)).toEqual(
      new Error(
        `${join(folder.dir, 'copy', 'manifest.json')}: modelId ${TEACHER_ID} is already the model ` +
          `of ${join(folder.dir, 'manifest.json')}; each model folder needs its own id`,
      ),
    )
  })

  it('fails when subfolders hold models and the folder itself has no manifest (no default)', async () => {
    const folder = await modelsFolder({ root: false })
    await folder.addModel(STUDENT_FOLDER, await studentManifest())
    expect(await startFailure(folder)).toEqual(
      new Error(
        `${join(folder.dir, 'manifest.json')}: not found; the default model's manifest belongs ` +
          `there, beside the subfolder models (${STUDENT_FOLDER})`,
      ),
    )
  })

  it('fails on an invalid manifest in a subfolder, naming it', async () => {
    const folder = await modelsFolder({ root: true })
    await folder.addModel(STUDENT_FOLDER, { ...(await studentManifest()), modelId: 'student' })
    expect(await startFailure(folder)).toEqual(
      new Error(
        `${join(folder.dir, STUDENT_FOLDER, 'manifest.json')}: Invalid model manifest:\n` +
          '  modelId: expected "dualrate-" and 12 hex digits, as GET /v1/models lists',
      ),
    )
  })
})
