// Directory entries of format 2 (docs/format-2.md, 6.4): the entry encoding, the keyed name hash h and
// its split key sk = bitreverse64(h) that orders entries, the inline ENTRIES section of a directory
// inode, and bucket records (kind 4) with linear hashing's bucket-number function. Pure: bytes in,
// typed entries out, and back; which bucket to read, split or merge is the directory layer's.
//
// h is kept as two u32s, never as a BigInt: linear hashing needs only h mod 2^(L+1) with L + 1 ≤ 32,
// which is the low word, and sk order is a comparison of two u32 pairs. No value of 64 bits is ever
// computed with, so nothing is allocated per entry, or per comparison when a listing is sorted.

import { isUtf8 } from 'node:buffer';
import { hmacOf } from '../crypto/crypto.js';
import { IntegrityError } from '../errors.js';
import { MAX_RECORD_PAYLOAD } from './record-seal.js';
import { DIR_LEVEL_MAX, INLINE_MAX, isFileType, type FileType } from './inode-record.js';
import { isVersion, MAX_VERSION, readSlot, writeSlot } from './slot.js';

/** A 64-bit value as its high and low u32 words. */
export interface U64Words {
  readonly hi: number;
  readonly lo: number;
}

/** One directory entry. `hash` is nameHash(dirhash key, directory ino, name); the decoder computes it. */
export interface DirEntry {
  readonly ino: number;
  /** The child's type code, for d_type. */
  readonly type: FileType;
  /** 1 to 255 bytes of valid UTF-8: no '/', no NUL, not '.' or '..'. */
  readonly name: Buffer;
  readonly hash: U64Words;
}

/** One record of a bucket's chain. */
export interface BucketRecord {
  readonly bucket: number;
  /** 0 for the bucket itself, i > 0 for its i-th overflow record. */
  readonly chainPosition: number;
  /** Version of the record at chainPosition + 1, or 0 at the chain's end. */
  readonly next: number;
  /** In increasing (sk, name) order. */
  readonly entries: readonly DirEntry[];
}

/** What the reader of a bucket record knows before opening it: where it is, and the table's shape. */
export interface BucketPlace {
  readonly dirIno: number;
  readonly bucket: number;
  readonly chainPosition: number;
  /** dirLevel L and dirSplit s of the directory inode. */
  readonly level: number;
  readonly split: number;
  /** The last entry of the chain record before this one, if any: a bucket's entries run on in sk order across its chain. */
  readonly after?: DirEntry;
}

/** u64 ino ‖ u8 type ‖ u8 nameLength. */
export const ENTRY_HEADER_BYTES = 10;
export const NAME_MAX = 255;
/** Largest payload a record carries (5.2: a 3,968-byte body less its 12-byte header). */
const PAYLOAD_MAX = MAX_RECORD_PAYLOAD;
/** u32 bucket ‖ u16 chain position ‖ u16 entries ‖ u64 next. */
const BUCKET_HEADER_BYTES = 16;
/** Entry bytes one bucket record holds: 3,956 − 16. */
export const BUCKET_ENTRIES_MAX = PAYLOAD_MAX - BUCKET_HEADER_BYTES; // 3,940
/** Entry bytes of the inline ENTRIES section: the inode's primary-section room. */
export const INLINE_ENTRIES_MAX = INLINE_MAX; // 3,818

const SLASH = 0x2f;
const DOT = 0x2e;
const TWO_32 = 2 ** 32;

// ---- the name hash and its order ----

const DIRENT_LABEL = Buffer.from('dirent\0', 'latin1');

/**
 * h = u64(PRF(dirhash key, "dirent", u64 directory ino, name)[0..8]), the PRF of section 1 (HMAC over
 * label ‖ 0x00 ‖ fields; the name is the one variable-width field, and the last).
 */
export function nameHash(dirhashKey: Buffer, dirIno: number, name: Buffer): U64Words {
  if (!Number.isSafeInteger(dirIno) || dirIno < 1) throw new RangeError(`directory ino ${dirIno}`);
  const message = Buffer.alloc(DIRENT_LABEL.length + 8 + name.length);
  DIRENT_LABEL.copy(message, 0);
  message.writeUInt32BE(Math.floor(dirIno / TWO_32), DIRENT_LABEL.length);
  message.writeUInt32BE(dirIno % TWO_32, DIRENT_LABEL.length + 4);
  name.copy(message, DIRENT_LABEL.length + 8);
  const mac = hmacOf(dirhashKey, message);
  return { hi: mac.readUInt32BE(0), lo: mac.readUInt32BE(4) };
}

function bitreverse32(x: number): number {
  x = ((x >>> 1) & 0x5555_5555) | ((x & 0x5555_5555) << 1);
  x = ((x >>> 2) & 0x3333_3333) | ((x & 0x3333_3333) << 2);
  x = ((x >>> 4) & 0x0f0f_0f0f) | ((x & 0x0f0f_0f0f) << 4);
  x = ((x >>> 8) & 0x00ff_00ff) | ((x & 0x00ff_00ff) << 8);
  return ((x >>> 16) | (x << 16)) >>> 0;
}

