// src/core/vault: a vault opened (config, keys, store lock, rollback anchor) and its filesystem operations.
//
// The vault: a store directory opened with its passphrase. Filesystem operations by path, resolved here
// (with a path cache) and carried out by the namespace by inode (namespace.ts) and the contents engine
// (scatter and gather). FUSE-free: fs/ adapts it to FUSE.

import { existsSync, mkdirSync, readdirSync, statfsSync } from 'node:fs';
import { createConfig, readConfig, rewrapConfig, unwrapMasterKey, writeConfig, type VaultConfig, type VaultSettings } from './config.js';
import { Anchor, AnchorError, RollbackError } from './anchor.js';
import { Contents, type OpenFile } from '../contents/contents.js';
import { fallocateOpenFile } from '../contents/fallocate.js';
import type { SeekWhence } from '../contents/sparse.js';
import { deriveVaultKeys, wipeVaultKeys, type VaultKeys } from '../crypto/crypto.js';
import { BadStoreError, FsError } from '../errors.js';
import { newInode, ROOT_ID, type Inode, type Kind } from '../meta/inode.js';
import { Metadata } from '../meta/metadata.js';
import { Format1Content, storedContentOf } from '../meta/format1-content.js';
import { RecordStore } from '../meta/record-store.js';
import { OpStats } from '../util/op-stats.js';
import { PieceOffload } from '../contents/piece-offload.js';
import { checkName, fail, NAME_MAX, Namespace } from './namespace.js';
import { acquireStoreLock, requireWritableStore } from './store-lock.js';
import { clearUncleanMark, hasUncleanMark, setUncleanMark } from './unclean-mark.js';
import { Committer, DEFAULT_COMMIT_MS } from './committer.js';
import { directoryStoreStack, type PieceStore } from '../store/piece-store.js';

export const DEFAULT_PIECE_SIZE = 128 * 1024;
export const DEFAULT_CHAFF_RATIO = 0.1;
export { NAME_MAX, XATTR_SIZE_MAX } from './namespace.js';
const PATH_CACHE_LIMIT = 200_000;
/** Marks a store whose crash leftovers were not swept yet. */
export { UNCLEAN_FILE } from './unclean-mark.js';

export interface Attr {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  atime: number;
  mtime: number;
  ctime: number;
  blocks: number;
  blksize: number;
}

export interface OpenOptions {
  /** Replace the directory store, e.g. with a MemoryStore in unit tests. */
  store?: PieceStore;
  stats?: OpStats;
  /** Skip the store lock (read-only inspection such as `svault info`). */
  noLock?: boolean;
  /**
   * Opened to look, not to change (`svault fsck` without `--repair`): no piece versions are reserved, so
   * the metadata is left exactly as it was. Nothing may be written through such a vault.
   */
  inspectOnly?: boolean;
  /** Where rollback anchors live (outside the store); without it, no rollback check. */
  anchorDir?: string;
  /** Open a store older than its anchor (a backup restored on purpose), and move the anchor back. */
  acceptRollback?: boolean;
  /**
   * Seal full pieces on a worker thread (piece-offload.ts). Default: on for the local directory
   * store unless SVAULT_PIECE_WORKER=0 (to measure what it brings); never with a replaced store.
   */
  pieceWorker?: boolean;
  /** How long a change may wait for its durable commit, in ms (`-o commit=SECONDS`); default 1 s. */
  commitWindowMs?: number;
  /** Every close and metadata change is made durable before the mount answers it (`-o sync`). */
  syncCommits?: boolean;
  /** Where a failed background commit is reported (it is retried). */
  log?: (line: string) => void;
}

interface Handle {
  id: string;
  of: OpenFile;
}

/** Splits "/a/b/c" into its components, checking each name's length. */
function components(path: string): string[] {
  // libfuse gives absolute paths; "" stands for a file that has no path any more (unlinked while open,
  // its directory removed), and must never resolve to the root.
  if (!path.startsWith('/')) fail('ENOENT', 'the file has no path any more');
  const parts = path.split('/').filter((p) => p.length > 0);
  for (const p of parts) checkName(p);
  return parts;
}

