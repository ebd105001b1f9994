// svault's own FUSE transport without a kernel: requests laid out by hand go through the session
// (fs/kernel/session.ts) and the inode handlers (fs/kernel/inode-ops.ts) over a real vault, and the
// replies are taken apart. INIT, every opcode svault handles, malformed, short and unknown requests,
// interrupts, replies in any order, lookup counts, and setuid cleared on a write by another user.

import test, { type ExecutionContext } from 'ava';
import { constants } from 'node:os';
import { inodeOps } from '../../fs/kernel/inode-ops.js';
import { FuseSession, type DeviceIo, type SessionOps } from '../../fs/kernel/session.js';
import { OpStats } from '../../src/core/util/op-stats.js';
import { join } from 'node:path';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { PASSPHRASE, tempDir } from '../helpers/temp-vault.js';
import {
  OP, attrAt, cstr, direntNames, direntPlus, entryOf, initArgs, ioArgs, parseReply, request, setattrArgs, u32, u64, type Caller, type Reply,
} from '../helpers/fuse-wire.js';

const E = constants.errno as Record<string, number>;
const err = (name: string): number => -(E[name] ?? 0);

// INIT flags (linux/fuse.h): what the tests look for in the negotiated set.
const ASYNC_READ = 1n << 0n;
const ATOMIC_O_TRUNC = 1n << 3n;
const DO_READDIRPLUS = 1n << 13n;
const MAX_PAGES = 1n << 22n;
const INIT_EXT = 1n << 30n;
const HANDLE_KILLPRIV_V2 = 1n << 28n;
const POSIX_ACL = 1n << 20n;
const EVERYTHING = (1n << 64n) - 1n;

/** A device stand-in: requests are fed in by the test, replies collected in order. */
class FakeDevice implements DeviceIo {
  onBatch: (batch: [Buffer, number][]) => void = () => undefined;
  replies: Reply[] = [];
  released = 0;
  stopped = false;

  start(onBatch: (batch: [Buffer, number][]) => void): void {
    this.onBatch = onBatch;
  }
  release(): void {
    this.released++;
  }
  write(parts: Buffer[]): void {
    this.replies.push(parseReply(parts));
  }
  stop(): void {
    this.stopped = true;
  }
}

interface Rig {
  device: FakeDevice;
  logs: string[];
  /** Sends one request and returns its reply, once it has come (undefined if none came). */
  call(opcode: number, nodeid: number, args?: Buffer[], caller?: Caller): Promise<Reply | undefined>;
  /** Sends raw bytes as one request. */
  raw(buf: Buffer, length?: number): void;
}

let uniqueCounter = 100n;

