// One directory's entries in format 2 (docs/format-2.md, 6.4), decoded: inline in the directory inode's
// ENTRIES section while they fit, else in bucket records placed by linear hashing over the keyed name hash.
// It looks names up, inserts, removes, replaces and lists them, and moves between the forms by 6.4's
// thresholds (to buckets, split, merge, back to inline). It reads bucket records and bucket-table nodes
// through DirectoryRecords, which the metadata layer implements; it knows nothing of seals, names or SQLite.
//
// Batches (17.1). Operations change the decoded buckets in place and mark them changed; nothing is encoded
// while they run. stamp(c) turns the changes into the bucket records to write and delete at version c, puts
// c in the bucket table's slots and in the chains' `next` fields, stamps the table, and reports the
// directory inode's fields. Then confirm(c) or unstamp(c) says how the write went, as for the slot tree. A
// commit number seals each name once, so after a failed write the directory goes back to comparing with what
// the store still holds: the next stamp writes, under its own number, every record whose content differs from
// that, deletes again what c deleted, and sets every changed bucket's slot again. No record or pointer keeps c.
//
// Chains. A bucket's entries, in sk order, are packed greedily into its chain: record 0 takes as many as fit
// in 3,940 bytes, then record 1, and so on. The records are thus a function of the entries, and a chain is as
// short as the entries allow; it shrinks when linear hashing splits the bucket. Record p's version is held by
// record p − 1 (5.4), so writing record p writes records 0 to p − 1 too.
//
// E. The thresholds count entry bytes, which the inode does not record: it records `count`. A caller that
// knows E (see DirectoryInode.entryBytes) passes it; otherwise the first insert or remove in a bucketed
// directory reads every bucket to sum it, once.

import { outstandingStamp } from './commit-batch.js';
import { FsError, IntegrityError } from '../errors.js';
import {
  BUCKET_ENTRIES_MAX,
  bucketCount,
  bucketOf,
  compareEntries,
  decodeInlineEntries,
  encodeInlineEntries,
  entriesLength,
  entryLength,
  INLINE_ENTRIES_MAX,
  nameHash,
  nameProblem,
  type BucketPlace,
  type BucketRecord,
  type DirEntry,
  type U64Words,
} from './dir-records.js';
import { DIR_LEVEL_MAX, isFileType, type FileType, type Primary } from './inode-record.js';
import { HOLE, MAX_VERSION } from './slot.js';
import type { NodeDelete, SlotTree, TreeStamp } from './slot-tree.js';

/** 6.4's B: the entry bytes one bucket record holds. */
const B = BUCKET_ENTRIES_MAX; // 3,940
/** Back to inline at or below half the inline room, not at the room itself, so a directory does not flip back and forth (6.4). */
export const BACK_TO_INLINE_MAX = Math.floor(INLINE_ENTRIES_MAX / 2); // 1,909
/** Chain positions are u16 (5.3). */
const CHAIN_POSITION_MAX = 0xffff;

// The thresholds of 6.4, in integers so that each boundary is exact.

/** Split after an insert when E > 0.75 × B × n. */
export function overSplitLoad(entryBytes: number, buckets: number): boolean {
  return 4 * entryBytes > 3 * B * buckets;
}

/** Merge after a remove when E < 0.25 × B × n (and n > 1). */
export function underMergeLoad(entryBytes: number, buckets: number): boolean {
  return 4 * entryBytes < B * buckets;
}

/** The level a directory takes when its entries leave the inode: the smallest L with E ≤ 0.5 × B × 2^L. */
export function levelForEntries(entryBytes: number): number {
  let level = 0;
  while (2 * entryBytes > B * 2 ** level) level++;
  return level;
}

/** The directory inode's primary section: ENTRIES, or the bucket table (MAP with BUCKETS, dirLevel, dirSplit). */
export type DirectoryPrimary = Extract<Primary, { form: 'entries' | 'buckets' }>;

/** What the directory inode holds of its entries. */
export interface DirectoryInode {
  readonly primary: DirectoryPrimary;
  /** The inode's `count`: live entries. */
  readonly count: number;
  /**
   * E, the entry bytes: the directory inode's `size` (docs/format-2.md 6.1). Without it the first insert
   * or remove that needs it reads every bucket.
   */
  readonly entryBytes?: number;
}

