// Format 2's rollback anchor (docs/format-2.md, 5.7): the latest durable commit this machine has seen
// of a vault, kept outside the store (~/.local/state/svault/anchors/<vault id>.v2), so that a whole store
// put back as an older copy of itself, whose every record is authentic, is still noticed.
//
// The file is 192 bytes: two slots of 96 bytes, each MACed with the anchor key. A write overwrites the
// slot with the lower sequence in place, with fdatasync and no rename, so it costs one small write and
// one flush, and a write torn by a crash spoils only the slot being written: the other still holds the
// previous anchor. It fails closed: a file with no valid slot (wrong size, both MACs bad, unreadable)
// refuses the store, because whoever can write the state directory could otherwise erase the anchor to
// let a rollback through. Only a missing file is accepted, as a machine that has not seen the vault.
//
// Which commits are recorded and how often (durable ones, at most once a second, and at clean unmount)
// is the caller's rule; compareWithAnchor() is what the caller checks a store's state record with.

import { closeSync, constants as fsConstants, fdatasyncSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { constantTimeEqual } from '../crypto/crypto.js';
import { BadStoreError } from '../errors.js';
import { closeOpened, StoreDir } from '../os/store-dir.js';
import { labeledPrf, u32, u64, VAULT_ID_BYTES } from './keys.js';

export const ANCHOR_SLOT_BYTES = 96;
export const ANCHOR_FILE_BYTES = 2 * ANCHOR_SLOT_BYTES;
export const SEGMENT_TAG_BYTES = 16;
/** The first 4 bytes of a slot. */
const MAGIC = Buffer.from('SVA2', 'ascii');
const MAX_SEQUENCE = 0xffff_ffff;

// A slot (5.7): "SVA2" ‖ u32 sequence ‖ u64 commit ‖ u64 segmentIndex ‖ segment tag (16) ‖ zeroes (24) ‖
// HMAC(anchor key, "svault-anchor-v2\0" ‖ vault id ‖ bytes 0..63).
const SEQUENCE_AT = 4;
const COMMIT_AT = 8;
const SEGMENT_INDEX_AT = 16;
const SEGMENT_TAG_AT = 24;
const ZEROES_AT = 40;
const MAC_AT = 64;

/** What an anchor records: a durable commit, and the metadata segment it went into on an S3 home store (10.7). */
export interface AnchoredCommit {
  commit: number;
  /** 0 without a segment log. */
  segmentIndex: number;
  /** The tag of segment `segmentIndex`, or 16 zero bytes. */
  segmentTag: Buffer;
}

/** What a vault with no segment log (a home store on a disk) anchors: its commit alone. */
export function anchoredCommit(commit: number): AnchoredCommit {
  return { commit, segmentIndex: 0, segmentTag: Buffer.alloc(SEGMENT_TAG_BYTES) };
}

/** A slot that verifies. */
interface AnchorSlot {
  sequence: number;
  anchored: AnchoredCommit;
}

/** The anchor file exists but has no valid slot (5.7): exit 4, with 5.7's message. */
export class AnchorDamagedError extends BadStoreError {
  constructor(
    readonly path: string,
    /** Which check failed, for logs and tests; 5.7's message is the same for all. */
    readonly reason: string,
  ) {
    super(path, reason);
    // 5.7's message names the anchor's path itself, so it replaces BadStoreError's "path: reason".
    this.message = `The rollback anchor ${path} is damaged. If you trust the store as it is, run again with --reset-anchor.`;
    this.name = 'AnchorDamagedError';
  }
}

/** The anchor's file name in the anchors directory: `<vault id>.v2` (section 2). */
export function anchorFileName(vaultId: Buffer): string {
  return `${vaultId.toString('hex')}.v2`;
}

function checkAnchored(a: AnchoredCommit): void {
  for (const [what, n] of [['commit', a.commit], ['segment index', a.segmentIndex]] as const) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`anchor: ${what} ${n} is not an integer from 0 to 2^53 - 1`);
  }
  if (a.segmentTag.length !== SEGMENT_TAG_BYTES) throw new RangeError(`anchor: a segment tag is ${SEGMENT_TAG_BYTES} bytes, not ${a.segmentTag.length}`);
}

function slotMac(anchorKey: Buffer, vaultId: Buffer, slot: Buffer): Buffer {
  return labeledPrf(anchorKey, 'svault-anchor-v2', vaultId, slot.subarray(0, MAC_AT));
}

/** A slot's 96 bytes. */
export function encodeAnchorSlot(anchorKey: Buffer, vaultId: Buffer, sequence: number, anchored: AnchoredCommit): Buffer {
  checkAnchored(anchored);
  const slot = Buffer.alloc(ANCHOR_SLOT_BYTES);
  MAGIC.copy(slot, 0);
  u32(sequence).copy(slot, SEQUENCE_AT);
  u64(anchored.commit).copy(slot, COMMIT_AT);
  u64(anchored.segmentIndex).copy(slot, SEGMENT_INDEX_AT);
  anchored.segmentTag.copy(slot, SEGMENT_TAG_AT);
  slotMac(anchorKey, vaultId, slot).copy(slot, MAC_AT);
  return slot;
}

