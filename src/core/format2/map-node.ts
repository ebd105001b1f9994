// The payload of a map node record (kind 3, docs/format-2.md 5.4 and section 12): 494 u64 slots of one
// slot tree, 3,952 bytes. The record's seal, name and header are not this module's concern; it turns the
// payload into slots and back, and refuses a payload that breaks the slot rules.
//
// A level-0 node holds slots; a node at level 1 or 2 holds pointers to the level below. Both use the same
// values: 0 (no node, every slot below a hole), a version, and in piece maps PREALLOCATED or lost, which
// as pointers mean that every slot below has that value. So the values valid in a node do not depend on
// its level, only on whether the tree allows special slots.

import { IntegrityError } from '../errors.js';
import { isVersion, MAX_VERSION, PREALLOCATED, readSlot, SLOT_BYTES, writeSlot } from './slot.js';

/** Slots in every map node, whatever tree it belongs to. */
export const MAP_NODE_SLOTS = 494;
/** The payload of a map node: its slots and nothing else. */
export const MAP_NODE_PAYLOAD_BYTES = MAP_NODE_SLOTS * SLOT_BYTES; // 3,952
/** Nodes exist at levels 0 to 2: a tree is at most 3 deep, and its top level lives in the owner. */
export const MAX_MAP_NODE_LEVEL = 2;

/** What a map node's slots are checked against: where the node sits and the commit that wrote it. */
export interface MapNodeContext {
  level: number;
  /** Whether PREALLOCATED and lost are valid: piece maps only. */
  special: boolean;
  /** The record's version, the commit that wrote it. */
  version: number;
  /** Names the node in error messages, e.g. "map node (ino 12, level 0, node 3)". */
  what: string;
}

/**
 * Refuses slots that cannot be in the node `context` describes: a value that is not a slot, a special
 * value in a tree without them, or a version newer than the node. The last holds because a commit that
 * writes a record also writes its owner with the same commit number, and a piece's version is taken
 * before the commit that records it, so nothing a node points to can be newer than the node.
 * `slotCount` is 494 in every store; the slot tree's tests use smaller nodes to reach every depth.
 */
export function checkMapNodeSlots(slots: ArrayLike<number>, context: MapNodeContext, slotCount = MAP_NODE_SLOTS): void {
  checkLevel(context.level);
  if (slots.length !== slotCount) {
    throw new IntegrityError(`${context.what}: ${slots.length} slots, expected ${slotCount}`);
  }
  const newest = Math.min(context.version, MAX_VERSION);
  for (let i = 0; i < slotCount; i++) {
    const slot = slots[i] as number;
    if (slot >= 0 && slot <= newest && Number.isInteger(slot)) continue; // HOLE or a version: the usual case, kept fast
    if (!isValidSlot(slot, context.special)) {
      throw new IntegrityError(`${context.what}: slot ${i} holds ${slot}, which is not valid here`);
    }
    if (isVersion(slot)) {
      throw new IntegrityError(`${context.what}: slot ${i} holds version ${slot}, newer than the node's ${context.version}`);
    }
  }
}

/** Whether `slot` is a value a slot may hold in a tree with or without special slots. */
export function isValidSlot(slot: number, special: boolean): boolean {
  if (!Number.isSafeInteger(slot)) return false;
  if (slot >= 0) return slot <= MAX_VERSION;
  if (!special) return false;
  return slot === PREALLOCATED || -2 - slot <= MAX_VERSION;
}

/** The payload of a node holding `slots`. Throws RangeError for anything that is not 494 encodable slots. */
export function encodeMapNode(slots: ArrayLike<number>): Buffer {
  if (slots.length !== MAP_NODE_SLOTS) throw new RangeError(`a map node holds ${MAP_NODE_SLOTS} slots, not ${slots.length}`);
  const payload = Buffer.alloc(MAP_NODE_PAYLOAD_BYTES);
  for (let i = 0; i < MAP_NODE_SLOTS; i++) writeSlot(payload, i * SLOT_BYTES, slots[i] as number);
  return payload;
}

/** The slots of a node's payload, checked as checkMapNodeSlots does. Any failure is IntegrityError `damaged`. */
export function decodeMapNode(payload: Buffer, context: MapNodeContext): Float64Array {
  checkLevel(context.level);
  if (payload.length !== MAP_NODE_PAYLOAD_BYTES) {
    throw new IntegrityError(`${context.what}: payload of ${payload.length} bytes, expected ${MAP_NODE_PAYLOAD_BYTES}`);
  }
  const slots = new Float64Array(MAP_NODE_SLOTS);
  for (let i = 0; i < MAP_NODE_SLOTS; i++) slots[i] = readSlot(payload, i * SLOT_BYTES, context.special, context.what);
  checkMapNodeSlots(slots, context);
  return slots;
}

function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > MAX_MAP_NODE_LEVEL) throw new RangeError(`map node level ${level} out of range`);
}
