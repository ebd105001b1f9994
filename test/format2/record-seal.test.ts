// Format 2's keys, record names and record seal (src/core/format2/keys.ts, record-names.ts,
// record-seal.ts; docs/format-2.md, sections 1, 3, 5.2, 5.3 and 5.9). The seal is checked against an
// independent construction with node:crypto, byte for byte, and every read failure against the kind
// 5.2's four steps give it: missing, damaged or stale, and damage never as stale.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { deriveVaultKeys } from '../../src/core/crypto/crypto.js';
import { AEAD_ENV } from '../../src/core/crypto/native-aead.js';
import { IntegrityError, type IntegrityKind } from '../../src/core/errors.js';
import {
  deriveFormat2Keys,
  epochAddressKey,
  labeledPrf,
  metadataFileName,
  u16,
  u32,
  u64,
  u8,
  wipeFormat2Keys,
} from '../../src/core/format2/keys.js';
import {
  bucketRecordName,
  chaffRecordCount,
  chaffRecordName,
  inodeRecordName,
  mapNodeRecordName,
  repairQueueRecordName,
  spillRecordName,
  stateRecordName,
} from '../../src/core/format2/record-names.js';
import {
  MAX_RECORD_PAYLOAD,
  RECORD_BODY_BYTES,
  RECORD_BYTES,
  RECORD_SALT_BYTES,
  RecordKind,
  RecordSealer,
  SALT_COLLISION_BOUND,
} from '../../src/core/format2/record-seal.js';

const run = promisify(execFile);

const MASTER = Buffer.alloc(32, 0x4d);
const VAULT_ID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const KEYS = deriveFormat2Keys(MASTER, VAULT_ID);
const ALL_KINDS = Object.values(RecordKind);

// ---- An independent construction of 5.2 with node:crypto ----

function adOf(vaultId: Buffer, name: Buffer, version: bigint): Buffer {
  const v = Buffer.alloc(8);
  v.writeBigUInt64BE(version);
  return Buffer.concat([Buffer.from('svault-record-v2'), vaultId, name, v]);
}

function recordKeyOf(recordKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', recordKey, salt, 'svault/v2/record-key', 32));
}

interface BodyFields {
  kind: number;
  version: bigint;
  payload: Buffer;
  layout?: number;
  length?: number;
  /** Bytes written after the payload, where the zero padding goes. */
  afterPayload?: Buffer;
}

function bodyOf(f: BodyFields): Buffer {
  const body = Buffer.alloc(RECORD_BODY_BYTES);
  body[0] = f.kind;
  body[1] = f.layout ?? 1;
  body.writeUInt16BE(f.length ?? f.payload.length, 2);
  body.writeBigUInt64BE(f.version, 4);
  f.payload.copy(body, 12);
  f.afterPayload?.copy(body, 12 + f.payload.length);
  return body;
}

/** s ‖ GCM(K_s, 0^12, AD(name, adVersion), body): what 5.2 says a record is. */
function referenceSeal(recordKey: Buffer, vaultId: Buffer, salt: Buffer, name: Buffer, adVersion: bigint, body: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', recordKeyOf(recordKey, salt), Buffer.alloc(12));
  cipher.setAAD(adOf(vaultId, name, adVersion));
  const value = Buffer.concat([salt, cipher.update(body), cipher.final(), cipher.getAuthTag()]);
  if (value.length !== RECORD_BYTES) throw new Error(`reference record of ${value.length} bytes`);
  return value;
}

function referenceOpen(recordKey: Buffer, vaultId: Buffer, name: Buffer, version: bigint, value: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', recordKeyOf(recordKey, value.subarray(0, 16)), Buffer.alloc(12));
  decipher.setAAD(adOf(vaultId, name, version));
  decipher.setAuthTag(value.subarray(RECORD_BYTES - 16));
  return Buffer.concat([decipher.update(value.subarray(16, RECORD_BYTES - 16)), decipher.final()]);
}

