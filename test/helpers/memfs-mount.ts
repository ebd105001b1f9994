// Minimal in-memory filesystem for test/binding.test.ts, served by createFuse
// in its own process (a process must not touch its own mount synchronously).
//
//   node --import tsx test/helpers/memfs-mount.ts <mountpoint> <log.jsonl> [--watch-stdin] [--allow-other]
//
// Prints READY once mounted. Appends one JSON line per create, mkdir, mknod,
// symlink, write and utimens call to the log, with the raw arguments
// fuse-native passed. New entries belong to the uid/gid the binding reports
// for the caller; the root directory belongs to this process's user.
// SIGTERM/SIGINT unmount and exit 0; so does the end of stdin with
// --watch-stdin, which the test uses so that the mount goes away even if the
// test process dies without its teardown. --allow-other mounts with
// allow_other,default_permissions so that other users can use the mount and
// the kernel checks their permissions against what getattr reports.
import { appendFileSync } from 'node:fs';
import { createFuse, lazyUnmount, loadFuse, UTIME_OMIT, type FuseOperations, type FuseStat } from '../../fs/fuse-binding.js';

const USAGE = 'usage: memfs-mount.ts <mountpoint> <log.jsonl> [--watch-stdin] [--allow-other]';
const [mountpoint, logFile, ...flags] = process.argv.slice(2);
const unknown = flags.filter((f) => f !== '--watch-stdin' && f !== '--allow-other');
if (!mountpoint || !logFile || unknown.length) {
  console.error(USAGE);
  process.exit(2);
}
const watchStdin = flags.includes('--watch-stdin');
const allowOther = flags.includes('--allow-other');

const Fuse = loadFuse(); // for its errno constants
const log = (entry: Record<string, unknown>): void => appendFileSync(logFile, JSON.stringify(entry) + '\n');

