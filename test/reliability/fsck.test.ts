// Issue 7, item 6: fsck --repair on every damage class, on a format-2 store (docs/format-2.md 5.10, 13).
// One pristine vault is built through the mount; each test damages its own copy of the store in one way
// (a piece blob, or a metadata record of meta2.db: an inode, a directory bucket, a map node of a big file, a
// spill record, the state record), then: `svault fsck` exits 7 and names the damaged inode (format 2 names
// inodes, never paths: security finding 11), and `fsck --json` reports exactly that damage; `svault fsck
// --repair` exits 8 and does what 5.10 says for that record kind; every healthy file reads back with the same
// sha256 after a remount; a second `svault fsck` exits 0. Whatever repair cannot fix, it must not make worse:
// no healthy file may lose its data.
//
// Where format 2 differs from format 1 on purpose, the tests assert format 2:
// - a file's name lives in its directory's inode (small directories) or in a bucket record (BIG_DIR, 300
//   entries), not in per-name entry records and listing pages. A damaged bucket is rewritten empty, and the
//   files it named come back, with their content, as `#<ino>` in the same directory (their parentIno);
// - a directory whose own record is damaged is made again, empty (mode 0700), under its ino, and its children
//   come back in it as `#<ino>` (5.10's adoption of its buckets, which would keep their names, is not built:
//   a known failure below);
// - a damaged map node of a big file makes its range of pieces lost in place (reads there fail with EIO);
// - a damaged state record is a store error (exit 4, with a clear message), for fsck and mount alike.

