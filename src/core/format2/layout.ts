// svault.layout.json (docs/format-2.md, 4.1): what format 2 adds to a vault's config — the record size
// and inline threshold, the stores, the placement of each live epoch, the recovery wrap and, while a
// rekey runs, the previous master — with a MAC under the config key over it and over svault.json's
// settings. This module parses the file with every rule of 4.1, computes and checks its MAC, writes it,
// and makes the layout of a new one-store vault. It knows nothing of what the stores hold.
//
// Why a MAC and not a wrap, as svault.json has: the master key is wrapped twice (passphrase, recovery
// key), and a store's move must not need both secrets. Any holder of M can rewrite the layout, and a
// layout written without M — a change, or one copied from another vault — fails the MAC with its own
// message, where format 1 could not tell a tampered config from a wrong passphrase.

import { randomBytes } from 'node:crypto';
import { constantTimeEqual, hmacOf, KEY_BYTES, PRF_BYTES, SEAL_OVERHEAD } from '../crypto/crypto.js';
import { BadStoreError } from '../errors.js';
import type { StoreDir } from '../os/store-dir.js';
import type { VaultConfig } from '../vault/config.js';
import { INLINE_MAX } from './inode-record.js';
import { RECORD_BYTES } from './record-seal.js';

export const LAYOUT_FILE = 'svault.layout.json';
/** The value of the file's `layout` field. */
export const LAYOUT_VERSION = 2;
/** 1 to 32 stores: placement reduces a coordinate modulo the stores left, whose bias stays below 2^-27 up to 32 (10.3). */
export const MAX_STORES = 32;
/** k + m ≤ 8: one fragment per address dimension (10.3). */
export const MAX_FRAGMENTS = 8;
/** One placement per live epoch: the current one, and the previous one while a rescatter runs (10.6). */
const MAX_PLACEMENTS = 2;
/** Bytes of a store id. */
export const STORE_ID_BYTES = 16;
/** A store id as the layout writes it: lowercase hex, as svault.json writes the vault id. */
const ID_HEX = /^[0-9a-f]{32}$/;
const MAC_HEX = /^[0-9a-f]{64}$/;
/** A key wrapped with seal(): nonce ‖ sealed 32-byte key ‖ tag, as svault.json's wrappedKey. */
const WRAPPED_KEY_BYTES = SEAL_OVERHEAD + KEY_BYTES;
/** Far above 32 stores with the longest paths: a bigger file is not a layout, and is not read whole. */
const MAX_LAYOUT_BYTES = 256 * 1024;
/** PATH_MAX; S3 keys are shorter still. */
const MAX_LOCATION_LENGTH = 4096;
/** Domain separation of the MAC (4.1). */
const MAC_LABEL = Buffer.from('svault-config-v2\0', 'ascii');
/** The message of a layout whose MAC fails (4.1, section 13): exit 4. */
export const LAYOUT_MISMATCH = `${LAYOUT_FILE} does not match this vault: it was changed or replaced`;

export interface HomeStore {
  id: string;
  role: 'home';
}

export interface ScatterStore {
  id: string;
  role: 'scatter';
  /** Last known location: an absolute path or an s3:// URL. Rewritten when the store moves (10.3). */
  at: string;
}

export type LayoutStore = HomeStore | ScatterStore;

/** Where the fragments of one epoch's pieces go (10.3): k data and m parity fragments over `stores`, in order. */
export interface Placement {
  epoch: number;
  k: number;
  m: number;
  stores: string[];
}

/** Everything the layout holds but its MAC. */
export interface LayoutBody {
  layout: typeof LAYOUT_VERSION;
  records: { size: number; inlineMax: number };
  stores: LayoutStore[];
  /** The live epochs, the current one last. */
  placement: Placement[];
  /** M wrapped under the recovery key (4.1). */
  recovery?: { wrappedKey: string };
  /** The previous master, wrapped under the current one, while a rekey runs (10.6). */
  rekey?: { previousKey: string };
}

export interface Layout extends LayoutBody {
  /** Hex MAC under the config key; two of them, one under each master, during a rekey's switch (10.6). */
  mac: string | [string, string];
}

/** The svault.json fields the layout's MAC covers: the settings, which never change after init. */
export type BoundSettings = Pick<VaultConfig, 'format' | 'vaultId' | 'cipher' | 'pieceSize' | 'chaffRatio'>;

// ---- Parsing ----

/** Throws BadStoreError naming the rule a layout breaks. */
type Refuse = (why: string) => never;

