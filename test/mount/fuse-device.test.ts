// Tests of the FUSE device layer (fs/kernel/device.ts over fs/kernel/native/fuse_dev.c) against the real
// kernel, with no protocol library: a tiny filesystem encoded by hand below answers the kernel. This process
// serves the mounts, so only child processes touch them, and only asynchronously: a synchronous stat of our own
// mount would block the event loop that has to answer it.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  constants,
  DeviceReader,
  findFusermount,
  fuseDevice,
  fusermountOptions,
  kernelMountData,
  mountFuse,
  mountFuseAsUser,
  type DeviceRequest,
  type NativeReader,
  openDevice,
  unmountFuse,
  writeReply,
} from '../../fs/kernel/device.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHILD_TIMEOUT_MS = 30_000;
const { ENOENT, ENOSYS } = os.constants.errno;

/** Why /dev/fuse cannot be opened here, or null if it can. */
function deviceProblem(): string | null {
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  try {
    accessSync('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK);
    return null;
  } catch {
    return '/dev/fuse is not readable and writable by this user';
  }
}
const deviceSkipReason = deviceProblem();
const rootSkipReason = deviceSkipReason ?? (process.getuid?.() === 0 ? null : 'mount(2) needs root');

type Impl = (t: ExecutionContext) => Promise<void> | void;
/** A serial test that needs root and /dev/fuse; skipped with the reason in its title otherwise. */
function rootTest(title: string, impl: Impl): void {
  if (rootSkipReason) test.serial.skip(`${title} (skipped: ${rootSkipReason})`, impl);
  else test.serial(title, impl);
}
function deviceTest(title: string, impl: Impl): void {
  if (deviceSkipReason) test.serial.skip(`${title} (skipped: ${deviceSkipReason})`, impl);
  else test.serial(title, impl);
}

// ---------------------------------------------------------------------------
// A minimal FUSE filesystem, encoded by hand (struct layouts from linux/fuse.h): an empty root directory.

const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  ACCESS: 34,
  INTERRUPT: 36,
  BATCH_FORGET: 42,
} as const;
const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([name, code]) => [code, name]));
const opName = (opcode: number): string => OP_NAMES.get(opcode) ?? `op${opcode}`;

const IN_HEADER = 40; // fuse_in_header
const OUT_HEADER = 16; // fuse_out_header

function outHeader(unique: bigint, error: number, payloadLength: number): Buffer {
  const h = Buffer.alloc(OUT_HEADER);
  h.writeUInt32LE(OUT_HEADER + payloadLength, 0);
  h.writeInt32LE(error, 4);
  h.writeBigUInt64LE(unique, 8);
  return h;
}

/** fuse_init_out (64 bytes). */
function initOut(kernelMinor: number, maxReadahead: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(7, 0); // major
  b.writeUInt32LE(Math.min(kernelMinor, 31), 4); // minor
  b.writeUInt32LE(maxReadahead, 8);
  b.writeUInt32LE(0, 12); // flags: no optional features
  b.writeUInt16LE(16, 16); // max_background
  b.writeUInt16LE(12, 18); // congestion_threshold
  b.writeUInt32LE(131072, 20); // max_write
  b.writeUInt32LE(1, 24); // time_gran
  return b;
}

/** fuse_attr_out (104 bytes) of the root: an empty directory; attr_valid 0, so every stat asks again. */
function rootAttrOut(): Buffer {
  const b = Buffer.alloc(104); // attr_valid, attr_valid_nsec and the padding stay 0
  const a = 16; // struct fuse_attr
  const now = BigInt(Math.floor(Date.now() / 1000));
  b.writeBigUInt64LE(1n, a); // ino; size and blocks stay 0
  b.writeBigUInt64LE(now, a + 24); // atime
  b.writeBigUInt64LE(now, a + 32); // mtime
  b.writeBigUInt64LE(now, a + 40); // ctime
  b.writeUInt32LE(0o40755, a + 60); // mode
  b.writeUInt32LE(2, a + 64); // nlink
  b.writeUInt32LE(process.getuid?.() ?? 0, a + 68);
  b.writeUInt32LE(process.getgid?.() ?? 0, a + 72);
  b.writeUInt32LE(4096, a + 80); // blksize
  return b;
}

