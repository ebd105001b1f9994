// src/core/meta: the metadata (inodes, directory entries and listings), sealed as records in SQLite.
//
// Typed metadata over the encrypted record store: inodes, directory entries and directory listing pages.
// A directory's listing is split into pages of at most PAGE_CAPACITY entries, each its own record, so a
// create or unlink rewrites one small page however large the directory, and every record looks alike.

import { FsError, IntegrityError } from '../errors.js';
import { decodeInode, encodeInode, cloneInode, newInode, ROOT_ID as ROOT_INODE_ID, type Inode, type Kind } from './inode.js';
import type { OpStats } from '../util/op-stats.js';
import type { RecordStore } from './record-store.js';

export const PAGE_CAPACITY = 128;

/** The vault state record. versionsReserved is absent in stores written before piece versions were vault-wide. */
interface VaultState {
  generation: number;
  nextIno: number;
  versionsReserved?: number;
}

/** Versions reserved per range: far more than a session stores between two commits. */
const VERSION_SPAN = 2 ** 32;
/**
 * Where vault-wide versions start in a store from before them: those gave each file its own versions,
 * counting from 1 by one per stored piece, so none is near 2^40 (that many pieces written to one file).
 */
const LEGACY_VERSION_FLOOR = 2 ** 40;
/** Versions are written as 64-bit integers but kept as JS numbers: safe integers only. */
const MAX_VERSION = Number.MAX_SAFE_INTEGER - VERSION_SPAN;
const KINDS = new Set<unknown>(['file', 'dir', 'symlink']);
const INODE_ID = /^[0-9a-f]{16}$/;
const INODE_CACHE_LIMIT = 20000;
/** Names kept in listedNames, over all its directories (the most recently used directories stay). */
const LISTED_NAMES_LIMIT = 200_000;
const NO_NAMES: ReadonlySet<string> = new Set();

export interface DirEntry {
  name: string;
  id: string;
  kind: Kind;
}

interface EntryRecord extends DirEntry {
  page: number;
}

export class Metadata {
  private readonly inodes = new Map<string, Inode>();
  /**
   * Entry counts of listing pages, by the record bytes they were counted in (the record store hands
   * back the same Buffer until the record changes or leaves its cache), so appending needs no parse.
   */
  private readonly pageCounts = new WeakMap<Buffer, number>();
  /**
   * The names in each directory's listing, for directories a lookup found a name missing in: a name
   * whose entry record is missing while the listing holds it is damage (EIO), not a name that is not
   * there (ENOENT). Built from the listing at the first miss, kept in step by every change of a
   * listing, least recently used directories dropped past LISTED_NAMES_LIMIT names, and all dropped
   * when a transaction fails.
   */
  private readonly listedNames = new Map<string, Set<string>>();
  private listedCount = 0;
  /**
   * Counts committed transactions. Sealed in the store, and remembered outside it by the anchor
   * (src/core/vault/anchor.ts), so a store replaced by an older copy of itself is noticed.
   */
  generation: number;
  /** The next inode number to hand out (1 is the root's). */
  private nextIno: number;

  constructor(readonly records: RecordStore, private readonly stats?: OpStats) {
    const state = records.get(this.stateName(), 'vault state');
    // No state record under this config's keys, yet records: the database belongs to another vault (or
    // the config was swapped). Treating it as a new, empty vault would let fsck delete everything.
    if (!state && records.hasAny()) throw new IntegrityError('the metadata has no vault state record under this config\'s keys: the config or meta.db belongs to another vault');
    const parsed = state ? parseJson<VaultState>(state, 'vault state') : { generation: 0, nextIno: 1 };
    if (!Number.isSafeInteger(parsed?.generation) || !Number.isSafeInteger(parsed?.nextIno)) throw new IntegrityError('the vault state record is malformed');
    const reserved = parsed.versionsReserved ?? (state ? LEGACY_VERSION_FLOOR : 1);
    if (!Number.isSafeInteger(reserved) || reserved < 1 || reserved > MAX_VERSION) throw new IntegrityError('the vault state record is malformed');
    this.generation = parsed.generation;
    this.flushedGeneration = parsed.generation;
    this.nextIno = parsed.nextIno;
    this.nextVersion = reserved;
    this.versionsReserved = reserved;
    this.versionsDurable = state ? reserved : 1;
    this.versionsUnknown = state !== null && parsed.versionsReserved === undefined;
    let cutGeneration = this.generation;
    let cutReserved = this.versionsReserved;
    records.onCut = () => {
      cutGeneration = this.generation;
      cutReserved = this.versionsReserved;
    };
    records.onFlushed = () => {
      this.flushedGeneration = cutGeneration;
      this.versionsDurable = cutReserved;
    };
  }

