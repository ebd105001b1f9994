// Sparse files through a real mount (issue 26): SEEK_DATA and SEEK_HOLE against a model of each file's
// data pieces, with files still open and their data unsealed; fallocate in every mode (util-linux's
// fallocate, python's posix_fallocate), across a remount and across a kill -9 right after an fsync;
// punched blobs gone from the store after the commit; ENOSPC from a preallocation on a small tmpfs;
// cp --sparse=always out of and into the vault; and, on fuse-native, the kernel's own lseek and no
// fallocate, as the README says. The mount is only ever touched by child processes.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { mountedAt, run, sh, type Sandbox } from '../helpers/cli.js';
import { alive, emptyBox, liveStatus, mountedBox, ok, q, randomFile, remount, sha, sha256, stat, unmountAndCheck, waitFor } from '../helpers/mount-util.js';
import { blobFiles, checkNothingLeftMountedAtAll, mountStore, onlyServer, tmpfsFor } from '../helpers/reliability-util.js';
import { Rng } from '../stress/util.js';

checkNothingLeftMountedAtAll(test);

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** The default piece size (src/core/vault/vault.ts): SEEK_DATA and SEEK_HOLE answer in whole pieces. */
const P = 128 * KiB;

/**
 * A python3 client of one file: runs `ops` on it through one descriptor, in order, and prints what
 * each seek found. Writes are bytes 1..251 repeated from `seed` (never zero). fallocate goes through
 * libc (Python has only posix_fallocate). ENXIO from lseek prints as null.
 */
const CLIENT = String.raw`
import ctypes, json, os, sys, time
spec = json.loads(sys.stdin.read())
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
pattern = bytes(range(1, 252))
fd = os.open(spec['path'], os.O_RDWR | os.O_CREAT, 0o644)
out = []
for op in spec['ops']:
    k = op['op']
    if k == 'write':
        n, s = op['len'], op['seed'] % 251
        data = (pattern * (n // 251 + 2))[s:s + n]
        os.pwrite(fd, data, op['at'])
    elif k == 'truncate':
        os.ftruncate(fd, op['size'])
    elif k == 'fallocate':
        if libc.fallocate(fd, op['mode'], op['at'], op['len']) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    elif k == 'fsync':
        os.fsync(fd)
    elif k == 'hold':
        print('held', flush=True)
        time.sleep(120)
    elif k == 'seek':
        found = []
        for off in op['offsets']:
            pair = []
            for whence in (os.SEEK_DATA, os.SEEK_HOLE):
                try:
                    pair.append(os.lseek(fd, off, whence))
                except OSError as e:
                    if e.errno != 6:
                        raise
                    pair.append(None)
            found.append(pair)
        out.append(found)
    elif k == 'extents':
        ext, pos, size = [], 0, os.fstat(fd).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno != 6:
                    raise
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            ext.append([start, pos])
        out.append(ext)
os.close(fd)
print(json.dumps(out))
`;

type Op =
  | { op: 'write'; at: number; len: number; seed: number }
  | { op: 'truncate'; size: number }
  | { op: 'fallocate'; mode: number; at: number; len: number }
  | { op: 'fsync' }
  | { op: 'hold' }
  | { op: 'seek'; offsets: number[] }
  | { op: 'extents' };

