// fsck --repair over format 2's records (docs/format-2.md 5.10), for what can be repaired from the records
// that are sound, keeping every healthy file as it is:
// - an inode whose record is bad, stale or missing: the file is gone, its entries are removed, and what it
//   owned is left as rows nothing reaches (its blobs become orphans, the vault's to sweep);
// - spill records that cannot be read: the xattrs in them are dropped (a symlink whose target spilled goes
//   whole, as an unreadable inode);
// - a map node that cannot be read: the slots under it become lost, so reads of that range fail with EIO;
// - an entry naming an inode the table does not hold: removed;
// - a live inode no entry names: linked as `#<ino>` in its parentIno directory when that is sound, else in
//   /lost+found;
// - a link count that differs from the entries: set from them;
// - rows nothing reaches: deleted, once a walk reaches everything else.
// - buckets that cannot be read: rewritten empty; the names they held come back as nameless inodes.
// - a directory whose inode cannot be read: made again, empty (mode 0700), under its ino; its children come
//   back as #<ino> in it. 5.10's adoption of its old buckets (found by their derivable names, opened at their
//   claimed versions) would keep their names; it is not built.

import { IntegrityError } from '../errors.js';
import { fsck2, type Fsck2Options, type Fsck2Problem, type Fsck2Report } from './fsck2.js';
import { FileType, ROOT_INO, type InodeRecord } from './inode-record.js';
import { MAP_NODE_SLOTS } from './map-node.js';
import type { Metadata2 } from './metadata2.js';
import { nowTimespec } from './namespace2.js';
import type { RecordTable } from './record-table.js';
import { INODE_ROOT_CAPACITY, slotTreeCapacity } from './slot-tree.js';

export const LOST_AND_FOUND = 'lost+found';

export interface Repair2Report {
  before: Fsck2Report;
  after: Fsck2Report;
  /** Inodes dropped because their record could not be read. */
  droppedInodes: number;
  removedEntries: number;
  /** Ranges of piece slots made lost under unreadable map nodes. */
  quarantinedRanges: number;
  /** Inodes whose unreadable spill records went, with the xattrs in them. */
  droppedSpills: number;
  /** Directory buckets that could not be read, rewritten empty. */
  emptiedBuckets: number;
  /** Directories whose inode could not be read, made again empty under their ino. */
  recreatedDirectories: number;
  relinked: number;
  linkCountsSet: number;
  deletedRows: number;
  /** What this repair does not handle yet (see the module comment). */
  notRepaired: Fsck2Problem[];
}

/** Repairs what it can, committing as it goes, and checks again. The metadata must not be in use elsewhere. */
export async function repair2(md: Metadata2, table: RecordTable, o: Fsck2Options = {}): Promise<Repair2Report> {
  const before = await fsck2(md, table, o);
  const report: Repair2Report = { before, after: before, droppedInodes: 0, removedEntries: 0, quarantinedRanges: 0, droppedSpills: 0, emptiedBuckets: 0, recreatedDirectories: 0, relinked: 0, linkCountsSet: 0, deletedRows: 0, notRepaired: [] };

  // 1. Inodes that cannot be read are gone; map nodes that cannot be read make their slots lost.
  for (const p of before.problems) {
    if (p.of === 'inode-table') {
      report.notRepaired.push(p);
      continue;
    }
    if (p.ino === undefined) continue;
    if (p.of === 'inode') {
      const entry = before.namedBy.get(p.ino);
      if (p.ino === ROOT_INO || entry?.type === FileType.directory) {
        // A directory is made again, empty, under its ino: its entry stays, its children come back nameless.
        md.recreateDirectory(p.ino, entry?.dirIno ?? 0, nowTimespec());
        report.recreatedDirectories++;
      } else {
        md.removeUnreadableInode(p.ino);
        report.droppedInodes++;
      }
    } else if (p.of === 'owned') {
      const inode = md.inode(p.ino);
      if (!inode) continue;
      let repaired = false;
      if (inode.spill && !readable(() => md.xattrs(inode.ino))) {
        // Its spill is gone: its xattrs are dropped, and a symlink whose target spilled goes whole.
        if (inode.type === FileType.symlink && inode.primary.form === 'none') {
          md.removeUnreadableInode(inode.ino);
          report.droppedInodes++;
          continue;
        }
        md.dropUnreadableSpill(inode.ino);
        report.droppedSpills++;
        repaired = true;
      }
      if (inode.type === FileType.regular) {
        const runs = quarantineUnreadable(md, inode);
        report.quarantinedRanges += runs;
        repaired ||= runs > 0;
      }
      if (inode.type === FileType.directory) {
        // Rewritten empty; the names they held come back as nameless inodes, relinked below.
        const emptied = md.emptyUnreadableBuckets(inode.ino);
        report.emptiedBuckets += emptied;
        repaired ||= emptied > 0;
      }
      if (!repaired) report.notRepaired.push(p);
    }
  }
  md.commitNow();

  // 2. Entries and names, from a walk of what is left.
  const names = await fsck2(md, table, o);
  for (const p of names.problems) {
    if (p.kind === 'dangling-entry' && p.dirIno !== undefined && p.name) {
      md.unlink(p.dirIno, p.name);
      report.removedEntries++;
    }
  }
  // While a directory cannot be listed whole, an inode that seems nameless may be named there, and a link
  // count may count names the walk did not see: neither is touched then.
  const complete = names.incomplete.length === 0;
  for (const p of names.problems) {
    if (p.kind !== 'nameless-inode' || p.ino === undefined) continue;
    if (!complete) {
      report.notRepaired.push(p);
      continue;
    }
    relink(md, p.ino);
    report.relinked++;
  }
  md.commitNow();

  // 3. Link counts, once every inode has its names.
  const counts = await fsck2(md, table, o);
  for (const p of counts.problems) {
    if (p.kind === 'bad-link-count' && counts.incomplete.length > 0) {
      report.notRepaired.push(p);
      continue;
    }
    if (p.kind !== 'bad-link-count' || p.ino === undefined || p.expected === undefined) continue;
    const nlink = p.expected;
    md.setAttributes(p.ino, () => ({ nlink }));
    report.linkCountsSet++;
  }
  md.commitNow();

  // 4. Rows nothing reaches, only from a walk that reached everything.
  const rows = await fsck2(md, table, o);
  if (rows.incomplete.length === 0 && rows.unreachableNames.length > 0) {
    table.apply(rows.unreachableNames.map((name) => ({ name, value: null })), true);
    report.deletedRows = rows.unreachableNames.length;
  }
  report.after = await fsck2(md, table, o);
  return report;
}