/** The record access the metadata layer gives a directory. */
export interface DirectoryRecords {
  /**
   * The bucket record at `place` (its bucket number, chain position, the table's shape, and the last entry of
   * the chain before it), sealed at `version`, the version its owner holds: decodeBucket's result. Throws
   * IntegrityError for a record that is missing, damaged or stale.
   */
  readBucket(place: BucketPlace, version: number): BucketRecord;
  /**
   * The directory's bucket table: a slot tree over bucket numbers whose slots hold chain-position-0 versions
   * (special = false, a root of INODE_ROOT_CAPACITY in the inode, map nodes owned by the directory's ino),
   * opened on the root and depth of its MAP section: [] and 0 for a directory whose entries leave the inode.
   */
  bucketTable(root: readonly number[], depth: number): SlotTree;
}

export interface DirectoryOptions {
  readonly dirIno: number;
  readonly dirhashKey: Buffer;
  readonly inode: DirectoryInode;
  readonly records: DirectoryRecords;
}

/** A bucket record the commit must delete. */
export interface BucketDelete {
  readonly bucket: number;
  readonly chainPosition: number;
}

/** What one commit changes of a directory (5.6, 17.1). */
export interface DirectoryStamp {
  /**
   * Bucket records to seal at the stamp's version, their `next` fields set. Encode each with
   * encodeBucket(record, level, split) of the stamp's primary, which has the BUCKETS form whenever there
   * are writes.
   */
  readonly bucketWrites: BucketRecord[];
  readonly bucketDeletes: BucketDelete[];
  /** The bucket table's map nodes to write and delete (slot-tree.ts: encode the writes before the directory changes again). */
  readonly table: TreeStamp;
  /** Whether the directory inode must be rewritten in this commit: its count, form, shape, inline entries or table root changed. */
  readonly inodeChanged: boolean;
  /** The inode's fields as of this stamp. entryBytes is undefined when it is not known yet. */
  readonly inode: DirectoryInode;
}

/** One record of a bucket's chain as the store holds it, counting the outstanding stamp as written. */
interface StoredChainRecord {
  readonly entries: readonly DirEntry[];
  readonly version: number;
}

/** A bucket held in memory. */
interface HeldBucket {
  readonly bucket: number;
  /** All of its entries, in increasing (sk, name) order. */
  entries: DirEntry[];
  /** Its chain as the store holds it: record p is stored[p]. Empty when it has no record. */
  stored: StoredChainRecord[];
}

/** A stamp whose write is neither confirmed nor failed: what unstamp needs to undo it. */
interface OutstandingStamp {
  readonly version: number;
  /** Each bucket the stamp wrote or deleted records of, with its chain as the store held it before. */
  readonly buckets: Map<HeldBucket, StoredChainRecord[]>;
  readonly tableStamped: boolean;
  readonly inodeChanged: boolean;
}

const NO_TREE_CHANGES: TreeStamp = { writes: [], deletes: [], rootChanged: false };

/**
 * Where `probe`'s name is in `entries` (increasing (sk, name) order): its index, or −(insertion point) − 1.
 * An equal name has an equal hash, so the order finds it.
 */
function search(entries: readonly DirEntry[], probe: DirEntry): number {
  let low = 0;
  let high = entries.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const order = compareEntries(entries[middle] as DirEntry, probe);
    if (order < 0) low = middle + 1;
    else if (order > 0) high = middle - 1;
    else return middle;
  }
  return -low - 1;
}

/** A bucket's entries packed into its chain: each record as full as the next entry allows. */
function packChain(entries: readonly DirEntry[]): DirEntry[][] {
  const chain: DirEntry[][] = [];
  let record: DirEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const length = entryLength(entry.name);
    if (bytes + length > B && record.length > 0) {
      chain.push(record);
      record = [];
      bytes = 0;
    }
    record.push(entry);
    bytes += length;
  }
  if (record.length > 0) chain.push(record);
  if (chain.length > CHAIN_POSITION_MAX + 1) throw new FsError('ENOSPC', `a bucket chain of ${chain.length} records (at most ${CHAIN_POSITION_MAX + 1})`);
  return chain;
}

/** Whether a packed record holds exactly the entries a stored one does (entries are never changed in place: replace makes a new one). */
function sameEntries(a: readonly DirEntry[], b: readonly DirEntry[]): boolean {
  return a.length === b.length && a.every((entry, i) => entry === b[i]);
}

