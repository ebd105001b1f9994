// Format 2's inodes (docs/format-2.md 6.1, 5.6, 5.9): found by inode number through the inode table at
// the version their slot holds, kept decoded, and written at commits. An inode changed since the last
// confirmed commit is a participant of the next cut (level 1, after the trees below it): its stamp encodes
// it at the cut's number and points the inode table at it. A new inode brings its metadata chaff records
// (5.9) in the same commit, and a removed one takes them away with its own record.

import { randomBytes } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import type { CommitBatcher, CommitParticipant, ParticipantStamp } from './commit-batch.js';
import { decodeInode, encodeInode, type InodeRecord } from './inode-record.js';
import { chaffRecordCount, chaffRecordName, inodeRecordName } from './record-names.js';
import { RECORD_BYTES, RecordKind, type RecordSealer } from './record-seal.js';
import type { RecordReader, StateRoot } from './state-root.js';

/** Clean inodes kept decoded; changed ones are kept until their commit whatever their number. */
const DEFAULT_CACHE_LIMIT = 20_000;

export interface InodeStoreOptions {
  names: Buffer;
  /** The chaff key of the current epoch and the vault's chaff ratio (5.9). */
  chaffKey: Buffer;
  chaffRatio: number;
  sealer: RecordSealer;
  reader: RecordReader;
  root: StateRoot;
  batcher: CommitBatcher;
  pieceSize: number;
  cacheLimit?: number;
}

export class InodeStore {
  /** Inodes as the last confirmed commit left them, most recently used last. */
  private readonly clean = new Map<number, InodeRecord>();
  /** Inodes changed since the last confirmed commit, by number. */
  private readonly changed = new Map<number, ChangedInode>();

  constructor(private readonly o: InodeStoreOptions) {}

  /** Inode `ino`, or null when the inode table has no record for it. A record that fails its check: IntegrityError. */
  get(ino: number): InodeRecord | null {
    const c = this.changed.get(ino);
    if (c) return c.removed ? null : (c.inode ?? null);
    const cached = this.clean.get(ino);
    if (cached) {
      this.clean.delete(ino); // most recently used last
      this.clean.set(ino, cached);
      return cached;
    }
    const version = this.o.root.inodeVersion(ino);
    if (version === 0) return null;
    const name = inodeRecordName(this.o.names, ino);
    const payload = this.o.sealer.open(name, this.o.reader.get(name), version, RecordKind.inode, `inode ${ino}`);
    const inode = decodeInode(payload, ino, this.o.pieceSize);
    this.remember(ino, inode);
    return inode;
  }

  /** Inode `ino`, which something points to: its absence is damage. */
  require(ino: number): InodeRecord {
    return this.get(ino) ?? failMissing(ino);
  }

  /** The number the next new inode gets (never reused: the state record counts them). */
  allocateIno(): number {
    const ino = this.o.root.fields.nextIno;
    this.o.root.fields = { ...this.o.root.fields, nextIno: ino + 1 };
    return ino;
  }

  /** Stages a new inode (its number from allocateIno), with its metadata chaff. */
  add(inode: InodeRecord): void {
    if (this.get(inode.ino) !== null) throw new Error(`inode ${inode.ino} exists already`);
    const c = this.participant(inode.ino);
    c.inode = inode;
    c.removed = false;
    c.chaffToWrite = true;
    this.o.root.fields = { ...this.o.root.fields, liveInodes: this.o.root.fields.liveInodes + 1 };
    this.o.batcher.touch(c);
  }

  /** Stages a change of an existing inode. */
  put(inode: InodeRecord): void {
    if (this.get(inode.ino) === null) throw new Error(`inode ${inode.ino} does not exist`);
    const c = this.participant(inode.ino);
    c.inode = inode;
    this.o.batcher.touch(c);
  }

  /** Stages the removal of inode `ino`: its record and its chaff go in the next commit. */
  remove(ino: number): void {
    const inode = this.require(ino);
    const c = this.participant(ino);
    c.inode = inode;
    c.removed = true;
    this.o.root.fields = { ...this.o.root.fields, liveInodes: this.o.root.fields.liveInodes - 1 };
    this.o.batcher.touch(c);
  }

  /**
   * Stages the removal of inode `ino` whose record cannot be read (fsck --repair, 5.10): its slot in the
   * inode table goes, with its record and chaff. What it owned is left as rows nothing reaches.
   */
  removeUnreadable(ino: number): void {
    const c = this.participant(ino);
    c.inode = undefined;
    c.removed = true;
    this.o.root.fields = { ...this.o.root.fields, liveInodes: Math.max(0, this.o.root.fields.liveInodes - 1) };
    this.o.batcher.touch(c);
  }