function rig(ops: SessionOps): Rig {
  const device = new FakeDevice();
  const logs: string[] = [];
  const session = new FuseSession(device, ops, { log: (l) => logs.push(l), stats: new OpStats(), onClosed: () => undefined });
  session.start();
  const waitFor = async (unique: bigint): Promise<Reply | undefined> => {
    for (let i = 0; i < 200; i++) {
      const r = device.replies.find((x) => x.unique === unique);
      if (r) return r;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return undefined;
  };
  return {
    device,
    logs,
    call: (opcode, nodeid, args = [], caller = {}) => {
      const unique = uniqueCounter++;
      const buf = request(opcode, unique, nodeid, args, caller);
      device.onBatch([[buf, buf.length]]);
      return waitFor(unique);
    },
    raw: (buf, length = buf.length) => device.onBatch([[buf, length]]),
  };
}

async function init(r: Rig, flags = EVERYTHING): Promise<Reply> {
  const reply = await r.call(OP.INIT, 0, initArgs(45, flags));
  if (!reply) throw new Error('no INIT reply');
  return reply;
}

/** A fresh vault in a temporary store, closed at teardown. */
async function tempVault2(t: ExecutionContext): Promise<Vault2> {
  const v = await Vault2.create(join(tempDir(t), 'store'), PASSPHRASE, { pieceSize: 4096, chaffRatio: 0 }, { pieceWorker: false });
  t.teardown(() => v.close());
  return v;
}

/** A session over the inode handlers of a fresh vault, past INIT. */
async function vaultRig(t: ExecutionContext): Promise<Rig> {
  const r = rig(inodeOps(await tempVault2(t), { readOnly: false, log: () => undefined }));
  await init(r);
  return r;
}

async function ok(t: ExecutionContext, r: Promise<Reply | undefined>, what: string): Promise<Reply> {
  const reply = await r;
  if (!reply) throw new Error(`${what}: no reply`);
  t.is(reply.error, 0, `${what}: error ${reply.error}`);
  return reply;
}

test('INIT: protocol 7.38 for a newer kernel, the features svault wants and the kernel has, 1 MiB requests', async (t) => {
  const r = rig({ handlers: {}, forget: () => undefined });
  const reply = await init(r);
  t.is(reply.error, 0);
  t.is(reply.body.readUInt32LE(0), 7);
  t.is(reply.body.readUInt32LE(4), 38);
  const flags = BigInt(reply.body.readUInt32LE(12)) | (BigInt(reply.body.readUInt32LE(32)) << 32n);
  for (const f of [ASYNC_READ, ATOMIC_O_TRUNC, DO_READDIRPLUS, MAX_PAGES, HANDLE_KILLPRIV_V2, INIT_EXT]) t.true((flags & f) !== 0n, `flag ${f}`);
  t.is(flags & POSIX_ACL, 0n, 'not asked for');
  t.is(reply.body.readUInt32LE(20), 1 << 20, 'max_write');
  t.is(reply.body.readUInt16LE(28), 256, 'max_pages');
  const narrow = rig({ handlers: {}, forget: () => undefined });
  const fromOld = await init(narrow, ASYNC_READ);
  t.is(BigInt(fromOld.body.readUInt32LE(12)), ASYNC_READ, 'only what the kernel offers');
});

test('before INIT, requests are refused with EPROTO; an old kernel is refused at INIT', async (t) => {
  const r = rig({ handlers: { getattr: () => [] }, forget: () => undefined });
  t.is((await r.call(OP.GETATTR, 1, [Buffer.alloc(16)]))?.error, err('EPROTO'));
  const old = await r.call(OP.INIT, 0, [u32(7), u32(8), u32(0), u32(0)]);
  t.is(old?.error, err('EPROTO'));
});

test('unknown and unimplemented opcodes get ENOSYS; malformed requests an error reply; unreadable ones none', async (t) => {
  const r = rig({ handlers: {}, forget: () => undefined });
  await init(r);
  t.is((await r.call(999, 1))?.error, err('ENOSYS'));
  t.is((await r.call(OP.LSEEK, 1, [Buffer.alloc(24)]))?.error, err('ENOSYS'));
  // A LOOKUP whose name has no terminating NUL, and a WRITE shorter than its struct.
  const bad1 = uniqueCounter++;
  r.raw(request(OP.LOOKUP, bad1, 1, [Buffer.from('abc')]));
  const bad2 = uniqueCounter++;
  r.raw(request(OP.WRITE, bad2, 1, [Buffer.alloc(12)]));
  t.is(r.device.replies.find((x) => x.unique === bad1)?.error, err('EINVAL'));
  t.is(r.device.replies.find((x) => x.unique === bad2)?.error, err('EINVAL'));
  const before = r.device.replies.length;
  r.raw(Buffer.alloc(20)); // not even a header: nothing to answer
  t.is(r.device.replies.length, before);
  t.is(r.device.released, r.device.replies.length + 1, 'every buffer came back, answered or not');
});

test('replies go out as their handlers finish, in any order; a throwing handler is EIO and a log line', async (t) => {
  let release!: () => void;
  const slow = new Promise<void>((resolve) => (release = resolve));
  const r = rig({
    handlers: {
      getattr: async (req) => {
        await slow;
        return [Buffer.from(parseable(req.header.unique))];
      },
      statfs: (req) => [Buffer.from(parseable(req.header.unique))],
      readlink: () => {
        throw new Error('boom');
      },
    },
    forget: () => undefined,
  });
  await init(r);
  const first = r.call(OP.GETATTR, 1, [Buffer.alloc(16)]);
  const second = await r.call(OP.STATFS, 1);
  t.truthy(second, 'the later request is answered while the first still waits');
  t.is(r.device.replies.filter((x) => x.error === 0).length, 2, 'INIT and STATFS so far');
  release();
  t.truthy(await first);
  t.is((await r.call(OP.READLINK, 1))?.error, err('EIO'));
  t.true(r.logs.some((l) => /boom/.test(l)));
});

/** An empty successful reply for `unique` (a handler's answer in the tests above). */
function parseable(unique: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(16, 0);
  b.writeBigUInt64LE(unique, 8);
  return b;
}

test('INTERRUPT: none for a request still being handled, EAGAIN for one not seen yet; FORGET has no reply', async (t) => {
  let release!: () => void;
  const slow = new Promise<void>((resolve) => (release = resolve));
  const forgotten: [number, number][] = [];
  const r = rig({
    handlers: {
      getattr: async (req) => {
        await slow;
        return [parseable(req.header.unique)];
      },
    },
    forget: (n, k) => forgotten.push([n, k]),
  });
  await init(r);
  const target = uniqueCounter;
  const pending = r.call(OP.GETATTR, 1, [Buffer.alloc(16)]);
  const count = r.device.replies.length;
  const int1 = uniqueCounter++;
  r.raw(request(OP.INTERRUPT, int1, 0, [u64(target)]));
  t.is(r.device.replies.length, count, 'no reply to an INTERRUPT of a pending request');
  const int2 = uniqueCounter++;
  r.raw(request(OP.INTERRUPT, int2, 0, [u64(999_999n)]));
  t.is(r.device.replies.find((x) => x.unique === int2)?.error, err('EAGAIN'));
  release();
  t.is((await pending)?.error, 0);
  r.raw(request(OP.FORGET, uniqueCounter++, 7, [u64(3)]));
  r.raw(request(OP.BATCH_FORGET, uniqueCounter++, 0, [u32(2), u32(0), u64(8), u64(1), u64(9), u64(2)]));
  t.deepEqual(forgotten, [[7, 3], [8, 1], [9, 2]]);
});

test('through the vault: mkdir, create, write, read, getattr, setattr, readdir and readdirplus', async (t) => {
  const r = await vaultRig(t);
  const miss = await ok(t, r.call(OP.LOOKUP, 1, [cstr('nothing')]), 'lookup of a missing name');
  t.is(entryOf(miss.body).nodeid, 0, 'a negative entry the kernel may cache');
  const dir = entryOf((await ok(t, r.call(OP.MKDIR, 1, [u32(0o755), u32(0), cstr('d')]), 'mkdir')).body);
  t.true(dir.nodeid > 1);
  t.is(dir.attr.mode & 0o170000, 0o040000);
  const created = await ok(t, r.call(OP.CREATE, dir.nodeid, [u32(0o101), u32(0o100644), u32(0), u32(0), cstr('f')], { uid: 1000, gid: 1000 }), 'create');
  const file = entryOf(created.body);
  t.is(file.attr.uid, 1000, 'owned by the caller');
  const fh = Number(created.body.readBigUInt64LE(128));
  const data = Buffer.from('hello, kernel protocol');
  const wrote = await ok(t, r.call(OP.WRITE, file.nodeid, [ioArgs(fh, 0, data.length), data]), 'write');
  t.is(wrote.body.readUInt32LE(0), data.length);
  const read = await ok(t, r.call(OP.READ, file.nodeid, [ioArgs(fh, 7, 100)]), 'read');
  t.is(read.body.toString(), 'kernel protocol');
  await ok(t, r.call(OP.FLUSH, file.nodeid, [u64(fh), u32(0), u32(0), u64(0)]), 'flush');
  await ok(t, r.call(OP.RELEASE, file.nodeid, [u64(fh), u32(0), u32(0), u64(0)]), 'release');
  const attr = attrAt((await ok(t, r.call(OP.GETATTR, file.nodeid, [Buffer.alloc(16)]), 'getattr')).body, 16);
  t.is(attr.size, data.length);
  const set = attrAt((await ok(t, r.call(OP.SETATTR, file.nodeid, [setattrArgs({ valid: 1 | 8 | 32, mode: 0o600, size: 5, mtime: 1_000_000_000 })]), 'setattr')).body, 16);
  t.is(set.mode & 0o7777, 0o600);
  t.is(set.size, 5);
  t.is(set.mtimeSec, 1_000_000_000);
  const opened = await ok(t, r.call(OP.OPENDIR, dir.nodeid, [u32(0), u32(0)]), 'opendir');
  const dfh = Number(opened.body.readBigUInt64LE(0));
  const names = direntNames((await ok(t, r.call(OP.READDIR, dir.nodeid, [ioArgs(dfh, 0, 4096)]), 'readdir')).body);
  t.deepEqual(names, ['.', '..', 'f']);
  const plus = direntPlus((await ok(t, r.call(OP.READDIRPLUS, dir.nodeid, [ioArgs(dfh, 0, 4096)]), 'readdirplus')).body);
  t.deepEqual(plus.map((e) => e.name), ['.', '..', 'f']);
  t.is(plus[2]?.nodeid, file.nodeid, 'the same node id as the lookup gave');
  t.is(plus[0]?.nodeid, 0, '"." carries no node');
  const rest = direntNames((await ok(t, r.call(OP.READDIR, dir.nodeid, [ioArgs(dfh, 3, 4096)]), 'readdir from offset 3')).body);
  t.deepEqual(rest, []);
  await ok(t, r.call(OP.RELEASEDIR, dir.nodeid, [u64(dfh), u32(0), u32(0), u64(0)]), 'releasedir');
  t.is((await r.call(OP.READDIR, dir.nodeid, [ioArgs(dfh, 0, 4096)]))?.error, err('EBADF'));
  const st = await ok(t, r.call(OP.STATFS, 1), 'statfs');
  t.is(st.body.readUInt32LE(44), 255, 'namelen');
});

test('through the vault: link, unlink, rename, RENAME_NOREPLACE, rmdir, symlink; attributes right at once through every name', async (t) => {
  const r = await vaultRig(t);
  const created = await ok(t, r.call(OP.CREATE, 1, [u32(0o101), u32(0o100644), u32(0), u32(0), cstr('a')]), 'create');
  const a = entryOf(created.body);
  await ok(t, r.call(OP.RELEASE, a.nodeid, [u64(Number(created.body.readBigUInt64LE(128))), u32(0), u32(0), u64(0)]), 'release');
  const linked = entryOf((await ok(t, r.call(OP.LINK, 1, [u64(a.nodeid), cstr('b')]), 'link')).body);
  t.is(linked.nodeid, a.nodeid, 'one node for both names');
  t.is(linked.attr.nlink, 2, 'the link count in the reply that made it');
  t.is(attrAt((await ok(t, r.call(OP.GETATTR, a.nodeid, [Buffer.alloc(16)]), 'getattr a')).body, 16).nlink, 2);
  await ok(t, r.call(OP.RENAME, 1, [u64(1), cstr('b'), cstr('c')]), 'rename');
  t.is(entryOf((await ok(t, r.call(OP.LOOKUP, 1, [cstr('b')]), 'lookup b')).body).nodeid, 0);
  const exists = await r.call(OP.RENAME2, 1, [u64(1), u32(1), u32(0), cstr('c'), cstr('a')]);
  t.is(exists?.error, err('EEXIST'), 'RENAME_NOREPLACE onto a name that exists');
  t.is((await r.call(OP.RENAME2, 1, [u64(1), u32(2), u32(0), cstr('c'), cstr('a')]))?.error, err('EINVAL'), 'RENAME_EXCHANGE is not supported');
  await ok(t, r.call(OP.UNLINK, 1, [cstr('c')]), 'unlink');
  t.is(attrAt((await ok(t, r.call(OP.GETATTR, a.nodeid, [Buffer.alloc(16)]), 'getattr a')).body, 16).nlink, 1);
  const d = entryOf((await ok(t, r.call(OP.MKDIR, 1, [u32(0o755), u32(0), cstr('d')]), 'mkdir')).body);
  await ok(t, r.call(OP.RENAME, 1, [u64(d.nodeid), cstr('a'), cstr('moved')]), 'rename into d');
  t.is((await r.call(OP.RMDIR, 1, [cstr('d')]))?.error, err('ENOTEMPTY'));
  const sl = entryOf((await ok(t, r.call(OP.SYMLINK, 1, [cstr('s'), cstr('d/moved')]), 'symlink')).body);
  t.is((await ok(t, r.call(OP.READLINK, sl.nodeid), 'readlink')).body.toString(), 'd/moved');
  t.is((await r.call(OP.UNLINK, 1, [cstr('d')]))?.error, err('EISDIR'));
  const fifo = entryOf((await ok(t, r.call(OP.MKNOD, 1, [u32(0o010644), u32(0), u32(0), u32(0), cstr('fifo')]), 'mknod of a FIFO')).body);
  t.is(attrAt((await ok(t, r.call(OP.GETATTR, fifo.nodeid, [Buffer.alloc(16)]), 'getattr fifo')).body, 16).mode, 0o010644);
  const dev = entryOf((await ok(t, r.call(OP.MKNOD, 1, [u32(0o020600), u32((1 << 8) | 3), u32(0), u32(0), cstr('null')]), 'mknod of a device')).body);
  t.is(attrAt((await ok(t, r.call(OP.GETATTR, dev.nodeid, [Buffer.alloc(16)]), 'getattr null')).body, 16).rdev, (1 << 8) | 3);
  t.is((await r.call(OP.LOOKUP, 1, [Buffer.from([0xff, 0xfe, 0])]))?.error, err('EILSEQ'), 'names that are not UTF-8');
  t.is((await r.call(OP.GETATTR, 987654, [Buffer.alloc(16)]))?.error, err('ENOENT'), 'a node the kernel never looked up');
});

test('through the vault: xattrs with the size protocol; ACLs and capabilities refused', async (t) => {
  const r = await vaultRig(t);
  const f = entryOf((await ok(t, r.call(OP.MKDIR, 1, [u32(0o755), u32(0), cstr('x')]), 'mkdir')).body);
  await ok(t, r.call(OP.SETXATTR, f.nodeid, [u32(5), u32(0), cstr('user.k'), Buffer.from('value')]), 'setxattr');
  t.is((await ok(t, r.call(OP.GETXATTR, f.nodeid, [u32(0), u32(0), cstr('user.k')]), 'size query')).body.readUInt32LE(0), 5);
  t.is((await r.call(OP.GETXATTR, f.nodeid, [u32(2), u32(0), cstr('user.k')]))?.error, err('ERANGE'));
  t.is((await ok(t, r.call(OP.GETXATTR, f.nodeid, [u32(64), u32(0), cstr('user.k')]), 'get')).body.toString(), 'value');
  t.is((await ok(t, r.call(OP.LISTXATTR, f.nodeid, [u32(64), u32(0)]), 'list')).body.toString(), 'user.k\0');
  t.is((await r.call(OP.GETXATTR, f.nodeid, [u32(64), u32(0), cstr('security.capability')]))?.error, err('ENODATA'));
  t.is((await r.call(OP.SETXATTR, f.nodeid, [u32(1), u32(0), cstr('system.posix_acl_access'), Buffer.from('x')]))?.error, err('ENOTSUP'));
  await ok(t, r.call(OP.REMOVEXATTR, f.nodeid, [cstr('user.k')]), 'removexattr');
  t.is((await r.call(OP.GETXATTR, f.nodeid, [u32(64), u32(0), cstr('user.k')]))?.error, err('ENODATA'));
});

test('through the vault: setuid and setgid cleared on a write the kernel marks, and on chown; kept otherwise', async (t) => {
  const r = await vaultRig(t);
  const created = await ok(t, r.call(OP.CREATE, 1, [u32(0o101), u32(0o106755), u32(0), u32(0), cstr('suid')]), 'create');
  const f = entryOf(created.body);
  const fh = Number(created.body.readBigUInt64LE(128));
  const mode = async (): Promise<number> => attrAt((await ok(t, r.call(OP.GETATTR, f.nodeid, [Buffer.alloc(16)]), 'getattr')).body, 16).mode & 0o7777;
  t.is(await mode(), 0o6755);
  await ok(t, r.call(OP.WRITE, f.nodeid, [ioArgs(fh, 0, 1), Buffer.from('x')]), 'a write by root');
  t.is(await mode(), 0o6755, 'a write the kernel does not mark keeps the bits');
  await ok(t, r.call(OP.WRITE, f.nodeid, [ioArgs(fh, 1, 1, 4 /* FUSE_WRITE_KILL_SUIDGID */), Buffer.from('y')]), 'a write by another user');
  t.is(await mode(), 0o0755);
  await ok(t, r.call(OP.SETATTR, f.nodeid, [setattrArgs({ valid: 1, mode: 0o6755 })]), 'chmod back');
  // The kernel marks a chown of anything but a directory with FATTR_KILL_SUIDGID (1 << 11), as chown(2)
  // clears the bits on Linux; the caller's privilege is then its uid (0 here: group-executable setgid
  // and setuid go, as for anyone).
  await ok(t, r.call(OP.SETATTR, f.nodeid, [setattrArgs({ valid: 2 | 4 | (1 << 11), uid: 5, gid: 5 })]), 'chown');
  t.is(await mode(), 0o0755, 'chown of a regular file clears them');
  await ok(t, r.call(OP.RELEASE, f.nodeid, [u64(fh), u32(0), u32(0), u64(0)]), 'release');
});

test('a read-only mount refuses changes with EROFS and still reads', async (t) => {
  const v = await tempVault2(t);
  const made = v.paths.create('/f', 0o644, 0, 0);
  await v.write(made, Buffer.from('kept'), 0);
  await v.release(made);
  const r = rig(inodeOps(v, { readOnly: true, log: () => undefined }));
  await init(r);
  const f = entryOf((await ok(t, r.call(OP.LOOKUP, 1, [cstr('f')]), 'lookup')).body);
  t.is((await r.call(OP.MKDIR, 1, [u32(0o755), u32(0), cstr('d')]))?.error, err('EROFS'));
  t.is((await r.call(OP.OPEN, f.nodeid, [u32(1), u32(0)]))?.error, err('EROFS'), 'open for writing');
  const opened = await ok(t, r.call(OP.OPEN, f.nodeid, [u32(0), u32(0)]), 'open for reading');
  const fh = Number(opened.body.readBigUInt64LE(0));
  t.is((await ok(t, r.call(OP.READ, f.nodeid, [ioArgs(fh, 0, 10)]), 'read')).body.toString(), 'kept');
});