function refuser(store: string): Refuse {
  return (why) => {
    throw new BadStoreError(store, `${LAYOUT_FILE}: ${why}`);
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An object with only the `allowed` fields and every one of `required`: unknown fields are refused at every level (4.1). */
function objectWith(v: unknown, what: string, allowed: readonly string[], required: readonly string[], bad: Refuse): Record<string, unknown> {
  if (!isObject(v)) bad(`${what} is not an object`);
  const o = v as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!allowed.includes(key)) bad(`unknown field "${key}" in ${what}`);
  for (const key of required) if (!Object.hasOwn(o, key)) bad(`${what} has no "${key}"`);
  return o;
}

function isIntegerIn(v: unknown, min: number, max: number): v is number {
  return Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
}

/** Strict base64 of a key wrapped with seal(). */
function isWrappedKey(v: unknown): v is string {
  return typeof v === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(v) && v.length % 4 === 0 && Buffer.from(v, 'base64').length === WRAPPED_KEY_BYTES;
}

/**
 * A scatter store's location (4.1): an absolute path, or an s3:// URL with a valid bucket name and an
 * optional prefix. No control character in either, so a location cannot smuggle a newline into a log.
 */
function locationProblem(at: unknown): string | null {
  if (typeof at !== 'string' || at.length === 0) return 'is not a non-empty string';
  if (at.length > MAX_LOCATION_LENGTH) return `is longer than ${MAX_LOCATION_LENGTH} characters`;
  if (/[\x00-\x1f\x7f]/.test(at)) return 'holds a control character';
  if (at.startsWith('/')) return null;
  if (at.startsWith('s3://')) {
    const [bucket] = at.slice('s3://'.length).split('/', 1);
    // S3's bucket names: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
    return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket ?? '') ? null : 'is an s3:// URL without a valid bucket name';
  }
  return 'is neither an absolute path nor an s3:// URL';
}

function parseStores(v: unknown, bad: Refuse): LayoutStore[] {
  if (!Array.isArray(v) || v.length < 1 || v.length > MAX_STORES) bad(`stores must list 1 to ${MAX_STORES} stores`);
  const seen = new Set<string>();
  let homes = 0;
  const stores = (v as unknown[]).map((entry, i): LayoutStore => {
    const what = `stores[${i}]`;
    const s = objectWith(entry, what, ['id', 'role', 'at'], ['id', 'role'], bad);
    if (typeof s.id !== 'string' || !ID_HEX.test(s.id)) bad(`${what}.id is not ${STORE_ID_BYTES} bytes in lowercase hex`);
    const id = s.id as string;
    if (seen.has(id)) bad(`store ${id} is listed twice`);
    seen.add(id);
    if (s.role === 'home') {
      homes++;
      if (Object.hasOwn(s, 'at')) bad(`${what}: the home store has no "at" (it is where svault.json is)`);
      return { id, role: 'home' };
    }
    if (s.role !== 'scatter') bad(`${what}.role must be "home" or "scatter"`);
    if (!Object.hasOwn(s, 'at')) bad(`${what}: a scatter store needs "at", its location`);
    const problem = locationProblem(s.at);
    if (problem) bad(`${what}.at ${problem}`);
    return { id, role: 'scatter', at: s.at as string };
  });
  if (homes !== 1) bad(`stores must have exactly one home store, not ${homes}`);
  return stores;
}

function parsePlacement(v: unknown, storeIds: ReadonlySet<string>, bad: Refuse): Placement[] {
  if (!Array.isArray(v) || v.length < 1 || v.length > MAX_PLACEMENTS) {
    bad('placement must have one entry per live epoch: one, or two while a rescatter runs');
  }
  const placement = (v as unknown[]).map((entry, i): Placement => {
    const what = `placement[${i}]`;
    const p = objectWith(entry, what, ['epoch', 'k', 'm', 'stores'], ['epoch', 'k', 'm', 'stores'], bad);
    if (!isIntegerIn(p.epoch, 0, 0xffff_ffff)) bad(`${what}.epoch is not an integer from 0 to 2^32 - 1`);
    if (!isIntegerIn(p.k, 1, Number.MAX_SAFE_INTEGER)) bad(`${what}.k must be an integer of at least 1`);
    if (!isIntegerIn(p.m, 0, Number.MAX_SAFE_INTEGER)) bad(`${what}.m must be an integer of at least 0`);
    const k = p.k as number, m = p.m as number;
    if (k + m > MAX_FRAGMENTS) bad(`${what}: k + m is ${k + m}, above ${MAX_FRAGMENTS}`);
    if (!Array.isArray(p.stores)) bad(`${what}.stores is not a list of store ids`);
    const listed = p.stores as unknown[];
    const inEntry = new Set<string>();
    for (const id of listed) {
      if (typeof id !== 'string' || !storeIds.has(id)) bad(`${what}.stores names ${JSON.stringify(id)}, which is not in stores`);
      if (inEntry.has(id as string)) bad(`${what}.stores lists ${id as string} twice`);
      inEntry.add(id as string);
    }
    if (k + m > listed.length) bad(`${what}: k + m is ${k + m}, more than the ${listed.length} stores it lists`);
    return { epoch: p.epoch as number, k, m, stores: listed as string[] };
  });
  // A rescatter goes from epoch e to e + 1 (10.6), and the current epoch is listed last.
  if (placement.length === 2 && placement[1]!.epoch !== placement[0]!.epoch + 1) {
    bad('placement must list the previous epoch, then the current one, one above it');
  }
  return placement;
}

