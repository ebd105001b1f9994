// Unit tests of the FUSE kernel protocol codec (fs/kernel/protocol.ts): hand-built requests, exact reply bytes, fuzz. No mount.
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import {
  ATTR_OUT_SIZE,
  ATTR_SIZE,
  type Attr,
  DirentPlusWriter,
  DirentWriter,
  decodeName,
  direntPlusSize,
  direntSize,
  direntType,
  ENTRY_OUT_SIZE,
  type Entry,
  FATTR_ATIME,
  FATTR_LOCKOWNER,
  FATTR_MTIME,
  FATTR_SIZE,
  FUSE_ACCESS,
  FUSE_ASYNC_READ,
  FUSE_BATCH_FORGET,
  FUSE_BMAP,
  FUSE_COPY_FILE_RANGE,
  FUSE_CREATE,
  FUSE_DESTROY,
  FUSE_DO_READDIRPLUS,
  FUSE_FALLOCATE,
  FUSE_FLUSH,
  FUSE_FORGET,
  FUSE_FSYNC,
  FUSE_FSYNCDIR,
  FUSE_GETATTR,
  FUSE_GETATTR_FH,
  FUSE_GETLK,
  FUSE_GETXATTR,
  FUSE_HANDLE_KILLPRIV_V2,
  FUSE_HAS_EXPIRE_ONLY,
  FUSE_INIT,
  FUSE_INIT_EXT,
  FUSE_INTERRUPT,
  FUSE_LINK,
  FUSE_LISTXATTR,
  FUSE_LOOKUP,
  FUSE_LSEEK,
  FUSE_MAX_PAGES,
  FUSE_MKDIR,
  FUSE_MKNOD,
  FUSE_NOTIFY_DELETE,
  FUSE_NOTIFY_INVAL_ENTRY,
  FUSE_NOTIFY_INVAL_INODE,
  FUSE_OPEN,
  FUSE_OPENDIR,
  FUSE_POLL,
  FUSE_READ,
  FUSE_READ_LOCKOWNER,
  FUSE_READDIR,
  FUSE_READDIRPLUS,
  FUSE_READLINK,
  FUSE_RELEASE,
  FUSE_RELEASE_FLUSH,
  FUSE_RELEASEDIR,
  FUSE_REMOVEXATTR,
  FUSE_RENAME,
  FUSE_RENAME2,
  FUSE_RMDIR,
  FUSE_SECURITY_CTX,
  FUSE_SETATTR,
  FUSE_SETXATTR,
  FUSE_SETXATTR_EXT,
  FUSE_STATFS,
  FUSE_STATX,
  FUSE_SYMLINK,
  FUSE_SYNCFS,
  FUSE_TMPFILE,
  FUSE_UNLINK,
  FUSE_WRITE,
  FUSE_WRITE_CACHE,
  FUSE_WRITE_LOCKOWNER,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  OPEN_OUT_SIZE,
  ProtocolError,
  RENAME_NOREPLACE,
  type Request,
  SEEK_DATA,
  STATFS_OUT_SIZE,
  XATTR_CREATE,
  notifyDelete,
  notifyInvalEntry,
  notifyInvalInode,
  parseRequest,
  replyAttr,
  replyCreate,
  replyData,
  replyEmpty,
  replyEntry,
  replyError,
  replyInit,
  replyLseek,
  replyOpen,
  replyStatfs,
  replyWrite,
  replyXattrSize,
  requestExtensions,
  timeToMs,
} from '../../fs/kernel/protocol.js';

// ---------------------------------------------------------------------------------------------------
// Request building

/** Above 2^53 on purpose: unique must survive as a bigint. */
const UNIQUE = 0xfedcba9876543210n;
const NODE = 0x12345678;

const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(n)));
  return b;
};
const cstr = (s: string | Buffer): Buffer => Buffer.concat([typeof s === 'string' ? Buffer.from(s) : s, Buffer.alloc(1)]);

interface HeaderOpts {
  unique?: bigint;
  nodeid?: number | bigint;
  /** Extension area appended after the arguments; its length / 8 goes into total_extlen. */
  ext?: Buffer;
  /** Overrides the len field. */
  len?: number;
}

/** fuse_in_header followed by the argument parts (and an optional extension area). */
function request(opcode: number, args: Buffer[], o: HeaderOpts = {}): Buffer {
  const ext = o.ext ?? Buffer.alloc(0);
  const body = Buffer.concat(args);
  const h = Buffer.concat([
    u32(o.len ?? 40 + body.length + ext.length),
    u32(opcode),
    u64(o.unique ?? UNIQUE),
    u64(o.nodeid ?? NODE),
    u32(1000), // uid
    u32(1001), // gid
    u32(4242), // pid
    u16(ext.length / 8),
    u16(0),
  ]);
  return Buffer.concat([h, body, ext]);
}

function parse(buf: Buffer, minor?: number, setxattrExt?: boolean): Request {
  return parseRequest(buf, buf.length, minor, setxattrExt);
}

/** Checks and narrows the parsed op. */
function expectOp<T extends Request['op']>(t: ExecutionContext, r: Request, op: T): Request & { op: T } {
  t.is(r.op, op);
  if (r.op !== op) throw new Error(`expected ${op}, got ${r.op}`);
  return r as Request & { op: T };
}

function expectProtocolError(t: ExecutionContext, fn: () => unknown, errno?: number, label = ''): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof ProtocolError)) {
    t.fail(`${label}: expected ProtocolError, got ${caught === undefined ? 'no error' : String(caught)}`);
    throw new Error('no ProtocolError');
  }
  t.true(caught.errno === EIO || caught.errno === EINVAL);
  if (errno !== undefined) t.is(caught.errno, errno);
  return caught;
}

const EIO = 5;
const EINVAL = 22;

// ---------------------------------------------------------------------------------------------------
// Header

test('header fields: len, opcode, unique as bigint, nodeid, uid, gid, pid', (t) => {
  const r = parse(request(FUSE_READLINK, []));
  const h = expectOp(t, r, 'readlink').header;
  t.deepEqual(h, { len: 40, opcode: FUSE_READLINK, unique: UNIQUE, nodeid: NODE, uid: 1000, gid: 1001, pid: 4242, totalExtlen: 0 });
});

test('nodeid up to 2^53-1 is accepted, above is refused with EINVAL and the unique', (t) => {
  const max = 2 ** 53 - 1;
  t.is(parse(request(FUSE_STATFS, [], { nodeid: max })).header.nodeid, max);
  const err = expectProtocolError(t, () => parse(request(FUSE_STATFS, [], { nodeid: 2n ** 53n })), EINVAL);
  t.is(err.unique, UNIQUE);
  expectProtocolError(t, () => parse(request(FUSE_STATFS, [], { nodeid: 2n ** 64n - 1n })), EINVAL);
});

test('len field disagreeing with the bytes read is EIO carrying the unique', (t) => {
  for (const len of [0, 39, 41, 48, 0xffffffff]) {
    const buf = request(FUSE_LOOKUP, [cstr('name')], { len });
    const err = expectProtocolError(t, () => parse(buf), EIO);
    t.is(err.unique, UNIQUE);
    t.is(err.opcode, FUSE_LOOKUP);
  }
});

