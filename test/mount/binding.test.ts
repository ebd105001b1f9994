// End-to-end test of the patched fuse-native binding (scripts/build-fuse-binding.mjs)
// and fs/fuse-binding.ts. The filesystem runs in a child process
// (test/helpers/memfs-mount.ts); this process only drives it with shell
// commands, asynchronously, as a process must never touch its own mount.
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  DEFAULT_MOUNT_OPTIONS,
  isMounted,
  isStaleMount,
  joinMountOptions,
  lazyUnmount,
  mountEntries,
  UTIME_OMIT,
} from '../../fs/fuse-binding.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const helper = path.join(root, 'test', 'helpers', 'memfs-mount.ts');
const READY_TIMEOUT_MS = 20_000;

/** Every mountpoint used, checked once more after all tests. */
const mountpoints: string[] = [];

type LogEntry =
  | { op: 'create'; path: string; mode: number; flags: number; uid: number; gid: number }
  | { op: 'mkdir'; path: string; mode: number; uid: number; gid: number }
  | { op: 'mknod'; path: string; mode: number; dev: number; uid: number; gid: number }
  | { op: 'symlink'; target: string; path: string; uid: number; gid: number }
  | { op: 'write'; path: string; length: number; position: number }
  | { op: 'utimens'; path: string; atime: number; mtime: number };

interface Memfs {
  dir: string;
  mnt: string;
  /** Runs a command inside the mount with TZ=UTC. */
  sh(cmd: string, ...args: string[]): Promise<string>;
  readLog(): Promise<LogEntry[]>;
  /** Graceful stop (SIGTERM: the helper unmounts); resolves to its exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: no unmount, so the mount goes stale. */
  crash(): Promise<void>;
}

interface MemfsOptions {
  /** Mount with allow_other,default_permissions, and let other users reach the mountpoint. */
  allowOther?: boolean;
}

/** Starts the helper and waits for READY. Teardown always unmounts, kills the child and cleans up. */
async function startMemfs(t: ExecutionContext, opts: MemfsOptions = {}): Promise<Memfs> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'svault-binding-'));
  const mnt = path.join(dir, 'mnt');
  const logFile = path.join(dir, 'ops.jsonl');
  await mkdir(mnt);
  if (opts.allowOther) await chmod(dir, 0o711); // mkdtemp makes it 0700
  mountpoints.push(mnt);

  // The helper unmounts when its stdin closes, i.e. also if this process dies.
  const args = [helper, mnt, logFile, '--watch-stdin', ...(opts.allowOther ? ['--allow-other'] : [])];
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;

  t.teardown(async () => {
    lazyUnmount(mnt); // fine here: this process does not serve the mount
    if (alive()) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    // Never recurse into a mount that is somehow still there.
    if (!isMounted(mnt)) await rm(dir, { recursive: true, force: true });
  });

  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`memfs not READY after ${READY_TIMEOUT_MS} ms:\n${output}`)), READY_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/^READY$/m.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`memfs exited with ${code} before READY:\n${output}`));
    });
  });

  return {
    dir,
    mnt,
    async sh(cmd, ...args) {
      const { stdout } = await run(cmd, args, { cwd: mnt, env: { ...process.env, TZ: 'UTC' } });
      return stdout;
    },
    async readLog() {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as LogEntry);
    },
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    async crash() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const ofKind =
  <K extends LogEntry['op']>(op: K) =>
  (e: LogEntry): e is Extract<LogEntry, { op: K }> =>
    e.op === op;

const seconds = (utc: string): number => Date.parse(`${utc}Z`) / 1000;

test('the binding\'s malloc_trim gives freed heap memory back to the system', async (t) => {
  const child = path.join(root, 'test', 'helpers', 'malloc-trim-child.ts');
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', child], { cwd: root });
  const r = JSON.parse(stdout) as { before: number; after: number; released: boolean };
  const MiB = 1024 * 1024;
  t.true(r.released);
  // 100 MiB of 64 KiB buffers were freed between buffers still in use: without the trim they stay resident.
  t.true(r.before - r.after >= 50 * MiB, `RSS ${(r.before / MiB).toFixed(0)} -> ${(r.after / MiB).toFixed(0)} MiB`);
});

