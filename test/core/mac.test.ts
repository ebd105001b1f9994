// HMAC-SHA256 and HKDF-SHA256 through svault's addon (src/core/crypto/native/mac.c) against node:crypto: the same
// bytes for the same inputs; misuse thrown before any byte is written. And the callers in src/ (record
// names, piece addresses, file keys) give the same bytes with the addon on and off.

import test from 'ava';
import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { addressOf } from '../../src/core/pieces/address.js';
import { hkdf, prf, u64 } from '../../src/core/crypto/crypto.js';
import { AEAD_ENV, aeadImplementation, nativeAead, type NativeAead } from '../../src/core/crypto/native-aead.js';

const run = promisify(execFile);

function addon(): NativeAead {
  if (!nativeAead) throw new Error(`the addon is not loaded: ${aeadImplementation.reason}`);
  return nativeAead;
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));

test('hmacSha256 writes what node:crypto’s HMAC-SHA256 computes', (t) => {
  const mac = addon();
  fc.assert(
    fc.property(bytes(1, 100), bytes(0, 5000), (key, data) => {
      const out = Buffer.alloc(32);
      mac.hmacSha256(key, data, out);
      t.deepEqual(out, createHmac('sha256', key).update(data).digest());
    }),
    { numRuns: 200 },
  );
});

test('hkdfSha256 writes what node:crypto’s hkdfSync derives, at every length', (t) => {
  const mac = addon();
  fc.assert(
    fc.property(bytes(1, 64), bytes(0, 64), bytes(0, 100), fc.integer({ min: 1, max: 300 }), (key, salt, info, length) => {
      const out = Buffer.alloc(length);
      mac.hkdfSha256(key, salt, info, out);
      t.deepEqual(out, Buffer.from(hkdfSync('sha256', key, salt, info, length)));
    }),
    { numRuns: 200 },
  );
  const key = randomBytes(32);
  const longest = Buffer.alloc(255 * 32);
  mac.hkdfSha256(key, Buffer.alloc(0), Buffer.from('svault'), longest);
  t.deepEqual(longest, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), Buffer.from('svault'), 255 * 32)));
});

test('misuse of hmacSha256 and hkdfSha256 throws a TypeError and writes nothing', (t) => {
  const mac = addon();
  const key = randomBytes(32);
  const out = Buffer.alloc(32, 0xaa);
  const untouched = Buffer.from(out);
  const bad: [string, () => void][] = [
    ['out of 31 bytes', () => mac.hmacSha256(key, Buffer.from('x'), Buffer.alloc(31))],
    ['an empty key', () => mac.hmacSha256(Buffer.alloc(0), Buffer.from('x'), out)],
    ['a string for data', () => mac.hmacSha256(key, 'x' as unknown as Buffer, out)],
    ['too few arguments', () => (mac.hmacSha256 as unknown as (k: Buffer, d: Buffer) => void)(key, key)],
    ['out inside data', () => {
      const big = Buffer.alloc(100);
      mac.hmacSha256(key, big, big.subarray(10, 42));
    }],
    ['out inside the key', () => {
      const big = Buffer.alloc(64);
      mac.hmacSha256(big, Buffer.from('x'), big.subarray(0, 32));
    }],
    ['an HKDF output of 0 bytes', () => mac.hkdfSha256(key, key, key, Buffer.alloc(0))],
    ['an HKDF output of more than 255 blocks', () => mac.hkdfSha256(key, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(255 * 32 + 1))],
    ['an empty HKDF key', () => mac.hkdfSha256(Buffer.alloc(0), key, key, out)],
    ['HKDF out overlapping the salt', () => {
      const big = Buffer.alloc(64);
      mac.hkdfSha256(key, big.subarray(0, 40), Buffer.alloc(0), big.subarray(32, 64));
    }],
    ['a number for the info', () => mac.hkdfSha256(key, key, 7 as unknown as Buffer, out)],
  ];
  for (const [what, call] of bad) {
    t.throws(call, { instanceOf: TypeError }, what);
    t.deepEqual(out, untouched, `${what}: out unchanged`);
  }
});

test('a piece address is the HMAC of "piece", the file id and both 64-bit numbers, however large', (t) => {
  const key = randomBytes(32);
  fc.assert(
    fc.property(bytes(16, 16), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (fileId, index, version) => {
      const expected = createHmac('sha256', key).update('piece').update(fileId).update(u64(index)).update(u64(version)).digest();
      t.deepEqual(addressOf(key, { fileId, index, version }), expected);
    }),
    { numRuns: 300 },
  );
  for (const n of [0, 1, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER]) {
    const fileId = randomBytes(16);
    const expected = createHmac('sha256', key).update('piece').update(fileId).update(u64(n)).update(u64(7)).digest();
    t.deepEqual(addressOf(key, { fileId, index: n, version: 7 }), expected, `index ${n}`);
  }
});

test(`${AEAD_ENV}=node gives the same record names, addresses and keys as the addon`, async (t) => {
  const key = randomBytes(32);
  const fileId = randomBytes(16);
  const salt = randomBytes(16);
  const mine = {
    name: prf(key, 'entry', '\0', 'ümlaut name', '\0', fileId, '\0').toString('hex'),
    address: addressOf(key, { fileId, index: 2 ** 40 + 3, version: 7 }).toString('hex'),
    fileKey: hkdf(key, salt, 'svault/v1/piece').toString('hex'),
    long: hkdf(key, salt, 'svault/v1/other', 100).toString('hex'),
  };
  const child = `
    const { prf, hkdf } = await import(${JSON.stringify(new URL('../../src/core/crypto/crypto.ts', import.meta.url).href)});
    const { addressOf } = await import(${JSON.stringify(new URL('../../src/core/pieces/address.ts', import.meta.url).href)});
    const { aeadImplementation } = await import(${JSON.stringify(new URL('../../src/core/crypto/native-aead.ts', import.meta.url).href)});
    const key = Buffer.from('${key.toString('hex')}', 'hex'), fileId = Buffer.from('${fileId.toString('hex')}', 'hex');
    const salt = Buffer.from('${salt.toString('hex')}', 'hex');
    console.log(JSON.stringify({
      impl: aeadImplementation.name,
      name: prf(key, 'entry', '\\0', 'ümlaut name', '\\0', fileId, '\\0').toString('hex'),
      address: addressOf(key, { fileId, index: 2 ** 40 + 3, version: 7 }).toString('hex'),
      fileKey: hkdf(key, salt, 'svault/v1/piece').toString('hex'),
      long: hkdf(key, salt, 'svault/v1/other', 100).toString('hex'),
    }));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { env: { ...process.env, [AEAD_ENV]: 'node' } });
  const theirs = JSON.parse(stdout) as Record<string, string>;
  t.is(theirs.impl, 'node:crypto');
  t.is(aeadImplementation.name, process.platform === 'linux' ? 'openssl-evp' : 'node:crypto');
  t.deepEqual({ name: theirs.name, address: theirs.address, fileKey: theirs.fileKey, long: theirs.long }, mine);
});
