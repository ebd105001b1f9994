// Dimensional addressing, the "scatter": where a piece lives in the store is a keyed PRF of
// (file id, piece index, piece version), read as a point of 8 coordinates and mapped to a blob path.
// Without the address key, names are uniformly random and say nothing about files or order.

import { randomBytes, randomFillSync } from 'node:crypto';
import { hmacOf, prf, u64 } from '../crypto/crypto.js';
import type { PieceId } from './piece-codec.js';

/** An address is 32 bytes: 8 coordinates of 32 bits each. */
export const ADDRESS_BYTES = 32;
/** Chaff names are PRF(key, "chaff", tag) where tag is the blob's first bytes: recognisable with the key only. */
export const CHAFF_TAG_BYTES = 16;

export type Address = Buffer;

const PIECE_LABEL = Buffer.from('piece');
const FILE_ID_BYTES = 16;
/** The message of addressOf's PRF, laid out in place: it runs for every piece read or written. */
const addressMessage = Buffer.alloc(PIECE_LABEL.length + FILE_ID_BYTES + 16);
PIECE_LABEL.copy(addressMessage);

export function addressOf(addressKey: Buffer, id: PieceId): Address {
  if (id.fileId.length !== FILE_ID_BYTES) return prf(addressKey, 'piece', id.fileId, u64(id.index), u64(id.version));
  // "piece" || file id || index || version, both 64-bit big-endian (they are safe integers, below 2^53).
  const at = PIECE_LABEL.length + id.fileId.copy(addressMessage, PIECE_LABEL.length);
  writeU64(addressMessage, id.index, at);
  writeU64(addressMessage, id.version, at + 8);
  return hmacOf(addressKey, addressMessage);
}

/** n (a safe integer, below 2^53) as 64 bits big-endian at offset: the bytes u64() gives, without a BigInt. */
function writeU64(buf: Buffer, n: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), offset);
  buf.writeUInt32BE(n >>> 0, offset + 4);
}

/**
 * Where an address lives in a directory store: the first dimension picks one of 256 shard
 * directories, and the name is the whole point in hex. Shards keep directories small.
 */
export function blobPath(address: Address): string {
  const hex = address.toString('hex');
  return `${hex.slice(0, 2)}/${hex}`;
}

export function addressFromHex(hex: string): Address | null {
  return /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : null;
}

/** A chaff blob: random bytes at a name derived from its own first bytes. Looks like any sealed piece. */
export function makeChaff(addressKey: Buffer, size: number): { address: Address; blob: Buffer } {
  const blob = randomBytes(size);
  return { address: chaffAddress(addressKey, blob), blob };
}

/** makeChaff() into a buffer the caller reuses (the piece worker): fills it with random bytes, gives its address. */
export function refillChaff(addressKey: Buffer, blob: Buffer): Address {
  randomFillSync(blob);
  return chaffAddress(addressKey, blob);
}

function chaffAddress(addressKey: Buffer, blob: Buffer): Address {
  return prf(addressKey, 'chaff', blob.subarray(0, CHAFF_TAG_BYTES));
}

export function isChaff(addressKey: Buffer, address: Address, blob: Buffer): boolean {
  if (blob.length < CHAFF_TAG_BYTES) return false;
  return prf(addressKey, 'chaff', blob.subarray(0, CHAFF_TAG_BYTES)).equals(address);
}
