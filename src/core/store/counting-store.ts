// An op-counting layer over any piece store: calls, bytes and time per operation, for the profiler and
// `svault status`. Counting is a few additions and one clock read per call.

import type { Address } from '../pieces/address.js';
import type { OpRecorder } from '../util/op-stats.js';
import type { PieceStore } from './piece-store.js';

export class CountingStore implements PieceStore {
  /** The inner store's hint, passed through when it has one (and absent when it has none). */
  readonly prefetch?: (addresses: readonly Address[]) => void;
  /** The inner store's blob size, passed through when it has one. */
  readonly blobSize?: (address: Address) => Promise<number | null>;

  constructor(private readonly inner: PieceStore, readonly stats: OpRecorder) {
    if (inner.prefetch) this.prefetch = (addresses) => inner.prefetch?.(addresses);
    const blobSize = inner.blobSize?.bind(inner);
    if (blobSize) this.blobSize = blobSize;
  }

  async put(address: Address, blob: Buffer): Promise<void> {
    const t = process.hrtime.bigint();
    try {
      await this.inner.put(address, blob);
    } finally {
      this.stats.record('store.put', t, blob.length);
    }
  }

  async get(address: Address): Promise<Buffer | null> {
    const t = process.hrtime.bigint();
    let n = 0;
    try {
      const b = await this.inner.get(address);
      n = b?.length ?? 0;
      return b;
    } finally {
      this.stats.record('store.get', t, n);
    }
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const t = process.hrtime.bigint();
    let counted = false;
    try {
      return await this.inner.read(address, (blob) => {
        this.stats.record('store.get', t, blob.length); // the read ends where `use` (the decryption) begins
        counted = true;
        return use(blob);
      });
    } finally {
      if (!counted) this.stats.record('store.get', t, 0);
    }
  }

  async delete(address: Address): Promise<void> {
    const t = process.hrtime.bigint();
    try {
      await this.inner.delete(address);
    } finally {
      this.stats.record('store.delete', t, 0);
    }
  }

  list(): AsyncIterable<Address> {
    return this.inner.list();
  }

  async flush(): Promise<void> {
    const t = process.hrtime.bigint();
    try {
      await this.inner.flush();
    } finally {
      this.stats.record('store.flush', t, 0);
    }
  }

  close(): void {
    this.inner.close();
  }

  usage(): Promise<{ blobs: number; bytes: number }> {
    return this.inner.usage();
  }
}
