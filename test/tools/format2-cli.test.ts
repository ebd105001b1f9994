// svault fsck, info and passwd on a format-2 store (docs/format-2.md 5.10, 10.2, 13), through the real CLI.
// Each store is written through Vault2 directly (no mount), then damaged for real: a piece blob deleted or
// flipped, a blob planted, an inode record replayed from an older copy of meta2.db. fsck must name the inode,
// exit as format 1's does (0, 7, 8, 9), repair, and without --repair leave every file of the store as it was.
// A store between an upgrade and its --finish, and a format-1 store, are checked too.

import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsError, WrongPassphraseError } from '../../src/core/errors.js';
import { upgradeStore } from '../../src/core/format2/upgrade.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { BLOB_DIR } from '../../src/core/store/local-dir-store.js';
import { Vault } from '../../src/core/vault/vault.js';
import { PASSPHRASE, sandbox, type Sandbox } from '../helpers/cli.js';
import { blobFiles } from '../helpers/reliability-util.js';
import { snapshotDir, snapshotObject } from '../helpers/temp-vault.js';

const P = 16384;
/** Regular files and their sizes: /a and /d/c in pieces, /d/b INLINE (no blob). */
const FILES: Record<string, number> = { '/a': 3 * P + 100, '/d/b': 100, '/d/c': 2 * P };
const PIECES = 4 + 2;
const STACK_TRACE = /\n\s+at /;

interface Store2Box {
  box: Sandbox;
  data: Map<string, Buffer>;
}

/**
 * A format-2 store in a sandbox, written through Vault2: three files, a directory, a symlink and a FIFO. At a
 * chaff ratio of 1.5 every piece has one or two chaff blobs, so there always is chaff to tell from orphans.
 */
async function format2Store(t: ExecutionContext, chaffRatio = 1.5): Promise<Store2Box> {
  const box = sandbox(t, 'f2cli');
  const data = new Map<string, Buffer>();
  const v = await Vault2.create(box.store, PASSPHRASE, { pieceSize: P, chaffRatio }, { pieceWorker: false });
  try {
    v.paths.mkdir('/d', 0o755, 0, 0);
    for (const [path, size] of Object.entries(FILES)) {
      const bytes = randomBytes(size);
      data.set(path, bytes);
      const fh = v.paths.create(path, 0o644, 0, 0);
      await v.write(fh, bytes, 0);
      await v.release(fh);
    }
    v.paths.symlink('a', '/l', 0, 0);
    v.paths.mknod('/fifo', 0o010644, 0, 0, 0);
  } finally {
    await v.close();
  }
  return { box, data };
}

/** Runs fn over the store opened to look (no lock, nothing written). */
async function looking<T>(store: string, fn: (v: Vault2) => T | Promise<T>, passphrase = PASSPHRASE): Promise<T> {
  const v = await Vault2.open(store, passphrase, { noLock: true, inspectOnly: true, pieceWorker: false });
  try {
    return await fn(v);
  } finally {
    await v.close();
  }
}

/** The ino of a path, and the blob file of one of its pieces. */
async function pieceBlob(store: string, path: string, index: number): Promise<{ ino: number; blob: string }> {
  return looking(store, (v) => {
    const ino = v.paths.idAt(path);
    const { md, pieces } = v.check();
    const slot = [...(md.pieceMapIfAny(ino)?.versions() ?? [])].find((s) => s.index === index);
    if (!slot) throw new Error(`${path} has no piece ${index}`);
    const hex = pieces.pieceAddress(md.requireInode(ino), index, slot.version).toString('hex');
    return { ino, blob: join(store, BLOB_DIR, hex.slice(0, 2), hex) };
  });
}

/** The content of a file, read through Vault2, or the errno of the first read that fails. */
async function readThrough(store: string, path: string, size: number, passphrase = PASSPHRASE): Promise<Buffer | string> {
  return looking(store, async (v) => {
    let fh: number | undefined;
    try {
      fh = v.paths.open(path);
      const out = Buffer.alloc(size);
      for (let at = 0; at < size; at += P) await v.read(fh, out.subarray(at), Math.min(P, size - at), at);
      return out;
    } catch (err) {
      if (err instanceof FsError) return err.errno;
      throw err;
    } finally {
      if (fh !== undefined) await v.release(fh);
    }
  }, passphrase);
}

