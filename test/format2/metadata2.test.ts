// Format 2's metadata facade (src/core/format2/metadata2.ts) over a real meta2.db: the root directory,
// files INLINE and with piece maps, directories that leave the inode for buckets and come back, symlinks
// and xattrs that spill, removal of everything an inode owns, a failed write taken again by the next
// commit, and records put back from an older commit found out as stale when read through their owner.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import { FsError, IntegrityError } from '../../src/core/errors.js';
import { FileType, INLINE_MAX, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { Metadata2, type Metadata2Options } from '../../src/core/format2/metadata2.js';
import { bucketRecordName, inodeRecordName, mapNodeRecordName } from '../../src/core/format2/record-names.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import { HOLE, PREALLOCATED } from '../../src/core/format2/slot.js';
import { metadata2Options, name, T0 } from '../helpers/format2.js';
import { tempDir } from '../helpers/temp-vault.js';

const OPTIONS = metadata2Options(0.5);

function fresh(t: ExecutionContext, options: Partial<Metadata2Options> = {}): { md: Metadata2; dir: string } {
  const dir = tempDir(t);
  const md = Metadata2.create(RecordTable.create(dir), { ...OPTIONS, ...options }, { mode: 0o755, uid: 0, gid: 0, time: T0 });
  return { md, dir };
}

function reopen(md: Metadata2, dir: string, options: Partial<Metadata2Options> = {}): Metadata2 {
  md.close();
  return Metadata2.open(RecordTable.open(dir), { ...OPTIONS, ...options }).reserve();
}

/** A regular file linked into `dirIno` under `n`. */
function file(md: Metadata2, dirIno: number, n: string): number {
  const ino = md.createInode({ type: FileType.regular, mode: 0o644, uid: 1000, gid: 1000, parentIno: dirIno, time: T0 }).ino;
  md.link(dirIno, name(n), ino);
  return ino;
}

function rows(dir: string): number {
  const table = RecordTable.open(dir, undefined, { readOnly: true });
  try {
    return table.rowCount();
  } finally {
    table.close();
  }
}

test('a new vault has an empty root directory, committed, and it opens again', (t) => {
  const { md, dir } = fresh(t);
  const root = md.requireInode(ROOT_INO);
  t.is(root.type, FileType.directory);
  t.is(root.mode, 0o40755);
  t.is(root.nlink, 2);
  t.is(root.parentIno, 0);
  t.deepEqual(md.list(ROOT_INO), []);
  t.false(md.pending);
  const again = reopen(md, dir);
  t.deepEqual(again.requireInode(ROOT_INO).mtime, T0);
  t.deepEqual(again.list(ROOT_INO), []);
  t.true(again.state.commit > md.state.commit - 1, 'the reopen committed its opening commit');
  again.close();
});

test('small files are INLINE: their bytes live in the inode, and come back after a reopen', (t) => {
  const { md, dir } = fresh(t);
  const a = file(md, ROOT_INO, 'a.txt');
  const b = file(md, ROOT_INO, 'empty');
  md.setInline(a, Buffer.from('hello, format 2'));
  const full = randomBytes(INLINE_MAX);
  const c = file(md, ROOT_INO, 'full');
  md.setInline(c, full);
  t.throws(() => md.setInline(c, Buffer.alloc(INLINE_MAX + 1)), { instanceOf: RangeError });
  md.commitNow();
  const again = reopen(md, dir);
  t.deepEqual(again.list(ROOT_INO).map((e) => e.name.toString()).sort(), ['a.txt', 'empty', 'full']);
  t.is(again.lookup(ROOT_INO, name('a.txt'))?.ino, a);
  t.is(again.inlineContent(a)?.toString(), 'hello, format 2');
  t.is(again.requireInode(a).size, 15);
  t.is(again.inlineContent(b)?.length, 0);
  t.true(again.inlineContent(c)?.equals(full));
  t.is(again.pieceMapIfAny(a), null, 'no piece map while INLINE');
  again.close();
});

test('a file grows out of INLINE into a piece map of several levels, and back; its map nodes come and go with it', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0 });
  const f = file(md, ROOT_INO, 'big');
  md.setInline(f, Buffer.from('small at first'));
  md.commitNow();
  const baseline = rows(dir);

  // 2,000 pieces: past the 477 root entries, so the map gets a level of nodes.
  const map = md.pieceMap(f);
  const versions = Array.from({ length: 2000 }, () => md.newPieceVersion());
  versions.forEach((v, i) => map.setSlot(i, v));
  map.fill(2000, 2100, PREALLOCATED);
  md.setAttributes(f, () => ({ size: 2000 * OPTIONS.pieceSize }));
  md.commitNow();
  t.true(rows(dir) > baseline + 3, `map nodes were written (${rows(dir)} rows, ${baseline} before)`);

  let again = reopen(md, dir, { chaffRatio: 0 });
  const read = again.pieceMapIfAny(f);
  t.truthy(read);
  t.is(read?.slot(0), versions[0]);
  t.is(read?.slot(1999), versions[1999]);
  t.is(read?.slot(2050), PREALLOCATED);
  t.is(read?.slot(2100), HOLE);
  t.is(read?.nextHole(0), 2000, 'SEEK_HOLE: preallocated counts as a hole');
  t.is(read?.nextData(2000), undefined, 'no data past 2,000');
  t.is(again.requireInode(f).count, 100, "the inode's count is its preallocated slots");
  t.is([...(read?.versions() ?? [])].length, 2000);

  // Truncated to 10 pieces, then INLINE again: every node record goes.
  again.pieceMap(f).truncate(10);
  again.setAttributes(f, () => ({ size: 10 * OPTIONS.pieceSize }));
  again.commitNow();
  again = reopen(again, dir, { chaffRatio: 0 });
  t.is(again.pieceMapIfAny(f)?.slot(9), versions[9]);
  t.is(again.pieceMapIfAny(f)?.slot(10), HOLE);
  again.setInline(f, Buffer.from('small again'));
  again.commitNow();
  t.is(rows(dir), baseline, 'the map nodes are deleted when the file goes back INLINE');
  again = reopen(again, dir, { chaffRatio: 0 });
  t.is(again.inlineContent(f)?.toString(), 'small again');
  again.close();
});

