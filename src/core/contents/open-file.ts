// The state of one file while it has open handles: its size and piece map as they stand (ahead of the
// committed inode), the plaintext being written, the pieces the piece worker is sealing, and what has to
// happen at its next close. The contents engine changes the content; the vault tells it of names
// (created, unlinked) and times through the methods here.

import type { StoredContent } from './content-metadata.js';
import { Mutex } from '../util/mutex.js';
import type { Job } from './piece-offload.js';
import type { PieceSet } from './sparse.js';

/** Room given to an INLINE file's bytes when it is opened: a write that follows rarely needs to grow it. */
const INLINE_BUFFER_BYTES = 4096;

/** A piece being written: its plaintext so far. `len` bytes are data; the rest of `buf` is spare room. */
export interface DirtyPiece {
  buf: Buffer;
  len: number;
}

/** A full piece handed to the piece worker: readable from `piece` until `done`, when it is in `pieces`. */
export interface SealingPiece {
  piece: DirtyPiece;
  job: Job<void>;
  done: Promise<void>;
}

export class OpenFile {
  refs = 0;
  /** One content operation at a time per file: reads, writes, truncates and commits of it queue here. */
  readonly lock = new Mutex();

  // ---- content, ahead of the committed inode ----
  size: number;
  /** piece index -> version: what the file holds now, committed or not. */
  pieces: Map<number, number>;
  /** piece index -> version as the committed inode has it: what a commit supersedes. */
  committed: Map<number, number>;
  nextVersion: number;
  mtime: number;
  /** Pieces fsck quarantined as damaged: reading them fails until they are written again. */
  readonly lost: Set<number>;
  /** Set when size, pieces or mtime differ from the committed inode. */
  changed = false;

  // ---- pieces on their way to the store ----
  readonly dirty = new Map<number, DirtyPiece>();
  dirtyBytes = 0;
  /** Piece versions stored since the last commit: deleted at once if overwritten again before it. */
  readonly uncommitted = new Map<number, number>();
  /** Full pieces the writer has moved past, to be sealed after the reply (write-path.ts, sealBehind). */
  readonly sealQueue = new Set<number>();
  sealScheduled = false;
  /** Pieces the piece worker is sealing (their plaintext is still here). */
  readonly sealing = new Map<number, SealingPiece>();

  // ---- reading ahead ----
  /** Where the last read ended: a read starting there is sequential and reads ahead. */
  readEnd = 0;
  /** The first piece read-ahead has not fetched yet for the current sequential run. */
  aheadNext = 0;
  /** The first piece not yet named to the store's prefetch for the current sequential run. */
  prefetchNext = 0;

  /** The pieces that hold data as the file stands (sparse.ts): the rest are holes. */
  readonly data: PieceSet = new DataPieces(this);

  // ---- names ----
  /** The file's metadata as it was when its last name went, in the vault's format (format 1's Inode, format 2's InodeRecord). */
  private unlinkedAs: object | undefined;

  constructor(readonly id: string, readonly fileId: Buffer, readonly key: Buffer, content: StoredContent) {
    this.size = content.size;
    this.pieces = new Map(content.pieces);
    this.committed = new Map(content.pieces);
    this.nextVersion = content.nextVersion;
    this.mtime = content.mtime;
    this.lost = new Set(content.lost);
    if (content.inline && content.inline.length > 0) {
      // An INLINE file's bytes are piece 0, held here as if just written: reads are served from them, and
      // a file that grows past INLINE stores them as its first piece.
      const buf = Buffer.alloc(Math.max(content.inline.length, INLINE_BUFFER_BYTES));
      content.inline.copy(buf);
      this.dirty.set(0, { buf, len: content.inline.length });
      this.dirtyBytes = content.inline.length;
    }
  }

  /** Unlinked while open: its blobs go when the last handle closes, and its content is never committed. */
  get unlinked(): boolean {
    return this.unlinkedAs !== undefined;
  }

  /** The inode as it was when its last name went (nlink 0): what fstat on the open file shows. The vault knows its type. */
  unlinkedRecord<T extends object>(): T | undefined {
    return this.unlinkedAs as T | undefined;
  }

  /** Its last name is gone (POSIX: the file lives on until its last close). */
  markUnlinked(record: object): void {
    this.unlinkedAs = record;
  }

  /** Has content that the next commit must write. */
  get needsCommit(): boolean {
    return this.changed && !this.unlinked;
  }

  /** utimens while open: the next commit keeps this mtime instead of the last write's. */
  setMtime(mtime: number): void {
    this.mtime = mtime;
  }

  /** The plaintext of a piece being written or sealed, held in memory; undefined for the others. */
  heldData(i: number): Buffer | undefined {
    const d = this.dirty.get(i) ?? this.sealing.get(i)?.piece;
    return d?.buf.subarray(0, d.len);
  }

  /** How many bytes of piece i lie inside the file (0 past its end). */
  logicalLength(i: number, pieceSize: number): number {
    return Math.max(0, Math.min(pieceSize, this.size - i * pieceSize));
  }
}

/** An open file's data pieces: in its piece map, being written or sealed, or quarantined (reads fail, not zeros). */
class DataPieces implements PieceSet {
  constructor(private readonly of: OpenFile) {}

  has(i: number): boolean {
    const of = this.of;
    return of.pieces.has(i) || of.dirty.has(i) || of.sealing.has(i) || of.lost.has(i);
  }

  *indices(): Iterable<number> {
    const of = this.of;
    yield* of.pieces.keys();
    yield* of.dirty.keys();
    yield* of.sealing.keys();
    yield* of.lost;
  }

  get count(): number {
    const of = this.of;
    return of.pieces.size + of.dirty.size + of.sealing.size + of.lost.size;
  }
}
