// Format 2's namespace by inode number (docs/format-2.md 6 and 8; 17.3 step 1): directory entries, links,
// every file type, attributes and xattrs, each operation checked whole before it changes anything, so a
// refused one (EEXIST, ENOTEMPTY, ...) leaves the metadata as it was. What the POSIX calls need beyond the
// records (link counts, a directory's times, setgid directories, rename's rules) is here; the records are
// Metadata2's. The contents (open files, pieces) are the caller's: told through NamespaceHooks.

import { FsError } from '../errors.js';
import { nameProblem, NAME_MAX, type DirEntry } from './dir-records.js';
import { checkXattrSpace, FileType, S_IFMT, timespecOfMs, type InodeRecord, type Timespec } from './inode-record.js';
import type { Metadata2 } from './metadata2.js';
import { XATTR_NAME_MAX, XATTR_VALUE_MAX, type Xattr } from './spill-records.js';

const S_ISGID = 0o2000;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

function fail(errno: FsError['errno'], message: string): never {
  throw new FsError(errno, message);
}

/** A name as a directory may hold it: 1 to 255 bytes of UTF-8, no "/" or NUL, not "." or "..". */
export function checkEntryName(name: Buffer): void {
  if (name.length > NAME_MAX) fail('ENAMETOOLONG', `name of ${name.length} bytes (at most ${NAME_MAX})`);
  const problem = nameProblem(name);
  if (problem === undefined) return;
  // Names arrive as bytes; format 2 keeps them as UTF-8 (6.4), so others are refused, as format 1 did.
  fail(problem.includes('UTF-8') ? 'EILSEQ' : 'EINVAL', problem);
}

/** The time now, as stored. */
export function nowTimespec(): Timespec {
  return timespecOfMs(Date.now());
}

/** What the namespace tells the contents layer, which owns open files and blobs. */
export interface NamespaceHooks {
  /** Whether a handle is open on the inode: an unlinked open file lives on until its last close (POSIX). */
  isOpen(ino: number): boolean;
  /**
   * The inode's last name went: `versions` are its piece versions, whose blobs go once the commit that
   * removes it is durable. `open` when a handle still holds it: then the caller keeps the content (and
   * drops it at the last close), since the inode's record is gone from the next commit on.
   */
  gone(inode: InodeRecord, versions: { index: number; version: number }[], open: boolean): void;
}

/** What a change took away, for the caller's caches. */
export interface Removed2 {
  ino: number;
  type: FileType;
}

export interface NewNode {
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  rdev?: number;
  target?: Buffer;
}

export class Namespace2 {
  constructor(
    private readonly md: Metadata2,
    private readonly hooks: NamespaceHooks,
    private readonly now: () => Timespec = nowTimespec,
  ) {}

  inode(ino: number): InodeRecord {
    return this.md.requireInode(ino);
  }

  /** The directory inode, or ENOTDIR. */
  dir(ino: number): InodeRecord {
    const dir = this.inode(ino);
    if (dir.type !== FileType.directory) fail('ENOTDIR', `not a directory: inode ${ino}`);
    return dir;
  }

  /** What `name` in directory `dirIno` stands for, or ENOENT. */
  entry(dirIno: number, name: Buffer): DirEntry {
    return this.entryIfAny(dirIno, name) ?? fail('ENOENT', `no such file or directory: ${name.toString()}`);
  }

  entryIfAny(dirIno: number, name: Buffer): DirEntry | null {
    checkEntryName(name);
    this.dir(dirIno);
    return this.md.lookup(dirIno, name);
  }

  list(dirIno: number): DirEntry[] {
    this.dir(dirIno);
    return this.md.list(dirIno);
  }

  // ---- names ----

  /** Makes a node of any type as `name` in `dirIno`: create, mkdir, symlink, mknod. */
  create(dirIno: number, name: Buffer, node: NewNode): InodeRecord {
    const dir = this.dir(dirIno);
    if (this.entryIfAny(dirIno, name)) fail('EEXIST', `already exists: ${name.toString()}`);
    let { mode, gid } = node;
    if (dir.mode & S_ISGID) {
      // BSD group semantics of a setgid directory (the kernel leaves this to FUSE filesystems).
      gid = dir.gid;
      if (node.type === FileType.directory) mode |= S_ISGID;
    }
    const time = this.now();
    const inode = this.md.createInode({ type: node.type, mode, uid: node.uid, gid, parentIno: dirIno, time, rdev: node.rdev, target: node.target });
    this.md.link(dirIno, name, inode.ino);
    this.md.setAttributes(dirIno, (d) => ({ nlink: d.nlink + (node.type === FileType.directory ? 1 : 0), mtime: time, ctime: time }));
    return this.inode(inode.ino);
  }