function splitParent(path: string): { parent: string; name: string } {
  const parts = components(path);
  const name = parts.pop();
  if (name === undefined) fail('EBUSY', 'the root cannot be changed this way');
  return { parent: '/' + parts.join('/'), name };
}

/**
 * What fsck may do with a vault's metadata: walk it, name its records, and repair it. Narrower than
 * Metadata: the mount's paths go through the Vault's own operations instead.
 */
export type MetadataCheck = Pick<
  Metadata,
  | 'transaction' | 'getInode' | 'requireInode' | 'putInode' | 'lookup' | 'list' | 'addEntry' | 'removeEntry'
  | 'vaultRecordNames' | 'recordNamesOf' | 'entryRecordName' | 'pageRecordName' | 'inodeRecordName' | 'allRecordNames'
  | 'deleteRecord' | 'rebuildDirInode' | 'rewriteEntryRecord' | 'entryRecordAt' | 'readPageIfSound' | 'rewriteListing'
  | 'inodeRecordAt' | 'upgradeCounters'
>;

/** What fsck may do with a vault's pieces and blobs: check them, find orphans and chaff, delete. */
export type PieceCheck = Pick<
  Contents,
  'pieceAddress' | 'verifyPiece' | 'deleteDamagedPiece' | 'blobAddresses' | 'isChaffAt' | 'deleteBlobAt' | 'flushStore'
>;

/** A vault as fsck sees it (Vault.check()): also what tests use to damage a store on purpose. */
export interface VaultCheck {
  meta: MetadataCheck;
  pieces: PieceCheck;
}

export class Vault {
  readonly stats: OpStats;
  private readonly meta: Metadata;
  private readonly contents: Contents;
  /** The namespace by inode id, for a transport that works on inode numbers (the path methods use it too). */
  readonly byInode: Namespace;
  private readonly pathCache = new Map<string, { id: string; kind: Kind }>();
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private closed = false;
  /** The store's previous user died without closing it: orphaned blobs may be left (see sweepOrphans). */
  recoveredFromCrash = false;
  /** Set by whoever removed what the crash left (sweepOrphans, fsck --repair). */
  private crashCleaned = false;
  private anchor: Anchor | null = null;
  private readonly committer: Committer;
  /** `-o sync`: the transports make each close and metadata change durable before answering it. */
  readonly syncCommits: boolean;

  private constructor(
    readonly storeDir: string,
    readonly config: VaultConfig,
    private master: Buffer,
    /** Derived from the master key; wiped with it at close. */
    private readonly keys: VaultKeys,
    private readonly store: PieceStore,
    records: RecordStore,
    private readonly unlock: () => void,
    stats: OpStats,
    private readonly offload: PieceOffload | undefined,
    opts: OpenOptions,
  ) {
    this.stats = stats;
    this.meta = new Metadata(records, stats);
    this.syncCommits = opts.syncCommits ?? false;
    const vaultId = Buffer.from(config.vaultId, 'hex');
    this.contents = new Contents({
      vaultId,
      keys,
      store,
      meta: new Format1Content(this.meta),
      pieceSize: config.pieceSize,
      chaffRatio: config.chaffRatio,
      stats,
      offload,
    });
    this.byInode = new Namespace(this.meta, this.contents);
    const log = opts.log ?? (() => {});
    this.committer = new Committer(records, () => this.contents.makeStoredDurable(), opts.commitWindowMs ?? DEFAULT_COMMIT_MS, (err) =>
      log(`metadata commit failed (retried at the next one): ${err instanceof Error ? err.message : String(err)}`),
      stats,
    );
  }

