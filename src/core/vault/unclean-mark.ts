// svault.unclean: a crash's leftovers (orphan blobs) are not swept yet. Written when a session that found
// a crash ends before sweeping, removed by the sweep. Reached through the store's descriptor without
// following links (StoreDir): a link planted here must not make svault truncate the file it points to.

import { StoreDir } from '../os/store-dir.js';

export const UNCLEAN_FILE = 'svault.unclean';

/** Whether the mark is there (anything at that name counts: a planted link is no reason to skip a sweep). */
export function hasUncleanMark(storeDir: string): boolean {
  return StoreDir.using(storeDir, (dir) => dir.stat(UNCLEAN_FILE) !== null);
}

export function setUncleanMark(storeDir: string): void {
  StoreDir.using(storeDir, (dir) => {
    if (dir.stat(UNCLEAN_FILE)?.isFile()) return;
    dir.remove(UNCLEAN_FILE); // whatever else is there
    dir.createFile(UNCLEAN_FILE, '');
    dir.sync();
  });
}

export function clearUncleanMark(storeDir: string): void {
  StoreDir.using(storeDir, (dir) => dir.remove(UNCLEAN_FILE));
}
