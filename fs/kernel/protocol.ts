// FUSE kernel protocol codec (7.38, /usr/include/linux/fuse.h): parses /dev/fuse requests, encodes replies and notifications.
//
// Numbers and ids. `unique` is a bigint (the kernel's request counter is a full u64 and is only echoed
// back). Node ids, file handles and nlookup counts are JS numbers: svault hands them out small, and a
// number is cheaper on the hot path; a value above 2^53-1 cannot be one svault issued, so the request is
// refused as malformed (ProtocolError, EINVAL). Offsets, sizes and lengths are numbers too, exact below
// 2^53; anything larger (a user's lseek/truncate/fallocate to an absurd position) arrives as an inexact
// number >= 2^53, which every range check still sees as "too big". Lock owners are opaque kernel hashes
// and stay bigint (0n unless the request's flag says the field is valid).
//
// Lifetime. Names and write data in a parsed request are views into the caller's read buffer, not
// copies: they are valid until that buffer is reused for the next read.
//
// Names are raw bytes (Linux names need not be UTF-8); decodeName() decodes only when that is lossless.

import { isUtf8 } from 'node:buffer';
import type { Timespec } from '../../src/core/format2/inode-record.js';

// ---------------------------------------------------------------------------------------------------
// Constants (numbers from the uapi header)

export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 38;
export const FUSE_ROOT_ID = 1;
/** The kernel refuses a /dev/fuse read buffer smaller than this. */
export const FUSE_MIN_READ_BUFFER = 8192;
/** Longest name the kernel accepts in a dirent or notification (fs/fuse/fuse_i.h, not in the uapi header). */
export const FUSE_NAME_MAX = 1024;

// Opcodes
export const FUSE_LOOKUP = 1;
export const FUSE_FORGET = 2;
export const FUSE_GETATTR = 3;
export const FUSE_SETATTR = 4;
export const FUSE_READLINK = 5;
export const FUSE_SYMLINK = 6;
export const FUSE_MKNOD = 8;
export const FUSE_MKDIR = 9;
export const FUSE_UNLINK = 10;
export const FUSE_RMDIR = 11;
export const FUSE_RENAME = 12;
export const FUSE_LINK = 13;
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_WRITE = 16;
export const FUSE_STATFS = 17;
export const FUSE_RELEASE = 18;
export const FUSE_FSYNC = 20;
export const FUSE_SETXATTR = 21;
export const FUSE_GETXATTR = 22;
export const FUSE_LISTXATTR = 23;
export const FUSE_REMOVEXATTR = 24;
export const FUSE_FLUSH = 25;
export const FUSE_INIT = 26;
export const FUSE_OPENDIR = 27;
export const FUSE_READDIR = 28;
export const FUSE_RELEASEDIR = 29;
export const FUSE_FSYNCDIR = 30;
export const FUSE_GETLK = 31;
export const FUSE_SETLK = 32;
export const FUSE_SETLKW = 33;
export const FUSE_ACCESS = 34;
export const FUSE_CREATE = 35;
export const FUSE_INTERRUPT = 36;
export const FUSE_BMAP = 37;
export const FUSE_DESTROY = 38;
export const FUSE_IOCTL = 39;
export const FUSE_POLL = 40;
export const FUSE_NOTIFY_REPLY = 41;
export const FUSE_BATCH_FORGET = 42;
export const FUSE_FALLOCATE = 43;
export const FUSE_READDIRPLUS = 44;
export const FUSE_RENAME2 = 45;
export const FUSE_LSEEK = 46;
export const FUSE_COPY_FILE_RANGE = 47;
export const FUSE_SETUPMAPPING = 48;
export const FUSE_REMOVEMAPPING = 49;
export const FUSE_SYNCFS = 50;
export const FUSE_TMPFILE = 51;
/** 7.39 (newer uapi header, not the installed 7.38 one): never sent while we negotiate <= 7.38. */
export const FUSE_STATX = 52;
export const CUSE_INIT = 4096;

// INIT flags, as 64-bit bigints: on the wire `flags | flags2 << 32`, flags2 only meaningful with
// FUSE_INIT_EXT. Bigint because negotiation happens once and JS bitwise ops stop at 32 bits.
export const FUSE_ASYNC_READ = 1n << 0n;
export const FUSE_POSIX_LOCKS = 1n << 1n;
export const FUSE_FILE_OPS = 1n << 2n;
export const FUSE_ATOMIC_O_TRUNC = 1n << 3n;
export const FUSE_EXPORT_SUPPORT = 1n << 4n;
export const FUSE_BIG_WRITES = 1n << 5n;
export const FUSE_DONT_MASK = 1n << 6n;
export const FUSE_SPLICE_WRITE = 1n << 7n;
export const FUSE_SPLICE_MOVE = 1n << 8n;
export const FUSE_SPLICE_READ = 1n << 9n;
export const FUSE_FLOCK_LOCKS = 1n << 10n;
export const FUSE_HAS_IOCTL_DIR = 1n << 11n;
export const FUSE_AUTO_INVAL_DATA = 1n << 12n;
export const FUSE_DO_READDIRPLUS = 1n << 13n;
export const FUSE_READDIRPLUS_AUTO = 1n << 14n;
export const FUSE_ASYNC_DIO = 1n << 15n;
export const FUSE_WRITEBACK_CACHE = 1n << 16n;
export const FUSE_NO_OPEN_SUPPORT = 1n << 17n;
export const FUSE_PARALLEL_DIROPS = 1n << 18n;
export const FUSE_HANDLE_KILLPRIV = 1n << 19n;
export const FUSE_POSIX_ACL = 1n << 20n;
export const FUSE_ABORT_ERROR = 1n << 21n;
export const FUSE_MAX_PAGES = 1n << 22n;
export const FUSE_CACHE_SYMLINKS = 1n << 23n;
export const FUSE_NO_OPENDIR_SUPPORT = 1n << 24n;
export const FUSE_EXPLICIT_INVAL_DATA = 1n << 25n;
export const FUSE_MAP_ALIGNMENT = 1n << 26n;
export const FUSE_SUBMOUNTS = 1n << 27n;
export const FUSE_HANDLE_KILLPRIV_V2 = 1n << 28n;
export const FUSE_SETXATTR_EXT = 1n << 29n;
export const FUSE_INIT_EXT = 1n << 30n;
export const FUSE_INIT_RESERVED = 1n << 31n;
export const FUSE_SECURITY_CTX = 1n << 32n;
export const FUSE_HAS_INODE_DAX = 1n << 33n;
export const FUSE_HAS_EXPIRE_ONLY = 1n << 35n;

