// The slot tree of format 2 (docs/format-2.md 5.4, 5.6 and section 9): an array of u64 slots held in a
// radix tree whose root lives in the owner record, and whose other nodes are map node records. One
// structure serves the inode table (root of 400 in the state record), a file's piece map and a
// directory's bucket table (roots of 477 in the inode). It knows nothing of names, seals or SQLite: it
// reads nodes through a MapNodeSource and hands back, at each commit, the nodes to write and to delete.
//
// Shape. At depth 0 the root holds the slots. At depth d ≥ 1 root entry i points to node i of level d − 1,
// and entry j of node n at level ℓ ≥ 1 points to node n × 494 + j of level ℓ − 1. So a level-ℓ node
// numbered n covers slots n × 494^(ℓ+1) to (n+1) × 494^(ℓ+1) − 1, and its name does not depend on the
// depth: growing and shrinking the tree renames nothing.
//
// Pointers. A pointer that is not a version is a uniform subtree with no node below it: every slot below
// a HOLE pointer is HOLE, below PREALLOCATED is PREALLOCATED, below lostSlot(v) is lostSlot(v). Between
// commits, a node to write at the next stamp (changed since the last one, or given back by unstamp) is
// pointed to by CHANGED, a placeholder that stamp replaces with the commit's version. Two invariants keep the walk simple: a node is held in memory only if its
// pointer is positive (a version or CHANGED), and only if its parent is held too.
//
// Commits (17.1). stamp(c) gives every changed node the version c and hands back the records to write and
// to delete; the caller writes them, with the owner, in one SQLite transaction, and then calls confirm(c) if
// the transaction succeeded or unstamp(c) if it failed. A commit number seals each name once, so a failed
// batch is never written again under c: unstamp marks what c wrote as changed again, and what c deleted as
// to delete again, and the next stamp writes them under its own number. Until then the tree remembers, for
// each name c wrote or deleted, whether the store held a record of it before c; that is all unstamp needs,
// since the slots themselves are never rolled back. Operations go on changing the tree while a stamp is
// outstanding; only one stamp may be.
//
// Cost. A lookup or a change walks one path: at most three nodes, each loaded once and then held until
// evict(). A range change (fill, truncate) turns whole subtrees into one pointer and only edits the nodes at
// its two edges; dropping a subtree that has nodes reads its upper nodes, to find the nodes to delete, and
// in piece maps its leaves too, to keep the counts of preallocated and lost slots.

import { outstandingStamp } from './commit-batch.js';
import { FsError, IntegrityError } from '../errors.js';
import { checkMapNodeSlots, isValidSlot, MAP_NODE_SLOTS, MAX_MAP_NODE_LEVEL } from './map-node.js';
import { HOLE, isLost, isVersion, MAX_VERSION, PREALLOCATED } from './slot.js';

/** The deepest tree: at depth 4 the root would point to level-3 nodes, which have no name (5.4). */
export const MAX_TREE_DEPTH = MAX_MAP_NODE_LEVEL + 1;
/** Root entries of the inode table, in the state record (5.5). */
export const STATE_ROOT_CAPACITY = 400;
/** Root entries of a piece map or a bucket table, in the inode's MAP section (6.2). */
export const INODE_ROOT_CAPACITY = 477;

/** Where the tree reads its nodes: the metadata layer, which derives names and opens records. */
export interface MapNodeSource {
  /**
   * The decoded slots of node `nodeNo` at `level`, as sealed at `version` (the version its parent holds).
   * Throws IntegrityError for a record that is missing, damaged or stale. The tree copies what it gets,
   * so the source may hand out an array it keeps in its own cache.
   */
  load(level: number, nodeNo: number, version: number): ArrayLike<number>;
}

export interface SlotTreeOptions {
  /** The owner's root entries: its count of them, at most rootCapacity. Missing entries are HOLE. */
  root: ArrayLike<number>;
  /** The owner's depth, 0 to 3. */
  depth: number;
  /** 400 for the inode table, 477 for a piece map or a bucket table. */
  rootCapacity: number;
  /** Whether PREALLOCATED and lost slots are valid: piece maps only. */
  special: boolean;
  nodes: MapNodeSource;
  /**
   * The preallocated slots the owner records (the inode's `count`), so that the tree can keep the count
   * by the changes it makes. Without it, the first read of `preallocated` counts by walking every node.
   */
  preallocated?: number;
  /**
   * The lost slots, when the owner knows them: 0 for an inode without HAS_LOST (6.2). The inode records
   * only whether there are any, so for one with HAS_LOST leave it out: the first read of `lost` walks.
   */
  lost?: number;
  /** Names the tree in errors, e.g. "piece map of ino 12". */
  what?: string;
  /** Slots per map node: 494 in every store. Tests use smaller nodes to reach every depth with few slots. */
  nodeSlots?: number;
}

