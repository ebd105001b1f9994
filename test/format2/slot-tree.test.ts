// The slot tree of format 2 (src/core/format2/slot-tree.ts) against a plain model, a Map of index → slot,
// with a fake node store that takes each stamp's writes and deletes as the commit would: encoded at the
// stamp, written only when the stamp is confirmed, thrown away when it is unstamped (17.1). Between a stamp
// and its outcome the commands go on changing the tree. After every confirm, a tree rebuilt from the
// owner's root, depth and the store must read as the model did at the stamp, every pointer must hold the
// version of the node it points to, no node may be left that nothing points to, no slot or pointer may
// hold the number of a stamp that was undone, and the depth must be the smallest that holds the model.
// Small nodes (3 to 7 slots) reach every depth, every collapse and EFBIG in a few hundred slots; the real
// shapes (494-slot nodes, roots of 400 and 477) run the same commands, with fills short enough for the
// model, at indexes around every level's boundaries.

import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FsError, IntegrityError } from '../../src/core/errors.js';
import { decodeMapNode, encodeMapNode, MAP_NODE_PAYLOAD_BYTES, MAP_NODE_SLOTS } from '../../src/core/format2/map-node.js';
import {
  INODE_ROOT_CAPACITY,
  type MapNodeSource,
  SlotTree,
  slotTreeCapacity,
  STATE_ROOT_CAPACITY,
  type TreeStamp,
} from '../../src/core/format2/slot-tree.js';
import { HOLE, isLost, lostSlot, MAX_VERSION, PREALLOCATED, SLOT_BYTES } from '../../src/core/format2/slot.js';

const RUNS = Number(process.env.SVAULT_PROPERTY_RUNS ?? 100);
/** 1 TiB of 128 KiB pieces. */
const TIB_PIECES = 8_388_608;

interface Shape {
  rootCapacity: number;
  nodeSlots: number;
  special: boolean;
}

/** What the owner record (inode or state record) keeps of the tree. */
interface Owner {
  root: number[];
  depth: number;
  preallocated: number;
  /** The inode keeps only whether there are any (HAS_LOST); the count is kept here to check it. */
  lost: number;
}

interface StoredNode {
  version: number;
  /** The encoded payload for 494-slot nodes (so map-node.ts is in the loop), the slots otherwise. */
  payload: Buffer | Float64Array;
}

/** A stamp as the commit freezes it: name → sealed value, or a delete. Nothing in it is the tree's. */
interface FrozenBatch {
  version: number;
  writes: Map<string, StoredNode>;
  deletes: string[];
}

/** The map node records of one tree, as SQLite would hold them, counting every load. */
class FakeNodeStore implements MapNodeSource {
  readonly records = new Map<string, StoredNode>();
  loads: string[] = [];

  constructor(readonly shape: Shape) {}

  static key(level: number, nodeNo: number): string {
    return `${level}:${nodeNo}`;
  }

  load(level: number, nodeNo: number, version: number): ArrayLike<number> {
    const key = FakeNodeStore.key(level, nodeNo);
    this.loads.push(key);
    const record = this.records.get(key);
    if (record === undefined) throw new IntegrityError(`node ${key} is missing`, 'missing');
    if (record.version !== version) throw new IntegrityError(`node ${key} is from commit ${record.version}, expected ${version}`, 'stale');
    return this.slotsOf(key);
  }

  slotsOf(key: string): Float64Array {
    const record = this.records.get(key);
    if (record === undefined) throw new Error(`no node ${key}`);
    return FakeNodeStore.decode(key, record, this.shape);
  }

  static decode(key: string, record: StoredNode, shape: Shape): Float64Array {
    if (record.payload instanceof Float64Array) return record.payload.slice();
    const level = Number(key.split(':')[0]);
    return decodeMapNode(record.payload, { level, special: shape.special, version: record.version, what: key });
  }

  /** Encodes a stamp's writes, as the cut does right after the stamp, before the tree changes again. */
  freeze(stamp: TreeStamp, version: number): FrozenBatch {
    const writes = new Map<string, StoredNode>();
    for (const { level, nodeNo, slots } of stamp.writes) {
      const key = FakeNodeStore.key(level, nodeNo);
      assert.ok(!writes.has(key), `the stamp writes ${key} twice`);
      assert.equal(slots.length, this.shape.nodeSlots);
      const payload = this.shape.nodeSlots === MAP_NODE_SLOTS ? encodeMapNode(slots) : Float64Array.from(slots);
      writes.set(key, { version, payload });
    }
    const deletes = stamp.deletes.map(({ level, nodeNo }) => FakeNodeStore.key(level, nodeNo));
    for (const key of deletes) assert.ok(!writes.has(key), `the stamp both writes and deletes ${key}`);
    return { version, writes, deletes };
  }

  /** Applies a frozen batch as its commit's transaction would, refusing deletes of records that are not there. */
  apply(batch: FrozenBatch): void {
    for (const key of batch.deletes) {
      assert.ok(this.records.has(key), `the stamp deletes ${key}, which is not stored`);
      this.records.delete(key);
    }
    for (const [key, record] of batch.writes) this.records.set(key, record);
  }

  /** Freezes and applies at once: a stamp whose write succeeds before the tree changes. */
  applyStamp(stamp: TreeStamp, version: number): void {
    this.apply(this.freeze(stamp, version));
  }
}

/** The model: every slot that is not HOLE. */
class Model {
  readonly slots: Map<number, number>;

  constructor(slots = new Map<number, number>()) {
    this.slots = slots;
  }

  clone(): Model {
    return new Model(new Map(this.slots));
  }

  get(index: number): number {
    return this.slots.get(index) ?? HOLE;
  }

  set(index: number, slot: number): void {
    if (slot === HOLE) this.slots.delete(index);
    else this.slots.set(index, slot);
  }

  fill(start: number, end: number, slot: number, holesOnly: boolean): void {
    if (slot === HOLE) {
      if (!holesOnly) for (const index of [...this.slots.keys()]) if (index >= start && index < end) this.slots.delete(index);
      return;
    }
    for (let i = start; i < end; i++) if (!holesOnly || this.get(i) === HOLE) this.set(i, slot);
  }

  truncate(length: number): void {
    for (const index of [...this.slots.keys()]) if (index >= length) this.slots.delete(index);
  }

  get preallocated(): number {
    let count = 0;
    for (const slot of this.slots.values()) if (slot === PREALLOCATED) count++;
    return count;
  }

  get lost(): number {
    let count = 0;
    for (const slot of this.slots.values()) if (isLost(slot)) count++;
    return count;
  }

  /** Indexes holding data or lost slots, ascending: SEEK_DATA's answers. */
  dataIndexes(): number[] {
    return [...this.slots].filter(([, slot]) => slot > 0 || isLost(slot)).map(([index]) => index).sort((a, b) => a - b);
  }

  nextData(from: number): number | undefined {
    return this.dataIndexes().find((index) => index >= from);
  }

  nextHole(from: number): number {
    let i = from;
    for (;;) {
      const slot = this.get(i);
      if (slot === HOLE || slot === PREALLOCATED) return i;
      i++;
    }
  }

  versions(): { index: number; version: number }[] {
    return [...this.slots].filter(([, slot]) => slot > 0).map(([index, version]) => ({ index, version })).sort((a, b) => a.index - b.index);
  }
}