import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bucketOf } from '../../src/core/format2/dir-records.js';
import { FileType, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { MAP_NODE_SLOTS } from '../../src/core/format2/map-node.js';
import { META2_FILE } from '../../src/core/format2/record-table.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { CLI, mountedAt, PASSPHRASE, run, sh, type RunResult, type Sandbox } from '../helpers/cli.js';
import { emptyBox, ok, q, unmountAndCheck } from '../helpers/mount-util.js';
import {
  blobFiles,
  blobsOf2,
  fileBlobs2,
  changeRecord2,
  checkNothingLeftMountedAtAll,
  deleteRecord2,
  flipRecord2,
  readRecord2,
  recordNames2,
  rememberDir,
  sha256,
  STACK_TRACE,
  withVault2,
} from '../helpers/reliability-util.js';
import { CleanupList, snapshotDir, snapshotObject, tempDir } from '../helpers/temp-vault.js';

checkNothingLeftMountedAtAll(test);

/**
 * At most this many tests of the file run at once. Each runs several full checks (every piece read), a
 * repair and a mount: all twenty at once on a small machine push one CLI call past run()'s two minutes.
 */
const PARALLEL = 4;
let running = 0;
const waiting: (() => void)[] = [];
async function inTurn(fn: () => Promise<void>): Promise<void> {
  if (running >= PARALLEL) await new Promise<void>((go) => waiting.push(go));
  else running++;
  try {
    await fn();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}
/** test(), taking its turn. */
const check = (title: string, fn: (t: ExecutionContext) => Promise<void>) => test(title, (t) => inTurn(() => fn(t)));
/** test.failing(), taking its turn. */
const checkFailing = (title: string, fn: (t: ExecutionContext) => Promise<void>) => test.failing(title, (t) => inTurn(() => fn(t)));

const P = 16384;
/** Pieces of HUGE: more than an inode's map root holds (477), so its map has level-0 nodes 0 (pieces 0–493) and 1 (494–599). */
const HUGE_PIECES = 600;
const HUGE = 'huge';
/** A file of INLINE content with two xattrs of 3,000 bytes: one fits in the inode, the other spills (6.2). */
const ATTRS = 'attrs';
const FILES: Record<string, number> = {
  top1: 5 * P - 100,
  top2: 5000,
  'd/f1': 4 * P,
  'd/f2': 9000,
  'd/sub/g': 20_000,
  'e/h': 3 * P + 1,
  'e/i': 700, // INLINE: no blob
  'e/j': 1, // INLINE
  [ATTRS]: 10, // INLINE
  [HUGE]: HUGE_PIECES * P,
};
/** What the top level holds besides FILES' first components: the symlink and BIG_DIR. */
const TOP = ['top1', 'top2', 'd', 'e', ATTRS, HUGE, 'link', 'big'];
/**
 * A directory too big for inline entries: 300 files and one subdirectory, so its entries are in bucket
 * records (6.4). Every 25th file has a piece blob; the others are INLINE.
 */
const BIG_DIR = 'big';
const BIG_COUNT = 300;
const BIG_SUB = 'sub';
const hooks = new CleanupList();
let pristine = '';
const data = new Map<string, Buffer>();
/** BIG_DIR's files: name -> content. */
const bigData = new Map<string, Buffer>();
/** BIG_DIR/sub/x. */
let bigSubX = Buffer.alloc(0);
const xattrValues = new Map<string, string>([
  ['user.a', randomBytes(1500).toString('hex')],
  ['user.b', randomBytes(1500).toString('hex')],
]);
/** Blob files (absolute) of a file in another vault, to plant in ours. */
let foreignBlobs: { rel: string; abs: string }[] = [];

interface BigEntry {
  name: string;
  ino: number;
  bucket: number;
  dir: boolean;
  /** Whether it is a file with piece blobs (not INLINE). */
  pieces: boolean;
}

/** Where things are in the pristine store (and so in every copy of it). */
const at = {
  /** Inode numbers of FILES' paths, of their directories, of 'link' and of BIG_DIR and BIG_DIR/sub. */
  ino: new Map<string, number>(),
  big: { ino: 0, buckets: 0, entries: [] as BigEntry[] },
  /** ATTRS' xattrs kept in its inode, and those in its spill record. */
  attrs: { inline: [] as string[], spilled: [] as string[] },
};

const ino = (path: string): number => {
  const found = at.ino.get(path);
  if (found === undefined) throw new Error(`no ino for ${path}`);
  return found;
};

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
  const must = async (line: string) => {
    const r = await sh(line);
    if (r.code !== 0) throw new Error(`${line}: ${r.stderr}`);
  };
  await svault(['init', '--store', store, '--piece-size', String(P), '--chaff', '0.1']);
  await svault(['mount', '--store', store, mnt]);
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const [name, size] of Object.entries(FILES)) {
    const b = randomBytes(size);
    data.set(name, b);
    const from = join(src, name.replace(/\//g, '_'));
    writeFileSync(from, b);
    await must(`mkdir -p "$(dirname ${q(join(mnt, name))})" && cp ${q(from)} ${q(join(mnt, name))}`);
  }
  for (const [name, value] of xattrValues) {
    await must(`python3 -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())' ${q(join(mnt, ATTRS))} ${name} ${value}`);
  }
  await must(`ln -s top1 ${q(join(mnt, 'link'))}`);
  const bigSrc = join(src, BIG_DIR);
  mkdirSync(join(bigSrc, BIG_SUB), { recursive: true });
  for (let i = 0; i < BIG_COUNT; i++) {
    const name = `n${String(i).padStart(3, '0')}`;
    const b = randomBytes(i % 25 === 0 ? 4000 + i : 100 + i);
    bigData.set(name, b);
    writeFileSync(join(bigSrc, name), b);
  }
  bigSubX = randomBytes(5000);
  writeFileSync(join(bigSrc, BIG_SUB, 'x'), bigSubX);
  await must(`cp -r ${q(bigSrc)} ${q(join(mnt, BIG_DIR))}`);
  await svault(['unmount', mnt]);
  pristine = store;

  await withVault2(store, (v) => {
    const { md } = v.check();
    const paths = [...Object.keys(FILES), 'd', 'e', 'd/sub', 'link', BIG_DIR, `${BIG_DIR}/${BIG_SUB}`];
    for (const p of paths) at.ino.set(p, v.paths.idAt(`/${p}`));
    const big = md.requireInode(ino(BIG_DIR));
    if (big.primary.form !== 'buckets') throw new Error(`${BIG_DIR} has no buckets: ${big.primary.form}`);
    const { level, split } = big.primary;
    at.big.ino = big.ino;
    at.big.buckets = 2 ** level + split;
    at.big.entries = md.list(big.ino).map((e) => ({
      name: e.name.toString(),
      ino: e.ino,
      bucket: bucketOf(e.hash, level, split),
      dir: e.type === FileType.directory,
      pieces: e.type === FileType.regular && md.requireInode(e.ino).primary.form === 'map',
    }));
    if (at.big.buckets < 2) throw new Error(`${BIG_DIR} has ${at.big.buckets} bucket(s): the tests need two at least`);
    const hugeInode = md.requireInode(ino(HUGE));
    if (hugeInode.primary.form !== 'map' || hugeInode.primary.depth !== 1) throw new Error(`${HUGE} should have a map of depth 1`);
    const attrs = md.requireInode(ino(ATTRS));
    if (attrs.primary.form !== 'inline' || !attrs.spill) throw new Error(`${ATTRS} should be INLINE with spilled xattrs`);
    at.attrs.inline = attrs.xattrs.map((x) => x.name.toString());
    at.attrs.spilled = md
      .xattrs(attrs.ino)
      .map((x) => x.name.toString())
      .filter((n) => !at.attrs.inline.includes(n));
    if (at.attrs.inline.length === 0 || at.attrs.spilled.length === 0) throw new Error(`${ATTRS}: xattrs ${JSON.stringify(at.attrs)}`);
  });

  const foreign = join(dir, 'foreign');
  const other = await Vault2.create(foreign, PASSPHRASE, { pieceSize: P, chaffRatio: 0 }, { pieceWorker: false });
  try {
    const fh = other.paths.create('/theirs', 0o644, 0, 0);
    await other.write(fh, randomBytes(3 * P), 0);
    await other.release(fh);
    foreignBlobs = blobsOf2(other, '/theirs').map((rel) => ({ rel, abs: join(foreign, 'blobs', rel) }));
  } finally {
    await other.close();
  }
});

test.after.always(() => hooks.run());

/** A sandbox whose store is a fresh copy of the pristine store. */
async function copyOfPristine(t: ExecutionContext): Promise<Sandbox> {
  const box = emptyBox(t, 'fsck');
  await ok(t, `cp -a ${q(pristine)} ${q(box.store)}`);
  return box;
}

interface Problem {
  kind: string;
  ino?: number;
  detail: string;
}

interface FsckJson {
  before: { problems: Problem[]; orphans: number; quarantinedFiles: number };
  after?: FsckJson['before'];
}

interface Expectation {
  /** What fsck (without --repair) must print, naming the damaged inode. */
  report: RegExp;
  /** The problems (kind, inode) `fsck --json` must report. */
  problems: [string, number | undefined][];
  /** Other problems it may report as well (e.g. the children of a directory it could not list); none else. */
  alsoReported?: (p: Problem) => boolean;
  /** Exit codes accepted from fsck --repair. */
  repair: number[];
  /** Files (of FILES) whose data is damaged: everything else must survive intact. */
  damaged: string[];
  /** Damaged files that must be in /lost+found afterwards (as <name>.<ino>). */
  quarantined?: { path: string; badPiece: number }[];
  /** Files that must still be at their own path afterwards (default: every healthy file). */
  inPlace?: string[];
  /** Whether the symlink stays at /link (default: yes). */
  linkInPlace?: boolean;
  /** More checks while the repaired vault is mounted. */
  mounted?: (mnt: string) => Promise<unknown>;
}

/**
 * `svault fsck --store <store> ...extra`, its stdout and stderr written to files, not read through pipes: the checks
 * here are about what fsck finds and repairs ("fsck's report is whole when read through a pipe" checks pipes).
 */
async function fsckOut(box: Sandbox, extra: string[] = []): Promise<RunResult> {
  const out = join(box.dir, 'fsck.out');
  const err = join(box.dir, 'fsck.err');
  const line = [process.execPath, CLI, 'fsck', '--store', box.store, ...extra].map(q).join(' ');
  const r = await run('bash', ['-c', `${line} > ${q(out)} 2> ${q(err)}`], { env: box.env });
  return { code: r.code, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') + r.stderr };
}

/** The common check of one damage class. */
async function checkRepair(t: ExecutionContext, box: Sandbox, what: string, e: Expectation): Promise<void> {
  const blobsBefore = blobFiles(box.store).size;
  const f = await fsckOut(box);
  t.is(f.code, 7, `${what}: fsck exits 7: ${f.stdout.slice(0, 3000)}${f.stderr.slice(0, 800)}`);
  t.notRegex(f.stderr, STACK_TRACE, `${what}: fsck prints no stack trace`);
  t.regex(f.stdout, e.report, `${what}: fsck names the damage: ${f.stdout.slice(0, 3000)}`);
  for (const path of Object.keys(FILES).filter((n) => n.includes('/'))) t.false(f.stdout.includes(path), `${what}: fsck names inodes, not paths (${path})`);
  const j = await fsckOut(box, ['--json']);
  t.is(j.code, 7, `${what}: fsck --json exits 7`);
  const problems = (JSON.parse(j.stdout) as FsckJson).before.problems;
  const key = (kind: string, i: number | undefined) => `${kind}:${i ?? '-'}`;
  const reported = new Set(problems.map((p) => key(p.kind, p.ino)));
  for (const [kind, i] of e.problems) t.true(reported.has(key(kind, i)), `${what}: fsck --json reports ${kind} of inode ${i}: ${JSON.stringify(problems.slice(0, 10))}`);
  const wanted = new Set(e.problems.map(([kind, i]) => key(kind, i)));
  const others = problems.filter((p) => !wanted.has(key(p.kind, p.ino)) && !(e.alsoReported?.(p) ?? false));
  t.deepEqual(
    others.map((p) => `${p.kind}: ${p.detail}`),
    [],
    `${what}: fsck reports nothing but the damage`,
  );

  const r = await fsckOut(box, ['--repair']);
  t.log(`${what}: fsck --repair exit ${r.code}\n${r.stdout.trim().split('\n').filter((l) => !l.includes('nameless-inode')).join('\n')}${r.stderr.trim()}`);
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
  // Healthy files not required in place (in a damaged directory) must at least be somewhere, with their data.
  for (const n of healthy.filter((x) => !inPlace.includes(x))) {
    const found = await sh(`cd ${q(box.mnt)} && find . -type f -exec sha256sum {} + 2>/dev/null | grep ${sha256(data.get(n) as Buffer)}`);
    t.is(found.code, 0, `${what}: healthy ${n} (in the damaged directory) survives somewhere with its data`);
  }
  if (e.linkInPlace ?? true) t.is(await ok(t, `readlink ${q(join(box.mnt, 'link'))}`), 'top1\n', `${what}: the symlink survives`);
  await e.mounted?.(box.mnt);
  for (const qf of e.quarantined ?? []) {
    const base = qf.path.split('/').pop() as string;
    const where = join(box.mnt, 'lost+found', `${base}.${ino(qf.path)}`);
    const size = await sh(`stat -c %s ${q(where)}`);
    t.is(size.stdout.trim(), String(FILES[qf.path]), `${what}: ${qf.path} is quarantined in /lost+found with its size`);
    t.is((await sh(`stat ${q(join(box.mnt, qf.path))}`)).code, 1, `${what}: ${qf.path} is no longer at its path`);
    await checkPieces(t, where, qf.path, [qf.badPiece], [qf.badPiece === 0 ? 1 : 0], what);
  }
  await unmountAndCheck(t, box);
  const again = await fsckOut(box);
  if (r.code === 8) t.is(again.code, 0, `${what}: a second fsck after a successful repair is clean: ${again.stdout.slice(0, 3000)}`);
  else t.is(again.code, 7, `${what}: fsck still reports what could not be repaired: ${again.stdout.slice(0, 3000)}`);
}

/** Reads pieces of a file in the mount: the bad ones must fail with EIO, the good ones read back the original bytes of FILES[path]. */
async function checkPieces(t: ExecutionContext, where: string, path: string, bad: number[], good: number[], what: string): Promise<void> {
  for (const i of bad) {
    const r = await sh(`dd if=${q(where)} bs=${P} skip=${i} count=1 status=none > /dev/null`);
    t.regex(r.stderr, /Input\/output error/, `${what}: the damaged piece ${i} of ${path} fails with EIO`);
  }
  for (const i of good) {
    const r = await sh(`dd if=${q(where)} bs=${P} skip=${i} count=1 status=none | sha256sum`);
    t.is(r.stdout.split(' ')[0], sha256((data.get(path) as Buffer).subarray(i * P, (i + 1) * P)), `${what}: the intact piece ${i} of ${path} still reads`);
  }
}

function blobAbs(box: Sandbox, rel: string): string {
  return join(box.store, 'blobs', rel);
}

/** Flips one bit of a blob file. */
function flipBlob(box: Sandbox, rel: string, offset = 777): void {
  const b = readFileSync(blobAbs(box, rel));
  b[offset] = (b[offset] as number) ^ 0x04;
  writeFileSync(blobAbs(box, rel), b);
}

/** The path (in the mount) of the file with inode number i, or '' (st_ino is the inode number: section 14). */
async function pathOfIno(mnt: string, i: number): Promise<string> {
  return (await sh(`find ${q(mnt)} -xdev -inum ${i}`)).stdout.trim();
}

// ---- BIG_DIR ----

const bigEntry = (name: string): BigEntry => {
  const e = at.big.entries.find((x) => x.name === name);
  if (!e) throw new Error(`no entry ${name} in ${BIG_DIR}`);
  return e;
};
const bucketOfName = (name: string) => bigEntry(name).bucket;
const inBucket = (bucket: number) => at.big.entries.filter((e) => e.bucket === bucket);
/** The bucket with the most files that have piece blobs (so at least two: 12 such files in two buckets or more). */
function bucketWithPieces(): number {
  const counts = new Map<number, number>();
  for (const e of at.big.entries.filter((x) => x.pieces)) counts.set(e.bucket, (counts.get(e.bucket) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
}

/** The sha256 of every regular file directly in dir (a path in the mount), by name. */
async function hashesIn(dir: string): Promise<Map<string, string>> {
  const out = await sh(`cd ${q(dir)} && find . -maxdepth 1 -type f -exec sha256sum {} +`);
  const hashes = new Map<string, string>();
  for (const line of out.stdout.split('\n').filter(Boolean)) hashes.set(line.slice(66).replace(/^\.\//, ''), line.slice(0, 64));
  return hashes;
}

/**
 * What BIG_DIR's files must be after a repair: the names of the damaged buckets come back as `#<ino>`
 * (format 2's repair of a bucket: 5.10), every other name is kept; each with its own content.
 */
function expectedBig(damagedBuckets: number[] = [], without: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of at.big.entries) {
    if (e.dir || without.includes(e.name)) continue;
    out.set(damagedBuckets.includes(e.bucket) ? `#${e.ino}` : e.name, sha256(bigData.get(e.name) as Buffer));
  }
  return out;
}

/** Sorted, for comparing maps whatever order find gives. */
const sorted = (m: Map<string, string>) => [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/** What fsck may also report when BIG_DIR cannot be listed whole: its children as nameless, and its link count (the walk could not see its subdirectory). */
const bigUnlisted = (p: Problem) => (p.kind === 'nameless-inode' && at.big.entries.some((e) => e.ino === p.ino)) || (p.kind === 'bad-link-count' && p.ino === at.big.ino);

const bucketReport = (kind: string, bucket: number, detail = '') => new RegExp(`^  ${kind}: (what inode ${at.big.ino} owns|directory ${at.big.ino}): directory ${at.big.ino}, bucket ${bucket}: ${detail}`, 'm');

/** Checks BIG_DIR after a repair that rewrote `buckets` empty: every file reads back, under `#<ino>` for theirs. */
async function checkBig(t: ExecutionContext, mnt: string, what: string, buckets: number[], without: string[] = []): Promise<void> {
  t.deepEqual(sorted(await hashesIn(join(mnt, BIG_DIR))), sorted(expectedBig(buckets, without)), `${what}: every healthy file of ${BIG_DIR} reads back byte-identical (as #<ino> where its bucket was damaged)`);
  const sub = buckets.includes(bucketOfName(BIG_SUB)) ? `#${ino(`${BIG_DIR}/${BIG_SUB}`)}` : BIG_SUB;
  t.is((await ok(t, `sha256sum ${q(join(mnt, BIG_DIR, sub, 'x'))}`)).split(' ')[0], sha256(bigSubX), `${what}: ${BIG_DIR}/${sub}/x reads back`);
  t.is((await ok(t, `stat -c %h ${q(join(mnt, BIG_DIR))}`)).trim(), '3', `${what}: ${BIG_DIR} keeps its link count (one subdirectory)`);
}

// ---- pieces and blobs ----

check('bit flip in a piece: fsck names the inode (bad-piece); repair quarantines the file into /lost+found (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const blob = await withVault2(box.store, (v) => blobsOf2(v, '/d/f1')[2] as string);
  flipBlob(box, blob);
  await checkRepair(t, box, 'bit flip', {
    report: new RegExp(`^  bad-piece: inode ${ino('d/f1')}: piece 2 \\(version \\d+\\)`, 'm'),
    problems: [['bad-piece', ino('d/f1')]],
    repair: [8],
    damaged: ['d/f1'],
    quarantined: [{ path: 'd/f1', badPiece: 2 }],
  });
});

check('truncated blob: fsck names the inode (bad-piece); repair quarantines the file (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const blob = await withVault2(box.store, (v) => blobsOf2(v, '/top1')[0] as string);
  truncateSync(blobAbs(box, blob), statSync(blobAbs(box, blob)).size - 1000);
  await checkRepair(t, box, 'truncated blob', {
    report: new RegExp(`^  bad-piece: inode ${ino('top1')}: piece 0 `, 'm'),
    problems: [['bad-piece', ino('top1')]],
    repair: [8],
    damaged: ['top1'],
    quarantined: [{ path: 'top1', badPiece: 0 }],
  });
});

check('deleted blob: fsck names the inode (missing-piece); repair quarantines the file (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const blob = await withVault2(box.store, (v) => blobsOf2(v, '/e/h')[1] as string);
  unlinkSync(blobAbs(box, blob));
  await checkRepair(t, box, 'deleted blob', {
    report: new RegExp(`^  missing-piece: inode ${ino('e/h')}: piece 1 \\(version \\d+\\) is missing`, 'm'),
    problems: [['missing-piece', ino('e/h')]],
    repair: [8],
    damaged: ['e/h'],
    quarantined: [{ path: 'e/h', badPiece: 1 }],
  });
});

check('orphan blobs (from another vault, at their own and at another path, and a leftover): repair deletes exactly them (8)', async (t) => {
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
  await checkRepair(t, box, 'orphans', { report: /^ {2}3 orphaned blob\(s\)/m, problems: [], repair: [8], damaged: [] });
  t.deepEqual([...blobFiles(box.store)].sort(), [...before].sort(), 'exactly the planted blobs are gone; chaff and pieces stay');
});

// ---- inode records ----

check('damaged inode record of a file: fsck names the inode; repair drops the unreadable file and exactly its blobs (8); healthy files intact', async (t) => {
  const box = await copyOfPristine(t);
  const gBlobs = await withVault2(box.store, (v) => {
    const blobs = fileBlobs2(v, '/d/sub/g'); // pieces and chaff, before its record is damaged
    flipRecord2(box.store, recordNames2(v).inode(ino('d/sub/g')));
    return blobs;
  });
  const blobsBefore = blobFiles(box.store);
  await checkRepair(t, box, 'file inode record', {
    report: new RegExp(`^  bad-record: inode ${ino('d/sub/g')}: `, 'm'),
    problems: [['bad-record', ino('d/sub/g')]],
    repair: [8],
    damaged: ['d/sub/g'],
    mounted: async (mnt) => {
      t.is(await ok(t, `ls -A ${q(join(mnt, 'd/sub'))}`), '', 'its entry is gone from /d/sub');
      t.is(await pathOfIno(mnt, ino('d/sub/g')), '', 'and it is nowhere else');
    },
  });
  t.deepEqual([...blobFiles(box.store)].sort(), [...blobsBefore].filter((b) => !gBlobs.includes(b)).sort(), "exactly the dropped file's blobs are deleted");
});

check('inode record cut short (a malformed row): fsck reports the record and the row; repair drops the file and the row (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => changeRecord2(box.store, recordNames2(v).inode(ino('top2')), (b) => b.subarray(0, 3000)));
  await checkRepair(t, box, 'short inode row', {
    report: new RegExp(`^  bad-record: inode ${ino('top2')}: .*3000 bytes`, 'm'),
    problems: [
      ['bad-record', ino('top2')],
      ['malformed-row', undefined],
    ],
    repair: [8],
    damaged: ['top2'],
    mounted: async (mnt) => t.is((await sh(`stat ${q(join(mnt, 'top2'))}`)).code, 1, 'top2 is gone'),
  });
  const db = new Database(join(box.store, META2_FILE), { readonly: true });
  try {
    const bad = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM r WHERE length(k) != 32 OR length(v) != 4000').get();
    t.is(bad?.n, 0, 'every row of meta2.db is a 32-byte name and a 4,000-byte value again');
  } finally {
    db.close();
  }
});

// ---- directory buckets (a directory's entries, when they do not fit its inode) ----

check(`damaged bucket record of a directory of ${BIG_COUNT + 1} entries: fsck names the directory; repair rewrites it empty and its files come back as #<ino> beside the others (8)`, async (t) => {
  const box = await copyOfPristine(t);
  const bucket = at.big.entries.find((e) => e.bucket !== bucketOfName(BIG_SUB))?.bucket ?? 0;
  t.true(inBucket(bucket).length > 50, 'the damaged bucket names many files');
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).bucket(at.big.ino, bucket)));
  await checkRepair(t, box, 'damaged bucket', {
    report: bucketReport('bad-record', bucket, 'fails authentication'),
    problems: [['bad-record', at.big.ino]],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      await checkBig(t, mnt, 'damaged bucket', [bucket]);
      t.is((await ok(t, `ls -A ${q(join(mnt, BIG_DIR))} | wc -l`)).trim(), String(BIG_COUNT + 1), `${BIG_DIR} holds all its ${BIG_COUNT + 1} entries again`);
      t.is(await pathOfIno(mnt, ino(BIG_DIR)), join(mnt, BIG_DIR));
      t.is((await sh(`ls -A ${q(join(mnt, 'lost+found'))} 2>/dev/null | wc -l`)).stdout.trim(), '0', 'nothing went to /lost+found');
    },
  });
});

