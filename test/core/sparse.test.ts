// Sparse files in the vault core, without a mount (issue 26): SEEK_DATA and SEEK_HOLE against models
// (a byte-by-byte one for the piece logic, and a model of each piece's bytes for a vault driven by
// random writes, truncates, punches, zero ranges, commits and reopens); fallocate in each mode; punched
// blobs gone after the commit; holes read without touching the store; st_blocks; a punch made durable
// by fsync surviving a crash.

import test from 'ava';
import fc from 'fast-check';
import { FsError } from '../../src/core/errors.js';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocateOp, holesIn, inHole, seekPieces, type PieceSet, type SeekWhence,
} from '../../src/core/contents/sparse.js';
import { Vault } from '../../src/core/vault/vault.js';
import { abandon, createTempVault, patternBytes, readAt, type TempVault } from '../helpers/temp-vault.js';
import { Rng } from '../stress/util.js';

const P = 4096;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const FALLOC_FL_COLLAPSE_RANGE = 0x08;
const FALLOC_FL_INSERT_RANGE = 0x20;
const FALLOC_FL_UNSHARE_RANGE = 0x40;

function setOf(indices: Iterable<number>, count?: number): PieceSet {
  const s = new Set(indices);
  return { has: (i) => s.has(i), indices: () => s, count: count ?? s.size };
}

/** lseek(2) over bytes: data is any byte of a piece in the set, inside the file; the end is a hole. */
function modelSeek(set: PieceSet, size: number, pieceSize: number, offset: number, whence: SeekWhence): number | null {
  if (offset < 0 || offset >= size) return null;
  const isData = (x: number) => x < size && set.has(Math.floor(x / pieceSize));
  for (let x = offset; x <= size; x++) {
    if (whence === 'data' && x < size && isData(x)) return x;
    if (whence === 'hole' && !isData(x)) return x;
  }
  return null;
}

const seekCase = fc.record({
  pieceSize: fc.integer({ min: 1, max: 8 }),
  size: fc.integer({ min: 0, max: 120 }),
  pieces: fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }),
  inflate: fc.boolean(), // a loose upper bound on the count: the range is walked instead of the set
});

