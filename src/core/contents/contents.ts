// File contents: scatter on write and gather on read, piece by piece, through bounded caches.
// Writes are copy-on-write: new piece versions are sealed and made durable before the metadata commit
// that points to them, and the versions they replace are deleted only after that commit.

import { addressOf, makeChaff, type Address } from '../pieces/address.js';
import { crashpoint } from '../util/crashpoints.js';
import type { VaultKeys } from '../crypto/crypto.js';
import { IntegrityError } from '../errors.js';
import { ByteLru } from '../util/lru.js';
import type { Inode } from '../meta/inode.js';
import type { Metadata } from '../meta/metadata.js';
import { Mutex } from '../util/mutex.js';
import type { OpStats } from '../util/op-stats.js';
import type { Job, PieceOffload } from './piece-offload.js';
import { blobSizeClasses, fileKey, openPiece, openPieceInto, sealPiece, type PieceId } from '../pieces/piece-codec.js';
import type { PieceStore } from '../store/piece-store.js';

/** Plaintext held for writes not yet sealed, per file; past it the oldest dirty pieces are sealed early. */
const DIRTY_BYTES_PER_FILE = 8 * 1024 * 1024;
/**
 * Decrypted pieces kept for reads: 64 pieces of 128 KiB, far more than the read-ahead window needs. The
 * kernel's page cache serves re-reads while a file stays open (each open drops it: no kernel_cache);
 * this cache serves partial reads, read-modify-writes and re-opens. Half of the 16 MiB it was, which
 * lowered the mount's peak RSS in read phases by 10-20 MiB (log entry 9).
 */
const CLEAN_CACHE_BYTES = 8 * 1024 * 1024;
/**
 * Reads that carry on where the last one ended fetch and decrypt this far ahead in the background, so
 * store I/O and decryption overlap the FUSE round trip and the client's own work.
 */
const READ_AHEAD_BYTES = 512 * 1024;
/** Per-file content keys kept (an HKDF each to make again): about 20,000 files' worth. */
const FILE_KEY_CACHE_BYTES = 4 * 1024 * 1024;
/** Full-piece buffers kept for reuse once their piece is sealed: no allocation and zeroing per piece. */
const SPARE_PIECE_BUFFERS = 8;
const FAILED_AUTHENTICATION = Symbol('failed authentication');

/** A piece version's key in the clean cache: what its address is made of, so a hit costs no HMAC. */
function cleanKey(fileId: Buffer, index: number, version: number): string {
  return `${fileId.toString('hex')}/${index}/${version}`;
}

export interface ContentSettings {
  vaultId: Buffer;
  keys: VaultKeys;
  store: PieceStore;
  meta: Metadata;
  pieceSize: number;
  chaffRatio: number;
  stats: OpStats;
  /** A worker thread that seals full pieces behind the writer; without it that work runs here. */
  offload?: PieceOffload;
}

/** A piece being written: its plaintext so far. `len` bytes are data; the rest of `buf` is spare room. */
interface DirtyPiece {
  buf: Buffer;
  len: number;
}

/** A full piece handed to the piece worker: readable from `piece` until `done`, when it is in `pieces`. */
interface SealingPiece {
  piece: DirtyPiece;
  job: Job<void>;
  done: Promise<void>;
}

/** The content state of one file while it has open handles (or a truncate is in progress). */
export class OpenFile {
  refs = 0;
  readonly lock = new Mutex();
  readonly dirty = new Map<number, DirtyPiece>();
  dirtyBytes = 0;
  /** Piece versions sealed since the last commit: deleted at once if overwritten again before it. */
  readonly uncommitted = new Map<number, number>();
  /** Set when size, pieces or mtime differ from the committed inode. */
  changed = false;
  /** Unlinked while open: its blobs go when the last handle closes. */
  unlinked = false;
  /** The inode as it was when its last name went (nlink 0): what fstat on an unlinked open file shows. */
  unlinkedInode: Inode | undefined;
  /** Created by this handle and not yet made durable (close makes it so even with no data). */
  nameNotDurable = false;
  /** Where the last read ended: a read starting there is sequential and reads ahead. */
  readEnd = 0;
  /** The first piece read-ahead has not fetched yet for the current sequential run. */
  aheadNext = 0;
  /** Full pieces the writer has moved past: sealed in the background after the reply (sealBehind). */
  readonly sealQueue = new Set<number>();
  sealScheduled = false;
  /** Pieces the piece worker is sealing (their plaintext is still here). */
  readonly sealing = new Map<number, SealingPiece>();

