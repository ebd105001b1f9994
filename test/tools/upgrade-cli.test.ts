// svault upgrade, --finish and --rollback through the real CLI (docs/format-2.md 4.4, 13). A format-1 store
// made by format 1's Vault (small and large files, a sparse file, empty files, symlinks, hard links, xattrs,
// a directory tree) is upgraded; Vault2 reads it with no mount, byte for byte and attribute for attribute;
// format 2 writes to it; --finish makes its small files INLINE and leaves no format-1 file and no orphan.
// --rollback returns to the format-1 store as it was. The refusals: a locked store (exit 6), a wrong
// passphrase (3), format 1 for --finish and a finished upgrade for --rollback (4), bad flags (2), a damaged
// format-1 store (4, with the list; --salvage converts the rest). A --finish killed at its crash points
// (SVAULT_CRASH_AT) is reported by fsck and finishes when run again.

import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectFormat } from '../../src/core/format2/format-detect.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { scan, sweepOrphans } from '../../src/core/fsck/fsck.js';
import { META_FILE } from '../../src/core/meta/record-store.js';
import { StoreDir } from '../../src/core/os/store-dir.js';
import { Vault } from '../../src/core/vault/vault.js';
import { sandbox, type Sandbox } from '../helpers/cli.js';
import { STACK_TRACE } from '../helpers/reliability-util.js';
import {
  allPaths, blobAddresses, census, checkTree, contentOf, INLINED, inlineState, looking, makeFormat1Store, MAPPED, pieceBlobsOf, readAll2, regularFiles, UPGRADE_PASS,
  type Manifest,
} from '../helpers/upgrade-store.js';

const FORMAT1_FILES = ['svault.format1.json', 'meta.db', 'meta.db-wal', 'meta.db-shm'];
const FORMAT2_FILES = ['meta2.db', 'svault.layout.json', 'svault.store'];
/** The small files still there after useAsFormat2 (it unlinks /tiny). */
const STILL_SMALL = INLINED.filter((p) => p !== '/tiny');

interface Box {
  box: Sandbox;
  anchors: string;
  manifest: Map<string, Manifest>;
}

async function format1Box(t: ExecutionContext): Promise<Box> {
  const box = sandbox(t, 'upcli');
  const anchors = join(box.dir, 'state', 'svault', 'anchors'); // the CLI's, under the sandbox's XDG_STATE_HOME
  const manifest = await makeFormat1Store(box.store, anchors);
  return { box, anchors, manifest };
}

function upgrade(box: Sandbox, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return box.svault(['upgrade', '--store', box.store, ...extra], { env });
}

const formatOf = (store: string) => StoreDir.using(store, detectFormat).format;
const vaultIdOf = (store: string) => (JSON.parse(readFileSync(join(store, 'svault.json'), 'utf8')) as { vaultId: string }).vaultId;

/** Changes made as format 2 before --finish or --rollback: a new file, /big.bin's first piece rewritten, /tiny deleted. */
async function useAsFormat2(b: Box): Promise<void> {
  const v = await Vault2.open(b.box.store, UPGRADE_PASS, { anchorDir: b.anchors, pieceWorker: false });
  try {
    const nf = v.paths.create('/made-in-format-2', 0o644, 0, 0);
    await v.write(nf, Buffer.alloc(5000, 1), 0);
    await v.release(nf);
    const fh = v.paths.open('/big.bin');
    await v.write(fh, Buffer.from('format 2 was here'), 0);
    await v.release(fh);
    v.paths.unlink('/tiny');
  } finally {
    await v.close();
  }
}