/** A record sealed by the reference with a random salt: for bodies the module refuses to write. */
function crafted(name: Buffer, adVersion: bigint, fields: BodyFields): Buffer {
  return referenceSeal(KEYS.record, VAULT_ID, randomBytes(16), name, adVersion, bodyOf(fields));
}

function integrityKind(t: ExecutionContext, fn: () => unknown, kind: IntegrityKind, message = ''): IntegrityError | undefined {
  const err = t.throws(fn, { instanceOf: IntegrityError }, message);
  if (err) t.is((err as IntegrityError).kind, kind, `${message}: ${err.message}`);
  return err as IntegrityError | undefined;
}

const sealer = new RecordSealer(KEYS.record, VAULT_ID);
const NAME = inodeRecordName(KEYS.names, 42);

// ---- The seal ----

test('every kind round-trips, with payloads of 0, 1, some and 3,956 bytes', (t) => {
  for (const kind of ALL_KINDS) {
    for (const size of [0, 1, 777, MAX_RECORD_PAYLOAD]) {
      const payload = randomBytes(size);
      const version = 1 + kind * 1000 + size;
      const value = sealer.seal(NAME, version, kind, payload);
      t.is(value.length, RECORD_BYTES);
      t.deepEqual(sealer.open(NAME, value, version, kind), payload, `kind ${kind}, ${size} bytes`);
      t.deepEqual(sealer.openAtClaimedVersion(NAME, value, kind), { version, payload });
    }
  }
  const top = Number.MAX_SAFE_INTEGER;
  t.deepEqual(sealer.open(NAME, sealer.seal(NAME, top, RecordKind.state, Buffer.from('x')), top, RecordKind.state), Buffer.from('x'), 'version 2^53 − 1');
});

test('a seal is 5.2 exactly: s ‖ GCM(HKDF(record key, s, "svault/v2/record-key"), zero nonce, AD, body), by node:crypto', (t) => {
  const payload = randomBytes(300);
  const value = sealer.seal(NAME, 123456789012, RecordKind.bucket, payload);
  // Opens under the reference's key, zero nonce and AD: so the salt is s, the nonce is 0^12, and the AD is as written.
  const body = referenceOpen(KEYS.record, VAULT_ID, NAME, 123456789012n, value);
  t.deepEqual(body, bodyOf({ kind: RecordKind.bucket, version: 123456789012n, payload }));
  t.throws(() => referenceOpen(KEYS.record, VAULT_ID, NAME, 123456789013n, value), undefined, 'the version is in the AD');
  const otherVault = Buffer.from(VAULT_ID);
  otherVault[0]! ^= 1;
  t.throws(() => referenceOpen(KEYS.record, otherVault, NAME, 123456789012n, value), undefined, 'the vault id is in the AD');
});

test('two seals of the same body differ (a fresh salt each), and both open', (t) => {
  const payload = Buffer.from('same body');
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const value = sealer.seal(NAME, 7, RecordKind.inode, payload);
    seen.add(value.subarray(0, RECORD_SALT_BYTES).toString('hex'));
    t.deepEqual(sealer.open(NAME, value, 7, RecordKind.inode), payload);
  }
  t.is(seen.size, 200, 'every salt is new');
  const a = sealer.seal(NAME, 7, RecordKind.inode, payload);
  const b = sealer.seal(NAME, 7, RecordKind.inode, payload);
  t.notDeepEqual(a.subarray(16), b.subarray(16), 'and so the ciphertexts and tags differ');
});

