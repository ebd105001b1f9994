// Format 2's metadata of one vault (docs/format-2.md 5, 6 and 17): inodes by number, directory entries,
// piece maps, inline content, symlink targets and xattrs, over meta2.db. This is what the vault's
// namespace and contents layers call once format 2 is wired in.
//
// Operations change decoded state in memory and mark what they changed; nothing is sealed while they run.
// A commit is cut() (the next commit number, every changed record sealed at it, bottom-up: piece maps,
// directories and spills, then inodes, then the inode table and the state record), then written in one
// SQLite transaction once the blobs the cut points to are durable (write), or abandoned. The caller (the
// committer) orders that; commitNow() does both for tools and tests that store no blobs.

import { FsError, IntegrityError } from '../errors.js';
import type { CommitSource } from '../vault/committer.js';
import { CommitBatcher, type FrozenBatch, type RecordWriter } from './commit-batch.js';
import type { DirEntry } from './dir-records.js';
import { attributeProblem, FileType, INLINE_MAX, modeTypeBits, placeSymlinkTarget, placeXattrs, ROOT_INO, type InodeRecord, type Primary, type Timespec } from './inode-record.js';
import { InodeStore } from './inode-store.js';
import type { Format2Keys } from './keys.js';
import { DirectoryOwner, newFileId, PieceMapOwner, SpillOwner, type OwnerContext } from './owners.js';
import { bucketRecordName, inodeRecordName, mapNodeRecordName, spillRecordName, stateRecordName } from './record-names.js';
import { RecordSealer } from './record-seal.js';
import type { RecordTable } from './record-table.js';
import type { Xattr } from './spill-records.js';
import type { StateRecord, UpgradeStage } from './state-record.js';
import { StateRoot } from './state-root.js';
import { VersionCounter } from './version-counter.js';

export interface Metadata2Options {
  keys: Pick<Format2Keys, 'record' | 'names' | 'dirhash' | 'chaff'>;
  vaultId: Buffer;
  pieceSize: number;
  /** Metadata chaff records per inode, on average (5.9): the vault's chaff ratio. */
  chaffRatio: number;
  /** Clean inodes kept decoded. */
  inodeCacheLimit?: number;
  /** Clean directories, piece maps and spills kept decoded, of each kind. */
  ownerCacheLimit?: number;
}

/** What a new inode is made of; everything else starts empty (a file INLINE with no bytes, a directory with no entries). */
export interface NewInode {
  type: FileType;
  /** Permission bits (and setuid, setgid, sticky); the type bits come from `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Directory of its first link; 0 for the root only. */
  parentIno: number;
  time: Timespec;
  /** mknod's rdev, for devices. */
  rdev?: number;
  /** A symlink's target, 1 to 4,095 bytes. */
  target?: Buffer;
}

/** The fields of an inode its attribute changes may set; the rest belong to its owners (content, entries, spill). */
export type InodeAttributes = Pick<InodeRecord, 'parentIno' | 'mode' | 'uid' | 'gid' | 'nlink' | 'size' | 'atime' | 'mtime' | 'ctime'>;

const DEFAULT_OWNER_CACHE_LIMIT = 2_000;
/** Commit numbers newPieceVersion leaves to the cuts, so that a commit can always be cut. */
const NUMBERS_KEPT_FOR_CUTS = 16;

type Owner = PieceMapOwner | DirectoryOwner | SpillOwner;

/** Owners of one kind, by ino: changed ones stay until their commit is confirmed, clean ones up to a limit. */
class OwnerCache<T extends { ino: number }> {
  private readonly held = new Map<number, T>();
  constructor(private readonly limit: number) {}

  get(ino: number): T | undefined {
    const owner = this.held.get(ino);
    if (owner) {
      this.held.delete(ino); // most recently used last
      this.held.set(ino, owner);
    }
    return owner;
  }

  add(owner: T): T {
    this.held.set(owner.ino, owner);
    return owner;
  }

  delete(ino: number): void {
    this.held.delete(ino);
  }