export class Directory {
  private readonly dirIno: number;
  private readonly dirhashKey: Buffer;
  private readonly records: DirectoryRecords;
  private readonly what: string;
  private form: 'entries' | 'buckets';
  /** The entries while they are inline, in (sk, name) order. */
  private inline: DirEntry[] = [];
  private level = 0;
  private split = 0;
  /** Made when the entries first leave the inode, and kept: it may still have records to delete after they come back. */
  private table: SlotTree | undefined;
  /** Buckets in memory by number: read, changed, or holding records to delete. An empty bucket with no record is not kept. */
  private readonly held = new Map<number, HeldBucket>();
  private readonly changedBuckets = new Set<HeldBucket>();
  private entryCount: number;
  private knownBytes: number | undefined;
  private inodeChanged = false;
  /** The newest version the directory holds or stamped: a stamp must be newer. */
  private newestVersion = 0;
  private outstanding: OutstandingStamp | undefined;

  constructor(options: DirectoryOptions) {
    const { dirIno, dirhashKey, inode, records } = options;
    this.dirIno = dirIno;
    this.dirhashKey = dirhashKey;
    this.records = records;
    this.what = `directory ${dirIno}`;
    if (!Number.isSafeInteger(inode.count) || inode.count < 0) throw new RangeError(`${this.what}: count ${inode.count}`);
    if (inode.entryBytes !== undefined && !(Number.isSafeInteger(inode.entryBytes) && inode.entryBytes >= 0)) {
      throw new RangeError(`${this.what}: entry bytes ${inode.entryBytes}`);
    }
    this.entryCount = inode.count;
    const primary = inode.primary;
    if (primary.form === 'entries') {
      this.form = 'entries';
      this.inline = decodeInlineEntries(primary.entries, inode.count, dirIno, dirhashKey);
      this.knownBytes = primary.entries.length;
      if (inode.entryBytes !== undefined && inode.entryBytes !== this.knownBytes) {
        throw new IntegrityError(`${this.what}: ${this.knownBytes} bytes of inline entries, the inode says ${inode.entryBytes}`);
      }
    } else {
      this.form = 'buckets';
      bucketCount(primary.level, primary.split); // checks the shape
      this.level = primary.level;
      this.split = primary.split;
      this.table = records.bucketTable(primary.root, primary.depth);
      this.knownBytes = inode.entryBytes;
    }
  }

  /** An empty directory, as mkdir makes it: no entries, inline. */
  static empty(dirIno: number, dirhashKey: Buffer, records: DirectoryRecords): Directory {
    return new Directory({ dirIno, dirhashKey, records, inode: { primary: { form: 'entries', entries: Buffer.alloc(0) }, count: 0, entryBytes: 0 } });
  }

  /** Live entries: the inode's `count`. */
  get count(): number {
    return this.entryCount;
  }

  /** E, the entry bytes, or undefined while it is not known (see DirectoryInode.entryBytes). */
  get entryBytes(): number | undefined {
    return this.knownBytes;
  }

  /** 'entries' while the entries are inline, 'buckets' with flag BUCKETS. */
  get entryForm(): 'entries' | 'buckets' {
    return this.form;
  }

  /** The bucket table's shape: L, s and n = 2^L + s. Zeroes and 1 while inline. */
  get shape(): { level: number; split: number; buckets: number } {
    return { level: this.level, split: this.split, buckets: this.bucketTotal };
  }

  /** Buckets held in memory (for a cache's accounting). */
  get heldBuckets(): number {
    return this.held.size;
  }

  /** The commit number of the stamp that is neither confirmed nor unstamped, if there is one. */
  get outstandingStamp(): number | undefined {
    return this.outstanding?.version;
  }

  /** Whether the next stamp has anything to write or delete. */
  get hasChanges(): boolean {
    return this.inodeChanged || this.changedBuckets.size > 0 || (this.table?.hasChanges ?? false);
  }

  /** The entry named `name`, or null. Inline: no read. Buckets: reads the one bucket, and its chain, that the name's hash picks. */
  lookup(name: Buffer): DirEntry | null {
    const probe = this.probe(name);
    if (this.form === 'entries') {
      const at = search(this.inline, probe);
      return at >= 0 ? (this.inline[at] as DirEntry) : null;
    }
    const bucket = this.loadBucket(bucketOf(probe.hash, this.level, this.split));
    if (bucket === undefined) return null;
    const at = search(bucket.entries, probe);
    return at >= 0 ? (bucket.entries[at] as DirEntry) : null;
  }