test('seekPieces answers SEEK_DATA and SEEK_HOLE as a byte-by-byte model does, at every offset', (t) => {
  fc.assert(
    fc.property(seekCase, ({ pieceSize, size, pieces, inflate }) => {
      const set = setOf(pieces, inflate ? 1_000_000 : undefined);
      for (let off = -2; off <= size + 2; off++) {
        for (const whence of ['data', 'hole'] as const) {
          const got = seekPieces(set, size, pieceSize, off, whence);
          const want = modelSeek(set, size, pieceSize, off, whence);
          if (got !== want) throw new Error(`size ${size} P ${pieceSize} pieces ${[...pieces]} ${whence}@${off}: ${got} != ${want}`);
        }
      }
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test('inHole and holesIn agree with counting piece by piece', (t) => {
  fc.assert(
    fc.property(seekCase, fc.nat(130), fc.nat(130), ({ pieceSize, pieces, inflate }, x, y) => {
      const set = setOf(pieces, inflate ? 1_000_000 : undefined);
      const [from, to] = x <= y ? [x, y] : [y, x];
      let anyData = false;
      for (let b = from; b < to; b++) if (set.has(Math.floor(b / pieceSize))) anyData = true;
      if (inHole(set, pieceSize, from, to) === anyData) throw new Error(`inHole [${from}, ${to})`);
      const first = Math.floor(from / pieceSize);
      const end = Math.ceil(to / pieceSize);
      let holes = 0;
      for (let i = first; i < end; i++) if (!set.has(i)) holes++;
      if (holesIn(set, first, end) !== holes) throw new Error(`holesIn [${first}, ${end})`);
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test('a terabyte of holes is crossed without walking it piece by piece', (t) => {
  const big = 128 * 1024;
  const size = 2 ** 40;
  const inner = setOf([3, 2 ** 23 - 2]);
  let lookups = 0;
  const set: PieceSet = { has: (i) => (lookups++, inner.has(i)), indices: () => inner.indices(), count: inner.count };
  t.is(seekPieces(set, size, big, 4 * big, 'data'), (2 ** 23 - 2) * big);
  t.is(seekPieces(set, size, big, (2 ** 23 - 2) * big + 5, 'hole'), (2 ** 23 - 1) * big);
  t.is(seekPieces(set, size, big, (2 ** 23 - 1) * big, 'data'), null, 'no data after the last piece: ENXIO');
  t.true(inHole(set, big, 5 * big, 2 ** 39));
  t.is(holesIn(set, 0, 2 ** 23), 2 ** 23 - 2);
  t.true(lookups < 100, `${lookups} piece lookups for 8 million pieces`);
});

test('fallocateOp: the modes svault does, and EOPNOTSUPP for the rest', (t) => {
  t.deepEqual(fallocateOp(0), { op: 'allocate', keepSize: false });
  t.deepEqual(fallocateOp(FALLOC_FL_KEEP_SIZE), { op: 'allocate', keepSize: true });
  t.deepEqual(fallocateOp(PUNCH), { op: 'punch', keepSize: true });
  t.deepEqual(fallocateOp(FALLOC_FL_ZERO_RANGE), { op: 'zero', keepSize: false });
  t.deepEqual(fallocateOp(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE), { op: 'zero', keepSize: true });
  for (const mode of [FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_PUNCH_HOLE, 0x80]) {
    t.is(fallocateOp(mode), null, `mode 0x${mode.toString(16)}`);
  }
});

// ---------------------------------------------------------------------------------------------------
// The vault, against a model of each piece's bytes

/** An integer in [0, n), the same run for the same seed (the stress harnesses' generator). */
function rng(seed: number): (n: number) => number {
  const r = new Rng(seed);
  return (n) => r.int(0, n - 1);
}

/**
 * What the file holds: its bytes, and per piece how many of them the piece holds (absent: a hole). A
 * piece holds bytes from its start to the last byte written into it; bytes past that read as zeros.
 */
class Model {
  bytes = Buffer.alloc(0);
  readonly held = new Map<number, number>();

  get size(): number {
    return this.bytes.length;
  }

  resize(size: number): void {
    const next = Buffer.alloc(size);
    this.bytes.copy(next, 0, 0, Math.min(size, this.size));
    this.bytes = next;
  }

  write(data: Buffer, at: number): void {
    if (at + data.length > this.size) this.resize(at + data.length);
    data.copy(this.bytes, at);
    for (let i = Math.floor(at / P); i * P < at + data.length; i++) {
      const b = Math.min(at + data.length, (i + 1) * P) - i * P;
      this.held.set(i, Math.max(this.held.get(i) ?? 0, b));
    }
  }

  truncate(size: number): void {
    if (size < this.size) {
      const keep = Math.ceil(size / P);
      for (const i of [...this.held.keys()]) if (i >= keep) this.held.delete(i);
      const tail = Math.floor(size / P);
      const len = this.held.get(tail);
      if (len !== undefined && size % P > 0) this.held.set(tail, Math.min(len, size % P));
    }
    this.resize(size);
  }

  /** PUNCH_HOLE and ZERO_RANGE: whole pieces go; a piece covered in part holds zeros there, or ends earlier. */
  zero(from: number, to: number, keepSize: boolean): void {
    if (!keepSize && to > this.size) this.resize(to);
    to = Math.min(to, this.size);
    if (to <= from) return;
    this.bytes.fill(0, from, to);
    for (const [i, len] of [...this.held]) {
      const pStart = i * P;
      const pEnd = Math.min(pStart + P, this.size);
      if (pEnd <= from || pStart >= to) continue;
      const a = Math.max(from, pStart) - pStart;
      const b = Math.min(to, pEnd) - pStart;
      if (a === 0 && b === pEnd - pStart) this.held.delete(i);
      else if (b >= len && a < len) {
        if (a === 0) this.held.delete(i);
        else this.held.set(i, a);
      }
    }
  }

  seek(offset: number, whence: SeekWhence): number | null {
    return modelSeek(setOf(this.held.keys()), this.size, P, offset, whence);
  }
}

async function expectErrno(t: import('ava').ExecutionContext, p: Promise<unknown>, errno: string, what: string): Promise<void> {
  const err = await t.throwsAsync(p, undefined, what);
  t.true(err instanceof FsError && err.errno === errno, `${what}: ${errno}, got ${err instanceof FsError ? err.errno : String(err)}`);
}

/** Checks size, content and every seek answer of the open file against the model. */
async function checkAgainst(t: import('ava').ExecutionContext, v: Vault, fh: number, m: Model, step: string): Promise<boolean> {
  const size = v.fgetattr(fh).size;
  if (size !== m.size) return t.fail(`${step}: size ${size}, model ${m.size}`), false;
  const got = Buffer.alloc(m.size);
  await v.read(fh, got, m.size, 0);
  if (!got.equals(m.bytes)) return t.fail(`${step}: content differs`), false;
  const offsets = new Set<number>([0, m.size - 1, m.size, m.size + 1]);
  for (let i = 0; i * P <= m.size + P; i++) for (const d of [0, 1, P - 1]) offsets.add(i * P + d);
  for (const off of offsets) {
    for (const whence of ['data', 'hole'] as const) {
      const want = m.seek(off, whence);
      let have: number | null;
      try {
        have = await v.seek(fh, off, whence);
      } catch (err) {
        if (!(err instanceof FsError) || err.errno !== 'ENXIO') throw err;
        have = null;
      }
      if (have !== want) return t.fail(`${step}: SEEK_${whence.toUpperCase()} at ${off}: ${have}, model ${want}`), false;
    }
  }
  return true;
}

for (const seed of [1, 2, 3, 4]) {
  test(`seed ${seed}: random writes, truncates, punches and zero ranges, seek and content as the model says, committed or not, across reopens`, async (t) => {
    const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
    const r = rng(seed);
    const m = new Model();
    let v = tv.vault;
    let fh = v.create('/f', 0o644);
    const span = 24 * P;
    const offsetIn = () => (r(3) === 0 ? r(span / P) * P : r(span));
    for (let step = 0; step < 160; step++) {
      const kind = r(10);
      let what: string;
      if (kind < 4) {
        const at = offsetIn();
        const len = 1 + r(r(2) ? P / 4 : 3 * P);
        const data = patternBytes(len, seed * 1000 + step);
        data[0] = 1; // never all zeros: a written piece is data whatever it holds
        await v.write(fh, data, at);
        m.write(data, at);
        what = `write ${len}@${at}`;
      } else if (kind === 4) {
        const size = offsetIn();
        await v.ftruncate(fh, size);
        m.truncate(size);
        what = `truncate ${size}`;
      } else if (kind < 7) {
        const at = offsetIn();
        const len = 1 + r(r(2) ? P : 6 * P);
        await v.fallocate(fh, PUNCH, at, len);
        m.zero(at, at + len, true);
        what = `punch ${len}@${at}`;
      } else if (kind === 7) {
        const at = offsetIn();
        const len = 1 + r(4 * P);
        const keep = r(2) === 0;
        await v.fallocate(fh, FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0), at, len);
        m.zero(at, at + len, keep);
        what = `zero range ${len}@${at}${keep ? ' keep size' : ''}`;
      } else if (kind === 8) {
        await v.flush(fh);
        what = 'flush';
      } else {
        await v.release(fh);
        if (r(2) === 0) v = await tv.reopen();
        fh = v.open('/f');
        what = 'close and open again';
      }
      if (!(await checkAgainst(t, v, fh, m, `step ${step} (${what})`))) return;
    }
    await v.release(fh);
    v = await tv.reopen();
    fh = v.open('/f');
    t.true(await checkAgainst(t, v, fh, m, 'after the last reopen'));
    await v.release(fh);
  });
}

// ---------------------------------------------------------------------------------------------------
// fallocate, piece by piece

async function blobs(tv: TempVault): Promise<number> {
  await tv.vault.settle();
  return (await tv.vault.usage()).blobs;
}

test('punch: whole pieces leave the piece map and their blobs go after the commit; partial pieces read zeros there', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const data = patternBytes(10 * P, 9);
  await v.writeFile('/f', data);
  t.is(await blobs(tv), 10);
  const fh = v.open('/f');
  // Bytes 1.5P to 6.5P: pieces 2 to 5 whole, 1 and 6 in part.
  await v.fallocate(fh, PUNCH, 1.5 * P, 5 * P);
  t.is(v.fgetattr(fh).size, 10 * P, 'a punch keeps the size');
  await v.flush(fh);
  t.deepEqual([...v.inodeAt('/f').pieces.keys()].sort((a, b) => a - b), [0, 1, 6, 7, 8, 9]);
  t.is(await blobs(tv), 6, 'the four punched pieces have no blob; the partial ones were replaced, not added');
  const want = Buffer.from(data);
  want.fill(0, 1.5 * P, 6.5 * P);
  t.true((await v.readFile('/f')).equals(want));
  t.is(await v.seek(fh, 0, 'hole'), 2 * P, 'piece 1 holds data up to the hole');
  t.is(await v.seek(fh, 2 * P, 'data'), 6 * P);
  await v.release(fh);
  await tv.reopen();
  t.true((await tv.vault.readFile('/f')).equals(want), 'after a reopen');
  t.is(await blobs(tv), 6);
});

test('punch of pieces only written in memory: they never reach the store', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const fh = v.create('/f', 0o644);
  await v.write(fh, patternBytes(4 * P, 3), 0);
  await v.fallocate(fh, PUNCH, P, 2 * P);
  t.is(await v.seek(fh, 0, 'hole'), P);
  t.is(await v.seek(fh, P, 'data'), 3 * P);
  await v.release(fh);
  t.deepEqual([...tv.vault.inodeAt('/f').pieces.keys()].sort(), [0, 3]);
  t.is(await blobs(tv), 2);
});

test('zero range: extends the size unless KEEP_SIZE, and the range reads zeros', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  await v.writeFile('/f', patternBytes(3 * P, 4));
  const fh = v.open('/f');
  await v.fallocate(fh, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 2 * P + 100, 5 * P);
  t.is(v.fgetattr(fh).size, 3 * P);
  await v.fallocate(fh, FALLOC_FL_ZERO_RANGE, P, 9 * P);
  t.is(v.fgetattr(fh).size, 10 * P);
  const got = await readAt(v, '/f', 0, 10 * P);
  t.true(got.subarray(0, P).equals(patternBytes(3 * P, 4).subarray(0, P)));
  t.true(got.subarray(P).every((b) => b === 0));
  t.is(await v.seek(fh, 0, 'hole'), P, 'everything after the first piece is a hole');
  await expectErrno(t, v.seek(fh, P, 'data'), 'ENXIO', 'no data after the first piece');
  await v.release(fh);
});

test('mode 0 and KEEP_SIZE: room is checked first (ENOSPC, nothing changed); mode 0 extends the size with a hole', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  await v.writeFile('/f', patternBytes(P + 10, 5));
  const fh = v.open('/f');
  // A petabyte: no store here has room for it.
  await expectErrno(t, v.fallocate(fh, 0, 0, 2 ** 50), 'ENOSPC', 'mode 0 of a petabyte');
  await expectErrno(t, v.fallocate(fh, FALLOC_FL_KEEP_SIZE, 2 ** 20, 2 ** 50), 'ENOSPC', 'KEEP_SIZE of a petabyte');
  t.is(v.fgetattr(fh).size, P + 10, 'a refused preallocation changes nothing');
  await v.fallocate(fh, 0, 0, 8 * P);
  t.is(v.fgetattr(fh).size, 8 * P);
  t.is(await v.seek(fh, 0, 'hole'), 2 * P, 'the preallocated range is a hole, as ext4 reports unwritten extents');
  await v.fallocate(fh, FALLOC_FL_KEEP_SIZE, 8 * P, 8 * P);
  t.is(v.fgetattr(fh).size, 8 * P, 'KEEP_SIZE keeps it');
  await v.fallocate(fh, 0, P, P);
  t.is(v.fgetattr(fh).size, 8 * P, 'inside the file: nothing changes');
  await v.release(fh);
  await tv.reopen();
  t.is(tv.vault.getattr('/f').size, 8 * P, 'the extension was committed');
  const got = await readAt(tv.vault, '/f', 0, 8 * P);
  t.true(got.subarray(0, P + 10).equals(patternBytes(P + 10, 5)));
  t.true(got.subarray(P + 10).every((b) => b === 0));
});

test('fallocate refuses bad ranges and other modes', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const fh = v.create('/f', 0o644);
  await expectErrno(t, v.fallocate(fh, FALLOC_FL_COLLAPSE_RANGE, 0, P), 'EOPNOTSUPP', 'COLLAPSE_RANGE');
  await expectErrno(t, v.fallocate(fh, FALLOC_FL_INSERT_RANGE, 0, P), 'EOPNOTSUPP', 'INSERT_RANGE');
  await expectErrno(t, v.fallocate(fh, FALLOC_FL_PUNCH_HOLE, 0, P), 'EOPNOTSUPP', 'PUNCH_HOLE without KEEP_SIZE');
  await expectErrno(t, v.fallocate(fh, 0, 0, 0), 'EINVAL', 'an empty range');
  await expectErrno(t, v.fallocate(fh, 0, -1, P), 'EINVAL', 'a negative offset');
  await expectErrno(t, v.fallocate(fh, FALLOC_FL_ZERO_RANGE, 2 ** 53, P), 'EFBIG', 'past the largest size');
  await expectErrno(t, v.seek(fh, 0, 'data'), 'ENXIO', 'SEEK_DATA in an empty file');
  await expectErrno(t, v.seek(fh, -1, 'hole'), 'ENXIO', 'a negative offset');
  t.is(v.fgetattr(fh).size, 0);
  await v.release(fh);
});

test('reading holes looks up no piece: no store read, and readView answers with shared zeros', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const fh = v.create('/f', 0o644);
  await v.write(fh, patternBytes(P, 6), 0);
  await v.ftruncate(fh, 64 * P);
  await v.write(fh, patternBytes(10, 7), 40 * P);
  await v.release(fh);
  await tv.reopen();
  const w = tv.vault;
  const rh = w.open('/f');
  const gets = () => w.stats.summary().find((s) => s.op === 'store.get')?.calls ?? 0;
  const before = gets();
  const target = Buffer.alloc(16 * P, 0xee);
  t.is(await w.read(rh, target, 16 * P, P), 16 * P);
  t.true(target.every((b) => b === 0), 'zeros read into the buffer');
  const untouched = Buffer.alloc(32 * P, 0xee);
  const view = await w.readView(rh, untouched, 32 * P, 2 * P + 5);
  t.is(view.length, 32 * P);
  t.true(view.every((b) => b === 0));
  t.true(untouched.every((b) => b === 0xee), 'nothing was filled: the zeros are shared');
  t.is(gets(), before, 'no piece was read for holes');
  const mixed = await w.readView(rh, Buffer.alloc(2 * P, 0xee), 2 * P, 39 * P);
  t.true(mixed.subarray(P, P + 10).equals(patternBytes(10, 7)), 'a range with data in it is read');
  t.true(mixed.subarray(0, P).every((b) => b === 0));
  t.is(gets(), before + 1, 'one piece read, for the data');
  await w.release(rh);
});

test('st_blocks counts the data pieces, never more than the size', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const fh = v.create('/sparse', 0o644);
  await v.write(fh, Buffer.from('x'), 0);
  await v.ftruncate(fh, 2 ** 30);
  await v.write(fh, Buffer.from('y'), 2 ** 29);
  t.is(v.fgetattr(fh).blocks, (2 * P) / 512, 'two pieces, one dirty in memory');
  await v.release(fh);
  t.is(v.getattr('/sparse').blocks, (2 * P) / 512, 'committed');
  await v.writeFile('/dense', patternBytes(3 * P + 1, 8));
  t.is(v.getattr('/dense').blocks, Math.ceil((3 * P + 1) / 512), 'a dense file: its size in blocks');
  await v.writeFile('/tiny', Buffer.from('z'));
  t.is(v.getattr('/tiny').blocks, 1);
});

test('a punch made durable by fsync survives a crash right after it', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0 });
  const v = tv.vault;
  const data = patternBytes(6 * P, 10);
  await v.writeFile('/f', data);
  const fh = v.open('/f');
  await v.fallocate(fh, PUNCH, P, 3 * P + 7);
  await v.fsync(fh);
  abandon(v); // the process dies: nothing staged after the fsync reaches the database
  await v.close().catch(() => undefined);
  const w = await tv.open();
  const want = Buffer.from(data);
  want.fill(0, P, 4 * P + 7);
  t.true((await w.readFile('/f')).equals(want));
  const rh = w.open('/f');
  t.is(await w.seek(rh, P, 'data'), 4 * P);
  await w.release(rh);
});