  /** Forgets the least recently used owners past the limit that `busy` does not hold. */
  trim(busy: (owner: T) => boolean): void {
    let excess = this.held.size - this.limit;
    for (const [ino, owner] of this.held) {
      if (excess <= 0) break;
      if (busy(owner)) continue;
      this.held.delete(ino);
      excess--;
    }
  }
}

export class Metadata2 {
  private readonly ctx: OwnerContext;
  private readonly maps: OwnerCache<PieceMapOwner>;
  private readonly directories: OwnerCache<DirectoryOwner>;
  private readonly spills: OwnerCache<SpillOwner>;
  /** Owners handed out or changed since the last confirmed write that left them clean: never evicted. */
  private readonly busy = new Set<Owner>();
  /** Owners of removed inodes: dropped from the caches once the removal is confirmed. */
  private readonly removedIn = new Map<Owner, () => void>();
  /** The state record's fields changed with nothing else: the next commit must still be cut. */
  private stateChanged = false;
  /** The opening commit is written (reserve()). */
  private reserved = false;
  private onStateChange: () => void = () => {};
  /** What waits for changes not cut yet, and for the outstanding cut: run once it is written (whenDurable). */
  private waiting: (() => void)[] = [];
  private waitingOnCut: (() => void)[] = [];

  private constructor(
    private readonly table: RecordTable,
    private readonly root: StateRoot,
    private readonly counter: VersionCounter,
    private readonly batcher: CommitBatcher,
    readonly inodes: InodeStore,
    sealer: RecordSealer,
    private readonly o: Metadata2Options,
  ) {
    this.ctx = { names: o.keys.names, dirhash: o.keys.dirhash, sealer, reader: table, inodes, batcher };
    const limit = o.ownerCacheLimit ?? DEFAULT_OWNER_CACHE_LIMIT;
    this.maps = new OwnerCache(limit);
    this.directories = new OwnerCache(limit);
    this.spills = new OwnerCache(limit);
  }

  private static assemble(table: RecordTable, o: Metadata2Options, open: (sealer: RecordSealer) => { root: StateRoot; counter: VersionCounter }): Metadata2 {
    const sealer = new RecordSealer(o.keys.record, o.vaultId);
    const { root, counter } = open(sealer);
    const writer: RecordWriter = { apply: (changes, durable) => table.apply(changes, durable) };
    const batcher = new CommitBatcher(writer, sealer, () => counter.take(), root);
    const inodes = new InodeStore({ names: o.keys.names, chaffKey: o.keys.chaff, chaffRatio: o.chaffRatio, sealer, reader: table, root, batcher, pieceSize: o.pieceSize, cacheLimit: o.inodeCacheLimit });
    return new Metadata2(table, root, counter, batcher, inodes, sealer, o);
  }

  /**
   * A new vault's metadata in an empty meta2.db: the opening commit, then the root directory, committed.
   * `firstCommit` is where the counter starts: 1 for a new vault, H0 for an upgrade (4.4), above every
   * piece version format 1 may have used.
   */
  static create(table: RecordTable, o: Metadata2Options, rootDir: { mode: number; uid: number; gid: number; time: Timespec }, firstCommit = 1): Metadata2 {
    const counter = new VersionCounter(firstCommit);
    const md = Metadata2.assemble(table, o, (sealer) => ({ root: StateRoot.create(o.keys.names, sealer, table, counter), counter })).reserve();
    const ino = md.inodes.allocateIno();
    if (ino !== ROOT_INO) throw new Error(`the root directory got ino ${ino}`);
    md.addInode(ino, { type: FileType.directory, parentIno: 0, ...rootDir });
    md.commitNow();
    return md;
  }

  /**
   * The metadata as meta2.db holds it: the state record opened at the version it claims, and nothing
   * written. The caller checks `state.commit` against the rollback anchor, then calls reserve() before any
   * change; a tool that only reads (fsck without --repair, info) never does, and writes nothing.
   */
  static open(table: RecordTable, o: Metadata2Options): Metadata2 {
    return Metadata2.assemble(table, o, (sealer) => StateRoot.open(o.keys.names, sealer, table, (reservedUpTo) => new VersionCounter(reservedUpTo)));
  }

