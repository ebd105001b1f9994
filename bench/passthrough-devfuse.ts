// The Node-FUSE floor on svault's own transport (fs/kernel/): the same pass-through as passthrough-fs.ts
// (a backing directory served at a mount point, synchronous fs calls, no crypto, no scatter, no metadata
// database), but spoken on /dev/fuse by FuseSession with svault's devfuse mount defaults instead of
// through libfuse 2. What svault costs beyond this is svault's; what this saves over passthrough-fs.ts is
// the transport's.
//
//   node --import tsx bench/passthrough-devfuse.ts <backing-dir> <mountpoint>
//
// Needs root (mount(2)). Prints READY on stdout once mounted. SIGTERM / SIGINT, or the end of stdin (the
// bench harness keeps a pipe open), unmount and exit 0; an external umount ends it too.
//
// Node ids are the backing files' inode numbers (root: 1), so hard links are one node. Each node keeps
// the backing paths the kernel reached it by; unlink, rmdir and rename update them. A node whose last
// name is gone answers ENOENT unless the request carries a file handle.
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { isMounted } from '../fs/fuse-binding.js';
import { constants as devConstants, fuseDevice, mountFuse, unmountFuse } from '../fs/kernel/device.js';
import { parseKernelMountOptions } from '../fs/kernel/mount-options.js';
import {
  DirentPlusWriter, DirentWriter, FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW,
  FATTR_SIZE, FATTR_UID, FOPEN_KEEP_CACHE, FUSE_FSYNC_FDATASYNC, FUSE_GETATTR_FH, RENAME_NOREPLACE, decodeName, direntType,
  replyAttr, replyCreate, replyData, replyEmpty, replyEntry, replyError, replyOpen, replyStatfs, replyWrite, replyXattrSize,
  timeToMs, type Attr, type CreateRequest, type Entry, type FsyncRequest, type GetattrRequest, type GetxattrRequest, type LinkRequest,
  type ListxattrRequest, type LookupRequest, type MkdirRequest, type MknodRequest, type OpenRequest, type ReadRequest,
  type ReleaseRequest, type RenameRequest, type Request, type SetattrRequest, type SymlinkRequest, type WriteRequest,
} from '../fs/kernel/protocol.js';
import { deviceIo, FuseSession, type Handler, type SessionOps } from '../fs/kernel/session.js';
import { OpStats } from '../src/core/util/op-stats.js';
import { timespecOfMs } from '../src/core/format2/inode-record.js';

const [backing, mountArg] = process.argv.slice(2);
if (!backing || !mountArg) {
  process.stderr.write('usage: passthrough-devfuse.ts <backing-dir> <mountpoint>\n');
  process.exit(2);
}
const root = path.resolve(backing);
const mountpoint = path.resolve(mountArg);
process.umask(0); // the kernel has applied the caller's umask already
const errnos = osConstants.errno as Record<string, number>;
// svault's devfuse defaults (cache timeouts, writeback cache), as passthrough-fs.ts takes fuse-native's.
const kopts = parseKernelMountOptions([]);
const ROOT_NODE = 1;
/** The node id of a backing inode numbered 1 (only the root may be node 1). */
const INO_ONE = Number.MAX_SAFE_INTEGER;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const XATTR_CAPS = 'security.capability';

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

function nameOf(bytes: Buffer): string {
  const name = decodeName(bytes);
  if (name === undefined) throw errnoError('EILSEQ', 'name is not valid UTF-8');
  return name;
}

const nodeOf = (st: fs.Stats): number => (st.ino === ROOT_NODE ? INO_ONE : st.ino);

function attrOf(st: fs.Stats): Attr {
  return {
    ino: st.ino, size: st.size, blocks: st.blocks, atime: timespecOfMs(st.atimeMs), mtime: timespecOfMs(st.mtimeMs), ctime: timespecOfMs(st.ctimeMs),
    mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: st.rdev, blksize: st.blksize,
  };
}