// fuse_open_out.open_flags
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;

// fuse_setattr_in.valid
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

// Per-request flag words
export const FUSE_WRITE_CACHE = 1 << 0;
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
export const FUSE_READ_LOCKOWNER = 1 << 1;
export const FUSE_RELEASE_FLUSH = 1 << 0;
export const FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1;
export const FUSE_GETATTR_FH = 1 << 0;
export const FUSE_FSYNC_FDATASYNC = 1 << 0;
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;
export const FUSE_SETXATTR_ACL_KILL_SGID = 1 << 0;
export const FUSE_ATTR_SUBMOUNT = 1 << 0;
export const FUSE_ATTR_DAX = 1 << 1;
export const FUSE_EXPIRE_ONLY = 1 << 0;

// Values the kernel passes through from syscalls (Linux uapi: fs.h, xattr.h, seek, falloc.h)
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;
export const RENAME_WHITEOUT = 1 << 2;
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;
export const FALLOC_FL_UNSHARE_RANGE = 0x40;

// Notification codes: sent in fuse_out_header.error with unique 0
export const FUSE_NOTIFY_POLL = 1;
export const FUSE_NOTIFY_INVAL_INODE = 2;
export const FUSE_NOTIFY_INVAL_ENTRY = 3;
export const FUSE_NOTIFY_STORE = 4;
export const FUSE_NOTIFY_RETRIEVE = 5;
export const FUSE_NOTIFY_DELETE = 6;

// Struct sizes (bytes)
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;
export const OPEN_OUT_SIZE = 16;
export const WRITE_OUT_SIZE = 8;
export const STATFS_OUT_SIZE = 80;
export const INIT_OUT_SIZE = 64;
export const DIRENT_BASE_SIZE = 24;
export const DIRENTPLUS_BASE_SIZE = ENTRY_OUT_SIZE + DIRENT_BASE_SIZE;
const COMPAT_INIT_OUT_SIZE = 8; // minor < 5
const COMPAT_22_INIT_OUT_SIZE = 24; // minor < 23
const COMPAT_WRITE_IN_SIZE = 24; // minor < 9; read_in had the same prefix
const COMPAT_MKNOD_IN_SIZE = 8; // minor < 12
const COMPAT_CREATE_IN_SIZE = 8; // minor < 12: a fuse_open_in {flags, mode}
const COMPAT_SETXATTR_IN_SIZE = 8; // without FUSE_SETXATTR_EXT

// Linux errno values (the protocol is Linux's)
const EIO = 5;
const EINVAL = 22;

const TWO32 = 4294967296;
const INIT_EXT_BIT = 1 << 30; // FUSE_INIT_EXT in the low flags word
/** Highest high word of a u64 that still fits a safe integer (2^53 - 1). */
const MAX_SAFE_HI = 0x1fffff;

// ---------------------------------------------------------------------------------------------------
// Requests

/** A request the codec refuses; answer `unique` (when known) with `-errno`. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    /** Positive errno to answer with: EIO for framing errors, EINVAL for malformed arguments. */
    readonly errno: number,
    /** The request's unique, when its header was readable. */
    readonly unique: bigint | undefined,
    readonly opcode: number | undefined,
  ) {
    super(message);
  }
}

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  /** Length of the extension area at the end of the request, in 8-byte units (7.38+; else 0). */
  totalExtlen: number;
}

interface Base<Op extends string> {
  op: Op;
  header: InHeader;
}

export interface LookupRequest extends Base<'lookup' | 'unlink' | 'rmdir' | 'removexattr'> {
  name: Buffer;
}
export interface ForgetRequest extends Base<'forget'> {
  nlookup: number;
}
export interface ForgetItem {
  nodeid: number;
  nlookup: number;
}
export interface BatchForgetRequest extends Base<'batch_forget'> {
  items: ForgetItem[];
}
export interface GetattrRequest extends Base<'getattr'> {
  getattrFlags: number;
  /** Valid only with FUSE_GETATTR_FH. */
  fh: number;
}
export interface SetattrRequest extends Base<'setattr'> {
  valid: number;
  fh: number;
  size: number;
  /** 0n unless FATTR_LOCKOWNER. */
  lockOwner: bigint;
  /** Seconds since the epoch, signed. */
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  uid: number;
  gid: number;
}
export type NoArgRequest = Base<'readlink' | 'statfs' | 'destroy' | 'syncfs'>;
export interface SymlinkRequest extends Base<'symlink'> {
  /** Name of the new entry in header.nodeid. */
  name: Buffer;
  /** What the link points to. */
  target: Buffer;
}
export interface MknodRequest extends Base<'mknod'> {
  mode: number;
  rdev: number;
  umask: number;
  name: Buffer;
}
export interface MkdirRequest extends Base<'mkdir'> {
  mode: number;
  umask: number;
  name: Buffer;
}
export interface RenameRequest extends Base<'rename' | 'rename2'> {
  newdir: number;
  /** RENAME_* (always 0 for 'rename'). */
  flags: number;
  oldName: Buffer;
  newName: Buffer;
}
export interface LinkRequest extends Base<'link'> {
  oldNodeid: number;
  /** New name in header.nodeid. */
  name: Buffer;
}
export interface OpenRequest extends Base<'open' | 'opendir'> {
  flags: number;
  openFlags: number;
}
export interface CreateRequest extends Base<'create' | 'tmpfile'> {
  flags: number;
  mode: number;
  umask: number;
  openFlags: number;
  name: Buffer;
}
export interface ReadRequest extends Base<'read' | 'readdir' | 'readdirplus'> {
  fh: number;
  offset: number;
  size: number;
  readFlags: number;
  /** 0n unless FUSE_READ_LOCKOWNER. */
  lockOwner: bigint;
  flags: number;
}
export interface WriteRequest extends Base<'write'> {
  fh: number;
  offset: number;
  size: number;
  writeFlags: number;
  /** 0n unless FUSE_WRITE_LOCKOWNER. */
  lockOwner: bigint;
  flags: number;
  /** View of the read buffer, `size` bytes. */
  data: Buffer;
}
export interface ReleaseRequest extends Base<'release' | 'releasedir'> {
  fh: number;
  flags: number;
  releaseFlags: number;
  lockOwner: bigint;
}
export interface FlushRequest extends Base<'flush'> {
  fh: number;
  lockOwner: bigint;
}
export interface FsyncRequest extends Base<'fsync' | 'fsyncdir'> {
  fh: number;
  fsyncFlags: number;
}
export interface SetxattrRequest extends Base<'setxattr'> {
  size: number;
  /** XATTR_CREATE / XATTR_REPLACE. */
  flags: number;
  /** FUSE_SETXATTR_* (only with FUSE_SETXATTR_EXT; else 0). */
  setxattrFlags: number;
  name: Buffer;
  value: Buffer;
}
export interface GetxattrRequest extends Base<'getxattr'> {
  /** 0 asks for the value's size (replyXattrSize); else the caller's buffer size. */
  size: number;
  name: Buffer;
}
export interface ListxattrRequest extends Base<'listxattr'> {
  size: number;
}
export interface InitRequest extends Base<'init'> {
  major: number;
  minor: number;
  maxReadahead: number;
  /** flags | flags2 << 32 (flags2 only when the kernel set FUSE_INIT_EXT). */
  flags: bigint;
}
export interface AccessRequest extends Base<'access'> {
  mask: number;
}
export interface InterruptRequest extends Base<'interrupt'> {
  targetUnique: bigint;
}
export interface FallocateRequest extends Base<'fallocate'> {
  fh: number;
  offset: number;
  length: number;
  mode: number;
}
export interface LseekRequest extends Base<'lseek'> {
  fh: number;
  /** Signed: the user's offset is passed through unchecked. */
  offset: number;
  whence: number;
}
export interface CopyFileRangeRequest extends Base<'copy_file_range'> {
  fhIn: number;
  offIn: number;
  nodeidOut: number;
  fhOut: number;
  offOut: number;
  len: number;
  flags: number;
}
export interface UnknownRequest extends Base<'unknown'> {
  opcode: number;
}