  readlink(ino: number): Buffer {
    return this.md.symlinkTarget(ino);
  }

  /** Removes a name that is not a directory's; the inode goes with its last name. */
  unlink(dirIno: number, name: Buffer): Removed2 {
    const entry = this.entry(dirIno, name);
    if (entry.type === FileType.directory) fail('EISDIR', `is a directory: ${name.toString()}`);
    const inode = this.inode(entry.ino);
    const time = this.now();
    this.md.unlink(dirIno, name);
    this.touchDir(dirIno, time, 0);
    this.dropLink(inode, time);
    return { ino: inode.ino, type: inode.type };
  }

  rmdir(dirIno: number, name: Buffer): Removed2 {
    const entry = this.entry(dirIno, name);
    if (entry.type !== FileType.directory) fail('ENOTDIR', `not a directory: ${name.toString()}`);
    const target = this.inode(entry.ino);
    if (this.md.entryCount(target.ino) > 0) fail('ENOTEMPTY', `directory not empty: ${name.toString()}`);
    const time = this.now();
    this.md.unlink(dirIno, name);
    this.touchDir(dirIno, time, -1);
    this.md.removeInode(target.ino);
    return { ino: target.ino, type: FileType.directory };
  }

  /** A new name for an existing inode that is not a directory. */
  link(ino: number, dirIno: number, name: Buffer): InodeRecord {
    const inode = this.inode(ino);
    if (inode.type === FileType.directory) fail('EPERM', `cannot hard-link a directory: inode ${ino}`);
    if (this.entryIfAny(dirIno, name)) fail('EEXIST', `already exists: ${name.toString()}`);
    const time = this.now();
    this.md.link(dirIno, name, ino);
    this.touchDir(dirIno, time, 0);
    // parentIno follows the most recent link (6.1): where fsck puts the inode back if its names are lost.
    return this.md.setAttributes(ino, (i) => ({ nlink: i.nlink + 1, ctime: time, parentIno: dirIno }));
  }

  /**
   * rename(2), replacing an existing target as POSIX says. The caller has checked that a directory is not
   * moved under itself (the kernel does, for a mount). Null when both names stand for one inode: nothing
   * changes. `noReplace`: RENAME_NOREPLACE.
   */
  rename(srcDirIno: number, srcName: Buffer, dstDirIno: number, dstName: Buffer, noReplace = false): { moved: Removed2; replaced: Removed2 | null } | null {
    checkEntryName(dstName);
    const entry = this.entry(srcDirIno, srcName);
    this.dir(dstDirIno);
    const existing = this.md.lookup(dstDirIno, dstName);
    let replaced: InodeRecord | null = null;
    if (existing) {
      if (noReplace) fail('EEXIST', `already exists: ${dstName.toString()}`);
      if (existing.ino === entry.ino) return null; // two names of one inode: POSIX says do nothing
      replaced = this.inode(existing.ino);
      const movingDir = entry.type === FileType.directory;
      if (movingDir && replaced.type !== FileType.directory) fail('ENOTDIR', `not a directory: ${dstName.toString()}`);
      if (!movingDir && replaced.type === FileType.directory) fail('EISDIR', `is a directory: ${dstName.toString()}`);
      if (replaced.type === FileType.directory && this.md.entryCount(replaced.ino) > 0) fail('ENOTEMPTY', `directory not empty: ${dstName.toString()}`);
    }
    const time = this.now();
    const isDir = entry.type === FileType.directory;
    const sameDir = srcDirIno === dstDirIno;
    if (replaced) this.md.relink(dstDirIno, dstName, entry.ino);
    else this.md.link(dstDirIno, dstName, entry.ino);
    this.md.unlink(srcDirIno, srcName);
    // Subdirectory counts: the moved directory leaves its parent, a replaced directory leaves the target's.
    const srcChange = isDir && !sameDir ? -1 : 0;
    const dstChange = (isDir && !sameDir ? 1 : 0) - (replaced?.type === FileType.directory ? 1 : 0);
    this.touchDir(srcDirIno, time, sameDir ? srcChange + dstChange : srcChange);
    if (!sameDir) this.touchDir(dstDirIno, time, dstChange);
    this.md.setAttributes(entry.ino, () => ({ ctime: time, parentIno: dstDirIno }));
    if (replaced) {
      if (replaced.type === FileType.directory) this.md.removeInode(replaced.ino);
      else this.dropLink(replaced, time);
    }
    return { moved: { ino: entry.ino, type: entry.type }, replaced: replaced && { ino: replaced.ino, type: replaced.type } };
  }

