// Format 2's chaff blobs (docs/format-2.md 10.2, issue 22 finding 6): each piece version has
// floor(ρ) + b chaff blobs, at addresses derived from the piece, the size of its blob, written with it and
// deleted with it. A format-2 vault at chaff ratios 1 and 0.5, with and without the piece worker, is written,
// rewritten, truncated, punched, shrunk to INLINE and unlinked; after each commit settles, the store holds
// exactly the live pieces and their chaff, at the spec's addresses (computed here from the keys, by
// test/helpers/chaff2.ts, not by svault's code), and fsck counts that chaff and no orphan. A blob that is
// neither is an orphan (format 1's chaff too, once no upgrade is pending), and a crash between a piece's put
// and its commit leaves chaff that the next sweep removes with the piece. The pieces layer on its own: a
// failed put leaves nothing, deletion takes the chaff, --finish's addChaff gives a stored piece its chaff.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../../src/core/contents/sparse.js';
import { FsError } from '../../src/core/errors.js';
import { isClean2, scanVault2 } from '../../src/core/format2/fsck2-vault.js';
import { fsck2 } from '../../src/core/format2/fsck2.js';
import { FileType } from '../../src/core/format2/inode-record.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { makeChaff } from '../../src/core/pieces/address.js';
import type { PieceId } from '../../src/core/pieces/piece-codec.js';
import { SealedPieces } from '../../src/core/pieces/sealed-pieces.js';
import { CountingStore } from '../../src/core/store/counting-store.js';
import { LocalDirStore } from '../../src/core/store/local-dir-store.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { chaffAddresses2, chaffCount2 } from '../helpers/chaff2.js';
import { crash2, readAll2 } from '../helpers/format2.js';
import { tempDir } from '../helpers/temp-vault.js';

const PASS = 'correct horse battery staple';
const P = 4096;

// ---- the store as the spec says it must be ----

/** Addresses in order: AVA compares Sets and Maps in their insertion order. */
function sorted(hexes: Iterable<string>): string[] {
  return [...hexes].sort();
}

/** Every blob file of the store: address (hex) → size. */
function blobsOnDisk(store: string): Map<string, number> {
  const out = new Map<string, number>();
  const root = join(store, 'blobs');
  if (!existsSync(root)) return out;
  for (const shard of readdirSync(root)) for (const name of readdirSync(join(root, shard))) out.set(name, statSync(join(root, shard, name)).size);
  return out;
}

function blobPathOf(store: string, hex: string): string {
  return join(store, 'blobs', hex.slice(0, 2), hex);
}

function plant(store: string, hex: string, blob: Buffer): void {
  mkdirSync(join(store, 'blobs', hex.slice(0, 2)), { recursive: true });
  writeFileSync(blobPathOf(store, hex), blob);
}

interface Live {
  /** Address (hex) of each piece a map points to. */
  pieces: Set<string>;
  /** Address (hex) of each of their chaff blobs (10.2, from the spec) → its piece's address. */
  chaff: Map<string, string>;
  /** What svault's own code says the chaff addresses are, for the same pieces. */
  chaffBySvault: Set<string>;
}

/** The live pieces, by the record walk, and their chaff as the spec derives it from the vault's keys. */
async function live(v: Vault2): Promise<Live> {
  const { md, table, pieces, chaffKeys, config } = v.check();
  const out: Live = { pieces: new Set(), chaff: new Map(), chaffBySvault: new Set() };
  const report = await fsck2(md, table, {
    verifyPiece: async (inode, index, version) => {
      const piece = pieces.pieceAddress(inode, index, version).toString('hex');
      out.pieces.add(piece);
      for (const hex of chaffAddresses2(chaffKeys, config.chaffRatio, { fileId: inode.fileId, index, version })) out.chaff.set(hex, piece);
      for (const a of pieces.chaffAddresses(inode, index, version)) out.chaffBySvault.add(a.toString('hex'));
    },
  });
  if (report.problems.length > 0 || report.incomplete.length > 0) throw new Error(`the record walk: ${JSON.stringify(report.problems)} ${report.incomplete.join('; ')}`);
  return out;
}

/**
 * After the commit settles: the blobs are exactly the live pieces and their chaff, as many as live pieces ×
 * (1 + chaff per piece); each chaff blob is at 10.2's address and the size of its piece's blob; fsck counts
 * that chaff, and no orphan.
 */
