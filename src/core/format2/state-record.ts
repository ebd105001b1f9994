// The state record's payload (kind 1; docs/format-2.md, 5.5): the vault's one record with no owner but
// the rollback anchor. It holds the commit number, the counter's durable reservation, inode numbering,
// epochs, upgrade and rescatter progress, the repair queue's head, the metadata log's position, and the
// root of the inode table. Also the repair-queue records (kind 6, 10.5) that hang from it: pieces stored
// short, waiting for `svault repair`. Pure: bytes in, typed records out, and back.
//
// Checks that need more than one record are not made here: that the commit is not below the anchor's
// (5.7), that no version anywhere in the tree reaches reservedUpTo (section 11), that preallocPieces,
// liveInodes and liveRecords match what a walk finds (fsck, 5.10 and 9), that the queue's chain has
// repairQueueRecords records, and that a queued piece's slot still holds its version (10.5: such an
// entry is dropped, not damaged).

import { IntegrityError } from '../errors.js';
import { isVersion, MAX_VERSION, readSlot, readU64, SLOT_BYTES, writeSlot, writeU64 } from './slot.js';

export interface StateRecord {
  /** This record's version: the commit that wrote it. */
  readonly commit: number;
  /** Counter values below this are reserved, durably (section 11). */
  readonly reservedUpTo: number;
  /** Never reused. */
  readonly nextIno: number;
  readonly liveInodes: number;
  /** H0 for an upgraded vault; 0 for a vault created as format 2. */
  readonly legacyBelow: number;
  /** Preallocated slots in the whole vault (section 9). */
  readonly preallocPieces: number;
  /** Pieces at this version or above are in the current epoch (10.6). */
  readonly epochStartVersion: number;
  readonly addressEpoch: number;
  /** Equals addressEpoch when no rescatter runs. */
  readonly previousEpoch: number;
  /** Where a rescatter resumes (a hint). */
  readonly rescatterCursor: number;
  /** 0 none or finished, 1 upgraded, 2 finishing (4.4). */
  readonly upgradeStage: UpgradeStage;
  /** Depth of the inode table's slot tree, 0 to 3. */
  readonly inodeTableDepth: number;
  /** Where `upgrade --finish` resumes. */
  readonly finishCursor: number;
  /** Version of repair-queue record 0, or 0 for an empty queue. */
  readonly repairQueueHead: number;
  readonly repairQueueRecords: number;
  /** Index of the metadata segment this commit goes into; 0 without a log (10.7). */
  readonly segmentIndex: number;
  /** Tag of segment segmentIndex − 1, or zeroes. */
  readonly segmentPrevTag: Buffer;
  /** Rows other than metadata chaff, for fsck. */
  readonly liveRecords: number;
  /** The inode table's root: slots at depth 0, map-node versions above. At most 400. */
  readonly inodeTableRoot: readonly number[];
}

export type UpgradeStage = 0 | 1 | 2;

/** Entries of the inode table's root in the state record. */
export const STATE_ROOT_MAX = 400;
export const STATE_FIXED_BYTES = 136;
export const SEGMENT_TAG_BYTES = 16;
const INODE_TABLE_DEPTH_MAX = 3;
const UPGRADE_STAGE_MAX = 2;

/** Offsets of 5.5. */
const At = {
  commit: 0,
  reservedUpTo: 8,
  nextIno: 16,
  liveInodes: 24,
  legacyBelow: 32,
  preallocPieces: 40,
  epochStartVersion: 48,
  addressEpoch: 56,
  previousEpoch: 60,
  rescatterCursor: 64,
  upgradeStage: 72,
  inodeTableDepth: 73,
  inodeTableRootCount: 74,
  zeroAfterRootCount: 76, // 4 bytes
  finishCursor: 80,
  repairQueueHead: 88,
  repairQueueRecords: 96,
  zeroAfterQueue: 100, // 4 bytes
  segmentIndex: 104,
  segmentPrevTag: 112,
  liveRecords: 128,
  root: 136,
} as const;

