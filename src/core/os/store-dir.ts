// A directory of the store, held open, whose entries are reached one name at a time without following
// links (issue 22, finding 2). Whoever can write to the store (a synced folder, a USB stick, another
// user) could plant a link at svault.unclean or blobs/3f, and svault, often running as root, would
// truncate or write whatever the link points to. Here every file and subdirectory is opened relative to
// the descriptor of its directory with O_NOFOLLOW (src/core/os/native/at.c), and must then turn out to be
// a regular file or a directory. The store's own path is followed as given: the user chose it.

import { closeSync, constants as fsConstants, fstatSync, fsyncSync, openSync, readdirSync, readSync, type Stats, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BadStoreError } from '../errors.js';
import { nativeOs } from './native-os.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_DIRECTORY, O_NONBLOCK } = fsConstants;
/** open(2)'s O_PATH (Linux): a handle to the name itself, a link included, for fstat only. Node does not export it. */
const O_PATH = 0o10000000;

export class StoreDir {
  private closed = false;

  private constructor(
    /** The directory's descriptor. */
    readonly fd: number,
    /** Its path, for messages only: nothing is opened through it. */
    readonly path: string,
    /** Opened by node:fs (the store's own path) rather than by openAt: closed the same way. */
    private readonly openedByNode = false,
  ) {}

  /** The directory at `path` (links in the path itself are followed). */
  static open(path: string): StoreDir {
    return new StoreDir(openSync(path, O_RDONLY | O_DIRECTORY), path, true);
  }

  /** Opens the directory at `path`, lends it to `use`, and closes it whatever `use` does. */
  static using<T>(path: string, use: (dir: StoreDir) => T): T {
    const dir = StoreDir.open(path);
    try {
      return use(dir);
    } finally {
      dir.close();
    }
  }

