// fsck over format 2's records (docs/format-2.md 5.10), the checking half: --repair comes with the switch
// to format 2. It walks the version tree from the state record: the inode table, every inode at the version
// its slot holds, and everything each inode owns at the versions the inode holds (piece map nodes, buckets,
// the bucket table, spill records), so a damaged, replayed or missing record is named by its owner. Then
// the names: every live inode must be named by a directory entry, and its link count must be what the
// entries say. Last the rows: a row that nothing reached and that is not an inode's expected chaff is
// unreachable. Pieces are checked through the caller's verifyPiece, since blobs are the vault's business.

import { IntegrityError } from '../errors.js';
import { FileType, ROOT_INO, type InodeRecord } from './inode-record.js';
import type { Metadata2 } from './metadata2.js';
import type { RecordTable } from './record-table.js';

export type Fsck2ProblemKind =
  | 'bad-record' // fails authentication or is malformed
  | 'stale-record' // an older authentic version: a replay or a rollback of that record
  | 'missing-record'
  | 'nameless-inode' // live, but no directory entry names it
  | 'bad-link-count' // nlink differs from the entries naming it
  | 'dangling-entry' // a directory entry names an inode the table does not hold
  | 'missing-piece'
  | 'bad-piece' // a piece that fails authentication, or an older version of it
  | 'malformed-row'; // a row that is not a 32-byte name and a 4,000-byte value

export interface Fsck2Problem {
  readonly kind: Fsck2ProblemKind;
  /** The inode the problem is about, or whose record is bad. */
  readonly ino?: number;
  /** Which of its records: the inode table, the inode's own, what it owns (map nodes, buckets, spill), a piece. */
  readonly of?: 'inode-table' | 'inode' | 'owned' | 'piece';
  /** A dangling entry's directory and name. */
  readonly dirIno?: number;
  readonly name?: Buffer;
  /** A bad link count: what the entries say it should be. */
  readonly expected?: number;
  readonly detail: string;
}

export interface Fsck2Report {
  inodes: number;
  files: number;
  directories: number;
  symlinks: number;
  /** FIFOs, sockets and device nodes. */
  special: number;
  /** Piece versions the piece maps point to, each checked when verifyPiece is given. */
  pieces: number;
  /** The regular files' sizes, summed: what the user stored. */
  logicalBytes: number;
  /** Regular files with lost piece slots: quarantined by a repair, their reads there fail with EIO. */
  quarantinedFiles: number;
  /** Records reached through the tree, the state record included. */
  records: number;
  /** Expected chaff rows found, and expected ones missing (a note, not a problem: 5.9). */
  chaff: number;
  missingChaff: number;
  /** Rows nothing reached that are not expected chaff. */
  unreachableRows: number;
  /** Their names, for --repair to delete once the walk is complete. */
  unreachableNames: Buffer[];
  /** The first entry naming each inode, its directory and the type it gives: what an inode whose own record is unreadable was (--repair). */
  namedBy: Map<number, { dirIno: number; type: FileType }>;
  problems: Fsck2Problem[];
  /**
   * What the walk could not reach: the records of an owner that failed to read are not all known, so the
   * unreachable rows may include them, and nothing may be deleted as unreachable (--repair adopts them).
   */
  incomplete: string[];
}

export interface Fsck2Options {
  /** Reads and checks one piece; throws IntegrityError when it is missing or damaged. */
  verifyPiece?: (inode: InodeRecord, index: number, version: number) => Promise<void>;
}

const KIND_OF: Record<IntegrityError['kind'], Fsck2ProblemKind> = { damaged: 'bad-record', stale: 'stale-record', missing: 'missing-record' };

