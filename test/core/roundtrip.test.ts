// Round trips through the vault core: what is written reads back byte for byte, at every size around
// the piece boundaries, with holes, truncation, overwrites and a reopen of the vault; on both the
// directory store and the memory store.

import test from 'ava';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import { DEFAULT_PIECE_SIZE } from '../../src/core/vault/vault.js';
import { CleanupList, createTempVault, patternBytes, readAt, writeAt, type TempVault } from '../helpers/temp-vault.js';

const P = 4096;

interface Backend {
  name: string;
  makeStore: () => MemoryStore | undefined;
}

const backends: Backend[] = [
  { name: 'LocalDirStore', makeStore: () => undefined },
  { name: 'MemoryStore', makeStore: () => new MemoryStore() },
];

/** Sizes around the piece boundaries, and a few multi-piece files. */
const SIZES = [0, 1, P - 1, P, P + 1, 2 * P, 3 * P - 1, 3 * P + 17, 10 * P + 123];

/** Blob count of a vault's store (chaff is off in these vaults, so it is the count of live pieces). */
async function blobCount(tv: TempVault): Promise<number> {
  return (await tv.vault.usage()).blobs;
}

for (const backend of backends) {
  // One shared vault per backend for the tests that do not close it; file names never collide.
  const hooks = new CleanupList();
  let shared: TempVault;
  test.before(async () => {
    shared = await createTempVault(hooks, { pieceSize: P, chaffRatio: 0, store: backend.makeStore() });
  });
  test.after.always(() => hooks.run());

  for (const size of SIZES) {
    test(`${backend.name}: round trip of a ${size}-byte file (one write)`, async (t) => {
      const v = shared.vault;
      const data = patternBytes(size, size + 7);
      await v.writeFile(`/one-${size}`, data);
      t.is(v.getattr(`/one-${size}`).size, size);
      const back = await v.readFile(`/one-${size}`);
      t.true(back.equals(data), 'content differs');
      t.is(v.inodeAt(`/one-${size}`).pieces.size, Math.ceil(size / P), 'one piece per started piece');
    });

    test(`${backend.name}: round trip of a ${size}-byte file written in odd chunks, read at odd offsets`, async (t) => {
      const v = shared.vault;
      const path = `/chunks-${size}`;
      const data = patternBytes(size, size + 11);
      const fh = v.create(path, 0o600);
      try {
        for (let off = 0; off < size; off += 1000) t.is(await v.write(fh, data.subarray(off, Math.min(size, off + 1000)), off), Math.min(1000, size - off));
        // Read before the commit (from the dirty pieces) ...
        const pre = Buffer.alloc(size);
        t.is(await v.read(fh, pre, size, 0), size);
        t.true(pre.equals(data), 'uncommitted read differs');
      } finally {
        await v.release(fh);
      }
      // ... and after it, through windows that cross piece boundaries.
      for (const [pos, len] of [[0, size], [P - 3, 7], [1, P], [size - 1, 10], [size, 5], [size + 100, 5]] as const) {
        if (pos < 0) continue;
        const got = await readAt(v, path, pos, len);
        const want = data.subarray(Math.min(pos, size), Math.min(size, pos + len));
        t.true(got.equals(want), `read(${pos}, ${len}) of a ${size}-byte file: got ${got.length} bytes`);
      }
    });
  }

  test(`${backend.name}: a zero-length write changes nothing (POSIX write(2) with count 0), even past the end`, async (t) => {
    const v = shared.vault;
    const path = '/zero-length-write';
    await v.writeFile(path, Buffer.from('abc'));
    const fh = v.open(path);
    try {
      t.is(await v.write(fh, Buffer.alloc(0), 0), 0);
      t.is(await v.write(fh, Buffer.alloc(0), 3), 0);
      t.is(await v.write(fh, Buffer.alloc(0), 2 * P), 0);
      t.is(v.fgetattr(fh).size, 3, 'a zero-length write past the end must not extend the file');
    } finally {
      await v.release(fh);
    }
    t.is(v.getattr(path).size, 3);
    t.is((await v.readFile(path)).toString(), 'abc');
  });

  test(`${backend.name}: sparse file: a write far out leaves a hole that reads as zeroes and is not stored`, async (t) => {
    const v = shared.vault;
    const far = 7 * P + 100;
    const tail = patternBytes(50, 3);
    await writeAt(v, '/sparse', tail, far);
    t.is(v.getattr('/sparse').size, far + 50);
    const all = await v.readFile('/sparse');
    t.is(all.length, far + 50);
    t.true(all.subarray(0, far).equals(Buffer.alloc(far)), 'the hole does not read as zeroes');
    t.true(all.subarray(far).equals(tail));
    t.deepEqual([...v.inodeAt('/sparse').pieces.keys()], [7], 'only the written piece is stored');

    // A second write in the middle of the hole, not touching its neighbours.
    const mid = patternBytes(10, 4);
    await writeAt(v, '/sparse', mid, 3 * P + 5);
    const again = await v.readFile('/sparse');
    const model = Buffer.alloc(far + 50);
    tail.copy(model, far);
    mid.copy(model, 3 * P + 5);
    t.true(again.equals(model));
    t.deepEqual([...v.inodeAt('/sparse').pieces.keys()].sort((a, b) => a - b), [3, 7]);
  });

  test(`${backend.name}: truncate (by path) shrink then extend reads zeroes, never stale bytes`, async (t) => {
    const v = shared.vault;
    const data = patternBytes(3 * P + 500, 5);
    for (const cut of [5000, P, 1, 0, 3 * P + 499]) {
      const path = `/trunc-path-${cut}`;
      await v.writeFile(path, data);
      await v.truncate(path, cut);
      t.is(v.getattr(path).size, cut);
      t.true((await v.readFile(path)).equals(data.subarray(0, cut)), `after shrink to ${cut}`);
      await v.truncate(path, data.length + P);
      const model = Buffer.alloc(data.length + P);
      data.copy(model, 0, 0, cut);
      const got = await v.readFile(path);
      t.is(got.length, model.length);
      t.true(got.equals(model), `stale bytes after shrink to ${cut} and extend`);
    }
  });

  test(`${backend.name}: ftruncate on an open handle with uncommitted data: shrink, extend, write past the cut`, async (t) => {
    const v = shared.vault;
    const path = '/trunc-fh';
    const data = patternBytes(2 * P + 300, 6);
    const fh = v.create(path, 0o644);
    const model = Buffer.from(data);
    try {
      await v.write(fh, data, 0); // still dirty, nothing sealed yet
      await v.ftruncate(fh, 100);
      await v.ftruncate(fh, 2 * P);
      // A small write past the old data: the bytes between must be zero, not the pre-truncate bytes.
      const w = patternBytes(4, 9);
      await v.write(fh, w, P + 10);
      const expected = Buffer.alloc(2 * P);
      model.copy(expected, 0, 0, 100);
      w.copy(expected, P + 10);
      const buf = Buffer.alloc(2 * P);
      t.is(await v.read(fh, buf, 2 * P, 0), 2 * P);
      t.true(buf.equals(expected), 'read through the open handle shows stale bytes');
      await v.flush(fh);
      t.true((await readAt(v, path, 0, 4 * P)).equals(expected), 'committed content shows stale bytes');
    } finally {
      await v.release(fh);
    }
  });

  test.serial(`${backend.name}: overwrite in the middle across a piece boundary keeps the rest and leaves no old blobs`, async (t) => {
    const v = shared.vault;
    const path = '/overwrite';
    const data = patternBytes(3 * P + 10, 8);
    await v.writeFile(path, data);
    const piecesBefore = new Map(v.inodeAt(path).pieces);
    await v.settle();
    const blobsBefore = await blobCount(shared);
    const patch = patternBytes(200, 10);
    await writeAt(v, path, patch, P - 100);
    const model = Buffer.from(data);
    patch.copy(model, P - 100);
    t.is(v.getattr(path).size, data.length, 'an inner overwrite must not change the size');
    t.true((await v.readFile(path)).equals(model));
    const after = v.inodeAt(path).pieces;
    t.not(after.get(0), piecesBefore.get(0), 'piece 0 gets a new version');
    t.not(after.get(1), piecesBefore.get(1), 'piece 1 gets a new version');
    t.is(after.get(2), piecesBefore.get(2), 'piece 2 is untouched');
    t.is(after.get(3), piecesBefore.get(3), 'piece 3 is untouched');
    await v.settle(); // superseded versions go once the commit that drops them is durable
    t.is(await blobCount(shared), blobsBefore, 'superseded piece versions must be deleted after the commit');
  });

  test.serial(`${backend.name}: unlink deletes the file's blobs`, async (t) => {
    const v = shared.vault;
    const before = await blobCount(shared);
    await v.writeFile('/gone', patternBytes(3 * P, 12));
    t.is(await blobCount(shared), before + 3);
    v.unlink('/gone');
    // Pieces are deleted once the unlink has reached SQLite (group commit): settle() waits for that.
    await v.settle();
    t.is(await blobCount(shared), before);
    t.throws(() => v.getattr('/gone'), { message: /no such file/ });
  });

  test(`${backend.name}: everything survives closing and reopening the vault`, async (t) => {
    const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0.5, store: backend.makeStore() });
    const written = new Map<string, Buffer>();
    let seed = 100;
    for (const size of SIZES) {
      const data = patternBytes(size, seed++);
      await tv.vault.writeFile(`/f-${size}`, data);
      written.set(`/f-${size}`, data);
    }
    tv.vault.mkdir('/d', 0o755);
    tv.vault.mkdir('/d/e', 0o700);
    const nested = patternBytes(P + 1, seed++);
    await tv.vault.writeFile('/d/e/nested', nested);
    written.set('/d/e/nested', nested);
    // Sparse, truncated and overwritten files.
    await writeAt(tv.vault, '/holes', Buffer.from('end'), 5 * P);
    written.set('/holes', Buffer.concat([Buffer.alloc(5 * P), Buffer.from('end')]));
    const tr = patternBytes(2 * P + 5, seed++);
    await tv.vault.writeFile('/truncated', tr);
    await tv.vault.truncate('/truncated', 10);
    await tv.vault.truncate('/truncated', P + 10);
    written.set('/truncated', Buffer.concat([tr.subarray(0, 10), Buffer.alloc(P)]));
    const ow = patternBytes(3 * P, seed++);
    await tv.vault.writeFile('/overwritten', ow);
    const patch = Buffer.alloc(P, 0xab);
    await writeAt(tv.vault, '/overwritten', patch, P + 1);
    patch.copy(ow, P + 1);
    written.set('/overwritten', ow);
    // Left open (not released) at close: close() must commit it.
    const openData = patternBytes(P + 3, seed++);
    const fh = tv.vault.create('/left-open', 0o644);
    await tv.vault.write(fh, openData, 0);
    written.set('/left-open', openData);

    await tv.reopen();
    for (const [path, data] of written) {
      t.is(tv.vault.getattr(path).size, data.length, `size of ${path}`);
      t.true((await tv.vault.readFile(path)).equals(data), `content of ${path} after reopen`);
    }
    t.deepEqual(tv.vault.readdir('/d/e'), ['nested']);

    // And again after one more write on the reopened vault.
    const more = patternBytes(100, seed++);
    await writeAt(tv.vault, '/f-0', more, 0);
    await tv.reopen();
    t.true((await tv.vault.readFile('/f-0')).equals(more));
  });
}

