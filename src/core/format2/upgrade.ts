// svault upgrade (docs/format-2.md 4.4): a format-1 store made format 2 in place, metadata only, and its
// rollback. `svault upgrade` and `--rollback` call these; `--finish` is upgrade-finish.ts.
//
// The commit point is one atomic rename of svault.json. Before it, svault.json is format 1 and meta.db and
// the blobs are untouched, so format-1 svault works as before and an upgrade run again starts over (its
// leftovers are deleted first). After it, the store is format 2, complete; the format-1 config and meta.db
// stay beside it until `--finish`, so that rollback can return to them.

import { rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { sweepOrphans } from '../fsck/fsck.js';
import { StoreDir } from '../os/store-dir.js';
import { BadStoreError, FsError } from '../errors.js';
import { CONFIG_FILE, MAX_CONFIG_BYTES, parseConfig, rewrapAsFormat, unwrapMasterKey, writeConfig } from '../vault/config.js';
import { acquireStoreLock } from '../vault/store-lock.js';
import { setUncleanMark } from '../vault/unclean-mark.js';
import { Vault } from '../vault/vault.js';
import { anchoredCommit, RollbackAnchor } from './anchor2.js';
import { detectFormat, FORMAT1_CONFIG_COPY, isFormat2File } from './format-detect.js';
import { deriveFormat2Keys, metadataFileName, wipeFormat2Keys } from './keys.js';
import { homeStore, newOneStoreLayout, writeLayout } from './layout.js';
import { Metadata2 } from './metadata2.js';
import { RecordTable } from './record-table.js';
import { createStoreMarker } from './store-marker.js';
import { metadataOptions, settingsOf } from './store2.js';
import { convertMetadata, type UpgradeProblem } from './upgrade-metadata.js';

export interface UpgradeOptions {
  /** Where rollback anchors live: the format-1 anchor is checked, the format-2 one written. */
  anchorDir?: string;
  acceptRollback?: boolean;
  /** Convert what the walk reaches of a damaged store, and list the rest. */
  salvage?: boolean;
}

export interface UpgradeReport {
  inodes: number;
  files: number;
  directories: number;
  pieces: number;
  /** The first format-2 commit (H0). */
  firstCommit: number;
  /** What --salvage left out. */
  leftOut: UpgradeProblem[];
  /** Orphans of a format-1 crash swept before the conversion. */
  sweptOrphans: number;
}

const META2 = metadataFileName(null);

/** Removes every format-2 file: what an interrupted upgrade left (4.4, step 6), or what a rollback undoes. */
function removeFormat2Files(dir: StoreDir): void {
  for (const name of dir.names().filter(isFormat2File)) dir.remove(name);
}

/** Converts the format-1 store in `path` to format 2 (4.4, steps 1 to 12). */
export async function upgradeStore(path: string, passphrase: string, opts: UpgradeOptions = {}): Promise<UpgradeReport> {
  const lock = acquireStoreLock(path);
  try {
    const detected = StoreDir.using(path, detectFormat);
    if (detected.format === 2) throw new BadStoreError(path, 'the store is format 2 already');
    // Step 6 first, for a run after an interrupted one: what it left goes.
    StoreDir.using(path, removeFormat2Files);

    // Steps 2 and 3: the format-1 rollback anchor, and a format-1 crash's orphans swept. A stale lock (the
    // one taken here) says a format-1 session died: the format-1 vault learns it through the unclean mark.
    if (lock.stale) setUncleanMark(path);
    let sweptOrphans = 0;
    const v1 = await Vault.open(path, passphrase, { noLock: true, anchorDir: opts.anchorDir, acceptRollback: opts.acceptRollback, pieceWorker: false });
    try {
      if (v1.recoveredFromCrash) sweptOrphans = (await sweepOrphans(v1)).removed;
    } finally {
      await v1.close();
    }

    // Steps 4 and 7: the walk and the conversion, into meta2.db.
    const configText = StoreDir.using(path, (dir) => dir.readFile(CONFIG_FILE, MAX_CONFIG_BYTES))?.toString('utf8');
    if (configText === undefined) throw new BadStoreError(path, `${CONFIG_FILE} is missing`);
    const config1 = parseConfig(configText, path, [1]);
    const master = unwrapMasterKey(config1, passphrase, path);
    const vaultId = Buffer.from(config1.vaultId, 'hex');
    const keys = deriveFormat2Keys(master, vaultId);
    try {
      const inspect = await Vault.open(path, passphrase, { noLock: true, inspectOnly: true, pieceWorker: false });
      let converted;
      const table = RecordTable.create(path, META2);
      try {
        converted = convertMetadata(inspect.check().meta, table, metadataOptions(config1, keys), {
          salvage: opts.salvage,
          checkSpace: (bytes) => {
            const fs = statfsSync(path);
            const free = fs.bavail * fs.bsize;
            if (free < bytes) throw new FsError('ENOSPC', `svault upgrade needs about ${bytes} bytes free for the new metadata, and the store's disk has ${free}`);
          },
        });
        table.checkpoint();
      } finally {
        if (converted) converted.md.close(); // closes the table with it
        else table.close();
        await inspect.close();
      }

      // Step 8: the layout and the home store's marker; step 9: the format-1 config kept for a rollback.
      const config2 = rewrapAsFormat(config1, master, passphrase, 2);
      StoreDir.using(path, (dir) => {
        const layout = newOneStoreLayout(settingsOf(config2), keys.config);
        writeLayout(dir, layout);
        createStoreMarker(dir, homeStore(layout).id, keys.storeMarker);
        dir.writeFileAtomic(FORMAT1_CONFIG_COPY, configText);
      });
      // Step 10, the commit point: svault.json as format 2, written atomically and durably.
      writeConfig(path, config2);
      // Step 11: this machine's format-2 anchor at the conversion's last commit.
      if (opts.anchorDir) {
        new RollbackAnchor(opts.anchorDir, vaultId, keys.anchor).write(anchoredCommit(converted.md.state.commit));
      }
      return {
        inodes: converted.inodes,
        files: converted.files,
        directories: converted.directories,
        pieces: converted.pieces,
        firstCommit: converted.h0,
        leftOut: converted.leftOut,
        sweptOrphans,
      };
    } catch (err) {
      // Before the commit point (step 10), what this run wrote is no part of the store: it goes, so that a
      // refused or failed upgrade leaves format 1 as it found it. After it, svault.json says format 2 and
      // nothing is removed.
      try {
        StoreDir.using(path, (dir) => {
          if (detectFormat(dir).format !== 2) removeFormat2Files(dir);
        });
      } catch {
        // The error below is the one to report; an upgrade run again deletes what is left (step 6).
      }
      throw err;
    } finally {
      master.fill(0);
      wipeFormat2Keys(keys);
    }
  } finally {
    lock.release();
  }
}

/** The format-2 anchor of the vault `vaultId` (hex) on this machine. */
function removeFormat2Anchor(anchorDir: string | undefined, vaultId: string): void {
  if (anchorDir) rmSync(join(anchorDir, `${vaultId}.v2`), { force: true });
}

/**
 * A format-1 store with format-2 files beside it (an upgrade interrupted before its commit point, or a
 * rollback after its own): removes them, and this machine's format-2 anchor, as rollback's step 4 does.
 * Returns what it removed; nothing for a store that is not in that state. Needs no passphrase: format 1
 * reads none of these files.
 */
export function removeInterruptedUpgrade(path: string, opts: { anchorDir?: string } = {}): string[] {
  const lock = acquireStoreLock(path);
  try {
    return StoreDir.using(path, (dir) => {
      const detected = detectFormat(dir);
      if (detected.format !== 'interrupted-upgrade') return [];
      const vaultId = parseConfig(dir.readFile(CONFIG_FILE, MAX_CONFIG_BYTES)?.toString('utf8') ?? '', path, [1]).vaultId;
      removeFormat2Files(dir);
      removeFormat2Anchor(opts.anchorDir, vaultId);
      return detected.format2Leftovers;
    });
  } finally {
    lock.release();
  }
}

/**
 * Returns an upgraded store to format 1 (4.4, --rollback), while the format-1 files are still there:
 * changes made since the upgrade are lost. `passphrase` is the one of the upgrade's time, which
 * svault.format1.json's wrap takes.
 */
export function rollbackUpgrade(path: string, passphrase: string, opts: { anchorDir?: string } = {}): void {
  const lock = acquireStoreLock(path);
  try {
    const detected = StoreDir.using(path, detectFormat);
    if (detected.format !== 2) throw new BadStoreError(path, 'nothing to roll back: the store is format 1');
    if (!detected.format1Leftovers.includes(FORMAT1_CONFIG_COPY)) {
      throw new BadStoreError(path, 'rollback refused: the format-1 files are gone (svault upgrade --finish removed them, or the store was made as format 2), so there is no format 1 to return to');
    }
    const text = StoreDir.using(path, (dir) => dir.readFile(FORMAT1_CONFIG_COPY, MAX_CONFIG_BYTES))?.toString('utf8') ?? '';
    const config1 = parseConfig(text, path, [1]);
    const master = unwrapMasterKey(config1, passphrase, path); // the upgrade's passphrase
    const vaultId = Buffer.from(config1.vaultId, 'hex');
    const keys = deriveFormat2Keys(master, vaultId);
    master.fill(0);
    try {
      // The stage is read from the format-2 metadata: after --finish there is nothing to return to.
      const table = RecordTable.open(path, META2, { readOnly: true });
      try {
        const stage = Metadata2.open(table, metadataOptions(config1, keys)).state.upgradeStage;
        if (stage === 2) throw new BadStoreError(path, 'rollback refused: svault upgrade --finish has begun, and format 2 may have deleted blobs format 1 needs; run svault upgrade --finish again to complete it');
        if (stage !== 1) throw new BadStoreError(path, 'rollback refused: the upgrade was finished (svault upgrade --finish), so there is no format 1 to return to');
      } finally {
        table.close();
      }
      // What format 2 wrote (pieces, chaff) is orphaned to format 1: its next mount sweeps it.
      setUncleanMark(path);
      // The commit point: the format-1 config back in place.
      StoreDir.using(path, (dir) => dir.renameFile(FORMAT1_CONFIG_COPY, CONFIG_FILE));
      StoreDir.using(path, removeFormat2Files);
      removeFormat2Anchor(opts.anchorDir, config1.vaultId);
    } finally {
      wipeFormat2Keys(keys);
    }
  } finally {
    lock.release();
  }
}