  /** Creates a new vault in storeDir (which must be missing or empty) and returns it opened. */
  static async create(storeDir: string, passphrase: string, settings: Partial<VaultSettings> = {}, opts: OpenOptions = {}): Promise<Vault> {
    if (existsSync(storeDir) && readdirSync(storeDir).length > 0) {
      throw new BadStoreError(storeDir, 'the store directory is not empty; a new vault needs an empty or missing directory');
    }
    mkdirSync(storeDir, { recursive: true, mode: 0o700 });
    const { config } = createConfig(passphrase, {
      pieceSize: settings.pieceSize ?? DEFAULT_PIECE_SIZE,
      chaffRatio: settings.chaffRatio ?? DEFAULT_CHAFF_RATIO,
    });
    writeConfig(storeDir, config);
    const vault = await Vault.open(storeDir, passphrase, opts);
    vault.meta.transaction(() => {
      const root = newInode('dir', 0o755, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
      root.id = ROOT_ID;
      root.ino = vault.meta.allocIno();
      vault.meta.putInode(root);
    });
    await vault.sync();
    return vault;
  }

  /** Opens an existing vault. Wrong passphrase: WrongPassphraseError, and nothing in the store is written. */
  static async open(storeDir: string, passphrase: string, opts: OpenOptions = {}): Promise<Vault> {
    const config = readConfig(storeDir);
    const master = unwrapMasterKey(config, passphrase, storeDir);
    requireWritableStore(storeDir);
    const lock = opts.noLock ? { release: () => {}, stale: false } : acquireStoreLock(storeDir);
    const unlock = lock.release;
    let offload: PieceOffload | undefined;
    let store: PieceStore | undefined;
    try {
      const vaultId = Buffer.from(config.vaultId, 'hex');
      const keys = deriveVaultKeys(master, vaultId);
      const stats = opts.stats ?? new OpStats();
      store = directoryStoreStack(storeDir, stats, opts.store);
      const records = new RecordStore(storeDir, keys.meta, keys.index, vaultId);
      const useWorker = opts.store === undefined && (opts.pieceWorker ?? process.env.SVAULT_PIECE_WORKER !== '0');
      offload = useWorker
        ? new PieceOffload({ storeDir, vaultId, addressKey: keys.address, pieceSize: config.pieceSize, chaffRatio: config.chaffRatio }, stats)
        : undefined;
      const vault = new Vault(storeDir, config, master, keys, store, records, unlock, stats, offload, opts);
      // A crash is remembered until someone sweeps: a plain fsck in between must not make it forgotten.
      vault.recoveredFromCrash = lock.stale || hasUncleanMark(storeDir);
      if (opts.anchorDir) {
        const anchor = new Anchor(opts.anchorDir, vaultId, master);
        let known: number | null;
        try {
          known = anchor.read();
        } catch (err) {
          if (!(err instanceof AnchorError) || !opts.acceptRollback) {
            records.close();
            throw err;
          }
          known = null; // accepted: recorded anew below
        }
        if (known !== null && known > vault.meta.generation && !opts.acceptRollback) {
          records.close();
          throw new RollbackError(storeDir, vault.meta.generation, known);
        }
        if (opts.acceptRollback && known !== null && known > vault.meta.generation) anchor.reset(vault.meta.generation);
        anchor.save(vault.meta.generation);
        vault.anchor = anchor;
      }
      if (!opts.noLock && !opts.inspectOnly) {
        // Past every piece version the last session may have used, even in changes a crash lost.
        vault.meta.reserveVersions();
        records.flush(); // nothing else is staged yet, and no blob is in flight
      }
      return vault;
    } catch (err) {
      await offload?.close(); // whatever failed after it started: its thread must not outlive the open
      store?.close();
      unlock();
      throw err;
    }
  }

  /** Rewraps the master key under a new passphrase; pieces and metadata are untouched. */
  changePassphrase(newPassphrase: string): void {
    const config = rewrapConfig(readConfig(this.storeDir), this.master, newPassphrase);
    writeConfig(this.storeDir, config);
  }

  /**
   * Resolves once the piece worker is up (true), or has failed to start or is off (false). Until then
   * full pieces are sealed on this thread, as without the worker; nothing waits for it.
   */
  async pieceWorkerReady(): Promise<boolean> {
    await this.offload?.ready;
    return this.offload?.alive ?? false;
  }

  get pieceSize(): number {
    return this.config.pieceSize;
  }

  // ---- path resolution ----

  /**
   * The inode id at a path. Every directory on the way is cached too, so a new name deep in a tree
   * costs one lookup, not one per component. This mount is the store's only writer, so the cache is
   * kept exact by forgetting paths as they change.
   */
  resolveId(path: string): string {
    return this.resolveEntry('/' + components(path).join('/')).id;
  }

  /** `path` must be canonical ("/" or "/a/b"). */
  private resolveEntry(path: string): { id: string; kind: Kind } {
    const cached = this.pathCache.get(path);
    if (cached) return cached;
    if (path === '/') return { id: ROOT_ID, kind: 'dir' };
    const cut = path.lastIndexOf('/');
    const parentPath = cut === 0 ? '/' : path.slice(0, cut);
    const parent = this.resolveEntry(parentPath);
    if (parent.kind !== 'dir') fail('ENOTDIR', `not a directory: ${parentPath}`);
    const e = this.meta.lookup(parent.id, path.slice(cut + 1)) ?? fail('ENOENT', `no such file or directory: ${path}`);
    if (this.pathCache.size > PATH_CACHE_LIMIT) this.pathCache.clear();
    const entry = { id: e.id, kind: e.kind };
    this.pathCache.set(path, entry);
    return entry;
  }

  inodeAt(path: string): Inode {
    return this.meta.requireInode(this.resolveId(path));
  }

  private dirAt(path: string): Inode {
    const dir = this.inodeAt(path);
    if (dir.kind !== 'dir') fail('ENOTDIR', `not a directory: ${path}`);
    return dir;
  }

  /** The directory a path's last name is in, and that name. */
  private parentOf(path: string): { dir: Inode; name: string } {
    const { parent, name } = splitParent(path);
    return { dir: this.dirAt(parent), name };
  }

  /** Forgets a changed path; a directory's whole subtree goes too (rename of a directory). */
  private forgetPath(path: string, isDir: boolean): void {
    const key = '/' + components(path).join('/');
    this.pathCache.delete(key);
    if (!isDir) return;
    const prefix = key + '/';
    for (const p of this.pathCache.keys()) if (p.startsWith(prefix)) this.pathCache.delete(p);
  }

  // ---- attributes ----

  attrOf(inode: Inode): Attr {
    const of = this.contents.openState(inode.id);
    const size = of ? of.size : inode.size;
    const mtime = of ? of.mtime : inode.mtime;
    return {
      ino: inode.ino,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      size,
      nlink: inode.nlink,
      atime: inode.atime,
      mtime,
      ctime: Math.max(inode.ctime, of?.changed ? mtime : 0),
      blocks: this.blocksOf(inode, size, of),
      blksize: this.pieceSize,
    };
  }

  /**
   * st_blocks: the file's data pieces, whole, never more than its size. A sparse file shows fewer blocks
   * than its size: copying tools (cp, tar --sparse, rsync -S) look for its holes only then.
   */
  private blocksOf(inode: Inode, size: number, of: OpenFile | undefined): number {
    const full = Math.ceil(size / 512);
    if (inode.kind !== 'file') return full;
    const pieces = of ? new Set(of.data.indices()).size : inode.pieces.size + inode.lost.length;
    return Math.min(full, pieces * (this.pieceSize / 512));
  }

  getattr(path: string): Attr {
    return this.attrOf(this.inodeAt(path));
  }

  fgetattr(fh: number): Attr {
    const { id, of } = this.handle(fh);
    return this.attrOf(of.unlinkedRecord<Inode>() ?? this.meta.requireInode(id));
  }

  /** Whether a file has open handles (or a truncate in progress). */
  isOpen(id: string): boolean {
    return this.contents.openState(id) !== undefined;
  }

  /** The inode id a path names (the adapter uses it to follow a file that is about to lose its name). */
  idAt(path: string): string {
    return this.inodeAt(path).id;
  }

  /**
   * Attributes of a file that lost a name while open, by inode id: the inode while it has other names,
   * the open file's last state once it has none; ENOENT when it is gone.
   */
  unlinkedAttr(id: string): Attr {
    const inode = this.contents.openState(id)?.unlinkedRecord<Inode>() ?? this.meta.getInode(id) ?? fail('ENOENT', 'the unlinked file is gone');
    return this.attrOf(inode);
  }

  readdir(path: string): string[] {
    return this.meta.list(this.dirAt(path)).map((e) => e.name);
  }

  // ---- by inode (a transport that works on inode numbers uses these, and `namespace`) ----

  /** Attributes of an inode by id, with an open file's size and times ahead of its record. */
  attrOfInode(id: string): Attr {
    // A node the kernel still holds may stand for an inode whose last name and handle are gone: ENOENT.
    return this.attrOf(this.contents.openState(id)?.unlinkedRecord<Inode>() ?? this.meta.getInode(id) ?? fail('ENOENT', `inode ${id} is gone`));
  }

  /** Opens a file by inode id; the handle works as one from open(path). */
  openInode(id: string): number {
    const inode = this.byInode.inode(id);
    if (inode.kind === 'dir') fail('EISDIR', `is a directory: inode ${id}`);
    return this.newHandle(inode);
  }

  /** Creates and opens a new file as `name` in directory `dirId`. */
  createIn(dirId: string, name: string, mode: number, uid: number, gid: number): { inode: Inode; fh: number } {
    const inode = this.byInode.createFile(dirId, name, mode, uid, gid);
    const fh = this.newHandle(inode);
    return { inode, fh };
  }

  /** truncate(2) by inode id. */
  async truncateInode(id: string, size: number): Promise<void> {
    const inode = this.byInode.inode(id);
    if (inode.kind === 'dir') fail('EISDIR', `is a directory: inode ${id}`);
    if (size < 0) fail('EINVAL', 'negative size');
    const of = this.contents.acquire(inode, () => storedContentOf(inode));
    try {
      await this.contents.truncate(of, size);
    } finally {
      await this.contents.release(of);
    }
  }

  // ---- namespace (by path: resolved here, changed by the namespace by inode) ----

  mkdir(path: string, mode: number, uid = 0, gid = 0): void {
    const { dir, name } = this.parentOf(path);
    this.byInode.mkdir(dir.id, name, mode, uid, gid);
  }

  symlink(target: string, path: string, uid = 0, gid = 0): void {
    const { dir, name } = this.parentOf(path);
    this.byInode.symlink(dir.id, name, target, uid, gid);
  }

  readlink(path: string): string {
    return this.byInode.readlink(this.inodeAt(path).id);
  }

  /** Unlinks a name; drops the inode (and, after the commit, its pieces) when no name and no handle remain. */
  unlink(path: string): void {
    const { dir, name } = this.parentOf(path);
    this.byInode.unlink(dir.id, name);
    this.forgetPath(path, false);
  }

  rmdir(path: string): void {
    const { dir, name } = this.parentOf(path);
    this.byInode.rmdir(dir.id, name);
    this.forgetPath(path, false); // empty: nothing below it is cached
  }

  /** rename(2): files and whole directories, replacing an existing target as POSIX says. */
  rename(from: string, to: string): void {
    const fromNorm = '/' + components(from).join('/');
    const toNorm = '/' + components(to).join('/');
    if (fromNorm === toNorm) {
      this.inodeAt(from);
      return;
    }
    if (toNorm.startsWith(fromNorm + '/')) fail('EINVAL', `cannot move a directory into itself: ${from} -> ${to}`);
    const src = this.parentOf(from);
    const dst = this.parentOf(to);
    const done = this.byInode.rename(src.dir.id, src.name, dst.dir.id, dst.name);
    if (!done) return;
    this.forgetPath(from, done.moved.kind === 'dir');
    this.forgetPath(to, done.replaced?.kind === 'dir');
  }

  link(existing: string, path: string): void {
    const inode = this.inodeAt(existing);
    const { dir, name } = this.parentOf(path);
    this.byInode.link(inode.id, dir.id, name);
  }

  chmod(path: string, mode: number): void {
    this.byInode.chmod(this.inodeAt(path).id, mode);
  }

  chown(path: string, uid: number, gid: number): void {
    this.byInode.chown(this.inodeAt(path).id, uid, gid);
  }

  /** Sets times in ms; undefined leaves a time as it is (UTIME_OMIT). */
  utimens(path: string, atime: number | undefined, mtime: number | undefined): void {
    this.byInode.utimens(this.inodeAt(path).id, atime, mtime);
  }

  // ---- extended attributes (sealed with the inode record) ----

  setxattr(path: string, name: string, value: Buffer, flags: number): void {
    this.byInode.setxattr(this.inodeAt(path).id, name, value, flags);
  }

  getxattr(path: string, name: string): Buffer {
    return this.byInode.getxattr(this.inodeAt(path).id, name);
  }

  listxattr(path: string): string[] {
    return this.byInode.listxattr(this.inodeAt(path).id);
  }

  removexattr(path: string, name: string): void {
    this.byInode.removexattr(this.inodeAt(path).id, name);
  }

  // ---- file contents ----

  private handle(fh: number): Handle {
    return this.handles.get(fh) ?? fail('EBADF', `bad file handle ${fh}`);
  }

  /** The inode id of the file an open handle refers to (it outlives renames and the unlink of its names). */
  idOfHandle(fh: number): string {
    return this.handle(fh).id;
  }

  private newHandle(inode: Inode): number {
    const fh = this.nextHandle++;
    this.handles.set(fh, { id: inode.id, of: this.contents.acquire(inode, () => storedContentOf(inode)) });
    return fh;
  }

  create(path: string, mode: number, uid = 0, gid = 0): number {
    const { dir, name } = this.parentOf(path);
    return this.createIn(dir.id, name, mode, uid, gid).fh;
  }

  open(path: string): number {
    const inode = this.inodeAt(path);
    if (inode.kind === 'dir') fail('EISDIR', `is a directory: ${path}`);
    return this.newHandle(inode);
  }

  read(fh: number, target: Buffer, length: number, position: number): Promise<number> {
    return this.contents.read(this.handle(fh).of, target, length, position);
  }

  /**
   * read() for a reply that is only sent on: the bytes read into `target`, or, for a range wholly in
   * holes, a view of shared zeros (read-only), so a hole costs no filling.
   */
  readView(fh: number, target: Buffer, length: number, position: number): Promise<Buffer> {
    return this.contents.readView(this.handle(fh).of, target, length, position);
  }

  write(fh: number, source: Buffer, position: number): Promise<number> {
    return this.contents.write(this.handle(fh).of, source, position);
  }

  /**
   * close(2): commits the file's content, ordered after every change before it. Durable within the
   * commit window, or before this returns under `-o sync` (the transports call sync() then).
   */
  async flush(fh: number): Promise<void> {
    const of = this.handle(fh).of;
    if (of.needsCommit) await this.contents.commit(of);
  }

  /** fsync(2): the file's content and every change before it are durable when this returns. */
  async fsync(fh: number): Promise<void> {
    const of = this.handle(fh).of;
    if (of.needsCommit) await this.contents.commit(of);
    await this.sync();
  }

  async release(fh: number): Promise<void> {
    const h = this.handle(fh);
    this.handles.delete(fh);
    await this.contents.release(h.of);
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const of = this.handle(fh).of;
    await this.contents.truncate(of, size);
    await this.contents.commit(of);
  }

  /**
   * lseek(2) with SEEK_DATA (`data`) or SEEK_HOLE (`hole`) on an open file, from its piece map as it
   * stands, written-but-uncommitted pieces included. ENXIO at or past the end, as lseek(2) says.
   */
  async seek(fh: number, offset: number, whence: SeekWhence): Promise<number> {
    const found = await this.contents.seek(this.handle(fh).of, offset, whence);
    return found ?? fail('ENXIO', whence === 'data' ? 'no data at or after the offset' : 'offset at or past the end of the file');
  }

  /**
   * fallocate(2) on an open file, `mode` as Linux's flags. PUNCH_HOLE (with KEEP_SIZE) and ZERO_RANGE
   * zero the range and drop its whole pieces. Mode 0 and KEEP_SIZE check that the store has room for
   * the range's holes (ENOSPC up front), and mode 0 extends the size; format 1 has nowhere to record
   * the allocation, so the room is not held (docs/format-2.md, section 9). Committed like ftruncate.
   */
  async fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    await fallocateOpenFile(this.contents, this.handle(fh).of, mode, offset, length, { storeDir: this.storeDir, pieceSize: this.pieceSize, chaffRatio: this.config.chaffRatio });
  }


