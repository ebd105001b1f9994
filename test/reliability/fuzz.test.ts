// Issue 7, item 4 (fuzzing): the decoders of everything svault reads from a store it does not trust —
// the config (parseConfig, readConfig, and the config -> unwrapMasterKey path), metadata records
// (RecordStore.get on arbitrary stored values, decodeInode, Metadata.lookup / list / the vault state on
// arbitrary authenticated content) and pieces (openPiece). Core level, no mount. Every input must give a
// well-formed value or an error of the expected classes (BadStoreError, WrongPassphraseError,
// IntegrityError / FsError; null for openPiece), never another exception, never a hang.
//
// The metadata targets are format 1's (RecordStore, Metadata, decodeInode, Vault), on a format-1 vault made
// in this process (createTempVault), not on the CLI sandboxes' format-2 stores: svault still reads format-1
// stores (upgrade, info). The config and piece targets are both formats'. Format 2's record decoders are
// not fuzzed here: test/format2/codecs.test.ts and record-seal.test.ts fail each of their checks by hand.
//
// Inputs come from fast-check with a fixed seed (SVAULT_SEED to change it, SVAULT_FUZZ_RUNS to scale the
// counts). Every input runs (no stop at the first failure) so the log shows every kind of bad outcome
// with its smallest example.

import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CONFIG_FILE, createConfig, parseConfig, readConfig, unwrapMasterKey, type VaultConfig } from '../../src/core/vault/config.js';
import { seal, u64 } from '../../src/core/crypto/crypto.js';
import { BadStoreError, FsError, IntegrityError, WrongPassphraseError } from '../../src/core/errors.js';
import { decodeInode, encodeInode, newInode, ROOT_ID, type Inode } from '../../src/core/meta/inode.js';
import { Metadata } from '../../src/core/meta/metadata.js';
import { META_FILE, RecordStore } from '../../src/core/meta/record-store.js';
import { blobSizeClasses, openPiece, openPieceInto, sealPiece, type PieceId } from '../../src/core/pieces/piece-codec.js';
import { MemoryStore } from '../../src/core/store/memory-store.js';
import { CleanupList, createTempVault, recordsOf, tempDir, type TempVault } from '../helpers/temp-vault.js';

