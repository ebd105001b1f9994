// src/core/crypto: the cryptographic primitives (AES-256-GCM, HKDF-SHA256, HMAC-SHA256), all OpenSSL's.
//
// Cryptographic primitives of svault, all OpenSSL's: key derivation, AEAD sealing, keyed hashes.
// Nothing here is home-made: AES-256-GCM for sealing, HKDF-SHA256 for subkeys, HMAC-SHA256 as the PRF.
// Sealing, opening, HMAC and HKDF go through src/core/crypto/native-aead.ts when its addon is built: the same
// OpenSSL code, without node:crypto's objects and fresh buffers per call. Both paths give the same bytes.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto';
import { NATIVE_MAX_PARTS, nativeAead } from './native-aead.js';

export const KEY_BYTES = 32;
/** Bytes of an HMAC-SHA256: record names, piece addresses. */
export const PRF_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes an AEAD seal adds to its plaintext: the random nonce in front, the tag behind. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;

/** The purpose-separated keys derived from one master key. No key is used for two purposes. */
export interface VaultKeys {
  /** Root of the per-file piece subkeys. */
  readonly content: Buffer;
  /** Seals metadata records. */
  readonly meta: Buffer;
  /** Keyed hashes that name metadata records (lookups by parent and name). */
  readonly index: Buffer;
  /** The PRF that places pieces in the store (the 8-dimensional address). */
  readonly address: Buffer;
}

/** The info strings in use are a handful of constants: each is encoded once. */
const infoBytes = new Map<string, Buffer>();

export function hkdf(key: Buffer, salt: Buffer, info: string, length = KEY_BYTES): Buffer {
  let infoBuf = infoBytes.get(info);
  if (!infoBuf) {
    infoBuf = Buffer.from(info, 'utf8');
    if (infoBytes.size < 64) infoBytes.set(info, infoBuf);
  }
  if (nativeAead) {
    const out = Buffer.allocUnsafeSlow(length); // a key: its own memory, not a slice of Node's shared pool
    nativeAead.hkdfSha256(key, salt, infoBuf, out);
    return out;
  }
  return Buffer.from(hkdfSync('sha256', key, salt, infoBuf, length));
}

export function deriveVaultKeys(master: Buffer, vaultId: Buffer): VaultKeys {
  return {
    content: hkdf(master, vaultId, 'svault/v1/content'),
    meta: hkdf(master, vaultId, 'svault/v1/meta'),
    index: hkdf(master, vaultId, 'svault/v1/index'),
    address: hkdf(master, vaultId, 'svault/v1/address'),
  };
}

/** Overwrites every key with zeroes, once nothing will use them again (a vault's close). */
export function wipeVaultKeys(keys: VaultKeys): void {
  for (const key of Object.values(keys) as Buffer[]) key.fill(0);
}

/** HMAC-SHA256 over the concatenation of parts: the keyed PRF used for addresses and record names. */
export function prf(key: Buffer, ...parts: (Buffer | string)[]): Buffer {
  if (nativeAead) return hmacOf(key, Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p))));
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HMAC-SHA256 of one buffer: prf() for a caller that has laid out the message itself (the hot paths). */
export function hmacOf(key: Buffer, data: Buffer): Buffer {
  if (!nativeAead) return createHmac('sha256', key).update(data).digest();
  // Its own memory, as digest() gives: record names are kept (nameMemo), and a slice of Node's shared
  // pool would keep the pool's whole 8 KiB alive with it.
  const out = Buffer.allocUnsafeSlow(PRF_BYTES);
  nativeAead.hmacSha256(key, data, out);
  return out;
}

/**
 * Random bytes from a pool refilled by the CSPRNG 16 KiB at a time: one call into OpenSSL per ~1,300
 * nonces instead of one each, which mattered for small files. Each byte is handed out once.
 */
const POOL_BYTES = 16384;
const pool = Buffer.alloc(POOL_BYTES);
let poolUsed = POOL_BYTES;

export function randomBytesPooled(n: number): Buffer {
  if (n > POOL_BYTES / 4) return randomFillSync(Buffer.alloc(n));
  if (poolUsed + n > POOL_BYTES) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  const out = Buffer.from(pool.subarray(poolUsed, poolUsed + n));
  pool.fill(0, poolUsed, poolUsed + n);
  poolUsed += n;
  return out;
}

