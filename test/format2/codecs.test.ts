// Format 2's payload codecs (docs/format-2.md, 5.5, 6, 7 and 8): the inode record with its tail, spill
// records and the spill stream, directory entries and bucket records, and the state record. Round trips
// by property; the spec's capacity figures asserted from the encoders; the byte layout pinned against a
// payload built by hand from the spec's offsets; and every read check made to fail at least once with a
// hand-damaged payload, each failure matched to its own message so that a check cannot pass by accident.

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { FsError, IntegrityError } from '../../src/core/errors.js';
import {
  bucketCount,
  bucketOf,
  BUCKET_ENTRIES_MAX,
  compareEntries,
  decodeBucket,
  decodeInlineEntries,
  encodeBucket,
  encodeInlineEntries,
  entriesLength,
  nameHash,
  nameProblem,
  splitKey,
  type DirEntry,
  type U64Words,
} from '../../src/core/format2/dir-records.js';
import {
  checkXattrSpace,
  decodeInode,
  encodeInode,
  FileType,
  fileTypeOfMode,
  INLINE_MAX,
  MAP_ROOT_MAX,
  mergeSpill,
  modeTypeBits,
  placeSymlinkTarget,
  placeXattrs,
  TAIL_MAX,
  XATTR_SPACE_MAX,
  xattrSpace,
  type InodeRecord,
  type Primary,
  type Timespec,
} from '../../src/core/format2/inode-record.js';
import { HOLE, lostSlot, MAX_VERSION, PREALLOCATED, writeSlot } from '../../src/core/format2/slot.js';
import {
  decodeSpillRecord,
  decodeSpillStream,
  encodeSpillRecord,
  encodeSpillStream,
  joinSpillRecords,
  spillCapacity,
  spillRecordCount,
  splitSpillStream,
  SPILL_RECORDS_MAX,
  type SpillContent,
  type Xattr,
} from '../../src/core/format2/spill-records.js';
import {
  decodeRepairQueueRecord,
  decodeStateRecord,
  encodeRepairQueueRecord,
  encodeStateRecord,
  REPAIR_ENTRIES_MAX,
  STATE_ROOT_MAX,
  type RepairEntry,
  type StateRecord,
} from '../../src/core/format2/state-record.js';

const PIECE = 131_072;
const PAYLOAD_MAX = 3_956;
const DIRHASH_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i));

/** The inode's fixed offsets, written out from the table of 6.1 rather than taken from the module. */
const OFF = { ino: 0, parentIno: 8, fileId: 16, type: 32, flags: 33, mapDepth: 34, zero: 35, mode: 36, uid: 40, gid: 44, nlink: 48, rdev: 52, size: 56, atime: 64, mtime: 76, ctime: 88, count: 100, dirLevel: 108, dirSplit: 112, mapCount: 116, tailLength: 118 } as const;
const FIXED = 120;
const TAG = { inline: 1, map: 2, entries: 3, target: 4, xattr: 5, spill: 6 } as const;

function damagedBy(t: ExecutionContext, fn: () => unknown, message: RegExp): void {
  const err = t.throws(fn, { instanceOf: IntegrityError, message });
  t.is(err?.kind, 'damaged');
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const big = (min: number, max: number) => fc.integer({ min, max });
const versionArb = fc.oneof(big(1, 1000), big(1, MAX_VERSION));

// ---- building blocks ----

const T0: Timespec = { sec: 1_700_000_000, nsec: 123_456_789 };

function inode(over: Partial<InodeRecord> = {}): InodeRecord {
  return {
    ino: 42,
    parentIno: 1,
    fileId: Buffer.alloc(16, 0xa5),
    type: FileType.regular,
    mode: 0o100644,
    uid: 1000,
    gid: 100,
    nlink: 1,
    rdev: 0,
    size: 5,
    atime: T0,
    mtime: T0,
    ctime: T0,
    count: 0,
    hasLost: false,
    primary: { form: 'inline', content: Buffer.from('hello') },
    xattrs: [],
    spill: undefined,
    ...over,
  };
}

const x = (name: string, value: string | Buffer): Xattr => ({ name: Buffer.from(name), value: typeof value === 'string' ? Buffer.from(value) : value });

function section(tag: number, body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt8(tag, 0);
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function xattrBody(name: string | Buffer, value: string | Buffer): Buffer {
  const n = Buffer.from(name);
  return Buffer.concat([Buffer.from([n.length]), n, Buffer.from(value)]);
}

function slotBytes(slots: number[]): Buffer {
  const b = Buffer.alloc(8 * slots.length);
  slots.forEach((s, i) => writeSlot(b, 8 * i, s));
  return b;
}

function spillBody(count: number, version: number): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(count, 0);
  writeSlot(b, 2, version);
  return b;
}

function writeU64(b: Buffer, at: number, n: number): void {
  b.writeBigUInt64BE(BigInt(n), at);
}

function orFlags(b: Buffer, bits: number): void {
  b.writeUInt8(b.readUInt8(OFF.flags) | bits, OFF.flags);
}

/** A copy of `payload` with `edit` applied. */
function patched(payload: Buffer, edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(payload);
  edit(b);
  return b;
}

/** `payload`'s fixed part with a new tail (tailLength set to it), then `edit` applied. */
function withTail(payload: Buffer, tail: Buffer[], edit: (b: Buffer) => void = () => {}): Buffer {
  const b = Buffer.concat([payload.subarray(0, FIXED), ...tail]);
  b.writeUInt16BE(b.length - FIXED, OFF.tailLength);
  edit(b);
  return b;
}

function entry(dirIno: number, name: string | Buffer, ino = 7, type: FileType = FileType.regular): DirEntry {
  const n = Buffer.from(name);
  return { ino, type, name: n, hash: nameHash(DIRHASH_KEY, dirIno, n) };
}

function sortedEntries(dirIno: number, names: (string | Buffer)[]): DirEntry[] {
  return names.map((n, i) => entry(dirIno, n, 100 + i)).sort(compareEntries);
}

function encodeEntriesRaw(entries: { ino: number; type: number; name: Buffer }[]): Buffer {
  return Buffer.concat(
    entries.map((e) => {
      const h = Buffer.alloc(10);
      writeU64(h, 0, e.ino);
      h.writeUInt8(e.type, 8);
      h.writeUInt8(e.name.length, 9);
      return Buffer.concat([h, e.name]);
    }),
  );
}

/** The bits of a u64 reversed, by BigInt: the reference for splitKey. */
function bitreverse64(h: bigint): bigint {
  let r = 0n;
  for (let i = 0n; i < 64n; i++) if ((h >> i) & 1n) r |= 1n << (63n - i);
  return r;
}

const toBig = (w: U64Words) => (BigInt(w.hi) << 32n) | BigInt(w.lo);
const wordsArb = fc.record({ hi: big(0, 0xffff_ffff), lo: big(0, 0xffff_ffff) });

// ---- inode: layout, round trips, capacities ----

test('the inode payload is laid out at the offsets of 6.1 and 6.2, byte for byte', (t) => {
  const record = inode({
    ino: 0x01_0203_0405,
    parentIno: 2,
    mode: 0o100640,
    size: 5,
    atime: { sec: -1, nsec: 5 },
    mtime: { sec: 1, nsec: 999_999_999 },
    ctime: { sec: 2 ** 40, nsec: 0 },
    xattrs: [x('ab', 'xyz')],
    spill: { count: 2, version: 7 },
  });
  const expected = Buffer.alloc(FIXED + 9 + 10 + 14);
  expected.write('0000000102030405', OFF.ino, 'hex');
  expected.write('0000000000000002', OFF.parentIno, 'hex');
  expected.fill(0xa5, OFF.fileId, OFF.fileId + 16);
  expected[OFF.type] = 1;
  expected[OFF.flags] = 1; // INLINE
  expected.writeUInt32BE(0o100640, OFF.mode);
  expected.writeUInt32BE(1000, OFF.uid);
  expected.writeUInt32BE(100, OFF.gid);
  expected.writeUInt32BE(1, OFF.nlink);
  expected.write('0000000000000005', OFF.size, 'hex');
  expected.write('ffffffffffffffff00000005', OFF.atime, 'hex'); // 1969-12-31T23:59:59.000000005
  expected.write('00000000000000013b9ac9ff', OFF.mtime, 'hex');
  expected.write('000001000000000000000000', OFF.ctime, 'hex');
  expected.writeUInt16BE(33, OFF.tailLength);
  expected.write('01000005' + Buffer.from('hello').toString('hex'), 120, 'hex');
  expected.write('05000006' + '02' + Buffer.from('abxyz').toString('hex'), 129, 'hex');
  expected.write('0600000a' + '0002' + '0000000000000007', 139, 'hex');
  t.deepEqual(encodeInode(record), expected);
  t.deepEqual(decodeInode(expected, 0x01_0203_0405, PIECE), record);
});

/** Any valid inode: every type and form, with xattrs placed by the rule and a spill when one is needed. */
const inodeArb: fc.Arbitrary<InodeRecord> = fc
  .record({
    ino: fc.oneof(fc.constant(1), big(2, Number.MAX_SAFE_INTEGER)),
    parentIno: big(1, Number.MAX_SAFE_INTEGER),
    fileId: bytes(16, 16),
    perm: big(0, 0o7777),
    uid: big(0, 0xffff_ffff),
    gid: big(0, 0xffff_ffff),
    nlink: big(2, 0xffff_ffff),
    times: fc.array(fc.record({ sec: big(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), nsec: big(0, 999_999_999) }), { minLength: 3, maxLength: 3 }),
    xattrs: fc.uniqueArray(fc.record({ name: bytes(1, 24), value: bytes(0, 1200) }), { maxLength: 6, selector: (a) => a.name.toString('hex') }),
    spillVersion: versionArb,
    body: fc.oneof(
      bytes(0, INLINE_MAX).map((content) => ({ type: FileType.regular, primary: { form: 'inline', content } as Primary, size: content.length, count: 0, hasLost: false, rdev: 0 })),
      fc
        .record({
          depth: big(0, 3),
          root: fc.array(fc.oneof(fc.constant(HOLE), versionArb, fc.constant(PREALLOCATED), fc.oneof(fc.constant(0), versionArb).map(lostSlot)), { maxLength: MAP_ROOT_MAX }),
          size: big(0, Number.MAX_SAFE_INTEGER),
          extraCount: big(0, 2 ** 40),
          lostBelow: fc.boolean(),
        })
        .map(({ depth, root, size, extraCount, lostBelow }) => {
          if (depth > 0 && !root.some((s) => s !== 0)) root = [...root, 9];
          const lastData = root.reduce((last, s, i) => (s > 0 ? i : last), -1);
          const hasNode = depth > 0 && root.some((s) => s > 0);
          const preallocated = root.filter((s) => s === PREALLOCATED).length * 494 ** depth;
          return {
            type: FileType.regular,
            primary: { form: 'map', depth, root } as Primary,
            size: depth === 0 ? Math.max(size, lastData * PIECE + 1) : size,
            count: preallocated + (hasNode ? extraCount : 0),
            hasLost: root.some((s) => s <= -2) || (hasNode && lostBelow),
            rdev: 0,
          };
        }),
      fc.uniqueArray(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }), { maxLength: 40 }).map((names) => {
        const valid = names.filter((n) => nameProblem(Buffer.from(n)) === undefined);
        const entries = sortedEntries(5, valid);
        while (entriesLength(entries) > INLINE_MAX) entries.pop();
        return { type: FileType.directory, primary: { form: 'entries', entries: encodeInlineEntries(entries) } as Primary, size: encodeInlineEntries(entries).length, count: entries.length, hasLost: false, rdev: 0 };
      }),
      fc
        .record({ depth: big(0, 3), levelSeed: big(0, 31), splitSeed: big(0, 2 ** 31), root: fc.array(fc.oneof(fc.constant(0), versionArb), { minLength: 1, maxLength: MAP_ROOT_MAX }), count: big(0, 2 ** 40) })
        .map(({ depth, levelSeed, splitSeed, root, count }) => {
          const minLevel = [0, 9, 18, 27][depth]!; // n must outgrow depth − 1: 477, 235,638, 116 million buckets
          const level = Math.max(levelSeed, minLevel);
          const split = splitSeed % 2 ** level;
          const n = 2 ** level + split;
          const usable = Math.min(root.length, Math.ceil(n / 494 ** depth));
          const table = root.slice(0, usable);
          if (depth > 0 && !table.some((s) => s !== 0)) table[0] = 3;
          return { type: FileType.directory, primary: { form: 'buckets', level, split, depth, root: table } as Primary, size: 9000, count, hasLost: false, rdev: 0 };
        }),
      bytes(1, 4095).map((target) => ({ type: FileType.symlink, primary: placeSymlinkTarget(target).primary, size: target.length, count: 0, hasLost: false, rdev: 0 })),
      fc.record({ type: fc.constantFrom(FileType.fifo, FileType.socket, FileType.charDevice, FileType.blockDevice), rdev: big(0, 0xffff_ffff) }).map(({ type, rdev }) => ({
        type,
        primary: { form: 'none' } as Primary,
        size: 0,
        count: 0,
        hasLost: false,
        rdev: type === FileType.charDevice || type === FileType.blockDevice ? rdev : 0,
      })),
    ),
  })
  .map((r) => {
    const { type, primary } = r.body;
    const placed = placeXattrs(primary, r.xattrs);
    const targetSpills = type === FileType.symlink && primary.form === 'none';
    return {
      ino: r.ino,
      parentIno: r.ino === 1 ? 0 : r.parentIno,
      fileId: r.fileId,
      type,
      mode: modeTypeBits(type) | r.perm,
      uid: r.uid,
      gid: r.gid,
      nlink: type === FileType.directory ? r.nlink : r.nlink - 1,
      rdev: r.body.rdev,
      size: r.body.size,
      atime: r.times[0]!,
      mtime: r.times[1]!,
      ctime: r.times[2]!,
      count: r.body.count,
      hasLost: r.body.hasLost,
      primary,
      xattrs: placed.inInode,
      spill: placed.spilled.length > 0 || targetSpills ? { count: 1 + (r.spillVersion % SPILL_RECORDS_MAX), version: r.spillVersion } : undefined,
    };
  });

