// What a mount's server process costs: CPU seconds from /proc/<pid>/stat, resident memory from
// /proc/<pid>/status. VmHWM is the peak since the process started (or since the last reset through
// /proc/<pid>/clear_refs, which root may do), so the bench resets it at the start of each workload and
// reads it at the end to get that workload's own peak.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds of a process (all its threads), or null if it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / ticksPerSecond();
  } catch {
    return null;
  }
}

function statusField(pid: number, field: string): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(s);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resident set size now, in bytes. */
export const rssBytes = (pid: number): number | null => statusField(pid, 'VmRSS');
/** Peak resident set size since start or since the last resetPeakRss, in bytes. */
export const peakRssBytes = (pid: number): number | null => statusField(pid, 'VmHWM');

/** Resets VmHWM to the current RSS (Linux >= 4.0, needs the right to write clear_refs). */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Bytes a process has read and written through syscalls so far (/proc/<pid>/io), or null. */
export function ioBytes(pid: number): { read: number; written: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/io`, 'utf8');
    const r = /^rchar:\s+(\d+)/m.exec(s);
    const w = /^wchar:\s+(\d+)/m.exec(s);
    if (!r || !w) return null;
    return { read: Number(r[1]), written: Number(w[1]) };
  } catch {
    return null;
  }
}

export interface ProcessStats {
  /** CPU seconds (user + system) the server spent during the workload, all repeats together. */
  cpuSeconds: number | null;
  /** Peak RSS during the workload (VmHWM after a reset at its start), bytes. */
  peakRssBytes: number | null;
  /** RSS when the workload started and ended, bytes. */
  rssBeforeBytes: number | null;
  rssAfterBytes: number | null;
  /** False if VmHWM could not be reset: peakRssBytes is then the peak since the server started. */
  peakIsPerWorkload: boolean;
}

/** Measures a server process across a stretch of work: call start() before and stop() after. */
export class ProcessMeter {
  private cpu0: number | null = null;
  private rss0: number | null = null;
  private resetOk = false;
  constructor(readonly pid: number) {}

  start(): void {
    this.resetOk = resetPeakRss(this.pid);
    this.cpu0 = cpuSeconds(this.pid);
    this.rss0 = rssBytes(this.pid);
  }

  stop(): ProcessStats {
    const cpu1 = cpuSeconds(this.pid);
    return {
      cpuSeconds: cpu1 !== null && this.cpu0 !== null ? Math.round((cpu1 - this.cpu0) * 100) / 100 : null,
      peakRssBytes: peakRssBytes(this.pid),
      rssBeforeBytes: this.rss0,
      rssAfterBytes: rssBytes(this.pid),
      peakIsPerWorkload: this.resetOk,
    };
  }
}

export interface RssSample {
  /** Seconds since the sampler started. */
  t: number;
  /** Bytes the client process had moved so far (dd's wchar or rchar), when known. */
  bytes: number | null;
  rss: number;
}

/** Samples a server's RSS (and optionally a client's I/O progress) every intervalMs. */
export class RssSampler {
  readonly samples: RssSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private clientPid: number | null = null;

  constructor(
    readonly serverPid: number,
    readonly direction: 'read' | 'written',
    readonly intervalMs = 200,
  ) {}

  start(): void {
    this.t0 = performance.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  /** The client whose /proc/<pid>/io gives the bytes so far. */
  setClient(pid: number): void {
    this.clientPid = pid;
  }

  private sample(): void {
    const rss = rssBytes(this.serverPid);
    if (rss === null) return;
    const io = this.clientPid !== null ? ioBytes(this.clientPid) : null;
    this.samples.push({ t: Math.round(performance.now() - this.t0) / 1000, bytes: io ? io[this.direction] : null, rss });
  }

  stop(totalBytes?: number): RssSample[] {
    if (!this.timer) return this.samples;
    clearInterval(this.timer);
    this.timer = undefined;
    const rss = rssBytes(this.serverPid);
    if (rss !== null) this.samples.push({ t: Math.round(performance.now() - this.t0) / 1000, bytes: totalBytes ?? null, rss });
    return this.samples;
  }
}