/** Opens a tree as the metadata layer would. With knownCount, the owner's counts: `count`, and 0 lost unless HAS_LOST. */
function openTree(shape: Shape, owner: Owner, store: MapNodeSource, knownCount = true): SlotTree {
  return new SlotTree({
    root: owner.root,
    depth: owner.depth,
    rootCapacity: shape.rootCapacity,
    special: shape.special,
    nodes: store,
    nodeSlots: shape.nodeSlots,
    preallocated: knownCount ? owner.preallocated : undefined,
    lost: knownCount && owner.lost === 0 ? 0 : undefined,
  });
}

/** What the owner stores of `tree`, read right after a stamp. */
function ownerOf(tree: SlotTree): Owner {
  return { root: tree.rootEntries(), depth: tree.depth, preallocated: tree.preallocated, lost: tree.lost };
}

function capacity(shape: Shape, depth: number): number {
  return slotTreeCapacity(shape.rootCapacity, depth, shape.nodeSlots);
}

/** The smallest depth that holds every slot of the model. */
function minimalDepth(shape: Shape, model: Model): number {
  let last = -1;
  for (const index of model.slots.keys()) last = Math.max(last, index);
  let depth = 0;
  while (last >= capacity(shape, depth)) depth++;
  return depth;
}

/**
 * Walks the store from the owner's root: every positive pointer names a stored node at exactly that
 * version, no stored node is one a pointer could say instead (all HOLE, all preallocated, all one lost
 * value), and every stored node is reached.
 */
function checkStoredTree(shape: Shape, owner: Owner, store: FakeNodeStore): void {
  const reached = new Set<string>();
  const walk = (entries: ArrayLike<number>, level: number, nodeNo: number): void => {
    if (level === 0) return;
    for (let j = 0; j < entries.length; j++) {
      const pointer = entries[j] as number;
      if (!(pointer > 0)) continue;
      const childNo = nodeNo * shape.nodeSlots + j;
      const key = FakeNodeStore.key(level - 1, childNo);
      const record = store.records.get(key);
      assert.ok(record, `pointer ${pointer} names ${key}, which is not stored`);
      assert.equal(record.version, pointer, `pointer to ${key} holds ${pointer}, the node is at ${record.version}`);
      reached.add(key);
      const slots = store.slotsOf(key);
      const first = slots[0] as number;
      assert.ok(first > 0 || slots.some((slot) => slot !== first), `stored node ${key} is uniform ${first}`);
      walk(slots, level - 1, childNo);
    }
  };
  walk(owner.root, owner.depth, 0);
  const unreachable = [...store.records.keys()].filter((key) => !reached.has(key));
  assert.deepEqual(unreachable, [], 'stored nodes that nothing points to');
}

/** No root entry, and no slot of a node in `nodes` (stored or about to be), holds one of the `undone` commit numbers. */
function checkNoneHold(undone: ReadonlySet<number>, root: ArrayLike<number>, nodes: Iterable<[string, StoredNode]>, shape: Shape): void {
  if (undone.size === 0) return;
  for (let j = 0; j < root.length; j++) assert.ok(!undone.has(root[j] as number), `root entry ${j} holds undone commit ${root[j]}`);
  for (const [key, record] of nodes) {
    assert.ok(!undone.has(record.version), `${key} is sealed at undone commit ${record.version}`);
    const slots = FakeNodeStore.decode(key, record, shape);
    for (let j = 0; j < slots.length; j++) assert.ok(!undone.has(slots[j] as number), `${key} slot ${j} holds undone commit ${slots[j]}`);
  }
}

/** Indexes where a difference is most likely: around every model slot and every boundary of the shape. */
function probesFor(shape: Shape, model: Model, extra: number[]): number[] {
  const probes = new Set<number>(extra);
  for (const index of model.slots.keys()) for (const d of [-1, 0, 1]) probes.add(index + d);
  for (let depth = 0; depth <= 3; depth++) {
    const c = capacity(shape, depth);
    for (const d of [-1, 0, 1]) probes.add(c + d);
    for (const d of [-1, 0, 1]) probes.add(shape.nodeSlots ** depth + d);
  }
  return [...probes].filter((i) => i >= 0);
}

function checkReads(shape: Shape, tree: SlotTree, model: Model, probes: number[], exhaustive: boolean): void {
  if (exhaustive) {
    for (let i = 0; i < capacity(shape, 3) + 2; i++) assert.equal(tree.get(i), model.get(i), `slot ${i}`);
  } else {
    for (const i of probes) assert.equal(tree.get(i), model.get(i), `slot ${i}`);
    // Nothing else is data: walking SEEK_DATA from 0 meets exactly the model's data slots.
    const found: number[] = [];
    for (let next = tree.nextData(0); next !== undefined; next = tree.nextData(next + 1)) {
      found.push(next);
      assert.ok(found.length <= model.slots.size, 'the tree holds more data than the model');
    }
    assert.deepEqual(found, model.dataIndexes());
  }
  assert.equal(tree.preallocated, model.preallocated, 'preallocated count');
  assert.equal(tree.lost, model.lost, 'lost count');
}

function checkSeeks(tree: SlotTree, model: Model, froms: number[]): void {
  for (const from of froms) {
    assert.equal(tree.nextData(from), model.nextData(from), `nextData(${from})`);
    assert.equal(tree.nextHole(from), model.nextHole(from), `nextHole(${from})`);
  }
}

type Cmd =
  | { op: 'set'; index: number; slot: number }
  | { op: 'fill'; start: number; length: number; slot: number; holesOnly: boolean }
  | { op: 'truncate'; length: number }
  | { op: 'seek'; from: number; to: number }
  /** The slot's record is written at the next commit, so its slot will hold that commit's number (the inode table's use). */
  | { op: 'written'; index: number }
  | { op: 'stamp'; reopen: boolean; knownCount: boolean }
  | { op: 'confirm' }
  | { op: 'unstamp' }
  | { op: 'evict' };

function commands(shape: Shape, index: fc.Arbitrary<number>, fillLength: fc.Arbitrary<number>): fc.Arbitrary<Cmd[]> {
  const version = fc.integer({ min: 1, max: 999 });
  const slot = shape.special
    ? fc.oneof(
        { weight: 3, arbitrary: fc.constant(HOLE) },
        { weight: 3, arbitrary: version },
        { weight: 3, arbitrary: fc.constant(PREALLOCATED) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 }).map(lostSlot) },
      )
    : fc.oneof(fc.constant(HOLE), version);
  // Ranges take what a pointer can say for a whole subtree; a version is one slot's.
  const rangeSlot = shape.special
    ? fc.oneof(fc.constant(HOLE), fc.constant(PREALLOCATED), fc.integer({ min: 0, max: 2 }).map(lostSlot))
    : fc.constant(HOLE);
  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), index, slot }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('fill' as const), start: index, length: fillLength, slot: rangeSlot, holesOnly: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), length: index }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('seek' as const), from: index, to: index }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('written' as const), index }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('stamp' as const), reopen: fc.boolean(), knownCount: fc.boolean() }) },
    { weight: 2, arbitrary: fc.constant({ op: 'confirm' as const }) },
    { weight: 1, arbitrary: fc.constant({ op: 'unstamp' as const }) },
    { weight: 1, arbitrary: fc.constant({ op: 'evict' as const }) },
  );
  return fc.array(cmd, { minLength: 5, maxLength: 60, size: 'medium' });
}

/** A stamp whose write has not happened yet, and what the owner and the model were at the stamp. */
interface PendingCommit {
  version: number;
  batch: FrozenBatch;
  owner: Owner;
  model: Model;
  /** Indexes set to this commit's number: undone, they are written at the next commit. */
  written: Set<number>;
  reopen: boolean;
  knownCount: boolean;
}

