// Types for fuse-native 2.2.6 as patched by scripts/fuse-native.patch (the
// package ships none). Signatures follow index.js and fuse-native.c, which
// differ from the README in places noted below.
//
// Conventions for every op:
// - Callbacks take a number first: 0 for success or a negative errno such as
//   Fuse.ENOENT. Do not pass null or an Error: for most ops the binding
//   requires a number and throws otherwise.
// - read and write take one number instead: bytes transferred, or a negative errno.
// - A file handle (fd) returned by open/create/opendir must be a non-zero
//   32-bit integer; 0 means "no handle".
// - Times are milliseconds since the epoch (a number) or Date objects; with
//   the patch, times before 1970 work too.
// - An op is only called if it is present on the ops object; ENOSYS otherwise.
// - There is no `destroy` op: fuse-native never calls one. `init` is the only
//   lifecycle hook.
// - Every handler runs on the single JS thread while a FUSE thread waits, so
//   never touch the mount synchronously from the process that serves it.
// - Patched: the ops that create things (create, mkdir, mknod, symlink) also
//   get the calling process's uid and gid, as trailing arguments after the
//   callback (see CallerUid). Handlers that declare fewer parameters keep
//   working.

declare module 'fuse-native' {
  namespace Fuse {
    /** 0 for success, or a negative errno (Fuse.ENOENT, ...). */
    type Code = number;
    type Callback = (code: Code) => void;
    /** cb(0, fd) with fd a non-zero 32-bit integer, or cb(-errno). */
    type FdCallback = (code: Code, fd?: number) => void;
    /**
     * open's callback. `keepCache` true lets the kernel keep the file's page cache from earlier opens
     * (FOPEN_KEEP_CACHE; patched: upstream had no way to set it per open).
     */
    type OpenCallback = (code: Code, fd?: number, keepCache?: boolean) => void;
    /** For read/write: bytes transferred (>= 0), or a negative errno. */
    type BytesCallback = (bytesOrCode: number) => void;
    type TimeValue = Date | number;

    /**
     * The trailing `uid, gid` of create, mkdir, mknod and symlink
     * (patched). They are the fsuid and fsgid of the process that made the
     * request, as the kernel reports them (libfuse's fuse_get_context(), read
     * in the FUSE thread before the op is dispatched to JS). Give the new
     * entry this owner so that, with allow_other, files belong to whoever
     * created them rather than to the server's user. POSIX's rule that an
     * entry created in a setgid directory takes the directory's group is not
     * applied by the kernel for FUSE: do it in the handler if wanted. `mode`
     * arrives with the caller's umask already applied by the kernel.
     */
    type CallerUid = number;
    /** See CallerUid. */
    type CallerGid = number;

    /** Only `mode` is needed; missing numbers become 0 (nlink: 1), missing times become now. */
    interface Stat {
      mode: number;
      uid?: number;
      gid?: number;
      /** Up to 2^53. */
      size?: number;
      dev?: number;
      nlink?: number;
      /** 32 bits; libfuse ignores it unless mounted with use_ino. */
      ino?: number;
      rdev?: number;
      blksize?: number;
      blocks?: number;
      atime?: TimeValue;
      mtime?: TimeValue;
      ctime?: TimeValue;
    }

    /** Each field is sent as an unsigned 32-bit integer. */
    interface StatFs {
      bsize?: number;
      frsize?: number;
      blocks?: number;
      bfree?: number;
      bavail?: number;
      files?: number;
      ffree?: number;
      favail?: number;
      fsid?: number;
      flag?: number;
      namemax?: number;
    }

    /** Per-op timeouts in ms (false: none); ops not listed use `default` (15000). */
    type TimeoutOptions = { default?: number } & { [op in keyof Operations]?: number | false };

