// Which format a store is in (docs/format-2.md, 4.2 and 4.3), told from its files alone, before any
// passphrase is asked and before anything is written: svault.json's `format` decides, and the files
// beside it must agree. A format-1 svault.json beside format-2 files is an upgrade that stopped before
// its commit point (4.4, step 10), or a rollback that stopped after its own (4.4, --rollback step 3).
//
// It only reads: it lists the directory and reads svault.json through StoreDir (no link followed, no
// special file opened). The full checks of svault.json, the layout's MAC and meta2.db's application_id
// come after, with the files this module names.

import { BadStoreError } from '../errors.js';
import type { StoreDir } from '../os/store-dir.js';
import { CONFIG_FILE, MAX_CONFIG_BYTES } from '../vault/config.js';
import { KEY_ID_BYTES } from './keys.js';
import { LAYOUT_FILE } from './layout.js';
import { STORE_MARKER_FILE } from './store-marker.js';

/** Copied from svault.json by the upgrade (4.4, step 9) and kept until --finish. */
export const FORMAT1_CONFIG_COPY = 'svault.format1.json';
/** Format 1's metadata database, kept after an upgrade until --finish. */
export const FORMAT1_METADATA = 'meta.db';
/** Space held for preallocated ranges (section 9): format 2 only. */
export const PREALLOC_FILE = 'svault.prealloc';
/** As config.ts caps svault.json. */
/** meta2.db, the first master's, or meta2-<key id>.db after a rekey (10.6). */
const METADATA_DATABASE = new RegExp(`^meta2(-[0-9a-f]{${2 * KEY_ID_BYTES}})?\\.db$`);
/** A metadata database and SQLite's files beside it. */
const METADATA_FILE = new RegExp(`^meta2(-[0-9a-f]{${2 * KEY_ID_BYTES}})?\\.db(-wal|-shm)?$`);
const FORMAT1_FILE = /^meta\.db(-wal|-shm)?$/;

/** The advice of 4.3 for a format-1 store, for every command but `upgrade` and `info`. */
export const FORMAT1_ADVICE = 'format 1: run svault upgrade';

export type StoreFormat =
  | { format: 1 }
  | {
      format: 2;
      /** The metadata databases present; the one of the master svault.json unwraps is to be used (10.6). */
      metadataDatabases: string[];
      /** Format-1 files kept for a rollback until `svault upgrade --finish` (svault.format1.json, meta.db…). */
      format1Leftovers: string[];
    }
  | {
      format: 'interrupted-upgrade';
      /** What the interrupted upgrade (or rollback) left beside the format-1 store. */
      format2Leftovers: string[];
    };

/** A file of format 2 (metadata databases with SQLite's files, layout, marker, format-1 config copy, preallocation). */
export function isFormat2File(name: string): boolean {
  return METADATA_FILE.test(name) || [LAYOUT_FILE, STORE_MARKER_FILE, FORMAT1_CONFIG_COPY, PREALLOC_FILE].includes(name);
}

/** svault.json's `format` field; the rest of the file is checked later, by the format's own parser. */
function formatOf(dir: StoreDir): unknown {
  let bytes: Buffer | null;
  try {
    bytes = dir.readFile(CONFIG_FILE, MAX_CONFIG_BYTES);
  } catch (err) {
    if (err instanceof BadStoreError) throw err; // a link, a special file or an oversized file: it says which
    throw new BadStoreError(dir.path, `cannot read ${CONFIG_FILE}: ${(err as Error).message}`);
  }
  if (bytes === null) throw new BadStoreError(dir.path, `no vault here (${CONFIG_FILE} is missing); create one with "svault init"`);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BadStoreError(dir.path, `${CONFIG_FILE} is not valid JSON`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadStoreError(dir.path, `${CONFIG_FILE}: not an object`);
  return (raw as Record<string, unknown>).format;
}

/**
 * Tells the store's format (4.2). BadStoreError (exit 4) for a format other than 1 or 2, with 4.2's
 * message, and for a format-2 store without its layout or any metadata database.
 */
export function detectFormat(dir: StoreDir): StoreFormat {
  const format = formatOf(dir);
  const names = dir.names().sort();
  if (format === 1) {
    const format2Leftovers = names.filter(isFormat2File);
    return format2Leftovers.length > 0 ? { format: 'interrupted-upgrade', format2Leftovers } : { format: 1 };
  }
  if (format !== 2) {
    const shown = JSON.stringify(format) ?? 'none';
    throw new BadStoreError(dir.path, `${CONFIG_FILE}: unsupported format ${shown} (this svault reads format 2, and format 1 only to upgrade it)`);
  }
  if (!names.includes(LAYOUT_FILE)) throw new BadStoreError(dir.path, `${CONFIG_FILE} is format 2, but ${LAYOUT_FILE} is missing`);
  const metadataDatabases = names.filter((name) => METADATA_DATABASE.test(name));
  if (metadataDatabases.length === 0) {
    throw new BadStoreError(dir.path, `metadata missing: ${CONFIG_FILE} is format 2, but there is no meta2.db or meta2-<key id>.db`);
  }
  const format1Leftovers = names.filter((name) => name === FORMAT1_CONFIG_COPY || FORMAT1_FILE.test(name));
  return { format: 2, metadataDatabases, format1Leftovers };
}

/**
 * The message for a store that is not format 2 (4.3, and 4.4's fsck table): format 1, with "an upgrade
 * was interrupted" when format-2 leftovers are there. Null for a format-2 store.
 */
export function notFormat2Message(detected: StoreFormat): string | null {
  if (detected.format === 1) return FORMAT1_ADVICE;
  if (detected.format === 'interrupted-upgrade') {
    return `${FORMAT1_ADVICE} (an upgrade was interrupted and left ${detected.format2Leftovers.join(', ')}; svault upgrade starts it over)`;
  }
  return null;
}

/**
 * For every command but `upgrade` and `info` (4.3): the store's format-2 facts, or BadStoreError (exit 4)
 * with the advice for a format-1 store or an interrupted upgrade.
 */
export function requireFormat2(dir: StoreDir): Extract<StoreFormat, { format: 2 }> {
  const detected = detectFormat(dir);
  if (detected.format !== 2) throw new BadStoreError(dir.path, notFormat2Message(detected) ?? FORMAT1_ADVICE);
  return detected;
}
