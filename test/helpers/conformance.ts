// The conformance matrix of test/mount/conformance.test.ts: every file type × every operation × (owner,
// another user, root), run by one worker process per user (conformance-worker.py) against a directory
// tree, so the same cells can be run against a native directory and against a mount and compared.
//
// A cell is a directory of its own: root makes it and its fixture (the object `x` of the cell's type,
// owned by the owner, and whatever the operation needs), lstats everything in it (which also fills
// the kernel's caches, so stale attributes show), lets the cell's user run the operation, and lstats
// everything again. What is compared: each system call's result (errno name), and per name the type,
// mode, link count, owner, group, size (not of directories), and whether ctime and mtime changed.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const WORKER_PY = fileURLToPath(new URL('./conformance-worker.py', import.meta.url));

export type UserName = 'owner' | 'other' | 'root';
export const USERS: Record<UserName, { uid: number; gid: number }> = {
  owner: { uid: 1001, gid: 1001 },
  other: { uid: 1002, gid: 1002 },
  root: { uid: 0, gid: 0 },
};

export const FILE_TYPES = ['file', 'dir', 'symlink', 'fifo', 'sock', 'chr', 'blk'] as const;
export type FileType = (typeof FILE_TYPES)[number];
/** FIFOs, sockets and device nodes (store format 2 holds them: docs/format-2.md section 8; format 1 could not). */
export const SPECIAL_TYPES: readonly FileType[] = ['fifo', 'sock', 'chr', 'blk'];

/** One system call for the worker (see conformance-worker.py for the ops and their fields). */
export type Step = { op: string; path?: string } & Record<string, unknown>;

export interface Cell {
  /** group/type/operation/user, e.g. `plain/file/chmod/other`. */
  key: string;
  /** The fixture's type, or null for cells about names and paths rather than a file type. */
  type: FileType | null;
  user: UserName;
  /** Mode and owner of the cell's directory. */
  dirMode: number;
  dirOwner: UserName;
  /** Run by root in the cell's directory once it exists. */
  setup: Step[];
  /** Run by the cell's user. */
  op: Step[];
}

const { owner, other } = USERS;
const ownerId = (path: string): Step => ({ op: 'chown', path, uid: owner.uid, gid: owner.gid, follow: false });
const userId = (path: string, u: UserName): Step => ({ op: 'chown', path, uid: USERS[u].uid, gid: USERS[u].gid, follow: false });
const W = ['O_WRONLY'];
/** atime and mtime set by the utime cells: 2001-02-03 04:05:06 UTC, and half a second later. */
const T2001 = [[981_173_106, 0], [981_173_106, 500_000_000]];
const T2001_MTIME_NS = '981173106500000000';

/** Steps that make `x` of a type, owned by the owner (a symlink points at `tgt`, a regular file). */
function fixture(type: FileType): Step[] {
  switch (type) {
    case 'file':
      return [{ op: 'open', path: 'x', flags: ['O_CREAT', ...W], mode: 0o644, write: 'hello' }, ownerId('x')];
    case 'dir':
      return [{ op: 'mkdir', path: 'x', mode: 0o755 }, ownerId('x')];
    case 'symlink':
      return [
        { op: 'open', path: 'tgt', flags: ['O_CREAT', ...W], mode: 0o644, write: 'target' }, ownerId('tgt'),
        { op: 'symlink', target: 'tgt', path: 'x' }, ownerId('x'),
      ];
    case 'fifo':
    case 'sock':
      return [{ op: 'mknod', path: 'x', kind: type, mode: 0o644 }, ownerId('x')];
    case 'chr':
      return [{ op: 'mknod', path: 'x', kind: 'chr', mode: 0o644, dev: [1, 3] }, ownerId('x')];
    case 'blk':
      // A major number of the "local/experimental" range: no driver, so opening it fails with ENXIO.
      return [{ op: 'mknod', path: 'x', kind: 'blk', mode: 0o644, dev: [240, 0] }, ownerId('x')];
  }
}

/** Extras an operation needs, owned by the acting user: `f` a regular file, `d` an empty directory. */
function extras(needs: string, u: UserName): Step[] {
  const out: Step[] = [];
  if (needs.includes('f')) out.push({ op: 'open', path: 'f', flags: ['O_CREAT', ...W], mode: 0o644, write: 'other' }, userId('f', u));
  if (needs.includes('d')) out.push({ op: 'mkdir', path: 'd', mode: 0o755 }, userId('d', u));
  return out;
}

