// fsck --repair over format 2's records (src/core/format2/fsck2-repair.ts): each repair 5.10 lists for
// what the sound records allow, checked by a clean fsck afterwards and by the healthy files, untouched.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { fsck2 } from '../../src/core/format2/fsck2.js';
import { LOST_AND_FOUND, repair2 } from '../../src/core/format2/fsck2-repair.js';
import { FileType, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { Metadata2 } from '../../src/core/format2/metadata2.js';
import { bucketRecordName, inodeRecordName, mapNodeRecordName, spillRecordName } from '../../src/core/format2/record-names.js';
import { RECORD_BYTES } from '../../src/core/format2/record-seal.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import { isLost } from '../../src/core/format2/slot.js';
import { fsckSample, metadata2Options, name, T0 } from '../helpers/format2.js';

const OPTIONS = metadata2Options(1.5);

function flip(table: RecordTable, n: Buffer): void {
  const v = Buffer.from(table.get(n) as Buffer);
  v[200] = (v[200] as number) ^ 1;
  table.apply([{ name: n, value: v }], true);
}

test('a sound vault: repair changes nothing', async (t) => {
  const { md, table } = fsckSample(t, OPTIONS);
  const rows = table.rowCount();
  const r = await repair2(md, table);
  t.deepEqual(r.after.problems, []);
  t.deepEqual([r.droppedInodes, r.removedEntries, r.quarantinedRanges, r.relinked, r.linkCountsSet, r.deletedRows], [0, 0, 0, 0, 0, 0]);
  t.is(table.rowCount(), rows);
  md.close();
});

test('an unreadable inode goes with every entry naming it and every row it had; the rest stays', async (t) => {
  const { md, table, inline } = fsckSample(t, OPTIONS);
  // The inline file gets a second name, in another directory, before its record is damaged.
  const sub = md.lookup(ROOT_INO, name('sub'))?.ino as number;
  md.link(sub, name('second'), inline);
  md.setAttributes(inline, (i) => ({ nlink: i.nlink + 1 }));
  md.commitNow();
  flip(table, inodeRecordName(OPTIONS.keys.names, inline));
  const damaged = Metadata2.open(table, OPTIONS).reserve();
  const r = await repair2(damaged, table);
  t.log(r.before.problems.map((p) => `${p.kind}: ${p.detail}`).join('\n'));
  t.is(r.droppedInodes, 1);
  t.is(r.removedEntries, 2, 'both names of the file');
  t.true(r.deletedRows > 0, 'its chaff and spill rows went');
  t.deepEqual(r.after.problems, []);
  t.is(r.after.unreachableRows, 0);
  t.is(damaged.lookup(ROOT_INO, name('inline')), null);
  t.is(damaged.lookup(sub, name('second')), null);
  t.truthy(damaged.lookup(ROOT_INO, name('mapped')), 'the other files stay');
  md.close();
});

test('a piece map node that cannot be read makes its slots lost; the file reads elsewhere, and fsck is clean', async (t) => {
  const { md, table, mapped } = fsckSample(t, OPTIONS);
  const before = md.pieceMapIfAny(mapped);
  const keep = before?.slot(3);
  table.apply([{ name: mapNodeRecordName(OPTIONS.keys.names, mapped, 0, 1), value: null }], true);
  const damaged = Metadata2.open(table, OPTIONS).reserve();
  const r = await repair2(damaged, table);
  t.is(r.quarantinedRanges, 1);
  t.deepEqual(r.after.problems, []);
  const map = damaged.pieceMapIfAny(mapped);
  t.is(map?.slot(3), keep, 'the readable node is untouched');
  t.true(isLost(map?.slot(500) ?? 0), 'a slot under the missing node is lost');
  t.is(map?.slot(700), 0, 'past the end of the file (600 pieces), a hole');
  t.true(damaged.requireInode(mapped).hasLost);
  md.close();
});

test('nameless inodes are linked as #<ino> in their parent, or in a new /lost+found; link counts are set; dangling entries and planted rows go', async (t) => {
  const { md, table, bucketed, dir } = fsckSample(t, OPTIONS);
  const sub = md.lookup(ROOT_INO, name('sub'))?.ino as number;
  const inSub = md.createInode({ type: FileType.regular, mode: 0o600, uid: 0, gid: 0, parentIno: sub, time: T0 }).ino;
  const orphanDir = md.createInode({ type: FileType.directory, mode: 0o700, uid: 0, gid: 0, parentIno: sub, time: T0 }).ino;
  // One whose parent is gone: it goes to /lost+found.
  const gone = md.createInode({ type: FileType.directory, mode: 0o700, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino;
  const stray = md.createInode({ type: FileType.regular, mode: 0o600, uid: 0, gid: 0, parentIno: gone, time: T0 }).ino;
  md.removeInode(gone);
  md.setAttributes(md.lookup(ROOT_INO, name('mapped'))?.ino as number, () => ({ nlink: 7 }));
  const fifo = md.lookup(ROOT_INO, name('fifo'))?.ino as number;
  md.removeInode(fifo); // its entry stays, dangling
  md.commitNow();
  table.apply([{ name: randomBytes(32), value: randomBytes(RECORD_BYTES) }], true);

  const r = await repair2(md, table);
  t.log(r.before.problems.map((p) => `${p.kind}: ${p.detail}`).join('\n'));
  t.deepEqual(r.after.problems, []);
  t.is(r.after.unreachableRows, 0);
  t.is(md.lookup(sub, name(`#${inSub}`))?.ino, inSub);
  t.is(md.lookup(sub, name(`#${orphanDir}`))?.ino, orphanDir);
  const lostAndFound = md.lookup(ROOT_INO, name(LOST_AND_FOUND))?.ino as number;
  t.truthy(lostAndFound);
  t.is(md.lookup(lostAndFound, name(`#${stray}`))?.ino, stray);
  t.is(md.requireInode(md.lookup(ROOT_INO, name('mapped'))?.ino as number).nlink, 1);
  t.is(md.lookup(ROOT_INO, name('fifo')), null);
  t.is(r.deletedRows, 1);
  t.is(md.list(bucketed).length, 400, 'the big directory is untouched');
  // And the repaired metadata opens again clean.
  md.close();
  const reopened = RecordTable.open(dir);
  const again = Metadata2.open(reopened, OPTIONS).reserve();
  t.deepEqual((await fsck2(again, reopened)).problems, []);
  again.close();
});

test('a bucket that cannot be read is rewritten empty; the names it held come back as #<ino> in their directory', async (t) => {
  const { md, table, bucketed } = fsckSample(t, OPTIONS);
  const before = new Map(md.list(bucketed).map((e) => [e.ino, e.name.toString()]));
  flip(table, bucketRecordName(OPTIONS.keys.names, bucketed, 0, 0));
  const damaged = Metadata2.open(table, OPTIONS).reserve();
  const r = await repair2(damaged, table);
  t.is(r.emptiedBuckets, 1);
  t.true(r.relinked > 0, `${r.relinked} names came back`);
  t.deepEqual(r.after.problems, []);
  t.is(r.after.unreachableRows, 0);
  const after = damaged.list(bucketed);
  t.is(after.length, before.size, 'every child is named again');
  for (const e of after) {
    const was = before.get(e.ino);
    t.true(e.name.toString() === was || e.name.toString() === `#${e.ino}`, `${was} is itself or #${e.ino}`);
  }
  t.is(after.filter((e) => e.name.toString().startsWith('#')).length, r.relinked);
  t.is(damaged.lookup(ROOT_INO, name(LOST_AND_FOUND)), null, 'their directory is sound: no /lost+found');
  md.close();
});

test('unreadable spill records: the xattrs in them are dropped, the file stays; a symlink whose target spilled goes', async (t) => {
  const { md, table, inline } = fsckSample(t, OPTIONS);
  const link = md.lookup(ROOT_INO, name('long-link'))?.ino as number;
  const kept = md.xattrs(inline).filter((x) => md.requireInode(inline).xattrs.some((y) => y.name.equals(x.name)));
  flip(table, spillRecordName(OPTIONS.keys.names, inline, 0));
  flip(table, spillRecordName(OPTIONS.keys.names, link, 0));
  const damaged = Metadata2.open(table, OPTIONS).reserve();
  const r = await repair2(damaged, table);
  t.is(r.droppedSpills, 1);
  t.is(r.droppedInodes, 1, 'the symlink');
  t.deepEqual(r.after.problems, []);
  t.is(r.after.unreachableRows, 0);
  t.is(damaged.inlineContent(inline)?.toString(), 'inline bytes', 'the file\'s bytes are untouched');
  t.deepEqual(damaged.xattrs(inline).map((x) => x.name.toString()), kept.map((x) => x.name.toString()), 'the xattrs kept in the inode stay');
  t.is(damaged.lookup(ROOT_INO, name('long-link')), null);
  md.close();
});

test('a directory whose inode cannot be read is made again, empty, under its ino; its children come back in it as #<ino>', async (t) => {
  const { md, table } = fsckSample(t, OPTIONS);
  const sub = md.lookup(ROOT_INO, name('sub'))?.ino as number;
  const child = md.lookup(sub, name('x'))?.ino as number;
  flip(table, inodeRecordName(OPTIONS.keys.names, sub));
  const damaged = Metadata2.open(table, OPTIONS).reserve();
  const r = await repair2(damaged, table);
  t.is(r.recreatedDirectories, 1);
  t.deepEqual(r.after.problems, []);
  t.is(r.after.unreachableRows, 0);
  t.is(damaged.lookup(ROOT_INO, name('sub'))?.ino, sub, 'its entry still names it');
  const recreated = damaged.requireInode(sub);
  t.is(recreated.mode, 0o40700);
  t.deepEqual(damaged.list(sub).map((e) => [e.name.toString(), e.ino]), [[`#${child}`, child]]);
  md.close();
});
