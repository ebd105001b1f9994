// A vault over format 2 (docs/format-2.md 17.3): the store on disk (store2.ts), the rollback anchor checked
// before anything is written (anchor2.ts, 5.7), the namespace on inode numbers (namespace2.ts), the
// contents engine through format 2's port (content2.ts: small files INLINE) with the piece worker, and the
// group commit (the vault's committer over Metadata2.commitSource(), the anchor moved after each commit).
// It is a MountableVault (src/core/vault/mountable.ts): the transports call its namespace by inode or by
// path (vault2-api.ts), and its open files and whole-vault operations here.

import { statfsSync } from 'node:fs';
import { Contents, type OpenFile } from '../contents/contents.js';
import { fallocateOpenFile } from '../contents/fallocate.js';
import { PieceOffload } from '../contents/piece-offload.js';
import type { SeekWhence } from '../contents/sparse.js';
import { FsError, IntegrityError } from '../errors.js';
import { directoryStoreStack, type PieceStore } from '../store/piece-store.js';
import { OpStats } from '../util/op-stats.js';
import { Committer, DEFAULT_COMMIT_MS } from '../vault/committer.js';
import { RollbackError } from '../vault/anchor.js';
import type { FsAttr, FsStatfs, InodeApi, MountableVault, PathApi } from '../vault/mountable.js';
import { acquireStoreLock } from '../vault/store-lock.js';
import { clearUncleanMark, hasUncleanMark, setUncleanMark } from '../vault/unclean-mark.js';
import type { VaultConfig, VaultSettings } from '../vault/config.js';
import { anchoredCommit, compareWithAnchor, RollbackAnchor } from './anchor2.js';
import { contentId, Format2Content, storedContent2 } from './content2.js';
import { NAME_MAX } from './dir-records.js';
import { FileType, modeTypeBits, msOfTimespec, timespecOfMs, type InodeRecord, type Timespec } from './inode-record.js';
import { Namespace2 } from './namespace2.js';
import { fsck2 } from './fsck2.js';
import type { Metadata2 } from './metadata2.js';
import { PAGE_SIZE, type RecordTable } from './record-table.js';
import { createStore2, openStore2, type Store2 } from './store2.js';
import { Vault2Inodes, Vault2Paths } from './vault2-api.js';

export interface Vault2Options {
  /** Skip the store lock (read-only inspection). */
  noLock?: boolean;
  /**
   * Opened to look, not to change (`svault info`, `svault fsck` without `--repair`, `svault passwd`): no
   * opening commit, so no piece versions are reserved (section 11), and close() commits and checkpoints
   * nothing, so the metadata is left as it was. Nothing may be written through such a vault. Open only.
   */
  inspectOnly?: boolean;
  /** Where rollback anchors live (outside the store); without it, no rollback check. */
  anchorDir?: string;
  /**
   * --reset-anchor: this machine's anchor is replaced, whatever it holds (a damaged one fails closed), by one
   * that records the store's commit: the user trusts the store as it is (5.7).
   */
  resetAnchor?: boolean;
  /** Open a store older than its anchor (a backup restored on purpose). */
  acceptRollback?: boolean;
  /** A piece store in place of the store directory's (unit tests). */
  store?: PieceStore;
  /**
   * Seal full pieces on a worker thread (piece-offload.ts). Default: on for the store directory's own
   * store unless SVAULT_PIECE_WORKER=0; never with a replaced store (the worker opens the directory's).
   */
  pieceWorker?: boolean;
  /** How long a change may wait for its durable commit, in ms (`-o commit=SECONDS`); default 1 s. */
  commitWindowMs?: number;
  /** Every close and metadata change is made durable before the mount answers it (`-o sync`). */
  syncCommits?: boolean;
  /** Where a failed background commit is reported (it is retried), and a handle close() could not release. */
  log?: (line: string) => void;
  stats?: OpStats;
}

interface Handle {
  ino: number;
  of: OpenFile;
}

type StoreLock = { release: () => void; stale: boolean };
const NO_LOCK: StoreLock = { release: () => undefined, stale: false };

/**
 * A vault as fsck and info see it (Vault2.check(), fsck2-vault.ts): its metadata and table, its pieces and
 * blobs, and the store's path and config. Also what tests use to find a piece's blob.
 */