test('MemoryStore with the default piece size: round trips around 128 KiB pieces', async (t) => {
  const tv = await createTempVault(t, { pieceSize: DEFAULT_PIECE_SIZE, chaffRatio: 0, store: new MemoryStore() });
  const D = DEFAULT_PIECE_SIZE;
  t.is(tv.vault.pieceSize, D);
  const files = new Map<string, Buffer>();
  for (const size of [0, 1, D - 1, D, D + 1, 3 * D + 5]) {
    const data = patternBytes(size, size);
    await tv.vault.writeFile(`/d-${size}`, data);
    files.set(`/d-${size}`, data);
  }
  await tv.reopen();
  for (const [path, data] of files) t.true((await tv.vault.readFile(path)).equals(data), path);
});

for (const [how, chunk] of [['whole pieces, each decrypted into the reader\'s buffer', P], ['half pieces, through the cache and read-ahead', P / 2]] as const) {
  test(`LocalDirStore: interleaved reads of many files, in ${how}, get their own bytes`, async (t) => {
    // The directory store lends every blob from one reused buffer, and whole pieces are decrypted through
    // one scratch buffer: a read must finish with both before any other read can start (no await in
    // between), or files would swap bytes and fail authentication.
    const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
    const files = Array.from({ length: 8 }, (_, k) => ({ path: `/i-${k}`, data: patternBytes(20 * P + k, 100 + k) }));
    for (const f of files) await tv.vault.writeFile(f.path, f.data);
    await tv.reopen(); // nothing in the caches: every piece comes from the store
    const handles = files.map((f) => tv.vault.open(f.path));
    const got = files.map((f) => Buffer.alloc(f.data.length));
    try {
      for (let off = 0; off < 21 * P; off += chunk) {
        await Promise.all(
          files.map(async (f, k) => {
            const n = await tv.vault.read(handles[k] ?? -1, got[k]!.subarray(off, off + chunk), chunk, off);
            t.is(n, Math.max(0, Math.min(chunk, f.data.length - off)));
          }),
        );
      }
    } finally {
      for (const fh of handles) await tv.vault.release(fh);
    }
    files.forEach((f, k) => t.true(got[k]!.equals(f.data), f.path));
  });
}

