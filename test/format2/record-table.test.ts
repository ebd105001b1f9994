// meta2.db's table (src/core/format2/record-table.ts; docs/format-2.md, 5.1, 5.8 and section 2): the
// settings it is created with, the databases it refuses, one page per record (measured in the WAL),
// random ids, atomic batches, and the identity check of meta2.db, -wal and -shm around SQLite's open.

import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadStoreError, FsError, IntegrityError } from '../../src/core/errors.js';
import {
  APPLICATION_ID,
  META2_FILE,
  PAGE_SIZE,
  RecordTable,
  type RecordChange,
} from '../../src/core/format2/record-table.js';

const WAL_HEADER_BYTES = 32;
/** A WAL frame: a 24-byte frame header and one page. */
const WAL_FRAME_BYTES = 24 + PAGE_SIZE;

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'svault-record-table-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const name = (): Buffer => randomBytes(32);
const value = (): Buffer => randomBytes(4000);
const put = (n: Buffer, v: Buffer): RecordChange => ({ name: n, value: v });
const del = (n: Buffer): RecordChange => ({ name: n, value: null });

/** A second connection, read-only, to look at what the table wrote. */
function inspect<T>(dir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dir, META2_FILE), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function refused(t: ExecutionContext, fn: () => unknown, pattern: RegExp, message?: string): void {
  const err = t.throws(fn, { instanceOf: BadStoreError }, message);
  if (err) t.regex(err.message, pattern, message);
}

test('create sets 5.1’s settings; rows go in, are updated, read and deleted', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  const [a, b] = [name(), name()];
  const [va, vb, va2] = [value(), value(), value()];
  table.apply([put(a, va), put(b, vb)], true);
  t.deepEqual(table.get(a), va);
  t.deepEqual(table.get(b), vb);
  t.is(table.get(name()), null);
  t.is(table.rowCount(), 2);
  table.apply([put(a, va2), del(b)], false);
  t.deepEqual(table.get(a), va2);
  t.is(table.get(b), null);
  t.is(table.rowCount(), 1);
  table.apply([del(b)], false); // deleting what is not there is no error
  // synchronous is per connection: looked at through the table's own.
  const synchronous = () => (table as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true });
  t.is(synchronous(), 1, 'NORMAL after a batch that is not durable');
  table.apply([put(b, vb)], true);
  t.is(synchronous(), 2, 'FULL after a durable one');
  table.apply([del(b)], false);
  t.is(synchronous(), 1);
  inspect(dir, (db) => {
    t.is(db.pragma('page_size', { simple: true }), 4096);
    t.is(db.pragma('application_id', { simple: true }), 0x53563032);
    t.is(db.pragma('user_version', { simple: true }), 2);
    t.is(db.pragma('journal_mode', { simple: true }), 'wal');
    const sql = (db.prepare("SELECT sql FROM sqlite_master WHERE name = 'r'").get() as { sql: string }).sql;
    t.is(sql, 'CREATE TABLE r (id INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE, v BLOB NOT NULL)');
  });
  t.throws(() => table.apply([put(a, Buffer.alloc(3999))], false), { instanceOf: RangeError });
  t.throws(() => table.apply([put(Buffer.alloc(31), value())], false), { instanceOf: RangeError });
  t.throws(() => table.get(Buffer.alloc(33)), { instanceOf: RangeError });
});

test('a table closed and opened again keeps its rows; create refuses an existing database', (t) => {
  const dir = tempDir(t);
  const a = name();
  const va = value();
  const first = RecordTable.create(dir);
  first.apply([put(a, va)], true);
  first.close();
  refused(t, () => RecordTable.create(dir), /meta2\.db already exists/);
  const again = RecordTable.open(dir);
  t.deepEqual(again.get(a), va);
  again.close();
  const readOnly = RecordTable.open(dir, META2_FILE, { readOnly: true });
  t.deepEqual(readOnly.get(a), va);
  t.is(t.throws(() => readOnly.apply([put(a, value())], true), { instanceOf: FsError })?.errno, 'EROFS');
  readOnly.close();
  refused(t, () => RecordTable.open(tempDir(t)), /meta2\.db is missing/);
});