test('known answer: one record from a fixed key, salt, name, version and body', (t) => {
  const recordKey = Buffer.alloc(32, 0x01);
  const vaultId = Buffer.alloc(16, 0x02);
  const salt = Buffer.alloc(16, 0x03);
  const name = Buffer.alloc(32, 0x04);
  const payload = Buffer.from('svault format 2');
  const value = referenceSeal(recordKey, vaultId, salt, name, 5n, bodyOf({ kind: RecordKind.inode, version: 5n, payload }));
  // Computed once and pinned: K_s, the first 16 bytes of C and the tag.
  t.is(recordKeyOf(recordKey, salt).toString('hex'), '3d9b9b6bbf9894e0f70bf1efd587093180725b79a6a7d24e2da5899b191f516f');
  t.is(value.subarray(16, 32).toString('hex'), 'ade409914da12dedd1e0feb388c60a29');
  t.is(value.subarray(RECORD_BYTES - 16).toString('hex'), 'f2e07c7428875c202435103eb335e108');
  const local = new RecordSealer(recordKey, vaultId);
  t.deepEqual(local.open(name, value, 5, RecordKind.inode), payload);
});

test('the salt-collision bound of finding 10: n(n − 1)/2 pairs × 2^−(8 × salt bytes) < n² / 2^129 = 2^−33 at n = 2^48', (t) => {
  t.is(SALT_COLLISION_BOUND.seals, 2 ** 48);
  t.is(SALT_COLLISION_BOUND.log2Chance, -33);
  t.is(RECORD_SALT_BYTES, 16);
  const n = BigInt(SALT_COLLISION_BOUND.seals);
  const saltBits = BigInt(8 * RECORD_SALT_BYTES);
  // Exact, in integers: chance ≤ (n(n − 1)/2) / 2^saltBits, and the claim is chance < 2^log2Chance.
  const pairs = (n * (n - 1n)) / 2n;
  const exponent = saltBits + BigInt(SALT_COLLISION_BOUND.log2Chance); // chance < 2^log2 ⇔ pairs < 2^(saltBits + log2)
  t.true(exponent > 0n);
  t.true(pairs < 1n << exponent, 'the birthday bound is below the stated chance');
  t.true(n * n <= 1n << (saltBits + 1n + BigInt(SALT_COLLISION_BOUND.log2Chance)), 'n² / 2^129 is at most 2^log2Chance');
  t.true(SALT_COLLISION_BOUND.log2Chance <= -32, 'and below 2^-32, as the test plan (section 16) asks');
});

// ---- Reads: missing, damaged, stale ----

test('no row is missing; a value of another length is damaged', (t) => {
  integrityKind(t, () => sealer.open(NAME, null, 3, RecordKind.inode), 'missing', 'null');
  integrityKind(t, () => sealer.open(NAME, undefined, 3, RecordKind.inode), 'missing', 'undefined');
  integrityKind(t, () => sealer.openAtClaimedVersion(NAME, null, RecordKind.state), 'missing', 'claimed, null');
  const value = sealer.seal(NAME, 3, RecordKind.inode, Buffer.from('x'));
  for (const length of [0, 16, 3999, 4001, 4096]) {
    const wrong = Buffer.alloc(length);
    value.copy(wrong);
    integrityKind(t, () => sealer.open(NAME, wrong, 3, RecordKind.inode), 'damaged', `${length} bytes`);
    integrityKind(t, () => sealer.openAtClaimedVersion(NAME, wrong, RecordKind.inode), 'damaged', `claimed, ${length} bytes`);
  }
});

/** Byte positions across s, C and T: the salt, the kind, layout, length and version bytes, the payload, the padding, the tag. */
function samplePositions(): number[] {
  const fixed = [0, 1, 7, 15, 16, 17, 18, 19, 20, 23, 27, 28, 29, 100, 1000, 2000, 3000, 3983, 3984, 3990, 3999];
  const random = Array.from({ length: 40 }, () => Math.floor(Math.random() * RECORD_BYTES));
  return [...fixed, ...random];
}

