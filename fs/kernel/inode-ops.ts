// The FUSE handlers of svault's own transport: one short handler per request, each a call into the
// vault by inode (MountableVault, whatever the store's format). The kernel names files by node id;
// svault's node id for an inode is its inode number (stable, never reused), the root's is 1. A node the
// kernel has looked up stays known, with its lookup count, until the kernel forgets it. Hard links are
// one node, so they share one page cache and one set of cached attributes.

import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { FsError } from '../../src/core/errors.js';
import { timespecOfMs } from '../../src/core/format2/inode-record.js';
import type { FsAttr, FsEntry, MountableVault } from '../../src/core/vault/mountable.js';
import { FILE_CAPS, refuseUnsupportedXattr } from '../xattr-policy.js';
import {
  DirentPlusWriter, DirentWriter, FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH, FATTR_GID, FATTR_KILL_SUIDGID, FATTR_MODE,
  FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID, FOPEN_KEEP_CACHE, FUSE_OPEN_KILL_SUIDGID, FUSE_RELEASE_FLUSH,
  FUSE_WRITE_KILL_SUIDGID, FUSE_WRITEBACK_CACHE, RENAME_NOREPLACE, SEEK_DATA, SEEK_HOLE, decodeName, direntType, replyAttr, replyCreate, replyData,
  replyEmpty, replyEntry, notifyInvalInode, replyError, replyLseek, replyOpen, replyStatfs, replyWrite, replyXattrSize,
  type Attr, type Entry, type InHeader, type Request,
} from './protocol.js';
import type { Handler, SessionOps } from './session.js';

const errnos = constants.errno as Record<string, number>;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
/** What a SETATTR changes; a request with none of these is a chown that keeps both ids (see setattr). */
const FATTR_CHANGES = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME | FATTR_MTIME | FATTR_KILL_SUIDGID;
const ROOT_NODE = 1;
/** Under -o sync, made durable before the reply: every metadata change, open's truncation, and close (flush, release). */
const DURABLE_OPS: readonly Request['op'][] = [
  'open', 'mkdir', 'mknod', 'rmdir', 'create', 'setattr', 'unlink', 'rename', 'rename2', 'link', 'symlink', 'setxattr', 'removexattr', 'flush', 'release',
  'fallocate',
];

export interface InodeOpsOptions {
  readOnly: boolean;
  log: (line: string) => void;
  /** Remember the names nodes were reached by, so that log lines can give paths (--log-names). */
  logNames?: boolean;
  /** How long the kernel may keep names and attributes (seconds): this mount is the only writer. */
  entryTimeout?: number;
  attrTimeout?: number;
}

function fail(errno: FsError['errno'], message: string): never {
  throw new FsError(errno, message);
}

/** An xattr name from a request: UTF-8 only, since two byte names must never decode to one. */
function xattrNameOf(bytes: Buffer): string {
  return decodeName(bytes) ?? fail('EILSEQ', 'name is not valid UTF-8');
}

/** A name for log lines (--log-names) only: which names a directory may hold is the vault's to decide. */
function logName(bytes: Buffer): string {
  return bytes.toString('utf8');
}

/** The kernel's node ids and the inodes they stand for, with how many lookups the kernel holds. */
class NodeTable<Id> {
  private readonly nodes = new Map<number, { id: Id; lookups: number; parent?: number; name?: string }>();

  constructor(private readonly rootId: Id) {}

  /** The inode id of a node the kernel holds. */
  idOf(nodeid: number): Id {
    if (nodeid === ROOT_NODE) return this.rootId;
    return this.nodes.get(nodeid)?.id ?? fail('ENOENT', `unknown node ${nodeid}`);
  }

  /** The node id the kernel knows an inode by. */
  nodeOf(id: Id, ino: number): number {
    return id === this.rootId ? ROOT_NODE : ino;
  }

  /**
   * One more lookup of a node by the kernel (a reply that carries its entry). `where`, under --log-names
   * only: the directory node and name it was last reached by, for log lines.
   */
  looked(nodeid: number, id: Id, where?: { parent: number; name: string }): void {
    if (nodeid === ROOT_NODE) return;
    let node = this.nodes.get(nodeid);
    if (node) node.lookups++;
    else this.nodes.set(nodeid, (node = { id, lookups: 1 }));
    if (where) Object.assign(node, where);
  }

