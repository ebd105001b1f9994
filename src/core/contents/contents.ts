// src/core/contents: file contents (open files, the read and write paths, the commit, the piece worker).
//
// File contents: scatter on write and gather on read, piece by piece. This module holds the open files and
// the commit; read-path.ts and write-path.ts move the bytes, and the pieces layer seals and stores them.
// Writes are copy-on-write: new piece versions are stored, a commit of the file stages its new piece map,
// and the vault's committer (src/core/vault/committer.ts) makes the blobs durable before the metadata
// that points to them; the versions they replace are deleted only after that metadata is durable.

import type { VaultKeys } from '../crypto/crypto.js';
import type { Inode } from '../meta/inode.js';
import type { Address } from '../pieces/address.js';
import type { ChaffChoice } from '../pieces/chaff.js';
import { fileKey, type PieceId } from '../pieces/piece-codec.js';
import { SealedPieces } from '../pieces/sealed-pieces.js';
import type { PieceStore } from '../store/piece-store.js';
import { ByteLru } from '../util/lru.js';
import type { OpStats } from '../util/op-stats.js';
import type { ContentMetadata, StoredContent } from './content-metadata.js';
import { OpenFile } from './open-file.js';
import type { PieceOffload } from './piece-offload.js';
import { ReadPath } from './read-path.js';
import { holesIn, seekPieces, type SeekWhence } from './sparse.js';
import { WritePath } from './write-path.js';

export { OpenFile } from './open-file.js';

const EMPTY_CONTENT = Buffer.alloc(0);

/** Per-file content keys kept (an HKDF each to make again): about 20,000 files' worth. */
const FILE_KEY_CACHE_BYTES = 4 * 1024 * 1024;

/** A file as its pieces know it: by its file id (an inode has one). */
export type FileOfPieces = Pick<Inode, 'fileId'>;

export interface ContentSettings {
  vaultId: Buffer;
  /** The keys pieces need: their per-file content keys and their addresses (the same in both formats). */
  keys: Pick<VaultKeys, 'content' | 'address'>;
  store: PieceStore;
  meta: ContentMetadata;
  pieceSize: number;
  chaffRatio: number;
  /**
   * The vault's chaff scheme (src/core/pieces/chaff.ts): format 1's when not given (drawn at random, kept
   * forever), or format 2's derived chaff (10.2), stored and deleted with each piece version. The piece
   * worker, when there is one, must have been given the same.
   */
  chaff?: ChaffChoice;
  stats: OpStats;
  /** A worker thread that seals full pieces behind the writer; without it that work runs here. */
  offload?: PieceOffload;
}

export class Contents {
  private readonly open = new Map<string, OpenFile>();
  private readonly fileKeys = new ByteLru<string>(FILE_KEY_CACHE_BYTES, (id, key) => 2 * id.length + key.length + 96);
  private readonly deleting = new Set<Promise<void>>();
  private readonly pieces: SealedPieces;
  private readonly reader: ReadPath;
  private readonly writer: WritePath;
  readonly pieceSize: number;

  constructor(private readonly s: ContentSettings) {
    this.pieceSize = s.pieceSize;
    this.pieces = new SealedPieces({ vaultId: s.vaultId, addressKey: s.keys.address, store: s.store, pieceSize: s.pieceSize, chaffRatio: s.chaffRatio, chaff: s.chaff, stats: s.stats });
    this.reader = new ReadPath(this.pieces, s.stats);
    this.writer = new WritePath({
      pieces: this.pieces,
      reader: this.reader,
      stats: s.stats,
      offload: s.offload,
      discard: (id) => this.deletePiece(id),
      newVersion: () => s.meta.newPieceVersion(),
    });
  }

  /** The open state of a file, made from its stored content if the file is not open yet. */
  acquire(file: { id: string; fileId: Buffer }, stored: () => StoredContent): OpenFile {
    let of = this.open.get(file.id);
    if (!of) {
      of = new OpenFile(file.id, file.fileId, this.fileKeyOf(file.fileId), stored());
      this.open.set(file.id, of);
    }
    of.refs++;
    return of;
  }

