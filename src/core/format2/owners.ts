// What an inode owns besides its record (docs/format-2.md 5.4, 6.2 to 6.4, 17.1): a regular file's piece
// map, a directory's buckets and bucket table, and an inode's spill records. Each is a level-0 participant
// of the group commit. Its stamp seals what changed at the cut's number and then rewrites its inode (level
// 1, stamped later in the same cut) with the pointers that number makes: the MAP root, the bucket table's
// shape, the SPILL pointer. So an inode always holds the versions of what it owns, and a record put back
// from another commit is found out when it is read through its owner (5.6).

import { randomBytes } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { outstandingStamp, type CommitBatcher, type CommitParticipant, type ParticipantStamp, type StampedRecord } from './commit-batch.js';
import { type BucketPlace, type BucketRecord, type DirEntry, decodeBucket, encodeBucket } from './dir-records.js';
import { Directory, type DirectoryInode, type DirectoryRecords } from './directory.js';
import { FILE_ID_BYTES, type InodeRecord } from './inode-record.js';
import type { InodeStore } from './inode-store.js';
import { decodeMapNode, encodeMapNode } from './map-node.js';
import { bucketRecordName, mapNodeRecordName, spillRecordName } from './record-names.js';
import { RecordKind, type RecordSealer } from './record-seal.js';
import { lostSlot } from './slot.js';
import { SlotTree, INODE_ROOT_CAPACITY, type MapNodeSource, type TreeStamp } from './slot-tree.js';
import { decodeSpillRecord, decodeSpillStream, encodeSpillRecord, encodeSpillStream, joinSpillRecords, splitSpillStream, type SpillContent, type SpillRecord } from './spill-records.js';
import type { RecordReader } from './state-root.js';

/** What every owner needs: the keys that name and place records, the sealer, the table, the inodes and the batcher. */
export interface OwnerContext {
  readonly names: Buffer;
  readonly dirhash: Buffer;
  readonly sealer: RecordSealer;
  readonly reader: RecordReader;
  readonly inodes: InodeStore;
  readonly batcher: CommitBatcher;
}

/** Map nodes of the slot tree that inode `ownerIno` owns (0: the inode table), read at the versions their parents hold. */
export function mapNodeSource(ctx: Pick<OwnerContext, 'names' | 'sealer' | 'reader'>, ownerIno: number, special: boolean, what: string): MapNodeSource {
  return {
    load: (level, nodeNo, version) => {
      const name = mapNodeRecordName(ctx.names, ownerIno, level, nodeNo);
      const node = `${what} node (level ${level}, node ${nodeNo})`;
      const payload = ctx.sealer.open(name, ctx.reader.get(name), version, RecordKind.mapNode, node);
      return decodeMapNode(payload, { level, special, version, what: node });
    },
  };
}

/** A tree stamp as records: its nodes to seal at the cut's number, and those to delete. */
export function treeRecords(names: Buffer, ownerIno: number, s: TreeStamp): { writes: StampedRecord[]; deletes: Buffer[] } {
  return {
    writes: s.writes.map((w) => ({ name: mapNodeRecordName(names, ownerIno, w.level, w.nodeNo), kind: RecordKind.mapNode, payload: encodeMapNode(w.slots) })),
    deletes: s.deletes.map((d) => mapNodeRecordName(names, ownerIno, d.level, d.nodeNo)),
  };
}

/**
 * A regular file's piece map: a slot tree whose root is the inode's MAP section. While the file is
 * INLINE the owner holds an empty tree, which may still have node records to delete from the time the
 * file had a map.
 */
export class PieceMapOwner implements CommitParticipant {
  readonly level = 0;
  readonly tree: SlotTree;
  /** The inode is gone: the stamp deletes what the tree drops and writes no MAP. */
  private removed = false;
  /** The file is INLINE: its MAP is not written. */
  private inline: boolean;

  constructor(
    private readonly ctx: OwnerContext,
    inode: InodeRecord,
  ) {
    const map = inode.primary.form === 'map' ? inode.primary : undefined;
    this.inline = map === undefined;
    this.tree = new SlotTree({
      root: map?.root ?? [],
      depth: map?.depth ?? 0,
      rootCapacity: INODE_ROOT_CAPACITY,
      special: true,
      preallocated: inode.count,
      lost: inode.hasLost ? undefined : 0,
      nodes: mapNodeSource(ctx, inode.ino, true, `piece map of ino ${inode.ino}`),
      what: `piece map of ino ${inode.ino}`,
    });
    this.ino = inode.ino;
  }

  readonly ino: number;

  /** The tree changed: the next cut stamps it. */
  changed(): void {
    this.ctx.batcher.touch(this);
  }

  /** The file keeps its content in the inode from now on; the map is emptied (its nodes deleted at the next cut). */
  becomeInline(): void {
    this.tree.truncate(0);
    this.inline = true;
    this.changed();
  }

  /** The file gets a piece map (empty until slots are set). */
  becomeMap(): void {
    this.inline = false;
    this.changed();
  }

  get isInline(): boolean {
    return this.inline;
  }

