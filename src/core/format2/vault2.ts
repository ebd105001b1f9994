// A vault over format 2, its core (docs/format-2.md 17.3, the next step's first half): the store on disk
// (store2.ts), the rollback anchor checked before anything is written (anchor2.ts, 5.7), the namespace on
// inode numbers (namespace2.ts), the contents engine through format 2's port (content2.ts: small files
// INLINE), and the group commit (the vault's committer over Metadata2.commitSource(), the anchor moved
// after each commit). It offers path operations, for tools and tests; the FUSE adapters still call the
// format-1 Vault, and moving them onto this is the second half of that step.

import { statfsSync } from 'node:fs';
import { Contents, type OpenFile } from '../contents/contents.js';
import { FsError } from '../errors.js';
import { directoryStoreStack, type PieceStore } from '../store/piece-store.js';
import { OpStats } from '../util/op-stats.js';
import { Committer, DEFAULT_COMMIT_MS } from '../vault/committer.js';
import { RollbackError } from '../vault/anchor.js';
import { acquireStoreLock } from '../vault/store-lock.js';
import { clearUncleanMark, hasUncleanMark, setUncleanMark } from '../vault/unclean-mark.js';
import type { VaultSettings } from '../vault/config.js';
import { anchoredCommit, compareWithAnchor, RollbackAnchor, type AnchoredCommit } from './anchor2.js';
import { contentId, Format2Content, storedContent2 } from './content2.js';
import { NAME_MAX, type DirEntry } from './dir-records.js';
import { FileType, msOfTimespec, ROOT_INO, timespecOfMs, type InodeRecord, type Timespec } from './inode-record.js';
import { Namespace2 } from './namespace2.js';
import { fsck2 } from './fsck2.js';
import { createStore2, openStore2, type Store2 } from './store2.js';

export interface Vault2Options {
  /** Skip the store lock (read-only inspection). */
  noLock?: boolean;
  /** Where rollback anchors live (outside the store); without it, no rollback check. */
  anchorDir?: string;
  /** Open a store older than its anchor (a backup restored on purpose). */
  acceptRollback?: boolean;
  /** A piece store in place of the store directory's (unit tests). */
  store?: PieceStore;
  commitWindowMs?: number;
  stats?: OpStats;
}

/** What stat shows, from the format-2 inode and, for an open file, its content as it stands. */
export interface Attr2 {
  ino: number;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
}

interface Handle {
  ino: number;
  of: OpenFile;
}

type StoreLock = { release: () => void; stale: boolean };
const NO_LOCK: StoreLock = { release: () => undefined, stale: false };

function storeFor(path: string, opts: Vault2Options): PieceStore {
  return directoryStoreStack(path, opts.stats ?? new OpStats(), opts.store);
}

function nameBytes(name: string): Buffer {
  return Buffer.from(name, 'utf8');
}

export class Vault2 {
  readonly ns: Namespace2;
  private readonly contents: Contents;
  private readonly committer: Committer;
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private closed = false;
  /** The last session ended without closing (a stale lock, or an unclean mark): orphan blobs may be left. */
  readonly recoveredFromCrash: boolean;
  private crashCleaned = false;

  private constructor(
    private readonly s: Store2,
    private readonly store: PieceStore,
    private readonly anchor: RollbackAnchor | null,
    private readonly lock: StoreLock,
    opts: Vault2Options,
  ) {
    this.recoveredFromCrash = lock.stale || hasUncleanMark(s.path);
    const stats = opts.stats ?? new OpStats();
    this.contents = new Contents({ vaultId: s.vaultId, keys: s.keys, store, meta: new Format2Content(s.md), pieceSize: s.config.pieceSize, chaffRatio: s.config.chaffRatio, stats });
    this.ns = new Namespace2(s.md, {
      isOpen: (ino) => this.contents.openState(contentId(ino)) !== undefined,
      gone: (inode, versions, open) => {
        // An open file lives on until its last close, which deletes its pieces (Contents.release).
        if (open) this.contents.openState(contentId(inode.ino))?.markUnlinked(inode);
        else if (versions.length > 0) this.contents.deletePiecesAfterCommit(inode.fileId, versions.map((v) => [v.index, v.version]));
      },
    });
    // The anchor follows every durable commit, so a copy of the store from before it is found out.
    const source = s.md.commitSource(() => this.anchor?.write(this.anchored()));
    this.committer = new Committer(source, () => this.contents.makeStoredDurable(), opts.commitWindowMs ?? DEFAULT_COMMIT_MS, () => undefined, stats);
  }

