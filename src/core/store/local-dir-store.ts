// The piece store on a local directory: one file per blob under 256 shard directories.
// Puts only write; flush() fdatasyncs the blobs written since the last flush and their shard directories,
// so data and names survive power loss before the metadata that points to them commits. Syncing in a
// batch lets the kernel write back in the meantime, instead of waiting on the disk once per piece; and
// the syncs run on libuv's threads, several at once, so the event loop keeps serving requests while a
// commit waits for the disk, and the filesystem's journal can serve several of them with one commit.
// Past SYNCFS_AT blobs, one syncfs(2) of the store's filesystem (through svault's OS addon, on a libuv
// thread, as Node has no syncfs) replaces them all: thousands of fdatasyncs took seconds where one syncfs
// takes milliseconds, and a commit must finish well inside its window.
//
// Every directory and blob is reached through descriptors of the store, blobs/ and each shard, one name at
// a time and never through a link (StoreDir; issue 22, finding 2): a link planted at blobs/3f or at a blob's
// name is refused, not written through.

import { constants as fsConstants, fstatSync, futimesSync, readSync, statfsSync, writeSync, writevSync } from 'node:fs';
import { fsync as fsyncCallback } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { promisify } from 'node:util';
import { addressFromHex, blobPath, type Address } from '../pieces/address.js';
import { crashpoint, shouldCrash, writeHalfAndCrash } from '../util/crashpoints.js';
import { BadStoreError, IntegrityError, fromSystemError } from '../errors.js';
import { nativeOs } from '../os/native-os.js';
import { closeOpened, StoreDir } from '../os/store-dir.js';
import type { PieceStore } from './piece-store.js';

const fsyncAsync = promisify(fsyncCallback);
const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW, O_NONBLOCK } = fsConstants;

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

/** A blob written and not yet synced: its shard and name. */
interface Unsynced {
  shard: StoreDir;
  name: string;
}

export class LocalDirStore implements PieceStore {
  /** The store directory and its blobs/ directory, held open. */
  private readonly storeDir: StoreDir;
  private readonly blobs: StoreDir;
  /** Shard directories opened so far, by name (two hex digits). */
  private readonly shards = new Map<string, StoreDir>();
  /** Directories whose entries changed since the last flush: blobs/ itself and shards. */
  private readonly dirtyDirs = new Set<StoreDir>();
  /** Blobs written but not yet synced; bounded, so a long write session does not pile up work for flush. */
  private unsynced: Unsynced[] = [];
  /** The batches of blobs being synced in the background (started when `unsynced` grew long). */
  private syncing: Promise<void>[] = [];
  /** Blobs are read into this one buffer and lent out (see read); grown to the largest blob seen. */
  private readBuffer = Buffer.alloc(0);

  /** Whether one syncfs makes this store's blobs durable (see SYNCFS_FILESYSTEMS). */
  private readonly syncfsWorks: boolean;

  constructor(storeDir: string) {
    this.storeDir = StoreDir.open(storeDir);
    try {
      this.blobs = this.storeDir.subdir(BLOB_DIR, true);
      this.syncfsWorks = SYNCFS_FILESYSTEMS.has(statfsSync(this.blobs.viaDescriptor()).type);
    } catch (err) {
      this.storeDir.close();
      throw err;
    }
  }

  /** The shard directory `name`, opened once; created when `create`, else null when it is not there. */
  private shard(name: string, create: boolean): StoreDir | null {
    let dir = this.shards.get(name);
    if (dir) return dir;
    if (create) {
      const existed = this.blobs.stat(name) !== null;
      dir = this.blobs.subdir(name, true);
      if (!existed) this.dirtyDirs.add(this.blobs);
    } else {
      const found = this.blobs.subdirIfAny(name);
      if (!found) return null;
      dir = found;
    }
    this.shards.set(name, dir);
    return dir;
  }

  // Synchronous fs calls on purpose: FUSE requests reach the single JS thread one at a time, and a
  // thread-pool round trip per blob costs more than the I/O itself on a fast backing store.
  async put(address: Address, blob: Buffer): Promise<void> {
    this.putParts(address, [blob]);
  }

