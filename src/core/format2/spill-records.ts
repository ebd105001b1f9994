// Spill records (kind 5) and the spill stream they carry (docs/format-2.md, 6.2): what of an inode's tail
// does not fit its record (xattrs past the inode's room, a symlink target longer than 3,818 bytes) as one
// stream of items, cut into at most 64 records. The xattr body (u8 nameLength ‖ name ‖ value) is defined
// here too, because the inode's XATTR section and the stream's xattr item share it. Pure: bytes in, typed
// values out, and back. Sealing, naming and versions of the records are the record store's.

import { IntegrityError } from '../errors.js';
import { MAX_RECORD_PAYLOAD } from './record-seal.js';
import { isVersion, MAX_VERSION, readSlot, SLOT_BYTES, writeSlot } from './slot.js';

/** An extended attribute as stored: its name and value as bytes. Lists of them are kept in name order. */
export interface Xattr {
  readonly name: Buffer;
  readonly value: Buffer;
}

/** What an inode keeps in its spill stream: a symlink target too long for the inode, and xattrs. */
export interface SpillContent {
  readonly target: Buffer | undefined;
  /** In increasing order of name bytes. */
  readonly xattrs: readonly Xattr[];
}

/** One spill record's payload. Only record 0 has a count and the versions of records 1 … count − 1. */
export interface SpillRecord {
  readonly position: number;
  /** Records in the inode's spill: record 0 only, 0 elsewhere. */
  readonly count: number;
  /** Versions of records 1 … count − 1: record 0 only, empty elsewhere. */
  readonly versions: readonly number[];
  /** This record's share of the spill stream. */
  readonly data: Buffer;
}

/** Xattr names are 1 to 255 bytes (the u8 nameLength); values at most 64 KiB (section 14). */
export const XATTR_NAME_MAX = 255;
export const XATTR_VALUE_MAX = 65_536;
/** A symlink target is at most PATH_MAX − 1 bytes; past 3,818 it can only be in the spill stream. */
export const SYMLINK_TARGET_MAX = 4_095;
/** At most 64 spill records per inode: with 240 KiB of xattrs and a 4,095-byte target, 64 always suffice. */
export const SPILL_RECORDS_MAX = 64;

/** Largest payload a record carries (5.2: a 3,968-byte body less its 12-byte header). */
const PAYLOAD_MAX = MAX_RECORD_PAYLOAD;
/** position (u16) and count (u16). */
const SPILL_HEADER_BYTES = 4;
/** Stream bytes a spill record past position 0 carries. */
export const SPILL_DATA_MAX = PAYLOAD_MAX - SPILL_HEADER_BYTES; // 3,952

/** Item tags: the same numbers as the inode's TARGET and XATTR sections. */
const ITEM_TARGET = 4;
const ITEM_XATTR = 5;
/** u8 tag ‖ u32 length. */
const ITEM_HEADER_BYTES = 5;

function damaged(what: string, problem: string): never {
  throw new IntegrityError(`${what}: ${problem}`);
}

/** Bytes of an xattr body: u8 nameLength ‖ name ‖ value. */
export function xattrBodyLength(x: Xattr): number {
  return 1 + x.name.length + x.value.length;
}

/** Bytes an xattr takes as a spill-stream item, which is how the 240 KiB limit counts every xattr. */
export function xattrItemLength(x: Xattr): number {
  return ITEM_HEADER_BYTES + xattrBodyLength(x);
}

/** What is wrong with an xattr by the format's rules, or undefined. */
export function xattrProblem(x: Xattr): string | undefined {
  if (x.name.length < 1 || x.name.length > XATTR_NAME_MAX) return `xattr name of ${x.name.length} bytes (1 to ${XATTR_NAME_MAX})`;
  if (x.value.length > XATTR_VALUE_MAX) return `xattr value of ${x.value.length} bytes (at most ${XATTR_VALUE_MAX})`;
  return undefined;
}

/** What is wrong with a list of xattrs (each valid, names strictly increasing, so unique), or undefined. */
export function xattrListProblem(xattrs: readonly Xattr[]): string | undefined {
  for (let i = 0; i < xattrs.length; i++) {
    const x = xattrs[i]!;
    const problem = xattrProblem(x);
    if (problem) return problem;
    if (i > 0 && Buffer.compare(xattrs[i - 1]!.name, x.name) >= 0) return `xattr names out of order or repeated at ${JSON.stringify(x.name.toString('latin1'))}`;
  }
  return undefined;
}