/** A u64 field below 2^53 (section 1), or null: a larger value makes the slot invalid. */
function safeU64(slot: Buffer, at: number): number | null {
  const n = slot.readBigUInt64BE(at);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : null;
}

/** The slot's content when it is valid: magic, MAC, zeroes and field ranges. Null for a torn, forged or foreign slot. */
export function decodeAnchorSlot(anchorKey: Buffer, vaultId: Buffer, slot: Buffer): { sequence: number; anchored: AnchoredCommit } | null {
  if (slot.length !== ANCHOR_SLOT_BYTES) return null;
  if (!slot.subarray(0, SEQUENCE_AT).equals(MAGIC)) return null;
  if (!constantTimeEqual(slot.subarray(MAC_AT), slotMac(anchorKey, vaultId, slot))) return null;
  // Covered by the MAC, so only a writer with the key could break these: checked all the same, as every
  // reserved field of the format is.
  if (slot.subarray(ZEROES_AT, MAC_AT).some((b) => b !== 0)) return null;
  const commit = safeU64(slot, COMMIT_AT);
  const segmentIndex = safeU64(slot, SEGMENT_INDEX_AT);
  if (commit === null || segmentIndex === null) return null;
  const segmentTag = Buffer.from(slot.subarray(SEGMENT_TAG_AT, SEGMENT_TAG_AT + SEGMENT_TAG_BYTES));
  return { sequence: slot.readUInt32BE(SEQUENCE_AT), anchored: { commit, segmentIndex, segmentTag } };
}

/**
 * How a store's state (its commit, and on an S3 home store its segment index and tag) stands to the
 * anchor's (5.7, section 13):
 * - `behind`: a commit below the anchor's, a rollback: RollbackError, unless --accept-rollback;
 * - `equal`: the same commit, segment index and segment tag;
 * - `ahead`: a later commit: the store moved on since the anchor was written (it lags by design);
 * - `diverged`: the same commit, but another segment index or tag: not the history the anchor saw, refused as a rollback.
 */
export type AnchorComparison = 'behind' | 'equal' | 'ahead' | 'diverged';

export function compareWithAnchor(store: AnchoredCommit, anchor: AnchoredCommit): AnchorComparison {
  if (store.commit < anchor.commit) return 'behind';
  if (store.commit > anchor.commit) return 'ahead';
  const sameSegment = store.segmentIndex === anchor.segmentIndex && store.segmentTag.equals(anchor.segmentTag);
  return sameSegment ? 'equal' : 'diverged';
}

/** Creates `dir` (mode 0700) with its missing parents, each made durable by an fsync of its parent. */
function makeDirectoryDurably(dir: string): void {
  const target = resolve(dir);
  const created = mkdirSync(target, { recursive: true, mode: 0o700 });
  if (created === undefined) return;
  const first = resolve(created);
  for (let d = target; ; d = dirname(d)) {
    const parent = openSync(dirname(d), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    try {
      fsyncSync(parent);
    } finally {
      closeSync(parent);
    }
    if (d === first || d === dirname(d)) break;
  }
}

function readAll(fd: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const n = readSync(fd, buf, off, length - off, off);
    if (n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}

function writeAllAt(fd: number, data: Buffer, position: number): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off, position + off);
}

/** One vault's anchor on this machine. The file is opened for each read and write (at most one a second), never held. */
export class RollbackAnchor {
  /** The anchor file, for messages. */
  readonly path: string;
  private readonly name: string;

  constructor(
    /** The anchors directory, ~/.local/state/svault/anchors in use; created on the first write. */
    private readonly dir: string,
    private readonly vaultId: Buffer,
    /** The anchor key of section 3 (Format2Keys.anchor). */
    private readonly anchorKey: Buffer,
  ) {
    if (vaultId.length !== VAULT_ID_BYTES) throw new RangeError(`a vault id is ${VAULT_ID_BYTES} bytes, not ${vaultId.length}`);
    this.name = anchorFileName(vaultId);
    this.path = join(dir, this.name);
  }

  /**
   * The anchored commit: the valid slot with the higher sequence. Null when there is no file (this
   * machine has not seen the vault: the caller writes one and logs it). AnchorDamagedError when the
   * file has no valid slot, whatever the reason.
   */
  read(): AnchoredCommit | null {
    const dir = this.openDir();
    if (dir === null) return null;
    try {
      const fd = this.openFile(dir, fsConstants.O_RDONLY);
      if (fd === null) return null;
      try {
        return this.newest(this.readSlots(fd)).anchored;
      } finally {
        closeOpened(fd);
      }
    } finally {
      dir.close();
    }
  }