test('a directory leaves the inode for buckets as it grows, and comes back as it empties; its size is E', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0 });
  const d = md.createInode({ type: FileType.directory, mode: 0o700, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino;
  md.link(ROOT_INO, name('d'), d);
  md.commitNow();
  const baseline = rows(dir);
  const names = Array.from({ length: 3000 }, (_, i) => `file-${i.toString().padStart(5, '0')}`);
  const inos = new Map<string, number>();
  for (const n of names) inos.set(n, file(md, d, n));
  t.throws(() => md.link(d, name('file-00007'), ROOT_INO), { instanceOf: FsError, message: /exist/i });
  md.commitNow();
  t.is(md.requireInode(d).primary.form, 'buckets');
  t.true(md.requireInode(d).size > INLINE_MAX, `E ${md.requireInode(d).size} is in the size`);

  let again = reopen(md, dir, { chaffRatio: 0 });
  t.is(again.requireInode(d).count, 3000);
  t.is(again.list(d).length, 3000);
  for (const n of ['file-00000', 'file-01234', 'file-02999']) t.is(again.lookup(d, name(n))?.ino, inos.get(n));
  t.is(again.lookup(d, name('file-03000')), null);

  for (const n of names.slice(5)) {
    const e = again.unlink(d, name(n));
    t.truthy(e);
    again.removeInode(e?.ino ?? 0);
  }
  again.commitNow();
  t.is(again.requireInode(d).primary.form, 'entries', 'back in the inode');
  t.is(again.requireInode(d).size, (again.requireInode(d).primary as { entries: Buffer }).entries.length);
  again = reopen(again, dir, { chaffRatio: 0 });
  t.deepEqual(
    again.list(d).map((e) => e.name.toString()).sort(),
    names.slice(0, 5),
  );
  for (const n of names.slice(0, 5)) again.removeInode(again.unlink(d, name(n))?.ino ?? 0);
  again.commitNow();
  t.is(rows(dir), baseline, 'every bucket, table node and inode record of the removed entries is gone');
  t.throws(() => again.removeInode(ROOT_INO), { instanceOf: FsError });
  again.close();
});

