// The inode record's payload (kind 2; docs/format-2.md, 6.1, 6.2, 7 and 8): a fixed part of 120 bytes
// with the attributes, then a tail of sections: the primary section (inline content, the root of a piece
// map or of a bucket table, inline directory entries, or a symlink target), the xattrs that fit, and a
// pointer to the spill records that hold the rest. Also the rule that decides what stays in the inode
// and what spills, and the xattr space limit. Pure: bytes in, typed inode out, and back.
//
// decodeInode makes every check of "Checked on read" in 6.2, 7 and 8 that this one record allows. The
// others need records below or beside it, and belong to whoever reads those:
// - inline ENTRIES: entries valid, in sk order, and `count` equal to their number: decodeInlineEntries
//   (dir-records.ts), which holds the entry framing and needs the dirhash key for the order;
// - the spill: its count and lengths against the spill records, a spilled target ⇔ a symlink whose
//   target is not in the inode, xattr names unique across inode and spill: mergeSpill, once the spill
//   records are read (spill-records.ts);
// - at mapDepth ≥ 1 (the slot tree's): `count` equal to the preallocated slots below the root (here:
//   at least the preallocated pointers' share, and exactly that when no pointer is a node), HAS_LOST
//   when a lost slot is only below a node, no data slot at or past ceil(size / pieceSize) below a node,
//   and that the depth is the smallest (here: only that some root entry is not 0);
// - a directory with BUCKETS: `count` equal to the entries of all its buckets, and no slot past n below
//   a node (here: root entries past n are 0);
// - every version in the tree below the state record's `reservedUpTo` (section 11) and at most the
//   commit that wrote the record holding it: the record seal and the tree know the commit.

import { FsError, IntegrityError } from '../errors.js';
import { MAP_NODE_SLOTS } from './map-node.js';
import { MAX_RECORD_PAYLOAD } from './record-seal.js';
import { isLost, isVersion, MAX_VERSION, PREALLOCATED, readSlot, readU64, SLOT_BYTES, writeSlot, writeU64 } from './slot.js';
import {
  readXattrBody,
  SPILL_RECORDS_MAX,
  SYMLINK_TARGET_MAX,
  writeXattrBody,
  xattrBodyLength,
  xattrItemLength,
  xattrListProblem,
  type SpillContent,
  type Xattr,
} from './spill-records.js';

/** The type codes of 6.1 and section 8. Directory entries carry the same code, for d_type. */
export const FileType = {
  regular: 1,
  directory: 2,
  symlink: 3,
  fifo: 4,
  socket: 5,
  charDevice: 6,
  blockDevice: 7,
} as const;
export type FileType = (typeof FileType)[keyof typeof FileType];

export function isFileType(code: number): code is FileType {
  return Number.isInteger(code) && code >= FileType.regular && code <= FileType.blockDevice;
}

/** st_mode's type bits (S_IFMT) and the value each type code must have there. */
export const S_IFMT = 0o170000;
const MODE_TYPE_BITS: Record<FileType, number> = {
  [FileType.regular]: 0o100000, // S_IFREG
  [FileType.directory]: 0o040000, // S_IFDIR
  [FileType.symlink]: 0o120000, // S_IFLNK
  [FileType.fifo]: 0o010000, // S_IFIFO
  [FileType.socket]: 0o140000, // S_IFSOCK
  [FileType.charDevice]: 0o020000, // S_IFCHR
  [FileType.blockDevice]: 0o060000, // S_IFBLK
};
/** st_mode holds the type bits and the 12 permission bits (setuid, setgid, sticky, rwx × 3), no more. */
const MODE_MAX = 0o177777;

export function modeTypeBits(type: FileType): number {
  return MODE_TYPE_BITS[type];
}

/** The type code that st_mode's type bits name, or undefined. */
export function fileTypeOfMode(mode: number): FileType | undefined {
  const bits = mode & S_IFMT;
  for (const [code, typeBits] of Object.entries(MODE_TYPE_BITS)) if (typeBits === bits) return Number(code) as FileType;
  return undefined;
}

/** The root directory's ino; its parentIno is 0, and every other inode's is a directory's ino. */
export const ROOT_INO = 1;
/** The fixed part of the payload. */
export const INODE_FIXED_BYTES = 120;
/** Largest payload a record carries (5.2: a 3,968-byte body less its 12-byte header). */
const PAYLOAD_MAX = MAX_RECORD_PAYLOAD;
/** The tail's room: 3,956 − 120. */
export const TAIL_MAX = PAYLOAD_MAX - INODE_FIXED_BYTES; // 3,836
/** u8 tag ‖ u8 0 ‖ u16 length. */
const SECTION_HEADER_BYTES = 4;
/** SPILL's content: u16 count ‖ u64 version of spill record 0. */
const SPILL_CONTENT_BYTES = 10;
/** SPILL with its header: always left free when xattrs are placed. */
export const SPILL_SECTION_BYTES = SECTION_HEADER_BYTES + SPILL_CONTENT_BYTES; // 14
/**
 * The most a primary section holds: the tail less SPILL and the primary's own header. The inline
 * threshold (section 7), and the limit of ENTRIES and of an in-inode TARGET.
 */
