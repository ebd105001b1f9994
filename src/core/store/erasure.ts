// Erasure coding for the scatter store: a blob cut into k data shards and m parity shards, any k of which
// give the blob back. Parity is @ronomon/reed-solomon's (C over N-API, encoded on libuv's threads, so the
// event loop serves requests meanwhile), pinned at 6.0.0 because its encoding matrix is part of the store
// format; for m = 1 its first parity shard is the XOR of the data shards, computed here with its
// synchronous XOR, which is faster than a thread hand-off. This module knows nothing of keys or stores.

import { createRequire } from 'node:module';

/** The largest k + m: one shard per address dimension (docs/format-2.md, 10.3). */
export const MAX_SHARDS = 8;

/** Shards are a multiple of 8 bytes: @ronomon/reed-solomon refuses any other size. */
const SHARD_ALIGN = 8;
/** Ends the blob inside the striped payload; only zeroes follow it (ISO/IEC 7816-4 padding). */
const END_MARK = 0x80;

interface ReedSolomonAddon {
  create(k: number, m: number): Buffer;
  encode(
    context: Buffer, sources: number, targets: number,
    buffer: Buffer, bufferOffset: number, bufferSize: number,
    parity: Buffer, parityOffset: number, paritySize: number,
    end: (error: Error | undefined) => void,
  ): void;
  XOR(source: Buffer, sourceOffset: number, target: Buffer, targetOffset: number, size: number): void;
}

const reedSolomon = createRequire(import.meta.url)('@ronomon/reed-solomon') as ReedSolomonAddon;

/**
 * Bytes of each shard of a blob of `blobLength` bytes cut k ways. The blob is followed by its end mark,
 * so any length, 0 included, comes back exact without a length field.
 */
export function shardBytes(blobLength: number, k: number): number {
  const perShard = Math.ceil((blobLength + 1) / k);
  return Math.ceil(perShard / SHARD_ALIGN) * SHARD_ALIGN;
}

/** The blob laid out as k shards of `shardBytes` each, back to back: blob, end mark, zeroes. */
export function stripe(blob: Buffer, k: number): { payload: Buffer; shard: number } {
  const shard = shardBytes(blob.length, k);
  const payload = Buffer.alloc(shard * k);
  blob.copy(payload);
  payload[blob.length] = END_MARK;
  return { payload, shard };
}

/** The blob inside a striped payload, or null when the padding is not an end mark and zeroes. */
export function unstripe(payload: Buffer): Buffer | null {
  let end = payload.length - 1;
  while (end >= 0 && payload[end] === 0) end--;
  if (end < 0 || payload[end] !== END_MARK) return null;
  return payload.subarray(0, end);
}

/** A k + m code over shards of equal size. */
export class ErasureCode {
  /** @ronomon/reed-solomon's encoding context: made once, shared by concurrent calls (its README says so). */
  private readonly context: Buffer | null;

  constructor(readonly k: number, readonly m: number) {
    if (!Number.isInteger(k) || !Number.isInteger(m) || k < 1 || m < 0 || k + m > MAX_SHARDS) {
      throw new RangeError(`redundancy ${k}+${m}: k must be at least 1, m at least 0, and k + m at most ${MAX_SHARDS}`);
    }
    this.context = m >= 2 ? reedSolomon.create(k, m) : null;
  }

  /** The m parity shards of a striped payload (k shards of `shard` bytes), back to back. */
  async parity(payload: Buffer, shard: number): Promise<Buffer> {
    const parity = Buffer.alloc(shard * this.m);
    if (this.m === 1) xorInto(payload, this.k, shard, parity, 0);
    else if (this.m >= 2) await this.runCode(allOf(0, this.k), allOf(this.k, this.k + this.m), payload, parity, shard);
    return parity;
  }

  /**
   * The striped payload from any k shards: `shards[i]` is shard i (data for i < k, parity after), or null
   * when it is missing or was found bad. Throws when fewer than k are given.
   */
  async payload(shards: readonly (Buffer | null)[], shard: number): Promise<Buffer> {
    const n = this.k + this.m;
    if (shards.length !== n) throw new RangeError(`${shards.length} shards given for a ${this.k}+${this.m} code`);
    const present = shards.flatMap((s, i) => (s ? [i] : []));
    if (present.length < this.k) throw new RangeError(`${present.length} shards cannot rebuild a ${this.k}+${this.m} code`);
    const payload = Buffer.alloc(shard * this.k);
    const parity = Buffer.alloc(shard * Math.max(this.m, 1));
    for (const i of present) {
      const s = shards[i] as Buffer;
      if (s.length !== shard) throw new RangeError(`shard ${i} has ${s.length} bytes, not ${shard}`);
      if (i < this.k) s.copy(payload, i * shard);
      else s.copy(parity, (i - this.k) * shard);
    }
    const lost = allOf(0, this.k).filter((i) => shards[i] === null);
    if (lost.length === 0) return payload;
    if (this.m === 1) {
      // The one lost data shard is the XOR of the parity and every other data shard.
      const target = lost[0] as number;
      parity.copy(payload, target * shard, 0, shard);
      for (let i = 0; i < this.k; i++) if (i !== target) reedSolomon.XOR(payload, i * shard, payload, target * shard, shard);
      return payload;
    }
    // Exactly k sources: every one is authenticated, and a fixed count keeps the work the same per read.
    await this.runCode(present.slice(0, this.k), lost, payload, parity, shard);
    return payload;
  }

  private runCode(sources: number[], targets: number[], payload: Buffer, parity: Buffer, shard: number): Promise<void> {
    return new Promise((resolve, reject) => {
      reedSolomon.encode(
        this.context as Buffer, flags(sources), flags(targets),
        payload, 0, shard * this.k, parity, 0, shard * this.m,
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }
}

/** parity[at…] = the XOR of the k shards of payload. */
function xorInto(payload: Buffer, k: number, shard: number, parity: Buffer, at: number): void {
  payload.copy(parity, at, 0, shard);
  for (let i = 1; i < k; i++) reedSolomon.XOR(payload, i * shard, parity, at, shard);
}

function allOf(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function flags(indexes: number[]): number {
  return indexes.reduce((f, i) => f | (1 << i), 0);
}