/**
 * Runs the commands against a tree and the model. A stamp freezes its batch into the fake store's form;
 * confirm applies it and checks the store; unstamp throws it away. Every commit number an unstamp gave back
 * is then checked never to appear again, in the batches or in the store.
 */
function runAgainstModel(shape: Shape, cmds: Cmd[], exhaustive: boolean): void {
  const store = new FakeNodeStore(shape);
  const model = new Model();
  let owner: Owner = { root: [], depth: 0, preallocated: 0, lost: 0 };
  let tree = openTree(shape, owner, store);
  let commit = 1_000_000;
  let pending: PendingCommit | undefined;
  let written = new Set<number>();
  const undone = new Set<number>();
  const maxSlots = capacity(shape, 3);
  const efbig = (fn: () => void): void => {
    assert.throws(fn, (err: unknown) => err instanceof FsError && err.errno === 'EFBIG');
  };
  const end: Cmd[] = [{ op: 'confirm' }, { op: 'stamp', reopen: true, knownCount: false }, { op: 'confirm' }];

  for (const cmd of [...cmds, ...end]) {
    const touched: number[] = [];
    switch (cmd.op) {
      case 'set':
        if (cmd.index >= maxSlots && cmd.slot !== HOLE) efbig(() => tree.set(cmd.index, cmd.slot));
        else {
          tree.set(cmd.index, cmd.slot);
          model.set(cmd.index, cmd.slot);
        }
        touched.push(cmd.index);
        break;
      case 'fill': {
        const end = cmd.start + cmd.length;
        const grows = cmd.slot !== HOLE && cmd.length > 0;
        const run = (): void => (cmd.holesOnly ? tree.fillHoles(cmd.start, end, cmd.slot) : tree.fill(cmd.start, end, cmd.slot));
        if (grows && end > maxSlots) efbig(run);
        else {
          run();
          model.fill(cmd.start, end, cmd.slot, cmd.holesOnly);
        }
        touched.push(cmd.start, end - 1, end);
        break;
      }
      case 'truncate':
        tree.truncate(cmd.length);
        model.truncate(cmd.length);
        touched.push(cmd.length - 1, cmd.length);
        break;
      case 'seek': {
        checkSeeks(tree, model, [cmd.from, 0]);
        const [start, end] = [Math.min(cmd.from, cmd.to), Math.max(cmd.from, cmd.to)];
        const inRange = model.versions().filter(({ index }) => index >= start && index < end);
        assert.deepEqual([...tree.versions(start, end)], inRange, `versions(${start}, ${end})`);
        break;
      }
      case 'written':
        if (cmd.index < maxSlots) written.add(cmd.index);
        break;
      case 'stamp': {
        if (pending !== undefined) {
          assert.throws(() => tree.stamp(commit + 1), /neither confirmed nor unstamped/);
          break;
        }
        commit += 1 + (cmd.reopen ? 1 : 0);
        for (const index of written) {
          tree.set(index, commit);
          model.set(index, commit);
          touched.push(index);
        }
        const stamp = tree.stamp(commit);
        assert.equal(tree.outstandingStamp, commit);
        const batch = store.freeze(stamp, commit);
        const stamped = ownerOf(tree);
        assert.ok(stamped.root.length <= shape.rootCapacity);
        assert.notEqual(stamped.root.at(-1), HOLE, 'root entries are trimmed');
        assert.equal(stamped.depth, minimalDepth(shape, model), 'depth is minimal');
        assert.ok(!tree.hasChanges);
        assert.equal(stamped.preallocated, model.preallocated);
        assert.equal(stamped.lost, model.lost);
        checkNoneHold(undone, stamped.root, batch.writes, shape);
        pending = { version: commit, batch, owner: stamped, model: model.clone(), written, reopen: cmd.reopen, knownCount: cmd.knownCount };
        written = new Set();
        break;
      }
      case 'confirm': {
        if (pending === undefined) {
          assert.throws(() => tree.confirm(commit), /outstanding stamp is none/);
          break;
        }
        tree.confirm(pending.version);
        assert.equal(tree.outstandingStamp, undefined);
        store.apply(pending.batch);
        owner = pending.owner;
        checkStoredTree(shape, owner, store);
        checkNoneHold(undone, owner.root, store.records, shape);

        const rebuilt = openTree(shape, owner, store, pending.knownCount);
        const probes = probesFor(shape, pending.model, []);
        checkReads(shape, rebuilt, pending.model, probes, exhaustive);
        assert.deepEqual([...rebuilt.versions()], pending.model.versions());
        assert.equal(rebuilt.countPreallocated(), pending.model.preallocated);
        assert.equal(rebuilt.countLost(), pending.model.lost);
        checkSeeks(rebuilt, pending.model, probes.slice(0, 20));
        if (pending.reopen && !tree.hasChanges) tree = openTree(shape, owner, store, pending.knownCount);
        pending = undefined;
        break;
      }
      case 'unstamp': {
        if (pending === undefined) {
          assert.throws(() => tree.unstamp(commit), /outstanding stamp is none/);
          break;
        }
        tree.unstamp(pending.version);
        undone.add(pending.version);
        for (const index of pending.written) written.add(index);
        assert.ok(tree.hasChanges || pending.batch.writes.size + pending.batch.deletes.length === 0);
        assert.throws(() => tree.stamp(pending?.version ?? 0), /not newer/, 'an undone number is not used again');
        pending = undefined;
        // The tree reads as before the unstamp: as the model.
        checkReads(shape, tree, model, probesFor(shape, model, []), exhaustive);
        break;
      }
      case 'evict':
        tree.evict();
        break;
    }
    // Between stamps the tree reads its pending changes.
    for (const i of touched) if (i >= 0) assert.equal(tree.get(i), model.get(i), `slot ${i} after ${cmd.op}`);
  }
}

const smallShapes: Shape[] = [
  { rootCapacity: 3, nodeSlots: 5, special: true },
  { rootCapacity: 4, nodeSlots: 4, special: true },
  { rootCapacity: 1, nodeSlots: 3, special: true },
  { rootCapacity: 2, nodeSlots: 7, special: true },
  { rootCapacity: 3, nodeSlots: 5, special: false },
  { rootCapacity: 4, nodeSlots: 4, special: false },
];

for (const shape of smallShapes) {
  test(`model: small nodes, root ${shape.rootCapacity} of ${shape.nodeSlots}, ${shape.special ? 'piece map' : 'no special slots'}`, (t) => {
    const maxSlots = capacity(shape, 3);
    // Mostly low indexes, so that trees shrink as often as they grow.
    const index = fc.oneof(...[1, 2, 3].map((depth) => fc.integer({ min: 0, max: capacity(shape, depth) + (depth === 3 ? 4 : 1) })));
    const fillLength = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: maxSlots }));
    fc.assert(
      fc.property(commands(shape, index, fillLength), (cmds) => runAgainstModel(shape, cmds, true)),
      { numRuns: RUNS },
    );
    t.pass();
  });
}

const F = MAP_NODE_SLOTS;
const realShapes: Shape[] = [
  { rootCapacity: INODE_ROOT_CAPACITY, nodeSlots: F, special: true },
  { rootCapacity: STATE_ROOT_CAPACITY, nodeSlots: F, special: false },
];