  /** put() of a blob given as parts, written with one writev: the piece worker's seal output unjoined. */
  putParts(address: Address, parts: readonly Buffer[]): void {
    const rel = blobPath(address);
    const [shardName, name] = splitBlobPath(rel);
    try {
      const shard = this.shard(shardName, true) as StoreDir;
      crashpoint('piece.put');
      if (shouldCrash('piece.partial')) writeHalfAndCrash(shard.viaDescriptor(name), Buffer.concat(parts));
      const fd = shard.openFile(name, O_WRONLY | O_CREAT | O_TRUNC, 0o600);
      try {
        writeAll(fd, parts);
        futimesSync(fd, BLOB_TIME, BLOB_TIME);
      } catch (err) {
        closeOpened(fd);
        shard.remove(name); // a partial blob (full disk) is of no use to anyone
        throw err;
      }
      closeOpened(fd);
      this.dirtyDirs.add(shard);
      this.unsynced.push({ shard, name });
      // With syncfs, flush() costs the same for any number of blobs: syncing them one by one meanwhile
      // would only crowd the filesystem's journal with commits.
      if (this.unsynced.length >= MAX_UNSYNCED && !this.syncfsWorks) this.syncInBackground();
    } catch (err) {
      if (err instanceof BadStoreError) throw new IntegrityError(`writing blob ${rel}: ${err.message}`);
      throw fromSystemError(err, `writing blob ${rel}`);
    }
  }