/** Runs the client on `path`; returns the answers of its seek and extents ops, in order. */
async function client<T = Array<Array<[number | null, number | null]>>>(path: string, ops: Op[]): Promise<T> {
  const r = await run('python3', ['-c', CLIENT], { input: JSON.stringify({ path, ops }) });
  if (r.code !== 0) throw new Error(`python3 client on ${path} failed (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Starts the client on `path` and resolves once it has done `ops` and holds the file open (it is killed at teardown). */
function clientHolding(t: ExecutionContext, path: string, ops: Op[]): Promise<void> {
  const child = spawn('python3', ['-c', CLIENT], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  child.stdin.end(JSON.stringify({ path, ops: [...ops, { op: 'hold' }] }));
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('held')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`python3 client on ${path} exited (${code}) before holding: ${err}`)));
  });
}

/** The bytes the client writes for a write op. */
function clientBytes(len: number, seed: number): Buffer {
  const out = Buffer.alloc(len);
  const s = seed % 251;
  for (let i = 0; i < len; i++) out[i] = ((s + i) % 251) + 1;
  return out;
}

/** lseek(2) on a file whose data is the pieces in `data` (the end of the file is a hole); null for ENXIO. */
function modelSeek(data: Set<number>, size: number, off: number, whence: 'data' | 'hole'): number | null {
  if (off < 0 || off >= size) return null;
  for (let j = Math.floor(off / P); ; j++) {
    if (j * P >= size) return whence === 'data' ? null : size;
    if (data.has(j) === (whence === 'data')) return Math.max(off, j * P);
  }
}

/** An integer in [0, n), the same run for the same seed (the stress harnesses' generator). */
function rng(seed: number): (n: number) => number {
  const r = new Rng(seed);
  return (n) => r.int(0, n - 1);
}

/** A random file with holes: writes piece-aligned and not, then maybe a truncate. Its model: bytes and data pieces. */
function randomSparseFile(seed: number): { ops: Op[]; bytes: Buffer; data: Set<number>; offsets: number[] } {
  const r = rng(seed);
  const span = 40 * P;
  const ops: Op[] = [];
  let bytes = Buffer.alloc(0);
  const data = new Set<number>();
  for (let k = 0, n = 3 + r(8); k < n; k++) {
    const aligned = r(2) === 0;
    const at = aligned ? r(span / P) * P : r(span);
    const len = aligned ? (1 + r(4)) * P : 1 + r(3 * P);
    const w = { op: 'write' as const, at, len, seed: seed * 100 + k };
    ops.push(w);
    if (at + len > bytes.length) bytes = Buffer.concat([bytes, Buffer.alloc(at + len - bytes.length)]);
    clientBytes(len, w.seed).copy(bytes, at);
    for (let i = Math.floor(at / P); i * P < at + len; i++) data.add(i);
  }
  if (r(2) === 0) {
    const size = r(2) === 0 ? r(span) : span + r(10 * P);
    ops.push({ op: 'truncate', size });
    bytes = size <= bytes.length ? bytes.subarray(0, size) : Buffer.concat([bytes, Buffer.alloc(size - bytes.length)]);
    for (const i of [...data]) if (i * P >= size) data.delete(i);
  }
  const size = bytes.length;
  const offsets = new Set<number>([0, 1, size - 1, size, size + 1, size + P]);
  for (let i = 0; i * P <= size; i++) for (const d of [0, 1, P - 1]) offsets.add(i * P + d);
  for (let k = 0; k < 40; k++) offsets.add(r(size + 2));
  return { ops, bytes, data, offsets: [...offsets].filter((o) => o >= 0).sort((a, b) => a - b) };
}

function checkSeeks(t: ExecutionContext, found: Array<[number | null, number | null]>, offsets: number[], data: Set<number>, size: number, what: string): void {
  let wrong = 0;
  offsets.forEach((off, k) => {
    const want = [modelSeek(data, size, off, 'data'), modelSeek(data, size, off, 'hole')];
    const got = found[k];
    if (!got || got[0] !== want[0] || got[1] !== want[1]) {
      if (wrong++ < 5) t.fail(`${what}: at ${off} SEEK_DATA/SEEK_HOLE gave ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
    }
  });
  t.is(wrong, 0, `${what}: ${offsets.length} offsets`);
}

test('SEEK_DATA and SEEK_HOLE answer as the model of data pieces says, while open with data unsealed and after close and remount', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const files = [11, 12, 13, 14, 15, 16].map((seed) => ({ seed, name: `f${seed}`, ...randomSparseFile(seed) }));
  for (const f of files) {
    const path = join(box.mnt, f.name);
    // Asked before the descriptor closes: the last writes are still plaintext in the server's memory.
    const [open] = await client(path, [...f.ops, { op: 'seek', offsets: f.offsets }]);
    checkSeeks(t, open ?? [], f.offsets, f.data, f.bytes.length, `${f.name} still open`);
    const [closed] = await client(path, [{ op: 'seek', offsets: f.offsets }]);
    checkSeeks(t, closed ?? [], f.offsets, f.data, f.bytes.length, `${f.name} closed`);
    t.is(await sha(t, path), sha256(f.bytes), `${f.name}: content`);
  }
  await remount(t, box);
  for (const f of files) {
    const path = join(box.mnt, f.name);
    const [after] = await client(path, [{ op: 'seek', offsets: f.offsets }]);
    checkSeeks(t, after ?? [], f.offsets, f.data, f.bytes.length, `${f.name} after a remount`);
    t.is(await sha(t, path), sha256(f.bytes), `${f.name}: content after a remount`);
  }
  await unmountAndCheck(t, box);
});

