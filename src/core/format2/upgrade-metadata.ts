// The heart of `svault upgrade` (docs/format-2.md 4.4, steps 4 and 7): format 1's metadata, walked from
// the root, written again as format 2's. Only metadata: a file keeps its ino, its fileId and its piece
// versions, so every blob stays where it is and opens as before (10.1). The walk reads everything before
// anything is written, so a damaged format-1 store stops the upgrade with the list of what is wrong,
// unless `salvage` asks to convert what the walk reaches. The config, layout, marker, anchor and the
// commit point of 4.4 are the upgrade command's; this writes meta2.db and returns it open.

import { FsError, IntegrityError } from '../errors.js';
import { ROOT_ID, type Inode } from '../meta/inode.js';
import type { Metadata } from '../meta/metadata.js';
import { FileType, INLINE_MAX, MAP_ROOT_MAX, ROOT_INO, timespecOfMs } from './inode-record.js';
import { MAP_NODE_SLOTS } from './map-node.js';
import { Metadata2, type Metadata2Options } from './metadata2.js';
import type { RecordTable } from './record-table.js';
import { lostSlot } from './slot.js';

/** What of format 1's metadata the upgrade reads (a vault opened with inspectOnly gives it: Vault.check().meta). */
export type Format1Metadata = Pick<Metadata, 'requireInode' | 'list' | 'upgradeCounters'>;

/** The margin above every format-1 file's nextVersion (4.4): uncommitted versions a crash left stay below H0. */
const VERSION_MARGIN = 2 ** 32;
/** Inodes converted per commit: about 2,000 records with their entries and chaff. */
const INODES_PER_COMMIT = 1_000;
/** Entries linked per commit: a commit holds every directory it changes in memory. */
const LINKS_PER_COMMIT = 2_000;
/** Where format 1 counted versions from in a store whose state record has no reservation (meta/metadata.ts). */
const FORMAT1_VERSION_FLOOR = 2 ** 40;

export interface UpgradeProblem {
  path: string;
  detail: string;
}

/** The format-1 store cannot be converted whole: what the walk found. Nothing was written. */
export class UpgradeRefused extends FsError {
  constructor(readonly problems: UpgradeProblem[]) {
    super('EIO', `the format-1 metadata has ${problems.length} problem(s); repair them with \`svault fsck --repair\` of the svault that wrote it, or convert what is readable with \`svault upgrade --salvage\`: ${problems.slice(0, 5).map((p) => `${p.path}: ${p.detail}`).join('; ')}`);
    this.name = 'UpgradeRefused';
  }
}

export interface ConvertedMetadata {
  /** The format-2 metadata, committed, open on `table`. */
  md: Metadata2;
  /** The first commit number: above every piece version format 1 used (4.4's H0). */
  h0: number;
  inodes: number;
  files: number;
  directories: number;
  symlinks: number;
  pieces: number;
  lostPieces: number;
  /** What --salvage left out (its blobs become orphans). */
  leftOut: UpgradeProblem[];
}

/**
 * 4.4, step 5: about 4,096 bytes × (inodes × (1 + chaff ratio) + bucket records + map nodes) × 1.2, the
 * margin for the WAL. A directory needs about one bucket record per 3,900 bytes of entries past what its
 * inode holds, a file one map node per 494 pieces past what its inode's root holds.
 */
function metadataBytesNeeded(found: readonly Found[], entries: ReadonlyMap<string, readonly { name: string }[]>, chaffRatio: number): number {
  let records = found.length * (1 + chaffRatio);
  for (const list of entries.values()) {
    let bytes = 0;
    for (const e of list) bytes += 10 + Buffer.byteLength(e.name);
    if (bytes > INLINE_MAX) records += Math.ceil(bytes / (0.75 * 3_940));
  }
  for (const { inode } of found) if (inode.kind === 'file' && inode.pieces.size > MAP_ROOT_MAX) records += Math.ceil(inode.pieces.size / MAP_NODE_SLOTS) + 1;
  return Math.ceil(4096 * records * 1.2);
}

const TYPE_OF_KIND: Record<Inode['kind'], FileType> = { file: FileType.regular, dir: FileType.directory, symlink: FileType.symlink };

/** One format-1 inode as the walk found it: where, and under which names. */
interface Found {
  inode: Inode;
  /** The directory it was first found in: its parentIno. */
  parentIno: number;
  path: string;
}

/** Reads every inode and entry reachable from format 1's root; nothing is written. */
function walkFormat1(source: Format1Metadata): { found: Found[]; entries: Map<string, { name: string; id: string }[]>; problems: UpgradeProblem[] } {
  const problems: UpgradeProblem[] = [];
  const byId = new Map<string, Found>();
  const entries = new Map<string, { name: string; id: string }[]>();
  const root = source.requireInode(ROOT_ID);
  byId.set(ROOT_ID, { inode: root, parentIno: 0, path: '/' });
  const queue: Found[] = [byId.get(ROOT_ID) as Found];
  for (let dir = queue.shift(); dir; dir = queue.shift()) {
    let listed: { name: string; id: string }[];
    try {
      listed = source.list(dir.inode).map((e) => ({ name: e.name, id: e.id }));
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      problems.push({ path: dir.path, detail: `its listing cannot be read: ${err.message}` });
      continue;
    }
    const kept: { name: string; id: string }[] = [];
    for (const e of listed) {
      const path = dir.path === '/' ? `/${e.name}` : `${dir.path}/${e.name}`;
      let child = byId.get(e.id);
      if (!child) {
        let inode: Inode;
        try {
          inode = source.requireInode(e.id);
        } catch (err) {
          if (!(err instanceof IntegrityError)) throw err;
          problems.push({ path, detail: err.message });
          continue;
        }
        child = { inode, parentIno: dir.inode.ino, path };
        byId.set(e.id, child);
        if (inode.kind === 'dir') queue.push(child);
      }
      kept.push(e);
    }
    entries.set(dir.inode.id, kept);
  }
  return { found: [...byId.values()], entries, problems };
}

