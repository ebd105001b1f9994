// Format 2's namespace as a mount asks for it (src/core/vault/mountable.ts): by inode number, for svault's
// own transport, and by path, for fuse-native's. The path operations resolve a path and call the inode
// operations, which check what the kernel may send and Namespace2 may not refuse in time (an inode that is
// gone, a directory moved under itself, ids and targets the inode record cannot hold), then call
// Namespace2. Open files and attributes are the vault's (vault2.ts), reached through Vault2Core.

import { FsError } from '../errors.js';
import type { FsAttr, FsEntry, InodeApi, PathApi } from '../vault/mountable.js';
import { FileType, fileTypeOfMode, modeTypeBits, ROOT_INO, S_IFMT, type InodeRecord, type Timespec } from './inode-record.js';
import type { Namespace2, NewNode } from './namespace2.js';
import { SYMLINK_TARGET_MAX } from './spill-records.js';

function fail(errno: FsError['errno'], message: string): never {
  throw new FsError(errno, message);
}

/** What the inode and path operations need of the vault; Vault2 hands them this and keeps the rest private. */
export interface Vault2Core {
  readonly ns: Namespace2;
  /** The inode, or ENOENT: a node the kernel still holds may stand for an inode that is gone. */
  live(ino: number): InodeRecord;
  attrOf(ino: number): FsAttr;
  /** Opens a regular file by ino (EISDIR, EINVAL for other types) and gives its handle. */
  open(ino: number): number;
  truncate(ino: number, size: number): Promise<void>;
  /** utimens on a file that is open: its next commit keeps this mtime instead of the last write's. */
  setOpenMtime(ino: number, mtime: Timespec): void;
}

const TWO_32 = 2 ** 32;

function checkU32(n: number, what: string): void {
  // Namespace2 takes these as given, and the encoder refuses them only at the commit, which would then
  // fail every time: refused here, before anything changes.
  if (!Number.isInteger(n) || n < 0 || n >= TWO_32) fail('EINVAL', `${what} ${n} is not a 32-bit unsigned number`);
}

/** The namespace by inode number (InodeApi); the root is ROOT_INO. */
export class Vault2Inodes implements InodeApi<number> {
  readonly rootId = ROOT_INO;

  constructor(private readonly v: Vault2Core) {}

  private get ns(): Namespace2 {
    return this.v.ns;
  }

  /** Makes a node of any type as `name` in `dir` (create, mkdir, mknod, symlink). */
  private make(dir: number, name: Buffer, node: NewNode): number {
    checkU32(node.uid, 'uid');
    checkU32(node.gid, 'gid');
    checkU32(node.rdev ?? 0, 'rdev');
    this.v.live(dir);
    return this.ns.create(dir, name, node).ino;
  }

  attrOf(id: number): FsAttr {
    return this.v.attrOf(id);
  }

  lookup(dir: number, name: Buffer): number | undefined {
    this.v.live(dir);
    return this.ns.entryIfAny(dir, name)?.ino;
  }

  list(dir: number): FsEntry<number>[] {
    this.v.live(dir);
    // Names are stored as UTF-8 (Namespace2 refuses others), so the string is exact.
    return this.ns.list(dir).map((e) => ({ name: e.name.toString('utf8'), id: e.ino, ino: e.ino, typeBits: modeTypeBits(e.type) }));
  }

  mkdir(dir: number, name: Buffer, mode: number, uid: number, gid: number): number {
    return this.make(dir, name, { type: FileType.directory, mode, uid, gid });
  }

  mknod(dir: number, name: Buffer, mode: number, rdev: number, uid: number, gid: number): number {
    // mknod(2): type bits 0 make a regular file, as S_IFREG does.
    const type = (mode & S_IFMT) === 0 ? FileType.regular : (fileTypeOfMode(mode) ?? fail('EINVAL', `mknod: no file type 0o${(mode & S_IFMT).toString(8)}`));
    // Linux answers EPERM where a filesystem does not make a type through mknod.
    if (type === FileType.directory || type === FileType.symlink) fail('EPERM', 'mknod makes regular files, FIFOs, sockets and device nodes');
    const device = type === FileType.charDevice || type === FileType.blockDevice;
    return this.make(dir, name, { type, mode, uid, gid, rdev: device ? rdev : 0 });
  }

