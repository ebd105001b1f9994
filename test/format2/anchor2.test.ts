// Format 2's rollback anchor (src/core/format2/anchor2.ts; docs/format-2.md, 5.7): the slot's bytes
// pinned against a slot built by hand from the spec's offsets; round trips over many writes, alternating
// slots in place with rising sequences; a torn slot ignored while the other is valid; and every way to
// have no valid slot failing closed with 5.7's message: both slots bad, the wrong size, another vault's
// anchor, a forged commit without the key, a link or a directory in its place.

import test, { type ExecutionContext } from 'ava';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { BadStoreError } from '../../src/core/errors.js';
import {
  ANCHOR_FILE_BYTES,
  ANCHOR_SLOT_BYTES,
  AnchorDamagedError,
  anchorFileName,
  compareWithAnchor,
  decodeAnchorSlot,
  encodeAnchorSlot,
  RollbackAnchor,
  type AnchoredCommit,
} from '../../src/core/format2/anchor2.js';
import { deriveFormat2Keys } from '../../src/core/format2/keys.js';

const master = randomBytes(32);
const vaultId = randomBytes(16);
const anchorKey = deriveFormat2Keys(master, vaultId).anchor;
const ZERO_TAG = Buffer.alloc(16);

const at = (commit: number, segmentIndex = 0, segmentTag = ZERO_TAG): AnchoredCommit => ({ commit, segmentIndex, segmentTag });

function anchorsDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'svault-anchor2-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'state', 'svault', 'anchors');
}

/** An anchor whose file has been written once, with its path. */
function written(t: ExecutionContext, first: AnchoredCommit = at(10)): { anchor: RollbackAnchor; file: string } {
  const anchor = new RollbackAnchor(anchorsDir(t), vaultId, anchorKey);
  anchor.write(first);
  return { anchor, file: anchor.path };
}

function slotsOf(file: string): ({ sequence: number; anchored: AnchoredCommit } | null)[] {
  const bytes = readFileSync(file);
  return [0, 1].map((i) => decodeAnchorSlot(anchorKey, vaultId, bytes.subarray(i * ANCHOR_SLOT_BYTES, (i + 1) * ANCHOR_SLOT_BYTES)));
}

const DAMAGED = (file: string): string => `The rollback anchor ${file} is damaged. If you trust the store as it is, run again with --reset-anchor.`;

function failsClosed(t: ExecutionContext, anchor: RollbackAnchor, reason: RegExp, what: string): void {
  const err = t.throws(() => anchor.read(), { instanceOf: AnchorDamagedError }, what);
  t.is(err?.message, DAMAGED(anchor.path), what);
  t.regex(err?.reason ?? '', reason, what);
  t.true(err instanceof BadStoreError, `${what}: exit 4`);
}

test('a slot is laid out as 5.7 says, with HMAC(anchor key, "svault-anchor-v2\\0" ‖ vault id ‖ bytes 0..63)', (t) => {
  const tag = randomBytes(16);
  const slot = encodeAnchorSlot(anchorKey, vaultId, 0x01020304, at(2 ** 53 - 1, 0x0a0b0c0d0e0f, tag));
  const expected = Buffer.alloc(96);
  expected.write('SVA2', 0, 'ascii');
  expected.writeUInt32BE(0x01020304, 4);
  expected.writeBigUInt64BE(2n ** 53n - 1n, 8);
  expected.writeBigUInt64BE(0x0a0b0c0d0e0fn, 16);
  tag.copy(expected, 24);
  const key = Buffer.from(hkdfSync('sha256', master, vaultId, 'svault/v2/anchor', 32));
  createHmac('sha256', key).update('svault-anchor-v2\0').update(vaultId).update(expected.subarray(0, 64)).digest().copy(expected, 64);
  t.deepEqual(slot, expected);
  t.deepEqual(decodeAnchorSlot(anchorKey, vaultId, slot), { sequence: 0x01020304, anchored: at(2 ** 53 - 1, 0x0a0b0c0d0e0f, tag) });
  t.is(anchorFileName(vaultId), `${vaultId.toString('hex')}.v2`);
});

