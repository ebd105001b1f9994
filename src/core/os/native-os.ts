// Loads svault's OS addon (src/core/os/native/, built by scripts/build-os.mjs at install): the system calls
// Node lacks. Unlike the crypto addon it has no fallback: without openat-style calls the store cannot be
// opened safely (issue 22, finding 2), so svault refuses to run rather than follow links in the store.
import { loadAddon } from '../util/load-addon.js';

export interface NativeOs {
  /** openat(2) of one path component, with O_NOFOLLOW | O_CLOEXEC added; a link is ELOOP. */
  openAt(dirfd: number, name: string, flags: number, mode: number): number;
  /** mkdirat(2); an existing name, a link included, is EEXIST. */
  mkdirAt(dirfd: number, name: string, mode: number): void;
  /** unlinkat(2) (AT_REMOVEDIR when isDir); a link is removed, never followed. */
  unlinkAt(dirfd: number, name: string, isDir: boolean): void;
  /** renameat(2) of one component to another. */
  renameAt(fromDirfd: number, from: string, toDirfd: number, to: string): void;
  /** syncfs(2) of fd's filesystem, on a libuv thread. */
  syncfs(fd: number): Promise<void>;
  /** close(2), for descriptors opened by openAt (see at.c). */
  closeFd(fd: number): void;
  /** prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE 0. */
  makeUndumpable(): void;
}

const FUNCTIONS = ['openAt', 'mkdirAt', 'unlinkAt', 'renameAt', 'syncfs', 'closeFd', 'makeUndumpable'] as const;
// From src/core/os/ under tsx, and from dist/src/core/os/ once compiled: the addon is built in the source tree.
const CANDIDATES = ['./native/build/Release/svault_os.node', '../../../../src/core/os/native/build/Release/svault_os.node'];

let loaded: NativeOs | null = null;

/** The addon; throws, saying how to build it, when it is missing or out of date. */
export function nativeOs(): NativeOs {
  if (loaded) return loaded;
  const { addon, failures } = loadAddon<NativeOs>(import.meta.url, CANDIDATES, FUNCTIONS);
  if (!addon) {
    const why = failures.length > 0 ? failures.join('; ') : 'it is not built';
    throw new Error(`svault's OS addon is not available (${why}): run npm install, which runs scripts/build-os.mjs`);
  }
  loaded = addon;
  return addon;
}