const SEED = Number(process.env.SVAULT_SEED ?? 20261127);
const SCALE = Number(process.env.SVAULT_FUZZ_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** No single decode may take this long: a hang or a pathological input. */
const HANG_MS = 2000;
const PASS = 'correct horse battery staple';

const hooks = new CleanupList();
const tally = new Map<string, number>();
let base: VaultConfig;
let baseText = '';
let tv: TempVault;

test.before(async () => {
  base = createConfig(PASS, { pieceSize: 131072, chaffRatio: 0.1 }).config;
  baseText = JSON.stringify(base, null, 2);
  tv = await createTempVault(hooks, { store: new MemoryStore(), pieceSize: 4096 });
});
test.after.always(() => hooks.run());
test.after.always('how many inputs were fuzzed', (t) => {
  const total = [...tally.values()].reduce((a, b) => a + b, 0);
  t.log(`fuzzed ${total} inputs: ${[...tally].map(([k, v]) => `${k} ${v}`).join(', ')}`);
});

type Outcome = 'ok' | 'expected-error';

/** An input, readable in a log line: text when it is text, hex otherwise. */
function show(v: unknown): string {
  if (Buffer.isBuffer(v)) {
    const s = v.toString('utf8');
    return Buffer.from(s, 'utf8').equals(v) && !/[\u0000-\u0008\u000e-\u001f]/.test(s) ? `bytes ${JSON.stringify(s)}` : `hex ${v.toString('hex')}`;
  }
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  return fc.stringify(v);
}

/** The kind of a bad outcome, for grouping: error class and message without the varying details. */
function kindOf(err: unknown): string {
  const e = err as Error & { field?: string };
  if (e?.name === 'Accepted') return `accepted a malformed value (${e.field})`;
  const msg = String(e?.message ?? err).split(/ Received|\. Received/)[0] ?? '';
  return `${e?.name ?? typeof err}: ${msg.replace(/\d+/g, '#').slice(0, 120)}`;
}

/** Runs every input through check; collects unexpected outcomes by kind; fails listing each kind. */
function fuzz<T>(t: ExecutionContext, name: string, arb: fc.Arbitrary<T>, n: number, check: (v: T) => Outcome, hangMs = HANG_MS): void {
  const inputs = fc.sample(arb, { numRuns: n, seed: SEED });
  const failures = new Map<string, { count: number; example: string }>();
  const outcomes = { ok: 0, 'expected-error': 0 };
  let slowest = 0;
  for (const v of inputs) {
    const t0 = performance.now();
    try {
      outcomes[check(v)]++;
    } catch (err) {
      const kind = kindOf(err);
      const example = `${show(v)}${(err as { field?: string }).field ? ` -> ${(err as Error).message}` : ''}`;
      const f = failures.get(kind);
      if (!f) failures.set(kind, { count: 1, example });
      else {
        f.count++;
        if (example.length < f.example.length) f.example = example;
      }
    }
    slowest = Math.max(slowest, performance.now() - t0);
  }
  tally.set(name, inputs.length);
  const bad = [...failures.values()].reduce((a, f) => a + f.count, 0);
  t.log(`${name}: ${inputs.length} inputs (seed ${SEED}): ${outcomes.ok} accepted, ${outcomes['expected-error']} refused as expected, ${bad} bad; slowest ${slowest.toFixed(1)} ms`);
  const kinds = [...failures].sort((a, b) => b[1].count - a[1].count);
  for (const [kind, f] of kinds.slice(0, 12)) t.log(`  ${f.count}x ${kind}\n    smallest: ${f.example.slice(0, 300)}`);
  if (kinds.length > 12) t.log(`  ... and ${kinds.length - 12} more kinds`);
  t.deepEqual(kinds.map(([k]) => k), [], `${name}: inputs with an unexpected outcome (see the log)`);
  t.true(slowest < hangMs, `${name}: the slowest input took ${slowest.toFixed(0)} ms`);
}

/** Calls fn; an error of one of the allowed classes is an expected refusal; anything else propagates. */
function expectOnly<R>(allowed: (new (...a: never[]) => Error)[], fn: () => R, valid: (r: R) => string | null): Outcome {
  let r: R;
  try {
    r = fn();
  } catch (err) {
    if (allowed.some((c) => err instanceof c)) return 'expected-error';
    throw err;
  }
  const problem = valid(r);
  if (problem) throw accepted(problem);
  return 'ok';
}

/** "field: detail" -> an error naming a malformed value that was accepted, grouped by field. */
function accepted(problem: string): Error {
  return Object.assign(new Error(problem), { name: 'Accepted', field: problem.split(/[: ]/)[0] });
}

const isInt = (x: unknown, min = 0) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min;
const pow2 = (x: number) => x > 0 && (x & (x - 1)) === 0;

/** An independent check that an accepted config is one every later step can use. */
function configProblem(c: VaultConfig): string | null {
  if (typeof c !== 'object' || c === null) return 'not an object';
  const known = ['format', 'vaultId', 'cipher', 'pieceSize', 'chaffRatio', 'kdf', 'wrappedKey'];
  for (const k of Object.keys(c)) if (!known.includes(k)) return `unknown field ${k}`;
  if (c.format !== 1) return 'format';
  if (typeof c.vaultId !== 'string' || !/^[0-9a-f]{32}$/.test(c.vaultId)) return 'vaultId';
  if (c.cipher !== 'aes-256-gcm') return 'cipher';
  if (!isInt(c.pieceSize, 4096) || !pow2(c.pieceSize) || c.pieceSize > 16 << 20) return 'pieceSize';
  if (typeof c.chaffRatio !== 'number' || !(c.chaffRatio >= 0 && c.chaffRatio <= 4)) return 'chaffRatio';
  const k = c.kdf as unknown as Record<string, unknown>;
  if (typeof k !== 'object' || k === null || Array.isArray(k)) return 'kdf';
  if (k.name !== 'scrypt' || !isInt(k.N, 1 << 16) || !pow2(k.N as number) || !isInt(k.r, 8) || !isInt(k.p, 1)) return 'kdf params';
  if (typeof k.salt !== 'string' || Buffer.from(k.salt, 'base64').length < 16) return 'salt';
  if (typeof c.wrappedKey !== 'string' || !/^[A-Za-z0-9+/]+=*$/.test(c.wrappedKey)) return 'wrappedKey';
  return null;
}

// ---------- config ----------

const edgeValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom<unknown>(0, -1, -0, 1, 1.5, 4095, 4096, 65536, 1 << 16, 1 << 22, 1 << 23, 2 ** 31, 2 ** 53 + 2, 1e308, -1e308, '', 'scrypt', 'aes-256-gcm', null, [], {}, true, 'AAAA', '='.repeat(40), 'f'.repeat(32)),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const FIELDS = ['format', 'vaultId', 'cipher', 'pieceSize', 'chaffRatio', 'kdf', 'wrappedKey', 'kdf.name', 'kdf.N', 'kdf.r', 'kdf.p', 'kdf.salt', 'extra', 'kdf.extra', '__proto__', 'constructor'];
const mutation = fc.record({ path: fc.constantFrom(...FIELDS), op: fc.constantFrom('set', 'set', 'delete'), value: edgeValue });

function applyMutations(ms: { path: string; op: string; value: unknown }[]): Record<string, unknown> {
  const c = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  for (const m of ms) {
    const [a, b] = m.path.split('.') as [string, string | undefined];
    let target: Record<string, unknown> = c;
    let key = a;
    if (b !== undefined) {
      if (typeof c[a] !== 'object' || c[a] === null) continue;
      target = c[a] as Record<string, unknown>;
      key = b;
    }
    if (m.op === 'delete') delete target[key];
    else Object.defineProperty(target, key, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return c;
}

const mutatedConfig = fc.array(mutation, { minLength: 1, maxLength: 4 }).map(applyMutations);
/** Text-level damage to a real config: characters replaced, inserted, or the text cut. */
const damagedText = fc.tuple(fc.nat(), fc.string({ unit: 'binary', maxLength: 4 }), fc.constantFrom('replace', 'insert', 'cut')).map(([at, s, how]) => {
  const i = at % baseText.length;
  if (how === 'cut') return baseText.slice(0, i);
  return baseText.slice(0, i) + s + baseText.slice(how === 'replace' ? i + s.length : i);
});
const configText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.json({ maxDepth: 3 }),
  mutatedConfig.map((c) => JSON.stringify(c)),
  damagedText,
);

test('parseConfig: arbitrary strings, JSON and damaged configs give BadStoreError or a well-formed config', (t) => {
  fuzz(t, 'parseConfig', configText, runs(3000), (text) => expectOnly([BadStoreError], () => parseConfig(text, '/store'), configProblem));
});

test('readConfig: arbitrary file contents (bytes, damaged configs) give BadStoreError or a well-formed config', (t) => {
  const dir = tempDir(hooks, 'svault-fuzz-cfg-');
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
    configText.map((s) => Buffer.from(s, 'utf8')),
    damagedText.map((s) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(s)])), // with a BOM
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.concat([Buffer.from(baseText.slice(0, 100)), Buffer.from(a)])),
  );
  fuzz(t, 'readConfig', bytes, runs(600), (b) => {
    writeFileSync(join(dir, CONFIG_FILE), b);
    return expectOnly([BadStoreError], () => readConfig(dir), configProblem);
  });
  // Not a readable file at all.
  rmSync(join(dir, CONFIG_FILE));
  t.throws(() => readConfig(dir), { instanceOf: BadStoreError, message: /missing/ });
  mkdirSync(join(dir, CONFIG_FILE));
  t.throws(() => readConfig(dir), { instanceOf: BadStoreError });
  rmSync(join(dir, CONFIG_FILE), { recursive: true });
  symlinkSync(join(dir, 'nowhere'), join(dir, CONFIG_FILE));
  t.throws(() => readConfig(dir), { instanceOf: BadStoreError });
});