  /**
   * Stages `inode` in place of a record that cannot be read, at the same ino (fsck --repair recreating a
   * directory, 5.10). Its chaff records are already there.
   */
  replaceUnreadable(inode: InodeRecord): void {
    const c = this.participant(inode.ino);
    c.inode = inode;
    c.removed = false;
    this.o.batcher.touch(c);
  }

  /** How many inodes are held decoded (changed ones included). */
  get held(): number {
    return this.clean.size + this.changed.size;
  }

  private participant(ino: number): ChangedInode {
    let c = this.changed.get(ino);
    if (!c) {
      const inode = this.clean.get(ino);
      this.clean.delete(ino);
      c = new ChangedInode(this, ino, inode);
      this.changed.set(ino, c);
    } else if (c.stampedAt !== null) {
      c.changedSinceStamp = true;
    }
    return c;
  }

  private remember(ino: number, inode: InodeRecord): void {
    this.clean.set(ino, inode);
    const limit = this.o.cacheLimit ?? DEFAULT_CACHE_LIMIT;
    while (this.clean.size > limit) this.clean.delete(this.clean.keys().next().value as number);
  }

  /** Called by a changed inode once its commit is confirmed and nothing changed it since. */
  settled(c: ChangedInode): void {
    this.changed.delete(c.ino);
    if (!c.removed && c.inode) this.remember(c.ino, c.inode);
  }

  /** The names of inode `ino`'s metadata chaff records (5.9): derived, so a deletion and fsck know them. */
  chaffNamesOf(ino: number): Buffer[] {
    return Array.from({ length: chaffRecordCount(this.o.chaffKey, this.o.chaffRatio, ino) }, (_, j) => chaffRecordName(this.o.names, ino, j));
  }

  /** What a changed inode's stamp writes: its record, or its removal, and its chaff (5.9). */
  stampOf(c: ChangedInode, version: number): ParticipantStamp {
    const name = inodeRecordName(this.o.names, c.ino);
    this.o.root.setInodeVersion(c.ino, c.removed ? 0 : version);
    const chaffNames = () => this.chaffNamesOf(c.ino);
    if (c.removed) {
      // A new inode removed before its first commit has no records; deleting absent rows costs nothing.
      return { writes: [], deletes: [name, ...chaffNames()] };
    }
    const stamp: ParticipantStamp = { writes: [{ name, kind: RecordKind.inode, payload: encodeInode(c.inode as InodeRecord) }], deletes: [] };
    if (c.chaffToWrite) stamp.raw = chaffNames().map((n) => ({ name: n, value: randomBytes(RECORD_BYTES) }));
    return stamp;
  }
}

/** An inode changed since the last confirmed commit: the participant the cut stamps. */
class ChangedInode implements CommitParticipant {
  readonly level = 1;
  removed = false;
  /** A new inode whose chaff records are not written yet. */
  chaffToWrite = false;
  stampedAt: number | null = null;
  /** Changed again after the outstanding stamp: stays a participant after its confirm. */
  changedSinceStamp = false;
  /** What the outstanding stamp wrote about the chaff (restored by an unstamp). */
  private chaffInStamp = false;

  constructor(
    private readonly store: InodeStore,
    readonly ino: number,
    public inode: InodeRecord | undefined,
  ) {}

  stamp(c: number): ParticipantStamp {
    const s = this.store.stampOf(this, c);
    this.stampedAt = c;
    this.changedSinceStamp = false;
    this.chaffInStamp = this.chaffToWrite && !this.removed;
    if (this.chaffInStamp) this.chaffToWrite = false;
    return s;
  }

  confirm(c: number): void {
    if (this.stampedAt !== c) throw new Error(`inode ${this.ino}: confirm of ${c}, stamped at ${this.stampedAt}`);
    this.stampedAt = null;
    if (!this.changedSinceStamp) this.store.settled(this);
  }

  unstamp(c: number): void {
    if (this.stampedAt !== c) throw new Error(`inode ${this.ino}: unstamp of ${c}, stamped at ${this.stampedAt}`);
    this.stampedAt = null;
    if (this.chaffInStamp) this.chaffToWrite = true; // the chaff was never written: the next stamp writes it
  }
}

function failMissing(ino: number): never {
  throw new IntegrityError(`inode ${ino} is referenced but the inode table has no record of it`, 'missing');
}