  /** The path a node was last reached by, as far as the table knows it (--log-names). */
  pathOf(nodeid: number): string {
    const parts: string[] = [];
    for (let n = nodeid, depth = 0; n !== ROOT_NODE && depth < 256; depth++) {
      const node = this.nodes.get(n);
      if (node?.name === undefined || node.parent === undefined) return `…/${parts.join('/')}`;
      parts.unshift(node.name);
      n = node.parent;
    }
    return `/${parts.join('/')}`;
  }

  forget(nodeid: number, nlookup: number): void {
    const node = this.nodes.get(nodeid);
    if (!node) return;
    node.lookups -= nlookup;
    if (node.lookups <= 0) this.nodes.delete(nodeid);
  }

  get size(): number {
    return this.nodes.size;
  }
}

/** Whether a request's caller is in group `gid`: its own (fs)gid, or a supplementary group of its process. */
function callerInGroup(h: InHeader, gid: number): boolean {
  if (h.gid === gid) return true;
  try {
    const groups = /^Groups:(.*)$/m.exec(readFileSync(`/proc/${h.pid}/status`, 'utf8'))?.[1] ?? '';
    return groups.trim().split(/\s+/).map(Number).includes(gid);
  } catch {
    return false; // the process is gone: clear the bit, the safe side
  }
}

/**
 * The setuid and setgid bits that a write, a truncate or a chown clears, as Linux does
 * (setattr_should_drop_suidgid): setuid always; setgid when the file is group-executable, or when the
 * caller is neither privileged nor in the file's group. (Setgid without group execute is the old
 * mandatory-locking mark, which members of the group keep.) `privileged`: the caller has CAP_FSETID.
 */
function bitsToKill(mode: number, fileGid: number, h: InHeader, privileged: boolean): number {
  let kill = mode & S_ISUID;
  if (mode & S_ISGID && (mode & S_IXGRP || (!privileged && !callerInGroup(h, fileGid)))) kill |= S_ISGID;
  return kill;
}

/** Whether a caller who does not own a file may write it, by its mode bits (group or other). */
function mayWrite(mode: number, fileGid: number, h: InHeader): boolean {
  return (mode & (callerInGroup(h, fileGid) ? 0o020 : 0o002)) !== 0;
}