test('joinMountOptions: later keys win, bad options are refused', (t) => {
  t.is(joinMountOptions(DEFAULT_MOUNT_OPTIONS), '-obig_writes,max_write=131072,max_read=131072');
  t.is(
    joinMountOptions(DEFAULT_MOUNT_OPTIONS, ['max_read=65536', 'attr_timeout=0'], ['ro']),
    '-obig_writes,max_write=131072,max_read=65536,attr_timeout=0,ro',
  );
  t.is(joinMountOptions([], []), '');
  t.throws(() => joinMountOptions(['a,b']), { instanceOf: RangeError });
  t.throws(() => joinMountOptions(['']), { instanceOf: RangeError });
  t.throws(() => joinMountOptions([`fsname=${'x'.repeat(1100)}`]), { instanceOf: RangeError });
});

test.serial('utimens gets atime and mtime; UTIME_NOW is now, UTIME_OMIT is skipped', async (t) => {
  const memfs = await startMemfs(t);
  const times = async (): Promise<[number, number]> => {
    const [atime, mtime] = (await memfs.sh('stat', '-c', '%X %Y', 'f')).trim().split(' ').map(Number);
    return [atime ?? NaN, mtime ?? NaN];
  };
  const nearNow = (s: number): boolean => Math.abs(s - Date.now() / 1000) < 30;

  // Plain touch of a new file: create, then utimens(UTIME_NOW, UTIME_NOW).
  await memfs.sh('touch', 'f');
  const [a0, m0] = await times();
  t.true(nearNow(a0) && nearNow(m0), `plain touch gave ${a0} ${m0}, expected about ${Date.now() / 1000}`);

  // touch -m: mtime set, atime UTIME_OMIT (unchanged).
  await memfs.sh('touch', '-m', '-d', '2001-02-03 04:05:06', 'f');
  t.deepEqual(await times(), [a0, seconds('2001-02-03T04:05:06')]);

  // touch -a: atime set, mtime UTIME_OMIT (keeps the value above).
  await memfs.sh('touch', '-a', '-d', '2002-03-04 05:06:07', 'f');
  t.deepEqual(await times(), [seconds('2002-03-04T05:06:07'), seconds('2001-02-03T04:05:06')]);

  // Both, to different values, and before 1970 (negative times round-trip).
  await memfs.sh('touch', '-d', '1960-01-01 00:00:00', 'f');
  t.deepEqual(await times(), [seconds('1960-01-01T00:00:00'), seconds('1960-01-01T00:00:00')]);

  // Plain touch of an existing file: both now again (not 1970).
  await memfs.sh('touch', 'f');
  const [a4, m4] = await times();
  t.true(nearNow(a4) && nearNow(m4), `plain touch gave ${a4} ${m4}`);

  // What the JS handler received: ms since the epoch, -1 for UTIME_OMIT.
  const log = await memfs.readLog();
  const calls = log.filter(ofKind('utimens')).map((e) => [e.atime, e.mtime]);
  t.is(calls.length, 5);
  t.deepEqual(calls.slice(1, 4), [
    [UTIME_OMIT, Date.UTC(2001, 1, 3, 4, 5, 6)],
    [Date.UTC(2002, 2, 4, 5, 6, 7), UTIME_OMIT],
    [Date.UTC(1960, 0, 1), Date.UTC(1960, 0, 1)],
  ]);
  for (const [atime, mtime] of [calls[0] ?? [], calls[4] ?? []]) {
    t.is(atime, mtime, 'UTIME_NOW resolves both times to the same instant');
    t.true(nearNow((atime ?? 0) / 1000));
  }

  // create now receives the open flags (touch opens O_WRONLY|O_CREAT).
  const createFlags = log.find(ofKind('create'))?.flags ?? 0;
  t.is(createFlags & 3, constants.O_WRONLY);
  t.is(createFlags & constants.O_CREAT, constants.O_CREAT);

  t.is(await memfs.stop(), 0);
  t.false(isMounted(memfs.mnt));
});

test.serial('a 1 MiB write arrives as 8 writes of 128 KiB and reads back intact', async (t) => {
  const memfs = await startMemfs(t);
  const entry = mountEntries(memfs.mnt)[0];
  t.is(entry?.fstype, 'fuse');
  t.is(entry?.source, 'svault-test-memfs');
  t.regex(entry?.options ?? '', /(^|,)max_read=131072(,|$)/);
  t.false(isStaleMount(memfs.mnt)); // safe: the mount is served by the child

  const src = path.join(memfs.dir, 'src.bin');
  await writeFile(src, randomBytes(1 << 20));
  // One write(2) of 1 MiB; without big_writes the kernel would split it into 4 KiB.
  await memfs.sh('dd', `if=${src}`, 'of=big', 'bs=1M', 'count=1', 'status=none');
  await memfs.sh('cmp', src, 'big');

  const sizes = (await memfs.readLog())
    .filter(ofKind('write'))
    .filter((e) => e.path === '/big')
    .map((e) => e.length);
  t.log(`write sizes: ${sizes.join(', ')}`);
  t.is(Math.max(...sizes), 128 * 1024);
  t.deepEqual(sizes, Array<number>(8).fill(128 * 1024));

  t.is(await memfs.stop(), 0);
  t.false(isMounted(memfs.mnt));
});

