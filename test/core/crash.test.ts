// Crashes between the piece writes and the metadata commit leave the old content readable and only
// orphan blobs behind, which fsck finds and --repair deletes. fsck --repair on damaged pieces moves the
// file to /lost+found, keeps the damaged range failing and leaves healthy files alone.

import test from 'ava';
import { existsSync, lstatSync, readFileSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blobPath, type Address } from '../../src/core/pieces/address.js';
import { IntegrityError } from '../../src/core/errors.js';
import { fsck, isClean, LOST_AND_FOUND } from '../../src/core/fsck/fsck.js';
import { LOCK_FILE } from '../../src/core/vault/store-lock.js';
import { RESERVE_FILE } from '../../src/core/meta/record-store.js';
import { BLOB_DIR, LocalDirStore } from '../../src/core/store/local-dir-store.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { Vault } from '../../src/core/vault/vault.js';
import { abandon, createTempVault, patternBytes, readAt, recordsOf, tempDir, PASSPHRASE } from '../helpers/temp-vault.js';

const P = 4096;

/** A LocalDirStore whose flush() fails once `crash` is set: the process "dies" after the piece puts, before the commit. */
class CrashingStore implements PieceStore {
  crash = false;
  private store: LocalDirStore | undefined;

  // Made lazily: Vault.create wants an empty store directory, and LocalDirStore creates blobs/ at once.
  constructor(private readonly dir: string) {}

  private get inner(): LocalDirStore {
    this.store ??= new LocalDirStore(this.dir);
    return this.store;
  }

  put(a: Address, b: Buffer): Promise<void> {
    return this.inner.put(a, b);
  }
  get(a: Address): Promise<Buffer | null> {
    return this.inner.get(a);
  }
  read<T>(a: Address, use: (blob: Buffer) => T): Promise<T | null> {
    return this.inner.read(a, use);
  }
  delete(a: Address): Promise<void> {
    return this.inner.delete(a);
  }
  list(): AsyncIterable<Address> {
    return this.inner.list();
  }
  usage(): Promise<{ blobs: number; bytes: number }> {
    return this.inner.usage();
  }
  async flush(): Promise<void> {
    if (this.crash) throw new Error('simulated crash before the metadata commit');
    return this.inner.flush();
  }
  close(): void {
    this.store?.close();
    this.store = undefined; // the next vault opened on this store opens its directories again
  }
}

function blobFileOf(storeDir: string, vault: Vault, fileId: Buffer, index: number, version: number): string {
  return join(storeDir, BLOB_DIR, blobPath(vault.check().pieces.pieceAddress({ fileId }, index, version)));
}

test('crash between the piece writes and the commit (flush fails): old content survives, fsck finds and repairs the orphans', async (t) => {
  const storeDir = join(tempDir(t), 'store');
  const crashing = new CrashingStore(storeDir);
  const v1 = await Vault.create(storeDir, PASSPHRASE, { pieceSize: P, chaffRatio: 0.5 }, { store: crashing });
  const opened: { v2?: Vault } = {};
  t.teardown(async () => {
    await opened.v2?.close();
    // The dead process's leftovers: its SQLite handle. Its commit still fails (the store still "crashes").
    await v1.close().catch(() => undefined);
  });

  const healthy = patternBytes(2 * P + 7, 1);
  const oldContent = patternBytes(3 * P, 2);
  await v1.writeFile('/healthy', healthy);
  await v1.writeFile('/victim', oldContent);
  await v1.sync();
  const victim = v1.inodeAt('/victim');
  const committedVersions = new Map(victim.pieces);

  // Overwrite the victim in place (no truncate), then crash in the durable commit an fsync asks for.
  const newContent = patternBytes(3 * P, 3);
  const fh = v1.open('/victim');
  await v1.write(fh, newContent, 0);
  crashing.crash = true;
  await t.throwsAsync(v1.fsync(fh), { message: /simulated crash/ });
  // The new versions were written before the failed commit: these are the orphans to be.
  const orphanFiles = [0, 1, 2].map((i) => blobFileOf(storeDir, v1, victim.fileId, i, victim.nextVersion + i));
  for (const f of orphanFiles) t.true(existsSync(f), `uncommitted piece blob ${f} exists`);
  // The process dies: no release, no close. A later process finds a stale lock.
  t.true(existsSync(join(storeDir, LOCK_FILE)));
  unlinkSync(join(storeDir, LOCK_FILE));

  const v2 = await Vault.open(storeDir, PASSPHRASE);
  opened.v2 = v2;
  t.true((await v2.readFile('/victim')).equals(oldContent), 'the old content must survive the crash');
  t.deepEqual(v2.inodeAt('/victim').pieces, committedVersions);
  t.true((await v2.readFile('/healthy')).equals(healthy));

  const usageBefore = await v2.usage();
  const { before, after } = await fsck(v2, { repair: true });
  t.is(before.orphans, 3, JSON.stringify(before));
  t.deepEqual(before.problems, []);
  t.false(isClean(before));
  t.truthy(after);
  if (!after) return;
  t.true(isClean(after), JSON.stringify(after));
  t.is(after.orphans, 0);
  t.is(after.chaff, before.chaff, 'chaff is not an orphan and stays');
  for (const f of orphanFiles) t.false(existsSync(f), `orphan ${f} was deleted`);
  t.is((await v2.usage()).blobs, usageBefore.blobs - 3);
  t.true((await v2.readFile('/victim')).equals(oldContent));
  t.true((await v2.readFile('/healthy')).equals(healthy));

  // Writing again after the repair works and commits.
  const w = v2.open('/victim');
  await v2.write(w, newContent, 0);
  await v2.release(w);
  t.true((await v2.readFile('/victim')).equals(newContent));
  t.true(isClean((await fsck(v2)).before));
});

