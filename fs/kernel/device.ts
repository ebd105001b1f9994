// The FUSE device layer in TypeScript: opens /dev/fuse, mounts it, reads kernel requests into a pool of buffers
// from Node's event loop, and writes replies, through svault's addon (fs/kernel/native/fuse_dev.c, built by
// scripts/build-fuse-dev.mjs at install). It does not speak the FUSE protocol: requests arrive as raw bytes and
// replies leave as raw bytes; encoding both is the protocol layer's job.
//
// A process must never touch a mount it serves synchronously (stat, readdir, ...): the request would wait
// for a reply that this same, blocked, event loop has to write. Only other processes may use the mount.
import { execFile } from 'node:child_process';
import { closeSync } from 'node:fs';
import path from 'node:path';
import { loadAddon } from '../../src/core/util/load-addon.js';
import { findOnPath } from '../path-search.js';

/** One request as the kernel wrote it: the buffer it was read into and how many bytes it fills. */
export type DeviceRequest = [buffer: Buffer, length: number];

/** The addon's reader: polls fd and reads requests into buffers supplied to it, in the order supplied. */
export interface NativeReader {
  /**
   * Hands over a buffer (at least MIN_READ_BUFFER bytes) to read one request into; it comes back through
   * onRequests. Returns false, keeping nothing, once the reader has stopped.
   */
  supply(buffer: Uint8Array): boolean;
  /** Stops reading and lets go of every buffer not yet filled. onClosed is not called. Idempotent. */
  stop(): void;
}

export type OnRequests = (batch: DeviceRequest[]) => void;
/** code is undefined when the filesystem was unmounted (ENODEV), else the errno name that ended reading. */
export type OnClosed = (code?: string) => void;

export interface FuseDeviceAddon {
  openDevice(): number;
  mount(fd: number, mountpoint: string, fstype: string, source: string, flags: number, data: string): void;
  umount(mountpoint: string, flags: number): void;
  mountWithFusermount(mountpoint: string, options: string, fusermountPath: string): number;
  writeReply(fd: number, parts: readonly Uint8Array[]): number;
  Reader: new (fd: number, onRequests: OnRequests, onClosed: OnClosed) => NativeReader;
  constants: Readonly<Record<keyof typeof constants, number>>;
}

/** Linux's mount(2) and umount2(2) flags (an ABI: the addon exports the same values), and the kernel's minimum read size. */
export const constants = Object.freeze({
  MS_RDONLY: 1,
  MS_NOSUID: 2,
  MS_NODEV: 4,
  MS_NOEXEC: 8,
  MS_SYNCHRONOUS: 16,
  MS_DIRSYNC: 128,
  MS_NOATIME: 1024,
  MS_NODIRATIME: 2048,
  MS_RELATIME: 1 << 21,
  MS_STRICTATIME: 1 << 24,
  MS_LAZYTIME: 1 << 25,
  MNT_FORCE: 1,
  MNT_DETACH: 2,
  MNT_EXPIRE: 4,
  UMOUNT_NOFOLLOW: 8,
  /** FUSE_MIN_READ_BUFFER: the kernel refuses smaller read buffers. */
  MIN_READ_BUFFER: 8192,
});

/** Room for a request carrying max_write bytes: the kernel wants max_write plus its headers per read buffer. */
export const DEFAULT_MAX_WRITE = 1024 * 1024;
export const DEFAULT_BUFFER_SIZE = DEFAULT_MAX_WRITE + 4096;

// From fs/kernel/ under tsx, and from dist/fs/kernel/ once compiled: the addon is built in the source tree.
const CANDIDATES = ['./native/build/Release/svault_fuse_dev.node', '../../../fs/kernel/native/build/Release/svault_fuse_dev.node'];
const FUNCTIONS = ['openDevice', 'mount', 'umount', 'mountWithFusermount', 'writeReply', 'Reader'] as const;

let loaded: FuseDeviceAddon | undefined;

/**
 * The addon, loaded on first use so that importing this module never fails where it is not built.
 * Throws, saying why, if it cannot be loaded.
 */
export function fuseDevice(): FuseDeviceAddon {
  if (loaded) return loaded;
  const { addon, failures } = loadAddon<FuseDeviceAddon>(import.meta.url, CANDIDATES, FUNCTIONS);
  if (addon) {
    loaded = addon;
    return addon;
  }
  const reason = failures.length > 0 ? failures.join('; ') : 'it is not built (npm install runs scripts/build-fuse-dev.mjs)';
  throw new Error(`svault's FUSE device addon is unavailable: ${reason}`);
}

/** Opens /dev/fuse non-blocking and close-on-exec. Throws with code = errno name. */
export function openDevice(): number {
  return fuseDevice().openDevice();
}

