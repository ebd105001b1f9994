// The pieces layer (src/core/pieces/sealed-pieces.ts) over every kind of piece store: what it stores
// reads back, chaff goes beside it, and every way a stored piece can be damaged or lost is an
// IntegrityError of the right kind, never data. The vault-level tamper tests (tamper.test.ts) go
// through this layer too; these check it on its own.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { IntegrityError, type IntegrityKind } from '../../src/core/errors.js';
import type { PieceId } from '../../src/core/pieces/piece-codec.js';
import { SealedPieces } from '../../src/core/pieces/sealed-pieces.js';
import { CountingStore } from '../../src/core/store/counting-store.js';
import { LocalDirStore } from '../../src/core/store/local-dir-store.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { patternBytes, tempDir, type Cleanup } from '../helpers/temp-vault.js';

const P = 4096;
const vaultId = randomBytes(16);
const addressKey = randomBytes(32);
const fileKey = randomBytes(32);

const storeKinds: { name: string; make: (c: Cleanup) => PieceStore }[] = [
  { name: 'MemoryStore', make: () => new MemoryStore() },
  { name: 'LocalDirStore', make: (c) => new LocalDirStore(tempDir(c)) },
  { name: 'CountingStore(LocalDirStore)', make: (c) => new CountingStore(new LocalDirStore(tempDir(c)), new OpStats()) },
];

function id(index: number, version = 1, fileId = Buffer.alloc(16, 7)): PieceId {
  return { fileId, index, version };
}

async function addressesOf(pieces: SealedPieces): Promise<string[]> {
  const out: string[] = [];
  for await (const a of pieces.addresses()) out.push(a.toString('hex'));
  return out;
}

for (const kind of storeKinds) {
  const name = (what: string) => `${kind.name}: ${what}`;
  const make = (c: Cleanup, chaffRatio = 0, oneBlobAtATime = false) => {
    const store = kind.make(c);
    return { store, pieces: new SealedPieces({ vaultId, addressKey, store, pieceSize: P, chaffRatio, stats: new OpStats(), oneBlobAtATime }) };
  };

  /** Reading piece `pid` fails with an IntegrityError of `want`, naming the file. */
  async function refused(t: import('ava').ExecutionContext, pieces: SealedPieces, pid: PieceId, want: IntegrityKind, key = fileKey): Promise<void> {
    const err = await t.throwsAsync(pieces.read(key, pid, '/file'));
    t.true(err instanceof IntegrityError, String(err));
    t.is((err as IntegrityError).kind, want, err?.message);
    t.regex(err?.message ?? '', /\/file: piece/);
    const into = Buffer.alloc(P, 0xee);
    const err2 = await t.throwsAsync(pieces.readInto(key, pid, into, '/file'));
    t.is((err2 as IntegrityError).kind, want);
  }

  for (const oneBlobAtATime of [false, true]) {
    test(name(`what is put reads back, whole and into a buffer (${oneBlobAtATime ? 'one reused blob buffer' : 'a new buffer per blob'})`), async (t) => {
      const { pieces } = make(t, 0, oneBlobAtATime);
      const sizes = [0, 1, 100, P - 1, P];
      for (const [i, size] of sizes.entries()) await pieces.put(fileKey, id(i), patternBytes(size, i + 1));
      await pieces.flush();
      for (const [i, size] of sizes.entries()) {
        t.true((await pieces.read(fileKey, id(i), '/file')).equals(patternBytes(size, i + 1)), `piece of ${size} bytes`);
        const into = Buffer.alloc(Math.max(size, 1), 0xee);
        await pieces.readInto(fileKey, id(i), into, '/file');
        const want = Buffer.alloc(into.length);
        patternBytes(size, i + 1).copy(want);
        t.true(into.equals(want), `piece of ${size} bytes into a buffer (zeroes past its data)`);
      }
      t.is((await addressesOf(pieces)).length, sizes.length, 'no chaff at ratio 0');
    });
  }

  test(name('chaff goes beside each piece at the ratio, of its blob size, and only the address key tells it apart'), async (t) => {
    const { pieces, store } = make(t, 2);
    await pieces.put(fileKey, id(0), patternBytes(P, 1));
    const all = await addressesOf(pieces);
    t.is(all.length, 3);
    const piece = pieces.addressOf(id(0)).toString('hex');
    const size = (await store.get(Buffer.from(piece, 'hex')))?.length;
    for (const hex of all) {
      const a = Buffer.from(hex, 'hex');
      t.is(await pieces.isChaffAt(a), hex !== piece);
      t.is((await store.get(a))?.length, size);
    }
  });

  test(name('a flipped bit anywhere in a blob is damage'), async (t) => {
    const { pieces, store } = make(t);
    await pieces.put(fileKey, id(0), patternBytes(300, 1));
    const address = pieces.addressOf(id(0));
    const blob = (await store.get(address)) as Buffer;
    for (const at of [0, 11, 12, 200, blob.length - 17, blob.length - 1]) {
      const bad = Buffer.from(blob);
      bad[at] = (bad[at] ?? 0) ^ 1;
      await store.put(address, bad);
      await refused(t, pieces, id(0), 'damaged');
    }
    await store.put(address, blob);
    t.true((await pieces.read(fileKey, id(0), '/file')).equals(patternBytes(300, 1)), 'the original blob reads again');
  });

  test(name('truncated and empty blobs are damage'), async (t) => {
    const { pieces, store } = make(t);
    await pieces.put(fileKey, id(0), patternBytes(P, 2));
    const address = pieces.addressOf(id(0));
    const blob = (await store.get(address)) as Buffer;
    for (const length of [blob.length - 1, blob.length >> 1, 27, 0]) {
      await store.put(address, blob.subarray(0, length));
      await refused(t, pieces, id(0), 'damaged');
    }
  });

  test(name('a blob moved to another piece, file or version, or read with another key, is damage'), async (t) => {
    const { pieces, store } = make(t);
    const other = Buffer.alloc(16, 8);
    await pieces.put(fileKey, id(0), patternBytes(P, 3));
    await pieces.put(fileKey, id(1), patternBytes(P, 4));
    const blob0 = (await store.get(pieces.addressOf(id(0)))) as Buffer;
    for (const target of [id(1), id(0, 2), id(0, 1, other)]) {
      await store.put(pieces.addressOf(target), blob0);
      await refused(t, pieces, target, 'damaged');
    }
    await refused(t, pieces, id(0), 'damaged', randomBytes(32));
  });

  test(name('a deleted piece, and a version never stored, are missing'), async (t) => {
    const { pieces } = make(t);
    await pieces.put(fileKey, id(0), patternBytes(P, 5));
    await refused(t, pieces, id(0, 2), 'missing');
    await pieces.delete(id(0));
    await refused(t, pieces, id(0), 'missing');
    await t.notThrowsAsync(pieces.delete(id(0)), 'deleting an absent piece is not an error');
  });

  test(name('restore stores a piece again as it is; an absent one stays absent'), async (t) => {
    const { pieces } = make(t);
    await pieces.put(fileKey, id(0), patternBytes(P, 6));
    await pieces.restore(id(0));
    await pieces.restore(id(9));
    await pieces.flush();
    t.true((await pieces.read(fileKey, id(0), '/file')).equals(patternBytes(P, 6)));
    t.deepEqual(await addressesOf(pieces), [pieces.addressOf(id(0)).toString('hex')]);
  });
}