  /** A new vault in `path` (absent or empty). */
  static create(path: string, passphrase: string, settings: VaultSettings, opts: Vault2Options = {}): Vault2 {
    const s = createStore2(path, passphrase, settings, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    const lock = opts.noLock ? NO_LOCK : acquireStoreLock(path);
    const anchor = opts.anchorDir ? new RollbackAnchor(opts.anchorDir, s.vaultId, s.keys.anchor) : null;
    const vault = new Vault2(s, storeFor(path, opts), anchor, lock, opts);
    anchor?.write(vault.anchored());
    return vault;
  }

  /**
   * The vault in `path`. The store's commit is compared with this machine's anchor before anything is
   * written: an older store is a RollbackError unless acceptRollback. Only then is the opening commit made.
   */
  static open(path: string, passphrase: string, opts: Vault2Options = {}): Vault2 {
    const lock = opts.noLock ? NO_LOCK : acquireStoreLock(path);
    let s: Store2;
    try {
      s = openStore2(path, passphrase);
    } catch (err) {
      lock.release();
      throw err;
    }
    try {
      const anchor = opts.anchorDir ? new RollbackAnchor(opts.anchorDir, s.vaultId, s.keys.anchor) : null;
      const anchored = anchor?.read() ?? null;
      const store = anchoredCommit(s.md.state.commit);
      if (anchored && compareWithAnchor(store, anchored) === 'behind' && !opts.acceptRollback) {
        throw new RollbackError(path, store.commit, anchored.commit);
      }
      s.md.reserve();
      const vault = new Vault2(s, storeFor(path, opts), anchor, lock, opts);
      anchor?.write(vault.anchored());
      return vault;
    } catch (err) {
      s.close();
      lock.release();
      throw err;
    }
  }

  /**
   * After a crash: deletes the blobs nothing points to (pieces stored but never committed, versions a
   * lost commit superseded), keeping chaff. Only from a walk that reached everything, and before anything
   * is written in this session; otherwise the store stays marked unclean for the next open or fsck.
   */
  async sweepOrphans(): Promise<{ removed: number; skipped?: string }> {
    // Between an upgrade and its --finish, format 1's superseded pieces are orphans to format 2 but what a
    // rollback needs; their versions cannot be told from their addresses, so nothing is swept until --finish.
    if (this.s.md.state.upgradeStage === 1) return { removed: 0, skipped: 'an upgrade is not finished: format 1\'s blobs are kept for a rollback until svault upgrade --finish' };
    const referenced = new Set<string>();
    const report = await fsck2(this.s.md, this.s.table, {
      verifyPiece: async (inode, index, version) => {
        referenced.add(this.contents.pieceAddress(inode, index, version).toString('hex'));
      },
    });
    if (report.incomplete.length > 0) return { removed: 0, skipped: `${report.incomplete.join('; ')}: run svault fsck` };
    let removed = 0;
    for await (const address of this.contents.blobAddresses()) {
      if (referenced.has(address.toString('hex')) || (await this.contents.isChaffAt(address))) continue;
      await this.contents.deleteBlobAt(address);
      removed++;
    }
    await this.store.flush();
    clearUncleanMark(this.s.path);
    this.crashCleaned = true;
    return { removed };
  }

  private anchored(): AnchoredCommit {
    return anchoredCommit(this.s.md.state.commit);
  }

  // ---- paths ----

  /** The ino a path names (ENOENT, ENOTDIR on the way). */
  inoAt(path: string): number {
    let ino = ROOT_INO;
    for (const part of path.split('/').filter(Boolean)) ino = this.ns.entry(ino, nameBytes(part)).ino;
    return ino;
  }

  private parentOf(path: string): { dir: number; name: Buffer } {
    const parts = path.split('/').filter(Boolean);
    const last = parts.pop();
    if (last === undefined) throw new FsError('EINVAL', 'the root has no parent');
    return { dir: this.inoAt(`/${parts.join('/')}`), name: nameBytes(last) };
  }

  getattr(path: string): Attr2 {
    return this.attrOf(this.inoAt(path));
  }

  attrOf(ino: number): Attr2 {
    const of = this.contents.openState(contentId(ino));
    const inode: InodeRecord = of?.unlinkedRecord<InodeRecord>() ?? this.ns.inode(ino);
    const { type, mode, uid, gid, nlink, rdev, atime, mtime, ctime } = inode;
    // An open file's size and mtime are ahead of its inode until its commit.
    const size = of ? of.size : inode.size;
    const shownMtime = of && msOfTimespec(mtime) !== of.mtime ? timespecOfMs(of.mtime) : mtime;
    return { ino, type, mode, uid, gid, nlink: of?.unlinked ? 0 : nlink, rdev, size, atime, mtime: shownMtime, ctime };
  }

  readdir(path: string): DirEntry[] {
    return this.ns.list(this.inoAt(path));
  }

  mkdir(path: string, mode: number, uid = 0, gid = 0): void {
    const { dir, name } = this.parentOf(path);
    this.ns.create(dir, name, { type: FileType.directory, mode, uid, gid });
  }

  /** mknod(2): a FIFO, socket or device node (section 8), with no content. */
  mknod(path: string, type: FileType, mode: number, rdev = 0, uid = 0, gid = 0): void {
    if (type === FileType.regular || type === FileType.directory || type === FileType.symlink) throw new FsError('EINVAL', 'mknod makes FIFOs, sockets and device nodes');
    const { dir, name } = this.parentOf(path);
    this.ns.create(dir, name, { type, mode, uid, gid, rdev });
  }

  symlink(target: string, path: string, uid = 0, gid = 0): void {
    const { dir, name } = this.parentOf(path);
    this.ns.create(dir, name, { type: FileType.symlink, mode: 0o777, uid, gid, target: Buffer.from(target) });
  }

  readlink(path: string): string {
    return this.ns.readlink(this.inoAt(path)).toString();
  }

  link(existing: string, path: string): void {
    const { dir, name } = this.parentOf(path);
    this.ns.link(this.inoAt(existing), dir, name);
  }

  unlink(path: string): void {
    const { dir, name } = this.parentOf(path);
    this.ns.unlink(dir, name);
  }

  rmdir(path: string): void {
    const { dir, name } = this.parentOf(path);
    this.ns.rmdir(dir, name);
  }

  rename(from: string, to: string): void {
    const src = this.parentOf(from);
    const dst = this.parentOf(to);
    this.ns.rename(src.dir, src.name, dst.dir, dst.name);
  }

  // ---- attributes and xattrs by path ----

  chmod(path: string, mode: number): void {
    this.ns.chmod(this.inoAt(path), mode);
  }

  chown(path: string, uid: number, gid: number): void {
    this.ns.chown(this.inoAt(path), uid, gid);
  }

  /** Sets times; undefined leaves one as it is (UTIME_OMIT). An open file's next commit keeps the mtime set. */
  utimens(path: string, atime: Timespec | undefined, mtime: Timespec | undefined): void {
    const ino = this.inoAt(path);
    this.ns.utimens(ino, atime, mtime);
    if (mtime) this.contents.openState(contentId(ino))?.setMtime(msOfTimespec(mtime));
  }

  setxattr(path: string, name: string, value: Buffer, flags: number): void {
    this.ns.setxattr(this.inoAt(path), nameBytes(name), value, flags);
  }

  getxattr(path: string, name: string): Buffer {
    return this.ns.getxattr(this.inoAt(path), nameBytes(name));
  }

  listxattr(path: string): string[] {
    return this.ns.listxattr(this.inoAt(path)).map((n) => n.toString('utf8'));
  }

  removexattr(path: string, name: string): void {
    this.ns.removexattr(this.inoAt(path), nameBytes(name));
  }

  /** truncate(2) by path. */
  async truncate(path: string, size: number): Promise<void> {
    const fh = this.open(path);
    try {
      await this.ftruncate(fh, size);
    } finally {
      await this.release(fh);
    }
  }

  /** statfs(2): the store's disk, and the live inodes (format 2's state record counts them) as files. */
  statfs(): { bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number } {
    const fs = statfsSync(this.s.path);
    return { bsize: fs.bsize, blocks: fs.blocks, bfree: fs.bfree, bavail: fs.bavail, files: this.s.md.state.liveInodes + fs.ffree, ffree: fs.ffree, namemax: NAME_MAX };
  }

  // ---- files ----

  /** Creates a regular file and opens it. */
  create(path: string, mode: number, uid = 0, gid = 0): number {
    const { dir, name } = this.parentOf(path);
    const inode = this.ns.create(dir, name, { type: FileType.regular, mode, uid, gid });
    return this.openIno(inode.ino);
  }

  open(path: string): number {
    return this.openIno(this.inoAt(path));
  }

  private openIno(ino: number): number {
    const inode = this.ns.inode(ino);
    if (inode.type === FileType.directory) throw new FsError('EISDIR', `is a directory: inode ${ino}`);
    if (inode.type !== FileType.regular) throw new FsError('EINVAL', `not a regular file: inode ${ino}`);
    const of = this.contents.acquire({ id: contentId(ino), fileId: inode.fileId }, () => storedContent2(this.s.md, ino));
    const fh = this.nextHandle++;
    this.handles.set(fh, { ino, of });
    return fh;
  }

  private handle(fh: number): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', `no open file ${fh}`);
    return h;
  }

