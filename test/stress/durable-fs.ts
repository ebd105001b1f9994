// The durability-tracking pass-through of the power-loss simulation: a backing directory served at a mount
// point on svault's own FUSE transport (fs/kernel/, as bench/passthrough-devfuse.ts), which keeps, beside
// the live files, what a power loss would leave of them (test/stress/durable-image.ts: the model, and what
// it does not model). svault's store lives on it, so every write svault and SQLite make to the store
// comes through here, and so does every fsync, fdatasync and directory fsync that makes some of it durable.
// It runs as a process of its own: the harness drives the store's users (svault, fsck), never this loop.
//
//   node --import tsx test/stress/durable-fs.ts <backing-dir> <mountpoint>
//
// Needs root (mount(2)). `<backing-dir>.grave` (created) keeps files whose last live name is gone while a
// durable one is left. Prints READY on stdout once mounted. Commands, one per line on stdin:
//   powerloss <dest>   the power goes: the durable image is written to <dest> (a new directory) and one
//                      JSON line {"powerloss": PowerLossSummary} is printed; the mount is detached, and a
//                      new one serves <dest> (all of it durable) at the same mount point: READY again.
//                      Nothing may use the old mount meanwhile (the harness kills svault first).
//   stats              one JSON line {"stats": TreeCounters}.
//   stop               unmount (detach if busy) and exit 0.
// The end of stdin (the harness died), SIGTERM or SIGINT detach the mount and exit too; so does an
// external umount.
//
// Node ids are the model's own (root 1), never the backing inode numbers, which the backing filesystem
// reuses. Every name the kernel can reach is in the model's live entries: every change goes through here.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isMounted } from '../../fs/fuse-binding.js';
import { constants as devConstants, fuseDevice, mountFuse, unmountFuse } from '../../fs/kernel/device.js';
import {
  DirentPlusWriter, DirentWriter, FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW,
  FATTR_SIZE, FATTR_UID, FOPEN_KEEP_CACHE, FUSE_FSYNC_FDATASYNC, FUSE_GETATTR_FH, RENAME_NOREPLACE, decodeName,
  replyAttr, replyCreate, replyData, replyEmpty, replyEntry, replyError, replyOpen, replyStatfs, replyWrite, replyXattrSize,
  timeToMs, type Attr, type CreateRequest, type Entry, type FsyncRequest, type GetattrRequest, type GetxattrRequest, type LinkRequest,
  type ListxattrRequest, type LookupRequest, type MkdirRequest, type MknodRequest, type OpenRequest, type ReadRequest,
  type ReleaseRequest, type RenameRequest, type Request, type SetattrRequest, type SymlinkRequest, type WriteRequest,
} from '../../fs/kernel/protocol.js';
import { deviceIo, FuseSession, type Handler, type SessionOps } from '../../fs/kernel/session.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { timespecOfMs } from '../../src/core/format2/inode-record.js';
import { DurableTree, fsError, type DNode } from './durable-image.js';

const errnos = osConstants.errno as Record<string, number>;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const XATTR_CAPS = 'security.capability';
/** Cache timeouts (s): every change goes through this mount, so the kernel may keep what it has. */
const TTL = 60;

function nameOf(bytes: Buffer): string {
  const name = decodeName(bytes);
  if (name === undefined) throw fsError('EILSEQ', 'name is not valid UTF-8');
  return name;
}

const ZERO_TIME = { sec: 0, nsec: 0 };
const ZERO_ATTR: Attr = { ino: 0, size: 0, blocks: 0, atime: ZERO_TIME, mtime: ZERO_TIME, ctime: ZERO_TIME, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 };

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

