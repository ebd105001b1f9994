// Format 2's derived chaff (docs/format-2.md 10.2), written out here from the spec and section 1's PRF with
// node:crypto alone, not from svault's code, so that a test compares the store against the spec:
//   PRF(k, label, fields…)  = HMAC-SHA256(k, label ‖ 0x00 ‖ fields…)
//   chaff blobs of a piece  = floor(ρ) + b, b = 1 when u64(PRF(chaff key, "piece", fileId, u64 index, u64 version)[0..8]) / 2^64 < ρ − floor(ρ)
//   chaff address j         = PRF(address key, "chaff2", fileId, u64 index, u64 version, u8 j)

import { createHmac } from 'node:crypto';

function prf(key: Buffer, label: string, ...fields: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  h.update(Buffer.from(label, 'ascii'));
  h.update(Buffer.from([0]));
  for (const f of fields) h.update(f);
  return h.digest();
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export interface ChaffKeys {
  address: Buffer;
  chaff: Buffer;
}

export interface PieceVersion {
  fileId: Buffer;
  index: number;
  version: number;
}

/**
 * How many chaff blobs a piece version has. The fraction is compared as an exact rational: ρ − floor(ρ) is a
 * double, m / 2^k with k ≤ 1074, so draw / 2^64 < m / 2^k exactly when draw × 2^k < m × 2^64.
 */
export function chaffCount2(keys: ChaffKeys, rho: number, p: PieceVersion): number {
  const whole = Math.floor(rho);
  const fraction = rho - whole;
  if (fraction === 0) return whole;
  const draw = prf(keys.chaff, 'piece', p.fileId, u64(p.index), u64(p.version)).readBigUInt64BE(0);
  let k = 0n;
  let m = fraction;
  while (!Number.isInteger(m)) {
    m *= 2;
    k++;
  }
  return draw * 2n ** k < BigInt(m) * 2n ** 64n ? whole + 1 : whole;
}

/** The chaff addresses (hex) of a piece version, j = 0 … count − 1. */
export function chaffAddresses2(keys: ChaffKeys, rho: number, p: PieceVersion): string[] {
  const out: string[] = [];
  for (let j = 0; j < chaffCount2(keys, rho, p); j++) {
    out.push(prf(keys.address, 'chaff2', p.fileId, u64(p.index), u64(p.version), Buffer.from([j])).toString('hex'));
  }
  return out;
}