test('config -> unwrapMasterKey: any change to a bound field or the wrapped key, or another passphrase, is WrongPassphraseError', (t) => {
  // Each attempt costs one scrypt at the minimum cost (~0.1-0.5 s), so few inputs; kdf cost kept minimal.
  const hex32 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a).toString('hex'));
  const wrapped = Buffer.from(base.wrappedKey, 'base64');
  const change = fc.oneof(
    hex32.map((vaultId) => ({ ...base, vaultId })),
    fc.constantFrom(4096, 8192, 65536, 1 << 20).map((pieceSize) => ({ ...base, pieceSize })),
    fc.double({ min: 0, max: 4, noNaN: true }).filter((x) => x !== base.chaffRatio).map((chaffRatio) => ({ ...base, chaffRatio })),
    fc.uint8Array({ minLength: 16, maxLength: 48 }).map((s) => ({ ...base, kdf: { ...base.kdf, salt: Buffer.from(s).toString('base64') } })),
    fc.tuple(fc.nat(wrapped.length * 8 - 1)).map(([bit]) => {
      const k = Buffer.from(wrapped);
      k[bit >> 3] = (k[bit >> 3] as number) ^ (1 << (bit & 7));
      return { ...base, wrappedKey: k.toString('base64') };
    }),
    fc.nat(wrapped.length - 1).map((len) => ({ ...base, wrappedKey: wrapped.subarray(0, Math.max(1, len)).toString('base64') })),
    fc.uint8Array({ minLength: 1, maxLength: 120 }).map((a) => ({ ...base, wrappedKey: Buffer.from(a).toString('base64') })),
  );
  fuzz(t, 'unwrapMasterKey (tampered config)', change, runs(10), (c) => {
    const parsed = expectOnly([BadStoreError], () => parseConfig(JSON.stringify(c), '/store'), configProblem);
    if (parsed === 'expected-error') return parsed;
    return expectOnly([WrongPassphraseError], () => unwrapMasterKey(c, PASS, '/store'), () => 'a tampered config unwrapped');
  }, 30_000);
  fuzz(t, 'unwrapMasterKey (other passphrase)', fc.string({ maxLength: 40 }).filter((p) => p.normalize('NFC') !== PASS), runs(4), (p) =>
    expectOnly([WrongPassphraseError], () => unwrapMasterKey(base, p, '/store'), () => 'another passphrase unwrapped'),
  30_000);
  t.is(unwrapMasterKey(base, PASS, '/store').length, 32, 'the untouched config still unwraps');
});