test('each check of a slot fails alone, even under a valid MAC: magic, reserved zeroes, u64 ranges, size', (t) => {
  const good = encodeAnchorSlot(anchorKey, vaultId, 5, at(100, 3, randomBytes(16)));
  t.truthy(decodeAnchorSlot(anchorKey, vaultId, good));
  /** The slot changed by `change`, then MACed again with the key: only the check under test can refuse it. */
  const remaced = (change: (s: Buffer) => void): Buffer => {
    const s = Buffer.from(good);
    change(s);
    createHmac('sha256', anchorKey).update('svault-anchor-v2\0').update(vaultId).update(s.subarray(0, 64)).digest().copy(s, 64);
    return s;
  };
  t.truthy(decodeAnchorSlot(anchorKey, vaultId, remaced(() => {})), 'the re-MAC alone changes nothing');
  t.is(decodeAnchorSlot(anchorKey, vaultId, remaced((s) => s.write('SVA1', 0, 'ascii'))), null, 'magic');
  t.is(decodeAnchorSlot(anchorKey, vaultId, remaced((s) => (s[63] = 1))), null, 'a reserved byte');
  t.is(decodeAnchorSlot(anchorKey, vaultId, remaced((s) => (s[40] = 0x80))), null, 'the first reserved byte');
  t.is(decodeAnchorSlot(anchorKey, vaultId, remaced((s) => s.writeBigUInt64BE(2n ** 53n, 8))), null, 'a commit of 2^53');
  t.is(decodeAnchorSlot(anchorKey, vaultId, remaced((s) => s.writeBigUInt64BE(2n ** 64n - 1n, 16))), null, 'a segment index of 2^64 - 1');
  t.is(decodeAnchorSlot(anchorKey, vaultId, good.subarray(0, 95)), null, 'a short slot');
  for (const i of [0, 4, 8, 16, 24, 40, 64, 95]) {
    const flipped = Buffer.from(good);
    flipped[i]! ^= 1;
    t.is(decodeAnchorSlot(anchorKey, vaultId, flipped), null, `a bit flipped at ${i}, without the key`);
  }
  t.is(decodeAnchorSlot(anchorKey, randomBytes(16), good), null, 'another vault id');
  t.is(decodeAnchorSlot(deriveFormat2Keys(randomBytes(32), vaultId).anchor, vaultId, good), null, 'another key');
  t.throws(() => encodeAnchorSlot(anchorKey, vaultId, 0, at(-1)), { instanceOf: RangeError });
  t.throws(() => encodeAnchorSlot(anchorKey, vaultId, 0, at(2 ** 53)), { instanceOf: RangeError });
  t.throws(() => encodeAnchorSlot(anchorKey, vaultId, 0, at(1, 1.5)), { instanceOf: RangeError });
  t.throws(() => encodeAnchorSlot(anchorKey, vaultId, 0, at(1, 0, Buffer.alloc(15))), { instanceOf: RangeError });
  t.throws(() => encodeAnchorSlot(anchorKey, vaultId, 2 ** 32, at(1)), { instanceOf: RangeError });
});

test('no file, or no directory: null; the first write creates the file, both slots valid, durably, private', (t) => {
  const dir = anchorsDir(t);
  const anchor = new RollbackAnchor(dir, vaultId, anchorKey);
  t.is(anchor.path, join(dir, `${vaultId.toString('hex')}.v2`));
  t.is(anchor.read(), null, 'no directory');
  mkdirSync(dir, { recursive: true });
  t.is(anchor.read(), null, 'no file');
  rmSync(dir, { recursive: true });

  const tag = randomBytes(16);
  anchor.write(at(42, 7, tag));
  t.is(statSync(anchor.path).size, ANCHOR_FILE_BYTES);
  t.is(statSync(anchor.path).mode & 0o777, 0o600);
  t.is(statSync(dir).mode & 0o777, 0o700);
  t.deepEqual(slotsOf(anchor.path), [
    { sequence: 0, anchored: at(42, 7, tag) },
    { sequence: 1, anchored: at(42, 7, tag) },
  ]);
  t.deepEqual(anchor.read(), at(42, 7, tag));
  t.deepEqual(new RollbackAnchor(dir, vaultId, anchorKey).read(), at(42, 7, tag), 'read by another instance');
  t.throws(() => new RollbackAnchor(dir, randomBytes(15), anchorKey), { instanceOf: RangeError });
});