class TinyFs {
  batches = 0;
  requests = 0;
  answered = 0;
  /** FORGET and BATCH_FORGET: the kernel wants no reply. */
  unanswerable = 0;
  readonly batchSizes: number[] = [];
  readonly opcodes = new Map<string, number>();
  kernelMajor = 0;
  kernelMinor = 0;
  #inited!: () => void;
  readonly inited = new Promise<void>((resolve) => (this.#inited = resolve));

  constructor(readonly fd: number) {}

  onBatch(batch: DeviceRequest[]): void {
    this.batches++;
    this.batchSizes.push(batch.length);
    for (const [buffer, length] of batch) this.handle(buffer, length);
  }

  handle(buf: Buffer, length: number): void {
    this.requests++;
    if (length < IN_HEADER || buf.readUInt32LE(0) !== length) throw new Error(`malformed request: ${length} bytes`);
    const opcode = buf.readUInt32LE(4);
    const unique = buf.readBigUInt64LE(8);
    const nodeid = buf.readBigUInt64LE(16);
    this.opcodes.set(opName(opcode), (this.opcodes.get(opName(opcode)) ?? 0) + 1);
    const reply = (error: number, payload?: Buffer): void => {
      writeReply(this.fd, payload ? [outHeader(unique, error, payload.length), payload] : [outHeader(unique, error, 0)]);
      this.answered++;
    };
    switch (opcode) {
      case OP.INIT:
        this.kernelMajor = buf.readUInt32LE(IN_HEADER);
        this.kernelMinor = buf.readUInt32LE(IN_HEADER + 4);
        reply(0, initOut(this.kernelMinor, buf.readUInt32LE(IN_HEADER + 8)));
        this.#inited();
        return;
      case OP.GETATTR:
        return nodeid === 1n ? reply(0, rootAttrOut()) : reply(-ENOENT);
      case OP.OPENDIR:
        return reply(0, Buffer.alloc(16)); // fuse_open_out: fh 0, no flags
      case OP.READDIR: // an empty listing: no entries at all
      case OP.RELEASEDIR:
      case OP.ACCESS:
        return reply(0);
      case OP.FORGET:
      case OP.BATCH_FORGET:
        this.unanswerable++;
        return;
      default:
        return reply(-ENOSYS);
    }
  }

  summary(): string {
    return [...this.opcodes].map(([op, n]) => `${op}×${n}`).join(' ');
  }
}

// ---------------------------------------------------------------------------
// Mounts, children and cleanup

const tempDirs: string[] = [];

/** /proc/mounts escapes space, tab, newline and backslash as \ooo. */
const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

interface MountLine {
  source: string;
  target: string;
  fstype: string;
  options: string;
}
function mountsUnder(dir: string): MountLine[] {
  const prefix = `${dir}${path.sep}`;
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length >= 4)
    .map(([source, target, fstype, options]) => ({ source: unescape(source!), target: unescape(target!), fstype: fstype!, options: options! }))
    .filter((m) => m.target === dir || m.target.startsWith(prefix));
}

/** Lazily unmounts everything under dir (deepest first) and says what there was. */
function detachAll(dir: string): string[] {
  const left = mountsUnder(dir).map((m) => m.target);
  for (const target of [...left].reverse()) {
    try {
      fuseDevice().umount(target, constants.MNT_DETACH);
    } catch {
      // already gone
    }
  }
  return left;
}

async function freshDir(): Promise<{ dir: string; mnt: string }> {
  const dir = realpathSync(await mkdtemp(path.join(os.tmpdir(), 'svault-fusedev-')));
  tempDirs.push(dir);
  const mnt = path.join(dir, 'mnt');
  await mkdir(mnt);
  return { dir, mnt };
}

function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: CHILD_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === -1 ? err.message : '') });
    });
  });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Served {
  dir: string;
  mnt: string;
  fd: number;
  fs: TinyFs;
  reader: DeviceReader;
  /** Resolves with onClosed's argument. */
  closed: Promise<string | undefined>;
}