  /** The generation SQLite holds (the rest is still staged in memory): what the rollback anchor may record. */
  flushedGeneration: number;

  // ---- piece versions ----
  // A piece's address and associated data bind (file, index, version), so a version must never be used
  // twice for different content: a copy of the first blob would then pass for the second. Versions come
  // from one counter for the whole vault, and the state record reserves a range of them ahead of use:
  // after a crash, the next session starts past everything the last one may have used, even in changes
  // the crash lost.

  /** The next piece version to hand out, and the end of the range the state record has reserved. */
  private nextVersion: number;
  private versionsReserved: number;
  /** The end of the reserved range as SQLite holds it: no version at or past it may be used yet. */
  private versionsDurable: number;
  /** The state record has no reservation: a store from before it, or rewritten by an svault from before it. */
  private readonly versionsUnknown: boolean;

  /**
   * Reserves a fresh range of versions for this session, past every version the store may have seen.
   * Staged: the caller commits it before any piece is stored (Vault.open).
   */
  reserveVersions(): void {
    // Without a reservation, start past every version a file's inode has counted to, with a margin for
    // the uncommitted ones a crash may have left: an svault from before reservations, writing after one
    // that had them, keeps counting each file from its own nextVersion, which may be past 2^40.
    if (this.versionsUnknown) this.versionsReserved = Math.max(this.versionsReserved, this.highestNextVersion() + VERSION_SPAN);
    this.transaction(() => {
      this.nextVersion = this.versionsReserved;
      this.versionsReserved = this.nextVersion + VERSION_SPAN;
    });
  }

  /** The highest nextVersion of any file reachable from the root (damaged records are passed over). */
  private highestNextVersion(): number {
    let highest = 0;
    const dirs = [ROOT_INODE_ID];
    for (let id = dirs.pop(); id !== undefined; id = dirs.pop()) {
      let entries: DirEntry[];
      try {
        const dir = this.getInode(id);
        if (!dir || dir.kind !== 'dir') continue;
        entries = this.list(dir);
      } catch {
        continue;
      }
      for (const e of entries) {
        if (e.kind === 'dir') dirs.push(e.id);
        else if (e.kind === 'file') {
          try {
            highest = Math.max(highest, this.getInode(e.id)?.nextVersion ?? 0);
          } catch {
            /* damaged: fsck's business */
          }
        }
      }
    }
    return highest;
  }

  /**
   * A piece version never used before in this vault. When half the reserved range is used, the next
   * range is reserved through an ordinary transaction, which the committer makes durable long before
   * the rest runs out; a session that outruns its commits gets EIO rather than a version used before.
   */
  newPieceVersion(): number {
    if (this.nextVersion >= this.versionsDurable) throw new FsError('EIO', 'no piece version is reserved durably yet (metadata commits are failing)');
    if (this.versionsReserved - this.nextVersion <= VERSION_SPAN / 2) this.transaction(() => (this.versionsReserved += VERSION_SPAN));
    return this.nextVersion++;
  }

  /**
   * What `svault upgrade` needs of the counters (docs/format-2.md 4.4): the end of the version reservation
   * (undefined in a store from before reservations) and the next inode number, as the state record has them.
   */
  get upgradeCounters(): { versionsReserved: number | undefined; nextIno: number } {
    return { versionsReserved: this.versionsUnknown ? undefined : this.versionsReserved, nextIno: this.nextIno };
  }

  /** Runs fn once the current changes are in SQLite (see RecordStore.whenFlushed). */
  afterCommit(fn: () => void): void {
    this.records.whenFlushed(fn);
  }

  /** A new inode number; saved with the vault state at the end of the current transaction. */
  allocIno(): number {
    return this.nextIno++;
  }

  // ---- record names: keyed hashes of what a record is about (fsck walks them; tests damage them) ----

  /** The records that hold no inode's data: the vault state. */
  vaultRecordNames(): Buffer[] {
    return [this.stateName()];
  }

