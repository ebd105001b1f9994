// libfuse's high-level API does not pass unlink(2) of a file that is still open through to the
// filesystem. It renames the file to `.fuse_hidden<node><counter>` in the same directory, keeps using
// that name for the open file, and unlinks it after the last close. (The alternative, the hard_remove
// option, makes libfuse call read, write and release with no path at all and breaks fstat.) Passed to
// the vault as a plain rename, that would leave a stray name in listings, make rmdir fail with
// ENOTEMPTY while the file is open, and bring the file back after a crash. So the adapter turns the
// rename into what the caller asked for, an unlink of an open file (the vault keeps its contents until
// the last handle closes), and remembers which inode the hidden name stands for.
//
// A user may rename a file onto a name of that form too, and must keep the file. The rename that hides
// a file looks the same to svault, so it is told by what libfuse does: it hides only files it has open,
// and the name ends in a counter that counts up by one per hide for the whole mount (more when a name
// is taken; concurrent hides may arrive a little out of order). A file that is not open, or a name
// whose counter is not one libfuse would give next, is an ordinary rename.

/** The names libfuse makes (hidden_name() in libfuse 2.9's fuse.c): its node id, then its hide counter. */
const HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;
/** How far from the highest counter seen a hide's counter may be. */
const COUNTER_WINDOW = 16;
/** Counters of recent hides remembered, so that no counter is taken for a hide twice. */
const RECENT_LIMIT = 1024;

function counterOf(name: string): number {
  return Number.parseInt(name.slice(-8), 16);
}

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
export class HiddenFiles<Id> {
  private readonly ids = new Map<string, Id>();
  private highest = 0;
  private readonly recent = new Set<number>();

  /**
   * Whether a rename of a file (`open`: whether it has handles) to `name`, a name of the hidden form, is
   * libfuse hiding it. Otherwise it is a user's rename, to be done as one.
   */
  isHide(name: string, open: boolean): boolean {
    if (!open) return false;
    const counter = counterOf(name);
    return counter > 0 && Math.abs(counter - this.highest) <= COUNTER_WINDOW && !this.recent.has(counter);
  }

  hide(name: string, id: Id): void {
    this.ids.set(name, id);
    const counter = counterOf(name);
    this.highest = Math.max(this.highest, counter);
    this.recent.add(counter);
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.values().next().value as number);
  }

  /**
   * libfuse hides a hidden file again (its name is the target of a rename): the inode moves to the new
   * name. Returns false when `from` is not a hidden name in use.
   */
  rehide(from: string, to: string): boolean {
    const name = hiddenNameIn(from);
    const id = name === undefined ? undefined : this.ids.get(name);
    const toName = hiddenNameIn(to);
    if (name === undefined || id === undefined || toName === undefined) return false;
    this.ids.delete(name);
    this.hide(toName, id);
    return true;
  }

  /** The inode id a path stands for if it is a hidden name in use. */
  idOf(path: string): Id | undefined {
    const name = hiddenNameIn(path);
    return name === undefined ? undefined : this.ids.get(name);
  }

  /** libfuse unlinks the hidden name after the last close: true if path was one. */
  forget(path: string): boolean {
    const name = hiddenNameIn(path);
    return name !== undefined && this.ids.delete(name);
  }
}