test('crash with written data never flushed or released (vault abandoned): old content survives, fsck repairs', async (t) => {
  // Large dirty data makes the engine seal pieces early (past 8 MiB per file), so blobs reach the store uncommitted.
  const tv = await createTempVault(t, { pieceSize: 128 * 1024, chaffRatio: 0.1 });
  const v1 = tv.vault;
  const healthy = patternBytes(300000, 4);
  const oldContent = patternBytes(200000, 5);
  await v1.writeFile('/healthy', healthy);
  await v1.writeFile('/victim', oldContent);
  await v1.writeFile('/new-file-before', Buffer.from('committed'));
  const blobsBefore = (await v1.usage()).blobs;

  const fh = v1.open('/victim');
  // Write until the engine has sealed some pieces early (it does past 8 MiB of dirty data per file).
  const chunk = patternBytes(1024 * 1024, 6);
  for (let mib = 0; mib < 64 && (await v1.usage()).blobs === blobsBefore; mib++) await v1.write(fh, chunk, mib * chunk.length);
  const fh2 = v1.create('/never-committed', 0o644);
  await v1.write(fh2, Buffer.from('lost'), 0);
  await v1.sync();
  // v1's group commit writes its staged metadata (the create), as it would within its window; its
  // background sealing finishes; then v1 is a dead process: nothing more happens in it, and its lock is stale.
  // The sealing in flight (up to 8 MiB of pieces on the worker) can take longer than a fixed sleep on a
  // busy machine, so wait until the store has stopped growing.
  await new Promise((r) => setTimeout(r, 100));
  let blobsAfterWrite = (await v1.usage()).blobs;
  for (let steady = 0, waited = 0; steady < 6 && waited < 10_000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
    const now = (await v1.usage()).blobs;
    steady = now === blobsAfterWrite ? steady + 1 : 0;
    blobsAfterWrite = now;
  }
  t.true(blobsAfterWrite > blobsBefore, 'some pieces were sealed and stored before any commit');
  unlinkSync(join(tv.storeDir, LOCK_FILE));
  const v2 = await Vault.open(tv.storeDir, tv.passphrase);
  t.teardown(() => v2.close());

  t.true((await v2.readFile('/victim')).equals(oldContent), 'the old content must survive');
  t.true((await v2.readFile('/healthy')).equals(healthy));
  t.is((await v2.readFile('/new-file-before')).toString(), 'committed');
  // The created file's entry reached SQLite with v1's batch; its data was never committed.
  t.is(v2.getattr('/never-committed').size, 0);

  const { before, after } = await fsck(v2, { repair: true });
  t.true(before.orphans > 0, JSON.stringify(before));
  t.deepEqual(before.problems, []);
  t.true(after !== undefined && isClean(after), JSON.stringify(after));
  t.is((await v2.usage()).blobs, blobsAfterWrite - before.orphans);
  t.true((await v2.readFile('/victim')).equals(oldContent));
  t.true((await v2.readFile('/healthy')).equals(healthy));
  t.true(isClean((await fsck(v2)).before), 'a second fsck is clean');
});