  /**
   * Adds an entry and returns it. A name already there is refused with FsError EEXIST, before anything
   * changes; the caller, who looked the name up, decides what that means. Invalid names, inos and types are
   * RangeErrors: the caller checks names first (ENAMETOOLONG, EINVAL).
   */
  insert(name: Buffer, ino: number, type: FileType): DirEntry {
    const entry = this.newEntry(Buffer.from(name), ino, type);
    if (this.form === 'entries') {
      const at = search(this.inline, entry);
      if (at >= 0) throw this.exists(name);
      const bytes = this.entryBytesNow() + entryLength(entry.name);
      this.inline.splice(-at - 1, 0, entry);
      this.counted(1, bytes);
      if (bytes > INLINE_ENTRIES_MAX) this.toBuckets();
      return entry;
    }
    const bucket = this.bucketToChange(bucketOf(entry.hash, this.level, this.split));
    const at = search(bucket.entries, entry);
    if (at >= 0) throw this.exists(name);
    const bytes = this.entryBytesNow() + entryLength(entry.name);
    // Everything the split will read is read before anything changes, so a failed read changes nothing.
    const halves = overSplitLoad(bytes, this.bucketTotal) ? this.prepareSplit() : undefined;
    bucket.entries.splice(-at - 1, 0, entry);
    this.changedBuckets.add(bucket);
    this.counted(1, bytes);
    if (halves !== undefined) this.splitBucket(halves.source, halves.target);
    return entry;
  }

  /** Removes the entry named `name` and returns it, or returns null if there is none. */
  remove(name: Buffer): DirEntry | null {
    const probe = this.probe(name);
    if (this.form === 'entries') {
      const at = search(this.inline, probe);
      if (at < 0) return null;
      const [removed] = this.inline.splice(at, 1) as [DirEntry];
      this.counted(-1, this.entryBytesNow() - entryLength(removed.name));
      return removed;
    }
    const bucket = this.loadBucket(bucketOf(probe.hash, this.level, this.split));
    if (bucket === undefined) return null;
    const at = search(bucket.entries, probe);
    if (at < 0) return null;
    const found = bucket.entries[at] as DirEntry;
    const bytes = this.entryBytesNow() - entryLength(found.name);
    const pair = this.bucketTotal > 1 && underMergeLoad(bytes, this.bucketTotal) ? this.prepareMerge() : undefined;
    bucket.entries.splice(at, 1);
    this.changedBuckets.add(bucket);
    this.counted(-1, bytes);
    if (pair !== undefined) this.mergeBuckets(pair.into, pair.from);
    if (this.bucketTotal === 1 && bytes <= BACK_TO_INLINE_MAX) this.toInline();
    return found;
  }

  /**
   * Points the entry named `name` at another inode (rename over an existing name): the name, its hash and
   * so E stay. Returns the entry it replaced, or null if there is none (then nothing changes).
   */
  replace(name: Buffer, ino: number, type: FileType): DirEntry | null {
    const probe = this.probe(name);
    const bucket = this.form === 'entries' ? undefined : this.loadBucket(bucketOf(probe.hash, this.level, this.split));
    const entries = this.form === 'entries' ? this.inline : bucket?.entries;
    if (entries === undefined) return null;
    const at = search(entries, probe);
    if (at < 0) return null;
    const old = entries[at] as DirEntry;
    entries[at] = this.newEntry(old.name, ino, type, old.hash);
    if (bucket === undefined) this.inodeChanged = true;
    else this.changedBuckets.add(bucket);
    return old;
  }

  /**
   * Every entry, in increasing (sk, name) order: readdir's order (6.4). Reads each bucket record not held
   * once, and keeps what it read. Checks what only a walk of every bucket can: the entries add up to
   * `count` (and to E when it is known), and no bucket slot past n holds a record.
   */
  list(): DirEntry[] {
    if (this.form === 'entries') return [...this.inline];
    const runs = this.loadEveryBucket().filter((entries) => entries.length > 0);
    // A bucket is the run of the sk order whose first bits are its number's bits reversed, and a split cuts
    // a run in two: ordering the runs by their first entries orders every entry.
    runs.sort((a, b) => compareEntries(a[0] as DirEntry, b[0] as DirEntry));
    return runs.flat();
  }