check('missing bucket record of a directory: fsck names the directory (missing-record); repair brings its files back as #<ino> (8)', async (t) => {
  const box = await copyOfPristine(t);
  const bucket = at.big.entries.find((e) => e.bucket !== bucketOfName(BIG_SUB))?.bucket ?? 0;
  await withVault2(box.store, (v) => deleteRecord2(box.store, recordNames2(v).bucket(at.big.ino, bucket)));
  await checkRepair(t, box, 'missing bucket', {
    report: bucketReport('missing-record', bucket, 'no record'),
    problems: [['missing-record', at.big.ino]],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: (mnt) => checkBig(t, mnt, 'missing bucket', [bucket]),
  });
});

check('replayed bucket record (an unlink undone): fsck says stale-record; repair does not bring the unlinked file back, and keeps every other (8)', async (t) => {
  const box = await copyOfPristine(t);
  const bucket = bucketWithPieces();
  const victim = inBucket(bucket).find((e) => e.pieces) as BigEntry;
  const name = await withVault2(box.store, (v) => recordNames2(v).bucket(at.big.ino, bucket));
  const old = readRecord2(box.store, name);
  const victimBlobs = await withVault2(box.store, (v) => fileBlobs2(v, `/${BIG_DIR}/${victim.name}`));
  t.is((await box.mount()).code, 0);
  await ok(t, `rm ${q(join(box.mnt, BIG_DIR, victim.name))}`);
  await unmountAndCheck(t, box);
  for (const b of victimBlobs) t.false(blobFiles(box.store).has(b), 'the unlinked file\'s blobs went with it');
  changeRecord2(box.store, name, () => old);
  await checkRepair(t, box, 'replayed bucket', {
    report: bucketReport('stale-record', bucket, 'record from commit \\d+, expected \\d+'),
    problems: [['stale-record', at.big.ino]],
    // The replayed bucket names the unlinked file, but it cannot be listed, so nothing dangles: its own
    // children are nameless until the repair.
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      await checkBig(t, mnt, 'replayed bucket', [bucket], [victim.name]);
      t.is(await pathOfIno(mnt, victim.ino), '', 'the unlinked file stays unlinked');
    },
  });
  for (const b of victimBlobs) t.false(blobFiles(box.store).has(b), 'and its blobs do not come back');
});

