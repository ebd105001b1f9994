// src/core/store: piece stores, where blobs are kept (a directory, memory), and the layers over them.
//
// The one interface every piece-store layer implements (local directory, memory, op counting, and later
// caching, erasure coding or an object store). The engine only ever talks to this.

import type { Address } from '../pieces/address.js';
import type { OpRecorder } from '../util/op-stats.js';
import { CountingStore } from './counting-store.js';
import { LocalDirStore } from './local-dir-store.js';

export interface PieceStore {
  /** Stores a blob at an address, replacing any blob there (only ever an uncommitted orphan). */
  put(address: Address, blob: Buffer): Promise<void>;
  /** The blob at an address, or null when there is none. The buffer is the caller's to keep. */
  get(address: Address): Promise<Buffer | null>;
  /**
   * Lends the blob at an address to `use` and returns what it returns, or null when there is none.
   * The buffer is valid during the call only (the store may read the next blob into it): the read path
   * uses this to decrypt straight out of one reused buffer, where a fresh 128 KiB allocation per piece
   * cost more than the read itself.
   */
  read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null>;
  /**
   * Optional: the size of the blob at an address, or null when there is none, without reading it (a stat).
   * Without it, callers read the blob to learn its size (derived chaff for a format-1 piece, at --finish).
   */
  blobSize?(address: Address): Promise<number | null>;
  /** Removes a blob; removing an absent blob is not an error. */
  delete(address: Address): Promise<void>;
  /** Every address in the store, in no particular order. */
  list(): AsyncIterable<Address>;
  /**
   * A hint, optional: these blobs will be read soon (a sequential reader's next pieces), so a store with
   * long round trips (an object store) can have their requests in flight together. A store that reads
   * in microseconds leaves it out: the read path then computes no addresses for it.
   */
  prefetch?(addresses: readonly Address[]): void;
  /** Makes every put so far durable (survives power loss). Called before a metadata commit. */
  flush(): Promise<void>;
  /** Blob count and bytes, for info and statfs. */
  usage(): Promise<{ blobs: number; bytes: number }>;
  /** Lets go of what the store holds open (a directory store holds descriptors of its directories). */
  close(): void;
}

/**
 * The store stack of a vault in a directory: blobs in the directory, counted for `svault status`. The JS
 * thread and the piece worker each open their own over the same directory. `instead`: a store given in
 * the directory's place (a MemoryStore in unit tests), counted the same way.
 */
export function directoryStoreStack(storeDir: string, stats: OpRecorder, instead?: PieceStore): PieceStore {
  return new CountingStore(instead ?? new LocalDirStore(storeDir), stats);
}
