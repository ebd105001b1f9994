// A vault sandbox for the stress harnesses: its own store, mount point and XDG dirs (as
// test/helpers/cli.ts's sandbox), usable from ava and from the command line alike. It knows its
// server's pid and log, can kill the server, and its cleanup always leaves nothing mounted and no
// server running. On failure the directory (store and server logs) can be kept for diagnosis.
//
// With `powerLoss`, the store lives on a durable-fs "disk" (durable-disk.ts): the store's path is its mount
// point, and powerLoss() replaces the store with what a power loss would have left of it.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, PASSPHRASE, run, type RunResult } from '../helpers/cli.js';
import { alive, mountsUnder } from '../helpers/mount-util.js';
import { DurableDisk, killAllDisks, type PowerLossSummary } from './durable-disk.js';
import { sleep } from './util.js';

export { alive, mountsUnder };

export interface FsckJson {
  before: { problems: { path: string; kind: string; detail: string }[]; orphans: number; unreachableRecords: number; files: number };
  after?: { problems: unknown[]; orphans: number; unreachableRecords: number };
}

/** Every box made by this process, for a last-resort cleanup on exit or a signal. */
const live = new Set<StressBox>();
const made = new Set<string>();

export class StressBox {
  readonly dir: string;
  readonly store: string;
  readonly mnt: string;
  readonly env: NodeJS.ProcessEnv;
  serverPid: number | null = null;
  /** The server logs of every mount of this box, oldest first. */
  readonly logs: string[] = [];
  /** svault mount -o options every mount of this box gets (sync, commit=SECONDS, ...). */
  readonly mountOptions: readonly string[];
  /** The store's disk, in power-loss mode (see powerLoss); null otherwise. */
  disk: DurableDisk | null = null;
  /** Power losses so far: the disk's backing directory is disk-<n>. */
  powerLosses = 0;
  readonly powerLossMode: boolean;
  private cleaned = false;

  constructor(name: string, opts: { mountOptions?: readonly string[]; powerLoss?: boolean } = {}) {
    this.mountOptions = opts.mountOptions ?? [];
    this.powerLossMode = opts.powerLoss ?? false;
    this.dir = mkdtempSync(join(tmpdir(), `svault-stress-${name}-`));
    this.store = join(this.dir, 'store');
    this.mnt = join(this.dir, 'mnt');
    mkdirSync(this.mnt);
    this.env = {
      ...process.env,
      SVAULT_PASSPHRASE: PASSPHRASE,
      XDG_DATA_HOME: join(this.dir, 'data'),
      XDG_STATE_HOME: join(this.dir, 'state'),
      XDG_CONFIG_HOME: join(this.dir, 'config'),
    };
    delete this.env.SVAULT_CRASH_AT;
    delete this.env.SVAULT_STORE;
    live.add(this);
    made.add(this.dir);
  }

  svault(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return run(process.execPath, [CLI, ...args], { env: { ...this.env, ...env }, timeoutMs: 180_000 });
  }

  /** The backing directory of the n-th disk (the image of the n-th power loss; 0: the first, empty). */
  backingDir(n: number): string {
    return join(this.dir, `disk-${n}`);
  }

  async init(args: string[]): Promise<void> {
    if (this.powerLossMode && !this.disk) this.disk = await DurableDisk.start(this.backingDir(0), this.store, join(this.dir, 'durable-fs.log'));
    const r = await this.svault(['init', '--store', this.store, ...args]);
    if (r.code !== 0) throw new Error(`svault init failed (${r.code}): ${r.stderr}`);
  }

