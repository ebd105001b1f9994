// svault's AES-256-GCM addon (src/core/crypto/native/aead.c through src/core/crypto/native-aead.ts) against node:crypto: the
// same bytes out for the same key, nonce and AAD; every kind of damage refused with the output wiped;
// misuse thrown before any byte is touched. And src/core/crypto/crypto.ts keeps working when the addon is off.

import test from 'ava';
import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { open, openParts, seal, SEAL_OVERHEAD, sealInto } from '../../src/core/crypto/crypto.js';
import { AEAD_ENV, aeadImplementation, nativeAead, type NativeAead } from '../../src/core/crypto/native-aead.js';

const run = promisify(execFile);

/** node:crypto's seal of the parts, in svault's layout: nonce || ciphertext || tag. */
function nodeSeal(key: Buffer, nonce: Buffer, aad: Buffer, parts: Buffer[]): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  return Buffer.concat([nonce, ...parts.map((p) => c.update(p)), c.final(), c.getAuthTag()]);
}

function nodeOpen(key: Buffer, aad: Buffer, sealed: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
}

function addon(): NativeAead {
  if (!nativeAead) throw new Error(`the addon is not loaded: ${aeadImplementation.reason}`);
  return nativeAead;
}

// On Linux the postinstall step builds it (scripts/build-aead.mjs); a missing build is a failed install.
// Elsewhere it is not built at all, and the test says so in its title.
const onLinux = process.platform === 'linux';
(onLinux ? test : test.skip)(`npm install built the addon, and src/core/crypto/crypto.ts uses it${onLinux ? '' : ' (skipped: the addon is built on Linux only)'}`, (t) => {
  t.is(aeadImplementation.name, 'openssl-evp', aeadImplementation.reason);
});

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));

test('seal writes the bytes node:crypto writes, and both open each other’s blobs', (t) => {
  const aead = addon();
  fc.assert(
    fc.property(bytes(32, 32), bytes(12, 12), bytes(0, 80), fc.array(bytes(0, 5000), { maxLength: 4 }), (key, nonce, aad, parts) => {
      const expected = nodeSeal(key, nonce, aad, parts);
      const sealed = Buffer.alloc(expected.length);
      aead.seal(key, nonce, aad, parts, sealed);
      t.deepEqual(sealed, expected);
      const out = Buffer.alloc(sealed.length - SEAL_OVERHEAD);
      t.true(aead.open(key, aad, expected, out));
      t.deepEqual(out, Buffer.concat(parts));
      t.deepEqual(nodeOpen(key, aad, sealed), Buffer.concat(parts));
    }),
    { numRuns: 200 },
  );
  // A full piece: 128 KiB of data behind its 4-byte length.
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const parts = [randomBytes(4), randomBytes(128 * 1024)];
  const sealed = Buffer.alloc(4 + 128 * 1024 + SEAL_OVERHEAD);
  aead.seal(key, nonce, Buffer.from('piece'), parts, sealed);
  t.deepEqual(sealed, nodeSeal(key, nonce, Buffer.from('piece'), parts));
});

test('openParts decrypts into several buffers in turn, as open does into one, and wipes them all when refused', (t) => {
  const aead = addon();
  fc.assert(
    fc.property(bytes(32, 32), bytes(0, 80), bytes(0, 5000), fc.array(fc.nat(5000), { maxLength: 5 }), fc.nat(1000), (key, aad, plain, cuts, flip) => {
      const sealed = nodeSeal(key, randomBytes(12), aad, [plain]);
      // Cut the body at arbitrary places, empty outs included.
      const at = [0, ...cuts.map((c) => c % (plain.length + 1)).sort((a, b) => a - b), plain.length];
      const outs = at.slice(1).map((end, i) => Buffer.alloc(end - (at[i] ?? 0), 0xaa));
      t.true(aead.openParts(key, aad, sealed, outs));
      t.deepEqual(Buffer.concat(outs), plain);
      const i = flip % sealed.length;
      sealed[i] = (sealed[i] ?? 0) ^ 1;
      for (const o of outs) o.fill(0xaa);
      t.false(aead.openParts(key, aad, sealed, outs));
      t.true(outs.every((o) => o.every((b) => b === 0)), 'every out is wiped');
    }),
    { numRuns: 200 },
  );
  // src/core/crypto/crypto.ts's openParts: a blob too short to hold nonce and tag is damage, not misuse.
  t.false(openParts(randomBytes(32), Buffer.alloc(0), Buffer.alloc(27), []));
});