/**
 * Writes one reply (fuse_out_header and payload pieces) in one writev(); the kernel takes it whole or not at all.
 * Returns the bytes written, or 0 if the request no longer exists (interrupted): nobody waits for that reply.
 */
export function writeReply(fd: number, parts: readonly Uint8Array[]): number {
  return fuseDevice().writeReply(fd, parts);
}

export interface MountOptions {
  mountpoint: string;
  /** The source shown in /proc/mounts and df. Default "svault". */
  fsname?: string;
  /** The type is fuse.<subtype>. Default "svault". */
  subtype?: string;
  readOnly?: boolean;
  /** Let other users than the mounting one in (non-root: needs user_allow_other in /etc/fuse.conf). */
  allowOther?: boolean;
  /** Let the kernel check permissions from the mode bits instead of asking the filesystem. */
  defaultPermissions?: boolean;
  /** Honour setuid bits and device files; both off unless asked (and fusermount refuses them to non-root). */
  suid?: boolean;
  dev?: boolean;
  noexec?: boolean;
  noatime?: boolean;
  /** Largest read request the kernel sends. */
  maxRead?: number;
}

export interface UserMountOptions extends MountOptions {
  /** fusermount3 or fusermount to run; by default the first of them on PATH. */
  fusermount?: string;
}

const SUBTYPE = /^[A-Za-z0-9_.+-]+$/;

function checkNames(opts: MountOptions): { fsname: string; subtype: string } {
  if (typeof opts.mountpoint !== 'string' || opts.mountpoint === '') throw new TypeError('mountpoint must be a non-empty string');
  const fsname = opts.fsname ?? 'svault';
  const subtype = opts.subtype ?? 'svault';
  if (typeof fsname !== 'string' || fsname === '' || fsname.includes('\0')) throw new TypeError('fsname must be a non-empty string without NUL');
  if (typeof subtype !== 'string' || !SUBTYPE.test(subtype)) throw new TypeError('subtype must be letters, digits and _.+- only');
  if (opts.maxRead !== undefined && !(Number.isSafeInteger(opts.maxRead) && opts.maxRead > 0)) {
    throw new TypeError('maxRead must be a positive integer');
  }
  return { fsname, subtype };
}

/**
 * The kernel's option string for mount(2). blksize is not offered: the kernel takes it only for fuseblk
 * (block-device-backed) mounts.
 */