export type Request =
  | LookupRequest
  | ForgetRequest
  | BatchForgetRequest
  | GetattrRequest
  | SetattrRequest
  | NoArgRequest
  | SymlinkRequest
  | MknodRequest
  | MkdirRequest
  | RenameRequest
  | LinkRequest
  | OpenRequest
  | CreateRequest
  | ReadRequest
  | WriteRequest
  | ReleaseRequest
  | FlushRequest
  | FsyncRequest
  | SetxattrRequest
  | GetxattrRequest
  | ListxattrRequest
  | InitRequest
  | AccessRequest
  | InterruptRequest
  | FallocateRequest
  | LseekRequest
  | CopyFileRangeRequest
  | UnknownRequest;

function malformed(h: InHeader, what: string): ProtocolError {
  return new ProtocolError(`opcode ${h.opcode}: ${what}`, EINVAL, h.unique, h.opcode);
}

function need(h: InHeader, argLen: number, size: number, what: string): void {
  if (argLen < size) throw malformed(h, `${argLen} bytes of arguments, ${what} needs ${size}`);
}

/** Index of the NUL ending the name that starts at `start`; the NUL must lie before `end`. */
function nameEnd(buf: Buffer, start: number, end: number, h: InHeader): number {
  // indexOf scans past `end` only in the malformed case, and never past buf.length
  const nul = start < end ? buf.indexOf(0, start) : -1;
  if (nul < 0 || nul >= end) throw malformed(h, 'name without NUL terminator');
  return nul;
}

/** u64 that names something svault issued (node id, fh, count): must be a safe integer. */
function readId(buf: Buffer, off: number, h: InHeader | undefined, unique: bigint, opcode: number): number {
  const hi = buf.readUInt32LE(off + 4);
  if (hi > MAX_SAFE_HI) {
    throw h
      ? malformed(h, 'identifier above 2^53')
      : new ProtocolError(`opcode ${opcode}: node id above 2^53`, EINVAL, unique, opcode);
  }
  return hi * TWO32 + buf.readUInt32LE(off);
}

function id(buf: Buffer, off: number, h: InHeader): number {
  return readId(buf, off, h, h.unique, h.opcode);
}

/** u64 offset/length: exact below 2^53, an inexact large number above. */
function u64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * TWO32 + buf.readUInt32LE(off);
}

function i64(buf: Buffer, off: number): number {
  return buf.readInt32LE(off + 4) * TWO32 + buf.readUInt32LE(off);
}

/**
 * Parses one request as read from /dev/fuse: `length` bytes at the start of `buf`.
 * `negotiatedMinor` is the minor agreed at INIT (struct sizes depend on it); `setxattrExt` says whether
 * FUSE_SETXATTR_EXT was negotiated (fuse_setxattr_in is 16 bytes instead of 8 then).
 * Throws only ProtocolError. FORGET and BATCH_FORGET take no reply, not even an error.
 */
