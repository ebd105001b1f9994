// Encrypted records in SQLite (better-sqlite3, WAL): one table of (name, sealed value). Names are keyed
// hashes and values are AEAD-sealed with the record's name as associated data, so a record cannot be
// read, forged or moved to another name. Values are padded to power-of-two sizes to hide their length.

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { open, prf, seal } from '../crypto.js';
import { IntegrityError, fromSystemError } from '../errors.js';

export const META_FILE = 'meta.db';
const MIN_RECORD = 128;

export class RecordStore {
  private readonly db: Database.Database;
  private readonly getStmt: Database.Statement<[Buffer], { v: Buffer }>;
  private readonly putStmt: Database.Statement<[Buffer, Buffer]>;
  private readonly delStmt: Database.Statement<[Buffer]>;
  private readonly aadPrefix: Buffer;
  private durable = false;

  constructor(storeDir: string, private readonly sealKey: Buffer, private readonly indexKey: Buffer, vaultId: Buffer, readonly readOnly = false) {
    try {
      this.db = new Database(join(storeDir, META_FILE), { readonly: readOnly, fileMustExist: readOnly });
      if (!readOnly) {
        this.db.pragma('journal_mode = WAL');
        // NORMAL by default: a commit survives a crash of this process (the WAL is in the OS's hands)
        // but may be lost in a power cut. Durable commits (close, fsync) switch to FULL, which also
        // makes every earlier commit in the WAL durable. See transaction().
        this.db.pragma('synchronous = NORMAL');
        this.db.exec('CREATE TABLE IF NOT EXISTS records (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
      }
    } catch (err) {
      throw fromSystemError(err, `opening ${META_FILE}`);
    }
    this.getStmt = this.db.prepare('SELECT v FROM records WHERE k = ?');
    this.putStmt = this.db.prepare('INSERT OR REPLACE INTO records (k, v) VALUES (?, ?)');
    this.delStmt = this.db.prepare('DELETE FROM records WHERE k = ?');
    this.aadPrefix = Buffer.concat([Buffer.from('svault-record-v1'), vaultId]);
  }

  /** The name of a record: a keyed hash of its kind and identifying parts. */
  nameOf(kind: string, ...parts: (Buffer | string)[]): Buffer {
    return prf(this.indexKey, kind, '\0', ...parts.flatMap((p) => [p, '\0']));
  }

  get(name: Buffer, what: string): Buffer | null {
    const row = this.getStmt.get(name);
    if (!row) return null;
    const body = open(this.sealKey, Buffer.concat([this.aadPrefix, name]), row.v);
    if (!body || body.length < 4) throw new IntegrityError(`metadata record of ${what} failed authentication`);
    const len = body.readUInt32BE(0);
    if (4 + len > body.length) throw new IntegrityError(`metadata record of ${what} is malformed`);
    return body.subarray(4, 4 + len);
  }

  put(name: Buffer, value: Buffer): void {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(value.length);
    let size = MIN_RECORD;
    while (size < value.length + 4) size *= 2;
    const pad = Buffer.alloc(size - 4 - value.length);
    this.putStmt.run(name, seal(this.sealKey, Buffer.concat([this.aadPrefix, name]), [header, value, pad]));
  }

  delete(name: Buffer): void {
    this.delStmt.run(name);
  }

  get inTransaction(): boolean {
    return this.db.inTransaction;
  }

  /**
   * Runs fn in one transaction: all of its puts and deletes commit together or not at all. A durable
   * transaction is on disk (power-cut safe) when it returns; others are crash-safe but may be lost in
   * a power cut until the next durable one, as with any filesystem's metadata before fsync.
   */
  transaction<T>(fn: () => T, durable = false): T {
    if (this.db.inTransaction) return fn();
    if (durable !== this.durable) {
      this.db.pragma(durable ? 'synchronous = FULL' : 'synchronous = NORMAL');
      this.durable = durable;
    }
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      if (err instanceof Error && /SQLITE_FULL|disk is full/i.test(err.message)) throw fromSystemError(Object.assign(err, { code: 'ENOSPC' }), 'metadata commit');
      throw err;
    }
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
  }

  *names(): Iterable<Buffer> {
    for (const row of this.db.prepare('SELECT k FROM records').iterate() as Iterable<{ k: Buffer }>) yield row.k;
  }

  /** Bytes of the database files, for info and statfs. */
  sizeBytes(): number {
    const row = this.db.prepare('SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()').get() as { n: number };
    return row.n;
  }

  checkpoint(): void {
    if (!this.readOnly) this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    this.checkpoint();
    this.db.close();
  }
}