test('every valid inode survives encode and decode, and encodes to the same bytes again', (t) => {
  fc.assert(
    fc.property(inodeArb, (record) => {
      const payload = encodeInode(record);
      t.true(payload.length <= PAYLOAD_MAX);
      const decoded = decodeInode(payload, record.ino, PIECE);
      t.deepEqual(decoded, record);
      t.deepEqual(encodeInode(decoded), payload);
    }),
    { numRuns: 400 },
  );
});

test('capacity: 3,818 bytes inline beside SPILL fill the payload to 3,956; 3,819 are refused', (t) => {
  const full = inode({ size: INLINE_MAX, primary: { form: 'inline', content: Buffer.alloc(INLINE_MAX, 1) }, spill: { count: 1, version: 3 } });
  t.is(TAIL_MAX, 3_836, '3,956 − 120');
  t.is(INLINE_MAX, 3_818, '3,836 − 14 for SPILL − 4 for the primary section’s header');
  t.is(encodeInode(full).length, PAYLOAD_MAX);
  t.deepEqual(decodeInode(encodeInode(full), 42, PIECE), full);
  t.throws(() => encodeInode(inode({ size: 3_819, primary: { form: 'inline', content: Buffer.alloc(3_819) } })), { instanceOf: RangeError, message: /INLINE of 3819 bytes/ });
});

test('capacity: a MAP root of 477 entries fits beside SPILL; 478 are refused', (t) => {
  const root = Array.from({ length: 477 }, (_, i) => i + 1);
  const mapped = inode({ size: 477 * PIECE, primary: { form: 'map', depth: 0, root }, spill: { count: 1, version: 3 } });
  t.is(MAP_ROOT_MAX, 477);
  t.is(encodeInode(mapped).length, FIXED + 4 + 477 * 8 + 14);
  t.deepEqual(decodeInode(encodeInode(mapped), 42, PIECE), mapped);
  t.throws(() => encodeInode(inode({ size: 478 * PIECE, primary: { form: 'map', depth: 0, root: [...root, 478] } })), { instanceOf: RangeError, message: /MAP of 478 entries/ });
});

test('capacity: inline ENTRIES hold 173 entries of 12-byte names (the spec says 170) and 14 of 255-byte names', (t) => {
  const names12 = (n: number) => Array.from({ length: n }, (_, i) => `name-${String(i).padStart(7, '0')}`);
  t.is(Buffer.byteLength(names12(1)[0]!), 12);
  // 10 + 12 = 22 bytes an entry: 173 × 22 = 3,806 ≤ 3,818 < 174 × 22 = 3,828.
  const fits = sortedEntries(5, names12(173));
  const dir = (entries: DirEntry[]) => inode({ type: FileType.directory, mode: 0o40755, nlink: 2, size: encodeInlineEntries(entries).length, count: entries.length, primary: { form: 'entries', entries: encodeInlineEntries(entries) }, spill: { count: 1, version: 3 } });
  t.true(encodeInode(dir(fits)).length <= PAYLOAD_MAX);
  t.is(decodeInlineEntries(encodeInlineEntries(fits), 173, 5, DIRHASH_KEY).length, 173);
  t.notThrows(() => encodeInlineEntries(sortedEntries(5, names12(170))));
  t.throws(() => encodeInlineEntries(sortedEntries(5, names12(174))), { instanceOf: RangeError, message: /3828 bytes of entries do not fit inline/ });
  const names255 = (n: number) => Array.from({ length: n }, (_, i) => String(i).padStart(3, '0') + 'n'.repeat(252));
  t.true(encodeInode(dir(sortedEntries(5, names255(14)))).length <= PAYLOAD_MAX);
  t.throws(() => encodeInlineEntries(sortedEntries(5, names255(15))), { instanceOf: RangeError, message: /3975 bytes/ });
  // Exactly 3,818: 15 entries, 8 names of 245 bytes and 7 of 244.
  const exact = sortedEntries(5, Array.from({ length: 15 }, (_, i) => String(i).padStart(2, '0') + 'e'.repeat(i < 8 ? 243 : 242)));
  t.is(entriesLength(exact), INLINE_MAX);
  t.is(encodeInode(dir(exact)).length, PAYLOAD_MAX);
});

test('capacity: a bucket record holds 3,940 bytes of entries; 3,941 are refused', (t) => {
  t.is(BUCKET_ENTRIES_MAX, 3_940);
  // One bucket (L = 0, s = 0): every name is in bucket 0. 20 entries of 10 + 187 bytes = 3,940.
  const names = Array.from({ length: 20 }, (_, i) => String(i).padStart(2, '0') + 'b'.repeat(185));
  const entries = sortedEntries(9, names);
  const payload = encodeBucket({ bucket: 0, chainPosition: 0, next: 0, entries }, 0, 0);
  t.is(payload.length, PAYLOAD_MAX);
  t.deepEqual(decodeBucket(payload, { dirIno: 9, bucket: 0, chainPosition: 0, level: 0, split: 0 }, DIRHASH_KEY).entries, entries);
  const over = sortedEntries(9, [...names.slice(1), '00' + 'b'.repeat(186)]);
  t.is(entriesLength(over), 3_941);
  t.throws(() => encodeBucket({ bucket: 0, chainPosition: 0, next: 0, entries: over }, 0, 0), { instanceOf: RangeError, message: /3941 bytes of entries/ });
});

test('times before 1970, at the ends of the safe range and with nanoseconds are kept exactly', (t) => {
  const times: Timespec[] = [
    { sec: -1, nsec: 1 },
    { sec: -3_155_760_000, nsec: 999_999_999 }, // 1870
    { sec: -(2 ** 31) - 1, nsec: 500 }, // just before a 32-bit time_t's range
    { sec: -Number.MAX_SAFE_INTEGER, nsec: 0 },
    { sec: Number.MAX_SAFE_INTEGER, nsec: 999_999_999 },
    { sec: 0, nsec: 0 },
  ];
  for (const time of times) {
    const record = inode({ atime: time, mtime: time, ctime: time });
    const payload = encodeInode(record);
    t.deepEqual(decodeInode(payload, 42, PIECE).mtime, time);
    t.is(payload.readBigInt64BE(OFF.atime), BigInt(time.sec), 'i64 seconds, two’s complement');
    t.is(payload.readUInt32BE(OFF.atime + 8), time.nsec);
  }
  t.throws(() => encodeInode(inode({ mtime: { sec: 1, nsec: 1e9 } })), { instanceOf: RangeError, message: /mtime nanoseconds/ });
  t.throws(() => encodeInode(inode({ mtime: { sec: 1.5, nsec: 0 } })), { instanceOf: RangeError, message: /mtime seconds/ });
});