export function parseRequest(
  buf: Buffer,
  length: number,
  negotiatedMinor: number = FUSE_KERNEL_MINOR_VERSION,
  setxattrExt = false,
): Request {
  if (!(length >= IN_HEADER_SIZE && length <= buf.length)) {
    throw new ProtocolError(`request of ${length} bytes cannot hold fuse_in_header`, EIO, undefined, undefined);
  }
  const len = buf.readUInt32LE(0);
  const opcode = buf.readUInt32LE(4);
  const unique = buf.readBigUInt64LE(8);
  if (len !== length) {
    throw new ProtocolError(`header len ${len} but ${length} bytes read`, EIO, unique, opcode);
  }
  const nodeid = readId(buf, 16, undefined, unique, opcode);
  // Before 7.38 these bytes were padding
  const totalExtlen = negotiatedMinor >= 38 ? buf.readUInt16LE(36) : 0;
  const header: InHeader = {
    len,
    opcode,
    unique,
    nodeid,
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
    totalExtlen,
  };
  // Extensions (security context, ...) follow the arguments and are counted in len
  const end = length - totalExtlen * 8;
  if (end < IN_HEADER_SIZE) throw malformed(header, `extension area of ${totalExtlen * 8} bytes exceeds the request`);
  const p = IN_HEADER_SIZE;
  const argLen = end - p;

  switch (opcode) {
    case FUSE_LOOKUP:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_REMOVEXATTR: {
      const nul = nameEnd(buf, p, end, header);
      const op = opcode === FUSE_LOOKUP ? 'lookup' : opcode === FUSE_UNLINK ? 'unlink' : opcode === FUSE_RMDIR ? 'rmdir' : 'removexattr';
      return { op, header, name: buf.subarray(p, nul) };
    }

    case FUSE_FORGET:
      need(header, argLen, 8, 'fuse_forget_in');
      return { op: 'forget', header, nlookup: id(buf, p, header) };

    case FUSE_BATCH_FORGET: {
      need(header, argLen, 8, 'fuse_batch_forget_in');
      const count = buf.readUInt32LE(p);
      need(header, argLen, 8 + count * 16, `${count} fuse_forget_one`);
      const items: ForgetItem[] = [];
      for (let i = 0, o = p + 8; i < count; i++, o += 16) {
        items.push({ nodeid: id(buf, o, header), nlookup: id(buf, o + 8, header) });
      }
      return { op: 'batch_forget', header, items };
    }

    case FUSE_GETATTR:
      // fuse_getattr_in exists since 7.9
      if (negotiatedMinor < 9) return { op: 'getattr', header, getattrFlags: 0, fh: 0 };
      need(header, argLen, 16, 'fuse_getattr_in');
      return { op: 'getattr', header, getattrFlags: buf.readUInt32LE(p), fh: id(buf, p + 8, header) };

    case FUSE_SETATTR: {
      need(header, argLen, 88, 'fuse_setattr_in');
      const valid = buf.readUInt32LE(p);
      return {
        op: 'setattr',
        header,
        valid,
        fh: id(buf, p + 8, header),
        size: u64(buf, p + 16),
        lockOwner: valid & FATTR_LOCKOWNER ? buf.readBigUInt64LE(p + 24) : 0n,
        atime: i64(buf, p + 32),
        mtime: i64(buf, p + 40),
        ctime: i64(buf, p + 48),
        atimensec: buf.readUInt32LE(p + 56),
        mtimensec: buf.readUInt32LE(p + 60),
        ctimensec: buf.readUInt32LE(p + 64),
        mode: buf.readUInt32LE(p + 68),
        uid: buf.readUInt32LE(p + 76),
        gid: buf.readUInt32LE(p + 80),
      };
    }

    case FUSE_READLINK:
      return { op: 'readlink', header };
    case FUSE_STATFS:
      return { op: 'statfs', header };
    case FUSE_DESTROY:
      return { op: 'destroy', header };
    case FUSE_SYNCFS:
      need(header, argLen, 8, 'fuse_syncfs_in');
      return { op: 'syncfs', header };

    case FUSE_SYMLINK: {
      const nul1 = nameEnd(buf, p, end, header);
      const nul2 = nameEnd(buf, nul1 + 1, end, header);
      return { op: 'symlink', header, name: buf.subarray(p, nul1), target: buf.subarray(nul1 + 1, nul2) };
    }

    case FUSE_MKNOD: {
      const size = negotiatedMinor >= 12 ? 16 : COMPAT_MKNOD_IN_SIZE;
      need(header, argLen, size, 'fuse_mknod_in');
      const nul = nameEnd(buf, p + size, end, header);
      return {
        op: 'mknod',
        header,
        mode: buf.readUInt32LE(p),
        rdev: buf.readUInt32LE(p + 4),
        umask: size === 16 ? buf.readUInt32LE(p + 8) : 0,
        name: buf.subarray(p + size, nul),
      };
    }

    case FUSE_MKDIR: {
      need(header, argLen, 8, 'fuse_mkdir_in');
      const nul = nameEnd(buf, p + 8, end, header);
      return {
        op: 'mkdir',
        header,
        mode: buf.readUInt32LE(p),
        umask: negotiatedMinor >= 12 ? buf.readUInt32LE(p + 4) : 0,
        name: buf.subarray(p + 8, nul),
      };
    }

    case FUSE_RENAME:
    case FUSE_RENAME2: {
      const size = opcode === FUSE_RENAME2 ? 16 : 8;
      need(header, argLen, size, opcode === FUSE_RENAME2 ? 'fuse_rename2_in' : 'fuse_rename_in');
      const nul1 = nameEnd(buf, p + size, end, header);
      const nul2 = nameEnd(buf, nul1 + 1, end, header);
      return {
        op: opcode === FUSE_RENAME2 ? 'rename2' : 'rename',
        header,
        newdir: id(buf, p, header),
        flags: size === 16 ? buf.readUInt32LE(p + 8) : 0,
        oldName: buf.subarray(p + size, nul1),
        newName: buf.subarray(nul1 + 1, nul2),
      };
    }

    case FUSE_LINK: {
      need(header, argLen, 8, 'fuse_link_in');
      const nul = nameEnd(buf, p + 8, end, header);
      return { op: 'link', header, oldNodeid: id(buf, p, header), name: buf.subarray(p + 8, nul) };
    }

    case FUSE_OPEN:
    case FUSE_OPENDIR:
      need(header, argLen, 8, 'fuse_open_in');
      return {
        op: opcode === FUSE_OPEN ? 'open' : 'opendir',
        header,
        flags: buf.readUInt32LE(p),
        openFlags: buf.readUInt32LE(p + 4),
      };

    case FUSE_CREATE:
    case FUSE_TMPFILE: {
      const size = negotiatedMinor >= 12 ? 16 : COMPAT_CREATE_IN_SIZE;
      need(header, argLen, size, 'fuse_create_in');
      const nul = nameEnd(buf, p + size, end, header);
      return {
        op: opcode === FUSE_CREATE ? 'create' : 'tmpfile',
        header,
        flags: buf.readUInt32LE(p),
        mode: buf.readUInt32LE(p + 4),
        umask: size === 16 ? buf.readUInt32LE(p + 8) : 0,
        openFlags: size === 16 ? buf.readUInt32LE(p + 12) : 0,
        name: buf.subarray(p + size, nul),
      };
    }

    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
      const full = negotiatedMinor >= 9;
      need(header, argLen, full ? 40 : COMPAT_WRITE_IN_SIZE, 'fuse_read_in');
      const readFlags = buf.readUInt32LE(p + 20);
      return {
        op: opcode === FUSE_READ ? 'read' : opcode === FUSE_READDIR ? 'readdir' : 'readdirplus',
        header,
        fh: id(buf, p, header),
        offset: u64(buf, p + 8),
        size: buf.readUInt32LE(p + 16),
        readFlags,
        lockOwner: full && readFlags & FUSE_READ_LOCKOWNER ? buf.readBigUInt64LE(p + 24) : 0n,
        flags: full ? buf.readUInt32LE(p + 32) : 0,
      };
    }

    case FUSE_WRITE: {
      const size = negotiatedMinor >= 9 ? 40 : COMPAT_WRITE_IN_SIZE;
      need(header, argLen, size, 'fuse_write_in');
      const dataLen = buf.readUInt32LE(p + 16);
      // The kernel sends exactly `size` bytes; any other amount means we mislaid the struct
      if (argLen - size !== dataLen) throw malformed(header, `write of ${dataLen} bytes carries ${argLen - size}`);
      const writeFlags = buf.readUInt32LE(p + 20);
      return {
        op: 'write',
        header,
        fh: id(buf, p, header),
        offset: u64(buf, p + 8),
        size: dataLen,
        writeFlags,
        lockOwner: size === 40 && writeFlags & FUSE_WRITE_LOCKOWNER ? buf.readBigUInt64LE(p + 24) : 0n,
        flags: size === 40 ? buf.readUInt32LE(p + 32) : 0,
        data: buf.subarray(p + size, end),
      };
    }

    case FUSE_RELEASE:
    case FUSE_RELEASEDIR: {
      // lock_owner was added in 7.8; before, the struct was 16 bytes
      const full = negotiatedMinor >= 8;
      need(header, argLen, full ? 24 : 16, 'fuse_release_in');
      return {
        op: opcode === FUSE_RELEASE ? 'release' : 'releasedir',
        header,
        fh: id(buf, p, header),
        flags: buf.readUInt32LE(p + 8),
        releaseFlags: buf.readUInt32LE(p + 12),
        lockOwner: full ? buf.readBigUInt64LE(p + 16) : 0n,
      };
    }

    case FUSE_FLUSH:
      need(header, argLen, 24, 'fuse_flush_in');
      return { op: 'flush', header, fh: id(buf, p, header), lockOwner: buf.readBigUInt64LE(p + 16) };

    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
      need(header, argLen, 16, 'fuse_fsync_in');
      return {
        op: opcode === FUSE_FSYNC ? 'fsync' : 'fsyncdir',
        header,
        fh: id(buf, p, header),
        fsyncFlags: buf.readUInt32LE(p + 8),
      };

    case FUSE_SETXATTR: {
      const size = setxattrExt ? 16 : COMPAT_SETXATTR_IN_SIZE;
      need(header, argLen, size, 'fuse_setxattr_in');
      const valueLen = buf.readUInt32LE(p);
      const nul = nameEnd(buf, p + size, end, header);
      // Exactly `size` value bytes: a mismatch means the FUSE_SETXATTR_EXT setting is wrong
      if (end - (nul + 1) !== valueLen) throw malformed(header, `xattr value of ${valueLen} bytes carries ${end - nul - 1}`);
      return {
        op: 'setxattr',
        header,
        size: valueLen,
        flags: buf.readUInt32LE(p + 4),
        setxattrFlags: setxattrExt ? buf.readUInt32LE(p + 8) : 0,
        name: buf.subarray(p + size, nul),
        value: buf.subarray(nul + 1, end),
      };
    }

    case FUSE_GETXATTR: {
      need(header, argLen, 8, 'fuse_getxattr_in');
      const nul = nameEnd(buf, p + 8, end, header);
      return { op: 'getxattr', header, size: buf.readUInt32LE(p), name: buf.subarray(p + 8, nul) };
    }

    case FUSE_LISTXATTR:
      need(header, argLen, 8, 'fuse_getxattr_in');
      return { op: 'listxattr', header, size: buf.readUInt32LE(p) };

    case FUSE_INIT: {
      // Sent before negotiation, at the kernel's own size: 8 bytes before 7.6, 16 before 7.36, then 64
      need(header, argLen, 8, 'fuse_init_in');
      const major = buf.readUInt32LE(p);
      const minor = buf.readUInt32LE(p + 4);
      if (major !== FUSE_KERNEL_VERSION || minor < 6) return { op: 'init', header, major, minor, maxReadahead: 0, flags: 0n };
      need(header, argLen, minor >= 36 ? 64 : 16, 'fuse_init_in');
      const lo = buf.readUInt32LE(p + 12);
      let flags = BigInt(lo);
      if (minor >= 36 && (lo & INIT_EXT_BIT) !== 0) flags |= BigInt(buf.readUInt32LE(p + 16)) << 32n;
      return { op: 'init', header, major, minor, maxReadahead: buf.readUInt32LE(p + 8), flags };
    }

    case FUSE_ACCESS:
      need(header, argLen, 8, 'fuse_access_in');
      return { op: 'access', header, mask: buf.readUInt32LE(p) };

    case FUSE_INTERRUPT:
      need(header, argLen, 8, 'fuse_interrupt_in');
      return { op: 'interrupt', header, targetUnique: buf.readBigUInt64LE(p) };

    case FUSE_FALLOCATE:
      need(header, argLen, 32, 'fuse_fallocate_in');
      return {
        op: 'fallocate',
        header,
        fh: id(buf, p, header),
        offset: u64(buf, p + 8),
        length: u64(buf, p + 16),
        mode: buf.readUInt32LE(p + 24),
      };

    case FUSE_LSEEK:
      need(header, argLen, 24, 'fuse_lseek_in');
      return { op: 'lseek', header, fh: id(buf, p, header), offset: i64(buf, p + 8), whence: buf.readUInt32LE(p + 16) };

    case FUSE_COPY_FILE_RANGE:
      need(header, argLen, 56, 'fuse_copy_file_range_in');
      return {
        op: 'copy_file_range',
        header,
        fhIn: id(buf, p, header),
        offIn: u64(buf, p + 8),
        nodeidOut: id(buf, p + 16, header),
        fhOut: id(buf, p + 24, header),
        offOut: u64(buf, p + 32),
        len: u64(buf, p + 40),
        flags: u64(buf, p + 48),
      };

    default:
      // GETLK/SETLK/SETLKW, BMAP, IOCTL, POLL, NOTIFY_REPLY, DAX mapping, STATX, CUSE: answer ENOSYS
      // (NOTIFY_REPLY expects no answer; the kernel drops one for a unique it is not waiting on)
      return { op: 'unknown', header, opcode };
  }
}