  /**
   * The opening commit (section 11): the state record alone, at the one number no earlier session used,
   * reserving the first block of versions. Until it, no piece version or commit can be had. Once only.
   */
  reserve(): this {
    if (!this.reserved) {
      this.batcher.write(this.batcher.cut(this.counter.openingCommit()));
      this.reserved = true;
    }
    return this;
  }

  /** Bytes of a piece in this vault. */
  get pieceSize(): number {
    return this.o.pieceSize;
  }

  /** The state record as the last confirmed commit wrote it. */
  get state(): StateRecord {
    return this.root.state;
  }

  // ---- inodes ----

  inode(ino: number): InodeRecord | null {
    return this.inodes.get(ino);
  }

  requireInode(ino: number): InodeRecord {
    return this.inodes.require(ino);
  }

  /** Makes a new inode, not linked anywhere yet (link() does that). */
  createInode(init: NewInode): InodeRecord {
    if (init.parentIno < ROOT_INO) throw new RangeError(`a new inode's parent is ${init.parentIno}`);
    return this.addInode(this.inodes.allocateIno(), init);
  }

  private addInode(ino: number, init: NewInode, fileId = newFileId()): InodeRecord {
    const { type } = init;
    if ((type === FileType.symlink) !== (init.target !== undefined)) throw new RangeError('a symlink, and only a symlink, has a target');
    if ((init.rdev ?? 0) !== 0 && type !== FileType.charDevice && type !== FileType.blockDevice) throw new RangeError(`rdev for type ${type}`);
    let primary: Primary = { form: 'none' };
    let spilledTarget: Buffer | undefined;
    if (type === FileType.regular) primary = { form: 'inline', content: Buffer.alloc(0) };
    else if (type === FileType.directory) primary = { form: 'entries', entries: Buffer.alloc(0) };
    else if (init.target) ({ primary, spilledTarget } = placeSymlinkTarget(init.target));
    const inode: InodeRecord = {
      ino,
      parentIno: init.parentIno,
      fileId,
      type,
      mode: (init.mode & 0o7777) | modeTypeBits(type),
      uid: init.uid,
      gid: init.gid,
      nlink: type === FileType.directory ? 2 : 1,
      rdev: init.rdev ?? 0,
      size: init.target?.length ?? 0,
      atime: init.time,
      mtime: init.time,
      ctime: init.time,
      count: 0,
      hasLost: false,
      primary,
      xattrs: [],
      spill: undefined,
    };
    this.inodes.add(inode);
    if (spilledTarget) {
      const spill = this.spillOf(inode);
      spill.set({ target: spilledTarget, xattrs: [] });
      this.changedOwner(spill);
    }
    return inode;
  }

  /**
   * Adds an inode under the ino and fileId it had in format 1 (`svault upgrade`, 4.4): a file keeps its
   * fileId, so its pieces keep their addresses. Starts empty, as createInode's; link() and the content
   * calls fill it. The state's nextIno is moved past it.
   */
  importInode(init: NewInode & { ino: number; fileId: Buffer; nlink: number; atime: Timespec; mtime: Timespec; ctime: Timespec }): InodeRecord {
    if (this.inodes.get(init.ino) !== null) throw new Error(`inode ${init.ino} exists already`);
    const fields = this.root.fields;
    if (fields.nextIno <= init.ino) this.root.fields = { ...fields, nextIno: init.ino + 1 };
    const inode = this.addInode(init.ino, init, init.fileId);
    return this.setAttributes(inode.ino, () => ({ nlink: init.nlink, atime: init.atime, mtime: init.mtime, ctime: init.ctime }));
  }

