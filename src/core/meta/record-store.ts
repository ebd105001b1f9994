// Encrypted records in SQLite (better-sqlite3, WAL): one table of (name, sealed value). Names are keyed
// hashes and values are AEAD-sealed with the record's name as associated data, so a record cannot be
// read, forged or moved to another name. Values are padded to power-of-two sizes to hide their length.
//
// Group commit: a transaction's changes are staged in memory, in order, and nothing reaches SQLite until
// the vault's committer (src/core/vault/committer.ts) cuts the staged changes off, makes the blobs they
// point to durable, and writes the cut in one durable SQLite transaction. Each cut commits whole, so
// after a crash the metadata is as it was after some transaction: never half of one, never ahead of the
// blobs, and never a later change without an earlier one. A record staged several times in a batch
// (tar's create, chmod, chown and utimes of one file) is sealed and written once.

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { open, prf, seal } from '../crypto/crypto.js';
import { BadStoreError, IntegrityError, fromSystemError } from '../errors.js';
import { checkSqliteFilesAfterOpen, checkSqliteFilesBeforeOpen } from '../os/sqlite-files.js';
import { StoreDir } from '../os/store-dir.js';
import { isDiskFull, RESERVE_FILE, SpaceReserve } from '../vault/space-reserve.js';
import { ByteLru } from '../util/lru.js';
import { zeroBytes } from '../util/zero-bytes.js';

export const META_FILE = 'meta.db';
const MIN_RECORD = 128;
/** Staged changes past which the committer is asked to commit at once, whatever its window. */
export const BATCH_MAX = 2000;

/** Decrypted committed records kept in memory (lookups, pages and inodes are read again and again). */
const READ_CACHE_BYTES = 16 * 1024 * 1024;
/** Record names computed (each is an HMAC, and the same ones are asked for over and over). */
const NAME_CACHE_BYTES = 8 * 1024 * 1024;

export { RESERVE_FILE };

/** Weight of a cached record or name: its bytes, the key's, and a fixed overhead, so absent records count too. */
function weigh(key: string, value: Buffer | null): number {
  return 2 * key.length + (value?.length ?? 0) + 64;
}

interface Staged {
  name: Buffer;
  value: Buffer | null; // null: delete
}

export class RecordStore {
  private readonly db: Database.Database;
  private readonly getStmt: Database.Statement<[Buffer], { v: Buffer }>;
  private readonly putStmt: Database.Statement<[Buffer, Buffer]>;
  private readonly delStmt: Database.Statement<[Buffer]>;
  private readonly aadPrefix: Buffer;
  /** Changes not yet in SQLite, by record name (hex). */
  private staged = new Map<string, Staged>();
  /**
   * Changes cut off for the commit in progress (their blobs are being made durable), by name; newer
   * changes stage in `staged` meanwhile. Kept when writing them fails, and written with the next cut.
   */
  private frozen = new Map<string, Staged>();
  private frozenAfter: (() => void)[] = [];
  /** While a transaction runs: what `staged` held before it touched each name, to undo it on failure. */
  private undo: Map<string, Staged | undefined> | null = null;
  /**
   * What SQLite holds for recently read or written names, decrypted and authenticated (null: no record).
   * Changed only after a batch is in SQLite, so a failed or undone transaction never shows up in it.
   */
  private readonly committed = new ByteLru<string, Buffer | null>(READ_CACHE_BYTES, weigh);
  private readonly nameMemo = new ByteLru<string, Buffer>(NAME_CACHE_BYTES, weigh);
  private afterFlush: (() => void)[] = [];
  private readonly reserve: SpaceReserve;
  /** The store directory, held open: the reserve file is reached through it, never by path. */
  private readonly dir: StoreDir;
  /** Called after each transaction with the number of staged changes (the committer schedules a commit). */
  onStaged: (count: number) => void = () => {};
  /** Called when staged changes are cut off for a commit, and once the cut is in SQLite. */
  onCut: () => void = () => {};
  onFlushed: () => void = () => {};

