// fsck: checks every metadata record and every piece (present, authentic, referenced once) and finds
// orphaned blobs. --repair deletes orphans and quarantines damaged files into /lost+found, keeping every
// healthy file untouched. Reports name files by path, since fsck holds the key.

import { isChaff, type Address } from './address.js';
import { IntegrityError } from './errors.js';
import { ROOT_ID, type Inode } from './meta/inode.js';
import type { Vault } from './vault.js';

export const LOST_AND_FOUND = 'lost+found';

export interface FsckProblem {
  path: string;
  kind: 'bad-record' | 'missing-piece' | 'bad-piece' | 'duplicate-piece' | 'bad-directory';
  detail: string;
}

export interface FsckReport {
  files: number;
  directories: number;
  symlinks: number;
  pieces: number;
  /** Sum of file sizes (what the user stored). */
  logicalBytes: number;
  chaff: number;
  orphans: number;
  unreachableRecords: number;
  quarantinedFiles: number;
  problems: FsckProblem[];
  /** Set when the walk could not reach everything: orphan counts then include healthy files' blobs. */
  incomplete: string[];
}

export interface Scan {
  report: FsckReport;
  /** Damaged files: path -> the inode and the indexes of its bad pieces. */
  damaged: Map<string, { inode: Inode; bad: { index: number; version: number }[] }>;
  /** Entries whose own record (used by lookups) is missing, damaged or disagrees with the listing page. */
  badEntryRecords: { dirId: string; name: string }[];
  /** Entries whose inode record is missing or fails authentication. */
  brokenEntries: { parent: string; name: string; kind: string; id: string }[];
  /** The root directory's inode record is unreadable. */
  rootBroken: boolean;
  /**
   * Why the walk could not reach every file (a damaged directory or root). Then blobs and records the
   * walk did not reach may belong to healthy files, so nothing may be deleted as an orphan.
   */
  incomplete: string[];
  orphanAddresses: Address[];
  unreachable: Buffer[];
}

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export async function scan(vault: Vault, verifyPieces = true): Promise<Scan> {
  const report: FsckReport = { files: 0, directories: 0, symlinks: 0, pieces: 0, logicalBytes: 0, chaff: 0, orphans: 0, unreachableRecords: 0, quarantinedFiles: 0, problems: [], incomplete: [] };
  const s: Scan = { report, damaged: new Map(), badEntryRecords: [], brokenEntries: [], rootBroken: false, incomplete: report.incomplete, orphanAddresses: [], unreachable: [] };
  const referenced = new Map<string, string>();
  const reachableRecords = new Set<string>();
  const seenInodes = new Set<string>();
  const records = vault.meta.records;
  const note = (name: Buffer) => reachableRecords.add(name.toString('hex'));

  const visit = async (path: string, inode: Inode): Promise<void> => {
    note(records.nameOf('inode', inode.id));
    if (seenInodes.has(inode.id)) return; // another hard link to a file already checked
    seenInodes.add(inode.id);
    if (inode.kind === 'symlink') {
      report.symlinks++;
      return;
    }
    if (inode.kind === 'file') {
      report.files++;
      report.logicalBytes += inode.size;
      if (inode.lost.length > 0 && path.startsWith(`/${LOST_AND_FOUND}/`)) report.quarantinedFiles++;
      const key = vault.contents.fileKeyOf(inode.fileId);
      for (const [index, version] of [...inode.pieces].sort((a, b) => a[0] - b[0])) {
        report.pieces++;
        const hex = vault.contents.addressOf(inode.fileId, index, version).toString('hex');
        const other = referenced.get(hex);
        if (other !== undefined) {
          report.problems.push({ path, kind: 'duplicate-piece', detail: `piece ${index} is also referenced by ${other}` });
          continue;
        }
        referenced.set(hex, path);
        if (!verifyPieces) continue;
        try {
          await vault.contents.gather(inode.fileId, key, index, version, path);
        } catch (err) {
          if (!(err instanceof IntegrityError)) throw err;
          const missing = /missing/.test(err.message);
          report.problems.push({ path, kind: missing ? 'missing-piece' : 'bad-piece', detail: err.message });
          const d = s.damaged.get(path) ?? { inode, bad: [] };
          d.bad.push({ index, version });
          s.damaged.set(path, d);
        }
      }
      return;
    }
    report.directories++;
    for (let p = 0; p < inode.dirPages; p++) note(records.nameOf('dirpage', inode.id, String(p)));
    let entries;
    try {
      entries = vault.meta.list(inode);
    } catch (err) {
      report.problems.push({ path, kind: 'bad-directory', detail: (err as Error).message });
      s.incomplete.push(`the listing of ${path} is damaged`);
      return;
    }
    for (const e of entries) {
      const child = join(path, e.name);
      note(records.nameOf('entry', inode.id, e.name));
      // Every path lookup goes through the entry record, not the listing page: check that it agrees.
      let entryProblem: string | null = null;
      try {
        const rec = vault.meta.lookup(inode.id, e.name);
        if (!rec) entryProblem = 'its directory entry record is missing';
        else if (rec.id !== e.id || rec.kind !== e.kind) entryProblem = 'its directory entry record disagrees with the listing';
      } catch (err) {
        entryProblem = (err as Error).message;
      }
      if (entryProblem) {
        report.problems.push({ path: child, kind: 'bad-record', detail: entryProblem });
        s.badEntryRecords.push({ dirId: inode.id, name: e.name });
      }
      let childInode: Inode | null = null;
      try {
        childInode = vault.meta.getInode(e.id);
        if (!childInode) throw new IntegrityError(`${child}: inode record is missing`);
      } catch (err) {
        report.problems.push({ path: child, kind: 'bad-record', detail: (err as Error).message });
        s.brokenEntries.push({ parent: path, name: e.name, kind: e.kind, id: e.id });
        if (e.kind === 'dir') s.incomplete.push(`the directory ${child} cannot be read`);
        continue;
      }
      await visit(child, childInode);
    }
  };

  note(records.nameOf('state'));
  try {
    await visit('/', vault.inodeAt('/'));
  } catch (err) {
    report.problems.push({ path: '/', kind: 'bad-record', detail: (err as Error).message });
    s.incomplete.push('the root directory cannot be read');
    s.rootBroken = true;
  }

  for await (const address of vault.store.list()) {
    if (referenced.has(address.toString('hex'))) continue;
    const blob = await vault.store.get(address).catch(() => null); // unreadable: not chaff
    if (blob && isChaff(vault.keys.address, address, blob)) {
      report.chaff++;
    } else {
      report.orphans++;
      s.orphanAddresses.push(address);
    }
  }
  for (const name of records.names()) {
    if (!reachableRecords.has(name.toString('hex'))) s.unreachable.push(name);
  }
  report.unreachableRecords = s.unreachable.length;
  return s;
}

