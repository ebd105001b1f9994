// The piece worker (src/core/contents/piece-offload.ts, src/core/contents/piece-worker.ts) on its own: what it seals opens with the
// file key, its errors come back as the errno of the failure, a job nobody waits for still settles, and
// after close every job fails with EIO instead of hanging. Through the vault: a file written by full
// pieces (sealed on the worker) reads back after reopening, and a failed seal loses no data.

import test from 'ava';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressOf, blobPath, isChaff } from '../../src/core/pieces/address.js';
import { FsError } from '../../src/core/errors.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { PieceOffload } from '../../src/core/contents/piece-offload.js';
import { openPiece, type PieceId } from '../../src/core/pieces/piece-codec.js';
import { BLOB_DIR } from '../../src/core/store/local-dir-store.js';
import { createTempVault, patternBytes, readAt, tempDir, writeAt } from '../helpers/temp-vault.js';

const P = 4096;
const vaultId = Buffer.alloc(16, 1);
const addressKey = Buffer.alloc(32, 2);
const fileKey = Buffer.alloc(32, 3);

async function offloadIn(storeDir: string, stats = new OpStats(), idleMs?: number, chaffRatio = 0): Promise<PieceOffload> {
  const offload = new PieceOffload({ storeDir, vaultId, addressKey, pieceSize: P, chaffRatio }, stats, idleMs);
  await offload.ready;
  return offload;
}

function pieceId(index: number, version = 1): PieceId {
  return { fileId: Buffer.alloc(16, 9), index, version };
}

test('sealed pieces are written where their address says, and open with the file key', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir);
  t.teardown(() => offload.close());
  const datas = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => patternBytes(P, i + 1));
  // More jobs than slots would hold if each waited for nothing: takeSlot must block, not fail.
  const jobs = datas.map((d, i) => offload.sealAndPut(fileKey, pieceId(i), d));
  for (const job of jobs) await offload.wait(job);
  await offload.flush();
  for (const [i, d] of datas.entries()) {
    const blob = readFileSync(join(dir, BLOB_DIR, blobPath(addressOf(addressKey, pieceId(i)))));
    const opened = openPiece(fileKey, vaultId, pieceId(i), blob, P);
    t.truthy(opened, `piece ${i} opens`);
    t.true(opened?.equals(d), `piece ${i} has its data`);
    t.is(openPiece(Buffer.alloc(32, 4), vaultId, pieceId(i), blob, P), null, 'another key does not open it');
  }
});

test('an idle worker stays up: a job after a quiet spell (longer than its 1 s sleep) is done', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir);
  t.teardown(() => offload.close());
  await new Promise((r) => setTimeout(r, 1500));
  t.true(offload.alive);
  await t.notThrowsAsync(offload.wait(offload.sealAndPut(fileKey, pieceId(0), patternBytes(P, 1))));
});

test('an idle worker is ended, and the next piece starts a new one', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir, new OpStats(), 200);
  t.teardown(() => offload.close());
  await offload.wait(offload.sealAndPut(fileKey, pieceId(0), patternBytes(P, 1)));
  await offload.flush();
  // 200 ms without work, then the worker's exit: poll, as a loaded machine can take longer than that.
  for (let waited = 0; offload.alive && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  t.false(offload.alive, 'ended after 200 ms without work');
  t.false(offload.available(), 'not available at once: a new worker starts once the old one is gone');
  // As a writer does: each full piece asks again, and is sealed on its own thread until the answer is yes.
  for (let tries = 0; !offload.available() && tries < 600; tries++) await new Promise((r) => setTimeout(r, 50));
  const o = offload as unknown as Record<string, unknown>;
  t.true(offload.alive, `a new worker is up (dead ${String(o.dead)}, retired ${String(o.retired)}, retiring ${String(o.retiring)}, started ${String(o.started)}, exited ${String(o.exited)})`);
  await offload.wait(offload.sealAndPut(fileKey, pieceId(1), patternBytes(P, 2)));
  await offload.flush();
  for (const i of [0, 1]) t.truthy(openPiece(fileKey, vaultId, pieceId(i), readFileSync(join(dir, BLOB_DIR, blobPath(addressOf(addressKey, pieceId(i))))), P));
});

test('an idle worker holding blobs not yet durable is not ended', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir, new OpStats(), 200);
  t.teardown(() => offload.close());
  await offload.wait(offload.sealAndPut(fileKey, pieceId(0), patternBytes(P, 1)));
  await new Promise((r) => setTimeout(r, 800));
  t.true(offload.alive, 'kept: its blob waits for the flush before a commit');
  await t.notThrowsAsync(offload.flush());
});

test('a job nobody waits for still settles (the poll timer collects it)', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir);
  t.teardown(() => offload.close());
  await t.notThrowsAsync(offload.sealAndPut(fileKey, pieceId(0), patternBytes(100, 5)).result);
});