interface OpDef {
  name: string;
  needs?: string;
  steps: Step[];
}

/** Operations on `x` in a directory of the owner's (0755). */
const PLAIN_OPS: OpDef[] = [
  // EEXIST onto every type
  { name: 'creat-excl', steps: [{ op: 'open', path: 'x', flags: ['O_CREAT', 'O_EXCL', ...W], mode: 0o644 }] },
  { name: 'mkdir-onto', steps: [{ op: 'mkdir', path: 'x', mode: 0o755 }] },
  { name: 'link-onto', needs: 'f', steps: [{ op: 'link', src: 'f', dst: 'x' }] },
  { name: 'symlink-onto', steps: [{ op: 'symlink', target: 'somewhere', path: 'x' }] },
  { name: 'mknod-fifo-onto', steps: [{ op: 'mknod', path: 'x', kind: 'fifo', mode: 0o644 }] },
  { name: 'mknod-reg-onto', steps: [{ op: 'mknod', path: 'x', kind: 'reg', mode: 0o644 }] },
  // ENOTDIR through a non-directory (and what a directory does instead)
  { name: 'lstat-through', steps: [{ op: 'lstat', path: 'x/y' }] },
  { name: 'creat-through', steps: [{ op: 'open', path: 'x/y', flags: ['O_CREAT', ...W], mode: 0o644 }] },
  { name: 'mkdir-through', steps: [{ op: 'mkdir', path: 'x/y', mode: 0o755 }] },
  { name: 'rmdir-nondir', steps: [{ op: 'rmdir', path: 'x' }] },
  { name: 'lstat-slash', steps: [{ op: 'lstat', path: 'x/' }] },
  // opens
  { name: 'open-r', steps: [{ op: 'open', path: 'x', flags: ['O_RDONLY'] }] },
  { name: 'open-w', steps: [{ op: 'open', path: 'x', flags: W }] },
  { name: 'open-trunc', steps: [{ op: 'open', path: 'x', flags: ['O_WRONLY', 'O_TRUNC'] }] },
  { name: 'open-nofollow', steps: [{ op: 'open', path: 'x', flags: ['O_RDONLY', 'O_NOFOLLOW'] }] },
  { name: 'open-dir', steps: [{ op: 'open', path: 'x', flags: ['O_RDONLY', 'O_DIRECTORY'] }] },
  { name: 'access', steps: ['R', 'W', 'X'].map((mode) => ({ op: 'access', path: 'x', mode })) },
  // attributes
  { name: 'chmod', steps: [{ op: 'chmod', path: 'x', mode: 0o640 }] },
  { name: 'chown-give', steps: [{ op: 'chown', path: 'x', uid: other.uid, gid: -1 }] },
  { name: 'lchown-group-own', steps: [{ op: 'chown', path: 'x', uid: -1, gid: owner.gid, follow: false }] },
  { name: 'lchown-group-other', steps: [{ op: 'chown', path: 'x', uid: -1, gid: other.gid, follow: false }] },
  { name: 'utime-set', steps: [{ op: 'utime', path: 'x', times: T2001 }] },
  { name: 'utime-now', steps: [{ op: 'utime', path: 'x', times: null }] },
  { name: 'truncate', steps: [{ op: 'truncate', path: 'x', size: 1 }] },
  // names
  { name: 'unlink', steps: [{ op: 'unlink', path: 'x' }] },
  { name: 'link', steps: [{ op: 'link', src: 'x', dst: 'x2' }] },
  { name: 'rename-away', steps: [{ op: 'rename', src: 'x', dst: 'y' }] },
  { name: 'rename-self', steps: [{ op: 'rename', src: 'x', dst: 'x' }] },
  { name: 'rename-file-over', needs: 'f', steps: [{ op: 'rename', src: 'f', dst: 'x' }] },
  { name: 'rename-dir-over', needs: 'd', steps: [{ op: 'rename', src: 'd', dst: 'x' }] },
  { name: 'rename-over-file', needs: 'f', steps: [{ op: 'rename', src: 'x', dst: 'f' }] },
  { name: 'rename-over-dir', needs: 'd', steps: [{ op: 'rename', src: 'x', dst: 'd' }] },
  { name: 'rename-into-self', steps: [{ op: 'rename', src: 'x', dst: 'x/sub' }] },
];