  constructor(storeDir: string, private readonly sealKey: Buffer, private readonly indexKey: Buffer, vaultId: Buffer, readonly readOnly = false) {
    this.dir = StoreDir.open(storeDir);
    let db: Database.Database | undefined;
    try {
      checkSqliteFilesBeforeOpen(this.dir, META_FILE);
      db = new Database(join(storeDir, META_FILE), { readonly: readOnly, fileMustExist: readOnly });
      if (!readOnly) {
        db.pragma('journal_mode = WAL');
        // Every SQLite commit is a group commit (see above), so each one is made durable: superseded
        // blobs are deleted right after it, and must never be pointed to again after a power cut.
        db.pragma('synchronous = FULL');
        db.exec('CREATE TABLE IF NOT EXISTS records (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
      } else {
        db.prepare('SELECT count(*) FROM sqlite_master').get(); // opens the WAL, if any, for the check below
      }
      checkSqliteFilesAfterOpen(this.dir, META_FILE);
    } catch (err) {
      db?.close();
      this.dir.close();
      if (err instanceof BadStoreError) throw err;
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && code.startsWith('SQLITE_')) throw new BadStoreError(storeDir, `${META_FILE} is damaged or not a database (${(err as Error).message})`);
      throw fromSystemError(err, `opening ${META_FILE}`);
    }
    this.db = db;
    this.getStmt = this.db.prepare('SELECT v FROM records WHERE k = ?');
    this.putStmt = this.db.prepare('INSERT OR REPLACE INTO records (k, v) VALUES (?, ?)');
    this.delStmt = this.db.prepare('DELETE FROM records WHERE k = ?');
    this.aadPrefix = Buffer.concat([Buffer.from('svault-record-v1'), vaultId]);
    this.reserve = new SpaceReserve(this.dir);
    if (!readOnly) this.reserve.restoreIfRoom();
  }

  /** The name of a record: a keyed hash of its kind and identifying parts. */
  nameOf(kind: string, ...parts: (Buffer | string)[]): Buffer {
    // The memo key tells every list of parts apart: JSON quotes strings, and buffers become objects.
    const key = JSON.stringify([kind, ...parts.map((p) => (typeof p === 'string' ? p : { hex: p.toString('hex') }))]);
    let name = this.nameMemo.get(key);
    if (!name) {
      name = prf(this.indexKey, kind, '\0', ...parts.flatMap((p) => [p, '\0']));
      this.nameMemo.set(key, name);
    }
    return name;
  }

  get(name: Buffer, what: string): Buffer | null {
    const hex = name.toString('hex');
    const staged = this.staged.get(hex) ?? this.frozen.get(hex);
    if (staged) return staged.value;
    const cached = this.committed.get(hex);
    if (cached !== undefined) return cached;
    const value = this.read(name, what);
    this.committed.set(hex, value);
    return value;
  }

  private read(name: Buffer, what: string): Buffer | null {
    const row = this.getStmt.get(name);
    if (!row) return null;
    if (!Buffer.isBuffer(row.v)) throw new IntegrityError(`metadata record of ${what} is not a sealed record`);
    const body = open(this.sealKey, Buffer.concat([this.aadPrefix, name]), row.v);
    if (!body || body.length < 4) throw new IntegrityError(`metadata record of ${what} failed authentication`);
    const len = body.readUInt32BE(0);
    if (4 + len > body.length) throw new IntegrityError(`metadata record of ${what} is malformed`);
    return body.subarray(4, 4 + len);
  }

  put(name: Buffer, value: Buffer): void {
    this.stage(name, value);
  }

  delete(name: Buffer): void {
    this.stage(name, null);
  }

  private stage(name: Buffer, value: Buffer | null): void {
    const hex = name.toString('hex');
    if (this.undo && !this.undo.has(hex)) this.undo.set(hex, this.staged.get(hex));
    this.staged.set(hex, { name, value });
    if (!this.undo) this.onStaged(this.staged.size);
  }

  private sealed(name: Buffer, value: Buffer): Buffer {
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(value.length);
    let size = MIN_RECORD;
    while (size < value.length + 4) size *= 2;
    return seal(this.sealKey, Buffer.concat([this.aadPrefix, name]), [header, value, zeroBytes(size - 4 - value.length)]);
  }

  get inTransaction(): boolean {
    return this.undo !== null;
  }

  /**
   * Runs fn as one transaction: its puts and deletes are staged together or not at all (a throw undoes
   * them). They reach SQLite with the committer's next cut, after every transaction staged before them.
   */
  transaction<T>(fn: () => T): T {
    if (this.undo) return fn();
    const undo = new Map<string, Staged | undefined>();
    this.undo = undo;
    let result: T;
    try {
      result = fn();
    } catch (err) {
      this.restore(undo);
      throw err;
    } finally {
      this.undo = null;
    }
    if (undo.size > 0) this.onStaged(this.staged.size);
    return result;
  }