  /**
   * fsck --repair (5.10, a bad bucket): every bucket whose chain cannot be read is rewritten empty (its
   * first record deleted at the next stamp; records further down its chain are left as rows nothing
   * reaches), a bucket table node that cannot be read takes the buckets under it with it, and the count
   * and E become what the readable buckets hold. The names the emptied buckets held are gone from the
   * directory: their inodes come back as nameless. Returns how many buckets were emptied.
   */
  emptyUnreadableBuckets(): number {
    if (this.form === 'entries') return 0;
    const table = this.bucketTableNow();
    let emptied = 0;
    for (let number = 0; number < this.bucketTotal; number++) {
      if (this.held.has(number)) continue;
      let first: number;
      try {
        first = table.get(number);
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        // The table node that holds this bucket's slot is unreadable: its slots go (HOLE), with the node.
        const span = table.nodeSlots;
        const from = Math.floor(number / span) * span;
        table.fill(from, from + span, HOLE, { orphanUnreadable: true });
        first = HOLE;
        emptied++;
      }
      if (first === HOLE) continue;
      try {
        this.loadBucket(number);
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        const bucket: HeldBucket = { bucket: number, entries: [], stored: [{ entries: [], version: first }] };
        this.held.set(number, bucket);
        this.changedBuckets.add(bucket);
        emptied++;
      }
    }
    if (emptied > 0) {
      let count = 0;
      let bytes = 0;
      for (const bucket of this.held.values()) {
        count += bucket.entries.length;
        bytes += entriesLength(bucket.entries);
      }
      this.entryCount = count;
      this.knownBytes = bytes;
      this.inodeChanged = true;
    }
    return emptied;
  }

  /**
   * Where every record of the directory is, reading every bucket (as list() does, with its checks): its
   * chain records and its bucket table's map nodes. For fsck (5.10); none while the entries are inline.
   */
  storedRecords(): { buckets: BucketDelete[]; tableNodes: NodeDelete[] } {
    if (this.form === 'entries') return { buckets: [], tableNodes: [] };
    this.loadEveryBucket();
    const buckets: BucketDelete[] = [];
    for (const bucket of this.held.values()) for (let p = 0; p < bucket.stored.length; p++) buckets.push({ bucket: bucket.bucket, chainPosition: p });
    return { buckets, tableNodes: [...this.bucketTableNow().storedNodes()] };
  }

  /**
   * Settles the changes since the last stamp as commit `version` (17.1): returns the bucket records to write
   * and delete, with every changed chain record's version, its `next` in the record before it and its slot
   * in the bucket table set to `version`; stamps the bucket table; and reports the inode's fields, which
   * the commit writes when inodeChanged. The stamp is then outstanding until confirm or unstamp; operations
   * may go on meanwhile, and belong to the next stamp.
   */
  stamp(version: number): DirectoryStamp {
    if (!Number.isSafeInteger(version) || version < 1 || version > MAX_VERSION) throw new RangeError(`${this.what}: commit version ${version}`);
    if (this.outstanding !== undefined) {
      throw new Error(`${this.what}: stamp ${this.outstanding.version} is neither confirmed nor unstamped, so ${version} cannot be stamped`);
    }
    if (version <= this.newestVersion) throw new RangeError(`${this.what}: commit ${version} is not newer than version ${this.newestVersion}, which it holds`);

    // First the plan, changing nothing of the directory: if the table refuses the version, the next stamp
    // starts over from the same changes (and sets the same slots again).
    const bucketWrites: BucketRecord[] = [];
    const bucketDeletes: BucketDelete[] = [];
    const settled: { bucket: HeldBucket; stored: StoredChainRecord[]; touched: boolean }[] = [];
    for (const bucket of this.changedBuckets) {
      const chain = packChain(bucket.entries);
      const before = bucket.stored;
      // The last position to write: every record whose content the store does not hold, and those before it,
      // whose `next` changes.
      let last = -1;
      for (let p = 0; p < chain.length; p++) {
        if (p >= before.length || !sameEntries(chain[p] as DirEntry[], (before[p] as StoredChainRecord).entries)) last = Math.max(last, p);
      }
      // A shorter chain's last record loses its `next`.
      if (chain.length < before.length && chain.length > 0) last = Math.max(last, chain.length - 1);
      const stored: StoredChainRecord[] = [];
      for (let p = 0; p < chain.length; p++) {
        if (p > last) {
          stored.push(before[p] as StoredChainRecord);
          continue;
        }
        const next = p < last ? version : p + 1 < chain.length ? (before[p + 1] as StoredChainRecord).version : HOLE;
        const entries = chain[p] as DirEntry[];
        bucketWrites.push({ bucket: bucket.bucket, chainPosition: p, next, entries });
        stored.push({ entries, version });
      }
      for (let p = chain.length; p < before.length; p++) bucketDeletes.push({ bucket: bucket.bucket, chainPosition: p });
      settled.push({ bucket, stored, touched: last >= 0 || chain.length < before.length });
    }
    const table = this.table;
    if (table === undefined && settled.length > 0) throw new Error(`${this.what}: changed buckets without a bucket table`);
    if (table !== undefined) {
      // Every changed bucket's slot is set, even to what the store holds: after a failed stamp it holds that stamp's number.
      for (const { bucket, stored } of settled) table.set(bucket.bucket, stored.length === 0 ? HOLE : (stored[0] as StoredChainRecord).version);
    }
    const tableStamped = table?.hasChanges ?? false;
    const tableStamp = tableStamped ? (table as SlotTree).stamp(version) : NO_TREE_CHANGES;

    const outstandingBuckets: OutstandingStamp['buckets'] = new Map();
    for (const { bucket, stored, touched } of settled) {
      if (touched) outstandingBuckets.set(bucket, bucket.stored);
      else if (bucket.entries.length === 0 && stored.length === 0) this.held.delete(bucket.bucket); // nothing to keep
      bucket.stored = stored;
    }
    this.changedBuckets.clear();
    const inodeChanged = this.inodeChanged || tableStamp.rootChanged;
    this.inodeChanged = false;
    this.newestVersion = version;
    this.outstanding = { version, buckets: outstandingBuckets, tableStamped, inodeChanged };
    return { bucketWrites, bucketDeletes, table: tableStamp, inodeChanged, inode: this.inodeFields() };
  }