test('every file type of section 8 keeps its mode and rdev, with xattrs and no content', (t) => {
  const rdevs = [0, 0x0801, 0xffff_ffff];
  for (const type of [FileType.fifo, FileType.socket, FileType.charDevice, FileType.blockDevice]) {
    const isDevice = type === FileType.charDevice || type === FileType.blockDevice;
    for (const rdev of isDevice ? rdevs : [0]) {
      const record = inode({ type, mode: modeTypeBits(type) | 0o640, rdev, size: 0, primary: { form: 'none' }, xattrs: [x('user.a', '1')] });
      const decoded = decodeInode(encodeInode(record), 42, PIECE);
      t.deepEqual(decoded, record);
      t.is(fileTypeOfMode(decoded.mode), type);
    }
    if (!isDevice) t.throws(() => encodeInode(inode({ type, mode: modeTypeBits(type) | 0o640, rdev: 1, size: 0, primary: { form: 'none' } })), { instanceOf: RangeError, message: /rdev 1 for type/ });
  }
  t.is(modeTypeBits(FileType.fifo), 0o010000);
  t.is(modeTypeBits(FileType.socket), 0o140000);
  t.is(modeTypeBits(FileType.charDevice), 0o020000);
  t.is(modeTypeBits(FileType.blockDevice), 0o060000);
  t.is(fileTypeOfMode(0o170000), undefined);
});

test('symlink targets: 3,818 bytes stay in TARGET; 3,819 and 4,095 spill; 4,096 are refused', (t) => {
  for (const length of [1, 3_818, 3_819, 4_095]) {
    const target = Buffer.alloc(length, 0x61);
    const { primary, spilledTarget } = placeSymlinkTarget(target);
    t.is(primary.form, length <= 3_818 ? 'target' : 'none');
    const xattrs = [x('user.k', 'v')];
    const placed = placeXattrs(primary, xattrs);
    const stream = encodeSpillStream({ target: spilledTarget, xattrs: placed.spilled });
    const parts = splitSpillStream(stream);
    const record = inode({ type: FileType.symlink, mode: 0o120777, size: length, primary, xattrs: placed.inInode, spill: parts.length ? { count: parts.length, version: 11 } : undefined });
    const decoded = decodeInode(encodeInode(record), 42, PIECE);
    const records = parts.map((data, position) => decodeSpillRecord(encodeSpillRecord({ position, count: position ? 0 : parts.length, versions: position ? [] : Array(parts.length - 1).fill(11), data }), 42, position));
    const spilled = decoded.spill ? decodeSpillStream(joinSpillRecords(records, decoded.spill.count, 42), 'test') : undefined;
    const merged = mergeSpill(decoded, spilled);
    t.deepEqual(merged.target, target);
    t.deepEqual(merged.xattrs, xattrs);
  }
  t.throws(() => placeSymlinkTarget(Buffer.alloc(4_096)), { instanceOf: RangeError });
  t.throws(() => placeSymlinkTarget(Buffer.alloc(0)), { instanceOf: RangeError });
});

// ---- xattr placement, spill and the limit ----

test('xattrs that fit stay in the inode beside inline content; the content never moves for them', (t) => {
  const primary: Primary = { form: 'inline', content: Buffer.alloc(1_024) };
  const small = [x('user.b', 'two'), x('user.a', 'one')];
  const placed = placeXattrs(primary, small);
  t.deepEqual(placed.inInode, [small[1], small[0]], 'in name order');
  t.deepEqual(placed.spilled, []);
  // A full inline file: the xattr spills, the content stays.
  const full: Primary = { form: 'inline', content: Buffer.alloc(INLINE_MAX) };
  t.deepEqual(placeXattrs(full, small).inInode, []);
  t.is(placeXattrs(full, small).spilled.length, 2);
  const record = inode({ size: INLINE_MAX, primary: full, spill: { count: 1, version: 4 } });
  t.deepEqual(decodeInode(encodeInode(record), 42, PIECE).primary, full);
});

test('placement keeps a prefix of the name order, and always leaves the 14 bytes of SPILL', (t) => {
  const primary: Primary = { form: 'inline', content: Buffer.alloc(500) };
  const xattrs = [x('a', 'small'), x('b', Buffer.alloc(3_400)), x('c', 'small too')];
  const placed = placeXattrs(primary, xattrs);
  t.deepEqual(placed.inInode.map((a) => a.name.toString()), ['a']);
  t.deepEqual(placed.spilled.map((a) => a.name.toString()), ['b', 'c'], 'c would fit, but follows one that did not');
  // No primary: 3,836 − 14 = 3,822 bytes for XATTR sections, 4 + 1 + 1 + 3,816 exactly.
  const none: Primary = { form: 'none' };
  t.is(placeXattrs(none, [x('z', Buffer.alloc(3_816))]).inInode.length, 1);
  t.is(placeXattrs(none, [x('z', Buffer.alloc(3_817))]).inInode.length, 0);
  const fits = inode({ type: FileType.fifo, mode: 0o10644, size: 0, primary: none, xattrs: [x('z', Buffer.alloc(3_816))], spill: { count: 1, version: 2 } });
  t.is(encodeInode(fits).length, PAYLOAD_MAX);
  t.throws(() => encodeInode(inode({ xattrs: [x('z', Buffer.alloc(3_826))] })), { instanceOf: RangeError, message: /tail of 3841 bytes/ });
});

test('240 KiB of xattrs are allowed, a byte more is ENOSPC, and the most an inode spills fits 64 records', (t) => {
  // Items of 5 + 1 + 10 + value bytes: 3 × 65,552 + 49,104 = 245,760.
  const names = ['user.aaaaa', 'user.bbbbb', 'user.ccccc', 'user.ddddd'];
  const xattrs = names.map((n, i) => x(n, Buffer.alloc(i < 3 ? 65_536 : 49_088, i)));
  t.is(xattrSpace(xattrs), XATTR_SPACE_MAX);
  t.notThrows(() => checkXattrSpace(xattrs));
  const over = [...xattrs.slice(0, 3), x('user.ddddd', Buffer.alloc(49_089))];
  const err = t.throws(() => checkXattrSpace(over), { instanceOf: FsError });
  t.is(err?.errno, 'ENOSPC');
  // The worst case: a 4,095-byte target and all of it spilled.
  const target = Buffer.alloc(4_095, 0x2f);
  const stream = encodeSpillStream({ target, xattrs });
  t.is(stream.length, 5 + 4_095 + XATTR_SPACE_MAX);
  const parts = splitSpillStream(stream);
  t.true(parts.length <= SPILL_RECORDS_MAX);
  t.is(spillCapacity(SPILL_RECORDS_MAX), 252_424, '3,952 + 63 × 3,944');
  t.throws(() => spillRecordCount(252_425), { instanceOf: RangeError });
  t.is(spillRecordCount(252_424), 64);
  const versions = parts.slice(1).map((_, i) => 1_000 + i);
  const payloads = parts.map((data, position) => encodeSpillRecord({ position, count: position ? 0 : parts.length, versions: position ? [] : versions, data }));
  t.true(payloads.every((p) => p.length <= PAYLOAD_MAX));
  const decoded = payloads.map((p, position) => decodeSpillRecord(p, 42, position));
  t.deepEqual(decoded[0]!.versions, versions);
  t.deepEqual(decodeSpillStream(joinSpillRecords(decoded, parts.length, 42), 'test'), { target, xattrs });
});

test('a spill stream of any size up to 64 records splits and joins back', (t) => {
  fc.assert(
    fc.property(big(0, 252_424), (length) => {
      const stream = Buffer.alloc(length);
      for (let i = 0; i < length; i += 997) stream[i] = i & 0xff;
      const parts = splitSpillStream(stream);
      t.is(parts.length, spillRecordCount(length));
      if (length > 0) {
        t.true(spillCapacity(parts.length) >= length);
        t.true(spillCapacity(parts.length - 1) < length, 'the fewest records that hold it');
      }
      const records = parts.map((data, position) =>
        decodeSpillRecord(encodeSpillRecord({ position, count: position ? 0 : parts.length, versions: position ? [] : parts.slice(1).map((_, i) => i + 1), data }), 7, position),
      );
      t.deepEqual(joinSpillRecords(records, parts.length, 7), stream);
    }),
    { numRuns: 60 },
  );
});

test('spill content of any target and xattrs survives the stream', (t) => {
  fc.assert(
    fc.property(
      fc.option(bytes(1, 4_095), { nil: undefined }),
      fc.uniqueArray(fc.record({ name: bytes(1, 255), value: bytes(0, 3_000) }), { maxLength: 8, selector: (a) => a.name.toString('hex') }),
      (target, list) => {
        const content: SpillContent = { target, xattrs: [...list].sort((a, b) => Buffer.compare(a.name, b.name)) };
        t.deepEqual(decodeSpillStream(encodeSpillStream(content), 'test'), content);
      },
    ),
    { numRuns: 200 },
  );
});

// ---- inode: every check fails ----

const REGULAR = encodeInode(inode());
const MAPPED = encodeInode(inode({ size: 3 * PIECE, count: 1, hasLost: true, primary: { form: 'map', depth: 0, root: [5, 0, PREALLOCATED, lostSlot(3)] } }));
const MAPPED_DEEP = encodeInode(inode({ size: 10 * PIECE, count: 494, hasLost: true, primary: { form: 'map', depth: 1, root: [PREALLOCATED, lostSlot(0)] } }));
const DIRECTORY = encodeInode(inode({ type: FileType.directory, mode: 0o40755, nlink: 2, size: encodeInlineEntries([entry(42, 'a')]).length, count: 1, primary: { form: 'entries', entries: encodeInlineEntries([entry(42, 'a')]) } }));
const BUCKETED = encodeInode(inode({ type: FileType.directory, mode: 0o40755, nlink: 2, size: 5000, count: 9, primary: { form: 'buckets', level: 1, split: 1, depth: 0, root: [4, 5, 6] } }));
const SYMLINK = encodeInode(inode({ type: FileType.symlink, mode: 0o120777, size: 3, primary: { form: 'target', target: Buffer.from('abc') } }));
const FIFO = encodeInode(inode({ type: FileType.fifo, mode: 0o10600, size: 0, primary: { form: 'none' } }));
const ROOT = encodeInode(inode({ ino: 1, parentIno: 0, type: FileType.directory, mode: 0o40755, nlink: 2, size: 0, count: 0, primary: { form: 'entries', entries: Buffer.alloc(0) } }));