test('reads of whole pieces are decrypted into the reader\'s buffer, uncached; other reads go through the cache', async (t) => {
  // Contents.readWholePiece: a whole committed piece nobody holds skips the clean cache (each read
  // fetches its blob again); a part of a piece, or a piece still being written, takes the cached path.
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const data = patternBytes(3 * P + 100, 42); // three full pieces and a short last one
  await v.writeFile('/f', data);
  await v.truncate('/f', 5 * P); // the short piece is now shorter than its place, and piece 4 is a hole
  const want = Buffer.concat([data, Buffer.alloc(5 * P - data.length)]);
  await tv.reopen(); // nothing cached
  const gets = (): number => tv.vault.stats.summary().find((s) => s.op === 'store.get')?.calls ?? 0;
  const fh = tv.vault.open('/f');
  try {
    const readBack = async (position: number, length: number): Promise<Buffer> => {
      const out = Buffer.alloc(length, 0xee);
      t.is(await tv.vault.read(fh, out, length, position), length);
      return out;
    };
    // Whole pieces, one request each and all in one: the right bytes, a blob fetched every time.
    let before = gets();
    for (let i = 0; i < 5; i++) t.true((await readBack(i * P, P)).equals(want.subarray(i * P, (i + 1) * P)), `piece ${i}`);
    t.true((await readBack(0, 5 * P)).equals(want), 'the whole file in one read');
    t.is(gets() - before, 8, 'four blobs read twice (the hole has none), none from the cache');
    // Parts of a piece: the first fetches and caches it, the second is served from the cache.
    before = gets();
    t.true((await readBack(P + 10, 100)).equals(want.subarray(P + 10, P + 110)));
    t.true((await readBack(P + 200, 100)).equals(want.subarray(P + 200, P + 300)));
    t.is(gets() - before, 1, 'one fetch for two partial reads of a piece');
    // ...and a whole-piece read of that cached piece copies from the cache.
    before = gets();
    t.true((await readBack(P, P)).equals(want.subarray(P, 2 * P)));
    t.is(gets() - before, 0);
    // A piece being written is read from memory, new bytes and all.
    await tv.vault.write(fh, Buffer.from('fresh'), 2 * P + 7);
    want.write('fresh', 2 * P + 7);
    before = gets();
    t.true((await readBack(2 * P, P)).equals(want.subarray(2 * P, 3 * P)));
    t.is(gets() - before, 0);
  } finally {
    await tv.vault.release(fh);
  }
  t.true((await tv.vault.readFile('/f')).equals(want), 'and after the commit');
});