test('openParts: misuse throws a TypeError and touches nothing', (t) => {
  const aead = addon();
  const key = randomBytes(32);
  const sealed = nodeSeal(key, randomBytes(12), Buffer.alloc(0), [randomBytes(100)]);
  const outs = () => [Buffer.alloc(40, 0xaa), Buffer.alloc(60, 0xaa)];
  const untouched = (os: Buffer[]) => os.every((o) => o.every((b) => b === 0xaa));
  const refused = (what: string, os: Buffer[], call: (os: Buffer[]) => unknown = (x) => aead.openParts(key, Buffer.alloc(0), sealed, x)) => {
    t.throws(() => call(os), { instanceOf: TypeError }, what);
    t.true(untouched(os), `${what}: nothing written`);
  };
  refused('outs one byte short', outs(), (os) => aead.openParts(key, Buffer.alloc(0), sealed, [os[0]!, os[1]!.subarray(1)]));
  refused('outs one byte long', [...outs(), Buffer.alloc(1, 0xaa)]);
  refused('17 outs', Array.from({ length: 17 }, (_, i) => Buffer.alloc(i < 16 ? 6 : 4, 0xaa)));
  refused('an out that is not a buffer', outs(), (os) => aead.openParts(key, Buffer.alloc(0), sealed, [os[0]!, 'x' as unknown as Buffer, os[1]!]));
  refused('outs not an array', outs(), (os) => aead.openParts(key, Buffer.alloc(0), sealed, os[0] as unknown as Buffer[]));
  const area = Buffer.alloc(100, 0xaa);
  refused('two outs sharing bytes', [area.subarray(0, 50), area.subarray(40, 90)]);
  const both = Buffer.concat([sealed, Buffer.alloc(100, 0xaa)]);
  t.throws(() => aead.openParts(key, Buffer.alloc(0), both.subarray(0, sealed.length), [both.subarray(60, 160)]), { instanceOf: TypeError }, 'an out over its own input');
  t.deepEqual(both.subarray(0, sealed.length), sealed, 'the input survived the refusal');
  // A getter that transfers another out's memory away while the array is read: refused, not written.
  const victim = Buffer.from(new ArrayBuffer(60));
  let moved: ArrayBuffer | undefined;
  const tricky: Buffer[] = [];
  Object.defineProperty(tricky, 0, { enumerable: true, get: () => ((moved = structuredClone(victim.buffer, { transfer: [victim.buffer as ArrayBuffer] })), Buffer.alloc(40)) });
  tricky[1] = victim;
  t.throws(() => aead.openParts(key, Buffer.alloc(0), sealed, tricky), { instanceOf: TypeError });
  t.true(moved !== undefined && new Uint8Array(moved).every((b) => b === 0), 'nothing was written into the transferred memory');
});

test('open refuses every kind of damage and wipes what it wrote', (t) => {
  const aead = addon();
  const key = randomBytes(32);
  const aad = Buffer.from('svault piece 7 v3');
  const plain = randomBytes(4096);
  const sealed = nodeSeal(key, randomBytes(12), aad, [plain]);
  const refused = (what: string, k: Buffer, a: Buffer, s: Buffer) => {
    const out = Buffer.alloc(s.length - SEAL_OVERHEAD, 0xee);
    t.false(aead.open(k, a, s, out), what);
    t.true(out.every((b) => b === 0), `${what}: the output is wiped`);
  };
  const flipped = (at: number) => {
    const s = Buffer.from(sealed);
    s[at] = (s[at] as number) ^ 0x01;
    return s;
  };
  refused('a flipped nonce bit', key, aad, flipped(0));
  refused('a flipped ciphertext bit', key, aad, flipped(12 + 2000));
  refused('a flipped tag bit', key, aad, flipped(sealed.length - 1));
  refused('another AAD (a piece moved to another address)', key, Buffer.from('svault piece 7 v2'), sealed);
  refused('another key', randomBytes(32), aad, sealed);
  refused('a truncated blob', key, aad, sealed.subarray(0, sealed.length - 1));
  const out = Buffer.alloc(plain.length);
  t.true(aead.open(key, aad, sealed, out), 'the undamaged blob still opens');
  t.deepEqual(out, plain);
});

