// svault upgrade --finish (docs/format-2.md 4.4): the end of an upgrade, once rollback is given up. A
// durable commit sets upgradeStage = 2 (rollback is refused from then on); the format-1 files go; the
// inodes are walked in ino order from finishCursor, small files going INLINE (section 7), the other files'
// legacy pieces (format 1's, version < legacyBelow) given their derived chaff (10.2), and finishCursor
// committed after each batch; then the blobs that are neither a piece a file points to nor its derived
// chaff are deleted (format 1's chaff, format 1's pieces superseded since the upgrade, what --salvage left
// out, the blobs of files inlined just before a crash); a last commit sets upgradeStage = 0. A crash
// anywhere leaves a store that mounts, and --finish run again goes on from upgradeStage and finishCursor:
// every step can be run twice (derived chaff is at addresses its piece gives, so writing it again only
// writes the same blobs again).
//
// Format 2 writes derived chaff for every piece it stores and deletes it with the piece; format 1's chaff,
// which no piece knows, is chaff to fsck and the sweep only while upgradeStage ≠ 0. So once this has run,
// every live piece has its own chaff, and any other blob is an orphan.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BadStoreError, IntegrityError } from '../errors.js';
import { StoreDir } from '../os/store-dir.js';
import { crashpoint } from '../util/crashpoints.js';
import { detectFormat, FORMAT1_ADVICE, FORMAT1_CONFIG_COPY, FORMAT1_METADATA, notFormat2Message } from './format-detect.js';
import { FileType, INLINE_MAX } from './inode-record.js';
import { Vault2 } from './vault2.js';

export interface FinishOptions {
  /** Where rollback anchors live: the format-2 one is checked and moved, format 1's deleted. */
  anchorDir?: string;
  acceptRollback?: boolean;
  /** Inodes walked between two durable commits of finishCursor (4.4: 1,000). */
  inodesPerCommit?: number;
  /** Called after each durable commit of the walk, with finishCursor as committed (tests: a crash there). */
  afterCommit?: (finishCursor: number) => void;
}

export interface FinishReport {
  /** `finished` now; `already-finished` (nothing done but leftovers removed); `not-upgraded` (created as format 2). */
  outcome: 'finished' | 'already-finished' | 'not-upgraded';
  /** The inode an interrupted --finish had reached, when this run went on from it. */
  resumedAt: number | null;
  /** Inodes walked by this run. */
  inodes: number;
  /** Small files made INLINE by this run. */
  inlined: number;
  /** Their blobs, deleted. */
  inlinedBlobs: number;
  /** Blobs no file points to, deleted at the end (format 1's superseded pieces among them), less format 1's chaff. */
  orphansDeleted: number;
  /** Format 1's chaff blobs, deleted at the end (4.4, --finish step 4). */
  format1ChaffDeleted: number;
  /** Derived chaff blobs written for legacy pieces by this run (10.2; 4.4, --finish step 3). */
  chaffAdded: number;
  /** Format-1 files removed from the store (and this machine's format-1 anchor, not listed). */
  format1FilesRemoved: string[];
  /** Small files kept with their piece map because a record or piece could not be read (fsck reports them). */
  notInlined: { ino: number; detail: string }[];
}

const INODES_PER_COMMIT = 1_000;
const FORMAT1_FILES = [FORMAT1_CONFIG_COPY, FORMAT1_METADATA, `${FORMAT1_METADATA}-wal`, `${FORMAT1_METADATA}-shm`];

/** 4.4, --finish step 2: the format-1 config and metadata, and this machine's format-1 anchor. Returns what was there. */
function removeFormat1Files(path: string, vaultId: string, anchorDir: string | undefined): string[] {
  const removed = StoreDir.using(path, (dir) => {
    const gone = FORMAT1_FILES.filter((name) => dir.remove(name));
    if (gone.length > 0) dir.sync();
    return gone;
  });
  if (anchorDir) rmSync(join(anchorDir, `${vaultId}.json`), { force: true });
  return removed;
}

/** A small file's bytes, read and checked through the vault (holes read as zeros). */
async function readSmallFile(vault: Vault2, ino: number, size: number): Promise<Buffer> {
  const content = Buffer.alloc(size);
  const fh = vault.inodes.open(ino);
  try {
    let done = 0;
    while (done < size) {
      const n = await vault.read(fh, content.subarray(done), size - done, done);
      if (n === 0) break; // past the end: what is left stays zeros, as a read would show it
      done += n;
    }
  } finally {
    await vault.release(fh);
  }
  return content;
}

interface ToInline {
  ino: number;
  fileId: Buffer;
  content: Buffer;
  versions: { index: number; version: number }[];
}

/**
 * Finishes the upgrade of the format-2 store in `path` (4.4, --finish), or goes on with one that was
 * interrupted. BadStoreError (exit 4) for a store that is not format 2, and when the blob sweep cannot run
 * because the metadata is damaged (the store stays at stage 2: fsck --repair, then --finish again).
 */