/**
 * Makes lost the slots of a regular file's piece map that lie under nodes that cannot be read: each
 * aligned run of slots under one leaf is tried, and a run whose nodes fail is quarantined whole, at the
 * smallest span the tree lets it be (a bad upper node takes its whole subtree). Returns how many runs.
 */
function quarantineUnreadable(md: Metadata2, inode: InodeRecord): number {
  const map = md.pieceMapIfAny(inode.ino);
  if (!map) return 0;
  // Only up to the file's end: nothing past it is read, and a huge sparse capacity is not walked slot by slot.
  const pieces = Math.ceil(inode.size / md.pieceSize);
  const treeCapacity = slotTreeCapacity(INODE_ROOT_CAPACITY, map.tree.depth);
  const capacity = Math.min(treeCapacity, Math.ceil(pieces / MAP_NODE_SLOTS) * MAP_NODE_SLOTS);
  let runs = 0;
  for (let start = 0; start < capacity; start += MAP_NODE_SLOTS) {
    try {
      readsWhole(map.versions(start, start + MAP_NODE_SLOTS)); // reads the nodes above and at this leaf
      continue;
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
    }
    // Widen until the fill can reach the range: a node above the leaf may be the unreadable one.
    for (let span = MAP_NODE_SLOTS; ; span *= MAP_NODE_SLOTS) {
      const from = Math.floor(start / span) * span;
      try {
        map.quarantine(from, Math.min(treeCapacity, from + span));
        runs++;
        start = Math.max(start, from + span - MAP_NODE_SLOTS);
        break;
      } catch (err) {
        if (!(err instanceof IntegrityError) || span >= treeCapacity) throw err;
      }
    }
  }
  // A span reaches past the end of the file: what lies past it is a hole again, so that a file extended
  // later reads zeros there, not EIO.
  if (runs > 0) map.truncate(Math.ceil(inode.size / md.pieceSize));
  return runs;
}

/** Whether a read succeeds; an IntegrityError says no, anything else is thrown. */
function readable(read: () => unknown): boolean {
  try {
    read();
    return true;
  } catch (err) {
    if (err instanceof IntegrityError) return false;
    throw err;
  }
}

/** Runs a walk to its end, for the reads it makes. */
function readsWhole(walk: Iterable<unknown>): void {
  for (const item of walk) void item;
}

/** Links a nameless inode as `#<ino>` in its parentIno directory if that is sound, else in /lost+found. */
function relink(md: Metadata2, ino: number): void {
  const inode = md.requireInode(ino);
  const name = Buffer.from(`#${ino}`);
  let dir: number | undefined;
  try {
    const parent = md.inode(inode.parentIno);
    if (parent?.type === FileType.directory && md.lookup(parent.ino, name) === null) dir = parent.ino;
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
  }
  dir ??= lostAndFound(md); // made only when something goes there
  md.link(dir, name, ino);
  const into = dir;
  if (inode.type === FileType.directory) md.setAttributes(into, (d) => ({ nlink: d.nlink + 1 }));
  md.setAttributes(ino, () => ({ parentIno: into }));
}

/** /lost+found, made (mode 0700) when it is not there. */
function lostAndFound(md: Metadata2): number {
  const name = Buffer.from(LOST_AND_FOUND);
  const found = md.lookup(ROOT_INO, name);
  if (found) return found.ino;
  const dir = md.createInode({ type: FileType.directory, mode: 0o700, uid: 0, gid: 0, parentIno: ROOT_INO, time: nowTimespec() });
  md.link(ROOT_INO, name, dir.ino);
  md.setAttributes(ROOT_INO, (root) => ({ nlink: root.nlink + 1 }));
  return dir.ino;
}
