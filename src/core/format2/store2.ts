// A format-2 store on disk (docs/format-2.md sections 2 and 4): creating one (svault.json with "format": 2,
// svault.layout.json, the home store's svault.store marker, meta2.db with the root directory) and opening
// one, with every check 4.1 and 4.2 ask for, in the order that gives the right message: the format first,
// then the passphrase (exit 3), then the layout's MAC and the marker (exit 4), then the metadata. What it
// returns is what the vault over format 2 is built on; the store lock, the anchor and the blobs are the
// vault's.

import { mkdirSync, readdirSync } from 'node:fs';
import { BadStoreError } from '../errors.js';
import { StoreDir } from '../os/store-dir.js';
import { requireWritableStore } from '../vault/store-lock.js';
import { CONFIG_FILE, createConfig, MAX_CONFIG_BYTES, parseConfig, rewrapConfig, unwrapMasterKey, writeConfig, type VaultConfig, type VaultSettings } from '../vault/config.js';
import { deriveFormat2Keys, metadataFileName, wipeFormat2Keys, type Format2Keys } from './keys.js';
import { requireFormat2 } from './format-detect.js';
import { timespecOfMs } from './inode-record.js';
import { homeStore, newOneStoreLayout, readLayout, writeLayout, type BoundSettings, type Layout } from './layout.js';
import { Metadata2, type Metadata2Options } from './metadata2.js';
import { RecordTable } from './record-table.js';
import { checkStoreMarker, createStoreMarker } from './store-marker.js';


export interface Store2 {
  readonly path: string;
  readonly config: VaultConfig;
  readonly vaultId: Buffer;
  readonly keys: Format2Keys;
  readonly layout: Layout;
  readonly table: RecordTable;
  readonly md: Metadata2;
  /** Closes the metadata and wipes the keys this process holds. */
  close(): void;
}

/** The settings a layout's MAC binds, from the config. */
export function settingsOf(config: VaultConfig): BoundSettings {
  return { format: config.format, vaultId: config.vaultId, cipher: config.cipher, pieceSize: config.pieceSize, chaffRatio: config.chaffRatio };
}

function assemble(path: string, config: VaultConfig, master: Buffer, keys: Format2Keys, layout: Layout, table: RecordTable, md: Metadata2): Store2 {
  master.fill(0); // the keys derived from it are all the store needs from here on
  return {
    path,
    config,
    vaultId: Buffer.from(config.vaultId, 'hex'),
    keys,
    layout,
    table,
    md,
    close: () => {
      md.close();
      wipeFormat2Keys(keys);
    },
  };
}

/** Metadata2's options for a vault of this config and these keys. */
export function metadataOptions(config: VaultConfig, keys: Format2Keys): Metadata2Options {
  return { keys, vaultId: Buffer.from(config.vaultId, 'hex'), pieceSize: config.pieceSize, chaffRatio: config.chaffRatio };
}

/**
 * Creates a format-2 store in `path` (absent or empty): config, layout, marker, and the metadata with an
 * empty root directory owned by `owner` (mode 0755).
 */
export function createStore2(path: string, passphrase: string, settings: VaultSettings, owner: { uid: number; gid: number } = { uid: 0, gid: 0 }): Store2 {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if (readdirSync(path).length > 0) throw new BadStoreError(path, 'the directory is not empty: a new vault needs an empty one');
  const { config, master } = createConfig(passphrase, settings, 2);
  const keys = deriveFormat2Keys(master, Buffer.from(config.vaultId, 'hex'));
  const layout = newOneStoreLayout(settingsOf(config), keys.config);
  // The config goes last: until it is there, the directory is no vault (a crash leaves a directory that
  // `init` refuses as not empty, and nothing that any command would read as a vault).
  const table = StoreDir.using(path, (dir) => {
    writeLayout(dir, layout);
    createStoreMarker(dir, homeStore(layout).id, keys.storeMarker);
    return RecordTable.create(path, metadataFileName(null), { spaceReserve: true });
  });
  const md = Metadata2.create(table, metadataOptions(config, keys), { mode: 0o755, ...owner, time: timespecOfMs(Date.now()) });
  writeConfig(path, config);
  return assemble(path, config, master, keys, layout, table, md);
}

/**
 * The checks of 4.1 and 4.2 before the metadata is opened, in the order that gives the right message: the
 * format, the passphrase, the layout's MAC and the home store's marker. The caller wipes the master and keys.
 */
function unlockStore2(dir: StoreDir, path: string, passphrase: string): { config: VaultConfig; layout: Layout; keys: Format2Keys; master: Buffer } {
  requireFormat2(dir);
  const bytes = dir.readFile(CONFIG_FILE, MAX_CONFIG_BYTES);
  if (bytes === null) throw new BadStoreError(path, `no vault here (${CONFIG_FILE} is missing)`);
  const config = parseConfig(bytes.toString('utf8'), path, [2]);
  const master = unwrapMasterKey(config, passphrase, path);
  const keys = deriveFormat2Keys(master, Buffer.from(config.vaultId, 'hex'));
  try {
    const layout = readLayout(dir, settingsOf(config), keys.config);
    checkStoreMarker(dir, homeStore(layout).id, keys.storeMarker);
    return { config, layout, keys, master };
  } catch (err) {
    master.fill(0);
    wipeFormat2Keys(keys);
    throw err;
  }
}

/**
 * Opens the format-2 store in `path`. BadStoreError (exit 4) for a format-1 store, an interrupted upgrade, a
 * layout that does not verify, a marker of another store or a store that is not writable; WrongPassphraseError
 * (exit 3) for a wrong passphrase; IntegrityError when the state record cannot be read. beforeMetadata runs
 * after those checks and before the metadata is opened (the vault takes the store's lock there).
 */
export function openStore2(path: string, passphrase: string, opts: { beforeMetadata?: () => void } = {}): Store2 {
  const { config, layout, keys, master } = StoreDir.using(path, (dir) => unlockStore2(dir, path, passphrase));
  let table: RecordTable;
  try {
    // Then, as format 1 does: a store svault cannot write is refused (exit 4), since even reading needs the
    // lock and the database's WAL; then the caller's step before the metadata (the vault takes its lock).
    requireWritableStore(path);
    opts.beforeMetadata?.();
    table = RecordTable.open(path, metadataFileName(null), { spaceReserve: true });
  } catch (err) {
    master.fill(0);
    wipeFormat2Keys(keys);
    throw err;
  }
  try {
    return assemble(path, config, master, keys, layout, table, Metadata2.open(table, metadataOptions(config, keys)));
  } catch (err) {
    table.close();
    master.fill(0);
    wipeFormat2Keys(keys);
    throw err;
  }
}

/**
 * `svault passwd` on a format-2 store (4.1): svault.json only, the same master key wrapped under the new
 * passphrase with a fresh scrypt salt. The layout's MAC binds the settings and not the KDF, so it still
 * verifies afterwards; the store is checked as openStore2 checks it before anything is written, so a wrong
 * passphrase (exit 3) or a layout that does not verify (exit 4) changes nothing.
 */
export function rewrapStore2(path: string, passphrase: string, newPassphrase: string): void {
  const { config, keys, master } = StoreDir.using(path, (dir) => unlockStore2(dir, path, passphrase));
  try {
    writeConfig(path, rewrapConfig(config, master, newPassphrase));
  } finally {
    master.fill(0);
    wipeFormat2Keys(keys);
  }
}