  /** The records an inode owns: its own, and for a directory each listing page. */
  recordNamesOf(inode: Inode): Buffer[] {
    const names = [this.inodeName(inode.id)];
    for (let p = 0; p < inode.dirPages; p++) names.push(this.pageName(inode.id, p));
    return names;
  }

  /** The record of one directory entry (what lookups by name read). */
  entryRecordName(dirId: string, name: string): Buffer {
    return this.entryName(dirId, name);
  }

  /** The record of one listing page of a directory. */
  pageRecordName(dirId: string, page: number): Buffer {
    return this.pageName(dirId, page);
  }

  /** The record of an inode. */
  inodeRecordName(id: string): Buffer {
    return this.inodeName(id);
  }

  /** Every record name in the store, reachable or not (what is staged is written first). */
  allRecordNames(): Buffer[] {
    return [...this.records.names()];
  }

  /** Deletes a record by name (fsck --repair: an unreachable one). Call inside a transaction. */
  deleteRecord(name: Buffer): void {
    this.records.delete(name);
    this.forgetListed(); // it may have been a listing page
  }

  private stateName(): Buffer {
    return this.records.nameOf('state');
  }

  private inodeName(id: string): Buffer {
    return this.records.nameOf('inode', id);
  }

  private entryName(parentId: string, name: string): Buffer {
    return this.records.nameOf('entry', parentId, name);
  }

  private pageName(dirId: string, page: number): Buffer {
    return this.records.nameOf('dirpage', dirId, String(page));
  }

  /** The inode, or null when there is no record. Returns a copy the caller may change. */
  getInode(id: string): Inode | null {
    let inode = this.inodes.get(id);
    if (!inode) {
      const bytes = this.records.get(this.inodeName(id), `inode ${id}`);
      if (!bytes) return null;
      inode = decodeInode(bytes, id);
      this.remember(inode);
    }
    return cloneInode(inode);
  }

  requireInode(id: string): Inode {
    const inode = this.getInode(id);
    if (!inode) throw new IntegrityError(`inode ${id} is referenced but its record is missing`);
    return inode;
  }

  putInode(inode: Inode): void {
    this.records.put(this.inodeName(inode.id), encodeInode(inode));
    this.remember(cloneInode(inode));
  }

  deleteInode(id: string): void {
    this.records.delete(this.inodeName(id));
    this.inodes.delete(id);
    this.forgetListed(id);
  }

  private remember(inode: Inode): void {
    if (this.inodes.size >= INODE_CACHE_LIMIT) {
      const oldest = this.inodes.keys().next().value;
      if (oldest !== undefined) this.inodes.delete(oldest);
    }
    this.inodes.set(inode.id, inode);
  }

  /**
   * The entry of `name` in a directory, or null when the directory has no such name. A name its listing
   * holds but whose entry record is missing is damage: IntegrityError (EIO), as for a record that fails
   * authentication, so the name is never reported gone while `ls` shows it.
   */
  lookup(parentId: string, name: string): EntryRecord | null {
    const t = process.hrtime.bigint();
    try {
      const found = this.lookupUncounted(parentId, name);
      if (!found && this.namesListedIn(parentId).has(name)) {
        throw new IntegrityError(`an entry of directory ${parentId}: its record is missing, yet the directory's listing holds the name`, 'missing');
      }
      return found;
    } finally {
      this.stats?.record('meta.lookup', t, 0);
    }
  }

  /** The names a directory's listing holds (see listedNames). A damaged listing: IntegrityError. */
  private namesListedIn(dirId: string): ReadonlySet<string> {
    let names = this.listedNames.get(dirId);
    if (names) {
      this.listedNames.delete(dirId); // most recently used last
      this.listedNames.set(dirId, names);
      return names;
    }
    const dir = this.getInode(dirId);
    if (!dir || dir.kind !== 'dir') return NO_NAMES;
    names = new Set(this.list(dir).map((e) => e.name));
    for (const [id, old] of this.listedNames) {
      if (this.listedCount + names.size <= LISTED_NAMES_LIMIT) break;
      this.listedNames.delete(id);
      this.listedCount -= old.size;
    }
    this.listedNames.set(dirId, names);
    this.listedCount += names.size;
    return names;
  }

