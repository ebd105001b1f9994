// Issue 7, item 6: fsck --repair on every damage class. One pristine vault is built through the mount;
// each test damages its own copy of the store in one way, then: `svault fsck` exits 7 and names the
// damaged path; `svault fsck --repair` exits 8 (or 9 where that class cannot be repaired) and quarantines
// only what is damaged (to /lost+found); every healthy file reads back with the same sha256 after a
// remount; a second `svault fsck` exits 0 (after an 8). Whatever repair cannot fix, it must not make worse:
// no healthy file may lose its data. A damaged directory listing page is rebuilt from the entries' own
// records, also in a directory of several pages (BIG_DIR).

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT_ID } from '../../src/core/meta/inode.js';
import { CLI, mountedAt, PASSPHRASE, run, sh, type Sandbox } from '../helpers/cli.js';
import { emptyBox, ok, q, unmountAndCheck } from '../helpers/mount-util.js';
import { blobFiles, blobsOf, checkNothingLeftMountedAtAll, deleteRecord, flipRecord, rememberDir, sha256, STACK_TRACE, withVault } from '../helpers/reliability-util.js';
import { CleanupList, snapshotDir, snapshotObject, tempDir } from '../helpers/temp-vault.js';
import { Vault as CoreVault } from '../../src/core/vault/vault.js';

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
/** A directory of more than one listing page (128 entries each): 300 small files, three pages. */
const BIG_DIR = 'big';
const BIG_COUNT = 300;
const hooks = new CleanupList();
let pristine = '';
const data = new Map<string, Buffer>();
/** BIG_DIR's files: name -> content. */
const bigData = new Map<string, Buffer>();
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
  const bigSrc = join(src, BIG_DIR);
  mkdirSync(bigSrc);
  for (let i = 0; i < BIG_COUNT; i++) {
    const name = `n${String(i).padStart(3, '0')}`;
    const b = randomBytes(100 + i);
    bigData.set(name, b);
    writeFileSync(join(bigSrc, name), b);
  }
  const big = await sh(`cp -r ${q(bigSrc)} ${q(join(mnt, BIG_DIR))}`);
  if (big.code !== 0) throw new Error(big.stderr);
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
  /** More checks while the repaired vault is mounted. */
  mounted?: (mnt: string) => Promise<unknown>;
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
  await e.mounted?.(box.mnt);
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
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.inodeRecordName(v.inodeAt('/d/sub/g').id)));
  await checkRepair(t, box, 'file inode record', { report: /bad-record: \/d\/sub\/g: .*inode/, repair: [8, 9], damaged: ['d/sub/g'] });
});

test('damaged directory entry record: fsck names it; repair rebuilds it from the listing (8); the file stays in place', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.entryRecordName(v.inodeAt('/e').id, 'i')));
  await checkRepair(t, box, 'entry record', { report: /bad-record: \/e\/i: .*entry/, repair: [8], damaged: [] });
});

test('damaged listing page of a directory: repair rebuilds it from the entry records (8); its files stay in place', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.pageRecordName(v.inodeAt('/d').id, 0)));
  await checkRepair(t, box, 'listing page', {
    report: /bad-directory: \/d: .*page 0/,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      t.is(await ok(t, `ls -A ${q(join(mnt, 'd'))}`), 'f1\nf2\nsub\n', 'listing page: /d lists exactly its own entries again');
      t.is((await ok(t, `stat -c %h ${q(join(mnt, 'd'))}`)).trim(), '3', 'listing page: /d keeps its link count (one subdirectory)');
    },
  });
});

test('missing listing page of a directory: repair rebuilds it from the entry records (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => deleteRecord(box.store, v.check().meta.pageRecordName(v.inodeAt('/e').id, 0)));
  await checkRepair(t, box, 'missing listing page', {
    report: /bad-directory: \/e: .*page 0 is missing/,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => t.is(await ok(t, `ls -A ${q(join(mnt, 'e'))}`), 'h\ni\nj\n', 'missing listing page: /e lists exactly its own entries again'),
  });
});

/** BIG_DIR's id, and the names of its entries that are on listing page `page`. */
async function bigPage(box: Sandbox, page: number): Promise<{ id: string; names: string[] }> {
  return withVault(box.store, (v) => {
    const id = v.inodeAt(`/${BIG_DIR}`).id;
    return { id, names: [...bigData.keys()].filter((n) => v.check().meta.lookup(id, n)?.page === page) };
  });
}