  size: number;
  pieces: Map<number, number>;
  nextVersion: number;
  mtime: number;
  committed: Map<number, number>;
  readonly lost: Set<number>;

  constructor(readonly id: string, readonly fileId: Buffer, readonly key: Buffer, inode: Inode) {
    this.size = inode.size;
    this.pieces = new Map(inode.pieces);
    this.committed = new Map(inode.pieces);
    this.nextVersion = inode.nextVersion;
    this.mtime = inode.mtime;
    this.lost = new Set(inode.lost);
  }
}

export class Contents {
  private readonly open = new Map<string, OpenFile>();
  private readonly clean = new ByteLru<string>(CLEAN_CACHE_BYTES);
  /** The header and padding of whole pieces read straight into a reader's buffer go here (readWholePiece). */
  private scratch = Buffer.alloc(0);
  private readonly fileKeys = new ByteLru<string>(FILE_KEY_CACHE_BYTES, (id, key) => 2 * id.length + key.length + 96);
  /** Pieces being fetched and decrypted, by cache key: a read of one waits for it instead of fetching it again. */
  private readonly fetching = new Map<string, Promise<Buffer>>();
  private readonly deleting = new Set<Promise<void>>();
  private readonly spareBuffers: Buffer[] = [];
  private readonly classes: number[];
  readonly pieceSize: number;

  constructor(private readonly s: ContentSettings) {
    this.pieceSize = s.pieceSize;
    this.classes = blobSizeClasses(s.pieceSize);
  }

  /** The open state of a file, creating it from the inode if the file is not open yet. */
  acquire(inode: Inode): OpenFile {
    let of = this.open.get(inode.id);
    if (!of) {
      of = new OpenFile(inode.id, inode.fileId, this.fileKeyOf(inode.fileId), inode);
      this.open.set(inode.id, of);
    }
    of.refs++;
    return of;
  }

  /** Drops one reference; the last one commits and forgets the state. */
  async release(of: OpenFile): Promise<void> {
    try {
      await this.commit(of);
    } catch (err) {
      // The commit failed (a full disk, say): what it sealed will never be committed, so give it back.
      if (of.refs === 1) {
        for (const [i, v] of of.uncommitted) await this.deleteBlob(of.fileId, i, v).catch(() => undefined);
      }
      throw err;
    } finally {
      if (--of.refs === 0) {
        this.open.delete(of.id);
        if (of.unlinked) this.deletePiecesAfterCommit(of.fileId, [...of.committed, ...of.pieces]);
      }
    }
  }

  openCount(): number {
    return this.open.size;
  }

  openState(id: string): OpenFile | undefined {
    return this.open.get(id);
  }

  async read(of: OpenFile, target: Buffer, length: number, position: number): Promise<number> {
    return of.lock.run(async () => {
      const end = Math.min(position + length, of.size);
      if (position >= end) return 0;
      const P = this.pieceSize;
      let cached = false;
      for (let i = Math.floor(position / P); i * P < end; i++) {
        const pStart = i * P;
        const from = Math.max(position, pStart);
        const to = Math.min(end, pStart + P);
        const dst = target.subarray(from - position, to - position);
        if (from === pStart && to === Math.min(of.size, pStart + P) && (await this.readWholePiece(of, i, dst))) continue;
        cached = true;
        // Plaintext held here is copied with no await in between: a buffer given back to the spares
        // (recycle) could otherwise be reused by a write before the copy.
        const data = this.heldData(of, i) ?? (await this.pieceData(of, i));
        const avail = Math.max(0, Math.min(data.length, to - pStart) - (from - pStart));
        if (avail > 0) data.copy(dst, 0, from - pStart, from - pStart + avail);
        if (avail < dst.length) dst.fill(0, avail);
      }
      // Reads of parts of pieces go through the clean cache, and a sequential run of them reads ahead,
      // after the reply has gone (setImmediate runs once this read's promise chain is done: the store is
      // synchronous, so reading ahead now would only delay this reply). Reads of whole pieces do not:
      // each is decrypted when asked, which costs less than caching it ahead (see readWholePiece).
      if (position !== of.readEnd) of.aheadNext = 0; // a new run: what was fetched ahead of the old one says nothing about it
      else if (cached) setImmediate(() => this.readAhead(of, end));
      of.readEnd = end;
      return end - position;
    });
  }