export interface Vault2Check {
  readonly md: Metadata2;
  readonly table: RecordTable;
  readonly pieces: Pick<Contents, 'pieceAddress' | 'chaffAddresses' | 'addChaff' | 'verifyPiece' | 'deleteDamagedPiece' | 'blobAddresses' | 'isChaffAt' | 'flushStore' | 'usage'>;
  readonly storeDir: string;
  readonly config: VaultConfig;
  /** The key that names metadata records (record-names.ts), for tests that damage one record on purpose. */
  readonly namesKey: Buffer;
  /** The address and chaff keys of epoch 0, for tests that compute 10.2's chaff addresses on their own. */
  readonly chaffKeys: { readonly address: Buffer; readonly chaff: Buffer };
}

function fail(errno: FsError['errno'], message: string): never {
  throw new FsError(errno, message);
}

/** The later of two times. */
function later(a: Timespec, b: Timespec): Timespec {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec >= b.nsec) ? a : b;
}

/** EINVAL for a size that is no size, EFBIG past what a file offset can be here. */
function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 0) fail('EINVAL', `size ${size}`);
  if (size > Number.MAX_SAFE_INTEGER) fail('EFBIG', `size ${size} is past the largest file size`);
}

/** Disk one changed record may take at its commit, at most about: its page in the WAL and in meta2.db, and a B-tree page. */
const COMMIT_BYTES_PER_RECORD = 3 * (PAGE_SIZE + 24);
/** And every commit: the state record, the B-trees' upper pages, the WAL's header. */
const COMMIT_BYTES_FIXED = 256 * 1024;
/** Free space past what the commit needs beyond which statfs is not asked again for a second. */
const PLENTY_BYTES = 64 * 1024 * 1024;

/**
 * Format2Content's room check (the ENOSPC before INLINE content grows): whether the disk of the store's
 * metadata has room for everything the next commit writes. statfs is asked at most once a second while
 * the disk has plenty of room, and at every check when it has not.
 */
function metadataRoom(s: Store2): () => void {
  let free = 0;
  let at = -Infinity;
  return () => {
    const need = COMMIT_BYTES_FIXED + s.md.unwrittenRecords * COMMIT_BYTES_PER_RECORD;
    const now = Date.now();
    if (now - at > 1000 || free - need < PLENTY_BYTES) {
      const fs = statfsSync(s.path);
      free = fs.bavail * fs.bsize;
      at = now;
    }
    if (free < need) fail('ENOSPC', `the store's disk has ${free} bytes free, and the metadata waiting for its commit needs about ${need}`);
  };
}

export class Vault2 implements MountableVault<number> {
  readonly format = 2;
  readonly ns: Namespace2;
  readonly inodes: InodeApi<number>;
  readonly paths: PathApi<number>;
  readonly stats: OpStats;
  /** `-o sync`: the transports make each close and metadata change durable before answering it. */
  readonly syncCommits: boolean;
  /** The last session ended without closing (a stale lock, or an unclean mark): orphan blobs may be left. */
  readonly recoveredFromCrash: boolean;
  /** Opened with inspectOnly: close() writes nothing but the unclean mark a crash found. */
  private readonly inspectOnly: boolean;
  private readonly contents: Contents;
  private readonly committer: Committer;
  private readonly handles = new Map<number, Handle>();
  private readonly log: (line: string) => void;
  /**
   * Data pieces of a closed file with a piece map, by its inode record: every change of a map comes with
   * a new record (a commit of the file sets its size and times), so a record's count never goes stale.
   * Saves walking a large file's map at each stat.
   */
  private readonly piecesOfRecord = new WeakMap<InodeRecord, number>();
  private nextHandle = 1;
  private closed = false;
  private crashCleaned = false;
  /** The commit the anchor records, as far as this session wrote it. */
  private anchoredAt = -1;