  /**
   * Mounts (clearing a stale mount left by a killed server) with the box's mount options; env goes to
   * the CLI and so to the server.
   */
  async mount(env: NodeJS.ProcessEnv = {}, extra: string[] = []): Promise<RunResult> {
    const options = this.mountOptions.length > 0 ? ['-o', this.mountOptions.join(',')] : [];
    const r = await this.svault(['mount', '--store', this.store, this.mnt, ...options, ...extra], env);
    const m = /server pid (\d+), log ([^)]+)\)/.exec(r.stderr);
    if (m) {
      this.serverPid = Number(m[1]);
      this.logs.push(m[2] as string);
    }
    if (r.code !== 0) throw new Error(`svault mount failed (${r.code}): ${r.stderr}${this.logTail()}`);
    return r;
  }

  async unmount(): Promise<RunResult> {
    const r = await this.svault(['unmount', this.mnt]);
    if (this.serverPid !== null && !alive(this.serverPid)) this.serverPid = null;
    return r;
  }

  async remount(env: NodeJS.ProcessEnv = {}): Promise<void> {
    const u = await this.unmount();
    if (u.code !== 0) throw new Error(`svault unmount failed (${u.code}): ${u.stderr}${this.logTail()}`);
    await this.mount(env);
  }

  mounted(): boolean {
    return mountsUnder(this.mnt).length > 0;
  }

  serverAlive(): boolean {
    return this.serverPid !== null && alive(this.serverPid);
  }

  /** kill -9 the server; resolves once it is gone. */
  async killServer(): Promise<void> {
    const pid = this.serverPid;
    if (pid === null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await this.waitServerGone(10_000);
  }

  async waitServerGone(ms: number): Promise<boolean> {
    const pid = this.serverPid;
    if (pid === null) return true;
    const end = Date.now() + ms;
    while (alive(pid)) {
      if (Date.now() > end) return false;
      await sleep(20);
    }
    return true;
  }

  /**
   * A power loss: the server (if alive) is killed, and the store becomes what its disk made durable (the
   * disk then serves that image, at the same path). The live files before the loss stay in
   * backingDir(n - 1) until the next loss, for a failing run's sandbox. Resolves with what the loss
   * dropped, the image's directory, and how long it took.
   */
  async powerLoss(): Promise<{ summary: PowerLossSummary; image: string; ms: number; phases: { killMs: number; imageMs: number; restartMs: number } }> {
    const disk = this.disk;
    if (!disk) throw new Error('powerLoss() needs a box made with powerLoss: true');
    const t0 = Date.now();
    if (this.serverAlive()) await this.killServer();
    if (this.serverAlive()) throw new Error(`the server (pid ${this.serverPid}) did not die: no power loss with it still writing`);
    const n = this.powerLosses + 1;
    const image = this.backingDir(n);
    const t1 = Date.now();
    const { summary, imageMs } = await disk.powerLoss(image);
    const t2 = Date.now();
    this.powerLosses = n;
    if (n >= 2) DurableDisk.remove(this.backingDir(n - 2));
    return { summary, image, ms: t2 - t0, phases: { killMs: t1 - t0, imageMs, restartMs: t2 - t1 - imageMs } };
  }

  async fsck(repair: boolean): Promise<{ code: number; json: FsckJson | null; text: string }> {
    const r = await this.svault(['fsck', '--store', this.store, '--json', ...(repair ? ['--repair'] : [])]);
    let json: FsckJson | null = null;
    try {
      json = JSON.parse(r.stdout) as FsckJson;
    } catch {
      /* left null: the caller reports the text */
    }
    return { code: r.code, json, text: r.stdout + r.stderr };
  }

  currentLog(): string | undefined {
    return this.logs[this.logs.length - 1];
  }

  logTail(lines = 30): string {
    const log = this.currentLog();
    if (!log) return '';
    try {
      const text = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      return `\n--- server log ${log} (last ${lines} lines) ---\n${text}`;
    } catch {
      return '';
    }
  }

  /** Unmounts, stops any server, and removes the directory unless keep. Never throws; idempotent. */
  async cleanup(keep = false): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    live.delete(this);
    try {
      if (this.mounted()) await this.unmount();
    } catch {
      /* fall through to the harder ways */
    }
    if (this.serverPid !== null && alive(this.serverPid)) {
      try {
        process.kill(this.serverPid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await this.waitServerGone(5000);
    }
    // The store's disk after every user of the store.
    await this.disk?.stop();
    this.disk = null;
    for (const m of mountsUnder(this.dir).reverse()) await run('umount', ['-l', m]);
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last resort (process exit): lazy-unmounts and kills the server. */
  emergencyCleanup(): void {
    if (this.cleaned) return;
    if (this.serverPid !== null) {
      try {
        process.kill(this.serverPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.disk?.kill();
    for (const m of mountsUnder(this.dir).reverse()) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        /* nothing more can be done here */
      }
    }
  }
}

let exitHooked = false;
let signalsHooked = false;

/** Whatever ends this process (a test timeout too), its servers are killed and its mounts detached. */
export function cleanupOnExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const b of live) b.emergencyCleanup();
    killAllDisks();
  });
}

/** For command-line runs: on SIGINT/SIGTERM, clean up every box (keeping their dirs) before exiting. */
export function cleanupOnSignals(): void {
  cleanupOnExit();
  if (signalsHooked) return;
  signalsHooked = true;
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: cleaning up ${live.size} vault sandbox(es)\n`);
    void Promise.all([...live].map((b) => b.cleanup(true))).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Every sandbox directory this process made (for "nothing left mounted" checks). */
export function allBoxDirs(): string[] {
  return [...made];
}
