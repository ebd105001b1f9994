// Format 2's keys (docs/format-2.md, section 3) and its PRF (section 1). Each key serves one purpose and
// is derived from the master key M and the vault id V by HKDF with an info string of its own, so learning
// one key says nothing about another. The keys that depend on nothing but M and V are derived once, when
// the master key is unwrapped, into a frozen object; the few that also depend on an epoch or a store are
// functions below it. Epoch 0's content and address keys are format 1's, byte for byte (a format-1 piece
// blob is a valid format-2 piece blob), so they come from crypto.ts's deriveVaultKeys, not from here.

import { deriveVaultKeys, hkdf, hmacOf, KEY_BYTES } from '../crypto/crypto.js';

/** Bytes of the vault id V. */
export const VAULT_ID_BYTES = 16;
/** Bytes of the key id: the first 8 bytes of HKDF(M, V, "svault/v2/key-id"). */
export const KEY_ID_BYTES = 8;

/** The format-2 keys of one master key M (section 3). Secret, except `keyId`. */
export interface Format2Keys {
  /** Epoch 0's content key, format 1's `svault/v1/content`: root of the per-file piece keys. */
  readonly content: Buffer;
  /** Epoch 0's address key, format 1's `svault/v1/address`: piece addresses and their chaff. */
  readonly address: Buffer;
  /** The input of every per-record key (5.2). */
  readonly record: Buffer;
  /** Names records (5.3). */
  readonly names: Buffer;
  /** Places a name in a directory's buckets (6.4). */
  readonly dirhash: Buffer;
  /**
   * Counts chaff: blobs per piece of every epoch whose master is M, records per inode (5.9). Its info
   * string has no epoch in it, so every epoch under one master shares it (see section 3's table).
   */
  readonly chaff: Buffer;
  /** The MAC in `svault.layout.json`. */
  readonly config: Buffer;
  /** The rollback anchor's MAC (5.7). */
  readonly anchor: Buffer;
  /** The MAC in each store's `svault.store` (10.3). */
  readonly storeMarker: Buffer;
  /** The input of per-object keys of metadata segments and snapshots (10.7). */
  readonly segment: Buffer;
  /** Names segment and snapshot objects (10.7). */
  readonly segmentNames: Buffer;
  /** The MAC in the S3 lease object (10.7). */
  readonly lease: Buffer;
  /**
   * While a rekey to M runs, wraps the previous master key under M (10.6): the key of the new master,
   * HKDF(M′, V, "svault/v2/rekey") in the section's terms.
   */
  readonly rekeyWrap: Buffer;
  /** Names the metadata database after a rekey (10.6). Not secret. */
  readonly keyId: Buffer;
}

function checkMasterAndVaultId(master: Buffer, vaultId: Buffer): void {
  if (master.length !== KEY_BYTES) throw new RangeError(`a master key is ${KEY_BYTES} bytes, not ${master.length}`);
  if (vaultId.length !== VAULT_ID_BYTES) throw new RangeError(`a vault id is ${VAULT_ID_BYTES} bytes, not ${vaultId.length}`);
}

/** Every key of section 3 that depends on M and V alone. */
export function deriveFormat2Keys(master: Buffer, vaultId: Buffer): Format2Keys {
  checkMasterAndVaultId(master, vaultId);
  const v1 = deriveVaultKeys(master, vaultId);
  // Format 1's metadata keys (svault/v1/meta, svault/v1/index) are not format 2's: only the upgrade's
  // format-1 reader uses them, so they are not kept here.
  v1.meta.fill(0);
  v1.index.fill(0);
  const derive = (info: string): Buffer => hkdf(master, vaultId, info);
  return Object.freeze({
    content: v1.content,
    address: v1.address,
    record: derive('svault/v2/record'),
    names: derive('svault/v2/names'),
    dirhash: derive('svault/v2/dirhash'),
    chaff: derive('svault/v2/chaff'),
    config: derive('svault/v2/config'),
    anchor: derive('svault/v2/anchor'),
    storeMarker: derive('svault/v2/store-marker'),
    segment: derive('svault/v2/segment'),
    segmentNames: derive('svault/v2/segment-name'),
    lease: derive('svault/v2/lease'),
    rekeyWrap: derive('svault/v2/rekey'),
    // Section 3 defines it as the first 8 bytes of a 32-byte HKDF output (equal to an 8-byte output,
    // since HKDF-Expand's first block is the same): derived as written, then cut.
    keyId: Buffer.from(derive('svault/v2/key-id').subarray(0, KEY_ID_BYTES)),
  });
}

/** Overwrites every key with zeroes, once nothing will use them again (a vault's close). */
export function wipeFormat2Keys(keys: Format2Keys): void {
  for (const key of Object.values(keys) as Buffer[]) key.fill(0);
}

/** The metadata database of master M (10.6): `meta2.db` for the vault's first master, else `meta2-<key id>.db`. */
export function metadataFileName(keyId: Buffer | null): string {
  return keyId === null ? 'meta2.db' : `meta2-${keyId.toString('hex')}.db`;
}

function checkEpoch(epoch: number): void {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff_ffff) throw new RangeError(`epoch ${epoch} is not a u32`);
}