test('misuse throws a TypeError and touches nothing', (t) => {
  const aead = addon();
  const key = randomBytes(32);
  const sealed = nodeSeal(key, randomBytes(12), Buffer.alloc(0), [randomBytes(100)]);
  const out = Buffer.alloc(100, 0xaa);
  const throwsType = (what: string, fn: () => unknown) => t.throws(fn, { instanceOf: TypeError }, what);
  throwsType('a 16-byte key', () => aead.open(key.subarray(0, 16), Buffer.alloc(0), sealed, out));
  throwsType('an output one byte short', () => aead.open(key, Buffer.alloc(0), sealed, out.subarray(1)));
  throwsType('a blob shorter than nonce and tag', () => aead.open(key, Buffer.alloc(0), sealed.subarray(0, 27), Buffer.alloc(0)));
  throwsType('a string for a buffer', () => aead.open(key, 'aad' as unknown as Buffer, sealed, out));
  throwsType('three arguments', () => (aead.open as unknown as (...a: unknown[]) => boolean)(key, Buffer.alloc(0), sealed));
  t.true(out.every((b) => b === 0xaa), 'nothing was written on misuse');
  const nonce = randomBytes(12);
  const sealOut = (n: number) => Buffer.alloc(n, 0xbb);
  const outs = [sealOut(128), sealOut(127), sealOut(128), sealOut(29), sealOut(45)];
  throwsType('an 8-byte nonce', () => aead.seal(key, nonce.subarray(0, 8), Buffer.alloc(0), [out], outs[0]!));
  throwsType('an output of the wrong size', () => aead.seal(key, nonce, Buffer.alloc(0), [out], outs[1]!));
  throwsType('parts that are not an array', () => aead.seal(key, nonce, Buffer.alloc(0), out as unknown as Buffer[], outs[2]!));
  throwsType('a part that is not a buffer', () => aead.seal(key, nonce, Buffer.alloc(0), [1 as unknown as Buffer], outs[3]!));
  throwsType('17 parts', () => aead.seal(key, nonce, Buffer.alloc(0), Array.from({ length: 17 }, () => Buffer.alloc(1)), outs[4]!));
  for (const o of outs) t.true(o.every((b) => b === 0xbb), 'no seal output was written on misuse');

  // Overlapping buffers would decrypt or encrypt over their own input.
  const both = Buffer.concat([sealed, Buffer.alloc(100)]);
  throwsType('open into its own input', () => aead.open(key, Buffer.alloc(0), both.subarray(0, sealed.length), both.subarray(50, 150)));
  const sealedCopy = Buffer.from(sealed);
  t.deepEqual(both.subarray(0, sealed.length), sealedCopy.subarray(0), 'the input survived the refusal');
  const area = Buffer.alloc(200, 0xcc);
  throwsType('seal over one of its parts', () => aead.seal(key, nonce, Buffer.alloc(0), [area.subarray(0, 100)], area.subarray(50, 178)));
});

