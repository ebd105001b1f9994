// The harness's side of the power-loss simulation: a "disk" is a durable-fs process (durable-fs.ts) serving
// a backing directory at the store's path. A power loss writes its durable image to a new backing
// directory, and the disk then serves that image, at the same path: the store's users see the store as a
// machine would after the power came back.
//
// Nothing of it may stay mounted: the process detaches its mount when its stdin ends (this process died),
// on SIGTERM, and on `stop`; kill() is the synchronous last resort (SIGKILL and umount -l).

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ROOT } from '../helpers/cli.js';
import { mountsUnder } from '../helpers/mount-util.js';
import type { PowerLossSummary } from './durable-image.js';
import { sleep } from './util.js';

export type { PowerLossSummary };

const SERVER = fileURLToPath(new URL('./durable-fs.ts', import.meta.url));

export class DurableDisk {
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  private exited = false;
  private exitCode: number | null = null;

  private constructor(
    private readonly proc: ChildProcess,
    /** The backing directory: the live files (its durable image is built only at a power loss). */
    public backing: string,
    readonly mountpoint: string,
    readonly logPath: string,
  ) {
    createInterface({ input: proc.stdout as NonNullable<ChildProcess['stdout']> }).on('line', (l) => {
      this.lines.push(l);
      this.wake();
    });
    proc.on('exit', (code) => {
      this.exited = true;
      this.exitCode = code;
      this.wake();
    });
    proc.stdin?.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next stdout line matching `pred`, or null if the process exits or `ms` pass first. */
  private async nextLine(pred: (l: string) => boolean, ms: number): Promise<string | null> {
    const end = Date.now() + ms;
    for (;;) {
      const at = this.lines.findIndex(pred);
      if (at >= 0) return this.lines.splice(at, 1)[0] as string;
      if (this.exited || Date.now() > end) return null;
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(Math.max(1, Math.min(1000, end - Date.now())))]);
    }
  }

  private async waitExit(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!this.exited && Date.now() < end) await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(200)]);
    return this.exited;
  }

  /** Serves `backing` (created if missing) at `mountpoint` (created if missing); resolves once mounted. */
  static async start(backing: string, mountpoint: string, logPath: string): Promise<DurableDisk> {
    mkdirSync(backing, { recursive: true });
    mkdirSync(mountpoint, { recursive: true });
    const logFd = openSync(logPath, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(process.execPath, ['--import', 'tsx', SERVER, backing, mountpoint], { cwd: ROOT, stdio: ['pipe', 'pipe', logFd] });
    } finally {
      closeSync(logFd);
    }
    const disk = new DurableDisk(proc, backing, mountpoint, logPath);
    live.add(disk);
    const ready = await disk.nextLine((l) => l === 'READY', 60_000);
    if (ready === null) {
      disk.kill();
      throw new Error(`durable-fs did not start at ${mountpoint} (exit ${disk.exitCode}); see ${logPath}`);
    }
    return disk;
  }

  /**
   * The power loss: the durable image goes to `dest`, and the disk then serves it (backing = dest).
   * Whoever used the store must be dead already: the image is of this moment, and the mount is replaced.
   * Resolves once the image's mount serves; imageMs is how long the image took to come.
   */
  async powerLoss(dest: string): Promise<{ summary: PowerLossSummary; imageMs: number }> {
    const t0 = Date.now();
    this.proc.stdin?.write(`powerloss ${dest}\n`);
    const line = await this.nextLine((l) => l.startsWith('{'), 300_000);
    const imageMs = Date.now() - t0;
    const fail = (why: string): never => {
      this.kill();
      live.delete(this);
      throw new Error(`${why} (exit ${this.exitCode}); see ${this.logPath}`);
    };
    if (line === null) fail('durable-fs gave no power-loss image');
    const msg = JSON.parse(line as string) as { powerloss?: PowerLossSummary; error?: string };
    if (!msg.powerloss) fail(`durable-fs could not write the power-loss image: ${msg.error ?? line}`);
    if ((await this.nextLine((l) => l === 'READY', 60_000)) === null) fail(`durable-fs did not serve the image ${dest}`);
    this.backing = dest;
    return { summary: msg.powerloss as PowerLossSummary, imageMs };
  }

  /** Unmounts (lazily if busy) and ends the process. Never throws. */
  async stop(): Promise<void> {
    if (!this.exited) {
      this.proc.stdin?.write('stop\n');
      this.proc.stdin?.end();
      if (!(await this.waitExit(10_000))) this.kill();
    }
    this.detach();
    live.delete(this);
  }

  /** Synchronous last resort: SIGKILL, then a lazy unmount. */
  kill(): void {
    if (!this.exited && this.proc.pid !== undefined) {
      try {
        process.kill(this.proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.detach();
  }

  private detach(): void {
    for (const m of mountsUnder(this.mountpoint).reverse()) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        /* nothing more can be done here */
      }
    }
  }

  /** Removes a backing directory and its graveyard. */
  static remove(backing: string): void {
    rmSync(backing, { recursive: true, force: true });
    rmSync(`${backing}.grave`, { recursive: true, force: true });
  }
}

/** Every disk of this process still running, for last-resort cleanups. */
const live = new Set<DurableDisk>();

export function killAllDisks(): void {
  for (const d of live) d.kill();
  live.clear();
}