  async truncate(path: string, size: number): Promise<void> {
    await this.truncateInode(this.inodeAt(path).id, size);
  }

  /** Reads a whole file (for tools and tests, not for the mount's hot path). */
  async readFile(path: string): Promise<Buffer> {
    const fh = this.open(path);
    try {
      const size = this.fgetattr(fh).size;
      const buf = Buffer.alloc(size);
      const n = await this.read(fh, buf, size, 0);
      return buf.subarray(0, n);
    } finally {
      await this.release(fh);
    }
  }

  async writeFile(path: string, data: Buffer, mode = 0o644): Promise<void> {
    let fh: number;
    try {
      fh = this.open(path);
      await this.ftruncate(fh, 0);
    } catch (err) {
      if (!(err instanceof FsError) || err.errno !== 'ENOENT') throw err;
      fh = this.create(path, mode);
    }
    try {
      await this.write(fh, data, 0);
      await this.flush(fh);
    } finally {
      await this.release(fh);
    }
  }

  // ---- whole vault ----

  /** The vault's metadata and pieces as fsck may use them (see VaultCheck). */
  check(): VaultCheck {
    return { meta: this.meta, pieces: this.contents };
  }

  /** How much the store holds: blobs (pieces, chaff, orphans) and the metadata database's bytes. */
  async usage(): Promise<{ blobs: number; blobBytes: number; metadataBytes: number }> {
    const blobs = await this.contents.usage();
    return { blobs: blobs.blobs, blobBytes: blobs.bytes, metadataBytes: this.meta.records.sizeBytes() };
  }