  /** Drops one reference; the last one commits and forgets the state. */
  async release(of: OpenFile): Promise<void> {
    try {
      await this.commit(of);
    } catch (err) {
      // The commit failed (a full disk, say): what it stored will never be committed, so give it back.
      if (of.refs === 1) {
        for (const [index, version] of of.uncommitted) await this.deletePiece({ fileId: of.fileId, index, version }).catch(() => undefined);
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

  read(of: OpenFile, target: Buffer, length: number, position: number): Promise<number> {
    return of.lock.run(() => this.reader.read(of, target, length, position));
  }

  /** read(), but bytes wholly in holes come back as shared zeros, `target` untouched (ReadPath.readView). */
  readView(of: OpenFile, target: Buffer, length: number, position: number): Promise<Buffer> {
    return of.lock.run(() => this.reader.readView(of, target, length, position));
  }

  async write(of: OpenFile, source: Buffer, position: number): Promise<number> {
    if (source.length === 0) return 0; // POSIX: writing nothing changes nothing, not even the size
    this.writer.collectFinishedSeals();
    return of.lock.run(() => this.writer.write(of, source, position));
  }

  truncate(of: OpenFile, size: number): Promise<void> {
    return of.lock.run(() => this.writer.truncate(of, size));
  }

  /**
   * fallocate's PUNCH_HOLE and ZERO_RANGE: [offset, offset + length) reads as zeros, whole pieces in it
   * become holes. ZERO_RANGE without KEEP_SIZE first extends the file to the range's end.
   */
  zeroRange(of: OpenFile, offset: number, length: number, keepSize: boolean): Promise<void> {
    return of.lock.run(async () => {
      if (!keepSize && offset + length > of.size) await this.writer.truncate(of, offset + length);
      await this.writer.zero(of, offset, offset + length);
    });
  }

  /**
   * fallocate's mode 0 and KEEP_SIZE, with nothing to record the allocation in (format 1): `room` is asked
   * whether the store has space for the blobs of the range's holes (it throws ENOSPC when not), then mode
   * 0 extends the file, the new range a hole. The file's existing pieces need no more room.
   */
  allocate(of: OpenFile, offset: number, length: number, keepSize: boolean, room: (holes: number) => void): Promise<void> {
    return of.lock.run(async () => {
      const P = this.pieceSize;
      room(holesIn(of.data, Math.floor(offset / P), Math.ceil((offset + length) / P)));
      if (!keepSize && offset + length > of.size) await this.writer.truncate(of, offset + length);
    });
  }

  /** lseek(2)'s SEEK_DATA and SEEK_HOLE, from the file's pieces as they stand; null where lseek says ENXIO. */
  seek(of: OpenFile, offset: number, whence: SeekWhence): Promise<number | null> {
    return of.lock.run(() => seekPieces(of.data, of.size, this.pieceSize, offset, whence));
  }

  /**
   * Commits the file's current content: stores what is not stored, and stages size and piece map in one
   * metadata transaction, ordered after every change before it. The versions it supersedes are deleted
   * once that transaction is durable (the vault's committer, within its window or at an fsync).
   */
  async commit(of: OpenFile): Promise<void> {
    return of.lock.run(async () => {
      await this.writer.sealsDone(of);
      if (!of.needsCommit) return;
      if (this.keepsInline(of)) return this.commitInline(of);
      await this.writer.storeAll(of);
      this.s.meta.stage(of.id, { size: of.size, pieces: of.pieces, lost: [...of.lost], mtime: of.mtime, nextVersion: of.nextVersion });
      const superseded = [...of.committed].filter(([i, v]) => of.pieces.get(i) !== v);
      of.committed = new Map(of.pieces);
      of.uncommitted.clear();
      of.changed = false;
      if (superseded.length > 0) this.deletePiecesAfterCommit(of.fileId, superseded);
    });
  }

  /** Whether the file's next commit keeps it INLINE (format 2, section 7): small, all in piece 0, nothing quarantined. */
  private keepsInline(of: OpenFile): boolean {
    const max = this.s.meta.inlineMax;
    if (max === 0 || of.size > max || of.lost.size > 0) return false;
    for (const i of of.data.indices()) if (i !== 0) return false;
    return true;
  }

  /**
   * Commits a small file INLINE: its bytes go in its inode, no piece is stored, and every version it had
   * stored goes once the commit is durable. Its bytes stay here as piece 0 (see OpenFile).
   */
  private async commitInline(of: OpenFile): Promise<void> {
    const held = of.size === 0 ? EMPTY_CONTENT : (of.heldData(0) ?? (await this.reader.pieceData(of, 0)));
    const content = Buffer.alloc(of.size);
    held.copy(content, 0, 0, Math.min(held.length, of.size)); // bytes past what piece 0 holds read as zeros
    this.s.meta.stage(of.id, { size: of.size, pieces: new Map(), lost: [], mtime: of.mtime, nextVersion: of.nextVersion, inline: content });
    const dropped = new Map<string, [number, number]>();
    for (const entry of [...of.committed, ...of.uncommitted]) dropped.set(`${entry[0]}/${entry[1]}`, entry);
    if (of.size > 0 && !of.dirty.has(0)) {
      of.dirty.set(0, { buf: content, len: of.size });
      of.dirtyBytes += of.size;
    }
    of.pieces.clear();
    of.committed = new Map();
    of.uncommitted.clear();
    of.changed = false;
    if (dropped.size > 0) this.deletePiecesAfterCommit(of.fileId, dropped.values());
  }

  /** Makes every blob stored so far durable (the committer's first step). */
  makeStoredDurable(): Promise<void> {
    return this.writer.makeStoredDurable();
  }

  /**
   * Deletes piece versions once the metadata that stops pointing to them is durable (a removed file's, or
   * those a commit superseded): a crash before that must still find them. settle() waits for these.
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

  private async deleteAllPieces(fileId: Buffer, pieces: Iterable<[number, number]>): Promise<void> {
    for (const [index, version] of pieces) {
      if (this.s.meta.mayDelete?.(version) === false) continue; // kept for a rollback (an orphan until then)
      await this.deletePiece({ fileId, index, version });
    }
  }

  /**
   * Deletes one piece version's blob, and its derived chaff (format 2); its plaintext leaves the clean cache
   * too (nothing reads it again). Every deletion of a piece version comes here.
   */
  private async deletePiece(id: PieceId): Promise<void> {
    this.reader.forget(id);
    await this.pieces.delete(id);
  }

  /** The file's content key (an HKDF, remembered: every open of the file needs it). */
  private fileKeyOf(fileId: Buffer): Buffer {
    const hex = fileId.toString('hex');
    let key = this.fileKeys.get(hex);
    if (!key) {
      key = fileKey(this.s.keys.content, fileId);
      this.fileKeys.set(hex, key);
    }
    return key;
  }

  // ---- for fsck (see PieceCheck in src/core/vault/vault.ts) ----

  /** Where a committed piece of a file is stored. */
  pieceAddress(file: FileOfPieces, index: number, version: number): Address {
    return this.pieces.addressOf({ fileId: file.fileId, index, version });
  }

  /** Reads, checks and decrypts one committed piece; IntegrityError (missing or damaged) when it cannot. */
  async verifyPiece(file: FileOfPieces, index: number, version: number, what: string): Promise<void> {
    await this.reader.gather({ fileId: file.fileId, index, version }, this.fileKeyOf(file.fileId), what);
  }

  /**
   * Deletes a committed piece fsck found damaged (the inode no longer points to it), or one --finish made
   * INLINE; its derived chaff goes with it.
   */
  deleteDamagedPiece(file: FileOfPieces, index: number, version: number): Promise<void> {
    return this.deletePiece({ fileId: file.fileId, index, version });
  }

  /** Every blob in the store, chaff and orphans included. */
  blobAddresses(): AsyncIterable<Address> {
    return this.pieces.addresses();
  }

  /**
   * Whether a blob is chaff by format 1's rule (its name a PRF of its first bytes): all of format 1's chaff.
   * Format 2 asks only while an upgrade is not finished; its own chaff it finds by chaffAddresses().
   */
  isChaffAt(address: Address): Promise<boolean> {
    return this.pieces.isChaffAt(address);
  }

  /** Where a piece version's derived chaff is (format 2, 10.2): what fsck and the sweep count as chaff. None under format 1's chaff. */
  chaffAddresses(file: FileOfPieces, index: number, version: number): Address[] {
    return this.pieces.chaffAddressesOf({ fileId: file.fileId, index, version });
  }

  /**
   * Gives a stored piece version its derived chaff (a format-1 piece at `svault upgrade --finish`); written
   * again where it is there already. How many chaff blobs were written: none when the piece is not stored.
   */
  addChaff(file: FileOfPieces, index: number, version: number): Promise<number> {
    return this.pieces.addChaff({ fileId: file.fileId, index, version });
  }

  /** Deletes an orphaned blob (or format 1's chaff, at --finish). */
  deleteBlobAt(address: Address): Promise<void> {
    return this.pieces.deleteAt(address);
  }

  /** Makes deletions and writes in the store durable. */
  flushStore(): Promise<void> {
    return this.pieces.flush();
  }

  usage(): Promise<{ blobs: number; bytes: number }> {
    return this.pieces.usage();
  }
}