test('every single byte flipped, across s, C and T, is damaged, never stale', (t) => {
  const payload = randomBytes(500);
  const value = sealer.seal(NAME, 7, RecordKind.inode, payload);
  const replayed = sealer.seal(NAME, 5, RecordKind.inode, payload); // authentic, from commit 5
  for (const at of samplePositions()) {
    for (const mask of [0x01, 0x80, 1 + Math.floor(Math.random() * 255)]) {
      for (const [what, original] of [['current', value], ['replayed', replayed]] as const) {
        const flipped = Buffer.from(original);
        flipped[at]! ^= mask;
        integrityKind(t, () => sealer.open(NAME, flipped, 7, RecordKind.inode), 'damaged', `${what}: byte ${at} ^ ${mask}`);
      }
      const flipped = Buffer.from(value);
      flipped[at]! ^= mask;
      integrityKind(t, () => sealer.openAtClaimedVersion(NAME, flipped, RecordKind.inode), 'damaged', `claimed: byte ${at} ^ ${mask}`);
    }
  }
});

test('an authentic record of version 5 read where 7 is expected is stale, and the message names both', (t) => {
  const payload = Buffer.from('mode 0644');
  const old = sealer.seal(NAME, 5, RecordKind.inode, payload);
  const err = integrityKind(t, () => sealer.open(NAME, old, 7, RecordKind.inode), 'stale');
  t.regex(err?.message ?? '', /commit 5\b.*expected 7\b/);
  // A newer record where an older one is expected is another commit's too.
  const newer = sealer.seal(NAME, 9, RecordKind.inode, payload);
  t.regex(integrityKind(t, () => sealer.open(NAME, newer, 7, RecordKind.inode), 'stale')?.message ?? '', /commit 9\b.*expected 7\b/);
  // The message may name the record as the caller knows it.
  t.regex(integrityKind(t, () => sealer.open(NAME, old, 7, RecordKind.inode, 'inode 42'), 'stale')?.message ?? '', /^inode 42: /);
});

test('a record moved to another name is damaged, at its own version or another', (t) => {
  const value = sealer.seal(NAME, 5, RecordKind.inode, Buffer.from('x'));
  const other = inodeRecordName(KEYS.names, 43);
  integrityKind(t, () => sealer.open(other, value, 5, RecordKind.inode), 'damaged', 'same version');
  integrityKind(t, () => sealer.open(other, value, 7, RecordKind.inode), 'damaged', 'other version: not stale, the name differs');
  integrityKind(t, () => sealer.openAtClaimedVersion(other, value, RecordKind.inode), 'damaged', 'claimed');
});

test('another vault or another record key: damaged', (t) => {
  const value = sealer.seal(NAME, 5, RecordKind.inode, Buffer.from('x'));
  integrityKind(t, () => new RecordSealer(KEYS.record, randomBytes(16)).open(NAME, value, 5, RecordKind.inode), 'damaged', 'vault id');
  integrityKind(t, () => new RecordSealer(randomBytes(32), VAULT_ID).open(NAME, value, 5, RecordKind.inode), 'damaged', 'record key');
  integrityKind(t, () => new RecordSealer(randomBytes(32), VAULT_ID).open(NAME, value, 7, RecordKind.inode), 'damaged', 'record key, other version');
});

test('a wrong kind is damaged', (t) => {
  for (const kind of ALL_KINDS) {
    const value = sealer.seal(NAME, 5, kind, Buffer.from('x'));
    for (const expected of ALL_KINDS.filter((k) => k !== kind)) {
      integrityKind(t, () => sealer.open(NAME, value, 5, expected), 'damaged', `${kind} read as ${expected}`);
      integrityKind(t, () => sealer.openAtClaimedVersion(NAME, value, expected), 'damaged', `claimed: ${kind} read as ${expected}`);
    }
    // A replay of the wrong kind is not a sound record of this kind: damaged, not stale.
    for (const expected of ALL_KINDS.filter((k) => k !== kind)) {
      integrityKind(t, () => sealer.open(NAME, value, 7, expected), 'damaged', `${kind} at 5 read as ${expected} at 7`);
    }
  }
});