test('svault upgrade, then --finish: the tree as format 1 had it, small files INLINE, no format-1 file and no orphan left, fsck clean; --rollback refused after', async (t) => {
  const b = await format1Box(t);
  const { box } = b;
  const blobs1 = blobAddresses(box.store);

  const up = await upgrade(box);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stderr, /^upgraded .+ to format 2: 12 files, 6 directories, 2 symlinks; their 18 pieces stay where they were \(no blob was rewritten\)$/m);
  t.regex(up.stderr, /kept as svault\.format1\.json and meta\.db; "svault upgrade --finish" removes them/);
  t.regex(up.stderr, /"svault upgrade --rollback" returns to format 1/);
  t.regex(up.stderr, /^next: .*svault upgrade --finish/m);
  t.is(formatOf(box.store), 2);
  t.deepEqual(blobAddresses(box.store), blobs1, 'the upgrade touched no blob');
  await checkTree(t, box.store, b.manifest);

  const check = await box.svault(['fsck', '--store', box.store]);
  t.is(check.code, 0, check.stdout);
  t.regex(check.stdout, /note: format-1 files kept for rollback: meta\.db, svault\.format1\.json/);
  const again = await upgrade(box);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, /is upgraded to format 2 already; its format-1 files are kept/);

  const smallBlobs = (await Promise.all(STILL_SMALL.map((p) => pieceBlobsOf(box.store, p)))).flat();
  await useAsFormat2(b);
  const before = await census(box.store);
  t.is(before.orphans.size, 2, '/tiny\'s piece and /big.bin\'s first, kept for a rollback');

  const fin = await upgrade(box, ['--finish']);
  t.is(fin.code, 0, fin.stderr);
  t.regex(fin.stderr, /^finished the upgrade of .+:$/m);
  t.regex(fin.stderr, /^ {2}5 small file\(s\) moved into their inodes \(4 blob\(s\) deleted\)$/m);
  t.regex(fin.stderr, /^ {2}2 blob\(s\) no file pointed to deleted/m);
  t.regex(fin.stderr, /^ {2}removed svault\.format1\.json, meta\.db$/m);
  t.regex(fin.stderr, /"svault upgrade --rollback" is no longer possible/);

  t.deepEqual(await inlineState(box.store, [...STILL_SMALL, ...MAPPED]), Object.fromEntries([...STILL_SMALL.map((p) => [p, true]), ...MAPPED.map((p) => [p, false])]));
  const after = await census(box.store);
  t.deepEqual(after.orphans, new Set());
  for (const hex of smallBlobs) t.false(blobAddresses(box.store).has(hex), 'an inlined file\'s blob is gone');
  // Format 1's chaff is gone, and every live piece has its derived chaff (10.2): the blobs are those two.
  t.deepEqual(after.format1Chaff, new Set());
  t.deepEqual(after.missingChaff, new Set());
  t.is(blobAddresses(box.store).size, before.referenced.size - smallBlobs.length + after.derivedChaff.size);
  t.regex(fin.stderr, new RegExp(`^ {2}format 1's chaff replaced: \\d+ chaff blob\\(s\\) written for format-1 pieces, ${before.format1Chaff.size} format-1 chaff blob\\(s\\) deleted$`, 'm'));
  for (const name of FORMAT1_FILES) t.false(existsSync(join(box.store, name)), name);
  t.false(existsSync(join(b.anchors, `${vaultIdOf(box.store)}.json`)), 'format 1\'s anchor is gone');
  await checkTree(t, box.store, b.manifest, ['/', '/tiny', '/big.bin', '/docs/big-again']);

  const clean = await box.svault(['fsck', '--store', box.store]);
  t.is(clean.code, 0, clean.stdout);
  t.regex(clean.stdout, /\n {2}clean\n$/);
  t.notRegex(clean.stdout, /note:/);
  const json = JSON.parse((await box.svault(['fsck', '--store', box.store, '--json'])).stdout) as { before: { orphans: number; notes: string[] } };
  t.like(json.before, { orphans: 0, notes: [] });

  const rb = await upgrade(box, ['--rollback', '--yes']);
  t.is(rb.code, 4, rb.stderr);
  t.regex(rb.stderr, /rollback refused: the format-1 files are gone \(svault upgrade --finish removed them/);
  t.notRegex(rb.stderr, STACK_TRACE);
  t.is(formatOf(box.store), 2);
  const twice = await upgrade(box, ['--finish']);
  t.is(twice.code, 0, twice.stderr);
  t.regex(twice.stderr, /the upgrade of .+ is finished already\./);
  const thrice = await upgrade(box);
  t.regex(thrice.stderr, /is format 2 already: there is nothing to upgrade/);
});