/** Writes an xattr body at `at`; returns the offset after it. */
export function writeXattrBody(buf: Buffer, at: number, x: Xattr): number {
  buf.writeUInt8(x.name.length, at);
  at += 1 + x.name.copy(buf, at + 1);
  return at + x.value.copy(buf, at);
}

/**
 * Reads an xattr body that fills `body` exactly. The value is a copy, not a view of the record. Only the
 * framing is checked here; the limits and the order are checked on the whole list (xattrListProblem).
 */
export function readXattrBody(body: Buffer, what: string): Xattr {
  if (body.length < 1) damaged(what, 'empty xattr');
  const nameLength = body.readUInt8(0);
  if (nameLength < 1 || 1 + nameLength > body.length) damaged(what, `xattr name length ${nameLength} in ${body.length} bytes`);
  return { name: Buffer.from(body.subarray(1, 1 + nameLength)), value: Buffer.from(body.subarray(1 + nameLength)) };
}

/** The spill stream of `content`: the target item first, then the xattr items in name order. */
export function encodeSpillStream(content: SpillContent): Buffer {
  const problem = spillContentProblem(content);
  if (problem) throw new RangeError(`spill stream: ${problem}`);
  let length = content.target ? ITEM_HEADER_BYTES + content.target.length : 0;
  for (const x of content.xattrs) length += xattrItemLength(x);
  const stream = Buffer.alloc(length);
  let at = 0;
  if (content.target) {
    stream.writeUInt8(ITEM_TARGET, at);
    stream.writeUInt32BE(content.target.length, at + 1);
    at += ITEM_HEADER_BYTES + content.target.copy(stream, at + ITEM_HEADER_BYTES);
  }
  for (const x of content.xattrs) {
    stream.writeUInt8(ITEM_XATTR, at);
    stream.writeUInt32BE(xattrBodyLength(x), at + 1);
    at = writeXattrBody(stream, at + ITEM_HEADER_BYTES, x);
  }
  return stream;
}

/**
 * Reads a whole spill stream. Items must fill it exactly; there is at most one target, before any xattr
 * (the order encodeSpillStream writes, so a stream has one encoding); xattr names strictly increase.
 */
export function decodeSpillStream(stream: Buffer, what: string): SpillContent {
  let target: Buffer | undefined;
  const xattrs: Xattr[] = [];
  let at = 0;
  while (at < stream.length) {
    if (stream.length - at < ITEM_HEADER_BYTES) damaged(what, `spill stream ends inside an item header at byte ${at}`);
    const tag = stream.readUInt8(at);
    const length = stream.readUInt32BE(at + 1);
    const start = at + ITEM_HEADER_BYTES;
    if (length > stream.length - start) damaged(what, `spill item of ${length} bytes at byte ${at} runs past the stream's end`);
    const bytes = stream.subarray(start, start + length);
    if (tag === ITEM_TARGET) {
      if (target !== undefined || xattrs.length > 0) damaged(what, 'spilled symlink target repeated or after an xattr');
      if (length < 1 || length > SYMLINK_TARGET_MAX) damaged(what, `spilled symlink target of ${length} bytes`);
      target = Buffer.from(bytes);
    } else if (tag === ITEM_XATTR) {
      xattrs.push(readXattrBody(bytes, what));
    } else {
      damaged(what, `spill item with unknown tag ${tag}`);
    }
    at = start + length;
  }
  const problem = xattrListProblem(xattrs);
  if (problem) damaged(what, `spill stream: ${problem}`);
  return { target, xattrs };
}

function spillContentProblem(content: SpillContent): string | undefined {
  if (content.target && (content.target.length < 1 || content.target.length > SYMLINK_TARGET_MAX)) return `symlink target of ${content.target.length} bytes`;
  return xattrListProblem(content.xattrs);
}

/** Stream bytes spill record 0 carries when the spill has `count` records: it also holds count − 1 versions. */
function firstRecordData(count: number): number {
  return SPILL_DATA_MAX - SLOT_BYTES * (count - 1);
}

/** Stream bytes `count` spill records carry at most: 3,952 + 3,944 × (count − 1), 252,424 at 64. */
export function spillCapacity(count: number): number {
  return count < 1 ? 0 : firstRecordData(count) + SPILL_DATA_MAX * (count - 1);
}

