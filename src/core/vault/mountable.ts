// What a mount asks of a vault, whatever the store's format (docs/format-2.md 17.3): the two transports
// (fs/) and the mount server call only this; format 2's Vault2 gives it (format 1 is not mounted: it is
// upgraded). `Id` is how the vault names an inode: format 2's inode numbers. svault's own transport works by inode (`inodes`), fuse-native's by path (`paths`); open files
// are handles (`fh`) either way.

import type { SeekWhence } from '../contents/sparse.js';
import type { Timespec } from '../format2/inode-record.js';

/** What stat shows. `mode` carries the type bits (S_IFMT); an open file's size and times are ahead of its record. */
export interface FsAttr {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** A device node's device number (0 for anything else). */
  rdev: number;
  size: number;
  /** 512-byte blocks the file's content takes (st_blocks). */
  blocks: number;
  blksize: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
}

export interface FsStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** A directory entry as a listing gives it. */
export interface FsEntry<Id> {
  name: string;
  id: Id;
  /** The child's inode number and type bits (S_IFMT), when the directory itself records them: readdir needs no inode then. */
  ino?: number;
  typeBits?: number;
}

/**
 * The namespace by inode, for svault's own transport. Names are bytes as the kernel sends them; a vault
 * refuses what it cannot store (EILSEQ for a name that is not UTF-8, ENAMETOOLONG, ...).
 */
export interface InodeApi<Id> {
  readonly rootId: Id;
  /** ENOENT when the inode is gone (a node the kernel still holds after its last name and handle went). */
  attrOf(id: Id): FsAttr;
  lookup(dir: Id, name: Buffer): Id | undefined;
  list(dir: Id): FsEntry<Id>[];
  mkdir(dir: Id, name: Buffer, mode: number, uid: number, gid: number): Id;
  /** mknod(2): `mode` carries the type (a regular file, FIFO, socket or device node); EPERM for a type the store cannot hold. */
  mknod(dir: Id, name: Buffer, mode: number, rdev: number, uid: number, gid: number): Id;
  symlink(dir: Id, name: Buffer, target: Buffer, uid: number, gid: number): Id;
  link(id: Id, dir: Id, name: Buffer): void;
  unlink(dir: Id, name: Buffer): void;
  rmdir(dir: Id, name: Buffer): void;
  /** rename(2); `noReplace`: RENAME_NOREPLACE (EEXIST when the target exists). */
  rename(srcDir: Id, from: Buffer, dstDir: Id, to: Buffer, noReplace: boolean): void;
  readlink(id: Id): Buffer;
  chmod(id: Id, mode: number): void;
  /** -1 keeps an id as it is. */
  chown(id: Id, uid: number, gid: number): void;
  /** Clears mode bits (setuid, setgid) and changes ctime, as a chown or a write by another user does. */
  clearModeBits(id: Id, bits: number): void;
  /** undefined leaves a time as it is. */
  utimens(id: Id, atime: Timespec | undefined, mtime: Timespec | undefined): void;
  setxattr(id: Id, name: string, value: Buffer, flags: number): void;
  getxattr(id: Id, name: string): Buffer;
  listxattr(id: Id): string[];
  removexattr(id: Id, name: string): void;
  /** Opens a regular file; EISDIR for a directory, EINVAL for anything else that is not a regular file. */
  open(id: Id): number;
  /** Creates and opens a regular file. */
  create(dir: Id, name: Buffer, mode: number, uid: number, gid: number): { id: Id; fh: number };
  truncate(id: Id, size: number): Promise<void>;
}

/** The namespace by path ("/a/b"), for fuse-native's path-based API. */
export interface PathApi<Id> {
  getattr(path: string): FsAttr;
  /** The inode a path names (ENOENT, ENOTDIR on the way). */
  idAt(path: string): Id;
  /** Attributes of an inode that may have lost its last name while open. */
  attrOfId(id: Id): FsAttr;
  readdir(path: string): string[];
  mkdir(path: string, mode: number, uid: number, gid: number): void;
  mknod(path: string, mode: number, rdev: number, uid: number, gid: number): void;
  create(path: string, mode: number, uid: number, gid: number): number;
  open(path: string): number;
  truncate(path: string, size: number): Promise<void>;
  unlink(path: string): void;
  rmdir(path: string): void;
  rename(from: string, to: string): void;
  link(existing: string, path: string): void;
  symlink(target: string, path: string, uid: number, gid: number): void;
  readlink(path: string): string;
  chmod(path: string, mode: number): void;
  chown(path: string, uid: number, gid: number): void;
  utimens(path: string, atime: Timespec | undefined, mtime: Timespec | undefined): void;
  setxattr(path: string, name: string, value: Buffer, flags: number): void;
  getxattr(path: string, name: string): Buffer;
  listxattr(path: string): string[];
  removexattr(path: string, name: string): void;
}

/** A vault as a mount serves it. */
export interface MountableVault<Id = unknown> {
  /** The store format (1 or 2), for logs and `svault status`. */
  readonly format: number;
  readonly inodes: InodeApi<Id>;
  readonly paths: PathApi<Id>;
  /** `-o sync`: the transports make each close and metadata change durable before answering it. */
  readonly syncCommits: boolean;
  /** The store's last user died without closing it: orphan blobs may be left (sweepOrphans). */
  readonly recoveredFromCrash: boolean;

  // ---- open files, by handle ----
  fgetattr(fh: number): FsAttr;
  /** The inode an open handle refers to (it outlives renames and the unlink of its names). */
  idOfHandle(fh: number): Id;
  /** Whether an inode has open handles. */
  isOpen(id: Id): boolean;
  read(fh: number, target: Buffer, length: number, position: number): Promise<number>;
  /** The bytes read into `target`, or, for a range wholly in holes, a read-only view of shared zeros. */
  readView(fh: number, target: Buffer, length: number, position: number): Promise<Buffer>;
  write(fh: number, source: Buffer, position: number): Promise<number>;
  ftruncate(fh: number, size: number): Promise<void>;
  /** close(2): commits the file, ordered after every change before it (durable within the commit window). */
  flush(fh: number): Promise<void>;
  /** fsync(2): durable when this resolves. */
  fsync(fh: number): Promise<void>;
  release(fh: number): Promise<void>;
  /** SEEK_DATA / SEEK_HOLE; ENXIO at or past the end. */
  seek(fh: number, offset: number, whence: SeekWhence): Promise<number>;
  /** fallocate(2), `mode` as Linux's flags; EOPNOTSUPP for modes svault does not do. */
  fallocate(fh: number, mode: number, offset: number, length: number): Promise<void>;

  // ---- the whole vault ----
  statfs(): FsStatfs;
  /** Every change so far durable (sync, syncfs, fsync of a directory, `-o sync`). */
  sync(): Promise<void>;
  /** After a crash: deletes the blobs nothing points to, or says why it did not. */
  sweepOrphans(): Promise<{ removed: number; skipped?: string }>;
  /** Files with open handles, for `svault status`. */
  openFileCount(): number;
  /** Moves the rollback anchor to what is durable now (cheap when nothing changed). */
  saveAnchor(): void;
  /** Commits everything and lets go of the store. */
  close(): Promise<void>;
}
