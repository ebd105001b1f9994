// Chaff blobs: random blobs beside the pieces, so that the blob count says less of how much a store holds.
// A vault chooses one of two schemes, and SealedPieces (and the piece worker, which stores through it) makes
// and deletes its chaff by that choice:
// - format 1's: each piece stored draws floor(ρ) + b chaff blobs, b at random (Math.random()), each at
//   PRF(address key, "chaff" ‖ its first 16 bytes) (address.ts). No piece knows its chaff, so chaff is
//   never deleted; it is told apart by reading a blob's first bytes (isChaff).
// - derived (format 2, docs/format-2.md 10.2): each piece version (fileId, index, version) has
//   floor(ρ) + b chaff blobs, b = 1 when u64(PRF(chaff key, "piece", fileId, u64 index, u64 version)[0..8])
//   / 2^64 < ρ − floor(ρ), chaff blob j at PRF(address key, "chaff2", fileId, u64 index, u64 version, u8 j),
//   random bytes the size of the piece's blob. Written with its piece and deleted with it, so it lives and
//   dies as the piece does; fsck finds it by computing the chaff addresses of the live pieces.

import { labeledPrf, u64, u8 } from '../format2/keys.js';
import type { Address } from './address.js';
import type { PieceId } from './piece-codec.js';

/** A vault's chaff scheme (see above): format 1's, or 10.2's derived chaff under the vault's chaff key. */
export type ChaffChoice = { readonly scheme: 'format1' } | { readonly scheme: 'derived'; readonly chaffKey: Buffer };

export const FORMAT1_CHAFF: ChaffChoice = Object.freeze({ scheme: 'format1' });

/** Chaff blobs of a piece are numbered by a u8 (10.2): a ratio of 255 or more has no room. */
const MAX_DERIVED_CHAFF = 256;
const FILE_ID_BYTES = 16;
const TWO_64 = 2 ** 64;

function fileIdField(id: PieceId): Buffer {
  if (id.fileId.length !== FILE_ID_BYTES) throw new RangeError(`a file id is ${FILE_ID_BYTES} bytes, not ${id.fileId.length}`);
  return id.fileId;
}

/**
 * How many chaff blobs piece version `id` has under derived chaff: floor(ρ) + b, b = 1 when
 * u64(PRF(chaff key, "piece", fileId, u64 index, u64 version)[0..8]) / 2^64 < ρ − floor(ρ). The same rule
 * as an inode's chaff records (record-names.ts chaffRecordCount), under another label.
 */
export function derivedChaffCount(chaffKey: Buffer, chaffRatio: number, id: PieceId): number {
  if (!Number.isFinite(chaffRatio) || chaffRatio < 0 || chaffRatio >= MAX_DERIVED_CHAFF - 1) {
    throw new RangeError(`chaff ratio ${chaffRatio} is not from 0 to below ${MAX_DERIVED_CHAFF - 1}`);
  }
  const whole = Math.floor(chaffRatio);
  const fraction = chaffRatio - whole;
  if (fraction === 0) return whole;
  const draw = labeledPrf(chaffKey, 'piece', fileIdField(id), u64(id.index), u64(id.version)).readBigUInt64BE(0);
  // draw / 2^64 < fraction, exactly: fraction × 2^64 is exact in a double, and for an integer draw,
  // draw < x exactly when draw < ceil(x) (as chaffRecordCount compares).
  return draw < BigInt(Math.ceil(fraction * TWO_64)) ? whole + 1 : whole;
}

/** Chaff blob `j` of piece version `id` under derived chaff: PRF(address key, "chaff2", fileId, u64 index, u64 version, u8 j). */
export function derivedChaffAddress(addressKey: Buffer, id: PieceId, j: number): Address {
  return labeledPrf(addressKey, 'chaff2', fileIdField(id), u64(id.index), u64(id.version), u8(j));
}

/** Every chaff address of piece version `id` under derived chaff, j = 0 … count − 1. */
export function derivedChaffAddresses(keys: { address: Buffer; chaff: Buffer }, chaffRatio: number, id: PieceId): Address[] {
  const count = derivedChaffCount(keys.chaff, chaffRatio, id);
  const out: Address[] = [];
  for (let j = 0; j < count; j++) out.push(derivedChaffAddress(keys.address, id, j));
  return out;
}