/** A node the commit must seal at the stamp's version. */
export interface NodeWrite {
  level: number;
  nodeNo: number;
  /**
   * The node's slots: the tree's own array, not a copy, which would be most of a stamp's cost (measured:
   * 1.4 µs for a one-slot change at depth 2 without copies, 6.5 µs with). Encode it before the tree
   * changes again.
   */
  slots: ArrayLike<number>;
}

/** A node whose record the commit must delete. */
export interface NodeDelete {
  level: number;
  nodeNo: number;
}

/** What one commit changes in the tree's records (5.6). */
export interface TreeStamp {
  writes: NodeWrite[];
  deletes: NodeDelete[];
  /**
   * Whether the root entries or the depth changed, as any change to a slot makes them: if so, the owner
   * must be rewritten in the commit, with rootEntries(), depth, preallocated and lost read right after the
   * stamp, before the tree changes again.
   */
  rootChanged: boolean;
}

export interface RangeOptions {
  /**
   * When a node inside a subtree the range drops entirely cannot be read (damaged, missing or stale),
   * delete its record without reading it, and leave the nodes below it, if any, as unreachable rows for
   * fsck to remove. For fsck's quarantine of a damaged node's range. Without it, such a node throws
   * IntegrityError and the tree is unchanged.
   */
  orphanUnreadable?: boolean;
}

/** Slots a tree of this shape holds at `depth`. */
export function slotTreeCapacity(rootCapacity: number, depth: number, nodeSlots = MAP_NODE_SLOTS): number {
  return rootCapacity * nodeSlots ** depth;
}

/** Points to a node to write at the next stamp, which replaces it with the commit's version. */
const CHANGED = Number.POSITIVE_INFINITY;

/** A node held in memory. The root is one too: level = depth, node number 0, rootCapacity entries. */
interface HeldNode {
  level: number;
  readonly nodeNo: number;
  readonly slots: Float64Array;
  /**
   * A record holds this node's name, counting the outstanding stamp as written: it was loaded or stamped,
   * or re-created where a delete was pending. Unstamp sets it back to what the store holds.
   */
  stored: boolean;
  /**
   * To write at the next stamp: changed since the last stamp, or written by a stamp that was undone (never
   * set on the root, whose changes rootChanged records).
   */
  changed: boolean;
}

/** A stamp whose write is not yet confirmed or failed: what unstamp needs to undo it. */
interface OutstandingStamp {
  readonly version: number;
  /**
   * Every name (nodeKey) the stamp wrote or deleted, and whether the store held a record of it before the
   * stamp: after a failed write, that is still what the store holds.
   */
  readonly storedBefore: Map<number, boolean>;
  readonly rootChanged: boolean;
}

/**
 * A count of slots that the tree keeps by the changes it makes, from a base the owner gave or, failing
 * that, one walk of the whole tree at the first read.
 */
class KeptCount {
  private base: number | undefined;
  private delta = 0;

  constructor(base: number | undefined) {
    this.base = base;
  }

  add(slots: number): void {
    this.delta += slots;
  }

  /** The count is no longer known (a dropped subtree could not be read): the next read walks. */
  forget(): void {
    this.base = undefined;
    this.delta = 0;
  }

  /** The count, with `walk` counting the tree as it is now if the base is not known. */
  read(walk: () => number): number {
    if (this.base === undefined) this.base = walk() - this.delta;
    return this.base + this.delta;
  }
}

/** Preallocated and lost slots under a node, counted in one walk. */
interface SpecialCounts {
  preallocated: number;
  lost: number;
}

/** One pass of a range change: the first pass only loads what the second needs, so a failed load changes nothing. */
interface RangeWalk {
  start: number;
  end: number;
  slot: number;
  /** Change only HOLE slots (fallocate mode 0: data stays). */
  holesOnly: boolean;
  apply: boolean;
  orphanUnreadable: boolean;
  /** Nodes (by nodeKey) inside dropped subtrees that could not be read. */
  unreadable: Set<number>;
}

/** One number for a node's name: levels are 0 to 2, and node numbers stay far below 2^51. */
function nodeKey(level: number, nodeNo: number): number {
  return nodeNo * 4 + level;
}

function levelOfKey(key: number): number {
  return key % 4;
}

function nodeNoOfKey(key: number): number {
  return Math.floor(key / 4);
}

function isData(slot: number): boolean {
  return slot > 0 || isLost(slot);
}

function checkCount(what: string, count: number | undefined): number | undefined {
  if (count !== undefined && (!Number.isSafeInteger(count) || count < 0)) throw new RangeError(`${what} count ${count}`);
  return count;
}

/** Whether every slot from `from` on is `value`. */
function allEqual(slots: Float64Array, value: number, from = 0): boolean {
  for (let i = from; i < slots.length; i++) if (slots[i] !== value) return false;
  return true;
}