/** How many spill records a stream of `length` bytes takes: 0 for an empty stream (no SPILL at all). */
export function spillRecordCount(length: number): number {
  if (length === 0) return 0;
  // Each record past the first carries 3,952 bytes but costs record 0 a version: 3,944 net.
  const count = 1 + Math.max(0, Math.ceil((length - SPILL_DATA_MAX) / (SPILL_DATA_MAX - SLOT_BYTES)));
  if (count > SPILL_RECORDS_MAX) throw new RangeError(`a spill stream of ${length} bytes needs ${count} records (at most ${SPILL_RECORDS_MAX})`);
  return count;
}

/** Cuts a stream into the data of spill records 0 … count − 1, each filled in turn; [] for an empty stream. */
export function splitSpillStream(stream: Buffer): Buffer[] {
  const count = spillRecordCount(stream.length);
  const parts: Buffer[] = [];
  let at = 0;
  for (let position = 0; position < count; position++) {
    const room = position === 0 ? firstRecordData(count) : SPILL_DATA_MAX;
    parts.push(stream.subarray(at, at + room));
    at += room;
  }
  return parts;
}

export function encodeSpillRecord(record: SpillRecord): Buffer {
  const { position, count, versions, data } = record;
  if (!Number.isInteger(position) || position < 0 || position >= SPILL_RECORDS_MAX) throw new RangeError(`spill record position ${position}`);
  if (position === 0) {
    if (!Number.isInteger(count) || count < 1 || count > SPILL_RECORDS_MAX) throw new RangeError(`spill count ${count}`);
    if (versions.length !== count - 1) throw new RangeError(`spill record 0 holds ${versions.length} versions for ${count} records`);
    if (!versions.every((v) => isVersion(v) && Number.isSafeInteger(v) && v <= MAX_VERSION)) throw new RangeError('a spill record version must be from 1 to 2^53 − 3');
  } else if (count !== 0 || versions.length !== 0) {
    throw new RangeError(`spill record ${position} has a count or versions: only record 0 has them`);
  }
  const header = SPILL_HEADER_BYTES + SLOT_BYTES * versions.length;
  if (header + data.length > PAYLOAD_MAX) throw new RangeError(`spill record ${position}: ${data.length} bytes of data do not fit`);
  const payload = Buffer.alloc(header + data.length);
  payload.writeUInt16BE(position, 0);
  payload.writeUInt16BE(count, 2);
  versions.forEach((v, i) => writeSlot(payload, SPILL_HEADER_BYTES + SLOT_BYTES * i, v));
  data.copy(payload, header);
  return payload;
}

/** Reads the payload of the spill record at `position` of inode `ino`. Data is a copy. */
export function decodeSpillRecord(payload: Buffer, ino: number, position: number): SpillRecord {
  const what = `inode ${ino}, spill record ${position}`;
  if (payload.length < SPILL_HEADER_BYTES || payload.length > PAYLOAD_MAX) damaged(what, `payload of ${payload.length} bytes`);
  const stored = payload.readUInt16BE(0);
  if (stored !== position) damaged(what, `holds position ${stored}`);
  const count = payload.readUInt16BE(2);
  const versions: number[] = [];
  if (position === 0) {
    if (count < 1 || count > SPILL_RECORDS_MAX) damaged(what, `spill count ${count} (1 to ${SPILL_RECORDS_MAX})`);
    if (payload.length < SPILL_HEADER_BYTES + SLOT_BYTES * (count - 1)) damaged(what, `too short for the versions of ${count} records`);
    for (let i = 0; i < count - 1; i++) {
      const v = readSlot(payload, SPILL_HEADER_BYTES + SLOT_BYTES * i, false, what);
      // Every record of the spill exists: the stream runs through all of them.
      if (!isVersion(v)) damaged(what, `no version for spill record ${i + 1}`);
      versions.push(v);
    }
  } else if (count !== 0) {
    damaged(what, `count ${count} outside spill record 0`);
  }
  return { position, count, versions, data: Buffer.from(payload.subarray(SPILL_HEADER_BYTES + SLOT_BYTES * versions.length)) };
}

/**
 * The spill stream of records 0 … count − 1, each decoded at its position; `count` is the inode's SPILL
 * count, which record 0 must repeat.
 */
export function joinSpillRecords(records: readonly SpillRecord[], count: number, ino: number): Buffer {
  const what = `inode ${ino}, spill`;
  if (records.length !== count) throw new RangeError(`${what}: ${records.length} records given for a count of ${count}`);
  records.forEach((r, i) => {
    if (r.position !== i) throw new RangeError(`${what}: record ${r.position} given at position ${i}`);
  });
  const first = records[0];
  if (first && first.count !== count) damaged(what, `record 0 counts ${first.count} records, the inode ${count}`);
  return Buffer.concat(records.map((r) => r.data));
}