interface Node {
  /** Backing paths the kernel knows this inode by; the first is used. Usually one. */
  paths: string[];
  lookups: number;
}

const nodes = new Map<number, Node>();

/** The backing path of a node the kernel holds. */
function pathOf(nodeid: number): string {
  if (nodeid === ROOT_NODE) return root;
  const p = nodes.get(nodeid)?.paths[0];
  if (p === undefined) throw errnoError('ENOENT', `node ${nodeid} has no name`);
  return p;
}

function childPath(parent: number, name: Buffer): string {
  return `${pathOf(parent)}/${nameOf(name)}`;
}

/** The entry of a backing file, counted as one more lookup by the kernel. */
function entryAt(p: string, st: fs.Stats): Entry {
  const nodeid = nodeOf(st);
  const node = nodes.get(nodeid);
  if (!node) nodes.set(nodeid, { paths: [p], lookups: 1 });
  else {
    node.lookups++;
    if (node.paths[0] !== p && !node.paths.includes(p)) node.paths.push(p);
  }
  return { nodeid, generation: 0, entryValid: kopts.entryTimeout, attrValid: kopts.attrTimeout, attr: attrOf(st) };
}

/** A name that went away (unlink, rmdir, replaced by rename): its node no longer answers to it. */
function dropName(p: string, st: fs.Stats | undefined): void {
  const node = st && nodes.get(nodeOf(st));
  if (!node) return;
  const at = node.paths.indexOf(p);
  if (at >= 0) node.paths.splice(at, 1);
}

/** A directory moved: every known path under it moves too. */
function movePrefix(from: string, to: string): void {
  const prefix = `${from}/`;
  for (const node of nodes.values()) {
    for (let i = 0; i < node.paths.length; i++) {
      const p = node.paths[i] as string;
      if (p.startsWith(prefix)) node.paths[i] = to + p.slice(from.length);
    }
  }
}

function forget(nodeid: number, nlookup: number): void {
  const node = nodes.get(nodeid);
  if (!node) return;
  node.lookups -= nlookup;
  if (node.lookups <= 0) nodes.delete(nodeid);
}

/** Directory listings taken at opendir, by handle: readdir reads on from an index into them. */
const dirs = new Map<number, { nodeid: number; names: string[] }>();
let nextDir = 1;

/** Runs a handler; an fs error becomes its errno, anything else goes to the session (EIO and a log line). */
function h<R extends Request>(fn: (r: R) => Buffer[]): Handler {
  return (req) => {
    try {
      return fn(req as R);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const n = code === undefined ? undefined : errnos[code];
      if (n) return replyError(req.header.unique, n);
      throw err;
    }
  };
}