export const INLINE_MAX = TAIL_MAX - SPILL_SECTION_BYTES - SECTION_HEADER_BYTES; // 3,818
/** Root entries a MAP section holds: floor(3,818 / 8). */
export const MAP_ROOT_MAX = Math.floor(INLINE_MAX / SLOT_BYTES); // 477
export const MAP_DEPTH_MAX = 3;
/**
 * Bucket numbers are u32 (in the bucket record and its name, 5.3), and a bucket is h mod 2^(L+1) at
 * most, so L + 1 ≤ 32.
 */
export const DIR_LEVEL_MAX = 31;
/** All xattrs of one inode together, counted as spill-stream items (6.2): 240 KiB. */
export const XATTR_SPACE_MAX = 245_760;

/** Section tags, in the order sections must come (XATTR may repeat). Others are reserved: damaged. */
const Tag = { inline: 1, map: 2, entries: 3, target: 4, xattr: 5, spill: 6 } as const;
const TAG_NAMES = ['', 'INLINE', 'MAP', 'ENTRIES', 'TARGET', 'XATTR', 'SPILL'];

const Flag = { inline: 1, buckets: 2, hasLost: 4 } as const;
const FLAGS_KNOWN = Flag.inline | Flag.buckets | Flag.hasLost;

/** Offsets of the fixed part (6.1). */
const At = {
  ino: 0,
  parentIno: 8,
  fileId: 16,
  type: 32,
  flags: 33,
  mapDepth: 34,
  zero: 35,
  mode: 36,
  uid: 40,
  gid: 44,
  nlink: 48,
  rdev: 52,
  size: 56,
  atime: 64,
  mtime: 76,
  ctime: 88,
  count: 100,
  dirLevel: 108,
  dirSplit: 112,
  mapCount: 116,
  tailLength: 118,
} as const;

export const FILE_ID_BYTES = 16;
const NANOSECONDS = 1_000_000_000;
const TWO_32 = 2 ** 32;

/** A time as stored: signed seconds since 1970 (before it too, as tar may set) and nanoseconds. */
export interface Timespec {
  readonly sec: number;
  /** 0 to 999,999,999. */
  readonly nsec: number;
}

/** Milliseconds since 1970 (format 1's times, Date.now()) as seconds and nanoseconds, exactly. */
export function timespecOfMs(ms: number): Timespec {
  const sec = Math.floor(ms / 1000);
  // Floored, and capped: a fraction of a millisecond just below the next second must not round up to 10^9.
  return { sec, nsec: Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1_000_000)) };
}

/** A time in milliseconds since 1970, as the vault's attributes give it (nanoseconds below a millisecond are dropped). */
export function msOfTimespec(t: Timespec): number {
  return t.sec * 1000 + Math.floor(t.nsec / 1_000_000);
}

/**
 * The primary section, by form. Which forms a type may have:
 * regular: inline or map; directory: entries or buckets; symlink: target, or none when the target is
 * longer than INLINE_MAX and spilled; FIFO, socket and devices: none.
 */
export type Primary =
  /** INLINE: the whole content; `size` equals its length. */
  | { readonly form: 'inline'; readonly content: Buffer }
  /** MAP of a regular file: the piece map's root, of depth 0 to 3. Slots may be preallocated or lost. */
  | { readonly form: 'map'; readonly depth: number; readonly root: readonly number[] }
  /** ENTRIES: inline directory entries, as bytes; dir-records.ts reads and writes them. */
  | { readonly form: 'entries'; readonly entries: Buffer }
  /** MAP of a directory with BUCKETS: the bucket table's root, over n = 2^level + split buckets. */
  | { readonly form: 'buckets'; readonly level: number; readonly split: number; readonly depth: number; readonly root: readonly number[] }
  /** TARGET: a symlink target of 1 to INLINE_MAX bytes. */
  | { readonly form: 'target'; readonly target: Buffer }
  | { readonly form: 'none' };

/** The SPILL section: how many spill records there are, and spill record 0's version. */
export interface SpillPointer {
  readonly count: number;
  readonly version: number;
}