/** Operations on the owner's `x` in a sticky directory of root's that everyone may write (01777). */
const STICKY_OPS: OpDef[] = [
  { name: 'unlink', steps: [{ op: 'unlink', path: 'x' }] },
  { name: 'rmdir', steps: [{ op: 'rmdir', path: 'x' }] },
  { name: 'rename-away', steps: [{ op: 'rename', src: 'x', dst: 'y' }] },
  { name: 'rename-file-over', needs: 'f', steps: [{ op: 'rename', src: 'f', dst: 'x' }] },
  { name: 'rename-dir-over', needs: 'd', steps: [{ op: 'rename', src: 'd', dst: 'x' }] },
  { name: 'rename-over-own', needs: 'f', steps: [{ op: 'rename', src: 'x', dst: 'f' }] },
  { name: 'link', steps: [{ op: 'link', src: 'x', dst: 'x2' }] },
];

/** Operations on an `x` with setuid and setgid set, that everyone may write (see SUID_MODES). */
const SUID_OPS: OpDef[] = [
  { name: 'write', steps: [{ op: 'open', path: 'x', flags: W, write: 'z', offset: 0 }] },
  { name: 'truncate', steps: [{ op: 'truncate', path: 'x', size: 2 }] },
  { name: 'ftruncate', steps: [{ op: 'open', path: 'x', flags: W, ftruncate: 3 }] },
  { name: 'open-trunc', steps: [{ op: 'open', path: 'x', flags: ['O_WRONLY', 'O_TRUNC'] }] },
  { name: 'chown-keep', steps: [{ op: 'chown', path: 'x', uid: -1, gid: -1 }] },
  { name: 'chgrp-own', steps: [{ op: 'chown', path: 'x', uid: -1, gid: owner.gid }] },
];
/**
 * Writable by everyone; setgid without group execute (cleared only for callers outside the group); and
 * writable by the owner only (so another user's chown(f, -1, -1) must fail, not clear the bits).
 */
const SUID_MODES = [0o6777, 0o2767, 0o6755];

/** Operations through a second name `x2` of `x` (a hard link); what matters is what `x` shows next. */
const HARDLINK_OPS: OpDef[] = [
  { name: 'chmod', steps: [{ op: 'chmod', path: 'x2', mode: 0o600 }] },
  { name: 'lchown', steps: [{ op: 'chown', path: 'x2', uid: other.uid, gid: -1, follow: false }] },
  { name: 'unlink', steps: [{ op: 'unlink', path: 'x2' }] },
  { name: 'write', steps: [{ op: 'open', path: 'x2', flags: ['O_WRONLY', 'O_APPEND'], write: 'zz' }] },
  { name: 'truncate', steps: [{ op: 'truncate', path: 'x2', size: 9 }] },
  { name: 'rename-over', needs: 'f', steps: [{ op: 'rename', src: 'f', dst: 'x2' }] },
  { name: 'rename-away', steps: [{ op: 'rename', src: 'x2', dst: 'y' }] },
  { name: 'link', steps: [{ op: 'link', src: 'x2', dst: 'x3' }] },
  { name: 'utime', steps: [{ op: 'utime', path: 'x2', times: T2001 }] },
];