  /** Files with open handles (or a truncate in progress), for `svault status`. */
  openFileCount(): number {
    return this.contents.openCount();
  }

  /** Makes every change so far durable: blobs, then metadata (fsync of a directory, syncfs, `-o sync`). */
  sync(): Promise<void> {
    return this.committer.commit();
  }

  statfs(): { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number } {
    const s = statfsSync(this.storeDir);
    const files = this.meta.records.count();
    return {
      bsize: s.bsize,
      frsize: s.bsize,
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: files + s.ffree,
      ffree: s.ffree,
      namemax: NAME_MAX,
    };
  }

  kindOf(path: string): Kind {
    return this.inodeAt(path).kind;
  }

  /** Records that the orphans a crash left are gone (sweepOrphans, or a complete fsck --repair). */
  markCrashCleaned(): void {
    this.crashCleaned = true;
    clearUncleanMark(this.storeDir);
  }

  /** Commits every change so far and waits for the blob deletions that were waiting on it. */
  async settle(): Promise<void> {
    await this.committer.commit();
    await this.contents.settle();
  }

  /** Records the current metadata generation in the rollback anchor (cheap when nothing changed). */
  saveAnchor(): void {
    this.anchor?.save(this.meta.flushedGeneration);
  }

  /** Commits every open file, checkpoints the metadata and releases the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fh of [...this.handles.keys()]) {
      try {
        await this.release(fh);
      } catch {
        /* keep closing the rest; the error was logged by the caller's handler */
      }
    }
    try {
      if (this.recoveredFromCrash && !this.crashCleaned) setUncleanMark(this.storeDir);
      await this.settle();
      await this.store.flush(); // the deletions the last commits made are durable too (the shards fsynced)
      this.meta.records.close(); // nothing is staged now: the anchor may record what SQLite holds
      this.saveAnchor();
    } finally {
      // Even when the last commit failed (a full disk), the store is released: the error is reported,
      // and the next open finds the metadata as of the last commit that made it.
      this.committer.stop();
      this.meta.records.abandon();
      // Wiped where JS allows: these buffers are the only copies this process keeps (the worker's copy of
      // the address key goes with its thread). Strings (the passphrase) cannot be wiped; see README.
      this.master.fill(0);
      wipeVaultKeys(this.keys);
      await this.offload?.close();
      this.store.close();
      this.unlock();
    }
  }
}
