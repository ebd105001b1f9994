// The generic PieceStore contract, run against every implementation and layer (test/core/store.test.ts,
// test/core/scatter-store.test.ts). MemoryStore is the model; every store must behave the same. A layer that
// stores more than it is given (the scatter store's fragments) says so with `usage`.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { ADDRESS_BYTES, type Address } from '../../src/core/pieces/address.js';
import { shardBytes } from '../../src/core/store/erasure.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { FRAGMENT_OVERHEAD, STORE_ID_BYTES, ScatterStore, scatterKeys, type ScatterOptions } from '../../src/core/store/scatter-store.js';
import type { Cleanup } from './temp-vault.js';

export interface StoreUnderTest {
  store: PieceStore;
  /** A second instance over the same backing data, for stores that persist (directory stores); else the same one. */
  reopen: () => PieceStore;
}

export interface StoreKind {
  name: string;
  make: (c: Cleanup) => StoreUnderTest;
  /**
   * What usage() reports for blobs of these lengths: by default one blob and its bytes each. 'unchecked'
   * for a store whose usage depends on more than what was put (a scatter with a store down).
   */
  usage?: ((lengths: number[]) => { blobs: number; bytes: number }) | 'unchecked';
}

function expectedUsage(kind: StoreKind, lengths: number[]): { blobs: number; bytes: number } | null {
  if (kind.usage === 'unchecked') return null;
  if (kind.usage) return kind.usage(lengths);
  return { blobs: lengths.length, bytes: lengths.reduce((x, y) => x + y, 0) };
}

export function addr(): Address {
  return randomBytes(ADDRESS_BYTES);
}

export async function listHex(store: PieceStore): Promise<string[]> {
  const out: string[] = [];
  for await (const a of store.list()) out.push(a.toString('hex'));
  return out.sort();
}

/** The shared contract. Every check here must hold for every PieceStore. */
export function pieceStoreSuite(kind: StoreKind): void {
  const name = (what: string) => `${kind.name}: ${what}`;
  const usageIs = async (t: ExecutionContext, store: PieceStore, lengths: number[]) => {
    const want = expectedUsage(kind, lengths);
    if (want) t.deepEqual(await store.usage(), want);
    else t.pass();
  };

  test(name('a new store is empty'), async (t) => {
    const { store } = kind.make(t);
    t.deepEqual(await listHex(store), []);
    await usageIs(t, store, []);
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
    await usageIs(t, store, [100]);
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
    await usageIs(t, store, [4]);
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
    await usageIs(t, store, sizes);
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
    const { store, reopen } = kind.make(t);
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
    // Through the store, and through a second instance over what it stored (flushed, so every layer has it there).
    for (const view of [store, reopen()]) {
      t.deepEqual(await listHex(view), [...model.keys()].sort());
      for (const a of addresses) {
        const want = model.get(a.toString('hex'));
        const got = await view.get(a);
        if (want) t.true(got?.equals(want));
        else t.is(got, null);
      }
      await usageIs(t, view, [...model.values()].map((b) => b.length));
    }
  });
}


// ---- the scatter store under test ----

/**
 * Builds scatter stores of one vault: a random vault id and master key, a random id per store, and each
 * store's keys from them. Each call gives a ScatterStore over the stores passed, in placement order: the
 * same stores reopened, or some of them replaced.
 */
export function scatterMaker(storeCount: number, k: number, m: number, options: Partial<ScatterOptions> = {}): (stores: PieceStore[]) => ScatterStore {
  const master = randomBytes(32);
  const vaultId = options.vaultId ?? randomBytes(16);
  const epoch = options.epoch ?? 0;
  const ids = Array.from({ length: storeCount }, () => randomBytes(STORE_ID_BYTES));
  const keys = ids.map((id) => scatterKeys(master, vaultId, id, epoch));
  return (stores) => new ScatterStore({
    vaultId, k, m, epoch, ...options,
    members: stores.map((store, i) => ({ id: ids[i] as Buffer, store, label: `store${i}`, ...(keys[i] as ReturnType<typeof scatterKeys>) })),
  });
}

/** A scatter store of a new vault over these stores. */
export function scatterOver(stores: PieceStore[], k: number, m: number, options: Partial<ScatterOptions> = {}): ScatterStore {
  return scatterMaker(stores.length, k, m, options)(stores);
}

/** What a scatter's usage() reports for blobs of these lengths: k + m fragments each, shard and nonce and tag. */
export function scatterUsage(k: number, m: number): (lengths: number[]) => { blobs: number; bytes: number } {
  return (lengths) => ({
    blobs: lengths.length * (k + m),
    bytes: lengths.reduce((sum, n) => sum + (k + m) * (shardBytes(n, k) + FRAGMENT_OVERHEAD), 0),
  });
}
