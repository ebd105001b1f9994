// fsck over format 2's records (src/core/format2/fsck2.ts): a sound vault of every kind of record reports
// nothing, and each kind of damage 5.10 lists is found and named by the inode it concerns.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { IntegrityError } from '../../src/core/errors.js';
import { fsck2, type Fsck2ProblemKind, type Fsck2Report } from '../../src/core/format2/fsck2.js';
import { FileType, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { Metadata2 } from '../../src/core/format2/metadata2.js';
import { bucketRecordName, inodeRecordName, mapNodeRecordName } from '../../src/core/format2/record-names.js';
import { RECORD_BYTES } from '../../src/core/format2/record-seal.js';
import { fsckSample as sample, metadata2Options, name, T0 } from '../helpers/format2.js';

const OPTIONS = metadata2Options(1.5);

function kinds(report: Fsck2Report): Fsck2ProblemKind[] {
  return report.problems.map((p) => p.kind);
}

test('a sound vault with every kind of record: no problem, every row reached or expected chaff', async (t) => {
  const { md, table } = sample(t, OPTIONS);
  const report = await fsck2(md, table);
  t.deepEqual(report.problems, []);
  t.is(report.unreachableRows, 0);
  t.is(report.missingChaff, 0);
  t.true(report.chaff > 0, 'chaff rows are expected at a ratio of 1.5');
  t.is(report.directories, 3);
  t.is(report.files, 403);
  t.is(report.symlinks, 1);
  t.is(report.special, 1);
  t.is(report.pieces, 600);
  t.is(report.records + report.chaff, table.rowCount(), 'every row is either reached or chaff');
  t.deepEqual(report.incomplete, []);
  // A row planted by someone with write access to meta2.db: unreachable.
  table.apply([{ name: randomBytes(32), value: randomBytes(RECORD_BYTES) }], true);
  t.is((await fsck2(md, table)).unreachableRows, 1);
  md.close();
});

test('each kind of damage is found and named by its inode', async (t) => {
  const { md, table, bucketed, mapped, inline } = sample(t, OPTIONS);
  const flip = (n: Buffer) => {
    const v = Buffer.from(table.get(n) as Buffer);
    v[100] = (v[100] as number) ^ 1;
    table.apply([{ name: n, value: v }], true);
  };
  flip(bucketRecordName(OPTIONS.keys.names, bucketed, 0, 0));
  table.apply([{ name: mapNodeRecordName(OPTIONS.keys.names, mapped, 0, 1), value: null }], true);
  const reopened = Metadata2.open(table, OPTIONS);
  const report = await fsck2(reopened, table);
  t.log(report.problems.map((p) => `${p.kind}: ${p.detail}`).join('\n'));
  t.true(report.problems.some((p) => p.kind === 'bad-record' && p.ino === bucketed), 'the bucket');
  t.true(report.problems.some((p) => p.kind === 'missing-record' && p.ino === mapped), 'the map node');
  t.true(report.incomplete.some((line) => line.includes(`inode ${bucketed}`)), 'the damaged directory makes the walk incomplete');
  t.false(report.problems.some((p) => p.ino === inline), 'the sound file is not named');
  md.close();
});

test('a replayed inode is stale; a nameless inode, a wrong link count and a dangling entry are named', async (t) => {
  const { md, table, inline } = sample(t, OPTIONS);
  const inodeName = inodeRecordName(OPTIONS.keys.names, inline);
  const old = table.get(inodeName);
  md.setInline(inline, Buffer.from('newer bytes'));
  const orphan = md.createInode({ type: FileType.regular, mode: 0o600, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino; // never linked
  const e = md.lookup(ROOT_INO, name('mapped'));
  md.setAttributes(e?.ino ?? 0, () => ({ nlink: 3 }));
  const gone = md.lookup(ROOT_INO, name('fifo'))?.ino ?? 0;
  md.removeInode(gone); // its entry stays
  md.commitNow();
  table.apply([{ name: inodeName, value: old }], true);
  const report = await fsck2(Metadata2.open(table, OPTIONS), table);
  t.log(report.problems.map((p) => `${p.kind}: ${p.detail}`).join('\n'));
  t.true(report.problems.some((p) => p.kind === 'stale-record' && p.ino === inline), 'the replayed inode');
  t.true(report.problems.some((p) => p.kind === 'nameless-inode' && p.ino === orphan));
  t.true(report.problems.some((p) => p.kind === 'bad-link-count' && p.ino === e?.ino));
  t.true(report.problems.some((p) => p.kind === 'dangling-entry' && p.detail.includes(String(gone))));
  md.close();
});

test("pieces are checked through the caller's verifyPiece, and a bad one is named", async (t) => {
  const { md, table, mapped } = sample(t, OPTIONS);
  const report = await fsck2(md, table, {
    verifyPiece: async (inode, index) => {
      if (inode.ino === mapped && index === 17) throw new IntegrityError('piece 17 fails authentication');
      if (inode.ino === mapped && index === 18) throw new IntegrityError('piece 18 is not there', 'missing');
    },
  });
  t.deepEqual(kinds(report).sort(), ['bad-piece', 'missing-piece']);
  md.close();
});

test('a bad node of the inode table hides the inodes under it, not the whole vault; repair reports it as not repaired', async (t) => {
  const { md, table } = sample(t, OPTIONS);
  for (let i = 0; i < 700; i++) {
    const ino = md.createInode({ type: FileType.regular, mode: 0o644, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino;
    md.link(ROOT_INO, name(`more-${i}`), ino);
  }
  md.commitNow();
  const total = (await fsck2(md, table)).inodes;
  table.apply([{ name: mapNodeRecordName(OPTIONS.keys.names, 0, 0, 1), value: null }], true);
  const damaged = Metadata2.open(table, OPTIONS);
  const report = await fsck2(damaged, table);
  t.true(report.problems.some((p) => p.of === 'inode-table' && p.kind === 'missing-record'));
  t.true(report.inodes > 0 && report.inodes < total, `${report.inodes} of ${total} inodes still checked`);
  t.true(report.incomplete.length > 0);
  const { repair2 } = await import('../../src/core/format2/fsck2-repair.js');
  const repaired = await repair2(damaged.reserve(), table);
  t.true(repaired.notRepaired.some((p) => p.of === 'inode-table'));
  t.is(repaired.deletedRows, 0, 'an incomplete walk deletes nothing');
  t.is(repaired.removedEntries, 0, 'entries naming the hidden inodes are not taken for dangling');
  t.is(damaged.list(ROOT_INO).filter((e) => e.name.toString().startsWith('more-')).length, 700);
  md.close();
});
