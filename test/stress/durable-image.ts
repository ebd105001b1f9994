// The durability model of the power-loss simulation (test/stress/durable-fs.ts serves it over FUSE): a
// directory tree whose live state is an ordinary backing directory, and what a power loss would leave of
// it, kept alongside at little cost.
//
// The model is the strictest one POSIX allows, not what ext4 happens to do:
//   - a file's data and size reach the durable image only at an fsync or fdatasync of that file (an
//     msync arrives as one too); a close, a rename or an fsync of another file carries none of it;
//   - a name created, removed or renamed reaches it only at an fsync of the directory holding the name:
//     a new file whose data was fsynced but whose directory was not is gone after the loss, a removed
//     name comes back (with the content its inode had at its last fsync), and a rename between two
//     directories is seen in each as far as that directory was synced (so in both, or in neither);
//   - a new directory is empty in the durable image until it is fsynced itself.
// Not modelled: permissions, owners, times and xattrs (the image takes them from the live files), torn
// or reordered writes inside one fsync interval (a write either is in the image, after an fsync, or not
// at all: no partially persisted page), and syncfs(2), which Linux never forwards to a FUSE server.
//
// The cost is an undo log, not a copy: before a write, a truncation or an O_TRUNC changes bytes the
// durable image still holds (bytes below the durable size, not yet saved since the last fsync), those
// old bytes are read and kept; an fsync drops the log and takes the live size. Appends to a file past
// its durable size (SQLite's WAL, new blobs) cost nothing. A file whose last name goes while a durable
// name still points to it is moved to a graveyard beside the backing directory instead of deleted. The
// image is built only at the power loss: every node reachable from the root through durable names,
// each file copied from its live bytes with the undo log applied and cut to its durable size.

import { closeSync, copyFileSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, renameSync, rmdirSync, rmSync, symlinkSync, constants as fsConstants, ftruncateSync, truncateSync, unlinkSync, writeSync, chmodSync, lchownSync, type Stats } from 'node:fs';
import { join } from 'node:path';

const { O_RDWR, O_RDONLY, O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW } = fsConstants;
export const ROOT_ID = 1;

export type Kind = 'file' | 'dir' | 'symlink';

interface Link {
  parent: number;
  name: string;
}

/** Old bytes of a file, as the durable image has them: [off, off + data.length). */
interface Segment {
  off: number;
  data: Buffer;
}

export class DNode {
  /** The live names of this node (a directory has one, the root none). */
  links: Link[] = [];
  /** Directories: the live entries, and the entries as the durable image has them. */
  readonly entries: Map<string, number> | null;
  dEntries: Map<string, number> | null;
  /** Files: the size the durable image has, and the old bytes of [0, dSize) changed since the last fsync, by offset. */
  dSize = 0;
  undo: Segment[] = [];
  /** How many durable entries (of any directory, reachable or not) name this node. */
  dRefs = 0;
  /** Open handles on it. */
  open = 0;
  /** Where its bytes are kept once its last live name is gone while a durable one remains. */
  grave: string | null = null;
  /** Symlinks: the target (durable with the link itself). */
  target = '';

  constructor(readonly id: number, readonly kind: Kind) {
    this.entries = kind === 'dir' ? new Map() : null;
    this.dEntries = kind === 'dir' ? new Map() : null;
  }

  /** No live name and no durable one: nothing it holds can be seen again. */
  get dead(): boolean {
    return this.id !== ROOT_ID && this.links.length === 0 && this.dRefs === 0;
  }
}

/** An error as Node's fs calls throw them, with its errno name in `code`. */
export function fsError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

export interface TreeCounters {
  fsyncs: number;
  fdatasyncs: number;
  fsyncdirs: number;
  /** Bytes read into undo logs (old durable bytes saved before being changed). */
  undoBytes: number;
  /** Files moved to the graveyard (last live name gone, a durable one left). */
  graved: number;
  /** Reads of old bytes that came up short: the model's invariant broken (must stay 0). */
  anomalies: number;
  /**
   * Commits seen from the disk: a burst of syncs (blob fdatasyncs, directory fsyncs; no pause longer than
   * COMMIT_PAUSE_MS) ending with SQLite's fsync of a -wal file: how many, their total and longest time (ms).
   */
  commits: number;
  commitMs: number;
  commitMaxMs: number;
}