  private constructor(
    private readonly s: Store2,
    private readonly store: PieceStore,
    private readonly anchor: RollbackAnchor | null,
    private readonly lock: StoreLock,
    private readonly offload: PieceOffload | undefined,
    stats: OpStats,
    opts: Vault2Options,
  ) {
    this.stats = stats;
    this.syncCommits = opts.syncCommits ?? false;
    this.inspectOnly = opts.inspectOnly ?? false;
    this.log = opts.log ?? (() => undefined);
    this.recoveredFromCrash = lock.stale || hasUncleanMark(s.path);
    this.contents = new Contents({
      vaultId: s.vaultId,
      keys: s.keys,
      store,
      meta: new Format2Content(s.md, metadataRoom(s)),
      pieceSize: s.config.pieceSize,
      chaffRatio: s.config.chaffRatio,
      chaff: { scheme: 'derived', chaffKey: s.keys.chaff }, // 10.2: chaff lives and dies with its piece version
      stats,
      offload,
    });
    this.ns = new Namespace2(s.md, {
      isOpen: (ino) => this.contents.openState(contentId(ino)) !== undefined,
      gone: (inode, versions, open) => {
        // An open file lives on until its last close, which deletes its pieces (Contents.release).
        if (open) this.contents.openState(contentId(inode.ino))?.markUnlinked(inode);
        else if (versions.length > 0) this.contents.deletePiecesAfterCommit(inode.fileId, versions.map((v) => [v.index, v.version]));
      },
    });
    // The anchor follows every durable commit, so a copy of the store from before it is found out.
    const source = s.md.commitSource(() => this.saveAnchor());
    this.committer = new Committer(source, () => this.contents.makeStoredDurable(), opts.commitWindowMs ?? DEFAULT_COMMIT_MS, (err) =>
      this.log(`metadata commit failed (retried at the next one): ${err instanceof Error ? err.message : String(err)}`),
      stats,
    );
    const inodes = new Vault2Inodes({
      ns: this.ns,
      live: (ino) => this.live(ino),
      attrOf: (ino) => this.attrOf(ino),
      open: (ino) => this.openIno(ino),
      truncate: (ino, size) => this.truncateIno(ino, size),
      setOpenMtime: (ino, mtime) => this.contents.openState(contentId(ino))?.setMtime(msOfTimespec(mtime)),
    });
    this.inodes = inodes;
    this.paths = new Vault2Paths(inodes);
  }