function fsck(box: Sandbox, extra: string[] = []) {
  return box.svault(['fsck', '--store', box.store, ...extra]);
}

interface FsckJson {
  before: { format: number; problems: { kind: string; ino?: number; detail: string }[]; orphans: number; pieces: number; special: number; quarantinedFiles: number };
  after?: FsckJson['before'];
}

/** fsck without --repair: the expected exit, and every file of the store (bytes and mtimes) as it was. */
async function checkLeavesStore(t: ExecutionContext, box: Sandbox, code: number): Promise<string> {
  const before = snapshotObject(snapshotDir(box.store));
  const r = await fsck(box);
  t.is(r.code, code, `fsck: ${r.stdout}${r.stderr}`);
  t.notRegex(r.stderr, STACK_TRACE);
  t.deepEqual(snapshotObject(snapshotDir(box.store)), before, 'fsck without --repair wrote to the store');
  return r.stdout;
}

/** The files that must have survived a repair intact, at their paths. */
async function checkIntact(t: ExecutionContext, s: Store2Box, paths: string[]): Promise<void> {
  for (const path of paths) {
    const got = await readThrough(s.box.store, path, (s.data.get(path) as Buffer).length);
    t.true(Buffer.isBuffer(got) && got.equals(s.data.get(path) as Buffer), `${path} reads back intact after the repair (${Buffer.isBuffer(got) ? 'other bytes' : got})`);
  }
}

test('info on a format-2 store: format 1\'s fields, special files, every blob a piece or chaff; it writes nothing', async (t) => {
  const s = await format2Store(t);
  const blobs = blobFiles(s.box.store).size;
  const before = snapshotObject(snapshotDir(s.box.store));
  const text = await s.box.svault(['info', '--store', s.box.store]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /format:\s+2 \(aes-256-gcm, scrypt N=\d+ r=8 p=1\)/);
  t.regex(text.stdout, /files:\s+3 files, 2 directories, 1 symlinks, 1 special files\n/);
  t.regex(text.stdout, new RegExp(`blobs:\\s+${blobs} \\(${PIECES} pieces, ${blobs - PIECES} chaff\\)`));
  const j = JSON.parse((await s.box.svault(['info', '--store', s.box.store, '--json'])).stdout) as Record<string, unknown>;
  const logical = Object.values(FILES).reduce((a, b) => a + b, 0);
  const meta2 = readFileSync(join(s.box.store, 'meta2.db')).length;
  t.like(j, { format: 2, files: 3, directories: 2, symlinks: 1, specialFiles: 1, pieces: PIECES, chaffBlobs: blobs - PIECES, blobs, logicalBytes: logical, metadataBytes: meta2, pieceSize: P, chaffRatio: 1.5 });
  t.true(blobs >= 2 * PIECES, 'at least one chaff blob per piece');
  t.deepEqual(Object.keys(j).slice(0, 13), ['store', 'generatedPassphraseFile', 'format', 'vaultId', 'cipher', 'kdf', 'pieceSize', 'chaffRatio', 'files', 'directories', 'symlinks', 'specialFiles', 'pieces']);
  t.deepEqual(snapshotObject(snapshotDir(s.box.store)), before, 'info wrote to the store');
});

test('fsck on a sound format-2 store: exit 0, "clean", --json with format 2; the store is left byte for byte', async (t) => {
  const s = await format2Store(t);
  const out = await checkLeavesStore(t, s.box, 0);
  t.regex(out, new RegExp(`^check: 3 files, 2 directories, 1 symlinks, 1 special files, ${PIECES} pieces checked, \\d+ chaff blobs\\n  clean\\n$`));
  const j = await fsck(s.box, ['--json']);
  t.is(j.code, 0);
  const report = (JSON.parse(j.stdout) as FsckJson).before;
  t.like(report, { format: 2, problems: [], orphans: 0, pieces: PIECES, special: 1 });
  const r = await fsck(s.box, ['--repair']);
  t.is(r.code, 0, `--repair on a clean store: ${r.stdout}`);
  t.regex(r.stdout, /after repair: .*\n  clean\n$/);
});