/** The request's extension area (7.38 total_extlen: security context etc.), possibly empty. */
export function requestExtensions(buf: Buffer, header: InHeader): Buffer {
  return buf.subarray(header.len - header.totalExtlen * 8, header.len);
}

/** A name as a string when its bytes are valid UTF-8, else undefined: never a lossy decode. */
export function decodeName(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
}

/** Kernel time (seconds + nanoseconds) to milliseconds. */
export function timeToMs(sec: number, nsec: number): number {
  return sec * 1000 + nsec / 1e6;
}

/** fuse_dirent.type (the DT_* value) from a st_mode. */
export function direntType(mode: number): number {
  return (mode >>> 12) & 0xf;
}

// ---------------------------------------------------------------------------------------------------
// Replies. Each returns the parts of one reply for writev: parts[0] starts with fuse_out_header (len
// covers all parts); small fixed replies are a single buffer.

export interface Attr {
  ino: number;
  size: number;
  blocks: number;
  /** Sent exactly as given: seconds since the epoch (negative before it), nsec in [0, 1e9). */
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  /** FUSE_ATTR_*; 0 when absent. */
  flags?: number;
}

export interface Entry {
  /** 0 in a lookup reply means a cacheable ENOENT; in readdirplus, "no entry, just the name". */
  nodeid: number;
  generation: number;
  /** Cache timeouts in seconds, fractional allowed; clamped to [0, 2^31-1]. */
  entryValid: number;
  attrValid: number;
  attr: Attr;
}