/** Mounts a fresh directory with mount, serves it with TinyFs, and always cleans up after the test. */
async function serve(t: ExecutionContext, mount: (mnt: string) => number): Promise<Served> {
  const { dir, mnt } = await freshDir();
  const fd = mount(mnt);
  const fs = new TinyFs(fd);
  let onClosed!: (code?: string) => void;
  const closed = new Promise<string | undefined>((resolve) => (onClosed = resolve));
  const reader = new DeviceReader(
    fd,
    (batch) => {
      fs.onBatch(batch);
      for (const [buffer] of batch) reader.release(buffer);
    },
    (code) => onClosed(code),
  );
  t.teardown(async () => {
    // Unmount first: a child still waiting on a request then gets an error instead of hanging.
    detachAll(dir);
    reader.stop();
    closeSync(fd);
    if (mountsUnder(dir).length === 0) await rm(dir, { recursive: true, force: true });
  });
  await within(fs.inited, 10_000, 'FUSE_INIT');
  return { dir, mnt, fd, fs, reader, closed };
}

async function statType(mnt: string): Promise<string> {
  const res = await sh('stat', ['-c', '%F', mnt]);
  if (res.code !== 0) throw new Error(`stat ${mnt} exited ${res.code}: ${res.stderr}`);
  return res.stdout.trim();
}

// ---------------------------------------------------------------------------
// Tests

test.serial('the addon loads and its constants are the ones device.ts declares', (t) => {
  t.deepEqual({ ...fuseDevice().constants }, { ...constants });
});

test.serial('option strings: the kernel data and the fusermount -o string', (t) => {
  const opts = { mountpoint: '/m', fsname: 'a,b\\c', allowOther: true, defaultPermissions: true, maxRead: 131072 };
  t.is(kernelMountData(7, opts, 1000, 100), 'fd=7,rootmode=40000,user_id=1000,group_id=100,allow_other,default_permissions,max_read=131072');
  t.is(fusermountOptions({ ...opts, readOnly: true }), 'ro,nosuid,nodev,fsname=a\\,b\\\\c,subtype=svault,allow_other,default_permissions,max_read=131072');
  t.throws(() => fusermountOptions({ mountpoint: '/m', subtype: 'a,b' }), { instanceOf: TypeError });
});

deviceTest('openDevice gives an fd; misuse throws TypeError and never crashes', (t) => {
  const dev = fuseDevice();
  const fd = openDevice();
  t.true(Number.isInteger(fd) && fd > 2);
  t.teardown(() => closeSync(fd));
  const noop = (): void => {};
  const buf = Buffer.alloc(constants.MIN_READ_BUFFER);
  const anyDev = dev as unknown as Record<string, (...args: unknown[]) => unknown>;
  const misuse: Array<[string, () => unknown]> = [
    ['mount with a string fd', () => anyDev.mount!('3', '/x', 'fuse', 'x', 0, '')],
    ['mount with a fractional flag', () => dev.mount(fd, '/x', 'fuse', 'x', 1.5, '')],
    ['mount with negative flags', () => dev.mount(fd, '/x', 'fuse', 'x', -1, '')],
    ['mount with a NUL in the path', () => dev.mount(fd, '/x\0y', 'fuse', 'x', 0, '')],
    ['mount with too few arguments', () => anyDev.mount!(fd, '/x')],
    ['umount with a number path', () => anyDev.umount!(1, 0)],
    ['umount with unknown flags', () => dev.umount('/x', 99)],
    ['writeReply with no parts', () => dev.writeReply(fd, [])],
    ['writeReply with a string', () => anyDev.writeReply!(fd, 'x')],
    ['writeReply with a number part', () => anyDev.writeReply!(fd, [1])],
    ['writeReply shorter than a header', () => dev.writeReply(fd, [Buffer.alloc(4), Buffer.alloc(4)])],
    ['writeReply with 1025 parts', () => dev.writeReply(fd, new Array<Buffer>(1025).fill(buf))],
    ['writeReply to fd -1', () => dev.writeReply(-1, [Buffer.alloc(16)])],
    ['mountWithFusermount with numbers', () => anyDev.mountWithFusermount!(1, 2, 3)],
    ['Reader without new', () => (dev.Reader as unknown as (...a: unknown[]) => unknown)(fd, noop, noop)],
    ['Reader with a string fd', () => new (dev.Reader as unknown as new (...a: unknown[]) => unknown)('x', noop, noop)],
    ['Reader without callbacks', () => new (dev.Reader as unknown as new (...a: unknown[]) => unknown)(fd, 1, noop)],
    ['DeviceReader with small buffers', () => new DeviceReader(fd, noop, noop, { bufferSize: 4096 })],
  ];
  for (const [what, call] of misuse) t.throws(call, { instanceOf: TypeError }, what);

  const reader = new dev.Reader(fd, noop, noop);
  t.teardown(() => reader.stop());
  t.throws(() => reader.supply(Buffer.alloc(8191)), { instanceOf: TypeError }, 'a buffer under 8192 bytes');
  t.throws(() => (reader as unknown as { supply(x: unknown): void }).supply('x'), { instanceOf: TypeError }, 'a string');
  const proto = (dev.Reader as unknown as { prototype: NativeReader }).prototype;
  t.throws(() => proto.supply.call({}, buf), { instanceOf: TypeError }, 'supply on a plain object');
  reader.stop();
  t.false(reader.supply(buf), 'supply after stop keeps nothing');
  reader.stop();
});

