// Process groups of the local stack: each gpu-service and wrangler dev runs detached as the leader of its
// own group, so one signal reaches the process and what it started (wrangler's workerd and esbuild).
// Signalling a group that is already gone is not an error here (a killed gpu-service leaves none behind);
// members and their resident memory are read from /proc (Linux).
import type { ChildProcess } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'

/** One live process of a group, with its resident set size (VmRSS). */
export interface GroupMember {
  pid: number
  /** The executable's and the first argument's base names, e.g. `node main.ts`, `workerd serve`. */
  command: string
  rssBytes: number
}

/**
 * Sends a signal to every process of the group; false when the group has no process left (ESRCH).
 *
 * @example
 * signalGroup(child.pid, 'SIGTERM') // never throws because the child already died
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw error
  }
}

/** The group's processes that are still running (zombies left out), read from /proc. */
export async function groupMembers(pgid: number): Promise<GroupMember[]> {
  const members: GroupMember[] = []
  for (const pid of await groupPids(pgid)) {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0)
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
      const command = argv
        .filter((arg) => arg !== '' && !arg.startsWith('-'))
        .slice(0, 2)
        .map((arg) => arg.split('/').at(-1))
        .join(' ')
      members.push({ pid, command, rssBytes: rssKiB * 1024 })
    } catch {
      // The process ended while it was being read.
    }
  }
  return members
}

async function groupPids(pgid: number): Promise<number[]> {
  let entries: string[]
  try {
    entries = await readdir('/proc')
  } catch {
    return []
  }
  const pids: number[] = []
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses; split after the last ')'.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(pgrp) === pgid && state !== 'Z') pids.push(Number(entry))
    } catch {
      // The process ended while it was being read.
    }
  }
  return pids
}

/** Whether any process of the group still runs: /proc on Linux, signal 0 elsewhere. */
async function groupAlive(pgid: number): Promise<boolean> {
  if (process.platform === 'linux') return (await groupPids(pgid)).length > 0
  return signalGroup(pgid, 0)
}

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/**
 * Stops a group: SIGTERM to all of it, SIGKILL to what is left after `graceMs`; resolves once the leader
 * has exited and no member runs. Safe on a group that is already gone or half gone.
 *
 * @example
 * await stopGroup(wranglerChild) // wrangler, workerd and esbuild
 */
export async function stopGroup(child: ChildProcess, graceMs = 10_000): Promise<void> {
  const pgid = child.pid
  if (pgid === undefined) return
  const leaderExited = hasExited(child)
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()))
  signalGroup(pgid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (!hasExited(child) || (await groupAlive(pgid))) {
    if (Date.now() >= deadline) {
      signalGroup(pgid, 'SIGKILL')
      // SIGKILL cannot be refused; wait for the leader, bounded in case something odd holds it.
      await Promise.race([leaderExited, sleep(5_000)])
      return
    }
    await sleep(100)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