  async write(of: OpenFile, source: Buffer, position: number): Promise<number> {
    if (source.length === 0) return 0; // POSIX: writing nothing changes nothing, not even the size
    this.s.offload?.poll(); // collect the worker's finished seals while passing by
    return of.lock.run(async () => {
      const end = position + source.length;
      const P = this.pieceSize;
      for (let i = Math.floor(position / P); i * P < end; i++) {
        const pStart = i * P;
        const a = Math.max(position, pStart) - pStart;
        const b = Math.min(end, pStart + P) - pStart;
        const piece = await this.dirtyPiece(of, i, a === 0 && b >= this.logicalLength(of, i));
        this.ensureRoom(piece, b);
        if (a > piece.len) piece.buf.fill(0, piece.len, a);
        source.copy(piece.buf, a, pStart + a - position, pStart + b - position);
        if (b > piece.len) {
          of.dirtyBytes += b - piece.len;
          piece.len = b;
        }
        // Written up to its end: a sequential writer is done with this piece. (Writes that end inside
        // a piece may come back to it, and sealing it after each would rewrite the whole piece each time.)
        if (b === P) of.sealQueue.add(i);
      }
      if (end > of.size) of.size = end;
      of.mtime = Date.now();
      of.changed = true;
      if (of.dirtyBytes > DIRTY_BYTES_PER_FILE) await this.sealOldest(of, of.dirtyBytes - DIRTY_BYTES_PER_FILE / 2);
      if (of.sealQueue.size > 0) this.sealBehind(of);
      return source.length;
    });
  }

  /**
   * Seals the queued full pieces one per turn of the event loop, after the write's reply has gone: the
   * sealing then overlaps the kernel and the client preparing the next write, instead of adding to it.
   * Only blobs are written; what they hold becomes part of the file at the next commit, as ever. A
   * failure stops it: the piece stays dirty, and the next commit seals it again and reports the error.
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
   * Hands a full dirty piece to the piece worker, which seals it and writes its blob. Its plaintext stays
   * here (reads are served from it) until the blob is written; then it is part of `pieces`, as if sealed
   * here. On failure it is dirty again: the next commit seals it on this thread and reports the error.
   * Called under the file's lock; whatever touches the piece again waits for `done` (sealsDone,
   * dirtyPiece), so nothing else changes it meanwhile.
   */
  private startSeal(of: OpenFile, i: number, offload: PieceOffload): void {
    const piece = of.dirty.get(i);
    if (!piece || piece.len !== this.pieceSize || of.refs === 0 || of.unlinked) return;
    const id: PieceId = { fileId: of.fileId, index: i, version: of.nextVersion++ };
    of.dirty.delete(i);
    of.dirtyBytes -= piece.len;
    const job = offload.sealAndPut(of.key, id, piece.buf.subarray(0, piece.len), this.chaffCount());
    const done = job.result.then(
      () => {
        of.sealing.delete(i);
        const older = of.uncommitted.get(i);
        if (older !== undefined) void this.deleteBlob(of.fileId, i, older).catch(() => undefined);
        of.pieces.set(i, id.version);
        of.uncommitted.set(i, id.version);
        of.lost.delete(i);
        this.recycle(piece.buf);
      },
      () => {
        of.sealing.delete(i);
        of.dirty.set(i, piece);
        of.dirtyBytes += piece.len;
        // The worker may have written the blob before it failed: an orphan, never committed.
        void this.deleteBlob(of.fileId, i, id.version).catch(() => undefined);
      },
    );
    of.sealing.set(i, { piece, job, done });
  }

  /**
   * Makes the blobs the piece worker wrote durable, before a commit points to them. If the worker has
   * died in the meantime, this file's blobs sealed since its last commit are synced by the store here.
   */
  private async flushWorker(of: OpenFile): Promise<void> {
    const offload = this.s.offload;
    if (!offload) return;
    try {
      await offload.flush();
    } catch (err) {
      if (offload.alive) throw err; // the worker's fdatasync failed: the commit must not happen
      for (const [i, v] of of.uncommitted) this.s.store.adopt(this.addressOf(of.fileId, i, v));
    }
  }

  /** Waits until the piece worker holds none of this file's pieces. */
  private async sealsDone(of: OpenFile): Promise<void> {
    for (let s = first(of.sealing); s; s = first(of.sealing)) await this.sealed(s);
  }

