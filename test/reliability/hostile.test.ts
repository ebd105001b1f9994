// Issue 7, item 4: a damaged or hostile store. Random bit flips, truncations and deletions of blobs,
// blobs from another vault, a tampered config, tampered metadata (sealed rows and raw SQLite pages),
// special files in place of blobs or config, and a store replaced by an older copy of itself. Each must be
// detected and reported clearly — EIO through the mount, fsck naming the damaged path, or a clear CLI
// error with a documented exit code (never exit 1 with a stack trace) — and the server must never crash
// or freeze: after an EIO it stays up and healthy files keep reading.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { META_FILE } from '../../src/core/meta/record-store.js';
import { Vault } from '../../src/core/vault/vault.js';
import { mountedAt, PASSPHRASE, sh, type Sandbox } from '../helpers/cli.js';
import { alive, emptyBox, mountedBox, ok, q, randomFile, sha, sleep, unmountAndCheck, waitFor } from '../helpers/mount-util.js';
import {
  blobFiles,
  blobsOf,
  changeRecord,
  checkNothingLeftMountedAtAll,
  deleteRecord,
  flipRecord,
  onlyServer,
  prng,
  serverLogs,
  sha256,
  STACK_TRACE,
  svaultTimed,
  withVault,
} from '../helpers/reliability-util.js';

checkNothingLeftMountedAtAll(test);

const EIO = /Input\/output error/;
const SEED = Number(process.env.SVAULT_SEED ?? Date.now() % 1_000_000);

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

test('random bit flips, truncations and deletions of blobs, and blobs from another vault: EIO, server stays up, fsck names each file', async (t) => {
  t.log(`seed ${SEED} (SVAULT_SEED=${SEED} reproduces)`);
  const rnd = prng(SEED);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const box = await mountedBox(t, ['--chaff', '0', '--piece-size', '16384']);
  const pid = onlyServer(box);
  const names = Array.from({ length: 13 }, (_, i) => `file${i}`);
  const sizes = Object.fromEntries(names.map((n) => [n, 1 + Math.floor(rnd() * 80_000)]));
  const shas = await populate(t, box, sizes);
  await unmountAndCheck(t, box, [pid]);

  // Another vault (same passphrase, its own keys), made by the same code.
  const otherStore = join(box.dir, 'other-store');
  const other = await Vault.create(otherStore, PASSPHRASE, { pieceSize: 16384, chaffRatio: 0 });
  await other.writeFile('/theirs', randomFile(join(box.dir, 'theirs'), 40_000));
  const theirBlobs = blobsOf(other, '/theirs');
  await other.close();

  const blobs = await withVault(box.store, (v) => new Map(names.map((n) => [n, blobsOf(v, `/${n}`)])));
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
  t.log([...damage].map(([n, d]) => `${n}: ${d}`).join('; '));

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
  for (const n of damage.keys()) t.regex(f.stdout, new RegExp(`(bad|missing)-piece: /${n}:`), `fsck names /${n}`);
  for (const n of healthy) t.notRegex(f.stdout, new RegExp(`/${n}:`), `fsck does not name healthy /${n}`);
  t.regex(f.stdout, /2 orphaned blob\(s\)/, 'the two foreign blobs at paths of their own are orphans');
});

/** The config mutations an attacker (or bit rot) might make, with the exit code and message expected. */
const CONFIG_CASES: { what: string; change: (c: Record<string, unknown>, text: string) => string | Buffer; code: number; message: RegExp }[] = [
  { what: 'half of it cut off', change: (_c, s) => s.slice(0, s.length >> 1), code: 4, message: /not valid JSON/ },
  { what: 'empty', change: () => '', code: 4, message: /not valid JSON/ },
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
  // A format-1 store whose config says format 2: format 2's layout is not there.
  { what: 'format 2', change: (c) => JSON.stringify({ ...c, format: 2 }), code: 4, message: /format 2, but svault\.layout\.json is missing/ },
  { what: 'format 3', change: (c) => JSON.stringify({ ...c, format: 3 }), code: 4, message: /unsupported format 3/ },
  { what: 'cipher changed', change: (c) => JSON.stringify({ ...c, cipher: 'none' }), code: 4, message: /unsupported cipher/ },
  { what: 'field added', change: (c) => JSON.stringify({ ...c, backdoor: true }), code: 4, message: /unknown field/ },
  { what: 'wrapped key removed', change: (c) => JSON.stringify({ ...c, wrappedKey: undefined }), code: 4, message: /wrappedKey/ },
];