/** An inode record's payload, decoded. Flags INLINE and BUCKETS are the primary's form. */
export interface InodeRecord {
  readonly ino: number;
  /** Directory of the most recent link or rename to this inode; 0 for the root. */
  readonly parentIno: number;
  /** Random; in every piece's associated data and address. */
  readonly fileId: Buffer;
  readonly type: FileType;
  /** st_mode, type bits included. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  /** mknod's rdev as FUSE passes it; 0 unless a character or block device. */
  readonly rdev: number;
  /** Regular: bytes; symlink: target length; others 0. */
  readonly size: number;
  readonly atime: Timespec;
  readonly mtime: Timespec;
  readonly ctime: Timespec;
  /** Directory: live entries; regular: preallocated slots; others 0. */
  readonly count: number;
  /** Flag HAS_LOST: the piece map holds a lost slot or pointer (fsck quarantined a piece). */
  readonly hasLost: boolean;
  readonly primary: Primary;
  /** The xattrs kept in the inode, in increasing order of name bytes. */
  readonly xattrs: readonly Xattr[];
  /** Present when something spilled. */
  readonly spill: SpillPointer | undefined;
}

/** Bytes of the primary section with its header, 0 for none. */
export function primarySectionBytes(primary: Primary): number {
  const length = primaryContentBytes(primary);
  return length === undefined ? 0 : SECTION_HEADER_BYTES + length;
}

function primaryContentBytes(primary: Primary): number | undefined {
  switch (primary.form) {
    case 'inline':
      return primary.content.length;
    case 'map':
    case 'buckets':
      return SLOT_BYTES * primary.root.length;
    case 'entries':
      return primary.entries.length;
    case 'target':
      return primary.target.length;
    case 'none':
      return undefined;
  }
}

function tailBytes(inode: InodeRecord): number {
  let bytes = primarySectionBytes(inode.primary);
  for (const x of inode.xattrs) bytes += SECTION_HEADER_BYTES + xattrBodyLength(x);
  return bytes + (inode.spill ? SPILL_SECTION_BYTES : 0);
}

// ---- placement (6.2, "What goes where") ----

/**
 * Where a symlink target goes: in the inode's TARGET up to INLINE_MAX bytes, else in the spill stream
 * (up to 4,095), with no primary section.
 */
export function placeSymlinkTarget(target: Buffer): { primary: Primary; spilledTarget: Buffer | undefined } {
  if (target.length < 1 || target.length > SYMLINK_TARGET_MAX) throw new RangeError(`symlink target of ${target.length} bytes`);
  return target.length <= INLINE_MAX ? { primary: { form: 'target', target }, spilledTarget: undefined } : { primary: { form: 'none' }, spilledTarget: target };
}

/**
 * Which xattrs stay in the inode beside `primary`: in name order, while they fit, always leaving the
 * 14 bytes of SPILL free. The first that does not fit spills with every one after it, so the inode
 * holds a prefix of the name order and the placement is a function of the xattrs alone. The primary
 * section never moves for xattrs.
 */
export function placeXattrs(primary: Primary, xattrs: readonly Xattr[]): { inInode: Xattr[]; spilled: Xattr[] } {
  const sorted = [...xattrs].sort((a, b) => Buffer.compare(a.name, b.name));
  let room = TAIL_MAX - primarySectionBytes(primary) - SPILL_SECTION_BYTES;
  let kept = 0;
  while (kept < sorted.length) {
    const bytes = SECTION_HEADER_BYTES + xattrBodyLength(sorted[kept]!);
    if (bytes > room) break;
    room -= bytes;
    kept++;
  }
  return { inInode: sorted.slice(0, kept), spilled: sorted.slice(kept) };
}

/** The bytes all of an inode's xattrs count against XATTR_SPACE_MAX: each as a spill-stream item. */
export function xattrSpace(xattrs: Iterable<Xattr>): number {
  let bytes = 0;
  for (const x of xattrs) bytes += xattrItemLength(x);
  return bytes;
}

/**
 * The xattr limit of 6.2: setxattr calls this with the inode's xattrs as they would be after it, and
 * gives ENOSPC beyond 240 KiB, as ext4 does when its xattr space is full.
 */
export function checkXattrSpace(xattrs: Iterable<Xattr>): void {
  const bytes = xattrSpace(xattrs);
  if (bytes > XATTR_SPACE_MAX) throw new FsError('ENOSPC', `xattrs would take ${bytes} bytes; an inode holds at most ${XATTR_SPACE_MAX}`);
}

/**
 * An inode's symlink target and every xattr, once its spill stream is read (`spilled` is undefined
 * when the inode has no SPILL). Checks the two agree: a spilled target ⇔ a symlink with no TARGET,
 * of the inode's size; names unique across inode and spill; a spill that holds something.
 */