  /** Waits for one piece the worker is sealing (blocking this thread: whoever asks needs it now). */
  private async sealed(s: SealingPiece): Promise<void> {
    await this.s.offload?.wait(s.job).catch(() => undefined); // a failure is handled in startSeal
    await s.done;
  }

  async truncate(of: OpenFile, size: number): Promise<void> {
    return of.lock.run(async () => {
      await this.sealsDone(of);
      const P = this.pieceSize;
      if (size < of.size) {
        const keep = Math.ceil(size / P);
        for (const i of [...of.pieces.keys()]) if (i >= keep) await this.dropPiece(of, i);
        for (const [i, piece] of [...of.dirty]) {
          if (i >= keep) {
            of.dirty.delete(i);
            of.dirtyBytes -= piece.len;
          }
        }
        for (const i of [...of.lost]) if (i >= keep) of.lost.delete(i);
        // The new last piece must not keep bytes past the new end: they would reappear on a later extend.
        const tail = Math.floor(size / P);
        const tailLen = size - tail * P;
        if (tailLen > 0 && (of.pieces.has(tail) || of.dirty.has(tail))) {
          const piece = await this.dirtyPiece(of, tail, false);
          if (piece.len > tailLen) {
            of.dirtyBytes -= piece.len - tailLen;
            piece.len = tailLen;
          }
        }
      }
      of.size = size;
      of.mtime = Date.now();
      of.changed = true;
    });
  }

  /**
   * Makes the file's current content durable: seals dirty pieces, flushes the store, commits size and
   * piece map in one metadata transaction, then deletes the versions that commit superseded.
   */
  async commit(of: OpenFile, extra?: (inode: Inode) => void): Promise<void> {
    return of.lock.run(async () => {
      await this.sealsDone(of);
      if (!of.changed || of.unlinked) return;
      for (const i of [...of.dirty.keys()].sort((x, y) => x - y)) await this.sealPiece(of, i);
      of.sealQueue.clear();
      await this.flushWorker(of);
      await this.s.store.flush();
      this.s.meta.transaction(() => {
        const inode = this.s.meta.requireInode(of.id);
        inode.size = of.size;
        inode.pieces = new Map(of.pieces);
        inode.nextVersion = of.nextVersion;
        inode.mtime = of.mtime;
        inode.ctime = Math.max(inode.ctime, of.mtime);
        inode.lost = [...of.lost];
        extra?.(inode);
        this.s.meta.putInode(inode);
        crashpoint('meta.commit');
      }, true);
      crashpoint('meta.committed');
      const superseded = [...of.committed].filter(([i, v]) => of.pieces.get(i) !== v);
      of.committed = new Map(of.pieces);
      of.uncommitted.clear();
      of.changed = false;
      for (const [i, v] of superseded) await this.deleteBlob(of.fileId, i, v);
    });
  }

  /**
   * Deletes a removed file's blobs once its removal is in SQLite: a crash before that must still find
   * the file whole. settle() waits for these deletions.
   */
  deletePiecesAfterCommit(fileId: Buffer, pieces: Iterable<[number, number]>): void {
    const list = [...pieces];
    this.s.meta.afterCommit(() => {
      const p = this.deleteAllPieces(fileId, list).catch(() => undefined);
      this.deleting.add(p);
      void p.finally(() => this.deleting.delete(p));
    });
  }

  /** Resolves once every deletion started by deletePiecesAfterCommit has finished. */
  async settle(): Promise<void> {
    while (this.deleting.size > 0) await Promise.all([...this.deleting]);
  }

  /** Deletes every blob of a file whose inode is gone (after the commit that removed it). */
  async deleteAllPieces(fileId: Buffer, pieces: Iterable<[number, number]>): Promise<void> {
    for (const [i, v] of pieces) await this.deleteBlob(fileId, i, v);
  }

  /** Deletes one piece version's blob; its plaintext leaves the clean cache too (nothing reads it again). */
  private async deleteBlob(fileId: Buffer, index: number, version: number): Promise<void> {
    this.clean.delete(cleanKey(fileId, index, version));
    await this.s.store.delete(this.addressOf(fileId, index, version));
  }

  addressOf(fileId: Buffer, index: number, version: number): Address {
    return addressOf(this.s.keys.address, { fileId, index, version });
  }