for (const shape of realShapes) {
  test(`model: 494-slot nodes, root ${shape.rootCapacity}, ${shape.special ? 'piece map' : 'inode table'}`, (t) => {
    const R = shape.rootCapacity;
    // Around every boundary: node spans, root capacities per depth, and EFBIG.
    const anchors = [0, R, F, F * F, F ** 3, R * F, R * F * F, R * F ** 3, 2 * F * F, 3 * F ** 3];
    const index = fc.oneof(
      fc.integer({ min: 0, max: 3000 }),
      fc.tuple(fc.constantFrom(...anchors), fc.integer({ min: -600, max: 600 })).map(([a, d]) => Math.max(0, a + d)),
      fc.tuple(fc.integer({ min: 1, max: R - 1 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: -3, max: 3 })).map(([k, e, d]) => Math.max(0, k * F ** e + d)),
    );
    const fillLength = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 490, max: 1_500 }));
    fc.assert(
      fc.property(commands(shape, index, fillLength), (cmds) => runAgainstModel(shape, cmds, false)),
      { numRuns: Math.ceil(RUNS / 2) },
    );
    t.pass();
  });
}

/**
 * A tree over a fresh fake store, with helpers to commit it the way the metadata layer would: stamp
 * (freezing the batch and what the owner stores), then confirm (the write succeeded) or unstamp (it failed).
 */
function fixture(shape: Shape) {
  const store = new FakeNodeStore(shape);
  let owner: Owner = { root: [], depth: 0, preallocated: 0, lost: 0 };
  let commit = 10_000;
  let pending: { version: number; batch: FrozenBatch; owner: Owner } | undefined;
  const state = {
    store,
    tree: openTree(shape, owner, store),
    /** What the owner holds as committed: its last confirmed write. */
    get owner(): Owner {
      return owner;
    },
    /** What the owner would store at the outstanding stamp. */
    get stampedOwner(): Owner {
      if (pending === undefined) throw new Error('no stamp is outstanding');
      return pending.owner;
    },
    get stampedBatch(): FrozenBatch {
      if (pending === undefined) throw new Error('no stamp is outstanding');
      return pending.batch;
    },
    /** The last commit number taken. */
    get version(): number {
      return commit;
    },
    stamp(): TreeStamp {
      commit++;
      const stamp = state.tree.stamp(commit);
      pending = { version: commit, batch: store.freeze(stamp, commit), owner: ownerOf(state.tree) };
      return stamp;
    },
    confirm(): void {
      if (pending === undefined) throw new Error('no stamp is outstanding');
      state.tree.confirm(pending.version);
      store.apply(pending.batch);
      owner = pending.owner;
      pending = undefined;
      checkStoredTree(shape, owner, store);
    },
    /** The write failed: returns the commit number that is now used up. */
    unstamp(): number {
      if (pending === undefined) throw new Error('no stamp is outstanding');
      const { version } = pending;
      state.tree.unstamp(version);
      pending = undefined;
      return version;
    },
    commit(): TreeStamp {
      const stamp = state.stamp();
      state.confirm();
      return stamp;
    },
    reopen(): SlotTree {
      state.tree = openTree(shape, owner, store);
      store.loads = [];
      return state.tree;
    },
  };
  return state;
}

const pieceMap: Shape = { rootCapacity: INODE_ROOT_CAPACITY, nodeSlots: F, special: true };
const inodeTable: Shape = { rootCapacity: STATE_ROOT_CAPACITY, nodeSlots: F, special: false };

test('capacities are those of the table in 5.4', (t) => {
  t.deepEqual([0, 1, 2, 3].map((d) => slotTreeCapacity(STATE_ROOT_CAPACITY, d)), [400, 197_600, 97_614_400, 48_221_513_600]);
  t.deepEqual([0, 1, 2, 3].map((d) => slotTreeCapacity(INODE_ROOT_CAPACITY, d)), [477, 235_638, 116_405_172, 57_504_154_968]);
});

for (const shape of [pieceMap, inodeTable]) {
  test(`grows from depth 0 to 3 and shrinks back to 0, keeping node names (root ${shape.rootCapacity})`, (t) => {
    const f = fixture(shape);
    const cap = (depth: number): number => capacity(shape, depth);
    f.tree.set(0, 7);
    f.commit();
    t.is(f.tree.depth, 0);
    t.deepEqual(f.owner.root, [7]);

    // Each step up: the old root becomes node 0 of the new top level, and nothing already stored moves.
    for (let depth = 1; depth <= 3; depth++) {
      const before = new Map([...f.store.records].map(([key, record]) => [key, record.version]));
      f.tree.set(cap(depth - 1), 8 + depth);
      const stamp = f.commit();
      t.is(f.tree.depth, depth, `depth after setting slot ${cap(depth - 1)}`);
      t.deepEqual(stamp.deletes, []);
      for (const [key, version] of before) t.is(f.store.records.get(key)?.version, version, `${key} kept`);
      t.true(f.store.records.has(FakeNodeStore.key(depth - 1, 0)), 'the old root is node 0 of the new top level');
      t.is(f.reopen().get(0), 7);
      t.is(f.tree.get(cap(depth - 1)), 8 + depth);
    }
    f.tree.set(cap(3) - 1, 20);
    const efbig = (err: unknown): boolean => err instanceof FsError && err.errno === 'EFBIG';
    t.true(efbig(catchError(() => f.tree.set(cap(3), 21))));
    if (shape.special) {
      t.true(efbig(catchError(() => f.tree.fill(cap(3) - 1, cap(3) + 1, PREALLOCATED))));
      t.true(efbig(catchError(() => f.tree.fillHoles(cap(3) + 5, cap(3) + 6, lostSlot(0)))));
    }
    t.throws(() => f.tree.fill(0, 10, 5), { instanceOf: RangeError, message: /not version 5/ });
    t.notThrows(() => f.tree.set(cap(3), HOLE));
    f.commit();
    t.is(f.reopen().get(cap(3) - 1), 20);

    // Each step down: removing the slots that needed the depth deletes the old top node.
    f.tree.set(cap(3) - 1, HOLE);
    for (let depth = 3; depth >= 1; depth--) {
      f.tree.set(cap(depth - 1), HOLE);
      const stamp = f.commit();
      t.is(f.tree.depth, depth - 1);
      t.true(stamp.deletes.some((d) => d.level === depth - 1 && d.nodeNo === 0), `node 0 of level ${depth - 1} deleted`);
      t.is(f.reopen().get(0), 7);
    }
    t.deepEqual(f.owner.root, [7]);
    t.is(f.store.records.size, 0);
    f.tree.truncate(0);
    f.commit();
    t.deepEqual(f.owner.root, []);
  });
}

