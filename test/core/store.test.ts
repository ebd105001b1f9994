// One generic PieceStore contract, run against every implementation: MemoryStore, LocalDirStore and the
// CountingStore layer over each. MemoryStore is the model; every store must behave the same.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDRESS_BYTES, blobPath, type Address } from '../../src/core/pieces/address.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { CountingStore } from '../../src/core/store/counting-store.js';
import { BLOB_DIR, BLOB_TIME, LocalDirStore } from '../../src/core/store/local-dir-store.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { tempDir, type Cleanup } from '../helpers/temp-vault.js';

interface StoreUnderTest {
  store: PieceStore;
  /** A second instance over the same backing data, for stores that persist (directory stores); else the same one. */
  reopen: () => PieceStore;
}

interface StoreKind {
  name: string;
  make: (c: Cleanup) => StoreUnderTest;
}

const kinds: StoreKind[] = [
  {
    name: 'MemoryStore',
    make: () => {
      const store = new MemoryStore();
      return { store, reopen: () => store };
    },
  },
  {
    name: 'LocalDirStore',
    make: (c) => {
      const dir = tempDir(c);
      return { store: new LocalDirStore(dir), reopen: () => new LocalDirStore(dir) };
    },
  },
  {
    name: 'CountingStore(MemoryStore)',
    make: () => {
      const inner = new MemoryStore();
      return { store: new CountingStore(inner, new OpStats()), reopen: () => new CountingStore(inner, new OpStats()) };
    },
  },
  {
    name: 'CountingStore(LocalDirStore)',
    make: (c) => {
      const dir = tempDir(c);
      return {
        store: new CountingStore(new LocalDirStore(dir), new OpStats()),
        reopen: () => new CountingStore(new LocalDirStore(dir), new OpStats()),
      };
    },
  },
];

function addr(): Address {
  return randomBytes(ADDRESS_BYTES);
}

async function listHex(store: PieceStore): Promise<string[]> {
  const out: string[] = [];
  for await (const a of store.list()) out.push(a.toString('hex'));
  return out.sort();
}

