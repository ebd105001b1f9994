// One process at a time per store: a lock file holding the owner's pid. A lock left by a dead process
// (kill -9) is taken over; one held by a live process is refused.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { StoreLockedError } from '../errors.js';
import { processAlive } from '../util/process-alive.js';

export const LOCK_FILE = 'svault.lock';

export function lockHolder(store: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(join(store, LOCK_FILE), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Takes the store's lock. `stale` says a dead process held it: that process did not shut down cleanly. */
export function acquireStoreLock(store: string): { release: () => void; stale: boolean } {
  const path = join(store, LOCK_FILE);
  let stale = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      const release = () => {
        try {
          if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
        } catch {
          /* already gone */
        }
      };
      return { release, stale };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = lockHolder(store);
      if (holder !== null && holder !== process.pid) throw new StoreLockedError(store, holder);
      unlinkSync(path); // stale: its process is gone
      stale = true;
    }
  }
  throw new Error(`could not take the lock ${path}`);
}