function catchError(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

test('the depth stays while the top node holds slots past the root capacity, though root entries 1 on are 0', (t) => {
  // Shrinking by the spec's wording alone ("every root entry but the first is 0") would lose slot 477.
  const f = fixture(pieceMap);
  f.tree.set(477, 3);
  f.commit();
  t.is(f.tree.depth, 1);
  t.is(f.owner.root.length, 1);
  f.tree.set(5, 4);
  f.commit();
  t.is(f.tree.depth, 1);
  f.tree.set(477, HOLE);
  f.commit();
  t.is(f.tree.depth, 0);
  t.deepEqual(f.owner.root, [0, 0, 0, 0, 0, 4]);
  t.is(f.store.records.size, 0);
});

test('preallocating 1 TiB of 128 KiB pieces costs at most two nodes per level', (t) => {
  for (const start of [0, 1_000, 3 * F * F + 17]) {
    const f = fixture(pieceMap);
    f.tree.fill(start, start + TIB_PIECES, PREALLOCATED);
    t.deepEqual(f.store.loads, []);
    t.is(f.tree.preallocated, TIB_PIECES);
    const stamp = f.commit();
    t.is(f.tree.depth, 2);
    for (let level = 0; level < 2; level++) t.true(stamp.writes.filter((w) => w.level === level).length <= 2, `level ${level}`);
    t.true(stamp.rootChanged);
    if (start === 0) t.is(f.owner.root.length, 35, 'the inode holds 35 root pointers (section 9)');

    const tree = f.reopen();
    t.is(tree.preallocated, TIB_PIECES, 'the owner count carries over');
    t.is(tree.countPreallocated(), TIB_PIECES);
    t.is(tree.get(start), PREALLOCATED);
    t.is(tree.get(start + TIB_PIECES - 1), PREALLOCATED);
    t.is(tree.get(start + TIB_PIECES), HOLE);
    t.is(tree.nextData(0), undefined, 'preallocated slots are holes to SEEK_DATA');
    t.is(tree.nextHole(start + 5), start + 5);
    t.true(f.store.loads.length <= 4, `loads: ${f.store.loads.join(' ')}`);

    // A write into the range makes one piece data: one path of nodes, one fewer preallocated slot.
    tree.set(start + 5_000_000, 99);
    const write = f.commit();
    t.true(write.writes.length <= 2);
    t.is(f.tree.preallocated, TIB_PIECES - 1);

    // Punching it all deletes every node and leaves an empty root.
    f.tree.fill(0, start + TIB_PIECES, HOLE);
    t.is(f.tree.preallocated, 0);
    f.commit();
    t.is(f.tree.depth, 0);
    t.deepEqual(f.owner.root, []);
    t.is(f.store.records.size, 0);
  }
});

test('fallocate mode 0 (fillHoles) keeps data, ZERO_RANGE (fill) replaces it', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(10, 5);
  f.tree.set(600_000, 6);
  f.tree.fillHoles(0, 1_000_000, PREALLOCATED);
  t.is(f.tree.get(10), 5);
  t.is(f.tree.get(600_000), 6);
  t.is(f.tree.preallocated, 1_000_000 - 2);
  f.commit();
  const tree = f.reopen();
  t.is(tree.get(11), PREALLOCATED);
  t.deepEqual([...tree.versions()], [{ index: 10, version: 5 }, { index: 600_000, version: 6 }]);
  t.deepEqual([...tree.versions(11, 1_000_000)], [{ index: 600_000, version: 6 }]);
  tree.fill(0, 1_000_000, PREALLOCATED);
  t.is(tree.preallocated, 1_000_000);
  t.deepEqual([...tree.versions()], []);
  f.commit();
  t.is(f.reopen().countPreallocated(), 1_000_000);
});

test('SEEK_DATA and SEEK_HOLE over a 1 TiB sparse map load only the nodes on the way', (t) => {
  for (const background of [HOLE, PREALLOCATED]) {
    const f = fixture(pieceMap);
    const data = [3, 4, 1_000_000, 5_000_000, TIB_PIECES - 1];
    if (background === PREALLOCATED) f.tree.fill(0, TIB_PIECES, PREALLOCATED);
    for (const index of data) f.tree.set(index, 50);
    f.commit();
    t.is(f.tree.depth, 2);

    // The nodes on the paths to the data slots: the leaf and its level-1 parent of each.
    const onPaths = new Set(data.flatMap((i) => [FakeNodeStore.key(0, Math.floor(i / F)), FakeNodeStore.key(1, Math.floor(i / F / F))]));
    const tree = f.reopen();
    t.is(tree.nextData(0), 3);
    t.deepEqual(f.store.loads, ['1:0', '0:0']);
    const found: number[] = [];
    for (let at = tree.nextData(0); at !== undefined; at = tree.nextData(at + 1)) {
      found.push(at);
      t.is(tree.nextHole(at), at === 3 ? 5 : at + 1);
    }
    t.deepEqual(found, data);
    t.is(tree.nextHole(TIB_PIECES - 1), TIB_PIECES);
    // Preallocating leaves at most one edge node per level that holds no data: here the range is aligned.
    const extra = f.store.loads.filter((key) => !onPaths.has(key));
    t.deepEqual(extra, [], `nodes loaded off the paths: ${extra.join(' ')}`);
    t.true(f.store.loads.length <= onPaths.size, `${f.store.loads.length} loads`);
  }
});

test('special slots are refused where they are not valid', (t) => {
  const f = fixture(inodeTable);
  t.throws(() => f.tree.set(0, PREALLOCATED), { instanceOf: RangeError });
  t.throws(() => f.tree.set(0, lostSlot(3)), { instanceOf: RangeError });
  t.throws(() => f.tree.fill(0, 10, PREALLOCATED), { instanceOf: RangeError });
  t.throws(() => f.tree.set(0, 1.5), { instanceOf: RangeError });
  t.throws(() => f.tree.set(0, MAX_VERSION + 1), { instanceOf: RangeError });
  t.throws(() => f.tree.set(-1, 1), { instanceOf: RangeError });
  t.false(f.tree.hasChanges);

  // From the store: a root entry, a node's slot, a node's payload.
  t.throws(() => openTree(inodeTable, { root: [PREALLOCATED], depth: 0, preallocated: 0, lost: 0 }, f.store), { instanceOf: IntegrityError });
  t.throws(() => openTree(inodeTable, { root: [1], depth: 4, preallocated: 0, lost: 0 }, f.store), { instanceOf: IntegrityError });
  t.throws(() => openTree(inodeTable, { root: new Array<number>(401).fill(1), depth: 1, preallocated: 0, lost: 0 }, f.store), { instanceOf: IntegrityError });
  const payload = Buffer.alloc(MAP_NODE_PAYLOAD_BYTES);
  payload.writeUInt32BE(0x4000_0000, 8 * SLOT_BYTES); // slot 8 preallocated
  t.notThrows(() => decodeMapNode(payload, { level: 0, special: true, version: 5, what: 'node' }));
  const err = t.throws(() => decodeMapNode(payload, { level: 0, special: false, version: 5, what: 'node' }), { instanceOf: IntegrityError });
  t.is(err?.kind, 'damaged');

  const slots = new Array<number>(F).fill(0);
  slots[3] = PREALLOCATED;
  const source: MapNodeSource = { load: () => slots };
  const tree = openTree(inodeTable, { root: [9], depth: 1, preallocated: 0, lost: 0 }, source);
  t.throws(() => tree.get(3), { instanceOf: IntegrityError });
});

test('a node with a damaged slot is refused', (t) => {
  const context = { level: 1, special: true, version: 100, what: 'node' };
  const good = new Array<number>(F).fill(0);
  good[0] = 100;
  good[1] = PREALLOCATED;
  good[2] = lostSlot(0);
  good[3] = lostSlot(MAX_VERSION);
  const payload = encodeMapNode(good);
  t.is(payload.length, MAP_NODE_PAYLOAD_BYTES);
  t.deepEqual(Array.from(decodeMapNode(payload, context)), good);

  const damaged = (mutate: (p: Buffer) => void): IntegrityError | undefined => {
    const copy = Buffer.from(payload);
    mutate(copy);
    return t.throws(() => decodeMapNode(copy, context), { instanceOf: IntegrityError });
  };
  damaged((p) => p.writeUInt32BE(0xc000_0000, 5 * SLOT_BYTES)); // tag 11
  damaged((p) => p.writeUInt32BE(0x0020_0000, 5 * SLOT_BYTES)); // 2^53
  damaged((p) => {
    p.writeUInt32BE(0x4000_0000, 5 * SLOT_BYTES); // tag 01 ...
    p.writeUInt32BE(1, 5 * SLOT_BYTES + 4); // ... with low bits: not PREALLOCATED
  });
  damaged((p) => p.writeUInt32BE(101, 5 * SLOT_BYTES + 4)); // newer than the node
  t.throws(() => decodeMapNode(payload.subarray(8), context), { instanceOf: IntegrityError });
  t.throws(() => encodeMapNode(good.slice(1)), { instanceOf: RangeError });

  // Through the tree: a source that hands back a slot that is no slot, or the wrong number of slots.
  for (const bad of [Number.NaN, 0.5, 2 ** 53, -2 - 2 ** 53]) {
    const slots = new Array<number>(F).fill(0);
    slots[7] = bad;
    const tree = openTree(pieceMap, { root: [9], depth: 1, preallocated: 0, lost: 0 }, { load: () => slots });
    t.throws(() => tree.get(0), { instanceOf: IntegrityError }, `slot ${bad}`);
  }
  const short = openTree(pieceMap, { root: [9], depth: 1, preallocated: 0, lost: 0 }, { load: () => [1, 2, 3] });
  t.throws(() => short.nextData(0), { instanceOf: IntegrityError });
});