export class SlotTree {
  private readonly fanout: number;
  private readonly rootCapacity: number;
  private readonly special: boolean;
  private readonly source: MapNodeSource;
  private readonly what: string;
  /** spans[k] = fanout^k: the slots under one entry of a level-k node (or of the root at depth k). */
  private readonly spans: number[];
  private readonly root: HeldNode;
  /** Nodes in memory, by level, then node number. */
  private readonly held: Map<number, HeldNode>[] = [new Map(), new Map(), new Map()];
  private readonly changedNodes: Set<HeldNode>[] = [new Set(), new Set(), new Set()];
  /** Records to delete at the next stamp, by level: node numbers. */
  private readonly doomed: Set<number>[] = [new Set(), new Set(), new Set()];
  private rootChanged = false;
  /**
   * The newest commit the tree holds: its newest pointer, or its last stamp. Every node's version is at
   * most its parent's (5.6 writes an owner with what it owns), so the root's pointers bound them all.
   */
  private newestCommit = 0;
  /** The newest version given to set(), or held by a root of slots. */
  private newestSlot = 0;
  private readonly preallocatedCount: KeptCount;
  private readonly lostCount: KeptCount;
  /** The last stamp, until confirm or unstamp. */
  private outstanding: OutstandingStamp | undefined;

  constructor(options: SlotTreeOptions) {
    const fanout = options.nodeSlots ?? MAP_NODE_SLOTS;
    if (!Number.isInteger(fanout) || fanout < 2 || fanout > MAP_NODE_SLOTS) throw new RangeError(`nodes of ${fanout} slots`);
    const rootCapacity = options.rootCapacity;
    // Growing puts the old root in node 0 of the new top level, so the root must fit a node.
    if (!Number.isInteger(rootCapacity) || rootCapacity < 1 || rootCapacity > fanout) {
      throw new RangeError(`a root of ${rootCapacity} entries does not fit a node of ${fanout}`);
    }
    this.fanout = fanout;
    this.rootCapacity = rootCapacity;
    this.special = options.special;
    this.source = options.nodes;
    this.what = options.what ?? 'slot tree';
    this.spans = [];
    for (let k = 0; k <= MAX_TREE_DEPTH + 1; k++) this.spans.push(fanout ** k);

    const { depth, root } = options;
    if (!Number.isInteger(depth) || depth < 0 || depth > MAX_TREE_DEPTH) throw new IntegrityError(`${this.what}: depth ${depth}`);
    if (root.length > rootCapacity) throw new IntegrityError(`${this.what}: ${root.length} root entries, at most ${rootCapacity}`);
    const slots = new Float64Array(rootCapacity);
    for (let i = 0; i < root.length; i++) {
      const entry = root[i] as number;
      if (!isValidSlot(entry, this.special)) throw new IntegrityError(`${this.what}: root entry ${i} holds ${entry}, which is not valid here`);
      slots[i] = entry;
      if (depth === 0) this.newestSlot = Math.max(this.newestSlot, entry);
      else this.newestCommit = Math.max(this.newestCommit, entry);
    }
    this.root = { level: depth, nodeNo: 0, slots, stored: true, changed: false };

    this.preallocatedCount = new KeptCount(this.special ? checkCount('preallocated', options.preallocated) : 0);
    this.lostCount = new KeptCount(this.special ? checkCount('lost', options.lost) : 0);
  }

  /** The tree's depth. After a stamp it is the smallest that holds every slot that is not HOLE. */
  get depth(): number {
    return this.root.level;
  }

  /** Slots in one map node of this tree (494 in every store; fewer in some tests). */
  get nodeSlots(): number {
    return this.fanout;
  }

  /** Slots the tree can hold at its deepest: indexes at or past it are EFBIG. */
  get maxSlots(): number {
    return this.capacityAt(MAX_TREE_DEPTH);
  }

  /** Whether anything is to write at the next stamp: changed since the last stamp, or given back by unstamp. */
  get hasChanges(): boolean {
    return this.rootChanged || this.changedNodes.some((set) => set.size > 0) || this.doomed.some((set) => set.size > 0);
  }

  /** The commit number of the stamp that is neither confirmed nor unstamped, if there is one. */
  get outstandingStamp(): number | undefined {
    return this.outstanding?.version;
  }

  /**
   * The root entries the owner stores, trailing HOLEs trimmed: their number is the owner's count. Only
   * while nothing changed since the last stamp: later changes put placeholders in the root.
   */
  rootEntries(): number[] {
    if (this.hasChanges) throw new Error(`${this.what}: the root is only settled by a stamp`);
    let count = this.rootCapacity;
    while (count > 0 && this.root.slots[count - 1] === HOLE) count--;
    return Array.from(this.root.slots.subarray(0, count));
  }

  /** Preallocated slots in the tree (the inode's `count`), kept by the changes; 0 outside piece maps. */
  get preallocated(): number {
    return this.preallocatedCount.read(() => this.countPreallocated());
  }

  /** Lost slots in the tree, kept by the changes: the inode's HAS_LOST is `lost > 0`. 0 outside piece maps. */
  get lost(): number {
    return this.lostCount.read(() => this.countLost());
  }