  /**
   * Sets the state record's counts and cursors the upgrade owns (4.4): nextIno as format 1 had it,
   * legacyBelow and upgradeStage at the conversion; upgradeStage and finishCursor as --finish goes.
   */
  setUpgradeState(state: { nextIno?: number; legacyBelow?: number; upgradeStage?: UpgradeStage; finishCursor?: number }): void {
    const fields = this.root.fields;
    if (state.nextIno !== undefined && state.nextIno < fields.nextIno) throw new RangeError(`nextIno ${state.nextIno} is below inodes already made (${fields.nextIno})`);
    this.root.fields = { ...fields, ...state };
    this.stateChanged = true; // the root is stamped in every cut, but a cut must be asked for
    this.onStateChange();
  }

  /** Changes an inode's attributes (chmod, chown, utimens, link counts, a regular file's size). */
  setAttributes(ino: number, change: (inode: InodeRecord) => Partial<InodeAttributes>): InodeRecord {
    const inode = this.inodes.require(ino);
    const updated = { ...inode, ...change(inode) };
    if ((updated.mode & 0o170000) !== (inode.mode & 0o170000)) throw new RangeError(`ino ${ino}: a mode change may not change the type`);
    // Refused now, with EINVAL, what the encoder would refuse at the stamp, where it would stop every commit.
    const problem = attributeProblem(updated);
    if (problem) throw new FsError('EINVAL', `ino ${ino}: ${problem}`);
    if (updated.size !== inode.size) {
      if (inode.type !== FileType.regular) throw new RangeError(`ino ${ino}: only a regular file's size is set`);
      if (this.inlineContent(ino) !== null) throw new RangeError(`ino ${ino}: an INLINE file's size changes with its content (setInline)`);
    }
    this.inodes.put(updated);
    return updated;
  }

  /** Removes an inode and everything it owns, at the next commit. A directory must be empty. */
  removeInode(ino: number): void {
    const inode = this.inodes.require(ino);
    if (ino === ROOT_INO) throw new FsError('EBUSY', 'the root directory is never removed');
    if (inode.type === FileType.directory) {
      const dir = this.directoryOf(inode);
      if (dir.directory.count > 0) throw new FsError('ENOTEMPTY', `directory ${ino} is not empty`);
      dir.remove();
      this.forgetOnConfirm(dir, () => this.directories.delete(ino));
    }
    if (inode.type === FileType.regular) {
      const map = this.mapOf(inode);
      map.remove();
      this.forgetOnConfirm(map, () => this.maps.delete(ino));
    }
    // A spill set since the last commit is in its owner only (the inode's SPILL comes with the stamp).
    const spill = this.spills.get(ino) ?? (inode.spill ? this.spillOf(inode) : undefined);
    if (spill) {
      spill.remove();
      this.forgetOnConfirm(spill, () => this.spills.delete(ino));
    }
    this.inodes.remove(ino);
  }

  // ---- directories ----

  lookup(dirIno: number, name: Buffer): DirEntry | null {
    return this.directoryOf(this.requireDirectory(dirIno)).directory.lookup(name);
  }

  /** Live entries of directory `dirIno` now (the inode's `count` is as of the last stamp). */
  entryCount(dirIno: number): number {
    return this.directoryOf(this.requireDirectory(dirIno)).directory.count;
  }

  /**
   * A directory's size as stat shows it: its entry bytes now. The inode's `size` is as of the last stamp, so
   * a directory changed since would show a size that moves at the next commit, with nothing changed (tar
   * takes that for a directory changed while it was read).
   */
  directorySize(inode: InodeRecord): number {
    return this.directories.get(inode.ino)?.directory.entryBytes ?? inode.size;
  }

  /** Every entry, in readdir's order (6.4). */
  list(dirIno: number): DirEntry[] {
    return this.directoryOf(this.requireDirectory(dirIno)).list();
  }

  /** Adds the entry `name` → `ino` (EEXIST when the name is taken). Link counts are the caller's. */
  link(dirIno: number, name: Buffer, ino: number): void {
    const dir = this.directoryOf(this.requireDirectory(dirIno));
    dir.directory.insert(name, ino, this.inodes.require(ino).type);
    this.changedDirectory(dir);
  }