deviceTest('a supplied buffer cannot be supplied again, nor memory it shares', (t) => {
  const fd = openDevice();
  t.teardown(() => closeSync(fd));
  // The checks are synchronous: this never-mounted device fails its first read only once the event loop runs.
  const reader = new (fuseDevice().Reader)(fd, () => {}, () => {});
  t.teardown(() => reader.stop());
  const big = Buffer.alloc(4 * 8192);
  t.true(reader.supply(big.subarray(0, 8192)));
  t.throws(() => reader.supply(big.subarray(0, 8192)), { instanceOf: TypeError }, 'the same memory');
  t.throws(() => reader.supply(big.subarray(4096, 4096 + 8192)), { instanceOf: TypeError }, 'overlapping memory');
  t.true(reader.supply(big.subarray(8192, 16384)), 'the next slice is fine');
});

deviceTest('a device that was never mounted: reading ends with onClosed(EPERM), writing throws EPERM', async (t) => {
  const fd = openDevice();
  t.teardown(() => closeSync(fd));
  let onClosed!: (code?: string) => void;
  const closed = new Promise<string | undefined>((resolve) => (onClosed = resolve));
  const reader = new (fuseDevice().Reader)(fd, () => t.fail('no request can come'), (code) => onClosed(code));
  t.teardown(() => reader.stop());
  reader.supply(Buffer.alloc(8192));
  t.is(await within(closed, 5000, 'onClosed'), 'EPERM');
  const err = t.throws(() => writeReply(fd, [outHeader(2n, 0, 0)]));
  t.is((err as NodeJS.ErrnoException).code, 'EPERM');
  t.is((err as NodeJS.ErrnoException).syscall, 'writev');
});

test.serial('mountWithFusermount reports a fusermount that fails, sends nothing, or does not exist', (t) => {
  const dev = fuseDevice();
  t.throws(() => dev.mountWithFusermount('/nonexistent', 'rw', '/bin/true'), { message: /\/bin\/true sent no descriptor/ });
  t.throws(() => dev.mountWithFusermount('/nonexistent', 'rw', '/bin/false'), { message: /\/bin\/false exited with status 1/ });
  const err = t.throws(() => dev.mountWithFusermount('/nonexistent', 'rw', '/nonexistent/fusermount'));
  t.is((err as NodeJS.ErrnoException).code, 'ENOENT');
});