/**
 * sk = bitreverse64(h). Ordering by sk puts the low bits of h first, the bits linear hashing buckets
 * by: a bucket's entries are one run of the order, and a split cuts that run in two.
 */
export function splitKey(h: U64Words): U64Words {
  return { hi: bitreverse32(h.lo), lo: bitreverse32(h.hi) };
}

/** The order entries are stored and listed in: increasing sk, then name bytes for an equal sk. */
export function compareEntries(a: DirEntry, b: DirEntry): number {
  // sk's high word is h's low word reversed, and its low word h's high word reversed.
  const highA = bitreverse32(a.hash.lo);
  const highB = bitreverse32(b.hash.lo);
  if (highA !== highB) return highA < highB ? -1 : 1;
  const lowA = bitreverse32(a.hash.hi);
  const lowB = bitreverse32(b.hash.hi);
  if (lowA !== lowB) return lowA < lowB ? -1 : 1;
  return Buffer.compare(a.name, b.name);
}

// ---- linear hashing ----

/** n = 2^L + s buckets. */
export function bucketCount(level: number, split: number): number {
  checkShape(level, split);
  return 2 ** level + split;
}

/** The bucket a name of hash h is in: b = h mod 2^L, and h mod 2^(L+1) when b < s (already split). */
export function bucketOf(h: U64Words, level: number, split: number): number {
  checkShape(level, split);
  // L + 1 ≤ 32: both moduli are of the low word alone.
  const b = h.lo % 2 ** level;
  return b < split ? h.lo % 2 ** (level + 1) : b;
}

function checkShape(level: number, split: number): void {
  if (!Number.isInteger(level) || level < 0 || level > DIR_LEVEL_MAX || !Number.isInteger(split) || split < 0 || split >= 2 ** level) {
    throw new RangeError(`bucket table shape L = ${level}, s = ${split}`);
  }
}

// ---- entries ----

/** What is wrong with a name as an entry may hold it, or undefined. */
export function nameProblem(name: Buffer): string | undefined {
  if (name.length < 1 || name.length > NAME_MAX) return `name of ${name.length} bytes (1 to ${NAME_MAX})`;
  if (name.includes(SLASH) || name.includes(0)) return 'name with "/" or NUL';
  if (name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT))) return 'name "." or ".."';
  if (!isUtf8(name)) return 'name not valid UTF-8';
  return undefined;
}

function entryProblem(e: DirEntry): string | undefined {
  if (!Number.isSafeInteger(e.ino) || e.ino < 1) return `entry ino ${e.ino}`;
  if (!isFileType(e.type)) return `entry type code ${String(e.type)}`;
  return nameProblem(e.name);
}

/** Bytes of one entry: 10 + nameLength. */
export function entryLength(name: Buffer): number {
  return ENTRY_HEADER_BYTES + name.length;
}

/** Bytes of a list of entries, E in 6.4's split and merge rules. */
export function entriesLength(entries: readonly DirEntry[]): number {
  let bytes = 0;
  for (const e of entries) bytes += entryLength(e.name);
  return bytes;
}

/** Entries back to back, after checking each is valid and the list is in order. */
function writeEntries(entries: readonly DirEntry[], buf: Buffer, at: number, what: string): void {
  entries.forEach((e, i) => {
    const problem = entryProblem(e);
    if (problem) throw new RangeError(`${what}: ${problem}`);
    if (i > 0 && compareEntries(entries[i - 1]!, e) >= 0) throw new RangeError(`${what}: entries out of sk order or repeated`);
    buf.writeUInt32BE(Math.floor(e.ino / TWO_32), at);
    buf.writeUInt32BE(e.ino % TWO_32, at + 4);
    buf.writeUInt8(e.type, at + 8);
    buf.writeUInt8(e.name.length, at + 9);
    at += ENTRY_HEADER_BYTES + e.name.copy(buf, at + ENTRY_HEADER_BYTES);
  });
}

function damaged(what: string, problem: string): never {
  throw new IntegrityError(`${what}: ${problem}`);
}

/** Entries that fill `bytes` exactly, each valid, hashed, and in increasing (sk, name) order after `after`. */
function readEntries(bytes: Buffer, dirIno: number, dirhashKey: Buffer, what: string, after: DirEntry | undefined): DirEntry[] {
  const entries: DirEntry[] = [];
  let previous = after;
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < ENTRY_HEADER_BYTES) damaged(what, `entries end inside an entry header at byte ${at}`);
    const high = bytes.readUInt32BE(at);
    if (high >= 2 ** 21) damaged(what, `entry ino at byte ${at} is 2^53 or more`);
    const nameLength = bytes.readUInt8(at + 9);
    const end = at + ENTRY_HEADER_BYTES + nameLength;
    if (end > bytes.length) damaged(what, `entry at byte ${at} runs past the entries' end`);
    const name = Buffer.from(bytes.subarray(at + ENTRY_HEADER_BYTES, end));
    const e: DirEntry = { ino: high * TWO_32 + bytes.readUInt32BE(at + 4), type: bytes.readUInt8(at + 8) as FileType, name, hash: { hi: 0, lo: 0 } };
    const problem = entryProblem(e);
    if (problem) damaged(what, `${problem} at byte ${at}`);
    const entry = { ...e, hash: nameHash(dirhashKey, dirIno, name) };
    if (previous && compareEntries(previous, entry) >= 0) damaged(what, `entry at byte ${at} out of sk order or repeated`);
    entries.push(entry);
    previous = entry;
    at = end;
  }
  return entries;
}