test('a deleted piece blob: missing-piece names the inode (7); --repair quarantines the file into /lost+found (8), then clean', async (t) => {
  const s = await format2Store(t);
  const { ino, blob } = await pieceBlob(s.box.store, '/a', 1);
  unlinkSync(blob);
  const out = await checkLeavesStore(t, s.box, 7);
  t.regex(out, new RegExp(`^  missing-piece: inode ${ino}: piece 1 \\(version \\d+\\) is missing from the store$`, 'm'));
  t.notRegex(out, /clean/);
  const j = JSON.parse((await fsck(s.box, ['--json'])).stdout) as FsckJson;
  t.deepEqual(j.before.problems.map((p) => [p.kind, p.ino]), [['missing-piece', ino]]);

  const r = await fsck(s.box, ['--repair']);
  t.is(r.code, 8, `${r.stdout}${r.stderr}`);
  t.regex(r.stdout, /after repair: .*\n  1 file\(s\) with quarantined pieces \(damaged pieces read as errors\)\n  clean\n$/);
  const moved = `/lost+found/a.${ino}`;
  t.is(await readThrough(s.box.store, '/a', P), 'ENOENT', '/a is no longer at its path');
  t.is(await readThrough(s.box.store, moved, (s.data.get('/a') as Buffer).length), 'EIO', 'its lost piece reads as an error');
  t.true((await readThrough(s.box.store, moved, P) as Buffer).equals((s.data.get('/a') as Buffer).subarray(0, P)), 'its piece 0 still reads');
  await checkIntact(t, s, ['/d/b', '/d/c']);
  const again = await fsck(s.box);
  t.is(again.code, 0, again.stdout);
});

test('a flipped byte in a piece blob: bad-piece names the inode (7); --repair deletes the blob and quarantines the file (8)', async (t) => {
  const s = await format2Store(t);
  const { ino, blob } = await pieceBlob(s.box.store, '/d/c', 0);
  const bytes = readFileSync(blob);
  bytes[200] = (bytes[200] as number) ^ 0x01;
  writeFileSync(blob, bytes);
  const out = await checkLeavesStore(t, s.box, 7);
  t.regex(out, new RegExp(`^  bad-piece: inode ${ino}: piece 0 \\(version \\d+\\) failed authentication$`, 'm'));

  const r = await fsck(s.box, ['--repair', '--json']);
  t.is(r.code, 8, r.stderr);
  const j = JSON.parse(r.stdout) as FsckJson;
  t.deepEqual(j.before.problems.map((p) => [p.kind, p.ino]), [['bad-piece', ino]]);
  t.like(j.after, { problems: [], orphans: 0, quarantinedFiles: 1 });
  t.false(existsSync(blob), 'the damaged blob is deleted');
  t.is(await readThrough(s.box.store, `/lost+found/c.${ino}`, P), 'EIO');
  await checkIntact(t, s, ['/a', '/d/b']);
  t.is((await fsck(s.box)).code, 0);
});

test('planted blobs are orphans (7); --repair deletes exactly them (8); the pieces and chaff stay', async (t) => {
  const s = await format2Store(t);
  const before = blobFiles(s.box.store);
  const { blob } = await pieceBlob(s.box.store, '/a', 0);
  const plant = (bytes: Buffer) => {
    const hex = randomBytes(32).toString('hex');
    mkdirSync(join(s.box.store, BLOB_DIR, hex.slice(0, 2)), { recursive: true });
    writeFileSync(join(s.box.store, BLOB_DIR, hex.slice(0, 2), hex), bytes);
    return `${hex.slice(0, 2)}/${hex}`;
  };
  const planted = [plant(readFileSync(blob)), plant(randomBytes(P + 64))];
  const out = await checkLeavesStore(t, s.box, 7);
  t.regex(out, /^  2 orphaned blob\(s\) \(no file points to them\)$/m);
  const r = await fsck(s.box, ['--repair']);
  t.is(r.code, 8, `${r.stdout}${r.stderr}`);
  const after = blobFiles(s.box.store);
  t.deepEqual([...after].sort(), [...before].sort(), 'exactly the planted blobs are gone');
  for (const p of planted) t.false(after.has(p));
  await checkIntact(t, s, Object.keys(FILES));
  t.is((await fsck(s.box)).code, 0);
});

