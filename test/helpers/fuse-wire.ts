// FUSE requests laid out by hand and replies taken apart, for tests of svault's own transport without a
// kernel: the byte layouts of linux/fuse.h (protocol 7.38), written independently of fs/kernel/protocol.ts.

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
export const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(n)));
  return b;
};
export const cstr = (s: string | Buffer): Buffer => Buffer.concat([typeof s === 'string' ? Buffer.from(s) : s, Buffer.alloc(1)]);

export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9, UNLINK: 10, RMDIR: 11,
  RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17, RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22,
  LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25, INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30,
  ACCESS: 34, CREATE: 35, INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
} as const;

export interface Caller {
  uid?: number;
  gid?: number;
}

/** fuse_in_header (40 bytes) followed by the arguments. */
export function request(opcode: number, unique: bigint, nodeid: number, args: Buffer[] = [], caller: Caller = {}): Buffer {
  const body = Buffer.concat(args);
  const h = Buffer.alloc(40);
  h.writeUInt32LE(40 + body.length, 0);
  h.writeUInt32LE(opcode, 4);
  h.writeBigUInt64LE(unique, 8);
  h.writeBigUInt64LE(BigInt(nodeid), 16);
  h.writeUInt32LE(caller.uid ?? 0, 24);
  h.writeUInt32LE(caller.gid ?? 0, 28);
  h.writeUInt32LE(1234, 32); // pid
  return Buffer.concat([h, body]);
}

/** fuse_init_in of 7.36 and later: major, minor, max_readahead, flags, flags2, and unused words. */
export function initArgs(minor: number, flags: bigint): Buffer[] {
  return [u32(7), u32(minor), u32(131072), u32(Number(flags & 0xffffffffn)), u32(Number(flags >> 32n)), Buffer.alloc(44)];
}

/** fuse_read_in / fuse_write_in (40 bytes): fh, offset, size, read/write flags, lock owner, flags. */
export function ioArgs(fh: number, offset: number, size: number, ioFlags = 0): Buffer {
  return Buffer.concat([u64(fh), u64(offset), u32(size), u32(ioFlags), u64(0), u32(0), u32(0)]);
}

/** fuse_setattr_in (88 bytes). */
export function setattrArgs(a: { valid: number; fh?: number; size?: number; mode?: number; uid?: number; gid?: number; atime?: number; mtime?: number }): Buffer {
  const b = Buffer.alloc(88);
  b.writeUInt32LE(a.valid, 0);
  b.writeBigUInt64LE(BigInt(a.fh ?? 0), 8);
  b.writeBigUInt64LE(BigInt(a.size ?? 0), 16);
  b.writeBigUInt64LE(BigInt(a.atime ?? 0), 32);
  b.writeBigUInt64LE(BigInt(a.mtime ?? 0), 40);
  b.writeUInt32LE(a.mode ?? 0, 68);
  b.writeUInt32LE(a.uid ?? 0, 76);
  b.writeUInt32LE(a.gid ?? 0, 80);
  return b;
}

export interface Reply {
  len: number;
  /** A negative errno, or 0. */
  error: number;
  unique: bigint;
  body: Buffer;
}

export function parseReply(parts: Buffer[]): Reply {
  const all = Buffer.concat(parts);
  return { len: all.readUInt32LE(0), error: all.readInt32LE(4), unique: all.readBigUInt64LE(8), body: all.subarray(16) };
}

/** fuse_attr at `at`. */
export function attrAt(b: Buffer, at: number): { ino: number; size: number; mode: number; nlink: number; uid: number; gid: number; rdev: number; mtimeSec: number } {
  return {
    ino: Number(b.readBigUInt64LE(at)),
    size: Number(b.readBigUInt64LE(at + 8)),
    mtimeSec: Number(b.readBigInt64LE(at + 32)),
    mode: b.readUInt32LE(at + 60),
    nlink: b.readUInt32LE(at + 64),
    uid: b.readUInt32LE(at + 68),
    gid: b.readUInt32LE(at + 72),
    rdev: b.readUInt32LE(at + 76),
  };
}

/** fuse_entry_out: node id, then the attributes (at 40). */
export function entryOf(body: Buffer): { nodeid: number; attr: ReturnType<typeof attrAt> } {
  return { nodeid: Number(body.readBigUInt64LE(0)), attr: attrAt(body, 40) };
}

/** The names in a READDIR reply (fuse_dirent records). */
export function direntNames(body: Buffer): string[] {
  const names: string[] = [];
  for (let at = 0; at + 24 <= body.length; ) {
    const namelen = body.readUInt32LE(at + 16);
    names.push(body.subarray(at + 24, at + 24 + namelen).toString());
    at += (24 + namelen + 7) & ~7;
  }
  return names;
}

/** The names and node ids in a READDIRPLUS reply (fuse_direntplus: entry_out, then a dirent). */
export function direntPlus(body: Buffer): { name: string; nodeid: number; nlink: number }[] {
  const out: { name: string; nodeid: number; nlink: number }[] = [];
  for (let at = 0; at + 152 <= body.length; ) {
    const namelen = body.readUInt32LE(at + 128 + 16);
    out.push({ name: body.subarray(at + 152, at + 152 + namelen).toString(), nodeid: Number(body.readBigUInt64LE(at)), nlink: body.readUInt32LE(at + 40 + 64) });
    at += (152 + namelen + 7) & ~7;
  }
  return out;
}