export function mergeSpill(inode: InodeRecord, spilled: SpillContent | undefined): { target: Buffer | undefined; xattrs: Xattr[] } {
  const what = `inode ${inode.ino}`;
  if ((spilled === undefined) !== (inode.spill === undefined)) throw new RangeError(`${what}: a spill stream is given exactly when the inode has SPILL`);
  const inInode = inode.primary.form === 'target' ? inode.primary.target : undefined;
  if (!spilled) return { target: inInode, xattrs: [...inode.xattrs] };
  if (spilled.target === undefined && spilled.xattrs.length === 0) damaged(what, 'SPILL points to an empty spill stream');
  const targetSpills = inode.type === FileType.symlink && inode.primary.form === 'none';
  if ((spilled.target !== undefined) !== targetSpills) damaged(what, spilled.target ? 'a spilled symlink target for an inode that has none to spill' : 'symlink target missing from the spill');
  if (spilled.target && spilled.target.length !== inode.size) damaged(what, `spilled symlink target of ${spilled.target.length} bytes, size ${inode.size}`);
  const xattrs = [...inode.xattrs, ...spilled.xattrs].sort((a, b) => Buffer.compare(a.name, b.name));
  for (let i = 1; i < xattrs.length; i++) {
    if (xattrs[i - 1]!.name.equals(xattrs[i]!.name)) damaged(what, `xattr ${JSON.stringify(xattrs[i]!.name.toString('latin1'))} both in the inode and in the spill`);
  }
  return { target: inInode ?? spilled.target, xattrs };
}

/**
 * What is wrong with an inode's attributes as a change would leave them (times, mode, owner, links, size),
 * or undefined: the checks of the encoder that a caller's value can fail, made before it is staged.
 */
export function attributeProblem(inode: InodeRecord): string | undefined {
  const timeIssue = timeProblem('atime', inode.atime) ?? timeProblem('mtime', inode.mtime) ?? timeProblem('ctime', inode.ctime);
  if (timeIssue) return timeIssue;
  if (!isU32(inode.mode) || inode.mode > MODE_MAX) return `mode 0o${inode.mode.toString(8)}`;
  if (!isU32(inode.uid) || !isU32(inode.gid)) return `uid ${inode.uid} or gid ${inode.gid}`;
  if (!isU32(inode.nlink) || inode.nlink < (inode.type === FileType.directory ? 2 : 1)) return `nlink ${inode.nlink}`;
  if (!isCount(inode.size)) return `size ${inode.size}`;
  if (!(inode.ino === ROOT_INO ? inode.parentIno === 0 : isCount(inode.parentIno) && inode.parentIno >= ROOT_INO)) return `parentIno ${inode.parentIno}`;
  return undefined;
}

// ---- checks shared by the encoder and the decoder ----

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < TWO_32;
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function timeProblem(name: string, t: Timespec): string | undefined {
  if (!Number.isSafeInteger(t.sec)) return `${name} seconds ${t.sec} not an integer below 2^53`;
  if (!Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= NANOSECONDS) return `${name} nanoseconds ${t.nsec} (0 to 999,999,999)`;
  return undefined;
}

/**
 * What is wrong with `inode` by 6.1, 6.2, 7 and 8, or undefined. The encoder refuses what the decoder
 * would call damaged; `pieceSize` is given by the decoder only, for the one check that needs it.
 */
function inodeProblem(inode: InodeRecord, pieceSize: number | undefined): string | undefined {
  const { type, primary } = inode;
  if (!Number.isSafeInteger(inode.ino) || inode.ino < ROOT_INO) return `ino ${inode.ino}`;
  if (inode.ino === ROOT_INO ? inode.parentIno !== 0 : !(isCount(inode.parentIno) && inode.parentIno >= ROOT_INO)) {
    return `parentIno ${inode.parentIno} (0 for the root only)`;
  }
  if (inode.fileId.length !== FILE_ID_BYTES) return `fileId of ${inode.fileId.length} bytes`;
  if (!isFileType(type)) return `type code ${String(type)}`;
  if (!isU32(inode.mode) || inode.mode > MODE_MAX || (inode.mode & S_IFMT) !== modeTypeBits(type)) {
    return `mode 0o${inode.mode.toString(8)} does not match type ${type}`;
  }
  if (!isU32(inode.uid) || !isU32(inode.gid)) return `uid ${inode.uid} or gid ${inode.gid}`;
  if (!isU32(inode.nlink) || inode.nlink < (type === FileType.directory ? 2 : 1)) return `nlink ${inode.nlink} for type ${type}`;
  if (!isU32(inode.rdev)) return `rdev ${inode.rdev}`;
  if (inode.rdev !== 0 && type !== FileType.charDevice && type !== FileType.blockDevice) return `rdev ${inode.rdev} for type ${type}`;
  if (!isCount(inode.size)) return `size ${inode.size}`;
  if (!isCount(inode.count)) return `count ${inode.count}`;
  const timeIssue = timeProblem('atime', inode.atime) ?? timeProblem('mtime', inode.mtime) ?? timeProblem('ctime', inode.ctime);
  if (timeIssue) return timeIssue;
  const xattrIssue = xattrListProblem(inode.xattrs);
  if (xattrIssue) return xattrIssue;
  if (inode.spill) {
    const { count, version } = inode.spill;
    if (!Number.isInteger(count) || count < 1 || count > SPILL_RECORDS_MAX) return `spill count ${count} (1 to ${SPILL_RECORDS_MAX})`;
    if (!isVersion(version) || !Number.isSafeInteger(version) || version > MAX_VERSION) return `spill record 0 at version ${version}`;
  }
  if (inode.hasLost && primary.form !== 'map') return 'HAS_LOST without a piece map';
  if (type !== FileType.regular && type !== FileType.directory && inode.count !== 0) return `count ${inode.count} for type ${type}`;
  // A directory's size is E, its encoded entry bytes (17.4): what splits and merges need, and st_size shows.
  if (type !== FileType.regular && type !== FileType.symlink && type !== FileType.directory && inode.size !== 0) return `size ${inode.size} for type ${type}`;
  const formIssue = formProblem(inode, pieceSize);
  if (formIssue) return formIssue;
  const tail = tailBytes(inode);
  if (tail > TAIL_MAX) return `tail of ${tail} bytes (at most ${TAIL_MAX})`;
  return undefined;
}