test('the base payloads of the damage cases decode', (t) => {
  for (const payload of [REGULAR, MAPPED, MAPPED_DEEP, DIRECTORY, BUCKETED, SYMLINK, FIFO]) t.notThrows(() => decodeInode(payload, 42, PIECE));
  t.notThrows(() => decodeInode(ROOT, 1, PIECE));
});

/** [what, payload, the message its check gives, the ino the record is read for (42 unless given)] */
const inodeDamage: [string, Buffer, RegExp, number?][] = [
  // the fixed part
  ['shorter than the fixed part', REGULAR.subarray(0, 119), /payload of 119 bytes/],
  ['longer than a record holds', withTail(REGULAR, [section(TAG.inline, Buffer.alloc(3_833))]), /payload of 3957 bytes/],
  ['another inode’s record', patched(REGULAR, (b) => writeU64(b, OFF.ino, 43)), /record holds ino 43/],
  ['ino of 2^53', patched(REGULAR, (b) => writeU64(b, OFF.ino, 2 ** 53)), /ino is 2\^53 or more/],
  ['type code 0', patched(REGULAR, (b) => (b[OFF.type] = 0)), /type code 0/],
  ['type code 8', patched(REGULAR, (b) => (b[OFF.type] = 8)), /type code 8/],
  ['a reserved flag bit', patched(REGULAR, (b) => orFlags(b, 8)), /reserved flag bits/],
  ['byte 35 not zero', patched(REGULAR, (b) => (b[OFF.zero] = 1)), /byte 35 is not zero/],
  ['tailLength one short', patched(REGULAR, (b) => b.writeUInt16BE(b.readUInt16BE(OFF.tailLength) - 1, OFF.tailLength)), /tailLength 8 in a payload of 129 bytes/],
  ['parentIno 0 for an inode other than the root', patched(REGULAR, (b) => writeU64(b, OFF.parentIno, 0)), /parentIno 0/],
  ['parentIno of 2^53', patched(REGULAR, (b) => writeU64(b, OFF.parentIno, 2 ** 53)), /parentIno is 2\^53 or more/],
  ['size of 2^53', patched(REGULAR, (b) => writeU64(b, OFF.size, 2 ** 53)), /size is 2\^53 or more/],
  ['count of 2^53', patched(REGULAR, (b) => writeU64(b, OFF.count, 2 ** 53)), /count is 2\^53 or more/],
  ['mode of a directory on a regular file', patched(REGULAR, (b) => b.writeUInt32BE(0o40644, OFF.mode)), /mode 0o40644 does not match type 1/],
  ['mode without type bits', patched(REGULAR, (b) => b.writeUInt32BE(0o644, OFF.mode)), /mode 0o644 does not match/],
  ['mode bits above st_mode', patched(REGULAR, (b) => b.writeUInt32BE(0o1100644, OFF.mode)), /mode 0o1100644 does not match/],
  ['nlink 0', patched(REGULAR, (b) => b.writeUInt32BE(0, OFF.nlink)), /nlink 0 for type 1/],
  ['a directory with nlink 1', patched(DIRECTORY, (b) => b.writeUInt32BE(1, OFF.nlink)), /nlink 1 for type 2/],
  ['rdev on a regular file', patched(REGULAR, (b) => b.writeUInt32BE(0x801, OFF.rdev)), /rdev 2049 for type 1/],
  ['rdev on a FIFO', patched(FIFO, (b) => b.writeUInt32BE(1, OFF.rdev)), /rdev 1 for type 4/],
  ['size on a FIFO', patched(FIFO, (b) => writeU64(b, OFF.size, 1)), /size 1 for type 4/],
  ['a directory whose size is not its inline entries\' bytes', patched(DIRECTORY, (b) => writeU64(b, OFF.size, 4096)), /ENTRIES of \d+ bytes for size 4096/],
  ['count on a symlink', patched(SYMLINK, (b) => writeU64(b, OFF.count, 1)), /count 1 for type 3/],
  ['count on a FIFO', patched(FIFO, (b) => writeU64(b, OFF.count, 1)), /count 1 for type 4/],
  ['atime nanoseconds of 10^9', patched(REGULAR, (b) => b.writeUInt32BE(1e9, OFF.atime + 8)), /atime nanoseconds 1000000000/],
  ['mtime nanoseconds past 10^9', patched(REGULAR, (b) => b.writeUInt32BE(0xffff_ffff, OFF.mtime + 8)), /mtime nanoseconds/],
  ['ctime nanoseconds of 10^9', patched(REGULAR, (b) => b.writeUInt32BE(1e9, OFF.ctime + 8)), /ctime nanoseconds/],
  ['atime seconds of 2^53', patched(REGULAR, (b) => b.writeBigInt64BE(2n ** 53n, OFF.atime)), /atime seconds beyond/],
  ['mtime seconds of −2^53', patched(REGULAR, (b) => b.writeBigInt64BE(-(2n ** 53n), OFF.mtime)), /mtime seconds beyond/],
  ['the root with a parent', patched(ROOT, (b) => writeU64(b, OFF.parentIno, 5)), /parentIno 5 \(0 for the root only\)/, 1],
  // the tail's framing
  ['a tail ending inside a section header', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), Buffer.from([5, 0])]), /inside a section header/],
  ['a section header with a non-zero second byte', patched(REGULAR, (b) => (b[FIXED + 1] = 1)), /non-zero second byte/],
  ['reserved section tag 7', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(7, Buffer.alloc(0))]), /reserved tag 7/],
  ['reserved section tag 0', withTail(REGULAR, [section(0, Buffer.alloc(0)), section(TAG.inline, Buffer.from('hello'))]), /reserved tag 0/],
  ['XATTR before INLINE', withTail(REGULAR, [section(TAG.xattr, xattrBody('a', '1')), section(TAG.inline, Buffer.from('hello'))]), /INLINE after XATTR/],
  ['SPILL twice', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.spill, spillBody(1, 2)), section(TAG.spill, spillBody(1, 2))]), /SPILL after SPILL/],
  ['a section running past tailLength', patched(REGULAR, (b) => b.writeUInt16BE(6, FIXED + 2)), /INLINE of 6 bytes runs past tailLength/],
  // flags and the primary section
  ['INLINE without flag INLINE', patched(REGULAR, (b) => (b[OFF.flags] = 0)), /INLINE section without flag INLINE/],
  ['flag INLINE without INLINE', withTail(MAPPED, [section(TAG.map, slotBytes([5, 0, PREALLOCATED, lostSlot(3)]))], (b) => orFlags(b, 1)), /flag INLINE without an INLINE section/],
  ['flag BUCKETS without MAP', patched(DIRECTORY, (b) => (b[OFF.flags] = 2)), /flag BUCKETS without a MAP section/],
  ['INLINE and MAP together', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.map, slotBytes([5]))], (b) => b.writeUInt16BE(1, OFF.mapCount)), /both INLINE and MAP/],
  ['MAP shorter than mapCount', patched(MAPPED, (b) => b.writeUInt16BE(5, OFF.mapCount)), /MAP of 32 bytes for mapCount 5/],
  ['mapCount without MAP', patched(REGULAR, (b) => b.writeUInt16BE(1, OFF.mapCount)), /mapCount 1 without a MAP section/],
  ['mapDepth without MAP', patched(SYMLINK, (b) => (b[OFF.mapDepth] = 1)), /mapDepth 1 and mapCount 0 without a MAP section/],
  ['dirLevel without BUCKETS', patched(DIRECTORY, (b) => b.writeUInt32BE(1, OFF.dirLevel)), /dirLevel 1 and dirSplit 0 without flag BUCKETS/],
  ['dirSplit on a piece map', patched(MAPPED, (b) => b.writeUInt32BE(1, OFF.dirSplit)), /dirSplit 1 without flag BUCKETS/],
  ['a FIFO with a MAP section (the test plan’s crafted inode)', withTail(FIFO, [section(TAG.map, slotBytes([5]))], (b) => b.writeUInt16BE(1, OFF.mapCount)), /MAP is not allowed for type 4/],
  ['a FIFO with INLINE', withTail(FIFO, [section(TAG.inline, Buffer.alloc(0))], (b) => (b[OFF.flags] = 1)), /INLINE is not allowed for type 4/],
  ['a character device with a TARGET', withTail(FIFO, [section(TAG.target, Buffer.from('x'))], (b) => {
      b[OFF.type] = 6;
      b.writeUInt32BE(0o20600, OFF.mode);
    }), /TARGET is not allowed for type 6/],
  ['a block device with ENTRIES', withTail(FIFO, [section(TAG.entries, Buffer.alloc(0))], (b) => {
      b[OFF.type] = 7;
      b.writeUInt32BE(0o60600, OFF.mode);
    }), /ENTRIES is not allowed for type 7/],
  ['a regular file with ENTRIES', withTail(REGULAR, [section(TAG.entries, Buffer.alloc(0))], (b) => (b[OFF.flags] = 0)), /ENTRIES is not allowed for type 1/],
  ['a regular file with no primary section', withTail(REGULAR, [], (b) => (b[OFF.flags] = 0)), /no primary section is not allowed for type 1/],
  ['a directory with TARGET', withTail(DIRECTORY, [section(TAG.target, Buffer.from('x'))]), /TARGET is not allowed for type 2/],
  ['a directory with a piece map', withTail(DIRECTORY, [section(TAG.map, slotBytes([0]))], (b) => b.writeUInt16BE(1, OFF.mapCount)), /MAP is not allowed for type 2/],
  ['a regular file with BUCKETS', withTail(MAPPED, [section(TAG.map, slotBytes([5]))], (b) => {
      b[OFF.flags] = 2;
      b.writeUInt16BE(1, OFF.mapCount);
    }), /MAP with BUCKETS is not allowed for type 1/],
  ['a symlink with INLINE', withTail(SYMLINK, [section(TAG.inline, Buffer.from('abc'))], (b) => (b[OFF.flags] = 1)), /INLINE is not allowed for type 3/],
  // inline content (section 7)
  ['INLINE shorter than size', patched(REGULAR, (b) => writeU64(b, OFF.size, 6)), /INLINE of 5 bytes for size 6/],
  ['INLINE of 3,819 bytes', withTail(REGULAR, [section(TAG.inline, Buffer.alloc(3_819))], (b) => writeU64(b, OFF.size, 3_819)), /INLINE of 3819 bytes \(at most 3818\)/],
  ['an inline file with a count', patched(REGULAR, (b) => writeU64(b, OFF.count, 1)), /count 1 for an inline file/],
  ['HAS_LOST on an inline file', patched(REGULAR, (b) => orFlags(b, 4)), /HAS_LOST without a piece map/],
  // piece maps (5.4, 9)
  ['a MAP of 478 entries', withTail(MAPPED, [section(TAG.map, slotBytes(Array(478).fill(0)))], (b) => {
      b.writeUInt16BE(478, OFF.mapCount);
      writeU64(b, OFF.count, 0);
      b[OFF.flags] = 0;
    }), /MAP of 478 entries/],
  ['map depth 4', patched(MAPPED_DEEP, (b) => (b[OFF.mapDepth] = 4)), /map depth 4/],
  ['depth 1 with no pointer', withTail(MAPPED_DEEP, [section(TAG.map, slotBytes([0, 0]))], (b) => {
      writeU64(b, OFF.count, 0);
      b[OFF.flags] = 0;
    }), /map depth 1 with no pointer/],
  ['data at ceil(size / pieceSize)', patched(MAPPED, (b) => writeU64(b, OFF.size, 0)), /piece 0 holds data at or past ceil\(size \/ pieceSize\) = 0/],
  ['a damaged slot (tag 11)', patched(MAPPED, (b) => b.writeUInt32BE(0xc000_0000, FIXED + 4 + 8)), /slot with tag 3/],
  ['a preallocated slot with low bits', patched(MAPPED, (b) => b.writeUInt32BE(1, FIXED + 4 + 16 + 4)), /slot with tag 1 and value 1/],
  ['a slot version of 2^53', patched(MAPPED, (b) => b.writeUInt32BE(0x0020_0000, FIXED + 4)), /beyond 2\^53/],
  ['count unlike the preallocated slots', patched(MAPPED, (b) => writeU64(b, OFF.count, 2)), /count 2, but 1 slots are preallocated/],
  ['HAS_LOST clear with a lost slot', patched(MAPPED, (b) => (b[OFF.flags] = 0)), /HAS_LOST is clear, but a slot is lost/],
  ['HAS_LOST set with no lost slot', withTail(MAPPED, [section(TAG.map, slotBytes([5, 0, PREALLOCATED]))], (b) => b.writeUInt16BE(3, OFF.mapCount)), /HAS_LOST is set, but no slot is lost/],
  ['a preallocated pointer counted short', patched(MAPPED_DEEP, (b) => writeU64(b, OFF.count, 493)), /count 493, but the root's preallocated pointers stand for 494 slots/],
  ['a count past the pointers with no node below', patched(MAPPED_DEEP, (b) => writeU64(b, OFF.count, 495)), /count 495, but .* stand for 494 slots$/],
  ['a node pointer and a count below the preallocated pointers', withTail(MAPPED_DEEP, [section(TAG.map, slotBytes([PREALLOCATED, 8]))], (b) => writeU64(b, OFF.count, 10)), /stand for 494 slots or more/],
  ['a lost pointer without HAS_LOST', patched(MAPPED_DEEP, (b) => (b[OFF.flags] = 0)), /HAS_LOST is clear, but a pointer is lost/],
  ['HAS_LOST with neither a lost pointer nor a node', withTail(MAPPED_DEEP, [section(TAG.map, slotBytes([PREALLOCATED]))], (b) => b.writeUInt16BE(1, OFF.mapCount)), /HAS_LOST is set, but no slot can be lost/],
  // directories (6.4)
  ['ENTRIES of 3,819 bytes', withTail(DIRECTORY, [section(TAG.entries, Buffer.alloc(3_819))]), /ENTRIES of 3819 bytes/],
  ['HAS_LOST on a directory', patched(DIRECTORY, (b) => orFlags(b, 4)), /HAS_LOST without a piece map/],
  ['dirLevel 32', patched(BUCKETED, (b) => b.writeUInt32BE(32, OFF.dirLevel)), /dirLevel 32 \(0 to 31\)/],
  ['dirSplit of 2^L', patched(BUCKETED, (b) => b.writeUInt32BE(2, OFF.dirSplit)), /dirSplit 2 for dirLevel 1/],
  ['a bucket slot past n', withTail(BUCKETED, [section(TAG.map, slotBytes([4, 5, 6, 7]))], (b) => b.writeUInt16BE(4, OFF.mapCount)), /root entry 3 is set, past the 3 buckets/],
  ['a preallocated slot in a bucket table', withTail(BUCKETED, [section(TAG.map, slotBytes([4, PREALLOCATED, 6]))]), /slot with tag 1 and value 0 is not valid here/],
  ['a lost slot in a bucket table', withTail(BUCKETED, [section(TAG.map, slotBytes([4, lostSlot(2), 6]))]), /slot with tag 2 and value 2 is not valid here/],
  ['a bucket table deeper than its buckets need', withTail(BUCKETED, [section(TAG.map, slotBytes([4]))], (b) => {
      b[OFF.mapDepth] = 1;
      b.writeUInt16BE(1, OFF.mapCount);
    }), /bucket table of depth 1 for 3 buckets/],
  ['a bucket table of depth 1 with a pointer past n', withTail(BUCKETED, [section(TAG.map, slotBytes([4, 5]))], (b) => {
      // n = 2^8 + 224 = 480: more than depth 0 holds, and root entry 1 starts at bucket 494.
      b[OFF.mapDepth] = 1;
      b.writeUInt32BE(8, OFF.dirLevel);
      b.writeUInt32BE(224, OFF.dirSplit);
      b.writeUInt16BE(2, OFF.mapCount);
    }), /root entry 1 is set, past the 480 buckets/],
  // symlinks
  ['TARGET shorter than size', patched(SYMLINK, (b) => writeU64(b, OFF.size, 4)), /TARGET of 3 bytes for size 4/],
  ['an empty TARGET', withTail(SYMLINK, [section(TAG.target, Buffer.alloc(0))], (b) => writeU64(b, OFF.size, 0)), /TARGET of 0 bytes/],
  ['TARGET of 3,819 bytes', withTail(SYMLINK, [section(TAG.target, Buffer.alloc(3_819, 0x61))], (b) => writeU64(b, OFF.size, 3_819)), /TARGET of 3819 bytes \(1 to 3818\)/],
  ['a short target neither in TARGET nor spilled', withTail(SYMLINK, [section(TAG.spill, spillBody(1, 3))]), /symlink of size 3 without TARGET/],
  ['a spilled target longer than 4,095', withTail(SYMLINK, [section(TAG.spill, spillBody(2, 3))], (b) => writeU64(b, OFF.size, 4_096)), /symlink of size 4096 without TARGET/],
  ['a long target and no SPILL', withTail(SYMLINK, [], (b) => writeU64(b, OFF.size, 4_000)), /neither in TARGET nor in a spill/],
  // xattrs
  ['an empty XATTR', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.xattr, Buffer.alloc(0))]), /empty xattr/],
  ['an xattr name of 0 bytes', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.xattr, Buffer.from([0, 0x61]))]), /xattr name length 0/],
  ['an xattr name past its section', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.xattr, Buffer.from([3, 0x61, 0x62]))]), /xattr name length 3 in 3 bytes/],
  ['xattrs out of name order', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.xattr, xattrBody('b', '')), section(TAG.xattr, xattrBody('a', ''))]), /out of order or repeated/],
  ['an xattr twice', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.xattr, xattrBody('a', '1')), section(TAG.xattr, xattrBody('a', '2'))]), /out of order or repeated/],
  // SPILL
  ['SPILL of 9 bytes', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.spill, Buffer.alloc(9))]), /SPILL of 9 bytes/],
  ['a spill count of 0', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.spill, spillBody(0, 3))]), /spill count 0/],
  ['a spill count of 65', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.spill, spillBody(65, 3))]), /spill count 65/],
  ['spill record 0 at version 0', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.spill, spillBody(1, 0))]), /spill record 0 at version 0/],
  ['a spill version with a tag', withTail(REGULAR, [section(TAG.inline, Buffer.from('hello')), section(TAG.spill, Buffer.from('00014000000000000000', 'hex'))]), /not valid here/],
];

