// The vault config (svault.json): format, vault id, KDF parameters and the wrapped master key.
// Every field is bound into the AEAD that wraps the master key, so a tampered config never opens.

import { randomBytes, scryptSync } from 'node:crypto';
import { BadStoreError, WrongPassphraseError } from '../errors.js';
import { KEY_BYTES, open, seal } from '../crypto/crypto.js';
import { StoreDir } from '../os/store-dir.js';

export const CONFIG_FILE = 'svault.json';
export const FORMAT_VERSION = 1;
export const CIPHER = 'aes-256-gcm';

/** scrypt costs: the defaults are gocryptfs's; opening refuses anything weaker than the minimums. */
export const SCRYPT_DEFAULT = { N: 1 << 16, r: 8, p: 1 } as const;
export const SCRYPT_MIN = { N: 1 << 16, r: 8, p: 1 } as const;
/**
 * Upper bounds stop a hostile config from making open() allocate gigabytes or spin for minutes:
 * at most 16x the default work and 1 GiB of memory (scrypt needs 128 * N * r * p bytes).
 */
const SCRYPT_MAX = { N: 1 << 20, r: 16, p: 4 } as const;
const SCRYPT_MAX_MEMORY = 1 << 30;
const SCRYPT_MAX_WORK = 16 * SCRYPT_DEFAULT.N * SCRYPT_DEFAULT.r * SCRYPT_DEFAULT.p;
/** svault.json is a few hundred bytes: anything this large in its place is not a config. */
export const MAX_CONFIG_BYTES = 64 * 1024;

export const MIN_PIECE_SIZE = 4096;
export const MAX_PIECE_SIZE = 16 * 1024 * 1024;
export const MAX_CHAFF_RATIO = 4;

export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string; // base64
}

/** The parsed config file. */
export interface VaultConfig {
  format: number;
  vaultId: string; // hex, 16 bytes
  cipher: typeof CIPHER;
  pieceSize: number;
  chaffRatio: number;
  kdf: KdfParams;
  wrappedKey: string; // base64: nonce || sealed master key || tag
}

export interface VaultSettings {
  pieceSize: number;
  chaffRatio: number;
}

/** The fields bound into the key wrap: everything except the wrapped key itself, in a fixed order. */
function boundFields(c: Omit<VaultConfig, 'wrappedKey'>): Buffer {
  const { format, vaultId, cipher, pieceSize, chaffRatio, kdf } = c;
  const canonical = JSON.stringify([
    'svault-config', format, vaultId, cipher, pieceSize, chaffRatio, kdf.name, kdf.N, kdf.r, kdf.p, kdf.salt,
  ]);
  return Buffer.from(canonical, 'utf8');
}

function passphraseKey(passphrase: string, kdf: KdfParams): Buffer {
  const salt = Buffer.from(kdf.salt, 'base64');
  return scryptSync(passphrase.normalize('NFC'), salt, KEY_BYTES, {
    N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r * kdf.p,
  });
}

export function validateSettings(s: VaultSettings): string | null {
  const { pieceSize, chaffRatio } = s;
  if (!Number.isInteger(pieceSize) || pieceSize < MIN_PIECE_SIZE || pieceSize > MAX_PIECE_SIZE || (pieceSize & (pieceSize - 1)) !== 0) {
    return `piece size must be a power of two from ${MIN_PIECE_SIZE} to ${MAX_PIECE_SIZE} bytes`;
  }
  if (!Number.isFinite(chaffRatio) || chaffRatio < 0 || chaffRatio > MAX_CHAFF_RATIO) {
    return `chaff ratio must be a number from 0 to ${MAX_CHAFF_RATIO}`;
  }
  return null;
}

function newKdf(): KdfParams {
  return { name: 'scrypt', ...SCRYPT_DEFAULT, salt: randomBytes(32).toString('base64') };
}

function wrap(master: Buffer, passphrase: string, fields: Omit<VaultConfig, 'wrappedKey'>): VaultConfig {
  const kek = passphraseKey(passphrase, fields.kdf);
  return { ...fields, wrappedKey: seal(kek, boundFields(fields), [master]).toString('base64') };
}

/**
 * Makes a new config with a fresh vault id and master key. Returns the config and the master key. The
 * format is bound into the wrap, so a config of one format never opens as the other's (docs/format-2.md 4.1).
 */
export function createConfig(passphrase: string, settings: VaultSettings, format: 1 | 2 = FORMAT_VERSION): { config: VaultConfig; master: Buffer } {
  const problem = validateSettings(settings);
  if (problem) throw new Error(problem);
  const master = randomBytes(KEY_BYTES);
  const fields = {
    format,
    vaultId: randomBytes(16).toString('hex'),
    cipher: CIPHER,
    pieceSize: settings.pieceSize,
    chaffRatio: settings.chaffRatio,
    kdf: newKdf(),
  } as const;
  return { config: wrap(master, passphrase, fields), master };
}

/**
 * Parses and validates a config's shape and bounds; throws BadStoreError naming the problem. `formats`:
 * the formats the caller reads (format 2's code reads 2, and 1 only to upgrade it).
 */
