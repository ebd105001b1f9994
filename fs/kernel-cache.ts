// Which opens may keep the kernel's page cache (FOPEN_KEEP_CACHE). Without it the kernel drops a file's
// cached pages at every open, so each `cat`, build step or `git diff` reads the whole file through FUSE
// and the gather path again, even when nothing changed.
//
// libfuse 2's high-level API gives every name of a file its own kernel node, with its own page cache: a
// write through one hard link leaves the other name's cached pages stale. That is why the blanket
// `kernel_cache` option is refused (src/cli/cli.ts). Per open, it is safe when the cache of the node being
// opened can only hold the file's current content:
//
//   - the node was opened before through the same path, for the same file, and
//   - the file's content has not changed since that open, through any name.
//
// Paths stand for nodes: a rename moves a node to a new path and an unlink ends one, so both forget the
// paths they touch (a renamed directory, its whole subtree), and the next open through them drops the
// cache. Everything here errs towards "drop": a path or file it does not know, or forgot to stay small,
// is never kept.

/** Entries per map; past this a map is emptied (the next open of each file then drops its cache once). */
const MAX_ENTRIES = 50_000;

export class KernelCacheTracker<Id> {
  /** Ticks on every content change. */
  private clock = 0;
  /** Inode id → clock of its last content change; a file not here has not changed since the mount. */
  private readonly changedAt = new Map<Id, number>();
  /** Path → the file opened through it last, and the clock at that open. */
  private readonly openedAt = new Map<string, { id: Id; at: number }>();

  /** Called at an open of file `id` through `path`: whether the kernel may keep that node's cached pages. */
  open(path: string, id: Id): boolean {
    const before = this.openedAt.get(path);
    const keep = before !== undefined && before.id === id && before.at >= (this.changedAt.get(id) ?? 0);
    if (this.openedAt.size >= MAX_ENTRIES && before === undefined) this.openedAt.clear();
    this.openedAt.set(path, { id, at: this.clock });
    return keep;
  }

  /** Called before any change to a file's content (write, truncate), whichever name or handle it comes through. */
  contentChanged(id: Id): void {
    this.clock++;
    if (this.changedAt.size >= MAX_ENTRIES && !this.changedAt.has(id)) {
      // Forgetting a change would make a stale cache look current, so every open is forgotten with it.
      this.changedAt.clear();
      this.openedAt.clear();
    }
    this.changedAt.set(id, this.clock);
  }

  /** Called when the node at `path` goes away or moves (unlink, rename, link over it); `subtree` for a directory. */
  pathChanged(path: string, subtree: boolean): void {
    this.openedAt.delete(path);
    if (!subtree) return;
    const prefix = path.endsWith('/') ? path : path + '/';
    for (const p of this.openedAt.keys()) if (p.startsWith(prefix)) this.openedAt.delete(p);
  }
}