  symlink(dir: number, name: Buffer, target: Buffer, uid: number, gid: number): number {
    if (target.length === 0) fail('ENOENT', 'symlink: an empty target');
    if (target.length > SYMLINK_TARGET_MAX) fail('ENAMETOOLONG', `symlink target of ${target.length} bytes (at most ${SYMLINK_TARGET_MAX})`);
    // A copy: the inode keeps the buffer it is given, and the transport reuses its own.
    return this.make(dir, name, { type: FileType.symlink, mode: 0o777, uid, gid, target: Buffer.from(target) });
  }

  link(id: number, dir: number, name: Buffer): void {
    this.v.live(id);
    this.v.live(dir);
    this.ns.link(id, dir, name);
  }

  unlink(dir: number, name: Buffer): void {
    this.v.live(dir);
    this.ns.unlink(dir, name);
  }

  rmdir(dir: number, name: Buffer): void {
    this.v.live(dir);
    this.ns.rmdir(dir, name);
  }

  rename(srcDir: number, from: Buffer, dstDir: number, to: Buffer, noReplace: boolean): void {
    this.v.live(srcDir);
    this.v.live(dstDir);
    const moved = this.ns.entry(srcDir, from);
    if (moved.type === FileType.directory) this.refuseUnder(moved.ino, dstDir);
    this.ns.rename(srcDir, from, dstDir, to, noReplace);
  }

  /**
   * EINVAL when `dir` is directory `ino` or under it: the move would cut a loop out of the tree. The kernel
   * checks this for a mount, but the path operations come from fuse-native, and a loop cannot be undone.
   */
  private refuseUnder(ino: number, dir: number): void {
    // A directory has one name, so its parentIno is its parent; the walk ends at the root (parentIno 0),
    // or where a damaged tree would loop (fsck's to find).
    const seen = new Set<number>();
    for (let at = dir; at !== 0 && !seen.has(at); at = this.ns.inode(at).parentIno) {
      if (at === ino) fail('EINVAL', `cannot move directory ${ino} under itself`);
      seen.add(at);
    }
  }

  readlink(id: number): Buffer {
    this.v.live(id);
    return this.ns.readlink(id);
  }

  chmod(id: number, mode: number): void {
    this.v.live(id);
    this.ns.chmod(id, mode);
  }

  chown(id: number, uid: number, gid: number): void {
    this.v.live(id);
    this.ns.chown(id, uid, gid);
  }

  clearModeBits(id: number, bits: number): void {
    this.v.live(id);
    // Through update, so ctime moves as the chown or the write that clears them would move it.
    this.ns.update(id, (i) => ({ mode: i.mode & ~(bits & 0o7777) }));
  }

  utimens(id: number, atime: Timespec | undefined, mtime: Timespec | undefined): void {
    this.v.live(id);
    this.ns.utimens(id, atime, mtime);
    if (mtime) this.v.setOpenMtime(id, mtime);
  }

  setxattr(id: number, name: string, value: Buffer, flags: number): void {
    this.v.live(id);
    this.ns.setxattr(id, Buffer.from(name, 'utf8'), value, flags);
  }

  getxattr(id: number, name: string): Buffer {
    this.v.live(id);
    return this.ns.getxattr(id, Buffer.from(name, 'utf8'));
  }

  listxattr(id: number): string[] {
    this.v.live(id);
    return this.ns.listxattr(id).map((n) => n.toString('utf8'));
  }

  removexattr(id: number, name: string): void {
    this.v.live(id);
    this.ns.removexattr(id, Buffer.from(name, 'utf8'));
  }

  open(id: number): number {
    return this.v.open(id);
  }

  create(dir: number, name: Buffer, mode: number, uid: number, gid: number): { id: number; fh: number } {
    const id = this.make(dir, name, { type: FileType.regular, mode, uid, gid });
    return { id, fh: this.v.open(id) };
  }

  truncate(id: number, size: number): Promise<void> {
    return this.v.truncate(id, size);
  }
}

/** A path's name as bytes. fuse-native decodes names as UTF-8, bad bytes as U+FFFD: two such names would become one. */
function nameOf(part: string): Buffer {
  if (part.includes('\uFFFD')) fail('EILSEQ', `name is not valid UTF-8 (or contains U+FFFD): ${part.slice(0, 32)}`);
  return Buffer.from(part, 'utf8');
}