test('a parts array whose getter detaches the output cannot make seal write into freed memory', (t) => {
  const aead = addon();
  const plain = randomBytes(64);
  const out = Buffer.from(new ArrayBuffer(64 + SEAL_OVERHEAD));
  let moved: ArrayBuffer | undefined;
  const parts: Buffer[] = [];
  Object.defineProperty(parts, 0, {
    enumerable: true,
    get() {
      // Transferring detaches out's ArrayBuffer: out.length becomes 0.
      moved = structuredClone(out.buffer, { transfer: [out.buffer as ArrayBuffer] });
      return plain;
    },
  });
  t.throws(() => aead.seal(randomBytes(32), randomBytes(12), Buffer.alloc(0), parts, out), { instanceOf: TypeError });
  t.true(moved !== undefined && new Uint8Array(moved).every((b) => b === 0), 'nothing was written into the transferred memory');
});

test('src/core/crypto/crypto.ts seals more parts than the addon takes in one call (node:crypto does those)', (t) => {
  const key = randomBytes(32);
  const parts = Array.from({ length: 20 }, (_, i) => Buffer.alloc(i + 1, i));
  const sealed = seal(key, Buffer.from('many'), parts);
  t.deepEqual(open(key, Buffer.from('many'), sealed), Buffer.concat(parts));
});

test('sealInto seals into the front of a buffer the caller reuses, and refuses one too small', (t) => {
  const key = randomBytes(32);
  const aad = Buffer.from('piece');
  const out = Buffer.alloc(9000);
  // Shrinking sizes, then more parts than the addon takes in one call (the node:crypto path copies in).
  for (const parts of [[randomBytes(4), randomBytes(5000)], [randomBytes(4), randomBytes(300)], Array.from({ length: 20 }, (_, i) => randomBytes(i + 1))]) {
    out.fill(0xee);
    const blob = sealInto(key, aad, parts, out);
    const length = parts.reduce((n, p) => n + p.length, SEAL_OVERHEAD);
    t.is(blob.length, length);
    t.is(blob.buffer, out.buffer);
    t.is(blob.byteOffset, out.byteOffset, 'the blob is the front of out');
    t.deepEqual(open(key, aad, blob), Buffer.concat(parts));
    t.true(out.subarray(length).every((b) => b === 0xee), 'nothing written past the blob');
  }
  t.throws(() => sealInto(key, aad, [randomBytes(9000)], out), { instanceOf: RangeError });
});

test(`${AEAD_ENV}=node uses node:crypto, which opens what the addon sealed and seals what it opens`, async (t) => {
  const key = randomBytes(32);
  const aad = Buffer.from('record');
  const plain = randomBytes(3000);
  const byAddon = seal(key, aad, [plain]);
  // A child with the addon off opens the addon's blob and seals a new one for this process to open.
  const child = `
    const { open, openParts, seal } = await import(${JSON.stringify(new URL('../../src/core/crypto/crypto.ts', import.meta.url).href)});
    const { aeadImplementation } = await import(${JSON.stringify(new URL('../../src/core/crypto/native-aead.ts', import.meta.url).href)});
    const key = Buffer.from('${key.toString('hex')}', 'hex'), aad = Buffer.from('record');
    const opened = open(key, aad, Buffer.from('${byAddon.toString('hex')}', 'hex'));
    const head = Buffer.alloc(7), rest = Buffer.alloc(opened.length - 7);
    const inParts = openParts(key, aad, Buffer.from('${byAddon.toString('hex')}', 'hex'), [head, rest]) ? Buffer.concat([head, rest]).toString('hex') : null;
    console.log(JSON.stringify({ impl: aeadImplementation.name, opened: opened?.toString('hex'), inParts, sealed: seal(key, aad, [opened]).toString('hex') }));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { env: { ...process.env, [AEAD_ENV]: 'node' } });
  const r = JSON.parse(stdout) as { impl: string; opened: string; inParts: string; sealed: string };
  t.is(r.impl, 'node:crypto');
  t.is(r.opened, plain.toString('hex'));
  t.is(r.inParts, plain.toString('hex'), 'openParts without the addon');
  t.deepEqual(open(key, aad, Buffer.from(r.sealed, 'hex')), plain);
  t.is(open(key, Buffer.from('other'), byAddon), null, 'src/core/crypto/crypto.ts refuses a wrong AAD');
});
