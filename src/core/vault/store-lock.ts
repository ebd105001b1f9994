// One process at a time per store: a lock file holding the owner's pid. A lock left by a dead process
// (kill -9) is taken over; one held by a live process is refused. The lock is created exclusively and
// read without following links (StoreDir), so a link planted at svault.lock is refused, not written through.

import { accessSync, constants as fsConstants } from 'node:fs';
import { BadStoreError, StoreLockedError } from '../errors.js';
import { StoreDir } from '../os/store-dir.js';
import { processAlive } from '../util/process-alive.js';

export const LOCK_FILE = 'svault.lock';
const MAX_LOCK_BYTES = 64;

export function lockHolder(store: string): number | null {
  try {
    return StoreDir.using(store, holderIn);
  } catch {
    return null;
  }
}

function holderIn(dir: StoreDir): number | null {
  const text = dir.readFile(LOCK_FILE, MAX_LOCK_BYTES)?.toString('utf8');
  if (text === undefined) return null;
  const pid = Number.parseInt(text, 10);
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : null;
}

/**
 * Refuses a store this process cannot write (a read-only mount, no permission): BadStoreError (exit 4). Even
 * reading needs the lock file and the metadata database's journal, so this is asked before either, instead
 * of failing later with a bare EROFS or EACCES.
 */
export function requireWritableStore(store: string): void {
  try {
    accessSync(store, fsConstants.W_OK);
  } catch (err) {
    throw new BadStoreError(store, `the store is not writable (${(err as NodeJS.ErrnoException).code}); svault needs write access to its store, even to read`);
  }
}

/** Takes the store's lock. `stale` says a dead process held it: that process did not shut down cleanly. */
export function acquireStoreLock(store: string): { release: () => void; stale: boolean } {
  const dir = StoreDir.open(store);
  let stale = false;
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        dir.createFile(LOCK_FILE, String(process.pid));
        let released = false;
        const releaseOnce = () => {
          if (!released) release(dir);
          released = true;
        };
        return { release: releaseOnce, stale };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const st = dir.stat(LOCK_FILE);
        if (st && !st.isFile()) throw new BadStoreError(store, `${LOCK_FILE} is not a regular file; remove it if no svault uses this store`);
        const holder = holderIn(dir);
        if (holder !== null && holder !== process.pid) throw new StoreLockedError(store, holder);
        dir.remove(LOCK_FILE); // stale: its process is gone
        stale = true;
      }
    }
  } catch (err) {
    dir.close();
    throw err;
  }
  dir.close();
  throw new Error(`could not take the lock ${store}/${LOCK_FILE}`);
}

function release(dir: StoreDir): void {
  try {
    if (dir.readFile(LOCK_FILE, MAX_LOCK_BYTES)?.toString('utf8') === String(process.pid)) {
      dir.remove(LOCK_FILE);
      dir.sync(); // a clean release stays released after a power cut: no crash to recover from at the next open
    }
  } catch {
    /* already gone, or not ours */
  } finally {
    dir.close();
  }
}
