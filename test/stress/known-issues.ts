// Deterministic reproductions of the problems the stress harnesses found (see the report of issue 7).
// Each returns what it observed; the tests and `npm run stress` check that it no longer happens (1 to 4
// are fixed; 5 is open and only reported). None of them needs timing luck. They follow the crash
// guarantee of issue 21 (README, crash safety): fsync is durable; a close or a metadata change is
// committed in order within the commit window (-o commit=SECONDS, default 1 s), or before it returns
// under -o sync.

import { readFileSync } from 'node:fs';
import { StressBox } from './box.js';
import { COMMIT_MARGIN_MS, DEFAULT_COMMIT_SECONDS } from './crash-loop.js';
import type { GenOp } from './gen.js';
import { MC_DEFAULTS, runOnce, type McRun } from './model-check.js';
import { sleep } from './util.js';
import { Worker } from './worker-client.js';
import type { BindingName } from '../../fs/bindings.js';

/**
 * 1. A file unlinked while it is open is still listed, as .fuse_hidden<n>, in its directory until its
 * last close. Found by the model checker (seed 11, 3000 ops, --strict-hidden); shrunk to these ops.
 * Cause: libfuse's high-level API renames an open file instead of unlinking it unless the mount has
 * hard_remove. Fixed by fs/hidden-files.ts: the adapter turns that rename into an unlink of the open file.
 */
export const HIDDEN_IN_LISTING: GenOp[] = [
  { op: 'mkdir', p: 'd', g: 0, w: 0 },
  { op: 'write', p: 'd/f', off: 0, len: 7876, tag: 'known-1', mode: 'trunc', g: 1, w: 0 },
  { op: 'session', p: 'd/f', acts: [['rm', 'd/f'], ['ls', 'd'], ['w', 7876, 138, 'known-1b']], g: 2, w: 0 },
];

export async function hiddenInListing(): Promise<McRun> {
  return runOnce(HIDDEN_IN_LISTING, { ...MC_DEFAULTS, seed: 0, workers: 1, allowFuseHidden: false, shrink: false, log: () => undefined }, false);
}

/** Runs fn on a fresh mounted vault with one worker at the mount's root; always cleans up. */
async function withVault<T>(fn: (box: StressBox, w: Worker) => Promise<T>, mountOptions: readonly string[] = []): Promise<T> {
  const box = new StressBox('known', { mountOptions });
  const w = new Worker(box.mnt);
  try {
    await box.init(['--chaff', '0']);
    await box.mount();
    return await fn(box, w);
  } finally {
    await w.close();
    await box.cleanup();
  }
}

/**
 * 2. The same after a crash: a file unlinked while open, with the unlink made durable (fsync of the
 * directory), comes back after kill -9 as .fuse_hidden<n> with its content: the unlink is lost and the
 * file and its blobs stay in the vault for good. Found by the crash loop (--strict).
 */
export async function unlinkedOpenAfterCrash(): Promise<{ names: string[] }> {
  return withVault(async (box, w) => {
    const mk = await w.call({ op: 'steps', calls: [['open', 0, 'f', 'wronly|creat|excl'], ['pwrite', 0, 0, 5000, 'known-2'], ['close', 0]] });
    if (!mk.ok) throw new Error(`setup: ${mk.err} ${mk.msg}`);
    // Open, unlink, make the unlink durable, then hold the handle open while the server is killed.
    let killed: Promise<void> | null = null;
    const calls = [['open', 0, 'f', 'rdwr'], ['unlink', 'f'], ['fsyncdir', '.'], ['sleep', 3]];
    await w.call({ op: 'steps', calls }, (k) => {
      if (k === 3) killed = box.killServer();
    });
    if (!killed) throw new Error('the unlink or the fsync of the directory failed');
    await killed;
    await box.mount();
    const l = await w.call({ op: 'listdir', p: '' });
    if (!l.ok) throw new Error(`listdir: ${l.err} ${l.msg}`);
    await box.unmount();
    return { names: l.names as string[] };
  });
}

/**
 * 3. A file created and closed without data was lost by a crash right after the close returned: close
 * committed only a file with changes, and the create waited in the group commit. Found by the crash loop
 * (--strict). Under issue 21's guarantee a close need not be durable at once, so the reproduction
 * checks what is promised now: with -o sync (`sync`), the create and the close are durable when they
 * return, and the crash comes right after the close; without it, the crash comes once the close's reply
 * is more than commit + 1 s old (`commit`: the mount's commit= option, svault's default when absent),
 * by which time the create must have been committed.
 */