test('config -> unwrapMasterKey: no accepted KDF parameters make opening allocate gigabytes or spin for minutes', (t) => {
  // parseConfig bounds what a hostile config may ask of scrypt. Its cost is 128·N·r bytes of memory and
  // N·r·p units of work (the default N=2^16, r=8, p=1 takes ~0.1-0.5 s here). Bound: 1 GiB, 64x the default.
  const params = fc.record({ logN: fc.integer({ min: 10, max: 26 }), r: fc.integer({ min: 1, max: 64 }), p: fc.integer({ min: 1, max: 32 }) });
  fuzz(t, 'KDF cost bounds', params, runs(1500), ({ logN, r, p }) => {
    const c = { ...base, kdf: { ...base.kdf, N: 2 ** logN, r, p } };
    return expectOnly([BadStoreError], () => parseConfig(JSON.stringify(c), '/store'), (ok) => {
      const memory = 128 * ok.kdf.N * ok.kdf.r;
      const work = (ok.kdf.N * ok.kdf.r * ok.kdf.p) / (65536 * 8);
      if (memory > 1 << 30) return `memory: scrypt N=2^${logN} r=${r} p=${p} needs ${(memory / (1 << 30)).toFixed(0)} GiB`;
      if (work > 64) return `work: scrypt N=2^${logN} r=${r} p=${p} is ${work}x the default work`;
      return null;
    });
  });
});

// ---------- metadata records ----------

/**
 * A record store on a fresh directory with known keys. A value is planted with a raw connection and read
 * back through a fresh RecordStore, so no value read earlier can answer from the store's read cache
 * (a RecordStore caches what it read, and would otherwise go on returning the first fuzzed value).
 */
