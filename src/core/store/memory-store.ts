// An in-memory piece store: for unit tests, and as the model the shared store test suite checks others against.

import type { Address } from '../pieces/address.js';
import type { PieceStore } from './piece-store.js';

export class MemoryStore implements PieceStore {
  private readonly blobs = new Map<string, Buffer>();

  async put(address: Address, blob: Buffer): Promise<void> {
    this.blobs.set(address.toString('hex'), Buffer.from(blob));
  }

  async get(address: Address): Promise<Buffer | null> {
    const b = this.blobs.get(address.toString('hex'));
    return b ? Buffer.from(b) : null;
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const b = this.blobs.get(address.toString('hex'));
    return b ? use(b) : null;
  }

  async delete(address: Address): Promise<void> {
    this.blobs.delete(address.toString('hex'));
  }

  async *list(): AsyncIterable<Address> {
    for (const hex of [...this.blobs.keys()]) yield Buffer.from(hex, 'hex');
  }

  async flush(): Promise<void> {}

  close(): void {}

  async usage(): Promise<{ blobs: number; bytes: number }> {
    let bytes = 0;
    for (const b of this.blobs.values()) bytes += b.length;
    return { blobs: this.blobs.size, bytes };
  }

  /** Test hook: direct access to the raw blobs, to damage them. */
  raw(): Map<string, Buffer> {
    return this.blobs;
  }
}
