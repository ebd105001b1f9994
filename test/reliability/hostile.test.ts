// Issue 7, item 4, on store format 2 (docs/format-2.md): a damaged or hostile store. Random bit flips,
// truncations and deletions of blobs, blobs from another vault, a tampered svault.json, svault.layout.json
// or store marker, tampered metadata (meta2.db's sealed rows, replayed rows, raw SQLite pages), a damaged or
// forged rollback anchor, special files and links in place of the store's files, and a store replaced by an
// older copy of itself. Each must be detected and reported clearly — EIO through the mount, fsck naming the
// damaged inode (format 2 names inodes, not paths: security finding 11), or a clear CLI error with a
// documented exit code (never exit 1 with a stack trace) — and the server must never crash or freeze: after
// an EIO it stays up and healthy files keep reading.

import { Vault } from '../../src/core/vault/vault.js';
import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IntegrityError } from '../../src/core/errors.js';
import { LAYOUT_FILE } from '../../src/core/format2/layout.js';
import { META2_FILE } from '../../src/core/format2/record-table.js';
import { STORE_MARKER_FILE } from '../../src/core/format2/store-marker.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { mountedAt, PASSPHRASE, sh, type Sandbox } from '../helpers/cli.js';
import { alive, emptyBox, mountedBox, ok, q, randomFile, sha, sleep, unmountAndCheck, waitFor } from '../helpers/mount-util.js';
import {
  blobFiles,
  blobsOf2,
  changeRecord2,
  checkNothingLeftMountedAtAll,
  deleteRecord2,
  flipRecord2,
  onlyServer,
  prng,
  readRecord2,
  recordNames2,
  serverLogs,
  sha256,
  STACK_TRACE,
  svaultTimed,
  withVault2,
} from '../helpers/reliability-util.js';

checkNothingLeftMountedAtAll(test);

const EIO = /Input\/output error/;
const SEED = Number(process.env.SVAULT_SEED ?? Date.now() % 1_000_000);
/** Content up to this many bytes is INLINE in its inode record (section 7): such a file has no blob. */
const INLINE_MAX = 3818;

