// Group commits of format 2 (docs/format-2.md, 5.6 and 17.1): what changed in memory since the last
// commit is cut off under one commit number, sealed, and written in one SQLite transaction.
//
// Every record's owner holds the record's version, the number of the commit that wrote it, so nothing can
// be encoded before that number is known. Trees and chains therefore stay decoded while operations change
// them, and mark themselves with touch(). The cut takes the number and asks each touched participant, from
// the leaves up, to stamp it: a participant returns the records it changed, encoded at that version, and
// sets its owner's pointers to it, touching the owner, which is stamped at a later level in the same cut.
// The root participant (the state record) is stamped in every cut: it pins the whole tree, and the rollback
// anchor pins it.
//
// A number seals each name once (5.4), so a failed write is never retried with the same one: each stamped
// participant is told to unstamp, which marks what it wrote as changed again, and the next cut writes it
// under a new number together with whatever changed meanwhile. After a successful write, confirm.

import { FsError } from '../errors.js';
import type { RecordKind, RecordSealer } from './record-seal.js';
import type { RecordChange } from './record-table.js';

/** Where cuts are written: meta2.db's table (RecordTable), or a test's stand-in. */
export interface RecordWriter {
  /** All the changes in one transaction, or none; `durable`: synchronous FULL. */
  apply(changes: readonly RecordChange[], durable: boolean): void;
}

/** A record a participant changed, to be sealed at the cut's version. */
export interface StampedRecord {
  name: Buffer;
  kind: RecordKind;
  payload: Buffer;
}

/** What one participant contributes to a cut. */
export interface ParticipantStamp {
  writes: StampedRecord[];
  /** Names of records to delete. */
  deletes: Buffer[];
  /** Values written as they are, never sealed: metadata chaff (5.9), 4,000 random bytes each. */
  raw?: { name: Buffer; value: Buffer }[];
}

/**
 * Something that holds records in memory and writes them at commits: a piece map, a directory's buckets,
 * a spill chain (level 0), an inode (level 1), the inode table (level 2), the state record (the root).
 */
export interface CommitParticipant {
  /** Participants are stamped in increasing level: a participant may touch only higher levels while stamping. */
  readonly level: number;
  /** Encodes what changed since the last confirmed stamp at version `c`, and points its owner at it. */
  stamp(c: number): ParticipantStamp;
  /** The write of stamp `c` is in the table. */
  confirm(c: number): void;
  /** The write of stamp `c` failed: what it held is changed again, for the next cut. */
  unstamp(c: number): void;
}

/**
 * The stamp a participant's confirm(version) or unstamp(version) is about: its outstanding one, which must
 * be of that version (anything else is a bug in how the batcher is driven). `op` and `what` name the call
 * and the participant in the error.
 */
export function outstandingStamp<T extends { readonly version: number }>(stamp: T | null | undefined, version: number, op: string, what: string): T {
  if (stamp?.version !== version) throw new Error(`${what}: ${op}(${version}), but the outstanding stamp is ${stamp ? String(stamp.version) : 'none'}`);
  return stamp;
}

/** A cut: sealed and frozen, waiting for its blobs to be durable before it is written. */
export interface FrozenBatch {
  readonly version: number;
  readonly changes: readonly RecordChange[];
  /** Records written (not counting deletes), for figures. */
  readonly writes: number;
  readonly participants: readonly CommitParticipant[];
}

/** Levels of the tree a cut stamps, leaves first. The root is stamped after them. */
export const COMMIT_LEVELS = 3;

export class CommitBatcher {
  private readonly touched: Set<CommitParticipant>[] = Array.from({ length: COMMIT_LEVELS }, () => new Set());
  private outstanding: FrozenBatch | null = null;
  private cutting = false;

  constructor(
    private readonly table: RecordWriter,
    private readonly sealer: RecordSealer,
    /** Hands out commit numbers (the vault's version counter). */
    private readonly takeNumber: () => number,
    /** The state record: stamped last in every cut. */
    private readonly root: CommitParticipant,
  ) {}

  /** Told after each touch outside a cut, with how many participants wait: the committer arms its window. */
  onTouch: (count: number) => void = () => {};