test('many writes: each overwrites the older slot in place, one sequence above the other, and reads back', (t) => {
  const { anchor, file } = written(t, at(1));
  const inode = statSync(file).ino;
  let previous = readFileSync(file);
  for (let i = 1; i <= 60; i++) {
    const value = at(1 + i * 1000, i, i % 3 === 0 ? ZERO_TAG : randomBytes(16));
    anchor.write(value);
    const bytes = readFileSync(file);
    const target = i % 2 === 1 ? 0 : 1; // the creation leaves slot 1 newest (sequence 1), so slot 0 is written first
    const other = 1 - target;
    t.deepEqual(slotsOf(file)[target], { sequence: i + 1, anchored: value }, `write ${i}`);
    t.deepEqual(
      bytes.subarray(other * ANCHOR_SLOT_BYTES, (other + 1) * ANCHOR_SLOT_BYTES),
      previous.subarray(other * ANCHOR_SLOT_BYTES, (other + 1) * ANCHOR_SLOT_BYTES),
      `write ${i}: the other slot is untouched`,
    );
    t.deepEqual(anchor.read(), value, `write ${i}`);
    previous = bytes;
  }
  t.is(statSync(file).ino, inode, 'written in place, never renamed');
  t.is(statSync(file).size, ANCHOR_FILE_BYTES);

  // --accept-rollback records a lower commit: the caller's rule, not the file's.
  anchor.write(at(5));
  t.deepEqual(anchor.read(), at(5));
});

test('a torn slot is ignored while the other is valid, and is the one the next write replaces', (t) => {
  const { anchor, file } = written(t, at(10));
  anchor.write(at(20)); // slot 0, sequence 2: newest
  anchor.write(at(30)); // slot 1, sequence 3: newest
  const bytes = readFileSync(file);

  // The newest slot torn (a crash in its write): the previous anchor is read.
  const tornNewest = Buffer.from(bytes);
  randomBytes(40).copy(tornNewest, ANCHOR_SLOT_BYTES + 20);
  writeFileSync(file, tornNewest);
  t.deepEqual(anchor.read(), at(20));
  anchor.write(at(40));
  t.deepEqual(slotsOf(file), [{ sequence: 2, anchored: at(20) }, { sequence: 3, anchored: at(40) }], 'the torn slot was rewritten, sequence one above the valid one');
  t.deepEqual(anchor.read(), at(40));

  // The older slot torn: the newest is read, and the torn one is written next.
  const tornOlder = readFileSync(file);
  tornOlder.fill(0, 0, ANCHOR_SLOT_BYTES);
  writeFileSync(file, tornOlder);
  t.deepEqual(anchor.read(), at(40));
  anchor.write(at(50));
  t.deepEqual(slotsOf(file), [{ sequence: 4, anchored: at(50) }, { sequence: 3, anchored: at(40) }]);

  // A forged higher commit in one slot, without the key, is never believed.
  const forged = readFileSync(file);
  forged.writeBigUInt64BE(10n ** 12n, 8);
  writeFileSync(file, forged);
  t.deepEqual(anchor.read(), at(40), 'the forged slot is torn to the reader: the other one holds');
});

test('two valid slots with one sequence, never written so: the higher commit wins', (t) => {
  const { anchor, file } = written(t);
  writeFileSync(file, Buffer.concat([encodeAnchorSlot(anchorKey, vaultId, 9, at(70)), encodeAnchorSlot(anchorKey, vaultId, 9, at(60))]));
  t.deepEqual(anchor.read(), at(70));
  writeFileSync(file, Buffer.concat([encodeAnchorSlot(anchorKey, vaultId, 9, at(60)), encodeAnchorSlot(anchorKey, vaultId, 9, at(70))]));
  t.deepEqual(anchor.read(), at(70));
});

