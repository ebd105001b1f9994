// Every exit code of the svault command, named in one place (the README lists them).

export const EXIT = {
  OK: 0,
  /** An unexpected internal error (a bug): the message says what. */
  ERROR: 1,
  /** Bad usage: unknown command or flag, bad value, no passphrase available. */
  USAGE: 2,
  /** Wrong passphrase (or a config that was tampered with). */
  PASSPHRASE: 3,
  /** The store is missing, not a vault, damaged, or not readable/writable. */
  STORE: 4,
  /** The mount point cannot be used: its parent directory is missing, or it is not a directory, not empty, or already mounted. */
  MOUNTPOINT: 5,
  /** The store is in use by another process (already mounted). */
  BUSY: 6,
  /** fsck found problems and did not repair them (run with --repair). */
  FSCK_PROBLEMS: 7,
  /** fsck --repair repaired problems; the vault is now clean. */
  FSCK_REPAIRED: 8,
  /** fsck --repair could not repair everything. */
  FSCK_UNREPAIRED: 9,
  /** FUSE is not usable here (no /dev/fuse access, no fusermount): the message says what to install. */
  FUSE: 10,
  /** The mount server stopped or failed to answer in time. */
  MOUNT_FAILED: 11,
} as const;

/** An error that ends the command with a given exit code and a one-line message. */
export class CliError extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
    this.name = 'CliError';
  }
}
