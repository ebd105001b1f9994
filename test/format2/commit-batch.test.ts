// Group commits of format 2 (docs/format-2.md 5.6, 17.1) and the version counter (section 11), over a
// small tree of fake participants: leaves (level 0) owned by nodes (level 1) owned by the root. The
// records are sealed for real and written to a real meta2.db; after each successful write the tree is read
// back from the state record down, each record at the version its owner holds.

import test from 'ava';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { FsError } from '../../src/core/errors.js';
import { CommitBatcher, type CommitParticipant, type ParticipantStamp, type RecordWriter } from '../../src/core/format2/commit-batch.js';
import { RecordKind, RecordSealer } from '../../src/core/format2/record-seal.js';
import { RecordTable, type RecordChange } from '../../src/core/format2/record-table.js';
import { COUNTER_BLOCK, VersionCounter } from '../../src/core/format2/version-counter.js';
import { tempDir } from '../helpers/temp-vault.js';

const LEAVES_PER_NODE = 4;
const NODES = 3;

function nameOf(label: string): Buffer {
  const b = Buffer.alloc(32);
  b.write(label);
  return b;
}

function encodeVersions(vs: readonly number[]): Buffer {
  const b = Buffer.alloc(8 * vs.length);
  vs.forEach((v, i) => b.writeBigUInt64BE(BigInt(v), 8 * i));
  return b;
}

function decodeVersions(b: Buffer): number[] {
  return Array.from({ length: b.length / 8 }, (_, i) => Number(b.readBigUInt64BE(8 * i)));
}

/** One level of a fake tree: holds the versions of its children, writes one record when changed. */
class FakeParticipant implements CommitParticipant {
  changed = false;
  /** Versions of the children (nodes and the root); the value (leaves). */
  slots: number[];
  value = '';
  owner: FakeParticipant | null = null;
  indexInOwner = 0;
  private stampedAt: number | null = null;
  stamps = 0;

  constructor(
    readonly level: number,
    readonly label: string,
    children: number,
    private readonly batcher: () => CommitBatcher,
  ) {
    this.slots = new Array<number>(children).fill(0);
  }

  payload(): Buffer {
    return this.level === 0 ? Buffer.from(this.value) : encodeVersions(this.slots);
  }

  stamp(c: number): ParticipantStamp {
    if (this.stampedAt !== null) throw new Error(`${this.label}: stamped twice`);
    this.stamps++;
    this.stampedAt = c;
    this.changed = false;
    if (this.owner) {
      this.owner.slots[this.indexInOwner] = c;
      this.owner.changed = true;
      if (this.owner.level < 3) this.batcher().touch(this.owner); // the root is stamped in every cut

    }
    return { writes: [{ name: nameOf(this.label), kind: this.level === 3 ? RecordKind.state : RecordKind.inode, payload: this.payload() }], deletes: [] };
  }

  confirm(c: number): void {
    if (this.stampedAt !== c) throw new Error(`${this.label}: confirm of ${c}, stamped at ${this.stampedAt}`);
    this.stampedAt = null;
  }

  unstamp(c: number): void {
    if (this.stampedAt !== c) throw new Error(`${this.label}: unstamp of ${c}, stamped at ${this.stampedAt}`);
    this.stampedAt = null;
    this.changed = true;
  }
}

interface Rig {
  table: RecordTable;
  sealer: RecordSealer;
  batcher: CommitBatcher;
  leaves: FakeParticipant[];
  root: FakeParticipant;
  counter: VersionCounter;
  /** The table's writes fail while set. */
  failWrites: { on: boolean };
  /** Every (name, version) written successfully. */
  sealed: Set<string>;
}