test('svault upgrade --rollback gives back the format-1 store as it was, with the upgrade\'s passphrase, and only with --yes', async (t) => {
  const b = await format1Box(t);
  const { box } = b;
  const config1 = readFileSync(join(box.store, 'svault.json'));
  const blobs1 = blobAddresses(box.store);
  t.is((await upgrade(box)).code, 0);
  await useAsFormat2(b);
  // A passphrase changed after the upgrade: svault.json only; svault.format1.json keeps the old one.
  const next = join(box.dir, 'next');
  writeFileSync(next, 'a newer passphrase\n');
  t.is((await box.svault(['passwd', '--store', box.store, '--new-passphrase-file', next])).code, 0);

  const asked = await upgrade(box, ['--rollback']);
  t.is(asked.code, 2, asked.stderr);
  t.regex(asked.stderr, /loses every change made in .+ since the upgrade: add --yes/);
  t.is(formatOf(box.store), 2, 'nothing was changed');
  const wrong = await upgrade(box, ['--rollback', '--yes'], { SVAULT_PASSPHRASE: 'a newer passphrase' });
  t.is(wrong.code, 3, wrong.stderr);
  t.regex(wrong.stderr, /--rollback takes the passphrase the vault had when it was upgraded/);
  t.is(formatOf(box.store), 2);

  const rb = await upgrade(box, ['--rollback', '--yes']);
  t.is(rb.code, 0, rb.stderr);
  t.regex(rb.stderr, /^rolled .+ back to format 1, as it was at the upgrade/m);
  t.is(formatOf(box.store), 1);
  t.deepEqual(readFileSync(join(box.store, 'svault.json')), config1, 'format 1\'s svault.json, byte for byte');
  for (const name of FORMAT2_FILES) t.false(existsSync(join(box.store, name)), name);
  t.false(existsSync(join(b.anchors, `${vaultIdOf(box.store)}.v2`)), 'format 2\'s anchor is gone');

  // Format 1 reads its tree as before the upgrade, and its sweep takes what format 2 wrote.
  const v1 = await Vault.open(box.store, UPGRADE_PASS, { anchorDir: b.anchors });
  try {
    for (const [path, data] of regularFiles()) t.true((await v1.readFile(path)).equals(data), path);
    for (const path of allPaths()) {
      const a = v1.getattr(path);
      t.like(b.manifest.get(path), { mode: a.mode, nlink: a.nlink, size: a.size, mtimeMs: a.mtime, ctimeMs: a.ctime }, path);
    }
    t.throws(() => v1.getattr('/made-in-format-2'), { message: /no such file/ });
    t.true(v1.recoveredFromCrash, 'the rollback left the unclean mark');
    t.true((await sweepOrphans(v1)).removed >= 2, 'format 2\'s pieces are orphans to format 1');
  } finally {
    await v1.close();
  }
  const left = blobAddresses(box.store);
  for (const hex of blobs1) t.true(left.has(hex), 'every format-1 blob is still there');
  // Format 1's own check finds it clean (this svault's fsck reads format 1 only to say "upgrade": 4.3).
  const v1check = await Vault.open(box.store, UPGRADE_PASS, { inspectOnly: true, noLock: true });
  try {
    const { report } = await scan(v1check, false);
    t.deepEqual([report.problems, report.orphans], [[], 0], 'format 1\'s fsck is clean');
  } finally {
    await v1check.close();
  }
  const f1 = await box.svault(['fsck', '--store', box.store]);
  t.is(f1.code, 4, 'this svault refuses to fsck format 1');
  t.regex(f1.stderr, /format 1: run svault upgrade/);

  const none = await upgrade(box, ['--rollback', '--yes']);
  t.is(none.code, 0, none.stderr);
  t.regex(none.stderr, /is format 1: there is nothing to roll back/);
  const up = await upgrade(box);
  t.is(up.code, 0, 'it can be upgraded again');
});