  /** A new vault in `path` (absent or empty). */
  static async create(path: string, passphrase: string, settings: VaultSettings, opts: Vault2Options = {}): Promise<Vault2> {
    const s = createStore2(path, passphrase, settings, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    let lock: StoreLock;
    try {
      lock = opts.noLock ? NO_LOCK : acquireStoreLock(path);
    } catch (err) {
      s.close();
      throw err;
    }
    // A new vault is written whatever the options say: inspectOnly is open()'s.
    return Vault2.start(s, lock, opts.anchorDir ? new RollbackAnchor(opts.anchorDir, s.vaultId, s.keys.anchor) : null, { ...opts, inspectOnly: false });
  }

  /**
   * The vault in `path`. The store's commit is compared with this machine's anchor before anything is
   * written: an older store is a RollbackError unless acceptRollback. Only then is the opening commit made.
   */
  static async open(path: string, passphrase: string, opts: Vault2Options = {}): Promise<Vault2> {
    // The lock is taken as format 1 takes it: after the passphrase and the check that the store is writable.
    let lock = NO_LOCK;
    let s: Store2;
    try {
      s = openStore2(path, passphrase, { beforeMetadata: () => (lock = opts.noLock ? NO_LOCK : acquireStoreLock(path)) });
    } catch (err) {
      lock.release();
      throw err;
    }
    let anchor: RollbackAnchor | null;
    try {
      anchor = opts.anchorDir ? new RollbackAnchor(opts.anchorDir, s.vaultId, s.keys.anchor) : null;
      const store = anchoredCommit(s.md.state.commit);
      if (anchor && opts.resetAnchor) anchor.reset(store);
      const anchored = anchor?.read() ?? null;
      if (anchored && compareWithAnchor(store, anchored) === 'behind' && !opts.acceptRollback) {
        throw new RollbackError(path, store.commit, anchored.commit);
      }
      if (!opts.inspectOnly) s.md.reserve();
    } catch (err) {
      s.close();
      lock.release();
      throw err;
    }
    return Vault2.start(s, lock, anchor, opts);
  }

  /** The vault over an opened store: its piece store and worker, and the anchor moved to the store's commit. */
  private static async start(s: Store2, lock: StoreLock, anchor: RollbackAnchor | null, opts: Vault2Options): Promise<Vault2> {
    const stats = opts.stats ?? new OpStats();
    const store = directoryStoreStack(s.path, stats, opts.store);
    const useWorker = opts.store === undefined && (opts.pieceWorker ?? process.env.SVAULT_PIECE_WORKER !== '0');
    const { pieceSize, chaffRatio } = s.config;
    const chaff = { scheme: 'derived', chaffKey: s.keys.chaff } as const; // as the vault's Contents (10.2)
    const offload = useWorker ? new PieceOffload({ storeDir: s.path, vaultId: s.vaultId, addressKey: s.keys.address, pieceSize, chaffRatio, chaff }, stats) : undefined;
    try {
      const vault = new Vault2(s, store, anchor, lock, offload, stats, opts);
      vault.saveAnchor();
      return vault;
    } catch (err) {
      await offload?.close(); // its thread must not outlive the open
      store.close();
      s.close();
      lock.release();
      throw err;
    }
  }

  /**
   * Resolves once the piece worker is up (true), or has failed to start or is off (false). Until then
   * full pieces are sealed on this thread; nothing waits for it.
   */
  async pieceWorkerReady(): Promise<boolean> {
    await this.offload?.ready;
    return this.offload?.alive ?? false;
  }

  /**
   * After a crash: deletes the blobs nothing points to (pieces stored but never committed, versions a
   * lost commit superseded, and their chaff). A blob is kept when it is a piece a map points to or the
   * derived chaff of one (10.2: its addresses are computed from the piece), and while an upgrade is not
   * finished, when it is chaff by format 1's rule; `deleteFormat1Chaff` (--finish's step 4) deletes that
   * too, and counts it apart. Only from a walk that reached everything, and before anything is written in
   * this session; otherwise the store stays marked unclean for the next open or fsck.
   */
  async sweepOrphans(opts: { deleteFormat1Chaff?: boolean } = {}): Promise<{ removed: number; format1Chaff?: number; skipped?: string }> {
    const { upgradeStage } = this.s.md.state;
    // Between an upgrade and its --finish, format 1's superseded pieces are orphans to format 2 but what a
    // rollback needs; their versions cannot be told from their addresses, so nothing is swept until --finish.
    if (upgradeStage === 1) return { removed: 0, skipped: 'an upgrade is not finished: format 1\'s blobs are kept for a rollback until svault upgrade --finish' };
    const live = new Set<string>();
    const report = await fsck2(this.s.md, this.s.table, {
      verifyPiece: async (inode, index, version) => {
        live.add(this.contents.pieceAddress(inode, index, version).toString('hex'));
        for (const a of this.contents.chaffAddresses(inode, index, version)) live.add(a.toString('hex'));
      },
    });
    if (report.incomplete.length > 0) return { removed: 0, skipped: `${report.incomplete.join('; ')}: run svault fsck` };
    let removed = 0;
    let format1Chaff = 0;
    for await (const address of this.contents.blobAddresses()) {
      if (live.has(address.toString('hex'))) continue;
      // Format 1's chaff is chaff until --finish deletes it (4.4); after, it is an orphan as any other blob.
      const oldChaff = upgradeStage !== 0 && (await this.contents.isChaffAt(address));
      if (oldChaff && !opts.deleteFormat1Chaff) continue;
      await this.contents.deleteBlobAt(address);
      if (oldChaff) format1Chaff++;
      else removed++;
    }
    await this.store.flush();
    clearUncleanMark(this.s.path);
    this.crashCleaned = true;
    return opts.deleteFormat1Chaff ? { removed, format1Chaff } : { removed };
  }

  /** The vault's metadata, pieces and config as fsck and info may use them (see Vault2Check). */
  check(): Vault2Check {
    const { md, table, path: storeDir, config, keys } = this.s;
    return { md, table, pieces: this.contents, storeDir, config, namesKey: keys.names, chaffKeys: { address: keys.address, chaff: keys.chaff } };
  }

  // ---- inodes (the namespace itself is vault2-api.ts's) ----

  /** The inode, or ENOENT (Metadata2 calls a missing record damage: here it is an inode that went). */
  private live(ino: number): InodeRecord {
    return this.s.md.inode(ino) ?? fail('ENOENT', `inode ${ino} is gone`);
  }

  /** The inode, or for an open file that lost its last name, its record as it was then. */
  private recordOf(ino: number): InodeRecord {
    return this.contents.openState(contentId(ino))?.unlinkedRecord<InodeRecord>() ?? this.live(ino);
  }

  /** What stat shows: the inode, and for an open file its size and times as they stand (ahead of its commit). */
  private attrOf(ino: number): FsAttr {
    const of = this.contents.openState(contentId(ino));
    const inode = this.recordOf(ino);
    const size = of ? of.size : inode.type === FileType.directory ? this.s.md.directorySize(inode) : inode.size;
    // The inode's own time when it is the open file's to the millisecond: its nanoseconds are kept.
    const mtime = of && msOfTimespec(inode.mtime) !== of.mtime ? timespecOfMs(of.mtime) : inode.mtime;
    return {
      ino,
      mode: modeTypeBits(inode.type) | (inode.mode & 0o7777),
      uid: inode.uid,
      gid: inode.gid,
      nlink: of?.unlinked ? 0 : inode.nlink,
      rdev: inode.rdev,
      size,
      blocks: this.blocksOf(inode, size, of),
      blksize: this.s.config.pieceSize,
      atime: inode.atime,
      mtime,
      // A changed open file's content changed at its mtime, which its commit will set as ctime too.
      ctime: of?.changed ? later(inode.ctime, mtime) : inode.ctime,
    };
  }

  /**
   * st_blocks: the file's data pieces, whole, never more than its size (as format 1). A sparse file shows
   * fewer blocks than its size; an INLINE file, and any other type, its size in blocks.
   */
  private blocksOf(inode: InodeRecord, size: number, of: OpenFile | undefined): number {
    const full = Math.ceil(size / 512);
    if (inode.type !== FileType.regular) return full;
    const pieces = of ? new Set(of.data.indices()).size : this.storedPieces(inode);
    return pieces === undefined ? full : Math.min(full, pieces * (this.s.config.pieceSize / 512));
  }

  /** Data and quarantined pieces of a closed file's piece map; undefined for an INLINE file. */
  private storedPieces(inode: InodeRecord): number | undefined {
    const known = this.piecesOfRecord.get(inode);
    if (known !== undefined) return known;
    let count: number;
    try {
      const map = this.s.md.pieceMapIfAny(inode.ino);
      if (!map) return undefined;
      count = map.tree.lost;
      for (const _ of map.versions()) count++;
    } catch (err) {
      // A damaged map node: reading the file reports it; stat shows the size, and fsck finds the rest.
      if (err instanceof IntegrityError) return undefined;
      throw err;
    }
    this.piecesOfRecord.set(inode, count);
    return count;
  }

  private acquire(ino: number, inode: InodeRecord): OpenFile {
    return this.contents.acquire({ id: contentId(ino), fileId: inode.fileId }, () => storedContent2(this.s.md, ino));
  }

  /**
   * Opens a regular file. The kernel sends no OPEN for a FIFO or a socket (it handles them itself), and on
   * a `nodev` mount opening a device node fails before it reaches here: what else comes is EINVAL.
   */
  private openIno(ino: number): number {
    const inode = this.recordOf(ino); // an unlinked open file may be opened again (/proc/PID/fd)
    if (inode.type === FileType.directory) fail('EISDIR', `is a directory: inode ${ino}`);
    if (inode.type !== FileType.regular) fail('EINVAL', `not a regular file: inode ${ino}`);
    const fh = this.nextHandle++;
    this.handles.set(fh, { ino, of: this.acquire(ino, inode) });
    return fh;
  }

  /** truncate(2) by inode: committed as the close of a handle would. */
  private async truncateIno(ino: number, size: number): Promise<void> {
    const inode = this.recordOf(ino);
    if (inode.type === FileType.directory) fail('EISDIR', `is a directory: inode ${ino}`);
    if (inode.type !== FileType.regular) fail('EINVAL', `not a regular file: inode ${ino}`);
    checkSize(size);
    const of = this.acquire(ino, inode);
    try {
      await this.contents.truncate(of, size);
    } finally {
      await this.contents.release(of); // the last reference commits
    }
  }

  // ---- open files, by handle ----

  private handle(fh: number): Handle {
    return this.handles.get(fh) ?? fail('EBADF', `no open file ${fh}`);
  }

  /** Attributes of an open file, also once its last name is gone (nlink 0). */
  fgetattr(fh: number): FsAttr {
    return this.attrOf(this.handle(fh).ino);
  }

  idOfHandle(fh: number): number {
    return this.handle(fh).ino;
  }

  isOpen(id: number): boolean {
    return this.contents.openState(contentId(id)) !== undefined;
  }

  read(fh: number, target: Buffer, length: number, position: number): Promise<number> {
    return this.contents.read(this.handle(fh).of, target, length, position);
  }

  readView(fh: number, target: Buffer, length: number, position: number): Promise<Buffer> {
    return this.contents.readView(this.handle(fh).of, target, length, position);
  }

  write(fh: number, source: Buffer, position: number): Promise<number> {
    return this.contents.write(this.handle(fh).of, source, position);
  }

  /** ftruncate(2), committed at once as format 1's: a size change is not left to the close. */
  async ftruncate(fh: number, size: number): Promise<void> {
    const { of } = this.handle(fh);
    checkSize(size);
    await this.contents.truncate(of, size);
    await this.contents.commit(of);
  }

  /** close(2): commits the file, durable within the commit window (or at once under `-o sync`, by the transports' sync()). */
  async flush(fh: number): Promise<void> {
    const { of } = this.handle(fh);
    if (of.needsCommit) await this.contents.commit(of);
  }

  /** fsync(2): the file's content and every change before it are durable when this resolves. */
  async fsync(fh: number): Promise<void> {
    const { of } = this.handle(fh);
    if (of.needsCommit) await this.contents.commit(of);
    await this.sync();
  }

  /** The last close commits the file (within the window, as format 1's close). */
  async release(fh: number): Promise<void> {
    const { of } = this.handle(fh);
    this.handles.delete(fh);
    await this.contents.release(of);
  }

  /** lseek(2)'s SEEK_DATA and SEEK_HOLE, from the file's pieces as they stand, uncommitted ones included. */
  async seek(fh: number, offset: number, whence: SeekWhence): Promise<number> {
    const found = await this.contents.seek(this.handle(fh).of, offset, whence);
    return found ?? fail('ENXIO', whence === 'data' ? 'no data at or after the offset' : 'offset at or past the end of the file');
  }

  /**
   * fallocate(2), `mode` as Linux's flags, as format 1 does it: PUNCH_HOLE (with KEEP_SIZE) and ZERO_RANGE
   * zero the range and drop its whole pieces; mode 0 and KEEP_SIZE check that the store has room for the
   * range's holes (ENOSPC up front), and mode 0 extends the size. Committed like ftruncate. Section 9's
   * PREALLOCATED slots, which would hold the room, are not built yet: the room is checked, not kept.
   */
  async fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    await fallocateOpenFile(this.contents, this.handle(fh).of, mode, offset, length, { storeDir: this.s.path, pieceSize: this.s.config.pieceSize, chaffRatio: this.s.config.chaffRatio });
  }