function rig(t: Parameters<typeof tempDir>[0]): Rig {
  const table = RecordTable.create(tempDir(t));
  t.teardown(() => table.close());
  const sealer = new RecordSealer(randomBytes(32), randomBytes(16));
  const counter = new VersionCounter(100);
  const failWrites = { on: false };
  const sealed = new Set<string>();
  const writer: RecordWriter = {
    apply(changes: readonly RecordChange[], durable: boolean) {
      if (failWrites.on) throw new FsError('ENOSPC', 'the disk is full (simulated)');
      table.apply(changes, durable);
    },
  };
  const holder: { batcher?: CommitBatcher } = {};
  const get = () => holder.batcher as CommitBatcher;
  const root = new FakeParticipant(3, 'state', NODES, get);
  const nodes = Array.from({ length: NODES }, (_, j) => Object.assign(new FakeParticipant(1, `node-${j}`, LEAVES_PER_NODE, get), { owner: root, indexInOwner: j }));
  const leaves = Array.from({ length: NODES * LEAVES_PER_NODE }, (_, i) =>
    Object.assign(new FakeParticipant(0, `leaf-${i}`, 0, get), { owner: nodes[Math.floor(i / LEAVES_PER_NODE)] ?? null, indexInOwner: i % LEAVES_PER_NODE }),
  );
  // The opening commit reserves the first block (section 11), then ordinary commits take numbers.
  /** The reservation the state record of the outstanding cut carries (a real state record encodes it). */
  let reservedInCut = 0;
  const batcher = new CommitBatcher(writer, sealer, () => counter.take(), {
    level: 3,
    stamp: (c) => {
      reservedInCut = counter.reservationForCut();
      return root.stamp(c);
    },
    confirm: (c) => {
      root.confirm(c);
      counter.confirmed(reservedInCut);
    },
    unstamp: (c) => {
      root.unstamp(c);
      counter.failed();
    },
  });
  holder.batcher = batcher;
  // The open's first commit (section 11): the state record alone, under the counter's opening number,
  // reserving the first block. If it fails, the open fails.
  batcher.write(batcher.cut(counter.openingCommit()));
  return { table, sealer, batcher, leaves, root, counter, failWrites, sealed };
}

/** Cuts and writes; records what was sealed when it succeeds. */
function commit(r: Rig, between: () => void = () => undefined): { ok: boolean; version: number } {
  const batch = r.batcher.cut();
  between();
  try {
    r.batcher.write(batch);
  } catch (err) {
    if (!(err instanceof FsError)) throw err;
    return { ok: false, version: batch.version };
  }
  for (const c of batch.changes) if (c.value) r.sealed.add(`${c.name.toString('hex')}@${batch.version}`);
  return { ok: true, version: batch.version };
}

/** The leaves' values as read from the store: state record first, then down by the versions owners hold. */
function readBack(r: Rig): string[] {
  const state = r.sealer.openAtClaimedVersion(nameOf('state'), r.table.get(nameOf('state')), RecordKind.state);
  const values: string[] = [];
  decodeVersions(state.payload).forEach((nodeVersion, j) => {
    const nodeSlots = nodeVersion === 0 ? new Array<number>(LEAVES_PER_NODE).fill(0) : decodeVersions(r.sealer.open(nameOf(`node-${j}`), r.table.get(nameOf(`node-${j}`)), nodeVersion, RecordKind.inode));
    nodeSlots.forEach((leafVersion, k) => {
      const i = j * LEAVES_PER_NODE + k;
      values.push(leafVersion === 0 ? '' : r.sealer.open(nameOf(`leaf-${i}`), r.table.get(nameOf(`leaf-${i}`)), leafVersion, RecordKind.inode).toString());
    });
  });
  return values;
}

function setLeaf(r: Rig, i: number, value: string): void {
  const leaf = r.leaves[i] as FakeParticipant;
  leaf.value = value;
  leaf.changed = true;
  r.batcher.touch(leaf);
}

test('a cut stamps leaves, then their owners, then the root, at one version; the tree reads back from the state record', (t) => {
  const r = rig(t);
  setLeaf(r, 0, 'a');
  setLeaf(r, 5, 'b');
  const { ok, version } = commit(r);
  t.true(ok);
  t.is(version, 101, 'the first commit after the opening one (100, reservedUpTo itself)');
  t.deepEqual(readBack(r), ['a', '', '', '', '', 'b', '', '', '', '', '', '']);
  t.is(r.root.slots[0], 101);
  t.is(r.root.slots[2], 0, 'an untouched node stays absent');
  setLeaf(r, 1, 'c');
  t.true(commit(r).ok);
  t.deepEqual(readBack(r).slice(0, 2), ['a', 'c']);
  t.is((r.leaves[5] as FakeParticipant).stamps, 1, 'an unchanged leaf is not written again');
});

test('a failed write takes a new number: nothing of the failed cut is in the store, and its number is never sealed', (t) => {
  const r = rig(t);
  setLeaf(r, 0, 'first');
  t.true(commit(r).ok);
  setLeaf(r, 0, 'second');
  r.failWrites.on = true;
  const failed = commit(r);
  t.false(failed.ok);
  t.deepEqual(readBack(r)[0], 'first', 'the store is as the last good commit left it');
  r.failWrites.on = false;
  setLeaf(r, 3, 'meanwhile');
  const next = commit(r);
  t.true(next.ok);
  t.true(next.version > failed.version);
  t.deepEqual(readBack(r).slice(0, 4), ['second', '', '', 'meanwhile'], 'the failed cut is written by the next one');
  t.false([...r.sealed].some((s) => s.endsWith(`@${failed.version}`)), 'the failed number appears nowhere');
});