export interface Statfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export interface InitReply {
  major: number;
  /** The minor we speak: min(kernel's, ours). Selects the struct size an older kernel expects. */
  minor: number;
  maxReadahead: number;
  /** 64-bit; split into flags/flags2. FUSE_INIT_EXT is added when bits above 31 are set. */
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  /** Timestamp granularity in ns (1 = ns precision). */
  timeGran: number;
  maxPages: number;
  mapAlignment?: number;
}

const MAX_TIMEOUT_SEC = 0x7fffffff;

/** Writes a u64/i64 held in a safe-integer number (two's complement for negatives). */
function writeU64(b: Buffer, off: number, n: number): void {
  b.writeUInt32LE(n >>> 0, off);
  b.writeUInt32LE(Math.floor(n / TWO32) >>> 0, off + 4);
}

function writeOutHeader(b: Buffer, len: number, error: number, unique: bigint): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
}

/** A time as fuse_attr holds it: i64 seconds, u32 nanoseconds. */
function writeTime(b: Buffer, secOff: number, nsecOff: number, t: Timespec): void {
  writeU64(b, secOff, t.sec);
  b.writeUInt32LE(t.nsec >>> 0, nsecOff);
}

/** A cache timeout in (fractional) seconds as (sec, nsec). */
function writeTimeout(b: Buffer, secOff: number, nsecOff: number, seconds: number): void {
  let sec = 0;
  let nsec = 0;
  if (seconds > 0) {
    if (seconds >= MAX_TIMEOUT_SEC) {
      sec = MAX_TIMEOUT_SEC;
    } else {
      sec = Math.floor(seconds);
      nsec = Math.round((seconds - sec) * 1e9);
      if (nsec >= 1e9) {
        sec += 1;
        nsec -= 1e9;
      }
    }
  }
  writeU64(b, secOff, sec);
  b.writeUInt32LE(nsec, nsecOff);
}

function writeAttr(b: Buffer, o: number, a: Attr): void {
  writeU64(b, o, a.ino);
  writeU64(b, o + 8, a.size);
  writeU64(b, o + 16, a.blocks);
  writeTime(b, o + 24, o + 48, a.atime);
  writeTime(b, o + 32, o + 52, a.mtime);
  writeTime(b, o + 40, o + 56, a.ctime);
  b.writeUInt32LE(a.mode >>> 0, o + 60);
  b.writeUInt32LE(a.nlink >>> 0, o + 64);
  b.writeUInt32LE(a.uid >>> 0, o + 68);
  b.writeUInt32LE(a.gid >>> 0, o + 72);
  b.writeUInt32LE(a.rdev >>> 0, o + 76);
  b.writeUInt32LE(a.blksize >>> 0, o + 80);
  b.writeUInt32LE((a.flags ?? 0) >>> 0, o + 84);
}

function writeEntry(b: Buffer, o: number, e: Entry): void {
  writeU64(b, o, e.nodeid);
  writeU64(b, o + 8, e.generation);
  writeTimeout(b, o + 16, o + 32, e.entryValid);
  writeTimeout(b, o + 24, o + 36, e.attrValid);
  writeAttr(b, o + 40, e.attr);
}

/** Header plus a fixed struct in one pooled (unzeroed) buffer: the caller writes every byte of the struct. */
function fixed(unique: bigint, size: number): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE + size);
  writeOutHeader(b, OUT_HEADER_SIZE + size, 0, unique);
  return b;
}

/** An error reply. `errno` may be given positive or negative; outside 1..511 (which the kernel refuses) it becomes EIO. */
export function replyError(unique: bigint, errno: number): Buffer[] {
  let e = errno < 0 ? -errno : errno;
  if (!(Number.isInteger(e) && e >= 1 && e <= 511)) e = EIO;
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  writeOutHeader(b, OUT_HEADER_SIZE, -e, unique);
  return [b];
}