test('authentic but malformed bodies are damaged: body version ≠ AD version, layout, non-zero padding, P > 3,956', (t) => {
  const payload = Buffer.from('payload');
  const cases: [string, BodyFields][] = [
    ['body version 5 under AD version 7', { kind: RecordKind.inode, version: 5n, payload }],
    ['layout 2', { kind: RecordKind.inode, version: 7n, payload, layout: 2 }],
    ['layout 0', { kind: RecordKind.inode, version: 7n, payload, layout: 0 }],
    ['a non-zero padding byte right after the payload', { kind: RecordKind.inode, version: 7n, payload, afterPayload: Buffer.from([1]) }],
    ['a non-zero last padding byte', { kind: RecordKind.inode, version: 7n, payload, afterPayload: Buffer.concat([Buffer.alloc(RECORD_BODY_BYTES - 12 - payload.length - 1), Buffer.from([0x80])]) }],
    ['P = 3,957', { kind: RecordKind.inode, version: 7n, payload: Buffer.alloc(0), length: MAX_RECORD_PAYLOAD + 1 }],
    ['P = 65,535', { kind: RecordKind.inode, version: 7n, payload: Buffer.alloc(0), length: 0xffff }],
    ['kind 0', { kind: 0, version: 7n, payload }],
    ['kind 7', { kind: 7, version: 7n, payload }],
  ];
  for (const [what, fields] of cases) {
    const value = crafted(NAME, 7n, fields);
    integrityKind(t, () => sealer.open(NAME, value, 7, RecordKind.inode), 'damaged', what);
    integrityKind(t, () => sealer.openAtClaimedVersion(NAME, value, RecordKind.inode), 'damaged', `claimed: ${what}`);
  }
  // The same bodies at their own version, authentic, and read where another version is expected: the
  // claimed version opens, but the body is not sound, so it is damage, not a replay.
  for (const [what, fields] of cases.slice(1)) {
    integrityKind(t, () => sealer.open(NAME, crafted(NAME, 7n, fields), 9, RecordKind.inode), 'damaged', `at 9: ${what}`);
  }
  // Control: the crafting itself makes records the module accepts.
  t.deepEqual(sealer.open(NAME, crafted(NAME, 7n, { kind: RecordKind.inode, version: 7n, payload }), 7, RecordKind.inode), payload);
});

test('a claimed version of 0 or of 2^53 or more is damaged, even when it authenticates', (t) => {
  for (const claimed of [0n, 2n ** 53n, 2n ** 64n - 1n]) {
    const value = crafted(NAME, claimed, { kind: RecordKind.inode, version: claimed, payload: Buffer.from('x') });
    integrityKind(t, () => sealer.open(NAME, value, 7, RecordKind.inode), 'damaged', `claimed ${claimed}`);
    integrityKind(t, () => sealer.openAtClaimedVersion(NAME, value, RecordKind.inode), 'damaged', `claimed ${claimed}, at its claim`);
  }
});

test('the sealer refuses what it must never write', (t) => {
  t.throws(() => sealer.seal(NAME, 1, RecordKind.inode, Buffer.alloc(MAX_RECORD_PAYLOAD + 1)), { instanceOf: RangeError });
  t.throws(() => sealer.seal(NAME, 0, RecordKind.inode, Buffer.alloc(1)), { instanceOf: RangeError }, 'version 0 is "no record"');
  t.throws(() => sealer.seal(NAME, 2 ** 53, RecordKind.inode, Buffer.alloc(1)), { instanceOf: RangeError });
  t.throws(() => sealer.seal(NAME, 1.5, RecordKind.inode, Buffer.alloc(1)), { instanceOf: RangeError });
  t.throws(() => sealer.seal(NAME.subarray(1), 1, RecordKind.inode, Buffer.alloc(1)), { instanceOf: RangeError });
  t.throws(() => sealer.seal(NAME, 1, 7 as RecordKind, Buffer.alloc(1)), { instanceOf: RangeError });
  t.throws(() => sealer.open(NAME, Buffer.alloc(RECORD_BYTES), 0, RecordKind.inode), { instanceOf: RangeError });
  t.throws(() => new RecordSealer(KEYS.record, Buffer.alloc(15)), { instanceOf: RangeError });
});

