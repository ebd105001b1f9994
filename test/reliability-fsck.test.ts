// Issue 7, item 6: fsck --repair on every damage class. One pristine vault is built through the mount;
// each test damages its own copy of the store in one way, then: `svault fsck` exits 7 and names the
// damaged path; `svault fsck --repair` exits 8 (or 9 where that class cannot be repaired) and quarantines
// only what is damaged (to /lost+found); every healthy file reads back with the same sha256 after a
// remount; a second `svault fsck` exits 0 (after an 8). Whatever repair cannot fix, it must not make worse:
// no healthy file may lose its data.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT_ID } from '../src/meta/inode.js';
import { CLI, mountedAt, PASSPHRASE, run, sh, type Sandbox } from './helpers/cli.js';
import { emptyBox, ok, q, unmountAndCheck } from './helpers/mount-util.js';
import { blobFiles, blobsOf, checkNothingLeftMountedAtAll, flipRecord, rememberDir, sha256, STACK_TRACE, withVault } from './helpers/reliability-util.js';
import { CleanupList, tempDir } from './helpers/temp-vault.js';
import { Vault as CoreVault } from '../src/vault.js';

checkNothingLeftMountedAtAll(test);

const P = 16384;
const FILES: Record<string, number> = {
  top1: 5 * P - 100,
  top2: 5000,
  'd/f1': 4 * P,
  'd/f2': 9000,
  'd/sub/g': 20_000,
  'e/h': 3 * P + 1,
  'e/i': 700,
  'e/j': 1,
};
const hooks = new CleanupList();
let pristine = '';
const data = new Map<string, Buffer>();
/** Blob files (absolute) of a file in another vault, to plant in ours. */
let foreignBlobs: { rel: string; abs: string }[] = [];