/** Writes files of random content into the mount with cp; returns name -> sha256. */
async function populate(t: ExecutionContext, box: Sandbox, sizes: Record<string, number>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const srcDir = join(box.dir, 'src');
  mkdirSync(srcDir, { recursive: true });
  for (const [name, size] of Object.entries(sizes)) {
    const src = join(srcDir, name.replace(/\//g, '_'));
    out.set(name, sha256(randomFile(src, size)));
    await ok(t, `mkdir -p "$(dirname ${q(join(box.mnt, name))})" && cp ${q(src)} ${q(join(box.mnt, name))}`);
  }
  return out;
}

/** cat of a file in the mount must fail with EIO (not succeed, not return other data). */
async function expectEio(t: ExecutionContext, box: Sandbox, name: string): Promise<void> {
  const r = await sh(`cat ${q(join(box.mnt, name))} > /dev/null`);
  t.not(r.code, 0, `reading ${name} must fail`);
  t.regex(r.stderr, EIO, `reading ${name}: ${r.stderr.trim()}`);
}

/** The inode number of each path (format 2's fsck and logs name inodes, not paths). */
async function inosOf(store: string, paths: string[]): Promise<Map<string, number>> {
  return withVault2(store, (v) => new Map(paths.map((p) => [p, v.paths.idAt(p)])));
}

/** A line of fsck output naming inode `ino` (and not inode 12 for inode 1). */
const namesInode = (ino: number) => new RegExp(`\\binode ${ino}\\b`);

/** Inserts a row into meta2.db (a record put back after svault deleted it), under a random id as svault does. */
function insertRow2(store: string, name: Buffer, value: Buffer): void {
  const db = new Database(join(store, META2_FILE));
  try {
    const id = randomBytes(8).readBigUInt64BE(0) & ((1n << 63n) - 1n);
    db.prepare('INSERT INTO r (id, k, v) VALUES (?, ?, ?)').run(id, name, value);
  } finally {
    db.close();
  }
}

/** Every file of a directory tree, by relative path: its type and, for a regular file, a hash of its bytes. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) {
        out.set(r, 'dir');
        walk(r);
      } else if (st.isFile()) out.set(r, createHash('sha256').update(readFileSync(join(root, r))).digest('hex'));
      else out.set(r, `mode ${st.mode.toString(8)}`);
    }
  };
  walk('');
  return out;
}

/** The sandbox's format-2 rollback anchor file (section 5.7): ~/.local/state/svault/anchors/<vault id>.v2. */
function anchorPath(box: Sandbox): string {
  const { vaultId } = JSON.parse(readFileSync(join(box.store, 'svault.json'), 'utf8')) as { vaultId: string };
  return join(box.env.XDG_STATE_HOME as string, 'svault', 'anchors', `${vaultId}.v2`);
}

test('random bit flips, truncations and deletions of blobs, and blobs from another vault: EIO, server stays up, fsck names each inode', async (t) => {
  t.log(`seed ${SEED} (SVAULT_SEED=${SEED} reproduces)`);
  const rnd = prng(SEED);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const box = await mountedBox(t, ['--chaff', '0', '--piece-size', '16384']);
  const pid = onlyServer(box);
  const names = Array.from({ length: 13 }, (_, i) => `file${i}`);
  // Above INLINE_MAX, so that every file has blobs.
  const sizes = Object.fromEntries(names.map((n) => [n, INLINE_MAX + 1 + Math.floor(rnd() * 80_000)]));
  const shas = await populate(t, box, sizes);
  await unmountAndCheck(t, box, [pid]);

  // Another format-2 vault (same passphrase, its own keys), made by the same code.
  const otherStore = join(box.dir, 'other-store');
  const other = await Vault2.create(otherStore, PASSPHRASE, { pieceSize: 16384, chaffRatio: 0 }, { pieceWorker: false });
  const fh = other.paths.create('/theirs', 0o644, 0, 0);
  await other.write(fh, randomFile(join(box.dir, 'theirs'), 40_000), 0);
  await other.release(fh);
  await other.close();
  const theirBlobs = await withVault2(otherStore, (v) => blobsOf2(v, '/theirs'));
  t.is(theirBlobs.length, 3);

  const { blobs, inos } = await withVault2(box.store, (v) => ({
    blobs: new Map(names.map((n) => [n, blobsOf2(v, `/${n}`)])),
    inos: new Map(names.map((n) => [n, v.paths.idAt(`/${n}`)])),
  }));
  for (const n of names) t.true((blobs.get(n) ?? []).length > 0, `${n} has blobs`);
  const order = [...names].sort(() => rnd() - 0.5);
  const damage = new Map<string, string>();
  const file = (rel: string) => join(box.store, 'blobs', rel);
  for (const n of order.slice(0, 3)) {
    const f = file(pick(blobs.get(n) as string[]));
    const b = readFileSync(f);
    const at = Math.floor(rnd() * b.length);
    const bit = Math.floor(rnd() * 8);
    b[at] = (b[at] as number) ^ (1 << bit);
    writeFileSync(f, b);
    damage.set(n, `bit ${bit} of byte ${at} of ${b.length} flipped`);
  }
  for (const n of order.slice(3, 5)) {
    const f = file(pick(blobs.get(n) as string[]));
    const len = Math.floor(rnd() * statSync(f).size);
    truncateSync(f, len);
    damage.set(n, `blob truncated to ${len} bytes`);
  }
  for (const n of order.slice(5, 7)) {
    unlinkSync(file(pick(blobs.get(n) as string[])));
    damage.set(n, 'blob deleted');
  }
  // Another vault's blob put where one of ours was.
  const foreign = order[7] as string;
  copyFileSync(join(otherStore, 'blobs', theirBlobs[0] as string), file(pick(blobs.get(foreign) as string[])));
  damage.set(foreign, 'blob replaced by a blob of another vault');
  // Another vault's blobs at their own path and at a made-up one: orphans, harmless to every file.
  mkdirSync(file((theirBlobs[1] as string).slice(0, 2)), { recursive: true });
  copyFileSync(join(otherStore, 'blobs', theirBlobs[1] as string), file(theirBlobs[1] as string));
  const madeUp = `ab/ab${'0123456789abcdef'.repeat(4).slice(2)}`;
  mkdirSync(file('ab'), { recursive: true });
  copyFileSync(join(otherStore, 'blobs', theirBlobs[2] as string), file(madeUp));
  const healthy = order.slice(8);
  t.log([...damage].map(([n, d]) => `${n} (inode ${inos.get(n)}): ${d}`).join('; '));

  t.is((await box.mount()).code, 0);
  const pid2 = onlyServer(box);
  const listing = await ok(t, `ls -l ${q(box.mnt)}`);
  for (const n of names) t.true(listing.includes(n), `${n} is listed (metadata is intact)`);
  for (const n of damage.keys()) {
    await expectEio(t, box, n);
    t.true(alive(pid2) && mountedAt(box.mnt), `the server is still up after the EIO of ${n}`);
    const h = pick(healthy);
    t.is(await sha(t, join(box.mnt, h)), shas.get(h) ?? '?', `healthy ${h} reads right after the EIO of ${n}`);
  }
  for (const n of healthy) t.is(await sha(t, join(box.mnt, n)), shas.get(n) ?? '?', `healthy ${n}`);
  const logs = serverLogs(box);
  t.regex(logs, /failed authentication/, 'the log says why');
  t.regex(logs, /missing from the store/);
  t.notRegex(logs, /uncaught|unhandled/i);
  await unmountAndCheck(t, box, [pid2]);

  const f = await box.svault(['fsck', '--store', box.store]);
  t.is(f.code, 7, f.stdout + f.stderr);
  for (const n of damage.keys()) t.regex(f.stdout, new RegExp(`(bad|missing)-piece: inode ${inos.get(n)}:`), `fsck names /${n} by its inode ${inos.get(n)}`);
  for (const n of healthy) t.notRegex(f.stdout, namesInode(inos.get(n) ?? -1), `fsck does not name healthy /${n} (inode ${inos.get(n)})`);
  for (const n of names) t.false(f.stdout.includes(n), 'fsck names no path');
  t.regex(f.stdout, /2 orphaned blob\(s\)/, 'the two foreign blobs at paths of their own are orphans');
});

type Change = (c: Record<string, unknown>, text: string) => string | Buffer;

/** svault.json mutations an attacker (or bit rot) might make, with the exit code and message expected. */
const CONFIG_CASES: { what: string; change: Change; code: number; message: RegExp; all?: boolean }[] = [
  { what: 'half of it cut off', change: (_c, s) => s.slice(0, s.length >> 1), code: 4, message: /not valid JSON/ },
  { what: 'empty', change: () => '', code: 4, message: /not valid JSON/, all: true },
  { what: 'binary garbage', change: () => Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22, 0x80]), code: 4, message: /not valid JSON/ },
  { what: 'not an object', change: () => '[1,2,3]', code: 4, message: /not an object/ },
  { what: 'pieceSize changed', change: (c) => JSON.stringify({ ...c, pieceSize: 65536 }), code: 3, message: /wrong passphrase.*tampered/ },
  { what: 'chaffRatio changed', change: (c) => JSON.stringify({ ...c, chaffRatio: 0.5 }), code: 3, message: /wrong passphrase.*tampered/ },
  { what: 'vaultId changed', change: (c) => JSON.stringify({ ...c, vaultId: 'f'.repeat(32) }), code: 3, message: /wrong passphrase.*tampered/ },
  {
    what: 'salt changed',
    change: (c) => JSON.stringify({ ...c, kdf: { ...(c.kdf as object), salt: Buffer.alloc(32, 7).toString('base64') } }),
    code: 3,
    message: /wrong passphrase.*tampered/,
    all: true,
  },
  {
    what: 'one bit of the wrapped key flipped',
    change: (c) => {
      const k = Buffer.from(c.wrappedKey as string, 'base64');
      k[20] = (k[20] as number) ^ 1;
      return JSON.stringify({ ...c, wrappedKey: k.toString('base64') });
    },
    code: 3,
    message: /wrong passphrase.*tampered/,
  },
  { what: 'KDF weakened', change: (c) => JSON.stringify({ ...c, kdf: { ...(c.kdf as object), N: 1024 } }), code: 4, message: /below the minimum/ },
  { what: 'KDF swapped', change: (c) => JSON.stringify({ ...c, kdf: { ...(c.kdf as object), name: 'pbkdf2' } }), code: 4, message: /unsupported KDF/ },
  // A format-2 store whose config says format 1: 4.2 calls it an interrupted upgrade, and points to svault upgrade.
  { what: 'format 1', change: (c) => JSON.stringify({ ...c, format: 1 }), code: 4, message: /format 1: run svault upgrade \(an upgrade was interrupted/ },
  { what: 'format 3', change: (c) => JSON.stringify({ ...c, format: 3 }), code: 4, message: /unsupported format 3/ },
  { what: 'cipher changed', change: (c) => JSON.stringify({ ...c, cipher: 'none' }), code: 4, message: /unsupported cipher/ },
  { what: 'field added', change: (c) => JSON.stringify({ ...c, backdoor: true }), code: 4, message: /unknown field/ },
  { what: 'wrapped key removed', change: (c) => JSON.stringify({ ...c, wrappedKey: undefined }), code: 4, message: /wrappedKey/ },
];

/**
 * svault.layout.json and svault.store mutations (4.1, 10.3): the passphrase unwraps, then the layout's MAC or
 * the marker fails: exit 4 with a message that names the layout (or says the store is not this vault's).
 * `other` is another vault's file of the same name.
 */
const STORE_FILE_CASES: { file: string; what: string; change: (c: Record<string, unknown>, text: string, other: string) => string | null; message: RegExp }[] = [
  {
    file: LAYOUT_FILE,
    what: 'one bit of its MAC flipped',
    change: (c) => JSON.stringify({ ...c, mac: (c.mac as string).slice(0, -1) + ((parseInt((c.mac as string).slice(-1), 16) ^ 1).toString(16)) }),
    message: /svault\.layout\.json does not match this vault: it was changed or replaced/,
  },
  {
    file: LAYOUT_FILE,
    what: 'its home store id changed',
    change: (c) => JSON.stringify({ ...c, stores: [{ id: 'a'.repeat(32), role: 'home' }], placement: [{ epoch: 0, k: 1, m: 0, stores: ['a'.repeat(32)] }] }),
    message: /svault\.layout\.json does not match this vault/,
  },
  { file: LAYOUT_FILE, what: 'the record size changed', change: (c) => JSON.stringify({ ...c, records: { size: 8000, inlineMax: 3818 } }), message: /svault\.layout\.json: .*records/ },
  { file: LAYOUT_FILE, what: 'a field added', change: (c) => JSON.stringify({ ...c, backdoor: true }), message: /svault\.layout\.json: unknown field/ },
  { file: LAYOUT_FILE, what: 'not JSON', change: (_c, s) => s.slice(0, 20), message: /svault\.layout\.json is not valid JSON/ },
  { file: LAYOUT_FILE, what: 'missing', change: () => null, message: /svault\.layout\.json is missing/ },
  { file: LAYOUT_FILE, what: 'the layout of another vault', change: (_c, _s, other) => other, message: /svault\.layout\.json does not match this vault/ },
  { file: STORE_MARKER_FILE, what: 'missing', change: () => null, message: /has no svault\.store/ },
  { file: STORE_MARKER_FILE, what: 'the marker of another vault', change: (_c, _s, other) => other, message: /belongs to another vault or was damaged/ },
  { file: STORE_MARKER_FILE, what: 'its store id changed', change: (c) => JSON.stringify({ ...c, storeId: 'b'.repeat(32) }), message: /belongs to another vault or was damaged/ },
];

test('a tampered svault.json, svault.layout.json or store marker is refused by mount, fsck and info with exit 3 or 4 and a clear message; restored, it works', async (t) => {
  const box = emptyBox(t, 'cfg');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  t.is((await box.mount()).code, 0);
  await ok(t, `echo precious > ${q(box.mnt)}/f && head -c 300000 /dev/urandom > ${q(box.mnt)}/big`);
  await unmountAndCheck(t, box);
  const otherStore = join(box.dir, 'other-store');
  t.is((await box.svault(['init', '--store', otherStore, '--chaff', '0'])).code, 0);
  const before = snapshot(box.store);
  t.true(before.has(META2_FILE) && before.has(LAYOUT_FILE) && before.has(STORE_MARKER_FILE), [...before.keys()].join(' '));

  const refused = async (what: string, cmds: string[][], code: number, message: RegExp) => {
    for (const args of cmds) {
      const r = await box.svault(args);
      t.is(r.code, code, `${what}: svault ${args[0]}: ${r.stderr}`);
      t.regex(r.stderr, message, `${what}: svault ${args[0]}`);
      t.notRegex(r.stderr, STACK_TRACE, `${what}: no stack trace`);
      t.false(mountedAt(box.mnt), `${what}: nothing mounted`);
    }
  };
  const mountOnly = [['mount', '--store', box.store, box.mnt]];
  const allCommands = [...mountOnly, ['fsck', '--store', box.store, '--repair'], ['info', '--store', box.store]];

  const cfgPath = join(box.store, 'svault.json');
  const original = readFileSync(cfgPath, 'utf8');
  const cfg = JSON.parse(original) as Record<string, unknown>;
  for (const c of CONFIG_CASES) {
    writeFileSync(cfgPath, c.change(cfg, original));
    await refused(`svault.json ${c.what}`, c.all ? allCommands : mountOnly, c.code, c.message);
  }
  // Missing, or a directory instead of a file.
  rmSync(cfgPath);
  await refused('svault.json missing', mountOnly, 4, /no vault here|svault\.json is missing|no vault in/);
  mkdirSync(cfgPath);
  await refused('svault.json a directory', mountOnly, 4, /svault\.json/);
  rmSync(cfgPath, { recursive: true });
  writeFileSync(cfgPath, original);

  for (const c of STORE_FILE_CASES) {
    const path = join(box.store, c.file);
    const text = readFileSync(path, 'utf8');
    const changed = c.change(JSON.parse(text) as Record<string, unknown>, text, readFileSync(join(otherStore, c.file), 'utf8'));
    if (changed === null) rmSync(path);
    else writeFileSync(path, changed);
    await refused(`${c.file} ${c.what}`, allCommands, 4, c.message);
    writeFileSync(path, text);
  }
  const layoutPath = join(box.store, LAYOUT_FILE);
  const layout = readFileSync(layoutPath);
  rmSync(layoutPath);
  mkdirSync(layoutPath);
  await refused('svault.layout.json a directory', mountOnly, 4, /svault\.layout\.json/);
  rmSync(layoutPath, { recursive: true });
  writeFileSync(layoutPath, layout);

  t.deepEqual(snapshot(box.store), before, 'no refused command wrote, removed or changed any file of the store (blobs, meta2.db, layout, marker)');
  t.is((await box.mount()).code, 0, 'the restored files mount');
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'precious\n');
  await unmountAndCheck(t, box);
});