test('seals and stores are counted: crypto.seal and crypto.open by the layer, store.* by the store stack', async (t) => {
  const stats = new OpStats();
  const store = new CountingStore(new MemoryStore(), stats);
  const pieces = new SealedPieces({ vaultId, addressKey, store, pieceSize: P, chaffRatio: 1, stats });
  await pieces.put(fileKey, id(0), patternBytes(P, 1));
  await pieces.read(fileKey, id(0), '/file');
  const calls = (op: string) => stats.summary().find((s) => s.op === op)?.calls ?? 0;
  t.is(calls('crypto.seal'), 1);
  t.is(calls('crypto.open'), 1);
  t.is(calls('store.put'), 2, 'the piece and its chaff');
  t.is(calls('store.get'), 1);
});

test('a put that fails part way (a full disk) leaves no piece behind: the caller never learns of it, so it would be an orphan', async (t) => {
  // A disk with room for exactly one more blob, whichever is written first.
  class OneMoreBlob extends MemoryStore {
    private room = 1;
    override async put(address: Buffer, blob: Buffer): Promise<void> {
      if (this.room-- <= 0) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      return super.put(address, blob);
    }
  }
  const store = new OneMoreBlob();
  const pieces = new SealedPieces({ vaultId, addressKey, store, pieceSize: P, chaffRatio: 1, stats: new OpStats() });
  await t.throwsAsync(pieces.put(fileKey, id(0), patternBytes(100, 1)), { message: /ENOSPC/ });
  const left = await addressesOf(pieces);
  t.false(left.includes(pieces.addressOf(id(0)).toString('hex')), 'the piece is not stored');
  for (const hex of left) t.true(await pieces.isChaffAt(Buffer.from(hex, 'hex')), 'what is left is chaff, which fsck recognises');
});