/** Checks the vault; with repair, fixes what it can and checks again. Returns the reports before and after. */
export async function fsck(vault: Vault, opts: { repair?: boolean } = {}): Promise<{ before: FsckReport; after?: FsckReport }> {
  const first = await scan(vault);
  if (!opts.repair) return { before: first.report };
  await repair(vault, first);
  const second = await scan(vault);
  return { before: first.report, after: second.report };
}

async function repair(vault: Vault, s: Scan): Promise<void> {
  const meta = vault.meta;
  // Entry records are redundant with the listing pages: rebuild them from there.
  for (const { dirId, name } of s.badEntryRecords) {
    meta.transaction(() => {
      meta.rewriteEntryRecord(meta.requireInode(dirId), name);
    });
  }
  // Entries pointing at unreadable inodes: the entry goes; the pieces become orphans, removed below.
  // A directory whose inode record is gone is rebuilt from its listing pages, so its subtree is kept.
  if (s.rootBroken) meta.transaction(() => meta.rebuildDirInode(ROOT_ID));
  for (const { id } of s.brokenEntries.filter((e) => e.kind === 'dir')) meta.transaction(() => meta.rebuildDirInode(id));
  // A file whose inode record is gone cannot be read again: its entry goes (its blobs become orphans).
  for (const { parent, name } of s.brokenEntries.filter((e) => e.kind !== 'dir')) {
    meta.transaction(() => {
      const dir = vault.inodeAt(parent);
      meta.removeEntry(dir, name);
      meta.putInode(dir);
    });
  }
  // Damaged files: bad pieces become quarantined holes (reads of them still fail), the file moves to /lost+found.
  if (s.damaged.size > 0) {
    try {
      vault.inodeAt(`/${LOST_AND_FOUND}`);
    } catch {
      vault.mkdir(`/${LOST_AND_FOUND}`, 0o700);
    }
  }
  for (const [path, { inode, bad }] of s.damaged) {
    meta.transaction(() => {
      const fresh = meta.requireInode(inode.id);
      const pieces = new Map(fresh.pieces);
      fresh.pieces = pieces;
      for (const { index } of bad) {
        pieces.delete(index);
        if (!fresh.lost.includes(index)) fresh.lost.push(index);
      }
      meta.putInode(fresh);
    });
    for (const { index, version } of bad) await vault.store.delete(vault.contents.addressOf(inode.fileId, index, version));
    if (!path.startsWith(`/${LOST_AND_FOUND}/`)) {
      const base = path.split('/').pop() ?? 'file';
      vault.rename(path, `/${LOST_AND_FOUND}/${base}.${inode.id}`);
    }
  }
  // Removing entries above can orphan more blobs and records: look again before deleting.
  const left = s.brokenEntries.length > 0 || s.rootBroken ? await scan(vault) : s;
  if (left.incomplete.length > 0) return; // unreached is not unreferenced: delete nothing
  for (const a of left.orphanAddresses) await vault.store.delete(a);
  vault.markCrashCleaned();
  meta.transaction(() => {
    for (const name of left.unreachable) meta.records.delete(name);
  });
  await vault.store.flush();
}

/**
 * Deletes blobs no committed metadata points to (and that are not chaff): what a crash between a piece
 * write and its metadata commit leaves. Run before serving, never alongside writes. Returns the count.
 */
export async function sweepOrphans(vault: Vault): Promise<{ removed: number; skipped?: string }> {
  const s = await scan(vault, false);
  if (s.incomplete.length > 0) return { removed: 0, skipped: `${s.incomplete.join('; ')}: run svault fsck` };
  for (const a of s.orphanAddresses) await vault.store.delete(a);
  await vault.store.flush();
  vault.markCrashCleaned();
  return { removed: s.orphanAddresses.length };
}

export function isClean(r: FsckReport): boolean {
  return r.problems.length === 0 && r.orphans === 0 && r.unreachableRecords === 0;
}