interface Node {
  mode: number; // file type and permission bits
  uid: number;
  gid: number;
  target?: string; // symlinks
  data: Buffer; // capacity; `size` bytes are valid
  size: number;
  atime: number;
  mtime: number;
  ctime: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const nodes = new Map<string, Node>();
const newNode = (mode: number, uid: number, gid: number): Node => {
  const now = Date.now();
  return { mode, uid, gid, data: Buffer.alloc(0), size: 0, atime: now, mtime: now, ctime: now };
};
nodes.set('/', newNode(S_IFDIR | 0o755, process.getuid?.() ?? 0, process.getgid?.() ?? 0));

const parentOf = (path: string): string => path.slice(0, path.lastIndexOf('/')) || '/';
/** 0 if `path` can be added, else the errno for the callback. */
const canAdd = (path: string): number => {
  if (nodes.has(path)) return Fuse.EEXIST;
  const parent = nodes.get(parentOf(path));
  if (!parent) return Fuse.ENOENT;
  return (parent.mode & S_IFMT) === S_IFDIR ? 0 : Fuse.ENOTDIR;
};

let nextFd = 10; // any non-zero handle will do

const toStat = (n: Node): FuseStat => ({
  mode: n.mode,
  size: n.target !== undefined ? Buffer.byteLength(n.target) : n.size,
  nlink: (n.mode & S_IFMT) === S_IFDIR ? 2 : 1,
  uid: n.uid,
  gid: n.gid,
  atime: n.atime,
  mtime: n.mtime,
  ctime: n.ctime,
});

function resize(n: Node, size: number): void {
  if (size > n.data.length) {
    const grown = Buffer.alloc(Math.max(size, n.data.length * 2));
    n.data.copy(grown, 0, 0, n.size);
    n.data = grown;
  } else if (size < n.size) {
    n.data.fill(0, size, n.size); // so a later extension reads zeros
  }
  n.size = size;
  n.mtime = n.ctime = Date.now();
}

const ops: FuseOperations = {
  getattr(path, cb) {
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    cb(0, toStat(n));
  },
  readdir(path, cb) {
    if (!nodes.get(path)) return cb(Fuse.ENOENT);
    const prefix = path === '/' ? '/' : `${path}/`;
    const names = [...nodes.keys()]
      .filter((p) => p !== path && p.startsWith(prefix) && !p.slice(prefix.length).includes('/'))
      .map((p) => p.slice(prefix.length));
    cb(0, names);
  },
  create(path, mode, cb, flags, uid, gid) {
    log({ op: 'create', path, mode, flags, uid, gid });
    const err = canAdd(path);
    if (err) return cb(err);
    nodes.set(path, newNode(S_IFREG | (mode & 0o7777), uid, gid));
    cb(0, nextFd++);
  },
  mkdir(path, mode, cb, uid, gid) {
    log({ op: 'mkdir', path, mode, uid, gid });
    const err = canAdd(path);
    if (err) return cb(err);
    nodes.set(path, newNode(S_IFDIR | (mode & 0o7777), uid, gid));
    cb(0);
  },
  mknod(path, mode, dev, cb, uid, gid) {
    log({ op: 'mknod', path, mode, dev, uid, gid });
    const err = canAdd(path);
    if (err) return cb(err);
    nodes.set(path, newNode(mode, uid, gid)); // mode has the file type (S_IFIFO, ...)
    cb(0);
  },
  symlink(target, path, cb, uid, gid) {
    log({ op: 'symlink', target, path, uid, gid });
    const err = canAdd(path);
    if (err) return cb(err);
    nodes.set(path, { ...newNode(S_IFLNK | 0o777, uid, gid), target });
    cb(0);
  },
  readlink(path, cb) {
    const n = nodes.get(path);
    if (n?.target === undefined) return cb(n ? Fuse.EINVAL : Fuse.ENOENT);
    cb(0, n.target);
  },
  chmod(path, mode, cb) {
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    n.mode = (n.mode & S_IFMT) | (mode & 0o7777);
    n.ctime = Date.now();
    cb(0);
  },
  open(path, _flags, cb) {
    if (!nodes.has(path)) return cb(Fuse.ENOENT);
    cb(0, nextFd++);
  },
  release(_path, _fd, cb) {
    cb(0);
  },
  read(path, _fd, buffer, length, position, cb) {
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    if (position >= n.size) return cb(0);
    const end = Math.min(n.size, position + length);
    n.data.copy(buffer, 0, position, end);
    cb(end - position);
  },
  write(path, _fd, buffer, length, position, cb) {
    log({ op: 'write', path, length, position });
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    if (position + length > n.size) resize(n, position + length);
    buffer.copy(n.data, position, 0, length); // copy: buffer dies with the callback
    n.mtime = n.ctime = Date.now();
    cb(length);
  },
  truncate(path, size, cb) {
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    resize(n, size);
    cb(0);
  },
  ftruncate(path, _fd, size, cb) {
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    resize(n, size);
    cb(0);
  },
  utimens(path, atime, mtime, cb) {
    log({ op: 'utimens', path, atime, mtime });
    const n = nodes.get(path);
    if (!n) return cb(Fuse.ENOENT);
    if (atime !== UTIME_OMIT) n.atime = atime;
    if (mtime !== UTIME_OMIT) n.mtime = mtime;
    n.ctime = Date.now();
    cb(0);
  },
  unlink(path, cb) {
    if (!nodes.delete(path)) return cb(Fuse.ENOENT);
    cb(0);
  },
};

const fuse = createFuse(mountpoint, ops, {
  fsname: 'svault-test-memfs',
  // attr_timeout=0: every stat reaches getattr, so the test sees what we store.
  mountOptions: [
    'attr_timeout=0',
    'entry_timeout=0',
    'negative_timeout=0',
    ...(allowOther ? ['allow_other', 'default_permissions'] : []),
  ],
});

// Safety net if we exit without a clean unmount (lazy, so safe from here).
process.on('exit', () => lazyUnmount(mountpoint));

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(3), 5000).unref();
  fuse.unmount((err) => {
    if (err) console.error(`unmount failed: ${err.message}`);
    process.exit(err ? 1 : 0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (watchStdin) process.stdin.on('end', stop).resume();

fuse.mount((err) => {
  if (err) {
    console.error(`mount failed: ${err.message}`);
    process.exit(1);
  }
  console.log('READY');
});
