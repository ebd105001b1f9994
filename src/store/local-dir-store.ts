// The piece store on a local directory: one file per blob under 256 shard directories.
// Puts write and fdatasync the blob; flush() fsyncs the shard directories touched since the last flush,
// so the new names survive power loss before the metadata that points to them commits.

import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { addressFromHex, blobPath, type Address } from '../address.js';
import { fromSystemError } from '../errors.js';
import type { PieceStore } from './piece-store.js';

export const BLOB_DIR = 'blobs';

export class LocalDirStore implements PieceStore {
  private readonly root: string;
  private readonly knownShards = new Set<string>();
  private readonly dirtyShards = new Set<string>();

  constructor(storeDir: string) {
    this.root = join(storeDir, BLOB_DIR);
    mkdirSync(this.root, { recursive: true });
  }

  // Synchronous fs calls on purpose: FUSE requests reach the single JS thread one at a time, and a
  // thread-pool round trip per blob costs more than the I/O itself on a fast backing store.
  async put(address: Address, blob: Buffer): Promise<void> {
    const rel = blobPath(address);
    const shard = rel.slice(0, 2);
    try {
      if (!this.knownShards.has(shard)) {
        mkdirSync(join(this.root, shard), { recursive: true });
        this.knownShards.add(shard);
        this.dirtyShards.add('.');
      }
      const fd = openSync(join(this.root, rel), 'w', 0o600);
      try {
        let off = 0;
        while (off < blob.length) off += writeSync(fd, blob, off, blob.length - off);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.dirtyShards.add(shard);
    } catch (err) {
      throw fromSystemError(err, `writing blob ${rel}`);
    }
  }

  async get(address: Address): Promise<Buffer | null> {
    try {
      return readFileSync(join(this.root, blobPath(address)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fromSystemError(err, `reading blob ${blobPath(address)}`);
    }
  }

  async delete(address: Address): Promise<void> {
    try {
      unlinkSync(join(this.root, blobPath(address)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `deleting blob ${blobPath(address)}`);
    }
  }

  async *list(): AsyncIterable<Address> {
    for (const shard of readdirSync(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of readdirSync(join(this.root, shard))) {
        const address = addressFromHex(name);
        if (address && name.startsWith(shard)) yield address;
      }
    }
  }

  async flush(): Promise<void> {
    for (const shard of this.dirtyShards) {
      const fd = openSync(shard === '.' ? this.root : join(this.root, shard), 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    this.dirtyShards.clear();
  }

  async usage(): Promise<{ blobs: number; bytes: number }> {
    let blobs = 0;
    let bytes = 0;
    for await (const a of this.list()) {
      blobs++;
      bytes += statSync(join(this.root, blobPath(a))).size;
    }
    return { blobs, bytes };
  }

  /** Stray files (a crash mid-put leaves none with this layout, but a damaged store might): for fsck. */
  strayFiles(): string[] {
    const stray: string[] = [];
    for (const shard of readdirSync(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) {
        stray.push(join(BLOB_DIR, shard));
        continue;
      }
      for (const name of readdirSync(join(this.root, shard))) {
        if (!addressFromHex(name) || !name.startsWith(shard)) stray.push(join(BLOB_DIR, shard, name));
      }
    }
    return stray;
  }

  removeStray(rel: string): void {
    rmSync(join(this.root, '..', rel), { force: true, recursive: true });
  }
}