/** The u64 fields that are plain counts or cursors: any number below 2^53. */
const COUNT_FIELDS = ['nextIno', 'liveInodes', 'preallocPieces', 'rescatterCursor', 'finishCursor', 'segmentIndex', 'liveRecords'] as const;
/** The u64 fields that hold counter values: versions, read and written as slots are (section 1, 5.4). */
const VERSION_FIELDS = ['commit', 'reservedUpTo', 'legacyBelow', 'epochStartVersion', 'repairQueueHead'] as const;

const TWO_32 = 2 ** 32;

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < TWO_32;
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** A version a slot can hold, or 0 for none. */
function isVersionOrZero(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= MAX_VERSION;
}

/** A u64 count as a number: 2^53 or more cannot be held exactly, and no writer makes it. */
function readCount(buf: Buffer, at: number, what: string): number {
  const n = readU64(buf, at);
  if (n === undefined) throw new IntegrityError(`${what} is 2^53 or more`);
  return n;
}

/** What is wrong with `state` by 5.5, or undefined. The encoder refuses what the decoder would call damaged. */
function stateProblem(s: StateRecord): string | undefined {
  for (const field of COUNT_FIELDS) if (!isCount(s[field])) return `${field} ${s[field]}`;
  for (const field of VERSION_FIELDS) if (!isVersionOrZero(s[field])) return `${field} ${s[field]}`;
  if (!isU32(s.addressEpoch) || !isU32(s.previousEpoch) || !isU32(s.repairQueueRecords)) return 'an epoch or the repair-queue count is not a u32';
  if (!Number.isInteger(s.upgradeStage) || s.upgradeStage < 0 || s.upgradeStage > UPGRADE_STAGE_MAX) return `upgradeStage ${s.upgradeStage}`;
  if (!Number.isInteger(s.inodeTableDepth) || s.inodeTableDepth < 0 || s.inodeTableDepth > INODE_TABLE_DEPTH_MAX) return `inodeTableDepth ${s.inodeTableDepth}`;
  if (s.segmentPrevTag.length !== SEGMENT_TAG_BYTES) return `segmentPrevTag of ${s.segmentPrevTag.length} bytes`;
  if (s.commit >= s.reservedUpTo) return `commit ${s.commit} not below reservedUpTo ${s.reservedUpTo}`;
  if (s.inodeTableRoot.length > STATE_ROOT_MAX) return `inode table root of ${s.inodeTableRoot.length} entries (at most ${STATE_ROOT_MAX})`;
  for (const v of s.inodeTableRoot) {
    if (!isVersionOrZero(v)) return `inode table root entry ${v}`;
    if (v > s.commit) return `inode table root entry at version ${v}, after commit ${s.commit}`;
  }
  // The queue head is a version this record holds, as the root's are; a queue has records exactly when it has a head.
  if (s.repairQueueHead > s.commit) return `repair queue head at version ${s.repairQueueHead}, after commit ${s.commit}`;
  if ((s.repairQueueHead === 0) !== (s.repairQueueRecords === 0)) return `repair queue head ${s.repairQueueHead} with ${s.repairQueueRecords} records`;
  return undefined;
}

export function encodeStateRecord(state: StateRecord): Buffer {
  const problem = stateProblem(state);
  if (problem) throw new RangeError(`state record: ${problem}`);
  const payload = Buffer.alloc(STATE_FIXED_BYTES + SLOT_BYTES * state.inodeTableRoot.length);
  for (const field of COUNT_FIELDS) writeU64(payload, At[field], state[field]);
  for (const field of VERSION_FIELDS) writeSlot(payload, At[field], state[field]);
  payload.writeUInt32BE(state.addressEpoch, At.addressEpoch);
  payload.writeUInt32BE(state.previousEpoch, At.previousEpoch);
  payload.writeUInt8(state.upgradeStage, At.upgradeStage);
  payload.writeUInt8(state.inodeTableDepth, At.inodeTableDepth);
  payload.writeUInt16BE(state.inodeTableRoot.length, At.inodeTableRootCount);
  payload.writeUInt32BE(state.repairQueueRecords, At.repairQueueRecords);
  state.segmentPrevTag.copy(payload, At.segmentPrevTag);
  state.inodeTableRoot.forEach((v, i) => writeSlot(payload, At.root + SLOT_BYTES * i, v));
  return payload;
}