/** The handlers of a mount of `vault`. */
export function inodeOps<Id>(vault: MountableVault<Id>, o: InodeOpsOptions): SessionOps & { nodeCount(): number } {
  const ns = vault.inodes;
  const nodes = new NodeTable<Id>(ns.rootId);
  const entryTimeout = o.entryTimeout ?? 1;
  const attrTimeout = o.attrTimeout ?? 1;
  const readBuffers = new ReadBuffers();
  /** What to do once a reply has been written (give its read buffer back). */
  const afterReply = new WeakMap<Buffer[], () => void>();
  /** Directory listings taken at opendir, by handle: readdir reads on from an offset into them. */
  const dirs = new Map<number, { id: Id; entries: FsEntry<Id>[] }>();
  let nextDir = 1;

  const attrOf = (a: FsAttr): Attr => ({
    ino: a.ino, size: a.size, blocks: a.blocks, atime: a.atime, mtime: a.mtime, ctime: a.ctime,
    mode: a.mode, nlink: a.nlink, uid: a.uid, gid: a.gid, rdev: a.rdev, blksize: a.blksize,
  });
  /** The entry of an inode reached by `name` in directory node `parent`, counted as a lookup by the kernel once it is sent. */
  const entryOf = (id: Id, parent: number, name: Buffer): Entry => {
    const attr = attrOf(ns.attrOf(id));
    const nodeid = nodes.nodeOf(id, attr.ino);
    nodes.looked(nodeid, id, o.logNames ? { parent, name: logName(name) } : undefined);
    return { nodeid, generation: 0, entryValid: entryTimeout, attrValid: attrTimeout, attr };
  };
  const writable = (): void => {
    if (o.readOnly) fail('EROFS', 'read-only mount');
  };
  /** Sends a notification to the kernel (set by the session). */
  let notify: (parts: Buffer[]) => void = () => undefined;
  /**
   * Clears setuid and setgid as a write or truncate by a caller without CAP_FSETID, or a chown, does
   * (bitsToKill). A reply that carries no attributes (write, open) leaves the kernel's cached mode as it
   * was: `node` is then told to drop its attributes.
   */
  const killSuidGid = (id: Id, h: InHeader, privileged: boolean, node?: number): void => {
    const { mode, gid } = ns.attrOf(id);
    const kill = bitsToKill(mode, gid, h, privileged);
    if (!kill) return;
    ns.chmod(id, mode & ~kill & 0o7777);
    if (node !== undefined) notify(notifyInvalInode(node, -1, 0));
  };

  const handlers: Partial<Record<Request['op'], Handler>> = {
    lookup: (r) => {
      if (r.op !== 'lookup') throw new TypeError(r.op);
      const id = ns.lookup(nodes.idOf(r.header.nodeid), r.name);
      if (id === undefined) {
        // A negative entry the kernel may cache: every create goes through this mount.
        return replyEntry(r.header.unique, { nodeid: 0, generation: 0, entryValid: entryTimeout, attrValid: 0, attr: ZERO_ATTR });
      }
      return replyEntry(r.header.unique, entryOf(id, r.header.nodeid, r.name));
    },
    getattr: (r) => {
      if (r.op !== 'getattr') throw new TypeError(r.op);
      return replyAttr(r.header.unique, attrOf(ns.attrOf(nodes.idOf(r.header.nodeid))), attrTimeout);
    },
    setattr: async (r) => {
      if (r.op !== 'setattr') throw new TypeError(r.op);
      writable();
      const id = nodes.idOf(r.header.nodeid);
      const v = r.valid;
      const h = r.header;
      const isDir = (ns.attrOf(id).mode & S_IFMT) === S_IFDIR;
      if (!(v & FATTR_CHANGES)) {
        // chown(f, -1, -1), which the kernel sends with nothing to change: Linux changes ctime, and for
        // anything but a directory clears setuid and setgid as any chown does. The kernel sends the same
        // before a write that must clear them. Only the owner (or root) may clear them by chown: another
        // user gets EPERM unless they may write the file, where the two requests cannot be told apart.
        const a = ns.attrOf(id);
        const kill = isDir ? 0 : bitsToKill(a.mode, a.gid, h, h.uid === 0);
        if (kill && h.uid !== 0 && h.uid !== a.uid && !mayWrite(a.mode, a.gid, h)) fail('EPERM', 'chown: only the owner may clear setuid and setgid');
        ns.clearModeBits(id, kill);
      }
      if (v & FATTR_MODE) ns.chmod(id, r.mode);
      if (v & (FATTR_UID | FATTR_GID)) ns.chown(id, v & FATTR_UID ? r.uid : -1, v & FATTR_GID ? r.gid : -1);
      if (v & FATTR_SIZE) {
        if (v & FATTR_FH) await vault.ftruncate(r.fh, r.size);
        else await ns.truncate(id, r.size);
      }
      // Sent with every chown of a non-directory, as chown(2) clears the bits on Linux (the caller's
      // privilege is then its uid), and with a truncate by a caller without CAP_FSETID.
      if (v & FATTR_KILL_SUIDGID) killSuidGid(id, h, !(v & FATTR_SIZE) && h.uid === 0);
      if (v & (FATTR_ATIME | FATTR_MTIME)) {
        const now = timespecOfMs(Date.now());
        const atime = v & FATTR_ATIME ? (v & FATTR_ATIME_NOW ? now : { sec: r.atime, nsec: r.atimensec }) : undefined;
        const mtime = v & FATTR_MTIME ? (v & FATTR_MTIME_NOW ? now : { sec: r.mtime, nsec: r.mtimensec }) : undefined;
        ns.utimens(id, atime, mtime);
      }
      return replyAttr(r.header.unique, attrOf(ns.attrOf(id)), attrTimeout);
    },
    readlink: (r) => replyData(r.header.unique, ns.readlink(nodes.idOf(r.header.nodeid))),
    symlink: (r) => {
      if (r.op !== 'symlink') throw new TypeError(r.op);
      writable();
      const id = ns.symlink(nodes.idOf(r.header.nodeid), r.name, r.target, r.header.uid, r.header.gid);
      return replyEntry(r.header.unique, entryOf(id, r.header.nodeid, r.name));
    },
    mkdir: (r) => {
      if (r.op !== 'mkdir') throw new TypeError(r.op);
      writable();
      const id = ns.mkdir(nodes.idOf(r.header.nodeid), r.name, r.mode, r.header.uid, r.header.gid);
      return replyEntry(r.header.unique, entryOf(id, r.header.nodeid, r.name));
    },
    mknod: (r) => {
      if (r.op !== 'mknod') throw new TypeError(r.op);
      writable();
      const id = ns.mknod(nodes.idOf(r.header.nodeid), r.name, r.mode, r.rdev, r.header.uid, r.header.gid);
      return replyEntry(r.header.unique, entryOf(id, r.header.nodeid, r.name));
    },
    unlink: (r) => {
      if (r.op !== 'unlink') throw new TypeError(r.op);
      writable();
      ns.unlink(nodes.idOf(r.header.nodeid), r.name);
      return replyEmpty(r.header.unique);
    },
    rmdir: (r) => {
      if (r.op !== 'rmdir') throw new TypeError(r.op);
      writable();
      ns.rmdir(nodes.idOf(r.header.nodeid), r.name);
      return replyEmpty(r.header.unique);
    },
    rename: (r) => rename(r),
    rename2: (r) => rename(r),
    link: (r) => {
      if (r.op !== 'link') throw new TypeError(r.op);
      writable();
      const id = nodes.idOf(r.oldNodeid);
      ns.link(id, nodes.idOf(r.header.nodeid), r.name);
      return replyEntry(r.header.unique, entryOf(id, r.header.nodeid, r.name));
    },
    open: async (r) => {
      if (r.op !== 'open') throw new TypeError(r.op);
      if ((r.flags & O_ACCMODE) !== 0 || r.flags & O_TRUNC) writable();
      const id = nodes.idOf(r.header.nodeid);
      const fh = ns.open(id);
      if (r.flags & O_TRUNC) {
        if (r.openFlags & FUSE_OPEN_KILL_SUIDGID) killSuidGid(id, r.header, false, r.header.nodeid);
        await vault.ftruncate(fh, 0);
      }
      // One node per inode, and every change goes through this mount: the page cache holds what the file
      // holds, so it is kept across opens.
      return replyOpen(r.header.unique, fh, FOPEN_KEEP_CACHE);
    },
    create: (r) => {
      if (r.op !== 'create') throw new TypeError(r.op);
      writable();
      const { id, fh } = ns.create(nodes.idOf(r.header.nodeid), r.name, r.mode, r.header.uid, r.header.gid);
      return replyCreate(r.header.unique, entryOf(id, r.header.nodeid, r.name), fh, FOPEN_KEEP_CACHE);
    },
    read: async (r) => {
      if (r.op !== 'read') throw new TypeError(r.op);
      const target = readBuffers.take(r.size);
      let reply: Buffer[];
      try {
        reply = replyData(r.header.unique, await vault.readView(r.fh, target, r.size, r.offset));
      } catch (err) {
        readBuffers.giveBack(target);
        throw err;
      }
      afterReply.set(reply, () => readBuffers.giveBack(target)); // the reply holds the buffer until written
      return reply;
    },
    write: async (r) => {
      if (r.op !== 'write') throw new TypeError(r.op);
      writable();
      if (r.writeFlags & FUSE_WRITE_KILL_SUIDGID) killSuidGid(vault.idOfHandle(r.fh), r.header, false, r.header.nodeid);
      const n = await vault.write(r.fh, r.data, r.offset);
      return replyWrite(r.header.unique, n);
    },
    fallocate: async (r) => {
      if (r.op !== 'fallocate') throw new TypeError(r.op);
      writable();
      await vault.fallocate(r.fh, r.mode, r.offset, r.length);
      // The kernel sends no kill flag with a fallocate: clear setuid/setgid as for a write by another user.
      if (r.header.uid !== 0) killSuidGid(vault.idOfHandle(r.fh), r.header, false, r.header.nodeid);
      return replyEmpty(r.header.unique);
    },
    lseek: async (r) => {
      if (r.op !== 'lseek') throw new TypeError(r.op);
      // The kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself; it sends only these two.
      if (r.whence !== SEEK_DATA && r.whence !== SEEK_HOLE) fail('EINVAL', `lseek: whence ${r.whence}`);
      return replyLseek(r.header.unique, await vault.seek(r.fh, r.offset, r.whence === SEEK_DATA ? 'data' : 'hole'));
    },
    flush: async (r) => {
      if (r.op !== 'flush') throw new TypeError(r.op);
      await vault.flush(r.fh);
      return replyEmpty(r.header.unique);
    },
    release: async (r) => {
      if (r.op !== 'release') throw new TypeError(r.op);
      if (r.releaseFlags & FUSE_RELEASE_FLUSH) await vault.flush(r.fh);
      await vault.release(r.fh);
      return replyEmpty(r.header.unique);
    },
    fsync: async (r) => {
      if (r.op !== 'fsync') throw new TypeError(r.op);
      await vault.fsync(r.fh);
      return replyEmpty(r.header.unique);
    },
    opendir: (r) => {
      if (r.op !== 'opendir') throw new TypeError(r.op);
      const id = nodes.idOf(r.header.nodeid);
      const entries = ns.list(id);
      const fh = nextDir++;
      dirs.set(fh, { id, entries });
      return replyOpen(r.header.unique, fh, 0);
    },
    readdir: (r) => {
      if (r.op !== 'readdir') throw new TypeError(r.op);
      const dir = dirs.get(r.fh) ?? fail('EBADF', `bad directory handle ${r.fh}`);
      const out = new DirentWriter(Math.min(r.size, 1 << 20));
      const self = ns.attrOf(dir.id);
      for (let k = r.offset; k < dir.entries.length + 2; k++) {
        if (k < 2) {
          if (!out.add(k === 0 ? '.' : '..', self.ino, k + 1, 4 /* DT_DIR */)) break;
          continue;
        }
        const e = dir.entries[k - 2];
        if (!e) break;
        // The directory records the child's number and type (format 2): no inode is read, so a damaged child
        // does not hide its siblings.
        const known = e.ino !== undefined && e.typeBits !== undefined ? { ino: e.ino, mode: e.typeBits } : ns.attrOf(e.id);
        if (!out.add(e.name, known.ino, k + 1, direntType(known.mode))) break;
      }
      return replyData(r.header.unique, out.data());
    },
    readdirplus: (r) => {
      if (r.op !== 'readdirplus') throw new TypeError(r.op);
      const dir = dirs.get(r.fh) ?? fail('EBADF', `bad directory handle ${r.fh}`);
      const out = new DirentPlusWriter(Math.min(r.size, 1 << 20));
      const self = attrOf(ns.attrOf(dir.id));
      for (let k = r.offset; k < dir.entries.length + 2; k++) {
        if (k < 2) {
          // "." and "..": names only (node id 0); the kernel does not count them as lookups.
          const dot: Entry = { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, attr: self };
          if (!out.add(k === 0 ? '.' : '..', k + 1, dot)) break;
          continue;
        }
        const e = dir.entries[k - 2];
        if (!e) break;
        let attr: Attr;
        try {
          attr = attrOf(ns.attrOf(e.id));
        } catch (err) {
          if (e.ino === undefined || e.typeBits === undefined || !(err instanceof Error)) throw err;
          // A child whose inode cannot be read: its name alone (node id 0, no lookup counted), so the listing
          // still shows every name; a lookup of this one then fails with the error.
          o.log(`readdirplus: inode ${e.ino}: ${err.message}`);
          if (!out.add(e.name, k + 1, { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, attr: { ...ZERO_ATTR, ino: e.ino, mode: e.typeBits } })) break;
          continue;
        }
        const entry: Entry = { nodeid: nodes.nodeOf(e.id, attr.ino), generation: 0, entryValid: entryTimeout, attrValid: attrTimeout, attr };
        if (!out.add(e.name, k + 1, entry)) break;
        nodes.looked(entry.nodeid, e.id, o.logNames ? { parent: r.header.nodeid, name: e.name } : undefined);
      }
      return replyData(r.header.unique, out.data());
    },
    releasedir: (r) => {
      if (r.op !== 'releasedir') throw new TypeError(r.op);
      dirs.delete(r.fh);
      return replyEmpty(r.header.unique);
    },
    fsyncdir: async (r) => {
      await vault.sync();
      return replyEmpty(r.header.unique);
    },
    // Sent by kernels that forward syncfs(2) to FUSE servers (today only virtiofs gets it).
    syncfs: async (r) => {
      await vault.sync();
      return replyEmpty(r.header.unique);
    },
    statfs: (r) => {
      const s = vault.statfs();
      return replyStatfs(r.header.unique, { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: s.namemax, frsize: s.frsize });
    },
    access: (r) => {
      ns.attrOf(nodes.idOf(r.header.nodeid)); // it exists; permissions are the kernel's (default_permissions)
      return replyEmpty(r.header.unique);
    },
    setxattr: (r) => {
      if (r.op !== 'setxattr') throw new TypeError(r.op);
      writable();
      const name = xattrNameOf(r.name);
      refuseUnsupportedXattr(name);
      ns.setxattr(nodes.idOf(r.header.nodeid), name, r.value, r.flags);
      return replyEmpty(r.header.unique);
    },
    getxattr: (r) => {
      if (r.op !== 'getxattr') throw new TypeError(r.op);
      const name = xattrNameOf(r.name);
      if (name === FILE_CAPS) return replyError(r.header.unique, errnos.ENODATA ?? 61);
      refuseUnsupportedXattr(name);
      const value = ns.getxattr(nodes.idOf(r.header.nodeid), name);
      return sized(r.header.unique, r.size, value);
    },
    listxattr: (r) => {
      if (r.op !== 'listxattr') throw new TypeError(r.op);
      const names = ns.listxattr(nodes.idOf(r.header.nodeid));
      return sized(r.header.unique, r.size, Buffer.concat(names.map((n) => Buffer.from(`${n}\0`))));
    },
    removexattr: (r) => {
      if (r.op !== 'removexattr') throw new TypeError(r.op);
      writable();
      const name = xattrNameOf(r.name);
      refuseUnsupportedXattr(name);
      ns.removexattr(nodes.idOf(r.header.nodeid), name);
      return replyEmpty(r.header.unique);
    },
  };

  function rename(r: Request): Buffer[] {
    if (r.op !== 'rename' && r.op !== 'rename2') throw new TypeError(r.op);
    writable();
    const srcDir = nodes.idOf(r.header.nodeid);
    const dstDir = nodes.idOf(r.newdir);
    if (r.flags & ~RENAME_NOREPLACE) fail('EINVAL', 'rename: RENAME_EXCHANGE and RENAME_WHITEOUT are not supported');
    ns.rename(srcDir, r.oldName, dstDir, r.newName, (r.flags & RENAME_NOREPLACE) !== 0);
    return replyEmpty(r.header.unique);
  }

  if (vault.syncCommits) {
    // -o sync: what an operation changed is durable before it is answered.
    for (const op of DURABLE_OPS) {
      const handler = handlers[op];
      if (handler) handlers[op] = async (r) => {
        const reply = await handler(r);
        await vault.sync();
        return reply;
      };
    }
  }

  return {
    handlers,
    initialised: (init) => {
      // Under writeback caching the kernel holds written data and the size that svault has not seen:
      // answered from svault's piece map, SEEK_DATA could skip that data. Without a handler the kernel
      // falls back to its own lseek, which treats the whole file as data.
      if (init.flags & FUSE_WRITEBACK_CACHE) delete handlers.lseek;
    },
    bindNotify: (send) => (notify = send),
    replied: (reply) => {
      const done = afterReply.get(reply);
      if (done) {
        afterReply.delete(reply);
        done();
      }
    },
    forget: (nodeid, nlookup) => nodes.forget(nodeid, nlookup),
    describeNode: o.logNames ? (nodeid) => nodes.pathOf(nodeid) : undefined,
    nodeCount: () => nodes.size,
  };
}