/** unlink and rmdir: remove the name in the backing directory, then forget it. */
function removeName(remove: (path: string) => void): Handler {
  return h<LookupRequest>((r) => {
    const p = childPath(r.header.nodeid, r.name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    remove(p);
    dropName(p, st);
    return replyEmpty(r.header.unique);
  });
}

const handlers: SessionOps['handlers'] = {
  lookup: h<LookupRequest>((r) => {
    const p = childPath(r.header.nodeid, r.name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) {
      // A negative entry the kernel may keep: every change goes through this mount.
      return replyEntry(r.header.unique, { nodeid: 0, generation: 0, entryValid: kopts.entryTimeout, attrValid: 0, attr: ZERO_ATTR });
    }
    return replyEntry(r.header.unique, entryAt(p, st));
  }),
  getattr: h<GetattrRequest>((r) => {
    const st = r.getattrFlags & FUSE_GETATTR_FH ? fs.fstatSync(r.fh) : fs.lstatSync(pathOf(r.header.nodeid));
    return replyAttr(r.header.unique, attrOf(st), kopts.attrTimeout);
  }),
  setattr: h<SetattrRequest>((r) => {
    const v = r.valid;
    const fh = v & FATTR_FH ? r.fh : -1;
    // By handle when there is one and no name to go by (an open file that was unlinked).
    const fd = fh >= 0 && r.header.nodeid !== ROOT_NODE && nodes.get(r.header.nodeid)?.paths.length === 0 ? fh : -1;
    const p = fd >= 0 ? '' : pathOf(r.header.nodeid);
    if (v & FATTR_MODE) {
      if (fd >= 0) fs.fchmodSync(fd, r.mode & 0o7777);
      else fs.chmodSync(p, r.mode & 0o7777);
    }
    if (v & (FATTR_UID | FATTR_GID)) {
      const uid = v & FATTR_UID ? r.uid : -1;
      const gid = v & FATTR_GID ? r.gid : -1;
      if (fd >= 0) fs.fchownSync(fd, uid, gid);
      else fs.lchownSync(p, uid, gid);
    }
    if (v & FATTR_SIZE) {
      if (fh >= 0) fs.ftruncateSync(fh, r.size);
      else fs.truncateSync(p, r.size);
    }
    if (v & (FATTR_ATIME | FATTR_MTIME)) {
      const now = Date.now();
      // utimes sets both: the one not asked for keeps its value.
      const old = v & FATTR_ATIME && v & FATTR_MTIME ? undefined : fd >= 0 ? fs.fstatSync(fd) : fs.lstatSync(p);
      const a = v & FATTR_ATIME ? (v & FATTR_ATIME_NOW ? now : timeToMs(r.atime, r.atimensec)) : (old as fs.Stats).atimeMs;
      const m = v & FATTR_MTIME ? (v & FATTR_MTIME_NOW ? now : timeToMs(r.mtime, r.mtimensec)) : (old as fs.Stats).mtimeMs;
      if (fd >= 0) fs.futimesSync(fd, a / 1000, m / 1000);
      else fs.lutimesSync(p, a / 1000, m / 1000);
    }
    return replyAttr(r.header.unique, attrOf(fd >= 0 ? fs.fstatSync(fd) : fs.lstatSync(p)), kopts.attrTimeout);
  }),
  readlink: h((r) => replyData(r.header.unique, fs.readlinkSync(pathOf(r.header.nodeid), { encoding: 'buffer' }))),
  symlink: h<SymlinkRequest>((r) => {
    const p = childPath(r.header.nodeid, r.name);
    fs.symlinkSync(nameOf(r.target), p);
    return replyEntry(r.header.unique, entryAt(p, fs.lstatSync(p)));
  }),
  mkdir: h<MkdirRequest>((r) => {
    const p = childPath(r.header.nodeid, r.name);
    fs.mkdirSync(p, { mode: r.mode & 0o7777 });
    return replyEntry(r.header.unique, entryAt(p, fs.lstatSync(p)));
  }),
  // Regular files only, as libfuse 2 makes of the fuse-native floor's create; devices and FIFOs are not served.
  mknod: h<MknodRequest>((r) => {
    if ((r.mode & S_IFMT) !== S_IFREG) throw errnoError('ENOSYS', 'mknod: regular files only');
    const p = childPath(r.header.nodeid, r.name);
    fs.closeSync(fs.openSync(p, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, r.mode & 0o7777));
    return replyEntry(r.header.unique, entryAt(p, fs.lstatSync(p)));
  }),
  unlink: removeName(fs.unlinkSync),
  rmdir: removeName(fs.rmdirSync),
  rename: h<RenameRequest>((r) => rename(r)),
  rename2: h<RenameRequest>((r) => rename(r)),
  link: h<LinkRequest>((r) => {
    const p = childPath(r.header.nodeid, r.name);
    fs.linkSync(pathOf(r.oldNodeid), p);
    return replyEntry(r.header.unique, entryAt(p, fs.lstatSync(p)));
  }),
  // File handles are the backing fds. The page cache is kept across opens, as svault's devfuse does:
  // every change comes through this mount.
  open: h<OpenRequest>((r) => replyOpen(r.header.unique, fs.openSync(pathOf(r.header.nodeid), r.flags), FOPEN_KEEP_CACHE)),
  create: h<CreateRequest>((r) => {
    const p = childPath(r.header.nodeid, r.name);
    const fd = fs.openSync(p, r.flags | fs.constants.O_CREAT, r.mode & 0o7777);
    let entry: Entry;
    try {
      entry = entryAt(p, fs.fstatSync(fd));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return replyCreate(r.header.unique, entry, fd, FOPEN_KEEP_CACHE);
  }),
  read: h<ReadRequest>((r) => {
    const buf = Buffer.allocUnsafe(r.size);
    const n = fs.readSync(r.fh, buf, 0, r.size, r.offset);
    return replyData(r.header.unique, buf.subarray(0, n));
  }),
  // r.data is a view of the request buffer, valid until the reply is written: used as it is.
  write: h<WriteRequest>((r) => replyWrite(r.header.unique, fs.writeSync(r.fh, r.data, 0, r.data.length, r.offset))),
  flush: h((r) => replyEmpty(r.header.unique)),
  release: h<ReleaseRequest>((r) => {
    fs.closeSync(r.fh);
    return replyEmpty(r.header.unique);
  }),
  fsync: h<FsyncRequest>((r) => {
    if (r.fsyncFlags & FUSE_FSYNC_FDATASYNC) fs.fdatasyncSync(r.fh);
    else fs.fsyncSync(r.fh);
    return replyEmpty(r.header.unique);
  }),
  opendir: h<OpenRequest>((r) => {
    const names = fs.readdirSync(pathOf(r.header.nodeid));
    const fh = nextDir++;
    dirs.set(fh, { nodeid: r.header.nodeid, names });
    return replyOpen(r.header.unique, fh, 0);
  }),
  readdir: h<ReadRequest>((r) => {
    const dir = dirs.get(r.fh);
    if (!dir) throw errnoError('EBADF', `bad directory handle ${r.fh}`);
    const dirPath = pathOf(dir.nodeid);
    const out = new DirentWriter(Math.min(r.size, 1 << 20));
    const self = r.offset < 2 ? fs.lstatSync(dirPath) : undefined;
    for (let k = r.offset; k < dir.names.length + 2; k++) {
      if (k < 2) {
        if (!out.add(k === 0 ? '.' : '..', (self as fs.Stats).ino, k + 1, 4 /* DT_DIR */)) break;
        continue;
      }
      const name = dir.names[k - 2] as string;
      const st = fs.lstatSync(`${dirPath}/${name}`, { throwIfNoEntry: false });
      if (!st) continue; // gone since opendir
      if (!out.add(name, st.ino, k + 1, direntType(st.mode))) break;
    }
    return replyData(r.header.unique, out.data());
  }),
  readdirplus: h<ReadRequest>((r) => {
    const dir = dirs.get(r.fh);
    if (!dir) throw errnoError('EBADF', `bad directory handle ${r.fh}`);
    const dirPath = pathOf(dir.nodeid);
    const out = new DirentPlusWriter(Math.min(r.size, 1 << 20));
    const self = r.offset < 2 ? attrOf(fs.lstatSync(dirPath)) : ZERO_ATTR;
    for (let k = r.offset; k < dir.names.length + 2; k++) {
      if (k < 2) {
        // "." and "..": names only (node id 0), which the kernel does not count as lookups.
        const dot: Entry = { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, attr: self };
        if (!out.add(k === 0 ? '.' : '..', k + 1, dot)) break;
        continue;
      }
      const name = dir.names[k - 2] as string;
      const p = `${dirPath}/${name}`;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      const entry: Entry = { nodeid: nodeOf(st), generation: 0, entryValid: kopts.entryTimeout, attrValid: kopts.attrTimeout, attr: attrOf(st) };
      if (!out.add(name, k + 1, entry)) break;
      entryAt(p, st); // counted only once it is in the reply
    }
    return replyData(r.header.unique, out.data());
  }),
  releasedir: h<ReleaseRequest>((r) => {
    dirs.delete(r.fh);
    return replyEmpty(r.header.unique);
  }),
  fsyncdir: h((r) => replyEmpty(r.header.unique)),
  statfs: h((r) => {
    const s = fs.statfsSync(root);
    return replyStatfs(r.header.unique, { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize });
  }),
  // Permissions are the kernel's business or nobody's: the bench runs as root.
  access: h((r) => replyEmpty(r.header.unique)),
  // No xattrs (Node has no xattr API). ENOTSUP tells ls, cp and tar to stop asking; the capability the
  // kernel looks for before a write is simply absent.
  getxattr: h<GetxattrRequest>((r) => replyError(r.header.unique, nameOf(r.name) === XATTR_CAPS ? (errnos.ENODATA ?? 61) : (errnos.ENOTSUP ?? 95))),
  listxattr: h<ListxattrRequest>((r) => (r.size === 0 ? replyXattrSize(r.header.unique, 0) : replyData(r.header.unique, Buffer.alloc(0)))),
  setxattr: h((r) => replyError(r.header.unique, errnos.ENOTSUP ?? 95)),
  removexattr: h((r) => replyError(r.header.unique, errnos.ENOTSUP ?? 95)),
};

function rename(r: RenameRequest): Buffer[] {
  if (r.flags & ~RENAME_NOREPLACE) throw errnoError('EINVAL', 'rename: RENAME_EXCHANGE and RENAME_WHITEOUT are not supported');
  const from = childPath(r.header.nodeid, r.oldName);
  const to = childPath(r.newdir, r.newName);
  const src = fs.lstatSync(from);
  const dst = fs.lstatSync(to, { throwIfNoEntry: false });
  if (dst && r.flags & RENAME_NOREPLACE) throw errnoError('EEXIST', `already exists: ${to}`);
  fs.renameSync(from, to);
  // Two names of one inode, or a name onto itself: rename(2) changes nothing.
  if (from === to || (dst && dst.ino === src.ino)) return replyEmpty(r.header.unique);
  dropName(to, dst);
  const node = nodes.get(nodeOf(src));
  if (node) {
    const at = node.paths.indexOf(from);
    if (at >= 0) node.paths[at] = to;
    else node.paths.unshift(to);
  }
  if (src.isDirectory()) movePrefix(from, to);
  return replyEmpty(r.header.unique);
}

const ZERO_TIME = { sec: 0, nsec: 0 };
const ZERO_ATTR: Attr = { ino: 0, size: 0, blocks: 0, atime: ZERO_TIME, mtime: ZERO_TIME, ctime: ZERO_TIME, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 };

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Detaches the mount if it is still there; synchronous, for exit paths. Never touches the mount itself. */
function detach(): void {
  try {
    if (isMounted(mountpoint)) fuseDevice().umount(mountpoint, devConstants.MNT_DETACH);
  } catch {
    /* nothing more to do on the way out */
  }
}

let session: FuseSession | null = null;
let stopping = false;

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  setTimeout(() => {
    detach();
    process.exit(0);
  }, 5000).unref();
  try {
    if (isMounted(mountpoint)) await unmountFuse(mountpoint, false);
  } catch (err) {
    log(`unmount: ${(err as Error).message}; detaching lazily`);
    detach();
  }
  session?.stop();
  process.exit(0);
}

process.on('exit', detach);
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.on('error', () => void stop());
process.stdin.resume();

let fd: number;
try {
  fd = mountFuse({ mountpoint, fsname: 'floor', subtype: 'floor' });
} catch (err) {
  process.stderr.write(`mount failed: ${(err as Error).message}\n`);
  process.exit(1);
}
session = new FuseSession(deviceIo(fd), { handlers, forget }, {
  log,
  stats: new OpStats(), // the session's own counters, which svault's mount pays too
  writebackCache: kopts.writebackCache,
  // Unmounted from outside, or the connection was aborted: nothing left to serve.
  onClosed: () => {
    if (stopping) return;
    stopping = true;
    session?.stop();
    detach();
    process.exit(0);
  },
});
session.start();
process.stdout.write('READY\n');