async function checkStore(t: ExecutionContext, v: Vault2, store: string, label: string): Promise<Live> {
  await v.settle();
  const l = await live(v);
  const disk = blobsOnDisk(store);
  const { chaffKeys, config, md } = v.check();
  // The count, as the brief of 10.2 puts it: every live piece version and its floor(ρ) + b chaff blobs.
  let perPiece = 0;
  for (const ino of md.liveInos((err) => {
    throw err;
  })) {
    const inode = md.requireInode(ino);
    if (inode.type !== FileType.regular) continue;
    for (const { index, version } of md.pieceMapIfAny(ino)?.versions() ?? []) perPiece += 1 + chaffCount2(chaffKeys, config.chaffRatio, { fileId: inode.fileId, index, version });
  }
  t.is(disk.size, perPiece, `${label}: blobs = live pieces × (1 + their chaff)`);
  if (config.chaffRatio === 1) t.is(disk.size, 2 * l.pieces.size, `${label}: at ratio 1, one chaff blob per piece`);
  t.deepEqual(sorted(disk.keys()), sorted([...l.pieces, ...l.chaff.keys()]), `${label}: the blobs are the live pieces and their chaff, nothing else`);
  t.deepEqual(sorted(l.chaffBySvault), sorted(l.chaff.keys()), `${label}: svault's chaff addresses are 10.2's`);
  for (const [hex, piece] of l.chaff) t.is(disk.get(hex), disk.get(piece), `${label}: a chaff blob has its piece's blob size`);
  const { report } = await scanVault2(v);
  t.is(report.orphans, 0, `${label}: fsck finds no orphan`);
  t.is(report.chaff, l.chaff.size, `${label}: fsck counts the chaff`);
  t.is(report.pieces, l.pieces.size, `${label}: fsck counts the pieces`);
  t.true(isClean2(report), `${label}: ${JSON.stringify(report.problems)}`);
  t.deepEqual(report.notes, [], `${label}: no note`);
  return l;
}

async function writeAt(v: Vault2, path: string, data: Buffer, position: number, create = false): Promise<void> {
  const fh = create ? v.paths.create(path, 0o644, 0, 0) : v.paths.open(path);
  try {
    // A piece at a time, as a mount writes: full pieces are sealed behind the writer (on the worker when on).
    for (let off = 0; off < data.length; off += P) await v.write(fh, data.subarray(off, off + P), position + off);
  } finally {
    await v.release(fh);
  }
}

/** The chaff of `before` that belonged to pieces no longer live: gone from the store. */
function checkGone(t: ExecutionContext, store: string, before: Live, after: Live, label: string): void {
  const disk = blobsOnDisk(store);
  let superseded = 0;
  for (const [hex, piece] of before.chaff) {
    if (after.pieces.has(piece)) continue;
    superseded++;
    t.false(disk.has(hex), `${label}: the chaff of a piece that went is gone with it`);
  }
  for (const piece of before.pieces) if (!after.pieces.has(piece)) t.false(disk.has(piece), `${label}: a piece that went is gone`);
  t.log(`${label}: ${superseded} chaff blob(s) of pieces that went, deleted`);
}