/** The FUSE operations over a DurableTree, and a way to close the handles still open when it is replaced. */
export function durableHandlers(tree: DurableTree): { handlers: SessionOps['handlers']; closeAll: () => void } {
  const attrOf = (n: DNode, st: fs.Stats): Attr => ({
    ino: n.id, size: st.size, blocks: st.blocks, atime: timespecOfMs(st.atimeMs), mtime: timespecOfMs(st.mtimeMs), ctime: timespecOfMs(st.ctimeMs), mode: st.mode,
    // A file's links are the model's (an unlinked file kept in the graveyard has none); a directory's the backing's.
    nlink: n.kind === 'dir' ? st.nlink : n.links.length, uid: st.uid, gid: st.gid, rdev: st.rdev, blksize: st.blksize,
  });
  const statOf = (n: DNode, fh?: number): fs.Stats => (fh !== undefined && n.kind === 'file' ? fs.fstatSync(fh) : fs.lstatSync(tree.pathOf(n)));
  const entryOf = (n: DNode, fh?: number): Entry => ({ nodeid: n.id, generation: 0, entryValid: TTL, attrValid: TTL, attr: attrOf(n, statOf(n, fh)) });
  /** Handles by fh, for the node a RELEASE belongs to (the kernel sends its nodeid too, but a handle is the truth). */
  const handles = new Map<number, DNode>();
  const dirs = new Map<number, { node: DNode; names: string[] }>();
  let nextDir = 1;
  const dirOf = (r: { header: { nodeid: number } }) => tree.dir(r.header.nodeid);

  const rename = (r: RenameRequest): Buffer[] => {
    if (r.flags & ~RENAME_NOREPLACE) throw fsError('EINVAL', 'RENAME_EXCHANGE and RENAME_WHITEOUT are not supported');
    tree.rename(dirOf(r), nameOf(r.oldName), tree.dir(r.newdir), nameOf(r.newName), (r.flags & RENAME_NOREPLACE) !== 0);
    return replyEmpty(r.header.unique);
  };

  const closeAll = (): void => {
    for (const fd of handles.keys()) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed already */
      }
    }
    handles.clear();
  };

  const handlers: SessionOps['handlers'] = {
    lookup: h<LookupRequest>((r) => {
      const n = tree.lookup(dirOf(r), nameOf(r.name));
      if (!n) return replyEntry(r.header.unique, { nodeid: 0, generation: 0, entryValid: TTL, attrValid: 0, attr: ZERO_ATTR });
      return replyEntry(r.header.unique, entryOf(n));
    }),
    getattr: h<GetattrRequest>((r) => {
      const n = tree.get(r.header.nodeid);
      return replyAttr(r.header.unique, attrOf(n, statOf(n, r.getattrFlags & FUSE_GETATTR_FH && handles.has(r.fh) ? r.fh : undefined)), TTL);
    }),
    setattr: h<SetattrRequest>((r) => {
      const n = tree.get(r.header.nodeid);
      const v = r.valid;
      const fd = v & FATTR_FH && handles.has(r.fh) ? r.fh : null;
      // Permissions, owners and times are not modelled: applied to the live file only.
      if (v & FATTR_MODE) {
        if (fd !== null) fs.fchmodSync(fd, r.mode & 0o7777);
        else fs.chmodSync(tree.pathOf(n), r.mode & 0o7777);
      }
      if (v & (FATTR_UID | FATTR_GID)) {
        const uid = v & FATTR_UID ? r.uid : -1;
        const gid = v & FATTR_GID ? r.gid : -1;
        if (fd !== null) fs.fchownSync(fd, uid, gid);
        else fs.lchownSync(tree.pathOf(n), uid, gid);
      }
      if (v & FATTR_SIZE) tree.truncate(n, r.size, fd);
      if (v & (FATTR_ATIME | FATTR_MTIME)) {
        const now = Date.now();
        const old = statOf(n, fd ?? undefined);
        const a = v & FATTR_ATIME ? (v & FATTR_ATIME_NOW ? now : timeToMs(r.atime, r.atimensec)) : old.atimeMs;
        const m = v & FATTR_MTIME ? (v & FATTR_MTIME_NOW ? now : timeToMs(r.mtime, r.mtimensec)) : old.mtimeMs;
        if (fd !== null) fs.futimesSync(fd, a / 1000, m / 1000);
        else fs.lutimesSync(tree.pathOf(n), a / 1000, m / 1000);
      }
      return replyAttr(r.header.unique, attrOf(n, statOf(n, fd ?? undefined)), TTL);
    }),
    readlink: h((r) => {
      const n = tree.get(r.header.nodeid);
      if (n.kind !== 'symlink') throw fsError('EINVAL', 'not a symlink');
      return replyData(r.header.unique, Buffer.from(n.target));
    }),
    symlink: h<SymlinkRequest>((r) => replyEntry(r.header.unique, entryOf(tree.symlink(dirOf(r), nameOf(r.name), nameOf(r.target))))),
    mkdir: h<MkdirRequest>((r) => replyEntry(r.header.unique, entryOf(tree.mkdir(dirOf(r), nameOf(r.name), r.mode & 0o7777)))),
    // Regular files only: the store holds nothing else.
    mknod: h<MknodRequest>((r) => {
      if ((r.mode & S_IFMT) !== S_IFREG) throw fsError('EPERM', 'mknod: regular files only');
      const { node, fd } = tree.create(dirOf(r), nameOf(r.name), fs.constants.O_EXCL, r.mode & 0o7777, r.header.uid, r.header.gid);
      tree.release(node, fd);
      return replyEntry(r.header.unique, entryOf(node));
    }),
    unlink: h<LookupRequest>((r) => {
      tree.unlink(dirOf(r), nameOf(r.name));
      return replyEmpty(r.header.unique);
    }),
    rmdir: h<LookupRequest>((r) => {
      tree.rmdir(dirOf(r), nameOf(r.name));
      return replyEmpty(r.header.unique);
    }),
    rename: h<RenameRequest>(rename),
    rename2: h<RenameRequest>(rename),
    link: h<LinkRequest>((r) => {
      const n = tree.get(r.oldNodeid);
      tree.link(n, dirOf(r), nameOf(r.name));
      return replyEntry(r.header.unique, entryOf(n));
    }),
    open: h<OpenRequest>((r) => {
      const n = tree.get(r.header.nodeid);
      const fd = tree.open(n, r.flags);
      handles.set(fd, n);
      return replyOpen(r.header.unique, fd, FOPEN_KEEP_CACHE);
    }),
    create: h<CreateRequest>((r) => {
      const { node, fd } = tree.create(dirOf(r), nameOf(r.name), r.flags, r.mode & 0o7777, r.header.uid, r.header.gid);
      handles.set(fd, node);
      return replyCreate(r.header.unique, entryOf(node, fd), fd, FOPEN_KEEP_CACHE);
    }),
    read: h<ReadRequest>((r) => {
      const buf = Buffer.allocUnsafe(r.size);
      const n = fs.readSync(r.fh, buf, 0, r.size, r.offset);
      return replyData(r.header.unique, buf.subarray(0, n));
    }),
    write: h<WriteRequest>((r) => {
      const n = handles.get(r.fh) ?? tree.get(r.header.nodeid);
      return replyWrite(r.header.unique, tree.write(n, r.fh, r.offset, r.data));
    }),
    flush: h((r) => replyEmpty(r.header.unique)),
    release: h<ReleaseRequest>((r) => {
      tree.release(handles.get(r.fh), r.fh);
      handles.delete(r.fh);
      return replyEmpty(r.header.unique);
    }),
    fsync: h<FsyncRequest>((r) => {
      const n = handles.get(r.fh) ?? tree.get(r.header.nodeid);
      tree.fsync(n, handles.has(r.fh) ? r.fh : null, (r.fsyncFlags & FUSE_FSYNC_FDATASYNC) !== 0);
      return replyEmpty(r.header.unique);
    }),
    // fdatasync of a directory makes its names durable as fsync does (they are its data).
    fsyncdir: h<FsyncRequest>((r) => {
      tree.fsyncDir(dirOf(r));
      return replyEmpty(r.header.unique);
    }),
    opendir: h<OpenRequest>((r) => {
      const node = dirOf(r);
      const fh = nextDir++;
      dirs.set(fh, { node, names: [...(node.entries as Map<string, number>).keys()] });
      return replyOpen(r.header.unique, fh, 0);
    }),
    readdir: h<ReadRequest>((r) => {
      const dir = dirs.get(r.fh);
      if (!dir) throw fsError('EBADF', `bad directory handle ${r.fh}`);
      const out = new DirentWriter(Math.min(r.size, 1 << 20));
      for (let k = r.offset; k < dir.names.length + 2; k++) {
        if (k < 2) {
          if (!out.add(k === 0 ? '.' : '..', dir.node.id, k + 1, 4 /* DT_DIR */)) break;
          continue;
        }
        const n = tree.lookup(dir.node, dir.names[k - 2] as string);
        if (!n) continue; // gone since opendir
        const type = n.kind === 'dir' ? 4 : n.kind === 'symlink' ? 10 : 8;
        if (!out.add(dir.names[k - 2] as string, n.id, k + 1, type)) break;
      }
      return replyData(r.header.unique, out.data());
    }),
    readdirplus: h<ReadRequest>((r) => {
      const dir = dirs.get(r.fh);
      if (!dir) throw fsError('EBADF', `bad directory handle ${r.fh}`);
      const out = new DirentPlusWriter(Math.min(r.size, 1 << 20));
      for (let k = r.offset; k < dir.names.length + 2; k++) {
        if (k < 2) {
          // "." and "..": names only (node id 0), which the kernel does not count as lookups.
          const dot: Entry = { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, attr: { ...ZERO_ATTR, ino: dir.node.id, mode: 0o40755 } };
          if (!out.add(k === 0 ? '.' : '..', k + 1, dot)) break;
          continue;
        }
        const name = dir.names[k - 2] as string;
        const n = tree.lookup(dir.node, name);
        if (!n) continue;
        let entry: Entry;
        try {
          entry = entryOf(n);
        } catch {
          continue;
        }
        if (!out.add(name, k + 1, entry)) break;
      }
      return replyData(r.header.unique, out.data());
    }),
    releasedir: h<ReleaseRequest>((r) => {
      dirs.delete(r.fh);
      return replyEmpty(r.header.unique);
    }),
    statfs: h((r) => {
      const s = fs.statfsSync(tree.root);
      return replyStatfs(r.header.unique, { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize });
    }),
    access: h((r) => replyEmpty(r.header.unique)),
    // No xattrs: the store uses none. The capability the kernel looks for before a write is absent.
    getxattr: h<GetxattrRequest>((r) => replyError(r.header.unique, nameOf(r.name) === XATTR_CAPS ? (errnos.ENODATA ?? 61) : (errnos.ENOTSUP ?? 95))),
    listxattr: h<ListxattrRequest>((r) => (r.size === 0 ? replyXattrSize(r.header.unique, 0) : replyData(r.header.unique, Buffer.alloc(0)))),
    setxattr: h((r) => replyError(r.header.unique, errnos.ENOTSUP ?? 95)),
    removexattr: h((r) => replyError(r.header.unique, errnos.ENOTSUP ?? 95)),
    // fallocate, lseek, copy_file_range, tmpfile: not answered (ENOSYS); the kernel and libc fall back to
    // plain writes, which the model sees.
  };
  return { handlers, closeAll };
}