  /** Nothing to write at the next cut, and no stamp waiting for its write: safe to forget. */
  get clean(): boolean {
    return !this.tree.hasChanges && this.tree.outstandingStamp === undefined;
  }

  // ---- the map as the file's content uses it: every change marks the owner for the next cut ----

  slot(index: number): number {
    return this.tree.get(index);
  }

  setSlot(index: number, slot: number): void {
    this.tree.set(index, slot);
    this.changed();
  }

  /** Sets [start, end) to `slot` (HOLE to punch, PREALLOCATED for ZERO_RANGE); read versions() first for the blobs it drops. */
  fill(start: number, end: number, slot: number): void {
    this.tree.fill(start, end, slot);
    this.changed();
  }

  /** Sets the holes in [start, end) to `slot`: fallocate's mode 0. */
  fillHoles(start: number, end: number, slot: number): void {
    this.tree.fillHoles(start, end, slot);
    this.changed();
  }

  /**
   * fsck --repair: the slots in [start, end) become lost (reads of them fail with EIO), and the map nodes
   * in the range that cannot be read are deleted unread (5.10, a bad map node).
   */
  quarantine(start: number, end: number): void {
    this.tree.fill(start, end, lostSlot(0), { orphanUnreadable: true });
    this.changed();
  }

  /** Every slot at or past `pieces` becomes a hole; read versions(pieces) first for the blobs it drops. */
  truncate(pieces: number): void {
    this.tree.truncate(pieces);
    this.changed();
  }

  versions(start?: number, end?: number): Generator<{ index: number; version: number }> {
    return this.tree.versions(start, end);
  }

  nextData(from: number): number | undefined {
    return this.tree.nextData(from);
  }

  nextHole(from: number): number {
    return this.tree.nextHole(from);
  }

  /** The inode is removed: every node of the map goes at the next cut. */
  remove(): void {
    this.tree.truncate(0);
    this.removed = true;
    this.changed();
  }

  stamp(c: number): ParticipantStamp {
    const s = this.tree.stamp(c);
    const records = treeRecords(this.ctx.names, this.ino, s);
    if ((s.rootChanged || s.writes.length > 0) && !this.removed && !this.inline) {
      // Read right after the stamp: later changes put placeholders in the root (slot-tree.ts).
      const inode = this.ctx.inodes.require(this.ino);
      this.ctx.inodes.put({ ...inode, primary: { form: 'map', depth: this.tree.depth, root: this.tree.rootEntries() }, count: this.tree.preallocated, hasLost: this.tree.lost > 0 });
    }
    return records;
  }

  confirm(c: number): void {
    this.tree.confirm(c);
  }

  unstamp(c: number): void {
    this.tree.unstamp(c);
  }
}

/** A directory's entries (6.4): the inode's ENTRIES, or buckets under a bucket table. */
export class DirectoryOwner implements CommitParticipant {
  readonly level = 0;
  readonly directory: Directory;
  readonly ino: number;
  private removed = false;

  constructor(
    private readonly ctx: OwnerContext,
    inode: InodeRecord,
  ) {
    this.ino = inode.ino;
    const records: DirectoryRecords = {
      readBucket: (place: BucketPlace, version: number): BucketRecord => {
        const name = bucketRecordName(ctx.names, place.dirIno, place.bucket, place.chainPosition);
        const what = `directory ${place.dirIno}, bucket ${place.bucket}${place.chainPosition > 0 ? ` (overflow ${place.chainPosition})` : ''}`;
        return decodeBucket(ctx.sealer.open(name, ctx.reader.get(name), version, RecordKind.bucket, what), place, ctx.dirhash);
      },
      bucketTable: (root, depth) =>
        new SlotTree({ root, depth, rootCapacity: INODE_ROOT_CAPACITY, special: false, nodes: mapNodeSource(ctx, inode.ino, false, `bucket table of directory ${inode.ino}`), what: `bucket table of directory ${inode.ino}` }),
    };
    if (inode.primary.form !== 'entries' && inode.primary.form !== 'buckets') throw new TypeError(`ino ${inode.ino} is not a directory`);
    const held: DirectoryInode = { primary: inode.primary, count: inode.count, entryBytes: inode.size };
    this.directory = new Directory({ dirIno: inode.ino, dirhashKey: ctx.dirhash, inode: held, records });
  }

  /** The entries changed: the next cut stamps them. */
  changed(): void {
    this.ctx.batcher.touch(this);
  }

  get clean(): boolean {
    return !this.directory.hasChanges && this.directory.outstandingStamp === undefined;
  }

  /** The directory is removed (it is empty): what records it still has go at the next cut. */
  remove(): void {
    this.removed = true;
    this.changed();
  }

