// Error types of the vault core. Each filesystem error carries the errno name the FUSE adapter returns,
// so the adapter maps errors in one place and the core never imports FUSE.

export type Errno =
  | 'ENOENT' | 'EEXIST' | 'ENOTEMPTY' | 'EISDIR' | 'ENOTDIR' | 'ENAMETOOLONG' | 'EACCES' | 'EPERM'
  | 'EINVAL' | 'EXDEV' | 'ENOSPC' | 'EIO' | 'EBADF' | 'ENODATA' | 'ERANGE' | 'EFBIG' | 'EROFS' | 'EMLINK'
  | 'ENOTSUP' | 'E2BIG' | 'EBUSY' | 'EILSEQ' | 'ENXIO' | 'EOPNOTSUPP';

/** A POSIX-style failure of a filesystem operation, with the errno to report. */
export class FsError extends Error {
  readonly errno: Errno;

  constructor(errno: Errno, message: string) {
    // Most of these are answers, not faults (ENOENT for a name that is not there, ENODATA for an
    // attribute that is not set), and FUSE asks such questions by the thousand (ls -l, tar, a compiler's
    // include search): capturing a stack for each cost more than the lookup itself. EIO keeps its stack.
    const limit = Error.stackTraceLimit;
    if (errno !== 'EIO') Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.errno = errno;
    this.name = 'FsError';
  }
}

/**
 * What went wrong with something read from the store: it is not there (`missing`), it is there but
 * fails authentication or is malformed (`damaged`), or it is an authentic record from another commit put
 * back by a replay (`stale`, format 2 only: docs/format-2.md, 5.2). fsck reports them apart; a reader
 * gets EIO for all.
 */
export type IntegrityKind = 'missing' | 'damaged' | 'stale';

/** Something read from the store failed authentication, was missing or malformed. Never returned as data. */
export class IntegrityError extends FsError {
  constructor(message: string, readonly kind: IntegrityKind = 'damaged') {
    super('EIO', message);
    this.name = 'IntegrityError';
  }
}

/** The passphrase does not unwrap the master key (or the config was tampered with: the two look alike). */
export class WrongPassphraseError extends Error {
  constructor(readonly store: string) {
    super(`wrong passphrase for the vault in ${store} (or its config was tampered with)`);
    this.name = 'WrongPassphraseError';
  }
}

/** The store directory holds no vault, or its config cannot be parsed or fails validation. */
export class BadStoreError extends Error {
  constructor(readonly store: string, reason: string) {
    super(`${store}: ${reason}`);
    this.name = 'BadStoreError';
  }
}

/** Another process holds the store open (a second mount, or fsck during a mount). */
export class StoreLockedError extends Error {
  constructor(readonly store: string, readonly pid: number) {
    super(`the vault in ${store} is already in use by process ${pid} (mounted?)`);
    this.name = 'StoreLockedError';
  }
}

/** Maps a Node system error from the backing store (ENOSPC, EROFS, ...) to an FsError, keeping its errno. */
export function fromSystemError(err: unknown, what: string): FsError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return new FsError(code, `${what}: ${(err as Error).message}`);
  }
  if (err instanceof FsError) return err;
  return new FsError('EIO', `${what}: ${(err as Error)?.message ?? String(err)}`);
}