  /** Counts the preallocated slots by walking every node (fsck's check of `count`). Uniform subtrees count by arithmetic. */
  countPreallocated(): number {
    return this.special ? this.specialBelow(this.root).preallocated : 0;
  }

  /** Counts the lost slots by walking every node (fsck's check of HAS_LOST), as countPreallocated does. */
  countLost(): number {
    return this.special ? this.specialBelow(this.root).lost : 0;
  }

  /** Map nodes held in memory, the root not counted. */
  get heldNodes(): number {
    return this.held.reduce((sum, level) => sum + level.size, 0);
  }

  get(index: number): number {
    this.checkIndex(index);
    if (index >= this.capacityAt(this.depth)) return HOLE;
    let node = this.root;
    for (;;) {
      const j = this.entryOf(node, index);
      const pointer = node.slots[j] as number;
      if (node.level === 0 || pointer <= 0) return pointer;
      node = this.child(node, j);
    }
  }

  set(index: number, slot: number): void {
    this.checkIndex(index);
    this.checkSlot(slot);
    if (slot > this.newestSlot) this.newestSlot = slot;
    if (index >= this.capacityAt(this.depth)) {
      if (slot === HOLE) return;
      this.growToHold(index);
    }
    let node = this.root;
    for (;;) {
      const j = this.entryOf(node, index);
      const pointer = node.slots[j] as number;
      if (node.level === 0) {
        if (pointer === slot) return;
        node.slots[j] = slot;
        this.countChange(pointer, slot, 1);
        this.markChanged(node);
        return;
      }
      if (pointer > 0) node = this.child(node, j);
      else if (pointer === slot) return;
      else node = this.createChild(node, j, pointer);
    }
  }

  /**
   * Sets every slot in [start, end) to `slot`: PREALLOCATED for fallocate's ZERO_RANGE, HOLE to punch,
   * lost for fsck's quarantine. A version is refused: it is one slot's. Whole subtrees in the range become
   * one pointer, with no node below it. Read the versions the range drops (versions()) first: their blobs
   * are the caller's to delete.
   */
  fill(start: number, end: number, slot: number, options: RangeOptions = {}): void {
    this.changeRange(start, end, slot, false, options);
  }

  /** Sets every HOLE slot in [start, end) to `slot`, leaving the others: fallocate's mode 0. */
  fillHoles(start: number, end: number, slot: number): void {
    this.changeRange(start, end, slot, true, {});
  }

  /** Makes every slot at or past `length` HOLE, dropping the nodes that held them. */
  truncate(length: number, options: RangeOptions = {}): void {
    this.checkIndex(length);
    this.changeRange(length, Math.max(length, this.capacityAt(this.depth)), HOLE, false, options);
  }

  /** The first slot at or past `from` that is data or lost (SEEK_DATA), or undefined if none. */
  nextData(from: number): number | undefined {
    this.checkIndex(from);
    return this.seek(this.root, from, true);
  }

  /** The first slot at or past `from` that is HOLE or PREALLOCATED (SEEK_HOLE). There always is one. */
  nextHole(from: number): number {
    this.checkIndex(from);
    return this.seek(this.root, from, false) ?? Math.max(from, this.capacityAt(this.depth));
  }

  /**
   * The slots in [start, end) that hold versions, in index order: for deleting blobs, and for fsck. It
   * loads the nodes that hold versions as it goes; do not change the tree while it runs.
   */
  *versions(start = 0, end = Number.MAX_SAFE_INTEGER): Generator<{ index: number; version: number }> {
    this.checkIndex(start);
    this.checkIndex(end);
    if (start < end) yield* this.versionsIn(this.root, start, end);
  }

  /**
   * The indexes of lost slots (piece maps: fsck quarantined them), in index order; a lost pointer stands for
   * every slot under it. For an open file's quarantined pieces.
   */
  *lostIndices(): Generator<number> {
    if (this.special) yield* this.lostIn(this.root);
  }

  /**
   * Every map node the tree's pointers lead to, parents before children, loading (and so checking) each:
   * the records fsck expects to find for this tree (5.10).
   */
  *storedNodes(): Generator<NodeDelete> {
    yield* this.nodesUnder(this.root);
  }

