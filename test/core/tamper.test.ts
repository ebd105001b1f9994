// Tampering with the store while the vault is closed (an attacker with write access to the store
// directory, but no key): every class of damage makes the read fail with IntegrityError (EIO) naming
// the piece or the record, never returns data, and leaves healthy neighbours readable.

import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { existsSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IntegrityError } from '../../src/core/errors.js';
import { fsck } from '../../src/core/fsck/fsck.js';
import { ROOT_ID } from '../../src/core/meta/inode.js';
import { META_FILE } from '../../src/core/meta/record-store.js';
import type { Vault } from '../../src/core/vault/vault.js';
import { CleanupList, createTempVault, patternBytes, readAt, writeAt, type TempVault } from '../helpers/temp-vault.js';

const P = 4096;
const hooks = new CleanupList();
let tv: TempVault;
/** Every file written, with its content before any damage. */
const files = new Map<string, Buffer>();
const HEALTHY = ['/healthy1', '/dir/healthy2', '/dir/healthy3'];
let inodeIds: Record<string, string> = {};

function flipBit(path: string, at: number, bit = 0): void {
  const b = readFileSync(path);
  const i = at < 0 ? b.length + at : at;
  b[i] = (b[i] as number) ^ (1 << bit);
  writeFileSync(path, b);
}

function swapContents(a: string, b: string): void {
  const ba = readFileSync(a);
  const bb = readFileSync(b);
  writeFileSync(a, bb);
  writeFileSync(b, ba);
}

test.before(async () => {
  tv = await createTempVault(hooks, { pieceSize: P, chaffRatio: 0.3 });
  const v = tv.vault;
  v.mkdir('/dir', 0o755);
  const add = async (path: string, size: number) => {
    const data = patternBytes(size, files.size + 1);
    await v.writeFile(path, data);
    files.set(path, data);
  };
  await add('/healthy1', 3 * P + 10);
  await add('/dir/healthy2', P);
  await add('/dir/healthy3', 17);
  await add('/bitflip', 4 * P);
  await add('/padding', 100);
  await add('/swap-within', 3 * P);
  await add('/swap-a', 2 * P);
  await add('/swap-b', 2 * P);
  await add('/rollback', 3 * P);
  await add('/truncated-blobs', 3 * P);
  await add('/tail-dropped', 4 * P);
  await add('/deleted', 3 * P);
  await add('/meta-inode', P + 5);
  await add('/meta-entry', 10);
  await add('/meta-moved-a', 20);
  await add('/meta-moved-b', 30);
  await add('/meta-dirpage', 40);

  // Rollback: keep version N of piece 1, rewrite piece 1 (version N+1), then put the old blob at the new address.
  const oldVersion = v.inodeAt('/rollback').pieces.get(1) as number;
  const oldPath = tv.blobFile('/rollback', 1);
  const oldBlob = readFileSync(oldPath);
  const patch = patternBytes(100, 999);
  await writeAt(v, '/rollback', patch, P + 50);
  patch.copy(files.get('/rollback') as Buffer, P + 50);
  const newVersion = v.inodeAt('/rollback').pieces.get(1) as number;
  await v.settle();
  if (newVersion <= oldVersion) throw new Error('the rewrite did not make a new version');
  if (existsSync(oldPath)) throw new Error('the superseded version was not deleted');
  const rollbackTarget = tv.blobFile('/rollback', 1);

  const blob = (path: string, i: number) => tv.blobFile(path, i);
  const damages: (() => void)[] = [
    () => flipBit(blob('/bitflip', 0), 3), // in the nonce
    () => flipBit(blob('/bitflip', 1), 2000, 5), // in the ciphertext
    () => flipBit(blob('/bitflip', 2), -1, 7), // in the tag
    () => flipBit(blob('/padding', 0), 3000), // in the sealed padding of a short piece
    () => swapContents(blob('/swap-within', 0), blob('/swap-within', 1)),
    () => swapContents(blob('/swap-a', 1), blob('/swap-b', 1)),
    () => writeFileSync(rollbackTarget, oldBlob),
    () => truncateSync(blob('/truncated-blobs', 0), statSync(blob('/truncated-blobs', 0)).size - 1), // one byte short
    () => truncateSync(blob('/truncated-blobs', 1), 2048),
    () => truncateSync(blob('/truncated-blobs', 2), 0),
    () => unlinkSync(blob('/tail-dropped', 2)),
    () => unlinkSync(blob('/tail-dropped', 3)),
    () => unlinkSync(blob('/deleted', 1)),
  ];

  // Metadata records to damage, by their (keyed) names.
  const rec = v.check().meta;
  inodeIds = Object.fromEntries([...files.keys()].map((p) => [p, v.inodeAt(p).id]));
  const inodeKey = (p: string) => rec.inodeRecordName(inodeIds[p] as string);
  const metaInode = inodeKey('/meta-inode');
  const metaEntry = rec.entryRecordName(ROOT_ID, 'meta-entry');
  const movedA = inodeKey('/meta-moved-a');
  const movedB = inodeKey('/meta-moved-b');
  v.mkdir('/pagedir', 0o755);
  await writeAt(v, '/pagedir/inside', Buffer.from('x'), 0);
  const pagedirPage = rec.pageRecordName(v.inodeAt('/pagedir').id, 0);

  await tv.close();
  for (const d of damages) d();

  const db = new Database(join(tv.storeDir, META_FILE));
  try {
    const get = db.prepare<[Buffer], { v: Buffer }>('SELECT v FROM records WHERE k = ?');
    const put = db.prepare<[Buffer, Buffer]>('UPDATE records SET v = ? WHERE k = ?');
    const value = (k: Buffer): Buffer => {
      const row = get.get(k);
      if (!row) throw new Error(`no record ${k.toString('hex')}`);
      return Buffer.from(row.v);
    };
    const flip = (k: Buffer) => {
      const val = value(k);
      val[val.length >> 1] = (val[val.length >> 1] as number) ^ 0x10;
      if (put.run(val, k).changes !== 1) throw new Error('record not updated');
    };
    flip(metaInode);
    flip(metaEntry);
    flip(pagedirPage);
    // A valid record moved to another name.
    const a = value(movedA);
    const b = value(movedB);
    put.run(b, movedA);
    put.run(a, movedB);
  } finally {
    db.close();
  }
  await tv.open();
});

