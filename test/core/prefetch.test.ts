// Reads ahead for stores with long round trips (issue 24): a sequential reader's next pieces are named to
// the store's prefetch hint (PieceStore.prefetch) through the counting layer and the pieces layer, each
// once per run and at most 16 ahead of the reader; a jump starts a new run; a store without the hint is
// never asked, and no address is computed for it.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { addressOf, type Address } from '../../src/core/pieces/address.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import { TempVault } from '../helpers/temp-vault.js';

const P = 4096;

/** A memory store that records the prefetch hints it is given. */
class HintedStore extends MemoryStore {
  readonly hints: string[][] = [];
  prefetch(addresses: readonly Address[]): void {
    this.hints.push(addresses.map((a) => a.toString('hex')));
  }
}

test('a sequential reader names its next pieces to the store, each once, at most 16 ahead; a jump starts again', async (t) => {
  const store = new HintedStore();
  const tv = await TempVault.create(t, { pieceSize: P, store });
  const data = randomBytes(40 * P);
  const fh = tv.vault.create('/f', 0o644);
  await tv.vault.write(fh, data, 0);
  await tv.vault.release(fh);
  const v = await tv.reopen();
  const inode = v.inodeAt('/f');
  const key = (v as unknown as { keys: { address: Buffer } }).keys.address;
  const pieceOf = new Map([...inode.pieces].map(([index, version]) => [addressOf(key, { fileId: inode.fileId, index, version }).toString('hex'), index]));

  const rfh = v.open('/f');
  const buf = Buffer.alloc(P);
  const named: number[] = [];
  for (let i = 0; i < 10; i++) {
    await v.read(rfh, buf, P, i * P);
    t.true(buf.equals(data.subarray(i * P, (i + 1) * P)));
    for (const hint of store.hints.splice(0)) for (const hex of hint) named.push(pieceOf.get(hex) ?? -1);
    t.true(Math.max(...named) <= i + 16, `at most 16 pieces ahead after reading piece ${i} (${Math.max(...named)})`);
  }
  t.deepEqual(named, Array.from({ length: 25 }, (_, i) => i + 1), 'pieces 1 to 25 (16 past the last read), each once, in order');
  // A jump: a new run, named again from there.
  await v.read(rfh, buf, P, 30 * P);
  t.deepEqual(store.hints.splice(0).flat().map((hex) => pieceOf.get(hex)), [], 'a jump is not sequential: no hint');
  await v.read(rfh, buf, P, 31 * P);
  t.deepEqual(store.hints.splice(0).flat().map((hex) => pieceOf.get(hex)), [32, 33, 34, 35, 36, 37, 38, 39], 'up to the end of the file');
  await v.release(rfh);
});

test('a store without the hint is never asked: the read path computes no address for it', async (t) => {
  const store = new MemoryStore();
  const tv = await TempVault.create(t, { pieceSize: P, store });
  const fh = tv.vault.create('/f', 0o644);
  await tv.vault.write(fh, randomBytes(8 * P), 0);
  await tv.vault.release(fh);
  const v = await tv.reopen();
  const pieces = (v as unknown as { contents: { pieces: { prefetches: boolean } } }).contents.pieces;
  t.false(pieces.prefetches);
  const rfh = v.open('/f');
  const buf = Buffer.alloc(P);
  for (let i = 0; i < 8; i++) t.is(await v.read(rfh, buf, P, i * P), P);
  await v.release(rfh);
});