  /** The subdirectory `name`, created (mode 0700) first when `create` and it is not there. */
  subdir(name: string, create = false): StoreDir {
    if (create) {
      try {
        nativeOs().mkdirAt(this.live(), name, 0o700);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    return new StoreDir(this.openChecked(name, O_RDONLY | O_DIRECTORY, 0, 'directory'), join(this.path, name));
  }

  /** The subdirectory `name`, or null when there is none. */
  subdirIfAny(name: string): StoreDir | null {
    try {
      return this.subdir(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /**
   * Opens the regular file `name` (O_NOFOLLOW and O_CLOEXEC added to `flags`), or throws: ENOENT as Node
   * would, and BadStoreError for a link, a directory, a FIFO or a device in its place. O_NONBLOCK is
   * always added, so a FIFO planted there fails to open or is refused instead of blocking the server.
   */
  openFile(name: string, flags: number, mode = 0o600): number {
    return this.openChecked(name, flags | O_NONBLOCK, mode, 'file');
  }

  /** lstat of `name`, or null when there is none. */
  stat(name: string): Stats | null {
    let fd: number;
    try {
      fd = nativeOs().openAt(this.live(), name, O_PATH, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      return fstatSync(fd);
    } finally {
      closeOpened(fd);
    }
  }

  /** The whole regular file `name`, or null when there is none; larger than `maxBytes` is refused. */
  readFile(name: string, maxBytes: number): Buffer | null {
    let fd: number;
    try {
      fd = this.openFile(name, O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const size = fstatSync(fd).size;
      if (size > maxBytes) throw new BadStoreError(this.path, `${name} is larger than such a file can be (${size} bytes)`);
      const buf = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const n = readSync(fd, buf, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      return buf.subarray(0, off);
    } finally {
      closeOpened(fd);
    }
  }

  /** Creates `name` with `data`, failing with EEXIST when any entry of that name exists (a link included). */
  createFile(name: string, data: Buffer | string, mode = 0o600): void {
    const fd = this.openFile(name, O_WRONLY | O_CREAT | O_EXCL, mode);
    try {
      writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      closeOpened(fd);
    }
  }

  /**
   * Replaces `name` atomically and durably: a temporary file created exclusively (a leftover of a crash
   * is removed first), written and fsynced, renamed over `name`, and the directory fsynced.
   */
  writeFileAtomic(name: string, data: Buffer | string, mode = 0o600): void {
    const tmp = `${name}.tmp-${process.pid}`;
    this.remove(tmp);
    const fd = this.openFile(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
    try {
      writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } catch (err) {
      closeOpened(fd);
      this.remove(tmp);
      throw err;
    }
    closeOpened(fd);
    nativeOs().renameAt(this.live(), tmp, this.live(), name);
    this.sync();
  }

  /** Renames `from` over `to` in this directory, atomically, and makes the rename durable (no link is followed). */
  renameFile(from: string, to: string): void {
    nativeOs().renameAt(this.live(), from, this.live(), to);
    this.sync();
  }

  /** Truncates or creates the regular file `name` and writes `data` (not durable; see writeFileAtomic). */
  writeFile(name: string, data: Buffer | string, mode = 0o600): void {
    const fd = this.openFile(name, O_WRONLY | O_CREAT | O_TRUNC, mode);
    try {
      writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      closeOpened(fd);
    }
  }

  /** Removes the entry `name` (a link is removed, never followed); false when there was none. */
  remove(name: string): boolean {
    try {
      nativeOs().unlinkAt(this.live(), name, false);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Removes the empty subdirectory `name`. */
  removeDir(name: string): void {
    nativeOs().unlinkAt(this.live(), name, true);
  }

  /** Removes `name` whatever it is: a file, a link, or a directory with everything in it (links not followed). */
  removeTree(name: string): void {
    const st = this.stat(name);
    if (!st) return;
    if (!st.isDirectory()) {
      this.remove(name);
      return;
    }
    const sub = this.subdir(name);
    try {
      for (const child of sub.names()) sub.removeTree(child);
    } finally {
      sub.close();
    }
    this.removeDir(name);
  }

  /** The names in this directory. */
  names(): string[] {
    return readdirSync(this.viaDescriptor());
  }

  /**
   * A path that reaches `name` in this directory through the descriptor (/proc/self/fd/N/name), for the
   * few callers that need a path: Node's asynchronous calls, statfs, SQLite. The kernel resolves the
   * /proc link to the directory this descriptor holds, not to whatever is at its path now; links in
   * `name` itself are followed unless the caller opens with O_NOFOLLOW.
   */
  viaDescriptor(name?: string): string {
    const dir = `/proc/self/fd/${this.live()}`;
    return name === undefined ? dir : `${dir}/${name}`;
  }

  /** fsync of the directory: names created, renamed or removed in it are durable. */
  sync(): void {
    fsyncSync(this.live());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.openedByNode) closeSync(this.fd);
    else closeOpened(this.fd);
  }

  /** The descriptor, which must still be open: a closed one's number may already name another file. */
  private live(): number {
    if (this.closed) throw new Error(`${this.path}: used after close`);
    return this.fd;
  }

  private openChecked(name: string, flags: number, mode: number, want: 'file' | 'directory'): number {
    let fd: number;
    try {
      fd = nativeOs().openAt(this.live(), name, flags, mode);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A link at `name` is ELOOP (or ENOTDIR with O_DIRECTORY); a FIFO without a writer is ENXIO.
      if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENXIO') throw this.unexpected(name, want);
      throw err;
    }
    const st = fstatSync(fd);
    if (want === 'file' ? !st.isFile() : !st.isDirectory()) {
      closeOpened(fd);
      throw this.unexpected(name, want);
    }
    return fd;
  }

  private unexpected(name: string, want: 'file' | 'directory'): BadStoreError {
    const st = this.stat(name);
    const what = !st ? 'gone' : st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'a FIFO, socket or device';
    return new BadStoreError(this.path, `${name} should be a ${want === 'file' ? 'regular file' : 'directory'} but is ${what}; svault never follows links or opens special files in a store`);
  }
}

/**
 * Closes a descriptor that openAt or openFile returned. They are closed by the addon that opened them:
 * in a worker thread, node:fs warns about closing a descriptor it did not open itself.
 */
export function closeOpened(fd: number): void {
  nativeOs().closeFd(fd);
}

function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}
