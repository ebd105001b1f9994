// The names of format 2's records (docs/format-2.md, 5.3), and how many chaff records an inode has (5.9).
// A name is PRF(names key, label, fields…): 32 bytes that look random without the key, so meta2.db's `k`
// column says nothing about what a row is or whose it is. Every field is fixed-width (keys.ts), so no two
// records share a name, whatever their kind or numbers.

import { labeledPrf, u16, u32, u64, u8 } from './keys.js';

/** Bytes of a record name: the `k` of meta2.db. */
export const RECORD_NAME_BYTES = 32;

/** The state record: one per vault (5.5). */
export function stateRecordName(namesKey: Buffer): Buffer {
  return labeledPrf(namesKey, 'state');
}

/** The inode record of `ino` (6.1). */
export function inodeRecordName(namesKey: Buffer, ino: number): Buffer {
  return labeledPrf(namesKey, 'inode', u64(ino));
}

/**
 * Map node `nodeNumber` at `level` of a slot tree (5.4): the piece map or bucket table of inode
 * `ownerIno`, or the inode table when `ownerIno` is 0.
 */
export function mapNodeRecordName(namesKey: Buffer, ownerIno: number, level: number, nodeNumber: number): Buffer {
  return labeledPrf(namesKey, 'map', u64(ownerIno), u8(level), u64(nodeNumber));
}

/** Bucket `bucketNumber` of directory `dirIno`, at `chainPosition` in its overflow chain (6.4). */
export function bucketRecordName(namesKey: Buffer, dirIno: number, bucketNumber: number, chainPosition: number): Buffer {
  return labeledPrf(namesKey, 'bucket', u64(dirIno), u32(bucketNumber), u16(chainPosition));
}

/** Spill record `position` of inode `ino`: xattrs or a symlink target that do not fit in the inode (6.2). */
export function spillRecordName(namesKey: Buffer, ino: number, position: number): Buffer {
  return labeledPrf(namesKey, 'spill', u64(ino), u16(position));
}

/** Record `position` of the repair queue (10.5). */
export function repairQueueRecordName(namesKey: Buffer, position: number): Buffer {
  return labeledPrf(namesKey, 'repairq', u32(position));
}

/** Metadata chaff record `j` of inode `ino` (5.9): 4,000 random bytes under this name, never opened. */
export function chaffRecordName(namesKey: Buffer, ino: number, j: number): Buffer {
  return labeledPrf(namesKey, 'chaff', u64(ino), u8(j));
}

/** Chaff records per inode are numbered by a u8, so an inode has at most 256 of them. */
export const MAX_CHAFF_RECORDS = 256;

const TWO_64 = 2 ** 64;

/**
 * How many chaff records inode `ino` has (5.9): floor(ρ) + b, where b is 1 when
 * u64(PRF(chaff key, "inode", u64 ino)[0..8]) / 2^64 < ρ − floor(ρ). Derived, not drawn, so the commit
 * that deletes an inode knows which chaff rows to delete, and fsck knows which rows to expect.
 */
export function chaffRecordCount(chaffKey: Buffer, chaffRatio: number, ino: number): number {
  if (!Number.isFinite(chaffRatio) || chaffRatio < 0 || chaffRatio >= MAX_CHAFF_RECORDS) {
    throw new RangeError(`chaff ratio ${chaffRatio} is not from 0 to below ${MAX_CHAFF_RECORDS}`);
  }
  const whole = Math.floor(chaffRatio);
  const fraction = chaffRatio - whole;
  if (fraction === 0) return whole;
  const draw = labeledPrf(chaffKey, 'inode', u64(ino)).readBigUInt64BE(0);
  // draw / 2^64 < fraction, compared exactly: fraction × 2^64 is exact in a double (a power-of-two
  // scaling), and for an integer draw, draw < x exactly when draw < ceil(x). Converting draw to a double
  // instead would round it, and could disagree with another implementation at the boundary.
  return draw < BigInt(Math.ceil(fraction * TWO_64)) ? whole + 1 : whole;
}
