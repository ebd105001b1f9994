// svault.store (docs/format-2.md, section 2 and 10.3): the marker at the root of every store, home and
// scatter, that says which store of which vault a directory is. It holds the store id and
// HMAC(store-marker key, "svault-store-v2\0" ‖ store id), and no vault id: only a holder of the master
// key can tell whose it is. A store found at a location, after a move, a swap of USB sticks or a typo
// in --store-at, is used only when its marker verifies for the id the layout expects there; otherwise it
// is marked down by the caller, with the reason this module gives.

import { constantTimeEqual, PRF_BYTES } from '../crypto/crypto.js';
import { BadStoreError } from '../errors.js';
import type { StoreDir } from '../os/store-dir.js';
import { labeledPrf } from './keys.js';
import { STORE_ID_BYTES } from './layout.js';

export const STORE_MARKER_FILE = 'svault.store';
/** The value of the marker's `svaultStore` field. */
export const STORE_MARKER_VERSION = 2;
/** A marker is a few dozen bytes: a bigger file is not one, and is not read whole. */
const MAX_MARKER_BYTES = 4096;
const ID_HEX = /^[0-9a-f]{32}$/;
const MAC_HEX = /^[0-9a-f]{64}$/;

/** The marker as the file holds it. */
export interface StoreMarker {
  svaultStore: typeof STORE_MARKER_VERSION;
  storeId: string;
  mac: string;
}

/**
 * Why a store's marker does not let it be used:
 * - `missing`: no svault.store at that location;
 * - `other-store`: the marker verifies, for another store of this vault (the stores were moved or swapped);
 * - `foreign`: the marker does not verify (another vault's store, or damage: no vault id is in it, so the
 *   two cannot be told apart), or it is malformed, or something other than a regular file is in its place.
 */
export type StoreMarkerProblem = 'missing' | 'other-store' | 'foreign';

/** A store whose marker is not the one the layout expects: the caller marks it down, or stops if it is the home store (exit 4). */
export class StoreMarkerError extends BadStoreError {
  constructor(
    readonly storeId: string,
    readonly path: string,
    readonly problem: StoreMarkerProblem,
    /** The store id the marker names, when it is another store of this vault. */
    readonly foundStoreId: string | null = null,
  ) {
    super(path, problem);
    // 10.3's message names the store and its path itself, so it replaces BadStoreError's "path: reason".
    this.message = StoreMarkerError.describe(storeId, path, problem, foundStoreId);
    this.name = 'StoreMarkerError';
  }

  private static describe(storeId: string, path: string, problem: StoreMarkerProblem, foundStoreId: string | null): string {
    switch (problem) {
      case 'missing':
        return `store ${storeId} at ${path} has no ${STORE_MARKER_FILE}: it is not a store of this vault, or it was damaged`;
      case 'other-store':
        return `store ${storeId} at ${path} is store ${foundStoreId ?? '?'} of this vault: give each store's place with --store-at ID=PATH`;
      case 'foreign':
        return `store ${storeId} at ${path} belongs to another vault or was damaged`;
    }
  }
}

function storeIdBytes(storeId: string): Buffer {
  if (!ID_HEX.test(storeId)) throw new RangeError(`a store id is ${STORE_ID_BYTES} bytes in lowercase hex, not ${JSON.stringify(storeId)}`);
  return Buffer.from(storeId, 'hex');
}

/** HMAC(store-marker key, "svault-store-v2\0" ‖ store id), the id as its 16 bytes (section 1: fixed-width fields). */
export function storeMarkerMac(storeMarkerKey: Buffer, storeId: string): Buffer {
  return labeledPrf(storeMarkerKey, 'svault-store-v2', storeIdBytes(storeId));
}

/** The marker of store `storeId`, MACed under this vault's store-marker key. */
export function makeStoreMarker(storeMarkerKey: Buffer, storeId: string): StoreMarker {
  return { svaultStore: STORE_MARKER_VERSION, storeId, mac: storeMarkerMac(storeMarkerKey, storeId).toString('hex') };
}

