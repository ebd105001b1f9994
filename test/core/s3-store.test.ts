// The S3 piece store against a real Ceph RGW (test/helpers/ceph-rgw.ts starts one for this file): the
// generic PieceStore contract of test/core/store.test.ts, then what only an object store has: uploads
// behind the writer, retries across a radosgw restart, timeouts, the down state, prefixes, list pages.
// Faults are made by a TCP proxy between the store and radosgw (hang, reset, 503, delay).
// Serial: one test stops radosgw, and timing tests must not share the machine with the others.

import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDRESS_BYTES, type Address } from '../../src/core/pieces/address.js';
import { FsError } from '../../src/core/errors.js';
import type { S3Health } from '../../src/core/store/s3-client.js';
import { normalizePrefix, parseS3Url, resolveS3Connection, type S3Connection } from '../../src/core/store/s3-settings.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import { pieceStoreSuite } from '../helpers/store-suite.js';
import { makeS3Store, makeS3StoreForSuite, startCephRgw, TEST_POLICY, whyNoCeph, type CephRgw } from '../helpers/ceph-rgw.js';
import { CleanupList } from '../helpers/temp-vault.js';

const test = anyTest as TestFn;
/** Why there is no cluster here (Ceph missing, and not under CI to install it), or null. */
const skipReason = await whyNoCeph();
let rgw: CephRgw | null = null;
const hooks = new CleanupList();

anyTest.before(async () => {
  if (skipReason) {
    console.warn(`S3 store tests skipped: ${skipReason}`);
    return;
  }
  rgw = await startCephRgw();
  hooks.teardown(() => rgw?.stop());
});
anyTest.after.always(() => hooks.run());

/** A serial test that needs the cluster; skipped, with the reason in its title, where there is none. */
function s3test(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (skipReason) test.serial.skip(`${title} (skipped: ${skipReason})`, fn);
  else test.serial(title, fn);
}

function addr(): Address {
  return randomBytes(ADDRESS_BYTES);
}

async function listHex(store: PieceStore): Promise<string[]> {
  const out: string[] = [];
  for await (const a of store.list()) out.push(a.toString('hex'));
  return out.sort();
}