// A svault.json saying format 1 beside format 2's files is an interrupted upgrade (4.2): every command says so
// before asking for a passphrase, which the format-1 config would take for a wrong one. Nothing is written.
test('svault.json saying format 1 beside format 2\'s files: fsck, info and passwd say it is an interrupted upgrade, as mount does (4.2)', async (t) => {
  const box = emptyBox(t, 'cfg1');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  const cfgPath = join(box.store, 'svault.json');
  writeFileSync(cfgPath, JSON.stringify({ ...(JSON.parse(readFileSync(cfgPath, 'utf8')) as object), format: 1 }));
  const before = snapshot(box.store);
  for (const args of [['mount', '--store', box.store, box.mnt], ['fsck', '--store', box.store], ['fsck', '--repair', '--store', box.store], ['info', '--store', box.store], ['passwd', '--store', box.store]]) {
    const r = await box.svault(args);
    t.not(r.code, 3, `svault ${args[0]}: not a wrong passphrase: ${r.stderr}`);
    t.regex(r.stdout + r.stderr, /format 1: run svault upgrade \(an upgrade was interrupted/, `svault ${args.slice(0, 2).join(' ')}: ${r.stderr}`);
    t.notRegex(r.stderr, STACK_TRACE);
  }
  t.false(mountedAt(box.mnt));
  t.deepEqual(snapshot(box.store), before, 'nothing was written');
});

test('the config (and layout and marker) of another vault with the same passphrase put in the store: refused clearly, and fsck --repair destroys nothing', async (t) => {
  const box = emptyBox(t, 'cfgswap');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  t.is((await box.mount()).code, 0);
  await ok(t, `echo precious > ${q(box.mnt)}/f && mkdir ${q(box.mnt)}/d && echo more > ${q(box.mnt)}/d/g && head -c 300000 /dev/urandom > ${q(box.mnt)}/big`);
  await unmountAndCheck(t, box);
  const otherStore = join(box.dir, 'other-store');
  t.is((await box.svault(['init', '--store', otherStore, '--chaff', '0'])).code, 0);

  for (const files of [['svault.json'], ['svault.json', LAYOUT_FILE, STORE_MARKER_FILE]]) {
    const what = files.join(' + ');
    const mine = new Map(files.map((f) => [f, readFileSync(join(box.store, f))]));
    const blobsBefore = [...blobFiles(box.store)].sort();
    const metaBefore = readFileSync(join(box.store, META2_FILE));
    for (const f of files) copyFileSync(join(otherStore, f), join(box.store, f));

    const repair = await box.svault(['fsck', '--store', box.store, '--repair']);
    t.log(`${what} of another vault: fsck --repair: exit ${repair.code}\n${repair.stdout}${repair.stderr}`);
    t.deepEqual([...blobFiles(box.store)].sort(), blobsBefore, `${what}: fsck --repair under a foreign config must not delete the store's blobs`);
    t.true(readFileSync(join(box.store, META2_FILE)).equals(metaBefore), `${what}: nor change meta2.db`);
    t.true(repair.code === 3 || repair.code === 4, `${what}: fsck --repair refuses (3 or 4), got ${repair.code}`);
    t.notRegex(repair.stderr, STACK_TRACE);

    const m = await box.mount();
    t.true(m.code === 3 || m.code === 4, `${what}: mount with the config of another vault must be refused (3 or 4), got ${m.code}: ${m.stderr}`);
    t.notRegex(m.stderr, STACK_TRACE);
    t.false(mountedAt(box.mnt));
    if (mountedAt(box.mnt)) await box.unmount();
    for (const [f, bytes] of mine) writeFileSync(join(box.store, f), bytes);
  }

  t.is((await box.mount()).code, 0);
  t.is(await ok(t, `cat ${q(box.mnt)}/f ${q(box.mnt)}/d/g`), 'precious\nmore\n', 'the vault is intact once its own config is back');
  await unmountAndCheck(t, box);
});

/** Names of the files of a directory whose entries fill buckets (6.4: more than 3,818 bytes of entries). */
const BUCKETED = Array.from({ length: 24 }, (_, i) => `${'n'.repeat(190)}-${i}`);

test('tampered metadata rows: EIO through the mount, the server stays up, healthy files read, fsck names every damaged inode', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, {
    c: 30_000, 'd/b': 6000, 'd/h2': 1000, 'g/a': 5000, 'e/x': 70_000, 'r/m': 9000, h1: 200_000, 'q/h3': 10,
  });
  await ok(t, `mkdir ${q(box.mnt)}/p && cd ${q(box.mnt)}/p && for n in ${BUCKETED.join(' ')}; do echo "inside $n" > "$n"; done`);
  await unmountAndCheck(t, box);
  const paths = ['/c', '/d/b', '/d/h2', '/g', '/g/a', '/e/x', '/r/m', '/h1', '/q/h3', '/p'];
  const inos = await inosOf(box.store, paths);
  const ino = (p: string) => inos.get(p) as number;
  // Which bucket of /p is damaged: the first of its buckets with a record.
  let bucket = -1;
  await withVault2(box.store, (v) => {
    const n = recordNames2(v);
    flipRecord2(box.store, n.inode(ino('/c')));
    // A sealed BLOB replaced by a TEXT value: SQLite does not stop that (the column is not STRICT).
    changeRecord2(box.store, n.inode(ino('/e/x')), () => 'x'.repeat(200));
    deleteRecord2(box.store, n.inode(ino('/d/b')));
    // A small directory keeps its entries in its inode (6.4): that record is its listing.
    flipRecord2(box.store, n.inode(ino('/g')));
    // A record moved to another name: authentic, but not this name's (5.2: damaged).
    changeRecord2(box.store, n.inode(ino('/r/m')), () => readRecord2(box.store, n.inode(ino('/q/h3'))));
    for (let b = 0; b < 16 && bucket < 0; b++) {
      try {
        flipRecord2(box.store, n.bucket(ino('/p'), b));
        bucket = b;
      } catch {
        /* no record for that bucket */
      }
    }
  });
  t.true(bucket >= 0, '/p has bucket records');
  // Which names of /p the damaged bucket held: those whose lookup now fails.
  const inBucket = await withVault2(box.store, (v) =>
    BUCKETED.filter((n) => {
      try {
        v.paths.idAt(`/p/${n}`);
        return false;
      } catch (err) {
        if (err instanceof IntegrityError) return true;
        throw err;
      }
    }),
  );
  t.log(`bucket ${bucket} of /p (inode ${ino('/p')}) damaged: ${inBucket.length} of its ${BUCKETED.length} names are in it`);
  t.true(inBucket.length > 0 && inBucket.length < BUCKETED.length);

  t.is((await box.mount()).code, 0);
  const pid = onlyServer(box);
  for (const n of ['c', 'e/x', 'd/b', 'g/a', 'r/m']) {
    await expectEio(t, box, n);
    t.true(alive(pid), `server up after ${n}`);
    t.is(await sha(t, join(box.mnt, 'h1')), shas.get('h1') ?? '?', `a healthy file reads after the EIO of ${n}`);
  }
  for (const n of ['c', 'd/b', 'g']) {
    const st = await sh(`stat ${q(join(box.mnt, n))}`);
    t.regex(st.stderr, EIO, `stat of ${n}, whose inode record is damaged or missing: EIO (${st.stderr.trim()})`);
  }
  const lsG = await sh(`ls ${q(join(box.mnt, 'g'))}`);
  t.not(lsG.code, 0);
  t.regex(lsG.stderr, EIO, `ls of a directory whose inode (its entries) is damaged: EIO (${lsG.stderr.trim()})`);
  const lsP = await sh(`ls ${q(join(box.mnt, 'p'))}`);
  t.not(lsP.code, 0);
  t.regex(lsP.stderr, EIO, `ls of a directory with a damaged bucket: EIO (${lsP.stderr.trim()})`);
  // A lookup reads only the bucket its name hashes to (6.4): the names of the other buckets are still found.
  for (const n of BUCKETED) {
    const r = await sh(`cat ${q(join(box.mnt, 'p', n))}`);
    if (inBucket.includes(n)) t.regex(r.stderr, EIO, `a name in the damaged bucket: EIO (${r.stderr.trim()})`);
    else t.is(r.stdout, `inside ${n}\n`, `a name in another bucket reads (${r.stderr.trim()})`);
  }
  const lsD = await sh(`ls ${q(join(box.mnt, 'd'))}`);
  t.log(`ls d (the inode row of d/b deleted): exit ${lsD.code}, ${JSON.stringify(lsD.stdout)} ${lsD.stderr.trim()}`);
  t.is(lsD.stdout, 'b\nh2\n', 'ls of d lists every name, the damaged one too');
  for (const n of ['h1', 'd/h2', 'q/h3']) t.is(await sha(t, join(box.mnt, n)), shas.get(n) ?? '?', `healthy ${n}`);
  t.true(alive(pid) && mountedAt(box.mnt), 'the server is still up');
  t.notRegex(serverLogs(box), /uncaught|unhandled/i);
  await unmountAndCheck(t, box, [pid]);

  const f = await box.svault(['fsck', '--store', box.store]);
  t.is(f.code, 7, f.stdout + f.stderr);
  t.log(f.stdout);
  for (const p of ['/c', '/e/x', '/g', '/r/m']) t.regex(f.stdout, new RegExp(`bad-record: inode ${ino(p)}\\b`), `fsck names ${p} (inode ${ino(p)}) as a bad record`);
  t.regex(f.stdout, new RegExp(`missing-record: inode ${ino('/d/b')}\\b`), `fsck names /d/b (inode ${ino('/d/b')}) as a missing record`);
  t.regex(f.stdout, new RegExp(`bad-record: .*\\b${ino('/p')}\\b`), `fsck names the directory /p (inode ${ino('/p')}) for its bucket`);
  for (const p of ['/h1', '/d/h2', '/q/h3']) t.notRegex(f.stdout, namesInode(ino(p)), `fsck does not name healthy ${p} (inode ${ino(p)})`);
  for (const p of paths) t.false(f.stdout.includes(`${p}:`), `fsck names no path (${p})`);
});