function markerText(marker: StoreMarker): string {
  return JSON.stringify(marker, null, 2) + '\n';
}

/**
 * Writes the marker of a new store, durably (temporary file, fsync, rename, directory fsync). Refuses a
 * directory that already has one: it may be another vault's store, which must not be taken over.
 */
export function createStoreMarker(dir: StoreDir, storeId: string, storeMarkerKey: Buffer): void {
  if (dir.stat(STORE_MARKER_FILE) !== null) {
    throw new BadStoreError(dir.path, `${STORE_MARKER_FILE} already exists: this directory is a store already (of this vault or another)`);
  }
  dir.writeFileAtomic(STORE_MARKER_FILE, markerText(makeStoreMarker(storeMarkerKey, storeId)));
}

/**
 * Rewrites a store's marker whatever is there, durably: for a store whose marker key changes (a rekey)
 * and for an upgrade run again over its own leftovers. Never for a directory that may be another vault's.
 */
export function replaceStoreMarker(dir: StoreDir, storeId: string, storeMarkerKey: Buffer): void {
  dir.writeFileAtomic(STORE_MARKER_FILE, markerText(makeStoreMarker(storeMarkerKey, storeId)));
}

/** Parses a marker; BadStoreError when the text is not one of section 10.3's shape (unknown fields included). */
export function parseStoreMarker(text: string, store: string): StoreMarker {
  const bad = (why: string): never => {
    throw new BadStoreError(store, `${STORE_MARKER_FILE}: ${why}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return bad('not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not an object');
  const m = raw as Record<string, unknown>;
  for (const key of Object.keys(m)) if (!['svaultStore', 'storeId', 'mac'].includes(key)) bad(`unknown field "${key}"`);
  if (m.svaultStore !== STORE_MARKER_VERSION) bad(`unsupported marker ${JSON.stringify(m.svaultStore)} (this svault reads ${STORE_MARKER_VERSION})`);
  if (typeof m.storeId !== 'string' || !ID_HEX.test(m.storeId)) bad(`storeId is not ${STORE_ID_BYTES} bytes in lowercase hex`);
  if (typeof m.mac !== 'string' || !MAC_HEX.test(m.mac)) bad('mac is not 32 bytes in lowercase hex');
  return { svaultStore: STORE_MARKER_VERSION, storeId: m.storeId as string, mac: m.mac as string };
}

/**
 * The store's marker, parsed but not verified; null when there is none. BadStoreError for a marker that
 * is malformed, and for a link or special file in its place (StoreDir).
 */
export function readStoreMarker(dir: StoreDir): StoreMarker | null {
  const bytes = dir.readFile(STORE_MARKER_FILE, MAX_MARKER_BYTES);
  return bytes === null ? null : parseStoreMarker(bytes.toString('utf8'), dir.path);
}

function verifies(marker: StoreMarker, storeMarkerKey: Buffer): boolean {
  const given = Buffer.from(marker.mac, 'hex');
  return given.length === PRF_BYTES && constantTimeEqual(given, storeMarkerMac(storeMarkerKey, marker.storeId));
}

/**
 * Checks that the directory is store `expectedStoreId` of this vault: its marker names that id and its
 * MAC verifies under this vault's store-marker key. Throws StoreMarkerError saying what it found instead.
 */
export function checkStoreMarker(dir: StoreDir, expectedStoreId: string, storeMarkerKey: Buffer): void {
  let marker: StoreMarker | null;
  try {
    marker = readStoreMarker(dir);
  } catch (err) {
    // Malformed, or a link, a directory or an oversized file where the marker should be: not this vault's marker.
    if (err instanceof BadStoreError) throw new StoreMarkerError(expectedStoreId, dir.path, 'foreign');
    throw err;
  }
  if (marker === null) throw new StoreMarkerError(expectedStoreId, dir.path, 'missing');
  if (!verifies(marker, storeMarkerKey)) throw new StoreMarkerError(expectedStoreId, dir.path, 'foreign');
  if (marker.storeId !== expectedStoreId) throw new StoreMarkerError(expectedStoreId, dir.path, 'other-store', marker.storeId);
}
