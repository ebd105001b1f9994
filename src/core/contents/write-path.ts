// The write path: writes land in per-file plaintext buffers (dirty pieces), and full pieces are sealed
// behind the writer, on the piece worker when it runs, else on this thread after the reply. What is
// stored becomes part of the file only at the next commit (contents.ts); until then it is an orphan.

import type { PieceId } from '../pieces/piece-codec.js';
import type { SealedPieces } from '../pieces/sealed-pieces.js';
import type { OpStats } from '../util/op-stats.js';
import type { DirtyPiece, OpenFile, SealingPiece } from './open-file.js';
import type { PieceOffload } from './piece-offload.js';
import type { ReadPath } from './read-path.js';

/** Plaintext held for writes not yet sealed, per file; past it the oldest dirty pieces are sealed early. */
export const DIRTY_BYTES_PER_FILE = 8 * 1024 * 1024;
/** Full-piece buffers kept for reuse once their piece is sealed: no allocation and zeroing per piece. */
const SPARE_PIECE_BUFFERS = 8;

const EMPTY = Buffer.alloc(0);

export interface WritePathSettings {
  pieces: SealedPieces;
  reader: ReadPath;
  stats: OpStats;
  /** A worker thread that seals full pieces behind the writer; without it that work runs here. */
  offload?: PieceOffload;
  /** Deletes a stored piece version that nothing will commit (and forgets its plaintext). */
  discard: (id: PieceId) => Promise<void>;
  /** A piece version never used before in this vault (Metadata.newPieceVersion). */
  newVersion: () => number;
}

export class WritePath {
  private readonly spareBuffers: Buffer[] = [];
  /** Pieces the worker stored since it last made its blobs durable: stored again here if it dies. */
  private workerStored: PieceId[] = [];
  private readonly pieceSize: number;

  constructor(private readonly s: WritePathSettings) {
    this.pieceSize = s.pieces.pieceSize;
  }

  /** Collects the seals the worker has finished (cheap when none has): called as writes pass by. */
  collectFinishedSeals(): void {
    this.s.offload?.poll();
  }

  /** Writes `source` at `position`. Call under the file's lock. */
  async write(of: OpenFile, source: Buffer, position: number): Promise<number> {
    const end = position + source.length;
    const P = this.pieceSize;
    for (let i = Math.floor(position / P); i * P < end; i++) {
      const pStart = i * P;
      const a = Math.max(position, pStart) - pStart;
      const b = Math.min(end, pStart + P) - pStart;
      const piece = await this.dirtyPiece(of, i, a === 0 && b >= of.logicalLength(i, P));
      this.ensureRoom(piece, b);
      if (a > piece.len) piece.buf.fill(0, piece.len, a);
      source.copy(piece.buf, a, pStart + a - position, pStart + b - position);
      if (b > piece.len) {
        of.dirtyBytes += b - piece.len;
        piece.len = b;
      }
      // Written up to its end: a sequential writer is done with this piece. (Writes that end inside a
      // piece may come back to it, and sealing it after each would rewrite the whole piece each time.)
      if (b === P) of.sealQueue.add(i);
    }
    if (end > of.size) of.size = end;
    of.mtime = Date.now();
    of.changed = true;
    if (of.dirtyBytes > DIRTY_BYTES_PER_FILE) await this.sealOldest(of, of.dirtyBytes - DIRTY_BYTES_PER_FILE / 2);
    if (of.sealQueue.size > 0) this.sealBehind(of);
    return source.length;
  }

  /** Cuts or extends the file to `size`. Call under the file's lock. */
  async truncate(of: OpenFile, size: number): Promise<void> {
    await this.sealsDone(of);
    const P = this.pieceSize;
    if (size < of.size) {
      const keep = Math.ceil(size / P);
      for (const i of new Set([...of.pieces.keys(), ...of.dirty.keys(), ...of.lost])) if (i >= keep) await this.removePiece(of, i);
      // The new last piece must not keep bytes past the new end: they would reappear on a later extend.
      const tail = Math.floor(size / P);
      const tailLen = size - tail * P;
      if (tailLen > 0 && (of.pieces.has(tail) || of.dirty.has(tail))) this.shorten(of, await this.dirtyPiece(of, tail, false), tailLen);
    }
    of.size = size;
    of.mtime = Date.now();
    of.changed = true;
  }