/** Reads the state record's payload. Every failure is IntegrityError, kind damaged. */
export function decodeStateRecord(payload: Buffer): StateRecord {
  const what = 'state record';
  const damaged = (problem: string): never => {
    throw new IntegrityError(`${what}: ${problem}`);
  };
  if (payload.length < STATE_FIXED_BYTES) damaged(`payload of ${payload.length} bytes`);
  const rootCount = payload.readUInt16BE(At.inodeTableRootCount);
  if (rootCount > STATE_ROOT_MAX) damaged(`inodeTableRootCount ${rootCount} (at most ${STATE_ROOT_MAX})`);
  if (payload.length !== STATE_FIXED_BYTES + SLOT_BYTES * rootCount) damaged(`payload of ${payload.length} bytes for a root of ${rootCount}`);
  if (payload.readUInt32BE(At.zeroAfterRootCount) !== 0 || payload.readUInt32BE(At.zeroAfterQueue) !== 0) damaged('a zero field is not zero');
  const count = (field: (typeof COUNT_FIELDS)[number]) => readCount(payload, At[field], `${what}, ${field}`);
  const version = (field: (typeof VERSION_FIELDS)[number]) => readSlot(payload, At[field], false, `${what}, ${field}`);
  const root: number[] = [];
  for (let i = 0; i < rootCount; i++) root.push(readSlot(payload, At.root + SLOT_BYTES * i, false, `${what}, inode table root`));
  const state: StateRecord = {
    commit: version('commit'),
    reservedUpTo: version('reservedUpTo'),
    nextIno: count('nextIno'),
    liveInodes: count('liveInodes'),
    legacyBelow: version('legacyBelow'),
    preallocPieces: count('preallocPieces'),
    epochStartVersion: version('epochStartVersion'),
    addressEpoch: payload.readUInt32BE(At.addressEpoch),
    previousEpoch: payload.readUInt32BE(At.previousEpoch),
    rescatterCursor: count('rescatterCursor'),
    upgradeStage: payload.readUInt8(At.upgradeStage) as UpgradeStage,
    inodeTableDepth: payload.readUInt8(At.inodeTableDepth),
    finishCursor: count('finishCursor'),
    repairQueueHead: version('repairQueueHead'),
    repairQueueRecords: payload.readUInt32BE(At.repairQueueRecords),
    segmentIndex: count('segmentIndex'),
    segmentPrevTag: Buffer.from(payload.subarray(At.segmentPrevTag, At.segmentPrevTag + SEGMENT_TAG_BYTES)),
    liveRecords: count('liveRecords'),
    inodeTableRoot: root,
  };
  const problem = stateProblem(state);
  if (problem) damaged(problem);
  return state;
}

// ---- the repair queue (10.5) ----

/** A piece stored short: `missingStores` has bit i set when store i of its epoch's placement lacks its fragment. */
export interface RepairEntry {
  readonly ino: number;
  readonly index: number;
  readonly version: number;
  readonly missingStores: number;
}

/** One record of the repair queue's chain. */
export interface RepairQueueRecord {
  readonly position: number;
  /** Version of the record at position + 1, or 0 at the chain's end. */
  readonly next: number;
  readonly entries: readonly RepairEntry[];
}

/**
 * How many stores the placement of a piece's epoch lists (k + m), so that its bitmap can be checked:
 * the caller knows which epoch a version is in (10.6, epochStartVersion) and each epoch's placement.
 */
export type PlacementWidth = (version: number) => number;