for (const [name, payload, message, ino = 42] of inodeDamage) {
  test(`inode damaged: ${name}`, (t) => {
    damagedBy(t, () => decodeInode(payload, ino, PIECE), message);
  });
}

test('the piece size decides which slots are past the size', (t) => {
  // Slot 2 is preallocated, slot 0 data: a size of one byte holds piece 0 at any piece size.
  const payload = patched(MAPPED, (b) => writeU64(b, OFF.size, 1));
  t.notThrows(() => decodeInode(payload, 42, PIECE));
  const dataAt3 = encodeInode(inode({ size: 4 * PIECE, count: 0, primary: { form: 'map', depth: 0, root: [0, 0, 0, 7] } }));
  t.notThrows(() => decodeInode(dataAt3, 42, PIECE));
  damagedBy(t, () => decodeInode(dataAt3, 42, 4 * PIECE), /piece 3 holds data at or past ceil\(size \/ pieceSize\) = 1/);
});

test('the encoder refuses what the decoder would call damaged, and what the format cannot hold', (t) => {
  const refused: [Partial<InodeRecord>, RegExp][] = [
    [{ fileId: Buffer.alloc(15) }, /fileId of 15 bytes/],
    [{ uid: 2 ** 32 }, /uid 4294967296/],
    [{ gid: -1 }, /gid -1/],
    [{ ino: 0 }, /ino 0/],
    [{ size: -1 }, /inode 42: size -1$/],
    [{ count: 0.5 }, /inode 42: count 0.5$/],
    [{ type: 9 as FileType }, /inode 42: type code 9$/],
    [{ rdev: 2 ** 32 }, /inode 42: rdev 4294967296$/],
    [{ nlink: 2 ** 32 }, /nlink 4294967296/],
    [{ xattrs: [x('', 'v')] }, /xattr name of 0 bytes/],
    [{ xattrs: [x('a'.repeat(256), 'v')] }, /xattr name of 256 bytes/],
    [{ xattrs: [x('b', ''), x('a', '')] }, /out of order/],
    [{ spill: { count: 65, version: 1 } }, /spill count 65/],
    [{ spill: { count: 1, version: 0 } }, /spill record 0 at version 0/],
    [{ type: FileType.directory }, /mode 0o100644 does not match type 2/],
    [{ primary: { form: 'map', depth: 0, root: [0.5] }, size: PIECE }, /slot value 0.5/],
  ];
  for (const [over, message] of refused) t.throws(() => encodeInode(inode(over)), { instanceOf: RangeError, message });
  const buckets = (level: number, split: number, root: number[]) => inode({ type: FileType.directory, mode: 0o40700, nlink: 2, size: 4000, primary: { form: 'buckets', level, split, depth: 0, root } });
  t.throws(() => encodeInode(buckets(0, 0, [PREALLOCATED])), { instanceOf: RangeError, message: /not valid in this MAP/ });
  t.notThrows(() => encodeInode(buckets(31, 2 ** 31 - 1, [1])));
  t.throws(() => decodeInode(REGULAR, 42, 0), { instanceOf: RangeError, message: /piece size 0/ });
});