  /** Removes the entry `name` and returns it, or null when there is none. */
  unlink(dirIno: number, name: Buffer): DirEntry | null {
    const dir = this.directoryOf(this.requireDirectory(dirIno));
    const removed = dir.directory.remove(name);
    if (removed) this.changedDirectory(dir);
    return removed;
  }

  /** Points the existing entry `name` at `ino` (a rename over it); returns the entry it replaced, or null. */
  relink(dirIno: number, name: Buffer, ino: number): DirEntry | null {
    const dir = this.directoryOf(this.requireDirectory(dirIno));
    const replaced = dir.directory.replace(name, ino, this.inodes.require(ino).type);
    if (replaced) this.changedDirectory(dir);
    return replaced;
  }

  // ---- a regular file's content ----

  /** The content of an INLINE file, or null when the file has a piece map. */
  inlineContent(ino: number): Buffer | null {
    const inode = this.requireRegular(ino);
    return inode.primary.form === 'inline' && this.mapOf(inode).isInline ? inode.primary.content : null;
  }

  /**
   * Makes the file INLINE with `content` (section 7: at most 3,818 bytes, no preallocated or lost slot):
   * its size becomes the content's length, and its piece map, if it had one, goes at the next commit
   * (read pieceMap(ino).versions() first: their blobs are the caller's to delete once that is durable).
   */
  setInline(ino: number, content: Buffer): void {
    const inode = this.requireRegular(ino);
    if (content.length > INLINE_MAX) throw new RangeError(`ino ${ino}: ${content.length} bytes do not fit INLINE (at most ${INLINE_MAX})`);
    const map = this.mapOf(inode);
    if (!map.isInline) {
      if (map.tree.preallocated > 0 || map.tree.lost > 0) throw new RangeError(`ino ${ino}: a file with preallocated or lost slots keeps its piece map`);
      map.becomeInline();
      this.changedOwner(map);
    }
    this.inodes.put({ ...inode, primary: { form: 'inline', content: Buffer.from(content) }, size: content.length, count: 0, hasLost: false });
  }

  /** The file's piece map for reading, or null while the file is INLINE. */
  pieceMapIfAny(ino: number): PieceMapOwner | null {
    const map = this.mapOf(this.requireRegular(ino));
    return map.isInline ? null : map;
  }

  /**
   * The file's piece map, for changes (setSlot, fill, truncate...). An INLINE file gets an empty
   * one: its content is the caller's to store as piece 0 before setting that slot, and the size stays.
   */
  pieceMap(ino: number): PieceMapOwner {
    const inode = this.requireRegular(ino);
    const map = this.mapOf(inode);
    if (map.isInline) {
      map.becomeMap();
      this.inodes.put({ ...inode, primary: { form: 'map', depth: 0, root: [] } });
    }
    this.changedOwner(map); // the caller may change it: kept until its commit whether or not it does
    return map;
  }

  // ---- symlinks and xattrs ----

  /** A symlink's target, from the inode or its spill. */
  symlinkTarget(ino: number): Buffer {
    const inode = this.inodes.require(ino);
    if (inode.type !== FileType.symlink) throw new FsError('EINVAL', `ino ${ino} is not a symlink`);
    if (inode.primary.form === 'target') return inode.primary.target;
    const target = this.spillOf(inode).spilled.target;
    if (!target) throw new IntegrityError(`ino ${ino}: the symlink's target is in neither the inode nor its spill`);
    return target;
  }

  /** Every xattr of the inode, in name order. */
  xattrs(ino: number): Xattr[] {
    const inode = this.inodes.require(ino);
    // A spill set since the last commit is in its owner only: the inode's SPILL pointer comes with the stamp.
    const spill = this.spills.get(ino) ?? (inode.spill ? this.spillOf(inode) : undefined);
    if (!spill) return [...inode.xattrs];
    return [...inode.xattrs, ...spill.spilled.xattrs].sort((a, b) => Buffer.compare(a.name, b.name));
  }

