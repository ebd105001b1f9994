// The things each workload runs on: svault's mount, the plain backing directory (native), the Node-FUSE
// floor on both transports (bench/passthrough-fs.ts over fuse-native, bench/passthrough-devfuse.ts over
// svault's own /dev/fuse transport, each in its own process), and gocryptfs and securefs when installed.
// Every target that mounts something registers an emergency cleanup first, so a failure or Ctrl-C
// never leaves a mount behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isMounted, lazyUnmount } from '../../fs/fuse-binding.js';
import { processAlive as alive } from '../../src/core/util/process-alive.js';
import { errorMessage, run, sleep, tryRun, which } from './util.js';

export const TARGET_NAMES = ['svault', 'native', 'floor', 'floor-devfuse', 'gocryptfs', 'securefs'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export const TARGET_LABELS: Record<TargetName, string> = {
  svault: 'svault',
  native: 'native (tmpfs, no FUSE)',
  floor: 'Node-FUSE floor',
  'floor-devfuse': 'Node-FUSE floor, devfuse',
  gocryptfs: 'gocryptfs',
  securefs: 'securefs',
};

/** The encrypted peers: external programs, each skipped with a note when it is not installed. */
export const PEERS = ['gocryptfs', 'securefs'] as const;
export type PeerName = (typeof PEERS)[number];

export interface Target {
  name: TargetName;
  /** Where the workloads work. */
  dir: string;
  /** The directory that holds the target's data (store, cipher dir, or dir itself). */
  backing: string;
  /** The process serving the mount, or null for native. */
  pid: number | null;
  /** What the report records about this target (mount options, settings). */
  info: Record<string, unknown>;
  /** svault only: its own cumulative per-operation counters (from `svault status --json`). */
  opStats?: () => Promise<OpCounts[] | null>;
  stop(): Promise<void>;
}

/** One operation's counters as `svault status --json` reports them (cumulative since the mount). */
export interface OpCounts {
  op: string;
  calls: number;
  bytes: number;
  totalMs: number;
}

/** Emergency cleanups, run synchronously from exit and signal handlers. */
export class CleanupRegistry {
  private readonly actions = new Map<string, () => void>();
  add(key: string, action: () => void): void {
    this.actions.set(key, action);
  }
  remove(key: string): void {
    this.actions.delete(key);
  }
  runAll(): void {
    // Newest first: mounts before the tmpfs they live on.
    for (const [key, action] of [...this.actions].reverse()) {
      try {
        action();
      } catch {
        /* keep going: everything else must still be cleaned up */
      }
      this.actions.delete(key);
    }
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(stepMs);
  }
  return cond();
}

/** Unmounts lazily and kills the server: the last resort for exit handlers. */
function emergencyStop(mnt: string, pid: number | null): () => void {
  return () => {
    if (isMounted(mnt)) lazyUnmount(mnt);
    if (pid !== null && alive(pid)) killQuietly(pid, 'SIGTERM');
  };
}

// ---------------------------------------------------------------------------
// native

export function nativeTarget(base: string): Target {
  const dir = path.join(base, 'native');
  mkdirSync(dir, { recursive: true });
  return { name: 'native', dir, backing: dir, pid: null, info: { description: 'the backing filesystem itself, no FUSE' }, stop: async () => undefined };
}

// ---------------------------------------------------------------------------
// svault

export interface SvaultSettings {
  root: string;
  pieceSize: number;
  chaff: number;
}

const PASSPHRASE = 'svault bench passphrase';

/** The environment of an svault CLI that keeps its registry, logs and anchors under `xdg`, apart from the user's. */
export function svaultEnv(xdg: string, passphrase: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SVAULT_PASSPHRASE: passphrase,
    XDG_STATE_HOME: path.join(xdg, 'state'),
    XDG_DATA_HOME: path.join(xdg, 'data'),
    XDG_CONFIG_HOME: path.join(xdg, 'config'),
    ...extra,
  };
}