export async function touchLostByCrash(o: { sync?: boolean; commit?: number } = {}): Promise<{ names: string[]; waitedMs: number }> {
  const options = [...(o.sync ? ['sync'] : []), ...(o.commit !== undefined ? [`commit=${o.commit}`] : [])];
  const boundMs = (o.commit ?? DEFAULT_COMMIT_SECONDS) * 1000 + COMMIT_MARGIN_MS;
  return withVault(async (box, w) => {
    let closedAt = 0;
    const r = await w.call({ op: 'steps', calls: [['open', 0, 'empty', 'wronly|creat|excl'], ['close', 0]] }, (k) => {
      if (k === 2) closedAt = performance.now();
    });
    if (!r.ok) throw new Error(`create: ${r.err} ${r.msg}`);
    if (!o.sync) {
      // The reply arrived at closedAt at the latest: wait until it is surely older than the bound.
      while (performance.now() - closedAt <= boundMs + 50) await sleep(boundMs + 50 - (performance.now() - closedAt) + 1);
    }
    const waitedMs = Math.round(performance.now() - closedAt);
    await box.killServer();
    await box.mount();
    const l = await w.call({ op: 'listdir', p: '' });
    if (!l.ok) throw new Error(`listdir: ${l.err} ${l.msg}`);
    await box.unmount();
    return { names: l.names as string[], waitedMs };
  }, options);
}

/**
 * 4. Orphans of a crash stay when a plain `svault fsck` (no --repair) looks at the crashed store first:
 * fsck takes over the dead server's lock and releases it cleanly, so the next mount does not know there
 * was a crash and does not sweep (README: orphans are swept before the next mount serves anything).
 * Found by the crash loop (the final fsck after a clean unmount still found orphans).
 *
 * The server dies inside a group commit (crash point meta.commit: its blobs are durable, its metadata is
 * not written), so the file's pieces are orphans. The commit is the one an fsync of the file asks for;
 * the commit window is set long (commit=30) so that no timed commit of the create comes first and takes
 * the crash point instead.
 */
export async function orphansAfterPlainFsck(): Promise<{ foundAfterCrash: number; sweptByMount: boolean; leftAfterUnmount: number; fsckExit: number }> {
  const box = new StressBox('known', { mountOptions: ['commit=30'] });
  const w = new Worker(box.mnt);
  try {
    await box.init(['--chaff', '0', '--piece-size', '4096']);
    await box.mount({ SVAULT_CRASH_AT: 'meta.commit:1' });
    const r = await w.call({ op: 'steps', calls: [['open', 0, 'f', 'wronly|creat|excl'], ['pwrite', 0, 0, 40000, 'known-4'], ['fsync', 0], ['close', 0]] });
    if (r.ok || r.step !== 2) throw new Error(`the fsync did not end in the crash: ${r.ok ? 'every call returned' : `${r.err} ${r.msg} after ${r.step} calls`}${box.logTail()}`);
    if (!(await box.waitServerGone(10_000))) throw new Error(`the server did not die at meta.commit:1${box.logTail()}`);
    const first = await box.fsck(false);
    await box.mount();
    const log = box.currentLog();
    const sweptByMount = log ? /orphaned blob/.test(readFileSync(log, 'utf8')) : false;
    await box.unmount();
    const again = await box.fsck(false);
    return { foundAfterCrash: first.json?.before.orphans ?? -1, sweptByMount, leftAfterUnmount: again.json?.before.orphans ?? -1, fsckExit: again.code };
  } finally {
    await w.close();
    await box.cleanup();
  }
}

/**
 * 5. OPEN with --binding fuse-native (svault's own transport, the default, has one node per inode and
 * does not show it). rename(2) of one name of a file onto another name of the same file must do nothing (POSIX):
 * both names stay. When the target name is open, svault loses the source name instead. Found by the
 * model checker (`npm run stress -- --seed 9`, 8000 ops, piece size 131072); this is the same case,
 * written by hand. Cause: libfuse 2's high-level API gives each name its own node, so the kernel does
 * not see one file; libfuse hides the open target first (a rename to .fuse_hidden, which
 * fs/hidden-files.ts turns into an unlink) and then renames the source onto the free name. The adapter
 * cannot tell that hide from the one of a plain unlink of an open file followed by the same rename, where
 * the source name must go. Not fixed: README, Known limitations.
 */
export const RENAME_ONTO_OPEN_LINK: GenOp[] = [
  { op: 'write', p: 'f', off: 0, len: 300, tag: 'known-5', mode: 'trunc', g: 0, w: 0 },
  { op: 'link', p: 'f', to: 'g', g: 1, w: 0 },
  { op: 'session', p: 'f', acts: [['mv', 'g', 'f'], ['ls', '']], g: 2, w: 0 },
  { op: 'stat', p: 'g', g: 3, w: 0 },
];

export async function renameOntoOpenLink(binding: BindingName): Promise<McRun> {
  const before = process.env.SVAULT_BINDING;
  process.env.SVAULT_BINDING = binding; // the boxes take their environment from this process
  try {
    return await runOnce(RENAME_ONTO_OPEN_LINK, { ...MC_DEFAULTS, seed: 0, workers: 1, shrink: false, log: () => undefined }, false);
  } finally {
    if (before === undefined) delete process.env.SVAULT_BINDING;
    else process.env.SVAULT_BINDING = before;
  }
}