/** Resolves with the error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

// ---- the contract again where the bucket must answer, not the upload queue ----
// The shared suite (below) runs on this store too; these cases add a flush, a second instance over the
// bucket, or a put still queued. A case the suite covers whole is not repeated here.

s3test('contract: put then get returns the same bytes, before and after flush', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const a = addr();
  const blob = randomBytes(4128);
  await store.put(a, blob);
  t.true((await store.get(a))?.equals(blob), 'read back while the upload may still be queued');
  await store.flush();
  t.true((await store.get(a))?.equals(blob));
  t.true((await reopen().get(a))?.equals(blob), 'read back from the bucket');
});

s3test('contract: get of an absent address returns null', async (t) => {
  const { store } = makeS3StoreForSuite(t);
  t.is(await store.get(addr()), null);
  await store.put(addr(), Buffer.from('other'));
  await store.flush();
  t.is(await store.get(addr()), null, 'absent next to a present blob');
  t.false((store as unknown as { health(): S3Health }).health().down, 'absence is not a failure');
});

s3test('contract: read lends each blob to its callback, and gives null for an absent one', async (t) => {
  const { store } = makeS3StoreForSuite(t);
  const a = addr();
  const b = addr();
  const big = randomBytes(140_000);
  const small = randomBytes(33);
  await store.put(a, big);
  await store.put(b, small);
  await store.flush();
  t.true(await store.read(a, (blob) => blob.equals(big)));
  t.is(await store.read(b, (blob) => blob.length), small.length);
  t.true(await store.read(b, (blob) => blob.equals(small)));
  t.is(await store.read(addr(), () => 'called'), null, 'the callback is not called for an absent blob');
  const copy = await store.read(a, (blob) => Buffer.from(blob));
  await store.read(b, () => undefined);
  t.true(copy?.equals(big));
});

s3test('contract: a zero-length blob is stored and is not confused with absence', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const a = addr();
  await store.put(a, Buffer.alloc(0));
  await store.flush();
  const got = await reopen().get(a);
  t.not(got, null);
  t.is(got?.length, 0);
  t.deepEqual(await listHex(store), [a.toString('hex')]);
});

s3test('contract: put replaces the blob at an address, even while the first upload is queued', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const a = addr();
  await store.put(a, randomBytes(5000));
  const second = randomBytes(100);
  await store.put(a, second);
  t.true((await store.get(a))?.equals(second));
  await store.flush();
  const again = reopen();
  t.true((await again.get(a))?.equals(second), 'the later put is the one the bucket keeps');
  t.deepEqual(await listHex(again), [a.toString('hex')]);
  t.deepEqual(await again.usage(), { blobs: 1, bytes: 100 });
});

s3test('contract: delete removes a blob, queued or stored; deleting an absent blob is fine', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const a = addr();
  const b = addr();
  const c = addr();
  await store.put(a, Buffer.from('aaa'));
  await store.put(b, Buffer.from('bbbb'));
  await store.flush();
  await store.put(c, Buffer.from('c'));
  await store.put(c, Buffer.from('cc')); // queued behind the first upload of the same address
  await store.delete(c); // neither upload may land after the delete
  await store.delete(a);
  t.is(await store.get(a), null);
  t.is(await store.get(c), null);
  t.true((await store.get(b))?.equals(Buffer.from('bbbb')));
  await t.notThrowsAsync(store.delete(a), 'deleting twice');
  await t.notThrowsAsync(store.delete(addr()), 'deleting a never-stored address');
  await store.flush();
  const again = reopen();
  t.deepEqual(await listHex(again), [b.toString('hex')]);
  t.deepEqual(await again.usage(), { blobs: 1, bytes: 4 });
});

s3test('contract: list yields every stored address exactly once, queued or uploaded', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const want: string[] = [];
  for (let i = 0; i < 300; i++) {
    const a = addr();
    if (i % 50 === 0) a[0] = 0x42;
    await store.put(a, randomBytes(i % 7));
    want.push(a.toString('hex'));
    if (i === 150) await store.flush(); // half uploaded, half maybe still queued
  }
  t.deepEqual(await listHex(store), want.sort());
  await store.flush();
  t.deepEqual(await listHex(reopen()), want);
});

s3test('contract: usage counts blobs and bytes', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const sizes = [1, 4096, 4128, 16384, 0, 77];
  for (const n of sizes) await store.put(addr(), randomBytes(n));
  const want = { blobs: sizes.length, bytes: sizes.reduce((x, y) => x + y, 0) };
  t.deepEqual(await store.usage(), want);
  await store.flush();
  t.deepEqual(await reopen().usage(), want);
});

s3test('contract: stored blobs are isolated from the caller\'s buffers', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const a = addr();
  const blob = Buffer.from('original content');
  await store.put(a, blob);
  blob.fill(0x21); // the caller reuses its buffer while the upload is queued
  const got = await store.get(a);
  t.is(got?.toString(), 'original content');
  got?.fill(0x22);
  t.is((await store.get(a))?.toString(), 'original content');
  await store.flush();
  t.is((await reopen().get(a))?.toString(), 'original content');
});

// The shared contract (test/helpers/store-suite.ts), with requests on the JS thread and on a worker thread.
if (!skipReason) {
  pieceStoreSuite({ name: 'S3Store', make: (c) => makeS3StoreForSuite(c) });
  pieceStoreSuite({ name: 'S3Store over a worker thread', make: (c) => makeS3StoreForSuite(c, true) });
}

// ---- the S3 layer's own ----

s3test('blobs are objects at <prefix>blobs/<2 hex>/<64 hex>, and list skips other objects there', async (t) => {
  const store = makeS3Store(t, { prefix: normalizePrefix(`/layout-${randomBytes(4).toString('hex')}/`) });
  const a = addr();
  await store.put(a, Buffer.from('x'));
  await store.flush();
  const hex = a.toString('hex');
  const key = store.keyOf(a);
  t.regex(key, new RegExp(`^layout-[0-9a-f]{8}/blobs/${hex.slice(0, 2)}/${hex}$`));
  t.is((await store.client.get(key))?.toString(), 'x');
  const prefix = key.slice(0, key.indexOf('blobs/'));
  const wrongShard = `${(a[0] as number ^ 1).toString(16).padStart(2, '0')}/${hex}`;
  for (const stray of ['blobs/README', `blobs/${hex.slice(0, 2)}/not-hex`, `blobs/${wrongShard}`, 'svault.json']) {
    await store.client.put(prefix + stray, Buffer.from('stray'));
  }
  t.deepEqual(await listHex(store), [hex]);
  t.deepEqual(await store.usage(), { blobs: 1, bytes: 1 });
});

s3test('a delete is never undone by an upload of the same address still in flight', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const addresses = Array.from({ length: 30 }, addr);
  // Each address: one upload under way, a second queued behind it, then the delete, without waiting.
  await Promise.all(
    addresses.map(async (a) => {
      await store.put(a, randomBytes(64 * 1024));
      await store.put(a, randomBytes(100));
      await store.delete(a);
    }),
  );
  await store.flush();
  t.deepEqual(await listHex(reopen()), []);
});

s3test('prefix isolation: two stores under different prefixes of one bucket see only their own blobs', async (t) => {
  const one = makeS3Store(t, { prefix: 'iso-a/' });
  const two = makeS3Store(t, { prefix: 'iso-a/b/' }); // nested under the first: still apart
  const a = addr();
  const b = addr();
  await one.put(a, Buffer.from('one'));
  await two.put(b, Buffer.from('two'));
  await Promise.all([one.flush(), two.flush()]);
  t.deepEqual(await listHex(one), [a.toString('hex')]);
  t.deepEqual(await listHex(two), [b.toString('hex')]);
  t.is(await one.get(b), null);
  t.is(await two.get(a), null);
  await two.delete(a); // not its blob: nothing happens to the other store's
  t.is((await one.get(a))?.toString(), 'one');
  t.deepEqual(await one.usage(), { blobs: 1, bytes: 3 });
  await one.delete(a);
  await two.delete(b);
});

s3test('list pages past 1,000 objects', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const want = new Set<string>();
  for (let i = 0; i < 1_100; i++) {
    const a = addr();
    want.add(a.toString('hex'));
    await store.put(a, Buffer.from([i & 0xff]));
  }
  await store.flush();
  const got = await listHex(reopen());
  t.is(got.length, 1_100, 'a listing that stopped at the first page would give 1,000');
  t.deepEqual(got, [...want].sort());
  t.deepEqual(await reopen().usage(), { blobs: 1_100, bytes: 1_100 });
});

s3test('a 4 MiB blob goes up and comes back whole', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t);
  const a = addr();
  const blob = randomBytes(4 * 1024 * 1024);
  await store.put(a, blob);
  await store.flush();
  t.true((await reopen().get(a))?.equals(blob));
  t.deepEqual(await reopen().usage(), { blobs: 1, bytes: blob.length });
});

// ---- faults, through a proxy ----

type ProxyMode = 'pass' | 'hang' | 'reset' | '503' | 'delay';

/** A TCP proxy to radosgw whose behaviour a test switches: pass, hang (never answer), reset, 503, delay (50 ms per request). */
class FaultProxy {
  mode: ProxyMode = 'pass';
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server, readonly connection: S3Connection) {}

  static async start(target: S3Connection): Promise<FaultProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const proxy = new FaultProxy(server, { ...target, endpoint: new URL(`http://127.0.0.1:${port}`) });
    server.on('connection', (client) => proxy.accept(client, target));
    return proxy;
  }

  /** Connections left in the current mode before it goes back to pass (Infinity: until set again). */
  private left = Infinity;

  /**
   * Changes the mode for new connections, for `count` of them, and drops the ones open (a keep-alive
   * socket would carry on as it was).
   */
  set(mode: ProxyMode, count = Infinity): void {
    this.mode = mode;
    this.left = count;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private accept(client: Socket, target: S3Connection): void {
    this.connections++;
    if (this.left-- <= 0) this.mode = 'pass';
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => undefined);
    switch (this.mode) {
      case 'hang':
        return; // read nothing, answer nothing
      case 'reset':
        client.resetAndDestroy();
        return;
      case '503':
        client.once('data', () => client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
        return;
    }
    const delay = this.mode === 'delay';
    const server = createConnection(Number(target.endpoint.port), target.endpoint.hostname);
    this.sockets.add(server);
    server.on('close', () => this.sockets.delete(server));
    server.on('error', () => client.destroy());
    client.on('close', () => server.destroy());
    server.pipe(client);
    client.on('data', (chunk: Buffer) => {
      // A request's first bytes wait 50 ms: every round trip gets longer, so overlap shows in the time taken.
      if (delay) setTimeout(() => server.write(chunk), 50);
      else server.write(chunk);
    });
  }

  async close(): Promise<void> {
    this.set('pass');
    await new Promise((resolve) => this.server.close(resolve));
  }
}