  /**
   * Settles the changes made since the last stamp as commit `version` (5.6): every changed node gets that
   * version, and its pointer in its parent or the root becomes it. A node whose slots all became HOLE, or
   * all one special value, is deleted and replaced by that value as its pointer, and the depth shrinks to
   * the smallest that holds the slots. Returns the nodes to seal and the records to delete, which must go
   * in the same SQLite transaction as the owner when `rootChanged`. Read rootEntries(), depth, preallocated
   * and lost for the owner right away, and encode the writes' slots before the tree changes again.
   *
   * The stamp is then outstanding: the tree reads and changes as if its write had succeeded, but nothing
   * else may be stamped until confirm(version) or unstamp(version) says how the write went.
   */
  stamp(version: number): TreeStamp {
    if (!Number.isSafeInteger(version) || version < 1 || version > MAX_VERSION) throw new RangeError(`commit version ${version}`);
    if (this.outstanding !== undefined) {
      throw new Error(`${this.what}: stamp ${this.outstanding.version} is neither confirmed nor unstamped, so ${version} cannot be stamped`);
    }
    // Refuse before changing anything. A commit number seals each name once, so it must be new to the
    // tree; and nothing in a node may be newer than the commit that seals it.
    if (version <= this.newestCommit) throw new RangeError(`${this.what}: commit ${version} is not newer than commit ${this.newestCommit}, which the tree holds`);
    if (version < this.newestSlot) throw new RangeError(`${this.what}: version ${this.newestSlot} is newer than commit ${version}`);
    this.collapseUniformNodes();
    // Only a change that reaches the root can lower the depth; an unchanged tree is left as its owner holds it.
    if (this.rootChanged) this.shrink();
    const storedBefore = new Map<number, boolean>();
    const writes: NodeWrite[] = [];
    for (let level = 0; level < this.depth; level++) {
      for (const node of this.changedNodes[level] as Set<HeldNode>) {
        storedBefore.set(nodeKey(level, node.nodeNo), node.stored);
        node.changed = false;
        node.stored = true;
        this.parentOf(node).slots[node.nodeNo % this.fanout] = version;
        writes.push({ level, nodeNo: node.nodeNo, slots: node.slots });
      }
      this.changedNodes[level]?.clear();
    }
    const deletes: NodeDelete[] = [];
    this.doomed.forEach((numbers, level) => {
      for (const nodeNo of numbers) {
        storedBefore.set(nodeKey(level, nodeNo), true);
        deletes.push({ level, nodeNo });
      }
      numbers.clear();
    });
    const rootChanged = this.rootChanged;
    this.rootChanged = false;
    this.newestCommit = version;
    this.outstanding = { version, storedBefore, rootChanged };
    return { writes, deletes, rootChanged };
  }

  /** The write of stamp `version` succeeded: the tree forgets what it kept to undo the stamp. */
  confirm(version: number): void {
    this.takeOutstanding(version, 'confirm');
  }

  /**
   * The write of stamp `version` failed, so the store holds what it held before the stamp. Every node the
   * stamp wrote is changed again and every record it deleted is to delete again, so that the next stamp,
   * under a new number, writes them with what changed since. No pointer keeps `version`. The slots are left
   * as they are: the tree reads as before the call. `version` itself stays used, and is refused by stamp.
   */
  unstamp(version: number): void {
    const stamp = this.takeOutstanding(version, 'unstamp');
    for (const [key, stored] of stamp.storedBefore) {
      const level = levelOfKey(key);
      const nodeNo = nodeNoOfKey(key);
      // Since the stamp, a node it wrote may have been dropped, and one it deleted made again (a new
      // object, which is changed already): it is the node held under the name now that must be written.
      const node = this.held[level]?.get(nodeNo);
      if (node !== undefined) {
        node.stored = stored;
        this.markChanged(node);
      } else if (stored) {
        this.doomed[level]?.add(nodeNo); // deleted by the stamp, or written by it and dropped since
      } else {
        this.doomed[level]?.delete(nodeNo); // made by the stamp and dropped since: there is no record
      }
    }
    if (stamp.rootChanged) this.rootChanged = true;
  }

  /**
   * Forgets every held node that is neither changed nor written by the outstanding stamp, so that a tree
   * over a large file does not keep every node it ever read; they are loaded again when needed. Returns
   * how many were forgotten. A node is held only with its parent: every ancestor of a changed node is
   * changed, and every ancestor of a node the stamp wrote was written too, so what is kept keeps its parents.
   * Not while versions() runs.
   */
  evict(): number {
    let evicted = 0;
    for (let level = 0; level < this.depth; level++) {
      const held = this.held[level] as Map<number, HeldNode>;
      for (const [nodeNo, node] of held) {
        if (node.changed || this.outstanding?.storedBefore.has(nodeKey(level, nodeNo))) continue;
        held.delete(nodeNo);
        evicted++;
      }
    }
    return evicted;
  }

  private takeOutstanding(version: number, op: string): OutstandingStamp {
    const stamp = outstandingStamp(this.outstanding, version, op, this.what);
    this.outstanding = undefined;
    return stamp;
  }

  // ---- shape ----

  private capacityAt(depth: number): number {
    return this.rootCapacity * (this.spans[depth] as number);
  }

  /** The entry of `node` (a node holding `index`) on the way to `index`. */
  private entryOf(node: HeldNode, index: number): number {
    // Exact: for integers below 2^53, floor(a / b) in doubles is the integer quotient.
    return Math.floor(index / (this.spans[node.level] as number)) % this.fanout;
  }

