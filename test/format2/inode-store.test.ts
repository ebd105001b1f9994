// Format 2's inodes (inode-store.ts) over the state root, the commit batcher and a real meta2.db: inodes
// with inline content are created, changed and removed across commits, reopened, evicted from the cache
// and read again, with metadata chaff written and removed with them.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { FsError, IntegrityError } from '../../src/core/errors.js';
import { CommitBatcher, type RecordWriter } from '../../src/core/format2/commit-batch.js';
import { FileType, type InodeRecord } from '../../src/core/format2/inode-record.js';
import { InodeStore } from '../../src/core/format2/inode-store.js';
import { chaffRecordCount, inodeRecordName } from '../../src/core/format2/record-names.js';
import { RecordSealer } from '../../src/core/format2/record-seal.js';
import { RecordTable, type RecordChange } from '../../src/core/format2/record-table.js';
import { StateRoot } from '../../src/core/format2/state-root.js';
import { VersionCounter } from '../../src/core/format2/version-counter.js';
import { tempDir } from '../helpers/temp-vault.js';

const NAMES = randomBytes(32);
const CHAFF = randomBytes(32);
const RECORD_KEY = randomBytes(32);
const VAULT_ID = randomBytes(16);
const PIECE = 128 * 1024;

interface Rig {
  table: RecordTable;
  root: StateRoot;
  batcher: CommitBatcher;
  inodes: InodeStore;
  fail: { on: boolean };
}

function assemble(table: RecordTable, root: StateRoot, counter: VersionCounter, chaffRatio: number, cacheLimit?: number): Rig {
  const fail = { on: false };
  const writer: RecordWriter = {
    apply(changes: readonly RecordChange[], durable: boolean) {
      if (fail.on) throw new FsError('ENOSPC', 'the disk is full (simulated)');
      table.apply(changes, durable);
    },
  };
  const sealer = new RecordSealer(RECORD_KEY, VAULT_ID);
  const batcher = new CommitBatcher(writer, sealer, () => counter.take(), root);
  batcher.write(batcher.cut(counter.openingCommit()));
  const inodes = new InodeStore({ names: NAMES, chaffKey: CHAFF, chaffRatio, sealer, reader: table, root, batcher, pieceSize: PIECE, cacheLimit });
  return { table, root, batcher, inodes, fail };
}

function create(t: Parameters<typeof tempDir>[0], chaffRatio = 0): { r: Rig; dir: string } {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  const counter = new VersionCounter(1);
  const r = assemble(table, StateRoot.create(NAMES, new RecordSealer(RECORD_KEY, VAULT_ID), table, counter), counter, chaffRatio);
  r.inodes.allocateIno(); // ino 1 is the root directory's; these tests make files only
  return { r, dir };
}

function reopen(r: Rig, dir: string, chaffRatio = 0, cacheLimit?: number): Rig {
  r.table.close();
  const table = RecordTable.open(dir);
  const { root, counter } = StateRoot.open(NAMES, new RecordSealer(RECORD_KEY, VAULT_ID), table, (x) => new VersionCounter(x));
  return assemble(table, root, counter, chaffRatio, cacheLimit);
}

const T = { sec: 1_700_000_000, nsec: 5 };

function smallFile(ino: number, content: string): InodeRecord {
  const bytes = Buffer.from(content);
  return {
    ino, parentIno: 1, fileId: randomBytes(16), type: FileType.regular, mode: 0o100644, uid: 0, gid: 0, nlink: 1, rdev: 0,
    size: bytes.length, atime: T, mtime: T, ctime: T, count: 0, hasLost: false, primary: { form: 'inline', content: bytes }, xattrs: [], spill: undefined,
  };
}

function commit(r: Rig): boolean {
  const b = r.batcher.cut();
  try {
    r.batcher.write(b);
    return true;
  } catch (err) {
    if (err instanceof FsError) return false;
    throw err;
  }
}

function contentOf(r: Rig, ino: number): string | null {
  const i = r.inodes.get(ino);
  if (!i) return null;
  if (i.primary.form !== 'inline') throw new Error('not inline');
  return i.primary.content.toString();
}

