// src/core/fsck: checking a store, and repairing it.
//
// fsck: checks every metadata record and every piece (present, authentic, referenced once) and finds
// orphaned blobs. --repair rebuilds damaged directory listings from their entries' own records, deletes
// orphans and quarantines damaged files into /lost+found, keeping every healthy file untouched. Reports
// name files by path, since fsck holds the key.

import type { Address } from '../pieces/address.js';
import { IntegrityError } from '../errors.js';
import { ROOT_ID, type Inode } from '../meta/inode.js';
import type { DirEntry } from '../meta/metadata.js';
import type { Vault } from '../vault/vault.js';

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
  /** Directories whose inode is sound but whose listing pages are not (missing, damaged, or not matching its count). */
  badDirectories: { path: string; id: string }[];
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
  // The store as committed: until then, blobs a pending commit supersedes still count as referenced by
  // the durable metadata, and must not be taken for orphans.
  await vault.settle();
  const report: FsckReport = { files: 0, directories: 0, symlinks: 0, pieces: 0, logicalBytes: 0, chaff: 0, orphans: 0, unreachableRecords: 0, quarantinedFiles: 0, problems: [], incomplete: [] };
  const s: Scan = { report, damaged: new Map(), badEntryRecords: [], brokenEntries: [], rootBroken: false, badDirectories: [], incomplete: report.incomplete, orphanAddresses: [], unreachable: [] };
  const referenced = new Map<string, string>();
  const reachableRecords = new Set<string>();
  const seenInodes = new Set<string>();
  const { meta, pieces } = vault.check();
  const note = (name: Buffer) => reachableRecords.add(name.toString('hex'));

  const visit = async (path: string, inode: Inode): Promise<void> => {
    for (const name of meta.recordNamesOf(inode)) note(name);
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
      for (const [index, version] of [...inode.pieces].sort((a, b) => a[0] - b[0])) {
        report.pieces++;
        const hex = pieces.pieceAddress(inode, index, version).toString('hex');
        const other = referenced.get(hex);
        if (other !== undefined) {
          report.problems.push({ path, kind: 'duplicate-piece', detail: `piece ${index} is also referenced by ${other}` });
          continue;
        }
        referenced.set(hex, path);
        if (!verifyPieces) continue;
        try {
          await pieces.verifyPiece(inode, index, version, path);
        } catch (err) {
          if (!(err instanceof IntegrityError)) throw err;
          report.problems.push({ path, kind: err.kind === 'missing' ? 'missing-piece' : 'bad-piece', detail: err.message });
          const d = s.damaged.get(path) ?? { inode, bad: [] };
          d.bad.push({ index, version });
          s.damaged.set(path, d);
        }
      }
      return;
    }
    report.directories++;
    let entries;
    try {
      entries = meta.list(inode);
    } catch (err) {
      report.problems.push({ path, kind: 'bad-directory', detail: (err as Error).message });
      s.incomplete.push(`the listing of ${path} is damaged`);
      s.badDirectories.push({ path, id: inode.id });
      return;
    }
    for (const e of entries) {
      const child = join(path, e.name);
      note(meta.entryRecordName(inode.id, e.name));
      // Every path lookup goes through the entry record, not the listing page: check that it agrees.
      let entryProblem: string | null = null;
      try {
        const rec = meta.lookup(inode.id, e.name);
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
        childInode = meta.getInode(e.id);
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

  for (const name of meta.vaultRecordNames()) note(name);
  try {
    await visit('/', vault.inodeAt('/'));
  } catch (err) {
    report.problems.push({ path: '/', kind: 'bad-record', detail: (err as Error).message });
    s.incomplete.push('the root directory cannot be read');
    s.rootBroken = true;
  }

  for await (const address of pieces.blobAddresses()) {
    if (referenced.has(address.toString('hex'))) continue;
    if (await pieces.isChaffAt(address)) {
      report.chaff++;
    } else {
      report.orphans++;
      s.orphanAddresses.push(address);
    }
  }
  for (const name of meta.allRecordNames()) {
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

async function repair(vault: Vault, first: Scan): Promise<void> {
  const { meta } = vault.check();
  // Listings first: the scan could not look inside a directory whose listing is damaged, so its files
  // (their pieces, their inodes) have not been checked yet. Rebuild, then scan again, and repeat for
  // damaged directories that only become visible once their parent is rebuilt.
  let lostNames = 0;
  const rebuilt = new Set<string>();
  let s = first;
  // Directory inodes before listings: a directory whose inode record is gone is rebuilt from its listing
  // pages, so its subtree is kept; the scan could not look inside it, so scan again.
  if (s.rootBroken || s.brokenEntries.some((e) => e.kind === 'dir')) {
    if (s.rootBroken) meta.transaction(() => meta.rebuildDirInode(ROOT_ID));
    for (const { id } of s.brokenEntries.filter((e) => e.kind === 'dir')) meta.transaction(() => meta.rebuildDirInode(id));
    s = await scan(vault);
  }
  for (;;) {
    const todo = s.badDirectories.filter((d) => !rebuilt.has(d.id));
    if (todo.length === 0) break;
    for (const d of todo) rebuilt.add(d.id);
    lostNames += rebuildListings(vault, todo);
    s = await scan(vault);
  }
  // Names lost with their page (their entry records damaged too) leave their files' inodes unreachable.
  // Deleting those as unreachable records would destroy data that is intact but for its name: give them
  // a name in /lost+found instead. A lost name whose inode record is damaged too is the class of a
  // damaged file inode record below: unreadable (its content key comes from the inode), so it goes.
  if (lostNames > 0 && reconnectNameless(vault, s.unreachable) > 0) s = await scan(vault);
  // Entry records are redundant with the listing pages: rebuild them from there.
  for (const { dirId, name } of s.badEntryRecords) {
    meta.transaction(() => {
      meta.rewriteEntryRecord(meta.requireInode(dirId), name);
    });
  }
  // Entries pointing at unreadable inodes: the entry goes; the pieces become orphans, removed below.
  // A file whose inode record is gone cannot be read again: its entry goes (its blobs become orphans).
  for (const { parent, name } of s.brokenEntries.filter((e) => e.kind !== 'dir')) {
    meta.transaction(() => {
      const dir = vault.inodeAt(parent);
      meta.removeEntry(dir, name);
      meta.putInode(dir);
    });
  }
  // Damaged files: bad pieces become quarantined holes (reads of them still fail), the file moves to /lost+found.
  if (s.damaged.size > 0) ensureLostAndFound(vault);
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
    for (const { index, version } of bad) await vault.check().pieces.deleteDamagedPiece(inode, index, version);
    if (!path.startsWith(`/${LOST_AND_FOUND}/`)) {
      const base = path.split('/').pop() ?? 'file';
      vault.rename(path, `/${LOST_AND_FOUND}/${base}.${inode.id}`);
    }
  }
  // Removing entries above can orphan more blobs and records: look again before deleting.
  const left = s.brokenEntries.length > 0 || s.rootBroken ? await scan(vault) : s;
  if (left.incomplete.length > 0) return; // unreached is not unreferenced: delete nothing
  const { pieces } = vault.check();
  for (const a of left.orphanAddresses) await pieces.deleteBlobAt(a);
  vault.markCrashCleaned();
  meta.transaction(() => {
    for (const name of left.unreachable) meta.deleteRecord(name);
  });
  await pieces.flushStore();
}

function ensureLostAndFound(vault: Vault): Inode {
  try {
    return vault.inodeAt(`/${LOST_AND_FOUND}`);
  } catch {
    vault.mkdir(`/${LOST_AND_FOUND}`, 0o700);
    return vault.inodeAt(`/${LOST_AND_FOUND}`);
  }
}

/**
 * Rebuilds the listings of directories whose inode is sound but whose listing pages are not. Every
 * entry has its own record (what path lookups use), holding the same name, inode id and kind as its
 * listing page plus the page number, so a page that is missing or fails authentication is rebuilt
 * from the entry records that say they are on it. Those are found by decrypting every metadata record
 * once (record names are keyed hashes: there is no other way to find them) and kept only if recomputing
 * the keyed name from (this directory, decoded name) gives the record's own name. Sound pages are kept
 * as they are and win over entry records; each directory is rewritten (pages, entry records, inode
 * counts) in one transaction. Returns how many names are lost: entries the directories' inodes
 * count but that neither a sound page nor an entry record holds (see reconnectNameless).
 */
function rebuildListings(vault: Vault, dirs: { path: string; id: string }[]): number {
  const { meta } = vault.check();
  const ids = dirs.map((d) => d.id);
  const fromRecords = new Map<string, { name: string; id: string; kind: DirEntry['kind']; page: number }[]>(ids.map((id) => [id, []]));
  // names() flushes what is staged and must finish before the next query: take the list first.
  for (const recordName of meta.allRecordNames()) {
    const found = meta.entryRecordAt(recordName, ids);
    if (found) fromRecords.get(found.dirId)?.push(found.entry);
  }
  let lostNames = 0;
  for (const { id } of dirs) {
    meta.transaction(() => {
      const dir = meta.requireInode(id);
      const expected = dir.entries;
      const sound = new Map<number, DirEntry[]>();
      for (let p = 0; p < dir.dirPages; p++) {
        const page = meta.readPageIfSound(id, p);
        if (page) sound.set(p, page);
      }
      const onSoundPages = new Set([...sound.values()].flat().map((e) => e.name));
      // Keep the listing order: page by page, a rebuilt page's entries in name order.
      const listing: DirEntry[] = [];
      const seen = new Set<string>();
      for (let p = 0; p < dir.dirPages; p++) {
        const entries =
          sound.get(p) ??
          (fromRecords.get(id) ?? [])
            .filter((e) => e.page === p && !onSoundPages.has(e.name))
            .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const { name, id: childId, kind } of entries) {
          if (seen.has(name)) continue; // a name twice (a damaged store): keep the first; its entry record is rewritten to match
          seen.add(name);
          listing.push({ name, id: childId, kind });
        }
      }
      meta.rewriteListing(dir, listing);
      dir.nlink = 2 + listing.filter((e) => e.kind === 'dir').length; // "." and "..", plus each subdirectory's ".."
      meta.putInode(dir);
      lostNames += Math.max(0, expected - listing.length);
    });
  }
  return lostNames;
}

/**
 * Gives every sound inode record the walk cannot reach a name in /lost+found, "#<inode id>" (names
 * are lost; the id is what is left), so it is reachable again and not deleted as unreachable. Only the
 * tops of unreached subtrees: an unreached directory brings its own entries along. Inode records are
 * deleted with a file's last name, in the same transaction, so outside a lost listing page there are
 * none to find. Links them in one transaction and returns how many.
 */
function reconnectNameless(vault: Vault, unreachable: Buffer[]): number {
  const { meta } = vault.check();
  const nameless = unreachable.map((name) => meta.inodeRecordAt(name)).filter((i): i is Inode => i !== null);
  if (nameless.length === 0) return 0;
  const inSubtree = new Set<string>();
  for (const dir of nameless.filter((i) => i.kind === 'dir')) {
    try {
      for (const e of meta.list(dir)) inSubtree.add(e.id);
    } catch {
      /* its own listing is damaged: its entries stay unreached, and kept */
    }
  }
  const tops = nameless.filter((i) => !inSubtree.has(i.id));
  const lf = ensureLostAndFound(vault);
  meta.transaction(() => {
    for (const inode of tops) {
      const name = `#${inode.id}`;
      if (meta.lookup(lf.id, name)) continue; // linked by an earlier repair
      meta.addEntry(lf, { name, id: inode.id, kind: inode.kind });
      if (inode.kind === 'dir') lf.nlink++;
    }
    meta.putInode(lf);
  });
  return tops.length; // each lost name is the top of one unreached subtree (or a lone file)
}

/**
 * Deletes blobs no committed metadata points to (and that are not chaff): what a crash between a piece
 * write and its metadata commit leaves. Run before serving, never alongside writes. Returns the count.
 */
export async function sweepOrphans(vault: Vault): Promise<{ removed: number; skipped?: string }> {
  const s = await scan(vault, false);
  if (s.incomplete.length > 0) return { removed: 0, skipped: `${s.incomplete.join('; ')}: run svault fsck` };
  const { pieces } = vault.check();
  for (const a of s.orphanAddresses) await pieces.deleteBlobAt(a);
  await pieces.flushStore();
  vault.markCrashCleaned();
  return { removed: s.orphanAddresses.length };
}

export function isClean(r: FsckReport): boolean {
  return r.problems.length === 0 && r.orphans === 0 && r.unreachableRecords === 0;
}