  read(fh: number, target: Buffer, length: number, position: number): Promise<number> {
    return this.contents.read(this.handle(fh).of, target, length, position);
  }

  write(fh: number, source: Buffer, position: number): Promise<number> {
    return this.contents.write(this.handle(fh).of, source, position);
  }

  ftruncate(fh: number, size: number): Promise<void> {
    return this.contents.truncate(this.handle(fh).of, size);
  }

  /** Durable: the file's content and every change before it (fsync). */
  async fsync(fh: number): Promise<void> {
    const { of } = this.handle(fh);
    await this.contents.commit(of);
    await this.committer.commit();
  }

  /** The last close commits the file (within the window, as format 1's close). */
  async release(fh: number): Promise<void> {
    const { of } = this.handle(fh);
    this.handles.delete(fh);
    await this.contents.release(of);
  }

  /** sync(2): every change so far durable. */
  async sync(): Promise<void> {
    await this.committer.commit();
    await this.contents.settle();
  }

  /** Commits everything, checkpoints the metadata, moves the anchor, and lets go of the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      for (const fh of [...this.handles.keys()]) await this.release(fh);
      await this.committer.commit();
      await this.contents.settle();
      await this.store.flush();
      this.s.table.checkpoint();
      // A crash found at open and not swept: the next open sweeps.
      if (this.recoveredFromCrash && !this.crashCleaned) setUncleanMark(this.s.path);
    } finally {
      this.committer.stop();
      this.s.close();
      this.store.close();
      this.lock.release();
    }
  }
}