check('damaged bucket naming a file with a damaged piece and a file with a damaged inode: quarantined and dropped like anywhere else (8)', async (t) => {
  const box = await copyOfPristine(t);
  const bucket = bucketWithPieces();
  const [pieceBad, inodeBad] = inBucket(bucket).filter((e) => e.pieces) as [BigEntry, BigEntry];
  const blob = await withVault2(box.store, (v) => {
    const first = blobsOf2(v, `/${BIG_DIR}/${pieceBad.name}`)[0] as string; // before its name is damaged
    flipRecord2(box.store, recordNames2(v).bucket(at.big.ino, bucket));
    flipRecord2(box.store, recordNames2(v).inode(inodeBad.ino));
    return first;
  });
  flipBlob(box, blob, 40);
  await checkRepair(t, box, 'damaged bucket with damaged files', {
    report: bucketReport('bad-record', bucket),
    problems: [
      ['bad-record', at.big.ino],
      ['bad-record', inodeBad.ino],
      ['bad-piece', pieceBad.ino],
    ],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      await checkBig(t, mnt, 'damaged bucket with damaged files', [bucket], [pieceBad.name, inodeBad.name]);
      // Its name went with the bucket: it is in /lost+found under `#<ino>.<ino>` (its name there, `#<ino>`, and its ino).
      const where = await pathOfIno(mnt, pieceBad.ino);
      t.is(where.startsWith(join(mnt, 'lost+found') + '/'), true, `the file with the damaged piece is quarantined in /lost+found: ${where}`);
      t.is((await sh(`ls -A ${q(join(mnt, 'lost+found'))}`)).stdout.trim().split('\n').length, 1, 'nothing else is');
      if (where) {
        t.is((await ok(t, `stat -c %s ${q(where)}`)).trim(), String((bigData.get(pieceBad.name) as Buffer).length), 'with its size');
        t.regex((await sh(`cat ${q(where)} > /dev/null`)).stderr, /Input\/output error/, 'its damaged piece still fails with EIO');
      }
      t.is(await pathOfIno(mnt, inodeBad.ino), '', 'the file whose inode was damaged is gone');
    },
  });
});