test('fsck --repair on damaged pieces: files go to /lost+found, the damaged range keeps failing, healthy files untouched', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0.3 });
  let v = tv.vault;
  v.mkdir('/docs', 0o755);
  const files = new Map<string, Buffer>([
    ['/docs/bad', patternBytes(3 * P + 100, 7)],
    ['/missing', patternBytes(2 * P, 8)],
    ['/h1', patternBytes(5 * P, 9)],
    ['/docs/h2', patternBytes(10, 10)],
  ]);
  for (const [p, d] of files) await v.writeFile(p, d);
  const badId = v.inodeAt('/docs/bad').id;
  const missingId = v.inodeAt('/missing').id;
  const badBlob = tv.blobFile('/docs/bad', 1);
  const missingBlob = tv.blobFile('/missing', 0);
  await tv.close();
  const b = readFileSync(badBlob);
  b[100] = (b[100] as number) ^ 0x40;
  writeFileSync(badBlob, b);
  unlinkSync(missingBlob);
  v = await tv.open();

  const healthyBlobs = (path: string) => [...v.inodeAt(path).pieces.keys()].map((i) => readFileSync(tv.blobFile(path, i)));
  const h1Blobs = healthyBlobs('/h1');

  const { before, after } = await fsck(v, { repair: true });
  t.deepEqual(
    before.problems.map((p) => [p.path, p.kind]).sort(),
    [['/docs/bad', 'bad-piece'], ['/missing', 'missing-piece']],
  );
  t.regex(before.problems.find((p) => p.path === '/docs/bad')?.detail ?? '', /piece 1\b/);
  t.truthy(after);
  if (!after) return;
  t.true(isClean(after), JSON.stringify(after));
  t.is(after.quarantinedFiles, 2);

  // Moved to /lost+found under name.<inode id>, gone from their old place.
  const lf = `/${LOST_AND_FOUND}`;
  t.deepEqual(v.readdir(lf).sort(), [`bad.${badId}`, `missing.${missingId}`].sort());
  t.throws(() => v.getattr('/docs/bad'), { message: /no such file/ });
  t.throws(() => v.getattr('/missing'), { message: /no such file/ });
  const bad = `${lf}/bad.${badId}`;
  const missing = `${lf}/missing.${missingId}`;

  // The damaged range fails (EIO), never zeroes; the rest of the file reads.
  const original = files.get('/docs/bad') as Buffer;
  for (const read of [() => v.readFile(bad), () => readAt(v, bad, P + 5, 10)]) {
    const err = await t.throwsAsync(read(), { instanceOf: IntegrityError });
    t.is(err?.errno, 'EIO');
    t.regex(err?.message ?? '', /piece 1\b/);
  }
  t.true((await readAt(v, bad, 0, P)).equals(original.subarray(0, P)));
  t.true((await readAt(v, bad, 2 * P, 2 * P)).equals(original.subarray(2 * P)));
  await t.throwsAsync(readAt(v, missing, 0, 1), { instanceOf: IntegrityError, message: /piece 0\b/ });
  t.true((await readAt(v, missing, P, P)).equals((files.get('/missing') as Buffer).subarray(P)));
  t.is(v.getattr(bad).size, original.length, 'the size is kept');

  // Healthy files: same content, same blobs.
  t.true((await v.readFile('/h1')).equals(files.get('/h1') as Buffer));
  t.true((await v.readFile('/docs/h2')).equals(files.get('/docs/h2') as Buffer));
  t.deepEqual(healthyBlobs('/h1'), h1Blobs);
  t.deepEqual(v.readdir('/docs'), ['h2']);

  // A second fsck is clean, also after a reopen, and the quarantine holds.
  t.true(isClean((await fsck(v)).before));
  v = await tv.reopen();
  const third = (await fsck(v)).before;
  t.true(isClean(third), JSON.stringify(third));
  t.is(third.quarantinedFiles, 2);
  await t.throwsAsync(readAt(v, bad, P, 1), { instanceOf: IntegrityError });

  // Overwriting the whole damaged piece heals it: the new data reads back.
  const fh = v.open(bad);
  await v.write(fh, Buffer.alloc(P, 0x5a), P);
  await v.release(fh);
  t.true((await readAt(v, bad, P, P)).equals(Buffer.alloc(P, 0x5a)));
});