test('a replayed inode record (a chmod undone): stale-record names the inode (7); --repair drops the file and its blobs (8)', async (t) => {
  const s = await format2Store(t);
  const db = join(s.box.store, 'meta2.db');
  const old = join(s.box.dir, 'meta2-before.db');
  copyFileSync(db, old); // the vault was closed: the WAL is checkpointed into meta2.db
  const { ino, name } = await (async () => {
    const v = await Vault2.open(s.box.store, PASSPHRASE, { pieceWorker: false });
    try {
      const id = v.paths.idAt('/d/c');
      v.paths.chmod('/d/c', 0o600);
      return { ino: id, name: v.check().md.inodeRecordNames(id).record };
    } finally {
      await v.close();
    }
  })();
  const fileBlobs = await Promise.all([0, 1].map(async (i) => (await pieceBlob(s.box.store, '/d/c', i)).blob));
  const oldDb = new Database(old, { readonly: true });
  const row = oldDb.prepare<[Buffer], { v: Buffer }>('SELECT v FROM r WHERE k = ?').get(name);
  oldDb.close();
  if (!row) throw new Error('no old inode record');
  const store = new Database(db);
  t.is(store.prepare('UPDATE r SET v = ? WHERE k = ?').run(row.v, name).changes, 1);
  store.close();

  const out = await checkLeavesStore(t, s.box, 7);
  t.regex(out, new RegExp(`^  stale-record: inode ${ino}: `, 'm'));
  t.false(out.includes('/d/c'), 'problems name inodes, not paths');
  const r = await fsck(s.box, ['--repair']);
  t.is(r.code, 8, `${r.stdout}${r.stderr}`);
  t.is(await readThrough(s.box.store, '/d/c', 1), 'ENOENT', 'the file whose record was replayed is gone');
  for (const b of fileBlobs) t.false(existsSync(b), 'its pieces went as orphans');
  await checkIntact(t, s, ['/a', '/d/b']);
  t.is((await fsck(s.box)).code, 0);
});

test('a wrong passphrase is exit 3 and a mounted (locked) store exit 6 for fsck, as on format 1; info reads a locked store', async (t) => {
  const s = await format2Store(t);
  for (const cmd of ['info', 'fsck', 'passwd']) {
    const r = await s.box.svault([cmd, '--store', s.box.store], { env: { SVAULT_PASSPHRASE: 'not it' } });
    t.is(r.code, 3, `${cmd}: ${r.stderr}`);
    t.regex(r.stderr, /wrong passphrase/);
  }
  // The lock of a live process that is not the CLI's: this test's own.
  writeFileSync(join(s.box.store, 'svault.lock'), String(process.pid));
  const busy = await fsck(s.box);
  t.is(busy.code, 6, busy.stderr);
  t.is((await fsck(s.box, ['--repair'])).code, 6);
  t.is((await s.box.svault(['info', '--store', s.box.store])).code, 0, 'info needs no lock');
  unlinkSync(join(s.box.store, 'svault.lock'));
  t.is((await fsck(s.box)).code, 0);
});