/**
 * Buffers that reads decrypt into and reply from, kept for the next reads: a new buffer of up to 1 MiB
 * per read was fresh memory to fault in and garbage to collect. A buffer is given back once its reply
 * has been written (SessionOps.replied).
 */
class ReadBuffers {
  private static readonly SIZE = 1 << 20;
  private static readonly KEEP = 4;
  private readonly free: Buffer[] = [];

  take(size: number): Buffer {
    if (size > ReadBuffers.SIZE) return Buffer.allocUnsafe(size);
    return (this.free.pop() ?? Buffer.allocUnsafeSlow(ReadBuffers.SIZE)).subarray(0, size);
  }

  giveBack(buf: Buffer): void {
    if (buf.buffer.byteLength !== ReadBuffers.SIZE || this.free.length >= ReadBuffers.KEEP) return;
    this.free.push(Buffer.from(buf.buffer, 0, ReadBuffers.SIZE));
  }
}

/** An xattr value or list as the kernel asks for it: its size for size 0, ERANGE when it does not fit. */
function sized(unique: bigint, size: number, value: Buffer): Buffer[] {
  if (size === 0) return replyXattrSize(unique, value.length);
  if (value.length > size) return replyError(unique, errnos.ERANGE ?? 34);
  return replyData(unique, value);
}

const ZERO_TIME = { sec: 0, nsec: 0 };
const ZERO_ATTR: Attr = { ino: 0, size: 0, blocks: 0, atime: ZERO_TIME, mtime: ZERO_TIME, ctime: ZERO_TIME, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 };