// One entry whose inode record cannot be read must not hide the directory's healthy names from ls, tar and
// backups: readdir takes names, numbers and types from the directory itself, and readdirplus gives the damaged
// one as a name only (node id 0), whose lookup then fails.
test('a directory with one damaged child still lists every name; only the damaged one fails', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `mkdir ${q(box.mnt)}/d && cd ${q(box.mnt)}/d && echo a > a && echo b > b && echo c > c`);
  await unmountAndCheck(t, box);
  const b = (await inosOf(box.store, ['/d/b'])).get('/d/b') as number;
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).inode(b)));
  t.is((await box.mount()).code, 0);
  t.is(await ok(t, `cat ${q(box.mnt)}/d/a ${q(box.mnt)}/d/c`), 'a\nc\n', 'the healthy files read by name');
  const stat = await sh(`stat ${q(join(box.mnt, 'd/b'))}`);
  t.regex(stat.stderr, EIO, 'the damaged one is EIO');
  const ls = await sh(`ls ${q(join(box.mnt, 'd'))}`);
  t.is(ls.stdout, 'a\nb\nc\n', `ls lists every name: ${ls.stderr.trim()}`);
  await unmountAndCheck(t, box);
});

test('replayed rows (finding 1, 5.6): an inode, a directory and a piece blob put back as they were are EIO (stale), a deleted inode put back stays invisible; fsck reports each', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `cd ${q(box.mnt)} && echo secret > f && chmod 644 f && mkdir d && echo x > d/x && echo y > d/y && echo healthy > g && head -c 20000 /dev/urandom > h`);
  await unmountAndCheck(t, box);
  const inos = await inosOf(box.store, ['/f', '/d', '/d/y', '/g', '/h']);
  const ino = (p: string) => inos.get(p) as number;
  const { names, oldBlob } = await withVault2(box.store, (v) => {
    const n = recordNames2(v);
    return { names: { f: n.inode(ino('/f')), d: n.inode(ino('/d')), y: n.inode(ino('/d/y')) }, oldBlob: blobsOf2(v, '/h')[0] as string };
  });
  const old = { f: readRecord2(box.store, names.f), d: readRecord2(box.store, names.d), y: readRecord2(box.store, names.y) };
  const oldBlobBytes = readFileSync(join(box.store, 'blobs', oldBlob));

  t.is((await box.mount()).code, 0);
  randomFile(join(box.dir, 'new-h'), 20_000);
  await ok(t, `cd ${q(box.mnt)} && chmod 600 f && rm d/y && cp ${q(join(box.dir, 'new-h'))} h`);
  await unmountAndCheck(t, box);
  t.throws(() => readRecord2(box.store, names.y), undefined, 'the unlinked file\'s inode row is gone');
  const newBlob = await withVault2(box.store, (v) => blobsOf2(v, '/h')[0] as string);
  t.not(newBlob, oldBlob, 'the rewrite of h made a new piece version at a new address');

  changeRecord2(box.store, names.f, () => old.f); // the chmod 600 undone
  changeRecord2(box.store, names.d, () => old.d); // the unlink of d/y undone in d's entries
  insertRow2(box.store, names.y, old.y); // the deleted inode put back
  writeFileSync(join(box.store, 'blobs', newBlob), oldBlobBytes); // the old piece at the current address

  t.is((await box.mount()).code, 0);
  const pid = onlyServer(box);
  const st = await sh(`stat -c %a ${q(join(box.mnt, 'f'))}`);
  t.not(st.stdout.trim(), '644', 'the replayed mode is never shown');
  t.regex(st.stderr, EIO, `stat of the replayed inode: EIO (${st.stderr.trim()})`);
  await expectEio(t, box, 'f');
  const ls = await sh(`ls ${q(join(box.mnt, 'd'))}`);
  t.false(/\by\b/.test(ls.stdout), 'the unlinked name is not back');
  t.regex(ls.stderr, EIO, `ls of the replayed directory: EIO (${ls.stderr.trim()})`);
  await expectEio(t, box, 'h');
  t.is(await ok(t, `cat ${q(box.mnt)}/g`), 'healthy\n');
  t.true(alive(pid) && mountedAt(box.mnt), 'the server is still up');
  t.notRegex(serverLogs(box), /uncaught|unhandled/i);
  await unmountAndCheck(t, box, [pid]);

  const f = await box.svault(['fsck', '--store', box.store]);
  t.log(f.stdout);
  t.is(f.code, 7, f.stdout + f.stderr);
  t.regex(f.stdout, new RegExp(`stale-record: inode ${ino('/f')}\\b`), 'fsck: the replayed inode is stale');
  t.regex(f.stdout, new RegExp(`stale-record: inode ${ino('/d')}\\b`), 'fsck: the replayed directory is stale');
  t.regex(f.stdout, new RegExp(`bad-piece: inode ${ino('/h')}:`), 'fsck: the old piece at the current address is bad');
  t.regex(f.stdout, /1 unreachable metadata record\(s\)/, 'fsck: the deleted inode put back is unreachable');
  t.notRegex(f.stdout, namesInode(ino('/g')));
  t.notRegex(f.stdout, namesInode(ino('/d/y')), 'the deleted inode is not taken for a live one');
});

/**
 * After a crash, the mount sweeps orphaned blobs (Vault2.sweepOrphans) from a walk of the inode table. What the
 * sweep cannot list must not be taken for orphans: the files under a damaged directory (format 2 lists files
 * in its inode table, so they are still reached), the files under a damaged node of the inode table (the walk
 * is incomplete: nothing is swept), and a file whose own inode record is damaged (its pieces cannot be listed).
 */