async function proxyTo(t: { teardown(fn: () => Promise<void>): void }): Promise<FaultProxy> {
  const proxy = await FaultProxy.start((rgw as CephRgw).connection);
  t.teardown(() => proxy.close());
  return proxy;
}

s3test('put returns once the upload is queued, and flush reports an upload that failed', async (t) => {
  const proxy = await proxyTo(t);
  const store = makeS3Store(t, { connection: proxy.connection, policy: { ...TEST_POLICY, timeoutMs: 500, retries: 1, downAfter: 100 } });
  proxy.set('hang');
  const a = addr();
  const started = Date.now();
  await store.put(a, randomBytes(1000));
  t.true(Date.now() - started < 200, 'put did not wait for the (hanging) upload');
  t.truthy(await store.get(a), 'a queued blob reads from memory');
  const err = await rejection(store.flush());
  t.true(err instanceof FsError);
  t.is((err as FsError).errno, 'EIO');
  t.regex(err.message, /1 blob upload\(s\) to the S3 store failed/);
  t.deepEqual(await listHex(store).catch(() => [a.toString('hex')]), [a.toString('hex')], 'the failed blob is still listed');
  // The next flush tries the kept blob again: with the server back, it is stored.
  proxy.set('pass');
  await store.flush();
  t.is(store.health().down, false);
  const direct = makeS3Store(t, { prefix: store.keyOf(a).slice(0, store.keyOf(a).indexOf('blobs/')) });
  t.is((await direct.get(a))?.length, 1000);
});