  /** Reads, verifies and decrypts one committed piece of an inode (used by fsck and reads). */
  async gather(fileId: Buffer, key: Buffer, index: number, version: number, what: string): Promise<Buffer> {
    const cacheKey = cleanKey(fileId, index, version);
    const cached = this.clean.get(cacheKey);
    if (cached) return cached;
    let fetch = this.fetching.get(cacheKey);
    if (!fetch) {
      fetch = this.fetch({ fileId, index, version }, cacheKey, key, what).finally(() => this.fetching.delete(cacheKey));
      this.fetching.set(cacheKey, fetch);
    }
    return fetch;
  }

  private async fetch(id: PieceId, cacheKey: string, key: Buffer, what: string): Promise<Buffer> {
    const { index, version } = id;
    const opened = await this.s.store.read(this.addressOf(id.fileId, index, version), (blob) => {
      const t = process.hrtime.bigint();
      const data = openPiece(key, this.s.vaultId, id, blob, this.pieceSize); // a new buffer: the blob is only lent
      this.s.stats.record('crypto.open', t, blob.length);
      return data ?? FAILED_AUTHENTICATION;
    });
    if (opened === null) throw new IntegrityError(`${what}: piece ${index} (version ${version}) is missing from the store`);
    if (opened === FAILED_AUTHENTICATION) throw new IntegrityError(`${what}: piece ${index} (version ${version}) failed authentication`);
    this.clean.set(cacheKey, opened);
    return opened;
  }