for (const { chaffRatio, pieceWorker } of [
  { chaffRatio: 1, pieceWorker: false },
  { chaffRatio: 0.5, pieceWorker: false },
  { chaffRatio: 1, pieceWorker: true },
  { chaffRatio: 0.5, pieceWorker: true },
]) {
  test(`chaff ${chaffRatio}, piece worker ${pieceWorker ? 'on' : 'off'}: write, rewrite, truncate, punch, INLINE and unlink leave exactly the live pieces and their chaff`, async (t) => {
    const store = join(tempDir(t), 'store');
    const v = await Vault2.create(store, PASS, { pieceSize: P, chaffRatio }, { pieceWorker });
    try {
      if (pieceWorker) t.true(await v.pieceWorkerReady(), 'the worker is up');
      const a = randomBytes(20 * P + 1000);
      await writeAt(v, '/a', a, 0, true);
      let l = await checkStore(t, v, store, 'written');
      t.is(l.pieces.size, 21);
      if (pieceWorker) t.true((v.stats.summary().find((s) => s.op === 'crypto.seal@worker')?.calls ?? 0) > 0, 'the worker sealed pieces, and stored their chaff');

      await writeAt(v, '/small', randomBytes(100), 0, true);
      const b = randomBytes(3 * P);
      await writeAt(v, '/b', b, 0, true);
      l = await checkStore(t, v, store, 'an INLINE file and another');
      t.is(l.pieces.size, 24, 'the INLINE file has no piece, so no chaff');

      let prev = l;
      const patch = randomBytes(5 * P);
      patch.copy(a, 3 * P);
      await writeAt(v, '/a', patch, 3 * P);
      l = await checkStore(t, v, store, 'rewritten');
      checkGone(t, store, prev, l, 'rewritten');
      t.is(l.pieces.size, 24);

      // The same pieces rewritten a few more times: only the live versions keep chaff.
      for (let round = 0; round < 3; round++) await writeAt(v, '/a', randomBytes(2 * P), 0);
      prev = l;
      l = await checkStore(t, v, store, 'rewritten again');
      checkGone(t, store, prev, l, 'rewritten again');

      prev = l;
      await v.paths.truncate('/a', 5 * P + 100);
      l = await checkStore(t, v, store, 'truncated');
      checkGone(t, store, prev, l, 'truncated');
      t.is(l.pieces.size, 6 + 3);

      prev = l;
      const fh = v.paths.open('/a');
      await v.fallocate(fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, P, 2 * P);
      await v.release(fh);
      l = await checkStore(t, v, store, 'punched');
      checkGone(t, store, prev, l, 'punched');
      t.is(l.pieces.size, 4 + 3);

      prev = l;
      await v.paths.truncate('/b', 200); // INLINE again: its pieces go
      l = await checkStore(t, v, store, 'shrunk to INLINE');
      checkGone(t, store, prev, l, 'shrunk to INLINE');
      t.true((await readAll2(v, '/b')).equals(b.subarray(0, 200)));

      // An unlinked open file keeps its pieces and chaff until its last close.
      prev = l;
      const open = v.paths.open('/a');
      v.paths.unlink('/a');
      await v.settle();
      const disk = blobsOnDisk(store);
      for (const [hex] of prev.chaff) t.true(disk.has(hex), 'open and unlinked: its chaff is still there');
      await v.release(open);
      l = await checkStore(t, v, store, 'unlinked');
      checkGone(t, store, prev, l, 'unlinked');
      t.is(l.pieces.size, 0);
      t.is(blobsOnDisk(store).size, 0, 'no piece left, and no chaff');
    } finally {
      await v.close();
    }
  });
}

test('fsck: a planted random blob is an orphan, and so is format 1\'s chaff once no upgrade is pending; a missing chaff blob is a note; the sweep takes the orphans and keeps the chaff', async (t) => {
  const store = join(tempDir(t), 'store');
  const v = await Vault2.create(store, PASS, { pieceSize: P, chaffRatio: 1 }, { pieceWorker: false });
  let l: Live;
  let keys: { address: Buffer; chaff: Buffer };
  try {
    await writeAt(v, '/f', randomBytes(5 * P), 0, true);
    l = await checkStore(t, v, store, 'written');
    keys = { address: Buffer.from(v.check().chaffKeys.address), chaff: Buffer.from(v.check().chaffKeys.chaff) };
  } finally {
    await v.close();
  }
  const size = statSync(blobPathOf(store, [...l.pieces][0] as string)).size;
  const random = randomBytes(32).toString('hex');
  plant(store, random, randomBytes(size));
  const oldStyle = makeChaff(keys.address, size); // chaff by format 1's rule, under this vault's address key
  plant(store, oldStyle.address.toString('hex'), oldStyle.blob);
  const [dropped] = [...l.chaff.keys()];
  rmSync(blobPathOf(store, dropped as string));

  const again = await Vault2.open(store, PASS, { pieceWorker: false });
  try {
    const { report } = await scanVault2(again);
    t.is(report.orphans, 2, 'the random blob and format 1\'s chaff are orphans at upgradeStage 0');
    t.is(report.chaff, l.chaff.size - 1, 'the chaff of the live pieces that is there');
    t.deepEqual(report.notes, ['1 chaff blob(s) of live pieces missing: they only hide how much data there is, no data is lost']);
    t.deepEqual(report.problems, [], 'missing chaff is not a problem');

    t.deepEqual(await again.sweepOrphans(), { removed: 2 });
    const disk = blobsOnDisk(store);
    t.false(disk.has(random));
    t.false(disk.has(oldStyle.address.toString('hex')));
    t.deepEqual(sorted(disk.keys()), sorted([...l.pieces, ...[...l.chaff.keys()].filter((h) => h !== dropped)]), 'pieces and chaff are kept');
  } finally {
    await again.close();
  }
});