test('both slots bad fails closed, for reads and writes alike, and --reset-anchor replaces the file', (t) => {
  const { anchor, file } = written(t, at(10));
  anchor.write(at(20));
  const bytes = readFileSync(file);
  const cases: [string, (b: Buffer) => void][] = [
    ['zeroes', (b) => b.fill(0)],
    ['random bytes', (b) => randomBytes(ANCHOR_FILE_BYTES).copy(b)],
    ['one bit flipped in each slot', (b) => { b[9]! ^= 1; b[ANCHOR_SLOT_BYTES + 70]! ^= 1; }],
    ['the slots swapped with their MACs', (b) => { const s0 = Buffer.from(b.subarray(64, 96)); b.copy(b, 64, 160, 192); s0.copy(b, 160); }],
  ];
  for (const [what, damage] of cases) {
    const damaged = Buffer.from(bytes);
    damage(damaged);
    writeFileSync(file, damaged);
    failsClosed(t, anchor, /neither slot is valid/, what);
    const err = t.throws(() => anchor.write(at(30)), { instanceOf: AnchorDamagedError }, `${what}: a write fails closed too`);
    t.is(err?.message, DAMAGED(file));
    t.deepEqual(readFileSync(file), damaged, `${what}: and leaves the file as it was`);
  }
  anchor.reset(at(15));
  t.deepEqual(anchor.read(), at(15));
  t.deepEqual(slotsOf(file).map((s) => s?.sequence), [0, 1], 'a reset starts the sequences over');
});

test('a file of the wrong size fails closed', (t) => {
  const { anchor, file } = written(t, at(10));
  const bytes = readFileSync(file);
  for (const size of [0, 1, 95, 96, 191, 193, 288, 384]) {
    const content = Buffer.alloc(size);
    bytes.copy(content, 0, 0, Math.min(size, ANCHOR_FILE_BYTES));
    if (size > ANCHOR_FILE_BYTES) bytes.copy(content, ANCHOR_FILE_BYTES, 0, Math.min(size - ANCHOR_FILE_BYTES, ANCHOR_FILE_BYTES));
    writeFileSync(file, content);
    failsClosed(t, anchor, new RegExp(`it is ${size} bytes, not 192`), `${size} bytes`);
    t.throws(() => anchor.write(at(11)), { instanceOf: AnchorDamagedError }, `${size} bytes: write`);
  }
});

test('an anchor of another vault fails closed: another key, or the same key with another vault id', (t) => {
  const { anchor, file } = written(t, at(10));
  const otherVaultId = randomBytes(16);
  const otherKey = deriveFormat2Keys(randomBytes(32), otherVaultId).anchor;
  const other = new RollbackAnchor(join(file, '..', 'other'), otherVaultId, otherKey);
  other.write(at(99));
  other.write(at(100));
  writeFileSync(file, readFileSync(other.path));
  failsClosed(t, anchor, /neither slot is valid/, 'another vault');

  const sameKeyOtherId = new RollbackAnchor(join(file, '..', 'same-key'), otherVaultId, anchorKey);
  sameKeyOtherId.write(at(100));
  writeFileSync(file, readFileSync(sameKeyOtherId.path));
  failsClosed(t, anchor, /neither slot is valid/, 'the vault id is in the MAC');
});

test('a forged higher commit in both slots, without the key, fails closed', (t) => {
  const { anchor, file } = written(t, at(10));
  anchor.write(at(20));
  const forged = readFileSync(file);
  for (const slot of [0, 1]) {
    forged.writeBigUInt64BE(10n ** 12n, slot * ANCHOR_SLOT_BYTES + 8);
    forged.writeUInt32BE(0xffff_fff0, slot * ANCHOR_SLOT_BYTES + 4);
  }
  writeFileSync(file, forged);
  failsClosed(t, anchor, /neither slot is valid/, 'forged commits');

  // A slot MACed under a key guessed from public data (the vault id), not the master.
  const guessed = Buffer.from(hkdfSync('sha256', Buffer.alloc(32), vaultId, 'svault/v2/anchor', 32));
  writeFileSync(file, Buffer.concat([encodeAnchorSlot(guessed, vaultId, 7, at(10 ** 12)), encodeAnchorSlot(guessed, vaultId, 8, at(10 ** 12))]));
  failsClosed(t, anchor, /neither slot is valid/, 'a guessed key');
});

