// The scatter store (issue 23; docs/format-2.md, 10.3–10.5): the generic store suite over scatters with
// stores taken away and damaged, then what is particular to fragments: placement, per-store names and tags,
// degraded reads and writes for every k+m, errors beyond m, replays, repair, and the erasure code's bytes.

import test, { type ExecutionContext } from 'ava';
import { createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { FsError, IntegrityError } from '../../src/core/errors.js';
import { type Address } from '../../src/core/pieces/address.js';
import { ErasureCode, shardBytes, stripe, unstripe } from '../../src/core/store/erasure.js';
import { BLOB_DIR, LocalDirStore } from '../../src/core/store/local-dir-store.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import {
  FRAGMENT_OVERHEAD, STORE_ID_BYTES, ScatterStore, placement, scatterKeys,
  type FragmentFault, type ScatterMember,
} from '../../src/core/store/scatter-store.js';
import { addr, listHex, pieceStoreSuite, scatterOver, scatterUsage, type StoreKind } from '../helpers/store-suite.js';
import { tempDir } from '../helpers/temp-vault.js';

// ---- a store that fails on demand ----

function flip(buf: Buffer, at: number, mask: number): void {
  buf[at] = (buf[at] as number) ^ mask;
}

type Mode = 'ok' | 'throw' | 'lose' | 'flip' | 'truncate' | 'flush-fails';

/** A MemoryStore that can go offline (throw), lose everything (null), or hand back damaged blobs. */
class FaultyStore implements PieceStore {
  readonly inner = new MemoryStore();

  constructor(public mode: Mode = 'ok') {}

  private offline(): void {
    if (this.mode === 'throw') throw new Error('store offline');
  }

  private damaged(blob: Buffer): Buffer {
    const copy = Buffer.from(blob);
    if (this.mode === 'flip' && copy.length > 0) flip(copy, Math.floor(copy.length / 2), 0x01);
    if (this.mode === 'truncate') return copy.subarray(0, Math.max(0, copy.length - 8));
    return copy;
  }

  async put(address: Address, blob: Buffer): Promise<void> {
    this.offline();
    if (this.mode !== 'lose') await this.inner.put(address, blob);
  }

  async get(address: Address): Promise<Buffer | null> {
    this.offline();
    if (this.mode === 'lose') return null;
    const blob = await this.inner.get(address);
    return blob && this.damaged(blob);
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const blob = await this.get(address);
    return blob ? use(blob) : null;
  }

  async delete(address: Address): Promise<void> {
    this.offline();
    await this.inner.delete(address);
  }

  async *list(): AsyncIterable<Address> {
    this.offline();
    if (this.mode === 'lose') return;
    yield* this.inner.list();
  }

  async flush(): Promise<void> {
    this.offline();
    if (this.mode === 'flush-fails') throw new Error('EIO on fsync');
  }

  async usage(): Promise<{ blobs: number; bytes: number }> {
    this.offline();
    return this.mode === 'lose' ? { blobs: 0, bytes: 0 } : this.inner.usage();
  }

  close(): void {}
}

/** A scatter of one vault over FaultyStores; `rebuild` reopens it over other stores with the same keys, `replace` with a new store in one place. */
interface Scatter {
  store: ScatterStore;
  stores: FaultyStore[];
  faults: FragmentFault[];
  members: ScatterMember[];
  vaultId: Buffer;
  master: Buffer;
  k: number;
  m: number;
}

function scatter(k: number, m: number, storeCount = k + m, modes: Mode[] = []): Scatter {
  const master = randomBytes(32);
  const vaultId = randomBytes(16);
  const stores = Array.from({ length: storeCount }, (_, i) => new FaultyStore(modes[i] ?? 'ok'));
  const members = stores.map((store, i) => {
    const id = randomBytes(STORE_ID_BYTES);
    return { id, store, label: `store${i}`, ...scatterKeys(master, vaultId, id, 0) };
  });
  const faults: FragmentFault[] = [];
  const store = new ScatterStore({ vaultId, k, m, epoch: 0, members, onFault: (f) => faults.push(f) });
  return { store, stores, faults, members, vaultId, master, k, m };
}

function reopen(s: Scatter, members = s.members): ScatterStore {
  return new ScatterStore({ vaultId: s.vaultId, k: s.k, m: s.m, epoch: 0, members, onFault: (f) => s.faults.push(f) });
}

/** Store indexes in the order the blob at `address` places its fragments. */
function placed(s: Scatter, address: Address): number[] {
  return placement(address, s.stores.length, s.k + s.m);
}