/**
 * The address key of epoch e under that epoch's master M_e: format 1's for epoch 0 (its addresses are
 * unchanged), `svault/v2/address/<e>` after a rescatter (10.6).
 */
export function epochAddressKey(masterOfEpoch: Buffer, vaultId: Buffer, epoch: number): Buffer {
  checkMasterAndVaultId(masterOfEpoch, vaultId);
  checkEpoch(epoch);
  if (epoch === 0) {
    const v1 = deriveVaultKeys(masterOfEpoch, vaultId);
    for (const unused of [v1.content, v1.meta, v1.index]) unused.fill(0);
    return v1.address;
  }
  return hkdf(masterOfEpoch, vaultId, `svault/v2/address/${epoch}`);
}

/** The GMAC key of fragments of epoch e in store `storeId` (10.4). */
export function fragmentMacKey(masterOfEpoch: Buffer, vaultId: Buffer, storeId: Buffer, epoch: number): Buffer {
  checkMasterAndVaultId(masterOfEpoch, vaultId);
  checkEpoch(epoch);
  return hkdf(masterOfEpoch, vaultId, `svault/v2/fragment-mac/${storeId.toString('hex')}/${epoch}`);
}

/** The key that names fragments of epoch e in store `storeId` (10.4). */
export function fragmentNameKey(masterOfEpoch: Buffer, vaultId: Buffer, storeId: Buffer, epoch: number): Buffer {
  checkMasterAndVaultId(masterOfEpoch, vaultId);
  checkEpoch(epoch);
  return hkdf(masterOfEpoch, vaultId, `svault/v2/fragment-name/${storeId.toString('hex')}/${epoch}`);
}

/**
 * The key that hides, in store `storeId`, which write of a blob a fragment of epoch e belongs to: each
 * fragment's GCM nonce is this key's AES encryption of a random put id shared by the blob's fragments, so a
 * reader holding the key tells a replayed old fragment from the current ones, and the stores' operators,
 * without it, cannot match a blob's fragments by nonce. Not in section 3's table yet (the scatter store's
 * addition; see src/core/store/scatter-store.ts).
 */
export function fragmentNonceKey(masterOfEpoch: Buffer, vaultId: Buffer, storeId: Buffer, epoch: number): Buffer {
  checkMasterAndVaultId(masterOfEpoch, vaultId);
  checkEpoch(epoch);
  return hkdf(masterOfEpoch, vaultId, `svault/v2/fragment-nonce/${storeId.toString('hex')}/${epoch}`);
}

/** The key that wraps M under the 32-byte recovery key R (4.1). */
export function recoveryWrapKey(recoveryKey: Buffer, vaultId: Buffer): Buffer {
  checkMasterAndVaultId(recoveryKey, vaultId);
  return hkdf(recoveryKey, vaultId, 'svault/v2/recovery');
}

// ---- The PRF of section 1 ----
//
// PRF(k, label, fields…) = HMAC-SHA256(k, label ‖ 0x00 ‖ fields…). Fields have fixed widths and no label
// holds a NUL, so the message determines (label, fields): two different inputs never share a message.

/** Each label's bytes and its NUL, encoded once (labels are a handful of constants). */
const labelPrefixes = new Map<string, Buffer>();

function labelPrefix(label: string): Buffer {
  let prefix = labelPrefixes.get(label);
  if (!prefix) {
    if (!/^[\x01-\x7f]+$/.test(label)) throw new RangeError(`PRF label ${JSON.stringify(label)} must be non-empty ASCII without NUL`);
    prefix = Buffer.from(`${label}\0`, 'ascii');
    if (labelPrefixes.size < 64) labelPrefixes.set(label, prefix);
  }
  return prefix;
}

/** PRF(key, label, fields…) of section 1: 32 bytes. Each field is fixed-width: u8() … u64(), or raw bytes of a fixed size. */
export function labeledPrf(key: Buffer, label: string, ...fields: Buffer[]): Buffer {
  return hmacOf(key, Buffer.concat([labelPrefix(label), ...fields]));
}

function field(bytes: number, max: number, n: number, what: string): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RangeError(`${what} field: ${n} is not an integer from 0 to ${max}`);
  const b = Buffer.allocUnsafe(bytes);
  if (bytes === 8) {
    // Below 2^53 (section 1): the high half is below 2^21, and each half is exact as a JS number.
    b.writeUInt32BE(Math.floor(n / 2 ** 32), 0);
    b.writeUInt32BE(n % 2 ** 32, 4);
  } else {
    b.writeUIntBE(n, 0, bytes);
  }
  return b;
}

export function u8(n: number): Buffer {
  return field(1, 0xff, n, 'u8');
}

export function u16(n: number): Buffer {
  return field(2, 0xffff, n, 'u16');
}

export function u32(n: number): Buffer {
  return field(4, 0xffff_ffff, n, 'u32');
}

/** A u64 from a JS number, which must be below 2^53: every version, ino and count of format 2 is. */
export function u64(n: number): Buffer {
  return field(8, Number.MAX_SAFE_INTEGER, n, 'u64');
}