function recordStore(c: ExecutionContext): {
  nameOf: RecordStore['nameOf'];
  plant: (name: Buffer, value: Buffer | string | number | bigint) => void;
  getFresh: (name: Buffer) => Buffer | null;
  rawValue: (name: Buffer) => Buffer;
  putGenuine: (name: Buffer, value: Buffer) => void;
  sealKey: Buffer;
  vaultId: Buffer;
} {
  const dir = tempDir(hooks, 'svault-fuzz-meta-');
  const sealKey = randomBytes(32);
  const indexKey = randomBytes(32);
  const vaultId = randomBytes(16);
  let open: RecordStore | null = new RecordStore(dir, sealKey, indexKey, vaultId);
  open.flush();
  const names = open;
  const closeOpen = () => {
    open?.abandon();
    open = null;
  };
  c.teardown(closeOpen);
  const withRaw = <T>(fn: (raw: Database.Database) => T): T => {
    closeOpen();
    const raw = new Database(join(dir, META_FILE));
    try {
      return fn(raw);
    } finally {
      raw.close();
    }
  };
  return {
    nameOf: (kind, ...parts) => names.nameOf(kind, ...parts),
    plant: (name, value) => withRaw((raw) => raw.prepare('INSERT OR REPLACE INTO records (k, v) VALUES (?, ?)').run(name, value)),
    getFresh: (name) => {
      closeOpen();
      open = new RecordStore(dir, sealKey, indexKey, vaultId);
      return open.get(name, 'fuzzed record');
    },
    rawValue: (name) => withRaw((raw) => Buffer.from((raw.prepare('SELECT v FROM records WHERE k = ?').get(name) as { v: Buffer }).v)),
    putGenuine: (name, value) => {
      closeOpen();
      const rs = new RecordStore(dir, sealKey, indexKey, vaultId);
      rs.put(name, value);
      rs.close();
    },
    sealKey,
    vaultId,
  };
}

test('RecordStore.get: arbitrary bytes stored as a record give IntegrityError (or the authentic value), never another error', (t) => {
  const rs = recordStore(t);
  const name = rs.nameOf('inode', 'fuzz');
  rs.putGenuine(name, Buffer.from('a genuine value'));
  const genuine = rs.rawValue(name);
  const mutated = fc.tuple(fc.nat(), fc.nat(7), fc.constantFrom('flip', 'cut', 'grow')).map(([at, bit, how]) => {
    const b = Buffer.from(genuine);
    if (how === 'cut') return b.subarray(0, at % b.length);
    if (how === 'grow') return Buffer.concat([b, Buffer.alloc(1 + (at % 64), bit)]);
    b[at % b.length] = (b[at % b.length] as number) ^ (1 << bit);
    return b;
  });
  const stored = fc.oneof(fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)), mutated);
  fuzz(t, 'RecordStore.get (bytes)', stored, runs(1500), (v) => {
    rs.plant(name, v);
    return expectOnly([IntegrityError], () => rs.getFresh(name), (r) => (r === null || !r.equals(Buffer.from('a genuine value')) ? 'returned something else than the authentic value' : null));
  });
  // The planted bytes were read each time, not a cached copy: the genuine record reads again.
  rs.plant(name, genuine);
  t.deepEqual(rs.getFresh(name), Buffer.from('a genuine value'));
});