test('a tampered config is refused by mount, fsck and info with exit 3 or 4 and a clear message; restored, it works', async (t) => {
  const box = emptyBox(t, 'cfg');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  t.is((await box.mount()).code, 0);
  await ok(t, `echo precious > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const cfgPath = join(box.store, 'svault.json');
  const original = readFileSync(cfgPath, 'utf8');
  const cfg = JSON.parse(original) as Record<string, unknown>;
  const storeFiles = () => blobFiles(box.store).size;
  const blobsBefore = storeFiles();
  const metaBefore = readFileSync(join(box.store, META_FILE));

  for (const c of CONFIG_CASES) {
    writeFileSync(cfgPath, c.change(cfg, original));
    const cmds = c.what === 'salt changed' || c.what === 'empty' ? [['mount', '--store', box.store, box.mnt], ['fsck', '--store', box.store, '--repair'], ['info', '--store', box.store]] : [['mount', '--store', box.store, box.mnt]];
    for (const args of cmds) {
      const r = await box.svault(args);
      t.is(r.code, c.code, `${c.what}: svault ${args[0]}: ${r.stderr}`);
      t.regex(r.stderr, c.message, `${c.what}: svault ${args[0]}`);
      t.notRegex(r.stderr, STACK_TRACE, `${c.what}: no stack trace`);
      t.false(mountedAt(box.mnt), `${c.what}: nothing mounted`);
    }
  }
  // Missing, or a directory instead of a file.
  rmSync(cfgPath);
  const missing = await box.mount();
  t.is(missing.code, 4, missing.stderr);
  t.regex(missing.stderr, /no vault here|svault\.json is missing|no vault in/);
  mkdirSync(cfgPath);
  const dir = await box.mount();
  t.is(dir.code, 4, dir.stderr);
  t.notRegex(dir.stderr, STACK_TRACE);
  rmSync(cfgPath, { recursive: true });

  writeFileSync(cfgPath, original);
  t.is(storeFiles(), blobsBefore, 'no refused command wrote or removed a blob');
  t.true(readFileSync(join(box.store, META_FILE)).equals(metaBefore), 'no refused command changed the metadata');
  t.is((await box.mount()).code, 0, 'the restored config mounts');
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'precious\n');
  await unmountAndCheck(t, box);
});

test('the config of another vault (same passphrase) put in the store: refused clearly, and fsck --repair destroys nothing', async (t) => {
  const box = emptyBox(t, 'cfgswap');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  t.is((await box.mount()).code, 0);
  await ok(t, `echo precious > ${q(box.mnt)}/f && mkdir ${q(box.mnt)}/d && echo more > ${q(box.mnt)}/d/g`);
  await unmountAndCheck(t, box);
  const otherStore = join(box.dir, 'other-store');
  t.is((await box.svault(['init', '--store', otherStore, '--chaff', '0'])).code, 0);
  const cfgPath = join(box.store, 'svault.json');
  const mine = readFileSync(cfgPath);
  const blobsBefore = [...blobFiles(box.store)].sort();
  copyFileSync(join(otherStore, 'svault.json'), cfgPath);

  const repair = await box.svault(['fsck', '--store', box.store, '--repair']);
  t.log(`fsck --repair with the foreign config: exit ${repair.code}\n${repair.stdout}${repair.stderr}`);
  t.deepEqual([...blobFiles(box.store)].sort(), blobsBefore, 'fsck --repair under a foreign config must not delete the store\'s blobs');
  t.not(repair.code, 8, 'and must not claim to have repaired the vault');

  const m = await box.mount();
  t.true(m.code === 3 || m.code === 4, `mount with the config of another vault must be refused (3 or 4), got ${m.code}: ${m.stderr}`);
  t.false(mountedAt(box.mnt));
  if (mountedAt(box.mnt)) await box.unmount();

  writeFileSync(cfgPath, mine);
  t.is((await box.mount()).code, 0);
  t.is(await ok(t, `cat ${q(box.mnt)}/f ${q(box.mnt)}/d/g`), 'precious\nmore\n', 'the vault is intact once its own config is back');
  await unmountAndCheck(t, box);
});

test('tampered metadata records: EIO through the mount, the server stays up, healthy files read, fsck names every path', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, {
    'c': 30_000, 'd/a': 5000, 'd/b': 6000, 'p/inside1': 100, 'p/inside2': 200, 'e/x': 70_000, 'h1': 200_000, 'd/h2': 1000, 'q/h3': 10,
  });
  await unmountAndCheck(t, box);
  await withVault(box.store, (v) => {
    const r = v.check().meta;
    flipRecord(box.store, r.inodeRecordName(v.inodeAt('/c').id));
    flipRecord(box.store, r.entryRecordName(v.inodeAt('/d').id, 'a'));
    flipRecord(box.store, r.pageRecordName(v.inodeAt('/p').id, 0));
    // A sealed BLOB replaced by a TEXT value: SQLite does not stop that (the column is not STRICT).
    changeRecord(box.store, r.inodeRecordName(v.inodeAt('/e/x').id), () => 'x'.repeat(200));
    deleteRecord(box.store, r.entryRecordName(v.inodeAt('/d').id, 'b'));
  });

  t.is((await box.mount()).code, 0);
  const pid = onlyServer(box);
  for (const n of ['c', 'd/a', 'e/x']) {
    await expectEio(t, box, n);
    t.true(alive(pid), `server up after ${n}`);
    t.is(await sha(t, join(box.mnt, 'h1')), shas.get('h1') ?? '?', `a healthy file reads after the EIO of ${n}`);
  }
  const st = await sh(`stat ${q(join(box.mnt, 'c'))}`);
  t.regex(st.stderr, EIO, 'stat of a file whose inode record is damaged: EIO');
  const ls = await sh(`ls ${q(join(box.mnt, 'p'))}`);
  t.not(ls.code, 0);
  t.regex(ls.stderr, EIO, `ls of a directory whose listing page is damaged: EIO (${ls.stderr.trim()})`);
  // Files in that directory are still found by name (lookups do not read the listing).
  t.is(await sha(t, join(box.mnt, 'p/inside1')), shas.get('p/inside1') ?? '?');
  const gone = await sh(`cat ${q(join(box.mnt, 'd/b'))}`);
  t.not(gone.code, 0, 'a file whose entry record was deleted cannot be opened');
  t.log(`reading d/b (entry record deleted, still in the listing page): ${gone.stderr.trim()}`);
  for (const n of ['h1', 'd/h2', 'q/h3']) t.is(await sha(t, join(box.mnt, n)), shas.get(n) ?? '?', `healthy ${n}`);
  t.true(alive(pid) && mountedAt(box.mnt), 'the server is still up');
  t.notRegex(serverLogs(box), /uncaught|unhandled/i);
  await unmountAndCheck(t, box, [pid]);

  const f = await box.svault(['fsck', '--store', box.store]);
  t.is(f.code, 7, f.stdout + f.stderr);
  for (const p of ['/c', '/d/a', '/p', '/e/x', '/d/b']) t.regex(f.stdout, new RegExp(`: ${p.replace('/', '\\/')}:`), `fsck names ${p}`);
  for (const p of ['/h1', '/d/h2', '/q/h3']) t.notRegex(f.stdout, new RegExp(`: ${p}:`), `fsck does not name healthy ${p}`);
});

test('after an unclean shutdown, the mount\'s orphan sweep does not delete the pieces of files it cannot list (damaged listing page)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, { 'd/f1': 50_000, 'd/f2': 60_000, 'd/f3': 70_000, top: 1000 });
  await ok(t, `sync ${q(join(box.mnt, 'top'))}`); // an fsync: every file written before it is durable
  const pid = onlyServer(box);
  process.kill(pid, 'SIGKILL'); // an unclean shutdown: the next mount sweeps orphaned blobs
  t.true(await waitFor(() => !alive(pid), 5000));
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.pageRecordName(v.inodeAt('/d').id, 0)));
  const before = [...blobFiles(box.store)].sort();
  const m = await box.mount();
  t.is(m.code, 0, m.stderr);
  t.log(serverLogs(box).split('\n').filter((l) => /sweep|orphan/.test(l)).join('\n'));
  t.deepEqual([...blobFiles(box.store)].sort(), before, 'the sweep deleted no blob: the files of /d are damaged only in their listing');
  for (const n of ['d/f1', 'd/f2', 'd/f3', 'top']) t.is(await sha(t, join(box.mnt, n)), shas.get(n) ?? '?', `${n} still reads (lookups do not need the listing)`);
  await unmountAndCheck(t, box);
});

/** Damages meta.db at the SQLite level (not through records): the header, or the b-tree pages. */
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
  test(`meta.db damaged at the SQLite level (${what}): mount and fsck give a clear store error, not exit 1/11 with a stack`, async (t) => {
    const box = await mountedBox(t, ['--chaff', '0']);
    await populate(t, box, { a: 1000, 'd/b': 2000 });
    await unmountAndCheck(t, box);
    const dbPath = join(box.store, META_FILE);
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
      t.regex(m.stderr, /meta\.db|metadata/i, 'the message names the metadata database');
      t.notRegex(m.stderr, /libfuse/, 'and does not blame libfuse');
    }
    const f = await box.svault(['fsck', '--store', box.store]);
    t.true([4, 7, 9].includes(f.code), `fsck of a damaged meta.db exits 4 or 7, not ${f.code}: ${f.stderr.slice(0, 500)}`);
    t.notRegex(f.stderr, STACK_TRACE, 'fsck prints no stack trace');
    t.false(mountedAt(box.mnt));
  });
}

test('random byte flips inside meta.db pages: no crash; every outcome is a clear error, EIO or an fsck report', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`d${i % 3}/f${i}`, 100 + i * 997])));
  await unmountAndCheck(t, box);
  const pristine = readFileSync(join(box.store, META_FILE));
  const outcomes: string[] = [];
  for (const seed of [SEED, SEED + 1]) {
    const rnd = prng(seed);
    const db = Buffer.from(pristine);
    const pages = db.length / 4096;
    for (let k = 0; k < 6; k++) {
      const at = 4096 * (1 + Math.floor(rnd() * (pages - 1))) + Math.floor(rnd() * 4096);
      db[at] = (db[at] as number) ^ (1 << Math.floor(rnd() * 8));
    }
    writeFileSync(join(box.store, META_FILE), db);
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

test('a damaged or forged rollback anchor refuses the store (exit 4) instead of being ignored; --accept-rollback records it anew (security finding 12)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `echo kept > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  const anchors = join(box.env.XDG_STATE_HOME as string, 'svault', 'anchors');
  const [file] = readdirSync(anchors).filter((n) => n.endsWith('.json'));
  t.truthy(file, 'the mount left a rollback anchor');
  const path = join(anchors, file as string);
  const good = JSON.parse(readFileSync(path, 'utf8')) as { generation: number; mac: string };
  for (const [what, text] of [
    ['not JSON', 'garbage'],
    ['a forged generation (MAC of another)', JSON.stringify({ generation: 0, mac: good.mac })],
  ] as const) {
    writeFileSync(path, text);
    const m = await box.mount();
    t.is(m.code, 4, `${what}: ${m.stderr}`);
    t.regex(m.stderr, /rollback anchor/, what);
    t.regex(m.stderr, /--accept-rollback/, what);
    t.false(mountedAt(box.mnt));
  }
  const a = await box.mount(['--accept-rollback']);
  t.is(a.code, 0, a.stderr);
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'kept\n');
  await unmountAndCheck(t, box);
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

test('a blob replaced by a directory or a FIFO: its read fails (EIO) without freezing the server', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const shas = await populate(t, box, { a: 1000, b: 1000, c: 5000 });
  await unmountAndCheck(t, box);
  const [blobA, blobB] = await withVault(box.store, (v) => [blobsOf(v, '/a')[0] as string, blobsOf(v, '/b')[0] as string]);
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
  const watchdog = setTimeout(() => {
    hung = true;
    void release();
  }, 10_000);
  const [code, other] = await Promise.all([catExit, statP]);
  clearTimeout(watchdog);
  t.log(`read of the FIFO-backed file: ${hung ? 'blocked until a writer fed the FIFO' : 'ended by itself'}; stat of a healthy file meanwhile took ${other.ms} ms`);
  t.false(hung, 'reading a file whose blob is a FIFO must fail within 10 s, not block the server (released by a writer after 10 s)');
  t.true(other.ms < 5000, `while that read is pending, the server still answers others (stat took ${other.ms} ms)`);
  t.not(code, 0);
  t.regex(stderr, EIO, `cat of the FIFO-backed file: ${stderr.trim()}`);
  t.is(await sha(t, join(box.mnt, 'c')), shas.get('c') ?? '?');
  t.true(alive(pid), 'the server survived');
  await unmountAndCheck(t, box, [pid]);
});

test('svault.json replaced by a FIFO: svault info fails within 10 s instead of hanging', async (t) => {
  const box = emptyBox(t, 'fifo');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  const cfg = join(box.store, 'svault.json');
  renameSync(cfg, `${cfg}.saved`);
  await ok(t, `mkfifo ${q(cfg)}`);
  const r = await svaultTimed(box, ['info', '--store', box.store], 10_000);
  t.false(r.hung, `svault info on a store whose config is a FIFO hung for ${r.elapsedMs} ms (killed)`);
  t.is(r.code, 4, r.stderr);
  t.notRegex(r.stderr, STACK_TRACE);
  rmSync(cfg);
  renameSync(`${cfg}.saved`, cfg);
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
  const blobs = await withVault(box.store, (v) => blobsOf(v, '/f'));
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
  // A plain fsck opens the store writable, finds the unclean mark and leaves it for the next sweep.
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

test('finding 2: svault.json, meta.db and blobs/ as links, and a FIFO at meta.db-wal, are refused with exit 4', async (t) => {
  const { box } = await storeWithFile(t, 'links-files');
  const outside = join(box.dir, 'outside');
  mkdirSync(outside);
  const cases: [string, string, RegExp][] = [
    ['svault.json', 'info', /svault\.json should be a regular file but is a symbolic link/],
    [META_FILE, 'mount', /meta\.db is not a regular file \(a symbolic link\)/],
    ['blobs', 'mount', /blobs should be a directory but is a symbolic link/],
  ];
  for (const [name, command, message] of cases) {
    const inStore = join(box.store, name);
    const moved = join(outside, name);
    renameSync(inStore, moved);
    await ok(t, `ln -s ${q(moved)} ${q(inStore)}`);
    const r = command === 'info' ? await box.svault(['info', '--store', box.store]) : await box.mount();
    t.is(r.code, 4, `${name}: ${r.stderr}`);
    t.regex(r.stderr, message, name);
    t.notRegex(r.stderr, STACK_TRACE);
    t.false(mountedAt(box.mnt));
    rmSync(inStore);
    renameSync(moved, inStore);
  }
  const wal = join(box.store, `${META_FILE}-wal`);
  rmSync(wal, { force: true });
  await ok(t, `mkfifo ${q(wal)}`);
  const r = await svaultTimed(box, ['mount', '--store', box.store, box.mnt], 20_000);
  t.false(r.hung, 'a FIFO at meta.db-wal froze the mount');
  t.is(r.code, 4, r.stderr);
  t.regex(r.stderr, /meta\.db-wal is not a regular file/);
  rmSync(wal);
  t.is((await box.mount()).code, 0, 'with the links gone, the store mounts');
  await unmountAndCheck(t, box);
});

test('finding 2: a blob or a shard directory replaced by a link is EIO, even when the link leads to the right bytes; fsck --repair removes only the link', async (t) => {
  const { box, blobs } = await storeWithFile(t, 'links-blobs');
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
  const outsideBefore = readdirSync(outside, { recursive: true }).sort();
  const m = await box.mount();
  t.is(m.code, 0, m.stderr);
  await expectEio(t, box, 'f');
  await ok(t, `head -c 100000 /dev/urandom > ${q(box.mnt)}/g`);
  await unmountAndCheck(t, box);
  t.deepEqual(readdirSync(outside, { recursive: true }).sort(), outsideBefore, 'nothing was written outside the store');
  const f = await box.svault(['fsck', '--store', box.store]);
  t.not(f.code, 0, 'fsck reports the links');
  t.regex(f.stdout, new RegExp(`/f: blob ${first} is not a blob: .* is a symbolic link`), 'fsck names the linked blob');
  if (linkedShard) t.regex(f.stdout, new RegExp(`${shard} should be a directory but is a symbolic link`), 'fsck names the linked shard');
  const repaired = await box.svault(['fsck', '--repair', '--store', box.store]);
  t.notRegex(repaired.stderr, STACK_TRACE);
  t.throws(() => lstatSync(blobPathInStore), undefined, 'repair removed the link at the blob\'s name');
  t.true(statSyncOrNull(movedBlob), 'the file the link pointed to was not removed');
  t.deepEqual(readdirSync(outside, { recursive: true }).sort(), outsideBefore, 'repair removed the links, not what they point to');
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
    const [blob] = await withVault(box.store, (v) => blobsOf(v, '/private-dir/secret-plans.txt'));
    const path = join(box.store, 'blobs', blob as string);
    const bytes = readFileSync(path);
    bytes[200] = (bytes[200] as number) ^ 0x40;
    writeFileSync(path, bytes);

    t.is((await box.mount()).code, 0);
    await expectEio(t, box, 'private-dir/secret-plans.txt');
    await unmountAndCheck(t, box);
    const quiet = serverLogs(box);
    t.regex(quiet, binding === 'devfuse' ? /read \(node \d+\): file [0-9a-f]+: piece 0/ : /read ino \d+: file [0-9a-f]+: piece 0/, 'the EIO is logged');
    t.false(quiet.includes('secret-plans') || quiet.includes('private-dir'), 'no name in the log');

    t.is((await box.mount(['--log-names'])).code, 0);
    await expectEio(t, box, 'private-dir/secret-plans.txt');
    await unmountAndCheck(t, box);
    t.true(serverLogs(box).includes('/private-dir/secret-plans.txt'), 'with --log-names the path is logged');
  });
}
