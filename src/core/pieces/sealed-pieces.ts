// src/core/pieces: a file's pieces, sealed, placed at keyed 8-dimensional addresses with chaff, read back checked.
//
// Pieces: the layer between a file's contents and the blob store. It turns (file, piece index, version,
// data) into a sealed blob at its keyed address, with chaff beside it, and reads a piece back, checked
// and opened. The JS thread and the piece worker both store pieces through it, over any PieceStore.
// The chaff is the vault's scheme (chaff.ts): format 1's, drawn at random and kept forever, or format 2's
// derived chaff, stored and deleted with its piece version.

import { randomFillSync } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import type { PieceStore } from '../store/piece-store.js';
import type { OpRecorder } from '../util/op-stats.js';
import { addressOf, isChaff, makeChaff, refillChaff, type Address } from './address.js';
import { derivedChaffAddresses, FORMAT1_CHAFF, type ChaffChoice } from './chaff.js';
import { blobSizeClasses, openPiece, openPieceInto, sealPiece, sealPieceInto, type PieceId } from './piece-codec.js';

export interface SealedPiecesSettings {
  vaultId: Buffer;
  addressKey: Buffer;
  store: PieceStore;
  pieceSize: number;
  /** Chaff blobs per real piece, on average. */
  chaffRatio: number;
  /** How chaff is made, found and deleted (chaff.ts); format 1's when not given. */
  chaff?: ChaffChoice;
  stats: OpRecorder;
  /**
   * Seal each blob, and fill each chaff blob, into one buffer kept for it instead of a new one per blob.
   * Only for a caller with one put in flight at a time (the piece worker), since the next put reuses it:
   * a new 128 KiB buffer per blob was garbage to collect and fresh memory to fault in.
   */
  oneBlobAtATime?: boolean;
}

const FAILED_AUTHENTICATION = Symbol('failed authentication');

export class SealedPieces {
  readonly pieceSize: number;
  private readonly classes: number[];
  private readonly blobOut: Buffer | null;
  private readonly chaffOut: Buffer | null;
  /** Derived chaff's keys (format 2, 10.2); null for format 1's chaff. */
  private readonly derived: { address: Buffer; chaff: Buffer } | null;
  /** A whole piece read into a caller's buffer leaves its length header and padding here (readInto). */
  private scratch = Buffer.alloc(0);

  constructor(private readonly s: SealedPiecesSettings) {
    this.pieceSize = s.pieceSize;
    this.classes = blobSizeClasses(s.pieceSize);
    const largest = this.classes[this.classes.length - 1] ?? 0;
    this.blobOut = s.oneBlobAtATime ? Buffer.allocUnsafeSlow(largest) : null;
    this.chaffOut = s.oneBlobAtATime ? Buffer.allocUnsafeSlow(largest) : null;
    const chaff = s.chaff ?? FORMAT1_CHAFF;
    this.derived = chaff.scheme === 'derived' ? { address: s.addressKey, chaff: chaff.chaffKey } : null;
  }

  /** Where piece version `id`'s chaff is (10.2); none under format 1's chaff, which no piece knows. */
  chaffAddressesOf(id: PieceId): Address[] {
    return this.derived ? derivedChaffAddresses(this.derived, this.s.chaffRatio, id) : [];
  }

  addressOf(id: PieceId): Address {
    return addressOf(this.s.addressKey, id);
  }

  /**
   * Seals `data` as piece `id` under the file's key and stores it, with chaff at the vault's ratio.
   * Stored is not durable: flush() makes it so, before a metadata commit points to it.
   * The chaff goes first: when a put fails (a full disk), its piece is not stored, so the caller, who
   * never learns of the piece, leaves no orphan behind. Format 1's chaff stored before the failure is
   * chaff anyway; derived chaff belongs to a piece that is not there, so it is deleted again.
   */
  async put(fileKey: Buffer, id: PieceId, data: Buffer): Promise<void> {
    const t = process.hrtime.bigint();
    const blob = this.blobOut
      ? sealPieceInto(fileKey, this.s.vaultId, id, data, this.classes, this.blobOut)
      : sealPiece(fileKey, this.s.vaultId, id, data, this.classes);
    this.s.stats.record('crypto.seal', t, blob.length);
    if (!this.derived) {
      for (let n = this.chaffCount(); n > 0; n--) await this.putChaff(blob.length);
      await this.s.store.put(this.addressOf(id), blob);
      return;
    }
    const chaff = this.chaffAddressesOf(id);
    try {
      for (const address of chaff) await this.putChaffAt(address, blob.length);
      await this.s.store.put(this.addressOf(id), blob);
    } catch (err) {
      for (const address of chaff) await this.s.store.delete(address).catch(() => undefined);
      throw err;
    }
  }

  /** How many chaff blobs go with one real piece under format 1's chaff: chaffRatio on average. */
  private chaffCount(): number {
    const whole = Math.floor(this.s.chaffRatio);
    return Math.random() < this.s.chaffRatio - whole ? whole + 1 : whole;
  }

  /** A format-1 chaff blob: random bytes of a real blob's size, at an address only the address key recognises. */
  private async putChaff(size: number): Promise<void> {
    if (this.chaffOut) {
      const blob = this.chaffOut.subarray(0, size);
      await this.s.store.put(refillChaff(this.s.addressKey, blob), blob);
      return;
    }
    const { address, blob } = makeChaff(this.s.addressKey, size);
    await this.s.store.put(address, blob);
  }