async function main(): Promise<void> {
  const [backing, mountArg] = process.argv.slice(2);
  if (!backing || !mountArg) {
    process.stderr.write('usage: durable-fs.ts <backing-dir> <mountpoint>\n');
    process.exit(2);
  }
  const mountpoint = fs.realpathSync(mountArg);
  process.umask(0); // the kernel has applied the caller's umask already
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };

  /** Detaches the mount if it is still there; synchronous, for exit paths. Never touches the mount itself. */
  const detach = (): void => {
    try {
      if (isMounted(mountpoint)) fuseDevice().umount(mountpoint, devConstants.MNT_DETACH);
    } catch {
      /* nothing more to do on the way out */
    }
  };
  let stopping = false;
  /** The disk being served: its model, counters and session. */
  let current: { tree: DurableTree; stats: OpStats; session: FuseSession; started: number; closeAll: () => void } | null = null;
  const exit = (code: number): never => {
    stopping = true;
    detach();
    current?.session.stop();
    process.exit(code);
  };
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => exit(0), 5000).unref();
    try {
      if (isMounted(mountpoint)) await unmountFuse(mountpoint, false);
    } catch (err) {
      log(`unmount: ${(err as Error).message}; detaching lazily`);
    }
    exit(0);
  };

  /** Mounts a disk over `dir`, all of it durable; prints READY once it serves. */
  const serve = (dir: string): void => {
    const root = fs.realpathSync(dir);
    const tree = new DurableTree(root, `${root}.grave`, log);
    const stats = new OpStats();
    const { handlers, closeAll } = durableHandlers(tree);
    const fd = mountFuse({ mountpoint, fsname: 'durable', subtype: 'durable' });
    const served = {
      tree,
      stats,
      closeAll,
      started: Date.now(),
      session: new FuseSession(deviceIo(fd), { handlers, forget: () => {} }, {
        log,
        stats,
        writebackCache: false, // every write reaches the model when it is made, not at some later flush
        // Unmounted from outside, or the connection was aborted: nothing left to serve. A disk replaced
        // by a power loss's image closes too, and that is not the end.
        onClosed: () => {
          if (!stopping && current === served) exit(0);
        },
      }),
    };
    current = served;
    served.session.start();
    log(`serving ${root} at ${mountpoint}`);
    process.stdout.write('READY\n');
  };

  /** The power loss: the image goes to `dest`, and from then on the disk serves it (a new mount). */
  const powerLoss = (dest: string): void => {
    const disk = current;
    if (!disk) return;
    // The event loop serves no request while this runs: the image is of one moment.
    let summary;
    try {
      summary = disk.tree.materialise(dest);
    } catch (err) {
      log(`power loss: writing the image failed: ${(err as Error).stack ?? String(err)}`);
      process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`, () => exit(1));
      return;
    }
    const ops = disk.stats.summary().map((x) => `${x.op.replace('fuse.', '')} ${x.calls} (${x.totalMs.toFixed(0)} ms)`);
    log(`requests served in ${((Date.now() - disk.started) / 1000).toFixed(1)} s: ${ops.join(', ')}`);
    log(`power loss: image written to ${dest} (${summary.files} files, ${summary.bytes} bytes; dropped ${summary.bytesDropped} bytes of ${summary.dirtyFiles} files, ${summary.namesDropped} names; ${summary.namesRevived} names back)`);
    process.stdout.write(`${JSON.stringify({ powerloss: summary })}\n`);
    current = null;
    detach();
    disk.session.stop();
    disk.closeAll(); // handles of the dead server whose RELEASE never came
    try {
      serve(dest);
    } catch (err) {
      log(`mounting the image failed: ${(err as Error).message}`);
      exit(1);
    }
  };

  process.on('exit', detach);
  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    input += chunk;
    let nl: number;
    while ((nl = input.indexOf('\n')) >= 0) {
      const line = input.slice(0, nl).trim();
      input = input.slice(nl + 1);
      const [cmd, ...rest] = line.split(' ');
      if (cmd === 'powerloss') powerLoss(rest.join(' '));
      else if (cmd === 'stats') process.stdout.write(`${JSON.stringify({ stats: current?.tree.counters ?? null })}\n`);
      else if (cmd === 'stop') void stop();
      else if (cmd) log(`unknown command: ${line}`);
    }
  });
  process.stdin.on('end', () => exit(0));
  process.stdin.on('error', () => exit(0));

  try {
    serve(backing);
  } catch (err) {
    process.stderr.write(`mount failed: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname)) void main();