  /** Marks a participant as changed: the next cut stamps it. */
  touch(p: CommitParticipant): void {
    if (p === this.root) return; // stamped in every cut anyway
    const level = this.touched[p.level];
    if (!level) throw new RangeError(`participant level ${p.level} is not 0 to ${COMMIT_LEVELS - 1}`);
    level.add(p);
    if (!this.cutting) this.onTouch(this.touchedCount);
  }

  /** Participants waiting for the next cut. */
  get touchedCount(): number {
    return this.touched.reduce((n, level) => n + level.size, 0);
  }

  /** Whether anything changed since the last cut. */
  get pending(): boolean {
    return this.touched.some((s) => s.size > 0);
  }

  /** Participants the next written cut will stamp, about: those waiting, and those of a cut not written yet. */
  get unwrittenCount(): number {
    return this.touchedCount + (this.outstanding?.participants.length ?? 0);
  }

  /** Whether a cut is waiting to be written. */
  get inFlight(): boolean {
    return this.outstanding !== null;
  }

  /**
   * Cuts off everything changed so far under a new commit number, sealed. Changes made afterwards belong
   * to the next cut. At most one cut is outstanding: write() it first. `version` is given only by the
   * open's first commit, which takes the counter's opening number (VersionCounter.openingCommit).
   */
  cut(version?: number): FrozenBatch {
    if (this.outstanding) throw new Error('a cut is already waiting to be written');
    if (this.cutting) throw new Error('cut() was called while stamping');
    version ??= this.takeNumber();
    this.cutting = true;
    /** Participants taken off the touched sets, and those of them stamped: undone if the cut fails. */
    const drawn: CommitParticipant[] = [];
    const stamped: CommitParticipant[] = [];
    try {
      const changes: RecordChange[] = [];
      const seen = new Set<string>();
      let writes = 0;
      const add = (name: Buffer, value: Buffer | null) => {
        const key = name.toString('hex');
        if (seen.has(key)) throw new Error(`record ${key} changed twice in commit ${version}: two owners claim it`);
        seen.add(key);
        changes.push({ name, value });
      };
      const take = (p: CommitParticipant) => {
        const s = p.stamp(version);
        stamped.push(p);
        for (const w of s.writes) {
          add(w.name, this.sealer.seal(w.name, version, w.kind, w.payload));
          writes++;
        }
        for (const name of s.deletes) add(name, null);
        for (const r of s.raw ?? []) add(r.name, r.value);
      };
      for (const level of this.touched) {
        // A participant stamped here may touch a higher level, which is then stamped in this same cut.
        const now = [...level];
        level.clear();
        drawn.push(...now);
        for (const p of now) take(p);
      }
      take(this.root);
      this.outstanding = { version, changes, writes, participants: stamped };
      return this.outstanding;
    } catch (err) {
      // A bug or a refusal while stamping: nothing was written. What was stamped is unstamped, and
      // everything taken off the touched sets is touched again, for the next cut.
      for (const p of stamped) p.unstamp(version);
      for (const p of drawn) this.touch(p);
      throw err;
    } finally {
      this.cutting = false;
    }
  }

  /**
   * Writes the outstanding cut in one transaction (`durable`: synchronous FULL), then confirms it. On
   * failure every participant it stamped is unstamped and touched again, and the error is thrown: the next
   * cut writes it all under a new number.
   */
  write(batch: FrozenBatch, durable = true): void {
    if (batch !== this.outstanding) throw new Error(`commit ${batch.version} is not the outstanding cut`);
    try {
      this.table.apply(batch.changes, durable);
    } catch (err) {
      this.outstanding = null;
      this.undo(batch.version, batch.participants);
      throw err instanceof FsError ? err : new FsError('EIO', `writing commit ${batch.version}: ${(err as Error).message}`);
    }
    this.outstanding = null;
    for (const p of batch.participants) p.confirm(batch.version);
  }

  /** Drops a cut that will not be written (the blobs it needs could not be made durable). */
  abandon(batch: FrozenBatch): void {
    if (batch !== this.outstanding) throw new Error(`commit ${batch.version} is not the outstanding cut`);
    this.outstanding = null;
    this.undo(batch.version, batch.participants);
  }

  private undo(version: number, stamped: readonly CommitParticipant[]): void {
    for (const p of stamped) {
      p.unstamp(version);
      this.touch(p);
    }
  }
}