const N256 = 'n'.repeat(256);
const N255 = 'n'.repeat(255);
/** Cells about names and paths, each with its own setup. */
const NAME_CELLS: { name: string; setup: Step[]; needs?: string; steps: Step[] }[] = [
  // ELOOP
  ...((): { name: string; setup: Step[]; steps: Step[] }[] => {
    const loop: Step[] = [{ op: 'symlink', target: 'l2', path: 'l1' }, { op: 'symlink', target: 'l1', path: 'l2' }, ownerId('l1'), ownerId('l2')];
    return [
      { name: 'loop-open', setup: loop, steps: [{ op: 'open', path: 'l1', flags: ['O_RDONLY'] }] },
      { name: 'loop-creat', setup: loop, steps: [{ op: 'open', path: 'l1', flags: ['O_CREAT', ...W] }] },
      { name: 'loop-stat', setup: loop, steps: [{ op: 'stat', path: 'l1' }] },
      { name: 'loop-through', setup: loop, steps: [{ op: 'lstat', path: 'l1/x' }] },
      { name: 'loop-self', setup: [{ op: 'symlink', target: 's', path: 's' }, ownerId('s')], steps: [{ op: 'stat', path: 's' }] },
    ];
  })(),
  // A dangling symlink: O_EXCL does not follow it; O_CREAT alone creates its target.
  ...((): { name: string; setup: Step[]; steps: Step[] }[] => {
    const dangling: Step[] = [{ op: 'symlink', target: 'missing', path: 'l' }, ownerId('l')];
    return [
      { name: 'dangling-creat-excl', setup: dangling, steps: [{ op: 'open', path: 'l', flags: ['O_CREAT', 'O_EXCL', ...W] }] },
      { name: 'dangling-creat', setup: dangling, steps: [{ op: 'open', path: 'l', flags: ['O_CREAT', ...W], mode: 0o600 }] },
      { name: 'dangling-stat', setup: dangling, steps: [{ op: 'stat', path: 'l' }] },
    ];
  })(),
  // ENAMETOOLONG: a component of 256 bytes, a path longer than PATH_MAX; and what still works
  { name: 'name256-lstat', setup: [], steps: [{ op: 'lstat', path: N256 }] },
  { name: 'name256-creat', setup: [], steps: [{ op: 'open', path: N256, flags: ['O_CREAT', ...W] }] },
  { name: 'name256-mkdir', setup: [], steps: [{ op: 'mkdir', path: N256 }] },
  { name: 'name256-symlink', setup: [], steps: [{ op: 'symlink', target: 't', path: N256 }] },
  { name: 'name256-rename', setup: [], needs: 'f', steps: [{ op: 'rename', src: 'f', dst: N256 }] },
  { name: 'name255-creat', setup: [], steps: [{ op: 'open', path: N255, flags: ['O_CREAT', ...W] }] },
  { name: 'path4096-lstat', setup: [], steps: [{ op: 'lstat', path: 'a/'.repeat(2048) + 'x' }] },
  { name: 'symlink-target-4095', setup: [], steps: [{ op: 'symlink', target: 't'.repeat(4095), path: 'long' }] },
  { name: 'symlink-target-4096', setup: [], steps: [{ op: 'symlink', target: 't'.repeat(4096), path: 'long' }] },
  // Past PATH_MAX through directory descriptors: 18 directories of 250 bytes.
  { name: 'deep-path', setup: [], steps: [{ op: 'deep', path: '.', depth: 18, length: 250 }] },
  // A setgid directory: new entries take its group, new directories its setgid bit.
  ...((): { name: string; setup: Step[]; steps: Step[] }[] => {
    const sgid: Step[] = [{ op: 'mkdir', path: 's' }, ownerId('s'), { op: 'chmod', path: 's', mode: 0o2777 }];
    return [
      { name: 'sgid-dir-creat', setup: sgid, steps: [{ op: 'open', path: 's/n', flags: ['O_CREAT', ...W], mode: 0o2775 }] },
      { name: 'sgid-dir-mkdir', setup: sgid, steps: [{ op: 'mkdir', path: 's/m', mode: 0o755 }] },
      { name: 'sgid-dir-symlink', setup: sgid, steps: [{ op: 'symlink', target: 't', path: 's/l' }] },
    ];
  })(),
  // A directory only its owner may enter.
  ...((): { name: string; setup: Step[]; steps: Step[] }[] => {
    const priv: Step[] = [
      { op: 'mkdir', path: 'p' }, ownerId('p'), { op: 'chmod', path: 'p', mode: 0o700 },
      { op: 'open', path: 'p/f', flags: ['O_CREAT', ...W], mode: 0o644 }, ownerId('p/f'),
    ];
    return [
      { name: 'private-lstat', setup: priv, steps: [{ op: 'lstat', path: 'p/f' }] },
      { name: 'private-creat', setup: priv, steps: [{ op: 'open', path: 'p/n', flags: ['O_CREAT', ...W] }] },
      { name: 'private-listdir', setup: priv, steps: [{ op: 'listdir', path: 'p' }] },
    ];
  })(),
  // Directories that are not empty.
  ...((): { name: string; setup: Step[]; steps: Step[] }[] => {
    const full: Step[] = [{ op: 'mkdir', path: 'a' }, { op: 'mkdir', path: 'a/b' }, { op: 'mkdir', path: 'e' }, ownerId('a'), ownerId('a/b'), ownerId('e')];
    return [
      { name: 'rmdir-nonempty', setup: full, steps: [{ op: 'rmdir', path: 'a' }] },
      { name: 'rename-over-nonempty', setup: full, steps: [{ op: 'rename', src: 'e', dst: 'a' }] },
      { name: 'rename-into-sub', setup: full, steps: [{ op: 'rename', src: 'a', dst: 'a/b/c' }] },
      { name: 'rename-parent-into-child', setup: full, steps: [{ op: 'rename', src: 'a/b', dst: 'a/b/c/d' }] },
      // Across directories: both parents' link counts and times change.
      { name: 'rename-dir-across', setup: full, steps: [{ op: 'rename', src: 'a/b', dst: 'e/b' }] },
      { name: 'rename-dir-across-over', setup: [...full, { op: 'mkdir', path: 'e/b' }, ownerId('e/b')], steps: [{ op: 'rename', src: 'a/b', dst: 'e/b' }] },
    ];
  })(),
];