  /** First slot index under `node`. */
  private baseOf(node: HeldNode): number {
    return node.nodeNo * (this.spans[node.level + 1] as number);
  }

  private parentOf(node: HeldNode): HeldNode {
    if (node.level + 1 === this.depth) return this.root;
    const parent = this.held[node.level + 1]?.get(Math.floor(node.nodeNo / this.fanout));
    if (parent === undefined) throw new Error(`${this.what}: node ${node.nodeNo} at level ${node.level} is held without its parent`);
    return parent;
  }

  /** The node entry `j` of `parent` points to, loaded if it is not held. The pointer must be positive. */
  private child(parent: HeldNode, j: number): HeldNode {
    const level = parent.level - 1;
    const nodeNo = parent.nodeNo * this.fanout + j;
    const held = this.held[level]?.get(nodeNo);
    if (held !== undefined) return held;
    const version = parent.slots[j] as number;
    if (!(version > 0 && version !== CHANGED)) throw new Error(`${this.what}: no node behind pointer ${version}`);
    const what = `${this.what}, map node ${nodeNo} at level ${level}`;
    const slots = Float64Array.from(this.source.load(level, nodeNo, version));
    checkMapNodeSlots(slots, { level, special: this.special, version, what }, this.fanout);
    const node: HeldNode = { level, nodeNo, slots, stored: true, changed: false };
    this.held[level]?.set(nodeNo, node);
    return node;
  }

  /** Makes a node under entry `j` of `parent`, which held the uniform value `uniform`, to change part of it. */
  private createChild(parent: HeldNode, j: number, uniform: number): HeldNode {
    const level = parent.level - 1;
    const nodeNo = parent.nodeNo * this.fanout + j;
    const slots = new Float64Array(this.fanout).fill(uniform);
    // A record of this name may be waiting to be deleted (the range was dropped since the last stamp): the
    // new node's write replaces it instead.
    const stored = this.doomed[level]?.delete(nodeNo) ?? false;
    const node: HeldNode = { level, nodeNo, slots, stored, changed: false };
    this.held[level]?.set(nodeNo, node);
    this.markChanged(node);
    return node;
  }

  /** Records that `node` changed: its pointer, and each ancestor's up to the root, becomes CHANGED. */
  private markChanged(node: HeldNode): void {
    let current = node;
    while (current !== this.root) {
      if (current.changed) return;
      current.changed = true;
      this.changedNodes[current.level]?.add(current);
      const parent = this.parentOf(current);
      parent.slots[current.nodeNo % this.fanout] = CHANGED;
      current = parent;
    }
    this.rootChanged = true;
  }

  /** Forgets a held node, and deletes its record at the next stamp if it has one. */
  private release(node: HeldNode): void {
    this.held[node.level]?.delete(node.nodeNo);
    this.changedNodes[node.level]?.delete(node);
    if (node.stored) this.doomed[node.level]?.add(node.nodeNo);
  }

  /** Grows the tree until it holds `index`; EFBIG past depth 3. Keeps every node and its name (5.4). */
  private growToHold(index: number): void {
    if (index >= this.maxSlots) {
      throw new FsError('EFBIG', `${this.what}: slot ${index} is past the ${this.maxSlots} a tree of depth ${MAX_TREE_DEPTH} holds`);
    }
    while (index >= this.capacityAt(this.depth)) {
      const root = this.root;
      if (allEqual(root.slots, HOLE)) {
        root.level++; // an empty tree needs no node to be deeper
        continue;
      }
      const level = root.level;
      const slots = new Float64Array(this.fanout);
      slots.set(root.slots);
      const stored = this.doomed[level]?.delete(0) ?? false;
      const top: HeldNode = { level, nodeNo: 0, slots, stored, changed: true };
      this.held[level]?.set(0, top);
      this.changedNodes[level]?.add(top);
      root.slots.fill(HOLE);
      root.slots[0] = CHANGED;
      root.level++;
      this.rootChanged = true;
    }
  }

  // ---- range changes ----

  private changeRange(start: number, end: number, slot: number, holesOnly: boolean, options: RangeOptions): void {
    this.checkIndex(start);
    this.checkIndex(end);
    this.checkSlot(slot);
    // A version is one piece's or one record's: it never fills a range, and as a pointer it would name a node.
    if (isVersion(slot)) throw new RangeError(`${this.what}: a range can be filled with HOLE, PREALLOCATED or lost, not version ${slot}`);
    if (start >= end) return;
    if (slot === HOLE) {
      if (holesOnly) return;
      end = Math.min(end, this.capacityAt(this.depth));
      if (start >= end) return;
    } else {
      this.growToHold(end - 1);
    }
    const walk: RangeWalk = { start, end, slot, holesOnly, apply: false, orphanUnreadable: options.orphanUnreadable ?? false, unreadable: new Set() };
    this.walkRange(this.root, walk);
    walk.apply = true;
    this.walkRange(this.root, walk);
  }