    interface Options {
      /** Per-op timeout in ms (default 15000), false for none. A timed-out op returns ETIMEDOUT. */
      timeout?: number | false | TimeoutOptions;
      /** Before mounting, clear a stale mount ("Transport endpoint is not connected") at the mountpoint. */
      force?: boolean;
      /** Create the mountpoint if missing. */
      mkdir?: boolean;
      /** libfuse's debug output (also enabled by DEBUG=fuse-bindings). */
      debug?: boolean;
      // The options below become -o mount options. fuse-native skips falsy
      // values, so attrTimeout: 0 does nothing: use createFuse's mountOptions
      // (fs/fuse-binding.ts) for zeros and for options not listed here.
      allowOther?: boolean;
      allowRoot?: boolean;
      autoUnmount?: boolean;
      defaultPermissions?: boolean;
      blkdev?: boolean;
      blksize?: number;
      maxRead?: number;
      fd?: number;
      fsname?: string;
      subtype?: string;
      kernelCache?: boolean;
      autoCache?: boolean;
      /** Octal string, e.g. '022' (a number would be written in decimal). */
      umask?: string;
      uid?: number;
      gid?: number;
      entryTimeout?: number;
      attrTimeout?: number;
      acAttrTimeout?: number;
      noforget?: boolean;
      remember?: number;
      modules?: string;
      /** macOS only. */
      displayFolder?: boolean;
      name?: string;
    }

    interface Operations {
      /** Called once the mount is live, before mount()'s callback. */
      init?(cb: Callback): void;
      access?(path: string, mode: number, cb: Callback): void;
      statfs?(path: string, cb: (code: Code, statfs?: StatFs) => void): void;
      getattr?(path: string, cb: (code: Code, stat?: Stat) => void): void;
      /** Patched: upstream called getattr instead of this. */
      fgetattr?(path: string, fd: number, cb: (code: Code, stat?: Stat) => void): void;
      /**
       * Names without "." and "..". If `stats` has one Stat per name, libfuse
       * gets them too; otherwise it calls getattr as needed.
       */
      readdir?(path: string, cb: (code: Code, names?: string[], stats?: Stat[]) => void): void;
      /** `flags` are the open(2) flags (patched: upstream passed the handle). */
      opendir?(path: string, flags: number, cb: FdCallback): void;
      releasedir?(path: string, fd: number, cb: Callback): void;
      /** datasync is non-zero for fdatasync. Patched to (fd, datasync) as in the README. */
      fsyncdir?(path: string, fd: number, datasync: number, cb: Callback): void;
      /** `mode` has the permission bits only (no S_IFDIR); `uid`/`gid`: the caller (see CallerUid). */
      mkdir?(path: string, mode: number, cb: Callback, uid: CallerUid, gid: CallerGid): void;
      rmdir?(path: string, cb: Callback): void;

      /**
       * Create and open a file. `flags` (open(2) flags: O_WRONLY, O_EXCL,
       * O_TRUNC, ...) and the caller's `uid` and `gid` (see CallerUid) come
       * after the callback so that (path, mode, cb) handlers keep working
       * (patched: upstream passed none of them). `mode` includes S_IFREG.
       * libfuse also routes mknod(2) of a regular file here.
       */
      create?(path: string, mode: number, cb: FdCallback, flags: number, uid: CallerUid, gid: CallerGid): void;
      open?(path: string, flags: number, cb: OpenCallback): void;
      /**
       * Fill `buffer` (which is `length` bytes) and call cb(bytesRead); 0 at
       * end of file. The buffer is only valid until cb is called.
       */
      read?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: BytesCallback): void;
      /**
       * Store `buffer` (copy it: it is only valid until cb is called) and call
       * cb(bytesWritten). With createFuse, writes arrive in chunks of up to 128 KiB.
       */
      write?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: BytesCallback): void;
      flush?(path: string, fd: number, cb: Callback): void;
      /** datasync is non-zero for fdatasync. Patched to (fd, datasync) as in the README. */
      fsync?(path: string, fd: number, datasync: number, cb: Callback): void;
      release?(path: string, fd: number, cb: Callback): void;
      truncate?(path: string, size: number, cb: Callback): void;
      ftruncate?(path: string, fd: number, size: number, cb: Callback): void;