rootTest('a round trip by hand: INIT, GETATTR, OPENDIR, READDIR; stat and ls from another process; unmount ends the reader', async (t) => {
  const served = await serve(t, (mnt) => mountFuse({ mountpoint: mnt, fsname: 'svault-test', subtype: 'svaulttest', maxRead: 131072 }));
  const { mnt, dir, fd, fs } = served;
  t.log(`kernel FUSE ${fs.kernelMajor}.${fs.kernelMinor}; we answered 7.${Math.min(fs.kernelMinor, 31)}`);

  const [entry] = mountsUnder(dir);
  t.is(entry?.target, mnt);
  t.is(entry?.fstype, 'fuse.svaulttest');
  t.is(entry?.source, 'svault-test');
  for (const opt of ['nosuid', 'nodev', 'user_id=0', 'group_id=0', 'max_read=131072']) t.true(entry?.options.split(',').includes(opt), opt);

  t.is(await statType(mnt), 'directory');
  const ls = await sh('ls', ['-a', mnt]);
  t.is(ls.code, 0, ls.stderr);
  t.is(ls.stdout, '', 'an empty listing, not even . and ..');
  // RELEASEDIR is sent in the background after ls closes the directory.
  const deadline = Date.now() + 5000;
  while (!fs.opcodes.has('RELEASEDIR') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const op of ['INIT', 'GETATTR', 'OPENDIR', 'READDIR', 'RELEASEDIR']) t.true(fs.opcodes.has(op), `${op} seen (${fs.summary()})`);
  t.log(`requests: ${fs.summary()}`);

  // Replies to requests that do not exist (never issued, or interrupted and gone) are not an error.
  t.is(writeReply(fd, [outHeader(0x7ffff0n, -ENOSYS, 0)]), 0, 'unknown unique');
  t.is(writeReply(fd, [outHeader(0x7ffff0n | 1n, -ENOSYS, 0)]), 0, 'unknown interrupt unique');
  // A malformed reply (its header's len disagrees with the bytes written) is.
  const bad = outHeader(0x7ffff0n, 0, 0);
  bad.writeUInt32LE(32, 0);
  t.is((t.throws(() => writeReply(fd, [bad])) as NodeJS.ErrnoException).code, 'EINVAL');

  await unmountFuse(mnt);
  t.is(await within(served.closed, 5000, 'onClosed after unmount'), undefined, 'ENODEV: onClosed() without a code');
  t.true(served.reader.closed);
  t.deepEqual(mountsUnder(dir), []);
  let afterUnmount: string;
  try {
    afterUnmount = `returned ${writeReply(fd, [outHeader(0x7ffff0n, 0, 0)])}`;
  } catch (err) {
    afterUnmount = `threw ${(err as NodeJS.ErrnoException).code}`;
  }
  t.log(`a reply written after the unmount ${afterUnmount}`);
  t.is(fs.requests, fs.answered + fs.unanswerable);
});

rootTest('requests come in batches; every request is answered', async (t) => {
  const { mnt, fs } = await serve(t, (mnt) => mountFuse({ mountpoint: mnt, subtype: 'svaulttest' }));
  const before = { batches: fs.batches, requests: fs.requests };
  // One loop as a shell does it (one request at a time), then four side by side so requests can queue up.
  const loop = `for i in $(seq 200); do stat -c %F "$1" || exit 1; done`;
  const one = await sh('sh', ['-c', loop, 'sh', mnt]);
  t.is(one.code, 0, one.stderr);
  t.is(one.stdout.split('\n').filter((l) => l === 'directory').length, 200);
  const mid = { batches: fs.batches, requests: fs.requests };
  const four = await sh('sh', ['-c', `for j in 1 2 3 4; do (${loop}) & done; wait`, 'sh', mnt]);
  t.is(four.code, 0, four.stderr);
  t.is(four.stdout.split('\n').filter((l) => l === 'directory').length, 800);
  const ratio = (b: number, r: number): string => `${r} requests in ${b} wake-ups (${(r / b).toFixed(2)} per wake-up)`;
  t.log(`one loop: ${ratio(mid.batches - before.batches, mid.requests - before.requests)}`);
  t.log(`four loops: ${ratio(fs.batches - mid.batches, fs.requests - mid.requests)}; largest batch ${Math.max(...fs.batchSizes)}`);
  t.log(`requests: ${fs.summary()}`);
  t.true(fs.requests - before.requests >= 1000, 'a request per stat at least (attr_valid is 0)');
  t.is(fs.requests, fs.answered + fs.unanswerable, 'every request answered');
  await unmountFuse(mnt);
});

/** Whether process pid sleeps waiting on a FUSE reply (wchan names the kernel function it sleeps in). */
async function waitsOnFuse(pid: number): Promise<boolean> {
  const wchan = await readFile(`/proc/${pid}/wchan`, 'utf8').catch(() => '');
  return /fuse|request_wait_answer/.test(wchan);
}