  /** Keeps listedNames in step with a listing change. */
  private listed(dirId: string, change: 'add' | 'delete', name: string): void {
    const names = this.listedNames.get(dirId);
    if (!names) return;
    const had = names.has(name);
    if (change === 'add' && !had) {
      names.add(name);
      this.listedCount++;
    } else if (change === 'delete' && had) {
      names.delete(name);
      this.listedCount--;
    }
  }

  /** Forgets what listedNames holds, for one directory or all (fsck's rewrites; a failed transaction). */
  private forgetListed(dirId?: string): void {
    if (dirId === undefined) {
      this.listedNames.clear();
      this.listedCount = 0;
      return;
    }
    const names = this.listedNames.get(dirId);
    if (!names) return;
    this.listedNames.delete(dirId);
    this.listedCount -= names.size;
  }

  private lookupUncounted(parentId: string, name: string): EntryRecord | null {
    // Messages name the directory, never the entry: they reach the server's log (security finding 11).
    const what = `an entry of directory ${parentId}`;
    const bytes = this.records.get(this.entryName(parentId, name), what);
    if (!bytes) return null;
    const e = parseJson<EntryRecord>(bytes, what);
    if (e?.name !== name) throw new IntegrityError(`${what} holds another name`);
    if (!INODE_ID.test(String(e.id)) || !KINDS.has(e.kind) || !Number.isSafeInteger(e.page) || e.page < 0) throw new IntegrityError(`${what} is malformed`);
    return e;
  }

  private readPageBytes(dirId: string, page: number): Buffer {
    const bytes = this.records.get(this.pageName(dirId, page), `directory page ${page} of ${dirId}`);
    if (!bytes) throw new IntegrityError(`directory ${dirId}: listing page ${page} is missing`);
    return bytes;
  }

  private readPage(dirId: string, page: number): DirEntry[] {
    return this.parsePage(dirId, page, this.readPageBytes(dirId, page));
  }

  private parsePage(dirId: string, page: number, bytes: Buffer): DirEntry[] {
    const entries = parseJson<DirEntry[]>(bytes, `directory page ${page} of ${dirId}`);
    if (!Array.isArray(entries) || !entries.every((e) => typeof e?.name === 'string' && INODE_ID.test(String(e.id)) && KINDS.has(e.kind))) {
      throw new IntegrityError(`directory page ${page} of ${dirId} is malformed`);
    }
    this.pageCounts.set(bytes, entries.length);
    return entries;
  }

  /** How many entries a page's bytes hold: remembered from when they were written or parsed. */
  private pageCount(dirId: string, page: number, bytes: Buffer): number {
    return this.pageCounts.get(bytes) ?? this.parsePage(dirId, page, bytes).length;
  }

  private writePage(dirId: string, page: number, entries: DirEntry[]): void {
    this.putPage(dirId, page, Buffer.from(JSON.stringify(entries)), entries.length);
  }

  private putPage(dirId: string, page: number, bytes: Buffer, count: number): void {
    this.pageCounts.set(bytes, count);
    this.records.put(this.pageName(dirId, page), bytes);
  }

  private writeEntry(dirId: string, e: EntryRecord): void {
    this.records.put(this.entryName(dirId, e.name), Buffer.from(JSON.stringify(e)));
  }

  /** Adds an entry to a directory; `dir` is changed in place and the caller writes it. Call inside a transaction. */
  addEntry(dir: Inode, entry: DirEntry): void {
    let page = dir.dirPages - 1;
    const last = page >= 0 ? this.readPageBytes(dir.id, page) : null;
    let count = last ? this.pageCount(dir.id, page, last) : 0;
    if (page < 0 || count >= PAGE_CAPACITY) {
      page = dir.dirPages++;
      count = 0;
    }
    // Appended to the page's JSON as it stands: parsing, checking and re-serialising the whole page was
    // a large share of a create's cost in a directory of a hundred files.
    const json = JSON.stringify(entry);
    let bytes: Buffer;
    if (count === 0 || !last) {
      bytes = Buffer.from(`[${json}]`);
    } else {
      if (last[last.length - 1] !== 0x5d) throw new IntegrityError(`directory page ${page} of ${dir.id} is malformed`);
      bytes = Buffer.concat([last.subarray(0, last.length - 1), Buffer.from(`,${json}]`)]);
    }
    this.putPage(dir.id, page, bytes, count + 1);
    this.writeEntry(dir.id, { ...entry, page });
    this.listed(dir.id, 'add', entry.name);
    dir.entries++;
  }

