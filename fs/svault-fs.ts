// The fuse-native adapter (svault mount --binding fuse-native): one short handler per operation, each a
// call into the vault by path or by handle (MountableVault, whatever the store's format). It knows nothing
// of pieces or ciphers. Every handler is wrapped so a thrown error becomes an errno (EIO plus a log line
// for the unexpected), and every call is counted for `svault status` and the profiler.

import type Fuse from 'fuse-native';
import { constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import { FsError } from '../src/core/errors.js';
import type { OpStats } from '../src/core/util/op-stats.js';
import { msOfTimespec, timespecOfMs, type Timespec } from '../src/core/format2/inode-record.js';
import type { FsAttr, MountableVault, PathApi } from '../src/core/vault/mountable.js';
import { toFuseCode } from './errno.js';
import { UTIME_OMIT } from './fuse-binding.js';
import { HiddenFiles, hiddenNameIn } from './hidden-files.js';
import { KernelCacheTracker } from './kernel-cache.js';
import { FILE_CAPS, refuseUnsupportedXattr } from './xattr-policy.js';

export type Logger = (line: string) => void;

export interface AdapterOptions {
  readOnly: boolean;
  log: Logger;
  /** Log paths (--log-names); by default a file is named by its inode number only (security finding 11). */
  logNames?: boolean;
  stats: OpStats;
}

/** fuse-native takes times as milliseconds (it makes whole ones of them). */
function stat(a: FsAttr): Fuse.Stat {
  return {
    ino: a.ino, mode: a.mode, uid: a.uid, gid: a.gid, size: a.size, nlink: a.nlink, rdev: a.rdev, blocks: a.blocks, blksize: a.blksize,
    atime: msOfTimespec(a.atime), mtime: msOfTimespec(a.mtime), ctime: msOfTimespec(a.ctime),
  };
}

/** A utimens time from fuse-native (milliseconds), or undefined for UTIME_OMIT. */
function timeOrKeep(ms: number): Timespec | undefined {
  return ms === UTIME_OMIT ? undefined : timespecOfMs(ms);
}

/**
 * A path as a log line names it without --log-names: the inode number of the path, or of the deepest
 * directory on it that resolves (the path itself may be what is damaged). Logs live outside the encrypted
 * store, so they must not hold the names the store hides (security finding 11).
 */
function inodeOf<Id>(paths: PathApi<Id>, path: string): string {
  for (let p = path, within = false; ; within = true) {
    try {
      const ino = paths.getattr(p).ino;
      return within ? `a name in directory ino ${ino}` : `ino ${ino}`;
    } catch {
      if (p === '/' || p === '') return 'an unreadable path';
      p = p.slice(0, Math.max(1, p.lastIndexOf('/')));
    }
  }
}

/** Builds the fuse-native operations object for a vault. */
export function svaultOperations<Id>(vault: MountableVault<Id>, opts: AdapterOptions): Fuse.Operations {
  const { log, stats } = opts;
  const paths = vault.paths;

  /** Runs one operation: result via onOk, errors mapped to a negative errno for cb. */
  function run<T>(op: string, path: string, cb: (code: number) => void, body: () => T | Promise<T>, onOk: (v: T) => void, bytes = 0): void {
    const t = process.hrtime.bigint();
    const fail = (err: unknown) => {
      stats.record(`fuse.${op}`, t, 0);
      const { code, unexpected } = toFuseCode(err);
      if (unexpected) log(`${op} ${opts.logNames ? path : inodeOf(paths, path)}: ${err instanceof Error ? err.message : String(err)}`);
      cb(code);
    };
    try {
      if (opts.readOnly && WRITE_OPS.has(op)) throw new FsError('EROFS', 'read-only mount');
      const result = body();
      // -o sync: what the operation changed is durable before it is answered.
      const r = vault.syncCommits && DURABLE_OPS.has(op) ? Promise.resolve(result).then(async (v) => (await vault.sync(), v)) : result;
      if (r instanceof Promise) {
        r.then((v) => {
          stats.record(`fuse.${op}`, t, bytes);
          onOk(v);
        }, fail);
      } else {
        stats.record(`fuse.${op}`, t, bytes);
        onOk(r);
      }
    } catch (err) {
      fail(err);
    }
  }

  const done = (cb: Fuse.Callback) => () => cb(0);

  // A file unlinked while open (see hidden-files.ts): its hidden name resolves to the open file.
  const hidden = new HiddenFiles<Id>();
  const attrAt = (path: string): FsAttr => {
    const id = hidden.idOf(path);
    return id === undefined ? paths.getattr(path) : paths.attrOfId(id);
  };
  // Opens that may keep the kernel's page cache; every content change and every moved or removed name is told.
  const kernelCache = new KernelCacheTracker<Id>();
  const isDir = (path: string): boolean => (attrAt(path).mode & fsConstants.S_IFMT) === fsConstants.S_IFDIR;
  const unlink = (path: string): void => {
    kernelCache.pathChanged(path, false);
    if (!hidden.forget(path)) paths.unlink(path);
  };
  const rename = (src: string, dest: string): void => {
    const subtree = isDir(src);
    kernelCache.pathChanged(src, subtree);
    kernelCache.pathChanged(dest, subtree);
    const name = hiddenNameIn(dest);
    if (name === undefined) return paths.rename(src, dest);
    if (hidden.rehide(src, dest)) return; // a hidden file's name is the target of a rename: libfuse hides it anew
    const id = paths.idAt(src);
    if (!hidden.isHide(name, vault.isOpen(id))) return paths.rename(src, dest); // a user's rename (hidden-files.ts)
    paths.unlink(src);
    hidden.hide(name, id);
  };

  return {
    init: (cb) => cb(0),
    getattr: (path, cb) => run('getattr', path, cb, () => attrAt(path), (a) => cb(0, stat(a))),
    fgetattr: (path, fd, cb) => run('fgetattr', path, cb, () => vault.fgetattr(fd), (a) => cb(0, stat(a))),
    access: (path, _mode, cb) => run('access', path, cb, () => attrAt(path), done(cb)),
    statfs: (path, cb) => run('statfs', path, cb, () => vault.statfs(), (s) => cb(0, s)),
    readdir: (path, cb) => run('readdir', path, cb, () => paths.readdir(path), (names) => cb(0, ['.', '..', ...names])),

    // uid/gid: the calling process (patched fuse-native), so with allow_other new entries belong to their creator.
    mkdir: (path, mode, cb, uid, gid) => run('mkdir', path, cb, () => paths.mkdir(path, mode, uid, gid), done(cb)),
    rmdir: (path, cb) => run('rmdir', path, cb, () => paths.rmdir(path), done(cb)),
    // libfuse makes regular files through create: FIFOs, sockets and devices come here (EPERM in format 1).
    mknod: (path, mode, dev, cb, uid, gid) =>
      run('mknod', path, cb, () => {
        paths.mknod(path, mode, dev, uid, gid);
        kernelCache.pathChanged(path, false);
      }, done(cb)),
    create: (path, mode, cb, _flags, uid, gid) =>
      run('create', path, cb, () => {
        kernelCache.pathChanged(path, false);
        return paths.create(path, mode, uid, gid);
      }, (fh) => cb(0, fh)),
    open: (path, flags, cb) =>
      run('open', path, cb, () => {
        if (opts.readOnly && (flags & 3) !== 0) throw new FsError('EROFS', 'read-only mount');
        return paths.open(path);
      }, (fh) => cb(0, fh, kernelCache.open(path, vault.idOfHandle(fh)))),
    read: (path, fd, buffer, length, position, cb) => run('read', path, cb, () => vault.read(fd, buffer, length, position), (n) => cb(n), length),
    write: (path, fd, buffer, length, position, cb) =>
      run('write', path, cb, () => {
        kernelCache.contentChanged(vault.idOfHandle(fd));
        return vault.write(fd, buffer.subarray(0, length), position);
      }, (n) => cb(n), length),
    flush: (path, fd, cb) => run('flush', path, cb, () => vault.flush(fd), done(cb)),
    fsync: (path, fd, _datasync, cb) => run('fsync', path, cb, () => vault.fsync(fd), done(cb)),
    fsyncdir: (path, _fd, _datasync, cb) => run('fsyncdir', path, cb, () => vault.sync(), done(cb)),
    release: (path, fd, cb) => run('release', path, cb, () => vault.release(fd), done(cb)),
    truncate: (path, size, cb) =>
      run('truncate', path, cb, () => {
        kernelCache.contentChanged(paths.idAt(path));
        return paths.truncate(path, size);
      }, done(cb)),
    ftruncate: (path, fd, size, cb) =>
      run('ftruncate', path, cb, () => {
        kernelCache.contentChanged(vault.idOfHandle(fd));
        return vault.ftruncate(fd, size);
      }, done(cb)),
    unlink: (path, cb) => run('unlink', path, cb, () => unlink(path), done(cb)),
    rename: (src, dest, cb) => run('rename', src, cb, () => rename(src, dest), done(cb)),
    link: (src, dest, cb) =>
      run('link', dest, cb, () => {
        kernelCache.pathChanged(dest, false);
        paths.link(src, dest);
      }, done(cb)),
    symlink: (target, path, cb, uid, gid) => run('symlink', path, cb, () => paths.symlink(target, path, uid, gid), done(cb)),
    readlink: (path, cb) => run('readlink', path, cb, () => paths.readlink(path), (t) => cb(0, t)),
    chmod: (path, mode, cb) => run('chmod', path, cb, () => paths.chmod(path, mode), done(cb)),
    chown: (path, u, g, cb) => run('chown', path, cb, () => paths.chown(path, u, g), done(cb)),
    utimens: (path, atime, mtime, cb) => run('utimens', path, cb, () => paths.utimens(path, timeOrKeep(atime), timeOrKeep(mtime)), done(cb)),
    setxattr: (path, name, value, _position, flags, cb) =>
      run('setxattr', path, cb, () => {
        refuseUnsupportedXattr(name);
        return paths.setxattr(path, name, value, flags);
      }, done(cb)),
    // The kernel asks for security.capability before every write; svault never stores it, so answer at once.
    getxattr: (path, name, _position, cb) =>
      name === FILE_CAPS ? cb(NO_DATA) : run('getxattr', path, cb, () => {
            refuseUnsupportedXattr(name);
            return paths.getxattr(path, name);
          }, (v) => cb(0, v)),
    listxattr: (path, cb) => run('listxattr', path, cb, () => paths.listxattr(path), (names) => cb(0, names)),
    removexattr: (path, name, cb) => run('removexattr', path, cb, () => {
        refuseUnsupportedXattr(name);
        paths.removexattr(path, name);
      }, done(cb)),
  };
}

const NO_DATA = -(constants.errno.ENODATA ?? 61);

/** Under -o sync, made durable before the reply: every metadata change, open's truncation, and close (flush, release). */
const DURABLE_OPS = new Set([
  'open', 'mkdir', 'mknod', 'rmdir', 'create', 'truncate', 'ftruncate', 'unlink', 'rename', 'link', 'symlink',
  'chmod', 'chown', 'utimens', 'setxattr', 'removexattr', 'flush', 'release',
]);

const WRITE_OPS = new Set([
  'mkdir', 'mknod', 'rmdir', 'create', 'write', 'truncate', 'ftruncate', 'unlink', 'rename', 'link', 'symlink',
  'chmod', 'chown', 'utimens', 'setxattr', 'removexattr',
]);
