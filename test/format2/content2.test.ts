// The contents engine over format 2's metadata (src/core/format2/content2.ts): small files are committed
// INLINE with no blob, grow into a piece map, and go back INLINE with their blobs deleted once the commit
// is written; sparse files keep their holes; reopened metadata gives the same bytes; fsck2 is clean.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { Contents } from '../../src/core/contents/contents.js';
import { deriveVaultKeys } from '../../src/core/crypto/crypto.js';
import { contentId, Format2Content, storedContent2 } from '../../src/core/format2/content2.js';
import { fsck2 } from '../../src/core/format2/fsck2.js';
import { FileType, INLINE_MAX, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { Metadata2 } from '../../src/core/format2/metadata2.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { metadata2Options, name, T0 } from '../helpers/format2.js';
import { tempDir } from '../helpers/temp-vault.js';

const P = 4096;
const OPTIONS = { ...metadata2Options(0), pieceSize: P };
const MASTER = randomBytes(32);

interface Rig {
  md: Metadata2;
  contents: Contents;
  store: MemoryStore;
  dir: string;
}

function rig(t: ExecutionContext, dir = tempDir(t), store = new MemoryStore(), fresh = true): Rig {
  const table = fresh ? RecordTable.create(dir) : RecordTable.open(dir);
  const md = fresh ? Metadata2.create(table, OPTIONS, { mode: 0o755, uid: 0, gid: 0, time: T0 }) : Metadata2.open(table, OPTIONS).reserve();
  const contents = new Contents({ vaultId: OPTIONS.vaultId, keys: deriveVaultKeys(MASTER, OPTIONS.vaultId), store, meta: new Format2Content(md), pieceSize: P, chaffRatio: 0, stats: new OpStats() });
  return { md, contents, store, dir };
}

/** Opens the file, runs fn, commits and closes it, then the committer's work: blobs durable, the metadata written, deletions done. */
async function session(r: Rig, ino: number, fn: (of: ReturnType<Contents['acquire']>) => Promise<void>): Promise<void> {
  const inode = r.md.requireInode(ino);
  const of = r.contents.acquire({ id: contentId(ino), fileId: inode.fileId }, () => storedContent2(r.md, ino));
  await fn(of);
  await r.contents.release(of);
  await r.contents.makeStoredDurable();
  r.md.commitNow();
  await r.contents.settle();
}

async function readAll(r: Rig, ino: number): Promise<Buffer> {
  let out = Buffer.alloc(0);
  await session(r, ino, async (of) => {
    out = Buffer.alloc(of.size);
    await r.contents.read(of, out, of.size, 0);
  });
  return out;
}

function newFile(r: Rig, n: string): number {
  const ino = r.md.createInode({ type: FileType.regular, mode: 0o644, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino;
  r.md.link(ROOT_INO, name(n), ino);
  return ino;
}

async function blobs(r: Rig): Promise<number> {
  return (await r.store.usage()).blobs;
}

test('a small file is INLINE: no blob; it grows into pieces, and shrinks back INLINE with its blobs deleted', async (t) => {
  const r = rig(t);
  const f = newFile(r, 'f');
  const small = Buffer.from('hello, inline world');
  await session(r, f, async (of) => void (await r.contents.write(of, small, 0)));
  t.is(r.md.requireInode(f).primary.form, 'inline');
  t.is(await blobs(r), 0, 'no blob for a small file');
  t.true((await readAll(r, f)).equals(small));

  const big = randomBytes(3 * P + 100);
  await session(r, f, async (of) => void (await r.contents.write(of, big, 0)));
  t.is(r.md.requireInode(f).primary.form, 'map');
  t.is(r.md.requireInode(f).size, big.length);
  t.is(await blobs(r), 4);
  t.true((await readAll(r, f)).equals(big));

  await session(r, f, async (of) => r.contents.truncate(of, 1000));
  t.is(r.md.requireInode(f).primary.form, 'inline', 'back INLINE at 1,000 bytes');
  t.is(await blobs(r), 0, 'the pieces it had are deleted once the commit is written');
  t.true((await readAll(r, f)).equals(big.subarray(0, 1000)));

  // Reopened from the store: the same bytes, from the inode.
  r.md.close();
  const again = rig(t, r.dir, r.store, false);
  t.true((await readAll(again, f)).equals(big.subarray(0, 1000)));
  t.deepEqual((await fsck2(again.md, (again.md as unknown as { table: RecordTable }).table)).problems, []);
  again.md.close();
});

test('the INLINE limit is 3,818 bytes: one byte more is a piece', async (t) => {
  const r = rig(t);
  const a = newFile(r, 'a');
  const b = newFile(r, 'b');
  await session(r, a, async (of) => void (await r.contents.write(of, randomBytes(INLINE_MAX), 0)));
  await session(r, b, async (of) => void (await r.contents.write(of, randomBytes(INLINE_MAX + 1), 0)));
  t.is(r.md.requireInode(a).primary.form, 'inline');
  t.is(r.md.requireInode(b).primary.form, 'map');
  t.is(await blobs(r), 1);
  r.md.close();
});

test('a sparse file keeps its holes through the piece map, and reads zeros there', async (t) => {
  const r = rig(t);
  const f = newFile(r, 'sparse');
  const tail = randomBytes(P);
  await session(r, f, async (of) => {
    await r.contents.truncate(of, 100 * P);
    await r.contents.write(of, tail, 90 * P);
  });
  t.is(await blobs(r), 1, 'one piece of data, 89 of holes');
  const map = r.md.pieceMapIfAny(f);
  t.deepEqual([...(map?.versions() ?? [])].map((v) => v.index), [90]);
  const all = await readAll(r, f);
  t.is(all.length, 100 * P);
  t.true(all.subarray(0, 90 * P).equals(Buffer.alloc(90 * P)));
  t.true(all.subarray(90 * P, 91 * P).equals(tail));
  t.is(map?.nextData(0), 90, 'SEEK_DATA from the map');
  r.md.close();
});

test('rewriting a piece stores a new version and deletes the old one after the commit; versions come from the commit counter', async (t) => {
  const r = rig(t);
  const f = newFile(r, 'f');
  await session(r, f, async (of) => void (await r.contents.write(of, randomBytes(2 * P), 0)));
  const first = r.md.pieceMapIfAny(f)?.slot(1) as number;
  await session(r, f, async (of) => void (await r.contents.write(of, randomBytes(10), P + 5)));
  const second = r.md.pieceMapIfAny(f)?.slot(1) as number;
  t.true(second > first);
  t.true(second < r.md.state.commit, 'below the commit that recorded it');
  t.is(await blobs(r), 2, 'the superseded version is gone');
  r.md.close();
});

test('a commit of a big file changes just the slots that differ, and keeps a quarantined piece lost until it is written', async (t) => {
  const r = rig(t);
  const f = newFile(r, 'big');
  const port = new Format2Content(r.md);
  const pieces = new Map<number, number>();
  for (let i = 0; i < 50_000; i++) pieces.set(i, r.md.newPieceVersion());
  port.stage(contentId(f), { size: 50_000 * P, pieces, lost: [], mtime: 1_700_000_000_000, nextVersion: 0 });
  r.md.commitNow();
  const changed = new Map(pieces);
  changed.set(123, r.md.newPieceVersion());
  changed.delete(49_999);
  changed.delete(500);
  const t0 = process.hrtime.bigint();
  port.stage(contentId(f), { size: 49_999 * P, pieces: changed, lost: [500], mtime: 1_700_000_000_001, nextVersion: 0 });
  t.log(`staging 3 changed slots of 50,000: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`);
  r.md.commitNow();
  let stored = storedContent2(r.md, f);
  t.is(stored.pieces.get(123), changed.get(123));
  t.false(stored.pieces.has(49_999));
  t.deepEqual(stored.lost, [500]);
  t.is(stored.pieces.size, 49_998);
  t.true(r.md.requireInode(f).hasLost);
  // Written again: no longer lost.
  const rewritten = new Map(changed);
  rewritten.set(500, r.md.newPieceVersion());
  port.stage(contentId(f), { size: 49_999 * P, pieces: rewritten, lost: [], mtime: 1_700_000_000_002, nextVersion: 0 });
  r.md.commitNow();
  stored = storedContent2(r.md, f);
  t.deepEqual(stored.lost, []);
  t.is(stored.pieces.get(500), rewritten.get(500));
  t.false(r.md.requireInode(f).hasLost);
  r.md.close();
});