test('a database that is not format 2’s is refused, naming the file', (t) => {
  const make = (setUp: (db: Database.Database) => void): string => {
    const dir = tempDir(t);
    const db = new Database(join(dir, META2_FILE));
    db.pragma('journal_mode = WAL');
    setUp(db);
    db.close();
    return dir;
  };
  const formatOne = make((db) => db.exec('CREATE TABLE records (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID'));
  refused(t, () => RecordTable.open(formatOne), /meta2\.db is not a format-2 metadata database \(application_id 0x0/, 'application_id 0 (format 1’s meta.db)');
  const otherApp = make((db) => {
    db.pragma('application_id = 1234');
    db.pragma('user_version = 2');
  });
  refused(t, () => RecordTable.open(otherApp), /meta2\.db is not a format-2.*application_id 0x4d2/, 'another application id');
  const otherVersion = make((db) => {
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma('user_version = 3');
  });
  refused(t, () => RecordTable.open(otherVersion), /meta2\.db is not a format-2.*user_version 3/, 'user_version 3');
  const notSqlite = tempDir(t);
  writeFileSync(join(notSqlite, META2_FILE), randomBytes(8192));
  refused(t, () => RecordTable.open(notSqlite), /meta2\.db is damaged or not a database/, 'random bytes');
  // A rekeyed vault's database goes by its key id: the name in the message is that file's.
  const rekeyed = tempDir(t);
  const db = new Database(join(rekeyed, 'meta2-0011223344556677.db'));
  db.close();
  refused(t, () => RecordTable.open(rekeyed, 'meta2-0011223344556677.db'), /meta2-0011223344556677\.db is not a format-2/);
});

test('a 4,000-byte record is one page: no overflow pages, and an UPDATE grows the WAL by one 4,120-byte frame', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  const names = Array.from({ length: 2000 }, name);
  table.apply(names.map((n) => put(n, value())), true);
  t.true(table.checkpoint(), 'the checkpoint completes');
  const wal = join(dir, `${META2_FILE}-wal`);
  t.is(statSync(wal).size, 0, 'TRUNCATE empties the WAL');
  inspect(dir, (db) => {
    const pages = db.prepare("SELECT pagetype, count(*) AS n FROM dbstat WHERE name = 'r' GROUP BY pagetype").all() as { pagetype: string; n: number }[];
    const byType = new Map(pages.map((p) => [p.pagetype, p.n]));
    t.is(byType.get('overflow'), undefined, 'no overflow page');
    t.is(byType.get('leaf'), 2000, 'one leaf page per row');
  });
  table.apply([put(names[17]!, value())], true);
  t.is(statSync(wal).size, WAL_HEADER_BYTES + WAL_FRAME_BYTES, 'one frame after the WAL header');
  t.is(WAL_FRAME_BYTES, 4120);
  table.apply([put(names[1234]!, value())], false);
  t.is(statSync(wal).size, WAL_HEADER_BYTES + 2 * WAL_FRAME_BYTES, 'and one more for the next update, durable or not');
});

test('row ids are random positive 63-bit integers, not in insert order; an UPDATE keeps the id', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  const names = Array.from({ length: 100 }, name);
  for (const n of names) table.apply([put(n, value())], false);
  const idOf = (n: Buffer): bigint =>
    inspect(dir, (db) => (db.prepare('SELECT id FROM r WHERE k = ?').safeIntegers(true).get(n) as { id: bigint }).id);
  const ids = names.map(idOf);
  t.true(ids.every((id) => id > 0n && id < 1n << 63n), 'positive 63-bit');
  t.is(new Set(ids).size, ids.length);
  const ascending = ids.every((id, i) => i === 0 || id > ids[i - 1]!);
  t.false(ascending, 'not ascending in insert order');
  const rises = ids.filter((id, i) => i > 0 && id > ids[i - 1]!).length;
  t.true(rises > 25 && rises < 74, `about half the steps go up (${rises} of 99), as for random ids`);
  t.true(ids.some((id) => id > 1n << 60n), 'they use the high bits');
  table.apply([put(names[5]!, value())], true);
  t.is(idOf(names[5]!), ids[5]!, 'an update keeps the id');
});