test('passwd on a format-2 store rewraps svault.json only: the old passphrase is refused, the new one opens it', async (t) => {
  const s = await format2Store(t);
  const before = snapshotObject(snapshotDir(s.box.store));
  const next = join(s.box.dir, 'next');
  writeFileSync(next, 'a new passphrase\n');
  const r = await s.box.svault(['passwd', '--store', s.box.store, '--new-passphrase-file', next]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /changed the passphrase of the vault/);
  const after = snapshotObject(snapshotDir(s.box.store));
  t.notDeepEqual(after['svault.json'], before['svault.json']);
  t.deepEqual({ ...after, 'svault.json': null }, { ...before, 'svault.json': null }, 'nothing but svault.json changed');
  t.is((await s.box.svault(['info', '--store', s.box.store])).code, 3, 'the old passphrase no longer opens it');
  t.is((await s.box.svault(['info', '--store', s.box.store], { env: { SVAULT_PASSPHRASE: 'a new passphrase' } })).code, 0);
  await t.throwsAsync(Vault2.open(s.box.store, PASSPHRASE, { noLock: true, inspectOnly: true }), { instanceOf: WrongPassphraseError });
  for (const [path, bytes] of s.data) {
    const got = await readThrough(s.box.store, path, bytes.length, 'a new passphrase');
    t.true(Buffer.isBuffer(got) && got.equals(bytes), `${path} reads under the new passphrase (${Buffer.isBuffer(got) ? 'other bytes' : got})`);
  }
});

test('between an upgrade and its --finish, format 1\'s superseded pieces are kept and fsck says so in notes, not problems (4.4)', async (t) => {
  const box = sandbox(t, 'f2up');
  const v1 = await Vault.create(box.store, PASSPHRASE, { pieceSize: P, chaffRatio: 0 });
  await v1.writeFile('/f', randomBytes(P));
  await v1.close();
  await upgradeStore(box.store, PASSPHRASE);
  const v = await Vault2.open(box.store, PASSPHRASE, { pieceWorker: false });
  try {
    const fh = v.paths.open('/f');
    await v.write(fh, randomBytes(P), 0); // a new version of piece 0: format 1's stays for a rollback
    await v.release(fh);
  } finally {
    await v.close();
  }
  const blobs = blobFiles(box.store);
  t.is(blobs.size, 2, 'the format-1 piece and its format-2 successor');
  const out = await checkLeavesStore(t, box, 0);
  t.regex(out, /^  note: format-1 files kept for rollback: meta\.db, svault\.format1\.json$/m);
  t.regex(out, /^  note: 1 blob\(s\) no file points to, .* are kept until svault upgrade --finish$/m);
  t.regex(out, /\n  clean\n$/);
  const r = await fsck(box, ['--repair']);
  t.is(r.code, 0, r.stdout);
  t.deepEqual(blobFiles(box.store), blobs, '--repair deletes none of them');
});

test('a format-1 store: info reads it; fsck, passwd and mount refuse it with exit 4 and the advice to upgrade, before asking for a passphrase', async (t) => {
  const box = sandbox(t, 'f1cli');
  // A format-1 store, as an earlier svault made it.
  await (await Vault.create(box.store, PASSPHRASE, { pieceSize: P, chaffRatio: 0 })).close();
  const v = await Vault.open(box.store, PASSPHRASE, { pieceWorker: false });
  await v.writeFile('/f', randomBytes(2 * P));
  await v.close();
  const before = snapshotObject(snapshotDir(box.store));
  const info = await box.svault(['info', '--store', box.store]);
  t.is(info.code, 0, info.stderr);
  t.regex(info.stdout, /^files:\s+1 files, 1 directories, 0 symlinks\n/m);
  const j = JSON.parse((await box.svault(['info', '--store', box.store, '--json'])).stdout) as Record<string, unknown>;
  t.is(j.format, 1);
  for (const args of [['fsck', '--store', box.store], ['fsck', '--repair', '--store', box.store], ['passwd', '--store', box.store, '--new-passphrase-file', '/dev/null'], ['mount', '--store', box.store, box.mnt]]) {
    // No passphrase anywhere: the refusal must come before one is asked for.
    const r = await box.svault(args, { env: { SVAULT_PASSPHRASE: '' } });
    t.is(r.code, 4, `${args[0]}: ${r.stderr}`);
    t.regex(r.stderr, /format 1: run svault upgrade --store /, args[0]);
  }
  t.deepEqual(snapshotObject(snapshotDir(box.store)), before, 'nothing in the store changed');
});