      unlink?(path: string, cb: Callback): void;
      rename?(src: string, dest: string, cb: Callback): void;
      /** Hard link: `dest` becomes a new name for the existing `src`. */
      link?(src: string, dest: string, cb: Callback): void;
      /**
       * Careful with the order: `target` is the link's content (any string,
       * not necessarily an existing path) and `path` is the new link.
       * `uid`/`gid`: the caller (patched; see CallerUid).
       */
      symlink?(target: string, path: string, cb: Callback, uid: CallerUid, gid: CallerGid): void;
      /** cb(0, target); the target is cut to the kernel's buffer size. */
      readlink?(path: string, cb: (code: Code, target?: string) => void): void;
      /**
       * Special files (FIFOs, sockets, devices); `mode` includes the file
       * type. Regular files go to create when it exists.
       * `uid`/`gid`: the caller (patched; see CallerUid).
       */
      mknod?(path: string, mode: number, dev: number, cb: Callback, uid: CallerUid, gid: CallerGid): void;

      chmod?(path: string, mode: number, cb: Callback): void;
      chown?(path: string, uid: number, gid: number, cb: Callback): void;
      /**
       * Patched. atime and mtime are milliseconds since the epoch. UTIME_NOW
       * (e.g. plain `touch`) arrives as the current time; UTIME_OMIT arrives
       * as -1 and means "leave this time unchanged" (`touch -m` gives
       * atime === -1). fs/fuse-binding.ts exports the value as UTIME_OMIT.
       * (So the instant 1969-12-31T23:59:59.999Z cannot be set.)
       */
      utimens?(path: string, atime: number, mtime: number, cb: Callback): void;