test.before(async () => {
  const dir = tempDir(hooks, 'svault-fsck-pristine-');
  rememberDir(dir);
  const store = join(dir, 'store');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const env = { ...process.env, SVAULT_PASSPHRASE: PASSPHRASE, XDG_DATA_HOME: join(dir, 'data'), XDG_STATE_HOME: join(dir, 'state'), XDG_CONFIG_HOME: join(dir, 'config') };
  const svault = async (args: string[]) => {
    const r = await run(process.execPath, [CLI, ...args], { env });
    if (r.code !== 0) throw new Error(`svault ${args[0]} (${r.code}): ${r.stderr}`);
  };
  hooks.teardown(async () => {
    if (mountedAt(mnt)) await run(process.execPath, [CLI, 'unmount', mnt], { env });
    if (mountedAt(mnt)) await run('umount', ['-l', mnt]);
  });
  await svault(['init', '--store', store, '--piece-size', String(P), '--chaff', '0.1']);
  await svault(['mount', '--store', store, mnt]);
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const [name, size] of Object.entries(FILES)) {
    const b = randomBytes(size);
    data.set(name, b);
    const from = join(src, name.replace(/\//g, '_'));
    writeFileSync(from, b);
    const r = await sh(`mkdir -p "$(dirname ${q(join(mnt, name))})" && cp ${q(from)} ${q(join(mnt, name))}`);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  await sh(`ln -s top1 ${q(join(mnt, 'link'))}`);
  await svault(['unmount', mnt]);
  pristine = store;

  const foreign = join(dir, 'foreign');
  const other = await CoreVault.create(foreign, PASSPHRASE, { pieceSize: P, chaffRatio: 0 });
  await other.writeFile('/theirs', randomBytes(3 * P));
  foreignBlobs = blobsOf(other, '/theirs').map((rel) => ({ rel, abs: join(foreign, 'blobs', rel) }));
  await other.close();
});

test.after.always(() => hooks.run());

/** A sandbox whose store is a fresh copy of the pristine store. */
async function copyOfPristine(t: ExecutionContext): Promise<Sandbox> {
  const box = emptyBox(t, 'fsck');
  await ok(t, `cp -a ${q(pristine)} ${q(box.store)}`);
  return box;
}

interface Expectation {
  /** What fsck (without --repair) must print, naming the damaged path. */
  report: RegExp;
  /** Exit codes accepted from fsck --repair: 8, or 9 for a class that cannot be repaired. */
  repair: number[];
  /** Files (of FILES) whose data is damaged: everything else must survive intact. */
  damaged: string[];
  /** Damaged files that must be in /lost+found afterwards (as <name>.<inode id>). */
  quarantined?: { path: string; id: string; badPiece: number }[];
  /** Files that must still be at their own path afterwards (default: every healthy file). */
  inPlace?: string[];
}

async function fsckOut(box: Sandbox, extra: string[] = []) {
  return box.svault(['fsck', '--store', box.store, ...extra]);
}

/** The common check of one damage class. */
async function checkRepair(t: ExecutionContext, box: Sandbox, what: string, e: Expectation): Promise<void> {
  const blobsBefore = blobFiles(box.store).size;
  const f = await fsckOut(box);
  t.is(f.code, 7, `${what}: fsck exits 7: ${f.stdout}${f.stderr.slice(0, 800)}`);
  t.notRegex(f.stderr, STACK_TRACE, `${what}: fsck prints no stack trace`);
  t.regex(f.stdout, e.report, `${what}: fsck names the damage: ${f.stdout}`);
  const r = await fsckOut(box, ['--repair']);
  t.log(`${what}: fsck --repair exit ${r.code}\n${r.stdout.trim()}${r.stderr.trim()}`);
  t.true(e.repair.includes(r.code), `${what}: fsck --repair exits ${e.repair.join(' or ')}, got ${r.code}: ${r.stderr.slice(0, 800)}`);
  t.notRegex(r.stderr, STACK_TRACE);
  t.log(`${what}: ${blobsBefore} blobs before repair, ${blobFiles(box.store).size} after`);

  const m = await box.mount();
  t.is(m.code, 0, `${what}: mounts after repair: ${m.stderr}`);
  const healthy = Object.keys(FILES).filter((n) => !e.damaged.includes(n));
  const inPlace = e.inPlace ?? healthy;
  const lost = new Set<string>();
  for (const n of inPlace) {
    const s = await sh(`sha256sum ${q(join(box.mnt, n))}`);
    if (s.code !== 0 || s.stdout.split(' ')[0] !== sha256(data.get(n) as Buffer)) lost.add(n);
  }
  t.deepEqual([...lost], [], `${what}: healthy files that did not survive the repair intact at their path`);
  // Healthy files not required in place (in a damaged directory) must at least be somewhere: in /lost+found.
  for (const n of healthy.filter((x) => !inPlace.includes(x))) {
    const found = await sh(`cd ${q(box.mnt)} && find . -type f -exec sha256sum {} + 2>/dev/null | grep ${sha256(data.get(n) as Buffer)}`);
    t.is(found.code, 0, `${what}: healthy ${n} (in the damaged directory) survives somewhere with its data`);
  }
  t.is(await ok(t, `readlink ${q(join(box.mnt, 'link'))}`), 'top1\n', `${what}: the symlink survives`);
  for (const qf of e.quarantined ?? []) {
    const base = qf.path.split('/').pop() as string;
    const where = join(box.mnt, 'lost+found', `${base}.${qf.id}`);
    const size = await sh(`stat -c %s ${q(where)}`);
    t.is(size.stdout.trim(), String(FILES[qf.path]), `${what}: ${qf.path} is quarantined in /lost+found with its size`);
    t.is((await sh(`stat ${q(join(box.mnt, qf.path))}`)).code, 1, `${what}: ${qf.path} is no longer at its path`);
    const bad = await sh(`dd if=${q(where)} bs=${P} skip=${qf.badPiece} count=1 status=none > /dev/null`);
    t.regex(bad.stderr, /Input\/output error/, `${what}: the damaged piece of ${qf.path} still fails with EIO`);
    const goodIndex = qf.badPiece === 0 ? 1 : 0;
    const good = await sh(`dd if=${q(where)} bs=${P} skip=${goodIndex} count=1 status=none | sha256sum`);
    t.is(good.stdout.split(' ')[0], sha256((data.get(qf.path) as Buffer).subarray(goodIndex * P, (goodIndex + 1) * P)), `${what}: an intact piece of ${qf.path} still reads`);
  }
  await unmountAndCheck(t, box);
  const again = await fsckOut(box);
  if (r.code === 8) t.is(again.code, 0, `${what}: a second fsck after a successful repair is clean: ${again.stdout}`);
  else t.is(again.code, 7, `${what}: fsck still reports what could not be repaired: ${again.stdout}`);
}

function blobAbs(box: Sandbox, rel: string): string {
  return join(box.store, 'blobs', rel);
}

test('bit flip in a piece: fsck names the file; repair quarantines it (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const { id, blob } = await withVault(box.store, (v) => ({ id: v.inodeAt('/d/f1').id, blob: blobsOf(v, '/d/f1')[2] as string }));
  const b = readFileSync(blobAbs(box, blob));
  b[777] = (b[777] as number) ^ 0x04;
  writeFileSync(blobAbs(box, blob), b);
  await checkRepair(t, box, 'bit flip', { report: /bad-piece: \/d\/f1: .*piece 2/, repair: [8], damaged: ['d/f1'], quarantined: [{ path: 'd/f1', id, badPiece: 2 }] });
});

test('truncated blob: fsck names the file; repair quarantines it (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const { id, blob } = await withVault(box.store, (v) => ({ id: v.inodeAt('/top1').id, blob: blobsOf(v, '/top1')[0] as string }));
  truncateSync(blobAbs(box, blob), statSync(blobAbs(box, blob)).size - 1000);
  await checkRepair(t, box, 'truncated blob', { report: /bad-piece: \/top1: .*piece 0/, repair: [8], damaged: ['top1'], quarantined: [{ path: 'top1', id, badPiece: 0 }] });
});

test('deleted blob: fsck names the file (missing piece); repair quarantines it (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const { id, blob } = await withVault(box.store, (v) => ({ id: v.inodeAt('/e/h').id, blob: blobsOf(v, '/e/h')[1] as string }));
  unlinkSync(blobAbs(box, blob));
  await checkRepair(t, box, 'deleted blob', { report: /missing-piece: \/e\/h: .*piece 1/, repair: [8], damaged: ['e/h'], quarantined: [{ path: 'e/h', id, badPiece: 1 }] });
});