s3test('retries carry uploads and reads across a radosgw restart', async (t) => {
  const policy = { ...TEST_POLICY, retries: 12, baseDelayMs: 100, maxDelayMs: 1_500, downAfter: 1_000 };
  const store = makeS3Store(t, { policy });
  const blobs = new Map<string, Buffer>();
  const putSome = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const a = addr();
      const b = randomBytes(32 * 1024);
      blobs.set(a.toString('hex'), b);
      await store.put(a, b);
    }
  };
  await putSome(20);
  await store.flush();
  const r = rgw as CephRgw;
  await r.stopRgw();
  const restarted = (async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await r.startRgw();
  })();
  try {
    await putSome(20); // queued while radosgw is gone
    const first = [...blobs.keys()][0] as string;
    const read = store.get(Buffer.from(first, 'hex')); // retried until radosgw answers again
    read.catch(() => undefined); // awaited below; a flush that fails first must not leave it unhandled
    await store.flush();
    t.true((await read)?.equals(blobs.get(first) as Buffer));
  } finally {
    await restarted;
  }
  t.is(store.health().down, false);
  const again = makeS3Store(t, { prefix: store.keyOf(addr()).slice(0, store.keyOf(addr()).indexOf('blobs/')) });
  t.deepEqual(await listHex(again), [...blobs.keys()].sort());
  for (const [hex, b] of blobs) t.true((await again.get(Buffer.from(hex, 'hex')))?.equals(b), hex);
});

s3test('an injected 503 is retried; a request that keeps failing gives up', async (t) => {
  const proxy = await proxyTo(t);
  const store = makeS3Store(t, { connection: proxy.connection, policy: { ...TEST_POLICY, retries: 3, downAfter: 100 } });
  const a = addr();
  await store.put(a, Buffer.from('kept'));
  await store.flush();
  proxy.set('503', 2); // two attempts get 503, the third gets through
  await new Promise((resolve) => setTimeout(resolve, 50)); // the client sees its pooled sockets closed
  const before = proxy.connections;
  t.is((await store.get(a))?.toString(), 'kept');
  t.is(proxy.connections - before, 3, 'tried three times');
  proxy.set('503');
  await new Promise((resolve) => setTimeout(resolve, 50)); // the client sees its pooled sockets closed
  const tries = proxy.connections;
  const err = await rejection(store.get(a));
  t.regex(err.message, /503|Service Unavailable|UnknownError/i);
  t.is(proxy.connections - tries, 4, 'one attempt and three retries');
});

