// The read path: a file's bytes gathered from its pieces. Whole pieces are decrypted straight into the
// reader's buffer; parts of pieces go through a cache of decrypted pieces, and a sequential reader of
// them has the next pieces fetched ahead. Pieces being written are read from their plaintext in memory.

import { IntegrityError } from '../errors.js';
import type { PieceId } from '../pieces/piece-codec.js';
import type { SealedPieces } from '../pieces/sealed-pieces.js';
import { ByteLru } from '../util/lru.js';
import { zeroBytes } from '../util/zero-bytes.js';
import type { OpStats } from '../util/op-stats.js';
import type { OpenFile } from './open-file.js';
import { inHole } from './sparse.js';

/**
 * Decrypted pieces kept for reads of parts of pieces, read-modify-writes and re-opens: far more than the
 * read-ahead window needs. Re-reads of an open file come from the kernel's page cache.
 */
const CLEAN_CACHE_BYTES = 8 * 1024 * 1024;
/**
 * Partial reads that carry on where the last one ended fetch and decrypt this far ahead, so store I/O
 * and decryption overlap the FUSE round trip and the client's own work.
 */
const READ_AHEAD_BYTES = 512 * 1024;
/**
 * Pieces a sequential reader's store is told of ahead (PieceStore.prefetch), for stores with long round
 * trips: 16 requests in flight over 2 MiB of 128 KiB pieces, what issue 24 asks of an object store.
 */
const PREFETCH_PIECES = 16;

const EMPTY = Buffer.alloc(0);

/** A piece version's key in the clean cache: what its address is made of, so a hit costs no HMAC. */
function cleanKey(fileId: Buffer, index: number, version: number): string {
  return `${fileId.toString('hex')}/${index}/${version}`;
}

export class ReadPath {
  private readonly clean = new ByteLru<string>(CLEAN_CACHE_BYTES);
  /** Pieces being fetched and decrypted, by cache key: a read of one waits for it instead of fetching it again. */
  private readonly fetching = new Map<string, Promise<Buffer>>();

  constructor(private readonly pieces: SealedPieces, private readonly stats: OpStats) {}

  /** Reads up to `length` bytes at `position` into `target`; returns how many. Call under the file's lock. */
  async read(of: OpenFile, target: Buffer, length: number, position: number): Promise<number> {
    const zeros = this.holeRead(of, length, position);
    if (zeros !== undefined) {
      target.fill(0, 0, zeros);
      return zeros;
    }
    return this.readData(of, target, length, position);
  }

  /**
   * The bytes at `position`: a view of `target`, read into, or, when they lie wholly in holes, a view of
   * shared zeros that must only be read (a FUSE reply, say). Call under the file's lock.
   */
  async readView(of: OpenFile, target: Buffer, length: number, position: number): Promise<Buffer> {
    const zeros = this.holeRead(of, length, position);
    if (zeros !== undefined) return zeroBytes(zeros);
    return target.subarray(0, await this.readData(of, target, length, position));
  }

  /**
   * How many bytes a read gets when every one of them lies in a hole (0 at or past the end): holes are
   * zeros, with no piece looked up. Undefined when the range holds data.
   */
  private holeRead(of: OpenFile, length: number, position: number): number | undefined {
    const end = Math.min(position + length, of.size);
    if (position >= end) return 0;
    if (!inHole(of.data, this.pieces.pieceSize, position, end)) return undefined;
    if (position !== of.readEnd) of.aheadNext = of.prefetchNext = 0;
    of.readEnd = end;
    return end - position;
  }

  private async readData(of: OpenFile, target: Buffer, length: number, position: number): Promise<number> {
    const end = Math.min(position + length, of.size);
    const P = this.pieces.pieceSize;
    let partial = false;
    for (let i = Math.floor(position / P); i * P < end; i++) {
      const pStart = i * P;
      const from = Math.max(position, pStart);
      const to = Math.min(end, pStart + P);
      const dst = target.subarray(from - position, to - position);
      if (!of.data.has(i)) {
        dst.fill(0);
        continue;
      }
      if (from === pStart && to === Math.min(of.size, pStart + P) && (await this.readWholePiece(of, i, dst))) continue;
      partial = true;
      // Plaintext held in memory is copied with no await in between: a buffer given back to the write
      // path's spares could otherwise be reused by a write before the copy.
      const data = of.heldData(i) ?? (await this.pieceData(of, i));
      const avail = Math.max(0, Math.min(data.length, to - pStart) - (from - pStart));
      if (avail > 0) data.copy(dst, 0, from - pStart, from - pStart + avail);
      if (avail < dst.length) dst.fill(0, avail);
    }
    // A sequential run of partial reads reads ahead once this reply has gone (the store is synchronous,
    // so reading ahead now would only delay it). Whole pieces are decrypted when asked, which costs less
    // than caching them ahead (see SealedPieces.readInto).
    if (position !== of.readEnd) {
      of.aheadNext = 0; // a new run: what was fetched for the old one says nothing
      of.prefetchNext = 0;
    } else {
      if (partial) setImmediate(() => this.readAhead(of, end));
      if (this.pieces.prefetches) this.prefetchAhead(of, end);
    }
    of.readEnd = end;
    return end - position;
  }

