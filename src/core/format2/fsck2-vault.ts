// fsck and info over a format-2 vault (docs/format-2.md 5.10, 10.2 and 4.4's table of what fsck says
// midway): the record walk of fsck2.ts with every piece the piece maps point to read and checked, then the
// blob walk format 1's fsck does (src/core/fsck/fsck.ts), where every blob is a referenced piece, chaff or an
// orphan. Chaff is the derived chaff of a piece a map points to (10.2: its addresses computed from the piece),
// and while an upgrade is not finished, a blob that is chaff by format 1's rule. --repair repairs the records
// (fsck2-repair.ts), quarantines damaged pieces as format 1 does (their slots become lost, so reads of them
// fail with EIO, and the file moves to /lost+found), and deletes the orphans once a walk reaches everything
// (Vault2.sweepOrphans). Problems name inode numbers, not paths, as format 2's logs do (security finding 11).

import { FsError, IntegrityError } from '../errors.js';
import type { FsckReport } from '../fsck/fsck.js';
import { StoreDir } from '../os/store-dir.js';
import { NAME_MAX, type DirEntry } from './dir-records.js';
import { detectFormat } from './format-detect.js';
import { fsck2, type Fsck2Problem, type Fsck2ProblemKind, type Fsck2Report } from './fsck2.js';
import { LOST_AND_FOUND, repair2 } from './fsck2-repair.js';
import { FileType, ROOT_INO } from './inode-record.js';
import type { Vault2 } from './vault2.js';

export interface Vault2FsckProblem {
  kind: Fsck2ProblemKind;
  /** The inode the problem is about; none for the inode table or a malformed row. */
  ino?: number;
  /** A dangling entry's directory and name. */
  dirIno?: number;
  name?: string;
  /** Its subject first ("inode 12: ...", "directory 3: ...", "the inode table ..."), as fsck2 words it. */
  detail: string;
}

/**
 * What `svault fsck` reports of a format-2 vault: format 1's report (FsckReport, the same counts and meanings),
 * with problems by inode, special files, metadata chaff and notes.
 */
export interface Vault2FsckReport extends Omit<FsckReport, 'problems'> {
  format: 2;
  /** FIFOs, sockets and device nodes. */
  special: number;
  /** Metadata chaff rows (5.9). */
  metadataChaff: number;
  problems: Vault2FsckProblem[];
  /** Worth knowing, and not a problem (section 13): missing chaff, what an upgrade keeps for a rollback (4.4). */
  notes: string[];
}

/** A piece that is missing or fails authentication, as the walk found it. */
interface DamagedPiece {
  ino: number;
  fileId: Buffer;
  index: number;
  version: number;
}

export interface Vault2Scan {
  report: Vault2FsckReport;
  /** The record walk's own report (its namedBy says where each inode is named). */
  records: Fsck2Report;
  damaged: DamagedPiece[];
}

function problemOf(p: Fsck2Problem): Vault2FsckProblem {
  return { kind: p.kind, ino: p.ino, dirIno: p.dirIno, name: p.name?.toString('utf8'), detail: p.detail };
}

/**
 * Walks the records, then every blob. With verifyPieces every piece is read and checked (fsck); without,
 * pieces are only counted (info). Nothing is written.
 */