/**
 * Seals plaintext parts (concatenated) with AES-256-GCM under a fresh random nonce.
 * Output: nonce || ciphertext || tag. Parts avoid copying a large buffer just to prepend a header.
 */
export function seal(key: Buffer, aad: Buffer, parts: Buffer[]): Buffer {
  const sealed = sealToParts(key, aad, parts);
  return sealed.length === 1 ? sealed[0]! : Buffer.concat(sealed); // the addon's one buffer: no copy
}

/** seal() as the list of its output's parts: one buffer from the addon, nonce, pieces and tag from node:crypto. */
function sealToParts(key: Buffer, aad: Buffer, parts: Buffer[]): Buffer[] {
  const nonce = randomBytesPooled(NONCE_BYTES);
  if (nativeAead && parts.length <= NATIVE_MAX_PARTS) {
    let length = SEAL_OVERHEAD;
    for (const p of parts) length += p.length;
    // Unzeroed: the addon writes every byte of it, or wipes it and throws.
    const out = Buffer.allocUnsafeSlow(length);
    nativeAead.seal(key, nonce, aad, parts, out);
    return [out];
  }
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const out: Buffer[] = [nonce];
  for (const p of parts) out.push(cipher.update(p));
  out.push(cipher.final(), cipher.getAuthTag());
  return out;
}

/**
 * sealToParts() into a buffer the caller owns and reuses (the piece worker, which writes each blob before
 * it seals the next): no new 128 KiB buffer per piece. Returns the view of `out` that holds the blob.
 */
export function sealInto(key: Buffer, aad: Buffer, parts: Buffer[], out: Buffer): Buffer {
  let length = SEAL_OVERHEAD;
  for (const p of parts) length += p.length;
  if (out.length < length) throw new RangeError(`sealInto: ${length} bytes do not fit in ${out.length}`);
  const target = out.subarray(0, length);
  if (nativeAead && parts.length <= NATIVE_MAX_PARTS) {
    nativeAead.seal(key, randomBytesPooled(NONCE_BYTES), aad, parts, target);
    return target;
  }
  let at = 0;
  for (const p of sealToParts(key, aad, parts)) at += p.copy(target, at);
  return target;
}

/**
 * open() into a buffer the caller owns and reuses (at least sealed.length - 28 bytes): no new buffer per
 * blob. Returns the view of `out` that holds the plaintext, or null as open() does; `out` may then hold
 * anything and must not be used.
 */
export function openInto(key: Buffer, aad: Buffer, sealed: Buffer, out: Buffer): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const target = out.subarray(0, sealed.length - SEAL_OVERHEAD);
  if (target.length < sealed.length - SEAL_OVERHEAD) throw new RangeError(`openInto: ${sealed.length - SEAL_OVERHEAD} bytes do not fit in ${out.length}`);
  if (nativeAead) return nativeAead.open(key, aad, sealed, target) ? target : null;
  const body = open(key, aad, sealed);
  if (!body) return null;
  body.copy(target);
  return target;
}

/**
 * open() across buffers the caller owns: the plaintext goes into the outs in order (their lengths must
 * add up to sealed.length - 28), so a piece's data can be decrypted straight into a reader's buffer.
 * False when it does not authenticate (every out is then wiped) or is shorter than nonce and tag.
 */
export function openParts(key: Buffer, aad: Buffer, sealed: Buffer, outs: Buffer[]): boolean {
  if (sealed.length < SEAL_OVERHEAD) return false;
  let length = 0;
  for (const o of outs) length += o.length;
  if (length !== sealed.length - SEAL_OVERHEAD) throw new RangeError(`openParts: the outs hold ${length} bytes, the blob ${sealed.length - SEAL_OVERHEAD}`);
  if (nativeAead && outs.length <= NATIVE_MAX_PARTS) return nativeAead.openParts(key, aad, sealed, outs);
  const body = open(key, aad, sealed);
  let at = 0;
  for (const o of outs) at += body ? body.copy(o, 0, at, at + o.length) : o.fill(0).length;
  return body !== null;
}

/** Opens a sealed blob; returns null when it does not authenticate (wrong key, tampered, truncated). */
export function open(key: Buffer, aad: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  if (nativeAead) {
    // Unzeroed: filled with the plaintext, or wiped when the tag does not match.
    const out = Buffer.allocUnsafeSlow(sealed.length - SEAL_OVERHEAD);
    return nativeAead.open(key, aad, sealed, out) ? out : null;
  }
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const body = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return body;
}

export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