  /** A derived chaff blob: random bytes of its piece's blob size, at the address its piece gives it. */
  private async putChaffAt(address: Address, size: number): Promise<void> {
    const blob = this.chaffOut ? this.chaffOut.subarray(0, size) : Buffer.allocUnsafe(size);
    randomFillSync(blob);
    await this.s.store.put(address, blob);
  }

  /**
   * Gives a stored piece version the derived chaff it lacks (a format-1 piece at `svault upgrade --finish`):
   * random blobs the size of its blob at its chaff addresses, written again where one is there already.
   * Returns how many were written: none for a piece that is not stored, or under format 1's chaff.
   */
  async addChaff(id: PieceId): Promise<number> {
    if (!this.derived) return 0;
    const chaff = this.chaffAddressesOf(id);
    if (chaff.length === 0) return 0;
    const address = this.addressOf(id);
    const size = this.s.store.blobSize ? await this.s.store.blobSize(address) : await this.s.store.read(address, (blob) => blob.length);
    if (size === null) return 0;
    for (const a of chaff) await this.putChaffAt(a, size);
    return chaff.length;
  }

  /** Reads, checks and opens piece `id`: its data, in a buffer of its own. `what` names the file in errors. */
  async read(fileKey: Buffer, id: PieceId, what: string): Promise<Buffer> {
    const opened = await this.s.store.read(this.addressOf(id), (blob) => {
      const t = process.hrtime.bigint();
      const data = openPiece(fileKey, this.s.vaultId, id, blob, this.pieceSize); // a copy: the blob is only lent
      this.s.stats.record('crypto.open', t, blob.length);
      return data ?? FAILED_AUTHENTICATION;
    });
    return checked(opened, id, what);
  }

  /**
   * read() straight into `dst`, a reader's buffer as long as the piece's place in the file (zeroes past the
   * piece's data). Decrypted inside the store's synchronous callback, so no other read can use the scratch
   * buffer in between. Why: buffers decrypted ahead and copied out cost more than the decryption they
   * saved (fresh memory for malloc, page faults, garbage for V8).
   */
  async readInto(fileKey: Buffer, id: PieceId, dst: Buffer, what: string): Promise<void> {
    const opened = await this.s.store.read(this.addressOf(id), (blob) => {
      const t = process.hrtime.bigint();
      if (this.scratch.length < blob.length) this.scratch = Buffer.allocUnsafeSlow(blob.length);
      const ok = openPieceInto(fileKey, this.s.vaultId, id, blob, this.pieceSize, dst, this.scratch);
      this.s.stats.record('crypto.open', t, blob.length);
      return ok || FAILED_AUTHENTICATION;
    });
    checked(opened, id, what);
  }

  /** Whether the store wants to hear of reads ahead (PieceStore.prefetch). */
  get prefetches(): boolean {
    return this.s.store.prefetch !== undefined;
  }

  /** Tells the store which pieces will be read next, when it wants to know. */
  prefetch(ids: readonly PieceId[]): void {
    if (ids.length > 0) this.s.store.prefetch?.(ids.map((id) => this.addressOf(id)));
  }

  /** Removes piece `id`'s blob, and its derived chaff with it; an absent one is not an error. */
  async delete(id: PieceId): Promise<void> {
    await this.s.store.delete(this.addressOf(id));
    for (const address of this.chaffAddressesOf(id)) await this.s.store.delete(address);
  }

  /**
   * Stores piece `id`'s blob again, as it is, so that the next flush() makes it durable: for a blob another
   * writer stored and can no longer make durable (a piece worker that died). Nothing when it is absent.
   * Its derived chaff too, which that writer stored with it.
   */
  async restore(id: PieceId): Promise<void> {
    for (const address of [...this.chaffAddressesOf(id), this.addressOf(id)]) {
      const blob = await this.s.store.get(address);
      if (blob) await this.s.store.put(address, blob);
    }
  }

  /** Makes every blob stored so far durable. */
  flush(): Promise<void> {
    return this.s.store.flush();
  }

  // ---- the store as a whole: fsck and info ----

  /** Every blob's address: pieces, chaff and orphans alike. */
  addresses(): AsyncIterable<Address> {
    return this.s.store.list();
  }

  /**
   * Whether the blob at `address` is chaff by format 1's rule, its name a PRF of its first bytes (told apart
   * with the address key); an unreadable blob is not. All of format 1's chaff; derived chaff is found by
   * its piece instead (chaffAddressesOf).
   */
  async isChaffAt(address: Address): Promise<boolean> {
    const blob = await this.s.store.get(address).catch(() => null);
    return blob !== null && isChaff(this.s.addressKey, address, blob);
  }

  /** Removes the blob at an address (an orphan, or format 1's chaff at --finish). */
  deleteAt(address: Address): Promise<void> {
    return this.s.store.delete(address);
  }

  usage(): Promise<{ blobs: number; bytes: number }> {
    return this.s.store.usage();
  }
}

/** The opened result, or the IntegrityError that says why there is none. */
function checked<T>(result: T | typeof FAILED_AUTHENTICATION | null, id: PieceId, what: string): T {
  if (result === null) throw new IntegrityError(`${what}: piece ${id.index} (version ${id.version}) is missing from the store`, 'missing');
  if (result === FAILED_AUTHENTICATION) throw new IntegrityError(`${what}: piece ${id.index} (version ${id.version}) failed authentication`, 'damaged');
  return result;
}
