// Sealing and opening pieces: a file's content cut into fixed-size pieces, each sealed with AES-256-GCM
// under a per-file subkey and padded to one of a few blob size classes so blob sizes say little.

import { hkdf, open, openInto, openParts, seal, SEAL_OVERHEAD, sealInto, u64 } from '../crypto/crypto.js';
import { zeroBytes } from '../util/zero-bytes.js';

/** Inside the seal each piece starts with its data length, so padding is authenticated too. */
const LENGTH_HEADER = 4;
/** Total bytes a full piece's blob has beyond its data. */
export const PIECE_OVERHEAD = SEAL_OVERHEAD + LENGTH_HEADER;
const SMALLEST_CLASS = 4096;

/** Identifies one version of one piece of one file: everything bound into its associated data and address. */
export interface PieceId {
  fileId: Buffer; // 16 random bytes, fixed for the life of the file
  index: number;
  version: number;
}

/** Blob sizes in use: powers of four from 4 KiB below a full piece, then the full piece. */
export function blobSizeClasses(pieceSize: number): number[] {
  const full = pieceSize + PIECE_OVERHEAD;
  const classes: number[] = [];
  for (let c = SMALLEST_CLASS; c < full; c *= 4) classes.push(c);
  classes.push(full);
  return classes;
}

export function blobSizeFor(dataLength: number, classes: number[]): number {
  const need = dataLength + PIECE_OVERHEAD;
  for (const c of classes) if (c >= need) return c;
  throw new RangeError(`piece of ${dataLength} bytes exceeds the piece size`);
}

/** The per-file content key: a leaked file key exposes one file, and nonce reuse bounds are per file. */
export function fileKey(contentKey: Buffer, fileId: Buffer): Buffer {
  return hkdf(contentKey, fileId, 'svault/v1/piece');
}

function pieceAad(vaultId: Buffer, id: PieceId): Buffer {
  return Buffer.concat([Buffer.from('svault-piece-v1'), vaultId, id.fileId, u64(id.index), u64(id.version)]);
}

/** What a piece's seal covers: its data length, the data, and zeroes up to its blob size class. */
function plaintextParts(data: Buffer, classes: number[]): Buffer[] {
  const blobSize = blobSizeFor(data.length, classes);
  const header = Buffer.alloc(LENGTH_HEADER);
  header.writeUInt32BE(data.length);
  const parts = [header, data];
  const pad = blobSize - PIECE_OVERHEAD - data.length;
  if (pad > 0) parts.push(zeroBytes(pad));
  return parts;
}

export function sealPiece(key: Buffer, vaultId: Buffer, id: PieceId, data: Buffer, classes: number[]): Buffer {
  return seal(key, pieceAad(vaultId, id), plaintextParts(data, classes));
}

/**
 * sealPiece() into `out`, which must hold a full piece's blob (the largest size class): the piece worker
 * seals every piece into one buffer and writes it before the next. Returns the blob, a view of `out`.
 */
export function sealPieceInto(key: Buffer, vaultId: Buffer, id: PieceId, data: Buffer, classes: number[], out: Buffer): Buffer {
  return sealInto(key, pieceAad(vaultId, id), plaintextParts(data, classes), out);
}

/** Opens a piece blob. Returns the data, or null when it fails authentication or is malformed. */
export function openPiece(key: Buffer, vaultId: Buffer, id: PieceId, blob: Buffer, pieceSize: number): Buffer | null {
  return pieceData(open(key, pieceAad(vaultId, id), blob), pieceSize);
}

/**
 * Opens a piece blob straight into `dst`, a reader's buffer as long as the piece's place in the file:
 * `dst` gets the data, and zeroes past its end. The length header and the padding go into `scratch`
 * (at least the blob's length less 28 bytes), and so does the whole body when `dst` is longer than the
 * blob holds, before the data is copied. Returns false when the blob fails authentication or is
 * malformed; `dst` then holds nothing of it.
 */
export function openPieceInto(key: Buffer, vaultId: Buffer, id: PieceId, blob: Buffer, pieceSize: number, dst: Buffer, scratch: Buffer): boolean {
  const aad = pieceAad(vaultId, id);
  const bodyLength = blob.length - SEAL_OVERHEAD;
  if (scratch.length < bodyLength) throw new RangeError(`openPieceInto: a ${blob.length}-byte blob needs ${bodyLength} bytes of scratch`);
  if (bodyLength >= LENGTH_HEADER + dst.length) {
    const header = scratch.subarray(0, LENGTH_HEADER);
    if (!openParts(key, aad, blob, [header, dst, scratch.subarray(LENGTH_HEADER, bodyLength - dst.length)])) return false;
    const length = header.readUInt32BE(0);
    if (length > pieceSize || LENGTH_HEADER + length > bodyLength) {
      dst.fill(0);
      return false;
    }
    if (length < dst.length) dst.fill(0, length);
    return true;
  }
  const data = pieceData(openInto(key, aad, blob, scratch), pieceSize);
  if (!data) return false;
  const n = data.copy(dst, 0, 0, Math.min(data.length, dst.length));
  if (n < dst.length) dst.fill(0, n);
  return true;
}

/** The data inside an opened piece's body (length header, data, padding), or null when malformed. */
function pieceData(body: Buffer | null, pieceSize: number): Buffer | null {
  if (!body || body.length < LENGTH_HEADER) return null;
  const length = body.readUInt32BE(0);
  if (length > pieceSize || LENGTH_HEADER + length > body.length) return null;
  return body.subarray(LENGTH_HEADER, LENGTH_HEADER + length);
}