  /**
   * Removes an entry. The hole it leaves in its page is filled with the last page's last entry, so pages
   * stay dense and a directory that shrinks gives its records back. Call inside a transaction.
   */
  removeEntry(dir: Inode, name: string): void {
    const rec = this.lookup(dir.id, name);
    if (!rec) throw new IntegrityError(`directory ${dir.id}: an entry is missing`);
    const entries = this.readPage(dir.id, rec.page);
    const at = entries.findIndex((e) => e.name === name);
    if (at < 0) throw new IntegrityError(`directory ${dir.id}: an entry is not in its listing page`);
    const lastPage = dir.dirPages - 1;
    if (rec.page === lastPage) {
      entries.splice(at, 1);
      this.writeOrDropPage(dir, lastPage, entries);
    } else {
      const last = this.readPage(dir.id, lastPage);
      const moved = last.pop();
      if (!moved) throw new IntegrityError(`directory ${dir.id}: last listing page is empty`);
      entries[at] = moved;
      this.writePage(dir.id, rec.page, entries);
      this.writeEntry(dir.id, { ...moved, page: rec.page });
      this.writeOrDropPage(dir, lastPage, last);
    }
    this.records.delete(this.entryName(dir.id, name));
    this.listed(dir.id, 'delete', name);
    dir.entries--;
  }

  private writeOrDropPage(dir: Inode, page: number, entries: DirEntry[]): void {
    if (entries.length === 0 && page === dir.dirPages - 1) {
      this.records.delete(this.pageName(dir.id, page));
      dir.dirPages--;
    } else {
      this.writePage(dir.id, page, entries);
    }
  }

  /** Changes what an existing entry points to (rename over an existing target). */
  replaceEntry(dir: Inode, name: string, id: string, kind: Kind): void {
    const rec = this.lookup(dir.id, name);
    if (!rec) throw new IntegrityError(`directory ${dir.id}: an entry is missing`);
    const entries = this.readPage(dir.id, rec.page);
    const at = entries.findIndex((e) => e.name === name);
    if (at < 0) throw new IntegrityError(`directory ${dir.id}: an entry is not in its listing page`);
    entries[at] = { name, id, kind };
    this.writePage(dir.id, rec.page, entries);
    this.writeEntry(dir.id, { name, id, kind, page: rec.page });
  }