export async function finishUpgrade(path: string, passphrase: string, opts: FinishOptions = {}): Promise<FinishReport> {
  const detected = StoreDir.using(path, detectFormat);
  if (detected.format !== 2) throw new BadStoreError(path, notFormat2Message(detected) ?? FORMAT1_ADVICE);
  const perCommit = opts.inodesPerCommit ?? INODES_PER_COMMIT;
  if (!Number.isSafeInteger(perCommit) || perCommit < 1) throw new RangeError(`inodesPerCommit ${perCommit}`);

  const vault = await Vault2.open(path, passphrase, { anchorDir: opts.anchorDir, acceptRollback: opts.acceptRollback, pieceWorker: false });
  try {
    const { md, pieces, config } = vault.check();
    const report: FinishReport = {
      outcome: 'finished', resumedAt: null, inodes: 0, inlined: 0, inlinedBlobs: 0, orphansDeleted: 0, format1ChaffDeleted: 0, chaffAdded: 0, format1FilesRemoved: [], notInlined: [],
    };
    const { upgradeStage, legacyBelow } = md.state;
    if (upgradeStage === 0) {
      if (legacyBelow === 0) return { ...report, outcome: 'not-upgraded' };
      // Finished; a crash right after the last commit may have kept format 1's deletions from the disk.
      return { ...report, outcome: 'already-finished', format1FilesRemoved: removeFormat1Files(path, config.vaultId, opts.anchorDir) };
    }

    // Step 1: from this commit on, rollback is refused and format 1's blobs may go as any other.
    if (upgradeStage === 1) {
      md.setUpgradeState({ upgradeStage: 2, finishCursor: 0 });
      await vault.sync();
      crashpoint('upgrade.finish.stage2');
    } else {
      report.resumedAt = md.state.finishCursor;
    }

    // Step 2.
    report.format1FilesRemoved = removeFormat1Files(path, config.vaultId, opts.anchorDir);

    // Step 3: the walk, a batch of inodes between two commits of finishCursor.
    let cursor = md.state.finishCursor;
    for (;;) {
      const batch: number[] = [];
      for (const { index } of md.inodeVersions(cursor)) {
        batch.push(index);
        if (batch.length === perCommit) break;
      }
      if (batch.length === 0) break;
      // The small files are read, and the legacy pieces of the others given their chaff, first; the metadata
      // is changed after, with nothing awaited in between, so that the vault's committer finds nothing to cut
      // before the sync below commits it with the cursor (and makes the chaff durable before it).
      const toInline: ToInline[] = [];
      for (const ino of batch) {
        const found = await smallFileOf(vault, ino);
        if (found !== null && !('detail' in found)) {
          toInline.push(found);
          continue; // its pieces go after the commit: no chaff for them
        }
        if (found !== null) report.notInlined.push({ ino, detail: found.detail });
        report.chaffAdded += await addLegacyChaff(vault, ino, legacyBelow);
      }
      for (const f of toInline) md.setInline(f.ino, f.content);
      cursor = (batch[batch.length - 1] as number) + 1;
      md.setUpgradeState({ finishCursor: cursor });
      await vault.sync();
      report.inodes += batch.length;
      report.inlined += toInline.length;
      opts.afterCommit?.(cursor);
      crashpoint('upgrade.finish.commit');
      // After the commit: a crash before these deletions leaves orphans, which step 4 deletes.
      for (const f of toInline) {
        for (const v of f.versions) {
          await pieces.deleteDamagedPiece({ fileId: f.fileId }, v.index, v.version);
          report.inlinedBlobs++;
        }
      }
      md.evict();
    }
    await pieces.flushStore();

    // Step 4: every blob that is neither a piece a map points to nor its derived chaff, format 1's chaff
    // among them. Only from a walk that reaches every record: otherwise a blob of a file the walk could not
    // see would look like an orphan.
    const swept = await vault.sweepOrphans({ deleteFormat1Chaff: true });
    if (swept.skipped !== undefined) {
      throw new BadStoreError(path, `svault upgrade --finish stopped before its last step: blobs no file points to cannot be told apart (${swept.skipped}); repair with svault fsck --repair, then run svault upgrade --finish again`);
    }
    report.orphansDeleted = swept.removed;
    report.format1ChaffDeleted = swept.format1Chaff ?? 0;
    crashpoint('upgrade.finish.swept');

    // Step 5.
    md.setUpgradeState({ upgradeStage: 0, finishCursor: 0 });
    await vault.sync();
    return report;
  } finally {
    await vault.close();
  }
}

/**
 * Gives each legacy piece (version < legacyBelow) of inode `ino`'s piece map its derived chaff (10.2), at
 * the size of its blob. Returns how many chaff blobs were written. A map or blob that cannot be read is
 * passed over: fsck reports it, and a piece that is not there needs no chaff.
 */
async function addLegacyChaff(vault: Vault2, ino: number, legacyBelow: number): Promise<number> {
  const { md, pieces } = vault.check();
  let written = 0;
  try {
    const inode = md.inode(ino);
    if (inode === null || inode.type !== FileType.regular) return 0;
    const versions = [...(md.pieceMapIfAny(ino)?.versions() ?? [])]; // read whole before anything is awaited
    for (const { index, version } of versions) {
      if (version >= legacyBelow) continue; // written by format 2, with its chaff
      try {
        written += await pieces.addChaff(inode, index, version);
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err; // something else where its blob should be
      }
    }
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
  }
  return written;
}

/**
 * Inode `ino` when it is a file --finish makes INLINE (a piece map, at most INLINE_MAX bytes, no lost or
 * preallocated slot: section 7's rule), with its content and the versions its map holds; a detail when its
 * record, map or pieces cannot be read (it keeps its map); null for any other inode.
 */
async function smallFileOf(vault: Vault2, ino: number): Promise<ToInline | { detail: string } | null> {
  const { md } = vault.check();
  try {
    const inode = md.inode(ino);
    if (inode === null || inode.type !== FileType.regular || inode.size > INLINE_MAX) return null;
    const map = md.pieceMapIfAny(ino);
    if (map === null || map.tree.lost > 0 || map.tree.preallocated > 0) return null;
    const versions = [...map.versions()];
    return { ino, fileId: inode.fileId, content: await readSmallFile(vault, ino, inode.size), versions };
  } catch (err) {
    if (err instanceof IntegrityError) return { detail: err.message };
    throw err;
  }
}
