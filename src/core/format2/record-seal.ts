// The seal of format 2's records (docs/format-2.md, 5.2), and the four checks of a read. Every record is
// 4,000 bytes: a fresh 16-byte salt s, then AES-256-GCM of a 3,968-byte body under a key of its own,
// K_s = HKDF(record key, s, "svault/v2/record-key"), with the zero nonce. The associated data binds the
// value to its name and its version, so a record cannot be moved to another name, and a record of
// another commit cannot pass for the one its owner points to: a read says which of missing, damaged or
// stale (a replay) it found.
//
//   value (4,000)  s (16) ‖ C (3,968) ‖ T (16)
//   AD      (88)   "svault-record-v2" ‖ vault id (16) ‖ name (32) ‖ u64 version
//   body (3,968)   u8 kind ‖ u8 layout (1) ‖ u16 payload length P ‖ u64 version ‖ payload (P) ‖ zeroes

import { createCipheriv } from 'node:crypto';
import { hkdf, KEY_BYTES, NONCE_BYTES, openInto, randomBytesPooled, TAG_BYTES } from '../crypto/crypto.js';
import { nativeAead } from '../crypto/native-aead.js';
import { IntegrityError, type IntegrityKind } from '../errors.js';
import { u64, VAULT_ID_BYTES } from './keys.js';
import { RECORD_NAME_BYTES } from './record-names.js';

/** Every sealed record, of every kind: one 4 KiB SQLite page (5.1). */
export const RECORD_BYTES = 4000;
export const RECORD_SALT_BYTES = 16;
export const RECORD_BODY_BYTES = RECORD_BYTES - RECORD_SALT_BYTES - TAG_BYTES; // 3,968
/** kind, layout, payload length, version. */
export const RECORD_HEADER_BYTES = 12;
export const MAX_RECORD_PAYLOAD = RECORD_BODY_BYTES - RECORD_HEADER_BYTES; // 3,956
/** The body layout this code writes and reads. */
export const RECORD_LAYOUT = 1;
/** Versions are commit numbers, 1 and up, below 2^53 (section 1). 0 means "no record" in an owner. */
export const MAX_RECORD_VERSION = Number.MAX_SAFE_INTEGER;

/** The kind byte of a record's body (5.2, section 12). Metadata chaff has none: it is never sealed. */
export const RecordKind = {
  state: 1,
  inode: 2,
  mapNode: 3,
  bucket: 4,
  spill: 5,
  repairQueue: 6,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

const KIND_NAMES = new Map<number, string>(Object.entries(RecordKind).map(([name, kind]) => [kind, name]));

/**
 * The salt-collision bound of issue 22, finding 10, as the README quotes it. Two seals share a key only if
 * their salts collide. Over n seals the chance is at most n(n − 1)/2 pairs × 2^−128 < n² / 2^129, which at
 * n = 2^48 record seals in a vault's life is 2^−33: the chance is below 2^−33.
 */
export const SALT_COLLISION_BOUND = Object.freeze({
  /** Record seals assumed over a vault's life. */
  seals: 2 ** 48,
  /** log2 of n² / 2^129, the bound the chance of any salt collision stays below. */
  log2Chance: -33,
});

const AD_LABEL = Buffer.from('svault-record-v2', 'ascii');
const AD_BYTES = AD_LABEL.length + VAULT_ID_BYTES + RECORD_NAME_BYTES + 8;
const RECORD_KEY_INFO = 'svault/v2/record-key';
/** Each K_s seals one body only, so the nonce can be fixed (5.2). */
const ZERO_NONCE = Buffer.alloc(NONCE_BYTES);
/**
 * The CTR counter block of a GCM body's first 16 bytes: with a 96-bit nonce N, GCM's J0 is N ‖ 0^31 ‖ 1,
 * and the plaintext is encrypted from inc32(J0) = N ‖ 0x00000002 (NIST SP 800-38D, 7.1).
 */
const FIRST_BODY_COUNTER = Buffer.from('000000000000000000000000' + '00000002', 'hex');
const ZERO_BODY = Buffer.alloc(RECORD_BODY_BYTES);
const TWO_32 = 2 ** 32;

/** An opened record: its payload, and the version its body and associated data hold. */
export interface OpenedRecord {
  version: number;
  payload: Buffer;
}

function checkVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1 || version > MAX_RECORD_VERSION) throw new RangeError(`record version ${version} is not from 1 to 2^53 − 1`);
}

/** The u64 at `offset` as a JS number, or null when it is 2^53 or more (such a version is damage: section 1). */
function readVersion(buf: Buffer, offset: number): number | null {
  const high = buf.readUInt32BE(offset);
  if (high >= 2 ** 21) return null;
  return high * TWO_32 + buf.readUInt32BE(offset + 4);
}

/**
 * Seals and opens the records of one vault. Synchronous and not reentrant: it keeps scratch buffers for
 * the associated data, the ciphertext it opens and the body, so that a seal allocates only the value it
 * returns and an open only the payload. Bodies are wiped after each use.
 */