  /** The write of stamp `version` succeeded: forgets what undoing it needed, and the buckets it emptied. */
  confirm(version: number): void {
    const stamp = this.takeOutstanding(version, 'confirm');
    if (stamp.tableStamped) this.table?.confirm(version);
    for (const bucket of stamp.buckets.keys()) {
      if (bucket.entries.length === 0 && bucket.stored.length === 0 && !this.changedBuckets.has(bucket)) this.held.delete(bucket.bucket);
    }
  }

  /**
   * The write of stamp `version` failed, so the store holds what it held before it. Each bucket the stamp
   * touched is compared again with the chain the store still holds: the next stamp writes, under its own
   * number, every record whose content differs (with what changed since), deletes again what is still to go,
   * and sets the bucket's slot again, which holds `version` now. The entries are left as they are.
   */
  unstamp(version: number): void {
    const stamp = this.takeOutstanding(version, 'unstamp');
    for (const [bucket, stored] of stamp.buckets) {
      bucket.stored = stored;
      this.changedBuckets.add(bucket);
    }
    if (stamp.tableStamped) this.table?.unstamp(version);
    if (stamp.inodeChanged) this.inodeChanged = true;
  }

  /**
   * Forgets the held buckets that are neither changed nor part of the outstanding stamp, and the bucket
   * table's held map nodes likewise; they are read again when needed. Returns how many buckets it forgot.
   */
  evict(): number {
    this.table?.evict();
    let evicted = 0;
    for (const [number, bucket] of this.held) {
      if (this.changedBuckets.has(bucket) || this.outstanding?.buckets.has(bucket)) continue;
      this.held.delete(number);
      evicted++;
    }
    return evicted;
  }

  // ---- the forms and their transitions ----

  private get bucketTotal(): number {
    return this.form === 'entries' ? 1 : 2 ** this.level + this.split;
  }

  /** The inline entries do not fit any more: they go to 2^L buckets, the smallest L with E ≤ 0.5 × B × 2^L, s = 0. */
  private toBuckets(): void {
    const level = levelForEntries(this.entryBytesNow());
    this.table ??= this.records.bucketTable([], 0);
    const byBucket = new Map<number, DirEntry[]>();
    // Each bucket's share of an sk-ordered list is in sk order too.
    for (const entry of this.inline) {
      const number = bucketOf(entry.hash, level, 0);
      const entries = byBucket.get(number);
      if (entries === undefined) byBucket.set(number, [entry]);
      else entries.push(entry);
    }
    for (const [number, entries] of byBucket) {
      const bucket = this.heldOrNew(number);
      bucket.entries = entries;
      this.changedBuckets.add(bucket);
    }
    this.form = 'buckets';
    this.inline = [];
    this.level = level;
    this.split = 0;
    this.inodeChanged = true;
  }