/** The shared contract. Every check here must hold for every PieceStore. */
function pieceStoreSuite(kind: StoreKind): void {
  const name = (what: string) => `${kind.name}: ${what}`;

  test(name('a new store is empty'), async (t) => {
    const { store } = kind.make(t);
    t.deepEqual(await listHex(store), []);
    t.deepEqual(await store.usage(), { blobs: 0, bytes: 0 });
  });

  test(name('put then get returns the same bytes'), async (t) => {
    const { store } = kind.make(t);
    const a = addr();
    const blob = randomBytes(4128);
    await store.put(a, blob);
    const got = await store.get(a);
    t.truthy(got);
    t.true(got?.equals(blob));
  });

  test(name('get of an absent address returns null'), async (t) => {
    const { store } = kind.make(t);
    t.is(await store.get(addr()), null);
    await store.put(addr(), Buffer.from('other'));
    t.is(await store.get(addr()), null, 'absent next to a present blob');
  });

  test(name('read lends each blob to its callback, bytes as stored, and gives null for an absent one'), async (t) => {
    const { store } = kind.make(t);
    const a = addr();
    const b = addr();
    const big = randomBytes(140_000);
    const small = randomBytes(33); // read after the big one: a reused buffer must not show the big one's tail
    await store.put(a, big);
    await store.put(b, small);
    t.true(await store.read(a, (blob) => blob.equals(big)));
    t.is(await store.read(b, (blob) => blob.length), small.length);
    t.true(await store.read(b, (blob) => blob.equals(small)));
    t.is(await store.read(addr(), () => 'called'), null, 'the callback is not called for an absent blob');
    const copy = await store.read(a, (blob) => Buffer.from(blob));
    await store.read(b, () => undefined);
    t.true(copy?.equals(big), 'what the callback copied out stays valid after the next read');
  });

  test(name('a zero-length blob is stored and is not confused with absence'), async (t) => {
    const { store } = kind.make(t);
    const a = addr();
    await store.put(a, Buffer.alloc(0));
    const got = await store.get(a);
    t.not(got, null);
    t.is(got?.length, 0);
    t.deepEqual(await listHex(store), [a.toString('hex')]);
  });

  test(name('put replaces the blob at an address'), async (t) => {
    const { store } = kind.make(t);
    const a = addr();
    await store.put(a, randomBytes(5000));
    const second = randomBytes(100); // shorter: no tail of the first may remain
    await store.put(a, second);
    t.true((await store.get(a))?.equals(second));
    t.deepEqual(await listHex(store), [a.toString('hex')], 'a replaced blob is listed once');
    t.deepEqual(await store.usage(), { blobs: 1, bytes: 100 });
  });

  test(name('delete removes a blob; deleting an absent or already deleted blob is fine'), async (t) => {
    const { store } = kind.make(t);
    const a = addr();
    const b = addr();
    await store.put(a, Buffer.from('aaa'));
    await store.put(b, Buffer.from('bbbb'));
    await store.delete(a);
    t.is(await store.get(a), null);
    t.true((await store.get(b))?.equals(Buffer.from('bbbb')), 'delete must not touch other blobs');
    await t.notThrowsAsync(store.delete(a), 'deleting twice');
    await t.notThrowsAsync(store.delete(addr()), 'deleting a never-stored address');
    t.deepEqual(await listHex(store), [b.toString('hex')]);
    t.deepEqual(await store.usage(), { blobs: 1, bytes: 4 });
  });

  test(name('list yields every stored address exactly once'), async (t) => {
    const { store } = kind.make(t);
    const want: string[] = [];
    for (let i = 0; i < 300; i++) {
      const a = addr();
      // Several addresses in one shard too.
      if (i % 50 === 0) a[0] = 0x42;
      await store.put(a, randomBytes(i % 7));
      want.push(a.toString('hex'));
    }
    const got = await listHex(store);
    t.is(got.length, 300);
    t.deepEqual(got, want.sort());
    for await (const a of store.list()) t.is(a.length, ADDRESS_BYTES);
  });

  test(name('usage counts blobs and bytes'), async (t) => {
    const { store } = kind.make(t);
    const sizes = [1, 4096, 4128, 16384, 0, 77];
    for (const n of sizes) await store.put(addr(), randomBytes(n));
    t.deepEqual(await store.usage(), { blobs: sizes.length, bytes: sizes.reduce((x, y) => x + y, 0) });
  });

  test(name('flush keeps every blob, and the store reads the same through a second instance'), async (t) => {
    const { store, reopen } = kind.make(t);
    const blobs = new Map<string, Buffer>();
    for (let i = 0; i < 20; i++) {
      const a = addr();
      const b = randomBytes(100 + i);
      await store.put(a, b);
      blobs.set(a.toString('hex'), b);
    }
    await store.flush();
    await store.flush(); // nothing new: still fine
    const again = reopen();
    t.deepEqual(await listHex(again), [...blobs.keys()].sort());
    for (const [hex, b] of blobs) t.true((await again.get(Buffer.from(hex, 'hex')))?.equals(b), hex);
    t.deepEqual(await again.usage(), await store.usage());
  });

  test(name('stored blobs are isolated from the caller\'s buffers'), async (t) => {
    const { store } = kind.make(t);
    const a = addr();
    const blob = Buffer.from('original content');
    await store.put(a, blob);
    blob.fill(0x21); // the caller reuses its buffer
    const got = await store.get(a);
    t.is(got?.toString(), 'original content', 'changing the buffer given to put changed the stored blob');
    got?.fill(0x22); // the caller scribbles on what it read
    t.is((await store.get(a))?.toString(), 'original content', 'changing a buffer from get changed the stored blob');
  });

  test(name('many blobs with interleaved puts, replaces and deletes match a model'), async (t) => {
    const { store } = kind.make(t);
    const model = new Map<string, Buffer>();
    const addresses = Array.from({ length: 40 }, addr);
    let x = 12345;
    const rnd = (n: number) => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x % n;
    };
    for (let step = 0; step < 400; step++) {
      const a = addresses[rnd(addresses.length)] as Address;
      const hex = a.toString('hex');
      if (rnd(3) === 0) {
        await store.delete(a);
        model.delete(hex);
      } else {
        const b = randomBytes(rnd(300));
        await store.put(a, b);
        model.set(hex, b);
      }
    }
    await store.flush();
    t.deepEqual(await listHex(store), [...model.keys()].sort());
    for (const a of addresses) {
      const want = model.get(a.toString('hex'));
      const got = await store.get(a);
      if (want) t.true(got?.equals(want));
      else t.is(got, null);
    }
    const bytes = [...model.values()].reduce((n, b) => n + b.length, 0);
    t.deepEqual(await store.usage(), { blobs: model.size, bytes });
  });
}

