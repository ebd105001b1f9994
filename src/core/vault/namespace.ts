// The namespace by inode: directory entries, links and attributes changed by (directory id, name) and
// inode id, each change one metadata transaction. The Vault's path operations resolve a path and call
// these; a transport that works on inode numbers (the FUSE low-level protocol) calls them directly.

import type { Contents } from '../contents/contents.js';
import { FsError } from '../errors.js';
import { newInode, S_IFMT, type Inode, type Kind } from '../meta/inode.js';
import type { Metadata } from '../meta/metadata.js';

export const NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const S_ISGID = 0o2000;

export function fail(errno: FsError['errno'], message: string): never {
  throw new FsError(errno, message);
}

/** A name as it may stand in a directory: not empty, not "." or "..", no slash, at most NAME_MAX bytes. */
export function checkName(name: string): void {
  if (Buffer.byteLength(name) > NAME_MAX) fail('ENAMETOOLONG', `name too long: ${name.slice(0, 32)}...`);
  // Names arrive decoded as UTF-8, invalid bytes turned into U+FFFD: two different byte names would
  // become one. Refuse them rather than let them alias each other.
  if (name.includes('\uFFFD')) fail('EILSEQ', `name is not valid UTF-8 (or contains U+FFFD): ${name.slice(0, 32)}`);
}

/** What a change to the namespace took away, for the caller's caches. */
export interface Removed {
  id: string;
  kind: Kind;
}

export class Namespace {
  constructor(private readonly meta: Metadata, private readonly contents: Contents) {}

  /** The inode of an id a name or handle pointed to: a missing record is damage (IntegrityError). */
  inode(id: string): Inode {
    return this.meta.requireInode(id);
  }

  /** The directory inode, or ENOTDIR. */
  dir(id: string): Inode {
    const dir = this.inode(id);
    if (dir.kind !== 'dir') fail('ENOTDIR', `not a directory: inode ${id}`);
    return dir;
  }

  /** What `name` in directory `dirId` stands for (inode id and kind), or ENOENT. */
  entry(dirId: string, name: string): { id: string; kind: Kind } {
    return this.meta.lookup(dirId, name) ?? fail('ENOENT', `no such file or directory: ${name}`);
  }

  /** What `name` in directory `dirId` stands for, or null when there is no such name. */
  entryIfAny(dirId: string, name: string): { id: string; kind: Kind } | null {
    checkName(name);
    return this.meta.lookup(this.dir(dirId).id, name);
  }

  /** The inode `name` in directory `dirId` stands for, or ENOENT. */
  child(dirId: string, name: string): Inode {
    return this.meta.requireInode(this.entry(dirId, name).id);
  }

  /** Every entry of a directory, in listing order. */
  list(dirId: string): { name: string; id: string; kind: Kind }[] {
    return this.meta.list(this.dir(dirId));
  }

  // ---- entries ----

  /** Adds `inode` as `name` in directory `dirId`, in one transaction with the inode. */
  add(dirId: string, name: string, inode: Inode): Inode {
    checkName(name);
    const dir = this.dir(dirId);
    if (this.meta.lookup(dir.id, name)) fail('EEXIST', `already exists: ${name}`);
    if (dir.mode & S_ISGID) {
      // BSD group semantics of a setgid directory (the kernel leaves this to FUSE filesystems).
      inode.gid = dir.gid;
      if (inode.kind === 'dir') inode.mode |= S_ISGID;
    }
    const now = Date.now();
    this.meta.transaction(() => {
      inode.ino = this.meta.allocIno();
      this.meta.putInode(inode);
      this.meta.addEntry(dir, { name, id: inode.id, kind: inode.kind });
      if (inode.kind === 'dir') dir.nlink++;
      dir.mtime = dir.ctime = now;
      this.meta.putInode(dir);
    });
    return inode;
  }

  mkdir(dirId: string, name: string, mode: number, uid: number, gid: number): Inode {
    return this.add(dirId, name, newInode('dir', mode, uid, gid));
  }

  symlink(dirId: string, name: string, target: string, uid: number, gid: number): Inode {
    const link = newInode('symlink', 0o777, uid, gid);
    link.target = target;
    link.size = Buffer.byteLength(target);
    return this.add(dirId, name, link);
  }