  /**
   * Zeros the bytes [from, to) inside the file (fallocate's PUNCH_HOLE and ZERO_RANGE). A piece the range
   * covers to its end, or to the end of the file, becomes a hole: it leaves the piece map, and a committed
   * version's blob goes once the commit that drops it is durable, as the commit deletes what it supersedes.
   * A piece the range covers in part is rewritten with zeros there, as a write would. Under the file's lock.
   */
  async zero(of: OpenFile, from: number, to: number): Promise<void> {
    to = Math.min(to, of.size);
    if (to <= from) return;
    await this.sealsDone(of);
    const P = this.pieceSize;
    const first = Math.floor(from / P);
    const end = Math.ceil(to / P);
    // Only the pieces that hold data: a punch of a terabyte of holes walks no terabyte.
    const touched = [...new Set(of.data.indices())].filter((i) => i >= first && i < end).sort((x, y) => x - y);
    for (const i of touched) {
      const pStart = i * P;
      const pEnd = Math.min(pStart + P, of.size);
      const a = Math.max(from, pStart) - pStart;
      const b = Math.min(to, pEnd) - pStart;
      if (a > 0 || b < pEnd - pStart) {
        const piece = await this.dirtyPiece(of, i, false);
        if (b < piece.len) piece.buf.fill(0, a, b);
        else this.shorten(of, piece, a); // zeros to the end of what it holds: it just ends earlier
        if (piece.len > 0) continue;
      }
      await this.removePiece(of, i);
    }
    of.mtime = Date.now();
    of.changed = true;
  }

  /** Stores every piece of the file that is not stored yet (durable only at the vault's next commit). Under the file's lock. */
  async storeAll(of: OpenFile): Promise<void> {
    await this.sealsDone(of);
    for (const i of [...of.dirty.keys()].sort((x, y) => x - y)) await this.sealPiece(of, i);
    of.sealQueue.clear();
  }

  /**
   * Makes every blob stored so far durable, by this thread and by the piece worker: what a metadata commit
   * needs before it may point to them. If the worker has died, the blobs it stored since it last made
   * them durable are stored again through this thread's store, whose flush then covers them.
   */
  async makeStoredDurable(): Promise<void> {
    const offload = this.s.offload;
    if (offload) {
      const covered = this.workerStored.length;
      try {
        await offload.flush();
      } catch (err) {
        if (offload.alive) throw err; // the worker's fdatasync failed: the commit must not happen
        for (const id of this.workerStored.slice(0, covered)) await this.s.pieces.restore(id);
      }
      this.workerStored.splice(0, covered);
    }
    await this.s.pieces.flush();
  }

  /** Waits until the piece worker holds none of this file's pieces. */
  async sealsDone(of: OpenFile): Promise<void> {
    for (let s = first(of.sealing); s; s = first(of.sealing)) await this.sealed(s);
  }

  /**
   * Seals the queued full pieces after the write's reply has gone, so the sealing overlaps the kernel and
   * the client preparing the next write instead of adding to it: all at once on the worker, else one per
   * turn of the event loop here. A failure stops it: the piece stays dirty, and the next commit seals it
   * again and reports the error.
   */
  private sealBehind(of: OpenFile): void {
    const offload = this.s.offload;
    if (offload?.available()) {
      for (const i of of.sealQueue) this.startSeal(of, i, offload);
      of.sealQueue.clear();
      return;
    }
    if (of.sealScheduled) return;
    of.sealScheduled = true;
    setImmediate(() => {
      of.sealScheduled = false;
      of.lock
        .run(async () => {
          const next = of.sealQueue.values().next();
          if (next.done) return;
          of.sealQueue.delete(next.value);
          const piece = of.dirty.get(next.value);
          if (of.refs > 0 && !of.unlinked && piece?.len === this.pieceSize) {
            const t = process.hrtime.bigint();
            await this.sealPiece(of, next.value);
            this.s.stats.record('bg.seal-behind', t, piece.len); // outside any FUSE handler (profiling/overhead.ts)
          }
        })
        .then(
          () => {
            if (of.sealQueue.size > 0) this.sealBehind(of);
          },
          () => of.sealQueue.clear(),
        );
    });
  }

  /**
   * Hands a full dirty piece to the piece worker, which seals and stores it. Its plaintext stays here
   * (reads are served from it) until the blob is stored; then it is part of `pieces`, as if sealed here.
   * On failure it is dirty again: the next commit seals it on this thread and reports the error. Called
   * under the file's lock; whatever touches the piece again waits for `done` (sealsDone, dirtyPiece).
   */
  private startSeal(of: OpenFile, i: number, offload: PieceOffload): void {
    const piece = of.dirty.get(i);
    if (!piece || piece.len !== this.pieceSize || of.refs === 0 || of.unlinked) return;
    const id: PieceId = { fileId: of.fileId, index: i, version: this.nextVersionOf(of) };
    of.dirty.delete(i);
    of.dirtyBytes -= piece.len;
    const job = offload.sealAndPut(of.key, id, piece.buf.subarray(0, piece.len));
    const done = job.result.then(
      () => {
        of.sealing.delete(i);
        const older = of.uncommitted.get(i);
        if (older !== undefined) void this.s.discard({ fileId: of.fileId, index: i, version: older }).catch(() => undefined);
        of.pieces.set(i, id.version);
        of.uncommitted.set(i, id.version);
        of.lost.delete(i);
        this.workerStored.push(id);
        this.recycle(piece.buf);
      },
      () => {
        of.sealing.delete(i);
        of.dirty.set(i, piece);
        of.dirtyBytes += piece.len;
        // The worker may have stored the blob before it failed: an orphan, never committed.
        void this.s.discard(id).catch(() => undefined);
      },
    );
    of.sealing.set(i, { piece, job, done });
  }