test(`${AEAD_ENV}=node (no addon) seals and opens the same records`, async (t) => {
  const payload = randomBytes(1000);
  const byThis = sealer.seal(NAME, 11, RecordKind.spill, payload);
  const oldByThis = sealer.seal(NAME, 10, RecordKind.spill, payload);
  const child = `
    const { aeadImplementation } = await import(${JSON.stringify(new URL('../../src/core/crypto/native-aead.ts', import.meta.url).href)});
    const { RecordSealer } = await import(${JSON.stringify(new URL('../../src/core/format2/record-seal.ts', import.meta.url).href)});
    const s = new RecordSealer(Buffer.from('${KEYS.record.toString('hex')}', 'hex'), Buffer.from('${VAULT_ID.toString('hex')}', 'hex'));
    const name = Buffer.from('${NAME.toString('hex')}', 'hex');
    const opened = s.open(name, Buffer.from('${byThis.toString('hex')}', 'hex'), 11, 5).toString('hex');
    let stale = '';
    try { s.open(name, Buffer.from('${oldByThis.toString('hex')}', 'hex'), 11, 5); } catch (e) { stale = e.kind; }
    const sealed = s.seal(name, 12, 5, Buffer.from('${payload.toString('hex')}', 'hex')).toString('hex');
    console.log(JSON.stringify({ impl: aeadImplementation.name, opened, stale, sealed }));
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { env: { ...process.env, [AEAD_ENV]: 'node' } });
  const r = JSON.parse(stdout) as { impl: string; opened: string; stale: string; sealed: string };
  t.is(r.impl, 'node:crypto');
  t.is(r.opened, payload.toString('hex'));
  t.is(r.stale, 'stale');
  t.deepEqual(sealer.open(NAME, Buffer.from(r.sealed, 'hex'), 12, RecordKind.spill), payload);
});

// ---- Keys and the PRF ----

test('format-2 keys: epoch 0 content and address are format 1’s; the rest are section 3’s HKDFs, each different', (t) => {
  const v1 = deriveVaultKeys(MASTER, VAULT_ID);
  t.deepEqual(KEYS.content, v1.content);
  t.deepEqual(KEYS.address, v1.address);
  t.deepEqual(epochAddressKey(MASTER, VAULT_ID, 0), v1.address);
  const hkdf = (info: string) => Buffer.from(hkdfSync('sha256', MASTER, VAULT_ID, info, 32));
  t.deepEqual(KEYS.record, hkdf('svault/v2/record'));
  t.deepEqual(KEYS.names, hkdf('svault/v2/names'));
  t.deepEqual(KEYS.dirhash, hkdf('svault/v2/dirhash'));
  t.deepEqual(KEYS.chaff, hkdf('svault/v2/chaff'));
  t.deepEqual(KEYS.config, hkdf('svault/v2/config'));
  t.deepEqual(KEYS.anchor, hkdf('svault/v2/anchor'));
  t.deepEqual(KEYS.storeMarker, hkdf('svault/v2/store-marker'));
  t.deepEqual(KEYS.segment, hkdf('svault/v2/segment'));
  t.deepEqual(KEYS.segmentNames, hkdf('svault/v2/segment-name'));
  t.deepEqual(KEYS.lease, hkdf('svault/v2/lease'));
  t.deepEqual(KEYS.rekeyWrap, hkdf('svault/v2/rekey'));
  t.deepEqual(KEYS.keyId, hkdf('svault/v2/key-id').subarray(0, 8));
  t.deepEqual(epochAddressKey(MASTER, VAULT_ID, 3), hkdf('svault/v2/address/3'));
  t.is(metadataFileName(KEYS.keyId), `meta2-${KEYS.keyId.toString('hex')}.db`);
  t.is(metadataFileName(null), 'meta2.db');
  const all = Object.entries(KEYS).filter(([k]) => k !== 'keyId');
  t.is(new Set(all.map(([, v]) => v.toString('hex'))).size, all.length, 'no two purposes share a key');
  t.true(Object.isFrozen(KEYS));
  t.throws(() => deriveFormat2Keys(MASTER.subarray(1), VAULT_ID), { instanceOf: RangeError });
  const wiped = deriveFormat2Keys(MASTER, VAULT_ID);
  wipeFormat2Keys(wiped);
  t.true(Object.values(wiped).every((key) => key.equals(Buffer.alloc(key.length))), 'wipeFormat2Keys zeroes every key');
});

test('the PRF is HMAC(k, label ‖ 0x00 ‖ fixed-width fields), big-endian', (t) => {
  const k = Buffer.alloc(32, 9);
  const message = Buffer.concat([Buffer.from('bucket\0'), Buffer.from('0000000000000005' + '00000006' + '0007', 'hex')]);
  t.deepEqual(labeledPrf(k, 'bucket', u64(5), u32(6), u16(7)), createHmac('sha256', k).update(message).digest());
  t.deepEqual(bucketRecordName(k, 5, 6, 7), createHmac('sha256', k).update(message).digest());
  t.deepEqual(u8(255), Buffer.from([255]));
  t.deepEqual(u16(0x1234), Buffer.from([0x12, 0x34]));
  t.deepEqual(u32(0xdeadbeef), Buffer.from('deadbeef', 'hex'));
  t.deepEqual(u64(2 ** 53 - 1), Buffer.from('001fffffffffffff', 'hex'));
  t.deepEqual(u64(2 ** 32 + 1), Buffer.from('0000000100000001', 'hex'));
  for (const [f, bad] of [[u8, 256], [u16, 65536], [u32, 2 ** 32], [u64, 2 ** 53], [u8, -1], [u32, 1.5]] as const) {
    t.throws(() => f(bad), { instanceOf: RangeError }, `${f.name}(${bad})`);
  }
  t.throws(() => labeledPrf(k, 'a\0b'), { instanceOf: RangeError }, 'a label with a NUL');
  t.throws(() => labeledPrf(k, ''), { instanceOf: RangeError }, 'an empty label');
});

// ---- Record names ----

test('record names differ across kinds and fields', (t) => {
  const k = KEYS.names;
  const names: [string, Buffer][] = [
    ['state', stateRecordName(k)],
    ...[0, 1, 2, 256, 2 ** 32, 2 ** 53 - 1].map((ino): [string, Buffer] => [`inode ${ino}`, inodeRecordName(k, ino)]),
    ...([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 2, 1]] as [number, number, number][]).map((f): [string, Buffer] => [`map ${f}`, mapNodeRecordName(k, ...f)]),
    ...([[1, 0, 0], [1, 0, 1], [1, 1, 0], [2, 0, 0], [1, 256, 0]] as [number, number, number][]).map((f): [string, Buffer] => [`bucket ${f}`, bucketRecordName(k, ...f)]),
    ...([[1, 0], [1, 1], [2, 0], [0, 1]] as [number, number][]).map((f): [string, Buffer] => [`spill ${f}`, spillRecordName(k, ...f)]),
    ...[0, 1, 2].map((p): [string, Buffer] => [`repairq ${p}`, repairQueueRecordName(k, p)]),
    ...([[1, 0], [1, 1], [2, 0], [0, 1]] as [number, number][]).map((f): [string, Buffer] => [`chaff ${f}`, chaffRecordName(k, ...f)]),
  ];
  const seen = new Map<string, string>();
  for (const [what, name] of names) {
    t.is(name.length, 32, what);
    const hex = name.toString('hex');
    t.false(seen.has(hex), `${what} has the name of ${seen.get(hex)}`);
    seen.set(hex, what);
  }
  t.notDeepEqual(inodeRecordName(k, 1), inodeRecordName(Buffer.alloc(32, 1), 1), 'the names key is used');
});

test('record names are stable (known answers, computed once and pinned)', (t) => {
  const k = Buffer.alloc(32, 0x42);
  const pinned: [string, Buffer, string][] = [
    ['state', stateRecordName(k), '0ff60d382e6a3eb3a29f386c8a385bac524e1c4e9383d9727799704a3d19ce77'],
    ['inode 1', inodeRecordName(k, 1), '0e1a21b143431fdb45184fc269fbabd3b37bde8f7ef89158f9fc797a1d0db8e9'],
    ['map 7, 1, 3', mapNodeRecordName(k, 7, 1, 3), 'bd0978817e1f72b70d44894d4a771e6b9539e6d93342037dc03e7ecf373d99fd'],
    ['bucket 7, 9, 2', bucketRecordName(k, 7, 9, 2), 'fddddfdf01c3a7d3fd6b570c83f2b1c27b5abfeafa4ad36f9d2c1b76a41dc95a'],
    ['spill 7, 1', spillRecordName(k, 7, 1), '0130a87adf8bb59122bc490300ff678d1dfe646d60f3a6aeb28c2e1f2da577f9'],
    ['repairq 4', repairQueueRecordName(k, 4), '4e39995f322a668bc245d6ef20b9be01e79566a84f2c05547726e684b75c9fdd'],
    ['chaff 7, 0', chaffRecordName(k, 7, 0), '0267afd2838e1d0387ffd70e4516cbfb1a6f267ea209d40803c0ed5b0d71cece'],
  ];
  for (const [what, name, hex] of pinned) t.is(name.toString('hex'), hex, what);
});

test('chaff records per inode: floor(ρ) + b, b from the chaff key, deterministic, averaging ρ', (t) => {
  const k = KEYS.chaff;
  const inodes = Array.from({ length: 4000 }, (_, i) => i + 1);
  t.true(inodes.every((ino) => chaffRecordCount(k, 0, ino) === 0));
  t.true(inodes.every((ino) => chaffRecordCount(k, 2, ino) === 2));
  for (const ratio of [0.1, 0.5, 1.25, 3.9]) {
    const counts = inodes.map((ino) => chaffRecordCount(k, ratio, ino));
    t.true(counts.every((c) => c === Math.floor(ratio) || c === Math.floor(ratio) + 1), `ρ = ${ratio}: floor or floor + 1`);
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    // The fraction's standard error over 4,000 inodes is at most 0.008: 0.04 is five of them.
    t.true(Math.abs(mean - ratio) < 0.04, `ρ = ${ratio}: mean ${mean}`);
    t.deepEqual(inodes.map((ino) => chaffRecordCount(k, ratio, ino)), counts, 'the same again');
  }
  // b is the PRF's first 8 bytes against the fraction, exactly.
  const ino = 77;
  const draw = createHmac('sha256', k).update(Buffer.concat([Buffer.from('inode\0'), u64(ino)])).digest().readBigUInt64BE(0);
  const fraction = Number(draw) / 2 ** 64;
  t.is(chaffRecordCount(k, fraction + 1e-9, ino), 1, 'just above the draw: one more');
  t.is(chaffRecordCount(k, Math.max(0, fraction - 1e-9), ino), 0, 'just below it: none');
  t.throws(() => chaffRecordCount(k, 256, 1), { instanceOf: RangeError });
  t.throws(() => chaffRecordCount(k, -0.5, 1), { instanceOf: RangeError });
  t.throws(() => chaffRecordCount(k, Number.NaN, 1), { instanceOf: RangeError });
});