test('refusals: a locked store is exit 6, a wrong passphrase exit 3, --finish on format 1 exit 4, bad flags exit 2; an interrupted upgrade starts over', async (t) => {
  const b = await format1Box(t);
  const { box } = b;
  const lock = join(box.store, 'svault.lock');
  writeFileSync(lock, String(process.pid)); // a live process holds it, as a mount would
  const busy = await upgrade(box);
  t.is(busy.code, 6, busy.stderr);
  t.regex(busy.stderr, /already in use by process/);
  unlinkSync(lock);
  t.is(formatOf(box.store), 1);

  const wrong = await upgrade(box, [], { SVAULT_PASSPHRASE: 'not it' });
  t.is(wrong.code, 3, wrong.stderr);
  t.regex(wrong.stderr, /wrong passphrase/);
  t.is(formatOf(box.store), 1, 'nothing was converted');

  const early = await upgrade(box, ['--finish']);
  t.is(early.code, 4, early.stderr);
  t.regex(early.stderr, /format 1: run svault upgrade; there is no upgrade to finish/);
  for (const flags of [['--finish', '--rollback'], ['--finish', '--salvage'], ['--rollback', '--accept-rollback'], ['--yes']]) {
    const r = await upgrade(box, flags);
    t.is(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
  }

  // What an upgrade killed before its commit point leaves: format 1 reads on, and upgrade starts over.
  writeFileSync(join(box.store, 'svault.layout.json'), '{ "half": "written" }');
  writeFileSync(join(box.store, 'meta2.db'), 'not a database');
  t.is(formatOf(box.store), 'interrupted-upgrade');
  const up = await upgrade(box);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stderr, /an earlier upgrade or rollback was interrupted \(it left meta2\.db, svault\.layout\.json\): starting over/);
  await checkTree(t, box.store, b.manifest);

  writeFileSync(lock, String(process.pid));
  for (const flags of [['--finish'], ['--rollback', '--yes']]) t.is((await upgrade(box, flags)).code, 6, flags.join(' '));
  unlinkSync(lock);
  t.is((await upgrade(box, ['--finish'], { SVAULT_PASSPHRASE: 'not it' })).code, 3);
  t.true(existsSync(join(box.store, 'svault.format1.json')), 'a refused --finish removed nothing');

  const made = sandbox(t, 'upcli2');
  t.is((await made.svault(['init', '--store', made.store])).code, 0);
  const none = await made.svault(['upgrade', '--store', made.store]);
  t.is(none.code, 0, none.stderr);
  t.regex(none.stderr, /is format 2 already: there is nothing to upgrade/);
  t.regex((await made.svault(['upgrade', '--finish', '--store', made.store])).stderr, /was made as format 2: there is no upgrade to finish/);
  const rb = await made.svault(['upgrade', '--rollback', '--yes', '--store', made.store]);
  t.is(rb.code, 4);
  t.regex(rb.stderr, /rollback refused/);
  const nothing = await made.svault(['upgrade', '--store', join(made.dir, 'nowhere')]);
  t.is(nothing.code, 4);
  t.regex(nothing.stderr, /no vault here/);
});