      /** `position` is always 0 on Linux. Copy `value`: it is only valid until cb is called. */
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Callback): void;
      /** cb(0, value), or cb(0, null) for "no such attribute" (ENODATA). */
      getxattr?(path: string, name: string, position: number, cb: (code: Code, value?: Buffer | null) => void): void;
      listxattr?(path: string, cb: (code: Code, names?: string[]) => void): void;
      removexattr?(path: string, name: string, cb: Callback): void;
    }
  }

  class Fuse {
    constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);

    /** Absolute mountpoint. */
    readonly mnt: string;
    readonly ops: Fuse.Operations;
    readonly opts: Fuse.Options;
    readonly opened: boolean;
    readonly closed: boolean;

    /** Mounts; cb runs once the kernel has sent init (the mount is usable). */
    mount(cb: (err?: Error | null) => void): void;
    /**
     * Runs `fusermount -uz <mnt>` (from PATH), then stops the binding. On a
     * failed fusermount the error has `unmountFailure: true`.
     */
    unmount(cb: (err?: (Error & { unmountFailure?: boolean }) | null) => void): void;
    /** Fuse[code.toUpperCase()] or -1 (EPERM), e.g. fuse.errno('ENOENT') === -2. */
    errno(code: string): number;

    /**
     * The -o option string passed to libfuse ('' or '-oa,b,c'); at most 1023
     * bytes, longer is cut silently. Override to add options (createFuse does).
     */
    protected _fuseOptions(): string;

    /** `fusermount -uz <mnt>` from PATH (async; no other cleanup). */
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    /** Whether fuse-shared-library's configure step ran (not needed as root with /dev/fuse). */
    static isConfigured(cb: (err: Error | null, configured?: boolean) => void): void;
    static configure(cb?: (err: Error | null) => void): void;
    static unconfigure(cb?: (err: Error | null) => void): void;
    static beforeMount(cb?: (err: Error | null) => void): void;
    static beforeUnmount(cb?: (err: Error | null) => void): void;

    // Negative errno values (Linux numbering) for callbacks.
    static readonly EPERM: number; static readonly ENOENT: number; static readonly ESRCH: number; static readonly EINTR: number;
    static readonly EIO: number; static readonly ENXIO: number; static readonly E2BIG: number; static readonly ENOEXEC: number;
    static readonly EBADF: number; static readonly ECHILD: number; static readonly EAGAIN: number; static readonly ENOMEM: number;
    static readonly EACCES: number; static readonly EFAULT: number; static readonly ENOTBLK: number; static readonly EBUSY: number;
    static readonly EEXIST: number; static readonly EXDEV: number; static readonly ENODEV: number; static readonly ENOTDIR: number;
    static readonly EISDIR: number; static readonly EINVAL: number; static readonly ENFILE: number; static readonly EMFILE: number;
    static readonly ENOTTY: number; static readonly ETXTBSY: number; static readonly EFBIG: number; static readonly ENOSPC: number;
    static readonly ESPIPE: number; static readonly EROFS: number; static readonly EMLINK: number; static readonly EPIPE: number;
    static readonly EDOM: number; static readonly ERANGE: number; static readonly EDEADLK: number; static readonly ENAMETOOLONG: number;
    static readonly ENOLCK: number; static readonly ENOSYS: number; static readonly ENOTEMPTY: number; static readonly ELOOP: number;
    static readonly EWOULDBLOCK: number; static readonly ENOMSG: number; static readonly EIDRM: number; static readonly ECHRNG: number;
    static readonly EL2NSYNC: number; static readonly EL3HLT: number; static readonly EL3RST: number; static readonly ELNRNG: number;
    static readonly EUNATCH: number; static readonly ENOCSI: number; static readonly EL2HLT: number; static readonly EBADE: number;
    static readonly EBADR: number; static readonly EXFULL: number; static readonly ENOANO: number; static readonly EBADRQC: number;
    static readonly EBADSLT: number; static readonly EDEADLOCK: number; static readonly EBFONT: number; static readonly ENOSTR: number;
    static readonly ENODATA: number; static readonly ETIME: number; static readonly ENOSR: number; static readonly ENONET: number;
    static readonly ENOPKG: number; static readonly EREMOTE: number; static readonly ENOLINK: number; static readonly EADV: number;
    static readonly ESRMNT: number; static readonly ECOMM: number; static readonly EPROTO: number; static readonly EMULTIHOP: number;
    static readonly EDOTDOT: number; static readonly EBADMSG: number; static readonly EOVERFLOW: number; static readonly ENOTUNIQ: number;
    static readonly EBADFD: number; static readonly EREMCHG: number; static readonly ELIBACC: number; static readonly ELIBBAD: number;
    static readonly ELIBSCN: number; static readonly ELIBMAX: number; static readonly ELIBEXEC: number; static readonly EILSEQ: number;
    static readonly ERESTART: number; static readonly ESTRPIPE: number; static readonly EUSERS: number; static readonly ENOTSOCK: number;
    static readonly EDESTADDRREQ: number; static readonly EMSGSIZE: number; static readonly EPROTOTYPE: number; static readonly ENOPROTOOPT: number;
    static readonly EPROTONOSUPPORT: number; static readonly ESOCKTNOSUPPORT: number; static readonly EOPNOTSUPP: number; static readonly EPFNOSUPPORT: number;
    static readonly EAFNOSUPPORT: number; static readonly EADDRINUSE: number; static readonly EADDRNOTAVAIL: number; static readonly ENETDOWN: number;
    static readonly ENETUNREACH: number; static readonly ENETRESET: number; static readonly ECONNABORTED: number; static readonly ECONNRESET: number;
    static readonly ENOBUFS: number; static readonly EISCONN: number; static readonly ENOTCONN: number; static readonly ESHUTDOWN: number;
    static readonly ETOOMANYREFS: number; static readonly ETIMEDOUT: number; static readonly ECONNREFUSED: number; static readonly EHOSTDOWN: number;
    static readonly EHOSTUNREACH: number; static readonly EALREADY: number; static readonly EINPROGRESS: number; static readonly ESTALE: number;
    static readonly EUCLEAN: number; static readonly ENOTNAM: number; static readonly ENAVAIL: number; static readonly EISNAM: number;
    static readonly EREMOTEIO: number; static readonly EDQUOT: number; static readonly ENOMEDIUM: number; static readonly EMEDIUMTYPE: number;
  }

  export = Fuse;
}