const FORMS: Record<FileType, readonly Primary['form'][]> = {
  [FileType.regular]: ['inline', 'map'],
  [FileType.directory]: ['entries', 'buckets'],
  [FileType.symlink]: ['target', 'none'],
  [FileType.fifo]: ['none'],
  [FileType.socket]: ['none'],
  [FileType.charDevice]: ['none'],
  [FileType.blockDevice]: ['none'],
};

const FORM_SECTIONS: Record<Primary['form'], string> = {
  inline: 'INLINE',
  map: 'MAP',
  entries: 'ENTRIES',
  buckets: 'MAP with BUCKETS',
  target: 'TARGET',
  none: 'no primary section',
};

function formProblem(inode: InodeRecord, pieceSize: number | undefined): string | undefined {
  const { type, primary } = inode;
  if (!FORMS[type].includes(primary.form)) return `${FORM_SECTIONS[primary.form]} is not allowed for type ${type}`;
  switch (primary.form) {
    case 'inline':
      if (primary.content.length > INLINE_MAX) return `INLINE of ${primary.content.length} bytes (at most ${INLINE_MAX})`;
      if (primary.content.length !== inode.size) return `INLINE of ${primary.content.length} bytes for size ${inode.size}`;
      if (inode.count !== 0) return `count ${inode.count} for an inline file: it has no slots`;
      return undefined;
    case 'map':
      return pieceMapProblem(inode, primary, pieceSize);
    case 'entries':
      if (primary.entries.length > INLINE_MAX) return `ENTRIES of ${primary.entries.length} bytes (at most ${INLINE_MAX})`;
      if (primary.entries.length !== inode.size) return `ENTRIES of ${primary.entries.length} bytes for size ${inode.size}`;
      return undefined;
    case 'buckets':
      return bucketTableProblem(primary);
    case 'target':
      if (primary.target.length < 1 || primary.target.length > INLINE_MAX) return `TARGET of ${primary.target.length} bytes (1 to ${INLINE_MAX})`;
      if (primary.target.length !== inode.size) return `TARGET of ${primary.target.length} bytes for size ${inode.size}`;
      return undefined;
    case 'none':
      if (type === FileType.symlink) {
        if (inode.size <= INLINE_MAX || inode.size > SYMLINK_TARGET_MAX) return `symlink of size ${inode.size} without TARGET: only a target of ${INLINE_MAX + 1} to ${SYMLINK_TARGET_MAX} bytes spills`;
        if (!inode.spill) return 'symlink target neither in TARGET nor in a spill';
      }
      return undefined;
  }
}

function rootProblem(depth: number, root: readonly number[], special: boolean): string | undefined {
  if (!Number.isInteger(depth) || depth < 0 || depth > MAP_DEPTH_MAX) return `map depth ${depth} (0 to ${MAP_DEPTH_MAX})`;
  if (root.length > MAP_ROOT_MAX) return `MAP of ${root.length} entries (at most ${MAP_ROOT_MAX})`;
  for (const slot of root) {
    const valid = isVersion(slot) || slot === 0 || (special && (slot === PREALLOCATED || isLost(slot)));
    if (!valid || !Number.isSafeInteger(slot) || slot > MAX_VERSION || slot < -2 - MAX_VERSION) return `slot value ${slot} is not valid in this MAP`;
  }
  // The depth is the smallest that holds every slot that is not 0: all-zero slots need depth 0.
  if (depth > 0 && !root.some((slot) => slot !== 0)) return `map depth ${depth} with no pointer`;
  return undefined;
}