check('damaged bucket naming a subdirectory: the subdirectory comes back as #<ino> with everything under it, link counts right (8)', async (t) => {
  const box = await copyOfPristine(t);
  const bucket = bucketOfName(BIG_SUB);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).bucket(at.big.ino, bucket)));
  await checkRepair(t, box, 'bucket with a subdirectory', {
    report: bucketReport('bad-record', bucket),
    problems: [['bad-record', at.big.ino]],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      await checkBig(t, mnt, 'bucket with a subdirectory', [bucket]);
      const sub = join(mnt, BIG_DIR, `#${ino(`${BIG_DIR}/${BIG_SUB}`)}`);
      t.is(await ok(t, `ls -A ${q(sub)}`), 'x\n', 'the subdirectory holds what it held');
      t.is((await ok(t, `stat -c %h ${q(sub)}`)).trim(), '2');
    },
  });
});

check('damaged bucket, and the inode record of a file it names: the rest comes back, the unreadable file is dropped with exactly its blobs (8)', async (t) => {
  const box = await copyOfPristine(t);
  const bucket = bucketWithPieces();
  const lost = inBucket(bucket).find((e) => e.pieces) as BigEntry;
  const lostBlobs = await withVault2(box.store, (v) => {
    const blobs = fileBlobs2(v, `/${BIG_DIR}/${lost.name}`); // pieces and chaff
    flipRecord2(box.store, recordNames2(v).inode(lost.ino));
    flipRecord2(box.store, recordNames2(v).bucket(at.big.ino, bucket));
    return blobs;
  });
  t.true(lostBlobs.length > 0);
  const blobsBefore = blobFiles(box.store);
  await checkRepair(t, box, 'bucket and inode record', {
    report: bucketReport('bad-record', bucket),
    problems: [
      ['bad-record', at.big.ino],
      ['bad-record', lost.ino],
    ],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      await checkBig(t, mnt, 'bucket and inode record', [bucket], [lost.name]);
      t.is((await sh(`ls -A ${q(join(mnt, 'lost+found'))} 2>/dev/null | wc -l`)).stdout.trim(), '0', 'nothing unreadable is put in /lost+found');
    },
  });
  const expected = [...blobsBefore].filter((b) => !lostBlobs.includes(b)).sort();
  t.deepEqual([...blobFiles(box.store)].sort(), expected, "exactly the unreadable file's blobs are deleted");
});