test('a long symlink target and big xattrs spill, read back after a reopen, and go with their inode', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0 });
  md.commitNow();
  const baseline = rows(dir);
  const target = Buffer.from('x/'.repeat(2000)); // 4,000 bytes: past INLINE_MAX
  const link = md.createInode({ type: FileType.symlink, mode: 0o777, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0, target }).ino;
  md.link(ROOT_INO, name('long'), link);
  const f = file(md, ROOT_INO, 'tagged');
  const xattrs = Array.from({ length: 6 }, (_, i) => ({ name: name(`user.n${i}`), value: randomBytes(3000) }));
  md.setXattrs(f, xattrs);
  md.commitNow();
  t.truthy(md.requireInode(f).spill, 'the xattrs that did not fit spilled');
  t.is(md.requireInode(link).primary.form, 'none');

  let again = reopen(md, dir, { chaffRatio: 0 });
  t.true(again.symlinkTarget(link).equals(target));
  t.deepEqual(
    again.xattrs(f).map((x) => [x.name.toString(), x.value.toString('hex')]),
    xattrs.map((x) => [x.name.toString(), x.value.toString('hex')]),
  );
  // Fewer xattrs: everything fits the inode again, and the spill goes.
  again.setXattrs(f, xattrs.slice(0, 1));
  again.commitNow();
  t.is(again.requireInode(f).spill, undefined);
  again = reopen(again, dir, { chaffRatio: 0 });
  t.is(again.xattrs(f).length, 1);
  again.removeInode(again.unlink(ROOT_INO, name('long'))?.ino ?? 0);
  again.removeInode(again.unlink(ROOT_INO, name('tagged'))?.ino ?? 0);
  again.commitNow();
  t.is(rows(dir), baseline, 'the spill records went with their inodes');
  again.close();
});

test('a write that fails is undone, and the next commit writes everything under a new number', (t) => {
  const { md, dir } = fresh(t);
  const table = (md as unknown as { table: RecordTable }).table;
  const apply = table.apply.bind(table);
  let failing = true;
  table.apply = (changes, durable) => {
    if (failing) throw new FsError('ENOSPC', 'the disk is full (simulated)');
    apply(changes, durable);
  };
  const f = file(md, ROOT_INO, 'f');
  md.setInline(f, Buffer.from('one'));
  const before = md.state.commit;
  t.throws(() => md.commitNow(), { instanceOf: FsError, message: /full/ });
  t.is(md.state.commit, before, 'nothing was committed');
  t.true(md.pending, 'the changes wait for the next commit');
  md.setInline(f, Buffer.from('two'));
  failing = false;
  md.commitNow();
  t.true(md.state.commit > before + 1, 'a new number, not the failed one');
  const again = reopen(md, dir);
  t.is(again.inlineContent(again.lookup(ROOT_INO, name('f'))?.ino ?? 0)?.toString(), 'two');
  again.close();
});