test.after.always(() => hooks.run());

/** The read must reject with IntegrityError (EIO) whose message matches `names`; it must never resolve with data. */
async function rejects(t: ExecutionContext, read: Promise<unknown>, names: RegExp, what: string): Promise<void> {
  const err = await t.throwsAsync(read, { instanceOf: IntegrityError }, `${what}: expected IntegrityError`);
  if (!err) return;
  t.is(err.errno, 'EIO', what);
  t.regex(err.message, names, `${what}: the message must name the damaged piece or record`);
}

function vault(): Vault {
  return tv.vault;
}

test('healthy files next to the damaged ones still read correctly', async (t) => {
  for (const path of HEALTHY) t.true((await vault().readFile(path)).equals(files.get(path) as Buffer), path);
  t.deepEqual(vault().readdir('/dir').sort(), ['healthy2', 'healthy3']);
  t.true(vault().readdir('/').includes('meta-entry'), 'the listing itself is intact');
});

test('a flipped bit in a piece blob (nonce, ciphertext, tag) is detected', async (t) => {
  await rejects(t, vault().readFile('/bitflip'), /piece 0\b/, 'whole file');
  for (const i of [0, 1, 2]) await rejects(t, readAt(vault(), '/bitflip', i * P + 7, 10), new RegExp(`piece ${i}\\b`), `piece ${i}`);
  // The undamaged piece of the same file still reads.
  const good = await readAt(vault(), '/bitflip', 3 * P, P);
  t.true(good.equals((files.get('/bitflip') as Buffer).subarray(3 * P)));
});

test('a flipped bit in the sealed padding of a short piece is detected', async (t) => {
  await rejects(t, vault().readFile('/padding'), /piece 0\b/, '/padding');
});

test('two pieces of one file swapped are detected', async (t) => {
  await rejects(t, readAt(vault(), '/swap-within', 0, 10), /piece 0\b/, 'piece 0');
  await rejects(t, readAt(vault(), '/swap-within', P, 10), /piece 1\b/, 'piece 1');
  t.true((await readAt(vault(), '/swap-within', 2 * P, P)).equals((files.get('/swap-within') as Buffer).subarray(2 * P)), 'piece 2 is intact');
});

test('pieces swapped between two files are detected in both', async (t) => {
  await rejects(t, vault().readFile('/swap-a'), /piece 1\b/, '/swap-a');
  await rejects(t, vault().readFile('/swap-b'), /piece 1\b/, '/swap-b');
  t.true((await readAt(vault(), '/swap-a', 0, P)).equals((files.get('/swap-a') as Buffer).subarray(0, P)));
});

