// Format 2's u64 slot (docs/format-2.md, 5.4): the one value that slot trees hold, whether the tree is
// the inode table, a file's piece map or a directory's bucket table. On disk the top two bits say what
// the slot is; in memory a slot is a plain JS number, so no BigInt is made per slot:
//
//   on disk (u64)          meaning                                   in memory
//   00, 0                  hole / no record / no node                HOLE (0)
//   00, v > 0              data, record or node at version v         v
//   01, low bits 0         preallocated, not written (piece maps)    PREALLOCATED (-1)
//   10, low bits v         lost, quarantined by fsck (piece maps)    lostSlot(v) = -2 - v
//   11                     damaged                                   (never decoded)
//
// Versions are below 2^53 (section 1), so every value fits a JS number exactly.

import { IntegrityError } from '../errors.js';

/** Size of a slot on disk. */
export const SLOT_BYTES = 8;
/** No record, no node, a hole: every slot below a HOLE pointer is HOLE too. */
export const HOLE = 0;
/** A preallocated piece that was never written (piece maps only). */
export const PREALLOCATED = -1;
/** The largest version a slot can hold: lostSlot(v) must stay a safe integer. */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER - 2;

const TWO_32 = 2 ** 32;
const TAG_SHIFT = 30; // of the high u32
const LOW_62_HIGH_MASK = 0x3fff_ffff;

/** A slot that fsck quarantined; `version` is the lost version (0 if unknown). */
export function lostSlot(version: number): number {
  if (!Number.isSafeInteger(version) || version < 0 || version > MAX_VERSION) throw new RangeError(`lost version ${version} out of range`);
  return -2 - version;
}

export function isVersion(slot: number): boolean {
  return slot > 0;
}

export function isLost(slot: number): boolean {
  return slot <= -2;
}

/** The version a lost slot records (0 if unknown). */
export function lostVersion(slot: number): number {
  if (!isLost(slot)) throw new RangeError(`slot ${slot} is not lost`);
  return -2 - slot;
}

/** Whether the slot reads as zeroes without a lookup (a hole or preallocated: SEEK_DATA skips both). */
export function readsAsZeroes(slot: number): boolean {
  return slot === HOLE || slot === PREALLOCATED;
}

/**
 * Reads the slot at `offset`. `special` says whether preallocated and lost values are valid in this tree
 * (piece maps only); a value that is not valid where it is, or a version of 2^53 or more, is damage.
 */
export function readSlot(buf: Buffer, offset: number, special: boolean, what: string): number {
  const high = buf.readUInt32BE(offset);
  const low = buf.readUInt32BE(offset + 4);
  const tag = high >>> TAG_SHIFT;
  const value = (high & LOW_62_HIGH_MASK) * TWO_32 + low;
  if (value > MAX_VERSION) throw new IntegrityError(`${what}: slot value ${value} is beyond 2^53`);
  switch (tag) {
    case 0:
      return value;
    case 1:
      if (special && value === 0) return PREALLOCATED;
      break;
    case 2:
      if (special) return lostSlot(value);
      break;
  }
  throw new IntegrityError(`${what}: slot with tag ${tag} and value ${value} is not valid here`);
}

/** Writes `slot` at `offset`, as readSlot reads it. */
export function writeSlot(buf: Buffer, offset: number, slot: number): void {
  let tag = 0;
  let value = slot;
  if (slot === PREALLOCATED) {
    tag = 1;
    value = 0;
  } else if (isLost(slot)) {
    tag = 2;
    value = lostVersion(slot);
  } else if (!Number.isSafeInteger(slot) || slot > MAX_VERSION) {
    throw new RangeError(`slot ${slot} cannot be encoded`);
  }
  buf.writeUInt32BE(((tag << TAG_SHIFT) | Math.floor(value / TWO_32)) >>> 0, offset);
  buf.writeUInt32BE(value % TWO_32, offset + 4);
}

/** Writes a u64 field below 2^53, as every writer fills them (counts, inos, versions). */
export function writeU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_32), at);
  buf.writeUInt32BE(n % TWO_32, at + 4);
}

/** Reads a u64 field as a number, or undefined when it is 2^53 or more: no writer makes that, so the caller calls it damage. */
export function readU64(buf: Buffer, at: number): number | undefined {
  const high = buf.readUInt32BE(at);
  if (high >= 2 ** 21) return undefined;
  return high * TWO_32 + buf.readUInt32BE(at + 4);
}
