// The root of format 2's version tree (state-root.ts) with the commit batcher, the slot tree, the seal and
// a real meta2.db: inodes (fake payloads here) are found through the inode table from the state record, at
// the versions their slots hold, and every replay of section 5.6's table is caught.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { FsError, IntegrityError } from '../../src/core/errors.js';
import { CommitBatcher, type CommitParticipant, type ParticipantStamp, type RecordWriter } from '../../src/core/format2/commit-batch.js';
import { inodeRecordName, stateRecordName } from '../../src/core/format2/record-names.js';
import { RecordKind, RecordSealer } from '../../src/core/format2/record-seal.js';
import { RecordTable, type RecordChange } from '../../src/core/format2/record-table.js';
import { StateRoot } from '../../src/core/format2/state-root.js';
import { VersionCounter } from '../../src/core/format2/version-counter.js';
import { tempDir } from '../helpers/temp-vault.js';

const NAMES = randomBytes(32);
const RECORD_KEY = randomBytes(32);
const VAULT_ID = randomBytes(16);

/** An inode as the metadata layer will hold one: here only a payload, written at commits. */
class FakeInode implements CommitParticipant {
  readonly level = 1;
  payload = '';
  deleted = false;
  constructor(
    readonly ino: number,
    private readonly root: () => StateRoot,
  ) {}
  stamp(c: number): ParticipantStamp {
    const name = inodeRecordName(NAMES, this.ino);
    this.root().setInodeVersion(this.ino, this.deleted ? 0 : c);
    return this.deleted ? { writes: [], deletes: [name] } : { writes: [{ name, kind: RecordKind.inode, payload: Buffer.from(this.payload) }], deletes: [] };
  }
  confirm(): void {}
  unstamp(): void {} // the batcher touches it again: the next stamp sets its slot to the next number
}

interface Vault {
  table: RecordTable;
  root: StateRoot;
  batcher: CommitBatcher;
  inodes: Map<number, FakeInode>;
  fail: { on: boolean };
}

function assemble(table: RecordTable, root: StateRoot, counter: VersionCounter): Vault {
  const fail = { on: false };
  const writer: RecordWriter = {
    apply(changes: readonly RecordChange[], durable: boolean) {
      if (fail.on) throw new FsError('ENOSPC', 'the disk is full (simulated)');
      table.apply(changes, durable);
    },
  };
  const batcher = new CommitBatcher(writer, new RecordSealer(RECORD_KEY, VAULT_ID), () => counter.take(), root);
  batcher.write(batcher.cut(counter.openingCommit())); // section 11: the open reserves a block first
  return { table, root, batcher, inodes: new Map(), fail };
}

function create(t: Parameters<typeof tempDir>[0]): { v: Vault; dir: string } {
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  const sealer = new RecordSealer(RECORD_KEY, VAULT_ID);
  const counter = new VersionCounter(1);
  return { v: assemble(table, StateRoot.create(NAMES, sealer, table, counter), counter), dir };
}

function reopen(v: Vault, dir: string): Vault {
  v.table.close();
  const table = RecordTable.open(dir);
  const { root, counter } = StateRoot.open(NAMES, new RecordSealer(RECORD_KEY, VAULT_ID), table, (r) => new VersionCounter(r));
  return assemble(table, root, counter);
}

function setInode(v: Vault, ino: number, payload: string): void {
  let inode = v.inodes.get(ino);
  if (!inode) v.inodes.set(ino, (inode = new FakeInode(ino, () => v.root)));
  inode.payload = payload;
  inode.deleted = false;
  v.batcher.touch(inode);
}

function commit(v: Vault): boolean {
  const batch = v.batcher.cut();
  try {
    v.batcher.write(batch);
    return true;
  } catch (err) {
    if (err instanceof FsError) return false;
    throw err;
  }
}

/** Inode `ino` read as the metadata layer will: its version from the inode table, then its record at it. */
function readInode(v: Vault, ino: number): string | null {
  const version = v.root.inodeVersion(ino);
  if (version === 0) return null;
  const name = inodeRecordName(NAMES, ino);
  return new RecordSealer(RECORD_KEY, VAULT_ID).open(name, v.table.get(name), version, RecordKind.inode, `inode ${ino}`).toString();
}