  /**
   * Records `anchored` (5.7): overwrites the slot with the lower sequence, or the invalid one, in place,
   * with the sequence one above the other's, then fdatasync. The first write creates the file with both
   * slots, durably (file and directory fsynced). It records what it is given, lower than before
   * included (--accept-rollback): which commits to record is the caller's rule. AnchorDamagedError when
   * the file has no valid slot, as read() does.
   */
  write(anchored: AnchoredCommit): void {
    checkAnchored(anchored);
    makeDirectoryDurably(this.dir);
    const dir = StoreDir.open(this.dir);
    try {
      const fd = this.openFile(dir, fsConstants.O_RDWR);
      if (fd === null) {
        this.create(dir, anchored);
        return;
      }
      try {
        const slots = this.readSlots(fd);
        const newest = this.newest(slots);
        if (newest.sequence === MAX_SEQUENCE) {
          // Four billion writes, at most one a second: 136 years of use. A reset starts the sequences over.
          throw new AnchorDamagedError(this.path, 'its sequence is exhausted');
        }
        const target = slots[0] === newest ? 1 : 0;
        writeAllAt(fd, encodeAnchorSlot(this.anchorKey, this.vaultId, newest.sequence + 1, anchored), target * ANCHOR_SLOT_BYTES);
        fdatasyncSync(fd);
      } finally {
        closeOpened(fd);
      }
    } finally {
      dir.close();
    }
  }

  /**
   * --reset-anchor: replaces the file, whatever it holds, with one that records `anchored`, durably
   * (temporary file, fsync, rename, directory fsync).
   */
  reset(anchored: AnchoredCommit): void {
    checkAnchored(anchored);
    makeDirectoryDurably(this.dir);
    StoreDir.using(this.dir, (dir) => this.create(dir, anchored));
  }

  /**
   * A new file with `anchored` in both slots (sequences 0 and 1), so that it stays readable even if one
   * slot is later torn. Written to a temporary file and renamed, so a crash never leaves a short file,
   * which would fail closed.
   */
  private create(dir: StoreDir, anchored: AnchoredCommit): void {
    const file = Buffer.concat([
      encodeAnchorSlot(this.anchorKey, this.vaultId, 0, anchored),
      encodeAnchorSlot(this.anchorKey, this.vaultId, 1, anchored),
    ]);
    dir.writeFileAtomic(this.name, file);
  }

  /** The anchors directory, or null when it does not exist (then neither does the anchor). */
  private openDir(): StoreDir | null {
    try {
      return StoreDir.open(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new AnchorDamagedError(this.path, `its directory cannot be opened (${errorCode(err)})`);
    }
  }

  /** The anchor file, opened without following a link; null when it is not there. Anything else unreadable fails closed. */
  private openFile(dir: StoreDir, flags: number): number | null {
    try {
      return dir.openFile(this.name, flags);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      if (err instanceof BadStoreError) throw new AnchorDamagedError(this.path, 'it is not a regular file');
      throw new AnchorDamagedError(this.path, `it cannot be opened (${errorCode(err)})`);
    }
  }

  /** Both slots, each decoded or null; AnchorDamagedError for a file of the wrong size or one that cannot be read. */
  private readSlots(fd: number): [AnchorSlot | null, AnchorSlot | null] {
    let bytes: Buffer;
    try {
      const size = fstatSync(fd).size;
      if (size !== ANCHOR_FILE_BYTES) throw new AnchorDamagedError(this.path, `it is ${size} bytes, not ${ANCHOR_FILE_BYTES}`);
      bytes = readAll(fd, ANCHOR_FILE_BYTES);
    } catch (err) {
      if (err instanceof AnchorDamagedError) throw err;
      throw new AnchorDamagedError(this.path, `it cannot be read (${errorCode(err)})`);
    }
    if (bytes.length !== ANCHOR_FILE_BYTES) throw new AnchorDamagedError(this.path, `it shrank to ${bytes.length} bytes while read`);
    return [
      decodeAnchorSlot(this.anchorKey, this.vaultId, bytes.subarray(0, ANCHOR_SLOT_BYTES)),
      decodeAnchorSlot(this.anchorKey, this.vaultId, bytes.subarray(ANCHOR_SLOT_BYTES)),
    ];
  }

  /**
   * The slot that wins: the valid one with the higher sequence. Two valid slots with one sequence are
   * never written; should they appear, the higher commit wins, the side that refuses a rollback.
   */
  private newest([a, b]: [AnchorSlot | null, AnchorSlot | null]): AnchorSlot {
    if (a && b) {
      if (a.sequence !== b.sequence) return a.sequence > b.sequence ? a : b;
      return a.anchored.commit >= b.anchored.commit ? a : b;
    }
    const valid = a ?? b;
    if (!valid) throw new AnchorDamagedError(this.path, 'neither slot is valid');
    return valid;
  }
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