/** The raw fragment of `address` in store i, and its name there (the only entry of that store for the blob). */
function rawFragment(s: Scatter, i: number, address: Address): { name: string; bytes: Buffer } | null {
  const name = nameIn(s, i, address);
  const bytes = s.stores[i]?.inner.raw().get(name);
  return bytes ? { name, bytes } : null;
}

function nameIn(s: Scatter, i: number, address: Address): string {
  return s.store.fragmentName(i, address).toString('hex');
}

function combinations(n: number, r: number): number[][] {
  if (r === 0) return [[]];
  const out: number[][] = [];
  for (let first = 0; first < n; first++) {
    for (const rest of combinations(n, r - 1)) if (rest.every((x) => x > first)) out.push([first, ...rest]);
  }
  return out;
}

const REDUNDANCIES: [number, number][] = [[1, 0], [1, 1], [2, 1], [4, 2], [3, 3]];
const BLOB_SIZES = [0, 1, 33, 4128, 16_412, 131_100];

// ---- the generic suite, with stores taken away and damaged ----

function degradedKind(name: string, k: number, m: number, storeCount: number, modes: Mode[], exactUsage: boolean): StoreKind {
  return {
    name: `ScatterStore ${k}+${m} over ${storeCount}, ${name}`,
    make: () => {
      const store = scatter(k, m, storeCount, modes).store;
      return { store, reopen: () => store };
    },
    usage: exactUsage ? scatterUsage(k, m) : 'unchecked',
  };
}

const degradedKinds: StoreKind[] = [
  degradedKind('healthy (1+0, one store)', 1, 0, 1, [], true),
  degradedKind('one store offline', 2, 1, 3, ['ok', 'throw'], false),
  degradedKind('one store lost (returns null)', 2, 1, 3, ['lose'], false),
  degradedKind('one store flipping bits', 2, 1, 3, ['ok', 'ok', 'flip'], true),
  degradedKind('one offline and one truncating', 4, 2, 6, ['truncate', 'ok', 'ok', 'throw'], false),
  degradedKind('two lost of 8', 4, 2, 8, ['ok', 'lose', 'ok', 'ok', 'ok', 'ok', 'lose'], false),
  degradedKind('three flipping (3+3)', 3, 3, 6, ['flip', 'ok', 'flip', 'ok', 'flip'], true),
];

for (const kind of degradedKinds) pieceStoreSuite(kind);

// ---- placement and names ----

test('placement: each fragment in a different store, chosen by the address dimensions, evenly spread', (t) => {
  for (const [k, m, storeCount] of [[2, 1, 3], [2, 1, 5], [4, 2, 6], [4, 2, 8], [1, 0, 3]] as const) {
    const counts = new Array<number>(storeCount).fill(0);
    const samples = 6000;
    for (let i = 0; i < samples; i++) {
      const stores = placement(addr(), storeCount, k + m);
      t.is(new Set(stores).size, k + m, 'no store takes two fragments of one blob');
      for (const s of stores) counts[s] = (counts[s] as number) + 1;
    }
    // χ² against an even spread: far below the 0.1 % critical value of 7 degrees of freedom (24.3).
    const expected = (samples * (k + m)) / storeCount;
    const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    t.true(chi2 < 24.3, `${k}+${m} over ${storeCount}: χ² ${chi2.toFixed(1)}, counts ${counts.join(' ')}`);
  }
  // The dimensions decide: coordinate j, mod the stores left, picks fragment j's store.
  const a = Buffer.alloc(32);
  a.writeUInt32BE(7, 0); // 7 mod 5 = 2
  a.writeUInt32BE(3, 4); // of [0, 1, 3, 4], index 3 mod 4 = 3: store 4
  a.writeUInt32BE(4, 8); // of [0, 1, 3], index 4 mod 3 = 1: store 1
  t.deepEqual(placement(a, 5, 3), [2, 4, 1]);
});

test('fragment names differ per store for the same address, and two vaults with the same store ids share none', async (t) => {
  const s = scatter(2, 1, 3);
  const addresses = Array.from({ length: 50 }, addr);
  for (const a of addresses) await s.store.put(a, randomBytes(100));
  const names = s.stores.map((st) => new Set(st.inner.raw().keys()));
  for (let i = 0; i < 3; i++) {
    for (let j = i + 1; j < 3; j++) t.is([...(names[i] as Set<string>)].filter((n) => names[j]?.has(n)).length, 0, `stores ${i} and ${j} share a name`);
    for (const a of addresses) t.false(names[i]?.has(a.toString('hex')), 'a fragment is named by its address');
  }
  // Another vault, same store ids, same addresses: other keys, so other names.
  const master = randomBytes(32);
  const vaultId = randomBytes(16);
  const other = s.members.map((mb) => ({ ...mb, store: new FaultyStore(), ...scatterKeys(master, vaultId, mb.id, 0) }));
  const otherStore = new ScatterStore({ vaultId, k: 2, m: 1, epoch: 0, members: other });
  for (const a of addresses) await otherStore.put(a, randomBytes(100));
  for (let i = 0; i < 3; i++) {
    const mine = names[i] as Set<string>;
    t.is([...(other[i]?.store as FaultyStore).inner.raw().keys()].filter((n) => mine.has(n)).length, 0);
  }
});

