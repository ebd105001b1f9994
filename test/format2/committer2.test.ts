// The vault's committer (src/core/vault/committer.ts) driving format 2's metadata through
// Metadata2.commitSource(): changes are written within the window, a commit() waits for its write, what
// waits on durability runs after it, and a commit whose blobs could not be made durable is taken again,
// whole, by the next one.

import test, { type ExecutionContext } from 'ava';
import { FileType, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { Metadata2 } from '../../src/core/format2/metadata2.js';
import { Namespace2 } from '../../src/core/format2/namespace2.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import { Committer } from '../../src/core/vault/committer.js';
import { metadata2Options, name, T0 } from '../helpers/format2.js';
import { tempDir } from '../helpers/temp-vault.js';

const OPTIONS = metadata2Options(0.5);

function rig(t: ExecutionContext, windowMs: number, blobsDurable: () => Promise<void> = async () => undefined) {
  const dir = tempDir(t);
  const md = Metadata2.create(RecordTable.create(dir), OPTIONS, { mode: 0o755, uid: 0, gid: 0, time: T0 });
  const ns = new Namespace2(md, { isOpen: () => false, gone: () => undefined });
  const errors: unknown[] = [];
  const committer = new Committer(md.commitSource(), blobsDurable, windowMs, (err) => errors.push(err));
  t.teardown(() => committer.stop());
  return { dir, md, ns, committer, errors };
}

const mkfile = (ns: Namespace2, n: string) => ns.create(ROOT_INO, name(n), { type: FileType.regular, mode: 0o644, uid: 0, gid: 0 });

function reopened(t: ExecutionContext, md: Metadata2, dir: string): Metadata2 {
  md.close();
  const again = Metadata2.open(RecordTable.open(dir), OPTIONS).reserve();
  t.teardown(() => again.close());
  return again;
}

test('a change is written within the window, with nobody asking', async (t) => {
  const { md, ns } = rig(t, 50);
  const before = md.state.commit;
  mkfile(ns, 'a');
  t.true(md.pending);
  for (let i = 0; i < 100 && md.pending; i++) await new Promise((r) => setTimeout(r, 20));
  t.false(md.pending, 'written by the window');
  t.true(md.state.commit > before);
});

test('commit() resolves once the change is written, and what waited on durability runs after it, not before', async (t) => {
  const { md, ns, committer, dir } = rig(t, 60_000);
  mkfile(ns, 'a');
  let ran = false;
  md.whenDurable(() => (ran = true));
  t.false(ran, 'nothing runs before the write');
  await committer.commit();
  t.true(ran);
  t.false(md.pending);
  const again = reopened(t, md, dir);
  t.truthy(again.lookup(ROOT_INO, name('a')));
});

test('blobs that could not be made durable: that commit fails, the next takes everything under a new number', async (t) => {
  let fail = true;
  const { md, ns, committer, dir } = rig(t, 60_000, async () => {
    if (fail) throw new Error('the store is gone (simulated)');
  });
  mkfile(ns, 'first');
  let ran = 0;
  md.whenDurable(() => ran++);
  const before = md.state.commit;
  await t.throwsAsync(committer.commit(), { message: /simulated/ });
  t.is(md.state.commit, before, 'nothing was written');
  t.is(ran, 0);
  mkfile(ns, 'second');
  fail = false;
  await committer.commit();
  t.is(ran, 1, 'what waited on the failed commit ran after the one that wrote it');
  t.true(md.state.commit > before);
  const again = reopened(t, md, dir);
  t.truthy(again.lookup(ROOT_INO, name('first')));
  t.truthy(again.lookup(ROOT_INO, name('second')));
});