  /** One bucket is left with at most BACK_TO_INLINE_MAX bytes: its entries go back to the inode, and its records are deleted. */
  private toInline(): void {
    const bucket = this.bucketToChange(0);
    this.inline = bucket.entries;
    bucket.entries = [];
    this.changedBuckets.add(bucket);
    this.form = 'entries';
    this.level = 0;
    this.split = 0;
    this.inodeChanged = true;
  }

  /** The buckets splitting bucket s will change: s, read, and s + 2^L, which must be empty. */
  private prepareSplit(): { source: HeldBucket; target: HeldBucket } | undefined {
    // Bucket numbers are u32: at L = 31 the last split would make L = 32. A directory that large takes chains.
    if (this.level === DIR_LEVEL_MAX && this.split === 2 ** DIR_LEVEL_MAX - 1) return undefined;
    const source = this.bucketToChange(this.split);
    const targetNumber = this.split + 2 ** this.level;
    let target = this.held.get(targetNumber);
    if (target === undefined) {
      // 6.4: a slot past n is 0. (A bucket emptied by a merge in this batch is still held, with its records to delete.)
      const slot = this.bucketTableNow().get(targetNumber);
      if (slot !== HOLE) throw new IntegrityError(`${this.what}: bucket ${targetNumber}, past the ${this.bucketTotal} buckets, has a record (version ${slot})`);
      target = this.heldOrNew(targetNumber);
    }
    if (target.entries.length > 0) throw new Error(`${this.what}: bucket ${targetNumber} is past the ${this.bucketTotal} buckets but holds entries`);
    return { source, target };
  }

  /** Splits bucket s: its entries whose h mod 2^(L+1) is s + 2^L move to that bucket; s += 1, and at s = 2^L, L += 1 and s = 0. */
  private splitBucket(source: HeldBucket, target: HeldBucket): void {
    const moves = 2 ** this.level;
    const modulus = moves * 2;
    // Bit L of h is the (L+1)-th bit of sk, and the two buckets share the L bits before it: the entries that
    // stay come first in sk order and those that move after them, so the split is a cut.
    const cut = source.entries.findIndex((entry) => entry.hash.lo % modulus !== source.bucket);
    if (cut >= 0) {
      target.entries = source.entries.slice(cut);
      source.entries = source.entries.slice(0, cut);
      if (target.entries.some((entry) => entry.hash.lo % modulus !== target.bucket)) throw new Error(`${this.what}: bucket ${source.bucket} is out of sk order`);
    }
    this.changedBuckets.add(source);
    this.changedBuckets.add(target);
    this.split++;
    if (this.split === moves) {
      this.level++;
      this.split = 0;
    }
    this.inodeChanged = true;
  }

  /** The buckets undoing the last split will change, both read. */
  private prepareMerge(): { into: HeldBucket; from: HeldBucket } {
    const [level, split] = this.split === 0 ? [this.level - 1, 2 ** (this.level - 1) - 1] : [this.level, this.split - 1];
    return { into: this.bucketToChange(split), from: this.bucketToChange(split + 2 ** level) };
  }

  /** Undoes the last split: bucket s + 2^L's entries go back to bucket s (after s's, as the split's cut was). */
  private mergeBuckets(into: HeldBucket, from: HeldBucket): void {
    if (this.split === 0) {
      this.level--;
      this.split = 2 ** this.level - 1;
    } else {
      this.split--;
    }
    into.entries = into.entries.concat(from.entries);
    from.entries = [];
    this.changedBuckets.add(into);
    this.changedBuckets.add(from);
    this.inodeChanged = true;
  }

  // ---- buckets ----

  private bucketTableNow(): SlotTree {
    if (this.table === undefined) throw new Error(`${this.what}: no bucket table`);
    return this.table;
  }

  /** Bucket `number` as held or read from the store, or undefined when it has no record and is not held. */
  private loadBucket(number: number): HeldBucket | undefined {
    const held = this.held.get(number);
    if (held !== undefined) return held;
    const first = this.bucketTableNow().get(number);
    if (first === HOLE) return undefined;
    const stored = this.readChain(number, first);
    const bucket: HeldBucket = { bucket: number, entries: stored.flatMap((record) => record.entries), stored };
    this.held.set(number, bucket);
    return bucket;
  }