/** Success without payload (unlink, rmdir, rename, setxattr, removexattr, flush, release, fsync, access, fallocate...). */
export function replyEmpty(unique: bigint): Buffer[] {
  return [fixed(unique, 0)];
}

/** lookup, mknod, mkdir, symlink, link. */
export function replyEntry(unique: bigint, entry: Entry): Buffer[] {
  const b = fixed(unique, ENTRY_OUT_SIZE);
  writeEntry(b, OUT_HEADER_SIZE, entry);
  return [b];
}

/** getattr, setattr. `attrValid` in (fractional) seconds. */
export function replyAttr(unique: bigint, attr: Attr, attrValid: number): Buffer[] {
  const b = fixed(unique, ATTR_OUT_SIZE);
  writeTimeout(b, OUT_HEADER_SIZE, OUT_HEADER_SIZE + 8, attrValid);
  b.writeUInt32LE(0, OUT_HEADER_SIZE + 12);
  writeAttr(b, OUT_HEADER_SIZE + 16, attr);
  return [b];
}

function writeOpenOut(b: Buffer, o: number, fh: number, openFlags: number): void {
  writeU64(b, o, fh);
  b.writeUInt32LE(openFlags >>> 0, o + 8);
  b.writeUInt32LE(0, o + 12);
}

/** open, opendir. */
export function replyOpen(unique: bigint, fh: number, openFlags: number): Buffer[] {
  const b = fixed(unique, OPEN_OUT_SIZE);
  writeOpenOut(b, OUT_HEADER_SIZE, fh, openFlags);
  return [b];
}