test('records put back from an older commit are stale when read through their owners: an inode, a bucket, a map node', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0 });
  const f = file(md, ROOT_INO, 'f');
  md.setInline(f, Buffer.from('version one'));
  md.commitNow();
  const table = (md as unknown as { table: RecordTable }).table;
  const inodeName = inodeRecordName(OPTIONS.keys.names, f);
  const old = table.get(inodeName);
  t.truthy(old);
  md.setInline(f, Buffer.from('version two'));
  md.commitNow();
  const current = table.get(inodeName);
  // The attacker's replay: the old record under its own name.
  table.apply([{ name: inodeName, value: old }], true);
  let again = reopen(md, dir, { chaffRatio: 0 });
  const stale = (what: string, read: () => unknown) => {
    const err = t.throws(read, undefined, what);
    t.true(err instanceof IntegrityError, `${what}: ${String(err)}`);
    t.is((err as IntegrityError).kind, 'stale', what);
  };
  stale('an inode', () => again.inlineContent(f));

  // A bucket: a directory in buckets, one bucket record put back after more names changed it.
  (again as unknown as { table: RecordTable }).table.apply([{ name: inodeName, value: current }], true); // undone
  t.is(again.inlineContent(f)?.toString(), 'version two');
  const d = again.createInode({ type: FileType.directory, mode: 0o700, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino;
  again.link(ROOT_INO, name('d'), d);
  for (let i = 0; i < 600; i++) file(again, d, `a-${i}`);
  again.commitNow();
  const bucketTable = (again as unknown as { table: RecordTable }).table;
  const { shape } = { shape: again.requireInode(d).primary as { level: number; split: number } };
  const buckets = 2 ** shape.level + shape.split;
  const before = Array.from({ length: buckets }, (_, b) => bucketTable.get(bucketRecordName(OPTIONS.keys.names, d, b, 0)));
  for (let i = 0; i < 60; i++) file(again, d, `b-${i}`);
  again.commitNow();
  const changed = before.findIndex((value, b) => value && !value.equals(bucketTable.get(bucketRecordName(OPTIONS.keys.names, d, b, 0)) ?? Buffer.alloc(0)));
  t.true(changed >= 0, 'some bucket changed');
  bucketTable.apply([{ name: bucketRecordName(OPTIONS.keys.names, d, changed, 0), value: before[changed] ?? null }], true);
  again = reopen(again, dir, { chaffRatio: 0 });
  stale('a bucket', () => again.list(d));

  // A map node: slot 5 of a file with a level of nodes, its node put back after the slot changed.
  const g = file(again, ROOT_INO, 'g');
  const map = again.pieceMap(g);
  for (let i = 0; i < 600; i++) map.setSlot(i, again.newPieceVersion());
  again.commitNow();
  const nodeTable = (again as unknown as { table: RecordTable }).table;
  const nodeName = mapNodeRecordName(OPTIONS.keys.names, g, 0, 0);
  const oldNode = nodeTable.get(nodeName);
  again.pieceMap(g).setSlot(5, again.newPieceVersion());
  again.commitNow();
  nodeTable.apply([{ name: nodeName, value: oldNode }], true);
  again = reopen(again, dir, { chaffRatio: 0 });
  stale('a map node', () => again.pieceMapIfAny(g)?.slot(5));
  again.close();
});

test('owners with changes to commit survive eviction, even with no room in the caches', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0, ownerCacheLimit: 0 });
  const f = file(md, ROOT_INO, 'f');
  const xattrs = Array.from({ length: 4 }, (_, i) => ({ name: name(`user.x${i}`), value: randomBytes(2000) }));
  md.setXattrs(f, xattrs);
  const map = md.pieceMap(f);
  map.setSlot(3, md.newPieceVersion());
  md.setAttributes(f, () => ({ size: 4 * OPTIONS.pieceSize }));
  md.evict();
  t.is(md.xattrs(f).length, 4, 'the spilled xattrs are still there before the commit');
  t.true(md.pieceMapIfAny(f)?.slot(3) !== 0);
  md.commitNow();
  md.evict();
  const again = reopen(md, dir, { chaffRatio: 0, ownerCacheLimit: 0 });
  t.deepEqual(again.xattrs(f).map((x) => x.name.toString()), ['user.x0', 'user.x1', 'user.x2', 'user.x3']);
  t.true((again.pieceMapIfAny(f)?.slot(3) ?? 0) > 0);
  again.close();
});

// ---- found by review ----