export async function fsck2(md: Metadata2, table: RecordTable, o: Fsck2Options = {}): Promise<Fsck2Report> {
  const report: Fsck2Report = { inodes: 0, files: 0, directories: 0, symlinks: 0, special: 0, pieces: 0, logicalBytes: 0, quarantinedFiles: 0, records: 0, chaff: 0, missingChaff: 0, unreachableRows: 0, unreachableNames: [], namedBy: new Map(), problems: [], incomplete: [] };
  const reached = new Set<string>();
  const expectedChaff = new Set<string>();
  const reach = (names: Buffer[]) => {
    for (const name of names) reached.add(name.toString('hex'));
  };
  /** Runs a read; an IntegrityError becomes a problem of its kind (and false), anything else is thrown. */
  const checked = (ino: number | undefined, of: Fsck2Problem['of'], what: string, read: () => void): boolean => {
    try {
      read();
      return true;
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      report.problems.push({ kind: KIND_OF[err.kind], ino, of, detail: `${what}: ${err.message}` });
      return false;
    }
  };

  const live: number[] = [];
  let tableRead = checked(undefined, 'inode-table', 'the inode table', () => reach(md.treeRecordNames()));
  /** Ranges of inos under table nodes that cannot be read: an entry naming one of them is not dangling. */
  const hidden: [number, number][] = [];
  // Leaf by leaf: a bad node of the table hides the inodes under it, not the whole vault.
  for (const ino of md.liveInos((err, from, to) => {
    report.problems.push({ kind: KIND_OF[err.kind], of: 'inode-table', detail: `the inode table, inos ${from} to ${to - 1}: ${err.message}` });
    hidden.push([from, to]);
    tableRead = false;
  })) {
    live.push(ino);
  }
  if (!tableRead) report.incomplete.push('the inode table could not be read whole: the inodes under its damaged nodes were not checked');

  /** What the name checks need of each inode read, not the inode itself (a vault's worth would not fit). */
  const inodes = new Map<number, { type: FileType; nlink: number }>();
  /** How many entries name each inode, and how many subdirectories each directory has. */
  const named = new Map<number, number>();
  const subdirectories = new Map<number, number>();
  const liveSet = new Set(live);
  for (const ino of live) {
    const { record, chaff } = md.inodeRecordNames(ino);
    reach([record]);
    for (const name of chaff) {
      expectedChaff.add(name.toString('hex'));
      if (table.get(name)) report.chaff++;
      else report.missingChaff++;
    }
    let inode: InodeRecord | null = null;
    if (!checked(ino, 'inode', `inode ${ino}`, () => (inode = md.requireInode(ino))) || !inode) {
      // What it owns (its pieces, buckets, map nodes) cannot be listed: none of it may be taken for an orphan
      // or an unreachable row (the sweep after a crash, --repair) until the inode is repaired.
      report.incomplete.push(`inode ${ino} could not be read: what it owns was not reached`);
      continue;
    }
    const found: InodeRecord = inode;
    inodes.set(ino, { type: found.type, nlink: found.nlink });
    if (inodes.size % 1000 === 0) md.evict(); // what was read for the inodes before is not needed again
    report.inodes++;
    if (!checked(ino, 'owned', `what inode ${ino} owns`, () => reach(md.ownedRecordNames(found)))) {
      report.incomplete.push(`inode ${ino}: not all of its records could be read`);
    }
    switch (found.type) {
      case FileType.regular:
        report.files++;
        report.logicalBytes += found.size;
        if (found.hasLost) report.quarantinedFiles++;
        await checkPieces(md, found, report, o, checked);
        break;
      case FileType.directory:
        report.directories++;
        checked(ino, 'owned', `directory ${ino}`, () => {
          for (const entry of md.list(ino)) {
            if (!report.namedBy.has(entry.ino)) report.namedBy.set(entry.ino, { dirIno: ino, type: entry.type });
            if (hidden.some(([from, to]) => entry.ino >= from && entry.ino < to)) continue; // unknown, not dangling
            if (!liveSet.has(entry.ino)) {
              report.problems.push({ kind: 'dangling-entry', ino: entry.ino, dirIno: ino, name: entry.name, detail: `directory ${ino}: entry ${JSON.stringify(entry.name.toString())} names inode ${entry.ino}, which the inode table does not hold` });
              continue;
            }
            named.set(entry.ino, (named.get(entry.ino) ?? 0) + 1);
            if (entry.type === FileType.directory) subdirectories.set(ino, (subdirectories.get(ino) ?? 0) + 1);
          }
        });
        break;
      case FileType.symlink:
        report.symlinks++;
        break;
      default:
        report.special++;
    }
  }

  for (const [ino, inode] of inodes) {
    const names = named.get(ino) ?? 0;
    if (ino !== ROOT_INO && names === 0) {
      report.problems.push({ kind: 'nameless-inode', ino, detail: `inode ${ino} (type ${inode.type}) is live, but no directory entry names it` });
      continue;
    }
    const want = inode.type === FileType.directory ? 2 + (subdirectories.get(ino) ?? 0) : names;
    if (inode.nlink !== want) report.problems.push({ kind: 'bad-link-count', ino, expected: want, detail: `inode ${ino}: nlink ${inode.nlink}, the entries say ${want}` });
  }

  report.records = reached.size;
  for (const row of table.malformedRows()) {
    report.problems.push({ kind: 'malformed-row', detail: `row ${row.id}: a ${row.nameBytes}-byte name and a ${row.valueBytes}-byte value` });
  }
  for (const name of table.names()) {
    const hex = name.toString('hex');
    if (!reached.has(hex) && !expectedChaff.has(hex)) {
      report.unreachableRows++;
      report.unreachableNames.push(name);
    }
  }
  return report;
}

/** Counts (and, with verifyPiece, checks) the pieces a regular file's map points to. */
async function checkPieces(md: Metadata2, inode: InodeRecord, report: Fsck2Report, o: Fsck2Options, checked: (ino: number, of: Fsck2Problem['of'], what: string, read: () => void) => boolean): Promise<void> {
  const versions: { index: number; version: number }[] = [];
  checked(inode.ino, 'owned', `the piece map of inode ${inode.ino}`, () => {
    const map = md.pieceMapIfAny(inode.ino);
    if (map) versions.push(...map.versions());
  });
  report.pieces += versions.length;
  if (!o.verifyPiece) return;
  for (const { index, version } of versions) {
    try {
      await o.verifyPiece(inode, index, version);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      report.problems.push({ kind: err.kind === 'missing' ? 'missing-piece' : 'bad-piece', ino: inode.ino, of: 'piece', detail: `inode ${inode.ino}, piece ${index}: ${err.message}` });
    }
  }
}