test('mergeSpill joins the spill to the inode, and refuses a spill that disagrees with it', (t) => {
  const withSpill = (over: Partial<InodeRecord>) => decodeInode(encodeInode(inode({ spill: { count: 1, version: 3 }, xattrs: [x('user.m', 'inode')], ...over })), 42, PIECE);
  const plain = withSpill({});
  t.deepEqual(mergeSpill(plain, { target: undefined, xattrs: [x('user.a', '1'), x('user.z', '2')] }).xattrs.map((a) => a.name.toString()), ['user.a', 'user.m', 'user.z']);
  damagedBy(t, () => mergeSpill(plain, { target: undefined, xattrs: [] }), /SPILL points to an empty spill stream/);
  damagedBy(t, () => mergeSpill(plain, { target: Buffer.from('x'), xattrs: [] }), /a spilled symlink target for an inode that has none to spill/);
  damagedBy(t, () => mergeSpill(plain, { target: undefined, xattrs: [x('user.m', 'spill')] }), /both in the inode and in the spill/);
  const longLink = withSpill({ type: FileType.symlink, mode: 0o120777, size: 4_000, primary: { form: 'none' } });
  damagedBy(t, () => mergeSpill(longLink, { target: undefined, xattrs: [x('user.a', '1')] }), /symlink target missing from the spill/);
  damagedBy(t, () => mergeSpill(longLink, { target: Buffer.alloc(3_999), xattrs: [] }), /spilled symlink target of 3999 bytes, size 4000/);
  t.is(mergeSpill(longLink, { target: Buffer.alloc(4_000), xattrs: [] }).target?.length, 4_000);
  const link = withSpill({ type: FileType.symlink, mode: 0o120777, size: 3, primary: { form: 'target', target: Buffer.from('abc') } });
  damagedBy(t, () => mergeSpill(link, { target: Buffer.from('abc'), xattrs: [] }), /has none to spill/);
  t.throws(() => mergeSpill(plain, undefined), { instanceOf: RangeError });
  t.throws(() => mergeSpill(decodeInode(REGULAR, 42, PIECE), { target: undefined, xattrs: [] }), { instanceOf: RangeError });
});

// ---- spill records and the stream: every check fails ----

test('spill records damaged', (t) => {
  const stream = encodeSpillStream({ target: undefined, xattrs: [x('user.big', Buffer.alloc(9_000, 3))] });
  const parts = splitSpillStream(stream);
  t.is(parts.length, 3);
  const first = encodeSpillRecord({ position: 0, count: 3, versions: [5, 6], data: parts[0]! });
  const second = encodeSpillRecord({ position: 1, count: 0, versions: [], data: parts[1]! });
  t.notThrows(() => decodeSpillRecord(first, 42, 0));
  t.notThrows(() => decodeSpillRecord(second, 42, 1));
  damagedBy(t, () => decodeSpillRecord(first.subarray(0, 3), 42, 0), /payload of 3 bytes/);
  damagedBy(t, () => decodeSpillRecord(Buffer.concat([second, Buffer.alloc(PAYLOAD_MAX + 1 - second.length)]), 42, 1), /payload of 3957 bytes/);
  damagedBy(t, () => decodeSpillRecord(second, 42, 2), /holds position 1/);
  damagedBy(t, () => decodeSpillRecord(patched(first, (b) => b.writeUInt16BE(0, 2)), 42, 0), /spill count 0/);
  damagedBy(t, () => decodeSpillRecord(patched(first, (b) => b.writeUInt16BE(65, 2)), 42, 0), /spill count 65/);
  damagedBy(t, () => decodeSpillRecord(patched(first.subarray(0, 12), (b) => b.writeUInt16BE(3, 2)), 42, 0), /too short for the versions of 3 records/);
  damagedBy(t, () => decodeSpillRecord(patched(first, (b) => writeU64(b, 12, 0)), 42, 0), /no version for spill record 2/);
  damagedBy(t, () => decodeSpillRecord(patched(first, (b) => (b[4] = 0x80)), 42, 0), /not valid here/);
  damagedBy(t, () => decodeSpillRecord(patched(second, (b) => b.writeUInt16BE(3, 2)), 42, 1), /count 3 outside spill record 0/);
  const records = [first, second, encodeSpillRecord({ position: 2, count: 0, versions: [], data: parts[2]! })].map((p, i) => decodeSpillRecord(p, 42, i));
  t.deepEqual(joinSpillRecords(records, 3, 42), stream);
  const claimsTwo = decodeSpillRecord(encodeSpillRecord({ position: 0, count: 2, versions: [5], data: parts[0]! }), 42, 0);
  damagedBy(t, () => joinSpillRecords([claimsTwo, records[1]!, records[2]!], 3, 42), /record 0 counts 2 records, the inode 3/);
  t.throws(() => joinSpillRecords(records.slice(0, 2), 3, 42), { instanceOf: RangeError });
  t.throws(() => encodeSpillRecord({ position: 0, count: 2, versions: [], data: Buffer.alloc(0) }), { instanceOf: RangeError, message: /holds 0 versions for 2 records/ });
  t.throws(() => encodeSpillRecord({ position: 64, count: 0, versions: [], data: Buffer.alloc(0) }), { instanceOf: RangeError, message: /position 64/ });
  t.throws(() => encodeSpillRecord({ position: 0, count: 0, versions: [], data: Buffer.alloc(0) }), { instanceOf: RangeError, message: /spill count 0/ });
  t.throws(() => encodeSpillRecord({ position: 0, count: 2, versions: [0], data: Buffer.alloc(0) }), { instanceOf: RangeError, message: /version must be/ });
  t.throws(() => joinSpillRecords([records[1]!, records[0]!, records[2]!], 3, 42), { instanceOf: RangeError, message: /record 1 given at position 0/ });
  t.throws(() => encodeSpillRecord({ position: 1, count: 1, versions: [], data: Buffer.alloc(0) }), { instanceOf: RangeError });
  t.throws(() => encodeSpillRecord({ position: 1, count: 0, versions: [], data: Buffer.alloc(3_953) }), { instanceOf: RangeError });
});

test('spill streams damaged', (t) => {
  const item = (tag: number, body: Buffer) => {
    const h = Buffer.alloc(5);
    h[0] = tag;
    h.writeUInt32BE(body.length, 1);
    return Buffer.concat([h, body]);
  };
  const good = Buffer.concat([item(4, Buffer.from('/t')), item(5, xattrBody('a', '1')), item(5, xattrBody('b', '2'))]);
  t.deepEqual(decodeSpillStream(good, 's'), { target: Buffer.from('/t'), xattrs: [x('a', '1'), x('b', '2')] });
  damagedBy(t, () => decodeSpillStream(good.subarray(0, 10), 's'), /inside an item header at byte 7/);
  damagedBy(t, () => decodeSpillStream(good.subarray(0, good.length - 1), 's'), /runs past the stream's end/);
  damagedBy(t, () => decodeSpillStream(item(6, Buffer.alloc(1)), 's'), /unknown tag 6/);
  damagedBy(t, () => decodeSpillStream(Buffer.concat([item(4, Buffer.from('a')), item(4, Buffer.from('b'))]), 's'), /repeated or after an xattr/);
  damagedBy(t, () => decodeSpillStream(Buffer.concat([item(5, xattrBody('a', '1')), item(4, Buffer.from('b'))]), 's'), /repeated or after an xattr/);
  damagedBy(t, () => decodeSpillStream(item(4, Buffer.alloc(0)), 's'), /spilled symlink target of 0 bytes/);
  damagedBy(t, () => decodeSpillStream(item(4, Buffer.alloc(4_096)), 's'), /spilled symlink target of 4096 bytes/);
  damagedBy(t, () => decodeSpillStream(Buffer.concat([item(5, xattrBody('b', '1')), item(5, xattrBody('a', '2'))]), 's'), /out of order or repeated/);
  damagedBy(t, () => decodeSpillStream(item(5, xattrBody('v', Buffer.alloc(65_537))), 's'), /xattr value of 65537 bytes/);
  damagedBy(t, () => decodeSpillStream(item(5, Buffer.from([0, 1])), 's'), /xattr name length 0/);
  damagedBy(t, () => decodeSpillStream(item(5, Buffer.alloc(0)), 's'), /empty xattr/);
  t.throws(() => encodeSpillStream({ target: undefined, xattrs: [x('b', ''), x('a', '')] }), { instanceOf: RangeError });
  t.throws(() => encodeSpillStream({ target: Buffer.alloc(4_096), xattrs: [] }), { instanceOf: RangeError });
});

// ---- directory entries ----

test('name hash: pinned known-answer vectors, and the PRF message of section 1', (t) => {
  t.deepEqual(nameHash(DIRHASH_KEY, 1, Buffer.from('hello.txt')), { hi: 0x8553a6da, lo: 0xcbf24da3 });
  t.deepEqual(nameHash(DIRHASH_KEY, 2 ** 40 + 5, Buffer.from('café')), { hi: 0xa5542815, lo: 0x8749375f });
  const message = Buffer.concat([Buffer.from('dirent\0'), Buffer.from('0000000000000001', 'hex'), Buffer.from('hello.txt')]);
  t.is(createHmac('sha256', DIRHASH_KEY).update(message).digest('hex').slice(0, 16), '8553a6dacbf24da3');
  t.throws(() => nameHash(DIRHASH_KEY, 0, Buffer.from('a')), { instanceOf: RangeError });
});

test('sk is h with its 64 bits reversed, and entries sort by sk, then name bytes', (t) => {
  fc.assert(
    fc.property(wordsArb, (h) => {
      t.is(toBig(splitKey(h)), bitreverse64(toBig(h)));
    }),
  );
  fc.assert(
    fc.property(wordsArb, wordsArb, bytes(1, 4), bytes(1, 4), (ha, hb, na, nb) => {
      const a = { ino: 1, type: FileType.regular, name: na, hash: ha } as DirEntry;
      const b = { ino: 2, type: FileType.regular, name: nb, hash: hb } as DirEntry;
      const ka = bitreverse64(toBig(ha));
      const kb = bitreverse64(toBig(hb));
      const expected = ka !== kb ? (ka < kb ? -1 : 1) : Buffer.compare(na, nb);
      t.is(Math.sign(compareEntries(a, b)), expected);
    }),
  );
  // Equal sk: the name bytes decide.
  const h = { hi: 1, lo: 2 };
  t.true(compareEntries({ ino: 1, type: 1, name: Buffer.from('a'), hash: h }, { ino: 1, type: 1, name: Buffer.from('b'), hash: h }) < 0);
});

test('linear hashing: b = h mod 2^L, or h mod 2^(L+1) when b < s; a split moves only bucket s, to s or s + 2^L', (t) => {
  fc.assert(
    fc.property(wordsArb, big(0, 31), big(0, 2 ** 31), (h, level, seed) => {
      const split = seed % 2 ** level;
      const big64 = toBig(h);
      let expected = big64 % 2n ** BigInt(level);
      if (expected < BigInt(split)) expected = big64 % 2n ** BigInt(level + 1);
      const b = bucketOf(h, level, split);
      t.is(b, Number(expected));
      t.true(b < bucketCount(level, split));
      // The next split (s + 1, or L + 1 and s = 0 when s + 1 = 2^L).
      const [nextLevel, nextSplit] = split + 1 === 2 ** level ? [level + 1, 0] : [level, split + 1];
      if (nextLevel > 31) return;
      const after = bucketOf(h, nextLevel, nextSplit);
      if (b === split) t.true(after === split || after === split + 2 ** level);
      else t.is(after, b);
    }),
    { numRuns: 500 },
  );
  t.throws(() => bucketOf({ hi: 0, lo: 0 }, 32, 0), { instanceOf: RangeError });
  t.throws(() => bucketOf({ hi: 0, lo: 0 }, 2, 4), { instanceOf: RangeError });
});

const nameArb = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).map((s) => Buffer.from(s)).filter((n) => nameProblem(n) === undefined);