test('an inode removed before its spill was ever committed takes the spill with it; later commits still work', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0 });
  const link = md.createInode({ type: FileType.symlink, mode: 0o777, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0, target: Buffer.alloc(4000, 0x61) }).ino;
  md.link(ROOT_INO, name('long'), link);
  const f = file(md, ROOT_INO, 'tagged');
  md.setXattrs(f, [{ name: name('user.big'), value: randomBytes(5000) }]);
  md.unlink(ROOT_INO, name('long'));
  md.removeInode(link);
  md.unlink(ROOT_INO, name('tagged'));
  md.removeInode(f);
  md.commitNow();
  file(md, ROOT_INO, 'after');
  md.commitNow();
  const again = reopen(md, dir, { chaffRatio: 0 });
  t.deepEqual(again.list(ROOT_INO).map((e) => e.name.toString()), ['after']);
  again.close();
});

test('piece versions taken with nothing else changing still ask for the commit that extends the reservation, and leave numbers for it', (t) => {
  const { md } = fresh(t, { chaffRatio: 0 });
  md.commitNow();
  t.false(md.pending);
  let taken = 0;
  while (!md.pending) {
    md.newPieceVersion();
    taken++;
  }
  t.true(taken < 65_536, `a commit is asked for after ${taken} versions`);
  // A writer that outruns its commits gets EIO before the cuts' numbers are gone; the commit still works.
  const err = t.throws(() => {
    for (;;) md.newPieceVersion();
  });
  t.is((err as { errno?: string }).errno, 'EIO');
  md.commitNow();
  t.notThrows(() => md.newPieceVersion(), 'the commit extended the reservation');
  md.close();
});

test('open writes nothing: a copy of an older store reports its own, older commit for the anchor check', (t) => {
  const { md, dir } = fresh(t, { chaffRatio: 0 });
  file(md, ROOT_INO, 'a');
  md.commitNow();
  const commitA = md.state.commit;
  md.close();
  const copy = `${dir}-copy`;
  cpSync(dir, copy, { recursive: true });
  const again = Metadata2.open(RecordTable.open(dir), { ...OPTIONS, chaffRatio: 0 }).reserve();
  file(again, ROOT_INO, 'b');
  again.commitNow();
  t.true(again.state.commit > commitA);
  again.close();
  const old = Metadata2.open(RecordTable.open(copy), { ...OPTIONS, chaffRatio: 0 });
  t.is(old.state.commit, commitA, 'what the copy holds, not a number its open wrote');
  t.throws(() => file(old, ROOT_INO, 'c') && old.commitNow(), { message: /reserved/ }, 'no change before reserve()');
  old.close();
  rmSync(copy, { recursive: true, force: true });
});

test('attributes the encoder would refuse are refused when set, with EINVAL, and commits go on', (t) => {
  const { md } = fresh(t, { chaffRatio: 0 });
  const f = file(md, ROOT_INO, 'f');
  for (const bad of [{ mtime: { sec: 1, nsec: 1_000_000_000 } }, { atime: { sec: 2 ** 53, nsec: 0 } }, { uid: 2 ** 32 }, { nlink: 0 }]) {
    const err = t.throws(() => md.setAttributes(f, () => bad));
    t.is((err as { errno?: string }).errno, 'EINVAL', JSON.stringify(bad));
  }
  t.notThrows(() => md.commitNow());
  md.close();
});

test('a spill whose cut is not written yet survives eviction: the symlink reads back meanwhile', (t) => {
  const { md } = fresh(t, { chaffRatio: 0, ownerCacheLimit: 0 });
  const target = Buffer.alloc(4000, 0x62);
  const link = md.createInode({ type: FileType.symlink, mode: 0o777, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0, target }).ino;
  md.link(ROOT_INO, name('long'), link);
  const batch = md.cut();
  md.evict();
  t.true(md.symlinkTarget(link).equals(target));
  md.write(batch);
  md.evict();
  t.true(md.symlinkTarget(link).equals(target));
  md.close();
});