test('RecordStore.get: a record whose stored value is not a BLOB (TEXT, INTEGER, REAL: SQLite allows it) gives IntegrityError', (t) => {
  const rs = recordStore(t);
  const name = rs.nameOf('entry', ROOT_ID, 'x');
  const value = fc.oneof(fc.string({ maxLength: 300 }), fc.integer(), fc.double({ noNaN: true }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
  fuzz(t, 'RecordStore.get (SQLite types)', value, runs(300), (v) => {
    rs.plant(name, v);
    return expectOnly([IntegrityError], () => rs.getFresh(name), (r) => (r === null ? null : 'returned a value'));
  });
});

test('RecordStore.get: authentic seals of arbitrary plaintext (a lying length header) give IntegrityError or a value inside the plaintext', (t) => {
  const rs = recordStore(t);
  const name = rs.nameOf('dirpage', ROOT_ID, '0');
  const aad = Buffer.concat([Buffer.from('svault-record-v1'), rs.vaultId, name]);
  fuzz(t, 'RecordStore.get (authentic plaintext)', fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), runs(1000), (plain) => {
    rs.plant(name, seal(rs.sealKey, aad, [plain]));
    return expectOnly([IntegrityError], () => rs.getFresh(name), (r) => (r && r.length <= plain.length ? null : 'returned bytes that were not in the record'));
  });
});

/** An independent check that a decoded inode is one the rest of svault can use. */
function inodeProblem(i: Inode, id: string): string | null {
  if (typeof i !== 'object' || i === null) return 'not an object';
  if (i.id !== id) return 'id';
  if (!['file', 'dir', 'symlink'].includes(i.kind)) return `kind ${String(i.kind)}`;
  if (!isInt(i.ino)) return 'ino';
  if (!Buffer.isBuffer(i.fileId) || i.fileId.length !== 16) return 'fileId';
  for (const f of ['mode', 'uid', 'gid', 'size', 'nlink', 'dirPages', 'entries'] as const) if (!isInt(i[f])) return `${f} ${String(i[f])}`;
  if (!isInt(i.nextVersion, 1)) return 'nextVersion';
  for (const f of ['atime', 'mtime', 'ctime'] as const) if (typeof i[f] !== 'number' || !Number.isFinite(i[f])) return f;
  if (i.target !== undefined && typeof i.target !== 'string') return 'target';
  if (!(i.xattrs instanceof Map) || [...i.xattrs].some(([k, v]) => typeof k !== 'string' || !Buffer.isBuffer(v))) return 'xattrs';
  if (!(i.pieces instanceof Map) || [...i.pieces].some(([k, v]) => !isInt(k) || !isInt(v, 1))) return 'pieces';
  if (!Array.isArray(i.lost) || i.lost.some((x) => !isInt(x))) return 'lost';
  return null;
}

test('decodeInode: arbitrary bytes and JSON give IntegrityError or a well-formed inode', (t) => {
  const id = 'a1b2c3d4e5f60718';
  const real = newInode('file', 0o644, 0, 0);
  real.id = id;
  real.ino = 7;
  real.pieces = new Map([[0, 1], [3, 9]]);
  const realJson = JSON.parse(encodeInode(real).toString()) as Record<string, unknown>;
  const INODE_FIELDS = Object.keys(realJson);
  const mutatedInode = fc
    .array(fc.record({ f: fc.constantFrom(...INODE_FIELDS), del: fc.boolean(), v: edgeValue }), { minLength: 1, maxLength: 3 })
    .map((ms) => {
      const j = { ...realJson };
      for (const m of ms) {
        if (m.f === 'id') continue;
        if (m.del) delete j[m.f];
        else j[m.f] = m.v;
      }
      return Buffer.from(JSON.stringify(j));
    });
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    fc.dictionary(fc.constantFrom(...INODE_FIELDS), edgeValue).map((d) => Buffer.from(JSON.stringify({ ...d, id }))),
    mutatedInode,
  );
  fuzz(t, 'decodeInode', bytes, runs(2500), (b) => expectOnly([IntegrityError], () => decodeInode(b, id), (i) => inodeProblem(i, id)));
});

/** Record content an authenticated record could hold if svault (or a key holder) wrote it wrong. */
const recordContent = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.jsonValue({ maxDepth: 3 }).map((x) => Buffer.from(JSON.stringify(x) ?? 'null')),
  fc.record({ name: fc.oneof(fc.constant('x'), edgeValue), id: edgeValue, kind: fc.oneof(fc.constantFrom('file', 'dir', 'symlink'), edgeValue), page: edgeValue }, { requiredKeys: [] }).map((x) => Buffer.from(JSON.stringify(x))),
  fc.array(fc.record({ name: edgeValue, id: edgeValue, kind: edgeValue }, { requiredKeys: [] }), { maxLength: 4 }).map((x) => Buffer.from(JSON.stringify(x))),
);

/** A record store of its own with fresh keys, and Metadata over it: the layer fuzzed without a vault. */
function metadataOnItsOwn(t: ExecutionContext): { rs: RecordStore; meta: Metadata } {
  const rs = new RecordStore(tempDir(hooks, 'svault-fuzz-meta-'), randomBytes(32), randomBytes(32), randomBytes(16));
  t.teardown(() => rs.close());
  return { rs, meta: new Metadata(rs) };
}