test('a stale or missing node surfaces as its IntegrityError kind', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(1_000, 5);
  f.commit();
  const record = f.store.records.get('0:2');
  if (record === undefined) throw new Error('leaf 2 was not written');
  record.version -= 1; // an older authentic copy, put back
  t.is(t.throws(() => f.reopen().get(1_000), { instanceOf: IntegrityError })?.kind, 'stale');
  f.store.records.delete('0:2');
  t.is(t.throws(() => f.reopen().nextData(0), { instanceOf: IntegrityError })?.kind, 'missing');
});

test('a range over an unreadable node throws and changes nothing, unless told to orphan it (fsck quarantine)', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(10, 5);
  f.tree.set(F * F + 10, 6); // level-1 node 1, leaf 494
  f.tree.set(F * F + 600, 7); // leaf 495
  f.tree.fill(F * F + 1_000, F * F + 2_000, PREALLOCATED);
  f.commit();
  const expectedPrealloc = f.tree.preallocated;
  t.is(expectedPrealloc, 1_000);
  // Damage level-1 node 1: it cannot be read, so its leaves cannot be found.
  f.store.records.set('1:1', { version: f.store.records.get('1:1')!.version, payload: Buffer.alloc(MAP_NODE_PAYLOAD_BYTES, 0xff) });
  const tree = f.reopen();
  t.throws(() => tree.fill(F * F, 2 * F * F, lostSlot(0)), { instanceOf: IntegrityError });
  t.false(tree.hasChanges, 'a failed range change leaves the tree as it was');
  tree.fill(F * F, 2 * F * F, lostSlot(0), { orphanUnreadable: true });
  t.is(tree.get(F * F + 10), lostSlot(0));
  t.is(tree.nextData(11), F * F);
  t.is(tree.preallocated, 0, 'recounted from what is left');
  t.is(tree.lost, F * F, 'the quarantined range is one lost pointer');
  t.is(tree.countLost(), F * F);
  const stamp = tree.stamp(50_000);
  f.store.applyStamp(stamp, 50_000);
  tree.confirm(50_000);
  t.deepEqual(stamp.deletes, [{ level: 1, nodeNo: 1 }]);
  t.deepEqual(stamp.writes.map((w) => `${w.level}:${w.nodeNo}`), []);
  t.true(stamp.rootChanged);
  // The leaves below the damaged node (494, 495 and the preallocated edges 496 and 498) are left for fsck
  // as unreachable rows.
  t.deepEqual([...f.store.records.keys()].sort(), ['0:0', '0:494', '0:495', '0:496', '0:498', '1:0']);
  t.deepEqual(tree.rootEntries()[1], lostSlot(0));
});

test('stamp refuses a commit older than what the nodes hold, and changes nothing', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(1_000, 50_000);
  t.throws(() => f.tree.stamp(40_000), { instanceOf: RangeError });
  t.throws(() => f.tree.rootEntries());
  t.true(f.tree.hasChanges);
  const stamp = f.tree.stamp(60_000);
  t.is(stamp.writes.length, 1);
  t.deepEqual(stamp.writes[0]?.level, 0);
  t.is(f.tree.get(1_000), 50_000);
  f.tree.confirm(60_000);
  t.throws(() => f.tree.stamp(60_000), { instanceOf: RangeError, message: /not newer/ }, 'a commit number seals a name once');
  t.deepEqual(f.tree.stamp(60_001), { writes: [], deletes: [], rootChanged: false });
  f.tree.confirm(60_001);
  // A tree opened from its owner knows the commits its pointers hold.
  const reopened = openTree(pieceMap, { root: f.tree.rootEntries(), depth: f.tree.depth, preallocated: 0, lost: 0 }, f.store);
  reopened.set(5, 1);
  t.throws(() => reopened.stamp(59_999), { instanceOf: RangeError, message: /not newer/ });
});

test('a node dropped and made again in one commit is written, not deleted', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(1_000, 5);
  f.commit();
  f.tree.truncate(0);
  f.tree.set(1_001, 6);
  const stamp = f.commit();
  t.deepEqual(stamp.deletes, []);
  t.deepEqual(stamp.writes.map((w) => w.nodeNo), [2]);
  t.is(f.reopen().get(1_000), HOLE);
  t.is(f.tree.get(1_001), 6);
});

// ---- the commit protocol of 17.1: stamp, then confirm or unstamp ----

const names = (list: readonly { level: number; nodeNo: number }[]): string[] => list.map((n) => FakeNodeStore.key(n.level, n.nodeNo)).sort();

/** No root entry of the owner and nothing in the store holds commit `version`. */
function checkGone(f: ReturnType<typeof fixture>, shape: Shape, version: number): void {
  checkNoneHold(new Set([version]), f.owner.root, f.store.records, shape);
}

test('one stamp is outstanding at a time, and a number given back by unstamp is never used again', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(5, 1);
  t.throws(() => f.tree.confirm(10_001), { message: /outstanding stamp is none/ });
  t.throws(() => f.tree.unstamp(10_001), { message: /outstanding stamp is none/ });
  f.stamp();
  const c = f.version;
  t.is(f.tree.outstandingStamp, c);
  t.throws(() => f.tree.stamp(c + 1), { message: /neither confirmed nor unstamped/ });
  t.throws(() => f.tree.confirm(c + 1), { message: new RegExp(`outstanding stamp is ${c}`) });
  t.throws(() => f.tree.unstamp(c - 1), { message: new RegExp(`outstanding stamp is ${c}`) });
  t.is(f.tree.outstandingStamp, c, 'a refused call changes nothing');
  f.unstamp();
  t.is(f.tree.outstandingStamp, undefined);
  t.throws(() => f.tree.unstamp(c), { message: /outstanding stamp is none/ });
  t.throws(() => f.tree.stamp(c), { instanceOf: RangeError, message: /not newer/ });
  f.stamp();
  f.confirm();
  t.throws(() => f.tree.confirm(c + 1), { message: /outstanding stamp is none/ });
  t.deepEqual(f.owner.root, [0, 0, 0, 0, 0, 1]);
});