test('inline entries and bucket records survive encode and decode', (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(nameArb, { maxLength: 60, selector: (n) => n.toString('hex') }), big(1, Number.MAX_SAFE_INTEGER), big(0, 4), big(0, 15), (names, dirIno, level, seed) => {
      const split = seed % 2 ** level;
      const all = names.map((n, i) => ({ ...entry(dirIno, n, i + 1), type: ((i % 7) + 1) as FileType })).sort(compareEntries);
      const inline = [...all];
      while (entriesLength(inline) > INLINE_MAX) inline.pop();
      t.deepEqual(decodeInlineEntries(encodeInlineEntries(inline), inline.length, dirIno, DIRHASH_KEY), inline);
      for (let bucket = 0; bucket < bucketCount(level, split); bucket++) {
        const entries = all.filter((e) => bucketOf(e.hash, level, split) === bucket);
        while (entriesLength(entries) > BUCKET_ENTRIES_MAX) entries.pop();
        const record = { bucket, chainPosition: bucket % 3, next: bucket, entries };
        const place = { dirIno, bucket, chainPosition: bucket % 3, level, split };
        t.deepEqual(decodeBucket(encodeBucket(record, level, split), place, DIRHASH_KEY), record);
      }
    }),
    { numRuns: 100 },
  );
});

test('directory entries damaged', (t) => {
  const dirIno = 42;
  const entries = sortedEntries(dirIno, ['a', 'b', 'c']);
  const raw = encodeInlineEntries(entries);
  t.deepEqual(decodeInlineEntries(raw, 3, dirIno, DIRHASH_KEY), entries);
  const at = (i: number) => entriesLength(entries.slice(0, i)); // byte offset of entry i
  const decode = (section: Buffer, count = 3) => decodeInlineEntries(section, count, dirIno, DIRHASH_KEY);
  const one = (fields: { ino?: number; type?: number; name?: Buffer }) => encodeEntriesRaw([{ ino: 7, type: 1, name: Buffer.from('n'), ...fields }]);
  damagedBy(t, () => decode(raw, 2), /3 entries, the inode counts 2/);
  damagedBy(t, () => decode(Buffer.alloc(3_819), 0), /3819 bytes \(at most 3818\)/);
  damagedBy(t, () => decode(raw.subarray(0, at(2) + 5)), /inside an entry header at byte 22/);
  damagedBy(t, () => decode(raw.subarray(0, raw.length - 1)), /runs past the entries' end/);
  damagedBy(t, () => decode(patched(raw, (b) => b.writeUInt32BE(0x0020_0000, at(1))), 3), /entry ino at byte 11 is 2\^53 or more/);
  damagedBy(t, () => decode(one({ ino: 0 }), 1), /entry ino 0/);
  damagedBy(t, () => decode(one({ type: 0 }), 1), /entry type code 0/);
  damagedBy(t, () => decode(one({ type: 8 }), 1), /entry type code 8/);
  damagedBy(t, () => decode(one({ name: Buffer.alloc(0) }), 1), /name of 0 bytes/);
  damagedBy(t, () => decode(one({ name: Buffer.from('.') }), 1), /name "\." or "\.\."/);
  damagedBy(t, () => decode(one({ name: Buffer.from('..') }), 1), /name "\." or "\.\."/);
  damagedBy(t, () => decode(one({ name: Buffer.from('a/b') }), 1), /name with "\/" or NUL/);
  damagedBy(t, () => decode(one({ name: Buffer.from('a\0b') }), 1), /name with "\/" or NUL/);
  damagedBy(t, () => decode(one({ name: Buffer.from([0x61, 0xff]) }), 1), /not valid UTF-8/);
  damagedBy(t, () => decode(encodeEntriesRaw([...entries].reverse()), 3), /out of sk order or repeated/);
  damagedBy(t, () => decode(encodeEntriesRaw([entries[0]!, entries[0]!]), 2), /out of sk order or repeated/);
  // Entries hashed for another directory: with 20 names the order cannot survive the other hash.
  const twenty = sortedEntries(dirIno, Array.from({ length: 20 }, (_, i) => `n${i}`));
  damagedBy(t, () => decodeInlineEntries(encodeInlineEntries(twenty), 20, dirIno + 1, DIRHASH_KEY), /out of sk order/);
  t.is(nameProblem(Buffer.from('...')), undefined);
  t.is(nameProblem(Buffer.from('.hidden')), undefined);
  t.throws(() => encodeInlineEntries([...entries].reverse()), { instanceOf: RangeError, message: /out of sk order/ });
  t.throws(() => encodeInlineEntries([{ ...entries[0]!, name: Buffer.from('..') }]), { instanceOf: RangeError });
});

test('bucket records damaged', (t) => {
  const dirIno = 9;
  const level = 1;
  const split = 1; // n = 3: buckets 0 and 2 split from 0, bucket 1 not yet
  const names = Array.from({ length: 40 }, (_, i) => `file-${i}`);
  const all = sortedEntries(dirIno, names);
  const inBucket = (b: number) => all.filter((e) => bucketOf(e.hash, level, split) === b);
  t.true(inBucket(0).length > 1 && inBucket(2).length > 0);
  const record = { bucket: 0, chainPosition: 1, next: 77, entries: inBucket(0) };
  const payload = encodeBucket(record, level, split);
  const place = { dirIno, bucket: 0, chainPosition: 1, level, split };
  t.deepEqual(decodeBucket(payload, place, DIRHASH_KEY), record);
  const decode = (p: Buffer, over: Partial<typeof place> & { after?: DirEntry } = {}) => decodeBucket(p, { ...place, ...over }, DIRHASH_KEY);
  damagedBy(t, () => decode(payload.subarray(0, 15)), /chain position 1: payload of 15 bytes$/);
  damagedBy(t, () => decode(Buffer.concat([payload, Buffer.alloc(PAYLOAD_MAX + 1 - payload.length)])), /payload of 3957 bytes/);
  damagedBy(t, () => decode(patched(payload, (b) => b.writeUInt32BE(2, 0))), /holds bucket number 2/);
  damagedBy(t, () => decode(patched(payload, (b) => b.writeUInt16BE(0, 4))), /holds chain position 0/);
  damagedBy(t, () => decode(patched(payload, (b) => b.writeUInt16BE(record.entries.length + 1, 6))), /entries, the header says/);
  damagedBy(t, () => decode(patched(payload, (b) => (b[8] = 0x40))), /slot with tag 1/);
  // An entry of bucket 2 (h mod 4 = 2) in bucket 0, and one of bucket 1 read as if the table had not split.
  const foreign = Buffer.concat([payload.subarray(0, 16), encodeEntriesRaw([...inBucket(0), inBucket(2)[0]!].sort(compareEntries))]);
  foreign.writeUInt16BE(inBucket(0).length + 1, 6);
  damagedBy(t, () => decode(foreign), /belongs in bucket 2/);
  // Bucket 1 (h mod 2 = 1) read as if the table had grown to L = 2: its entries with h mod 4 = 3 are bucket 3's.
  const bucket1 = encodeBucket({ bucket: 1, chainPosition: 0, next: 0, entries: inBucket(1) }, level, split);
  damagedBy(t, () => decode(bucket1, { bucket: 1, chainPosition: 0, level: 2, split: 0 }), /belongs in bucket 3/);
  // The chain runs on in sk order: a record whose first entry is not after the previous record's last.
  damagedBy(t, () => decode(payload, { after: record.entries[record.entries.length - 1] }), /out of sk order/);
  t.notThrows(() => decode(payload, { after: { ...record.entries[0]!, hash: { hi: 0, lo: 0 }, name: Buffer.from('0') } }));
  t.throws(() => encodeBucket({ ...record, entries: inBucket(2) }, level, split), { instanceOf: RangeError, message: /an entry of bucket 2/ });
  t.throws(() => encodeBucket({ ...record, bucket: 3 }, level, split), { instanceOf: RangeError, message: /not a bucket/ });
  t.throws(() => encodeBucket({ ...record, chainPosition: 65_536 }, level, split), { instanceOf: RangeError, message: /chain position$/ });
  t.throws(() => encodeBucket({ ...record, next: PREALLOCATED }, level, split), { instanceOf: RangeError, message: /next -1/ });
  t.throws(() => decode(payload, { bucket: 3 }), { instanceOf: RangeError });
});

// ---- the state record ----

const STATE: StateRecord = {
  commit: 70_000,
  reservedUpTo: 131_072,
  nextIno: 1_234,
  liveInodes: 1_000,
  legacyBelow: 0,
  preallocPieces: 12,
  epochStartVersion: 1,
  addressEpoch: 1,
  previousEpoch: 0,
  rescatterCursor: 77,
  upgradeStage: 2,
  inodeTableDepth: 1,
  finishCursor: 500,
  repairQueueHead: 69_000,
  repairQueueRecords: 2,
  segmentIndex: 12_345,
  segmentPrevTag: Buffer.alloc(16, 0x5c),
  liveRecords: 2_100,
  inodeTableRoot: [70_000, 0, 65_000],
};

test('the state record is laid out at the offsets of 5.5 and survives encode and decode', (t) => {
  const payload = encodeStateRecord(STATE);
  t.is(payload.length, 136 + 3 * 8);
  const fields: [number, bigint][] = [[0, 70_000n], [8, 131_072n], [16, 1_234n], [24, 1_000n], [32, 0n], [40, 12n], [48, 1n], [64, 77n], [80, 500n], [88, 69_000n], [104, 12_345n], [128, 2_100n], [136, 70_000n], [152, 65_000n]];
  for (const [at, value] of fields) t.is(payload.readBigUInt64BE(at), value, `u64 at ${at}`);
  t.is(payload.readUInt32BE(56), 1);
  t.is(payload.readUInt32BE(60), 0);
  t.is(payload[72], 2);
  t.is(payload[73], 1);
  t.is(payload.readUInt16BE(74), 3);
  t.is(payload.readUInt32BE(96), 2);
  t.deepEqual(payload.subarray(112, 128), Buffer.alloc(16, 0x5c));
  t.deepEqual(decodeStateRecord(payload), STATE);
  const full = { ...STATE, inodeTableRoot: Array.from({ length: STATE_ROOT_MAX }, (_, i) => i) };
  t.is(encodeStateRecord(full).length, 136 + 3_200);
  t.deepEqual(decodeStateRecord(encodeStateRecord(full)), full);
  t.throws(() => encodeStateRecord({ ...STATE, inodeTableRoot: Array(401).fill(0) }), { instanceOf: RangeError, message: /401 entries/ });
  fc.assert(
    fc.property(big(1, MAX_VERSION - 1), fc.array(fc.nat(), { maxLength: 400 }), big(0, 3), (commit, root, depth) => {
      const s = { ...STATE, commit, reservedUpTo: commit + 1, inodeTableRoot: root.map((r) => r % (commit + 1)), inodeTableDepth: depth, repairQueueHead: 0, repairQueueRecords: 0 };
      t.deepEqual(decodeStateRecord(encodeStateRecord(s)), s);
    }),
  );
});

test('state record damaged', (t) => {
  const payload = encodeStateRecord(STATE);
  damagedBy(t, () => decodeStateRecord(payload.subarray(0, 135)), /state record: payload of 135 bytes$/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => b.writeUInt16BE(401, 74))), /inodeTableRootCount 401/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => b.writeUInt16BE(2, 74))), /payload of 160 bytes for a root of 2/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => (b[77] = 1))), /a zero field is not zero/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => (b[103] = 1))), /a zero field is not zero/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => writeU64(b, 8, 70_000))), /commit 70000 not below reservedUpTo 70000/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => writeU64(b, 152, 70_001))), /root entry at version 70001, after commit 70000/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => (b[72] = 3))), /upgradeStage 3/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => (b[73] = 4))), /inodeTableDepth 4/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => writeU64(b, 16, 2 ** 53))), /nextIno is 2\^53 or more/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => writeU64(b, 0, 2 ** 53 - 2))), /commit: slot value 9007199254740990 is beyond 2\^53/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => (b[32] = 0x80))), /legacyBelow: slot with tag 2/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => (b[136] = 0x40))), /inode table root: slot with tag 1/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => writeU64(b, 88, 70_001))), /repair queue head at version 70001/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => b.writeUInt32BE(0, 96))), /repair queue head 69000 with 0 records/);
  damagedBy(t, () => decodeStateRecord(patched(payload, (b) => writeU64(b, 88, 0))), /repair queue head 0 with 2 records/);
  t.throws(() => encodeStateRecord({ ...STATE, segmentPrevTag: Buffer.alloc(15) }), { instanceOf: RangeError, message: /segmentPrevTag/ });
  t.throws(() => encodeStateRecord({ ...STATE, addressEpoch: 2 ** 32 }), { instanceOf: RangeError, message: /not a u32/ });
  t.throws(() => encodeStateRecord({ ...STATE, inodeTableRoot: [PREALLOCATED] }), { instanceOf: RangeError, message: /inode table root entry -1/ });
  t.throws(() => encodeStateRecord({ ...STATE, commit: MAX_VERSION + 1, reservedUpTo: MAX_VERSION + 2 }), { instanceOf: RangeError, message: /commit/ });
  // Counts are any number below 2^53; versions stop at 2^53 − 3, where slots stop (slot.ts).
  const counts = { ...STATE, nextIno: Number.MAX_SAFE_INTEGER, liveRecords: Number.MAX_SAFE_INTEGER, commit: MAX_VERSION - 1, reservedUpTo: MAX_VERSION };
  t.deepEqual(decodeStateRecord(encodeStateRecord(counts)), counts);
});