export function kernelMountData(fd: number, opts: MountOptions, uid: number, gid: number): string {
  const parts = [`fd=${fd}`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`];
  if (opts.allowOther) parts.push('allow_other');
  if (opts.defaultPermissions) parts.push('default_permissions');
  if (opts.maxRead !== undefined) parts.push(`max_read=${opts.maxRead}`);
  return parts.join(',');
}

export function mountFlags(opts: MountOptions): number {
  let flags = 0;
  if (!opts.suid) flags |= constants.MS_NOSUID;
  if (!opts.dev) flags |= constants.MS_NODEV;
  if (opts.readOnly) flags |= constants.MS_RDONLY;
  if (opts.noexec) flags |= constants.MS_NOEXEC;
  if (opts.noatime) flags |= constants.MS_NOATIME;
  return flags;
}

/** fusermount reads a backslash as escaping the next character: a comma in a value must not end the option. */
function escapeOption(value: string): string {
  return value.replace(/[\\,]/g, (c) => `\\${c}`);
}

/** The -o string for fusermount; it adds fd=, rootmode=, user_id= and group_id= itself. */
export function fusermountOptions(opts: MountOptions): string {
  const { fsname, subtype } = checkNames(opts);
  const parts = [opts.readOnly ? 'ro' : 'rw', opts.suid ? 'suid' : 'nosuid', opts.dev ? 'dev' : 'nodev'];
  if (opts.noexec) parts.push('noexec');
  if (opts.noatime) parts.push('noatime');
  parts.push(`fsname=${escapeOption(fsname)}`, `subtype=${subtype}`);
  if (opts.allowOther) parts.push('allow_other');
  if (opts.defaultPermissions) parts.push('default_permissions');
  if (opts.maxRead !== undefined) parts.push(`max_read=${opts.maxRead}`);
  return parts.join(',');
}

/**
 * Mounts with mount(2), which needs CAP_SYS_ADMIN (root). Returns the /dev/fuse fd: the kernel's FUSE_INIT is
 * already waiting on it. The caller owns the fd; closing it aborts the connection.
 */
export function mountFuse(opts: MountOptions): number {
  const { fsname, subtype } = checkNames(opts);
  const dev = fuseDevice();
  const fd = dev.openDevice();
  try {
    const data = kernelMountData(fd, opts, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    dev.mount(fd, opts.mountpoint, `fuse.${subtype}`, fsname, mountFlags(opts), data);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** fusermount3, else fusermount, on PATH; null if neither is there. */
export function findFusermount(pathVar = process.env.PATH ?? ''): string | null {
  return findOnPath('fusermount3', pathVar) ?? findOnPath('fusermount', pathVar) ?? null;
}

/**
 * Mounts without privileges through the setuid fusermount, as libfuse does; returns the /dev/fuse fd it passes
 * back (non-blocking, close-on-exec). Blocks the event loop while fusermount runs. Throws with fusermount's
 * own message if it fails.
 */
export function mountFuseAsUser(opts: UserMountOptions): number {
  const options = fusermountOptions(opts);
  const program = opts.fusermount ?? findFusermount();
  if (!program) throw new Error('neither fusermount3 nor fusermount is on PATH (Debian: apt-get install fuse3)');
  return fuseDevice().mountWithFusermount(path.resolve(opts.mountpoint), options, program);
}

/**
 * Unmounts: umount2(2) as root, `fusermount -u` otherwise; lazy detaches it even while busy. Calling this from
 * the process that serves the mount is fine: unmounting sends that process no request it must answer first.
 */
export async function unmountFuse(mountpoint: string, lazy = false, fusermount?: string): Promise<void> {
  if (process.getuid?.() === 0) {
    fuseDevice().umount(mountpoint, lazy ? constants.MNT_DETACH : 0);
    return;
  }
  const program = fusermount ?? findFusermount();
  if (!program) throw new Error('cannot unmount without root: neither fusermount3 nor fusermount is on PATH');
  await new Promise<void>((resolve, reject) => {
    execFile(program, ['-u', ...(lazy ? ['-z'] : []), '--', mountpoint], { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${program} -u ${mountpoint} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

export interface DeviceReaderOptions {
  /** Bytes per buffer: at least max_write + 4096 for the max_write given in the INIT reply. */
  bufferSize?: number;
  /** Buffers in the pool: requests read and not yet released at most, i.e. requests in flight. */
  buffers?: number;
}

/**
 * Reads requests from a /dev/fuse fd into a fixed pool of buffers. onRequests gets every request read in one
 * wake-up of the event loop at once; each buffer stays the caller's until release() gives it back (after the
 * reply is written). With every buffer out, reading pauses and requests wait in the kernel.
 */
export class DeviceReader {
  readonly fd: number;
  readonly bufferSize: number;
  readonly #reader: NativeReader;
  readonly #pool = new Set<Buffer>();
  readonly #out = new Set<Buffer>();
  #closed = false;

  constructor(fd: number, onRequests: OnRequests, onClosed: OnClosed, opts: DeviceReaderOptions = {}) {
    const bufferSize = opts.bufferSize ?? DEFAULT_BUFFER_SIZE;
    const count = opts.buffers ?? 8;
    if (!Number.isSafeInteger(bufferSize) || bufferSize < constants.MIN_READ_BUFFER) {
      throw new TypeError(`bufferSize must be an integer of at least ${constants.MIN_READ_BUFFER}`);
    }
    if (!Number.isSafeInteger(count) || count < 1) throw new TypeError('buffers must be a positive integer');
    if (typeof onRequests !== 'function' || typeof onClosed !== 'function') throw new TypeError('onRequests and onClosed must be functions');
    this.fd = fd;
    this.bufferSize = bufferSize;
    this.#reader = new (fuseDevice().Reader)(
      fd,
      (batch) => {
        for (const [buffer] of batch) this.#out.add(buffer);
        onRequests(batch);
      },
      (code) => {
        this.#closed = true;
        onClosed(code);
      },
    );
    // Unpooled and uninitialised: the kernel writes each request before we read it, and untouched pages cost nothing.
    for (let i = 0; i < count; i++) {
      const buffer = Buffer.allocUnsafeSlow(bufferSize);
      this.#pool.add(buffer);
      this.#reader.supply(buffer);
    }
  }

  /** Gives a buffer from onRequests back for another request. Each buffer once per request. */
  release(buffer: Buffer): void {
    if (!this.#out.delete(buffer)) {
      throw new TypeError(this.#pool.has(buffer) ? 'this buffer was already released' : 'this buffer is not from this reader');
    }
    if (!this.#closed) this.#reader.supply(buffer);
  }

  /** Stops reading; onClosed is not called. Stop before closing the fd. */
  stop(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.stop();
  }

  /** Whether reading has ended, through stop() or because the device did (onClosed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Buffers handed out by onRequests and not released yet. */
  get outstanding(): number {
    return this.#out.size;
  }
}
