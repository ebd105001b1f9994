// svault.reserve (both formats; docs/format-2.md section 2): 1 MiB of zeroes kept in the store for the day
// its disk fills up. Freeing space needs a metadata commit first (the blobs of a removed file go only once
// its removal is committed), so when that commit finds the disk full, the reserve is given back and the
// commit tried once more. Batches that only add keep failing: the reserve is not for new data.

import { statfsSync } from 'node:fs';
import type { StoreDir } from '../os/store-dir.js';

export const RESERVE_FILE = 'svault.reserve';
const RESERVE_BYTES = 1024 * 1024;

/** Whether a failed SQLite write failed because the disk is full. */
export function isDiskFull(err: unknown): boolean {
  return err instanceof Error && /SQLITE_FULL|disk is full/i.test(`${(err as { code?: string }).code ?? ''} ${err.message}`);
}

export class SpaceReserve {
  /** Whether the reserve may be missing: checked at the first commit and after a release only, not at every one. */
  private maybeMissing = true;

  /** `dir`: the store directory, held open by the caller: the reserve is reached through it, never by path. */
  constructor(private readonly dir: StoreDir) {}

  /** Deletes the reserve; false if there was none. */
  release(): boolean {
    this.maybeMissing = true;
    try {
      return this.dir.remove(RESERVE_FILE);
    } catch {
      return false;
    }
  }

  /**
   * Recreates the reserve when it is missing, short (a power cut can leave it empty) or not a regular
   * file, and the disk has plenty of room again. It is written durably, so what it holds survives a power
   * cut as the space it stands for.
   */
  restoreIfRoom(): void {
    if (!this.maybeMissing) return;
    const st = this.dir.stat(RESERVE_FILE);
    if (st?.isFile() && st.size >= RESERVE_BYTES) {
      this.maybeMissing = false;
      return;
    }
    try {
      const fs = statfsSync(this.dir.viaDescriptor());
      if (fs.bavail * fs.bsize < 2 * RESERVE_BYTES) return;
      this.dir.writeFileAtomic(RESERVE_FILE, Buffer.alloc(RESERVE_BYTES)); // fsynced, and its name too
      this.maybeMissing = false;
    } catch {
      /* no room or no permission: try again at a later commit */
    }
  }

  /**
   * Runs `write` (one SQLite transaction, all or nothing). When the disk is full and `frees` (the batch
   * removes records), gives the reserve back and runs it once more. Afterwards the reserve is restored
   * when there is room again.
   */
  write<T>(write: () => T, frees: () => boolean): T {
    let result: T;
    try {
      result = write();
    } catch (err) {
      if (!isDiskFull(err) || !frees() || !this.release()) throw err;
      result = write();
    }
    this.restoreIfRoom();
    return result;
  }
}