  /**
   * Rebuilds a lost directory inode from its listing pages, which are named by the directory's id
   * (fsck --repair): the subtree is reachable again. Mode and times are not recoverable: 0700, now.
   */
  rebuildDirInode(id: string): Inode {
    const dir = newInode('dir', 0o700, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    dir.id = id;
    dir.ino = this.allocIno();
    this.forgetListed(id);
    // A damaged page still counts as a page (its entries are not counted): the next scan finds the
    // listing damaged, and fsck rebuilds it from the entry records.
    while (this.pageExists(id, dir.dirPages)) {
      const entries = this.readPageIfSound(id, dir.dirPages++) ?? [];
      dir.entries += entries.length;
      dir.nlink += entries.filter((e) => e.kind === 'dir').length;
    }
    this.putInode(dir);
    return dir;
  }

  /** Whether a listing page record is there, readable or not. */
  private pageExists(dirId: string, page: number): boolean {
    try {
      return this.records.get(this.pageName(dirId, page), 'directory page') !== null;
    } catch (err) {
      if (err instanceof IntegrityError) return true;
      throw err;
    }
  }

  /** Rewrites the entry record of `name` from the directory's listing pages (fsck --repair). */
  rewriteEntryRecord(dir: Inode, name: string): boolean {
    for (let p = 0; p < dir.dirPages; p++) {
      const e = this.readPage(dir.id, p).find((x) => x.name === name);
      if (e) {
        this.writeEntry(dir.id, { ...e, page: p });
        return true;
      }
    }
    return false;
  }

  list(dir: Inode): DirEntry[] {
    const all: DirEntry[] = [];
    for (let p = 0; p < dir.dirPages; p++) all.push(...this.readPage(dir.id, p));
    if (all.length !== dir.entries) throw new IntegrityError(`directory ${dir.id}: listing holds ${all.length} entries, inode says ${dir.entries}`);
    return all;
  }

  /** One atomic metadata change, staged in order; the committer makes it durable (see RecordStore). */
  transaction<T>(fn: () => T): T {
    const t = process.hrtime.bigint();
    try {
      if (this.records.inTransaction) return fn();
      const result = this.records.transaction(() => {
        const r = fn();
        const state: VaultState = { generation: this.generation + 1, nextIno: this.nextIno, versionsReserved: this.versionsReserved };
        this.records.put(this.stateName(), Buffer.from(JSON.stringify(state)));
        return r;
      });
      this.generation++; // only once the transaction succeeded
      this.stats?.record('meta.txn', t, 0);
      return result;
    } catch (err) {
      // The caches may hold inodes and listings the rolled-back transaction changed: forget them all.
      this.inodes.clear();
      this.forgetListed();
      throw err;
    }
  }

  // ---- fsck --repair of a damaged listing page ----
  // A listing page and the entry records of the names on it hold the same facts (name, inode id, kind),
  // so a page that is missing or fails authentication can be rebuilt from the entry records.

  /** Listing page `page` of a directory, or null when it is missing, fails authentication or is malformed. */
  readPageIfSound(dirId: string, page: number): DirEntry[] | null {
    try {
      return this.readPage(dirId, page);
    } catch (err) {
      if (err instanceof IntegrityError) return null;
      throw err;
    }
  }

  /**
   * If the record stored under `recordName` is the entry record of a name in one of `dirIds`, that
   * directory and the entry; else null (another kind of record, or one that fails authentication).
   * Entry records do not hold their directory's id, so each candidate is confirmed by recomputing the
   * keyed name from (directory, decoded name): a record of another directory never matches.
   */
  entryRecordAt(recordName: Buffer, dirIds: readonly string[]): { dirId: string; entry: EntryRecord } | null {
    let decoded: unknown;
    try {
      const bytes = this.records.get(recordName, 'record');
      if (!bytes) return null;
      decoded = JSON.parse(bytes.toString('utf8'));
    } catch {
      return null; // damaged, or not JSON: not an entry record we can use
    }
    const name = (decoded as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') return null;
    for (const dirId of dirIds) {
      if (!this.entryName(dirId, name).equals(recordName)) continue;
      try {
        const entry = this.lookupUncounted(dirId, name); // the same validation every lookup applies
        return entry ? { dirId, entry } : null;
      } catch {
        return null;
      }
    }
    return null;
  }

  /**
   * Rewrites a directory's whole listing as `entries`, in order: dense pages of PAGE_CAPACITY, each
   * entry's record pointing at its new page, pages beyond the new last one deleted, and the inode's
   * page and entry counts set. `dir` is changed in place and the caller writes it. Call inside a transaction.
   */
  rewriteListing(dir: Inode, entries: readonly DirEntry[]): void {
    const pages = Math.ceil(entries.length / PAGE_CAPACITY);
    for (let p = 0; p < pages; p++) {
      const page = entries.slice(p * PAGE_CAPACITY, (p + 1) * PAGE_CAPACITY).map(({ name, id, kind }) => ({ name, id, kind }));
      this.writePage(dir.id, p, page);
      for (const e of page) this.writeEntry(dir.id, { ...e, page: p });
    }
    for (let p = pages; p < dir.dirPages; p++) this.records.delete(this.pageName(dir.id, p));
    dir.dirPages = pages;
    dir.entries = entries.length;
    this.forgetListed(dir.id);
  }

  /**
   * If the record stored under `recordName` is a sound inode record, that inode; else null. Confirmed,
   * as with entry records, by recomputing the keyed name from the decoded id (an entry record also holds
   * an inode id, but under another name).
   */
  inodeRecordAt(recordName: Buffer): Inode | null {
    let id: unknown;
    try {
      const bytes = this.records.get(recordName, 'record');
      if (!bytes) return null;
      id = (JSON.parse(bytes.toString('utf8')) as { id?: unknown } | null)?.id;
    } catch {
      return null;
    }
    if (typeof id !== 'string' || !INODE_ID.test(id) || !this.inodeName(id).equals(recordName)) return null;
    try {
      return this.getInode(id);
    } catch {
      return null;
    }
  }
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new IntegrityError(`${what}: record is not valid`);
  }
}