/** The whole matrix. */
export function conformanceCells(): Cell[] {
  const cells: Cell[] = [];
  const users: UserName[] = ['owner', 'other', 'root'];
  const add = (group: string, type: FileType | null, op: OpDef, dirMode: number, dirOwner: UserName, pre: Step[], post: Step[] = []) => {
    for (const user of users) {
      cells.push({
        key: `${group}/${type ?? '-'}/${op.name}/${user}`, type, user, dirMode, dirOwner,
        setup: [...pre, ...post, ...extras(op.needs ?? '', user)], op: op.steps,
      });
    }
  };
  for (const type of FILE_TYPES) {
    for (const op of PLAIN_OPS) add('plain', type, op, 0o755, 'owner', fixture(type));
    for (const op of STICKY_OPS) add('sticky', type, op, 0o1777, 'root', fixture(type));
    for (const mode of SUID_MODES) {
      for (const op of SUID_OPS) add(`suid${mode.toString(8)}`, type, op, 0o755, 'owner', fixture(type), [{ op: 'chmod', path: 'x', mode }]);
    }
    if (type !== 'dir') {
      for (const op of HARDLINK_OPS) add('hardlink', type, op, 0o755, 'owner', fixture(type), [{ op: 'link', src: 'x', dst: 'x2' }]);
    }
  }
  for (const c of NAME_CELLS) add('names', null, { name: c.name, needs: c.needs, steps: c.steps }, 0o755, 'owner', c.setup);
  return cells;
}

// ---- running the matrix ----

interface Pending {
  resolve: (r: unknown[]) => void;
  reject: (e: Error) => void;
}

/** A worker process running as one user. */
export class ConformanceWorker {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderr = '';

  constructor(readonly user: UserName) {
    const { uid, gid } = USERS[user];
    this.proc = spawn('python3', [WORKER_PY], { uid, gid, stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { i: number; results?: unknown[]; error?: string };
      const p = this.pending.get(msg.i);
      if (!p) return;
      this.pending.delete(msg.i);
      if (msg.results) p.resolve(msg.results);
      else p.reject(new Error(`worker (${user}): ${msg.error ?? 'no results'}`));
    });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.proc.on('exit', (code, sig) => {
      for (const p of this.pending.values()) p.reject(new Error(`worker (${user}) exited (${code ?? sig}): ${this.stderr}`));
      this.pending.clear();
    });
    this.proc.stdin.on('error', () => undefined);
  }

  run(dir: string, steps: Step[], stop = false): Promise<unknown[]> {
    const i = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(i, { resolve, reject });
      this.proc.stdin.write(JSON.stringify({ i, dir, steps, stop }) + '\n');
    });
  }

  /** Ends the worker; kills it if it does not exit at once (it may be stuck in a FUSE call). */
  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

export type Workers = Record<UserName, ConformanceWorker>;

export function startWorkers(): Workers {
  return { owner: new ConformanceWorker('owner'), other: new ConformanceWorker('other'), root: new ConformanceWorker('root') };
}

export async function closeWorkers(w: Workers): Promise<void> {
  await Promise.all(Object.values(w).map((x) => x.close()));
}

interface Entry {
  type: string;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  ino: number;
  /** Nanoseconds, as decimal strings (past what a JS number holds exactly). */
  mtime: string;
  ctime: string;
}
type Snapshot = Record<string, Entry | string>;

/** What a cell shows: comparable as JSON between two filesystems. */
export interface CellResult {
  setup: string;
  op: string[];
  after: Record<string, string>;
}

const userOf = (id: number): string => Object.entries(USERS).find(([, u]) => u.uid === id)?.[0] ?? String(id);
const groupOf = (id: number): string => Object.entries(USERS).find(([, u]) => u.gid === id)?.[0] ?? String(id);