test('a clash of random ids draws again', (t) => {
  const dir = tempDir(t);
  const draws = [7n, 7n, 7n, 9n];
  const table = RecordTable.create(dir, META2_FILE, { drawId: () => draws.shift() ?? 11n });
  t.teardown(() => table.close());
  const [a, b] = [name(), name()];
  table.apply([put(a, value())], false);
  table.apply([put(b, value())], false);
  const ids = inspect(dir, (db) => db.prepare('SELECT id FROM r ORDER BY id').all() as { id: number }[]);
  t.deepEqual(ids.map((r) => r.id), [7, 9]);
  t.is(draws.length, 0, 'the clashing 7s were drawn and passed over');
  const stuck = RecordTable.open(dir, META2_FILE, { drawId: () => 7n });
  t.teardown(() => stuck.close());
  t.throws(() => stuck.apply([put(name(), value())], false), { message: /id generator is broken/ });
});

test('a batch is atomic: one that fails midway leaves nothing of itself', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  const [kept, updated, deleted, added, poisoned] = [name(), name(), name(), name(), name()];
  const before = { kept: value(), updated: value(), deleted: value() };
  table.apply([put(kept, before.kept), put(updated, before.updated), put(deleted, before.deleted)], true);
  // A trigger makes the fourth change fail inside the transaction, after three were applied.
  const db = new Database(join(dir, META2_FILE));
  db.exec(`CREATE TRIGGER poison BEFORE INSERT ON r WHEN NEW.k = x'${poisoned.toString('hex')}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`);
  db.close();
  const batch = [put(updated, value()), del(deleted), put(added, value()), put(poisoned, value())];
  const err = t.throws(() => table.apply(batch, true), { instanceOf: FsError, message: /poisoned/ });
  t.is(err?.errno, 'EIO');
  t.deepEqual(table.get(updated), before.updated, 'the update is undone');
  t.deepEqual(table.get(deleted), before.deleted, 'the delete is undone');
  t.is(table.get(added), null, 'the insert is undone');
  t.is(table.get(poisoned), null);
  t.is(table.rowCount(), 3);
  // A wrong length anywhere in a batch refuses it before anything is written.
  t.throws(() => table.apply([put(added, value()), put(name(), Buffer.alloc(4001))], false), { instanceOf: RangeError });
  t.is(table.get(added), null);
  // And the table works on after a failed batch.
  table.apply([put(added, value())], false);
  t.is(table.rowCount(), 4);
});

test('malformed rows are found for fsck, and a value that is not a BLOB is damaged', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  const good = name();
  table.apply([put(good, value())], false);
  const shortName = randomBytes(31);
  const [shortValue, textValue] = [name(), name()];
  const db = new Database(join(dir, META2_FILE));
  const insert = db.prepare('INSERT INTO r (id, k, v) VALUES (?, ?, ?)');
  insert.run(1, shortName, value());
  insert.run(2, shortValue, randomBytes(3999));
  insert.run(3, textValue, 'x'.repeat(4000));
  db.close();
  const bad = table.malformedRows().sort((x, y) => Number(x.id - y.id));
  t.deepEqual(bad, [
    { id: 1n, name: shortName, nameBytes: 31, valueBytes: 4000 },
    { id: 2n, name: shortValue, nameBytes: 32, valueBytes: 3999 },
    { id: 3n, name: textValue, nameBytes: 32, valueBytes: 4000 },
  ]);
  const err = t.throws(() => table.get(textValue), { instanceOf: IntegrityError });
  t.is((err as IntegrityError | undefined)?.kind, 'damaged');
  t.is(table.get(shortValue)?.length, 3999, 'a short BLOB is returned: record-seal.ts calls it damaged (5.2, step 2)');
});

test('secure_delete: a deleted row’s bytes are gone from meta2.db after a checkpoint', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  const a = name();
  const secret = value();
  table.apply([put(a, secret), ...Array.from({ length: 20 }, () => put(name(), value()))], true);
  t.true(table.checkpoint());
  const marker = secret.subarray(1000, 1064);
  t.true(readFileSync(join(dir, META2_FILE)).includes(marker), 'control: the bytes are there before the delete');
  table.apply([del(a)], true);
  t.true(table.checkpoint());
  t.false(readFileSync(join(dir, META2_FILE)).includes(marker));
  t.false(readFileSync(join(dir, META2_FILE)).includes(a), 'nor its name (the index cell is zeroed too)');
});