test('over directories: one file per fragment at blobs/<first byte of its name>/<name>, and no file named by the address', async (t) => {
  const dirs = Array.from({ length: 3 }, () => tempDir(t));
  const store = scatterOver(dirs.map((d) => new LocalDirStore(d)), 2, 1);
  const a = addr();
  const blob = randomBytes(4128);
  await store.put(a, blob);
  await store.flush();
  for (let s = 0; s < 3; s++) {
    const name = store.fragmentName(s, a).toString('hex');
    const files = readdirSync(join(dirs[s] as string, BLOB_DIR), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    t.deepEqual(files.map((e) => join(e.parentPath, e.name)), [join(dirs[s] as string, BLOB_DIR, name.slice(0, 2), name)]);
    t.is(statSync(join(dirs[s] as string, BLOB_DIR, name.slice(0, 2), name)).size, shardBytes(blob.length, 2) + FRAGMENT_OVERHEAD);
  }
  store.close();
});

test('no store holds enough to rebuild a blob alone (k ≥ 2): each holds one fragment, a k-th of it', async (t) => {
  for (const [k, m] of [[2, 1], [4, 2], [3, 3]] as const) {
    const s = scatter(k, m, k + m);
    const a = addr();
    const blob = randomBytes(4128);
    await s.store.put(a, blob);
    for (let only = 0; only < k + m; only++) {
      const fragment = rawFragment(s, only, a);
      t.truthy(fragment);
      t.is(fragment?.bytes.length, shardBytes(blob.length, k) + FRAGMENT_OVERHEAD, 'one fragment, a k-th of the blob');
      t.true((fragment?.bytes.length as number) < blob.length);
      // Everything but this store taken away: the blob is gone, with an error, never a guess.
      const alone = reopen(s, s.members.map((mb, i) => (i === only ? mb : { ...mb, store: new FaultyStore('lose') })));
      await t.throwsAsync(alone.get(a), { instanceOf: IntegrityError }, `${k}+${m}: store ${only} alone`);
    }
  }
});

test('a fragment\'s tag is the GMAC of docs/format-2.md 10.4 under its store\'s key, checked independently', async (t) => {
  const s = scatter(2, 1, 3);
  const a = addr();
  await s.store.put(a, randomBytes(1000));
  const stores = placed(s, a);
  for (let j = 0; j < 3; j++) {
    const st = stores[j] as number;
    const member = s.members[st] as ScatterMember;
    const bytes = rawFragment(s, st, a)?.bytes as Buffer;
    const nonce = bytes.subarray(0, 16);
    const shard = bytes.subarray(16, bytes.length - 16);
    const head = Buffer.alloc(7);
    head.writeUInt8(j, 0);
    head.writeUInt8(2, 1);
    head.writeUInt8(1, 2);
    head.writeUInt32BE(0, 3);
    const ad = Buffer.concat([Buffer.from('svault-fragment-v2'), s.vaultId, member.id, a, head, shard]);
    const gmac = createDecipheriv('aes-256-gcm', member.macKey, nonce);
    gmac.setAAD(ad);
    gmac.setAuthTag(bytes.subarray(bytes.length - 16));
    t.notThrows(() => gmac.final(), `fragment ${j}`);
  }
});

test('per-store keys: HKDF of section 3\'s info strings (fragment-mac, fragment-name, and the added fragment-nonce), one per store and epoch', (t) => {
  const master = randomBytes(32);
  const vaultId = randomBytes(16);
  const id = randomBytes(STORE_ID_BYTES);
  const keys = scatterKeys(master, vaultId, id, 3);
  const hkdf = (info: string) => Buffer.from(hkdfSync('sha256', master, vaultId, info, 32));
  t.true(keys.macKey.equals(hkdf(`svault/v2/fragment-mac/${id.toString('hex')}/3`)));
  t.true(keys.nameKey.equals(hkdf(`svault/v2/fragment-name/${id.toString('hex')}/3`)));
  t.true(keys.nonceKey.equals(hkdf(`svault/v2/fragment-nonce/${id.toString('hex')}/3`)));
  const others = [scatterKeys(master, vaultId, randomBytes(STORE_ID_BYTES), 3), scatterKeys(master, vaultId, id, 4)];
  const all = [keys, ...others].flatMap((k) => [k.macKey, k.nameKey, k.nonceKey]).map((k) => k.toString('hex'));
  t.is(new Set(all).size, all.length);
});

// ---- degraded reads, for every k+m ----

/** Puts blobs of every size into a fresh scatter, then applies `mode` to `down` stores. */
async function filled(k: number, m: number, storeCount = k + m): Promise<{ s: Scatter; blobs: Map<string, Buffer> }> {
  const s = scatter(k, m, storeCount);
  const blobs = new Map<string, Buffer>();
  for (const size of BLOB_SIZES) {
    const a = addr();
    const blob = randomBytes(size);
    await s.store.put(a, blob);
    blobs.set(a.toString('hex'), blob);
  }
  return { s, blobs };
}

async function readsExact(t: ExecutionContext, s: Scatter, blobs: Map<string, Buffer>, what: string): Promise<void> {
  for (const [hex, blob] of blobs) {
    const a = Buffer.from(hex, 'hex');
    t.true((await s.store.get(a))?.equals(blob), `${what}: get of ${blob.length} bytes`);
    t.true(await s.store.read(a, (b) => b.equals(blob)), `${what}: read of ${blob.length} bytes`);
  }
}

for (const [k, m] of REDUNDANCIES) {
  const modes: Mode[] = ['throw', 'lose', 'flip', 'truncate'];

  test(`${k}+${m}: with any ${m} stores offline, lost, flipping bits or truncating, every read is byte-exact and the bad fragments are named`, async (t) => {
    const { s, blobs } = await filled(k, m);
    for (const mode of modes) {
      for (const down of combinations(k + m, m)) {
        for (const i of down) (s.stores[i] as FaultyStore).mode = mode;
        s.faults.length = 0;
        await readsExact(t, s, blobs, `${mode} ${down.join(',')}`);
        const named = new Set(s.faults.map((f) => f.store));
        for (const i of named) t.true(down.includes(i), `${mode}: store ${i} was named but is healthy`);
        // A read fetches the k data fragments first, so damage shows only where a faulty store holds one of
        // them (with 1+1 over two stores, every data fragment may land on the healthy one by chance).
        const fetchedFromFaulty = [...blobs.keys()].some((hex) => placement(Buffer.from(hex, 'hex'), s.stores.length, k + m).slice(0, k).some((st) => down.includes(st)));
        if (mode !== 'throw' && mode !== 'lose' && fetchedFromFaulty) t.true(s.faults.some((f) => f.problem === 'damaged'), `${mode}: damage named`);
        for (const i of down) (s.stores[i] as FaultyStore).mode = 'ok';
      }
    }
  });

  test(`${k}+${m}: with ${m + 1} stores faulty, every read is an IntegrityError naming them, never data`, async (t) => {
    const { s, blobs } = await filled(k, m);
    for (const mode of modes) {
      for (const down of combinations(k + m, m + 1)) {
        for (const i of down) (s.stores[i] as FaultyStore).mode = mode;
        for (const [hex, blob] of blobs) {
          const a = Buffer.from(hex, 'hex');
          if (mode === 'lose' && down.length === k + m) {
            // Every store answers that it has nothing: that is an absent blob, as for any store (the engine
            // makes it a missing piece). Whenever one fragment is left, it is an error instead.
            t.is(await s.store.get(a), null);
            continue;
          }
          const err = await t.throwsAsync(s.store.get(a), { instanceOf: IntegrityError }, `${mode} ${down.join(',')}: ${blob.length} bytes`);
          if (!err) continue;
          t.is(err.errno, 'EIO');
          t.is((err as IntegrityError).kind, mode === 'flip' || mode === 'truncate' ? 'damaged' : 'missing', `${mode}: ${err.message}`);
          for (const i of down) t.true(err.message.includes(`store${i} `), `${mode}: the message names store${i}: ${err.message}`);
          await t.throwsAsync(s.store.read(a, () => 'data'), { instanceOf: IntegrityError });
        }
        for (const i of down) (s.stores[i] as FaultyStore).mode = 'ok';
      }
    }
    await readsExact(t, s, blobs, 'all back');
  });
}

test('a bit flipped in a data fragment is named by its tag and never decoded (fails if authentication is removed)', async (t) => {
  for (const [k, m] of [[2, 1], [4, 2]] as const) {
    const s = scatter(k, m);
    const a = addr();
    const blob = randomBytes(4128);
    await s.store.put(a, blob);
    const first = placed(s, a)[0] as number; // fragment 0: data, read on the healthy path
    const raw = rawFragment(s, first, a) as { bytes: Buffer };
    flip(raw.bytes, 20, 0x80); // inside the shard
    t.true((await s.store.get(a))?.equals(blob), `${k}+${m}: rebuilt from the others`);
    t.deepEqual(s.faults.map((f) => [f.store, f.fragment, f.problem]), [[first, 0, 'damaged']]);
  }
});

test('swapped fragments between two stores are both named damaged; reads stay exact while k good remain', async (t) => {
  for (const [k, m] of [[2, 1], [4, 2]] as const) {
    const s = scatter(k, m);
    const a = addr();
    const blob = randomBytes(5000);
    await s.store.put(a, blob);
    const [x, y] = placed(s, a) as [number, number];
    const fx = rawFragment(s, x, a) as { name: string; bytes: Buffer };
    const fy = rawFragment(s, y, a) as { name: string; bytes: Buffer };
    s.stores[x]?.inner.raw().set(fx.name, fy.bytes);
    s.stores[y]?.inner.raw().set(fy.name, fx.bytes);
    if (m >= 2) {
      t.true((await s.store.get(a))?.equals(blob));
    } else {
      const err = await t.throwsAsync(s.store.get(a), { instanceOf: IntegrityError });
      t.is((err as IntegrityError | undefined)?.kind, 'damaged');
    }
    const damaged = s.faults.filter((f) => f.problem === 'damaged').map((f) => f.store).sort();
    t.deepEqual(damaged, [x, y].sort(), `${k}+${m}`);
  }
});

test('a fragment of another address, or of another vault, at a fragment\'s name is damaged, and the read is exact', async (t) => {
  const s = scatter(2, 1);
  const a = addr();
  const blob = randomBytes(4128);
  await s.store.put(a, blob);
  // Another address whose fragment 0 lands in the same store.
  const target = placed(s, a)[0] as number;
  let b = addr();
  while (placed(s, b)[0] !== target) b = addr();
  await s.store.put(b, randomBytes(4128));
  const fa = rawFragment(s, target, a) as { name: string };
  s.stores[target]?.inner.raw().set(fa.name, (rawFragment(s, target, b) as { bytes: Buffer }).bytes);
  t.true((await s.store.get(a))?.equals(blob));
  t.deepEqual(s.faults.map((f) => [f.store, f.problem]), [[target, 'damaged']]);

  // Another vault with the same store ids writes the same address: its fragment, moved here, fails.
  s.faults.length = 0;
  const master = randomBytes(32);
  const vaultId = randomBytes(16);
  const foreignStores = s.members.map(() => new FaultyStore());
  const foreign = new ScatterStore({
    vaultId, k: 2, m: 1, epoch: 0,
    members: s.members.map((mb, i) => ({ ...mb, store: foreignStores[i] as FaultyStore, ...scatterKeys(master, vaultId, mb.id, 0) })),
  });
  await foreign.put(a, randomBytes(4128));
  const [foreignBytes] = [...(foreignStores[target] as FaultyStore).inner.raw().values()];
  s.stores[target]?.inner.raw().set(fa.name, foreignBytes as Buffer);
  t.true((await s.store.get(a))?.equals(blob));
  t.deepEqual(s.faults.map((f) => [f.store, f.problem]), [[target, 'damaged']]);
});

test('a replayed old fragment (an earlier write of the same address) is named stale and the current blob is read', async (t) => {
  for (const [k, m] of [[2, 1], [4, 2]] as const) {
    const s = scatter(k, m);
    const a = addr();
    await s.store.put(a, randomBytes(4128));
    const stores = placed(s, a);
    const old = stores.slice(0, m).map((st) => ({ st, f: rawFragment(s, st, a) as { name: string; bytes: Buffer } }));
    const blob = randomBytes(4128);
    await s.store.put(a, blob);
    for (const { st, f } of old) s.stores[st]?.inner.raw().set(f.name, f.bytes);
    t.true((await s.store.get(a))?.equals(blob), `${k}+${m}`);
    t.deepEqual(s.faults.map((f) => f.problem), old.map(() => 'stale'));
    t.deepEqual(s.faults.map((f) => f.store).sort(), old.map((o) => o.st).sort());
  }
});

test('4+2: replays in three stores leave two writes of three fragments each: an IntegrityError (stale), never a mix', async (t) => {
  const s = scatter(4, 2);
  const a = addr();
  await s.store.put(a, randomBytes(4128));
  const stores = placed(s, a);
  const old = stores.slice(0, 3).map((st) => ({ st, f: rawFragment(s, st, a) as { name: string; bytes: Buffer } }));
  await s.store.put(a, randomBytes(4128));
  for (const { st, f } of old) s.stores[st]?.inner.raw().set(f.name, f.bytes);
  const err = await t.throwsAsync(s.store.get(a), { instanceOf: IntegrityError });
  t.is((err as IntegrityError | undefined)?.kind, 'stale');
});

// ---- degraded writes, repair ----

test('a put with up to m stores down succeeds, queues the piece stored short, and repair completes it when they return', async (t) => {
  for (const [k, m] of [[2, 1], [4, 2], [3, 3]] as const) {
    const s = scatter(k, m);
    const down = combinations(k + m, m)[1] as number[];
    for (const i of down) (s.stores[i] as FaultyStore).mode = 'throw';
    const a = addr();
    const blob = randomBytes(16_412);
    await s.store.put(a, blob);
    t.deepEqual(s.faults.map((f) => [f.store, f.problem]).sort(), down.map((i) => [i, 'unwritten']).sort());
    t.deepEqual(s.store.repairQueue().map((e) => [e.address.toString('hex'), [...e.stores].sort()]), [[a.toString('hex'), down]]);
    t.deepEqual(s.store.status().filter((st) => st.down).map((st) => st.label), down.map((i) => `store${i}`), 'status names the stores down');
    t.true((await s.store.get(a))?.equals(blob), 'read while short');
    for (const i of down) (s.stores[i] as FaultyStore).mode = 'ok';
    t.deepEqual(await s.store.repairQueued(), { repaired: 1, failed: 0 });
    t.deepEqual(s.store.repairQueue(), []);
    t.true((await s.store.health(a)).every((h) => h.problem === null));
    // The repaired fragments carry the blob alone: the others taken away, it still reads.
    const others = combinations(k + m, m).find((c) => c.every((i) => !down.includes(i))) ?? [];
    for (const i of others) (s.stores[i] as FaultyStore).mode = 'lose';
    if (others.length > 0) t.true((await s.store.get(a))?.equals(blob), `${k}+${m}: repaired fragments read`);
  }
});

test('a put with fewer than k stores taking fragments fails clearly and leaves no fragment behind', async (t) => {
  for (const [k, m] of [[1, 0], [2, 1], [4, 2]] as const) {
    const s = scatter(k, m);
    const down = Array.from({ length: m + 1 }, (_, i) => i);
    for (const i of down) (s.stores[i] as FaultyStore).mode = 'throw';
    const a = addr();
    const err = await t.throwsAsync(s.store.put(a, randomBytes(4128)), { instanceOf: FsError });
    t.regex(err?.message ?? '', new RegExp(`${k} needed`));
    for (const i of down) t.true(err?.message.includes(`store${i} `), err?.message);
    for (const st of s.stores) t.is(st.inner.raw().size, 0, `${k}+${m}: a fragment was left behind`);
  }
});

test('repair rebuilds a damaged fragment byte for byte as written', async (t) => {
  const s = scatter(4, 2);
  const a = addr();
  const blob = randomBytes(131_100);
  await s.store.put(a, blob);
  const target = placed(s, a)[1] as number;
  const f = rawFragment(s, target, a) as { name: string; bytes: Buffer };
  const original = Buffer.from(f.bytes);
  flip(f.bytes, f.bytes.length - 1, 0xff); // the tag
  t.deepEqual((await s.store.health(a)).filter((h) => h.problem).map((h) => [h.store, h.problem]), [[target, 'damaged']]);
  t.true((await s.store.get(a))?.equals(blob));
  t.deepEqual(s.store.repairQueue().map((e) => [...e.stores]), [[target]]);
  t.deepEqual(await s.store.repair(a), { rebuilt: [target], failed: [] });
  t.true(rawFragment(s, target, a)?.bytes.equals(original));
});

test('a lost store replaced by an empty one (a new id in its place) is refilled by repair from the others', async (t) => {
  const { s, blobs } = await filled(2, 1, 4);
  const lost = 2;
  const id = randomBytes(STORE_ID_BYTES);
  const replacement = new FaultyStore();
  s.stores[lost] = replacement;
  s.members[lost] = { id, store: replacement, label: 'store2', ...scatterKeys(s.master, s.vaultId, id, 0) };
  const store = reopen(s);
  const listed = await listHex(store);
  t.deepEqual(listed, [...blobs.keys()].sort(), 'the others list every blob');
  for (const hex of listed) await store.repair(Buffer.from(hex, 'hex'));
  await store.flush();
  for (const [hex, blob] of blobs) {
    const a = Buffer.from(hex, 'hex');
    t.true((await store.health(a)).every((h) => h.problem === null));
    // Take away another store that this blob uses: the rebuilt fragment must carry it.
    const other = placement(a, 4, 3).find((i) => i !== lost) as number;
    (s.stores[other] as FaultyStore).mode = 'throw';
    t.true((await store.get(a))?.equals(blob));
    (s.stores[other] as FaultyStore).mode = 'ok';
  }
});

test('a repair queue handed back after a restart (enqueue) is repaired: a fragment lost silently is rebuilt', async (t) => {
  const s = scatter(2, 1);
  const a = addr();
  const blob = randomBytes(4128);
  const target = placed(s, a)[2] as number;
  (s.stores[target] as FaultyStore).mode = 'lose'; // takes the fragment and keeps nothing
  await s.store.put(a, blob);
  (s.stores[target] as FaultyStore).mode = 'ok';
  const restarted = reopen(s);
  t.deepEqual(restarted.repairQueue(), []);
  restarted.enqueue(a, [target]);
  t.deepEqual(await restarted.repairQueued(), { repaired: 1, failed: 0 });
  t.true((await restarted.health(a)).every((h) => h.problem === null));
  t.truthy(rawFragment(s, target, a));
});

test('flush: a store whose flush fails queues what it took since the last flush; it fails only when a blob is left with fewer than k', async (t) => {
  const s = scatter(2, 1);
  const a = addr();
  await s.store.put(a, randomBytes(100));
  (s.stores[0] as FaultyStore).mode = 'flush-fails';
  await t.notThrowsAsync(s.store.flush());
  t.deepEqual(s.faults.map((f) => [f.store, f.problem]), [[0, 'unflushed']]);
  (s.stores[1] as FaultyStore).mode = 'flush-fails';
  await s.store.put(addr(), randomBytes(100));
  await t.throwsAsync(s.store.flush(), { instanceOf: FsError, message: /fewer than 2 durable/ });
});

test('list: every blob once with up to m stores failing to list, an error beyond', async (t) => {
  const { s, blobs } = await filled(4, 2, 7);
  (s.stores[1] as FaultyStore).mode = 'throw';
  (s.stores[5] as FaultyStore).mode = 'lose';
  t.deepEqual(await listHex(s.store), [...blobs.keys()].sort());
  (s.stores[3] as FaultyStore).mode = 'throw';
  (s.stores[5] as FaultyStore).mode = 'throw';
  await t.throwsAsync(listHex(s.store), { instanceOf: FsError, message: /cannot list/ });
});

test('delete with a store down: done when fewer than k fragments remain, the leftovers deleted when it returns', async (t) => {
  const s = scatter(2, 1);
  const a = addr();
  await s.store.put(a, randomBytes(1000));
  const down = placed(s, a)[0] as number;
  (s.stores[down] as FaultyStore).mode = 'throw';
  await s.store.delete(a);
  t.deepEqual(s.store.undeleted().map((e) => [...e.stores]), [[down]]);
  (s.stores[down] as FaultyStore).mode = 'ok';
  // The one fragment left cannot rebuild the blob, and cannot be told from a blob that lost the others.
  await t.throwsAsync(s.store.get(a), { instanceOf: IntegrityError, message: /fewer than 2/ });
  t.is(await s.store.deleteLeftovers(), 0);
  t.deepEqual(s.store.undeleted(), []);
  t.is(await s.store.get(a), null);
  for (const st of s.stores) t.is(st.inner.raw().size, 0);
  // With k fragments out of reach the blob could come back: the delete fails.
  await s.store.put(a, randomBytes(1000));
  for (const i of placed(s, a).slice(0, 2)) (s.stores[i] as FaultyStore).mode = 'throw';
  await t.throwsAsync(s.store.delete(a), { instanceOf: FsError, message: /not deleted/ });
});

test('an absent blob is null while fewer than k stores are offline; with k offline it cannot be told, and is an error', async (t) => {
  const s = scatter(2, 1);
  (s.stores[0] as FaultyStore).mode = 'throw';
  t.is(await s.store.get(addr()), null);
  (s.stores[1] as FaultyStore).mode = 'throw';
  await t.throwsAsync(s.store.get(addr()), { instanceOf: IntegrityError });
});

test('the constructor refuses too few stores, bad redundancy, duplicate ids and keys of the wrong size', (t) => {
  t.throws(() => scatter(2, 1, 2), { instanceOf: RangeError });
  t.throws(() => scatter(0, 1), { instanceOf: RangeError });
  t.throws(() => scatter(5, 4), { instanceOf: RangeError });
  const s = scatter(2, 1);
  t.throws(() => reopen(s, [s.members[0] as ScatterMember, s.members[0] as ScatterMember, s.members[1] as ScatterMember]), { message: /same id/ });
  t.throws(() => reopen(s, s.members.map((mb) => ({ ...mb, macKey: Buffer.alloc(16) }))), { instanceOf: RangeError });
});

// ---- the erasure code ----

test('erasure: any k of k+m shards give the blob back, for every size and every k+m', async (t) => {
  for (const [k, m] of [...REDUNDANCIES, [5, 3], [2, 2]] as [number, number][]) {
    const code = new ErasureCode(k, m);
    for (const size of BLOB_SIZES) {
      const blob = randomBytes(size);
      const { payload, shard } = stripe(blob, k);
      t.is(shard % 8, 0);
      const parity = await code.parity(payload, shard);
      const shards = [...Array.from({ length: k }, (_, i) => payload.subarray(i * shard, (i + 1) * shard)), ...Array.from({ length: m }, (_, i) => parity.subarray(i * shard, (i + 1) * shard))];
      for (const lost of combinations(k + m, m)) {
        const rebuilt = await code.payload(shards.map((sh, i) => (lost.includes(i) ? null : Buffer.from(sh))), shard);
        t.true(unstripe(rebuilt)?.equals(blob), `${k}+${m}, ${size} bytes, lost ${lost.join(',')}`);
      }
      if (m > 0) await t.throwsAsync(code.payload(shards.map((sh, i) => (i <= m ? null : sh)), shard), { instanceOf: RangeError });
    }
  }
  t.is(unstripe(Buffer.alloc(16)), null, 'no end mark');
  t.is(unstripe(Buffer.from([1, 2, 0x80, 5, 0])), null, 'bytes after the end mark');
});

test('erasure: the parity bytes are pinned (XOR for m = 1, @ronomon/reed-solomon 6.0.0 for m ≥ 2), and its first parity shard is the XOR', async (t) => {
  const input = Buffer.alloc(131_100);
  for (let i = 0; i < input.length; i++) input[i] = (i * 2654435761) >>> 24;
  const digest = async (k: number, m: number) => {
    const { payload, shard } = stripe(input, k);
    return createHash('sha256').update(await new ErasureCode(k, m).parity(payload, shard)).digest('hex');
  };
  t.is(await digest(2, 1), PINNED_PARITY['2+1']);
  t.is(await digest(4, 2), PINNED_PARITY['4+2']);
  t.is(await digest(3, 3), PINNED_PARITY['3+3']);
  // The library's own first parity shard for m = 1 is the XOR computed for m = 1: one format either way.
  const rs = createRequire(import.meta.url)('@ronomon/reed-solomon') as {
    create(k: number, m: number): Buffer;
    encode(c: Buffer, s: number, t: number, b: Buffer, bo: number, bs: number, p: Buffer, po: number, ps: number, end: (e?: Error) => void): void;
  };
  const { payload, shard } = stripe(input, 4);
  const parity = Buffer.alloc(shard);
  await new Promise<void>((resolve, reject) => rs.encode(rs.create(4, 1), 0b1111, 0b10000, payload, 0, shard * 4, parity, 0, shard, (e) => (e ? reject(e) : resolve())));
  t.true(parity.equals(await new ErasureCode(4, 1).parity(payload, shard)));
});

/** SHA-256 of the parity of that fixed input: a library update that changes a byte of the format fails here. */
const PINNED_PARITY: { '2+1': string; '4+2': string; '3+3': string } = {
  '2+1': 'eec8c95712b10a3223acba8adc6dedf99c0670f04e4a766f49be22d4e655a5ca',
  '4+2': '481213b83fb66ad05a4f33d45945e6b2866e48f1f04b85c26b0b2eec03b4e61b',
  '3+3': '0aa758d85cc16684e248a222eb364bb17479e8af2b9a9187ae4fa504655e33c6',
};

test('a reader\'s prefetch hint reaches each store that takes hints, as the names of the data fragments it holds', async (t) => {
  class Hinted extends MemoryStore {
    readonly hints: string[] = [];
    prefetch(addresses: readonly Address[]): void {
      this.hints.push(...addresses.map((a) => a.toString('hex')));
    }
  }
  const stores = [new Hinted(), new Hinted(), new MemoryStore(), new Hinted()];
  const store = scatterOver(stores, 2, 1);
  const addresses = Array.from({ length: 20 }, addr);
  store.prefetch(addresses);
  for (const address of addresses) {
    const placedIn = placement(address, stores.length, 3);
    placedIn.forEach((s, j) => {
      const hinted = stores[s] instanceof Hinted ? (stores[s] as Hinted).hints : null;
      if (!hinted) return;
      const name = store.fragmentName(s, address).toString('hex');
      t.is(hinted.includes(name), j < 2, `store ${s}, fragment ${j}: only data fragments are fetched ahead`);
    });
  }
  t.false(stores.some((s) => s instanceof Hinted && s.hints.some((h) => addresses.some((a) => a.toString('hex') === h))), 'no store hears an address: only its own fragment names');
});