test('a crash between the pieces\' put and their commit leaves chaff that the next sweep removes with the pieces', async (t) => {
  const store = join(tempDir(t), 'store');
  const v = await Vault2.create(store, PASS, { pieceSize: P, chaffRatio: 1 }, { commitWindowMs: 60_000, pieceWorker: false });
  const kept = randomBytes(2 * P);
  const fh = v.paths.create('/kept', 0o644, 0, 0);
  await v.write(fh, kept, 0);
  await v.fsync(fh);
  await v.release(fh);
  const committed = blobsOnDisk(store);
  t.is(committed.size, 4, 'two pieces and their chaff');
  await writeAt(v, '/kept', randomBytes(P), 0); // a new version of piece 0, stored, never committed
  await writeAt(v, '/lost', randomBytes(3 * P), 0, true); // closed, but its commit never ran
  t.is(blobsOnDisk(store).size, 4 + 2 + 6, 'the uncommitted pieces were stored with their chaff');
  crash2(v, store);

  const again = await Vault2.open(store, PASS, { pieceWorker: false });
  try {
    t.true(again.recoveredFromCrash);
    t.deepEqual(await again.sweepOrphans(), { removed: 8 }, 'four pieces nothing points to, and their four chaff blobs');
    t.deepEqual(sorted(blobsOnDisk(store).keys()), sorted(committed.keys()), 'what is left is the committed pieces and their chaff');
    t.true((await readAll2(again, '/kept')).equals(kept));
    await checkStore(t, again, store, 'after the sweep');
  } finally {
    await again.close();
  }
});

// ---- the pieces layer on its own ----

const vaultId = randomBytes(16);
const fileKey = randomBytes(32);

function derivedPieces(store: PieceStore, chaffRatio: number, keys = { address: randomBytes(32), chaff: randomBytes(32) }): { pieces: SealedPieces; keys: { address: Buffer; chaff: Buffer } } {
  const pieces = new SealedPieces({ vaultId, addressKey: keys.address, store, pieceSize: P, chaffRatio, chaff: { scheme: 'derived', chaffKey: keys.chaff }, stats: new OpStats() });
  return { pieces, keys };
}

function pieceId(index: number, version: number): PieceId {
  return { fileId: Buffer.alloc(16, 9), index, version };
}

async function storedHex(store: PieceStore): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const a of store.list()) out.add(a.toString('hex'));
  return out;
}

test('pieces layer: put stores a piece and its chaff at 10.2\'s addresses, each the piece\'s blob size; delete takes both; format 1\'s chaff stays as it was', async (t) => {
  const store = new MemoryStore();
  const { pieces, keys } = derivedPieces(store, 2.5);
  const ids = Array.from({ length: 40 }, (_, i) => pieceId(i, 1000 + i));
  let expectedChaff = 0;
  for (const id of ids) {
    await pieces.put(fileKey, id, randomBytes(id.index % 2 === 0 ? P : 100));
    const chaff = chaffAddresses2(keys, 2.5, id);
    t.true(chaff.length === 2 || chaff.length === 3);
    expectedChaff += chaff.length;
    t.deepEqual(pieces.chaffAddressesOf(id).map((a) => a.toString('hex')), chaff);
    const blob = store.raw().get(pieces.addressOf(id).toString('hex'));
    for (const hex of chaff) t.is(store.raw().get(hex)?.length, blob?.length, 'chaff has its piece\'s blob size (small and full classes alike)');
    t.true((await pieces.read(fileKey, id, '/f')).length > 0);
  }
  t.is(store.raw().size, ids.length + expectedChaff);
  t.true(expectedChaff > 2 * ids.length && expectedChaff < 3 * ids.length, 'ρ = 2.5: some pieces have 3, some 2');
  for (const id of ids) await pieces.delete(id);
  t.is(store.raw().size, 0, 'each piece took its chaff with it');
  await pieces.delete(ids[0] as PieceId); // absent: no error

  // Format 1's scheme (no chaff option): chaff drawn at random, known by no piece, not deleted with it.
  const old = new MemoryStore();
  const f1 = new SealedPieces({ vaultId, addressKey: keys.address, store: old, pieceSize: P, chaffRatio: 1, stats: new OpStats() });
  await f1.put(fileKey, pieceId(0, 1), randomBytes(P));
  t.deepEqual(f1.chaffAddressesOf(pieceId(0, 1)), []);
  await f1.delete(pieceId(0, 1));
  const [left] = await storedHex(old);
  t.is(old.raw().size, 1);
  t.true(await f1.isChaffAt(Buffer.from(left as string, 'hex')), 'format 1\'s chaff, recognised by its first bytes');
});

