// Finished results in R2: one PNG object per image and a JSON record written last, so a record's
// presence means every image is there. Objects never change once written (keys name their content).
import { z } from 'zod'
import { runTimingsSchema } from '../../../shared/run-protocol.ts'

export const resultRecordSchema = z.strictObject({
  key: z.string(),
  modelId: z.string(),
  count: z.number().int().positive(),
  timings: runTimingsSchema,
  createdAt: z.iso.datetime(),
})
export type ResultRecord = z.infer<typeof resultRecordSchema>

export const imageObjectKey = (key: string, index: number) => `results/${key}/${index}.png`
const recordObjectKey = (key: string) => `results/${key}/result.json`

/**
 * Public URLs of a result's images: `<key>.png` for a single image, `<key>-<i>.png` for each of several.
 *
 * @example
 * imageUrls('https://api.example', key, 2) // ['https://api.example/v1/results/<key>-0.png', '…-1.png']
 */
export function imageUrls(origin: string, key: string, count: number): string[] {
  if (count === 1) return [`${origin}/v1/results/${key}.png`]
  return Array.from({ length: count }, (_, index) => `${origin}/v1/results/${key}-${index}.png`)
}

/** Parses `<key>.png` / `<key>-<i>.png` into the result key and image index. */
export function parseImageName(name: string): { key: string; index: number } | null {
  const match = /^([0-9a-f]{64})(?:-(\d{1,2}))?\.png$/.exec(name)
  if (!match?.[1]) return null
  return { key: match[1], index: match[2] === undefined ? 0 : Number(match[2]) }
}

/**
 * Stores a result's images. Its record (saveRecord) must follow, and only once this has resolved.
 *
 * @example
 * await saveImages(env.RESULTS, key, pngs)
 * await saveRecord(env.RESULTS, { key, modelId, count: pngs.length, timings, createdAt })
 */
export async function saveImages(bucket: R2Bucket, key: string, images: Uint8Array[]) {
  await Promise.all(
    images.map((png, index) =>
      bucket.put(imageObjectKey(key, index), png, { httpMetadata: { contentType: 'image/png' } }),
    ),
  )
}

/** Stores the record that makes a result's images visible (findResult); after saveImages only. */
export async function saveRecord(bucket: R2Bucket, record: ResultRecord): Promise<void> {
  await bucket.put(recordObjectKey(record.key), JSON.stringify(record), {
    httpMetadata: { contentType: 'application/json' },
  })
}

/** The record of a finished result, or null when the key has none. */
export async function findResult(bucket: R2Bucket, key: string): Promise<ResultRecord | null> {
  const object = await bucket.get(recordObjectKey(key))
  if (!object) return null
  return resultRecordSchema.parse(await object.json())
}
