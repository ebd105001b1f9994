// Test helpers for the vault core: temporary store directories that are always removed, vaults that can
// be closed and reopened on the same store, deterministic test data and store-directory snapshots.

import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { addressOf, blobPath } from '../../src/core/pieces/address.js';
import { deriveVaultKeys } from '../../src/core/crypto/crypto.js';
import { readConfig, unwrapMasterKey } from '../../src/core/vault/config.js';
import { BLOB_DIR } from '../../src/core/store/local-dir-store.js';
import type { RecordStore } from '../../src/core/meta/record-store.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { Vault } from '../../src/core/vault/vault.js';

export const PASSPHRASE = 'correct horse battery staple';

/** Anything that can register cleanup: an AVA ExecutionContext (t.teardown) or a list run in test.after.always. */
export interface Cleanup {
  teardown(fn: () => void | Promise<void>): void;
}

/** Collects cleanups for hooks (test.before ... test.after.always), where there is no t.teardown. */
export class CleanupList implements Cleanup {
  private readonly fns: (() => void | Promise<void>)[] = [];

  teardown(fn: () => void | Promise<void>): void {
    this.fns.push(fn);
  }

  /** Runs the cleanups in reverse order of registration; every one runs even if an earlier one throws. */
  async run(): Promise<void> {
    let first: unknown;
    for (const fn of this.fns.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}

/** A fresh directory under os.tmpdir(), removed at teardown. */
export function tempDir(c: Cleanup, prefix = 'svault-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  c.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TempVaultOptions {
  pieceSize?: number;
  chaffRatio?: number;
  /** A piece store to use instead of the store directory (e.g. a MemoryStore); kept across reopen(). */
  store?: PieceStore;
  passphrase?: string;
}

/** A vault in a temporary store directory. `vault` is the currently open Vault; reopen() closes and opens it again. */
export class TempVault {
  private constructor(
    readonly storeDir: string,
    readonly passphrase: string,
    readonly store: PieceStore | undefined,
    public vault: Vault,
  ) {}

  static async create(c: Cleanup, opts: TempVaultOptions = {}): Promise<TempVault> {
    const base = tempDir(c);
    const storeDir = join(base, 'store');
    const passphrase = opts.passphrase ?? PASSPHRASE;
    const settings = { pieceSize: opts.pieceSize ?? 4096, chaffRatio: opts.chaffRatio ?? 0 };
    const vault = await Vault.create(storeDir, passphrase, settings, opts.store ? { store: opts.store } : {});
    const tv = new TempVault(storeDir, passphrase, opts.store, vault);
    // Registered after tempDir, so it runs before the directory is removed.
    c.teardown(() => tv.vault.close());
    return tv;
  }

  /** Closes the vault (committing open files) and opens it again from the store. */
  async reopen(): Promise<Vault> {
    await this.vault.close();
    this.vault = await Vault.open(this.storeDir, this.passphrase, this.store ? { store: this.store } : {});
    return this.vault;
  }

  async close(): Promise<void> {
    await this.vault.close();
  }

  /** Opens the (closed) vault again without closing anything first. */
  async open(): Promise<Vault> {
    this.vault = await Vault.open(this.storeDir, this.passphrase, this.store ? { store: this.store } : {});
    return this.vault;
  }

  get blobsDir(): string {
    return join(this.storeDir, BLOB_DIR);
  }

  /**
   * The file of the blob holding one piece version of the file at path (LocalDirStore only). Works on a
   * closed vault too (its inodes stay cached): a closed vault wipes its keys, so the address key here is
   * derived from the passphrase on its own.
   */
  blobFile(path: string, index: number, version?: number): string {
    const inode = this.vault.inodeAt(path);
    const v = version ?? inode.pieces.get(index);
    if (v === undefined) throw new Error(`${path} has no piece ${index}`);
    this.addressKey ??= deriveVaultKeys(unwrapMasterKey(readConfig(this.storeDir), this.passphrase, this.storeDir), Buffer.from(readConfig(this.storeDir).vaultId, 'hex')).address;
    return join(this.blobsDir, blobPath(addressOf(this.addressKey, { fileId: inode.fileId, index, version: v })));
  }

  private addressKey: Buffer | undefined;
}

/**
 * Makes a vault behave as if its process died: what its metadata had staged never reaches SQLite, and
 * the database is closed. Reaches inside on purpose; nothing but a crash test needs this.
 */
export function abandon(vault: Vault): void {
  (vault as unknown as { meta: { records: { abandon(): void } } }).meta.records.abandon();
}

/**
 * A vault's record store, to plant authentic records of any content (fuzz tests). Reaches inside on
 * purpose: nothing else writes records around the metadata layer.
 */
export function recordsOf(vault: Vault): RecordStore {
  return (vault as unknown as { meta: { records: RecordStore } }).meta.records;
}

export async function createTempVault(c: Cleanup, opts: TempVaultOptions = {}): Promise<TempVault> {
  return TempVault.create(c, opts);
}

/** Deterministic pseudo-random bytes (xorshift32) so failures reproduce and big buffers are cheap. */
export function patternBytes(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = (seed * 2654435761) >>> 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Writes data to a (new or existing) file through a handle, at an offset, and closes it. */
export async function writeAt(vault: Vault, path: string, data: Buffer, position: number): Promise<void> {
  let fh: number;
  try {
    fh = vault.open(path);
  } catch {
    fh = vault.create(path, 0o644);
  }
  try {
    await vault.write(fh, data, position);
    await vault.flush(fh);
  } finally {
    await vault.release(fh);
  }
}

/** Reads length bytes at position through a fresh handle; returns exactly the bytes read. */
export async function readAt(vault: Vault, path: string, position: number, length: number): Promise<Buffer> {
  const fh = vault.open(path);
  try {
    const buf = Buffer.alloc(length);
    const n = await vault.read(fh, buf, length, position);
    return buf.subarray(0, n);
  } finally {
    await vault.release(fh);
  }
}

/** Every regular file under dir, as paths relative to dir, sorted. */
export function listFilesRecursive(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

export interface FileSnapshot {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Size, mtime and content hash of every file under dir. */
export function snapshotDir(dir: string): Map<string, FileSnapshot> {
  const snap = new Map<string, FileSnapshot>();
  for (const rel of listFilesRecursive(dir)) {
    const p = join(dir, rel);
    const st = statSync(p);
    snap.set(rel, { size: st.size, mtimeMs: st.mtimeMs, sha256: createHash('sha256').update(readFileSync(p)).digest('hex') });
  }
  return snap;
}

/** A plain object form of a snapshot, for t.deepEqual diffs. */
export function snapshotObject(snap: Map<string, FileSnapshot>): Record<string, FileSnapshot> {
  return Object.fromEntries([...snap.entries()].sort((a, b) => a[0].localeCompare(b[0])));
}