  /** Replaces the inode's xattrs: a prefix of the name order in the inode, the rest spilled (6.2). */
  setXattrs(ino: number, xattrs: readonly Xattr[]): void {
    const inode = this.inodes.require(ino);
    const { inInode, spilled } = placeXattrs(inode.primary, xattrs);
    this.inodes.put({ ...inode, xattrs: inInode });
    const spill = this.spillOf(inode);
    const target = spill.spilled.target;
    if (spilled.length > 0 || inode.spill || spill.spilled.xattrs.length > 0) {
      spill.set({ target, xattrs: spilled });
      this.changedOwner(spill);
    }
  }

  /**
   * A new piece version (section 11): from the commit counter, so every version a slot holds is below the
   * number of the commit that records it, and none is handed out twice, even across a crash.
   */
  newPieceVersion(): number {
    // The last few numbers are the cuts': a writer that outran its commits gets EIO, and the commit that
    // extends the reservation can still be cut.
    if (this.counter.available <= NUMBERS_KEPT_FOR_CUTS) {
      throw new FsError('EIO', 'no piece version is reserved: the commit that extends the reservation has not been written (section 11)');
    }
    const version = this.counter.take();
    if (this.counter.wantsExtension && !this.stateChanged) {
      // Nothing else may be pending: the state record must still be written to extend the reservation.
      this.stateChanged = true;
      this.onStateChange();
    }
    return version;
  }

  // ---- commits ----

  /** Whether anything changed since the last cut. */
  get pending(): boolean {
    return this.batcher.pending || this.stateChanged;
  }

  /**
   * Records changed and not yet written, about (one per owner: an inode, bucket, map node or spill record),
   * cut or not: what the next commit must find room for on the store's disk.
   */
  get unwrittenRecords(): number {
    return this.batcher.unwrittenCount;
  }

  /** Cuts off every change so far under the next commit number, sealed (see the module comment). */
  cut(): FrozenBatch {
    const batch = this.batcher.cut();
    this.stateChanged = false; // the root's stamp took the fields; an unstamp keeps them in `fields`
    this.waitingOnCut = this.waiting;
    this.waiting = [];
    return batch;
  }

  /**
   * Writes a cut in one durable transaction; on failure it is undone and its changes go in the next cut.
   * Always durable: a confirmed write extends the version reservation and lets superseded blobs go.
   */
  write(batch: FrozenBatch): void {
    try {
      this.batcher.write(batch, true);
    } catch (err) {
      this.putBackWaiting();
      throw err;
    }
    this.settle();
    const run = this.waitingOnCut;
    this.waitingOnCut = [];
    for (const fn of run) fn();
  }

  /** Drops a cut whose blobs could not be made durable; its changes go in the next cut. */
  abandon(batch: FrozenBatch): void {
    this.batcher.abandon(batch);
    this.putBackWaiting();
  }

  /**
   * Runs fn once every change made so far is written (durably, for a durable write): deleting the blobs
   * a change superseded. At once when nothing is waiting to be written.
   */
  whenDurable(fn: () => void): void {
    if (this.pending) this.waiting.push(fn);
    else if (this.batcher.inFlight) this.waitingOnCut.push(fn);
    else fn();
  }

  /**
   * The metadata as the vault's committer drives it (src/core/vault/committer.ts): cut, then (once the
   * blobs are durable) write. A cut that was never written, because the blobs could not be made durable,
   * is abandoned by the next cut, which takes its changes under a new number. `onWritten` runs after each
   * write (the vault moves its rollback anchor there).
   */
  commitSource(onWritten: () => void = () => {}): CommitSource {
    let batch: FrozenBatch | null = null;
    const isPending = () => this.pending || batch !== null;
    const source: CommitSource = {
      onStaged: () => {},
      get pending() {
        return isPending();
      },
      cut: () => {
        const unwritten = batch;
        batch = null;
        if (unwritten) this.abandon(unwritten);
        batch = this.cut();
      },
      writeCut: () => {
        const written = batch;
        batch = null;
        if (written) {
          this.write(written); // runs what waited on it (whenDurable)
          onWritten();
        }
        return [];
      },
    };
    this.batcher.onTouch = (count) => source.onStaged(count);
    this.onStateChange = () => source.onStaged(1);
    return source;
  }