const SWEEP_DAMAGE: { what: string; target: (n: ReturnType<typeof recordNames2>, ino: (p: string) => number) => Buffer }[] = [
  { what: 'the inode of their directory (its entries)', target: (n, ino) => n.inode(ino('/d')) },
  { what: 'the node of the inode table that holds them', target: (n) => n.mapNode(0, 0, 1) },
  { what: 'the inode record of one of them', target: (n, ino) => n.inode(ino('/d/f1')) },
];

for (const { what, target } of SWEEP_DAMAGE) {
  test(`after an unclean shutdown, the mount's orphan sweep deletes no piece of files it cannot list (damaged: ${what})`, async (t) => {
    const box = await mountedBox(t, ['--chaff', '0']);
    const shas = await populate(t, box, { top: 10_000 });
    // Inodes 1 to 493 are in the first node of the inode table (494 slots a node, 5.4): d and its files go in the second.
    await ok(t, `mkdir ${q(box.mnt)}/fill && cd ${q(box.mnt)}/fill && touch $(seq -f 'f%g' 1 500)`);
    await populate(t, box, { 'd/f1': 50_000, 'd/f2': 60_000, 'd/f3': 70_000 });
    await ok(t, `sync ${q(join(box.mnt, 'top'))}`); // an fsync: every change before it is durable
    const pid = onlyServer(box);
    process.kill(pid, 'SIGKILL'); // an unclean shutdown: the next mount sweeps orphaned blobs
    t.true(await waitFor(() => !alive(pid), 5000));
    const inos = await inosOf(box.store, ['/top', '/d', '/d/f1', '/d/f2', '/d/f3']);
    const ino = (p: string) => inos.get(p) as number;
    t.true(ino('/d') >= 494, `d is inode ${ino('/d')}, in the second node of the inode table`);
    await withVault2(box.store, (v) => flipRecord2(box.store, target(recordNames2(v), ino)));
    const before = [...blobFiles(box.store)].sort();
    const m = await box.mount();
    t.is(m.code, 0, m.stderr);
    const sweepLog = serverLogs(box).split('\n').filter((l) => /sweep|orphan/.test(l)).join('\n');
    t.log(sweepLog);
    t.regex(sweepLog, /did not shut down cleanly/, 'the mount saw the unclean shutdown and swept');
    t.deepEqual([...blobFiles(box.store)].sort(), before, 'the sweep deleted no blob: the files of /d are damaged only in their metadata');
    t.is(await sha(t, join(box.mnt, 'top')), shas.get('top') ?? '?', 'top still reads');
    const r = await sh(`cat ${q(join(box.mnt, 'd/f1'))} > /dev/null`);
    t.not(r.code, 0);
    t.regex(r.stderr, EIO, `d/f1 is EIO, not garbage (${r.stderr.trim()})`);
    await unmountAndCheck(t, box);
  });
}

test('after an unclean shutdown and a damaged directory, fsck --repair gives back every file of it, whole (the sweep kept their pieces)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, { 'd/f1': 50_000, 'd/f2': 60_000, 'd/f3': 70_000, top: 1000 });
  await ok(t, `sync ${q(join(box.mnt, 'top'))}`);
  const pid = onlyServer(box);
  process.kill(pid, 'SIGKILL');
  t.true(await waitFor(() => !alive(pid), 5000));
  const d = (await inosOf(box.store, ['/d'])).get('/d') as number;
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).inode(d)));
  const m = await box.mount();
  t.is(m.code, 0, m.stderr);
  await expectEio(t, box, 'd/f1');
  await unmountAndCheck(t, box);
  const repair = await box.svault(['fsck', '--store', box.store, '--repair']);
  t.log(repair.stdout + repair.stderr);
  t.is(repair.code, 8, 'repaired');
  t.is((await box.mount()).code, 0);
  // The directory is made again under its ino; its children come back as #<ino> in it (5.10).
  const back = (await ok(t, `cd ${q(box.mnt)}/d && sha256sum -- *`)).trim().split('\n').map((l) => l.split(' ')[0]).sort();
  t.deepEqual(back, ['d/f1', 'd/f2', 'd/f3'].map((n) => shas.get(n) ?? '?').sort(), 'every file of the damaged directory is back, byte for byte');
  t.is(await sha(t, join(box.mnt, 'top')), shas.get('top') ?? '?');
  await unmountAndCheck(t, box);
});

/** Damages meta2.db at the SQLite level (not through records): the header, or the b-tree pages. */
const SQLITE_DAMAGE: { what: string; damage: (db: Buffer) => void }[] = [
  { what: 'SQLite header overwritten', damage: (db) => db.write('NOT A DATABASE!!', 0) },
  {
    what: 'b-tree page headers destroyed',
    damage: (db) => {
      for (let p = 1; p * 4096 < db.length; p++) db[p * 4096] = 0xee; // page type byte of every page but the first
    },
  },
];

for (const { what, damage } of SQLITE_DAMAGE) {
  test(`meta2.db damaged at the SQLite level (${what}): mount and fsck give a clear store error, not exit 1/11 with a stack`, async (t) => {
    const box = await mountedBox(t, ['--chaff', '0']);
    await populate(t, box, { a: 1000, 'd/b': 20_000 });
    await unmountAndCheck(t, box);
    const dbPath = join(box.store, META2_FILE);
    const db = readFileSync(dbPath);
    damage(db);
    writeFileSync(dbPath, db);

    const m = await box.mount();
    t.false(mountedAt(box.mnt) && m.code !== 0, 'no half mount');
    if (m.code === 0) {
      // Mounting anyway is acceptable only if every access then fails cleanly and the server survives.
      const pid = onlyServer(box);
      const r = await sh(`ls -R ${q(box.mnt)}; cat ${q(box.mnt)}/a`);
      t.regex(r.stderr, EIO);
      t.true(alive(pid));
      await unmountAndCheck(t, box, [pid]);
    } else {
      t.is(m.code, 4, `mount: a damaged store is exit 4 (store problem): ${m.stderr}`);
      t.regex(m.stderr, /meta2\.db|metadata/i, 'the message names the metadata database');
      t.notRegex(m.stderr, /libfuse/, 'and does not blame libfuse');
      t.notRegex(m.stderr, STACK_TRACE);
    }
    for (const args of [['fsck', '--store', box.store], ['fsck', '--store', box.store, '--repair'], ['info', '--store', box.store]]) {
      const f = await box.svault(args);
      t.true([4, 7, 9].includes(f.code), `${args.join(' ')} of a damaged meta2.db exits 4, 7 or 9, not ${f.code}: ${f.stderr.slice(0, 500)}`);
      t.notRegex(f.stderr, STACK_TRACE, `${args[0]} prints no stack trace`);
      if (f.code === 4) t.regex(f.stderr, /meta2\.db|metadata/i, `${args[0]}: the message names the metadata database`);
    }
    t.false(mountedAt(box.mnt));
  });
}

test('meta2.db replaced by the metadata of another vault, or by a format-1 meta.db: refused with exit 4 (4.2), never written; restored, the store mounts', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await populate(t, box, { a: 1000, 'd/b': 20_000 });
  await unmountAndCheck(t, box);
  const other2 = join(box.dir, 'other2');
  const other1 = join(box.dir, 'other1');
  t.is((await box.svault(['init', '--store', other2, '--chaff', '0'])).code, 0);
  await (await Vault.create(other1, PASSPHRASE, { pieceSize: 131072, chaffRatio: 0 })).close(); // format 1: what an earlier svault made
  const dbPath = join(box.store, META2_FILE);
  const mine = readFileSync(dbPath);
  const cases: [string, string, RegExp][] = [
    ['the meta2.db of another vault', join(other2, META2_FILE), /state record is missing|metadata missing/],
    ['a format-1 meta.db', join(other1, 'meta.db'), /meta2\.db is not a format-2 metadata database/],
  ];
  for (const [what, from, message] of cases) {
    const planted = readFileSync(from);
    writeFileSync(dbPath, planted);
    for (const args of [['mount', '--store', box.store, box.mnt], ['fsck', '--store', box.store], ['fsck', '--repair', '--store', box.store], ['info', '--store', box.store]]) {
      const r = await box.svault(args);
      t.is(r.code, 4, `${what}: svault ${args.slice(0, 2).join(' ')}: ${r.stderr}`);
      t.regex(r.stderr, message, `${what}: svault ${args[0]}`);
      t.notRegex(r.stderr, STACK_TRACE);
      t.false(mountedAt(box.mnt));
    }
    t.true(readFileSync(dbPath).equals(planted), `${what}: no command wrote to it`);
  }
  writeFileSync(dbPath, mine);
  t.is((await box.mount()).code, 0);
  t.is(await ok(t, `cat ${q(box.mnt)}/a | wc -c`), '1000\n');
  await unmountAndCheck(t, box);
});