  stamp(c: number): ParticipantStamp {
    const s = this.directory.stamp(c);
    const table = treeRecords(this.ctx.names, this.ino, s.table);
    const primary = s.inode.primary;
    const writes: StampedRecord[] = s.bucketWrites.map((b) => {
      if (primary.form !== 'buckets') throw new Error(`directory ${this.ino}: bucket records to write while its entries are inline`);
      return { name: bucketRecordName(this.ctx.names, this.ino, b.bucket, b.chainPosition), kind: RecordKind.bucket, payload: encodeBucket(b, primary.level, primary.split) };
    });
    writes.push(...table.writes);
    const deletes = [...s.bucketDeletes.map((d) => bucketRecordName(this.ctx.names, this.ino, d.bucket, d.chainPosition)), ...table.deletes];
    if (s.inodeChanged && !this.removed) {
      const inode = this.ctx.inodes.require(this.ino);
      const size = s.inode.entryBytes ?? inode.size;
      this.ctx.inodes.put({ ...inode, primary, count: s.inode.count, size });
    }
    return { writes, deletes };
  }

  confirm(c: number): void {
    this.directory.confirm(c);
  }

  unstamp(c: number): void {
    this.directory.unstamp(c);
  }

  /** Every entry, in readdir's order. */
  list(): DirEntry[] {
    return this.directory.list();
  }
}

/**
 * An inode's spill records (6.2): what of its xattrs and symlink target does not fit the inode. Rare and
 * small, so a change rewrites every record of the spill at the cut's number.
 */
export class SpillOwner implements CommitParticipant {
  readonly level = 0;
  /** What the spill holds, as the latest change left it. */
  private content: SpillContent;
  /** Records the store holds (counting the outstanding stamp's as written). */
  private storedCount: number;
  private outstanding: { version: number; storedBefore: number } | undefined;
  private removed = false;
  /** Changed since the last stamp, or given back by an unstamp. */
  private dirty = false;

  constructor(
    private readonly ctx: OwnerContext,
    readonly ino: number,
    content: SpillContent,
    storedCount: number,
  ) {
    this.content = content;
    this.storedCount = storedCount;
  }

  /** The spill of `inode` as the store holds it: its records read at the versions the inode and record 0 hold. */
  static read(ctx: OwnerContext, inode: InodeRecord): SpillOwner {
    if (!inode.spill) return new SpillOwner(ctx, inode.ino, { target: undefined, xattrs: [] }, 0);
    const { count, version } = inode.spill;
    const records: SpillRecord[] = [];
    let at = version;
    for (let position = 0; position < count; position++) {
      const name = spillRecordName(ctx.names, inode.ino, position);
      const payload = ctx.sealer.open(name, ctx.reader.get(name), at, RecordKind.spill, `inode ${inode.ino}, spill record ${position}`);
      const record = decodeSpillRecord(payload, inode.ino, position);
      records.push(record);
      if (position === 0 && record.count !== count) throw new IntegrityError(`inode ${inode.ino}: spill record 0 counts ${record.count} records, the inode ${count}`);
      at = records[0]?.versions[position] ?? 0;
    }
    const stream = joinSpillRecords(records, count, inode.ino);
    return new SpillOwner(ctx, inode.ino, decodeSpillStream(stream, `inode ${inode.ino}, spill`), count);
  }

  get spilled(): SpillContent {
    return this.content;
  }

  get clean(): boolean {
    return !this.dirty && this.outstanding === undefined;
  }

  /** Sets what spills; the next cut writes it. */
  set(content: SpillContent): void {
    this.content = content;
    this.dirty = true;
    this.ctx.batcher.touch(this);
  }

  /** The inode is removed: its spill records go at the next cut. */
  remove(): void {
    this.removed = true;
    this.content = { target: undefined, xattrs: [] };
    this.dirty = true;
    this.ctx.batcher.touch(this);
  }

  stamp(c: number): ParticipantStamp {
    const empty = this.content.target === undefined && this.content.xattrs.length === 0;
    const parts = empty ? [] : splitSpillStream(encodeSpillStream(this.content));
    const writes: StampedRecord[] = parts.map((data, position) => ({
      name: spillRecordName(this.ctx.names, this.ino, position),
      kind: RecordKind.spill,
      payload: encodeSpillRecord({ position, count: position === 0 ? parts.length : 0, versions: position === 0 ? parts.slice(1).map(() => c) : [], data }),
    }));
    const deletes: Buffer[] = [];
    for (let position = parts.length; position < this.storedCount; position++) deletes.push(spillRecordName(this.ctx.names, this.ino, position));
    this.outstanding = { version: c, storedBefore: this.storedCount };
    this.storedCount = parts.length;
    this.dirty = false;
    if (!this.removed) {
      const inode = this.ctx.inodes.require(this.ino);
      this.ctx.inodes.put({ ...inode, spill: parts.length > 0 ? { count: parts.length, version: c } : undefined });
    }
    return { writes, deletes };
  }

  confirm(c: number): void {
    outstandingStamp(this.outstanding, c, 'confirm', `spill of ino ${this.ino}`);
    this.outstanding = undefined;
  }

  unstamp(c: number): void {
    const stamp = outstandingStamp(this.outstanding, c, 'unstamp', `spill of ino ${this.ino}`);
    // The store holds what it held: the next stamp deletes from there.
    this.storedCount = stamp.storedBefore;
    this.outstanding = undefined;
    this.dirty = true;
  }
}

/** A random file id for a new inode (6.1): in every piece's address and associated data. */
export function newFileId(): Buffer {
  return randomBytes(FILE_ID_BYTES);
}