  /** A cut that was not written: what waited on it waits on the next one, which takes its changes. */
  private putBackWaiting(): void {
    this.waiting = [...this.waitingOnCut, ...this.waiting];
    this.waitingOnCut = [];
  }

  /** Cuts and writes at once: for a vault opened by a tool, and tests, where no blob waits. */
  commitNow(): void {
    if (!this.pending && !this.counter.wantsExtension) return;
    this.write(this.cut());
  }

  /** Forgets clean owners past the cache limits, and clean map nodes and buckets they hold. */
  evict(): void {
    // An owner with changes to commit is never dropped, whether or not it was marked busy.
    const busy = (owner: Owner) => this.busy.has(owner) || !owner.clean;
    this.maps.trim(busy);
    this.directories.trim(busy);
    this.spills.trim(busy);
  }

  /** The table's identity check and close (the vault's close). */
  close(): void {
    this.table.close();
  }

  // ---- for fsck (5.10): what the tree holds, read and checked ----

  /** Every inode the inode table holds from ino `from` (up to `to`, exclusive), with its record's version, in ino order. */
  inodeVersions(from?: number, to?: number): Generator<{ index: number; version: number }> {
    return this.root.inodeVersions(from, to);
  }

  /**
   * The live inos, leaf by leaf of the inode table: a part of the table that cannot be read is told to
   * `unreadable` (its range of inos) and passed over, so one bad node does not hide the rest (fsck).
   */
  *liveInos(unreadable: (err: IntegrityError, from: number, to: number) => void): Generator<number> {
    const { capacity, leaf } = this.root.inodeTableSpan;
    for (let from = 0; from < capacity; from += leaf) {
      let found: number[];
      try {
        found = [...this.root.inodeVersions(from, from + leaf)].map((v) => v.index);
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        unreadable(err, from, from + leaf);
        continue;
      }
      yield* found;
    }
  }

  /** Names of the state record and the inode table's map nodes, each node read and checked. */
  treeRecordNames(): Buffer[] {
    const names = [stateRecordName(this.ctx.names)];
    for (const n of this.root.inodeTableNodes()) names.push(mapNodeRecordName(this.ctx.names, 0, n.level, n.nodeNo));
    return names;
  }

  /**
   * Names of every record inode `inode` owns besides its own: piece map nodes, buckets and bucket table
   * nodes, spill records. Each is read and checked on the way (IntegrityError names the first that fails).
   */
  ownedRecordNames(inode: InodeRecord): Buffer[] {
    const names: Buffer[] = [];
    const { ino } = inode;
    if (inode.type === FileType.regular && inode.primary.form === 'map') {
      for (const n of this.mapOf(inode).tree.storedNodes()) names.push(mapNodeRecordName(this.ctx.names, ino, n.level, n.nodeNo));
    }
    if (inode.type === FileType.directory) {
      const { buckets, tableNodes } = this.directoryOf(inode).directory.storedRecords();
      for (const b of buckets) names.push(bucketRecordName(this.ctx.names, ino, b.bucket, b.chainPosition));
      for (const n of tableNodes) names.push(mapNodeRecordName(this.ctx.names, ino, n.level, n.nodeNo));
    }
    if (inode.spill) {
      this.spillOf(inode); // reads and checks every spill record
      for (let p = 0; p < inode.spill.count; p++) names.push(spillRecordName(this.ctx.names, ino, p));
    }
    return names;
  }

  /** The names of inode `ino`'s record and of the metadata chaff that must exist beside it (5.9). */
  inodeRecordNames(ino: number): { record: Buffer; chaff: Buffer[] } {
    return { record: inodeRecordName(this.ctx.names, ino), chaff: this.inodes.chaffNamesOf(ino) };
  }