// ---- directory inode records ----

check('damaged inode record of a small directory (entries inline): repair makes it again (0700) under its ino, its files back in it as #<ino> (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).inode(ino('e'))));
  const children = ['e/h', 'e/i', 'e/j'];
  await checkRepair(t, box, 'directory inode record', {
    report: new RegExp(`^  bad-record: inode ${ino('e')}: `, 'm'),
    problems: [['bad-record', ino('e')]],
    // Its entries were in its record: its children are nameless until the repair.
    alsoReported: (p) => p.kind === 'nameless-inode' && children.some((c) => ino(c) === p.ino),
    repair: [8],
    damaged: [],
    inPlace: Object.keys(FILES).filter((n) => !n.startsWith('e/')),
    mounted: async (mnt) => {
      t.is((await ok(t, `stat -c %a ${q(join(mnt, 'e'))}`)).trim(), '700', '/e is made again with mode 0700');
      t.is(await ok(t, `ls -A ${q(join(mnt, 'e'))}`), children.map((c) => `#${ino(c)}`).sort().join('\n') + '\n', '/e holds its files, by inode number');
      for (const c of children) t.is((await ok(t, `sha256sum ${q(join(mnt, 'e', `#${ino(c)}`))}`)).split(' ')[0], sha256(data.get(c) as Buffer), `${c} reads back`);
    },
  });
});

check(`damaged inode record of a directory with buckets and one of its buckets: repair makes it again (0700); all its ${BIG_COUNT + 1} entries come back in it, the damaged bucket's as #<ino> (8)`, async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => {
    flipRecord2(box.store, recordNames2(v).inode(at.big.ino));
    flipRecord2(box.store, recordNames2(v).bucket(at.big.ino, 0));
  });
  await checkRepair(t, box, 'directory inode and bucket', {
    report: new RegExp(`^  bad-record: inode ${at.big.ino}: `, 'm'),
    problems: [['bad-record', at.big.ino]],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      // Bucket 0's names are lost with it: #<ino>. The other buckets' names are kept once 5.10's adoption is
      // built (see the known failure below); until then they come back as #<ino> too. Either way, with its content.
      const got = await hashesIn(join(mnt, BIG_DIR));
      const missing = at.big.entries
        .filter((e) => !e.dir)
        .filter((e) => !(e.bucket === 0 ? [`#${e.ino}`] : [e.name, `#${e.ino}`]).some((n) => got.get(n) === sha256(bigData.get(e.name) as Buffer)))
        .map((e) => e.name);
      t.deepEqual(missing, [], `every file of ${BIG_DIR} is back in it with its content (bucket 0's as #<ino>)`);
      t.is(got.size, BIG_COUNT, 'and nothing else');
      const subIno = ino(`${BIG_DIR}/${BIG_SUB}`);
      const sub = bucketOfName(BIG_SUB) === 0 ? [`#${subIno}`] : [BIG_SUB, `#${subIno}`];
      const x = await Promise.all(sub.map(async (n) => (await sh(`sha256sum ${q(join(mnt, BIG_DIR, n, 'x'))}`)).stdout.split(' ')[0]));
      t.true(x.includes(sha256(bigSubX)), `${BIG_DIR}/${BIG_SUB}/x reads back`);
      t.is((await ok(t, `stat -c %h ${q(join(mnt, BIG_DIR))}`)).trim(), '3', `${BIG_DIR} keeps its link count (one subdirectory)`);
      t.is((await ok(t, `stat -c %a ${q(join(mnt, BIG_DIR))}`)).trim(), '700', `${BIG_DIR} is made again with mode 0700`);
    },
  });
});