  // ---- the whole vault ----

  /** statfs(2): the store's disk, and the live inodes (format 2's state record counts them) as files. */
  statfs(): FsStatfs {
    const fs = statfsSync(this.s.path);
    return { bsize: fs.bsize, frsize: fs.bsize, blocks: fs.blocks, bfree: fs.bfree, bavail: fs.bavail, files: this.s.md.state.liveInodes + fs.ffree, ffree: fs.ffree, namemax: NAME_MAX };
  }

  /** sync(2): every change so far durable (blobs, then metadata). */
  sync(): Promise<void> {
    return this.committer.commit();
  }

  /** sync(), and the blob deletions that waited on it done (tools and tests). */
  async settle(): Promise<void> {
    await this.committer.commit();
    await this.contents.settle();
  }

  openFileCount(): number {
    return this.contents.openCount();
  }

  /** Records the store's last durable commit in the rollback anchor; nothing is written when it has not moved. */
  saveAnchor(): void {
    const commit = this.s.md.state.commit;
    if (!this.anchor || commit === this.anchoredAt) return;
    this.anchor.write(anchoredCommit(commit));
    this.anchoredAt = commit;
  }

  /** Commits everything, checkpoints the metadata, moves the anchor, and lets go of the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fh of [...this.handles.keys()]) {
      try {
        await this.release(fh);
      } catch (err) {
        // The others are still released, and the commit below still runs.
        this.log(`closing open file ${fh} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    try {
      // A crash found at open and not swept: the next open sweeps.
      if (this.recoveredFromCrash && !this.crashCleaned) setUncleanMark(this.s.path);
      if (!this.inspectOnly) {
        await this.committer.commit();
        await this.contents.settle();
        await this.store.flush();
        this.s.table.checkpoint();
      }
    } finally {
      // Even when the last commit failed (a full disk), the store is released: the next open finds the
      // metadata as of the last commit that made it. The worker goes before the keys it was given are wiped.
      this.committer.stop();
      await this.offload?.close();
      this.s.close();
      this.store.close();
      this.lock.release();
    }
  }
}