  /**
   * Applies `walk` to the part of its range under `node`. Without `walk.apply` it only loads the nodes
   * the change will need: the edge nodes, and inside subtrees it drops whole, the nodes that list the
   * records to delete (and in piece maps the leaves, whose preallocated and lost slots leave the counts).
   */
  private walkRange(node: HeldNode, walk: RangeWalk): void {
    const span = this.spans[node.level] as number;
    const base = this.baseOf(node);
    const first = Math.max(0, Math.floor((walk.start - base) / span));
    const last = Math.min(node.slots.length - 1, Math.floor((walk.end - 1 - base) / span));
    let changed = false;
    for (let j = first; j <= last; j++) {
      const pointer = node.slots[j] as number;
      if (node.level === 0) {
        if (walk.holesOnly ? pointer !== HOLE : pointer === walk.slot) continue;
        if (walk.apply) {
          node.slots[j] = walk.slot;
          this.countChange(pointer, walk.slot, 1);
          changed = true;
        }
        continue;
      }
      const entryStart = base + j * span;
      const covered = walk.start <= entryStart && entryStart + span <= walk.end;
      if (pointer > 0) {
        if (covered && !walk.holesOnly) {
          if (!walk.apply) {
            this.loadForDrop(node, j, walk);
          } else {
            if (this.special) this.countDrop(node, j, walk);
            this.drop(node, j, walk);
            node.slots[j] = walk.slot;
            this.countChange(HOLE, walk.slot, span);
            changed = true;
          }
        } else {
          this.walkRange(this.child(node, j), walk);
        }
        continue;
      }
      if (walk.holesOnly ? pointer !== HOLE : pointer === walk.slot) continue;
      if (!walk.apply) continue; // a uniform entry has nothing to load
      if (covered) {
        node.slots[j] = walk.slot;
        this.countChange(pointer, walk.slot, span);
        changed = true;
      } else {
        this.walkRange(this.createChild(node, j, pointer), walk);
      }
    }
    if (changed) this.markChanged(node);
  }

  /** Loads what dropping the subtree under entry `j` of `parent` needs, noting the nodes that cannot be read. */
  private loadForDrop(parent: HeldNode, j: number, walk: RangeWalk): void {
    const level = parent.level - 1;
    // A leaf's record is known to exist from its pointer; only piece maps read it, for the counts.
    if (level === 0 && !this.special) return;
    let node: HeldNode;
    try {
      node = this.child(parent, j);
    } catch (err) {
      if (!(err instanceof IntegrityError && walk.orphanUnreadable)) throw err;
      walk.unreadable.add(nodeKey(level, parent.nodeNo * this.fanout + j));
      return;
    }
    if (level === 0) return;
    for (let k = 0; k < this.fanout; k++) {
      if ((node.slots[k] as number) > 0) this.loadForDrop(node, k, walk);
    }
  }

  /** Takes the preallocated and lost slots under entry `j` of `parent` off the counts, before the subtree is dropped. */
  private countDrop(parent: HeldNode, j: number, walk: RangeWalk): void {
    if (this.hasUnreadable(parent, j, walk)) {
      // What the unreadable node held is unknown: the counts will be taken again from the tree as it is.
      this.preallocatedCount.forget();
      this.lostCount.forget();
      return;
    }
    const below = this.specialBelow(this.child(parent, j));
    this.preallocatedCount.add(-below.preallocated);
    this.lostCount.add(-below.lost);
  }

  private hasUnreadable(parent: HeldNode, j: number, walk: RangeWalk): boolean {
    if (walk.unreadable.size === 0) return false;
    const level = parent.level - 1;
    const nodeNo = parent.nodeNo * this.fanout + j;
    if (walk.unreadable.has(nodeKey(level, nodeNo))) return true;
    if (level === 0) return false;
    const node = this.child(parent, j);
    for (let k = 0; k < this.fanout; k++) {
      if ((node.slots[k] as number) > 0 && this.hasUnreadable(node, k, walk)) return true;
    }
    return false;
  }

  /** Forgets the subtree under entry `j` of `parent` and deletes its records at the next stamp. The caller sets the entry. */
  private drop(parent: HeldNode, j: number, walk: RangeWalk): void {
    const level = parent.level - 1;
    const nodeNo = parent.nodeNo * this.fanout + j;
    const held = this.held[level]?.get(nodeNo);
    if (held === undefined && (level === 0 || walk.unreadable.has(nodeKey(level, nodeNo)))) {
      this.doomed[level]?.add(nodeNo); // its pointer is a version, so its record exists
      return;
    }
    const node = held ?? this.child(parent, j);
    if (level > 0) {
      for (let k = 0; k < this.fanout; k++) {
        if ((node.slots[k] as number) > 0) this.drop(node, k, walk);
      }
    }
    this.release(node);
  }

  // ---- the commit ----

