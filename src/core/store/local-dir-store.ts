// The piece store on a local directory: one file per blob under 256 shard directories.
// Puts only write; flush() fdatasyncs the blobs written since the last flush and their shard directories,
// so data and names survive power loss before the metadata that points to them commits. Syncing in a
// batch lets the kernel write back in the meantime, instead of waiting on the disk once per piece.

import { closeSync, constants as fsConstants, fdatasyncSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, rmSync, statSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { addressFromHex, blobPath, type Address } from '../pieces/address.js';
import { crashpoint, shouldCrash, writeHalfAndCrash } from '../util/crashpoints.js';
import { IntegrityError, fromSystemError } from '../errors.js';
import type { PieceStore } from './piece-store.js';

export const BLOB_DIR = 'blobs';
const MAX_UNSYNCED = 256;
/** No blob is larger than the largest piece plus its overhead. */
const MAX_BLOB_BYTES = 16 * 1024 * 1024 + 4096;

export class LocalDirStore implements PieceStore {
  private readonly root: string;
  private readonly knownShards = new Set<string>();
  private readonly dirtyShards = new Set<string>();
  /** Blobs written but not yet synced; bounded, so a long write session does not pile up work for flush. */
  private unsynced: string[] = [];
  /** Blobs are read into this one buffer and lent out (see read); grown to the largest blob seen. */
  private readBuffer = Buffer.alloc(0);

  constructor(storeDir: string) {
    this.root = join(storeDir, BLOB_DIR);
    mkdirSync(this.root, { recursive: true });
  }

  // Synchronous fs calls on purpose: FUSE requests reach the single JS thread one at a time, and a
  // thread-pool round trip per blob costs more than the I/O itself on a fast backing store.
  async put(address: Address, blob: Buffer): Promise<void> {
    this.putParts(address, [blob]);
  }

  /** put() of a blob given as parts, written with one writev: the piece worker's seal output unjoined. */
  putParts(address: Address, parts: readonly Buffer[]): void {
    const rel = blobPath(address);
    const shard = rel.slice(0, 2);
    try {
      if (!this.knownShards.has(shard)) {
        mkdirSync(join(this.root, shard), { recursive: true });
        this.knownShards.add(shard);
        this.dirtyShards.add('.');
      }
      const path = join(this.root, rel);
      crashpoint('piece.put');
      if (shouldCrash('piece.partial')) writeHalfAndCrash(path, Buffer.concat(parts));
      const fd = openSync(path, 'w', 0o600);
      try {
        writeAll(fd, parts);
      } catch (err) {
        closeSync(fd);
        unlinkSync(path); // a partial blob (full disk) is of no use to anyone
        throw err;
      }
      closeSync(fd);
      this.dirtyShards.add(shard);
      this.unsynced.push(rel);
      if (this.unsynced.length >= MAX_UNSYNCED) this.syncBlobs();
    } catch (err) {
      throw fromSystemError(err, `writing blob ${rel}`);
    }
  }

  async get(address: Address): Promise<Buffer | null> {
    return this.read(address, (blob) => Buffer.from(blob));
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const rel = blobPath(address);
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO planted in the store must not block the server; it is refused below.
      fd = openSync(join(this.root, rel), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fromSystemError(err, `reading blob ${rel}`);
    }
    let blob: Buffer;
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > MAX_BLOB_BYTES) throw new IntegrityError(`blob ${rel} is not a regular file of a blob's size`);
      blob = this.readInto(fd, st.size);
    } catch (err) {
      throw err instanceof IntegrityError ? err : fromSystemError(err, `reading blob ${rel}`);
    } finally {
      closeSync(fd);
    }
    return use(blob);
  }

  /** Reads a whole blob into the reused read buffer; a file that shrank meanwhile reads short. */
  private readInto(fd: number, size: number): Buffer {
    if (this.readBuffer.length < size) this.readBuffer = Buffer.allocUnsafeSlow(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, this.readBuffer, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return this.readBuffer.subarray(0, off);
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

  private syncBlobs(): void {
    for (const rel of this.unsynced) {
      let fd: number;
      try {
        fd = openSync(join(this.root, rel), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted since: nothing to keep
        throw fromSystemError(err, `syncing blob ${rel}`);
      }
      try {
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    this.unsynced = [];
  }

  async flush(): Promise<void> {
    this.syncBlobs();
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

/** Writes every part, in order; a short writev (rare on a local file) carries on with plain writes. */
function writeAll(fd: number, parts: readonly Buffer[]): void {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const written = writevSync(fd, parts as Buffer[]);
  if (written === total) return;
  const rest = Buffer.concat(parts).subarray(written);
  let off = 0;
  while (off < rest.length) off += writeSync(fd, rest, off, rest.length - off);
}
