// The one counter of format 2 (docs/format-2.md, section 11): every piece version and every commit number
// comes from it, and no value is ever handed out twice, crash or not. It hands out only values below a
// reservation that a durable commit recorded in the state record (`reservedUpTo`); after any crash the next
// open starts at that reservation, past everything the crashed session may have used.

import { FsError } from '../errors.js';
import { MAX_VERSION } from './slot.js';

/** Values reserved by one extension. One durable commit per block: 8 GiB of 128 KiB pieces. */
export const COUNTER_BLOCK = 65_536;

export class VersionCounter {
  /** The next value to hand out. */
  private next: number;
  /** Values below this are reserved by a commit that is on disk. */
  private durable: number;
  /** A larger reservation a cut has put in the state record, not yet confirmed durable. */
  private inFlight: number | null = null;

  /**
   * `reservedUpTo`: the state record's, as read at open. Nothing below it may be handed out again, and
   * nothing at or above it is reserved yet, so the counter starts there with no value available: the
   * open's first commit (see openingCommit) reserves the first block.
   */
  constructor(reservedUpTo: number) {
    if (!Number.isSafeInteger(reservedUpTo) || reservedUpTo < 1 || reservedUpTo > MAX_VERSION - COUNTER_BLOCK) {
      throw new RangeError(`reservedUpTo ${reservedUpTo} is out of range`);
    }
    this.next = reservedUpTo;
    this.durable = reservedUpTo;
  }

  /**
   * The number of the open's first commit, which reserves the first block: `reservedUpTo` itself, the one
   * value no earlier session can have used. That commit holds the state record only, with the same
   * payload however often a crash makes it run again (the same number, the same reservation), so two
   * seals of (state, this number) never differ in what they say.
   */
  openingCommit(): number {
    if (this.next !== this.durable) throw new Error('openingCommit: the counter is already in use');
    return this.next++;
  }

  /** Hands out the next value; EIO when the durable reservation is used up (a commit must land first). */
  take(): number {
    if (this.next >= this.durable) {
      throw new FsError('EIO', `no piece version or commit number is reserved past ${this.durable}: the state record's reservation has not been committed (section 11)`);
    }
    return this.next++;
  }

  /** Whether the reservation runs low: the next commit should extend it (and should come soon). */
  get wantsExtension(): boolean {
    return this.durable - this.next < COUNTER_BLOCK / 2;
  }

  /**
   * The `reservedUpTo` a cut writes into the state record: extended by a block when less than half a
   * block is left, else the one already in force (or in flight).
   */
  reservationForCut(): number {
    const base = Math.max(this.durable, this.inFlight ?? 0);
    if (base - this.next >= COUNTER_BLOCK / 2) return base;
    if (base > MAX_VERSION - COUNTER_BLOCK) throw new FsError('EIO', 'the version counter is exhausted');
    this.inFlight = Math.max(this.next, base) + COUNTER_BLOCK;
    return this.inFlight;
  }

  /** The commit whose state record held `reservedUpTo` is on disk: values below it may be handed out. */
  confirmed(reservedUpTo: number): void {
    this.durable = Math.max(this.durable, reservedUpTo);
    if (this.inFlight !== null && this.inFlight <= this.durable) this.inFlight = null;
  }

  /** The commit that carried a reservation failed: the next cut asks again. */
  failed(): void {
    this.inFlight = null;
  }

  /** Values that can still be taken before a commit confirms a larger reservation. */
  get available(): number {
    return this.durable - this.next;
  }

  /** The next value, for tests and for the state record's bookkeeping. */
  get peek(): number {
    return this.next;
  }

  /** The durable reservation. */
  get reservedUpTo(): number {
    return this.durable;
  }
}