for (const kind of kinds) pieceStoreSuite(kind);

// ---- implementation-specific checks ----

test('LocalDirStore: blobs live at blobs/<2 hex>/<64 hex> and list ignores stray files', async (t) => {
  const dir = tempDir(t);
  const store = new LocalDirStore(dir);
  const a = addr();
  await store.put(a, Buffer.from('x'));
  const path = join(dir, BLOB_DIR, blobPath(a));
  t.true(existsSync(path));
  t.is(blobPath(a), `${a.toString('hex').slice(0, 2)}/${a.toString('hex')}`);
  t.is(readFileSync(path).toString(), 'x');
  // Stray files: not addresses, or in the wrong shard.
  writeFileSync(join(dir, BLOB_DIR, 'README'), 'stray');
  mkdirSync(join(dir, BLOB_DIR, 'zz'));
  const wrongShard = Buffer.from(a);
  wrongShard[0] = (a[0] as number) ^ 1;
  writeFileSync(join(dir, BLOB_DIR, a.toString('hex').slice(0, 2), wrongShard.toString('hex')), 'misplaced');
  writeFileSync(join(dir, BLOB_DIR, a.toString('hex').slice(0, 2), 'not-hex'), 'junk');
  t.deepEqual(await listHex(store), [a.toString('hex')]);
  t.deepEqual(await store.usage(), { blobs: 1, bytes: 1 });
  t.is(store.strayFiles().length, 4);
});

test('LocalDirStore: putParts writes the parts joined, and replaces a longer blob whole', async (t) => {
  const store = new LocalDirStore(tempDir(t));
  const a = addr();
  await store.put(a, randomBytes(200_000));
  const parts = [randomBytes(12), randomBytes(131_076), Buffer.alloc(0), randomBytes(16)];
  store.putParts(a, parts);
  t.true((await store.get(a))?.equals(Buffer.concat(parts)));
});

test('CountingStore: counts calls and bytes per operation and passes everything through', async (t) => {
  const inner = new MemoryStore();
  const stats = new OpStats();
  const store = new CountingStore(inner, stats);
  const a = addr();
  await store.put(a, Buffer.alloc(1000));
  await store.put(addr(), Buffer.alloc(24));
  await store.get(a);
  await store.get(addr());
  await store.delete(a);
  await store.flush();
  const by = new Map(stats.summary().map((s) => [s.op, s]));
  t.is(by.get('store.put')?.calls, 2);
  t.is(by.get('store.put')?.bytes, 1024);
  t.is(by.get('store.get')?.calls, 2);
  t.is(by.get('store.get')?.bytes, 1000);
  t.is(by.get('store.delete')?.calls, 1);
  t.is(by.get('store.flush')?.calls, 1);
  t.is(inner.raw().size, 1, 'the inner store saw the operations');
});

test('LocalDirStore: every blob has the same atime and mtime, whenever it was written (security finding 5)', async (t) => {
  const dir = tempDir(t);
  const store = new LocalDirStore(dir);
  const addresses = [addr(), addr(), addr()];
  await store.put(addresses[0] as Address, randomBytes(100));
  await new Promise((r) => setTimeout(r, 1100)); // a second later: real times would differ
  await store.put(addresses[1] as Address, randomBytes(5000));
  store.putParts(addresses[2] as Address, [randomBytes(10), randomBytes(20)]);
  await store.flush();
  for (const a of addresses) {
    const st = statSync(join(dir, BLOB_DIR, blobPath(a)));
    t.is(st.mtimeMs, BLOB_TIME * 1000);
    t.is(st.atimeMs, BLOB_TIME * 1000);
  }
});

test('LocalDirStore: a flush of many blobs (one syncfs) leaves nothing to sync, and a later flush works', async (t) => {
  const dir = tempDir(t);
  const store = new LocalDirStore(dir);
  for (let i = 0; i < 100; i++) await store.put(addr(), randomBytes(64));
  await store.flush();
  t.deepEqual((store as unknown as { unsynced: string[] }).unsynced, []);
  await store.put(addr(), randomBytes(64));
  await t.notThrowsAsync(store.flush());
});
