// The root of format 2's version tree (docs/format-2.md 5.4 to 5.6): the state record and the inode table
// it holds. It is the commit batcher's root participant, stamped last in every cut: inodes stamped before it
// set their slots in the inode table (setInodeVersion), and its stamp writes the table's changed map nodes
// and then the state record, at the cut's number, with the counter's reservation (section 11).
//
// Reading goes the other way: the state record is opened at the version it claims (the anchor checks that
// number), the inode table's nodes at the versions their parents hold, and an inode at the version its
// slot holds, so a record put back from another commit is found out as stale (5.6).

import { IntegrityError } from '../errors.js';
import { outstandingStamp, type CommitParticipant, type ParticipantStamp } from './commit-batch.js';
import { mapNodeSource, treeRecords } from './owners.js';
import { stateRecordName } from './record-names.js';
import { RecordKind, type RecordSealer } from './record-seal.js';
import { HOLE } from './slot.js';
import { SlotTree, slotTreeCapacity, STATE_ROOT_CAPACITY } from './slot-tree.js';
import { decodeStateRecord, encodeStateRecord, type StateRecord } from './state-record.js';
import type { VersionCounter } from './version-counter.js';

/** Where the root reads records: meta2.db's table. */
export interface RecordReader {
  get(name: Buffer): Buffer | null;
}

/** The inode table's map nodes are named as an owner of ino 0 would name them (5.3). */
const INODE_TABLE_OWNER = 0;

/** The state record of a new vault, before its first commit: no inode, no reservation used. */
export function emptyState(reservedUpTo: number): StateRecord {
  return {
    commit: 0,
    reservedUpTo,
    nextIno: 1,
    liveInodes: 0,
    legacyBelow: 0,
    preallocPieces: 0,
    epochStartVersion: 0,
    addressEpoch: 0,
    previousEpoch: 0,
    rescatterCursor: 0,
    upgradeStage: 0,
    inodeTableDepth: 0,
    finishCursor: 0,
    repairQueueHead: 0,
    repairQueueRecords: 0,
    segmentIndex: 0,
    segmentPrevTag: Buffer.alloc(16),
    liveRecords: 0,
    inodeTableRoot: [],
  };
}

/** The counts and cursors a commit carries in the state record, besides the tree and the reservation. */
export type StateFields = Omit<StateRecord, 'commit' | 'reservedUpTo' | 'inodeTableDepth' | 'inodeTableRoot'>;

export class StateRoot implements CommitParticipant {
  readonly level = Number.POSITIVE_INFINITY; // the root: stamped after every level
  /** The state as the last confirmed commit wrote it (or as read at open). */
  private committed: StateRecord;
  /** Fields changed since, written by the next cut. */
  fields: StateFields;
  private readonly inodeTable: SlotTree;
  /** The stamp waiting for its write: what it wrote, to make it the committed state on confirm. */
  private outstanding: { version: number; state: StateRecord } | null = null;

  private constructor(
    private readonly names: Buffer,
    private readonly sealer: RecordSealer,
    private readonly reader: RecordReader,
    private readonly counter: VersionCounter,
    state: StateRecord,
  ) {
    this.committed = state;
    const { commit: _c, reservedUpTo: _r, inodeTableDepth: _d, inodeTableRoot: _t, ...fields } = state;
    this.fields = fields;
    this.inodeTable = new SlotTree({
      root: state.inodeTableRoot,
      depth: state.inodeTableDepth,
      rootCapacity: STATE_ROOT_CAPACITY,
      special: false,
      what: 'the inode table',
      nodes: mapNodeSource({ names, sealer, reader }, INODE_TABLE_OWNER, false, 'inode table'),
    });
  }

  /** A new vault's root: nothing stored yet; the first cut (the opening commit) writes the state record. */
  static create(names: Buffer, sealer: RecordSealer, reader: RecordReader, counter: VersionCounter): StateRoot {
    return new StateRoot(names, sealer, reader, counter, emptyState(counter.reservedUpTo));
  }

  /**
   * The root as the store holds it: the state record opened at the version it claims (5.6, verification at
   * mount, step 1). The caller compares `commit` with the rollback anchor before trusting it.
   */
  static open(names: Buffer, sealer: RecordSealer, reader: RecordReader, counterFor: (reservedUpTo: number) => VersionCounter): { root: StateRoot; counter: VersionCounter } {
    const name = stateRecordName(names);
    const value = reader.get(name);
    if (!value) throw new IntegrityError('the state record is missing: no metadata', 'missing');
    const { version, payload } = sealer.openAtClaimedVersion(name, value, RecordKind.state, 'the state record');
    const state = decodeStateRecord(payload);
    if (state.commit !== version) throw new IntegrityError(`the state record says commit ${state.commit} but was sealed at ${version}`);
    const counter = counterFor(state.reservedUpTo);
    return { root: new StateRoot(names, sealer, reader, counter, state), counter };
  }

  /** The last committed state record. */
  get state(): StateRecord {
    return this.committed;
  }

  /** The version of inode `ino`'s record, 0 when there is none (IntegrityError for an unreadable table node). */
  inodeVersion(ino: number): number {
    return this.inodeTable.get(ino);
  }

  /** Points the table at inode `ino`'s record as written by commit `version` (0: deleted). For the inodes' stamps. */
  setInodeVersion(ino: number, version: number): void {
    this.inodeTable.set(ino, version === 0 ? HOLE : version);
  }

  /** Every inode the table holds and the version of its record, in ino order (fsck, 5.10). */
  inodeVersions(start?: number, end?: number): Generator<{ index: number; version: number }> {
    return this.inodeTable.versions(start, end);
  }

  /** The inos the inode table can hold at its depth, and the inos under one of its leaves: fsck walks it leaf by leaf. */
  get inodeTableSpan(): { capacity: number; leaf: number } {
    return { capacity: slotTreeCapacity(STATE_ROOT_CAPACITY, this.inodeTable.depth, this.inodeTable.nodeSlots), leaf: this.inodeTable.nodeSlots };
  }

  /** The inode table's map nodes, each read and checked (fsck, 5.10). */
  inodeTableNodes(): Generator<{ level: number; nodeNo: number }> {
    return this.inodeTable.storedNodes();
  }

  stamp(c: number): ParticipantStamp {
    const reservedUpTo = this.counter.reservationForCut();
    const table = this.inodeTable.stamp(c);
    const { writes, deletes } = treeRecords(this.names, INODE_TABLE_OWNER, table);
    // Read right after the stamp: later changes put placeholders in the root (slot-tree.ts).
    const state: StateRecord = { ...this.fields, commit: c, reservedUpTo, inodeTableDepth: this.inodeTable.depth, inodeTableRoot: this.inodeTable.rootEntries() };
    writes.push({ name: stateRecordName(this.names), kind: RecordKind.state, payload: encodeStateRecord(state) });
    this.outstanding = { version: c, state };
    return { writes, deletes };
  }

  confirm(c: number): void {
    const stamp = outstandingStamp(this.outstanding, c, 'confirm', 'the state record');
    this.inodeTable.confirm(c);
    this.committed = stamp.state;
    this.counter.confirmed(this.committed.reservedUpTo);
    this.outstanding = null;
  }

  unstamp(c: number): void {
    outstandingStamp(this.outstanding, c, 'unstamp', 'the state record');
    this.inodeTable.unstamp(c);
    this.counter.failed();
    this.outstanding = null;
  }
}