s3test('a request to a server that does not answer times out', async (t) => {
  const proxy = await proxyTo(t);
  const store = makeS3Store(t, { connection: proxy.connection, policy: { ...TEST_POLICY, timeoutMs: 300, retries: 2, baseDelayMs: 1, maxDelayMs: 1, downAfter: 100 } });
  proxy.set('hang');
  const started = Date.now();
  const err = await rejection(store.get(addr()));
  const took = Date.now() - started;
  t.regex(err.message, /no answer for 300 ms/);
  t.true(took >= 3 * 300 - 50 && took < 3 * 300 + 1_000, `three attempts of 300 ms each, took ${took} ms`);
});

s3test('a store that keeps failing is marked down, fails puts at once, and is up again after a success', async (t) => {
  const proxy = await proxyTo(t);
  const store = makeS3Store(t, { connection: proxy.connection, policy: { ...TEST_POLICY, retries: 1, baseDelayMs: 1, maxDelayMs: 1, downAfter: 3 } });
  const changes: boolean[] = [];
  store.client.onHealthChange((h) => changes.push(h.down));
  const a = addr();
  await store.put(a, Buffer.from('here'));
  await store.flush();
  proxy.set('reset');
  for (let i = 0; i < 2; i++) await rejection(store.get(a));
  t.false(store.health().down, 'two failures are not yet down');
  await rejection(store.get(a));
  t.true(store.health().down, 'three failures in a row are');
  t.truthy(store.health().lastError);
  const err = await rejection(store.put(addr(), Buffer.from('x')));
  t.is((err as FsError).errno, 'EIO');
  t.regex(err.message, /down/);
  // While down a request is tried once, with no backoff: the caller hears at once.
  const tries = proxy.connections;
  await rejection(store.get(a));
  t.is(proxy.connections - tries, 1);
  t.false(await store.probe(), 'a probe of a store still failing');
  proxy.set('pass');
  t.true(await store.probe(), 'a probe of a store that answers again');
  t.false(store.health().down);
  t.is((await store.get(a))?.toString(), 'here');
  t.deepEqual(changes, [true, false]);
  await t.notThrowsAsync(store.put(addr(), Buffer.from('y')));
  await store.flush();
});

s3test('prefetch overlaps reads: 16 blobs a round trip apart come back in about one', async (t) => {
  const proxy = await proxyTo(t);
  const writer = makeS3Store(t, { connection: proxy.connection });
  const addresses = Array.from({ length: 16 }, addr);
  const blobs = addresses.map(() => randomBytes(128 * 1024));
  for (const [i, a] of addresses.entries()) await writer.put(a, blobs[i] as Buffer);
  await writer.flush();
  const prefix = writer.keyOf(addr()).slice(0, writer.keyOf(addr()).indexOf('blobs/'));
  proxy.set('delay'); // 50 ms more per request
  const one = makeS3Store(t, { connection: proxy.connection, prefix });
  let started = Date.now();
  for (const [i, a] of addresses.entries()) t.true((await one.get(a))?.equals(blobs[i] as Buffer));
  const oneByOne = Date.now() - started;
  const ahead = makeS3Store(t, { connection: proxy.connection, prefix });
  started = Date.now();
  ahead.prefetch(addresses);
  for (const [i, a] of addresses.entries()) t.true((await ahead.get(a))?.equals(blobs[i] as Buffer));
  const prefetched = Date.now() - started;
  t.true(oneByOne >= 16 * 50, `one by one: ${oneByOne} ms`);
  t.true(prefetched < oneByOne / 3, `prefetched ${prefetched} ms against ${oneByOne} ms one by one`);
  // A blob put after its prefetch started reads as put, not as fetched.
  const a = addresses[0] as Address;
  ahead.prefetch([a]);
  await ahead.put(a, Buffer.from('newer'));
  t.is((await ahead.get(a))?.toString(), 'newer');
});