test('Metadata.lookup on an entry record with arbitrary authenticated content: IntegrityError or a well-formed entry', (t) => {
  const { rs, meta } = metadataOnItsOwn(t);
  fuzz(t, 'Metadata.lookup', recordContent, runs(800), (b) => {
    rs.put(rs.nameOf('entry', ROOT_ID, 'x'), b);
    rs.flush();
    return expectOnly([IntegrityError], () => meta.lookup(ROOT_ID, 'x'), (e) => {
      if (e === null) return null;
      if (typeof e !== 'object') return 'not an object';
      if (e.name !== 'x') return 'name';
      if (typeof e.id !== 'string' || !/^[0-9a-f]{16}$/.test(e.id)) return `id ${String(e.id)}`;
      if (!['file', 'dir', 'symlink'].includes(e.kind)) return `kind ${String(e.kind)}`;
      if (!isInt(e.page)) return `page ${String(e.page)}`;
      return null;
    });
  });
});

test('Metadata.list on a listing page with arbitrary authenticated content: IntegrityError or well-formed entries', (t) => {
  const { rs, meta } = metadataOnItsOwn(t);
  const dir = newInode('dir', 0o755, 0, 0);
  dir.dirPages = 1;
  fuzz(t, 'Metadata.list', fc.tuple(recordContent, fc.nat(5)), runs(800), ([b, entries]) => {
    dir.entries = entries;
    rs.put(rs.nameOf('dirpage', dir.id, '0'), b);
    rs.flush();
    return expectOnly([IntegrityError], () => meta.list(dir), (list) => {
      if (!Array.isArray(list)) return 'not an array';
      for (const e of list) {
        if (typeof e !== 'object' || e === null) return 'entry not an object';
        if (typeof e.name !== 'string' || e.name.length === 0 || e.name.includes('/')) return `name ${String(e.name)}`;
        if (typeof e.id !== 'string') return `id ${String(e.id)}`;
        if (!['file', 'dir', 'symlink'].includes(e.kind)) return `kind ${String(e.kind)}`;
      }
      return null;
    });
  });
});

test('Metadata (opening) with a vault state record of arbitrary authenticated content: IntegrityError or a well-formed state', (t) => {
  const dir = tempDir(hooks, 'svault-fuzz-state-');
  const rs = new RecordStore(dir, randomBytes(32), randomBytes(32), randomBytes(16));
  t.teardown(() => rs.close());
  fuzz(t, 'Metadata (vault state)', recordContent, runs(500), (b) => {
    rs.put(rs.nameOf('state'), b);
    rs.flush();
    return expectOnly([IntegrityError], () => new Metadata(rs), (m) => (isInt(m.generation) ? null : `generation ${String(m.generation)}`));
  });
});

test('Vault path operations over an entry record with arbitrary authenticated content give FsError, never a TypeError', (t) => {
  const v = tv.vault;
  const rs = recordsOf(v);
  let k = 0;
  fuzz(t, 'Vault.getattr on a fuzzed entry', recordContent, runs(400), (b) => {
    const name = `y${k++}`;
    rs.put(rs.nameOf('entry', ROOT_ID, name), b);
    rs.flush();
    return expectOnly([FsError], () => {
      v.getattr(`/${name}`);
      v.getattr(`/${name}/below`);
      return null;
    }, () => null);
  });
});

// ---------- pieces ----------