test('a piece rolled back to an older version is detected', async (t) => {
  await rejects(t, vault().readFile('/rollback'), /piece 1\b/, '/rollback');
  await rejects(t, readAt(vault(), '/rollback', P, 1), /piece 1\b/, 'one byte of piece 1');
});

test('truncated blobs (one byte short, half, empty) are detected', async (t) => {
  for (const i of [0, 1, 2]) await rejects(t, readAt(vault(), '/truncated-blobs', i * P, P), new RegExp(`piece ${i}\\b`), `piece ${i}`);
});

test('a truncated piece list (the last pieces dropped from the store) is detected', async (t) => {
  t.is(vault().getattr('/tail-dropped').size, 4 * P, 'the size comes from the authenticated inode');
  await rejects(t, vault().readFile('/tail-dropped'), /piece 2\b/, 'whole file');
  await rejects(t, readAt(vault(), '/tail-dropped', 4 * P - 1, 1), /piece 3\b/, 'last byte');
  t.true((await readAt(vault(), '/tail-dropped', 0, 2 * P)).equals((files.get('/tail-dropped') as Buffer).subarray(0, 2 * P)));
});

test('a deleted piece is detected (not read as a hole of zeroes)', async (t) => {
  await rejects(t, vault().readFile('/deleted'), /piece 1\b.*missing/, '/deleted');
  await rejects(t, readAt(vault(), '/deleted', P + 100, 5), /piece 1\b/, 'inside the piece');
});

test('a tampered inode record is detected and named', async (t) => {
  const id = inodeIds['/meta-inode'] as string;
  await rejects(t, vault().readFile('/meta-inode'), new RegExp(`record of inode ${id}`), '/meta-inode');
  t.throws(() => vault().getattr('/meta-inode'), { instanceOf: IntegrityError, message: /record/ });
});

test('a tampered directory entry record is detected and named', async (t) => {
  await rejects(t, vault().readFile('/meta-entry'), /record of an entry of directory/, '/meta-entry');
});

test('a tampered directory listing page is detected and named', async (t) => {
  t.throws(() => vault().readdir('/pagedir'), { instanceOf: IntegrityError, message: /record of directory page 0/ });
});

test('a valid metadata record moved to another record name is detected', async (t) => {
  // Caught by the record's authentication (its name is bound in), or else by the id check inside it.
  for (const p of ['/meta-moved-a', '/meta-moved-b']) {
    const id = inodeIds[p] as string;
    await rejects(t, vault().readFile(p), new RegExp(`record of inode ${id}|inode ${id}: record`), p);
  }
});

async function fsckProblemsByPath(): Promise<Map<string, string[]>> {
  const { before } = await fsck(vault());
  const byPath = new Map<string, string[]>();
  for (const p of before.problems) byPath.set(p.path, [...(byPath.get(p.path) ?? []), p.kind]);
  return byPath;
}

test('fsck names exactly the damaged files', async (t) => {
  const byPath = await fsckProblemsByPath();
  const damagedPieces = ['/bitflip', '/padding', '/swap-within', '/swap-a', '/swap-b', '/rollback', '/truncated-blobs', '/tail-dropped', '/deleted'];
  for (const p of damagedPieces) t.true(byPath.get(p)?.every((k) => k === 'bad-piece' || k === 'missing-piece'), `${p}: ${byPath.get(p)?.join(',')}`);
  t.deepEqual(byPath.get('/bitflip')?.length, 3);
  t.deepEqual(byPath.get('/tail-dropped'), ['missing-piece', 'missing-piece']);
  t.deepEqual(byPath.get('/deleted'), ['missing-piece']);
  for (const p of ['/meta-inode', '/meta-moved-a', '/meta-moved-b']) t.deepEqual(byPath.get(p), ['bad-record'], `${p} is reported`);
  t.true(byPath.has('/pagedir'), 'the damaged listing is reported');
  for (const p of HEALTHY) t.false(byPath.has(p), `healthy ${p} is reported`);
});

// fsck promises to check every metadata record; a directory entry record is what every path lookup reads.
test('fsck reports a tampered directory entry record (the file cannot be opened by its name)', async (t) => {
  await t.throwsAsync(vault().readFile('/meta-entry'), { instanceOf: IntegrityError });
  const byPath = await fsckProblemsByPath();
  t.deepEqual(byPath.get('/meta-entry'), ['bad-record'], 'fsck does not notice that /meta-entry cannot be looked up');
});