s3test('requests on a worker thread: the same store, the same answers, the health mirrored', async (t) => {
  const { store, reopen } = makeS3StoreForSuite(t, true);
  const blobs = Array.from({ length: 30 }, (_, i) => ({ a: addr(), b: randomBytes(i === 0 ? 0 : 1000 * i) }));
  for (const { a, b } of blobs) await store.put(a, b);
  await store.flush();
  const again = reopen();
  for (const { a, b } of blobs) t.true((await again.get(a))?.equals(b));
  t.is(await again.get(addr()), null);
  t.deepEqual(await listHex(again), blobs.map(({ a }) => a.toString('hex')).sort());
  await again.delete(blobs[0]?.a as Address);
  t.is((await again.usage()).blobs, 29);
  const proxy = await proxyTo(t);
  const faulty = makeS3Store(t, { connection: proxy.connection, thread: true, policy: { ...TEST_POLICY, retries: 0, downAfter: 2 } });
  const changes: boolean[] = [];
  faulty.client.onHealthChange((h) => changes.push(h.down));
  proxy.set('reset');
  const err = await rejection(faulty.get(addr()));
  t.regex(err.message, /^S3 GET t-[0-9a-f]+\/blobs\//, 'the worker\'s error, named as on this thread');
  await rejection(faulty.get(addr()));
  t.true(faulty.health().down);
  proxy.set('pass');
  t.is(await faulty.get(addr()), null);
  t.false(faulty.health().down);
  t.deepEqual(changes, [true, false]);
});

// ---- settings (no cluster needed) ----

test('parseS3Url: bucket and prefix, normalised; anything else refused', (t) => {
  t.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
  t.deepEqual(parseS3Url('s3://my-bucket/'), { bucket: 'my-bucket', prefix: '' });
  t.deepEqual(parseS3Url('s3://my-bucket/vaults/home'), { bucket: 'my-bucket', prefix: 'vaults/home/' });
  t.deepEqual(parseS3Url('s3://my-bucket/vaults/home/'), { bucket: 'my-bucket', prefix: 'vaults/home/' });
  for (const bad of ['s3://', 'S3://b/x', 'https://bucket/x', 's3://UPPER', 's3://ab']) t.throws(() => parseS3Url(bad), undefined, bad);
});

test('resolveS3Connection: the environment first, then the profile, then the defaults', (t) => {
  const home = mkdtempSync(join(tmpdir(), 'svault-aws-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const aws = join(home, '.aws');
  t.throws(() => resolveS3Connection({}, home), { message: /no S3 credentials/ });
  const env = { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_SESSION_TOKEN: 'TOK', AWS_ENDPOINT_URL: 'http://127.0.0.1:7480', AWS_REGION: 'eu-west-3' };
  t.deepEqual(resolveS3Connection(env, home), { endpoint: new URL('http://127.0.0.1:7480'), region: 'eu-west-3', accessKeyId: 'AK', secretAccessKey: 'SK', sessionToken: 'TOK' });
  t.is(resolveS3Connection({ ...env, AWS_ENDPOINT_URL_S3: 'https://s3.example' }, home).endpoint.origin, 'https://s3.example', 'the S3-specific variable wins');
  // A profile: keys in credentials, region and endpoint in config ("profile NAME" there).
  mkdirSync(aws);
  writeFileSync(join(aws, 'credentials'), '[default]\naws_access_key_id = DEFAULTAK\naws_secret_access_key = DEFAULTSK\n\n[ceph]\n# the test cluster\naws_access_key_id=CEPHAK\naws_secret_access_key = CEPHSK\n');
  writeFileSync(join(aws, 'config'), '[default]\nregion = us-west-2\n[profile ceph]\nregion = default\nendpoint_url = http://10.0.0.5:7480\n');
  t.deepEqual(resolveS3Connection({}, home), { endpoint: new URL('https://s3.us-west-2.amazonaws.com'), region: 'us-west-2', accessKeyId: 'DEFAULTAK', secretAccessKey: 'DEFAULTSK' });
  t.deepEqual(resolveS3Connection({ AWS_PROFILE: 'ceph' }, home), { endpoint: new URL('http://10.0.0.5:7480'), region: 'default', accessKeyId: 'CEPHAK', secretAccessKey: 'CEPHSK' });
  t.is(resolveS3Connection({ AWS_PROFILE: 'ceph', AWS_ACCESS_KEY_ID: 'E', AWS_SECRET_ACCESS_KEY: 'F' }, home).accessKeyId, 'E', 'the environment beats the profile');
  t.throws(() => resolveS3Connection({ ...env, AWS_ENDPOINT_URL: 'ftp://x' }, home), { message: /http or https/ });
});