  /**
   * Fetches the committed pieces after `from` that a sequential reader will want next, one per turn of
   * the event loop, so a FUSE request that comes in meanwhile waits for one piece at most.
   */
  private readAhead(of: OpenFile, from: number): void {
    const P = this.pieceSize;
    const until = Math.min(of.size, from + READ_AHEAD_BYTES);
    const wanted = (i: number): number | undefined => (of.dirty.has(i) || of.sealing.has(i) ? undefined : of.pieces.get(i));
    const fetchFrom = (i: number): void => {
      if (i * P >= until) return;
      // Each piece once per run: the reads that follow ask again for most of the same window.
      if (i < of.aheadNext) return fetchFrom(of.aheadNext);
      of.aheadNext = i + 1;
      const version = wanted(i);
      if (version === undefined) return fetchFrom(i + 1);
      const t = process.hrtime.bigint();
      this.gather(of.fileId, of.key, i, version, `file ${of.id}`).then(
        () => {
          this.s.stats.record('bg.read-ahead', t, 0); // outside any FUSE handler (profiling/overhead.ts)
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

  /** The file's content key (an HKDF, remembered: every open of the file needs it). */
  fileKeyOf(fileId: Buffer): Buffer {
    const hex = fileId.toString('hex');
    let key = this.fileKeys.get(hex);
    if (!key) {
      key = fileKey(this.s.keys.content, fileId);
      this.fileKeys.set(hex, key);
    }
    return key;
  }

  /**
   * Reads a whole committed piece straight into `dst`, the caller's buffer, when nothing holds it: not
   * being written or sealed, not in the clean cache, not being fetched. Returns false, having done
   * nothing, in those cases (and for a piece with no blob), and the caller takes the cached path.
   *
   * Why: a read of whole pieces (dd, cp, any reader the kernel's read-ahead serves) used to decrypt each
   * piece ahead into a new 128 KiB buffer for the clean cache and copy it out when asked. Those buffers
   * cost more than the decryption saved by reading ahead: malloc handed out fresh memory for most of
   * them, about 6 page faults per piece, and V8 collected them. Here a full piece is decrypted straight
   * into `dst`, its header and any padding into one scratch buffer, all in the store's synchronous
   * callback, so no other read can use the scratch buffer in between (optimization log, entry 18).
   */
  private async readWholePiece(of: OpenFile, i: number, dst: Buffer): Promise<boolean> {
    if (of.dirty.has(i) || of.sealing.has(i)) return false;
    const version = of.pieces.get(i);
    if (version === undefined) return false;
    const cacheKey = cleanKey(of.fileId, i, version);
    if (this.clean.get(cacheKey) || this.fetching.has(cacheKey)) return false;
    const id: PieceId = { fileId: of.fileId, index: i, version };
    const done = await this.s.store.read(this.addressOf(of.fileId, i, version), (blob) => {
      const t = process.hrtime.bigint();
      if (this.scratch.length < blob.length) this.scratch = Buffer.allocUnsafeSlow(blob.length);
      const opened = openPieceInto(of.key, this.s.vaultId, id, blob, this.pieceSize, dst, this.scratch);
      this.s.stats.record('crypto.open', t, blob.length);
      return opened || FAILED_AUTHENTICATION;
    });
    if (done === null) throw new IntegrityError(`file ${of.id}: piece ${i} (version ${version}) is missing from the store`);
    if (done === FAILED_AUTHENTICATION) throw new IntegrityError(`file ${of.id}: piece ${i} (version ${version}) failed authentication`);
    return true;
  }

  /** The plaintext of a piece being written or sealed, held in memory; undefined for the others. */
  private heldData(of: OpenFile, i: number): Buffer | undefined {
    const d = of.dirty.get(i) ?? of.sealing.get(i)?.piece;
    return d?.buf.subarray(0, d.len);
  }

  /** A piece's bytes as they stand (may be shorter than the piece: the rest reads as zeroes). */
  private async pieceData(of: OpenFile, i: number): Promise<Buffer> {
    const held = this.heldData(of, i);
    if (held) return held;
    const version = of.pieces.get(i);
    if (version === undefined) {
      if (of.lost.has(i)) throw new IntegrityError(`file ${of.id}: piece ${i} was quarantined by fsck as damaged`);
      return EMPTY;
    }
    return this.gather(of.fileId, of.key, i, version, `file ${of.id}`);
  }

  private logicalLength(of: OpenFile, i: number): number {
    return Math.max(0, Math.min(this.pieceSize, of.size - i * this.pieceSize));
  }

  private async dirtyPiece(of: OpenFile, i: number, overwriteAll: boolean): Promise<DirtyPiece> {
    for (let s = of.sealing.get(i); s; s = of.sealing.get(i)) await this.sealed(s);
    let piece = of.dirty.get(i);
    if (piece) {
      of.dirty.delete(i); // re-insert: the map's order is the order in which pieces were last written
      of.dirty.set(i, piece);
      return piece;
    }
    const existing = overwriteAll ? EMPTY : await this.pieceData(of, i);
    const len = Math.min(existing.length, this.logicalLength(of, i));
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

  /** Seals a dirty piece as a new version and puts it in the store; the metadata commit comes later. */
  private async sealPiece(of: OpenFile, i: number): Promise<void> {
    const piece = of.dirty.get(i);
    if (!piece) return;
    const version = of.nextVersion++;
    const id: PieceId = { fileId: of.fileId, index: i, version };
    const t = process.hrtime.bigint();
    const blob = sealPiece(of.key, this.s.vaultId, id, piece.buf.subarray(0, piece.len), this.classes);
    this.s.stats.record('crypto.seal', t, blob.length);
    await this.s.store.put(addressOf(this.s.keys.address, id), blob);
    await this.dropUncommitted(of, i);
    of.pieces.set(i, version);
    of.uncommitted.set(i, version);
    of.dirty.delete(i);
    of.dirtyBytes -= piece.len;
    of.lost.delete(i);
    await this.maybeChaff(blob.length);
  }

  /** How many chaff blobs go with one real piece: chaffRatio on average. */
  private chaffCount(): number {
    const n = Math.floor(this.s.chaffRatio);
    return Math.random() < this.s.chaffRatio - n ? n + 1 : n;
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

  /** Removes piece i from the working map; an uncommitted version of it is deleted now, a committed one at commit. */
  private async dropPiece(of: OpenFile, i: number): Promise<void> {
    await this.dropUncommitted(of, i);
    of.pieces.delete(i);
  }

  private async dropUncommitted(of: OpenFile, i: number): Promise<void> {
    const v = of.uncommitted.get(i);
    if (v !== undefined) {
      of.uncommitted.delete(i);
      await this.deleteBlob(of.fileId, i, v);
    }
  }

  /** Chaff: with probability chaffRatio per real piece, a random blob of the same size joins the store. */
  private async maybeChaff(size: number): Promise<void> {
    const n = this.chaffCount();
    for (let k = 0; k < n; k++) {
      const { address, blob } = makeChaff(this.s.keys.address, size);
      await this.s.store.put(address, blob);
    }
  }
}

const EMPTY = Buffer.alloc(0);

function first<K, V>(map: Map<K, V>): V | undefined {
  return map.values().next().value;
}