/** Piece map (6.3, 9): slots of the root at depth 0, pointers to map nodes (or whole subtrees) above. */
function pieceMapProblem(inode: InodeRecord, map: { depth: number; root: readonly number[] }, pieceSize: number | undefined): string | undefined {
  const rootIssue = rootProblem(map.depth, map.root, true);
  if (rootIssue) return rootIssue;
  if (map.depth === 0) {
    if (pieceSize !== undefined) {
      const pieces = Math.ceil(inode.size / pieceSize);
      const beyond = map.root.findIndex((slot, index) => index >= pieces && isVersion(slot));
      if (beyond >= 0) return `piece ${beyond} holds data at or past ceil(size / pieceSize) = ${pieces}`;
    }
    const preallocated = map.root.filter((slot) => slot === PREALLOCATED).length;
    if (inode.count !== preallocated) return `count ${inode.count}, but ${preallocated} slots are preallocated`;
    if (inode.hasLost !== map.root.some(isLost)) return `HAS_LOST is ${inode.hasLost ? 'set' : 'clear'}, but ${inode.hasLost ? 'no' : 'a'} slot is lost`;
    return undefined;
  }
  // A preallocated or lost pointer stands for its whole subtree, MAP_NODE_SLOTS^depth slots; a node
  // pointer's slots are the tree's to count.
  const span = MAP_NODE_SLOTS ** map.depth;
  const preallocated = map.root.filter((slot) => slot === PREALLOCATED).length * span;
  const hasNode = map.root.some(isVersion);
  const lostPointer = map.root.some(isLost);
  if (hasNode ? inode.count < preallocated : inode.count !== preallocated) {
    return `count ${inode.count}, but the root's preallocated pointers stand for ${preallocated} slots${hasNode ? ' or more' : ''}`;
  }
  if (lostPointer && !inode.hasLost) return 'HAS_LOST is clear, but a pointer is lost';
  if (inode.hasLost && !lostPointer && !hasNode) return 'HAS_LOST is set, but no slot can be lost';
  return undefined;
}

/** Bucket table (6.4): slots hold bucket-record versions, for n = 2^L + s buckets. */
function bucketTableProblem(table: { level: number; split: number; depth: number; root: readonly number[] }): string | undefined {
  const { level, split, depth, root } = table;
  if (!Number.isInteger(level) || level < 0 || level > DIR_LEVEL_MAX) return `dirLevel ${level} (0 to ${DIR_LEVEL_MAX})`;
  if (!Number.isInteger(split) || split < 0 || split >= 2 ** level) return `dirSplit ${split} for dirLevel ${level}: s < 2^L`;
  const rootIssue = rootProblem(depth, root, false);
  if (rootIssue) return rootIssue;
  const buckets = 2 ** level + split;
  const span = MAP_NODE_SLOTS ** depth;
  const beyond = root.findIndex((slot, j) => slot !== 0 && j * span >= buckets);
  if (beyond >= 0) return `bucket table root entry ${beyond} is set, past the ${buckets} buckets`;
  // With every slot past n at 0, the smallest depth that holds the non-zero slots holds n at depth − 1.
  if (depth > 0 && buckets <= MAP_ROOT_MAX * MAP_NODE_SLOTS ** (depth - 1)) return `bucket table of depth ${depth} for ${buckets} buckets`;
  return undefined;
}

// ---- encoding ----

function writeTime(buf: Buffer, at: number, t: Timespec): void {
  const high = Math.floor(t.sec / TWO_32); // i64 as a signed high word and an unsigned low word
  buf.writeInt32BE(high, at);
  buf.writeUInt32BE(t.sec - high * TWO_32, at + 4);
  buf.writeUInt32BE(t.nsec, at + 8);
}

function writeSectionHeader(buf: Buffer, at: number, tag: number, length: number): number {
  buf.writeUInt8(tag, at);
  buf.writeUInt16BE(length, at + 2); // byte at + 1 stays 0
  return at + SECTION_HEADER_BYTES;
}

