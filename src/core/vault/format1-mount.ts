// A format-1 vault as a mount serves it (mountable.ts): a thin adapter over Vault and its namespace by
// inode, which name inodes by string ids and keep times in milliseconds. Format 1 has no special files:
// mknod makes regular files only.

import { isUtf8 } from 'node:buffer';
import { sweepOrphans } from '../fsck/fsck.js';
import type { SeekWhence } from '../contents/sparse.js';
import type { Timespec } from '../format2/inode-record.js';
import { ROOT_ID, S_IFMT, S_IFREG } from '../meta/inode.js';
import type { FsAttr, FsEntry, FsStatfs, InodeApi, MountableVault, PathApi } from './mountable.js';
import { fail, type Namespace } from './namespace.js';
import type { Attr, Vault } from './vault.js';

const NO_SPECIAL_FILES = 'svault stores regular files, directories and symlinks only';

/** A name from the kernel: UTF-8 only, since two byte names must never decode to one. */
function nameOf(bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : fail('EILSEQ', 'name is not valid UTF-8');
}

/**
 * A stored time (ms since 1970, fractional when a SETATTR gave nanoseconds) to the nearest nanosecond,
 * nsec in [0, 1e9). svault's transport always sent format 1's times this way; timespecOfMs floors, which
 * would move a stored fraction by a nanosecond.
 */
export function timespecOfStoredMs(ms: number): Timespec {
  if (!Number.isFinite(ms)) return { sec: 0, nsec: 0 };
  let sec = Math.floor(ms / 1000);
  let nsec = Math.round((ms - sec * 1000) * 1e6);
  // Division and rounding can land just outside [0, 1e9)
  if (nsec >= 1e9) {
    sec += 1;
    nsec -= 1e9;
  } else if (nsec < 0) {
    sec -= 1;
    nsec += 1e9;
  }
  return { sec, nsec };
}

/** A time as format 1 stores it: milliseconds, keeping the nanoseconds as a fraction (msOfTimespec drops them). */
export function storedMsOfTimespec(t: Timespec): number {
  return t.sec * 1000 + t.nsec / 1e6;
}

function fsAttrOf(a: Attr): FsAttr {
  return {
    ino: a.ino, mode: a.mode, uid: a.uid, gid: a.gid, nlink: a.nlink, rdev: 0, size: a.size, blocks: a.blocks, blksize: a.blksize,
    atime: timespecOfStoredMs(a.atime), mtime: timespecOfStoredMs(a.mtime), ctime: timespecOfStoredMs(a.ctime),
  };
}

const msOrKeep = (t: Timespec | undefined): number | undefined => (t === undefined ? undefined : storedMsOfTimespec(t));

/** mknod(2) in format 1: an empty regular file, or EPERM for any other type. */
function checkMknodType(mode: number): void {
  if ((mode & S_IFMT) !== S_IFREG) fail('EPERM', NO_SPECIAL_FILES);
}

class Format1Inodes implements InodeApi<string> {
  readonly rootId: string = ROOT_ID;
  private readonly ns: Namespace;

  constructor(private readonly vault: Vault) {
    this.ns = vault.byInode;
  }

  attrOf(id: string): FsAttr {
    return fsAttrOf(this.vault.attrOfInode(id));
  }

  lookup(dir: string, name: Buffer): string | undefined {
    return this.ns.entryIfAny(dir, nameOf(name))?.id;
  }

  list(dir: string): FsEntry<string>[] {
    return this.ns.list(dir).map(({ name, id }) => ({ name, id }));
  }

  mkdir(dir: string, name: Buffer, mode: number, uid: number, gid: number): string {
    return this.ns.mkdir(dir, nameOf(name), mode, uid, gid).id;
  }

  mknod(dir: string, name: Buffer, mode: number, _rdev: number, uid: number, gid: number): string {
    checkMknodType(mode);
    return this.ns.createFile(dir, nameOf(name), mode, uid, gid).id;
  }

  symlink(dir: string, name: Buffer, target: Buffer, uid: number, gid: number): string {
    return this.ns.symlink(dir, nameOf(name), nameOf(target), uid, gid).id;
  }

  link(id: string, dir: string, name: Buffer): void {
    this.ns.link(id, dir, nameOf(name));
  }

  unlink(dir: string, name: Buffer): void {
    this.ns.unlink(dir, nameOf(name));
  }

  rmdir(dir: string, name: Buffer): void {
    this.ns.rmdir(dir, nameOf(name));
  }

  rename(srcDir: string, from: Buffer, dstDir: string, to: Buffer, noReplace: boolean): void {
    const fromName = nameOf(from);
    const toName = nameOf(to);
    if (noReplace && this.ns.entryIfAny(dstDir, toName)) fail('EEXIST', `already exists: ${toName}`);
    this.ns.rename(srcDir, fromName, dstDir, toName);
  }

  readlink(id: string): Buffer {
    return Buffer.from(this.ns.readlink(id));
  }

  chmod(id: string, mode: number): void {
    this.ns.chmod(id, mode);
  }

  chown(id: string, uid: number, gid: number): void {
    this.ns.chown(id, uid, gid);
  }

  clearModeBits(id: string, bits: number): void {
    this.ns.update(id, (i) => (i.mode &= ~bits));
  }

  utimens(id: string, atime: Timespec | undefined, mtime: Timespec | undefined): void {
    this.ns.utimens(id, msOrKeep(atime), msOrKeep(mtime));
  }

  setxattr(id: string, name: string, value: Buffer, flags: number): void {
    this.ns.setxattr(id, name, value, flags);
  }

  getxattr(id: string, name: string): Buffer {
    return this.ns.getxattr(id, name);
  }