test('a link, a directory or a FIFO in the anchor’s place, or an unopenable directory, fails closed; a link is never followed', (t) => {
  const { anchor, file } = written(t, at(10));
  const real = `${file}.real`;
  writeFileSync(real, readFileSync(file));
  rmSync(file);
  symlinkSync(real, file);
  failsClosed(t, anchor, /not a regular file/, 'a link to a valid anchor');
  const linkTarget = readFileSync(real);
  t.throws(() => anchor.write(at(11)), { instanceOf: AnchorDamagedError });
  t.deepEqual(readFileSync(real), linkTarget, 'the link target is not written');

  rmSync(file);
  mkdirSync(file);
  failsClosed(t, anchor, /not a regular file/, 'a directory');
  rmSync(file, { recursive: true });

  execFileSync('mkfifo', [file]);
  failsClosed(t, anchor, /not a regular file/, 'a FIFO (and no hang)');
  rmSync(file);

  // The anchors directory is a file: nothing there can be read.
  const parentFile = join(file, '..', 'not-a-dir');
  writeFileSync(parentFile, '');
  const blocked = new RollbackAnchor(parentFile, vaultId, anchorKey);
  failsClosed(t, blocked, /its directory cannot be opened \(ENOTDIR\)/, 'a file for a directory');
});

test('a sequence at its maximum is refused as damaged rather than wrapped; a reset starts over', (t) => {
  const { anchor, file } = written(t, at(10));
  writeFileSync(file, Buffer.concat([encodeAnchorSlot(anchorKey, vaultId, 0xffff_fffe, at(10)), encodeAnchorSlot(anchorKey, vaultId, 0xffff_ffff, at(11))]));
  t.deepEqual(anchor.read(), at(11));
  const err = t.throws(() => anchor.write(at(12)), { instanceOf: AnchorDamagedError });
  t.regex(err?.reason ?? '', /sequence is exhausted/);
  anchor.reset(at(12));
  anchor.write(at(13));
  t.deepEqual(anchor.read(), at(13));
});

test('reset creates the directory and file when none exist', (t) => {
  const anchor = new RollbackAnchor(anchorsDir(t), vaultId, anchorKey);
  t.false(existsSync(anchor.path));
  anchor.reset(at(3, 1, randomBytes(16)));
  t.is(anchor.read()?.commit, 3);
});

test('compareWithAnchor: behind, equal, ahead, and diverged at one commit with another segment', (t) => {
  const tag = randomBytes(16);
  const anchored = at(100, 12, tag);
  t.is(compareWithAnchor(at(99, 12, tag), anchored), 'behind');
  t.is(compareWithAnchor(at(99, 13, randomBytes(16)), anchored), 'behind', 'the commit decides first');
  t.is(compareWithAnchor(at(100, 12, Buffer.from(tag)), anchored), 'equal');
  t.is(compareWithAnchor(at(101, 12, tag), anchored), 'ahead');
  t.is(compareWithAnchor(at(101, 20, randomBytes(16)), anchored), 'ahead');
  t.is(compareWithAnchor(at(100, 11, tag), anchored), 'diverged', 'another segment index');
  t.is(compareWithAnchor(at(100, 13, tag), anchored), 'diverged', 'a later segment index at the same commit');
  const otherTag = Buffer.from(tag);
  otherTag[15]! ^= 1;
  t.is(compareWithAnchor(at(100, 12, otherTag), anchored), 'diverged', 'another segment tag');
  t.is(compareWithAnchor(at(7), at(7)), 'equal', 'no segment log');
});
