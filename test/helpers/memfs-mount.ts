// Minimal in-memory filesystem for test/binding.test.ts, served by createFuse
// in its own process (a process must not touch its own mount synchronously).
//
//   node --import tsx test/helpers/memfs-mount.ts <mountpoint> <log.jsonl> [--watch-stdin]
//
// Prints READY once mounted. Appends one JSON line per create, write and
// utimens call to the log, with the raw arguments fuse-native passed.
// SIGTERM/SIGINT unmount and exit 0; so does the end of stdin with
// --watch-stdin, which the test uses so that the mount goes away even if the
// test process dies without its teardown.
import { appendFileSync } from 'node:fs';
import { createFuse, lazyUnmount, loadFuse, UTIME_OMIT, type FuseOperations, type FuseStat } from '../../fs/fuse-binding.js';

const [mountpoint, logFile, watchStdin] = process.argv.slice(2);
if (!mountpoint || !logFile) {
  console.error('usage: memfs-mount.ts <mountpoint> <log.jsonl> [--watch-stdin]');
  process.exit(2);
}

const Fuse = loadFuse(); // for its errno constants
const log = (entry: Record<string, unknown>): void => appendFileSync(logFile, JSON.stringify(entry) + '\n');

interface Node {
  mode: number;
  data: Buffer; // capacity; `size` bytes are valid
  size: number;
  atime: number;
  mtime: number;
  ctime: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const nodes = new Map<string, Node>();
const newNode = (mode: number): Node => {
  const now = Date.now();
  return { mode, data: Buffer.alloc(0), size: 0, atime: now, mtime: now, ctime: now };
};
nodes.set('/', newNode(S_IFDIR | 0o755));

let nextFd = 10; // any non-zero handle will do

const toStat = (n: Node): FuseStat => ({
  mode: n.mode,
  size: n.size,
  nlink: n.mode & S_IFDIR ? 2 : 1,
  uid: process.getuid?.() ?? 0,
  gid: process.getgid?.() ?? 0,
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
  create(path, mode, cb, flags) {
    log({ op: 'create', path, mode, flags });
    nodes.set(path, newNode(S_IFREG | (mode & 0o7777)));
    cb(0, nextFd++);
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
  mountOptions: ['attr_timeout=0', 'entry_timeout=0', 'negative_timeout=0'],
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
if (watchStdin === '--watch-stdin') process.stdin.on('end', stop).resume();

fuse.mount((err) => {
  if (err) {
    console.error(`mount failed: ${err.message}`);
    process.exit(1);
  }
  console.log('READY');
});