export async function svaultTarget(base: string, mntBase: string, s: SvaultSettings, cleanup: CleanupRegistry): Promise<Target> {
  const store = path.join(base, 'svault-store');
  const mnt = path.join(mntBase, 'svault');
  const xdg = path.join(mntBase, 'svault-xdg');
  mkdirSync(mnt, { recursive: true });
  const env = svaultEnv(xdg, PASSPHRASE);
  const cli = path.join(s.root, 'bin', 'svault.js');
  const svault = (args: string[], capture = true) => run(process.execPath, [cli, ...args], { env, stdout: capture ? 'capture' : 'null', timeoutMs: 180_000 });

  await svault(['init', '--store', store, '--piece-size', String(s.pieceSize), '--chaff', String(s.chaff)]);
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse((await svault(['info', '--store', store, '--json'])).stdout) as Record<string, unknown>;
  } catch (err) {
    config = { error: `svault info failed: ${errorMessage(err)}` };
  }
  // Registered before mounting, so that a mount that half-happened is cleaned up too.
  let pid: number | null = null;
  cleanup.add(`svault:${mnt}`, () => emergencyStop(mnt, pid)());
  const m = await svault(['mount', '--store', store, mnt]);
  const said = /server pid (\d+)/.exec(m.stdout + m.stderr);
  pid = said ? Number(said[1]) : null;
  let aead: string | undefined;
  try {
    const status = JSON.parse((await svault(['status', '--json'])).stdout) as Array<{ pid: number; mountpoint: string; live?: { aead?: { name: string } } | null }>;
    const mine = status.find((x) => x.mountpoint === mnt);
    pid = mine?.pid ?? pid;
    aead = mine?.live?.aead?.name;
  } catch {
    /* keep the pid from the mount message */
  }
  if (!isMounted(mnt)) throw new Error(`svault mount reported success but ${mnt} is not mounted`);
  const mountLine = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt) ?? '';
  return {
    name: 'svault',
    dir: mnt,
    backing: store,
    pid,
    info: {
      store,
      pieceSize: config.pieceSize ?? s.pieceSize,
      chaffRatio: config.chaffRatio ?? s.chaff,
      cipher: config.cipher,
      // Which AES-GCM the server runs (src/core/crypto/native-aead.ts): the addon, or node:crypto.
      aead,
      kdf: config.kdf,
      mount: mountLine,
    },
    async opStats() {
      try {
        const status = JSON.parse((await svault(['status', '--json'])).stdout) as Array<{ mountpoint: string; live?: { ops?: OpCounts[] } | null }>;
        const ops = status.find((x) => x.mountpoint === mnt)?.live?.ops;
        return ops ? ops.map(({ op, calls, bytes, totalMs }) => ({ op, calls, bytes, totalMs })) : null;
      } catch {
        return null;
      }
    },
    async stop() {
      try {
        await svault(['unmount', mnt]);
      } catch {
        /* fall through to the lazy unmount */
      }
      if (pid !== null) await waitFor(() => !alive(pid as number), 10_000);
      emergencyStop(mnt, pid)();
      cleanup.remove(`svault:${mnt}`);
    },
  };
}

// ---------------------------------------------------------------------------
// floor: the same pass-through on fuse-native (floor) and on svault's own transport (floor-devfuse)

/** The pass-through server of each floor, under bench/ (and dist/bench/ once built). */
const FLOOR_SERVERS = { floor: 'passthrough-fs', 'floor-devfuse': 'passthrough-devfuse' } as const;
export type FloorName = keyof typeof FLOOR_SERVERS;

export function floorTarget(base: string, mntBase: string, root: string, cleanup: CleanupRegistry): Promise<Target> {
  return passthroughTarget('floor', base, mntBase, root, cleanup);
}

export function floorDevfuseTarget(base: string, mntBase: string, root: string, cleanup: CleanupRegistry): Promise<Target> {
  return passthroughTarget('floor-devfuse', base, mntBase, root, cleanup);
}

async function passthroughTarget(name: FloorName, base: string, mntBase: string, root: string, cleanup: CleanupRegistry): Promise<Target> {
  const backing = path.join(base, `${name}-backing`);
  const mnt = path.join(mntBase, name);
  mkdirSync(backing, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  const server = FLOOR_SERVERS[name];
  const compiled = path.join(root, 'dist', 'bench', `${server}.js`);
  const args = existsSync(compiled) ? [compiled, backing, mnt] : ['--import', 'tsx', path.join(root, 'bench', `${server}.ts`), backing, mnt];
  // stdin stays open: when it closes (this process died), the floor unmounts and exits.
  const child: ChildProcess = spawn(process.execPath, args, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  const pid = child.pid ?? null;
  const key = `${name}:${mnt}`;
  cleanup.add(key, emergencyStop(mnt, pid));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const ready = await new Promise<boolean>((resolve) => {
    let out = '';
    const timer = setTimeout(() => resolve(false), 30_000);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready || !isMounted(mnt)) {
    emergencyStop(mnt, pid)();
    throw new Error(`the ${name} pass-through did not mount: ${stderr.trim()}`);
  }
  const mountLine = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt) ?? '';
  return {
    name,
    dir: mnt,
    backing,
    pid,
    info: { server: args[0] === compiled ? `dist/bench/${server}.js` : `bench/${server}.ts (tsx)`, mount: mountLine },
    async stop() {
      const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      emergencyStop(mnt, pid)();
      child.stdin?.destroy();
      cleanup.remove(key);
    },
  };
}

// ---------------------------------------------------------------------------
// Peers: external FUSE servers run in the foreground, so the spawned process is the server (its pid
// gives the CPU and RSS figures) and it dies with us.

/** Resolves a peer's binary: a path must exist, a name must be on PATH. */
async function binaryAvailable(bin: string): Promise<string | null> {
  if (bin.includes('/')) return existsSync(bin) ? bin : null;
  return which(bin);
}

async function foregroundServer(name: PeerName, bin: string, args: string[], mnt: string, backing: string, info: Record<string, unknown>, cleanup: CleanupRegistry): Promise<Target> {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid ?? null;
  const key = `${name}:${mnt}`;
  cleanup.add(key, emergencyStop(mnt, pid));
  let stderr = '';
  // Only the start of it matters (for the error message); the pipe must still be drained.
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(0, 8192)));
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', (err) => {
    exited = true;
    stderr += err.message;
  });
  const ok = await waitFor(() => exited || isMounted(mnt), 30_000);
  if (!ok || exited || !isMounted(mnt)) {
    emergencyStop(mnt, pid)();
    cleanup.remove(key);
    throw new Error(`${name} did not mount: ${stderr.trim()}`);
  }
  const mountLine = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt) ?? '';
  return {
    name,
    dir: mnt,
    backing,
    pid,
    info: { mount: mountLine, ...info },
    async stop() {
      if (!(await tryRun('fusermount', ['-u', mnt], { timeoutMs: 30_000 }))) await tryRun('umount', [mnt], { timeoutMs: 30_000 });
      if (pid !== null) await waitFor(() => exited, 10_000);
      emergencyStop(mnt, pid)();
      cleanup.remove(key);
    },
  };
}