test('fallocate in each mode (util-linux, posix_fallocate): content, size, holes and blobs as expected, also after a remount', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const f = join(box.mnt, 'f');
  const src = join(box.dir, 'src');
  const model = randomFile(src, 16 * P); // 16 pieces, 16 blobs (no chaff)
  await ok(t, `cp ${q(src)} ${q(f)}`);
  t.is(blobFiles(box.store).size, 16);

  // Punch 300000..1000000: pieces 3 to 6 whole, 2 and 7 in part.
  await ok(t, `fallocate -p -o 300000 -l 700000 ${q(f)}`);
  model.fill(0, 300_000, 1_000_000);
  // Zero 1500000..1600000 (pieces 11 and 12 in part), then 2000000..3000000, extending the file.
  await ok(t, `fallocate -z -o 1500000 -l 100000 ${q(f)}`);
  model.fill(0, 1_500_000, 1_600_000);
  await ok(t, `fallocate -z -o 2000000 -l 1000000 ${q(f)}`);
  let want = Buffer.concat([model.subarray(0, 2_000_000), Buffer.alloc(1_000_000)]);
  t.is(await stat(t, '%s', f), '3000000', 'ZERO_RANGE extends the size');
  await ok(t, `fallocate -z -n -o 2900000 -l 1000000 ${q(f)}`);
  t.is(await stat(t, '%s', f), '3000000', 'ZERO_RANGE with KEEP_SIZE keeps it');
  // Preallocation: KEEP_SIZE changes no size, mode 0 extends it with a hole.
  await ok(t, `fallocate -n -o 3000000 -l ${4 * MiB} ${q(f)}`);
  t.is(await stat(t, '%s', f), '3000000');
  await ok(t, `fallocate -o 0 -l ${4 * MiB} ${q(f)}`);
  t.is(await stat(t, '%s', f), String(4 * MiB));
  want = Buffer.concat([want, Buffer.alloc(4 * MiB - want.length)]);
  // posix_fallocate: glibc writes a byte per block if fallocate fails; the vault's answer keeps it a hole.
  await ok(t, `python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); os.posix_fallocate(fd, 0, 64 << 20); os.close(fd)' ${q(join(box.mnt, 'g'))}`);
  // Modes the kernel or svault refuses.
  for (const flag of ['-c', '-i']) {
    const r = await sh(`fallocate ${flag} -o 0 -l ${P} ${q(f)}`);
    t.not(r.code, 0, `fallocate ${flag}`);
    t.regex(r.stderr, /Operation not supported/, `fallocate ${flag}: ${r.stderr}`);
  }

  const check = async (when: string) => {
    t.is(await sha(t, f), sha256(want), `content ${when}`);
    const [extents] = await client<number[][][]>(f, [{ op: 'extents' }]);
    t.deepEqual(extents, [[0, 3 * P], [7 * P, 16 * P]], `data extents ${when}: punched pieces and the preallocated range are holes`);
    t.is(await stat(t, '%s %b', join(box.mnt, 'g')), `${64 * MiB} 0`, `posix_fallocate: 64 MiB, no block written ${when}`);
    t.is(await stat(t, '%b', f), String((12 * P) / 512), `st_blocks: the 12 data pieces ${when}`);
  };
  await check('before the remount');
  // 4 punched pieces gone; partial ones were replaced by new versions; the preallocated ranges store nothing.
  await ok(t, `sync ${q(f)}`);
  t.true(await waitFor(() => blobFiles(box.store).size === 12, 10_000), `12 blobs after the commit, found ${blobFiles(box.store).size}`);
  await remount(t, box);
  await check('after a remount');
  t.is(blobFiles(box.store).size, 12);
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('a punched range reads back as zeros and its blobs leave the store once the commit is durable', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const f = join(box.mnt, 'f');
  const src = join(box.dir, 'src');
  const data = randomFile(src, 8 * MiB); // 64 pieces
  await ok(t, `cp ${q(src)} ${q(f)} && sync ${q(f)}`);
  const before = blobFiles(box.store);
  t.is(before.size, 64);
  await ok(t, `fallocate -p -o ${MiB} -l ${2 * MiB + 1000} ${q(f)} && sync ${q(f)}`);
  data.fill(0, MiB, 3 * MiB + 1000);
  t.is(await sha(t, f), sha256(data));
  // Pieces 8 to 23 punched whole (16 blobs gone), piece 24 rewritten (its old blob gone, a new one there).
  t.true(await waitFor(() => blobFiles(box.store).size === 48, 10_000), `48 blobs, found ${blobFiles(box.store).size}`);
  const after = blobFiles(box.store);
  t.is([...before].filter((b) => !after.has(b)).length, 17, 'the 16 punched blobs and the replaced one are deleted');
  await unmountAndCheck(t, box);
});