function parseMac(v: unknown, duringRekey: boolean, bad: Refuse): string | [string, string] {
  if (typeof v === 'string') {
    if (!MAC_HEX.test(v)) bad('mac is not 32 bytes in lowercase hex');
    return v;
  }
  if (Array.isArray(v)) {
    // Two MACs only in a rekey's switch (10.6, step 2), which also writes `rekey`.
    if (!duringRekey) bad('mac is a pair, but no rekey is running');
    if (v.length !== 2 || !v.every((m) => typeof m === 'string' && MAC_HEX.test(m))) bad('mac must be two MACs of 32 bytes in lowercase hex');
    return [v[0] as string, v[1] as string];
  }
  return bad('mac is missing or not a string');
}

/** Parses a layout's text and checks every rule of 4.1 but the MAC (checkLayoutMac). Throws BadStoreError naming the rule. */
export function parseLayout(text: string, store: string): Layout {
  const bad = refuser(store);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadStoreError(store, `${LAYOUT_FILE} is not valid JSON`);
  }
  const o = objectWith(raw, 'the layout', ['layout', 'records', 'stores', 'placement', 'recovery', 'rekey', 'mac'], ['layout', 'records', 'stores', 'placement', 'mac'], bad);
  if (o.layout !== LAYOUT_VERSION) bad(`unsupported layout ${JSON.stringify(o.layout)} (this svault reads layout ${LAYOUT_VERSION})`);
  const records = objectWith(o.records, 'records', ['size', 'inlineMax'], ['size', 'inlineMax'], bad);
  // Fixed by the format, written down so that a reader checks them (4.1): never a setting.
  if (records.size !== RECORD_BYTES) bad(`records.size must be ${RECORD_BYTES}`);
  if (records.inlineMax !== INLINE_MAX) bad(`records.inlineMax must be ${INLINE_MAX}`);
  const stores = parseStores(o.stores, bad);
  const placement = parsePlacement(o.placement, new Set(stores.map((s) => s.id)), bad);
  const layout: LayoutBody = { layout: LAYOUT_VERSION, records: { size: RECORD_BYTES, inlineMax: INLINE_MAX }, stores, placement };
  if (Object.hasOwn(o, 'recovery')) {
    const recovery = objectWith(o.recovery, 'recovery', ['wrappedKey'], ['wrappedKey'], bad);
    if (!isWrappedKey(recovery.wrappedKey)) bad(`recovery.wrappedKey is not ${WRAPPED_KEY_BYTES} bytes in base64`);
    layout.recovery = { wrappedKey: recovery.wrappedKey as string };
  }
  if (Object.hasOwn(o, 'rekey')) {
    const rekey = objectWith(o.rekey, 'rekey', ['previousKey'], ['previousKey'], bad);
    if (!isWrappedKey(rekey.previousKey)) bad(`rekey.previousKey is not ${WRAPPED_KEY_BYTES} bytes in base64`);
    layout.rekey = { previousKey: rekey.previousKey as string };
  }
  return { ...layout, mac: parseMac(o.mac, layout.rekey !== undefined, bad) };
}

// ---- The MAC ----

/**
 * The canonical bytes the MAC covers (4.1): the JSON of [format, vaultId, cipher, pieceSize, chaffRatio,
 * records, stores, placement, recovery ?? null, rekey ?? null], built as svault.json's boundFields is.
 * Each object is rebuilt with its fields in a fixed order (that of 4.1's example), so the bytes do not
 * depend on the order the file happens to list them in.
 */
export function layoutCanonical(settings: BoundSettings, body: LayoutBody): Buffer {
  const canonical = [
    settings.format,
    settings.vaultId,
    settings.cipher,
    settings.pieceSize,
    settings.chaffRatio,
    { size: body.records.size, inlineMax: body.records.inlineMax },
    body.stores.map((s) => (s.role === 'home' ? { id: s.id, role: s.role } : { id: s.id, role: s.role, at: s.at })),
    body.placement.map((p) => ({ epoch: p.epoch, k: p.k, m: p.m, stores: [...p.stores] })),
    body.recovery ? { wrappedKey: body.recovery.wrappedKey } : null,
    body.rekey ? { previousKey: body.rekey.previousKey } : null,
  ];
  return Buffer.from(JSON.stringify(canonical), 'utf8');
}