/** One name's state after the operation, relative to before it. */
function describe(after: Entry | string, before: Entry | string | undefined): string {
  if (typeof after === 'string') return after;
  const parts = [
    after.type, `mode=${after.mode.toString(8)}`, `nlink=${after.nlink}`, `uid=${userOf(after.uid)}`, `gid=${groupOf(after.gid)}`,
  ];
  if (after.type !== 'dir') parts.push(`size=${after.size}`);
  const old = typeof before === 'object' ? before : undefined;
  if (!old) parts.push('new');
  else if (old.ino !== after.ino) parts.push('replaced'); // another file now: its times say nothing
  else {
    if (after.ctime !== old.ctime) parts.push('ctime-changed');
    if (after.mtime === T2001_MTIME_NS) parts.push('mtime=2001');
    else if (after.mtime !== old.mtime) parts.push('mtime-changed');
  }
  return parts.join(' ');
}

/** Runs every cell under `root` (an empty directory all users may enter); results by cell key. */
export async function runMatrix(root: string, cells: Cell[], w: Workers): Promise<Map<string, CellResult>> {
  const results = new Map<string, CellResult>();
  const setups: string[] = [];
  // Every cell is set up first, so its times are older than the operation (svault keeps milliseconds).
  await w.root.run(root, [{ op: 'mkdir', path: 'c', mode: 0o755 }], true);
  for (const [i, cell] of cells.entries()) {
    const dir = `c/${i}`;
    const steps: Step[] = [
      { op: 'mkdir', path: dir }, userId(dir, cell.dirOwner), { op: 'chmod', path: dir, mode: cell.dirMode },
      ...cell.setup.map((s) => prefix(s, dir)),
    ];
    const r = await w.root.run(root, steps, true);
    const bad = r.findIndex((x) => x !== 'OK' && !String(x).startsWith('OK '));
    setups.push(bad < 0 ? 'OK' : `${String(steps[bad]?.op)}:${String(r[bad])}`);
  }
  await new Promise((r) => setTimeout(r, 20));
  for (const [i, cell] of cells.entries()) {
    const dir = `${root}/c/${i}`;
    const setup = setups[i] ?? '?';
    if (setup !== 'OK') {
      results.set(cell.key, { setup, op: [], after: {} });
      continue;
    }
    const before = (await w.root.run(dir, [{ op: 'snapshot', path: '.' }]))[0] as Snapshot;
    const op = (await w[cell.user].run(dir, cell.op)).map(String);
    const after = (await w.root.run(dir, [{ op: 'snapshot', path: '.' }]))[0] as Snapshot;
    const shown: Record<string, string> = {};
    for (const [name, e] of Object.entries(after)) shown[name] = describe(e, before[name]);
    for (const name of Object.keys(before)) if (!(name in after)) shown[name] = 'gone';
    results.set(cell.key, { setup, op, after: shown });
  }
  return results;
}

/** A step with its paths under `dir`. */
function prefix(s: Step, dir: string): Step {
  const out: Step = { ...s };
  for (const k of ['path', 'src', 'dst'] as const) if (typeof s[k] === 'string') out[k] = `${dir}/${s[k] as string}`;
  return out;
}

/** Cells whose results differ between two runs, with both results. */
export function differences(a: Map<string, CellResult>, b: Map<string, CellResult>): Map<string, { native: CellResult; svault: CellResult }> {
  const out = new Map<string, { native: CellResult; svault: CellResult }>();
  for (const [key, ra] of a) {
    const rb = b.get(key);
    if (!rb || JSON.stringify(ra) !== JSON.stringify(rb)) out.set(key, { native: ra, svault: rb ?? { setup: 'missing', op: [], after: {} } });
  }
  return out;
}

/** A difference as lines a reader can compare: only the parts that differ. */
export function explain(key: string, d: { native: CellResult; svault: CellResult }): string {
  const lines = [`${key}:`];
  if (d.native.setup !== d.svault.setup) lines.push(`  setup: native ${d.native.setup}, svault ${d.svault.setup}`);
  if (JSON.stringify(d.native.op) !== JSON.stringify(d.svault.op)) lines.push(`  op: native ${d.native.op.join(' ')}, svault ${d.svault.op.join(' ')}`);
  const names = new Set([...Object.keys(d.native.after), ...Object.keys(d.svault.after)]);
  for (const n of names) {
    const x = d.native.after[n];
    const y = d.svault.after[n];
    if (x !== y) lines.push(`  ${n}: native ${x ?? '(absent)'}, svault ${y ?? '(absent)'}`);
  }
  return lines.join('\n');
}