test('random byte flips inside meta2.db pages: no crash; every outcome is a clear error, EIO or an fsck report', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`d${i % 3}/f${i}`, 100 + i * 997])));
  await unmountAndCheck(t, box);
  const pristine = readFileSync(join(box.store, META2_FILE));
  const outcomes: string[] = [];
  for (const seed of [SEED, SEED + 1]) {
    const rnd = prng(seed);
    const db = Buffer.from(pristine);
    const pages = db.length / 4096;
    for (let k = 0; k < 6; k++) {
      const at = 4096 * (1 + Math.floor(rnd() * (pages - 1))) + Math.floor(rnd() * 4096);
      db[at] = (db[at] as number) ^ (1 << Math.floor(rnd() * 8));
    }
    writeFileSync(join(box.store, META2_FILE), db);
    const f = await box.svault(['fsck', '--store', box.store]);
    t.true([0, 4, 7].includes(f.code), `seed ${seed}: fsck exits 0, 4 or 7, not ${f.code}: ${f.stderr.slice(0, 400)}`);
    t.notRegex(f.stderr, STACK_TRACE, `seed ${seed}: no stack trace from fsck`);
    const m = await box.mount();
    let outcome = `seed ${seed}: fsck ${f.code}, mount ${m.code}`;
    if (m.code === 0) {
      const pid = onlyServer(box);
      const r = await sh(`cd ${q(box.mnt)} && find . -type f -exec sha256sum {} + 2>&1`);
      const bad = r.stdout.split('\n').filter((l) => /error|No such/.test(l));
      for (const line of r.stdout.split('\n')) {
        const m2 = /^([0-9a-f]{64}) {2}\.\/(.+)$/.exec(line);
        if (m2) t.is(m2[1], shas.get(m2[2] as string) ?? '?', `seed ${seed}: ${m2[2]} reads right or not at all`);
      }
      t.notRegex(r.stdout, /Transport endpoint/, `seed ${seed}: the server did not die`);
      t.true(alive(pid), `seed ${seed}: the server survived`);
      outcome += `, ${bad.length} access errors through the mount`;
      await unmountAndCheck(t, box, [pid]);
    } else {
      t.is(m.code, 4, `seed ${seed}: a refused mount is exit 4: ${m.stderr}`);
      t.notRegex(m.stderr, STACK_TRACE);
    }
    outcomes.push(outcome);
  }
  t.log(outcomes.join('\n'));
});

test('a damaged or forged rollback anchor refuses the store (exit 4) instead of being ignored, even with --accept-rollback; one torn slot is tolerated (security finding 12, 5.7)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `echo kept > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const path = anchorPath(box);
  const good = readFileSync(path);
  t.is(good.length, 192, 'the mount left a rollback anchor of two 96-byte slots');
  const storeBefore = snapshot(box.store);
  const flip = (b: Buffer, at: number) => {
    b[at] = (b[at] as number) ^ 1;
    return b;
  };
  const cases: [string, () => void][] = [
    ['not an anchor (garbage)', () => writeFileSync(path, 'garbage')],
    ['empty', () => writeFileSync(path, '')],
    ['cut to one slot', () => writeFileSync(path, good.subarray(0, 96))],
    ['both MACs off by one bit', () => writeFileSync(path, flip(flip(Buffer.from(good), 64), 96 + 64))],
    [
      'a forged commit 0 in both slots (MACs kept)',
      () => {
        const b = Buffer.from(good);
        b.fill(0, 8, 16);
        b.fill(0, 96 + 8, 96 + 16);
        writeFileSync(path, b);
      },
    ],
    [
      'a directory',
      () => {
        rmSync(path);
        mkdirSync(path);
      },
    ],
    [
      'a symbolic link to a good copy',
      () => {
        writeFileSync(`${path}.copy`, good);
        rmSync(path);
        symlinkSync(`${path}.copy`, path);
      },
    ],
  ];
  for (const [what, damage] of cases) {
    rmSync(path, { recursive: true, force: true });
    writeFileSync(path, good);
    damage();
    const planted = snapshot(join(path, '..'));
    for (const extra of [[], ['--accept-rollback']]) {
      const m = await box.mount(extra);
      t.is(m.code, 4, `${what} ${extra.join(' ')}: ${m.stderr}`);
      t.regex(m.stderr, /rollback anchor .*\.v2 is damaged/, what);
      t.regex(m.stderr, /--reset-anchor/, `${what}: the message says how to accept the store`);
      t.notRegex(m.stderr, STACK_TRACE);
      t.false(mountedAt(box.mnt));
    }
    const f = await box.svault(['fsck', '--store', box.store]);
    t.is(f.code, 4, `${what}: fsck: ${f.stderr}`);
    t.regex(f.stderr, /rollback anchor/);
    t.deepEqual(snapshot(join(path, '..')), planted, `${what}: the refused commands left the anchor as they found it (fail closed)`);
  }
  t.deepEqual(snapshot(box.store), storeBefore, 'no refused command changed the store');

  // One torn slot: the other still holds the commit (5.7), and the store mounts.
  for (const slot of [0, 1]) {
    rmSync(path, { recursive: true, force: true });
    rmSync(`${path}.copy`, { force: true });
    writeFileSync(path, flip(Buffer.from(good), slot * 96 + 70));
    const m = await box.mount();
    t.is(m.code, 0, `slot ${slot} torn: ${m.stderr}`);
    t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'kept\n');
    await unmountAndCheck(t, box);
  }
  // No anchor at all: a machine that has not seen the vault (5.7): accepted, and the anchor is made.
  rmSync(path);
  t.is((await box.mount()).code, 0);
  await unmountAndCheck(t, box);
  t.is(statSync(path).size, 192, 'a missing anchor is created');
});

// 5.7's message for a damaged anchor says "run again with --reset-anchor", and section 16 asks that
// `--reset-anchor` accept the store (--accept-rollback does not get past a damaged anchor: it fails closed).
test('a damaged rollback anchor: svault mount --reset-anchor accepts the store and records it anew (5.7, section 16)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `echo kept > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const path = anchorPath(box);
  writeFileSync(path, 'garbage');
  const a = await box.mount(['--reset-anchor']);
  t.is(a.code, 0, a.stderr);
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'kept\n');
  await unmountAndCheck(t, box);
  t.is(statSync(path).size, 192, 'the anchor is written anew');
  t.is((await box.mount()).code, 0, 'the anchor written anew is accepted');
  await unmountAndCheck(t, box);
});

test('a store replaced by an older copy of itself: mount refused with exit 4 (rollback); --accept-rollback mounts it', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `echo version1 > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const backup = join(box.dir, 'backup');
  await ok(t, `cp -a ${q(box.store)} ${q(backup)}`);
  t.is((await box.mount()).code, 0);
  await ok(t, `echo version2 > ${q(box.mnt)}/f && echo new > ${q(box.mnt)}/g`);
  await unmountAndCheck(t, box);
  rmSync(box.store, { recursive: true });
  await ok(t, `cp -a ${q(backup)} ${q(box.store)}`);

  const m = await box.mount();
  t.is(m.code, 4, m.stderr);
  t.regex(m.stderr, /rollback/);
  t.regex(m.stderr, /--accept-rollback/, 'the message says how to accept it');
  t.notRegex(m.stderr, STACK_TRACE);
  t.false(mountedAt(box.mnt));
  const f = await box.svault(['fsck', '--store', box.store]);
  t.is(f.code, 4, `fsck refuses the rolled-back store too: ${f.stderr}`);
  t.regex(f.stderr, /rollback/);

  const a = await box.mount(['--accept-rollback']);
  t.is(a.code, 0, a.stderr);
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'version1\n', 'the older copy is what is mounted');
  t.is((await sh(`cat ${q(box.mnt)}/g`)).code, 1, 'g did not exist then');
  await ok(t, `echo version3 > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const again = await box.mount();
  t.is(again.code, 0, `after accepting, the store mounts normally: ${again.stderr}`);
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'version3\n');
  await unmountAndCheck(t, box);
});