export function parseConfig(text: string, store: string, formats: readonly number[] = [FORMAT_VERSION]): VaultConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadStoreError(store, `${CONFIG_FILE} is not valid JSON`);
  }
  const bad = (why: string): never => {
    throw new BadStoreError(store, `${CONFIG_FILE}: ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not an object');
  const c = raw as Record<string, unknown>;
  const known = ['format', 'vaultId', 'cipher', 'pieceSize', 'chaffRatio', 'kdf', 'wrappedKey'];
  for (const k of Object.keys(c)) if (!known.includes(k)) bad(`unknown field "${k}"`);
  if (!formats.includes(c.format as number)) {
    const reads = formats.includes(2) ? 'format 2, and format 1 only to upgrade it' : `format ${formats.join(' or ')}`;
    bad(`unsupported format ${JSON.stringify(c.format)} (this svault reads ${reads})`);
  }
  if (typeof c.vaultId !== 'string' || !/^[0-9a-f]{32}$/.test(c.vaultId)) bad('bad vaultId');
  if (c.cipher !== CIPHER) bad(`unsupported cipher ${JSON.stringify(c.cipher)}`);
  const settingsProblem = validateSettings({ pieceSize: c.pieceSize as number, chaffRatio: c.chaffRatio as number });
  if (settingsProblem) bad(settingsProblem);
  if (typeof c.wrappedKey !== 'string' || !/^[A-Za-z0-9+/]+=*$/.test(c.wrappedKey)) bad('bad wrappedKey');
  const kdf = c.kdf as Record<string, unknown> | null;
  if (typeof kdf !== 'object' || kdf === null) bad('missing kdf');
  const k = kdf as Record<string, unknown>;
  for (const key of Object.keys(k)) if (!['name', 'N', 'r', 'p', 'salt'].includes(key)) bad(`unknown kdf field "${key}"`);
  // No silent fallback: only scrypt is accepted, and never below the minimum cost.
  if (k.name !== 'scrypt') bad(`unsupported KDF ${JSON.stringify(k.name)}`);
  const ints = ['N', 'r', 'p'] as const;
  for (const f of ints) if (!Number.isInteger(k[f])) bad(`kdf.${f} must be an integer`);
  const N = k.N as number, r = k.r as number, p = k.p as number;
  if (N < SCRYPT_MIN.N || r < SCRYPT_MIN.r || p < SCRYPT_MIN.p) {
    bad(`KDF parameters below the minimum (scrypt N>=${SCRYPT_MIN.N}, r>=${SCRYPT_MIN.r}, p>=${SCRYPT_MIN.p})`);
  }
  if (N > SCRYPT_MAX.N || r > SCRYPT_MAX.r || p > SCRYPT_MAX.p || (N & (N - 1)) !== 0) bad('KDF parameters out of range');
  if (128 * N * r * p > SCRYPT_MAX_MEMORY || N * r * p > SCRYPT_MAX_WORK) bad('KDF parameters too costly (over 1 GiB or 16 times the default work)');
  if (typeof k.salt !== 'string' || Buffer.from(k.salt, 'base64').length < 16) bad('kdf.salt too short');
  return c as unknown as VaultConfig;
}

/** Unwraps the master key. Throws WrongPassphraseError when the passphrase or any config field is wrong. */
export function unwrapMasterKey(config: VaultConfig, passphrase: string, store: string): Buffer {
  const kek = passphraseKey(passphrase, config.kdf);
  const { wrappedKey, ...fields } = config;
  const master = open(kek, boundFields(fields), Buffer.from(wrappedKey, 'base64'));
  if (!master || master.length !== KEY_BYTES) throw new WrongPassphraseError(store);
  return master;
}

/**
 * The same vault as another format (`svault upgrade` and its rollback, docs/format-2.md 4.4): the master key
 * wrapped again under the same passphrase and scrypt salt, with `format` bound into the wrap.
 */
export function rewrapAsFormat(config: VaultConfig, master: Buffer, passphrase: string, format: 1 | 2): VaultConfig {
  const { wrappedKey: _old, ...fields } = config;
  return wrap(master, passphrase, { ...fields, format });
}

/** Rewraps the same master key under a new passphrase with a fresh salt. Nothing else changes. */
export function rewrapConfig(config: VaultConfig, master: Buffer, newPassphrase: string): VaultConfig {
  const { wrappedKey: _old, ...fields } = config;
  return wrap(master, newPassphrase, { ...fields, kdf: newKdf() });
}

export function readConfig(store: string, formats: readonly number[] = [FORMAT_VERSION]): VaultConfig {
  let bytes: Buffer | null;
  let dir: StoreDir | null = null;
  try {
    dir = StoreDir.open(store);
    // Opened without following a link and refused unless a regular file (StoreDir), with a size cap: a FIFO,
    // a device or a huge file in place of the config must not hang or exhaust the process.
    bytes = dir.readFile(CONFIG_FILE, MAX_CONFIG_BYTES);
  } catch (err) {
    if (err instanceof BadStoreError) throw err; // a link, a special file or an oversized file: it says which
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BadStoreError(store, `no vault here (the directory does not exist); create one with "svault init"`);
    throw new BadStoreError(store, `cannot read ${CONFIG_FILE}: ${(err as Error).message}`);
  } finally {
    dir?.close();
  }
  if (bytes === null) throw new BadStoreError(store, `no vault here (${CONFIG_FILE} is missing); create one with "svault init"`);
  return parseConfig(bytes.toString('utf8'), store, formats);
}

/** Writes the config atomically: temp file, fsync, rename, fsync of the directory; no link is followed. */
export function writeConfig(store: string, config: VaultConfig): void {
  StoreDir.using(store, (dir) => dir.writeFileAtomic(CONFIG_FILE, JSON.stringify(config, null, 2) + '\n'));
}