// Another user, by number: nobody, with a gid different from the uid so
// that a swapped uid/gid shows. setpriv is in util-linux (Debian: essential).
const OTHER_UID = 65534;
const OTHER_GID = 65533;
const S_IFMT = 0o170000;
const asRoot = process.getuid?.() === 0 ? test.serial : test.serial.skip;

asRoot('create, mkdir, mknod and symlink get the calling user (allow_other)', async (t) => {
  const memfs = await startMemfs(t, { allowOther: true });
  t.regex(mountEntries(memfs.mnt)[0]?.options ?? '', /(^|,)allow_other(,|$)/);
  const me = `${process.getuid?.()}:${process.getgid?.()}`;

  // A world-writable directory, made by root (this process's user).
  await memfs.sh('mkdir', 'pub');
  await memfs.sh('chmod', '1777', 'pub');

  // Relative paths: the command runs in the mount (cwd), as the other user.
  const asOther = (cmd: string, ...args: string[]): Promise<string> =>
    memfs.sh('setpriv', `--reuid=${OTHER_UID}`, `--regid=${OTHER_GID}`, '--clear-groups', cmd, ...args);
  await asOther('touch', 'pub/f'); // create
  await asOther('mkdir', 'pub/d'); // mkdir
  await asOther('mkfifo', 'pub/p'); // mknod (not a regular file, so not routed to create)
  await asOther('ln', '-s', 'f', 'pub/l'); // symlink
  // The kernel believes getattr (default_permissions): the other user owns f.
  await asOther('sh', '-c', 'echo hi > pub/f');
  t.is(await asOther('cat', 'pub/l'), 'hi\n');

  const other = `${OTHER_UID}:${OTHER_GID}`;
  t.is(
    await memfs.sh('stat', '-c', '%n %u:%g %F', 'pub', 'pub/f', 'pub/d', 'pub/p', 'pub/l'),
    [
      `pub ${me} directory`,
      `pub/f ${other} regular file`,
      `pub/d ${other} directory`,
      `pub/p ${other} fifo`,
      `pub/l ${other} symbolic link`,
      '',
    ].join('\n'),
  );

  // What the handlers received: the caller's uid and gid after the callback.
  const [uid, gid] = [process.getuid?.(), process.getgid?.()];
  const made = (await memfs.readLog())
    .filter((e) => e.op === 'create' || e.op === 'mkdir' || e.op === 'mknod' || e.op === 'symlink')
    .map((e) => ({ op: e.op, path: e.path, uid: e.uid, gid: e.gid }));
  t.deepEqual(made, [
    { op: 'mkdir', path: '/pub', uid, gid },
    { op: 'create', path: '/pub/f', uid: OTHER_UID, gid: OTHER_GID },
    { op: 'mkdir', path: '/pub/d', uid: OTHER_UID, gid: OTHER_GID },
    { op: 'mknod', path: '/pub/p', uid: OTHER_UID, gid: OTHER_GID },
    { op: 'symlink', path: '/pub/l', uid: OTHER_UID, gid: OTHER_GID },
  ]);
  const log = await memfs.readLog();
  t.is(log.find(ofKind('symlink'))?.target, 'f');
  t.is((log.find(ofKind('mknod'))?.mode ?? 0) & S_IFMT, 0o010000, 'mknod gets the file type (S_IFIFO)');
  t.is((log.find(ofKind('mkdir'))?.mode ?? -1) & S_IFMT, 0, 'mkdir gets permission bits only');

  t.is(await memfs.stop(), 0);
  t.false(isMounted(memfs.mnt));
});

test.serial('a crashed server leaves a stale mount that lazyUnmount clears', async (t) => {
  const memfs = await startMemfs(t);
  await memfs.crash();
  t.true(isMounted(memfs.mnt));
  t.true(isStaleMount(memfs.mnt)); // "Transport endpoint is not connected"
  t.true(lazyUnmount(memfs.mnt));
  t.false(isMounted(memfs.mnt));
  t.false(isStaleMount(memfs.mnt));
  t.false(lazyUnmount(memfs.mnt), 'nothing left to unmount');
});

test.after.always('nothing is left mounted', () => {
  const left = mountpoints.filter((m) => isMounted(m));
  if (left.length) throw new Error(`still mounted: ${left.join(', ')}`);
});