  /** Names the stored pieces after `from` that a sequential reader will want next to the store, each once per run. */
  private prefetchAhead(of: OpenFile, from: number): void {
    const P = this.pieces.pieceSize;
    const first = Math.max(Math.ceil(from / P), of.prefetchNext);
    const last = Math.min(Math.ceil(of.size / P), Math.ceil(from / P) + PREFETCH_PIECES);
    const ids: PieceId[] = [];
    for (let i = first; i < last; i++) {
      const version = of.dirty.has(i) || of.sealing.has(i) ? undefined : of.pieces.get(i);
      if (version !== undefined) ids.push({ fileId: of.fileId, index: i, version });
    }
    of.prefetchNext = Math.max(of.prefetchNext, last);
    this.pieces.prefetch(ids);
  }

  /** A piece's bytes as they stand (may be shorter than the piece: the rest reads as zeroes). */
  async pieceData(of: OpenFile, i: number): Promise<Buffer> {
    const held = of.heldData(i);
    if (held) return held;
    const version = of.pieces.get(i);
    if (version === undefined) {
      if (of.lost.has(i)) throw new IntegrityError(`file ${of.id}: piece ${i} was quarantined by fsck as damaged`);
      return EMPTY;
    }
    return this.gather({ fileId: of.fileId, index: i, version }, of.key, `file ${of.id}`);
  }

  /** Reads, checks and decrypts one stored piece, through the clean cache. `what` names the file in errors. */
  async gather(id: PieceId, fileKey: Buffer, what: string): Promise<Buffer> {
    const key = cleanKey(id.fileId, id.index, id.version);
    const cached = this.clean.get(key);
    if (cached) return cached;
    let fetch = this.fetching.get(key);
    if (!fetch) {
      fetch = this.pieces
        .read(fileKey, id, what)
        .then((data) => {
          this.clean.set(key, data);
          return data;
        })
        .finally(() => this.fetching.delete(key));
      this.fetching.set(key, fetch);
    }
    return fetch;
  }

  /** A piece version is gone from the store: nothing reads it again. */
  forget(id: PieceId): void {
    this.clean.delete(cleanKey(id.fileId, id.index, id.version));
  }

  /**
   * Reads a whole stored piece straight into `dst` when nothing holds it: not being written or sealed,
   * not in the clean cache, not being fetched. Returns false, having done nothing, in those cases (and
   * for a hole), and the caller takes the cached path.
   */
  private async readWholePiece(of: OpenFile, i: number, dst: Buffer): Promise<boolean> {
    if (of.dirty.has(i) || of.sealing.has(i)) return false;
    const version = of.pieces.get(i);
    if (version === undefined) return false;
    const key = cleanKey(of.fileId, i, version);
    if (this.clean.get(key) || this.fetching.has(key)) return false;
    await this.pieces.readInto(of.key, { fileId: of.fileId, index: i, version }, dst, `file ${of.id}`);
    return true;
  }

  /**
   * Fetches the stored pieces after `from` that a sequential reader will want next, one per turn of the
   * event loop, so a FUSE request that comes in meanwhile waits for one piece at most.
   */
  private readAhead(of: OpenFile, from: number): void {
    const P = this.pieces.pieceSize;
    const until = Math.min(of.size, from + READ_AHEAD_BYTES);
    const stored = (i: number): number | undefined => (of.dirty.has(i) || of.sealing.has(i) ? undefined : of.pieces.get(i));
    const fetchFrom = (i: number): void => {
      if (i * P >= until) return;
      // Each piece once per run: the reads that follow ask again for most of the same window.
      if (i < of.aheadNext) return fetchFrom(of.aheadNext);
      of.aheadNext = i + 1;
      const version = stored(i);
      if (version === undefined) return fetchFrom(i + 1);
      const t = process.hrtime.bigint();
      this.gather({ fileId: of.fileId, index: i, version }, of.key, `file ${of.id}`).then(
        () => {
          this.stats.record('bg.read-ahead', t, 0); // outside any FUSE handler (profiling/overhead.ts)
          setImmediate(() => fetchFrom(i + 1));
        },
        () => {
          // The real read reports it, when it gets there; a later read may try this piece again.
          of.aheadNext = Math.min(of.aheadNext, i);
        },
      );
    };
    fetchFrom(Math.ceil(from / P));
  }
}