/** Kills the box's server with SIGKILL, waits for it to go, and mounts the store again. */
async function killAndRemount(t: ExecutionContext, box: Sandbox, extra: string[] = []): Promise<void> {
  const pid = onlyServer(box);
  process.kill(pid, 'SIGKILL');
  t.true(await waitFor(() => !alive(pid), 5000), 'the server is gone');
  const m = await box.mount(extra);
  t.is(m.code, 0, m.stderr);
}

test('fallocate then fsync, then kill -9 of the server: every mode survives', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  // A commit window of ten minutes: only the fsync can have made a change durable before the kill.
  const long = ['-o', 'commit=600'];
  t.is((await box.unmount()).code, 0);
  t.is((await box.mount(long)).code, 0);
  const f = join(box.mnt, 'f');
  const src = join(box.dir, 'src');
  const data = randomFile(src, 2 * MiB);
  await ok(t, `cp ${q(src)} ${q(f)} && sync ${q(f)}`);
  const cases: Array<{ mode: number; at: number; len: number; apply: (b: Buffer) => Buffer }> = [
    { mode: 0x03, at: 200_000, len: 600_000, apply: (b) => (b.fill(0, 200_000, 800_000), b) }, // PUNCH_HOLE | KEEP_SIZE
    { mode: 0x10, at: 1_900_000, len: 500_000, apply: (b) => Buffer.concat([b.subarray(0, 1_900_000), Buffer.alloc(500_000)]) }, // ZERO_RANGE
    { mode: 0x11, at: 10, len: 20, apply: (b) => (b.fill(0, 10, 30), b) }, // ZERO_RANGE | KEEP_SIZE
    { mode: 0x00, at: 0, len: 3 * MiB, apply: (b) => Buffer.concat([b, Buffer.alloc(3 * MiB - b.length)]) },
    { mode: 0x01, at: 0, len: 5 * MiB, apply: (b) => b }, // KEEP_SIZE
  ];
  let want: Buffer = Buffer.from(data);
  for (const c of cases) {
    await client(f, [{ op: 'fallocate', mode: c.mode, at: c.at, len: c.len }, { op: 'fsync' }]);
    want = c.apply(want);
    await killAndRemount(t, box, long);
    t.is(await stat(t, '%s', f), String(want.length), `mode 0x${c.mode.toString(16)}: size after the kill`);
    t.is(await sha(t, f), sha256(want), `mode 0x${c.mode.toString(16)}: content after the kill`);
  }
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('-o sync: a fallocate is durable when it returns (kill -9 right after, file still open, no fsync)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const opts = ['-o', 'sync,commit=600'];
  t.is((await box.unmount()).code, 0);
  const m = await box.mount(opts);
  t.is(m.code, 0, m.stderr);
  const f = join(box.mnt, 'f');
  const src = join(box.dir, 'src');
  const data = randomFile(src, MiB);
  await ok(t, `cp ${q(src)} ${q(f)}`);
  // Still open when the server dies: no close can have made the punch durable, only the fallocate itself.
  await clientHolding(t, f, [{ op: 'fallocate', mode: 0x03, at: P, len: 3 * P }]);
  data.fill(0, P, 4 * P);
  await killAndRemount(t, box, opts);
  t.is(await sha(t, f), sha256(data), 'the punch survived');
  await unmountAndCheck(t, box);
});

test('a preallocation that does not fit the store fails with ENOSPC up front; one that fits succeeds as a hole', async (t) => {
  const box = emptyBox(t, 'falloc-full');
  const disk = await tmpfsFor(t, box, 16);
  const store = join(disk, 'store');
  const i = await box.svault(['init', '--store', store, '--chaff', '0.1']);
  t.is(i.code, 0, i.stderr);
  const m = await mountStore(box, store);
  t.is(m.code, 0, m.stderr);
  const big = join(box.mnt, 'big');
  for (const line of [
    `fallocate -l 64M ${q(big)}`,
    `fallocate -n -l 64M ${q(big)}`,
    `python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); os.posix_fallocate(fd, 0, 64 << 20)' ${q(big)}`,
  ]) {
    const r = await sh(line);
    t.not(r.code, 0, line);
    t.regex(r.stderr, /No space left on device/, `${line}: ${r.stderr}`);
    t.is(await stat(t, '%s', big), '0', `${line}: nothing changed`);
  }
  const small = join(box.mnt, 'small');
  await ok(t, `fallocate -l 4M ${q(small)}`);
  t.is(await stat(t, '%s %b', small), `${4 * MiB} 0`, 'mode 0 within the room: the size, no block yet');
  // It was only checked: writing it all still fits (16 MiB of tmpfs, 4 MiB of pieces and chaff).
  await ok(t, `dd if=/dev/urandom of=${q(small)} bs=1M count=4 conv=notrunc status=none && sync ${q(small)}`);
  await unmountAndCheck(t, box);
});

