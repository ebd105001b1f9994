// The piece store on a local directory: one file per blob under 256 shard directories.
// Puts only write; flush() fdatasyncs the blobs written since the last flush and their shard directories,
// so data and names survive power loss before the metadata that points to them commits. Syncing in a
// batch lets the kernel write back in the meantime, instead of waiting on the disk once per piece; and
// the syncs run on libuv's threads, several at once, so the event loop keeps serving requests while a
// commit waits for the disk, and the filesystem's journal can serve several of them with one commit.
// Past SYNCFS_AT blobs, one syncfs(2) of the store's filesystem (coreutils' `sync -f`, as Node has no
// syncfs) replaces them all: thousands of fdatasyncs took seconds where one syncfs takes milliseconds,
// and a commit must finish well inside its window.

import { closeSync, constants as fsConstants, fstatSync, futimesSync, mkdirSync, openSync, readdirSync, readSync, rmSync, statfsSync, statSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { open as openAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { addressFromHex, blobPath, type Address } from '../pieces/address.js';
import { crashpoint, shouldCrash, writeHalfAndCrash } from '../util/crashpoints.js';
import { IntegrityError, fromSystemError } from '../errors.js';
import type { PieceStore } from './piece-store.js';

export const BLOB_DIR = 'blobs';
const MAX_UNSYNCED = 256;
/** fdatasyncs in flight at once (libuv's thread pool has four threads by default). */
const SYNC_PARALLEL = 4;
/** Blobs to sync past which one syncfs of the whole filesystem is cheaper (a `sync -f` costs about 3 ms). */
const SYNCFS_AT = 32;
/**
 * Every blob's atime and mtime (seconds): a piece version is a new file, so real times would group a
 * file's pieces by write burst and show its size. ctime and inode numbers still show the order of
 * creation (README, threat model).
 */
export const BLOB_TIME = 946_684_800; // 2000-01-01T00:00:00Z
/** Set once `sync -f` turned out not to exist: blobs are then synced one by one. */
let syncfsMissing = false;
/**
 * Filesystems (statfs f_type) whose syncfs makes every file's data durable: local disk filesystems
 * (and tmpfs, where nothing needs it). Elsewhere blobs are synced one by one: Linux does not forward
 * syncfs to FUSE servers (sshfs, rclone; virtiofs only), and network filesystems differ.
 */
const SYNCFS_FILESYSTEMS = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0xf2f52010, // f2fs
  0x2fc12fc1, // zfs
  0x01021994, // tmpfs
]);
/** No blob is larger than the largest piece plus its overhead. */
const MAX_BLOB_BYTES = 16 * 1024 * 1024 + 4096;

export class LocalDirStore implements PieceStore {
  private readonly root: string;
  private readonly knownShards = new Set<string>();
  private readonly dirtyShards = new Set<string>();
  /** Blobs written but not yet synced; bounded, so a long write session does not pile up work for flush. */
  private unsynced: string[] = [];
  /** The batches of blobs being synced in the background (started when `unsynced` grew long). */
  private syncing: Promise<void>[] = [];
  /** Blobs are read into this one buffer and lent out (see read); grown to the largest blob seen. */
  private readBuffer = Buffer.alloc(0);

  /** Whether one syncfs makes this store's blobs durable (see SYNCFS_FILESYSTEMS). */
  private readonly syncfsWorks: boolean;

  constructor(storeDir: string) {
    this.root = join(storeDir, BLOB_DIR);
    mkdirSync(this.root, { recursive: true });
    this.syncfsWorks = SYNCFS_FILESYSTEMS.has(statfsSync(this.root).type);
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
        futimesSync(fd, BLOB_TIME, BLOB_TIME);
      } catch (err) {
        closeSync(fd);
        unlinkSync(path); // a partial blob (full disk) is of no use to anyone
        throw err;
      }
      closeSync(fd);
      this.dirtyShards.add(shard);
      this.unsynced.push(rel);
      // With syncfs, flush() costs the same for any number of blobs: syncing them one by one meanwhile
      // would only crowd the filesystem's journal with commits.
      if (this.unsynced.length >= MAX_UNSYNCED && !this.usesSyncfs) this.syncInBackground();
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

  private get usesSyncfs(): boolean {
    return this.syncfsWorks && !syncfsMissing;
  }

  /** Starts syncing the blobs written so far; flush() waits for it, and reports its error. */
  private syncInBackground(): void {
    const batch = this.unsynced;
    this.unsynced = [];
    const done = syncFiles(batch.map((rel) => join(this.root, rel)), true);
    done.catch(() => undefined); // reported by flush()
    this.syncing.push(done);
  }

  async flush(): Promise<void> {
    if (this.unsynced.length >= SYNCFS_AT && this.usesSyncfs && (await syncFilesystem(this.root))) {
      // Everything written so far is durable, directories included; the batches still syncing add nothing.
      this.unsynced = [];
      this.dirtyShards.clear();
    }
    this.syncInBackground();
    const batches = this.syncing;
    this.syncing = [];
    const results = await Promise.allSettled(batches);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw fromSystemError(failed.reason, 'syncing blobs');
    const shards = [...this.dirtyShards];
    this.dirtyShards.clear();
    try {
      await syncFiles(shards.map((shard) => (shard === '.' ? this.root : join(this.root, shard))), false);
    } catch (err) {
      for (const shard of shards) this.dirtyShards.add(shard); // synced again by the next flush
      throw fromSystemError(err, 'syncing blob directories');
    }
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

/**
 * fdatasync (or fsync, for directories) of every path, SYNC_PARALLEL at a time. A blob deleted since it
 * was written needs nothing.
 */
async function syncFiles(paths: readonly string[], dataOnly: boolean): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < paths.length) {
      const path = paths[next++] as string;
      let handle;
      try {
        handle = await openAsync(path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      try {
        if (dataOnly) await handle.datasync();
        else await handle.sync();
      } finally {
        await handle.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SYNC_PARALLEL, paths.length) }, lane));
}

/**
 * syncfs(2) of the filesystem `dir` is on, through coreutils' `sync -f`. False when there is no such
 * command (the caller syncs file by file); a failed sync (a write-back error) is an EIO.
 */
function syncFilesystem(dir: string): Promise<boolean> {
  if (syncfsMissing) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    execFile('sync', ['-f', dir], { timeout: 600_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve(true);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        syncfsMissing = true;
        return resolve(false);
      }
      reject(Object.assign(new Error(`sync -f ${dir} failed: ${String(stderr).trim() || err.message}`), { code: 'EIO' }));
    });
  });
}