  private restore(undo: Map<string, Staged | undefined>): void {
    for (const [hex, before] of undo) {
      if (before) this.staged.set(hex, before);
      else this.staged.delete(hex);
    }
  }

  /** Runs fn once everything staged so far is in SQLite (e.g. deleting the blobs of an unlinked file). */
  whenFlushed(fn: () => void): void {
    if (this.staged.size > 0 || this.undo) this.afterFlush.push(fn);
    else if (this.frozen.size > 0) this.frozenAfter.push(fn);
    else fn();
  }

  /** Whether changes wait to be written (staged, or cut off by a commit that has not finished). */
  get pending(): boolean {
    return this.staged.size > 0 || this.frozen.size > 0 || this.afterFlush.length > 0 || this.frozenAfter.length > 0;
  }

  /**
   * Cuts off everything staged so far for a commit: writeCut() writes exactly these changes, however many
   * are staged in the meantime. Between transactions only (a transaction runs synchronously).
   */
  cut(): void {
    if (this.undo) throw new Error('cut() inside a transaction');
    for (const [hex, change] of this.staged) this.frozen.set(hex, change);
    this.frozenAfter.push(...this.afterFlush);
    this.staged = new Map();
    this.afterFlush = [];
    this.onCut();
  }

  /**
   * Writes the cut changes to SQLite in one durable transaction. Gives back what waited for them
   * (whenFlushed), for the caller to run. On failure they stay cut off, for the next commit to write.
   */
  writeCut(): (() => void)[] {
    const batch = this.frozen;
    if (batch.size > 0) this.write(batch);
    for (const [hex, { value }] of batch) this.committed.set(hex, value);
    this.frozen = new Map();
    this.onFlushed();
    const after = this.frozenAfter;
    this.frozenAfter = [];
    return after;
  }

  /**
   * Writes everything staged to SQLite now, durably, and runs what waited for it. Only where no blob a
   * staged change points to can still be in flight: opening and closing a vault, offline tools.
   */
  flush(): void {
    this.cut();
    for (const fn of this.writeCut()) fn();
  }

  private write(batch: Map<string, Staged>): void {
    const write = this.db.transaction(() => {
      for (const { name, value } of batch.values()) {
        if (value) this.putStmt.run(name, this.sealed(name, value));
        else this.delStmt.run(name);
      }
    });
    try {
      // A full disk: if this batch removes records (deleting files, which needs a metadata commit before
      // any blob goes), the reserve is given back and the batch tried once more, so space can be freed.
      this.reserve.write(write, () => [...batch.values()].some((c) => c.value === null));
    } catch (err) {
      if (isDiskFull(err)) throw fromSystemError(Object.assign(err as Error, { code: 'ENOSPC' }), 'metadata commit');
      throw err;
    }
  }

  hasAny(): boolean {
    return this.staged.size > 0 || this.frozen.size > 0 || this.db.prepare('SELECT 1 FROM records LIMIT 1').get() !== undefined;
  }

  /** How many records SQLite holds (as of the last commit: statfs's file count, an estimate anyway). */
  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
  }

  /** Every record name: SQLite's, as the staged changes leave them. */
  *names(): Iterable<Buffer> {
    const changes = new Map([...this.frozen, ...this.staged]);
    for (const row of this.db.prepare('SELECT k FROM records').iterate() as Iterable<{ k: Buffer }>) {
      if (!changes.has(row.k.toString('hex'))) yield row.k;
    }
    for (const { name, value } of changes.values()) if (value) yield name;
  }

  /** Bytes of the database files, for info and statfs. */
  sizeBytes(): number {
    const row = this.db.prepare('SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()').get() as { n: number };
    return row.n;
  }

  /** Folds the WAL into the database file (what is staged stays staged). */
  checkpoint(): void {
    if (this.readOnly) return;
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** Closes the database without writing what is staged (after a failed close). Idempotent. */
  abandon(): void {
    if (this.db.open) this.db.close();
    this.dir.close();
  }

  close(): void {
    this.flush();
    this.checkpoint();
    this.db.close();
    this.dir.close();
  }
}