rootTest('backpressure: with no buffer supplied requests wait in the kernel, then come in one batch', async (t) => {
  const { dir, mnt } = await freshDir();
  const fd = mountFuse({ mountpoint: mnt, subtype: 'svaulttest' });
  const fs = new TinyFs(fd);
  const batches: number[] = [];
  const bufs = Array.from({ length: 8 }, () => Buffer.allocUnsafeSlow(constants.MIN_READ_BUFFER * 18));
  let onClosed!: (code?: string) => void;
  const closed = new Promise<string | undefined>((resolve) => (onClosed = resolve));
  // Buffers are not given back after replies: each is read into once.
  const reader: NativeReader = new (fuseDevice().Reader)(
    fd,
    (batch) => {
      batches.push(batch.length);
      fs.onBatch(batch);
    },
    (code) => onClosed(code),
  );
  t.teardown(async () => {
    detachAll(dir);
    reader.stop();
    closeSync(fd);
    if (mountsUnder(dir).length === 0) await rm(dir, { recursive: true, force: true });
  });
  t.true(reader.supply(bufs[0]!));
  await within(fs.inited, 10_000, 'FUSE_INIT');
  t.deepEqual(batches, [1]);

  // No buffer left: four stats now queue in the kernel.
  const children = Array.from({ length: 4 }, () => {
    const child = execFile('stat', ['-c', '%F', mnt], { timeout: CHILD_TIMEOUT_MS, killSignal: 'SIGKILL' });
    const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, done };
  });
  const deadline = Date.now() + 10_000;
  let waiting = 0;
  while (Date.now() < deadline) {
    waiting = (await Promise.all(children.map((c) => waitsOnFuse(c.child.pid!)))).filter(Boolean).length;
    if (waiting === 4) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.is(waiting, 4, 'all four stats wait on the filesystem');
  t.deepEqual(batches, [1], 'nothing read while no buffer is supplied');
  for (const b of bufs.slice(1)) reader.supply(b);
  const codes = await within(Promise.all(children.map((c) => c.done)), CHILD_TIMEOUT_MS, 'the stats');
  t.deepEqual(codes, [0, 0, 0, 0]);
  t.is(batches[1], 4, `the four queued requests came in one wake-up (batches: ${batches.join(',')})`);
  t.log(`batches: ${batches.join(',')}; requests: ${fs.summary()}`);

  fuseDevice().umount(mnt, 0);
  t.is(await within(closed, 5000, 'onClosed after unmount'), undefined);
});

const bundledFusermount = path.join(root, 'node_modules', 'fuse-shared-library-linux', 'libfuse', 'bin', 'fusermount');
const fusermountOnPath = findFusermount();

async function fusermountRoundTrip(t: ExecutionContext, fusermount: string): Promise<void> {
  const served = await serve(t, (mnt) => mountFuseAsUser({ mountpoint: mnt, fsname: 'svault,test', subtype: 'svaulttest', fusermount }));
  const [entry] = mountsUnder(served.dir);
  t.is(entry?.fstype, 'fuse.svaulttest');
  t.is(entry?.source, 'svault,test', 'the escaped comma arrives as a comma');
  t.is(await statType(served.mnt), 'directory');
  await unmountFuse(served.mnt);
  t.is(await within(served.closed, 5000, 'onClosed after unmount'), undefined);
  t.deepEqual(mountsUnder(served.dir), []);
}

if (rootSkipReason) {
  test.serial.skip(`mounting through fusermount (skipped: ${rootSkipReason})`, () => {});
} else if (!fusermountOnPath) {
  test.serial.skip('mounting through fusermount3/fusermount on PATH (skipped: neither is installed; Debian: apt-get install fuse3)', () => {});
} else {
  test.serial(`mounting through ${fusermountOnPath}: the descriptor comes back over the socket`, (t) => fusermountRoundTrip(t, fusermountOnPath));
}

if (!rootSkipReason && existsSync(bundledFusermount)) {
  test.serial("mounting through fuse-shared-library-linux's fusermount (libfuse 2): the descriptor comes back over the socket", (t) =>
    fusermountRoundTrip(t, bundledFusermount),
  );
}

test.after.always('nothing is left mounted under our temp dirs', async () => {
  const left = tempDirs.flatMap((dir) => (existsSync(dir) ? detachAll(dir) : []));
  for (const dir of tempDirs) if (existsSync(dir) && mountsUnder(dir).length === 0) await rm(dir, { recursive: true, force: true });
  if (left.length > 0) throw new Error(`left mounted (now lazily unmounted): ${left.join(', ')}`);
});