export async function scanVault2(vault: Vault2, verifyPieces = true): Promise<Vault2Scan> {
  const { md, table, pieces, storeDir } = vault.check();
  const { upgradeStage, finishCursor, legacyBelow } = md.state;
  const referenced = new Set<string>();
  /** The derived chaff the live pieces should have (10.2), by address: whether it was found, or need not be. */
  const expectedChaff = new Map<string, boolean>();
  const damaged: DamagedPiece[] = [];
  // Worded here rather than by fsck2, whose detail would name the inode and piece twice.
  const pieceProblems: Vault2FsckProblem[] = [];
  const records = await fsck2(md, table, {
    verifyPiece: async (inode, index, version) => {
      referenced.add(pieces.pieceAddress(inode, index, version).toString('hex'));
      // A format-1 piece has format 1's chaff until --finish gives it its own: not missing before then.
      const legacy = upgradeStage !== 0 && version < legacyBelow;
      for (const a of pieces.chaffAddresses(inode, index, version)) expectedChaff.set(a.toString('hex'), legacy);
      if (!verifyPieces) return;
      const subject = `inode ${inode.ino}`;
      try {
        await pieces.verifyPiece(inode, index, version, subject);
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        // The store's own refusals (a link or a special file where the blob should be) do not say whose piece it is.
        const detail = err.message.startsWith(`${subject}:`) ? err.message : `${subject}, piece ${index} (version ${version}): ${err.message}`;
        pieceProblems.push({ kind: err.kind === 'missing' ? 'missing-piece' : 'bad-piece', ino: inode.ino, detail });
        damaged.push({ ino: inode.ino, fileId: inode.fileId, index, version });
      }
    },
  });

  let chaff = 0;
  let orphans = 0;
  for await (const address of pieces.blobAddresses()) {
    const hex = address.toString('hex');
    if (referenced.has(hex)) continue;
    if (expectedChaff.has(hex)) {
      expectedChaff.set(hex, true);
      chaff++;
    } else if (upgradeStage !== 0 && (await pieces.isChaffAt(address))) {
      chaff++; // format 1's, kept until --finish deletes it (4.4); an orphan after
    } else {
      orphans++;
    }
  }
  let missingChaffBlobs = 0;
  for (const found of expectedChaff.values()) if (!found) missingChaffBlobs++;

  const notes: string[] = [];
  if (records.missingChaff > 0) notes.push(`${records.missingChaff} metadata chaff record(s) missing: they only hide how many files there are, no data is lost`);
  if (missingChaffBlobs > 0) notes.push(`${missingChaffBlobs} chaff blob(s) of live pieces missing: they only hide how much data there is, no data is lost`);
  if (upgradeStage !== 0) {
    const kept = StoreDir.using(storeDir, (dir) => {
      const found = detectFormat(dir);
      return found.format === 2 ? found.format1Leftovers : [];
    });
    if (kept.length > 0) notes.push(`format-1 files kept for rollback: ${kept.join(', ')}`);
  }
  // Until --finish, format 1's superseded pieces are what a rollback reads: kept, and no problem (4.4).
  if (upgradeStage === 1 && orphans > 0) {
    notes.push(`${orphans} blob(s) no file points to, among them format 1's pieces superseded since the upgrade, are kept until svault upgrade --finish`);
    orphans = 0;
  }
  // Midway through --finish (stage 2), the same blobs, and those of small files it has just made INLINE, are
  // what its last step deletes: still notes, not problems (4.4's table).
  if (upgradeStage === 2 && orphans > 0) {
    notes.push(`${orphans} blob(s) no file points to, among them format 1's pieces superseded since the upgrade, are deleted when svault upgrade --finish is run again`);
    orphans = 0;
  }
  if (upgradeStage === 2) notes.push(`svault upgrade --finish was interrupted at inode ${finishCursor}: run it again`);

  const report: Vault2FsckReport = {
    format: 2,
    files: records.files,
    directories: records.directories,
    symlinks: records.symlinks,
    special: records.special,
    pieces: records.pieces,
    logicalBytes: records.logicalBytes,
    chaff,
    orphans,
    unreachableRecords: records.unreachableRows,
    quarantinedFiles: records.quarantinedFiles,
    metadataChaff: records.chaff,
    problems: [...records.problems.map(problemOf), ...pieceProblems],
    incomplete: records.incomplete,
    notes,
  };
  return { report, records, damaged };
}

export function isClean2(r: Vault2FsckReport): boolean {
  return r.problems.length === 0 && r.orphans === 0 && r.unreachableRecords === 0;
}

/** Checks the vault; with repair, repairs what it can and checks again. The reports before and after. */
export async function fsckVault2(vault: Vault2, opts: { repair?: boolean } = {}): Promise<{ before: Vault2FsckReport; after?: Vault2FsckReport }> {
  const first = await scanVault2(vault);
  if (!opts.repair) return { before: first.report };
  await repairVault2(vault, first);
  const second = await scanVault2(vault);
  return { before: first.report, after: second.report };
}