/** The namespace by path ("/a/b"), resolved here one name at a time and carried out by the inode operations. */
export class Vault2Paths implements PathApi<number> {
  constructor(private readonly inodes: Vault2Inodes) {}

  private components(path: string): string[] {
    // libfuse gives absolute paths; "" stands for a file that has no path any more (unlinked while open),
    // and must never resolve to the root.
    if (!path.startsWith('/')) fail('ENOENT', 'the file has no path any more');
    return path.split('/').filter((p) => p.length > 0);
  }

  private resolve(parts: string[]): number {
    let ino = ROOT_INO;
    for (const part of parts) ino = this.inodes.lookup(ino, nameOf(part)) ?? fail('ENOENT', `no such file or directory: ${part}`);
    return ino;
  }

  idAt(path: string): number {
    return this.resolve(this.components(path));
  }

  /** The directory a path's last name is in, and that name. */
  private parentOf(path: string): { dir: number; name: Buffer } {
    const parts = this.components(path);
    const last = parts.pop();
    if (last === undefined) fail('EBUSY', 'the root cannot be changed this way');
    const name = nameOf(last);
    return { dir: this.resolve(parts), name };
  }

  getattr(path: string): FsAttr {
    return this.inodes.attrOf(this.idAt(path));
  }

  attrOfId(id: number): FsAttr {
    return this.inodes.attrOf(id);
  }

  readdir(path: string): string[] {
    return this.inodes.list(this.idAt(path)).map((e) => e.name);
  }

  mkdir(path: string, mode: number, uid: number, gid: number): void {
    const { dir, name } = this.parentOf(path);
    this.inodes.mkdir(dir, name, mode, uid, gid);
  }

  mknod(path: string, mode: number, rdev: number, uid: number, gid: number): void {
    const { dir, name } = this.parentOf(path);
    this.inodes.mknod(dir, name, mode, rdev, uid, gid);
  }

  create(path: string, mode: number, uid: number, gid: number): number {
    const { dir, name } = this.parentOf(path);
    return this.inodes.create(dir, name, mode, uid, gid).fh;
  }

  open(path: string): number {
    return this.inodes.open(this.idAt(path));
  }

  truncate(path: string, size: number): Promise<void> {
    return this.inodes.truncate(this.idAt(path), size);
  }

  unlink(path: string): void {
    const { dir, name } = this.parentOf(path);
    this.inodes.unlink(dir, name);
  }

  rmdir(path: string): void {
    const { dir, name } = this.parentOf(path);
    this.inodes.rmdir(dir, name);
  }

  rename(from: string, to: string): void {
    const src = this.parentOf(from);
    const dst = this.parentOf(to);
    this.inodes.rename(src.dir, src.name, dst.dir, dst.name, false);
  }

  link(existing: string, path: string): void {
    const id = this.idAt(existing);
    const { dir, name } = this.parentOf(path);
    this.inodes.link(id, dir, name);
  }

  symlink(target: string, path: string, uid: number, gid: number): void {
    const { dir, name } = this.parentOf(path);
    this.inodes.symlink(dir, name, Buffer.from(target, 'utf8'), uid, gid);
  }

  readlink(path: string): string {
    return this.inodes.readlink(this.idAt(path)).toString('utf8');
  }

  chmod(path: string, mode: number): void {
    this.inodes.chmod(this.idAt(path), mode);
  }

  chown(path: string, uid: number, gid: number): void {
    this.inodes.chown(this.idAt(path), uid, gid);
  }

  utimens(path: string, atime: Timespec | undefined, mtime: Timespec | undefined): void {
    this.inodes.utimens(this.idAt(path), atime, mtime);
  }

  setxattr(path: string, name: string, value: Buffer, flags: number): void {
    this.inodes.setxattr(this.idAt(path), name, value, flags);
  }

  getxattr(path: string, name: string): Buffer {
    return this.inodes.getxattr(this.idAt(path), name);
  }

  listxattr(path: string): string[] {
    return this.inodes.listxattr(this.idAt(path));
  }

  removexattr(path: string, name: string): void {
    this.inodes.removexattr(this.idAt(path), name);
  }
}