test('orphan blobs (from another vault, at their own and at another path, and a leftover): repair deletes exactly them (8)', async (t) => {
  const box = await copyOfPristine(t);
  const before = blobFiles(box.store);
  const plant = (from: string, rel: string) => {
    mkdirSync(blobAbs(box, rel.slice(0, 2)), { recursive: true });
    copyFileSync(from, blobAbs(box, rel));
  };
  plant((foreignBlobs[0] as { abs: string }).abs, (foreignBlobs[0] as { rel: string }).rel);
  const made = randomBytes(32).toString('hex');
  plant((foreignBlobs[1] as { abs: string }).abs, `${made.slice(0, 2)}/${made}`);
  const leftover = randomBytes(32).toString('hex');
  mkdirSync(blobAbs(box, leftover.slice(0, 2)), { recursive: true });
  writeFileSync(blobAbs(box, `${leftover.slice(0, 2)}/${leftover}`), randomBytes(P + 32));
  await checkRepair(t, box, 'orphans', { report: /3 orphaned blob\(s\)/, repair: [8], damaged: [] });
  t.deepEqual([...blobFiles(box.store)].sort(), [...before].sort(), 'exactly the planted blobs are gone; chaff and pieces stay');
});

test('damaged inode record of a file: fsck names it; repair drops the unreadable file (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.meta.records.nameOf('inode', v.inodeAt('/d/sub/g').id)));
  await checkRepair(t, box, 'file inode record', { report: /bad-record: \/d\/sub\/g: .*inode/, repair: [8, 9], damaged: ['d/sub/g'] });
});

test('damaged directory entry record: fsck names it; repair rebuilds it from the listing (8); the file stays in place', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.meta.records.nameOf('entry', v.inodeAt('/e').id, 'i')));
  await checkRepair(t, box, 'entry record', { report: /bad-record: \/e\/i: .*entry/, repair: [8], damaged: [] });
});

test('damaged listing page of a directory: repair rebuilds it (8) or says it cannot (9), but never destroys the healthy files in it', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.meta.records.nameOf('dirpage', v.inodeAt('/d').id, '0')));
  await checkRepair(t, box, 'listing page', { report: /bad-directory: \/d: .*page 0/, repair: [8, 9], damaged: [] });
});

test('damaged inode record of a directory: repair keeps the healthy files under it (in place or in /lost+found)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.meta.records.nameOf('inode', v.inodeAt('/e').id)));
  await checkRepair(t, box, 'directory inode record', {
    report: /bad-record: \/e: .*inode/,
    repair: [8, 9],
    damaged: [],
    inPlace: Object.keys(FILES).filter((n) => !n.startsWith('e/')),
  });
});

test('damaged inode record of the root: repair does not wipe the vault', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.meta.records.nameOf('inode', ROOT_ID)));
  const blobsBefore = blobFiles(box.store).size;
  const f = await fsckOut(box);
  t.is(f.code, 7, f.stdout + f.stderr);
  t.regex(f.stdout, /bad-record: \/: /);
  const r = await fsckOut(box, ['--repair']);
  t.log(`root inode: fsck --repair exit ${r.code}\n${r.stdout}`);
  const blobsAfter = blobFiles(box.store).size;
  t.true(blobsAfter >= blobsBefore * 0.9, `fsck --repair must not delete the pieces of healthy files: ${blobsBefore} blobs before, ${blobsAfter} after`);
  t.true([8, 9].includes(r.code), `exit ${r.code}`);
});

test('damaged vault state record: fsck reports it (not exit 1), and repair rebuilds it or refuses without destroying anything', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.meta.records.nameOf('state')));
  const blobsBefore = blobFiles(box.store).size;
  const f = await fsckOut(box);
  t.log(`state record: fsck exit ${f.code}: ${f.stdout}${f.stderr.split('\n')[0]}`);
  t.notRegex(f.stderr, STACK_TRACE, 'a damaged record is a store problem, not an internal error with a stack trace');
  t.true([4, 7].includes(f.code), `fsck exits 7 (or 4 with a clear message), got ${f.code}`);
  const m = await box.mount();
  t.true([0, 4].includes(m.code), `mount exits 4 (clear store error) or works, got ${m.code}: ${m.stderr}`);
  if (m.code === 0) await unmountAndCheck(t, box);
  const r = await fsckOut(box, ['--repair']);
  t.true([4, 8, 9].includes(r.code), `fsck --repair: ${r.code}: ${r.stderr.split('\n')[0]}`);
  t.is(blobFiles(box.store).size, blobsBefore, 'nothing deleted');
  if (r.code === 8) {
    t.is((await box.mount()).code, 0);
    for (const [n, b] of data) t.is((await ok(t, `sha256sum ${q(join(box.mnt, n))}`)).split(' ')[0], sha256(b), `${n} after the repair`);
    await unmountAndCheck(t, box);
  }
});
