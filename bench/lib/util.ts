// Small helpers shared by the bench: running and timing external programs, statistics, sizes.
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** "1K", "64M", "1G", "512", "4GiB" -> bytes (binary units). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)} (examples: 1K, 64M, 1G)`);
  const unit = (m[2] ?? '').toUpperCase();
  const mult = unit === 'K' ? KiB : unit === 'M' ? MiB : unit === 'G' ? GiB : unit === 'T' ? GiB * 1024 : 1;
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive size: ${text}`);
  return n;
}

/** Bytes -> the shortest exact label: 1K, 64M, 1G, 1536 (used as keys in the JSON). */
export function sizeLabel(bytes: number): string {
  for (const [unit, mult] of [['G', GiB], ['M', MiB], ['K', KiB]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${unit}`;
  }
  return String(bytes);
}

/** Bytes for people: "1 KiB", "64 MiB", "4 GiB". */
export function humanBytes(bytes: number): string {
  for (const [unit, mult] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= mult) {
      const v = bytes / mult;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} B`;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function stat(samples: number[]): Stat {
  if (samples.length === 0) throw new Error('no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[s.length - 1] as number, samples };
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Where stdout goes: discarded (/dev/null, the default) or captured. */
  stdout?: 'null' | 'capture';
  timeoutMs?: number;
  /** Called with the child's pid right after it starts (for sampling /proc/<pid>/io). */
  onStart?: (pid: number) => void;
}

export interface RunResult {
  seconds: number;
  stdout: string;
  stderr: string;
}

let devNull: number | undefined;
function nullFd(): number {
  devNull ??= openSync('/dev/null', 'w');
  return devNull;
}

export function closeDevNull(): void {
  if (devNull !== undefined) closeSync(devNull);
  devNull = undefined;
}

/**
 * Runs a program and times it from spawn to exit (wall clock). Throws CommandError on a non-zero exit,
 * a signal or the timeout. stdout goes to /dev/null unless captured; stderr is always captured.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = ['ignore', opts.stdout === 'capture' ? 'pipe' : nullFd(), 'pipe'];
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio });
    let t1: bigint | undefined;
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (err.length < 64 * 1024) err += d;
    });
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    if (child.pid !== undefined) opts.onStart?.(child.pid);
    child.on('exit', () => {
      t1 = process.hrtime.bigint();
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new CommandError(`${cmd}: ${e.message}`, null, ''));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const seconds = Number((t1 ?? process.hrtime.bigint()) - t0) / 1e9;
      if (code === 0) return resolve({ seconds, stdout: out, stderr: err });
      const why = timedOut ? `timed out after ${opts.timeoutMs} ms` : signal ? `killed by ${signal}` : `exited with ${code}`;
      reject(new CommandError(`${[cmd, ...args].join(' ')} ${why}: ${err.trim().slice(0, 2000)}`, code, err));
    });
  });
}

/** Runs a program, ignoring its exit status; for cleanup. */
export async function tryRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<boolean> {
  try {
    await run(cmd, args, opts);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether a program is on PATH (by asking the shell, so aliases do not count). */
export async function which(cmd: string): Promise<string | null> {
  try {
    const r = await run('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdout: 'capture', timeoutMs: 5000 });
    return r.stdout.trim() || null;
  } catch {
    return null;
  }
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