test('the newest state record spliced into an older copy of the store (finding 1, 5.6): the anchor does not see it, the version tree does (stale), and nothing old is served', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `cd ${q(box.mnt)} && echo version1 > f && mkdir d && echo one > d/x`);
  await unmountAndCheck(t, box);
  const backup = join(box.dir, 'backup');
  await ok(t, `cp -a ${q(box.store)} ${q(backup)}`);
  t.is((await box.mount()).code, 0);
  await ok(t, `cd ${q(box.mnt)} && echo version2 > f && echo two > d/x && echo new > g`);
  await unmountAndCheck(t, box);
  const stateName = await withVault2(box.store, (v) => recordNames2(v).state());
  const newestState = readRecord2(box.store, stateName);
  rmSync(box.store, { recursive: true });
  await ok(t, `cp -a ${q(backup)} ${q(box.store)}`);
  changeRecord2(box.store, stateName, () => newestState);

  const m = await box.mount();
  t.notRegex(m.stderr, STACK_TRACE);
  if (m.code === 0) {
    // Mounted (the root path happened to verify): every older record is refused at first use.
    const pid = onlyServer(box);
    for (const n of ['f', 'd/x']) {
      const r = await sh(`cat ${q(join(box.mnt, n))}`);
      t.false(/version1|one/.test(r.stdout), `${n}: the older content is never served`);
      t.regex(r.stderr, EIO, `${n}: ${r.stderr.trim()}`);
    }
    t.true(alive(pid));
    await unmountAndCheck(t, box, [pid]);
  } else {
    t.is(m.code, 4, `mount: a store whose records are older than its state record is refused with exit 4: ${m.stderr}`);
    t.regex(m.stderr, /stale|damaged/, m.stderr);
    t.false(mountedAt(box.mnt));
  }
  const f = await box.svault(['fsck', '--store', box.store]);
  t.log(`mount: exit ${m.code} ${m.stderr.trim()}\nfsck: exit ${f.code}\n${f.stdout}${f.stderr}`);
  t.true(f.code === 4 || f.code === 7, `fsck: ${f.code}`);
  t.notRegex(f.stderr, STACK_TRACE);
  t.regex(f.stdout + f.stderr, /stale/, 'the replay is reported as stale records');
});

test('a blob replaced by a directory or a FIFO: its read fails (EIO) without freezing the server', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, { a: 5000, b: 5000, c: 5000 });
  await unmountAndCheck(t, box);
  const [blobA, blobB] = await withVault2(box.store, (v) => [blobsOf2(v, '/a')[0] as string, blobsOf2(v, '/b')[0] as string]);
  const pathA = join(box.store, 'blobs', blobA);
  const fifo = join(box.store, 'blobs', blobB);
  unlinkSync(pathA);
  mkdirSync(pathA);
  unlinkSync(fifo);
  await ok(t, `mkfifo ${q(fifo)}`);
  // A reader blocked on the FIFO is released by opening it for writing; each read request of the file
  // opens the FIFO again, so keep feeding it until the reader is gone (also at teardown, whatever happens).
  let catDone = true;
  const release = async () => {
    for (let i = 0; i < 30 && !catDone; i++) await sh(`timeout 2 sh -c 'echo x > ${fifo}' || true`);
  };
  t.teardown(async () => {
    if (!catDone) await release();
  });

  t.is((await box.mount()).code, 0);
  const pid = onlyServer(box);
  await expectEio(t, box, 'a');
  t.true(alive(pid));

  catDone = false;
  const cat = spawn('cat', [join(box.mnt, 'b')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  cat.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const catExit = new Promise<number | null>((r) => cat.on('close', (code) => r(code))).finally(() => (catDone = true));
  await sleep(1000);
  // A frozen server answers nothing, not even stat of a healthy file: time one while the read is pending.
  const statStart = Date.now();
  const statP = sh(`stat -c %s ${q(join(box.mnt, 'c'))}`).then((r) => ({ ...r, ms: Date.now() - statStart }));
  let hung = false;
  // A blocked read never ends before a writer comes, so a long deadline still tells it apart, and a loaded
  // machine (the CI dry run, every suite at once) once took 13 s to answer even the healthy stat below.
  const watchdog = setTimeout(() => {
    hung = true;
    void release();
  }, 30_000);
  const [code, other] = await Promise.all([catExit, statP]);
  clearTimeout(watchdog);
  t.log(`read of the FIFO-backed file: ${hung ? 'blocked until a writer fed the FIFO' : 'ended by itself'}; stat of a healthy file meanwhile took ${other.ms} ms`);
  t.false(hung, 'reading a file whose blob is a FIFO must fail within 30 s, not block the server (released by a writer after 30 s)');
  t.true(other.ms < 20_000, `while that read is pending, the server still answers others (stat took ${other.ms} ms)`);
  t.not(code, 0);
  t.regex(stderr, EIO, `cat of the FIFO-backed file: ${stderr.trim()}`);
  t.is(await sha(t, join(box.mnt, 'c')), shas.get('c') ?? '?');
  t.true(alive(pid), 'the server survived');
  await unmountAndCheck(t, box, [pid]);
});

// A FIFO opened for reading blocks until a writer comes: a hang is a command killed at the deadline. 30 s,
// because the layout and the marker are read after scrypt, which takes seconds on a loaded machine.
test('svault.json, svault.layout.json or svault.store replaced by a FIFO: svault info fails within 30 s instead of hanging', async (t) => {
  const box = emptyBox(t, 'fifo');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  for (const name of ['svault.json', LAYOUT_FILE, STORE_MARKER_FILE]) {
    const file = join(box.store, name);
    renameSync(file, `${file}.saved`);
    await ok(t, `mkfifo ${q(file)}`);
    const r = await svaultTimed(box, ['info', '--store', box.store], 30_000);
    t.false(r.hung, `svault info on a store whose ${name} is a FIFO hung for ${r.elapsedMs} ms (killed)`);
    t.is(r.code, 4, `${name}: ${r.stderr}`);
    t.regex(r.stderr, name === STORE_MARKER_FILE ? /belongs to another vault or was damaged/ : new RegExp(`${name.replace(/\./g, '\\.')} should be a regular file but is a FIFO`));
    t.notRegex(r.stderr, STACK_TRACE);
    rmSync(file);
    renameSync(`${file}.saved`, file);
  }
  t.is((await box.svault(['info', '--store', box.store])).code, 0);
});

// Security finding 2 (issue 22): links planted in the store must never make svault read or write outside
// it. Each case plants a link (or a FIFO) where svault keeps one of its files, runs the commands that
// touch that file, and checks both the answer (a clear refusal, or EIO) and that nothing outside changed.

