// libfuse's high-level API does not pass unlink(2) of a file that is still open through to the
// filesystem. It renames the file to `.fuse_hidden<node><counter>` in the same directory, keeps using
// that name for the open file, and unlinks it after the last close. (The alternative, the hard_remove
// option, makes libfuse call read, write and release with no path at all and breaks fstat.) Passed to
// the vault as a plain rename, that would leave a stray name in listings, make rmdir fail with
// ENOTEMPTY while the file is open, and bring the file back after a crash. So the adapter turns the
// rename into what the caller asked for, an unlink of an open file (the vault keeps its contents until
// the last handle closes), and remembers which inode the hidden name stands for.

/** The names libfuse makes (hidden_name() in libfuse 2.9's fuse.c). */
const HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;

/** The last component of path if it has the form libfuse gives a hidden file. */
export function hiddenNameIn(path: string): string | undefined {
  if (!path.includes('/.fuse_hidden')) return undefined;
  const name = path.slice(path.lastIndexOf('/') + 1);
  return HIDDEN_NAME.test(name) ? name : undefined;
}

/**
 * Hidden names in use and the inode each stands for. Keyed by name, not path: libfuse renames its node
 * along with a directory that is renamed, and the names are unique per mount (node id and a counter).
 */
export class HiddenFiles {
  private readonly ids = new Map<string, string>();

  hide(name: string, id: string): void {
    this.ids.set(name, id);
  }

  /** The inode id a path stands for if it is a hidden name in use. */
  idOf(path: string): string | undefined {
    const name = hiddenNameIn(path);
    return name === undefined ? undefined : this.ids.get(name);
  }

  /** libfuse unlinks the hidden name after the last close: true if path was one. */
  forget(path: string): boolean {
    const name = hiddenNameIn(path);
    return name !== undefined && this.ids.delete(name);
  }
}