async function repairVault2(vault: Vault2, first: Vault2Scan): Promise<void> {
  const { md, table, pieces } = vault.check();
  // The records first (5.10), with walks that read no piece: an inode dropped there takes its damaged
  // pieces with it, as orphans. Its five walks only when the first found something of theirs.
  if (first.records.problems.length > 0 || first.records.unreachableRows > 0) await repair2(md, table);
  // Synchronously from the quarantine to the commit: the vault's committer must not cut in between.
  const quarantined = quarantinePieces(vault, first);
  md.commitNow();
  vault.saveAnchor(); // repair2 and the line above commit past the committer, which moves the anchor otherwise
  // The damaged blobs go once no map points to them, except format 1's while an upgrade may still roll back.
  const { upgradeStage, legacyBelow } = md.state;
  for (const p of quarantined) {
    if (upgradeStage !== 1 || p.version >= legacyBelow) await pieces.deleteDamagedPiece(p, p.index, p.version);
  }
  // Orphans, and the crash mark, only from a walk that reaches everything (it says why not otherwise, and
  // the check after the repair counts what is left).
  await vault.sweepOrphans();
}

/**
 * Makes the slot of each damaged piece lost, where the file still points to that version after the record
 * repair, and moves each such file to /lost+found as `<name>.<ino>`, as format 1's repair does. Returns the
 * pieces quarantined. Nothing is committed here.
 */
function quarantinePieces(vault: Vault2, first: Vault2Scan): DamagedPiece[] {
  const { md } = vault.check();
  const done: DamagedPiece[] = [];
  const files = new Set<number>();
  for (const p of first.damaged) {
    try {
      const inode = md.inode(p.ino);
      // Gone with its record, or its ino given to another file since: its blobs are orphans now.
      if (!inode || inode.type !== FileType.regular || !inode.fileId.equals(p.fileId)) continue;
      const still = md.pieceMapIfAny(p.ino)?.versions(p.index, p.index + 1).next().value;
      if (still?.version !== p.version) continue;
      md.pieceMap(p.ino).quarantine(p.index, p.index + 1);
    } catch (err) {
      if (err instanceof IntegrityError) continue; // its map cannot be read: the record repair made it lost
      throw err;
    }
    done.push(p);
    files.add(p.ino);
  }
  for (const ino of files) moveToLostAndFound(vault, first.records, ino);
  return done;
}

/** Moves one name of a quarantined file into /lost+found, made when missing; a file it cannot move stays where it is. */
function moveToLostAndFound(vault: Vault2, records: Fsck2Report, ino: number): void {
  const { md } = vault.check();
  const lfName = Buffer.from(LOST_AND_FOUND);
  try {
    // Its parentIno names the directory of its first name; the walk's namedBy one that named it then.
    const dirs = [md.requireInode(ino).parentIno, records.namedBy.get(ino)?.dirIno];
    let from: { dir: number; entry: DirEntry } | undefined;
    for (const dir of dirs) {
      if (dir === undefined || from) continue;
      const entry = md.inode(dir)?.type === FileType.directory ? md.list(dir).find((e) => e.ino === ino) : undefined;
      if (entry) from = { dir, entry };
    }
    if (!from) return; // nameless: the record repair linked it, or it stays for the next check to report
    const lf = vault.inodes.lookup(ROOT_INO, lfName) ?? vault.inodes.mkdir(ROOT_INO, lfName, 0o700, 0, 0);
    if (from.dir === lf) return;
    const to = Buffer.from(`${from.entry.name.toString('utf8')}.${ino}`);
    vault.inodes.rename(from.dir, from.entry.name, lf, to.length <= NAME_MAX ? to : Buffer.from(`#${ino}`), true);
  } catch (err) {
    // A /lost+found that is not a directory, a name taken, a damaged bucket (an IntegrityError is an FsError):
    // the pieces are quarantined all the same, and reading them fails wherever the file is.
    if (err instanceof FsError) return;
    throw err;
  }
}

/** How much the store holds: blobs (pieces, chaff, orphans), and the metadata databases with their WAL. */
export async function usageVault2(vault: Vault2): Promise<{ blobs: number; blobBytes: number; metadataBytes: number }> {
  const { pieces, storeDir } = vault.check();
  const blobs = await pieces.usage();
  const metadataBytes = StoreDir.using(storeDir, (dir) => {
    const found = detectFormat(dir);
    if (found.format !== 2) return 0;
    let bytes = 0;
    for (const db of found.metadataDatabases) {
      for (const name of [db, `${db}-wal`]) {
        const st = dir.stat(name);
        if (st?.isFile()) bytes += st.size;
      }
    }
    return bytes;
  });
  return { blobs: blobs.blobs, blobBytes: blobs.bytes, metadataBytes };
}
