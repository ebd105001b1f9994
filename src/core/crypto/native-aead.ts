// Loads svault's crypto addon (src/core/crypto/native/aead.c and mac.c, built by scripts/build-aead.mjs at install).
// It seals, opens, MACs and derives keys into buffers we own, with the OpenSSL that Node itself runs.
// src/core/crypto/crypto.ts uses it when it loads and falls back to node:crypto otherwise; both produce and accept
// the same bytes.
import { loadAddon } from '../util/load-addon.js';

export interface NativeAead {
  /** Decrypts nonce || ciphertext || tag into out (sealed.length - 28 bytes); false, and out wiped, if it does not authenticate. */
  open(key: Buffer, aad: Buffer, sealed: Buffer, out: Buffer): boolean;
  /** open() into several buffers in turn (their lengths add up to sealed.length - 28); false, and all wiped, if it does not authenticate. */
  openParts(key: Buffer, aad: Buffer, sealed: Buffer, outs: Buffer[]): boolean;
  /** Writes nonce || ciphertext of the parts || tag into out (12 + the parts' length + 16 bytes). */
  seal(key: Buffer, nonce: Buffer, aad: Buffer, parts: Buffer[], out: Buffer): void;
  /** Writes HMAC-SHA256(key, data) into out (32 bytes). */
  hmacSha256(key: Buffer, data: Buffer, out: Buffer): void;
  /** Writes HKDF-SHA256(key, salt, info) into out (1 to 8160 bytes). */
  hkdfSha256(key: Buffer, salt: Buffer, info: Buffer, out: Buffer): void;
}

const FUNCTIONS = ['open', 'openParts', 'seal', 'hmacSha256', 'hkdfSha256'] as const;

/** Which implementation src/core/crypto/crypto.ts uses, and why, for `svault status` and the bench reports. */
export interface AeadImplementation {
  name: 'openssl-evp' | 'node:crypto';
  reason: string;
}

/** The addon seals from, and opens into, at most this many buffers in one call (MAX_PARTS in aead.c). */
export const NATIVE_MAX_PARTS = 16;

/** Set SVAULT_AEAD=node to use node:crypto even where the addon is built (A/B measurements, tests). */
export const AEAD_ENV = 'SVAULT_AEAD';

// From src/core/crypto/ under tsx, and from dist/src/core/crypto/ once compiled: the addon is built in the source tree.
const CANDIDATES = ['./native/build/Release/svault_aead.node', '../../../../src/core/crypto/native/build/Release/svault_aead.node'];

function load(): { addon: NativeAead | null; implementation: AeadImplementation } {
  if (process.env[AEAD_ENV] === 'node') {
    return { addon: null, implementation: { name: 'node:crypto', reason: `${AEAD_ENV}=node` } };
  }
  const { addon, file, failures } = loadAddon<NativeAead>(import.meta.url, CANDIDATES, FUNCTIONS);
  if (addon && file) return { addon, implementation: { name: 'openssl-evp', reason: file } };
  const reason = failures.length > 0 ? failures.join('; ') : 'the addon is not built (npm install runs scripts/build-aead.mjs)';
  return { addon: null, implementation: { name: 'node:crypto', reason } };
}

const loaded = load();

/** The addon, or null when node:crypto is used. */
export const nativeAead: NativeAead | null = loaded.addon;
export const aeadImplementation: AeadImplementation = loaded.implementation;