test('length beyond the buffer, negative, fractional or NaN is a ProtocolError', (t) => {
  const buf = request(FUSE_STATFS, []);
  for (const len of [buf.length + 1, -1, 40.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    expectProtocolError(t, () => parseRequest(buf, len));
  }
});

test('a request inside a larger buffer parses; a name whose NUL lies past the request is refused', (t) => {
  const req = request(FUSE_LOOKUP, [cstr('abc')]);
  const big = Buffer.alloc(4096, 0xff);
  req.copy(big);
  t.is(decodeName(expectOp(t, parseRequest(big, req.length), 'lookup').name), 'abc');
  // Same request without its NUL; the stale bytes after it hold a 0 further on
  const noNul = request(FUSE_LOOKUP, [Buffer.from('abc')]);
  const big2 = Buffer.alloc(4096, 0x61);
  noNul.copy(big2);
  big2[noNul.length + 10] = 0;
  expectProtocolError(t, () => parseRequest(big2, noNul.length), EINVAL);
});

test('total_extlen (7.38): the extension area is cut off the arguments and available separately', (t) => {
  const ext = Buffer.from([16, 0, 0, 0, 1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0]);
  const buf = request(FUSE_MKDIR, [u32(0o755), u32(0o022), cstr('dir')], { ext });
  const r = expectOp(t, parse(buf), 'mkdir');
  t.is(r.header.totalExtlen, 2);
  t.is(r.name.toString(), 'dir');
  t.deepEqual(requestExtensions(buf, r.header), ext);
  // Before 7.38 the field was padding and is ignored
  const old = expectOp(t, parse(buf, 37), 'mkdir');
  t.is(old.header.totalExtlen, 0);
  t.deepEqual(requestExtensions(buf, old.header).length, 0);
});

test('total_extlen larger than the request is EINVAL', (t) => {
  const buf = request(FUSE_STATFS, [Buffer.alloc(8)]);
  buf.writeUInt16LE(2, 36); // 16 bytes of extensions, only 8 present
  expectProtocolError(t, () => parse(buf), EINVAL);
});

// ---------------------------------------------------------------------------------------------------
// Each opcode

test('lookup, unlink, rmdir, removexattr: one name, as a view of the buffer', (t) => {
  for (const [opcode, op] of [
    [FUSE_LOOKUP, 'lookup'],
    [FUSE_UNLINK, 'unlink'],
    [FUSE_RMDIR, 'rmdir'],
    [FUSE_REMOVEXATTR, 'removexattr'],
  ] as const) {
    const buf = request(opcode, [cstr('hello.txt')]);
    const r = expectOp(t, parse(buf), op);
    t.is(r.name.toString(), 'hello.txt');
    t.is(r.name.buffer, buf.buffer);
    t.is(r.name.byteOffset, buf.byteOffset + 40);
  }
});

test('names are bytes: non-UTF-8 names survive, decodeName refuses to decode them lossily', (t) => {
  const raw = Buffer.from([0x66, 0xff, 0xfe, 0x6f]);
  const r = expectOp(t, parse(request(FUSE_LOOKUP, [cstr(raw)])), 'lookup');
  t.deepEqual(Buffer.from(r.name), raw);
  t.is(decodeName(r.name), undefined);
  t.is(decodeName(Buffer.from('żółw 🐢')), 'żółw 🐢');
  t.is(decodeName(Buffer.alloc(0)), '');
});

test('empty name region or a name without NUL is EINVAL', (t) => {
  expectProtocolError(t, () => parse(request(FUSE_LOOKUP, [])), EINVAL);
  expectProtocolError(t, () => parse(request(FUSE_LOOKUP, [Buffer.from('abc')])), EINVAL);
  expectProtocolError(t, () => parse(request(FUSE_RENAME, [u64(7), cstr('a'), Buffer.from('b')])), EINVAL);
  expectProtocolError(t, () => parse(request(FUSE_SYMLINK, [cstr('a')])), EINVAL);
});

test('forget', (t) => {
  const r = expectOp(t, parse(request(FUSE_FORGET, [u64(17)])), 'forget');
  t.is(r.nlookup, 17);
  t.is(r.header.nodeid, NODE);
});

test('batch_forget', (t) => {
  const buf = request(FUSE_BATCH_FORGET, [u32(3), u32(0), u64(2), u64(1), u64(3), u64(5), u64(2 ** 40), u64(9)], { nodeid: 0 });
  const r = expectOp(t, parse(buf), 'batch_forget');
  t.deepEqual(r.items, [
    { nodeid: 2, nlookup: 1 },
    { nodeid: 3, nlookup: 5 },
    { nodeid: 2 ** 40, nlookup: 9 },
  ]);
  // A count larger than the entries present
  expectProtocolError(t, () => parse(request(FUSE_BATCH_FORGET, [u32(3), u32(0), u64(2), u64(1)])), EINVAL);
  // An empty batch
  t.deepEqual(expectOp(t, parse(request(FUSE_BATCH_FORGET, [u32(0), u32(0)])), 'batch_forget').items, []);
});

test('getattr: flags and fh; before 7.9 there are no arguments', (t) => {
  const r = expectOp(t, parse(request(FUSE_GETATTR, [u32(FUSE_GETATTR_FH), u32(0), u64(99)])), 'getattr');
  t.is(r.getattrFlags, FUSE_GETATTR_FH);
  t.is(r.fh, 99);
  const old = expectOp(t, parse(request(FUSE_GETATTR, []), 8), 'getattr');
  t.is(old.getattrFlags, 0);
  t.is(old.fh, 0);
  expectProtocolError(t, () => parse(request(FUSE_GETATTR, [])), EINVAL);
});

function setattrIn(valid: number, lockOwner: bigint, atime: number): Buffer {
  return Buffer.concat([
    u32(valid),
    u32(0),
    u64(77), // fh
    u64(2 ** 40 + 3), // size
    u64(lockOwner),
    u64(BigInt(atime)), // atime, signed
    u64(1_700_000_000), // mtime
    u64(1_700_000_001), // ctime
    u32(123), // atimensec
    u32(456), // mtimensec
    u32(789), // ctimensec
    u32(0o100644), // mode
    u32(0), // unused4
    u32(1000), // uid
    u32(1001), // gid
    u32(0), // unused5
  ]);
}

test('setattr: every field at its offset, negative times, lock owner only with FATTR_LOCKOWNER', (t) => {
  const valid = FATTR_SIZE | FATTR_ATIME | FATTR_MTIME | FATTR_LOCKOWNER;
  const arg = setattrIn(valid, 0xdeadbeefcafebaben, -86_401);
  t.is(arg.length, 88);
  const r = expectOp(t, parse(request(FUSE_SETATTR, [arg])), 'setattr');
  t.like(r, {
    valid,
    fh: 77,
    size: 2 ** 40 + 3,
    lockOwner: 0xdeadbeefcafebaben,
    atime: -86_401,
    mtime: 1_700_000_000,
    ctime: 1_700_000_001,
    atimensec: 123,
    mtimensec: 456,
    ctimensec: 789,
    mode: 0o100644,
    uid: 1000,
    gid: 1001,
  });
  t.is(timeToMs(r.atime, r.atimensec), -86_401_000 + 0.000123);
  const noOwner = expectOp(t, parse(request(FUSE_SETATTR, [setattrIn(FATTR_SIZE, 0x1234n, 0)])), 'setattr');
  t.is(noOwner.lockOwner, 0n);
});

test('readlink, statfs, destroy: no arguments; syncfs: its 8-byte padding struct', (t) => {
  expectOp(t, parse(request(FUSE_READLINK, [])), 'readlink');
  expectOp(t, parse(request(FUSE_STATFS, [])), 'statfs');
  expectOp(t, parse(request(FUSE_DESTROY, [], { nodeid: 0 })), 'destroy');
  expectOp(t, parse(request(FUSE_SYNCFS, [u64(0)])), 'syncfs');
});

test('symlink: entry name first, then target', (t) => {
  const r = expectOp(t, parse(request(FUSE_SYMLINK, [cstr('link'), cstr('../some/target')])), 'symlink');
  t.is(r.name.toString(), 'link');
  t.is(r.target.toString(), '../some/target');
});

test('mknod: 16-byte struct with umask since 7.12, 8 bytes before', (t) => {
  const r = expectOp(t, parse(request(FUSE_MKNOD, [u32(0o020644), u32(0x0801), u32(0o022), u32(0), cstr('dev')])), 'mknod');
  t.like(r, { mode: 0o020644, rdev: 0x0801, umask: 0o022 });
  t.is(r.name.toString(), 'dev');
  const old = expectOp(t, parse(request(FUSE_MKNOD, [u32(0o010600), u32(0), cstr('fifo')]), 11), 'mknod');
  t.like(old, { mode: 0o010600, rdev: 0, umask: 0 });
  t.is(old.name.toString(), 'fifo');
});

test('mkdir: mode, umask, name', (t) => {
  const r = expectOp(t, parse(request(FUSE_MKDIR, [u32(0o40755), u32(0o027), cstr('sub')])), 'mkdir');
  t.like(r, { mode: 0o40755, umask: 0o027 });
  t.is(r.name.toString(), 'sub');
});

test('rename and rename2', (t) => {
  const r1 = expectOp(t, parse(request(FUSE_RENAME, [u64(42), cstr('old'), cstr('new')])), 'rename');
  t.like(r1, { newdir: 42, flags: 0 });
  t.is(r1.oldName.toString(), 'old');
  t.is(r1.newName.toString(), 'new');
  const r2 = expectOp(t, parse(request(FUSE_RENAME2, [u64(43), u32(RENAME_NOREPLACE), u32(0), cstr('a'), cstr('bb')])), 'rename2');
  t.like(r2, { newdir: 43, flags: RENAME_NOREPLACE });
  t.is(r2.oldName.toString(), 'a');
  t.is(r2.newName.toString(), 'bb');
});

test('link: old node id and the new name', (t) => {
  const r = expectOp(t, parse(request(FUSE_LINK, [u64(11), cstr('hard')])), 'link');
  t.is(r.oldNodeid, 11);
  t.is(r.name.toString(), 'hard');
});

test('open and opendir', (t) => {
  const r = expectOp(t, parse(request(FUSE_OPEN, [u32(0o100002), u32(1)])), 'open');
  t.like(r, { flags: 0o100002, openFlags: 1 });
  expectOp(t, parse(request(FUSE_OPENDIR, [u32(0o200000), u32(0)])), 'opendir');
});

test('create and tmpfile: flags, mode, umask, open_flags, name; 7.11 layout without umask', (t) => {
  const args = [u32(0o100101), u32(0o100644), u32(0o022), u32(0), cstr('new.txt')];
  const r = expectOp(t, parse(request(FUSE_CREATE, args)), 'create');
  t.like(r, { flags: 0o100101, mode: 0o100644, umask: 0o022, openFlags: 0 });
  t.is(r.name.toString(), 'new.txt');
  t.is(expectOp(t, parse(request(FUSE_TMPFILE, args)), 'tmpfile').name.toString(), 'new.txt');
  const old = expectOp(t, parse(request(FUSE_CREATE, [u32(2), u32(0o100600), cstr('x')]), 11), 'create');
  t.like(old, { flags: 2, mode: 0o100600, umask: 0, openFlags: 0 });
  t.is(old.name.toString(), 'x');
});

function readIn(readFlags: number, lockOwner: bigint): Buffer {
  return Buffer.concat([u64(5), u64(2 ** 33 + 1), u32(131072), u32(readFlags), u64(lockOwner), u32(0o100000), u32(0)]);
}

test('read, readdir, readdirplus: 40-byte fuse_read_in; 24 bytes before 7.9', (t) => {
  const r = expectOp(t, parse(request(FUSE_READ, [readIn(FUSE_READ_LOCKOWNER, 0x8000000000000001n)])), 'read');
  t.like(r, { fh: 5, offset: 2 ** 33 + 1, size: 131072, readFlags: FUSE_READ_LOCKOWNER, lockOwner: 0x8000000000000001n, flags: 0o100000 });
  const noOwner = expectOp(t, parse(request(FUSE_READ, [readIn(0, 0x55n)])), 'read');
  t.is(noOwner.lockOwner, 0n);
  t.like(expectOp(t, parse(request(FUSE_READDIR, [readIn(0, 0n)])), 'readdir'), { fh: 5, size: 131072 });
  t.like(expectOp(t, parse(request(FUSE_READDIRPLUS, [readIn(0, 0n)])), 'readdirplus'), { fh: 5, size: 131072 });
  const old = expectOp(t, parse(request(FUSE_READ, [readIn(0, 0n).subarray(0, 24)]), 8), 'read');
  t.like(old, { fh: 5, offset: 2 ** 33 + 1, size: 131072, flags: 0, lockOwner: 0n });
  expectProtocolError(t, () => parse(request(FUSE_READ, [readIn(0, 0n).subarray(0, 24)])), EINVAL);
});

function writeIn(size: number, writeFlags: number, lockOwner: bigint): Buffer {
  return Buffer.concat([u64(6), u64(4096), u32(size), u32(writeFlags), u64(lockOwner), u32(0o100001), u32(0)]);
}

test('write: fields, data is a view of the read buffer (no copy)', (t) => {
  const data = Buffer.from('some bytes\0with a NUL');
  const buf = request(FUSE_WRITE, [writeIn(data.length, FUSE_WRITE_LOCKOWNER | FUSE_WRITE_CACHE, 0x77n), data]);
  const r = expectOp(t, parse(buf), 'write');
  t.like(r, { fh: 6, offset: 4096, size: data.length, writeFlags: FUSE_WRITE_LOCKOWNER | FUSE_WRITE_CACHE, lockOwner: 0x77n, flags: 0o100001 });
  t.deepEqual(Buffer.from(r.data), data);
  t.is(r.data.buffer, buf.buffer);
  buf[80] = 0x53; // the data starts at 40 + 40
  t.is(r.data[0], 0x53);
  const empty = expectOp(t, parse(request(FUSE_WRITE, [writeIn(0, 0, 0n)])), 'write');
  t.is(empty.data.length, 0);
});

test('write: before 7.9 the struct is 24 bytes', (t) => {
  const data = Buffer.from('xyz');
  const r = expectOp(t, parse(request(FUSE_WRITE, [writeIn(3, 0, 0n).subarray(0, 24), data]), 8), 'write');
  t.like(r, { fh: 6, offset: 4096, size: 3, flags: 0, lockOwner: 0n });
  t.is(r.data.toString(), 'xyz');
});

test('write: data length disagreeing with size is EINVAL', (t) => {
  expectProtocolError(t, () => parse(request(FUSE_WRITE, [writeIn(5, 0, 0n), Buffer.from('abcd')])), EINVAL);
  expectProtocolError(t, () => parse(request(FUSE_WRITE, [writeIn(3, 0, 0n), Buffer.from('abcd')])), EINVAL);
});

test('release and releasedir', (t) => {
  const args = [u64(8), u32(0o100002), u32(FUSE_RELEASE_FLUSH), u64(0xabcn)];
  t.like(expectOp(t, parse(request(FUSE_RELEASE, args)), 'release'), { fh: 8, flags: 0o100002, releaseFlags: FUSE_RELEASE_FLUSH, lockOwner: 0xabcn });
  t.like(expectOp(t, parse(request(FUSE_RELEASEDIR, args)), 'releasedir'), { fh: 8 });
  // Before 7.8: no lock_owner
  t.like(expectOp(t, parse(request(FUSE_RELEASE, args.slice(0, 3)), 7), 'release'), { fh: 8, releaseFlags: FUSE_RELEASE_FLUSH, lockOwner: 0n });
  expectProtocolError(t, () => parse(request(FUSE_RELEASE, args.slice(0, 3))), EINVAL);
});

test('flush', (t) => {
  t.like(expectOp(t, parse(request(FUSE_FLUSH, [u64(9), u32(0), u32(0), u64(0xffffffffffffffffn)])), 'flush'), {
    fh: 9,
    lockOwner: 0xffffffffffffffffn,
  });
});

test('fsync and fsyncdir', (t) => {
  t.like(expectOp(t, parse(request(FUSE_FSYNC, [u64(10), u32(1), u32(0)])), 'fsync'), { fh: 10, fsyncFlags: 1 });
  t.like(expectOp(t, parse(request(FUSE_FSYNCDIR, [u64(11), u32(0), u32(0)])), 'fsyncdir'), { fh: 11, fsyncFlags: 0 });
});

test('setxattr: 8-byte struct by default, 16 with FUSE_SETXATTR_EXT', (t) => {
  const value = Buffer.from([1, 0, 2, 0, 3]);
  const r = expectOp(t, parse(request(FUSE_SETXATTR, [u32(value.length), u32(XATTR_CREATE), cstr('user.k'), value])), 'setxattr');
  t.like(r, { size: 5, flags: XATTR_CREATE, setxattrFlags: 0 });
  t.is(r.name.toString(), 'user.k');
  t.deepEqual(Buffer.from(r.value), value);
  const ext = [u32(value.length), u32(0), u32(1), u32(0), cstr('system.posix_acl_access'), value];
  const rx = expectOp(t, parse(request(FUSE_SETXATTR, ext), 38, true), 'setxattr');
  t.like(rx, { size: 5, flags: 0, setxattrFlags: 1 });
  t.is(rx.name.toString(), 'system.posix_acl_access');
  t.deepEqual(Buffer.from(rx.value), value);
  // The extended layout parsed as the short one (a wrong negotiation flag) is caught, not misread
  expectProtocolError(t, () => parse(request(FUSE_SETXATTR, ext), 38, false), EINVAL);
  // Empty value
  const e = expectOp(t, parse(request(FUSE_SETXATTR, [u32(0), u32(0), cstr('user.e')])), 'setxattr');
  t.is(e.value.length, 0);
});

test('setxattr: value shorter or longer than size is EINVAL', (t) => {
  expectProtocolError(t, () => parse(request(FUSE_SETXATTR, [u32(4), u32(0), cstr('user.k'), Buffer.from('abc')])), EINVAL);
  expectProtocolError(t, () => parse(request(FUSE_SETXATTR, [u32(2), u32(0), cstr('user.k'), Buffer.from('abc')])), EINVAL);
});

test('getxattr and listxattr', (t) => {
  const g = expectOp(t, parse(request(FUSE_GETXATTR, [u32(0), u32(0), cstr('user.k')])), 'getxattr');
  t.is(g.size, 0);
  t.is(g.name.toString(), 'user.k');
  t.is(expectOp(t, parse(request(FUSE_LISTXATTR, [u32(4096), u32(0)])), 'listxattr').size, 4096);
});

function initIn(minor: number, flags: number, flags2: number): Buffer {
  return Buffer.concat([u32(7), u32(minor), u32(131072), u32(flags), u32(flags2), Buffer.alloc(44)]);
}

test('init 7.38: 64-bit flags when FUSE_INIT_EXT is set', (t) => {
  const lo = Number(FUSE_ASYNC_READ | FUSE_INIT_EXT | FUSE_SETXATTR_EXT | FUSE_MAX_PAGES);
  const r = expectOp(t, parse(request(FUSE_INIT, [initIn(38, lo, 0b1011)], { nodeid: 0 })), 'init');
  t.like(r, { major: 7, minor: 38, maxReadahead: 131072 });
  t.is(r.flags, BigInt(lo) | (0b1011n << 32n));
  t.truthy(r.flags & FUSE_SECURITY_CTX);
  t.truthy(r.flags & FUSE_HAS_EXPIRE_ONLY);
});

test('init: flags2 ignored without FUSE_INIT_EXT', (t) => {
  const r = expectOp(t, parse(request(FUSE_INIT, [initIn(38, 1, 0xffff)])), 'init');
  t.is(r.flags, 1n);
});

test('init from a newer kernel (minor 44) and an older one (16-byte struct); negotiated minor does not matter', (t) => {
  const r = expectOp(t, parse(request(FUSE_INIT, [initIn(44, 0, 0)]), 5), 'init');
  t.is(r.minor, 44);
  const old = expectOp(t, parse(request(FUSE_INIT, [initIn(26, 0x1234, 0).subarray(0, 16)])), 'init');
  t.like(old, { minor: 26, maxReadahead: 131072, flags: 0x1234n });
  // 7.36+ must send the full 64 bytes
  expectProtocolError(t, () => parse(request(FUSE_INIT, [initIn(38, 0, 0).subarray(0, 16)])), EINVAL);
});

test('init with another major: only major/minor are read, the session answers with its own', (t) => {
  const r = expectOp(t, parse(request(FUSE_INIT, [u32(8), u32(1)])), 'init');
  t.like(r, { major: 8, minor: 1, maxReadahead: 0, flags: 0n });
});

test('access', (t) => {
  t.is(expectOp(t, parse(request(FUSE_ACCESS, [u32(4), u32(0)])), 'access').mask, 4);
});

test('interrupt: the target unique as bigint', (t) => {
  t.is(expectOp(t, parse(request(FUSE_INTERRUPT, [u64(0x8000000000000002n)], { nodeid: 0 })), 'interrupt').targetUnique, 0x8000000000000002n);
});

test('fallocate', (t) => {
  const r = expectOp(t, parse(request(FUSE_FALLOCATE, [u64(3), u64(100), u64(2 ** 32), u32(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), u32(0)])), 'fallocate');
  t.like(r, { fh: 3, offset: 100, length: 2 ** 32, mode: FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE });
});

test('lseek: the offset is signed', (t) => {
  t.like(expectOp(t, parse(request(FUSE_LSEEK, [u64(3), u64(12345), u32(SEEK_DATA), u32(0)])), 'lseek'), { fh: 3, offset: 12345, whence: SEEK_DATA });
  t.is(expectOp(t, parse(request(FUSE_LSEEK, [u64(3), u64(-5n), u32(SEEK_DATA), u32(0)])), 'lseek').offset, -5);
});

test('copy_file_range', (t) => {
  const r = expectOp(t, parse(request(FUSE_COPY_FILE_RANGE, [u64(1), u64(10), u64(77), u64(2), u64(20), u64(2 ** 40), u64(0)])), 'copy_file_range');
  t.like(r, { fhIn: 1, offIn: 10, nodeidOut: 77, fhOut: 2, offOut: 20, len: 2 ** 40, flags: 0 });
});

test('offsets above 2^53 arrive as large (inexact) numbers; ids above 2^53 are refused', (t) => {
  const r = expectOp(t, parse(request(FUSE_LSEEK, [u64(3), u64(2n ** 62n + 1n), u32(SEEK_DATA), u32(0)])), 'lseek');
  t.true(r.offset >= 2 ** 53);
  expectProtocolError(t, () => parse(request(FUSE_LSEEK, [u64(2n ** 53n), u64(0), u32(SEEK_DATA), u32(0)])), EINVAL);
  expectProtocolError(t, () => parse(request(FUSE_FORGET, [u64(2n ** 60n)])), EINVAL);
});

test('unknown opcodes parse as unknown (locks, poll, bmap, statx, anything else)', (t) => {
  for (const opcode of [FUSE_GETLK, FUSE_POLL, FUSE_BMAP, FUSE_STATX, 7, 19, 999, 0]) {
    const r = expectOp(t, parse(request(opcode, [u64(1)])), 'unknown');
    t.is(r.opcode, opcode);
    t.is(r.header.unique, UNIQUE);
  }
});

// ---------------------------------------------------------------------------------------------------
// Truncation

interface Sample {
  name: string;
  buf: Buffer;
  minor?: number;
  ext?: boolean;
}

/** One well-formed request per parsed opcode with arguments: every truncation of these must be refused. */
function samples(): Sample[] {
  const s = (name: string, buf: Buffer, minor?: number, ext?: boolean): Sample => ({ name, buf, minor, ext });
  return [
    s('lookup', request(FUSE_LOOKUP, [cstr('name')])),
    s('unlink', request(FUSE_UNLINK, [cstr('n')])),
    s('rmdir', request(FUSE_RMDIR, [cstr('dd')])),
    s('removexattr', request(FUSE_REMOVEXATTR, [cstr('user.x')])),
    s('forget', request(FUSE_FORGET, [u64(1)])),
    s('batch_forget', request(FUSE_BATCH_FORGET, [u32(2), u32(0), u64(2), u64(1), u64(3), u64(1)])),
    s('getattr', request(FUSE_GETATTR, [u32(0), u32(0), u64(0)])),
    s('setattr', request(FUSE_SETATTR, [setattrIn(FATTR_LOCKOWNER, 1n, 1)])),
    s('syncfs', request(FUSE_SYNCFS, [u64(0)])),
    s('symlink', request(FUSE_SYMLINK, [cstr('l'), cstr('target')])),
    s('mknod', request(FUSE_MKNOD, [u32(0o10644), u32(0), u32(0), u32(0), cstr('f')])),
    s('mknod 7.11', request(FUSE_MKNOD, [u32(0o10644), u32(0), cstr('f')]), 11),
    s('mkdir', request(FUSE_MKDIR, [u32(0o755), u32(0), cstr('d')])),
    s('mkdir with extension', request(FUSE_MKDIR, [u32(0o755), u32(0), cstr('d')], { ext: Buffer.alloc(8, 0) })),
    s('rename', request(FUSE_RENAME, [u64(1), cstr('a'), cstr('b')])),
    s('rename2', request(FUSE_RENAME2, [u64(1), u32(0), u32(0), cstr('a'), cstr('b')])),
    s('link', request(FUSE_LINK, [u64(2), cstr('h')])),
    s('open', request(FUSE_OPEN, [u32(0), u32(0)])),
    s('opendir', request(FUSE_OPENDIR, [u32(0), u32(0)])),
    s('create', request(FUSE_CREATE, [u32(0), u32(0o644), u32(0), u32(0), cstr('c')])),
    s('create 7.11', request(FUSE_CREATE, [u32(0), u32(0o644), cstr('c')]), 11),
    s('tmpfile', request(FUSE_TMPFILE, [u32(0), u32(0o644), u32(0), u32(0), cstr('/')])),
    s('read', request(FUSE_READ, [readIn(FUSE_READ_LOCKOWNER, 3n)])),
    s('read 7.8', request(FUSE_READ, [readIn(0, 0n).subarray(0, 24)]), 8),
    s('readdir', request(FUSE_READDIR, [readIn(0, 0n)])),
    s('readdirplus', request(FUSE_READDIRPLUS, [readIn(0, 0n)])),
    s('write', request(FUSE_WRITE, [writeIn(4, FUSE_WRITE_LOCKOWNER, 1n), Buffer.from('data')])),
    s('write 7.8', request(FUSE_WRITE, [writeIn(4, 0, 0n).subarray(0, 24), Buffer.from('data')]), 8),
    s('release', request(FUSE_RELEASE, [u64(1), u32(0), u32(0), u64(0)])),
    s('releasedir', request(FUSE_RELEASEDIR, [u64(1), u32(0), u32(0), u64(0)])),
    s('release 7.7', request(FUSE_RELEASE, [u64(1), u32(0), u32(0)]), 7),
    s('flush', request(FUSE_FLUSH, [u64(1), u32(0), u32(0), u64(0)])),
    s('fsync', request(FUSE_FSYNC, [u64(1), u32(0), u32(0)])),
    s('fsyncdir', request(FUSE_FSYNCDIR, [u64(1), u32(0), u32(0)])),
    s('setxattr', request(FUSE_SETXATTR, [u32(3), u32(0), cstr('user.a'), Buffer.from('v\0v')])),
    s('setxattr ext', request(FUSE_SETXATTR, [u32(3), u32(0), u32(0), u32(0), cstr('user.a'), Buffer.from('v\0v')]), 38, true),
    s('getxattr', request(FUSE_GETXATTR, [u32(0), u32(0), cstr('user.a')])),
    s('listxattr', request(FUSE_LISTXATTR, [u32(0), u32(0)])),
    s('init', request(FUSE_INIT, [initIn(38, Number(FUSE_INIT_EXT), 1)])),
    s('init 7.26', request(FUSE_INIT, [initIn(26, 0, 0).subarray(0, 16)])),
    s('access', request(FUSE_ACCESS, [u32(0), u32(0)])),
    s('interrupt', request(FUSE_INTERRUPT, [u64(5)])),
    s('fallocate', request(FUSE_FALLOCATE, [u64(1), u64(0), u64(1), u32(0), u32(0)])),
    s('lseek', request(FUSE_LSEEK, [u64(1), u64(0), u32(SEEK_DATA), u32(0)])),
    s('copy_file_range', request(FUSE_COPY_FILE_RANGE, [u64(1), u64(0), u64(2), u64(3), u64(0), u64(1), u64(0)])),
  ];
}

test('every sample parses whole', (t) => {
  for (const sm of samples()) {
    const r = parseRequest(sm.buf, sm.buf.length, sm.minor, sm.ext);
    t.not(r.op, 'unknown', sm.name);
  }
});

test('truncated at every byte offset: always a ProtocolError, with the unique once the header is complete', (t) => {
  for (const sm of samples()) {
    for (let k = 0; k < sm.buf.length; k++) {
      // (a) fewer bytes than the header's len says
      const errA = expectProtocolError(t, () => parseRequest(sm.buf, k, sm.minor, sm.ext), undefined, `${sm.name} @${k}`);
      t.is(errA.unique, k >= 40 ? UNIQUE : undefined, `${sm.name} @${k}`);
      // (b) a consistent but short request: len rewritten to the truncated length, in an exact-size buffer
      const cut = Buffer.from(sm.buf.subarray(0, k));
      if (k >= 4) cut.writeUInt32LE(k, 0);
      const errB = expectProtocolError(t, () => parseRequest(cut, k, sm.minor, sm.ext), undefined, `${sm.name} @${k} (consistent len)`);
      t.is(errB.unique, k >= 40 ? UNIQUE : undefined, `${sm.name} @${k}`);
      t.true(errB.errno === EIO || errB.errno === EINVAL);
    }
  }
});

test('requests without arguments: truncated below the header is EIO without a unique', (t) => {
  const buf = request(FUSE_STATFS, []);
  for (let k = 0; k < 40; k++) {
    const err = expectProtocolError(t, () => parseRequest(buf, k), EIO);
    t.is(err.unique, undefined);
  }
});

// ---------------------------------------------------------------------------------------------------
// Fuzz

const knownOpcodes = fc.oneof(fc.integer({ min: 0, max: 60 }), fc.constantFrom(4096, 0xffffffff, 436207616));

function onlyProtocolErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    return err instanceof ProtocolError && (err.errno === EIO || err.errno === EINVAL);
  }
}