for (const outcome of ['confirm', 'unstamp'] as const) {
  test(`a node stamped and changed again before ${outcome} is written by the next stamp`, (t) => {
    const f = fixture(pieceMap);
    f.tree.set(1_000, 5); // leaf 2 at depth 1
    f.commit();
    const before = f.version;
    f.tree.set(1_001, 6);
    const first = f.stamp();
    const c = f.version;
    t.deepEqual(names(first.writes), ['0:2']);
    f.tree.set(1_002, 7); // staged while the commit writes
    t.true(f.tree.hasChanges);
    t.throws(() => f.tree.rootEntries(), undefined, 'the root holds a change no stamp settled');
    if (outcome === 'confirm') {
      f.confirm();
      const stored = f.store.slotsOf('0:2');
      t.deepEqual([stored[1_000 - 2 * F], stored[1_001 - 2 * F], stored[1_002 - 2 * F]], [5, 6, HOLE], 'the batch as it was at the stamp');
    } else {
      f.unstamp();
      t.is(f.store.records.get('0:2')?.version, before, 'the failed batch never reached the store');
    }
    t.deepEqual([f.tree.get(1_000), f.tree.get(1_001), f.tree.get(1_002)], [5, 6, 7]);
    const second = f.commit();
    t.deepEqual(names(second.writes), ['0:2']);
    t.deepEqual(second.deletes, []);
    t.deepEqual(f.owner.root, [HOLE, HOLE, f.version]);
    if (outcome === 'unstamp') checkGone(f, pieceMap, c);
    const tree = f.reopen();
    t.deepEqual([tree.get(1_000), tree.get(1_001), tree.get(1_002)], [5, 6, 7]);
  });

  test(`a node deleted by a stamp and made again before ${outcome} is written, not deleted, by the next stamp`, (t) => {
    const f = fixture(pieceMap);
    f.tree.set(3_000, 1); // leaf 6 keeps the depth at 1
    f.tree.set(1_000, 5); // leaf 2
    f.commit();
    const before = f.version;
    f.tree.set(1_000, HOLE);
    const first = f.stamp();
    t.deepEqual(names(first.deletes), ['0:2']);
    f.tree.set(1_001, 6); // leaf 2 again: a new node
    if (outcome === 'confirm') {
      f.confirm();
      t.false(f.store.records.has('0:2'));
    } else {
      f.unstamp();
      t.is(f.store.records.get('0:2')?.version, before);
    }
    const second = f.commit();
    t.deepEqual(names(second.writes), ['0:2']);
    t.deepEqual(second.deletes, [], 'its write replaces the record, if there is one');
    const tree = f.reopen();
    t.deepEqual([tree.get(3_000), tree.get(1_000), tree.get(1_001)], [1, HOLE, 6]);
    // The tree knows the record exists: dropping the node again deletes it (the fake store refuses a
    // delete of a record it does not hold, and the commit checks that none is left unreachable).
    tree.set(1_001, HOLE);
    t.deepEqual(names(f.commit().deletes), ['0:2']);
  });

  test(`a stamp that grew the depth, then ${outcome}: the next stamp writes what is left`, (t) => {
    for (const shape of [pieceMap, inodeTable]) {
      const f = fixture(shape);
      const cap = (depth: number): number => capacity(shape, depth);
      f.tree.set(0, 7);
      f.commit();
      f.tree.set(cap(2), 9); // depth 0 → 3: the old root becomes node 0 of level 0
      const grown = f.stamp();
      const c = f.version;
      const rootAtC = f.stampedOwner.root;
      t.is(f.stampedOwner.depth, 3);
      t.true(grown.writes.some((w) => w.level === 0 && w.nodeNo === 0));
      if (outcome === 'confirm') {
        f.confirm();
      } else {
        f.unstamp();
        t.is(f.store.records.size, 0);
        t.is(f.tree.depth, 3, 'the tree stays as it is');
        t.deepEqual([f.tree.get(0), f.tree.get(cap(2))], [7, 9]);
        const again = f.stamp();
        const c2 = f.version;
        t.deepEqual(names(again.writes), names(grown.writes));
        t.deepEqual(again.deletes, []);
        t.true(again.rootChanged);
        t.deepEqual(f.stampedOwner.root, rootAtC.map((v) => (v === c ? c2 : v)), 'the root shows the new number where it showed the old');
        f.confirm();
        checkGone(f, shape, c);
      }
      const tree = f.reopen();
      t.is(tree.depth, 3);
      t.deepEqual([tree.get(0), tree.get(cap(2))], [7, 9]);
    }
  });
}

for (const outcome of ['confirm', 'unstamp'] as const) {
  test(`nodes a stamp wrote, dropped before ${outcome}, are deleted only if the store holds them`, (t) => {
    const f = fixture(pieceMap);
    f.tree.set(10, 1); // leaf 0
    f.tree.set(1_000, 5); // leaf 2
    f.tree.set(3_000, 8); // leaf 6
    f.commit();
    f.tree.set(1_001, 6); // leaf 2 changed
    f.tree.set(2_000, 7); // leaf 4 new
    const first = f.stamp();
    t.deepEqual(names(first.writes), ['0:2', '0:4']);
    f.tree.fill(2 * F, 5 * F, HOLE); // drops leaves 2 and 4
    if (outcome === 'confirm') f.confirm();
    else f.unstamp();
    const next = f.commit();
    // Unstamped, leaf 4 was never stored (a delete of it is refused by the fake store); leaf 2 still is.
    t.deepEqual(names(next.deletes), outcome === 'confirm' ? ['0:2', '0:4'] : ['0:2']);
    t.deepEqual(next.writes, []);
    const tree = f.reopen();
    t.deepEqual([10, 1_000, 1_001, 2_000, 3_000].map((i) => tree.get(i)), [1, HOLE, HOLE, HOLE, 8]);
  });
}

test('a stamp that grew the depth, undone, then shrunk back before the next stamp: nothing to delete', (t) => {
  const f = fixture(pieceMap);
  const cap = (depth: number): number => capacity(pieceMap, depth);
  f.tree.set(0, 7);
  f.commit();
  f.tree.set(cap(2), 9);
  f.stamp();
  f.unstamp();
  f.tree.set(cap(2), HOLE);
  const next = f.commit();
  t.is(f.tree.depth, 0);
  t.deepEqual(next.writes, []);
  t.deepEqual(next.deletes, [], 'the nodes the undone stamp made were never stored');
  t.true(next.rootChanged);
  t.deepEqual(f.owner.root, [7]);
  t.is(f.store.records.size, 0);
});

for (const regrow of [false, true]) {
  test(`a stamp that shrank the depth, undone${regrow ? ', then grown again' : ''}: the next stamp ${regrow ? 'writes over' : 'deletes'} the old top nodes`, (t) => {
    const f = fixture(pieceMap);
    const cap = (depth: number): number => capacity(pieceMap, depth);
    f.tree.set(0, 7);
    f.tree.set(cap(1), 9); // depth 2
    f.commit();
    const stored = new Map([...f.store.records].map(([key, record]) => [key, record.version]));
    f.tree.set(cap(1), HOLE);
    const shrunk = f.stamp();
    t.is(f.tree.depth, 0);
    t.deepEqual(names(shrunk.deletes), [...stored.keys()].sort());
    f.unstamp();
    t.deepEqual(new Map([...f.store.records].map(([key, record]) => [key, record.version])), stored, 'the store is as it was');
    t.is(f.tree.depth, 0);
    t.is(f.tree.get(0), 7);
    if (!regrow) {
      const next = f.commit();
      t.deepEqual(names(next.deletes), names(shrunk.deletes));
      t.deepEqual(next.writes, []);
      t.true(next.rootChanged);
      t.deepEqual(f.owner.root, [7]);
      t.is(f.store.records.size, 0);
    } else {
      f.tree.set(cap(1) + 1, 10); // the same nodes as before, made again
      const next = f.commit();
      t.deepEqual(next.deletes, []);
      t.deepEqual(names(next.writes), [...stored.keys()].sort());
      t.is(f.owner.depth, 2);
      const tree = f.reopen();
      t.deepEqual([tree.get(0), tree.get(cap(1)), tree.get(cap(1) + 1)], [7, HOLE, 10]);
    }
  });
}