  /** Reads bucket `number`'s chain: record 0 at version `first`, each next at the version the one before holds. */
  private readChain(number: number, first: number): StoredChainRecord[] {
    const chain: StoredChainRecord[] = [];
    let after: DirEntry | undefined;
    let version = first;
    for (let position = 0; version !== HOLE; position++) {
      const what = `${this.what}, bucket ${number}, chain position ${position}`;
      if (position > CHAIN_POSITION_MAX) throw new IntegrityError(`${what}: the chain goes on past chain position ${CHAIN_POSITION_MAX}`);
      const place: BucketPlace = { dirIno: this.dirIno, bucket: number, chainPosition: position, level: this.level, split: this.split, after };
      const record = this.records.readBucket(place, version);
      if (record.bucket !== number || record.chainPosition !== position) throw new IntegrityError(`${what}: read as bucket ${record.bucket}, chain position ${record.chainPosition}`);
      // The record after it was written in the same commit or before (5.6 writes an owner with what it owns).
      if (record.next > version) throw new IntegrityError(`${what}: next ${record.next} is newer than the record (${version})`);
      chain.push({ entries: record.entries, version });
      after = record.entries[record.entries.length - 1] ?? after;
      this.newestVersion = Math.max(this.newestVersion, version);
      version = record.next;
    }
    return chain;
  }

  /** Bucket `number`, read or held, or a new empty one held to take entries. */
  private bucketToChange(number: number): HeldBucket {
    return this.loadBucket(number) ?? this.heldOrNew(number);
  }

  private heldOrNew(number: number): HeldBucket {
    let bucket = this.held.get(number);
    if (bucket === undefined) {
      bucket = { bucket: number, entries: [], stored: [] };
      this.held.set(number, bucket);
    }
    return bucket;
  }

  /** Every bucket's entries, 0 to n − 1, read where not held; checks the totals and the slots past n. */
  private loadEveryBucket(): DirEntry[][] {
    const runs: DirEntry[][] = [];
    let count = 0;
    let bytes = 0;
    for (let number = 0; number < this.bucketTotal; number++) {
      const entries = this.loadBucket(number)?.entries ?? [];
      runs.push(entries);
      count += entries.length;
      bytes += entriesLength(entries);
    }
    for (const { index, version } of this.bucketTableNow().versions(this.bucketTotal)) {
      if (!this.held.has(index)) throw new IntegrityError(`${this.what}: bucket ${index}, past the ${this.bucketTotal} buckets, has a record (version ${version})`);
    }
    if (count !== this.entryCount) throw new IntegrityError(`${this.what}: ${count} entries in the buckets, the inode counts ${this.entryCount}`);
    if (this.knownBytes !== undefined && bytes !== this.knownBytes) throw new IntegrityError(`${this.what}: ${bytes} bytes of entries in the buckets, ${this.knownBytes} known`);
    this.knownBytes = bytes;
    return runs;
  }

  // ---- entries and counts ----

  /** E, summed from every bucket the first time it is needed if the inode did not give it. */
  private entryBytesNow(): number {
    if (this.knownBytes === undefined) this.loadEveryBucket();
    return this.knownBytes as number;
  }

  private counted(entries: number, bytes: number): void {
    this.entryCount += entries;
    this.knownBytes = bytes;
    this.inodeChanged = true;
  }

  private probe(name: Buffer): DirEntry {
    return { ino: 0, type: 1, name, hash: nameHash(this.dirhashKey, this.dirIno, name) };
  }

  private newEntry(name: Buffer, ino: number, type: FileType, hash?: U64Words): DirEntry {
    const problem = nameProblem(name);
    if (problem !== undefined) throw new RangeError(`${this.what}: ${problem}`);
    if (!Number.isSafeInteger(ino) || ino < 1) throw new RangeError(`${this.what}: entry ino ${ino}`);
    if (!isFileType(type)) throw new RangeError(`${this.what}: type code ${String(type)}`);
    return { ino, type, name, hash: hash ?? nameHash(this.dirhashKey, this.dirIno, name) };
  }

  private exists(name: Buffer): FsError {
    return new FsError('EEXIST', `${this.what}: ${JSON.stringify(name.toString())} exists`);
  }

  private inodeFields(): DirectoryInode {
    const primary: DirectoryPrimary =
      this.form === 'entries'
        ? { form: 'entries', entries: encodeInlineEntries(this.inline) }
        : { form: 'buckets', level: this.level, split: this.split, depth: this.bucketTableNow().depth, root: this.bucketTableNow().rootEntries() };
    return { primary, count: this.entryCount, entryBytes: this.knownBytes };
  }

  private takeOutstanding(version: number, op: string): OutstandingStamp {
    const stamp = outstandingStamp(this.outstanding, version, op, this.what);
    this.outstanding = undefined;
    return stamp;
  }
}
