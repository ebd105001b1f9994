#!/usr/bin/env node
// Builds svault's crypto addon (src/core/crypto/native/: AES-256-GCM in aead.c, HMAC and HKDF in mac.c) with
// node-gyp against Node's own headers, and checks it before anything uses it: the addon must seal to
// exactly the bytes node:crypto produces and open them again, must refuse a tampered blob, and must
// compute node:crypto's HMAC-SHA256 and HKDF-SHA256. Run by `npm install` (postinstall); safe to rerun.
//
// Usage: node scripts/build-aead.mjs [--force]   (--force: rebuild even if up to date)

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildAddon, runBuild, runProbe } from './node-gyp.mjs';

const TAG = 'build-aead';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'src', 'core', 'crypto', 'native');
const addon = join(dir, 'build', 'Release', 'svault_aead.node');
const force = process.argv.includes('--force');

runBuild(TAG, main);

function main() {
  if (process.platform !== 'linux') {
    console.log(`${TAG}: skipped (built on Linux only, like the FUSE binding; node:crypto is used instead)`);
    return;
  }
  const built = buildAddon({ root, dir, addon, what: 'the crypto addon', verify, force });
  console.log(`${TAG}: ${addon} ${built}; it matches node:crypto's AES-256-GCM, HMAC-SHA256 and HKDF-SHA256`);
}

/** In a child, so a crash while loading cannot take npm with it. */
function verify() {
  const probe = `
    const crypto = require('node:crypto');
    const aead = require(${JSON.stringify(addon)});
    for (const size of [0, 1, 15, 16, 17, 4100, 131076]) {
      const key = crypto.randomBytes(32), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(40);
      const plain = crypto.randomBytes(size);
      const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
      c.setAAD(aad);
      const expected = Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]);
      const sealed = Buffer.alloc(size + 28);
      aead.seal(key, nonce, aad, [plain.subarray(0, size >> 1), plain.subarray(size >> 1)], sealed);
      if (!sealed.equals(expected)) throw new Error('seal differs from node:crypto at ' + size + ' bytes');
      const out = Buffer.alloc(size);
      if (!aead.open(key, aad, sealed, out) || !out.equals(plain)) throw new Error('open fails at ' + size + ' bytes');
      const cut = Math.min(size, 4), head = Buffer.alloc(cut), rest = Buffer.alloc(size - cut);
      if (!aead.openParts(key, aad, sealed, [head, rest]) || !Buffer.concat([head, rest]).equals(plain)) throw new Error('openParts fails at ' + size + ' bytes');
      sealed[sealed.length - 1] ^= 1;
      if (aead.open(key, aad, sealed, out)) throw new Error('a tampered tag opens at ' + size + ' bytes');
      if (aead.openParts(key, aad, sealed, [head, rest])) throw new Error('a tampered tag opens in parts at ' + size + ' bytes');
      const mac = Buffer.alloc(32);
      aead.hmacSha256(key, plain, mac);
      if (!mac.equals(crypto.createHmac('sha256', key).update(plain).digest())) throw new Error('HMAC differs from node:crypto at ' + size + ' bytes');
      const okm = Buffer.alloc(1 + (size % 200));
      aead.hkdfSha256(key, aad, plain.subarray(0, 64), okm);
      if (!okm.equals(Buffer.from(crypto.hkdfSync('sha256', key, aad, plain.subarray(0, 64), okm.length)))) throw new Error('HKDF differs from node:crypto at ' + size + ' bytes');
    }`;
  runProbe(probe, addon);
}