  createFile(dirId: string, name: string, mode: number, uid: number, gid: number): Inode {
    return this.add(dirId, name, newInode('file', mode, uid, gid));
  }

  readlink(id: string): string {
    const inode = this.inode(id);
    if (inode.kind !== 'symlink' || inode.target === undefined) fail('EINVAL', `not a symlink: inode ${id}`);
    return inode.target;
  }

  /** Unlinks a name; drops the inode (and, after the commit, its pieces) when no name and no handle remain. */
  unlink(dirId: string, name: string): Removed {
    const dir = this.dir(dirId);
    const entry = this.entry(dir.id, name);
    if (entry.kind === 'dir') fail('EISDIR', `is a directory: ${name}`);
    const inode = this.meta.requireInode(entry.id);
    const now = Date.now();
    let dropPieces = false;
    this.meta.transaction(() => {
      this.meta.removeEntry(dir, name);
      dir.mtime = dir.ctime = now;
      this.meta.putInode(dir);
      this.dropLink(inode, now, () => (dropPieces = true));
    });
    if (dropPieces) this.contents.deletePiecesAfterCommit(inode.fileId, inode.pieces);
    return { id: inode.id, kind: inode.kind };
  }

  /** One less name for an inode. Inside a transaction; calls onGone when its pieces must go after the commit. */
  private dropLink(inode: Inode, now: number, onGone: () => void): void {
    inode.nlink = inode.kind === 'dir' ? 0 : inode.nlink - 1;
    inode.ctime = now;
    const of = this.contents.openState(inode.id);
    if (inode.nlink > 0) {
      this.meta.putInode(inode);
    } else if (of) {
      of.markUnlinked(inode); // POSIX: an open file lives on until its last close
      this.meta.deleteInode(inode.id);
    } else {
      this.meta.deleteInode(inode.id);
      onGone();
    }
  }

  rmdir(dirId: string, name: string): Removed {
    const dir = this.dir(dirId);
    const entry = this.entry(dir.id, name);
    if (entry.kind !== 'dir') fail('ENOTDIR', `not a directory: ${name}`);
    const target = this.meta.requireInode(entry.id);
    if (target.entries > 0) fail('ENOTEMPTY', `directory not empty: ${name}`);
    const now = Date.now();
    this.meta.transaction(() => {
      this.meta.removeEntry(dir, name);
      dir.nlink--;
      dir.mtime = dir.ctime = now;
      this.meta.putInode(dir);
      this.meta.deleteInode(target.id);
    });
    return { id: target.id, kind: 'dir' };
  }

  /**
   * rename(2) of files and whole directories, replacing an existing target as POSIX says. The caller
   * has checked that a directory is not moved into itself (the kernel does, for a mount). Returns what
   * moved and what it replaced; nothing at all when both names stand for one inode.
   */
  rename(srcDirId: string, srcName: string, dstDirId: string, dstName: string): { moved: Removed; replaced: Removed | null } | null {
    checkName(dstName);
    const srcDir = this.dir(srcDirId);
    const entry = this.entry(srcDir.id, srcName);
    const sameDir = dstDirId === srcDir.id;
    const dstDir = sameDir ? srcDir : this.dir(dstDirId);
    const existing = this.meta.lookup(dstDir.id, dstName);
    let replaced: Inode | null = null;
    if (existing) {
      if (existing.id === entry.id) return null; // two names of one inode: POSIX says do nothing
      replaced = this.meta.requireInode(existing.id);
      if (entry.kind === 'dir' && replaced.kind !== 'dir') fail('ENOTDIR', `not a directory: ${dstName}`);
      if (entry.kind !== 'dir' && replaced.kind === 'dir') fail('EISDIR', `is a directory: ${dstName}`);
      if (replaced.kind === 'dir' && replaced.entries > 0) fail('ENOTEMPTY', `directory not empty: ${dstName}`);
    }
    const moved = this.meta.requireInode(entry.id);
    const now = Date.now();
    let dropPieces = false;
    this.meta.transaction(() => {
      if (replaced) {
        this.meta.replaceEntry(dstDir, dstName, entry.id, entry.kind);
        if (replaced.kind === 'dir') dstDir.nlink--;
        this.dropLink(replaced, now, () => (dropPieces = true));
      } else {
        this.meta.addEntry(dstDir, { name: dstName, id: entry.id, kind: entry.kind });
      }
      this.meta.removeEntry(srcDir, srcName);
      if (entry.kind === 'dir' && !sameDir) {
        srcDir.nlink--;
        dstDir.nlink++;
      }
      srcDir.mtime = srcDir.ctime = dstDir.mtime = dstDir.ctime = now;
      this.meta.putInode(srcDir);
      if (!sameDir) this.meta.putInode(dstDir);
      moved.ctime = now;
      this.meta.putInode(moved);
    });
    if (dropPieces && replaced) this.contents.deletePiecesAfterCommit(replaced.fileId, replaced.pieces);
    return { moved: { id: entry.id, kind: entry.kind }, replaced: replaced && { id: replaced.id, kind: replaced.kind } };
  }