test('openPiece: arbitrary, damaged and authentic-but-malformed blobs give null or the data, never an exception', (t) => {
  const P = 16384;
  const classes = blobSizeClasses(P);
  const key = randomBytes(32);
  const vaultId = randomBytes(16);
  const id: PieceId = { fileId: randomBytes(16), index: 3, version: 7 };
  const aad = (pid: PieceId) => Buffer.concat([Buffer.from('svault-piece-v1'), vaultId, pid.fileId, u64(pid.index), u64(pid.version)]);
  const genuineData = randomBytes(5000);
  const genuine = sealPiece(key, vaultId, id, genuineData, classes);
  const pieceId = fc.record({
    fileId: fc.oneof(fc.constant(id.fileId), fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a))),
    index: fc.oneof(fc.constant(id.index), fc.nat(), fc.maxSafeNat()),
    version: fc.oneof(fc.constant(id.version), fc.nat(), fc.maxSafeNat()),
  });
  const blob = fc.oneof(
    fc.uint8Array({ maxLength: 5000 }).map((a) => Buffer.from(a)),
    fc.constantFrom(...classes).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((a) => Buffer.from(a)),
    fc.tuple(fc.nat(), fc.nat(7), fc.constantFrom('flip', 'cut', 'grow', 'prefix')).map(([at, bit, how]) => {
      const b = Buffer.from(genuine);
      if (how === 'cut') return b.subarray(0, at % b.length);
      if (how === 'grow') return Buffer.concat([b, Buffer.alloc(1 + (at % 100))]);
      if (how === 'prefix') return Buffer.concat([Buffer.alloc(1 + (at % 100)), b]);
      b[at % b.length] = (b[at % b.length] as number) ^ (1 << bit);
      return b;
    }),
    // Authentic under the right key and associated data, with an arbitrary body: length header included.
    fc.uint8Array({ maxLength: 300 }).map((plain) => seal(key, aad(id), [Buffer.from(plain)])),
    fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.nat(400)).map(([len, pad]) => {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(len);
      return seal(key, aad(id), [h, randomBytes(pad)]);
    }),
  );
  // openPieceInto, the read path's (a reader's buffer of any length up to the piece), must agree with it.
  const scratch = Buffer.alloc(P + 4096);
  fuzz(t, 'openPiece', fc.tuple(blob, pieceId, fc.integer({ min: 1, max: P })), runs(2500), ([b, pid, dstLength]) => {
    const r = openPiece(key, vaultId, pid, b, P);
    const dst = Buffer.alloc(dstLength, 0xee);
    const into = openPieceInto(key, vaultId, pid, b, P, dst, scratch);
    if (into !== (r !== null)) throw accepted(`openPieceInto said ${into}, openPiece ${r === null ? 'null' : 'data'}`);
    if (r === null) {
      if (!dst.every((x) => x === 0xee) && !dst.every((x) => x === 0)) throw accepted('openPieceInto left bytes of a refused blob in the reader\'s buffer');
      return 'expected-error';
    }
    if (!Buffer.isBuffer(r) || r.length > P) throw accepted(`length: returned ${r.length} bytes`);
    if (b.equals(genuine) && !r.equals(genuineData)) throw accepted('data: the genuine piece opened to other data');
    const want = Buffer.alloc(dstLength);
    r.copy(want, 0, 0, Math.min(r.length, dstLength));
    if (!dst.equals(want)) throw accepted('openPieceInto wrote other bytes than the data, zero-padded');
    return 'ok';
  });
  t.true(openPiece(key, vaultId, id, genuine, P)?.equals(genuineData), 'the genuine piece still opens');
});

test('openPieceInto: a genuine piece of any size, into a reader\'s buffer of any size, is its data zero-padded', (t) => {
  // Both of its ways: straight into the buffer (header and padding to the scratch), and through the
  // scratch when the buffer is longer than the blob holds (a piece shorter than its place in the file).
  const P = 16384;
  const classes = blobSizeClasses(P);
  const key = randomBytes(32);
  const vaultId = randomBytes(16);
  const scratch = Buffer.alloc(P + 64);
  fc.assert(
    fc.property(fc.nat(P), fc.integer({ min: 1, max: P }), fc.nat(), (dataLength, dstLength, index) => {
      const id: PieceId = { fileId: randomBytes(16), index, version: 1 };
      const data = randomBytes(dataLength);
      const dst = Buffer.alloc(dstLength, 0xee);
      t.true(openPieceInto(key, vaultId, id, sealPiece(key, vaultId, id, data, classes), P, dst, scratch));
      const want = Buffer.alloc(dstLength);
      data.copy(want, 0, 0, Math.min(dataLength, dstLength));
      t.deepEqual(dst, want);
    }),
    { numRuns: 300, seed: SEED },
  );
  const id: PieceId = { fileId: randomBytes(16), index: 0, version: 1 };
  const blob = sealPiece(key, vaultId, id, randomBytes(P), classes);
  t.throws(() => openPieceInto(key, vaultId, id, blob, P, Buffer.alloc(P), Buffer.alloc(P)), { instanceOf: RangeError }, 'a scratch buffer too small for the blob');
});