/** The payload of `inode`. Throws RangeError for an inode the decoder would call damaged. */
export function encodeInode(inode: InodeRecord): Buffer {
  const problem = inodeProblem(inode, undefined);
  if (problem) throw new RangeError(`inode ${inode.ino}: ${problem}`);
  const { primary } = inode;
  const tail = tailBytes(inode);
  const payload = Buffer.alloc(INODE_FIXED_BYTES + tail);
  writeU64(payload, At.ino, inode.ino);
  writeU64(payload, At.parentIno, inode.parentIno);
  inode.fileId.copy(payload, At.fileId);
  payload.writeUInt8(inode.type, At.type);
  const flags = (primary.form === 'inline' ? Flag.inline : 0) | (primary.form === 'buckets' ? Flag.buckets : 0) | (inode.hasLost ? Flag.hasLost : 0);
  payload.writeUInt8(flags, At.flags);
  const hasMap = primary.form === 'map' || primary.form === 'buckets';
  payload.writeUInt8(hasMap ? primary.depth : 0, At.mapDepth);
  payload.writeUInt32BE(inode.mode, At.mode);
  payload.writeUInt32BE(inode.uid, At.uid);
  payload.writeUInt32BE(inode.gid, At.gid);
  payload.writeUInt32BE(inode.nlink, At.nlink);
  payload.writeUInt32BE(inode.rdev, At.rdev);
  writeU64(payload, At.size, inode.size);
  writeTime(payload, At.atime, inode.atime);
  writeTime(payload, At.mtime, inode.mtime);
  writeTime(payload, At.ctime, inode.ctime);
  writeU64(payload, At.count, inode.count);
  if (primary.form === 'buckets') {
    payload.writeUInt32BE(primary.level, At.dirLevel);
    payload.writeUInt32BE(primary.split, At.dirSplit);
  }
  payload.writeUInt16BE(hasMap ? primary.root.length : 0, At.mapCount);
  payload.writeUInt16BE(tail, At.tailLength);

  let at = INODE_FIXED_BYTES;
  switch (primary.form) {
    case 'inline':
      at = writeSectionHeader(payload, at, Tag.inline, primary.content.length);
      at += primary.content.copy(payload, at);
      break;
    case 'map':
    case 'buckets':
      at = writeSectionHeader(payload, at, Tag.map, SLOT_BYTES * primary.root.length);
      for (const slot of primary.root) {
        writeSlot(payload, at, slot);
        at += SLOT_BYTES;
      }
      break;
    case 'entries':
      at = writeSectionHeader(payload, at, Tag.entries, primary.entries.length);
      at += primary.entries.copy(payload, at);
      break;
    case 'target':
      at = writeSectionHeader(payload, at, Tag.target, primary.target.length);
      at += primary.target.copy(payload, at);
      break;
    case 'none':
      break;
  }
  for (const x of inode.xattrs) at = writeXattrBody(payload, writeSectionHeader(payload, at, Tag.xattr, xattrBodyLength(x)), x);
  if (inode.spill) {
    at = writeSectionHeader(payload, at, Tag.spill, SPILL_CONTENT_BYTES);
    payload.writeUInt16BE(inode.spill.count, at);
    writeSlot(payload, at + 2, inode.spill.version);
  }
  return payload;
}

// ---- decoding ----

function damaged(what: string, problem: string): never {
  throw new IntegrityError(`${what}: ${problem}`);
}

/** A u64 field as a number: 2^53 or more cannot be held exactly, and no writer makes it. */
function readField(buf: Buffer, at: number, what: string, field: string): number {
  return readU64(buf, at) ?? damaged(what, `${field} is 2^53 or more`);
}

function readTime(buf: Buffer, at: number, what: string, field: string): Timespec {
  const sec = buf.readInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
  if (!Number.isSafeInteger(sec)) damaged(what, `${field} seconds beyond ±2^53`);
  return { sec, nsec: buf.readUInt32BE(at + 8) };
}

interface Section {
  readonly tag: number;
  readonly bytes: Buffer;
}

/** The tail's sections, framed and in order; their content is read by the caller. */
function readSections(tail: Buffer, what: string): Section[] {
  const sections: Section[] = [];
  let at = 0;
  let lastTag = 0;
  while (at < tail.length) {
    if (tail.length - at < SECTION_HEADER_BYTES) damaged(what, `tail ends inside a section header at byte ${at}`);
    const tag = tail.readUInt8(at);
    if (tail.readUInt8(at + 1) !== 0) damaged(what, `section header at byte ${at} has a non-zero second byte`);
    const length = tail.readUInt16BE(at + 2);
    if (tag < Tag.inline || tag > Tag.spill) damaged(what, `section with reserved tag ${tag}`);
    if (tag < lastTag || (tag === lastTag && tag !== Tag.xattr)) damaged(what, `section ${TAG_NAMES[tag]} after ${TAG_NAMES[lastTag]}`);
    const start = at + SECTION_HEADER_BYTES;
    if (length > tail.length - start) damaged(what, `section ${TAG_NAMES[tag]} of ${length} bytes runs past tailLength`);
    sections.push({ tag, bytes: tail.subarray(start, start + length) });
    lastTag = tag;
    at = start + length;
  }
  return sections;
}

function readRoot(bytes: Buffer, special: boolean, what: string): number[] {
  const root: number[] = [];
  for (let at = 0; at < bytes.length; at += SLOT_BYTES) root.push(readSlot(bytes, at, special, what));
  return root;
}

/**
 * Reads the payload of the inode record named for `expectedIno`, in a vault of `pieceSize`. Every
 * failure is IntegrityError, kind damaged. Buffers in the result are copies, not views of `payload`.
 */