/** HMAC(config key, "svault-config-v2\0" ‖ canonical), in hex. */
export function layoutMac(configKey: Buffer, settings: BoundSettings, body: LayoutBody): string {
  return hmacOf(configKey, Buffer.concat([MAC_LABEL, layoutCanonical(settings, body)])).toString('hex');
}

/**
 * Checks the MAC under the config key of the master svault.json unwrapped. During a rekey's switch the
 * layout carries a MAC under each master, and one of them verifying is enough (10.6). Throws
 * BadStoreError (exit 4) with 4.1's message otherwise.
 */
export function checkLayoutMac(layout: Layout, settings: BoundSettings, configKey: Buffer, store: string): void {
  const { mac, ...body } = layout;
  const expected = Buffer.from(layoutMac(configKey, settings, body), 'hex');
  const macs = typeof mac === 'string' ? [mac] : mac;
  // Every MAC is compared, in constant time, whichever matches.
  let verified = false;
  for (const m of macs) {
    const given = Buffer.from(m, 'hex');
    if (given.length === PRF_BYTES && constantTimeEqual(given, expected)) verified = true;
  }
  if (!verified) throw new BadStoreError(store, LAYOUT_MISMATCH);
}

/**
 * The layout with its MAC: under one config key, or under two during a rekey's switch (10.6, step 2:
 * the current master's and the previous one's, in any order), which needs `rekey` in the body.
 */
export function signLayout(body: LayoutBody, settings: BoundSettings, configKeys: readonly Buffer[]): Layout {
  const [first, second] = configKeys;
  if (configKeys.length === 1 && first) return { ...body, mac: layoutMac(first, settings, body) };
  if (configKeys.length === 2 && first && second) {
    if (!body.rekey) throw new Error('a layout is signed under two masters only while a rekey runs');
    return { ...body, mac: [layoutMac(first, settings, body), layoutMac(second, settings, body)] };
  }
  throw new Error(`a layout is signed under one or two config keys, not ${configKeys.length}`);
}

/**
 * The layout of a new one-store vault (4.1): a home store with a fresh random id, placed with k = 1,
 * m = 0 in epoch 0, and a recovery wrap when the user took a recovery key.
 */
export function newOneStoreLayout(settings: BoundSettings, configKey: Buffer, recovery?: { wrappedKey: string }): Layout {
  const home = randomBytes(STORE_ID_BYTES).toString('hex');
  const body: LayoutBody = {
    layout: LAYOUT_VERSION,
    records: { size: RECORD_BYTES, inlineMax: INLINE_MAX },
    stores: [{ id: home, role: 'home' }],
    placement: [{ epoch: 0, k: 1, m: 0, stores: [home] }],
  };
  if (recovery) body.recovery = { wrappedKey: recovery.wrappedKey };
  return signLayout(body, settings, [configKey]);
}

/** The home store's entry: parseLayout made sure there is exactly one. */
export function homeStore(layout: LayoutBody): HomeStore {
  const home = layout.stores.find((s): s is HomeStore => s.role === 'home');
  if (!home) throw new Error('a layout without a home store');
  return home;
}

/** The placement of the current epoch: the last entry (4.1). */
export function currentPlacement(layout: LayoutBody): Placement {
  const current = layout.placement[layout.placement.length - 1];
  if (!current) throw new Error('a layout without a placement');
  return current;
}

// ---- The file ----

/**
 * Reads svault.layout.json from the home store, checks every rule and the MAC under `configKey` (the
 * config key of the master svault.json unwrapped), and returns it. BadStoreError for a missing,
 * malformed or mismatched layout; also for a link or a special file in its place (StoreDir).
 */
export function readLayout(dir: StoreDir, settings: BoundSettings, configKey: Buffer): Layout {
  const bytes = dir.readFile(LAYOUT_FILE, MAX_LAYOUT_BYTES);
  if (bytes === null) throw new BadStoreError(dir.path, `${LAYOUT_FILE} is missing (a format-2 store must have one)`);
  const layout = parseLayout(bytes.toString('utf8'), dir.path);
  checkLayoutMac(layout, settings, configKey, dir.path);
  return layout;
}

/**
 * Writes the layout as svault.json is written: a temporary file, fsync, rename, fsync of the directory.
 * Its text is parsed first, so svault never writes a layout it would refuse to read.
 */
export function writeLayout(dir: StoreDir, layout: Layout): void {
  const text = JSON.stringify(layout, null, 2) + '\n';
  parseLayout(text, dir.path);
  dir.writeFileAtomic(LAYOUT_FILE, text);
}