// 5.10: a directory whose inode is damaged is recreated and "its buckets are adopted" (found by their derivable
// names, opened at their claimed versions, reported as recovered), so its names are kept. Known defect: adoption is
// not built (fsck2-repair.ts says so): the repair brings every child back as #<ino> instead, with its data (the
// test above), and this test fails on its first check of the names. Make it a plain test() once adoption is built.
checkFailing(`damaged inode record of a directory with buckets: repair adopts its sound buckets, so its ${BIG_COUNT + 1} names are kept (5.10)`, async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).inode(at.big.ino)));
  await checkRepair(t, box, 'directory inode, buckets adopted', {
    report: new RegExp(`^  bad-record: inode ${at.big.ino}: `, 'm'),
    problems: [['bad-record', at.big.ino]],
    alsoReported: bigUnlisted,
    repair: [8],
    damaged: [],
    mounted: (mnt) => checkBig(t, mnt, 'directory inode, buckets adopted', []),
  });
});

check('damaged inode record of the root: repair makes the root again and deletes nothing; every file survives under #<ino> (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).inode(ROOT_INO)));
  const blobsBefore = blobFiles(box.store);
  const top = TOP.map((n) => ino(n === 'big' ? BIG_DIR : n));
  await checkRepair(t, box, 'root inode record', {
    report: /^ {2}bad-record: inode 1: /m,
    problems: [['bad-record', ROOT_INO]],
    alsoReported: (p) => p.kind === 'nameless-inode' && p.ino !== undefined && top.includes(p.ino),
    repair: [8],
    damaged: [],
    inPlace: [],
    linkInPlace: false,
    mounted: async (mnt) => {
      t.is(await ok(t, `ls -A ${q(mnt)}`), top.map((i) => `#${i}`).sort().join('\n') + '\n', 'the root holds every top-level entry, by inode number');
      for (const n of Object.keys(FILES)) {
        const [first, ...rest] = n.split('/');
        const path = join(mnt, `#${ino(first as string)}`, ...rest);
        t.is((await ok(t, `sha256sum ${q(path)}`)).split(' ')[0], sha256(data.get(n) as Buffer), `${n} reads back at ${path}`);
      }
      t.is(await ok(t, `readlink ${q(join(mnt, `#${ino('link')}`))}`), 'top1\n', 'the symlink keeps its target');
      t.deepEqual(sorted(await hashesIn(join(mnt, `#${at.big.ino}`))), sorted(expectedBig()), `${BIG_DIR} keeps its names`);
    },
  });
  t.deepEqual([...blobFiles(box.store)].sort(), [...blobsBefore].sort(), 'no blob was deleted');
});

// ---- map nodes and spill records ----

check('damaged map node of a big file: fsck names the inode; repair makes its pieces lost in place, reads there fail with EIO, the rest reads (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).mapNode(ino(HUGE), 0, 1)));
  await checkRepair(t, box, 'map node', {
    report: new RegExp(`^  bad-record: (what inode ${ino(HUGE)} owns|the piece map of inode ${ino(HUGE)}): .*\\(level 0, node 1\\): fails authentication`, 'm'),
    problems: [['bad-record', ino(HUGE)]],
    repair: [8],
    damaged: [HUGE],
    mounted: async (mnt) => {
      const where = join(mnt, HUGE);
      t.is((await ok(t, `stat -c %s ${q(where)}`)).trim(), String(FILES[HUGE]), `${HUGE} stays at its path with its size (format 2 quarantines under a map node in place)`);
      await checkPieces(t, where, HUGE, [MAP_NODE_SLOTS, HUGE_PIECES - 1], [], 'map node');
      const head = await ok(t, `head -c ${MAP_NODE_SLOTS * P} ${q(where)} | sha256sum`);
      t.is(head.split(' ')[0], sha256((data.get(HUGE) as Buffer).subarray(0, MAP_NODE_SLOTS * P)), `pieces 0 to ${MAP_NODE_SLOTS - 1}, under the sound node, read back`);
    },
  });
  const again = await fsckOut(box, ['--json']);
  t.is(again.code, 0, again.stderr);
  t.like((JSON.parse(again.stdout) as FsckJson).before, { problems: [], quarantinedFiles: 1 }, 'fsck counts the file with lost pieces, and is clean');
});