/** What a power loss dropped, and the image it left. */
export interface PowerLossSummary {
  /** Files and directories in the image (hard links counted once), and the bytes of its files. */
  files: number;
  dirs: number;
  bytes: number;
  /** Files whose live content differs from the durable one, and at most how many bytes of it were dropped. */
  dirtyFiles: number;
  bytesDropped: number;
  /** Live names the image does not have (creates and renames not made durable). */
  namesDropped: number;
  /** Names the image has that are gone live (removals and renames not made durable). */
  namesRevived: number;
  /** The first of those, path by path, for reports. */
  details: string[];
  counters: TreeCounters;
  /** The time of the last fsync of each file whose name ends in -wal or .db (ms since the epoch), by name. */
  lastSyncs: Record<string, number>;
  ms: number;
}

const DETAILS_MAX = 400;
/** A pause between two syncs longer than this starts a new commit (see TreeCounters.commits). */
const COMMIT_PAUSE_MS = 250;

export class DurableTree {
  readonly nodes = new Map<number, DNode>();
  readonly counters: TreeCounters = { fsyncs: 0, fdatasyncs: 0, fsyncdirs: 0, undoBytes: 0, graved: 0, anomalies: 0, commits: 0, commitMs: 0, commitMaxMs: 0 };
  /** When the commit being made durable began (its first sync), or null between commits; its syncs so far, the last one's time, the longest pause between two. */
  private commitStart: number | null = null;
  private commitSyncs = 0;
  private lastSyncAt = 0;
  private commitMaxGap = 0;
  /** Last fsync time of the database files, by name (see PowerLossSummary.lastSyncs). */
  private readonly dbSyncs = new Map<string, number>();
  private nextId = ROOT_ID + 1;

  /**
   * A tree over `root` as it is now, all of it durable (it is the image of the last power loss, or a
   * new empty directory); `graveDir` must be on the same filesystem (a sibling).
   */
  constructor(readonly root: string, readonly graveDir: string, readonly log: (line: string) => void = () => {}) {
    mkdirSync(graveDir, { recursive: true });
    const r = new DNode(ROOT_ID, 'dir');
    this.nodes.set(ROOT_ID, r);
    this.scan(r, root, new Map());
  }

