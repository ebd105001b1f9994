// The generic PieceStore contract (test/helpers/store-suite.ts) run against every implementation: MemoryStore,
// LocalDirStore, the CountingStore layer over each, and the ScatterStore layer over several of each; then
// checks particular to one store.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blobPath, type Address } from '../../src/core/pieces/address.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { CountingStore } from '../../src/core/store/counting-store.js';
import { BLOB_DIR, BLOB_TIME, LocalDirStore } from '../../src/core/store/local-dir-store.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import { addr, listHex, pieceStoreSuite, scatterMaker, scatterOver, scatterUsage, type StoreKind } from '../helpers/store-suite.js';
import { tempDir } from '../helpers/temp-vault.js';

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
  {
    name: 'ScatterStore 2+1 over 3 MemoryStores',
    make: () => {
      const store = scatterOver([new MemoryStore(), new MemoryStore(), new MemoryStore()], 2, 1);
      return { store, reopen: () => store };
    },
    usage: scatterUsage(2, 1),
  },
  {
    name: 'ScatterStore 4+2 over 7 LocalDirStores',
    make: (c) => {
      const dirs = Array.from({ length: 7 }, () => tempDir(c));
      const make = scatterMaker(7, 4, 2);
      const open = () => make(dirs.map((d) => new LocalDirStore(d)));
      return { store: open(), reopen: open };
    },
    usage: scatterUsage(4, 2),
  },
];

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