test('changes made between a cut and its write belong to the next cut', (t) => {
  const r = rig(t);
  setLeaf(r, 0, 'in the cut');
  t.true(commit(r, () => setLeaf(r, 0, 'after the cut')).ok);
  t.is(readBack(r)[0], 'in the cut');
  t.true(r.batcher.pending);
  t.true(commit(r).ok);
  t.is(readBack(r)[0], 'after the cut');
});

test('a record claimed by two participants in one cut is refused, and nothing is lost: the next cut writes it all', (t) => {
  const r = rig(t);
  setLeaf(r, 0, 'x');
  const clash: CommitParticipant = { level: 0, stamp: () => ({ writes: [{ name: nameOf('leaf-0'), kind: RecordKind.inode, payload: Buffer.from('clash') }], deletes: [] }), confirm: () => {}, unstamp: () => {} };
  r.batcher.touch(clash);
  t.throws(() => r.batcher.cut(), { message: /changed twice/ });
  t.false(r.batcher.inFlight);
  // The clash is still touched: take it away by hand, as its owner would after fixing its state.
  const touched = (r.batcher as unknown as { touched: Set<CommitParticipant>[] }).touched;
  touched[0]?.delete(clash);
  t.true(commit(r).ok);
  t.is(readBack(r)[0], 'x');
});

test('property: any sequence of changes, commits and failed commits reads back as the last good cut left it, and no number is sealed twice', (t) => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('set' as const), leaf: fc.nat(NODES * LEAVES_PER_NODE - 1), value: fc.string({ minLength: 1, maxLength: 8 }) }),
          fc.record({ op: fc.constant('commit' as const), fail: fc.boolean(), leaf: fc.nat(NODES * LEAVES_PER_NODE - 1), between: fc.option(fc.string({ minLength: 1, maxLength: 8 })) }),
        ),
        { maxLength: 40 },
      ),
      (ops) => {
        const r = rig(t);
        const model = new Array<string>(NODES * LEAVES_PER_NODE).fill('');
        const versions = new Set<number>();
        let committed = [...model];
        for (const o of ops) {
          if (o.op === 'set') {
            setLeaf(r, o.leaf, o.value);
            model[o.leaf] = o.value;
            continue;
          }
          const atCut = [...model];
          r.failWrites.on = o.fail;
          const res = commit(r, () => {
            if (o.between !== null) {
              setLeaf(r, o.leaf, o.between);
              model[o.leaf] = o.between;
            }
          });
          r.failWrites.on = false;
          if (versions.has(res.version)) return false;
          versions.add(res.version);
          if (res.ok) committed = atCut;
          if (JSON.stringify(readBack(r)) !== JSON.stringify(committed)) return false;
        }
        r.failWrites.on = false;
        commit(r);
        return JSON.stringify(readBack(r)) === JSON.stringify(model);
      },
    ),
    { numRuns: 60 },
  );
  t.pass();
});

test('version counter: nothing is handed out before the opening commit reserves a block; blocks extend at half; a failed extension is asked again', (t) => {
  const c = new VersionCounter(1000);
  t.throws(() => c.take(), { instanceOf: FsError, message: /no piece version or commit number is reserved/ });
  const opening = c.openingCommit();
  t.is(opening, 1000);
  t.is(c.reservationForCut(), 1001 + COUNTER_BLOCK, 'the opening commit reserves a block past the next value');
  c.confirmed(1001 + COUNTER_BLOCK);
  t.is(c.take(), 1001);
  t.is(c.reservationForCut(), 1001 + COUNTER_BLOCK, 'plenty left: no extension');
  while (!c.wantsExtension) c.take();
  const asked = c.reservationForCut();
  t.true(asked > 1001 + COUNTER_BLOCK);
  c.failed();
  t.is(c.reservationForCut(), asked, 'asked again after a failed commit');
  // Exhausting the durable reservation without a commit: EIO, never a value past it.
  let last = 0;
  t.throws(() => {
    for (;;) last = c.take();
  }, { instanceOf: FsError });
  t.is(last, 1001 + COUNTER_BLOCK - 1);
  c.confirmed(asked);
  t.is(c.take(), 1001 + COUNTER_BLOCK);
});

test('version counter: a session that crashed before its opening commit restarts at the same number, with the same reservation', (t) => {
  const a = new VersionCounter(5000);
  const b = new VersionCounter(5000);
  t.is(a.openingCommit(), b.openingCommit());
  t.is(a.reservationForCut(), b.reservationForCut());
});