test('a directory over several listing pages: appends, removals from full pages, renames and a reopen', async (t) => {
  // Creates append to the last listing page's JSON without parsing it (Metadata.addEntry); removals
  // move the last page's last entry into the hole. Both must keep every page a valid, dense list.
  const tv = await createTempVault(t, { chaffRatio: 0 });
  const v = tv.vault;
  v.mkdir('/d', 0o755);
  const want = new Set<string>();
  const create = async (name: string): Promise<void> => {
    await v.release(v.create(`/d/${name}`, 0o644));
    want.add(name);
  };
  for (let i = 0; i < 300; i++) await create(`f${i}`); // pages of 128: two full and one partial
  for (const i of [0, 5, 127, 128, 200, 299]) {
    v.unlink(`/d/f${i}`);
    want.delete(`f${i}`);
  }
  v.rename('/d/f1', '/d/renamed');
  want.delete('f1');
  want.add('renamed');
  for (let i = 300; i < 420; i++) await create(`f${i}`); // fills the holes' page, then a new one
  const sorted = (names: Iterable<string>): string[] => [...names].sort();
  t.deepEqual(sorted(v.readdir('/d')), sorted(want));
  for (const name of want) t.truthy(v.getattr(`/d/${name}`), name);
  await tv.reopen(); // from the store, with no cache of what was appended
  t.deepEqual(sorted(tv.vault.readdir('/d')), sorted(want));
  for (let i = 420; i < 440; i++) {
    await tv.vault.release(tv.vault.create(`/d/f${i}`, 0o644));
    want.add(`f${i}`);
  }
  t.deepEqual(sorted(tv.vault.readdir('/d')), sorted(want), 'every name once, none lost');
});