/** The sha256 of every file directly in BIG_DIR of the mounted vault, by name. */
async function bigHashes(mnt: string): Promise<Map<string, string>> {
  const out = await sh(`cd ${q(join(mnt, BIG_DIR))} && sha256sum -- *`);
  const hashes = new Map<string, string>();
  for (const line of out.stdout.split('\n').filter(Boolean)) {
    const [hash, name] = line.split(/\s+\*?/);
    hashes.set(name as string, hash as string);
  }
  return hashes;
}

function expectedBigHashes(without: string[] = []): Map<string, string> {
  return new Map([...bigData].filter(([n]) => !without.includes(n)).map(([n, b]) => [n, sha256(b)]));
}

test(`damaged middle page of a directory of ${BIG_COUNT} entries (3 pages): repair rebuilds it (8); all its files read back`, async (t) => {
  const box = await copyOfPristine(t);
  const { id, names } = await bigPage(box, 1);
  t.is(names.length, 128, 'page 1 of the big directory is full (so pages 0 and 2 are intact neighbours)');
  flipRecord(box.store, await withVault(box.store, (v) => v.check().meta.pageRecordName(id, 1)));
  await checkRepair(t, box, 'big directory page', {
    report: new RegExp(`bad-directory: /${BIG_DIR}: .*page 1`),
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      // Exactly the directory's own names come back (entry records of other directories are not pulled
      // in), each with its own content.
      t.deepEqual(await bigHashes(mnt), expectedBigHashes(), 'big directory page: every file of the directory reads back byte-identical');
      t.is((await ok(t, `ls -A ${q(join(mnt, BIG_DIR))} | wc -l`)).trim(), String(BIG_COUNT));
    },
  });
  // The rebuilt listing is the same three dense pages, and each entry record agrees with its page.
  const after = await bigPage(box, 1);
  t.is(after.names.length, 128, 'page 1 is full again');
  t.is((await bigPage(box, 2)).names.length, BIG_COUNT - 256, 'page 2 holds the rest');
  t.is(await withVault(box.store, (v) => v.inodeAt(`/${BIG_DIR}`).dirPages), 3);
});

test('damaged page with, on it, a file with a damaged piece and a file with a damaged inode: quarantined and dropped like anywhere else (8)', async (t) => {
  const box = await copyOfPristine(t);
  const { id, names } = await bigPage(box, 2);
  const [pieceBad, inodeBad] = names as [string, string];
  const { pieceBadId, blob } = await withVault(box.store, (v) => {
    flipRecord(box.store, v.check().meta.pageRecordName(id, 2));
    flipRecord(box.store, v.check().meta.inodeRecordName(v.inodeAt(`/${BIG_DIR}/${inodeBad}`).id));
    return { pieceBadId: v.inodeAt(`/${BIG_DIR}/${pieceBad}`).id, blob: blobsOf(v, `/${BIG_DIR}/${pieceBad}`)[0] as string };
  });
  const b = readFileSync(blobAbs(box, blob));
  b[40] = (b[40] as number) ^ 0x01;
  writeFileSync(blobAbs(box, blob), b);
  await checkRepair(t, box, 'damaged page with damaged files', {
    report: new RegExp(`bad-directory: /${BIG_DIR}: .*page 2`),
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      t.deepEqual(await bigHashes(mnt), expectedBigHashes([pieceBad, inodeBad]), 'every healthy file of the directory reads back; the two damaged ones are gone from it');
      const where = join(mnt, 'lost+found', `${pieceBad}.${pieceBadId}`);
      t.is((await ok(t, `stat -c %s ${q(where)}`)).trim(), String((bigData.get(pieceBad) as Buffer).length), 'the file with the damaged piece is quarantined in /lost+found with its size');
      t.regex((await sh(`cat ${q(where)} > /dev/null`)).stderr, /Input\/output error/, 'its damaged piece still fails with EIO');
    },
  });
});