export function decodeInode(payload: Buffer, expectedIno: number, pieceSize: number): InodeRecord {
  if (!Number.isSafeInteger(pieceSize) || pieceSize < 1) throw new RangeError(`piece size ${pieceSize}`);
  const what = `inode ${expectedIno}`;
  if (payload.length < INODE_FIXED_BYTES || payload.length > PAYLOAD_MAX) damaged(what, `payload of ${payload.length} bytes`);
  const ino = readField(payload, At.ino, what, 'ino');
  if (ino !== expectedIno) damaged(what, `record holds ino ${ino}`);
  const flags = payload.readUInt8(At.flags);
  if ((flags & ~FLAGS_KNOWN) !== 0) damaged(what, `reserved flag bits 0x${flags.toString(16)}`);
  if (payload.readUInt8(At.zero) !== 0) damaged(what, 'byte 35 is not zero');
  const mapDepth = payload.readUInt8(At.mapDepth);
  const dirLevel = payload.readUInt32BE(At.dirLevel);
  const dirSplit = payload.readUInt32BE(At.dirSplit);
  const mapCount = payload.readUInt16BE(At.mapCount);
  const tailLength = payload.readUInt16BE(At.tailLength);
  if (INODE_FIXED_BYTES + tailLength !== payload.length) damaged(what, `tailLength ${tailLength} in a payload of ${payload.length} bytes`);

  let primary: Primary | undefined;
  const xattrs: Xattr[] = [];
  let spill: SpillPointer | undefined;
  const setPrimary = (p: Primary) => {
    if (primary) damaged(what, `both ${FORM_SECTIONS[primary.form]} and ${FORM_SECTIONS[p.form]}`);
    primary = p;
  };
  for (const { tag, bytes } of readSections(payload.subarray(INODE_FIXED_BYTES), what)) {
    switch (tag) {
      case Tag.inline:
        if (!(flags & Flag.inline)) damaged(what, 'INLINE section without flag INLINE');
        setPrimary({ form: 'inline', content: Buffer.from(bytes) });
        break;
      case Tag.map: {
        if (bytes.length !== SLOT_BYTES * mapCount) damaged(what, `MAP of ${bytes.length} bytes for mapCount ${mapCount}`);
        // Lost and preallocated slots are valid in piece maps only, not in bucket tables.
        const buckets = (flags & Flag.buckets) !== 0;
        const root = readRoot(bytes, !buckets, what);
        setPrimary(buckets ? { form: 'buckets', level: dirLevel, split: dirSplit, depth: mapDepth, root } : { form: 'map', depth: mapDepth, root });
        break;
      }
      case Tag.entries:
        setPrimary({ form: 'entries', entries: Buffer.from(bytes) });
        break;
      case Tag.target:
        setPrimary({ form: 'target', target: Buffer.from(bytes) });
        break;
      case Tag.xattr:
        xattrs.push(readXattrBody(bytes, what));
        break;
      case Tag.spill:
        if (bytes.length !== SPILL_CONTENT_BYTES) damaged(what, `SPILL of ${bytes.length} bytes`);
        spill = { count: bytes.readUInt16BE(0), version: readSlot(bytes, 2, false, what) };
        break;
    }
  }
  primary ??= { form: 'none' };
  if ((flags & Flag.inline) && primary.form !== 'inline') damaged(what, 'flag INLINE without an INLINE section');
  if ((flags & Flag.buckets) && primary.form !== 'buckets') damaged(what, 'flag BUCKETS without a MAP section');
  const hasMap = primary.form === 'map' || primary.form === 'buckets';
  if (!hasMap && (mapDepth !== 0 || mapCount !== 0)) damaged(what, `mapDepth ${mapDepth} and mapCount ${mapCount} without a MAP section`);
  if (primary.form !== 'buckets' && (dirLevel !== 0 || dirSplit !== 0)) damaged(what, `dirLevel ${dirLevel} and dirSplit ${dirSplit} without flag BUCKETS`);

  const inode: InodeRecord = {
    ino,
    parentIno: readField(payload, At.parentIno, what, 'parentIno'),
    fileId: Buffer.from(payload.subarray(At.fileId, At.fileId + FILE_ID_BYTES)),
    type: payload.readUInt8(At.type) as FileType, // checked with the rest, by inodeProblem
    mode: payload.readUInt32BE(At.mode),
    uid: payload.readUInt32BE(At.uid),
    gid: payload.readUInt32BE(At.gid),
    nlink: payload.readUInt32BE(At.nlink),
    rdev: payload.readUInt32BE(At.rdev),
    size: readField(payload, At.size, what, 'size'),
    atime: readTime(payload, At.atime, what, 'atime'),
    mtime: readTime(payload, At.mtime, what, 'mtime'),
    ctime: readTime(payload, At.ctime, what, 'ctime'),
    count: readField(payload, At.count, what, 'count'),
    hasLost: (flags & Flag.hasLost) !== 0,
    primary,
    xattrs,
    spill,
  };
  const problem = inodeProblem(inode, pieceSize);
  if (problem) damaged(what, problem);
  return inode;
}
