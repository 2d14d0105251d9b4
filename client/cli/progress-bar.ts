// The `generate` command's progress bar (cli-progress on stderr), driven by the job's SSE step events:
// steps done, heavy encoder calls so far, elapsed time and ETA. On a terminal it redraws in place; when
// stderr is a file or a pipe it writes a plain line every few seconds instead.
import cliProgress from 'cli-progress'

export interface StepProgress {
  /** Steps done (the last step event's index + 1). */
  stepsDone: number
  totalSteps: number
  heavyCalls: number
}

export interface ProgressBar {
  start(totalSteps: number, label: string): void
  update(progress: StepProgress): void
  /** Shows a short note after the label (a retry, say) until the next note. */
  note(text: string): void
  /** Leaves the bar's last state on screen. */
  stop(): void
}

/**
 * A progress bar on `stream` (stderr by default).
 *
 * @example
 * const bar = createProgressBar()
 * bar.start(50, 'Sneaker #7')
 * bar.update({ stepsDone: 12, totalSteps: 50, heavyCalls: 3 })
 * bar.stop()
 */
export function createProgressBar(stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format:
        '{label} {bar} {value}/{total} steps | heavy encoder {heavyCalls}x | {duration_formatted} | ETA {eta_formatted}',
      barsize: 30,
      hideCursor: stream.isTTY ? true : null,
      noTTYOutput: !stream.isTTY,
      notTTYSchedule: 2000,
      etaBuffer: 20,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  )
  let running = false
  let label = ''
  return {
    start(totalSteps, startLabel) {
      label = startLabel
      bar.start(totalSteps, 0, { label, heavyCalls: 0 })
      running = true
    },
    note(text) {
      if (running) bar.update({ label: `${label} (${text})` })
    },
    update({ stepsDone, totalSteps, heavyCalls }) {
      if (!running) return
      bar.setTotal(totalSteps)
      bar.update(stepsDone, { heavyCalls })
    },
    stop() {
      if (!running) return
      running = false
      bar.stop()
    },
  }
}
