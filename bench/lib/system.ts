// The machine side of the bench: a tmpfs for the backing stores, a ballast file on it, dropping the page
// cache, and what the report says about the machine and the software versions.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorMessage, GiB, MiB, run, tryRun, which } from './util.js';

// ---------------------------------------------------------------------------
// tmpfs

export interface Backing {
  /** Directory all backing stores live under. */
  dir: string;
  kind: 'tmpfs' | 'disk';
  sizeBytes: number | null;
  /** Why it is not a tmpfs, if it is not. */
  note?: string;
}

/** Mounts a tmpfs of sizeBytes at dir (root only); falls back to a plain directory, and says so. */
export async function mountBacking(dir: string, sizeBytes: number): Promise<Backing> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${Math.floor(sizeBytes / MiB)}m,mode=0755`, 'svault-bench', dir], { timeoutMs: 30_000 });
    return { dir, kind: 'tmpfs', sizeBytes };
  } catch (err) {
    return { dir, kind: 'disk', sizeBytes: null, note: `could not mount a tmpfs (${errorMessage(err)}); the backing stores are on ${dir}'s filesystem` };
  }
}

export async function unmountBacking(b: Backing): Promise<void> {
  if (b.kind !== 'tmpfs') return;
  if (!(await tryRun('umount', [b.dir], { timeoutMs: 60_000 }))) await tryRun('umount', ['-l', b.dir], { timeoutMs: 60_000 });
}

/** For exit handlers. */
export function unmountBackingSync(b: Backing): void {
  if (b.kind !== 'tmpfs' || !isMountPoint(b.dir)) return;
  try {
    execFileSync('umount', ['-l', b.dir], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    /* reported by the caller through isMountPoint */
  }
}

export function isMountPoint(dir: string): boolean {
  const target = path.resolve(dir);
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' ') === target);
}

/** Mount points at or under dir (to check that nothing is left behind). */
export function mountsUnder(dir: string): string[] {
  const base = path.resolve(dir);
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === base || m.startsWith(base + '/'));
}

// ---------------------------------------------------------------------------
// Ballast

/**
 * This VM hands freed memory back to its host a few seconds after it is freed, and touching it again
 * makes the host supply every page anew, so a GiB-sized phase would measure the host. The ballast is a file of
 * written (hence host-backed) pages on the tmpfs: right before a big phase the bench frees just enough
 * of it for the phase to allocate from, and writes it back afterwards, outside the timing.
 */
export class Ballast {
  private current = 0;
  readonly file: string;

  constructor(
    dir: string,
    readonly fullBytes: number,
  ) {
    this.file = path.join(dir, 'ballast');
  }

  /** Grows the file to its full size by writing zeros (untimed). */
  fill(): void {
    if (this.fullBytes <= 0 || this.current >= this.fullBytes) return;
    const chunk = Buffer.alloc(4 * MiB);
    const fd = openSync(this.file, existsSync(this.file) ? 'r+' : 'w');
    try {
      let off = this.current;
      while (off < this.fullBytes) {
        const n = Math.min(chunk.length, this.fullBytes - off);
        off += writeSync(fd, chunk, 0, n, off);
      }
    } finally {
      closeSync(fd);
    }
    this.current = this.fullBytes;
  }

  /** Frees up to `bytes` of the ballast right now; returns how much was freed. */
  release(bytes: number): number {
    if (this.fullBytes <= 0 || bytes <= 0) return 0;
    const free = Math.min(bytes, this.current);
    const fd = openSync(this.file, 'r+');
    try {
      ftruncateSync(fd, this.current - free);
    } finally {
      closeSync(fd);
    }
    this.current -= free;
    return free;
  }

  get bytes(): number {
    return existsSync(this.file) ? statSync(this.file).size : 0;
  }
}

// ---------------------------------------------------------------------------
// Page cache

export interface CacheDropLog {
  attempted: number;
  failed: number;
  /** Not dropped on purpose (--no-cache-drop). */
  skipped?: boolean;
  /** The first failure's message. */
  error?: string;
}

/**
 * Drops the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`) before a read phase, counting
 * failures into the log instead of throwing. A drop also evicts the programs the next phase runs (cp,
 * dd, ls and their libraries: nobody has them mapped), which would then be read back from disk inside
 * the timing, so right after each drop the warmer reads those files back, and only those.
 */
export class CacheDropper {
  readonly log: CacheDropLog;
  private files: string[] = [];

  constructor(private readonly enabled = true) {
    this.log = enabled ? { attempted: 0, failed: 0 } : { attempted: 0, failed: 0, skipped: true };
  }