  /** A new name for an existing inode. */
  link(id: string, dirId: string, name: string): Inode {
    checkName(name);
    const inode = this.inode(id);
    if (inode.kind === 'dir') fail('EPERM', `cannot hard-link a directory: inode ${id}`);
    const dir = this.dir(dirId);
    if (this.meta.lookup(dir.id, name)) fail('EEXIST', `already exists: ${name}`);
    const now = Date.now();
    this.meta.transaction(() => {
      this.meta.addEntry(dir, { name, id: inode.id, kind: inode.kind });
      dir.mtime = dir.ctime = now;
      this.meta.putInode(dir);
      inode.nlink++;
      inode.ctime = now;
      this.meta.putInode(inode);
    });
    return inode;
  }

  // ---- attributes ----

  /** Changes an inode's attributes in one transaction; ctime is now. */
  update(id: string, change: (inode: Inode) => void): Inode {
    const inode = this.inode(id);
    change(inode);
    inode.ctime = Date.now();
    this.meta.transaction(() => this.meta.putInode(inode));
    return inode;
  }

  chmod(id: string, mode: number): Inode {
    return this.update(id, (i) => (i.mode = (i.mode & S_IFMT) | (mode & 0o7777)));
  }

  chown(id: string, uid: number, gid: number): Inode {
    // -1 (as unsigned 32 bits, too) leaves the id as it is.
    const keep = (n: number) => n === -1 || n === 0xffffffff;
    return this.update(id, (i) => {
      if (!keep(uid)) i.uid = uid;
      if (!keep(gid)) i.gid = gid;
    });
  }

  /** Sets times in ms; undefined leaves a time as it is (UTIME_OMIT). */
  utimens(id: string, atime: number | undefined, mtime: number | undefined): Inode {
    return this.update(id, (i) => {
      if (atime !== undefined) i.atime = atime;
      if (mtime !== undefined) {
        i.mtime = mtime;
        this.contents.openState(i.id)?.setMtime(mtime); // a later commit of this open file keeps the time just set
      }
    });
  }

  // ---- extended attributes (sealed with the inode record) ----

  setxattr(id: string, name: string, value: Buffer, flags: number): void {
    if (Buffer.byteLength(name) > 255 || name.length === 0) fail('ERANGE', `bad xattr name length`);
    if (value.length > XATTR_SIZE_MAX) fail('E2BIG', `xattr value too large`);
    this.update(id, (i) => {
      const has = i.xattrs.has(name);
      if (flags & XATTR_CREATE && has) fail('EEXIST', `xattr exists: ${name}`);
      if (flags & XATTR_REPLACE && !has) fail('ENODATA', `no such xattr: ${name}`);
      i.xattrs.set(name, Buffer.from(value));
    });
  }

  getxattr(id: string, name: string): Buffer {
    return this.inode(id).xattrs.get(name) ?? fail('ENODATA', `no such xattr: ${name}`);
  }

  listxattr(id: string): string[] {
    return [...this.inode(id).xattrs.keys()];
  }

  removexattr(id: string, name: string): void {
    this.update(id, (i) => {
      if (!i.xattrs.delete(name)) fail('ENODATA', `no such xattr: ${name}`);
    });
  }
}