  private scan(dir: DNode, path: string, byIno: Map<number, DNode>): void {
    for (const name of readdirSync(path)) {
      const p = join(path, name);
      const st = lstatSync(p);
      let n = !st.isDirectory() && st.nlink > 1 ? byIno.get(st.ino) : undefined;
      if (!n) {
        n = this.newNode(st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file');
        if (n.kind === 'file') n.dSize = st.size;
        if (n.kind === 'symlink') n.target = readlinkSync(p);
        byIno.set(st.ino, n);
      }
      this.addLink(n, dir, name);
      (dir.dEntries as Map<string, number>).set(name, n.id);
      n.dRefs++;
      if (n.kind === 'dir') this.scan(n, p, byIno);
    }
  }

  private newNode(kind: Kind): DNode {
    const n = new DNode(this.nextId++, kind);
    this.nodes.set(n.id, n);
    return n;
  }

  get(id: number): DNode {
    const n = this.nodes.get(id);
    if (!n) throw fsError('ENOENT', `no node ${id}`);
    return n;
  }

  dir(id: number): DNode {
    const n = this.get(id);
    if (n.kind !== 'dir') throw fsError('ENOTDIR', `node ${id} is not a directory`);
    return n;
  }

  /** The live node under `name` in `parent`, or undefined. */
  lookup(parent: DNode, name: string): DNode | undefined {
    const id = parent.entries?.get(name);
    return id === undefined ? undefined : this.nodes.get(id);
  }

  private child(parent: DNode, name: string): DNode {
    const n = this.lookup(parent, name);
    if (!n) throw fsError('ENOENT', `${name} is not in node ${parent.id}`);
    return n;
  }

  /** The backing path of a node: through its first live name, else its grave. */
  pathOf(n: DNode): string {
    if (n.id === ROOT_ID) return this.root;
    const l = n.links[0];
    if (l) return `${this.pathOf(this.get(l.parent))}/${l.name}`;
    if (n.grave) return n.grave;
    throw fsError('ENOENT', `node ${n.id} has no name left`);
  }

  childPath(parent: DNode, name: string): string {
    return `${this.pathOf(parent)}/${name}`;
  }

  private addLink(n: DNode, parent: DNode, name: string): void {
    n.links.push({ parent: parent.id, name });
    (parent.entries as Map<string, number>).set(name, n.id);
  }

  private removeLink(n: DNode, parent: DNode, name: string): void {
    const at = n.links.findIndex((l) => l.parent === parent.id && l.name === name);
    if (at >= 0) n.links.splice(at, 1);
    (parent.entries as Map<string, number>).delete(name);
  }

  /** A file loses its last live name soon: keep its bytes (a hard link into the graveyard) if a durable name is left. */
  private keepIfDurable(n: DNode, path: string): string | null {
    if (n.kind !== 'file' || n.links.length !== 1 || n.dRefs === 0) return null;
    const grave = join(this.graveDir, String(n.id));
    linkSync(path, grave);
    return grave;
  }

  private afterLastLink(n: DNode, grave: string | null): void {
    if (n.links.length > 0) return;
    if (grave) {
      n.grave = grave;
      this.counters.graved++;
    }
    if (n.dead) this.bury(n);
  }

  /** A node no name can reach any more: free its grave and what its durable entries held on to. */
  private bury(n: DNode): void {
    if (n.grave) {
      rmSync(n.grave, { force: true });
      n.grave = null;
    }
    n.undo = [];
    if (n.dEntries) {
      const held = [...n.dEntries.values()];
      n.dEntries = new Map();
      for (const id of held) this.unref(this.get(id));
    }
  }

  private unref(n: DNode): void {
    n.dRefs--;
    if (n.dead) this.bury(n);
  }

  // ---- the undo log ----

  /** First segment whose end is past `pos`. */
  private static firstAfter(segs: Segment[], pos: number): number {
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const s = segs[mid] as Segment;
      if (s.off + s.data.length <= pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Bytes [from, to) of a file are about to change: the durable image's bytes there that are not saved
   * yet are read (from `fd`, else from the file) and kept. Nothing for bytes at or past the durable size,
   * nor for a file no name can reach.
   */
  preserve(n: DNode, from: number, to: number, fd: number | null): void {
    if (n.kind !== 'file' || n.dead) return;
    const end = Math.min(to, n.dSize);
    if (from >= end) return;
    const gaps: [number, number][] = [];
    let pos = from;
    for (let i = DurableTree.firstAfter(n.undo, from); i < n.undo.length && pos < end; i++) {
      const s = n.undo[i] as Segment;
      if (s.off >= end) break;
      if (s.off > pos) gaps.push([pos, s.off]);
      pos = Math.max(pos, s.off + s.data.length);
    }
    if (pos < end) gaps.push([pos, end]);
    if (gaps.length === 0) return;
    const own = fd === null ? openSync(this.pathOf(n), O_RDONLY | O_NOFOLLOW) : -1;
    try {
      for (const [a, b] of gaps) {
        const data = Buffer.alloc(b - a);
        let got = 0;
        while (got < data.length) {
          const k = readSync(own >= 0 ? own : (fd as number), data, got, data.length - got, a + got);
          if (k === 0) break;
          got += k;
        }
        if (got < data.length) {
          // Bytes below the durable size that are not in the file and not saved: the invariant is broken.
          this.counters.anomalies++;
          this.log(`anomaly: node ${n.id} (${this.describe(n)}) read ${got} of ${data.length} old bytes at ${a} (durable size ${n.dSize})`);
        }
        this.counters.undoBytes += data.length;
        n.undo.splice(DurableTree.firstAfter(n.undo, a), 0, { off: a, data });
      }
    } finally {
      if (own >= 0) closeSync(own);
    }
  }

  /** A node's live path relative to the root (or its grave's path), for reports. */
  private describe(n: DNode): string {
    try {
      const p = this.pathOf(n);
      return p.startsWith(`${this.root}/`) ? p.slice(this.root.length) : p === this.root ? '/' : p;
    } catch {
      return 'no name';
    }
  }

  // ---- operations: each does the backing call first (its errors are the caller's), then the bookkeeping ----

  mkdir(parent: DNode, name: string, mode: number): DNode {
    mkdirSync(this.childPath(parent, name), { mode });
    const n = this.newNode('dir');
    this.addLink(n, parent, name);
    return n;
  }

  symlink(parent: DNode, name: string, target: string): DNode {
    symlinkSync(target, this.childPath(parent, name));
    const n = this.newNode('symlink');
    n.target = target;
    this.addLink(n, parent, name);
    return n;
  }

  /** Creates (or, without O_EXCL, opens) a file; the handle is a backing fd open for reading and writing. */
  create(parent: DNode, name: string, flags: number, mode: number, uid: number, gid: number): { node: DNode; fd: number } {
    const existing = this.lookup(parent, name);
    if (existing) {
      if (flags & O_EXCL) throw fsError('EEXIST', name);
      return { node: existing, fd: this.open(existing, flags) };
    }
    const p = this.childPath(parent, name);
    const fd = openSync(p, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    try {
      lchownSync(p, uid, gid);
    } catch {
      /* owners are not modelled */
    }
    const n = this.newNode('file');
    n.open++;
    this.addLink(n, parent, name);
    return { node: n, fd };
  }

  /**
   * Opens a file: always for reading and writing on the backing side (the undo log reads through the
   * same handle), without O_APPEND (the kernel sends every write with its offset). O_TRUNC is kept, after
   * the undo log has saved what it drops.
   */
  open(n: DNode, flags: number): number {
    if (n.kind !== 'file') throw fsError('EISDIR', `node ${n.id} is not a file`);
    if (flags & O_TRUNC) this.preserve(n, 0, Infinity, null);
    const fd = openSync(this.pathOf(n), O_RDWR | O_NOFOLLOW | (flags & O_TRUNC));
    n.open++;
    return fd;
  }

  release(n: DNode | undefined, fd: number): void {
    closeSync(fd);
    if (n) n.open--;
  }

  write(n: DNode, fd: number, offset: number, data: Buffer): number {
    this.preserve(n, offset, offset + data.length, fd);
    return writeSync(fd, data, 0, data.length, offset);
  }

  /** truncate(2) or ftruncate(2) (fd). */
  truncate(n: DNode, size: number, fd: number | null): void {
    if (n.kind !== 'file') throw fsError('EISDIR', `node ${n.id} is not a file`);
    const now = fd === null ? lstatSync(this.pathOf(n)).size : fstatSync(fd).size;
    // Growing only adds zeros past the live end, where every durable byte is saved already.
    if (size < now) this.preserve(n, size, Infinity, fd);
    if (fd === null) truncateSync(this.pathOf(n), size);
    else ftruncateSync(fd, size);
  }

  link(n: DNode, parent: DNode, name: string): void {
    if (n.kind === 'dir') throw fsError('EPERM', 'hard link to a directory');
    if (n.links.length === 0) throw fsError('ENOENT', `node ${n.id} has no name left`);
    linkSync(this.pathOf(n), this.childPath(parent, name));
    this.addLink(n, parent, name);
  }

  unlink(parent: DNode, name: string): void {
    const n = this.child(parent, name);
    if (n.kind === 'dir') throw fsError('EISDIR', name);
    const p = this.childPath(parent, name);
    const grave = this.keepIfDurable(n, p);
    try {
      unlinkSync(p);
    } catch (err) {
      if (grave) rmSync(grave, { force: true });
      throw err;
    }
    this.removeLink(n, parent, name);
    this.afterLastLink(n, grave);
  }

  rmdir(parent: DNode, name: string): void {
    const n = this.child(parent, name);
    if (n.kind !== 'dir') throw fsError('ENOTDIR', name);
    rmdirSync(this.childPath(parent, name));
    this.removeLink(n, parent, name);
    this.afterLastLink(n, null);
  }

  /** rename(2), and renameat2's RENAME_NOREPLACE. */
  rename(from: DNode, fromName: string, to: DNode, toName: string, noReplace: boolean): void {
    const x = this.child(from, fromName);
    const y = this.lookup(to, toName);
    if (y && noReplace) throw fsError('EEXIST', toName);
    const src = this.childPath(from, fromName);
    const dst = this.childPath(to, toName);
    // Two names of one inode (or one name onto itself): rename(2) does nothing.
    if (y === x) return;
    if (x.kind === 'dir' && this.isUnder(to, x)) throw fsError('EINVAL', 'a directory into itself');
    const grave = y ? this.keepIfDurable(y, dst) : null;
    try {
      renameSync(src, dst);
    } catch (err) {
      if (grave) rmSync(grave, { force: true });
      throw err;
    }
    this.removeLink(x, from, fromName);
    if (y) this.removeLink(y, to, toName);
    this.addLink(x, to, toName);
    if (y) this.afterLastLink(y, grave);
  }

  /** Whether `d` is `anc` or inside it (live). */
  private isUnder(d: DNode, anc: DNode): boolean {
    for (let cur: DNode | undefined = d; cur; ) {
      if (cur.id === anc.id) return true;
      const l: Link | undefined = cur.links[0];
      cur = l ? this.nodes.get(l.parent) : undefined;
    }
    return false;
  }

  // ---- durability ----

  /** fsync(2) or fdatasync(2) of a file: its bytes and size as they are now are the durable ones. */
  fsync(n: DNode, fd: number | null, dataOnly: boolean): void {
    if (dataOnly) this.counters.fdatasyncs++;
    else this.counters.fsyncs++;
    if (n.kind === 'dir') return this.fsyncDir(n);
    if (n.kind !== 'file') return;
    n.dSize = fd === null ? lstatSync(this.pathOf(n)).size : fstatSync(fd).size;
    n.undo = [];
    const l = n.links[0];
    const t = Date.now();
    if (l && (l.name.endsWith('-wal') || l.name.endsWith('.db'))) this.dbSyncs.set(l.name, t);
    if (l?.name.endsWith('-wal')) this.commitEnd(t);
    else if (l?.name.endsWith('.db')) this.commitStart = null; // a checkpoint, not a commit
    else this.commitSync(t);
  }

  private commitSync(t: number): void {
    if (this.commitStart === null || t - this.lastSyncAt > COMMIT_PAUSE_MS) {
      this.commitStart = t;
      this.commitSyncs = 0;
      this.commitMaxGap = 0;
    } else this.commitMaxGap = Math.max(this.commitMaxGap, t - this.lastSyncAt);
    this.commitSyncs++;
    this.lastSyncAt = t;
  }

  private commitEnd(t: number): void {
    if (t - this.lastSyncAt > COMMIT_PAUSE_MS) this.commitStart = null; // the WAL's fsync alone
    const ms = t - (this.commitStart ?? t);
    this.counters.commits++;
    this.counters.commitMs += ms;
    this.counters.commitMaxMs = Math.max(this.counters.commitMaxMs, ms);
    if (ms > 500) this.log(`slow commit: ${ms} ms from the first of its ${this.commitSyncs} syncs to the WAL's fsync; longest pause between two syncs ${this.commitMaxGap} ms`);
    this.commitStart = null;
  }

  /** fsync(2) of a directory: its names as they are now are the durable ones. */
  fsyncDir(d: DNode): void {
    this.counters.fsyncdirs++;
    this.commitSync(Date.now());
    const now = new Map(d.entries as Map<string, number>);
    for (const id of now.values()) this.get(id).dRefs++;
    const old = d.dEntries as Map<string, number>;
    d.dEntries = now;
    for (const id of old.values()) this.unref(this.get(id));
  }

  // ---- the power loss ----

  /** What the image would drop, compared with the live tree (before materialise). */
  private dropped(): Pick<PowerLossSummary, 'dirtyFiles' | 'bytesDropped' | 'namesDropped' | 'namesRevived' | 'details'> {
    const out = { dirtyFiles: 0, bytesDropped: 0, namesDropped: 0, namesRevived: 0, details: [] as string[] };
    const note = (s: string) => {
      if (out.details.length < DETAILS_MAX) out.details.push(s);
    };
    for (const n of this.nodes.values()) {
      if (n.dead) continue;
      if (n.kind === 'file' && n.links.length + (n.grave ? 1 : 0) > 0) {
        let size: number;
        try {
          size = lstatSync(this.pathOf(n)).size;
        } catch {
          continue;
        }
        const undone = n.undo.reduce((s, g) => s + g.data.length, 0);
        if (undone > 0 || size !== n.dSize) {
          out.dirtyFiles++;
          const lost = undone + Math.max(0, size - n.dSize);
          out.bytesDropped += lost;
          note(`${this.describe(n)}: live ${size} bytes, durable ${n.dSize} (${undone} bytes overwritten since its last fsync)`);
        }
      }
      if (n.kind === 'dir') {
        const live = n.entries as Map<string, number>;
        const dur = n.dEntries as Map<string, number>;
        const where = n.links.length > 0 || n.id === ROOT_ID ? (n.id === ROOT_ID ? '' : this.describe(n)) : `(removed directory ${n.id})`;
        for (const [name, id] of live) {
          if (dur.get(name) !== id) {
            out.namesDropped++;
            note(`${where}/${name}: ${dur.has(name) ? 'renamed over, not durable' : 'new name, not durable'}`);
          }
        }
        for (const [name, id] of dur) {
          if (live.get(name) !== id) {
            out.namesRevived++;
            note(`${where}/${name}: ${live.has(name) ? 'replaced' : 'removed'}, not durable: back after the loss`);
          }
        }
      }
    }
    return out;
  }

  /**
   * The power loss: writes the durable image into `dest` (a new directory) and says what it dropped.
   * The tree must not be used after this.
   */
  materialise(dest: string): PowerLossSummary {
    const t0 = Date.now();
    const drop = this.dropped();
    const image = { files: 0, dirs: 0, bytes: 0 };
    mkdirSync(dest, { recursive: true });
    const copied = new Map<number, string>();
    const walk = (d: DNode, path: string, onPath: Set<number>) => {
      for (const [name, id] of d.dEntries as Map<string, number>) {
        const n = this.get(id);
        const p = join(path, name);
        if (n.kind === 'dir') {
          if (onPath.has(n.id)) continue; // a cycle of unsynced directory renames: broken here
          mkdirSync(p, { mode: this.liveMode(n) ?? 0o755 });
          image.dirs++;
          onPath.add(n.id);
          walk(n, p, onPath);
          onPath.delete(n.id);
        } else if (n.kind === 'symlink') {
          symlinkSync(n.target, p);
        } else {
          const first = copied.get(n.id);
          if (first) {
            linkSync(first, p);
            continue;
          }
          this.writeDurable(n, p);
          copied.set(n.id, p);
          image.files++;
          image.bytes += n.dSize;
        }
      }
    };
    walk(this.get(ROOT_ID), dest, new Set([ROOT_ID]));
    const lastSyncs: Record<string, number> = {};
    for (const [name, t] of this.dbSyncs) lastSyncs[name] = t;
    return { ...image, ...drop, counters: { ...this.counters }, lastSyncs, ms: Date.now() - t0 };
  }

  private liveMode(n: DNode): number | undefined {
    try {
      return lstatSync(this.pathOf(n)).mode & 0o7777;
    } catch {
      return undefined;
    }
  }

  /** One file as the durable image has it: the live bytes, the undo log over them, cut to the durable size. */
  private writeDurable(n: DNode, p: string): void {
    let live: string | null;
    try {
      live = this.pathOf(n);
    } catch {
      live = null;
    }
    if (live && n.dSize > 0) copyFileSync(live, p);
    else closeSync(openSync(p, O_RDWR | O_CREAT | O_TRUNC, 0o600));
    if (!live && n.dSize > 0) {
      this.counters.anomalies++;
      this.log(`anomaly: node ${n.id}, durable at ${p} with ${n.dSize} bytes, has no bytes left anywhere`);
    }
    if (live) {
      const st: Stats | undefined = lstatSync(live, { throwIfNoEntry: false });
      if (st) chmodSync(p, st.mode & 0o7777);
    }
    const fd = openSync(p, O_RDWR);
    try {
      for (const s of n.undo) writeSync(fd, s.data, 0, s.data.length, s.off);
      ftruncateSync(fd, n.dSize);
    } finally {
      closeSync(fd);
    }
  }
}
