// The group commit: when a vault's changes become durable.
//
// Transactions stage their changes in order (RecordStore). A commit cuts off everything staged so far,
// makes every blob stored so far durable (the cut can only point to those), writes the cut to SQLite in
// one durable transaction, and only then lets the blobs it superseded be deleted. So after any crash the
// vault is as it was after some prefix of its changes: a file at one of its closes, never torn, never
// pointing to a missing piece, and a rename never without the write before it.
//
// When: `windowMs` after the first change of a batch (`-o commit=SECONDS`, as ext4's option), at once
// when a batch grows past BATCH_MAX, and whenever someone waits for durability (fsync, a directory's
// fsync, unmount, `-o sync`). Commits run one at a time; callers that arrive during one share the next.

import { BATCH_MAX } from '../meta/record-store.js';
import { crashpoint } from '../util/crashpoints.js';
import type { OpStats } from '../util/op-stats.js';

/** The default window: a crash loses at most the changes of about the last second. */
export const DEFAULT_COMMIT_MS = 1000;

/**
 * What the committer commits: a metadata store that stages changes in order and writes them in cuts
 * (format 1's RecordStore; format 2's Metadata2.commitSource()).
 */
export interface CommitSource {
  /** Set by the committer: told after each staged change how many changes wait. */
  onStaged: (count: number) => void;
  /** Whether changes wait to be written (staged, or cut off by a commit that has not finished). */
  readonly pending: boolean;
  /** Cuts off everything staged so far: the next writeCut() writes exactly that. */
  cut(): void;
  /** Writes the cut in one durable transaction; gives back what waited for it, for the caller to run. */
  writeCut(): (() => void)[];
}

export class Committer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private closed = false;
  /** After a background commit failed, no early commit until then (a full disk would fail each one). */
  private quietUntil = 0;

  constructor(
    private readonly records: CommitSource,
    /** Makes every blob stored so far durable. */
    private readonly makeBlobsDurable: () => Promise<void>,
    private readonly windowMs: number,
    /** Told when a commit nobody waits for fails (it is retried after another window). */
    private readonly onBackgroundError: (err: unknown) => void,
    /** `bg.commit` for the commits nobody waits for (outside any FUSE handler), `meta.commit` for the others. */
    private readonly stats?: OpStats,
  ) {
    records.onStaged = (count) => this.changed(count);
  }

  /** A transaction was staged: commit within the window, or now when the batch is large. */
  private changed(count: number): void {
    if (this.closed) return;
    if (count >= BATCH_MAX && Date.now() >= this.quietUntil) this.inBackground();
    else this.arm();
  }

  private arm(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.inBackground();
    }, this.windowMs);
    this.timer.unref(); // a vault used in-process (tools, tests) commits at close; nothing waits on the timer
  }

  private inBackground(): void {
    if (this.next) return; // a commit is queued after the running one: it takes these changes too
    this.commit(true).catch((err: unknown) => {
      this.onBackgroundError(err);
      this.quietUntil = Date.now() + this.windowMs;
      if (this.records.pending) this.arm();
    });
  }

  /** Makes every change staged before this call durable. Concurrent callers share commits. */
  commit(background = false): Promise<void> {
    if (!this.running) {
      this.running = this.once(background).finally(() => (this.running = null));
      return this.running;
    }
    // A commit is running, and may have cut before this caller's changes: wait for it, then run another.
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = null;
        return this.commit();
      });
    return this.next;
  }

  private async once(background: boolean): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.records.pending) return;
    const t = process.hrtime.bigint();
    this.records.cut();
    await this.makeBlobsDurable();
    crashpoint('meta.commit');
    const after = this.records.writeCut();
    crashpoint('meta.committed');
    for (const fn of after) fn(); // deletions of superseded blobs, now that nothing durable points to them
    this.stats?.record(background ? 'bg.commit' : 'meta.commit', t, 0);
  }

  /** Stops the timer; commit() still works (the vault's close commits what is left). */
  stop(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