test('1,000 inodes: the inode table grows past its 400-entry root, and every inode reads back after a reopen', (t) => {
  const { v, dir } = create(t);
  for (let ino = 1; ino <= 1000; ino++) setInode(v, ino, `inode ${ino}`);
  t.true(commit(v));
  t.is(v.root.state.inodeTableDepth, 1, 'more than 400 inodes need a table node level');
  const r = reopen(v, dir);
  t.teardown(() => r.table.close());
  for (const ino of [1, 399, 400, 401, 777, 1000]) t.is(readInode(r, ino), `inode ${ino}`);
  t.is(readInode(r, 1001), null);
  t.true(r.root.state.commit > v.root.state.commit, 'the reopen\'s opening commit is newer');
});

test('one inode replayed (its older record put back): stale, naming both commits', (t) => {
  const { v, dir } = create(t);
  setInode(v, 7, 'mode 644');
  t.true(commit(v));
  const old = v.table.get(inodeRecordName(NAMES, 7)) as Buffer;
  setInode(v, 7, 'mode 600');
  t.true(commit(v));
  v.table.apply([{ name: inodeRecordName(NAMES, 7), value: old }], true);
  const r = reopen(v, dir);
  t.teardown(() => r.table.close());
  const err = t.throws(() => readInode(r, 7));
  t.true(err instanceof IntegrityError);
  t.is((err as IntegrityError).kind, 'stale');
  t.regex(err?.message ?? '', /record from commit \d+, expected \d+/);
});

test('the newest state record spliced into an older copy of the table: the inode table nodes are stale', (t) => {
  const { v, dir } = create(t);
  for (let ino = 1; ino <= 500; ino++) setInode(v, ino, `first ${ino}`);
  t.true(commit(v));
  // An older copy of every row, as a backup would hold.
  const rows = (v.table as unknown as { db: { prepare(sql: string): { all(): { k: Buffer; v: Buffer }[] } } }).db.prepare('SELECT k, v FROM r').all();
  for (let ino = 1; ino <= 500; ino++) setInode(v, ino, `second ${ino}`);
  t.true(commit(v));
  const newest = v.table.get(stateRecordName(NAMES)) as Buffer;
  v.table.apply(rows.map((row) => ({ name: row.k, value: row.v })), true);
  v.table.apply([{ name: stateRecordName(NAMES), value: newest }], true);
  const r = reopen(v, dir);
  t.teardown(() => r.table.close());
  const err = t.throws(() => readInode(r, 450));
  t.true(err instanceof IntegrityError);
  t.is((err as IntegrityError).kind, 'stale', err?.message);
});

test('a failed commit is written by the next one under a new number; a deleted inode reads as none', (t) => {
  const { v, dir } = create(t);
  setInode(v, 1, 'a');
  setInode(v, 2, 'b');
  t.true(commit(v));
  const before = v.root.state.commit;
  setInode(v, 1, 'a2');
  v.inodes.get(2)!.deleted = true;
  v.batcher.touch(v.inodes.get(2)!);
  v.fail.on = true;
  t.false(commit(v));
  t.is(v.root.state.commit, before, 'the committed state is still the last good one');
  v.fail.on = false;
  setInode(v, 3, 'c');
  t.true(commit(v));
  const r = reopen(v, dir);
  t.teardown(() => r.table.close());
  t.is(readInode(r, 1), 'a2');
  t.is(readInode(r, 2), null);
  t.is(readInode(r, 3), 'c');
  t.is(r.table.get(inodeRecordName(NAMES, 2)), null, 'the deleted inode\'s row is gone');
});

test('no state record: the store has no metadata (missing); a damaged one: damaged', (t) => {
  const { v, dir } = create(t);
  const state = v.table.get(stateRecordName(NAMES)) as Buffer;
  v.table.apply([{ name: stateRecordName(NAMES), value: null }], true);
  v.table.close();
  const table = RecordTable.open(dir);
  t.teardown(() => table.close());
  const open = () => StateRoot.open(NAMES, new RecordSealer(RECORD_KEY, VAULT_ID), table, (r) => new VersionCounter(r));
  t.is((t.throws(open) as IntegrityError).kind, 'missing');
  const flipped = Buffer.from(state);
  flipped[500] = (flipped[500] as number) ^ 1;
  table.apply([{ name: stateRecordName(NAMES), value: flipped }], true);
  t.is((t.throws(open) as IntegrityError).kind, 'damaged');
});