check('replayed map node (part of a big file rolled back): fsck says stale-record; repair serves neither the old nor the new content there (8)', async (t) => {
  const box = await copyOfPristine(t);
  const name = await withVault2(box.store, (v) => recordNames2(v).mapNode(ino(HUGE), 0, 1));
  const old = readRecord2(box.store, name);
  const piece = MAP_NODE_SLOTS + 6;
  t.is((await box.mount()).code, 0);
  await ok(t, `head -c ${P} /dev/urandom | dd of=${q(join(box.mnt, HUGE))} bs=${P} seek=${piece} count=1 conv=notrunc status=none`);
  await unmountAndCheck(t, box);
  changeRecord2(box.store, name, () => old);
  await checkRepair(t, box, 'replayed map node', {
    report: new RegExp(`^  stale-record: (what inode ${ino(HUGE)} owns|the piece map of inode ${ino(HUGE)}): .*\\(level 0, node 1\\): record from commit \\d+, expected \\d+`, 'm'),
    problems: [['stale-record', ino(HUGE)]],
    repair: [8],
    damaged: [HUGE],
    mounted: async (mnt) => {
      const where = join(mnt, HUGE);
      await checkPieces(t, where, HUGE, [piece, MAP_NODE_SLOTS], [0, MAP_NODE_SLOTS - 1], 'replayed map node');
    },
  });
});

check('damaged spill record: fsck names the inode; repair drops the xattrs in it, keeps the ones in the inode and the content (8)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).spill(ino(ATTRS), 0)));
  const getxattr = async (path: string, name: string) =>
    (await sh(`python3 -c 'import os, sys
try: sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())
except OSError as e: sys.stdout.write("errno %d" % e.errno)' ${q(path)} ${name}`)).stdout;
  await checkRepair(t, box, 'spill record', {
    report: new RegExp(`^  bad-record: what inode ${ino(ATTRS)} owns: inode ${ino(ATTRS)}, spill record 0: `, 'm'),
    problems: [['bad-record', ino(ATTRS)]],
    repair: [8],
    damaged: [],
    mounted: async (mnt) => {
      for (const n of at.attrs.inline) t.is(await getxattr(join(mnt, ATTRS), n), xattrValues.get(n) as string, `${n}, in the inode, is kept`);
      for (const n of at.attrs.spilled) t.is(await getxattr(join(mnt, ATTRS), n), 'errno 61', `${n}, in the spill record, is dropped (ENODATA)`);
    },
  });
});

// ---- the state record, and fsck without --repair ----

check('damaged state record: fsck, mount and fsck --repair exit 4 with a clear message (no stack trace) and change nothing', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => flipRecord2(box.store, recordNames2(v).state()));
  const before = snapshotObject(snapshotDir(box.store));
  const f = await fsckOut(box);
  t.is(f.code, 4, `fsck: ${f.stdout}${f.stderr}`);
  t.notRegex(f.stderr, STACK_TRACE, 'a damaged record is a store problem, not an internal error with a stack trace');
  t.regex(f.stderr, /the store is damaged: the state record: /);
  const m = await box.mount();
  t.is(m.code, 4, `mount: ${m.stderr}`);
  t.notRegex(m.stderr, STACK_TRACE);
  t.false(mountedAt(box.mnt));
  const r = await fsckOut(box, ['--repair']);
  t.is(r.code, 4, `fsck --repair: ${r.stdout}${r.stderr}`);
  t.notRegex(r.stderr, STACK_TRACE);
  t.deepEqual(snapshotObject(snapshotDir(box.store)), before, 'nothing in the store changed');
});

check('fsck without --repair leaves every file of the store as it was, damage found or not (no version reservation, no write)', async (t) => {
  const box = await copyOfPristine(t);
  await withVault2(box.store, (v) => {
    flipBlob(box, blobsOf2(v, '/top1')[0] as string, 100);
    flipRecord2(box.store, recordNames2(v).bucket(at.big.ino, 0));
    flipRecord2(box.store, recordNames2(v).mapNode(ino(HUGE), 0, 0));
    flipRecord2(box.store, recordNames2(v).inode(ino('d/f2')));
  });
  // withVault2 above opened the store without the lock, as info does; the snapshot is taken after it.
  const before = snapshotObject(snapshotDir(box.store));
  const f = await fsckOut(box);
  t.is(f.code, 7, f.stdout.slice(0, 3000) + f.stderr);
  t.deepEqual(snapshotObject(snapshotDir(box.store)), before, 'fsck wrote to the store');
  const again = await fsckOut(box);
  t.is(again.code, 7, 'and says the same the second time');
  t.is(again.stdout, f.stdout);
  t.deepEqual(snapshotObject(snapshotDir(box.store)), before);
});

// The CLI once ended with process.exit() right after printing, and Node writes to a pipe asynchronously once
// the pipe is full: a report of more than about 64 KiB (here a damaged bucket of 1,500 names: one
// nameless-inode line each) read through a pipe (`svault fsck | less`, `svault fsck --json | jq`) lost its
// last lines, or was invalid JSON. It now exits once stdout has drained (exitAfterOutput in cli.ts).
check("fsck's report is whole when read through a pipe (a report of over 64 KiB)", async (t) => {
  const box = emptyBox(t, 'fsck');
  const v = await Vault2.create(box.store, PASSPHRASE, { pieceSize: P, chaffRatio: 0 }, { pieceWorker: false });
  try {
    v.paths.mkdir('/many', 0o755, 0, 0);
    for (let i = 0; i < 1500; i++) await v.release(v.paths.create(`/many/n${String(i).padStart(4, '0')}`, 0o644, 0, 0));
  } finally {
    await v.close();
  }
  await withVault2(box.store, (w) => flipRecord2(box.store, recordNames2(w).bucket(w.paths.idAt('/many'), 0)));
  const whole = await fsckOut(box);
  t.is(whole.code, 7, whole.stderr);
  t.true(whole.stdout.length > 100_000, `the report is long: ${whole.stdout.length} bytes`);
  const line = [process.execPath, CLI, 'fsck', '--store', box.store].map(q).join(' ');
  // A reader that is busy for a moment, as a pager is.
  const piped = await sh(`${line} | (sleep 2; cat); exit "\${PIPESTATUS[0]}"`, { env: box.env });
  t.is(piped.code, 7);
  t.is(piped.stdout.length, whole.stdout.length, 'the whole report comes through the pipe');
  const json = await sh(`${line} --json | (sleep 2; cat)`, { env: box.env });
  t.notThrows(() => JSON.parse(json.stdout), 'fsck --json through a pipe is valid JSON');
});