// ---- the repair queue (10.5) ----

/** A vault mid-rescatter: versions from 1,000 on are in the current epoch (2+1), older ones in the previous (1+0). */
const widthOf = (version: number) => (version >= 1_000 ? 3 : 1);

test('repair-queue records: the layout of 10.5, 140 entries a record, round trips', (t) => {
  const entries: RepairEntry[] = [
    { ino: 5, index: 0, version: 1_000, missingStores: 0b100 },
    { ino: 2 ** 40, index: 2 ** 35, version: 999, missingStores: 1 },
  ];
  const payload = encodeRepairQueueRecord({ position: 3, next: 77, entries }, widthOf);
  t.is(payload.length, 16 + 2 * 28);
  t.is(payload.toString('hex', 0, 16), '00000003' + '00000002' + '000000000000004d');
  t.is(payload.toString('hex', 16, 44), '0000000000000005' + '0000000000000000' + '00000000000003e8' + '00000004');
  t.deepEqual(decodeRepairQueueRecord(payload, 3, widthOf), { position: 3, next: 77, entries });
  const full = Array.from({ length: REPAIR_ENTRIES_MAX }, (_, i) => ({ ino: i + 1, index: i, version: 5_000 + i, missingStores: 1 }));
  t.is(encodeRepairQueueRecord({ position: 0, next: 0, entries: full }, widthOf).length, 16 + 140 * 28, '3,936 of 3,956 bytes');
  t.throws(() => encodeRepairQueueRecord({ position: 0, next: 0, entries: [...full, full[0]!] }, widthOf), { instanceOf: RangeError, message: /141 entries/ });
  fc.assert(
    fc.property(
      fc.array(fc.record({ ino: big(1, Number.MAX_SAFE_INTEGER), index: big(0, Number.MAX_SAFE_INTEGER), version: big(1, MAX_VERSION), missingStores: big(0, 7) }), { maxLength: 140 }),
      big(0, 0xffff_ffff),
      fc.oneof(fc.constant(0), versionArb),
      (list, position, next) => {
        const record = { position, next, entries: list };
        t.deepEqual(decodeRepairQueueRecord(encodeRepairQueueRecord(record, () => 3), position, () => 3), record);
      },
    ),
    { numRuns: 100 },
  );
});

test('repair-queue records damaged', (t) => {
  const payload = encodeRepairQueueRecord({ position: 1, next: 0, entries: [{ ino: 5, index: 2, version: 1_000, missingStores: 0b10 }] }, widthOf);
  const decode = (p: Buffer, position = 1) => decodeRepairQueueRecord(p, position, widthOf);
  t.notThrows(() => decode(payload));
  damagedBy(t, () => decode(payload.subarray(0, 15)), /repair queue record 1: payload of 15 bytes$/);
  damagedBy(t, () => decode(payload, 2), /holds position 1/);
  damagedBy(t, () => decode(patched(payload, (b) => b.writeUInt32BE(141, 4))), /141 entries \(at most 140\)/);
  damagedBy(t, () => decode(patched(payload, (b) => b.writeUInt32BE(2, 4))), /payload of 44 bytes for 2 entries/);
  damagedBy(t, () => decode(patched(payload, (b) => (b[8] = 0x80))), /slot with tag 2/);
  damagedBy(t, () => decode(patched(payload, (b) => writeU64(b, 16, 0))), /entry for ino 0/);
  damagedBy(t, () => decode(patched(payload, (b) => writeU64(b, 24, 2 ** 53))), /entry 0, index is 2\^53 or more/);
  damagedBy(t, () => decode(patched(payload, (b) => writeU64(b, 16, 2 ** 53))), /entry 0, ino is 2\^53 or more/);
  damagedBy(t, () => decode(patched(payload, (b) => (b[32] = 0x40))), /entry 0: slot with tag 1/);
  damagedBy(t, () => decode(patched(payload, (b) => writeU64(b, 32, 0))), /entry at version 0/);
  // Bit 3 is past a 2+1 placement; bit 1 is past the previous epoch's 1+0 for a version below 1,000.
  damagedBy(t, () => decode(patched(payload, (b) => b.writeUInt32BE(0b1000, 40))), /bitmap 0x8 names a store past the placement's 3/);
  damagedBy(t, () => decode(patched(payload, (b) => writeU64(b, 32, 999))), /bitmap 0x2 names a store past the placement's 1/);
  t.throws(() => encodeRepairQueueRecord({ position: 0, next: 0, entries: [{ ino: 1, index: 0, version: 1, missingStores: 2 ** 32 }] }, widthOf), { instanceOf: RangeError, message: /bitmap/ });
  t.throws(() => encodeRepairQueueRecord({ position: -1, next: 0, entries: [] }, widthOf), { instanceOf: RangeError, message: /position -1/ });
  t.throws(() => encodeRepairQueueRecord({ position: 0, next: lostSlot(1), entries: [] }, widthOf), { instanceOf: RangeError, message: /next -3/ });
});