/** A vault with one file of 3 pieces, unmounted; returns the box and the file's blob paths. */
async function storeWithFile(t: ExecutionContext, name: string): Promise<{ box: Sandbox; blobs: string[] }> {
  const box = emptyBox(t, name);
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  t.is((await box.mount()).code, 0);
  randomFile(join(box.dir, 'data'), 3 * 128 * 1024);
  await ok(t, `cp ${q(join(box.dir, 'data'))} ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const blobs = await withVault2(box.store, (v) => blobsOf2(v, '/f'));
  t.is(blobs.length, 3);
  return { box, blobs };
}

/** A file outside the store that a followed link would truncate or overwrite. */
function victim(box: Sandbox, name: string): { path: string; intact: () => boolean } {
  const path = join(box.dir, name);
  writeFileSync(path, 'precious\n');
  return { path, intact: () => readFileSync(path, 'utf8') === 'precious\n' };
}

test('finding 2: links at svault.unclean, svault.reserve and svault.lock are never written through', async (t) => {
  const { box } = await storeWithFile(t, 'links-ctl');
  const unclean = victim(box, 'victim-unclean');
  const lock = victim(box, 'victim-lock');
  const notCreated = join(box.dir, 'created-through-reserve');
  rmSync(join(box.store, 'svault.reserve'), { force: true });
  await ok(t, `ln -s ${q(notCreated)} ${q(join(box.store, 'svault.reserve'))}`); // dangling: a create would follow it
  await ok(t, `ln -s ${q(unclean.path)} ${q(join(box.store, 'svault.unclean'))}`);
  // A plain fsck opens the store inspect-only, finds the unclean mark and leaves it for the next sweep.
  const f = await box.svault(['fsck', '--store', box.store]);
  t.notRegex(f.stderr, STACK_TRACE);
  t.true(unclean.intact(), 'svault.unclean was written through its link');
  t.false(statSyncOrNull(notCreated), 'svault.reserve was created through its link');
  const m = await box.mount();
  t.is(m.code, 0, m.stderr);
  await unmountAndCheck(t, box);
  t.true(unclean.intact());
  t.false(statSyncOrNull(notCreated));
  await ok(t, `ln -s ${q(lock.path)} ${q(join(box.store, 'svault.lock'))}`);
  const locked = await box.mount();
  t.is(locked.code, 4, locked.stderr);
  t.regex(locked.stderr, /svault\.lock is not a regular file/);
  t.false(mountedAt(box.mnt));
  t.true(lock.intact(), 'svault.lock was written through its link');
});

test('finding 2: svault.json, svault.layout.json, svault.store, meta2.db and blobs/ as links, and links, FIFOs and devices at meta2.db-wal and -shm, are refused with exit 4', async (t) => {
  const { box } = await storeWithFile(t, 'links-files');
  const outside = join(box.dir, 'outside');
  mkdirSync(outside);
  const cases: [string, string, RegExp][] = [
    ['svault.json', 'info', /svault\.json should be a regular file but is a symbolic link/],
    [LAYOUT_FILE, 'mount', /svault\.layout\.json should be a regular file but is a symbolic link/],
    [LAYOUT_FILE, 'info', /svault\.layout\.json should be a regular file but is a symbolic link/],
    // The marker is read as this vault's or not (10.3): a link in its place is not this vault's marker.
    [STORE_MARKER_FILE, 'mount', /belongs to another vault or was damaged/],
    [META2_FILE, 'mount', /meta2\.db is a symbolic link, not a regular file/],
    [META2_FILE, 'info', /meta2\.db is a symbolic link, not a regular file/],
    ['blobs', 'mount', /blobs should be a directory but is a symbolic link/],
  ];
  for (const [name, command, message] of cases) {
    const inStore = join(box.store, name);
    const moved = join(outside, name);
    renameSync(inStore, moved);
    await ok(t, `ln -s ${q(moved)} ${q(inStore)}`);
    const outsideBefore = snapshot(outside);
    const r = command === 'info' ? await box.svault(['info', '--store', box.store]) : await box.mount();
    t.is(r.code, 4, `${name} (${command}): ${r.stderr}`);
    t.regex(r.stderr, message, `${name} (${command})`);
    t.notRegex(r.stderr, STACK_TRACE);
    t.false(mountedAt(box.mnt));
    t.deepEqual(snapshot(outside), outsideBefore, `${name} (${command}): nothing outside the store was written`);
    rmSync(inStore);
    renameSync(moved, inStore);
  }
  // SQLite opens -wal and -shm by path and would follow a link (creating or writing the file it leads to):
  // svault checks them before and after SQLite's open (section 2).
  const walVictim = victim(box, 'victim-wal');
  const kinds: [string, string, string][] = [
    ['a FIFO', 'mkfifo', 'a FIFO'],
    ['a link to a file outside', `ln -s ${q(walVictim.path)}`, 'a symbolic link'],
    ['a dangling link', `ln -s ${q(join(outside, 'created-through-link'))}`, 'a symbolic link'],
    ['a character device', 'mknod -m 600', 'a character device'],
  ];
  for (const suffix of ['-wal', '-shm']) {
    const path = join(box.store, `${META2_FILE}${suffix}`);
    for (const [what, plant, shown] of kinds) {
      rmSync(path, { force: true });
      await ok(t, plant === 'mknod -m 600' ? `mknod -m 600 ${q(path)} c 1 3` : `${plant} ${q(path)}`);
      for (const args of [['mount', '--store', box.store, box.mnt], ['fsck', '--store', box.store]]) {
        const r = await svaultTimed(box, args, 30_000);
        t.false(r.hung, `${what} at meta2.db${suffix} froze svault ${args[0]}`);
        t.is(r.code, 4, `${what} at meta2.db${suffix}: ${args[0]}: ${r.stderr}`);
        t.regex(r.stderr, new RegExp(`meta2\\.db${suffix} is ${shown}, not a regular file`));
        t.notRegex(r.stderr, STACK_TRACE);
        t.false(mountedAt(box.mnt));
      }
      t.true(walVictim.intact(), `${what} at meta2.db${suffix}: the file outside was not written through the link`);
      t.false(statSyncOrNull(join(outside, 'created-through-link')), `${what} at meta2.db${suffix}: nothing was created through the link`);
    }
    rmSync(path);
  }
  t.is((await box.mount()).code, 0, 'with the links gone, the store mounts');
  t.is(await sha(t, join(box.mnt, 'f')), sha256(readFileSync(join(box.dir, 'data'))));
  await unmountAndCheck(t, box);
});

test('finding 2: a blob or a shard directory replaced by a link is EIO, even when the link leads to the right bytes; fsck --repair removes only the link', async (t) => {
  const { box, blobs } = await storeWithFile(t, 'links-blobs');
  const ino = (await inosOf(box.store, ['/f'])).get('/f') as number;
  const outside = join(box.dir, 'outside');
  mkdirSync(outside);
  // A blob moved out and linked back: following the link would read exactly the right bytes.
  const [first, second] = blobs as [string, string];
  const blobPathInStore = join(box.store, 'blobs', first);
  const movedBlob = join(outside, 'blob');
  renameSync(blobPathInStore, movedBlob);
  await ok(t, `ln -s ${q(movedBlob)} ${q(blobPathInStore)}`);
  // Another piece's shard moved out and linked back (a different shard, when the two differ).
  const shard = second.slice(0, 2);
  const linkedShard = shard !== first.slice(0, 2);
  if (linkedShard) {
    const shardInStore = join(box.store, 'blobs', shard);
    renameSync(shardInStore, join(outside, 'shard'));
    await ok(t, `ln -s ${q(join(outside, 'shard'))} ${q(shardInStore)}`);
  }
  const outsideBefore = snapshot(outside);
  const m = await box.mount();
  t.is(m.code, 0, m.stderr);
  await expectEio(t, box, 'f');
  await ok(t, `head -c 100000 /dev/urandom > ${q(box.mnt)}/g`);
  await unmountAndCheck(t, box);
  t.deepEqual(snapshot(outside), outsideBefore, 'nothing was written outside the store');
  const f = await box.svault(['fsck', '--store', box.store]);
  t.log(f.stdout);
  t.not(f.code, 0, 'fsck reports the links');
  t.regex(f.stdout, new RegExp(`bad-piece: inode ${ino}, piece 0 \\(version \\d+\\): blob ${first} is not a blob: .* is a symbolic link`), 'fsck names the linked blob, and the inode of its file');
  if (linkedShard) t.regex(f.stdout, new RegExp(`bad-piece: inode ${ino}, piece 1 \\(version \\d+\\): .*${shard} should be a directory but is a symbolic link`), 'fsck names the linked shard');
  const repaired = await box.svault(['fsck', '--repair', '--store', box.store]);
  t.notRegex(repaired.stderr, STACK_TRACE);
  t.throws(() => lstatSync(blobPathInStore), undefined, 'repair removed the link at the blob\'s name');
  t.true(statSyncOrNull(movedBlob), 'the file the link pointed to was not removed');
  t.deepEqual(snapshot(outside), outsideBefore, 'repair removed the links, not what they point to');
});

function statSyncOrNull(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

// Security finding 11: the server's log lives outside the encrypted store, so by default it names a file
// by its inode number, never by its name; --log-names adds paths for whoever wants them.
for (const binding of ['devfuse', 'fuse-native'] as const) {
  test(`finding 11 (${binding}): an EIO is logged with the file's inode number, not its name; --log-names adds its path`, async (t) => {
    const box = emptyBox(t, `lognames-${binding}`, { binding });
    t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
    t.is((await box.mount()).code, 0);
    randomFile(join(box.dir, 'data'), 3 * 128 * 1024);
    await ok(t, `mkdir ${q(box.mnt)}/private-dir && cp ${q(join(box.dir, 'data'))} ${q(box.mnt)}/private-dir/secret-plans.txt`);
    await unmountAndCheck(t, box);
    const { blob, ino } = await withVault2(box.store, (v) => ({ blob: blobsOf2(v, '/private-dir/secret-plans.txt')[0] as string, ino: v.paths.idAt('/private-dir/secret-plans.txt') }));
    const path = join(box.store, 'blobs', blob);
    const bytes = readFileSync(path);
    bytes[200] = (bytes[200] as number) ^ 0x40;
    writeFileSync(path, bytes);

    t.is((await box.mount()).code, 0);
    await expectEio(t, box, 'private-dir/secret-plans.txt');
    await unmountAndCheck(t, box);
    const quiet = serverLogs(box);
    t.log(quiet.split('\n').filter((l) => /piece 0/.test(l)).join('\n'));
    t.regex(quiet, binding === 'devfuse' ? new RegExp(`read \\(node ${ino}\\): .*piece 0`) : new RegExp(`read ino ${ino}: .*piece 0`), 'the EIO is logged, with the inode number');
    t.false(quiet.includes('secret-plans') || quiet.includes('private-dir'), 'no name in the log');

    t.is((await box.mount(['--log-names'])).code, 0);
    await expectEio(t, box, 'private-dir/secret-plans.txt');
    await unmountAndCheck(t, box);
    t.true(serverLogs(box).includes('/private-dir/secret-plans.txt'), 'with --log-names the path is logged');
  });
}