test('damaged page and the entry record of a name on it: the rest is rebuilt and the unnamed file goes to /lost+found as #<inode id> (8)', async (t) => {
  const box = await copyOfPristine(t);
  const { id, names } = await bigPage(box, 0);
  const lost = names[5] as string;
  const lostId = await withVault(box.store, (v) => {
    const lostInode = v.inodeAt(`/${BIG_DIR}/${lost}`).id; // before its entry record is damaged
    flipRecord(box.store, v.check().meta.pageRecordName(id, 0));
    flipRecord(box.store, v.check().meta.entryRecordName(id, lost));
    return lostInode;
  });
  await checkRepair(t, box, 'page and entry record', {
    report: new RegExp(`bad-directory: /${BIG_DIR}: .*page 0`),
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      t.deepEqual(await bigHashes(mnt), expectedBigHashes([lost]), 'every other file of the directory reads back');
      const s = await sh(`sha256sum ${q(join(mnt, 'lost+found', `#${lostId}`))}`);
      t.is(s.stdout.split(' ')[0], sha256(bigData.get(lost) as Buffer), 'the file whose name was lost is in /lost+found under its inode id, intact');
    },
  });
});

test('damaged page, and the entry record and inode record of a name on it: the rest is rebuilt, the unreadable file is dropped like any file whose inode is damaged (8)', async (t) => {
  const box = await copyOfPristine(t);
  const { id, names } = await bigPage(box, 0);
  const lost = names[7] as string;
  const lostBlobs = await withVault(box.store, (v) => {
    const blobs = blobsOf(v, `/${BIG_DIR}/${lost}`); // before its records are damaged
    flipRecord(box.store, v.check().meta.inodeRecordName(v.inodeAt(`/${BIG_DIR}/${lost}`).id));
    flipRecord(box.store, v.check().meta.pageRecordName(id, 0));
    flipRecord(box.store, v.check().meta.entryRecordName(id, lost));
    return blobs;
  });
  const blobsBefore = blobFiles(box.store);
  await checkRepair(t, box, 'page, entry and inode record', {
    report: new RegExp(`bad-directory: /${BIG_DIR}: .*page 0`),
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      t.deepEqual(await bigHashes(mnt), expectedBigHashes([lost]), 'every other file of the directory reads back');
      t.is((await ok(t, `ls -A ${q(join(mnt, 'lost+found'))} 2>/dev/null | wc -l`)).trim(), '0', 'nothing unreadable is put in /lost+found');
    },
  });
  const expected = [...blobsBefore].filter((b) => !lostBlobs.includes(b)).sort();
  t.deepEqual([...blobFiles(box.store)].sort(), expected, 'exactly the unreadable file\'s blobs are deleted');
});

test('damaged inode record of a directory: repair keeps the healthy files under it (in place or in /lost+found)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.inodeRecordName(v.inodeAt('/e').id)));
  await checkRepair(t, box, 'directory inode record', {
    report: /bad-record: \/e: .*inode/,
    repair: [8, 9],
    damaged: [],
    inPlace: Object.keys(FILES).filter((n) => !n.startsWith('e/')),
  });
});

test('damaged inode record of a directory and its listing page: repair rebuilds both; the healthy files stay in place (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => {
    const id = v.inodeAt('/d').id;
    flipRecord(box.store, v.check().meta.inodeRecordName(id));
    flipRecord(box.store, v.check().meta.pageRecordName(id, 0));
  });
  await checkRepair(t, box, 'directory inode and listing page', {
    report: /bad-record: \/d: .*inode/,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => t.is(await ok(t, `ls -A ${q(join(mnt, 'd'))}`), 'f1\nf2\nsub\n', '/d lists exactly its own entries again'),
  });
});

test('damaged inode record of the root: repair does not wipe the vault', async (t) => {
  const box = await copyOfPristine(t);
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.inodeRecordName(ROOT_ID)));
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
  await withVault(box.store, (v) => flipRecord(box.store, v.check().meta.vaultRecordNames()[0] as Buffer));
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

test('fsck without --repair leaves every file of the store as it was, damage found or not (no version reservation, no write)', async (t) => {
  const box = await copyOfPristine(t);
  const [blob] = await withVault(box.store, (v) => blobsOf(v, '/top1'));
  const damaged = blobAbs(box, blob as string);
  const bytes = readFileSync(damaged);
  bytes[100] = (bytes[100] as number) ^ 1;
  writeFileSync(damaged, bytes);
  // withVault above opened the store without the lock, as info does; the snapshot is taken after it.
  const before = snapshotObject(snapshotDir(box.store));
  const f = await fsckOut(box);
  t.is(f.code, 7, f.stdout + f.stderr);
  t.deepEqual(snapshotObject(snapshotDir(box.store)), before, 'fsck wrote to the store');
  t.is((await fsckOut(box)).code, 7, 'and says the same the second time');
});