test('a --finish killed after its first commit, after a commit of its walk and after its sweep, is reported by fsck and finishes when run again', async (t) => {
  const b = await format1Box(t);
  const { box } = b;
  t.is((await upgrade(box)).code, 0);
  await useAsFormat2(b);
  const smallBlobs = (await Promise.all(STILL_SMALL.map((p) => pieceBlobsOf(box.store, p)))).flat();

  const killed = await upgrade(box, ['--finish'], { SVAULT_CRASH_AT: 'upgrade.finish.stage2' });
  t.not(killed.code, 0, 'killed at the crash point');
  t.notRegex(killed.stderr, /finished/);
  let check = await box.svault(['fsck', '--store', box.store]);
  t.is(check.code, 0, check.stdout);
  t.regex(check.stdout, /note: svault upgrade --finish was interrupted at inode 0: run it again/);
  let rb = await upgrade(box, ['--rollback', '--yes']);
  t.is(rb.code, 4, rb.stderr);
  t.regex(rb.stderr, /rollback refused: svault upgrade --finish has begun/);

  const killedAgain = await upgrade(box, ['--finish'], { SVAULT_CRASH_AT: 'upgrade.finish.commit' });
  t.not(killedAgain.code, 0);
  check = await box.svault(['fsck', '--store', box.store]);
  t.is(check.code, 0, check.stdout);
  const at = /note: svault upgrade --finish was interrupted at inode (\d+): run it again/.exec(check.stdout);
  t.truthy(at, check.stdout);
  t.true(Number(at?.[1]) > 20, 'the walk was committed past every inode');
  t.regex(check.stdout, /note: 6 blob\(s\) no file points to, .* are deleted when svault upgrade --finish is run again/);
  for (const hex of smallBlobs) t.true(blobAddresses(box.store).has(hex), 'killed before the inlined files\' blobs were deleted');
  rb = await upgrade(box, ['--rollback', '--yes']);
  t.is(rb.code, 4);
  t.regex(rb.stderr, /rollback refused: the format-1 files are gone/);

  // Killed once more, after the sweep and before the last commit: the orphans are gone, the stage is still 2.
  const killedLast = await upgrade(box, ['--finish'], { SVAULT_CRASH_AT: 'upgrade.finish.swept' });
  t.not(killedLast.code, 0);
  t.deepEqual((await census(box.store)).orphans, new Set());
  for (const hex of smallBlobs) t.false(blobAddresses(box.store).has(hex), 'the blobs of the files made INLINE went in the sweep');
  t.regex((await box.svault(['fsck', '--store', box.store])).stdout, new RegExp(`note: svault upgrade --finish was interrupted at inode ${at?.[1]}: run it again`));

  const fin = await upgrade(box, ['--finish']);
  t.is(fin.code, 0, fin.stderr);
  t.regex(fin.stderr, new RegExp(`going on from inode ${at?.[1]}, where an earlier --finish stopped`));
  t.regex(fin.stderr, /^ {2}0 small file\(s\) moved into their inodes/m);
  t.regex(fin.stderr, /^ {2}0 blob\(s\) no file pointed to deleted/m);
  t.deepEqual((await census(box.store)).orphans, new Set());
  t.deepEqual(await inlineState(box.store, STILL_SMALL), Object.fromEntries(STILL_SMALL.map((p) => [p, true])));
  await checkTree(t, box.store, b.manifest, ['/', '/tiny', '/big.bin', '/docs/big-again']);
  const big = Buffer.from(contentOf('/big.bin'));
  Buffer.from('format 2 was here').copy(big);
  await looking(box.store, async (v) => t.true((await readAll2(v, '/big.bin')).equals(big), '/big.bin as format 2 rewrote it'));
  check = await box.svault(['fsck', '--store', box.store]);
  t.is(check.code, 0, check.stdout);
  t.notRegex(check.stdout, /note:/);
  t.regex(check.stdout, /\n {2}clean\n$/);
});

test('a damaged format-1 store: svault upgrade lists the problems and converts nothing (exit 4); --salvage converts the rest, and --finish deletes what it left out', async (t) => {
  const b = await format1Box(t);
  const { box } = b;
  const lostBlobs = await (async () => {
    const v1 = await Vault.open(box.store, UPGRADE_PASS, { inspectOnly: true, noLock: true });
    try {
      const inode = v1.inodeAt('/docs/full-4064');
      const db = new Database(join(box.store, META_FILE));
      db.prepare('DELETE FROM records WHERE k = ?').run(v1.check().meta.inodeRecordName(inode.id));
      db.close();
      return [...inode.pieces].map(([index, version]) => v1.check().pieces.pieceAddress(inode, index, version).toString('hex'));
    } finally {
      await v1.close();
    }
  })();
  const refused = await upgrade(box);
  t.is(refused.code, 4, refused.stderr);
  t.regex(refused.stderr, /^ {2}\/docs\/full-4064: /m);
  t.regex(refused.stderr, /nothing was converted: the format-1 metadata has 1 problem\(s\), listed above\. .*svault upgrade --salvage/);
  t.notRegex(refused.stderr, STACK_TRACE);
  t.is(formatOf(box.store), 1, 'no format-2 file was left');

  const salvaged = await upgrade(box, ['--salvage']);
  t.is(salvaged.code, 0, salvaged.stderr);
  t.regex(salvaged.stderr, /--salvage left out 1 path\(s\) it could not read; their blobs are kept until --finish deletes them:\n {4}\/docs\/full-4064: /);
  t.regex(salvaged.stderr, /11 files/);
  const check = await box.svault(['fsck', '--store', box.store]);
  t.is(check.code, 0, check.stdout);
  await checkTree(t, box.store, b.manifest, ['/docs', '/docs/full-4064']);

  const fin = await upgrade(box, ['--finish']);
  t.is(fin.code, 0, fin.stderr);
  t.regex(fin.stderr, /^ {2}1 blob\(s\) no file pointed to deleted/m);
  for (const hex of lostBlobs) t.false(blobAddresses(box.store).has(hex), 'the left-out file\'s blob is gone');
  t.deepEqual((await census(box.store)).orphans, new Set());
});
