// Whether a process is alive. A killed process whose parent has not reaped it yet is a zombie: kill(pid, 0)
// still succeeds for it, so /proc is asked for its state as well.
//
// Every thread is asked, not just the main one. After SIGKILL the main thread can show as a zombie while
// the FUSE and worker threads are still exiting, and those threads share the process's open files: until
// the last one is gone the store lock is held and the kernel has not yet aborted the FUSE connection
// (a stat of the mountpoint in that window fails with ECONNABORTED instead of ENOTCONN).

import { readdirSync, readFileSync } from 'node:fs';

/** A thread's state letter from /proc (R, S, D, Z, X, ...), or null once the thread is gone. */
export function threadState(pid: number, tid: number | string): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null; // the thread has just been released
  }
}

function threadRunning(pid: number, tid: string): boolean {
  const state = threadState(pid, tid);
  return state !== null && state !== 'Z' && state !== 'X';
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return threads.some((tid) => threadRunning(pid, tid));
}