  listxattr(id: string): string[] {
    return this.ns.listxattr(id);
  }

  removexattr(id: string, name: string): void {
    this.ns.removexattr(id, name);
  }

  open(id: string): number {
    return this.vault.openInode(id);
  }

  create(dir: string, name: Buffer, mode: number, uid: number, gid: number): { id: string; fh: number } {
    const { inode, fh } = this.vault.createIn(dir, nameOf(name), mode, uid, gid);
    return { id: inode.id, fh };
  }

  truncate(id: string, size: number): Promise<void> {
    return this.vault.truncateInode(id, size);
  }
}

class Format1Paths implements PathApi<string> {
  constructor(private readonly vault: Vault) {}

  getattr(path: string): FsAttr {
    return fsAttrOf(this.vault.getattr(path));
  }

  idAt(path: string): string {
    return this.vault.idAt(path);
  }

  attrOfId(id: string): FsAttr {
    return fsAttrOf(this.vault.unlinkedAttr(id));
  }

  readdir(path: string): string[] {
    return this.vault.readdir(path);
  }

  mkdir(path: string, mode: number, uid: number, gid: number): void {
    this.vault.mkdir(path, mode, uid, gid);
  }

  mknod(path: string, mode: number, _rdev: number, uid: number, gid: number): void {
    checkMknodType(mode);
    // The Vault's path operations have no create without a handle: split the path as they do.
    if (!path.startsWith('/')) fail('ENOENT', 'the file has no path any more');
    const parts = path.split('/').filter((p) => p.length > 0);
    const name = parts.pop() ?? fail('EBUSY', 'the root cannot be changed this way');
    this.vault.byInode.createFile(this.vault.idAt('/' + parts.join('/')), name, mode, uid, gid);
  }

  create(path: string, mode: number, uid: number, gid: number): number {
    return this.vault.create(path, mode, uid, gid);
  }

  open(path: string): number {
    return this.vault.open(path);
  }

  truncate(path: string, size: number): Promise<void> {
    return this.vault.truncate(path, size);
  }

  unlink(path: string): void {
    this.vault.unlink(path);
  }

  rmdir(path: string): void {
    this.vault.rmdir(path);
  }

  rename(from: string, to: string): void {
    this.vault.rename(from, to);
  }

  link(existing: string, path: string): void {
    this.vault.link(existing, path);
  }

  symlink(target: string, path: string, uid: number, gid: number): void {
    this.vault.symlink(target, path, uid, gid);
  }

  readlink(path: string): string {
    return this.vault.readlink(path);
  }

  chmod(path: string, mode: number): void {
    this.vault.chmod(path, mode);
  }

  chown(path: string, uid: number, gid: number): void {
    this.vault.chown(path, uid, gid);
  }

  utimens(path: string, atime: Timespec | undefined, mtime: Timespec | undefined): void {
    this.vault.utimens(path, msOrKeep(atime), msOrKeep(mtime));
  }

  setxattr(path: string, name: string, value: Buffer, flags: number): void {
    this.vault.setxattr(path, name, value, flags);
  }

  getxattr(path: string, name: string): Buffer {
    return this.vault.getxattr(path, name);
  }

  listxattr(path: string): string[] {
    return this.vault.listxattr(path);
  }

  removexattr(path: string, name: string): void {
    this.vault.removexattr(path, name);
  }
}

/** A format-1 Vault behind MountableVault; `vault` stays reachable for what only format 1 has. */
export class Format1Mount implements MountableVault<string> {
  readonly format = 1;
  readonly inodes: InodeApi<string>;
  readonly paths: PathApi<string>;

  constructor(readonly vault: Vault) {
    this.inodes = new Format1Inodes(vault);
    this.paths = new Format1Paths(vault);
  }

  get syncCommits(): boolean {
    return this.vault.syncCommits;
  }

  get recoveredFromCrash(): boolean {
    return this.vault.recoveredFromCrash;
  }

  fgetattr(fh: number): FsAttr {
    return fsAttrOf(this.vault.fgetattr(fh));
  }

  idOfHandle(fh: number): string {
    return this.vault.idOfHandle(fh);
  }

  isOpen(id: string): boolean {
    return this.vault.isOpen(id);
  }

  read(fh: number, target: Buffer, length: number, position: number): Promise<number> {
    return this.vault.read(fh, target, length, position);
  }

  readView(fh: number, target: Buffer, length: number, position: number): Promise<Buffer> {
    return this.vault.readView(fh, target, length, position);
  }

  write(fh: number, source: Buffer, position: number): Promise<number> {
    return this.vault.write(fh, source, position);
  }

  ftruncate(fh: number, size: number): Promise<void> {
    return this.vault.ftruncate(fh, size);
  }

  flush(fh: number): Promise<void> {
    return this.vault.flush(fh);
  }

  fsync(fh: number): Promise<void> {
    return this.vault.fsync(fh);
  }

  release(fh: number): Promise<void> {
    return this.vault.release(fh);
  }

  seek(fh: number, offset: number, whence: SeekWhence): Promise<number> {
    return this.vault.seek(fh, offset, whence);
  }

  fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    return this.vault.fallocate(fh, mode, offset, length);
  }

  statfs(): FsStatfs {
    return this.vault.statfs();
  }

  sync(): Promise<void> {
    return this.vault.sync();
  }

  sweepOrphans(): Promise<{ removed: number; skipped?: string }> {
    return sweepOrphans(this.vault);
  }

  openFileCount(): number {
    return this.vault.openFileCount();
  }

  saveAnchor(): void {
    this.vault.saveAnchor();
  }

  close(): Promise<void> {
    return this.vault.close();
  }
}
