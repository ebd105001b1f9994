// The one interface every piece-store layer implements (local directory, memory, op counting, and later
// caching, erasure coding or an object store). The engine only ever talks to this.

import type { Address } from '../address.js';

export interface PieceStore {
  /** Stores a blob at an address, replacing any blob there (only ever an uncommitted orphan). */
  put(address: Address, blob: Buffer): Promise<void>;
  /** The blob at an address, or null when there is none. */
  get(address: Address): Promise<Buffer | null>;
  /** Removes a blob; removing an absent blob is not an error. */
  delete(address: Address): Promise<void>;
  /** Every address in the store, in no particular order. */
  list(): AsyncIterable<Address>;
  /** Makes every put so far durable (survives power loss). Called before a metadata commit. */
  flush(): Promise<void>;
  /**
   * Takes on a blob another writer put at this address (the piece worker, if it died before making it
   * durable): the next flush makes it durable too.
   */
  adopt(address: Address): void;
  /** Blob count and bytes, for info and statfs. */
  usage(): Promise<{ blobs: number; bytes: number }>;
}

export class MissingPieceError extends Error {}