  /** One name fewer for a non-directory; the inode, and after the commit its blobs, go with the last. */
  private dropLink(inode: InodeRecord, time: Timespec): void {
    if (inode.nlink > 1) {
      this.md.setAttributes(inode.ino, (i) => ({ nlink: i.nlink - 1, ctime: time }));
      return;
    }
    const map = inode.type === FileType.regular ? this.md.pieceMapIfAny(inode.ino) : null;
    const versions = map ? [...map.versions()] : [];
    const open = this.hooks.isOpen(inode.ino);
    this.md.removeInode(inode.ino);
    this.hooks.gone(inode, versions, open);
  }

  /** A directory's entries changed: its mtime and ctime are now, and its link count moves by `subdirs`. */
  private touchDir(dirIno: number, time: Timespec, subdirs: number): void {
    this.md.setAttributes(dirIno, (d) => ({ nlink: d.nlink + subdirs, mtime: time, ctime: time }));
  }

  // ---- attributes ----

  /** Changes attributes; ctime is now. */
  update(ino: number, change: (inode: InodeRecord) => Partial<Pick<InodeRecord, 'mode' | 'uid' | 'gid' | 'atime' | 'mtime'>>): InodeRecord {
    const time = this.now();
    return this.md.setAttributes(ino, (i) => ({ ...change(i), ctime: time }));
  }

  chmod(ino: number, mode: number): InodeRecord {
    return this.update(ino, (i) => ({ mode: (i.mode & S_IFMT) | (mode & 0o7777) }));
  }

  chown(ino: number, uid: number, gid: number): InodeRecord {
    // -1 (as unsigned 32 bits, too) leaves the id as it is.
    const keep = (n: number) => n === -1 || n === 0xffffffff;
    return this.update(ino, (i) => ({ uid: keep(uid) ? i.uid : uid, gid: keep(gid) ? i.gid : gid }));
  }

  /** Sets times; undefined leaves one as it is (UTIME_OMIT). */
  utimens(ino: number, atime: Timespec | undefined, mtime: Timespec | undefined): InodeRecord {
    return this.update(ino, (i) => ({ atime: atime ?? i.atime, mtime: mtime ?? i.mtime }));
  }

  // ---- extended attributes ----

  setxattr(ino: number, name: Buffer, value: Buffer, flags: number): void {
    if (name.length === 0 || name.length > XATTR_NAME_MAX) fail('ERANGE', `xattr name of ${name.length} bytes`);
    if (value.length > XATTR_VALUE_MAX) fail('E2BIG', `xattr value of ${value.length} bytes`);
    const xattrs = this.md.xattrs(ino);
    const at = xattrs.findIndex((x) => x.name.equals(name));
    if (flags & XATTR_CREATE && at >= 0) fail('EEXIST', `xattr exists: ${name.toString()}`);
    if (flags & XATTR_REPLACE && at < 0) fail('ENODATA', `no such xattr: ${name.toString()}`);
    const next: Xattr[] = at >= 0 ? xattrs.map((x, i) => (i === at ? { name: x.name, value: Buffer.from(value) } : x)) : [...xattrs, { name: Buffer.from(name), value: Buffer.from(value) }];
    checkXattrSpace(next); // ENOSPC past 240 KiB, as ext4 when its xattr space is full
    this.md.setXattrs(ino, next);
    this.update(ino, () => ({}));
  }

  getxattr(ino: number, name: Buffer): Buffer {
    return this.md.xattrs(ino).find((x) => x.name.equals(name))?.value ?? fail('ENODATA', `no such xattr: ${name.toString()}`);
  }

  listxattr(ino: number): Buffer[] {
    return this.md.xattrs(ino).map((x) => x.name);
  }

  removexattr(ino: number, name: Buffer): void {
    const xattrs = this.md.xattrs(ino);
    const kept = xattrs.filter((x) => !x.name.equals(name));
    if (kept.length === xattrs.length) fail('ENODATA', `no such xattr: ${name.toString()}`);
    this.md.setXattrs(ino, kept);
    this.update(ino, () => ({}));
  }
}