  /** Finds the programs and shared libraries the workloads run. */
  async init(tools: string[], extraFiles: string[]): Promise<void> {
    const files = new Set<string>(extraFiles.filter((f) => existsSync(f)));
    for (const tool of tools) {
      const where = await which(tool);
      if (!where) continue;
      files.add(where);
      try {
        const r = await run('ldd', [where], { stdout: 'capture', timeoutMs: 10_000 });
        for (const m of r.stdout.matchAll(/(\/[^\s]+)\s+\(0x/g)) if (m[1]) files.add(m[1]);
      } catch {
        /* static or not an ELF: the binary alone */
      }
    }
    this.files = [...files];
  }

  async drop(): Promise<boolean> {
    if (!this.enabled) return false;
    this.log.attempted++;
    try {
      await run('sync', [], { timeoutMs: 120_000 });
      await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'], { timeoutMs: 120_000 });
    } catch (err) {
      this.log.failed++;
      this.log.error ??= errorMessage(err);
      return false;
    }
    await this.warm();
    return true;
  }

  private async warm(): Promise<void> {
    const buf = Buffer.allocUnsafe(4 * MiB);
    for (const f of this.files) {
      let fd: number | undefined;
      try {
        fd = openSync(f, 'r');
        while (readSync(fd, buf, 0, buf.length, null) > 0) {
          /* reading is the point */
        }
      } catch {
        /* a file that went away: nothing to warm */
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Machine and versions

export interface MachineInfo {
  hostname: string;
  cpuModel: string;
  cores: number;
  memTotalBytes: number;
  kernel: string;
  os: string;
  cpuFlags: string[];
  virtualization: string | null;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  let osName = os.type();
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m?.[1]) osName = m[1];
  } catch {
    /* keep os.type() */
  }
  let flags: string[] = [];
  try {
    const line = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    const interesting = ['aes', 'avx2', 'avx512f', 'sha_ni', 'vaes', 'hypervisor'];
    flags = line.split(' ').filter((f) => interesting.includes(f));
  } catch {
    /* no flags */
  }
  let virt: string | null = null;
  try {
    virt = execFileSync('systemd-detect-virt', [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    virt = flags.includes('hypervisor') ? 'unknown hypervisor' : null;
  }
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memTotalBytes: os.totalmem(),
    kernel: os.release(),
    os: osName,
    cpuFlags: flags,
    virtualization: virt,
  };
}

async function firstLine(cmd: string, args: string[]): Promise<string | null> {
  if (!(await which(cmd))) return null;
  try {
    const r = await run(cmd, args, { stdout: 'capture', timeoutMs: 10_000 });
    return (r.stdout || r.stderr).split('\n')[0]?.trim() ?? null;
  } catch {
    return null;
  }
}

export interface Versions {
  node: string;
  svault: string;
  git: { commit: string | null; dirty: boolean | null };
  fuseNative: string | null;
  gocryptfs: string | null;
  /** Absent from reports made before securefs was a target. */
  securefs?: string | null;
  coreutils: string | null;
  tar: string | null;
}

/** securefs's own version line; Debian's build says "GIT-NOTFOUND" there, so its package version then. */
async function securefsVersion(bin: string): Promise<string | null> {
  const where = await which(bin);
  if (!where) return null;
  let out = '';
  try {
    out = (await run(bin, ['version'], { stdout: 'capture', timeoutMs: 10_000 })).stdout;
  } catch {
    return null;
  }
  const lines = out.split('\n').map((l) => l.trim());
  const libs = lines.filter((l) => /^(Crypto\+\+|libfuse) /.test(l)).join(', ');
  let head = lines[0] ?? 'securefs';
  const notes = libs ? [libs] : [];
  if (!/\d+\.\d+/.test(head) && where === '/usr/bin/securefs') {
    const pkg = await firstLine('dpkg-query', ['-W', '-f', '${Version}', 'securefs']);
    if (pkg) {
      head = `securefs ${pkg}`;
      notes.unshift('Debian package');
    }
  }
  return notes.length ? `${head} (${notes.join('; ')})` : head;
}

export async function versions(root: string, gocryptfs = 'gocryptfs', securefs = 'securefs'): Promise<Versions> {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  let fuseNative: string | null = null;
  try {
    fuseNative = (JSON.parse(readFileSync(path.join(root, 'node_modules', 'fuse-native', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    /* not installed */
  }
  let commit: string | null = null;
  let dirty: boolean | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
  } catch {
    /* not a git checkout */
  }
  return {
    node: process.version,
    svault: pkg.version,
    git: { commit, dirty },
    fuseNative,
    gocryptfs: await firstLine(gocryptfs, ['-version']),
    securefs: await securefsVersion(securefs),
    coreutils: await firstLine('cp', ['--version']),
    tar: await firstLine('tar', ['--version']),
  };
}

/** MemTotal-based defaults: a tmpfs and a ballast that leave room for the page cache and the servers. */
export function memoryPlan(memTotal: number, quick: boolean): { tmpfsBytes: number; ballastBytes: number } {
  if (quick) return { tmpfsBytes: 1 * GiB, ballastBytes: 64 * MiB };
  return {
    tmpfsBytes: Math.floor(memTotal * 0.75),
    ballastBytes: Math.min(8 * GiB, Math.floor(memTotal * 0.3)),
  };
}