// ---------------------------------------------------------------------------
// gocryptfs

/** The gocryptfs binary: SVAULT_BENCH_GOCRYPTFS if set (a name or path; tests point it at nothing), else gocryptfs. */
export const GOCRYPTFS = (): string => process.env.SVAULT_BENCH_GOCRYPTFS || 'gocryptfs';

export async function gocryptfsAvailable(): Promise<string | null> {
  return binaryAvailable(GOCRYPTFS());
}

export async function gocryptfsTarget(base: string, mntBase: string, cleanup: CleanupRegistry): Promise<Target> {
  const cipher = path.join(base, 'gocryptfs-cipher');
  const mnt = path.join(mntBase, 'gocryptfs');
  mkdirSync(cipher, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  // -extpass is split on spaces by gocryptfs; scrypt N=2^16 is its default (as svault's), given explicitly.
  const extpass = ['-extpass', 'echo bench-password'];
  await run(GOCRYPTFS(), ['-init', '-q', ...extpass, '-scryptn', '16', cipher], { timeoutMs: 60_000 });
  return foregroundServer('gocryptfs', GOCRYPTFS(), ['-fg', '-q', '-nosyslog', ...extpass, cipher, mnt], mnt, cipher, { options: 'defaults, -scryptn 16' }, cleanup);
}

// ---------------------------------------------------------------------------
// securefs

/** The securefs binary: SVAULT_BENCH_SECUREFS if set (a name or path; tests point it at nothing), else securefs. */
export const SECUREFS = (): string => process.env.SVAULT_BENCH_SECUREFS || 'securefs';

export async function securefsAvailable(): Promise<string | null> {
  return binaryAvailable(SECUREFS());
}

/** The lines of `securefs info` that say what is measured (format, cipher, block size, key derivation). */
const SECUREFS_INFO: Record<string, string> = {
  'Filesystem format version': 'format',
  'Is full or lite format': 'variant',
  'Content block size': 'blockSize',
  'Content IV size': 'ivSize',
  'Content cipher': 'cipher',
  'Password derivation algorithm': 'pbkdf',
};

export async function securefsTarget(base: string, mntBase: string, cleanup: CleanupRegistry): Promise<Target> {
  const cipher = path.join(base, 'securefs-cipher');
  const mnt = path.join(mntBase, 'securefs');
  mkdirSync(cipher, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  // Its own defaults throughout (format 4 "lite", argon2id), as gocryptfs gets its own.
  const pass = ['--pass', 'bench-password'];
  await run(SECUREFS(), ['create', ...pass, cipher], { timeoutMs: 60_000 });
  const settings: Record<string, string> = {};
  try {
    const out = (await run(SECUREFS(), ['info', cipher], { stdout: 'capture', timeoutMs: 30_000 })).stdout;
    for (const line of out.split('\n')) {
      const at = line.indexOf(':');
      const k = SECUREFS_INFO[line.slice(0, at).trim()];
      if (at > 0 && k) settings[k] = line.slice(at + 1).trim();
    }
  } catch {
    /* the info is a nicety */
  }
  // Without -b, securefs stays in the foreground.
  return foregroundServer('securefs', SECUREFS(), ['mount', ...pass, cipher, mnt], mnt, cipher, { options: 'defaults', ...settings }, cleanup);
}