for (const outcome of ['confirm', 'unstamp'] as const) {
  test(`nodes loaded while a stamp is outstanding come at the versions the store holds (${outcome})`, (t) => {
    const f = fixture(pieceMap);
    f.tree.set(10, 1); // level-1 node 0, leaf 0
    f.tree.set(F * F + 10, 2); // level-1 node 1, leaf 494
    f.commit();
    const tree = f.reopen();
    tree.set(F * F + F + 5, 3); // leaf 495, new, under level-1 node 1
    const first = f.stamp();
    t.deepEqual(names(first.writes), ['0:495', '1:1']);
    t.deepEqual(f.store.loads, ['1:1']);
    // Not written by the stamp: their pointers are older than it, and the store holds them either way.
    t.is(tree.get(F * F + 10), 2);
    t.is(tree.get(10), 1);
    t.deepEqual(f.store.loads, ['1:1', '0:494', '1:0', '0:0']);
    tree.set(F * F + 11, 4); // a node loaded after the stamp, changed
    if (outcome === 'confirm') f.confirm();
    else f.unstamp();
    const second = f.commit();
    t.deepEqual(names(second.writes), outcome === 'confirm' ? ['0:494', '1:1'] : ['0:494', '0:495', '1:1']);
    const reopened = f.reopen();
    t.deepEqual([10, F * F + 10, F * F + 11, F * F + F + 5].map((i) => reopened.get(i)), [1, 2, 4, 3]);
  });
}

test('a failed stamp that changed only the root makes the next stamp rewrite the owner; an empty one leaves nothing', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(5, 1);
  const first = f.stamp();
  t.true(first.rootChanged);
  t.deepEqual([first.writes, first.deletes], [[], []]);
  f.unstamp();
  t.true(f.tree.hasChanges);
  const second = f.stamp();
  t.true(second.rootChanged);
  f.confirm();
  t.deepEqual(f.owner.root, [0, 0, 0, 0, 0, 1]);
  t.false(f.stamp().rootChanged);
  f.unstamp();
  t.false(f.tree.hasChanges);
  t.false(f.stamp().rootChanged);
  f.confirm();
});

test('the inode table: slots set to a failed commit\'s number are set again to the next one, and no pointer keeps it', (t) => {
  const f = fixture(inodeTable);
  const inos = [1, 2, 700, F * F + 3, 3 * F * F];
  for (const ino of inos) f.tree.set(ino, f.version + 1); // each inode written at the coming commit
  f.stamp();
  const c = f.version;
  const rootAtC = f.stampedOwner.root;
  t.true(rootAtC.includes(c));
  f.tree.set(2, HOLE); // ino 2 deleted while the commit writes
  f.unstamp();
  t.is(f.tree.get(1), c, 'the tree reads as before the unstamp');
  // The next cut writes every inode dirty since the last confirmed write, with its own number.
  for (const ino of inos) if (ino !== 2) f.tree.set(ino, f.version + 1);
  f.stamp();
  const c2 = f.version;
  t.deepEqual(f.stampedOwner.root, rootAtC.map((v) => (v === c ? c2 : v)));
  f.confirm();
  checkGone(f, inodeTable, c);
  const tree = f.reopen();
  t.deepEqual(inos.map((ino) => tree.get(ino)), [c2, HOLE, c2, c2, c2]);
});

test('the lost count is kept by the changes as the preallocated count is; countLost walks', (t) => {
  const f = fixture(pieceMap);
  f.tree.fill(0, 3 * F * F + 7, PREALLOCATED);
  f.tree.fill(F * F - 3, 2 * F * F + 3, lostSlot(4)); // a lost pointer for the whole of level-1 node 1
  f.tree.set(5, lostSlot(0));
  f.tree.set(6, 9);
  const lost = F * F + 7;
  t.is(f.tree.lost, lost);
  t.is(f.tree.countLost(), lost);
  t.is(f.tree.preallocated, 3 * F * F + 7 - lost - 1);
  f.commit();
  t.is(f.owner.lost, lost);

  // An inode with HAS_LOST gives no count: the first read walks the tree.
  let tree = f.reopen();
  t.is(tree.lost, lost);
  t.true(f.store.loads.length > 0);
  tree.truncate(F * F + 1); // keeps [F² − 3, F²], drops the lost pointer's subtree past it
  t.is(tree.lost, 5);
  tree.set(5, HOLE);
  t.is(tree.lost, 4);
  t.is(tree.countLost(), 4);
  f.commit();
  tree.fill(0, F * F + 1, HOLE);
  t.is(tree.lost, 0);
  f.commit();

  // Without HAS_LOST the count is 0 and nothing is read to know it.
  tree = f.reopen();
  t.is(tree.lost, 0);
  t.deepEqual(f.store.loads, []);
  t.is(openTree(inodeTable, { root: [1, 2], depth: 0, preallocated: 0, lost: 0 }, f.store, false).lost, 0, 'no lost slots outside piece maps');
  t.throws(() => new SlotTree({ root: [], depth: 0, rootCapacity: INODE_ROOT_CAPACITY, special: true, nodes: f.store, lost: -1 }), { instanceOf: RangeError });
});

test('evict forgets the nodes that are neither changed nor in the outstanding stamp, and they load again', (t) => {
  const f = fixture(pieceMap);
  f.tree.set(10, 1); // level-1 node 0, leaf 0
  f.tree.set(F * F + 10, 2); // level-1 node 1, leaf 494
  f.commit();
  t.is(f.tree.evict(), 4);
  t.is(f.tree.heldNodes, 0);
  const tree = f.reopen();
  t.deepEqual([tree.get(10), tree.get(F * F + 10)], [1, 2]);
  t.is(tree.heldNodes, 4);
  tree.set(F * F + F + 5, 3); // leaf 495, new
  f.stamp(); // writes leaf 495 and level-1 node 1
  tree.set(20, 4); // changes leaf 0 and level-1 node 0
  t.is(tree.evict(), 1, 'only leaf 494');
  f.store.loads = [];
  // Leaf 495 is not in the store until the write is confirmed: had it been forgotten, this would fail.
  t.is(tree.get(F * F + F + 5), 3);
  t.deepEqual(f.store.loads, []);
  f.confirm();
  t.is(tree.evict(), 2, 'leaf 495 and level-1 node 1, now written');
  t.deepEqual([10, 20, F * F + 10, F * F + F + 5].map((i) => tree.get(i)), [1, 4, 2, 3]);
  t.deepEqual(f.store.loads, ['1:1', '0:494', '0:495']);
  f.commit();
  t.is(tree.evict(), 5);
  t.deepEqual([10, 20, F * F + 10, F * F + F + 5].map((i) => tree.get(i)), [1, 4, 2, 3]);

  // Held nodes do not grow with what was read once.
  for (let k = 0; k < 200; k++) tree.set(k * F, 5);
  f.commit();
  const held = tree.heldNodes;
  t.true(held > 200);
  t.is(tree.evict(), held);
  t.is(tree.heldNodes, 0);
  t.is([...tree.versions()].length, 204);
  t.is(tree.heldNodes, held, 'reading them all loads them all again');
  tree.evict();
  t.is(tree.heldNodes, 0);
});