/** u32 position ‖ u32 entries ‖ u64 next. */
const REPAIR_HEADER_BYTES = 16;
/** u64 ino ‖ u64 index ‖ u64 version ‖ u32 missing stores. */
const REPAIR_ENTRY_BYTES = 28;
/** Entries a record holds: floor((3,956 − 16) / 28). */
export const REPAIR_ENTRIES_MAX = 140;

/** What is wrong with a queue record, or undefined. */
function repairQueueProblem(record: RepairQueueRecord, placementWidth: PlacementWidth): string | undefined {
  if (!isU32(record.position)) return `position ${record.position}`;
  if (!isVersionOrZero(record.next)) return `next ${record.next}`;
  if (record.entries.length > REPAIR_ENTRIES_MAX) return `${record.entries.length} entries (at most ${REPAIR_ENTRIES_MAX})`;
  for (const e of record.entries) {
    if (!isCount(e.ino) || e.ino < 1 || !isCount(e.index)) return `entry for ino ${e.ino}, piece ${e.index}`;
    if (!isVersionOrZero(e.version) || !isVersion(e.version)) return `entry at version ${e.version}`;
    if (!isU32(e.missingStores)) return `missing-store bitmap ${e.missingStores}`;
    const width = placementWidth(e.version);
    // Placements list at most 8 stores (k + m ≤ 8), so a 32-bit shift is exact.
    if (width < 32 && e.missingStores >>> width !== 0) {
      return `ino ${e.ino}, piece ${e.index}: bitmap 0x${e.missingStores.toString(16)} names a store past the placement's ${width}`;
    }
  }
  return undefined;
}

export function encodeRepairQueueRecord(record: RepairQueueRecord, placementWidth: PlacementWidth): Buffer {
  const problem = repairQueueProblem(record, placementWidth);
  if (problem) throw new RangeError(`repair queue record ${record.position}: ${problem}`);
  const payload = Buffer.alloc(REPAIR_HEADER_BYTES + REPAIR_ENTRY_BYTES * record.entries.length);
  payload.writeUInt32BE(record.position, 0);
  payload.writeUInt32BE(record.entries.length, 4);
  writeSlot(payload, 8, record.next);
  record.entries.forEach((e, i) => {
    const at = REPAIR_HEADER_BYTES + REPAIR_ENTRY_BYTES * i;
    writeU64(payload, at, e.ino);
    writeU64(payload, at + 8, e.index);
    writeSlot(payload, at + 16, e.version);
    payload.writeUInt32BE(e.missingStores, at + 24);
  });
  return payload;
}

/** Reads the payload of the repair-queue record at `position`. Every failure is IntegrityError, kind damaged. */
export function decodeRepairQueueRecord(payload: Buffer, position: number, placementWidth: PlacementWidth): RepairQueueRecord {
  const what = `repair queue record ${position}`;
  const damaged = (problem: string): never => {
    throw new IntegrityError(`${what}: ${problem}`);
  };
  if (payload.length < REPAIR_HEADER_BYTES) damaged(`payload of ${payload.length} bytes`);
  if (payload.readUInt32BE(0) !== position) damaged(`holds position ${payload.readUInt32BE(0)}`);
  const count = payload.readUInt32BE(4);
  if (count > REPAIR_ENTRIES_MAX) damaged(`${count} entries (at most ${REPAIR_ENTRIES_MAX})`);
  if (payload.length !== REPAIR_HEADER_BYTES + REPAIR_ENTRY_BYTES * count) damaged(`payload of ${payload.length} bytes for ${count} entries`);
  const entries: RepairEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = REPAIR_HEADER_BYTES + REPAIR_ENTRY_BYTES * i;
    const field = `${what}, entry ${i}`;
    entries.push({ ino: readCount(payload, at, `${field}, ino`), index: readCount(payload, at + 8, `${field}, index`), version: readSlot(payload, at + 16, false, field), missingStores: payload.readUInt32BE(at + 24) });
  }
  const record = { position, next: readSlot(payload, 8, false, what), entries };
  const problem = repairQueueProblem(record, placementWidth);
  if (problem) damaged(problem);
  return record;
}