  /** Waits for one piece the worker is sealing (blocking this thread: whoever asks needs it now). */
  private async sealed(s: SealingPiece): Promise<void> {
    await this.s.offload?.wait(s.job).catch(() => undefined); // a failure is handled in startSeal
    await s.done;
  }

  private async dirtyPiece(of: OpenFile, i: number, overwriteAll: boolean): Promise<DirtyPiece> {
    for (let s = of.sealing.get(i); s; s = of.sealing.get(i)) await this.sealed(s);
    let piece = of.dirty.get(i);
    if (piece) {
      of.dirty.delete(i); // re-insert: the map's order is the order in which pieces were last written
      of.dirty.set(i, piece);
      return piece;
    }
    const existing = overwriteAll ? EMPTY : await this.s.reader.pieceData(of, i);
    const len = Math.min(existing.length, of.logicalLength(i, this.pieceSize));
    piece = { buf: Buffer.alloc(Math.max(len, Math.min(this.pieceSize, 4096))), len };
    existing.copy(piece.buf, 0, 0, len);
    of.dirty.set(i, piece);
    of.dirtyBytes += len;
    if (overwriteAll) of.lost.delete(i);
    return piece;
  }

  private async sealOldest(of: OpenFile, bytes: number): Promise<void> {
    let freed = 0;
    for (const i of [...of.dirty.keys()]) {
      if (freed >= bytes) break;
      freed += of.dirty.get(i)?.len ?? 0;
      await this.sealPiece(of, i);
    }
  }

  /** Seals a dirty piece as a new version and stores it, on this thread; the metadata commit comes later. */
  private async sealPiece(of: OpenFile, i: number): Promise<void> {
    const piece = of.dirty.get(i);
    if (!piece) return;
    const version = this.nextVersionOf(of);
    await this.s.pieces.put(of.key, { fileId: of.fileId, index: i, version }, piece.buf.subarray(0, piece.len));
    await this.dropUncommitted(of, i);
    of.pieces.set(i, version);
    of.uncommitted.set(i, version);
    of.dirty.delete(i);
    of.dirtyBytes -= piece.len;
    of.lost.delete(i);
  }

  /** A new version for one of the file's pieces; the inode's nextVersion stays past all of them (older svaults count from it). */
  private nextVersionOf(of: OpenFile): number {
    const version = this.s.newVersion();
    of.nextVersion = Math.max(of.nextVersion, version + 1);
    return version;
  }

  /**
   * Grows a piece's buffer to hold `bytes`. A full-size buffer comes from the spares when there is one:
   * only bytes below `len` are ever read, so its old contents need no zeroing.
   */
  private ensureRoom(piece: DirtyPiece, bytes: number): void {
    if (piece.buf.length >= bytes) return;
    let size = piece.buf.length;
    while (size < bytes) size *= 2;
    const grown = (size >= this.pieceSize ? this.spareBuffers.pop() : undefined) ?? Buffer.alloc(size);
    piece.buf.copy(grown, 0, 0, piece.len);
    piece.buf = grown;
  }

  private recycle(buf: Buffer): void {
    if (buf.length === this.pieceSize && this.spareBuffers.length < SPARE_PIECE_BUFFERS) this.spareBuffers.push(buf);
  }

  /**
   * Makes piece i a hole: its stored version goes (an uncommitted one now, a committed one once the commit
   * that drops it is durable), and so do its plaintext, its queued seal and its quarantine.
   */
  private async removePiece(of: OpenFile, i: number): Promise<void> {
    await this.dropPiece(of, i);
    const dirty = of.dirty.get(i);
    if (dirty) {
      of.dirty.delete(i);
      of.dirtyBytes -= dirty.len;
      this.recycle(dirty.buf);
    }
    of.sealQueue.delete(i);
    of.lost.delete(i);
  }

  /** Cuts a dirty piece's plaintext to `len` bytes; what lay past it reads as zeros. */
  private shorten(of: OpenFile, piece: DirtyPiece, len: number): void {
    if (piece.len <= len) return;
    of.dirtyBytes -= piece.len - len;
    piece.len = len;
  }

  /** Removes piece i from the working map; an uncommitted version of it is deleted now, a committed one at commit. */
  private async dropPiece(of: OpenFile, i: number): Promise<void> {
    await this.dropUncommitted(of, i);
    of.pieces.delete(i);
  }

  private async dropUncommitted(of: OpenFile, i: number): Promise<void> {
    const version = of.uncommitted.get(i);
    if (version !== undefined) {
      of.uncommitted.delete(i);
      await this.s.discard({ fileId: of.fileId, index: i, version });
    }
  }
}

function first<K, V>(map: Map<K, V>): V | undefined {
  return map.values().next().value;
}
