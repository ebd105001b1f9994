// meta2.db, the SQLite table that holds format 2's records (docs/format-2.md, 5.1): one table r(id, k, v),
// every k a 32-byte record name and every v a 4,000-byte sealed record, so each row fills one 4 KiB page.
// This module stores and fetches rows; it knows nothing of what is in them (record-seal.ts opens them).
//
// It also checks, around SQLite's own open by path, that meta2.db, -wal and -shm are the regular files
// in the store directory that they appear to be (section 2, issue 22 finding 2).

import Database from 'better-sqlite3';
import { lstatSync, readdirSync, readlinkSync, realpathSync, statSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { randomBytesPooled } from '../crypto/crypto.js';
import { BadStoreError, FsError, IntegrityError, fromSystemError } from '../errors.js';
import { StoreDir } from '../os/store-dir.js';
import { SpaceReserve } from '../vault/space-reserve.js';
import { metadataFileName } from './keys.js';
import { RECORD_NAME_BYTES } from './record-names.js';
import { RECORD_BYTES } from './record-seal.js';

/** The metadata database of a vault's first master key (10.6 names the others). */
export const META2_FILE = metadataFileName(null);
/** "SV02": marks a format-2 metadata database, so a format-1 meta.db or any other SQLite file is refused. */
export const APPLICATION_ID = 0x53563032;
export const USER_VERSION = 2;
/** One 4,000-byte record, its name and SQLite's cell header fit one page of this size (5.1). */
export const PAGE_SIZE = 4096;
/** Caps the WAL between checkpoints (5.8). */
export const JOURNAL_SIZE_LIMIT = 32 * 1024 * 1024;
/** Draws of a random id before giving up: that many clashes in a row among 2^63 ids mean a broken generator. */
const MAX_ID_DRAWS = 16;
const ID_MASK = (1n << 63n) - 1n;

/** A change of one row: a put of a sealed record, or a delete (`value` null). */
export interface RecordChange {
  name: Buffer;
  value: Buffer | null;
}

/** A row that is not a 32-byte name and a 4,000-byte value (5.1: damaged). */
export interface MalformedRow {
  id: bigint;
  /** Null when k is not a BLOB. */
  name: Buffer | null;
  nameBytes: number;
  valueBytes: number;
}

export interface RecordTableOptions {
  /** Opens without writing: no batch, no checkpoint. */
  readOnly?: boolean;
  /** For tests: the source of row ids (default: random positive 63-bit integers). */
  drawId?: () => bigint;
  /** For tests: runs after the files are lstat'ed and before SQLite opens them, where a swap would happen. */
  beforeSqliteOpens?: () => void;
  /**
   * Keeps svault.reserve in `dir` (a vault's store; section 2): a batch that deletes rows and finds the disk
   * full gives it back and is tried once more, so deleting files can free space. Restored after a write
   * when there is room again; never created or touched by a table that writes nothing.
   */
  spaceReserve?: boolean;
}

/** A random positive 63-bit id: the table's page order then says nothing about the order of inserts. */
function randomRowId(): bigint {
  for (;;) {
    const id = randomBytesPooled(8).readBigUInt64BE(0) & ID_MASK;
    if (id !== 0n) return id;
  }
}

export class RecordTable {
  private readonly getStmt: Database.Statement<[Buffer], { v: unknown }>;
  private readonly updateStmt: Database.Statement<[Buffer, Buffer]>;
  private readonly insertStmt: Database.Statement<[bigint, Buffer, Buffer]>;
  private readonly deleteStmt: Database.Statement<[Buffer]>;
  private readonly countStmt: Database.Statement<[], { n: number }>;
  private readonly malformedStmt: Database.Statement<[], { id: bigint; k: unknown; kBytes: bigint; vBytes: bigint }>;
  private readonly drawId: () => bigint;
  /** The synchronous mode set on the connection, so a batch sets it only when it changes. */
  private synchronousFull: boolean | null = null;
  private readonly applyInTransaction: (changes: readonly RecordChange[]) => void;
  /** svault.reserve's keeper, through the store directory held open (RecordTableOptions.spaceReserve). */
  private readonly reserve: { dir: StoreDir; keeper: SpaceReserve } | null;

  private constructor(
    private readonly db: Database.Database,
    /** The database's file name in the store: meta2.db, or meta2-<key id>.db (10.6). */
    readonly file: string,
    private readonly identity: FileIdentity,
    readonly readOnly: boolean,
    options: RecordTableOptions,
    reserveDir: StoreDir | null,
  ) {
    this.reserve = reserveDir ? { dir: reserveDir, keeper: new SpaceReserve(reserveDir) } : null;
    this.drawId = options.drawId ?? randomRowId;
    this.getStmt = db.prepare('SELECT v FROM r WHERE k = ?');
    this.updateStmt = db.prepare('UPDATE r SET v = ? WHERE k = ?');
    // A clash on id inserts nothing (changes = 0) and a new id is drawn. A clash on k cannot happen
    // (the UPDATE before found no row) and would throw, as it should.
    this.insertStmt = db.prepare('INSERT INTO r (id, k, v) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING');
    this.deleteStmt = db.prepare('DELETE FROM r WHERE k = ?');
    this.countStmt = db.prepare('SELECT count(*) AS n FROM r');
    this.malformedStmt = db
      .prepare(
        `SELECT id, k, length(CAST(k AS BLOB)) AS kBytes, length(CAST(v AS BLOB)) AS vBytes FROM r
         WHERE typeof(k) != 'blob' OR typeof(v) != 'blob' OR length(k) != ${RECORD_NAME_BYTES} OR length(v) != ${RECORD_BYTES}`,
      )
      .safeIntegers(true) as Database.Statement<[], { id: bigint; k: unknown; kBytes: bigint; vBytes: bigint }>;
    this.applyInTransaction = db.transaction((changes: readonly RecordChange[]) => {
      for (const change of changes) {
        if (change.value === null) this.deleteStmt.run(change.name);
        else if (this.updateStmt.run(change.value, change.name).changes === 0) this.insert(change.name, change.value);
      }
    });
  }

  /**
   * Creates the database `file` in `dir`, with section 5.1's settings, and opens it. Refuses when the
   * file, its -wal or its -shm is already there.
   */
  static create(dir: string, file = META2_FILE, options: RecordTableOptions = {}): RecordTable {
    const before = lstatBeforeOpen(dir, file);
    for (const [name, stats] of before.stats) {
      if (stats) throw new BadStoreError(dir, `${name} already exists: a new metadata database is not created over it`);
    }
    options.beforeSqliteOpens?.();
    return RecordTable.openChecked(dir, file, before, false, options, (db) => {
      // page_size first: it takes effect only before the first page is written, which the switch to WAL
      // does. journal_mode is persistent; the rest go in one transaction, so a crash leaves no database
      // that looks like format 2's without its table.
      db.pragma(`page_size = ${PAGE_SIZE}`);
      if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal') throw new BadStoreError(dir, `${file}: SQLite refused WAL mode`);
      db.transaction(() => {
        db.pragma(`application_id = ${APPLICATION_ID}`);
        db.pragma(`user_version = ${USER_VERSION}`);
        db.exec('CREATE TABLE r (id INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE, v BLOB NOT NULL)');
      })();
    });
  }

  /** Opens the format-2 database `file` in `dir`; refuses any other (BadStoreError naming the file). */
  static open(dir: string, file = META2_FILE, options: RecordTableOptions = {}): RecordTable {
    const before = lstatBeforeOpen(dir, file);
    if (!before.stats.get(file)) throw new BadStoreError(dir, `${file} is missing`);
    options.beforeSqliteOpens?.();
    return RecordTable.openChecked(dir, file, before, options.readOnly ?? false, options, (db) => {
      // Reading the header opens -wal and -shm too (the database is in WAL mode), so the check after
      // this callback sees all three.
      const applicationId = db.pragma('application_id', { simple: true }) as number;
      const userVersion = db.pragma('user_version', { simple: true }) as number;
      if (applicationId !== APPLICATION_ID || userVersion !== USER_VERSION) {
        throw new BadStoreError(
          dir,
          `${file} is not a format-2 metadata database (application_id 0x${(applicationId >>> 0).toString(16)}, user_version ${userVersion}; ` +
            `expected 0x${APPLICATION_ID.toString(16)} and ${USER_VERSION})`,
        );
      }
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      if (pageSize !== PAGE_SIZE) throw new BadStoreError(dir, `${file} has pages of ${pageSize} bytes, not ${PAGE_SIZE}`);
      const mode = db.pragma('journal_mode', { simple: true }) as string;
      if (mode !== 'wal') throw new BadStoreError(dir, `${file} is in journal mode ${mode}, not WAL`);
    });
  }

  /**
   * Opens `file` with SQLite, runs `setUp` on it, then checks that SQLite's descriptors are the files
   * lstat'ed before. Refuses (and closes) on any failure.
   */
  private static openChecked(
    dir: string,
    file: string,
    before: FileIdentity,
    readOnly: boolean,
    options: RecordTableOptions,
    setUp: (db: Database.Database) => void,
  ): RecordTable {
    let db: Database.Database | undefined;
    let reserveDir: StoreDir | null = null;
    try {
      db = new Database(join(dir, file), { readonly: readOnly, fileMustExist: readOnly });
      // The database file first, before anything is read from it or written to it.
      checkDescriptors(before, [file]);
      setUp(db);
      checkDescriptors(before);
      if (!readOnly) {
        // Per connection, not stored in the file: set at every open.
        db.pragma('secure_delete = ON');
        db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
      }
      reserveDir = options.spaceReserve && !readOnly ? StoreDir.open(dir) : null;
      return new RecordTable(db, file, before, readOnly, options, reserveDir);
    } catch (err) {
      db?.close();
      reserveDir?.close();
      if (err instanceof BadStoreError) throw err;
      if (isSqliteError(err)) throw new BadStoreError(dir, `${file} is damaged or not a database (${(err as Error).message})`);
      throw fromSystemError(err, `opening ${join(dir, file)}`);
    }
  }

  /** The sealed record stored under `name`, or null when there is no such row. */
  get(name: Buffer): Buffer | null {
    checkName(name);
    let row: { v: unknown } | undefined;
    try {
      row = this.getStmt.get(name);
    } catch (err) {
      throw sqliteFailure(err, `reading ${this.file}`);
    }
    if (!row) return null;
    // A value of another SQL type is damage; its length is record-seal.ts's to check (5.2, step 2).
    if (!Buffer.isBuffer(row.v)) throw new IntegrityError(`record ${name.subarray(0, 4).toString('hex')}… in ${this.file} is not a BLOB`, 'damaged');
    return row.v;
  }

  /**
   * Applies `changes` in order, in one transaction: all of them or, if any fails, none (FsError: ENOSPC,
   * EROFS or EIO). A durable batch commits with synchronous = FULL (the WAL is synced at the commit);
   * otherwise NORMAL (synced at the next checkpoint or FULL commit; whole or absent after a crash either
   * way, but possibly absent).
   */
  apply(changes: readonly RecordChange[], durable: boolean): void {
    this.refuseIfReadOnly();
    // Checked before the transaction, so a wrong length is refused before anything is written.
    for (const change of changes) {
      checkName(change.name);
      if (change.value !== null && change.value.length !== RECORD_BYTES) {
        throw new RangeError(`a record value is ${RECORD_BYTES} bytes, not ${change.value.length}`);
      }
    }
    try {
      if (this.synchronousFull !== durable) {
        this.db.pragma(`synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
        this.synchronousFull = durable;
      }
      if (this.reserve) this.reserve.keeper.write(() => this.applyInTransaction(changes), () => changes.some((c) => c.value === null));
      else this.applyInTransaction(changes);
    } catch (err) {
      throw sqliteFailure(err, `writing ${this.file}`);
    }
  }

  /** Rows in the table: live records, chaff and the state record (5.1). */
  rowCount(): number {
    try {
      return this.countStmt.get()!.n;
    } catch (err) {
      throw sqliteFailure(err, `counting the rows of ${this.file}`);
    }
  }

  /** The name of every row whose name is a 32-byte BLOB (malformedRows() reports the others): fsck's census. */
  *names(): Generator<Buffer> {
    let rows: IterableIterator<unknown>;
    try {
      rows = this.db.prepare('SELECT k FROM r').iterate();
    } catch (err) {
      throw sqliteFailure(err, `listing the rows of ${this.file}`);
    }
    for (const row of rows as IterableIterator<{ k: unknown }>) {
      if (Buffer.isBuffer(row.k) && row.k.length === RECORD_NAME_BYTES) yield row.k;
    }
  }

  /** Every row that is not a 32-byte BLOB name and a 4,000-byte BLOB value: each is damaged (fsck). */
  malformedRows(): MalformedRow[] {
    let rows: { id: bigint; k: unknown; kBytes: bigint; vBytes: bigint }[];
    try {
      rows = this.malformedStmt.all();
    } catch (err) {
      throw sqliteFailure(err, `checking the rows of ${this.file}`);
    }
    return rows.map((row) => ({
      id: row.id,
      name: Buffer.isBuffer(row.k) ? row.k : null,
      nameBytes: Number(row.kBytes),
      valueBytes: Number(row.vBytes),
    }));
  }

  /**
   * wal_checkpoint(TRUNCATE): copies the WAL into meta2.db and empties it, so old frames do not linger
   * (5.8). False when a reader kept it from completing.
   */
  checkpoint(): boolean {
    this.refuseIfReadOnly();
    try {
      const [result] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      return result?.busy === 0;
    } catch (err) {
      throw sqliteFailure(err, `checkpointing ${this.file}`);
    }
  }

  /** Checks again that SQLite's descriptors are the files at the paths of meta2.db, -wal and -shm. */
  checkIdentity(): void {
    checkDescriptors(this.identity);
  }

  close(): void {
    try {
      this.db.close();
    } finally {
      this.reserve?.dir.close();
    }
  }

  private refuseIfReadOnly(): void {
    if (this.readOnly) throw new FsError('EROFS', `${this.file} is open read-only`);
  }

  /** Inserts a new row under a random id, drawn again on a clash. */
  private insert(name: Buffer, value: Buffer): void {
    for (let draw = 0; draw < MAX_ID_DRAWS; draw++) {
      const id = this.drawId();
      if (id <= 0n || id > ID_MASK) throw new RangeError(`row id ${id} is not a positive 63-bit integer`);
      if (this.insertStmt.run(id, name, value).changes === 1) return;
    }
    throw new Error(`${MAX_ID_DRAWS} random row ids in a row were taken: the id generator is broken`);
  }
}

/**
 * A failure of SQLite as the FsError the FUSE adapter returns: a full disk is ENOSPC, a read-only one
 * EROFS, a corrupt database an IntegrityError (damaged), anything else EIO. better-sqlite3's SqliteError
 * carries SQLite's code, not an errno, and is not an FsError.
 */
function sqliteFailure(err: unknown, doing: string): FsError {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return fromSystemError(err, doing);
  const message = `${doing}: ${(err as Error).message} (${code})`;
  if (code === 'SQLITE_FULL') return new FsError('ENOSPC', message);
  if (code.startsWith('SQLITE_READONLY')) return new FsError('EROFS', message);
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return new IntegrityError(message, 'damaged');
  return new FsError('EIO', message);
}

function checkName(name: Buffer): void {
  if (name.length !== RECORD_NAME_BYTES) throw new RangeError(`a record name is ${RECORD_NAME_BYTES} bytes, not ${name.length}`);
}

function isSqliteError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

// ---- The identity check of section 2 ----
//
// SQLite opens meta2.db, -wal and -shm by path, following symbolic links, and better-sqlite3 offers no
// way to hand it descriptors of ours. So each is lstat'ed before the open, and refused unless it is absent
// or a regular file. After the open, SQLite's descriptors are found through /proc/self/fd (readlink gives
// the path each was opened at, resolved), and each is stat'ed through its /proc link, which is an fstat
// of the descriptor. Each must be a regular file with the device and inode that lstat saw before the open,
// and that lstat sees at the path now; a file SQLite opened somewhere else (through a link swapped in) has
// no descriptor at the expected path and is refused too.
//
// What remains is a race: a file swapped in between the lstat and SQLite's open is detected only after
// SQLite opened it, and SQLite may already have read it, and written to -shm (WAL recovery writes the
// index) or created -wal or -shm through a planted link, before the refusal. The files are then closed
// and nothing of the vault is written, but that one open, read or write is not prevented. Closing it
// needs SQLite to open the files itself with O_NOFOLLOW under a descriptor of the store directory (a VFS
// of ours, or SQLITE_OPEN_NOFOLLOW, which better-sqlite3 does not expose). The README says so (section 2).

interface FileIdentity {
  dir: string;
  /** The store directory, resolved: what /proc/self/fd's links start with. */
  realDir: string;
  /** meta2.db, -wal and -shm, each with its lstat before the open, or null when it was absent. */
  stats: Map<string, BigIntStats | null>;
}

function sqliteFiles(file: string): string[] {
  return [file, `${file}-wal`, `${file}-shm`];
}

function kindOf(stats: BigIntStats): string {
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function lstatOrNull(path: string): BigIntStats | null {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function lstatBeforeOpen(dir: string, file: string): FileIdentity {
  const stats = new Map<string, BigIntStats | null>();
  try {
    for (const name of sqliteFiles(file)) {
      const s = lstatOrNull(join(dir, name));
      if (s && !s.isFile()) throw new BadStoreError(dir, `${name} is ${kindOf(s)}, not a regular file: refused`);
      stats.set(name, s);
    }
    return { dir, realDir: realpathSync(dir), stats };
  } catch (err) {
    if (err instanceof BadStoreError) throw err;
    throw fromSystemError(err, `checking ${join(dir, file)}`);
  }
}

/** The descriptors of this process, by the path each was opened at (readlink of /proc/self/fd/N). */
function descriptorsByPath(dir: string): Map<string, string[]> {
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch (err) {
    // Fail closed: without /proc the check cannot be made (svault runs on Linux).
    throw new BadStoreError(dir, `cannot list this process's descriptors in /proc/self/fd (${(err as Error).message}): the metadata files cannot be checked`);
  }
  const byPath = new Map<string, string[]>();
  for (const fd of entries) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed since the listing (readdir's own descriptor, among others)
    }
    const links = byPath.get(target);
    if (links) links.push(`/proc/self/fd/${fd}`);
    else byPath.set(target, [`/proc/self/fd/${fd}`]);
  }
  return byPath;
}

function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** Refuses unless each of `names` is open, and every descriptor of it is the regular file at its path, and the file lstat'ed before. */
function checkDescriptors(identity: FileIdentity, names = [...identity.stats.keys()]): void {
  const { dir, realDir } = identity;
  const byPath = descriptorsByPath(dir);
  for (const name of names) {
    const links = byPath.get(join(realDir, name)) ?? [];
    if (links.length === 0) throw new BadStoreError(dir, `SQLite has no descriptor of ${name} at its path: it opened another file (a link or a swap), refused`);
    const now = lstatOrNull(join(dir, name));
    if (!now || !now.isFile()) throw new BadStoreError(dir, `${name} is ${now ? kindOf(now) : 'gone'} since SQLite opened it: refused`);
    const before = identity.stats.get(name);
    for (const link of links) {
      let opened: BigIntStats;
      try {
        opened = statSync(link, { bigint: true });
      } catch {
        continue; // the descriptor was closed since the listing
      }
      if (!opened.isFile()) throw new BadStoreError(dir, `SQLite opened ${name} as ${kindOf(opened)}: refused`);
      if (!sameFile(opened, now) || (before && !sameFile(opened, before))) {
        throw new BadStoreError(dir, `${name} changed while SQLite opened it (device and inode differ from the file checked before): refused`);
      }
    }
  }
}
