// svault's own conformance test (issue 25): every file type × every operation × (owner, another user
// through allow_other, root), run with real system calls from one process per user, against a native
// directory (ext4 under /var/tmp) and against a mount with `-o allow_other,default_permissions,dev`, in the
// same run, on each binding. Any cell whose result differs is a failure unless KNOWN_DIFFERENCES lists
// it with its reason, and that list is exact: every cell it lists must still differ, so a difference
// that went away has to be taken off it. Each entry quotes the README's "Known limitations", which must
// still say it. FIFOs, sockets and device nodes are made and compared like any other type (store format 2
// holds them; format 1 could not, and this list waived them until format 2).

import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { BINDINGS, type BindingName } from '../../fs/bindings.js';
import { run } from '../helpers/cli.js';
import { checkNothingLeftMounted, emptyBox, unmountAndCheck } from '../helpers/mount-util.js';
import {
  closeWorkers, conformanceCells, differences, explain, runMatrix, SPECIAL_TYPES, startWorkers, type Cell, type Workers,
} from '../helpers/conformance.js';

checkNothingLeftMounted(test);

interface KnownDifference {
  /** The cells it covers: their keys (see conformance.ts), or a rule. Every one of them must differ. */
  cells: readonly string[] | ((cell: Cell) => boolean);
  reason: string;
  /** Words of the README's "Known limitations" that document it. */
  readme: string;
  /** Only on this binding (default: both). */
  binding?: BindingName;
  /**
   * It lasts a moment (a cache's timeout), so a slow machine may miss it in some cells: at least one of
   * its cells must differ, not each.
   */
  transient?: boolean;
}

/** Every type that is not a directory: what a hard link, a chown of a file or a write applies to. */
const NON_DIRS = ['file', 'symlink', ...SPECIAL_TYPES];

/** Every key of group × type × operation × user. */
function keys(groups: readonly string[], types: readonly string[], ops: readonly string[], users: readonly string[]): string[] {
  return groups.flatMap((g) => types.flatMap((t) => ops.flatMap((o) => users.map((u) => `${g}/${t}/${o}/${u}`))));
}

const KNOWN_DIFFERENCES: KnownDifference[] = [
  {
    cells: keys(['suid6777', 'suid2767'], NON_DIRS, ['chown-keep'], ['other']),
    reason:
      'chown(f, -1, -1) by a user who may write a setuid or setgid file but does not own it: the kernel sends the same empty ' +
      'SETATTR as before that user\'s write, so svault clears the bits as the write would, where Linux answers EPERM',
    readme: '`chown(f, -1, -1)`, a chown that changes neither owner nor group',
    binding: 'devfuse',
  },
  {
    cells: [
      ...keys(['plain', 'sticky'], NON_DIRS, ['link'], ['owner', 'root']),
      ...keys(['hardlink'], ['file'], ['chmod', 'unlink', 'write', 'truncate', 'rename-over', 'rename-away', 'link', 'utime'], ['owner', 'root']),
      ...keys(['hardlink'], ['symlink'], ['unlink', 'rename-over', 'rename-away', 'link', 'utime'], ['owner', 'root']),
      ...keys(['hardlink'], SPECIAL_TYPES, ['chmod', 'unlink', 'rename-over', 'rename-away', 'link', 'utime'], ['owner', 'root']),
      ...keys(['hardlink'], NON_DIRS, ['lchown'], ['root']),
    ],
    reason: 'libfuse 2 makes each name of a hard-linked file its own kernel node, whose attributes are cached for a second',
    readme: 'the kernel caches attributes for one second, per name',
    binding: 'fuse-native',
    transient: true,
  },
  {
    cells: keys(['suid2767'], ['file', 'symlink'], ['write', 'truncate', 'ftruncate', 'open-trunc'], ['other']),
    reason: 'without FUSE_HANDLE_KILLPRIV_V2 (libfuse 2 cannot ask for it) the kernel clears setgid on a write only when it is group-executable',
    readme: 'setgid bit that is not group-executable',
    binding: 'fuse-native',
  },
  {
    cells: [
      ...keys(['suid2767'], NON_DIRS, ['chown-keep'], ['owner', 'other', 'root']),
      ...keys(['suid6777', 'suid2767', 'suid6755'], ['dir'], ['chown-keep'], ['owner', 'other', 'root']),
    ],
    reason: 'chown(f, -1, -1) reaches libfuse 2 as a SETATTR with nothing to set, which it passes to no handler: ctime stays',
    readme: '`chown(f, -1, -1)` leaves ctime as it was',
    binding: 'fuse-native',
  },
];

const README_LIMITATIONS = ((): string => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## Known limitations');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end).replace(/\s+/g, ' ');
})();

for (const binding of BINDINGS) {
  test(`${binding}: every file type × operation × user gives what the native filesystem gives`, async (t) => {
    const box = emptyBox(t, 'conf', { binding });
    const native = mkdtempSync('/var/tmp/svault-conformance-');
    t.teardown(async () => void (await run('rm', ['-rf', native]))); // rm works below PATH_MAX, whatever the depth
    // Other users must reach both trees.
    chmodSync(box.dir, 0o755);
    chmodSync(native, 0o755);
    const init = await box.svault(['init', '--store', box.store, '--chaff', '0']);
    t.is(init.code, 0, init.stderr);
    // `dev` (root only): the native tree lets the kernel open device nodes, so the mount must too (svault
    // mounts are nodev otherwise), or every open of a device node would differ by the mount option alone.
    const m = await box.mount(['-o', 'allow_other,default_permissions,dev']);
    t.is(m.code, 0, m.stderr);
    chmodSync(box.mnt, 0o755);

    const cells = conformanceCells();
    const workers: Workers[] = [startWorkers(), startWorkers()];
    t.teardown(() => Promise.all(workers.map(closeWorkers)));
    const started = Date.now();
    const [onNative, onSvault] = await Promise.all([runMatrix(native, cells, workers[0] as Workers), runMatrix(box.mnt, cells, workers[1] as Workers)]);
    t.log(`${cells.length} cells on ${binding} and on ext4 in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await Promise.all(workers.map(closeWorkers));

    const diffs = differences(onNative, onSvault);
    const known = KNOWN_DIFFERENCES.filter((k) => !k.binding || k.binding === binding);
    const covers = (k: KnownDifference, c: Cell): boolean => (typeof k.cells === 'function' ? k.cells(c) : k.cells.includes(c.key));
    const unexplained = cells.filter((c) => diffs.has(c.key) && !known.some((k) => covers(k, c)));
    t.deepEqual(unexplained.map((c) => explain(c.key, diffs.get(c.key) as Parameters<typeof explain>[1])), [], 'differences from the native filesystem that no known difference explains');
    for (const k of known) {
      const covered = cells.filter((c) => covers(k, c)).map((c) => c.key);
      t.true(covered.length > 0, `a known difference that covers no cell: ${k.reason}`);
      const gone = covered.filter((key) => !diffs.has(key));
      if (k.transient) t.true(gone.length < covered.length, `a known difference no longer seen in any of its cells (take it off): ${k.reason}`);
      else t.deepEqual(gone, [], `cells that a known difference lists but that no longer differ (take them off): ${k.reason}`);
      t.true(README_LIMITATIONS.includes(k.readme), `README's known limitations must document: ${k.reason} ("${k.readme}")`);
    }
    await unmountAndCheck(t, box);
  });
}