// ---- The identity check of section 2 ----

test('a symlinked meta2.db, -wal or -shm is refused, naming it', (t) => {
  for (const target of [META2_FILE, `${META2_FILE}-wal`, `${META2_FILE}-shm`]) {
    const elsewhere = tempDir(t);
    RecordTable.create(elsewhere).close();
    const dir = tempDir(t);
    if (target === META2_FILE) {
      symlinkSync(join(elsewhere, META2_FILE), join(dir, META2_FILE));
    } else {
      RecordTable.create(dir).close();
      writeFileSync(join(elsewhere, 'victim'), 'untouched');
      symlinkSync(join(elsewhere, 'victim'), join(dir, target));
    }
    refused(t, () => RecordTable.open(dir), new RegExp(`^${dir}: ${target.replace('.', '\\.')} is a symbolic link`), target);
    if (target !== META2_FILE) t.is(readFileSync(join(elsewhere, 'victim'), 'utf8'), 'untouched', `${target}: the link's target is not written`);
  }
  const dir = tempDir(t);
  symlinkSync(join(dir, 'nowhere'), join(dir, META2_FILE));
  refused(t, () => RecordTable.create(dir), /meta2\.db is a symbolic link/, 'create: a dangling link');
});

test('a FIFO at meta2.db-wal, a directory at -shm and a FIFO at meta2.db are refused before SQLite opens them', (t) => {
  const planted: [string, (path: string) => void, RegExp][] = [
    [`${META2_FILE}-wal`, (p) => execFileSync('mkfifo', [p]), /meta2\.db-wal is a FIFO, not a regular file/],
    [`${META2_FILE}-shm`, (p) => mkdirSync(p), /meta2\.db-shm is a directory/],
    [META2_FILE, (p) => execFileSync('mkfifo', [p]), /meta2\.db is a FIFO/],
  ];
  for (const [file, plant, pattern] of planted) {
    const dir = tempDir(t);
    if (file !== META2_FILE) RecordTable.create(dir).close();
    plant(join(dir, file));
    refused(t, () => RecordTable.open(dir), pattern, file);
    refused(t, () => RecordTable.create(dir), pattern, `create: ${file}`);
  }
});

test('a file swapped in between the lstat and SQLite’s open is refused after the open', (t) => {
  const dir = tempDir(t);
  RecordTable.create(dir).close();
  const other = tempDir(t);
  RecordTable.create(other).close();
  // Another valid format-2 database takes meta2.db's place in the window the check cannot close.
  refused(
    t,
    () => RecordTable.open(dir, META2_FILE, { beforeSqliteOpens: () => renameSync(join(other, META2_FILE), join(dir, META2_FILE)) }),
    /meta2\.db changed while SQLite opened it/,
  );
  // Control: without the swap, the same database opens.
  RecordTable.open(dir).close();
  // A symbolic link swapped in: SQLite follows it, and has no descriptor at meta2.db's path.
  const linked = tempDir(t);
  RecordTable.create(linked).close();
  const target = tempDir(t);
  RecordTable.create(target).close();
  refused(
    t,
    () =>
      RecordTable.open(linked, META2_FILE, {
        beforeSqliteOpens: () => {
          rmSync(join(linked, META2_FILE));
          symlinkSync(join(target, META2_FILE), join(linked, META2_FILE));
        },
      }),
    /SQLite has no descriptor of meta2\.db at its path/,
  );
});

test('checkIdentity refuses once meta2.db is not the file SQLite has open', (t) => {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  t.teardown(() => table.close());
  t.notThrows(() => table.checkIdentity());
  renameSync(join(dir, META2_FILE), join(dir, 'moved.db'));
  writeFileSync(join(dir, META2_FILE), '');
  refused(t, () => table.checkIdentity(), /meta2\.db/);
});