export class RecordSealer {
  private readonly ad = Buffer.alloc(AD_BYTES);
  /** The body being sealed or opened: wiped after each use. */
  private readonly body = Buffer.alloc(RECORD_BODY_BYTES);
  /** 0^12 ‖ C ‖ T: crypto.ts's openInto() reads the nonce in front of the ciphertext. C and T are not secret. */
  private readonly sealedScratch = Buffer.alloc(NONCE_BYTES + RECORD_BODY_BYTES + TAG_BYTES);

  constructor(
    private readonly recordKey: Buffer,
    vaultId: Buffer,
  ) {
    if (recordKey.length !== KEY_BYTES) throw new RangeError(`the record key is ${KEY_BYTES} bytes, not ${recordKey.length}`);
    if (vaultId.length !== VAULT_ID_BYTES) throw new RangeError(`a vault id is ${VAULT_ID_BYTES} bytes, not ${vaultId.length}`);
    AD_LABEL.copy(this.ad, 0);
    vaultId.copy(this.ad, AD_LABEL.length);
  }

  /** Seals `payload` as a record of `kind` named `name`, written by commit `version`: 4,000 bytes. */
  seal(name: Buffer, version: number, kind: RecordKind, payload: Buffer): Buffer {
    if (!KIND_NAMES.has(kind)) throw new RangeError(`record kind ${kind} is not one of 5.2's`);
    if (payload.length > MAX_RECORD_PAYLOAD) throw new RangeError(`a record payload is at most ${MAX_RECORD_PAYLOAD} bytes, not ${payload.length}`);
    const ad = this.adFor(name, version);
    const body = this.body;
    body[0] = kind;
    body[1] = RECORD_LAYOUT;
    body.writeUInt16BE(payload.length, 2);
    u64(version).copy(body, 4);
    payload.copy(body, RECORD_HEADER_BYTES);
    // The rest of the scratch body is zero: it is wiped after every use.
    // Unzeroed, and from Node's pool (a value goes to SQLite and is dropped): every byte is written below.
    const value = Buffer.allocUnsafe(RECORD_BYTES);
    const salt = randomBytesPooled(RECORD_SALT_BYTES);
    const key = hkdf(this.recordKey, salt, RECORD_KEY_INFO);
    try {
      sealWithZeroNonce(key, ad, body, value);
    } finally {
      key.fill(0);
      body.fill(0, 0, RECORD_HEADER_BYTES + payload.length);
    }
    // Last: sealWithZeroNonce wrote the zero nonce where the salt goes.
    salt.copy(value, 0);
    return value;
  }

  /**
   * Opens `value`, the row read for `name` (null: no row), as the record of `kind` at `version`, the
   * version its owner holds, and returns its payload. Throws IntegrityError by 5.2's four steps:
   * `missing` with no row; `stale` for an authentic record of another commit (a replay), naming both
   * versions; `damaged` for anything else. The payload's own rules are the caller's to check.
   */
  open(name: Buffer, value: Buffer | null | undefined, version: number, kind: RecordKind, what?: string): Buffer {
    checkVersion(version);
    // Step 1.
    if (value == null) throw failure(kind, name, what, 'no record', 'missing');
    // Step 2.
    if (value.length !== RECORD_BYTES) throw failure(kind, name, what, `a record of ${value.length} bytes, not ${RECORD_BYTES}`, 'damaged');
    const key = hkdf(this.recordKey, value.subarray(0, RECORD_SALT_BYTES), RECORD_KEY_INFO);
    try {
      // Step 3.
      const body = this.openBody(key, name, version, value);
      if (body) {
        const problem = bodyProblem(body, kind, version);
        if (problem) throw failure(kind, name, what, problem, 'damaged');
        return payloadOf(body);
      }
      // Step 4: the record does not open at `version`. It is a replay only if it opens, whole and sound,
      // at the version it claims; damage cannot pass for a replay, since the claimed version must
      // authenticate.
      const claimed = claimedVersion(key, value);
      if (claimed !== null && claimed !== version) {
        const other = this.openBody(key, name, claimed, value);
        if (other && bodyProblem(other, kind, claimed) === null) throw failure(kind, name, what, `record from commit ${claimed}, expected ${version}`, 'stale');
      }
      throw failure(kind, name, what, `fails authentication at version ${version}`, 'damaged');
    } finally {
      key.fill(0);
      this.body.fill(0);
    }
  }

  /**
   * Opens `value` at the version it claims, for a record whose version no owner holds: the state record
   * at mount (5.6, step 1), and records fsck adopts from a damaged owner (5.10). No row is `missing`;
   * anything that does not open at its claimed version, or is malformed, is `damaged`.
   */
  openAtClaimedVersion(name: Buffer, value: Buffer | null | undefined, kind: RecordKind, what?: string): OpenedRecord {
    if (value == null) throw failure(kind, name, what, 'no record', 'missing');
    if (value.length !== RECORD_BYTES) throw failure(kind, name, what, `a record of ${value.length} bytes, not ${RECORD_BYTES}`, 'damaged');
    const key = hkdf(this.recordKey, value.subarray(0, RECORD_SALT_BYTES), RECORD_KEY_INFO);
    try {
      const claimed = claimedVersion(key, value);
      const body = claimed === null ? null : this.openBody(key, name, claimed, value);
      if (claimed === null || !body) throw failure(kind, name, what, 'fails authentication at its claimed version', 'damaged');
      const problem = bodyProblem(body, kind, claimed);
      if (problem) throw failure(kind, name, what, problem, 'damaged');
      return { version: claimed, payload: payloadOf(body) };
    } finally {
      key.fill(0);
      this.body.fill(0);
    }
  }