  /** Replaces each changed node whose slots are all one value that is not a version by that value, bottom up. */
  private collapseUniformNodes(): void {
    for (let level = 0; level < this.depth; level++) {
      for (const node of [...(this.changedNodes[level] as Set<HeldNode>)]) {
        const uniform = node.slots[0] as number;
        if (uniform > 0 || !allEqual(node.slots, uniform)) continue;
        this.parentOf(node).slots[node.nodeNo % this.fanout] = uniform; // the parent is changed already
        this.release(node);
      }
    }
  }

  /**
   * Makes the depth the smallest that holds every slot that is not HOLE. While only root entry 0 is in use
   * and the top node's entries past the root's capacity are HOLE, that node's entries become the root.
   */
  private shrink(): void {
    const root = this.root;
    while (root.level > 0 && allEqual(root.slots, HOLE, 1)) {
      const first = root.slots[0] as number;
      if (first === HOLE) {
        root.level = 0; // nothing is left
        this.rootChanged = true;
        return;
      }
      if (first < 0) {
        // A uniform top node: its slots reach past a shallower root unless the root is as wide as a node.
        if (this.rootCapacity < this.fanout) return;
        root.slots.fill(first);
        root.level--;
        this.rootChanged = true;
        continue;
      }
      const top = this.child(root, 0);
      if (!allEqual(top.slots, HOLE, this.rootCapacity)) return;
      root.slots.set(top.slots.subarray(0, this.rootCapacity));
      this.release(top);
      root.level--;
      this.rootChanged = true;
    }
  }

  // ---- reading ----

  /** The first index at or past `from` under `node` whose slot is data (wantData) or reads as zeroes. */
  private seek(node: HeldNode, from: number, wantData: boolean): number | undefined {
    const span = this.spans[node.level] as number;
    const base = this.baseOf(node);
    for (let j = Math.max(0, Math.floor((from - base) / span)); j < node.slots.length; j++) {
      const pointer = node.slots[j] as number;
      const at = Math.max(from, base + j * span);
      if (node.level > 0 && pointer > 0) {
        const found = this.seek(this.child(node, j), at, wantData);
        if (found !== undefined) return found;
      } else if (isData(pointer) === wantData) {
        return at;
      }
    }
    return undefined;
  }

  private *lostIn(node: HeldNode): Generator<number> {
    const span = this.spans[node.level] as number;
    const base = this.baseOf(node);
    for (let j = 0; j < node.slots.length; j++) {
      const pointer = node.slots[j] as number;
      if (isLost(pointer)) for (let i = 0; i < span; i++) yield base + j * span + i;
      else if (node.level > 0 && pointer > 0) yield* this.lostIn(this.child(node, j));
    }
  }

  private *nodesUnder(node: HeldNode): Generator<NodeDelete> {
    if (node.level === 0) return;
    for (let j = 0; j < node.slots.length; j++) {
      if (!((node.slots[j] as number) > 0)) continue;
      const child = this.child(node, j);
      yield { level: child.level, nodeNo: child.nodeNo };
      yield* this.nodesUnder(child);
    }
  }

  private *versionsIn(node: HeldNode, start: number, end: number): Generator<{ index: number; version: number }> {
    const span = this.spans[node.level] as number;
    const base = this.baseOf(node);
    const first = Math.max(0, Math.floor((start - base) / span));
    const last = Math.min(node.slots.length - 1, Math.floor((end - 1 - base) / span));
    for (let j = first; j <= last; j++) {
      const pointer = node.slots[j] as number;
      if (!(pointer > 0)) continue;
      if (node.level === 0) yield { index: base + j, version: pointer };
      else yield* this.versionsIn(this.child(node, j), start, end);
    }
  }

  private specialBelow(node: HeldNode, counts: SpecialCounts = { preallocated: 0, lost: 0 }): SpecialCounts {
    const span = this.spans[node.level] as number;
    for (let j = 0; j < node.slots.length; j++) {
      const pointer = node.slots[j] as number;
      if (pointer === PREALLOCATED) counts.preallocated += span;
      else if (isLost(pointer)) counts.lost += span;
      else if (node.level > 0 && pointer > 0) this.specialBelow(this.child(node, j), counts);
    }
    return counts;
  }

  // ---- checks and counts ----

  /** Keeps the counts as `slots` slots go from `before` to `after`. */
  private countChange(before: number, after: number, slots: number): void {
    if (before === PREALLOCATED) this.preallocatedCount.add(-slots);
    else if (isLost(before)) this.lostCount.add(-slots);
    if (after === PREALLOCATED) this.preallocatedCount.add(slots);
    else if (isLost(after)) this.lostCount.add(slots);
  }

  private checkIndex(index: number): void {
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`${this.what}: slot index ${index}`);
  }

  private checkSlot(slot: number): void {
    if (!isValidSlot(slot, this.special)) {
      const why = this.special || isVersion(slot) || slot === HOLE ? 'not a slot' : 'not valid outside piece maps';
      throw new RangeError(`${this.what}: ${slot} is ${why}`);
    }
  }
}