/** The ENTRIES section of a directory inode. Throws RangeError past INLINE_ENTRIES_MAX: the directory takes buckets then. */
export function encodeInlineEntries(entries: readonly DirEntry[]): Buffer {
  const length = entriesLength(entries);
  if (length > INLINE_ENTRIES_MAX) throw new RangeError(`${length} bytes of entries do not fit inline (at most ${INLINE_ENTRIES_MAX})`);
  const section = Buffer.alloc(length);
  writeEntries(entries, section, 0, 'inline entries');
  return section;
}

/**
 * Reads the ENTRIES section of directory `dirIno`, whose inode counts `count` entries. Checks each
 * entry, the sk order (which needs the dirhash key) and the count: the checks of 6.2 and 6.4 on inline
 * entries that decodeInode leaves here.
 */
export function decodeInlineEntries(section: Buffer, count: number, dirIno: number, dirhashKey: Buffer): DirEntry[] {
  const what = `directory ${dirIno}, inline entries`;
  if (section.length > INLINE_ENTRIES_MAX) damaged(what, `${section.length} bytes (at most ${INLINE_ENTRIES_MAX})`);
  const entries = readEntries(section, dirIno, dirhashKey, what, undefined);
  if (entries.length !== count) damaged(what, `${entries.length} entries, the inode counts ${count}`);
  return entries;
}

// ---- bucket records ----

/** The payload of one bucket record, in a table of shape (level, split). Throws RangeError for one the decoder would refuse. */
export function encodeBucket(record: BucketRecord, level: number, split: number): Buffer {
  const { bucket, chainPosition, next, entries } = record;
  const what = `bucket ${bucket}, chain position ${chainPosition}`;
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= bucketCount(level, split)) throw new RangeError(`${what}: not a bucket of L = ${level}, s = ${split}`);
  if (!Number.isInteger(chainPosition) || chainPosition < 0 || chainPosition > 0xffff) throw new RangeError(`${what}: chain position`);
  if (next !== 0 && !(isVersion(next) && Number.isSafeInteger(next) && next <= MAX_VERSION)) throw new RangeError(`${what}: next ${next}`);
  const length = entriesLength(entries);
  if (length > BUCKET_ENTRIES_MAX) throw new RangeError(`${what}: ${length} bytes of entries (at most ${BUCKET_ENTRIES_MAX})`);
  for (const e of entries) {
    if (bucketOf(e.hash, level, split) !== bucket) throw new RangeError(`${what}: an entry of bucket ${bucketOf(e.hash, level, split)}`);
  }
  const payload = Buffer.alloc(BUCKET_HEADER_BYTES + length);
  payload.writeUInt32BE(bucket, 0);
  payload.writeUInt16BE(chainPosition, 4);
  payload.writeUInt16BE(entries.length, 6);
  writeSlot(payload, 8, next);
  writeEntries(entries, payload, BUCKET_HEADER_BYTES, what);
  return payload;
}

/** Reads a bucket record's payload, opened at `place`. Every failure is IntegrityError, kind damaged. */
export function decodeBucket(payload: Buffer, place: BucketPlace, dirhashKey: Buffer): BucketRecord {
  const { dirIno, bucket, chainPosition, level, split } = place;
  const buckets = bucketCount(level, split);
  if (bucket >= buckets) throw new RangeError(`directory ${dirIno}: bucket ${bucket} of ${buckets}`);
  const what = `directory ${dirIno}, bucket ${bucket}, chain position ${chainPosition}`;
  if (payload.length < BUCKET_HEADER_BYTES || payload.length > PAYLOAD_MAX) damaged(what, `payload of ${payload.length} bytes`);
  if (payload.readUInt32BE(0) !== bucket) damaged(what, `holds bucket number ${payload.readUInt32BE(0)}`);
  if (payload.readUInt16BE(4) !== chainPosition) damaged(what, `holds chain position ${payload.readUInt16BE(4)}`);
  const next = readSlot(payload, 8, false, what);
  const entries = readEntries(payload.subarray(BUCKET_HEADER_BYTES), dirIno, dirhashKey, what, place.after);
  const stated = payload.readUInt16BE(6);
  if (entries.length !== stated) damaged(what, `${entries.length} entries, the header says ${stated}`);
  for (const e of entries) {
    const belongs = bucketOf(e.hash, level, split);
    if (belongs !== bucket) damaged(what, `entry ${JSON.stringify(e.name.toString())} belongs in bucket ${belongs}`);
  }
  return { bucket, chainPosition, next, entries };
}