/** create, tmpfile: fuse_entry_out then fuse_open_out. */
export function replyCreate(unique: bigint, entry: Entry, fh: number, openFlags: number): Buffer[] {
  const b = fixed(unique, ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
  writeEntry(b, OUT_HEADER_SIZE, entry);
  writeOpenOut(b, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, fh, openFlags);
  return [b];
}

/** write, and copy_file_range (whose reply is also a fuse_write_out: at most 4 GiB - 1 per call). */
export function replyWrite(unique: bigint, size: number): Buffer[] {
  const b = fixed(unique, WRITE_OUT_SIZE);
  b.writeUInt32LE(size >>> 0, OUT_HEADER_SIZE);
  b.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
  return [b];
}

/** Raw payload: read, readlink (no NUL), getxattr/listxattr with size > 0, readdir/readdirplus (a writer's data()). */
export function replyData(unique: bigint, data: Buffer | readonly Buffer[]): Buffer[] {
  const hdr = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  if (Buffer.isBuffer(data)) {
    writeOutHeader(hdr, OUT_HEADER_SIZE + data.length, 0, unique);
    return [hdr, data];
  }
  const parts: Buffer[] = [hdr];
  let len = OUT_HEADER_SIZE;
  for (const d of data) {
    len += d.length;
    parts.push(d);
  }
  writeOutHeader(hdr, len, 0, unique);
  return parts;
}

/** getxattr/listxattr with size 0: the size the value/list would need. */
export function replyXattrSize(unique: bigint, size: number): Buffer[] {
  const b = fixed(unique, 8);
  b.writeUInt32LE(size >>> 0, OUT_HEADER_SIZE);
  b.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
  return [b];
}

export function replyStatfs(unique: bigint, st: Statfs): Buffer[] {
  const b = fixed(unique, STATFS_OUT_SIZE);
  const o = OUT_HEADER_SIZE;
  writeU64(b, o, st.blocks);
  writeU64(b, o + 8, st.bfree);
  writeU64(b, o + 16, st.bavail);
  writeU64(b, o + 24, st.files);
  writeU64(b, o + 32, st.ffree);
  b.writeUInt32LE(st.bsize >>> 0, o + 40);
  b.writeUInt32LE(st.namelen >>> 0, o + 44);
  b.writeUInt32LE(st.frsize >>> 0, o + 48);
  b.fill(0, o + 52, o + STATFS_OUT_SIZE); // padding, spare[6]
  return [b];
}

export function replyLseek(unique: bigint, offset: number): Buffer[] {
  const b = fixed(unique, 8);
  writeU64(b, OUT_HEADER_SIZE, offset);
  return [b];
}

/**
 * The INIT reply: the 64-byte fuse_init_out of 7.23+, or the 24 bytes (8 before 7.5) a kernel below
 * 7.23 expects, chosen by `init.minor`, so that an old kernel does not reject an over-long reply.
 */
export function replyInit(unique: bigint, init: InitReply): Buffer[] {
  const size = init.minor < 5 ? COMPAT_INIT_OUT_SIZE : init.minor < 23 ? COMPAT_22_INIT_OUT_SIZE : INIT_OUT_SIZE;
  const b = Buffer.alloc(OUT_HEADER_SIZE + INIT_OUT_SIZE); // once per mount: zeroed, then cut to size
  writeOutHeader(b, OUT_HEADER_SIZE + size, 0, unique);
  const o = OUT_HEADER_SIZE;
  let flags = BigInt.asUintN(64, init.flags);
  const hi = Number(flags >> 32n);
  // The kernel reads flags2 only under FUSE_INIT_EXT; without it the high bits would silently vanish
  if (hi !== 0) flags |= FUSE_INIT_EXT;
  b.writeUInt32LE(init.major >>> 0, o);
  b.writeUInt32LE(init.minor >>> 0, o + 4);
  b.writeUInt32LE(init.maxReadahead >>> 0, o + 8);
  b.writeUInt32LE(Number(flags & 0xffffffffn), o + 12);
  b.writeUInt16LE(init.maxBackground & 0xffff, o + 16);
  b.writeUInt16LE(init.congestionThreshold & 0xffff, o + 18);
  b.writeUInt32LE(init.maxWrite >>> 0, o + 20);
  b.writeUInt32LE(init.timeGran >>> 0, o + 24);
  b.writeUInt16LE(init.maxPages & 0xffff, o + 28);
  b.writeUInt16LE((init.mapAlignment ?? 0) & 0xffff, o + 30);
  b.writeUInt32LE(hi, o + 32);
  return [b.subarray(0, OUT_HEADER_SIZE + size)];
}

// ---------------------------------------------------------------------------------------------------
// Directory listings

/** Bytes one fuse_dirent takes for a name of `nameLen` bytes (8-byte aligned). */
export function direntSize(nameLen: number): number {
  return (DIRENT_BASE_SIZE + nameLen + 7) & ~7;
}

/** Bytes one fuse_direntplus takes for a name of `nameLen` bytes (8-byte aligned). */
export function direntPlusSize(nameLen: number): number {
  return (DIRENTPLUS_BASE_SIZE + nameLen + 7) & ~7;
}

/** Byte length of a dirent name; throws RangeError for names the kernel would fail the whole listing over. */
function nameLength(name: Buffer | string): number {
  let n: number;
  let bad: boolean;
  if (typeof name === 'string') {
    n = Buffer.byteLength(name, 'utf8');
    bad = name.includes('/') || name.includes('\0');
  } else {
    n = name.length;
    bad = name.indexOf(0x2f) !== -1 || name.indexOf(0) !== -1;
  }
  if (n === 0 || n > FUSE_NAME_MAX) throw new RangeError(`dirent name of ${n} bytes`);
  if (bad) throw new RangeError('dirent name contains "/" or NUL');
  return n;
}

/** Writes dirent fields and the padded name at `o`; returns the record's end. */
function writeDirent(b: Buffer, o: number, ino: number, off: number, type: number, name: Buffer | string, n: number): number {
  writeU64(b, o, ino);
  writeU64(b, o + 8, off);
  b.writeUInt32LE(n, o + 16);
  b.writeUInt32LE(type >>> 0, o + 20);
  if (typeof name === 'string') b.write(name, o + 24, n, 'utf8');
  else name.copy(b, o + 24);
  const nameEndAt = o + 24 + n;
  const recEnd = (nameEndAt + 7) & ~7;
  if (recEnd > nameEndAt) b.fill(0, nameEndAt, recEnd);
  return recEnd;
}

abstract class ListingWriter {
  protected readonly buf: Buffer;
  protected used = 0;
  protected n = 0;

  /** `size`: the size field of the readdir request; the reply must not exceed it. */
  constructor(readonly size: number) {
    this.buf = Buffer.allocUnsafe(size > 0 ? Math.floor(size) : 0);
  }

  /** Entries added so far. */
  get count(): number {
    return this.n;
  }

  /** Bytes used so far. */
  get length(): number {
    return this.used;
  }

  /** The packed records, a view: pass to replyData. An empty listing tells the kernel "end of directory". */
  data(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

/**
 * Packs fuse_dirent records for a READDIR reply. `off` of each entry is the offset of the NEXT one
 * (what the kernel sends back to continue); `type` is a DT_* value (see direntType).
 */
export class DirentWriter extends ListingWriter {
  /** Adds one entry; false (nothing written) when it does not fit, which ends this reply. */
  add(name: Buffer | string, ino: number, off: number, type: number): boolean {
    const n = nameLength(name);
    const rec = direntSize(n);
    if (this.used + rec > this.buf.length) return false;
    this.used = writeDirent(this.buf, this.used, ino, off, type, name, n);
    this.n++;
    return true;
  }
}

/**
 * Packs fuse_direntplus records for a READDIRPLUS reply. Each entry with a non-zero nodeid counts as
 * a lookup (nlookup + 1) for the kernel, except "." and "..", which it skips; nodeid 0 sends the name only.
 */
export class DirentPlusWriter extends ListingWriter {
  /** Adds one entry; ino and type come from entry.attr. False (nothing written) when it does not fit. */
  add(name: Buffer | string, off: number, entry: Entry): boolean {
    const n = nameLength(name);
    const rec = direntPlusSize(n);
    if (this.used + rec > this.buf.length) return false;
    writeEntry(this.buf, this.used, entry);
    this.used = writeDirent(this.buf, this.used + ENTRY_OUT_SIZE, entry.attr.ino, off, direntType(entry.attr.mode), name, n);
    this.n++;
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------
// Notifications (unique 0, error = notify code); the kernel answers a bad one with an error on write

function notifyHeader(size: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER_SIZE + size);
  writeOutHeader(b, OUT_HEADER_SIZE + size, code, 0n);
  return b;
}

/** Drops cached data of `nodeid` from `off` for `len` bytes (len <= 0: to the end); off < 0: attributes only. */
export function notifyInvalInode(nodeid: number, off: number, len: number): Buffer[] {
  const b = notifyHeader(24, FUSE_NOTIFY_INVAL_INODE);
  writeU64(b, OUT_HEADER_SIZE, nodeid);
  writeU64(b, OUT_HEADER_SIZE + 8, off);
  writeU64(b, OUT_HEADER_SIZE + 16, len);
  return [b];
}

function nameBytes(name: Buffer | string): Buffer {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
}

/** Drops the dentry `name` in `parent`. `flags`: FUSE_EXPIRE_ONLY (7.38, if the kernel has FUSE_HAS_EXPIRE_ONLY). */
export function notifyInvalEntry(parent: number, name: Buffer | string, flags = 0): Buffer[] {
  const nb = nameBytes(name);
  // The kernel insists on exactly struct + name + NUL
  const b = notifyHeader(16 + nb.length + 1, FUSE_NOTIFY_INVAL_ENTRY);
  const o = OUT_HEADER_SIZE;
  writeU64(b, o, parent);
  b.writeUInt32LE(nb.length, o + 8);
  b.writeUInt32LE(flags >>> 0, o + 12);
  nb.copy(b, o + 16);
  b[o + 16 + nb.length] = 0;
  return [b];
}

/** Tells the kernel `name` in `parent` (node `child`) is gone, like inval-entry plus d_delete. */
export function notifyDelete(parent: number, child: number, name: Buffer | string): Buffer[] {
  const nb = nameBytes(name);
  const b = notifyHeader(24 + nb.length + 1, FUSE_NOTIFY_DELETE);
  const o = OUT_HEADER_SIZE;
  writeU64(b, o, parent);
  writeU64(b, o + 8, child);
  b.writeUInt32LE(nb.length, o + 16);
  b.writeUInt32LE(0, o + 20);
  nb.copy(b, o + 24);
  b[o + 24 + nb.length] = 0;
  return [b];
}