test('fuzz: random bytes of random length never throw anything but ProtocolError', (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: -2, max: 310 }),
      fc.integer({ min: 0, max: 45 }),
      fc.boolean(),
      (bytes, length, minor, ext) => onlyProtocolErrors(() => parseRequest(Buffer.from(bytes), length, minor, ext)),
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

test('fuzz: well-framed headers with random opcodes and random arguments never throw anything but ProtocolError', (t) => {
  fc.assert(
    fc.property(
      knownOpcodes,
      fc.uint8Array({ maxLength: 200 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 45 }),
      fc.boolean(),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      (opcode, args, extlen, minor, ext, nodeid) => {
        const buf = request(opcode, [Buffer.from(args)], { nodeid });
        buf.writeUInt16LE(extlen, 36);
        return onlyProtocolErrors(() => parseRequest(buf, buf.length, minor, ext));
      },
    ),
    { numRuns: 5000 },
  );
  t.pass();
});

test('fuzz: arguments made of small values and NULs reach deep into the parsers', (t) => {
  fc.assert(
    fc.property(knownOpcodes, fc.array(fc.constantFrom(0, 0, 0, 1, 2, 8, 0x2f, 0x61, 0xff), { maxLength: 120 }), fc.integer({ min: 0, max: 45 }), fc.boolean(), (opcode, args, minor, ext) => {
      const buf = request(opcode, [Buffer.from(args)], { nodeid: 1 });
      return onlyProtocolErrors(() => parseRequest(buf, buf.length, minor, ext));
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------------
// Replies

const ATTR: Attr = {
  ino: 0x1_0000_0002,
  size: 2 ** 40 + 5,
  blocks: 9,
  atime: { sec: -1, nsec: 998_500_000 }, // -1.5 ms
  mtime: { sec: 1, nsec: 234_500_000 },
  ctime: { sec: 1_700_000_000, nsec: 123_000_000 },
  mode: 0o100640,
  nlink: 2,
  uid: 1000,
  gid: 1001,
  rdev: 0x0801,
  blksize: 4096,
};

function checkOutHeader(t: ExecutionContext, b: Buffer, len: number, error: number, unique: bigint): void {
  t.is(b.readUInt32LE(0), len);
  t.is(b.readInt32LE(4), error);
  t.is(b.readBigUInt64LE(8), unique);
}

/** Checks a 88-byte fuse_attr at `o` against ATTR. */
function checkAttr(t: ExecutionContext, b: Buffer, o: number, a: Attr = ATTR): void {
  t.is(Number(b.readBigUInt64LE(o)), a.ino);
  t.is(Number(b.readBigUInt64LE(o + 8)), a.size);
  t.is(Number(b.readBigUInt64LE(o + 16)), a.blocks);
  t.is(b.readBigInt64LE(o + 24), -1n);
  t.is(b.readUInt32LE(o + 48), 998_500_000);
  t.is(b.readBigInt64LE(o + 32), 1n);
  t.is(b.readUInt32LE(o + 52), 234_500_000);
  t.is(b.readBigInt64LE(o + 40), 1_700_000_000n);
  t.is(b.readUInt32LE(o + 56), 123_000_000);
  t.is(b.readUInt32LE(o + 60), a.mode);
  t.is(b.readUInt32LE(o + 64), a.nlink);
  t.is(b.readUInt32LE(o + 68), a.uid);
  t.is(b.readUInt32LE(o + 72), a.gid);
  t.is(b.readUInt32LE(o + 76), a.rdev);
  t.is(b.readUInt32LE(o + 80), a.blksize);
  t.is(b.readUInt32LE(o + 84), 0);
}

const ENTRY: Entry = { nodeid: 0x2_0000_0001, generation: 3, entryValid: 1.25, attrValid: 0.5, attr: ATTR };

function checkEntryOut(t: ExecutionContext, b: Buffer, o: number): void {
  t.is(Number(b.readBigUInt64LE(o)), ENTRY.nodeid);
  t.is(b.readBigUInt64LE(o + 8), 3n);
  t.is(b.readBigUInt64LE(o + 16), 1n); // entry_valid
  t.is(b.readBigUInt64LE(o + 24), 0n); // attr_valid
  t.is(b.readUInt32LE(o + 32), 250_000_000);
  t.is(b.readUInt32LE(o + 36), 500_000_000);
  checkAttr(t, b, o + 40);
}

const single = (parts: Buffer[]): Buffer => {
  if (parts.length !== 1 || parts[0] === undefined) throw new Error(`expected one part, got ${parts.length}`);
  return parts[0];
};

test('struct sizes', (t) => {
  t.is(ATTR_SIZE, 88);
  t.is(ENTRY_OUT_SIZE, 128);
  t.is(ATTR_OUT_SIZE, 104);
  t.is(OPEN_OUT_SIZE, 16);
  t.is(STATFS_OUT_SIZE, 80);
  t.is(direntSize(1), 32);
  t.is(direntSize(8), 32);
  t.is(direntSize(9), 40);
  t.is(direntPlusSize(1), 160);
  t.is(direntPlusSize(8), 160);
  t.is(direntPlusSize(9), 168);
});

test('replyError: negative errno in the header; either sign accepted; out-of-range becomes EIO', (t) => {
  checkOutHeader(t, single(replyError(UNIQUE, 2)), 16, -2, UNIQUE);
  checkOutHeader(t, single(replyError(UNIQUE, -13)), 16, -13, UNIQUE);
  for (const bad of [0, 512, -600, 1.5, Number.NaN]) checkOutHeader(t, single(replyError(7n, bad)), 16, -EIO, 7n);
  t.is(single(replyError(1n, 2)).length, 16);
});

test('replyEmpty: a bare header', (t) => {
  const b = single(replyEmpty(UNIQUE));
  t.is(b.length, 16);
  checkOutHeader(t, b, 16, 0, UNIQUE);
});

test('replyEntry: 16 + 128 bytes, every field at its offset', (t) => {
  const b = single(replyEntry(UNIQUE, ENTRY));
  t.is(b.length, 16 + 128);
  checkOutHeader(t, b, 144, 0, UNIQUE);
  checkEntryOut(t, b, 16);
});

test('replyAttr: 16 + 104 bytes', (t) => {
  const b = single(replyAttr(UNIQUE, ATTR, 2.75));
  t.is(b.length, 16 + 104);
  checkOutHeader(t, b, 120, 0, UNIQUE);
  t.is(b.readBigUInt64LE(16), 2n);
  t.is(b.readUInt32LE(24), 750_000_000);
  t.is(b.readUInt32LE(28), 0);
  checkAttr(t, b, 32);
});

test('cache timeouts: negative and NaN become 0, huge values are capped', (t) => {
  for (const v of [-1, Number.NaN, 0]) {
    const b = single(replyAttr(1n, ATTR, v));
    t.is(b.readBigUInt64LE(16), 0n);
    t.is(b.readUInt32LE(24), 0);
  }
  const inf = single(replyAttr(1n, ATTR, Number.POSITIVE_INFINITY));
  t.is(inf.readBigUInt64LE(16), 0x7fffffffn);
  const tiny = single(replyAttr(1n, ATTR, 0.999_999_999_9));
  t.is(tiny.readBigUInt64LE(16), 1n);
  t.is(tiny.readUInt32LE(24), 0);
});

/** A time as a reply carries it. */
function attrTimes(sec: number, nsec: number): { sec: bigint; nsec: number } {
  const b = single(replyAttr(1n, { ...ATTR, mtime: { sec, nsec } }, 0));
  return { sec: b.readBigInt64LE(32 + 32), nsec: b.readUInt32LE(32 + 52) };
}

test('attribute times go to the kernel exactly, to the nanosecond, before 1970 too', (t) => {
  t.deepEqual(attrTimes(0, 0), { sec: 0n, nsec: 0 });
  t.deepEqual(attrTimes(-1, 999_999_999), { sec: -1n, nsec: 999_999_999 });
  t.deepEqual(attrTimes(-86_401, 999_750_000), { sec: -86_401n, nsec: 999_750_000 });
  t.deepEqual(attrTimes(1_796_646_132, 123_456_789), { sec: 1_796_646_132n, nsec: 123_456_789 });
  t.deepEqual(attrTimes(2 ** 40, 1), { sec: 2n ** 40n, nsec: 1 });
});

test('replyOpen: 16 + 16 bytes', (t) => {
  const b = single(replyOpen(UNIQUE, 2 ** 40 + 1, FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO));
  t.is(b.length, 32);
  checkOutHeader(t, b, 32, 0, UNIQUE);
  t.is(Number(b.readBigUInt64LE(16)), 2 ** 40 + 1);
  t.is(b.readUInt32LE(24), FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO);
  t.is(b.readUInt32LE(28), 0);
});

test('replyCreate: entry_out then open_out', (t) => {
  const b = single(replyCreate(UNIQUE, ENTRY, 55, FOPEN_KEEP_CACHE));
  t.is(b.length, 16 + 128 + 16);
  checkOutHeader(t, b, 160, 0, UNIQUE);
  checkEntryOut(t, b, 16);
  t.is(b.readBigUInt64LE(144), 55n);
  t.is(b.readUInt32LE(152), FOPEN_KEEP_CACHE);
  t.is(b.readUInt32LE(156), 0);
});

test('replyWrite and replyXattrSize: 8-byte structs', (t) => {
  const w = single(replyWrite(UNIQUE, 131072));
  t.is(w.length, 24);
  checkOutHeader(t, w, 24, 0, UNIQUE);
  t.is(w.readUInt32LE(16), 131072);
  t.is(w.readUInt32LE(20), 0);
  const x = single(replyXattrSize(UNIQUE, 77));
  t.is(x.length, 24);
  t.is(x.readUInt32LE(16), 77);
  t.is(x.readUInt32LE(20), 0);
});

test('replyData: header first, payload parts unchanged and not copied, len covers them all', (t) => {
  const data = Buffer.from('hello');
  const parts = replyData(UNIQUE, data);
  t.is(parts.length, 2);
  t.is(parts[1], data);
  checkOutHeader(t, parts[0] ?? Buffer.alloc(0), 21, 0, UNIQUE);
  const many = replyData(UNIQUE, [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')]);
  t.is(many.length, 4);
  t.is(Buffer.concat(many).length, 21);
  checkOutHeader(t, many[0] ?? Buffer.alloc(0), 21, 0, UNIQUE);
  t.is(Buffer.concat(many.slice(1)).toString(), 'abcde');
  checkOutHeader(t, Buffer.concat(replyData(1n, [])), 16, 0, 1n);
});

test('replyStatfs: 16 + 80 bytes, spare zeroed', (t) => {
  const b = single(replyStatfs(UNIQUE, { blocks: 2 ** 36, bfree: 2, bavail: 3, files: 4, ffree: 5, bsize: 4096, namelen: 255, frsize: 4096 }));
  t.is(b.length, 96);
  checkOutHeader(t, b, 96, 0, UNIQUE);
  t.is(Number(b.readBigUInt64LE(16)), 2 ** 36);
  t.is(b.readBigUInt64LE(24), 2n);
  t.is(b.readBigUInt64LE(32), 3n);
  t.is(b.readBigUInt64LE(40), 4n);
  t.is(b.readBigUInt64LE(48), 5n);
  t.is(b.readUInt32LE(56), 4096);
  t.is(b.readUInt32LE(60), 255);
  t.is(b.readUInt32LE(64), 4096);
  t.true(b.subarray(68, 96).every((x) => x === 0));
});

test('replyLseek', (t) => {
  const b = single(replyLseek(UNIQUE, 2 ** 33));
  t.is(b.length, 24);
  t.is(Number(b.readBigUInt64LE(16)), 2 ** 33);
});

const INIT = {
  major: 7,
  minor: 38,
  maxReadahead: 131072,
  flags: FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_HANDLE_KILLPRIV_V2 | FUSE_MAX_PAGES | FUSE_INIT_EXT | FUSE_HAS_EXPIRE_ONLY,
  maxBackground: 64,
  congestionThreshold: 48,
  maxWrite: 1 << 20,
  timeGran: 1,
  maxPages: 256,
};

test('replyInit 7.38: 64-byte fuse_init_out, flags split into flags and flags2', (t) => {
  const b = single(replyInit(UNIQUE, INIT));
  t.is(b.length, 16 + 64);
  checkOutHeader(t, b, 80, 0, UNIQUE);
  t.is(b.readUInt32LE(16), 7);
  t.is(b.readUInt32LE(20), 38);
  t.is(b.readUInt32LE(24), 131072);
  t.is(b.readUInt32LE(28), Number(FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_HANDLE_KILLPRIV_V2 | FUSE_MAX_PAGES | FUSE_INIT_EXT));
  t.is(b.readUInt16LE(32), 64);
  t.is(b.readUInt16LE(34), 48);
  t.is(b.readUInt32LE(36), 1 << 20);
  t.is(b.readUInt32LE(40), 1);
  t.is(b.readUInt16LE(44), 256);
  t.is(b.readUInt16LE(46), 0);
  t.is(b.readUInt32LE(48), Number(FUSE_HAS_EXPIRE_ONLY >> 32n));
  t.true(b.subarray(52, 80).every((x) => x === 0));
});

test('replyInit: high flag bits imply FUSE_INIT_EXT; none means none', (t) => {
  const b = single(replyInit(1n, { ...INIT, flags: FUSE_SECURITY_CTX }));
  t.is(b.readUInt32LE(28), Number(FUSE_INIT_EXT));
  t.is(b.readUInt32LE(48), 1);
  const c = single(replyInit(1n, { ...INIT, flags: FUSE_ASYNC_READ }));
  t.is(c.readUInt32LE(28), 1);
  t.is(c.readUInt32LE(48), 0);
});

test('replyInit for older kernels: 24 bytes below 7.23, 8 below 7.5', (t) => {
  const b = single(replyInit(UNIQUE, { ...INIT, minor: 22, flags: FUSE_ASYNC_READ }));
  t.is(b.length, 16 + 24);
  checkOutHeader(t, b, 40, 0, UNIQUE);
  t.is(b.readUInt32LE(20), 22);
  t.is(b.readUInt32LE(28), 1);
  t.is(b.readUInt32LE(36), 1 << 20);
  t.is(single(replyInit(UNIQUE, { ...INIT, minor: 23 })).length, 80);
  const v4 = single(replyInit(UNIQUE, { ...INIT, minor: 4 }));
  t.is(v4.length, 16 + 8);
  t.is(v4.readUInt32LE(0), 24);
});

// ---------------------------------------------------------------------------------------------------
// Directory listings

interface DecodedDirent {
  ino: number;
  off: number;
  type: number;
  name: string;
}

/** Reads fuse_dirent records back, checking alignment and zero padding. */
function decodeDirents(t: ExecutionContext, b: Buffer, plusEntry: boolean): DecodedDirent[] {
  const out: DecodedDirent[] = [];
  let o = 0;
  while (o < b.length) {
    const d = plusEntry ? o + 128 : o;
    const namelen = b.readUInt32LE(d + 16);
    const end = d + 24 + namelen;
    const rec = (end + 7) & ~7;
    t.true(b.subarray(end, rec).every((x) => x === 0), 'padding is zero');
    out.push({ ino: Number(b.readBigUInt64LE(d)), off: Number(b.readBigUInt64LE(d + 8)), type: b.readUInt32LE(d + 20), name: b.subarray(d + 24, end).toString('latin1') });
    o = rec;
  }
  t.is(o, b.length);
  return out;
}

test('DirentWriter: 24 + name padded to 8, stops at the size limit and says how many fit', (t) => {
  const w = new DirentWriter(100);
  t.true(w.add('a', 10, 1, 4)); // 24 + 1 -> 32
  t.true(w.add(Buffer.from('abcdefgh'), 11, 2, 8)); // 24 + 8 = 32, no padding
  t.is(w.length, 64);
  t.false(w.add('x'.repeat(9), 12, 3, 8)); // 40 > 36 left
  t.false(w.add('y'.repeat(12), 12, 3, 8)); // 36 -> 40 > 36
  t.is(w.count, 2);
  t.is(w.length, 64);
  t.true(w.add('zzzz', 13, 4, 10)); // 28 -> 32 <= 36
  t.is(w.count, 3);
  t.is(w.length, 96);
  const data = w.data();
  t.is(data.length, 96);
  t.deepEqual(decodeDirents(t, data, false), [
    { ino: 10, off: 1, type: 4, name: 'a' },
    { ino: 11, off: 2, type: 8, name: 'abcdefgh' },
    { ino: 13, off: 4, type: 10, name: 'zzzz' },
  ]);
  // Exact fit
  const exact = new DirentWriter(64);
  t.true(exact.add('a', 1, 1, 8));
  t.true(exact.add('b', 2, 2, 8));
  t.false(exact.add('c', 3, 3, 8));
  t.is(exact.length, 64);
  // Too small for even one entry: an empty listing
  const tiny = new DirentWriter(16);
  t.false(tiny.add('a', 1, 1, 8));
  t.is(tiny.data().length, 0);
});

/** Writers whose buffer starts full of 0xff, so unwritten padding would show. */
class DirtyDirentWriter extends DirentWriter {
  constructor(size: number) {
    super(size);
    this.buf.fill(0xff);
  }
}
class DirtyDirentPlusWriter extends DirentPlusWriter {
  constructor(size: number) {
    super(size);
    this.buf.fill(0xff);
  }
}

test('DirentWriter: record bytes exactly (ino, off, namelen, type, name, zero padding)', (t) => {
  const w = new DirtyDirentWriter(4096);
  w.add(Buffer.from([0x66, 0xff, 0x6f]), 2 ** 40 + 7, 2 ** 33, direntType(0o120777));
  const b = w.data();
  t.is(b.length, 32);
  t.is(Number(b.readBigUInt64LE(0)), 2 ** 40 + 7);
  t.is(Number(b.readBigUInt64LE(8)), 2 ** 33);
  t.is(b.readUInt32LE(16), 3);
  t.is(b.readUInt32LE(20), 10); // DT_LNK
  t.deepEqual([...b.subarray(24, 27)], [0x66, 0xff, 0x6f]);
  t.deepEqual([...b.subarray(27, 32)], [0, 0, 0, 0, 0]);
});

test('direntType: DT_* from st_mode', (t) => {
  t.is(direntType(0o040755), 4); // DT_DIR
  t.is(direntType(0o100644), 8); // DT_REG
  t.is(direntType(0o120777), 10); // DT_LNK
  t.is(direntType(0o010644), 1); // DT_FIFO
  t.is(direntType(0o020644), 2); // DT_CHR
  t.is(direntType(0o060644), 6); // DT_BLK
  t.is(direntType(0o140644), 12); // DT_SOCK
});

test('dirent names the kernel would reject are refused: empty, "/", NUL, over 1024 bytes', (t) => {
  const w = new DirentWriter(4096);
  for (const bad of ['', 'a/b', 'a\0b', Buffer.from('x/y'), Buffer.from([0x61, 0]), 'n'.repeat(1025)]) {
    t.throws(() => w.add(bad, 1, 1, 8), { instanceOf: RangeError });
  }
  t.true(w.add('n'.repeat(1024), 1, 1, 8));
  t.is(w.count, 1);
  t.throws(() => new DirentPlusWriter(4096).add('', 1, ENTRY), { instanceOf: RangeError });
});

test('DirentPlusWriter: 152 + name padded; entry_out then dirent (ino and type from the attr)', (t) => {
  const w = new DirtyDirentPlusWriter(160 * 2 + 100);
  t.true(w.add('file', 1, ENTRY));
  t.true(w.add('dir.....', 2, { ...ENTRY, nodeid: 0, attr: { ...ATTR, ino: 77, mode: 0o040755 } }));
  t.false(w.add('third', 3, ENTRY)); // 160 > 100 left
  t.is(w.count, 2);
  const b = w.data();
  t.is(b.length, 320);
  checkEntryOut(t, b, 0);
  t.deepEqual(decodeDirents(t, b, true), [
    { ino: ATTR.ino, off: 1, type: 8, name: 'file' },
    { ino: 77, off: 2, type: 4, name: 'dir.....' },
  ]);
  t.is(b.readBigUInt64LE(160), 0n); // second entry: nodeid 0, name only
});

test('fuzz: dirent packing never exceeds the size and every record decodes back', (t) => {
  const name = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((a) => Buffer.from(a.map((x) => (x === 0 || x === 0x2f ? 0x61 : x))));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2000 }), fc.array(name, { maxLength: 60 }), fc.boolean(), (size, names, plus) => {
      const w = plus ? new DirentPlusWriter(size) : new DirentWriter(size);
      let added = 0;
      for (const [i, n] of names.entries()) {
        const ok = w instanceof DirentPlusWriter ? w.add(n, i + 1, ENTRY) : w.add(n, i + 100, i + 1, 8);
        if (!ok) break;
        added++;
      }
      const data = w.data();
      if (data.length > size || w.count !== added || w.length !== data.length) return false;
      let o = 0;
      let count = 0;
      while (o < data.length) {
        const d = plus ? o + 128 : o;
        const namelen = data.readUInt32LE(d + 16);
        if (!data.subarray(d + 24, d + 24 + namelen).equals(names[count] ?? Buffer.alloc(0))) return false;
        o = (d + 24 + namelen + 7) & ~7;
        count++;
      }
      return o === data.length && count === added;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------------
// Notifications

test('notifyInvalInode: unique 0, error = code, ino/off/len (signed)', (t) => {
  const b = single(notifyInvalInode(42, -1, 0));
  t.is(b.length, 16 + 24);
  checkOutHeader(t, b, 40, FUSE_NOTIFY_INVAL_INODE, 0n);
  t.is(b.readBigUInt64LE(16), 42n);
  t.is(b.readBigInt64LE(24), -1n);
  t.is(b.readBigInt64LE(32), 0n);
  const c = single(notifyInvalInode(42, 4096, 2 ** 35));
  t.is(c.readBigInt64LE(24), 4096n);
  t.is(Number(c.readBigInt64LE(32)), 2 ** 35);
});

test('notifyInvalEntry: struct, name and NUL, exactly', (t) => {
  const b = single(notifyInvalEntry(1, 'gone.txt'));
  t.is(b.length, 16 + 16 + 8 + 1);
  checkOutHeader(t, b, 41, FUSE_NOTIFY_INVAL_ENTRY, 0n);
  t.is(b.readBigUInt64LE(16), 1n);
  t.is(b.readUInt32LE(24), 8);
  t.is(b.readUInt32LE(28), 0);
  t.is(b.subarray(32, 40).toString(), 'gone.txt');
  t.is(b[40], 0);
  const raw = single(notifyInvalEntry(2, Buffer.from([0xff]), 1));
  t.is(raw.readUInt32LE(28), 1);
  t.is(raw[32], 0xff);
  t.is(raw[33], 0);
});

test('notifyDelete: parent, child, name and NUL', (t) => {
  const b = single(notifyDelete(1, 99, 'x'));
  t.is(b.length, 16 + 24 + 1 + 1);
  checkOutHeader(t, b, 42, FUSE_NOTIFY_DELETE, 0n);
  t.is(b.readBigUInt64LE(16), 1n);
  t.is(b.readBigUInt64LE(24), 99n);
  t.is(b.readUInt32LE(32), 1);
  t.is(b.readUInt32LE(36), 0);
  t.is(b.toString('latin1', 40, 41), 'x');
  t.is(b[41], 0);
});
