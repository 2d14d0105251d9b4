import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConnectionError, resolveConnection } from '../../../client/cli/connection.ts'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dualrate-connection-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const saveLocal = (apiBase: string, apiKey: string) =>
  writeFile(join(dir, 'local.json'), JSON.stringify({ apiBase, apiKey }))

describe('resolveConnection', () => {
  it('takes flags over the environment over .dev/local.json', async () => {
    await saveLocal('http://127.0.0.1:8787', 'dr_saved')
    const env = { DUALRATE_DEV_DIR: dir }
    expect(await resolveConnection({}, env)).toEqual({
      apiBase: 'http://127.0.0.1:8787',
      apiKey: 'dr_saved',
    })
    expect(await resolveConnection({}, { ...env, DUALRATE_API_KEY: 'dr_env' })).toMatchObject({
      apiKey: 'dr_env',
    })
    expect(
      await resolveConnection({ apiKey: 'dr_flag' }, { ...env, DUALRATE_API_KEY: 'dr_env' }),
    ).toMatchObject({ apiKey: 'dr_flag' })
  })

  it('does not send the saved local key to another API', async () => {
    await saveLocal('http://127.0.0.1:8787', 'dr_saved')
    const connection = await resolveConnection(
      { apiBase: 'https://api.example' },
      { DUALRATE_DEV_DIR: dir },
    )
    expect(connection).toEqual({ apiBase: 'https://api.example', apiKey: undefined })
  })

  it('says how to get an API when there is none', async () => {
    const error = await resolveConnection({}, { DUALRATE_DEV_DIR: dir }).catch((e) => e)
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error.message).toMatch(/--api-base URL, set DUALRATE_API_BASE, or run `npm start`/)
  })

  it('rejects an API base that is not an http(s) URL', async () => {
    const error = await resolveConnection({ apiBase: 'ftp://x' }, { DUALRATE_DEV_DIR: dir }).catch(
      (e) => e,
    )
    expect(error.message).toBe('the API base "ftp://x" is not an http(s) URL')
  })

  it('names a malformed local.json', async () => {
    await writeFile(join(dir, 'local.json'), '{"apiBase": 3}')
    const error = await resolveConnection({}, { DUALRATE_DEV_DIR: dir }).catch((e) => e)
    expect(error.message).toBe(
      `${join(dir, 'local.json')} is not { "apiBase": URL, "apiKey": string }; delete it`,
    )
  })
})