test('cp --sparse=always out of the vault makes a sparse file, reading only the data; and into it', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const s = join(box.mnt, 's');
  await ok(t, `truncate -s 1G ${q(s)}`);
  const src = join(box.dir, 'chunk');
  randomFile(src, MiB);
  for (const at of [0, 300 * MiB + 12345, 1023 * MiB]) await ok(t, `dd if=${q(src)} of=${q(s)} bs=1M seek=${at} oflag=seek_bytes conv=notrunc status=none`);
  t.is(await stat(t, '%s', s), String(GiB));
  t.true(Number(await stat(t, '%b', s)) <= (4 * MiB) / 512 + 2 * (P / 512), 'st_blocks counts the data pieces only');
  const reads = async () => (await liveStatus(box)).ops.find((o) => o.op === 'fuse.read')?.calls ?? 0;
  const before = await reads();
  const out = join(box.dir, 'out');
  await ok(t, `cp --sparse=always ${q(s)} ${q(out)}`);
  const readsOut = (await reads()) - before;
  t.true(readsOut < 64, `cp read the data extents only (${readsOut} read requests for 1 GiB)`);
  await ok(t, `cmp ${q(s)} ${q(out)}`);
  t.is(statSync(out).size, GiB);
  t.true(statSync(out).blocks < (8 * MiB) / 512, `the copy is sparse (${statSync(out).blocks} blocks)`);
  // And back in: cp finds the copy's holes itself, and leaves them holes in the vault.
  const back = join(box.mnt, 'back');
  await ok(t, `cp --sparse=always ${q(out)} ${q(back)}`);
  await ok(t, `cmp ${q(out)} ${q(back)}`);
  t.true(Number(await stat(t, '%b', back)) < (8 * MiB) / 512, 'the copy in is sparse in the vault');
  await unmountAndCheck(t, box);
});

test('holes read in requests of up to 1 MiB (the readahead window is raised) and hit no store', async (t) => {
  if (process.getuid?.() !== 0) return t.pass('only root may raise the readahead window');
  const box = await mountedBox(t, ['--chaff', '0']);
  const h = join(box.mnt, 'h');
  await ok(t, `truncate -s 256M ${q(h)}`);
  const count = async (op: string) => (await liveStatus(box)).ops.find((o) => o.op === op)?.calls ?? 0;
  const [reads, gets] = [await count('fuse.read'), await count('store.get')];
  const out = await ok(t, `dd if=${q(h)} bs=1M status=none | sha256sum`);
  t.is(out.split(' ')[0], sha256(Buffer.alloc(256 * MiB)));
  const requests = (await count('fuse.read')) - reads;
  t.true(requests <= 256 + 8, `${requests} read requests for 256 MiB`);
  t.is((await count('store.get')) - gets, 0, 'no blob read for holes');
  await unmountAndCheck(t, box);
});

test('fuse-native: the kernel answers lseek itself (SEEK_DATA the offset, SEEK_HOLE the size) and fallocate is not supported', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0'], { binding: 'fuse-native' });
  const f = join(box.mnt, 'f');
  await ok(t, `truncate -s ${4 * P} ${q(f)}`);
  const [found] = await client(f, [{ op: 'seek', offsets: [0, P + 3, 4 * P] }]);
  t.deepEqual(found, [[0, 4 * P], [P + 3, 4 * P], [null, null]]);
  for (const flag of ['', '-n', '-p', '-z']) {
    const r = await sh(`fallocate ${flag} -o 0 -l ${P} ${q(f)}`);
    t.not(r.code, 0);
    // util-linux says "keep size mode is unsupported" for EOPNOTSUPP when the mode keeps the size.
    t.regex(r.stderr, /Operation not supported|unsupported/, `fallocate ${flag}: ${r.stderr}`);
  }
  t.true(mountedAt(box.mnt));
  await unmountAndCheck(t, box);
});

test('-o writeback_cache: svault leaves lseek to the kernel, which holds data svault has not seen', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  t.is((await box.unmount()).code, 0);
  const m = await box.mount(['-o', 'writeback_cache']);
  t.is(m.code, 0, m.stderr);
  const f = join(box.mnt, 'f');
  const [found] = await client(f, [
    { op: 'truncate', size: 4 * P },
    { op: 'write', at: 2 * P, len: 10, seed: 1 },
    { op: 'seek', offsets: [0, 3 * P] },
  ]);
  t.deepEqual(found, [[0, 4 * P], [3 * P, 4 * P]], "the kernel's own lseek: all data");
  await unmountAndCheck(t, box);
});