test('inodes with inline content: created, changed and removed across commits, read back after a reopen', (t) => {
  const { r, dir } = create(t);
  const inos: number[] = [];
  for (let k = 0; k < 600; k++) {
    const ino = r.inodes.allocateIno();
    r.inodes.add(smallFile(ino, `file ${ino}`));
    inos.push(ino);
  }
  t.true(commit(r));
  t.is(r.root.state.liveInodes, 600);
  r.inodes.put(smallFile(inos[3] as number, 'changed'));
  r.inodes.remove(inos[4] as number);
  t.true(commit(r));
  const s = reopen(r, dir);
  t.teardown(() => s.table.close());
  t.is(contentOf(s, inos[0] as number), `file ${inos[0]}`);
  t.is(contentOf(s, inos[3] as number), 'changed');
  t.is(contentOf(s, inos[4] as number), null);
  t.is(contentOf(s, inos[599] as number), `file ${inos[599]}`);
  t.is(s.root.state.liveInodes, 599);
  t.is(s.inodes.allocateIno(), (inos[599] as number) + 1, 'inode numbers are never reused across a reopen');
});

test('a change made between a cut and its write is in the next commit; a failed write is retried under a new number', (t) => {
  const { r, dir } = create(t);
  const ino = r.inodes.allocateIno();
  r.inodes.add(smallFile(ino, 'one'));
  const b = r.batcher.cut();
  r.inodes.put(smallFile(ino, 'two')); // after the cut
  r.batcher.write(b);
  t.is(contentOf(r, ino), 'two', 'the change is seen at once');
  r.inodes.put(smallFile(ino, 'three')); // one participant per inode, whatever the timing: no clash in the cut
  t.true(commit(r));
  r.inodes.put(smallFile(ino, 'two'));
  r.fail.on = true;
  t.false(commit(r));
  r.fail.on = false;
  t.true(commit(r));
  const s = reopen(r, dir);
  t.teardown(() => s.table.close());
  t.is(contentOf(s, ino), 'two');
});

test('a small cache: inodes are evicted and read again from their records, verified at their versions', (t) => {
  const { r, dir } = create(t);
  for (let k = 0; k < 50; k++) r.inodes.add(smallFile(r.inodes.allocateIno(), `f${k}`));
  t.true(commit(r));
  const s = reopen(r, dir, 0, 5);
  t.teardown(() => s.table.close());
  for (let round = 0; round < 2; round++) for (let ino = 2; ino <= 51; ino++) t.is(contentOf(s, ino), `f${ino - 2}`);
  t.true(s.inodes.held <= 5);
  // An older record of inode 9 put back: read again after eviction, it is stale.
  s.inodes.put(smallFile(9, 'newer'));
  const old = s.table.get(inodeRecordName(NAMES, 9)) as Buffer;
  t.true(commit(s));
  s.table.apply([{ name: inodeRecordName(NAMES, 9), value: old }], true);
  for (let ino = 10; ino <= 30; ino++) contentOf(s, ino); // evicts inode 9
  const err = t.throws(() => contentOf(s, 9));
  t.is((err as IntegrityError).kind, 'stale');
});

test('metadata chaff (5.9): each new inode brings its chaff records in the same commit, and a removal takes them away', (t) => {
  const ratio = 1.5;
  const { r } = create(t, ratio);
  const rows = () => r.table.rowCount();
  const before = rows();
  const inos = Array.from({ length: 40 }, () => r.inodes.allocateIno());
  for (const ino of inos) r.inodes.add(smallFile(ino, 'x'));
  t.true(commit(r));
  const chaff = inos.reduce((n, ino) => n + chaffRecordCount(CHAFF, ratio, ino), 0);
  t.true(chaff >= 40 && chaff <= 80, `1 or 2 chaff records per inode at ratio 1.5: ${chaff}`);
  t.is(rows() - before, 40 + chaff, 'one inode record and its chaff per inode (the inode table stays in the state record)');
  for (const ino of inos) r.inodes.remove(ino);
  t.true(commit(r));
  t.is(rows(), before, 'removed inodes leave no row behind, chaff included');
});

test('a removed inode is gone at once, and so is one never committed; get of an unknown number is null', (t) => {
  const { r } = create(t);
  const a = r.inodes.allocateIno();
  r.inodes.add(smallFile(a, 'a'));
  r.inodes.remove(a); // before any commit
  t.is(r.inodes.get(a), null);
  t.true(commit(r));
  t.is(r.inodes.get(a), null);
  t.is(r.inodes.get(12345), null);
  t.throws(() => r.inodes.require(12345), { instanceOf: IntegrityError });
});