  async get(address: Address): Promise<Buffer | null> {
    return this.read(address, (blob) => Buffer.from(blob));
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const rel = blobPath(address);
    const [shardName, name] = splitBlobPath(rel);
    let fd: number;
    try {
      const shard = this.shard(shardName, false);
      if (!shard) return null;
      fd = shard.openFile(name, O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      if (err instanceof BadStoreError) throw new IntegrityError(`blob ${rel} is not a blob: ${err.message}`);
      throw fromSystemError(err, `reading blob ${rel}`);
    }
    let blob: Buffer;
    try {
      const st = fstatSync(fd);
      if (st.size > MAX_BLOB_BYTES) throw new IntegrityError(`blob ${rel} is larger than any blob`);
      blob = this.readInto(fd, st.size);
    } catch (err) {
      throw err instanceof IntegrityError ? err : fromSystemError(err, `reading blob ${rel}`);
    } finally {
      closeOpened(fd);
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

  /** The blob's size from an lstat, or null when there is none (nor a shard for it). Not a regular file: an IntegrityError. */
  async blobSize(address: Address): Promise<number | null> {
    const rel = blobPath(address);
    const [shardName, name] = splitBlobPath(rel);
    try {
      const st = this.shard(shardName, false)?.stat(name) ?? null;
      if (st === null) return null;
      if (!st.isFile()) throw new IntegrityError(`blob ${rel} is not a blob: not a regular file`);
      return st.size;
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      if (err instanceof BadStoreError) throw new IntegrityError(`blob ${rel} is not a blob: ${err.message}`);
      throw fromSystemError(err, `reading blob ${rel}`);
    }
  }

  async delete(address: Address): Promise<void> {
    const rel = blobPath(address);
    const [shardName, name] = splitBlobPath(rel);
    try {
      const shard = this.shard(shardName, false);
      // The next flush fsyncs the shard, so the blob stays deleted after a power cut (a superseded or
      // removed piece is an orphan otherwise, until a sweep).
      if (shard?.remove(name)) this.dirtyDirs.add(shard);
    } catch (err) {
      // No shard directory (something else is at its name, left for fsck's strays): no blob of ours to delete.
      if (err instanceof BadStoreError || (err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw fromSystemError(err, `deleting blob ${rel}`);
    }
  }

  async *list(): AsyncIterable<Address> {
    for (const shardName of this.blobs.names()) {
      // Anything but a real directory is no shard (fsck reports it among the strays).
      if (!SHARD_NAME.test(shardName) || !this.blobs.stat(shardName)?.isDirectory()) continue;
      const shard = this.shard(shardName, false);
      if (!shard) continue;
      for (const name of shard.names()) {
        const address = addressFromHex(name);
        if (address && name.startsWith(shardName)) yield address;
      }
    }
  }

  /** Starts syncing the blobs written so far; flush() waits for it, and reports its error. */
  private syncInBackground(): void {
    const batch = this.unsynced;
    this.unsynced = [];
    const done = syncBlobs(batch);
    done.catch(() => undefined); // reported by flush()
    this.syncing.push(done);
  }

  async flush(): Promise<void> {
    if (this.unsynced.length >= SYNCFS_AT && this.syncfsWorks) {
      try {
        await nativeOs().syncfs(this.blobs.fd);
      } catch (err) {
        throw fromSystemError(err, 'syncing the blob store\'s filesystem');
      }
      // Everything written so far is durable, directories included; the batches still syncing add nothing.
      this.unsynced = [];
      this.dirtyDirs.clear();
    }
    this.syncInBackground();
    const batches = this.syncing;
    this.syncing = [];
    const results = await Promise.allSettled(batches);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw fromSystemError(failed.reason, 'syncing blobs');
    const dirs = [...this.dirtyDirs];
    this.dirtyDirs.clear();
    try {
      await Promise.all(dirs.map((dir) => fsyncAsync(dir.fd)));
    } catch (err) {
      for (const dir of dirs) this.dirtyDirs.add(dir); // synced again by the next flush
      throw fromSystemError(err, 'syncing blob directories');
    }
  }

  async usage(): Promise<{ blobs: number; bytes: number }> {
    let blobs = 0;
    let bytes = 0;
    for await (const a of this.list()) {
      const [shardName, name] = splitBlobPath(blobPath(a));
      const st = this.shard(shardName, false)?.stat(name);
      if (!st) continue; // deleted meanwhile
      blobs++;
      bytes += st.size;
    }
    return { blobs, bytes };
  }

  /** Stray files (a crash mid-put leaves none with this layout, but a damaged store might): for fsck. */
  strayFiles(): string[] {
    const stray: string[] = [];
    for (const shardName of this.blobs.names()) {
      const st = this.blobs.stat(shardName);
      if (!SHARD_NAME.test(shardName) || !st?.isDirectory()) {
        stray.push(`${BLOB_DIR}/${shardName}`);
        continue;
      }
      const shard = this.shard(shardName, false);
      for (const name of shard?.names() ?? []) {
        if (!addressFromHex(name) || !name.startsWith(shardName) || !shard?.stat(name)?.isFile()) stray.push(`${BLOB_DIR}/${shardName}/${name}`);
      }
    }
    return stray;
  }

  /** Removes a stray named by strayFiles(): whatever it is, without following links. */
  removeStray(rel: string): void {
    const parts = rel.split('/');
    if (parts[0] !== BLOB_DIR || parts.length < 2 || parts.length > 3) throw new Error(`not a stray path: ${rel}`);
    if (parts.length === 2) {
      this.blobs.removeTree(parts[1] as string);
      return;
    }
    this.shard(parts[1] as string, false)?.removeTree(parts[2] as string);
  }

  /** Closes the store's directories. */
  close(): void {
    for (const shard of this.shards.values()) shard.close();
    this.shards.clear();
    this.blobs.close();
    this.storeDir.close();
  }
}

const SHARD_NAME = /^[0-9a-f]{2}$/;

/** A blob's shard and file name, from its path under blobs/ ("3f/3f…"). */
function splitBlobPath(rel: string): [string, string] {
  const slash = rel.indexOf('/');
  return [rel.slice(0, slash), rel.slice(slash + 1)];
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
 * fdatasync of every blob, SYNC_PARALLEL at a time, on libuv's threads. Each is opened again through its
 * shard's descriptor, never following a link; a blob deleted since it was written needs nothing.
 */
async function syncBlobs(blobs: readonly Unsynced[]): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < blobs.length) {
      const { shard, name } = blobs[next++] as Unsynced;
      let handle;
      try {
        handle = await openAsync(shard.viaDescriptor(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SYNC_PARALLEL, blobs.length) }, lane));
}
