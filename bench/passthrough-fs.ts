// The Node-FUSE floor: a minimal pass-through filesystem over a backing directory, mounted through the same
// fuse-native binding (fs/fuse-binding.ts createFuse) and with the same mount options as svault's server,
// but with no scatter, no crypto and no metadata database. Whatever svault costs beyond this is svault's.
//
//   node --import tsx bench/passthrough-fs.ts <backing-dir> <mountpoint>
//
// Prints READY on stdout once mounted. SIGTERM / SIGINT, or the end of stdin (the bench harness keeps a
// pipe open, so the mount goes away if the harness dies), unmount and exit 0.
//
// Handlers use synchronous fs calls on purpose, as svault's LocalDirStore does: FUSE requests reach the
// single JS thread one at a time, and on a tmpfs backing store a thread-pool round trip costs more than
// the call itself. Extended attributes are not implemented (Node has no xattr API): the kernel gets
// ENOSYS once and stops asking.
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { mountOptionsFor } from '../fs/transport.js';
import { createFuse, lazyUnmount, loadFuse, UTIME_OMIT, type FuseOperations, type FuseStat } from '../fs/fuse-binding.js';

const [backing, mountpoint] = process.argv.slice(2);
if (!backing || !mountpoint) {
  process.stderr.write('usage: passthrough-fs.ts <backing-dir> <mountpoint>\n');
  process.exit(2);
}
const root = path.resolve(backing);
process.umask(0); // the kernel has applied the caller's umask already
const Fuse = loadFuse();
const errnos = osConstants.errno as Record<string, number>;

/** A thrown fs error as FUSE's negative errno. */
function code(err: unknown): number {
  const c = (err as NodeJS.ErrnoException).code;
  const n = c ? errnos[c] : undefined;
  return n ? -n : Fuse.EIO;
}

const real = (p: string): string => path.join(root, p);

function toStat(s: fs.Stats): FuseStat {
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    dev: s.dev,
    nlink: s.nlink,
    ino: s.ino,
    rdev: s.rdev,
    blksize: s.blksize,
    blocks: s.blocks,
    atime: s.atimeMs,
    mtime: s.mtimeMs,
    ctime: s.ctimeMs,
  };
}

/** Runs a synchronous body and answers cb(0) or cb(-errno). */
function sync(cb: (code: number) => void, body: () => void): void {
  try {
    body();
  } catch (err) {
    cb(code(err));
    return;
  }
  cb(0);
}

const ops: FuseOperations = {
  init: (cb) => cb(0),
  getattr(p, cb) {
    let s: fs.Stats;
    try {
      s = fs.lstatSync(real(p));
    } catch (err) {
      return cb(code(err));
    }
    cb(0, toStat(s));
  },
  fgetattr(_p, fd, cb) {
    let s: fs.Stats;
    try {
      s = fs.fstatSync(fd);
    } catch (err) {
      return cb(code(err));
    }
    cb(0, toStat(s));
  },
  access: (p, mode, cb) => sync(cb, () => fs.accessSync(real(p), mode)),
  statfs(_p, cb) {
    let s: fs.StatsFs;
    try {
      s = fs.statfsSync(root);
    } catch (err) {
      return cb(code(err));
    }
    const u32 = (n: number) => Math.min(n, 0xffffffff);
    cb(0, { bsize: s.bsize, frsize: s.bsize, blocks: u32(s.blocks), bfree: u32(s.bfree), bavail: u32(s.bavail), files: u32(s.files), ffree: u32(s.ffree), favail: u32(s.ffree), namemax: 255 });
  },
  readdir(p, cb) {
    let names: string[];
    try {
      names = fs.readdirSync(real(p));
    } catch (err) {
      return cb(code(err));
    }
    cb(0, ['.', '..', ...names]);
  },
  mkdir: (p, mode, cb) => sync(cb, () => fs.mkdirSync(real(p), { mode })),
  rmdir: (p, cb) => sync(cb, () => fs.rmdirSync(real(p))),
  create(p, mode, cb, flags) {
    let fd: number;
    try {
      fd = fs.openSync(real(p), (flags ?? fs.constants.O_RDWR) | fs.constants.O_CREAT, mode);
    } catch (err) {
      return cb(code(err));
    }
    cb(0, fd);
  },
  open(p, flags, cb) {
    let fd: number;
    try {
      fd = fs.openSync(real(p), flags);
    } catch (err) {
      return cb(code(err));
    }
    cb(0, fd);
  },
  read(_p, fd, buffer, length, position, cb) {
    let n: number;
    try {
      n = fs.readSync(fd, buffer, 0, length, position);
    } catch (err) {
      return cb(code(err));
    }
    cb(n);
  },
  write(_p, fd, buffer, length, position, cb) {
    let n: number;
    try {
      n = fs.writeSync(fd, buffer, 0, length, position);
    } catch (err) {
      return cb(code(err));
    }
    cb(n);
  },
  flush: (_p, _fd, cb) => cb(0),
  fsync: (_p, fd, datasync, cb) => sync(cb, () => (datasync ? fs.fdatasyncSync(fd) : fs.fsyncSync(fd))),
  fsyncdir: (_p, _fd, _datasync, cb) => cb(0),
  release: (_p, fd, cb) => sync(cb, () => fs.closeSync(fd)),
  truncate: (p, size, cb) => sync(cb, () => fs.truncateSync(real(p), size)),
  ftruncate: (_p, fd, size, cb) => sync(cb, () => fs.ftruncateSync(fd, size)),
  unlink: (p, cb) => sync(cb, () => fs.unlinkSync(real(p))),
  rename: (src, dest, cb) => sync(cb, () => fs.renameSync(real(src), real(dest))),
  link: (src, dest, cb) => sync(cb, () => fs.linkSync(real(src), real(dest))),
  symlink: (target, p, cb) => sync(cb, () => fs.symlinkSync(target, real(p))),
  readlink(p, cb) {
    let target: string;
    try {
      target = fs.readlinkSync(real(p));
    } catch (err) {
      return cb(code(err));
    }
    cb(0, target);
  },
  chmod: (p, mode, cb) => sync(cb, () => fs.chmodSync(real(p), mode)),
  chown: (p, uid, gid, cb) => sync(cb, () => fs.lchownSync(real(p), uid, gid)),
  utimens: (p, atime, mtime, cb) =>
    sync(cb, () => {
      let a = atime;
      let m = mtime;
      if (a === UTIME_OMIT || m === UTIME_OMIT) {
        const s = fs.lstatSync(real(p));
        if (a === UTIME_OMIT) a = s.atimeMs;
        if (m === UTIME_OMIT) m = s.mtimeMs;
      }
      fs.lutimesSync(real(p), a / 1000, m / 1000);
    }),
};

// svault's own mount options (cache timeouts and all), with our own name: the last value of a key wins.
const { options } = mountOptionsFor([]);
const fuse = createFuse(mountpoint, ops, {
  mountOptions: [...options, 'fsname=svault-floor', 'subtype=svault-floor'],
  force: true,
  timeout: false,
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  fuse.unmount(() => {
    lazyUnmount(mountpoint as string);
    process.exit(0);
  });
  setTimeout(() => {
    lazyUnmount(mountpoint as string);
    process.exit(0);
  }, 5000).unref();
}
process.on('exit', () => lazyUnmount(mountpoint));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

fuse.mount((err) => {
  if (err) {
    process.stderr.write(`mount failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('READY\n');
});