  /**
   * fsck --repair: inode `ino`'s spill records cannot be read (5.10, a bad spill record): the xattrs in
   * them are dropped, and the records deleted at the next commit. A symlink whose target spilled keeps
   * nothing to point at: the caller drops such an inode instead.
   */
  dropUnreadableSpill(ino: number): void {
    const inode = this.inodes.require(ino);
    if (!inode.spill) return;
    const spill = this.spills.add(new SpillOwner(this.ctx, ino, { target: undefined, xattrs: [] }, inode.spill.count));
    spill.set({ target: undefined, xattrs: [] });
    this.changedOwner(spill);
  }

  /** fsck --repair: empties directory `ino`'s buckets that cannot be read (Directory.emptyUnreadableBuckets); how many. */
  emptyUnreadableBuckets(ino: number): number {
    const dir = this.directoryOf(this.requireDirectory(ino));
    const emptied = dir.directory.emptyUnreadableBuckets();
    if (emptied > 0) this.changedDirectory(dir);
    return emptied;
  }

  /**
   * fsck --repair: a directory whose inode record cannot be read is made again, empty, under its own ino
   * (mode 0700, owned by root, now; 5.10). Its children come back as nameless inodes; its old buckets are
   * rows nothing reaches.
   */
  recreateDirectory(ino: number, parentIno: number, time: Timespec): void {
    this.maps.delete(ino);
    this.directories.delete(ino);
    this.spills.delete(ino);
    const inode: InodeRecord = {
      ino, parentIno: ino === ROOT_INO ? 0 : parentIno, fileId: newFileId(), type: FileType.directory, mode: 0o700 | modeTypeBits(FileType.directory),
      uid: 0, gid: 0, nlink: 2, rdev: 0, size: 0, atime: time, mtime: time, ctime: time, count: 0, hasLost: false,
      primary: { form: 'entries', entries: Buffer.alloc(0) }, xattrs: [], spill: undefined,
    };
    this.inodes.replaceUnreadable(inode);
  }

  /** fsck --repair: drops inode `ino`, whose record cannot be read, from the inode table (5.10). */
  removeUnreadableInode(ino: number): void {
    if (ino === ROOT_INO) throw new FsError('EBUSY', 'the root directory is never removed');
    this.maps.delete(ino);
    this.directories.delete(ino);
    this.spills.delete(ino);
    this.inodes.removeUnreadable(ino);
  }

  // ---- owners ----

  private requireDirectory(ino: number): InodeRecord {
    const inode = this.inodes.require(ino);
    if (inode.type !== FileType.directory) throw new FsError('ENOTDIR', `ino ${ino} is not a directory`);
    return inode;
  }

  private requireRegular(ino: number): InodeRecord {
    const inode = this.inodes.require(ino);
    if (inode.type !== FileType.regular) throw new FsError(inode.type === FileType.directory ? 'EISDIR' : 'EINVAL', `ino ${ino} is not a regular file`);
    return inode;
  }

  private directoryOf(inode: InodeRecord): DirectoryOwner {
    return this.directories.get(inode.ino) ?? this.directories.add(new DirectoryOwner(this.ctx, inode));
  }

  private mapOf(inode: InodeRecord): PieceMapOwner {
    return this.maps.get(inode.ino) ?? this.maps.add(new PieceMapOwner(this.ctx, inode));
  }

  private spillOf(inode: InodeRecord): SpillOwner {
    return this.spills.get(inode.ino) ?? this.spills.add(SpillOwner.read(this.ctx, inode));
  }

  private changedDirectory(dir: DirectoryOwner): void {
    dir.changed();
    this.changedOwner(dir);
  }

  /** An owner changed: it stays in memory until a commit after this one is confirmed. */
  private changedOwner(owner: Owner): void {
    this.busy.add(owner);
  }

  private forgetOnConfirm(owner: Owner, forget: () => void): void {
    this.busy.add(owner);
    this.removedIn.set(owner, forget);
  }

  /** After a confirmed write: owners with nothing left to commit may be evicted again; removed ones are forgotten. */
  private settle(): void {
    for (const [owner, forget] of this.removedIn) {
      if (!owner.clean) continue;
      forget();
      this.removedIn.delete(owner);
    }
    for (const owner of this.busy) if (owner.clean && !this.removedIn.has(owner)) this.busy.delete(owner);
  }
}