/**
 * Converts format 1's metadata into a new meta2.db (`table`, empty). Throws UpgradeRefused, before
 * writing anything, when the walk finds damage and `salvage` is not set.
 */
export function convertMetadata(
  source: Format1Metadata,
  table: RecordTable,
  o: Metadata2Options,
  opts: {
    salvage?: boolean;
    /** Called after the walk, before anything is written, with the bytes meta2.db will need (4.4, step 5). */
    checkSpace?: (bytes: number) => void;
  } = {},
): ConvertedMetadata {
  const { found, entries, problems } = walkFormat1(source);
  if (problems.length > 0 && !opts.salvage) throw new UpgradeRefused(problems);
  opts.checkSpace?.(metadataBytesNeeded(found, entries, o.chaffRatio));

  let highestNext = 0;
  for (const { inode } of found) if (inode.kind === 'file') highestNext = Math.max(highestNext, inode.nextVersion);
  const counters = source.upgradeCounters;
  // A store from before reservations counted versions from 2^40 (format 1's floor), past any file's count.
  const h0 = Math.max(counters.versionsReserved ?? FORMAT1_VERSION_FLOOR, highestNext + VERSION_MARGIN);

  const [rootFound, ...rest] = found;
  const root = (rootFound as Found).inode;
  const md = Metadata2.create(table, o, { mode: root.mode, uid: root.uid, gid: root.gid, time: timespecOfMs(root.mtime) }, h0);
  const result: ConvertedMetadata = { md, h0, inodes: 1, files: 0, directories: 1, symlinks: 0, pieces: 0, lostPieces: 0, leftOut: problems };
  md.setAttributes(ROOT_INO, () => ({ mode: root.mode, nlink: root.nlink, atime: timespecOfMs(root.atime), ctime: timespecOfMs(root.ctime) }));
  setXattrs(md, ROOT_INO, root);

  const inoOf = new Map<string, number>([[ROOT_ID, ROOT_INO]]);
  for (const [n, { inode, parentIno }] of rest.entries()) {
    if (inode.ino === ROOT_INO || inoOf.has(inode.id)) throw new IntegrityError(`format 1 gives ino ${inode.ino} to two inodes`);
    const type = TYPE_OF_KIND[inode.kind];
    md.importInode({
      ino: inode.ino,
      fileId: inode.fileId,
      type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      parentIno,
      nlink: inode.nlink,
      time: timespecOfMs(inode.mtime),
      atime: timespecOfMs(inode.atime),
      mtime: timespecOfMs(inode.mtime),
      ctime: timespecOfMs(inode.ctime),
      target: inode.kind === 'symlink' ? Buffer.from(inode.target ?? '') : undefined,
    });
    inoOf.set(inode.id, inode.ino);
    result.inodes++;
    if (inode.kind === 'dir') result.directories++;
    if (inode.kind === 'symlink') result.symlinks++;
    if (inode.kind === 'file') {
      result.files++;
      // Small files keep their blobs: they go inline at --finish, when rollback is no longer possible.
      if (inode.pieces.size > 0 || inode.lost.length > 0 || inode.size > 0) {
        const map = md.pieceMap(inode.ino);
        for (const [index, version] of inode.pieces) map.setSlot(index, version);
        for (const index of inode.lost) map.setSlot(index, lostSlot(0));
        md.setAttributes(inode.ino, () => ({ size: inode.size }));
        result.pieces += inode.pieces.size;
        result.lostPieces += inode.lost.length;
      }
    }
    setXattrs(md, inode.ino, inode);
    if ((n + 1) % INODES_PER_COMMIT === 0) md.commitNow();
  }

  let linked = 0;
  for (const [dirId, list] of entries) {
    const dirIno = inoOf.get(dirId) as number;
    for (const e of list) {
      const childIno = inoOf.get(e.id);
      if (childIno === undefined) continue;
      md.link(dirIno, Buffer.from(e.name), childIno);
      if (++linked % LINKS_PER_COMMIT === 0) {
        md.commitNow();
        md.evict();
      }
    }
  }
  let nextIno = counters.nextIno;
  for (const f of found) nextIno = Math.max(nextIno, f.inode.ino + 1);
  md.setUpgradeState({ nextIno, legacyBelow: h0, upgradeStage: 1 });
  md.commitNow();
  return result;
}

function setXattrs(md: Metadata2, ino: number, inode: Inode): void {
  if (inode.xattrs.size === 0) return;
  md.setXattrs(ino, [...inode.xattrs].map(([name, value]) => ({ name: Buffer.from(name), value })));
}