test('chaff goes with a piece at the vault\'s ratio: blobs of its size, each different, each recognised as chaff', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir, new OpStats(), undefined, 3); // a whole ratio: exactly 3 per piece
  t.teardown(() => offload.close());
  await offload.wait(offload.sealAndPut(fileKey, pieceId(0), patternBytes(P, 1)));
  const blobs = readdirSync(join(dir, BLOB_DIR)).flatMap((shard) => readdirSync(join(dir, BLOB_DIR, shard)).map((name) => ({ name, bytes: readFileSync(join(dir, BLOB_DIR, shard, name)) })));
  t.is(blobs.length, 4);
  const pieceName = addressOf(addressKey, pieceId(0)).toString('hex');
  const chaff = blobs.filter((b) => b.name !== pieceName);
  t.is(chaff.length, 3, 'the piece is one of the four');
  // The worker fills one buffer again for each chaff blob: each must be new random bytes at its own address.
  t.is(new Set(chaff.map((c) => c.bytes.toString('hex'))).size, 3);
  const pieceBytes = blobs.find((b) => b.name === pieceName)?.bytes.length ?? -1;
  for (const c of chaff) {
    t.is(c.bytes.length, pieceBytes);
    t.true(isChaff(addressKey, Buffer.from(c.name, 'hex'), c.bytes), 'fsck tells it from an orphan');
  }
});

/**
 * Makes every blob put fail, as root too: the store holds its directories open, so renaming them away
 * would not do. Each shard directory is emptied (its blobs kept aside) and removed, so the descriptors
 * held on it point to a deleted directory, and a file takes each of the 256 shard names. Returns the undo.
 */
function breakBlobStore(blobs: string): () => void {
  const saved = `${blobs}.saved`;
  mkdirSync(saved);
  const shards = readdirSync(blobs);
  for (const shard of shards) {
    mkdirSync(join(saved, shard));
    for (const name of readdirSync(join(blobs, shard))) renameSync(join(blobs, shard, name), join(saved, shard, name));
    rmSync(join(blobs, shard), { recursive: true });
  }
  for (let i = 0; i < 256; i++) writeFileSync(join(blobs, i.toString(16).padStart(2, '0')), 'not a directory');
  return () => {
    for (let i = 0; i < 256; i++) rmSync(join(blobs, i.toString(16).padStart(2, '0')));
    for (const shard of shards) {
      mkdirSync(join(blobs, shard));
      for (const name of readdirSync(join(saved, shard))) renameSync(join(saved, shard, name), join(blobs, shard, name));
    }
    rmSync(saved, { recursive: true });
  };
}

test('a failure in the worker comes back as an FsError naming the blob, and the worker goes on', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir);
  t.teardown(() => offload.close());
  const restore = breakBlobStore(join(dir, BLOB_DIR));
  const err = await t.throwsAsync(offload.wait(offload.sealAndPut(fileKey, pieceId(0), patternBytes(P, 1))));
  t.true(err instanceof FsError);
  t.regex(err?.message ?? '', /blob/);
  restore();
  await t.notThrowsAsync(offload.wait(offload.sealAndPut(fileKey, pieceId(1), patternBytes(P, 2))), 'the next job works');
});

test('after close, jobs fail with EIO at once instead of hanging', async (t) => {
  const dir = tempDir(t);
  const offload = await offloadIn(dir);
  await offload.close();
  t.false(offload.alive);
  const err = await t.throwsAsync(offload.sealAndPut(fileKey, pieceId(0), patternBytes(P, 1)).result);
  t.is((err as FsError).errno, 'EIO');
});

test('through the vault: a file written in full pieces is sealed on the worker and reads back after reopening', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0.2 });
  const v = tv.vault;
  t.true(await v.pieceWorkerReady());
  const data = patternBytes(40 * P + 123, 7);
  const fh = v.create('/big', 0o644);
  for (let off = 0; off < data.length; off += P) await v.write(fh, data.subarray(off, off + P), off);
  // Rewrite a piece that may still be with the worker: the write waits for it, nothing is lost.
  await v.write(fh, Buffer.from('rewritten'), 39 * P + 5);
  data.write('rewritten', 39 * P + 5);
  await v.release(fh);
  await v.sync(); // the vault's commit: the worker's blobs first
  const calls = (op: string) => v.stats.summary().find((s) => s.op === op)?.calls ?? 0;
  t.true(calls('crypto.seal@worker') >= 30, 'full pieces went to the worker');
  t.true(calls('store.put@worker') >= calls('crypto.seal@worker'), 'the worker stored through its counted store stack: a put per seal, and chaff');
  t.true(calls('store.flush@worker') >= 1, 'the commit had the worker make its blobs durable');
  await tv.reopen();
  t.true((await readAt(tv.vault, '/big', 0, data.length)).equals(data));
});

test('through the vault: when the worker cannot write, the commit seals the pieces itself and reports the error', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  t.true(await v.pieceWorkerReady());
  const first = patternBytes(8 * P, 3);
  await writeAt(v, '/f', first, 0);
  const fh = v.open('/f');
  const restore = breakBlobStore(join(tv.storeDir, BLOB_DIR));
  for (let off = 0; off < 8 * P; off += P) await v.write(fh, patternBytes(P, 50 + off / P), off);
  const err = await t.throwsAsync(v.release(fh));
  t.true(err instanceof FsError);
  restore();
  await tv.reopen();
  t.true((await readAt(tv.vault, '/f', 0, first.length)).equals(first), 'the file is as last committed');
});

test('through the vault: a worker that dies after sealing does not stop the commit; the store syncs its blobs', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  t.true(await v.pieceWorkerReady());
  const data = patternBytes(12 * P, 9);
  const fh = v.create('/f', 0o644);
  for (let off = 0; off < data.length; off += P) await v.write(fh, data.subarray(off, off + P), off);
  // The worker goes away with sealed pieces it has not made durable (and perhaps some still queued).
  await (v as unknown as { offload: PieceOffload }).offload.close();
  await t.notThrowsAsync(v.release(fh));
  await tv.reopen();
  t.true((await readAt(tv.vault, '/f', 0, data.length)).equals(data));
});