  private adFor(name: Buffer, version: number): Buffer {
    if (name.length !== RECORD_NAME_BYTES) throw new RangeError(`a record name is ${RECORD_NAME_BYTES} bytes, not ${name.length}`);
    checkVersion(version);
    name.copy(this.ad, AD_LABEL.length + VAULT_ID_BYTES);
    u64(version).copy(this.ad, AD_BYTES - 8);
    return this.ad;
  }

  /**
   * Decrypts `value` into the scratch body and returns it if it authenticates with AD(name, version),
   * else null (openInto then leaves no plaintext of it). Callers wipe the scratch body when done.
   */
  private openBody(key: Buffer, name: Buffer, version: number, value: Buffer): Buffer | null {
    value.copy(this.sealedScratch, NONCE_BYTES, RECORD_SALT_BYTES);
    return openInto(key, this.adFor(name, version), this.sealedScratch, this.body);
  }
}

/**
 * GCM of `body` under `key` with the zero nonce, written into value[16..4000) as C ‖ T. The addon takes a
 * nonce of ours and writes into our buffer (it writes nonce ‖ C ‖ T, so it is given value[4..4000) and
 * the nonce lands where the salt is written after). crypto.ts's seal() draws its own nonce, so without
 * the addon node:crypto is called here directly.
 */
function sealWithZeroNonce(key: Buffer, ad: Buffer, body: Buffer, value: Buffer): void {
  const nonceAt = RECORD_SALT_BYTES - NONCE_BYTES;
  if (nativeAead) {
    nativeAead.seal(key, ZERO_NONCE, ad, [body], value.subarray(nonceAt));
    return;
  }
  const cipher = createCipheriv('aes-256-gcm', key, ZERO_NONCE);
  cipher.setAAD(ad);
  let at = RECORD_SALT_BYTES;
  at += cipher.update(body).copy(value, at);
  at += cipher.final().copy(value, at);
  cipher.getAuthTag().copy(value, at);
}

/**
 * The version a sealed value claims, read without authentication (5.2, step 4): the body's first 16
 * bytes decrypted with the keystream GCM used for them, AES-256-CTR from counter block 0^12 ‖ 0x00000002.
 * Null when the claim is 0 or 2^53 or more, which no seal writes.
 */
function claimedVersion(key: Buffer, value: Buffer): number | null {
  const ctr = createCipheriv('aes-256-ctr', key, FIRST_BODY_COUNTER);
  const head = ctr.update(value.subarray(RECORD_SALT_BYTES, RECORD_SALT_BYTES + 16));
  const claimed = readVersion(head, 4);
  head.fill(0);
  return claimed === 0 ? null : claimed;
}

/** What is wrong with an authentic body read as `kind` at `version`, or null (5.2, step 3). */
function bodyProblem(body: Buffer, kind: RecordKind, version: number): string | null {
  if (body[0] !== kind) return `kind ${body[0]} where ${kind} (${KIND_NAMES.get(kind)}) is expected`;
  if (body[1] !== RECORD_LAYOUT) return `layout ${body[1]}, not ${RECORD_LAYOUT}`;
  const length = body.readUInt16BE(2);
  if (length > MAX_RECORD_PAYLOAD) return `payload length ${length} is over ${MAX_RECORD_PAYLOAD}`;
  const bodyVersion = readVersion(body, 4);
  if (bodyVersion !== version) return `body version ${bodyVersion ?? '2^53 or more'} differs from ${version} in the associated data`;
  const padding = body.subarray(RECORD_HEADER_BYTES + length);
  if (!padding.equals(ZERO_BODY.subarray(0, padding.length))) return 'padding is not zero';
  return null;
}

/** A copy of the payload: the scratch body it is in is wiped. */
function payloadOf(body: Buffer): Buffer {
  return Buffer.from(body.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + body.readUInt16BE(2)));
}

/**
 * The IntegrityError of a read, naming the record as `what` (the caller's words, "inode 42"), or else as
 * "inode record 3fa2c1d0…": the kind and the name's first bytes, worked out only when a read fails.
 */
function failure(kind: RecordKind, name: Buffer, what: string | undefined, problem: string, integrity: IntegrityKind): IntegrityError {
  const record = what ?? `${KIND_NAMES.get(kind) ?? `kind ${kind}`} record ${name.subarray(0, 4).toString('hex')}…`;
  return new IntegrityError(`${record}: ${problem}`, integrity);
}