/** A store whose n-th put fails as a full disk does. */
class FailingStore extends MemoryStore {
  private puts = 0;
  constructor(private readonly failAt: number) {
    super();
  }

  override async put(address: Buffer, blob: Buffer): Promise<void> {
    if (++this.puts === this.failAt) throw new FsError('ENOSPC', 'no space left');
    return super.put(address, blob);
  }
}

test('pieces layer: a put that fails, at a chaff blob or at the piece, leaves nothing behind', async (t) => {
  const id = pieceId(3, 77);
  for (let failAt = 1; failAt <= 3; failAt++) {
    const store = new FailingStore(failAt);
    const { pieces } = derivedPieces(store, 2);
    await t.throwsAsync(pieces.put(fileKey, id, randomBytes(P)), { message: /no space left/ });
    t.is(store.raw().size, 0, `failed at put ${failAt}: no chaff, and no piece the caller does not know of`);
  }
});

test('pieces layer: addChaff gives a stored piece (a format-1 one) its chaff, by the blob\'s size', async (t) => {
  for (const kind of ['MemoryStore', 'CountingStore(LocalDirStore)']) {
    const store: PieceStore = kind === 'MemoryStore' ? new MemoryStore() : new CountingStore(new LocalDirStore(tempDir(t)), new OpStats());
    try {
      const keys = { address: randomBytes(32), chaff: randomBytes(32) };
      // A format-1 piece (its chaff drawn by format 1's rule: none at ratio 0), given derived chaff later.
      const f1 = new SealedPieces({ vaultId, addressKey: keys.address, store, pieceSize: P, chaffRatio: 0, stats: new OpStats() });
      const id = pieceId(5, 12);
      await f1.put(fileKey, id, randomBytes(900)); // a small size class
      const { pieces } = derivedPieces(store, 1, keys);
      const chaff = chaffAddresses2(keys, 1, id);
      t.is(await pieces.addChaff(id), 1, `${kind}: one chaff blob at ratio 1`);
      t.is(await pieces.addChaff(id), 1, `${kind}: written again, harmlessly`);
      const sizeOf = async (hex: string) => (await store.get(Buffer.from(hex, 'hex')))?.length;
      t.is(await sizeOf(chaff[0] as string), await sizeOf(pieces.addressOf(id).toString('hex')), `${kind}: the piece's blob size`);
      t.deepEqual(sorted(await storedHex(store)), sorted([pieces.addressOf(id).toString('hex'), ...chaff]));
      t.is(await pieces.addChaff(pieceId(6, 12)), 0, `${kind}: a piece that is not stored gets none`);

    } finally {
      store.close();
    }
  }
});

/** A store that lists the addresses it is asked to put. */
class RecordingStore extends MemoryStore {
  readonly puts: string[] = [];

  override async put(address: Buffer, blob: Buffer): Promise<void> {
    this.puts.push(address.toString('hex'));
    return super.put(address, blob);
  }
}

test('pieces layer: restore stores a piece\'s chaff again with the piece (a dead worker\'s blobs, made durable by this thread)', async (t) => {
  const store = new RecordingStore();
  const { pieces, keys } = derivedPieces(store, 2);
  const id = pieceId(1, 5);
  await pieces.put(fileKey, id, randomBytes(P));
  store.puts.length = 0;
  await pieces.restore(id);
  t.deepEqual(sorted(store.puts), sorted([pieces.addressOf(id).toString('hex'), ...chaffAddresses2(keys, 2, id)]));
  store.puts.length = 0;
  await pieces.restore(pieceId(2, 5));
  t.deepEqual(store.puts, [], 'nothing for a piece that is not stored');
});

test('chaff2 helper: the count follows ρ, exactly at ratios that are whole', (t) => {
  const keys = { address: randomBytes(32), chaff: randomBytes(32) };
  let ones = 0;
  for (let i = 0; i < 2000; i++) {
    const p = { fileId: randomBytes(16), index: i, version: i + 1 };
    t.is(chaffCount2(keys, 1, p), 1);
    t.is(chaffCount2(keys, 0, p), 0);
    const half = chaffCount2(keys, 0.5, p);
    t.true(half === 0 || half === 1);
    ones += half;
  }
  t.true(ones > 800 && ones < 1200, `${ones} of 2000 at ρ = 0.5`);
});