test('fsync of a file unlinked while open makes the unlink durable: a crash right after does not bring it back', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v1 = tv.vault;
  await v1.writeFile('/gone', patternBytes(3 * P + 100, 1));
  await v1.writeFile('/kept', patternBytes(100, 2));
  const fh = v1.open('/gone');
  v1.unlink('/gone');
  await v1.write(fh, patternBytes(2 * P, 3), 0); // written on through the handle, as POSIX allows
  await v1.fsync(fh); // fsync(2) returned: an acknowledgement (README, crash safety)
  // The process dies right then: nothing staged reaches SQLite, and the lock is stale.
  abandon(v1);
  unlinkSync(join(tv.storeDir, LOCK_FILE));
  const v2 = await tv.open();
  const err = t.throws(() => v2.getattr('/gone'));
  t.is((err as IntegrityError & { errno: string }).errno, 'ENOENT');
  t.deepEqual(v2.readdir('/'), ['kept']);
  const { before } = await fsck(v2, { repair: true });
  t.deepEqual(before.problems, [], 'only orphans (the unlinked file\'s blobs) may be left');
});

test('piece versions are never used twice, even after a crash lost the changes that used them (security finding 3)', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v1 = tv.vault;
  await v1.writeFile('/f', patternBytes(2 * P, 1));
  await v1.sync();
  // Closed but not yet durable: a crash loses this content, yet its blobs are in the store, and anyone
  // who copied them then holds valid blobs for these (file, index, version) addresses.
  const fh = v1.open('/f');
  await v1.write(fh, patternBytes(2 * P, 2), 0);
  await v1.flush(fh);
  const lost = new Map(v1.inodeAt('/f').pieces);
  const lostBlobs = [0, 1].map((i) => readFileSync(blobFileOf(tv.storeDir, v1, v1.inodeAt('/f').fileId, i, lost.get(i) as number)));
  abandon(v1);
  unlinkSync(join(tv.storeDir, LOCK_FILE));

  const v2 = await tv.open();
  t.true((await v2.readFile('/f')).equals(patternBytes(2 * P, 1)), 'the lost close is lost, the content before it is whole');
  await v2.writeFile('/f', patternBytes(2 * P, 3));
  await v2.sync();
  const now = v2.inodeAt('/f').pieces;
  for (const i of [0, 1]) t.true((now.get(i) as number) > (lost.get(i) as number), `piece ${i}: version ${now.get(i)} is past the lost ${lost.get(i)}`);
  // Replaying the lost blobs at the new addresses is detected, not served.
  const fileId = v2.inodeAt('/f').fileId;
  for (const i of [0, 1]) writeFileSync(blobFileOf(tv.storeDir, v2, fileId, i, now.get(i) as number), lostBlobs[i] as Buffer);
  await t.throwsAsync(v2.readFile('/f'), { message: /authentic|damaged|failed/i });
});

test('a state record without a version reservation (an older svault wrote it) starts past every file\'s nextVersion', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v1 = tv.vault;
  v1.mkdir('/d', 0o755);
  await v1.writeFile('/d/f', patternBytes(2 * P, 1));
  await v1.sync();
  // What an older svault leaves: its own per-file counting, past 2^40 after a newer svault wrote the
  // file, and a state record with no reservation.
  const records = recordsOf(v1);
  const meta = v1.check().meta;
  const inode = meta.requireInode(v1.inodeAt('/d/f').id);
  const high = 2 ** 44 + 17;
  meta.transaction(() => meta.putInode({ ...inode, nextVersion: high }));
  await v1.sync();
  const stateName = records.nameOf('state');
  const state = JSON.parse((records.get(stateName, 'vault state') as Buffer).toString()) as Record<string, unknown>;
  delete state.versionsReserved;
  records.transaction(() => records.put(stateName, Buffer.from(JSON.stringify(state))));
  await v1.close();

  const v2 = await tv.open();
  await v2.writeFile('/g', patternBytes(P, 2));
  const version = v2.inodeAt('/g').pieces.get(0) as number;
  t.true(version > high, `version ${version} is past the highest nextVersion ${high}`);
});

test('a space reserve a power cut left short (or a link in its place) is written again, in full and durably, at the next open', async (t) => {
  const tv = await createTempVault(t);
  const reserve = join(tv.storeDir, RESERVE_FILE);
  t.is(statSync(reserve).size, 1024 * 1024);
  await tv.close();
  truncateSync(reserve, 0); // what an unsynced reserve looks like after a power cut
  await tv.open();
  t.is(statSync(reserve).size, 1024 * 1024, 'an empty reserve is refilled');
  await tv.close();
  unlinkSync(reserve);
  const elsewhere = join(tempDir(t), 'not-the-reserve');
  symlinkSync(elsewhere, reserve);
  await tv.open();
  t.true(lstatSync(reserve).isFile(), 'a link at the reserve is replaced by a file');
  t.is(statSync(reserve).size, 1024 * 1024);
  t.false(existsSync(elsewhere), 'nothing was written through the link');
});
