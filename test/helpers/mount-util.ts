// Helpers shared by the mount-*.test.ts integration tests. They build on test/helpers/cli.ts: every test
// gets its own sandbox (store, mount point, XDG dirs) and drives the mount only through child processes
// (shell tools, python3, the svault CLI), as users would.

import type { ExecutionContext, TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mountedAt, mountedSandbox, sandbox, serverPids, sh, type Sandbox, type SandboxOptions } from './cli.js';
import { processAlive } from '../../src/core/util/process-alive.js';

/** sha256 of bytes in this process, hex (compare with sha() of a file in the mount). */
export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** What `svault status --json` says about a live mount. */
export interface LiveStatus {
  openFiles: number;
  /** Which AES-GCM the server seals and opens with (src/core/crypto/native-aead.ts). */
  aead?: { name: string; reason: string };
  ops: Array<{ op: string; calls: number }>;
  process?: { rssBytes: number; heapTotalBytes: number; heapUsedBytes: number; externalBytes: number; heapSpaces: Record<string, { sizeBytes: number; usedBytes: number }> };
}

/** The live status of the box's mount, from `svault status --json`; throws if there is none. */
export async function liveStatus(box: Sandbox): Promise<LiveStatus> {
  const st = await box.svault(['status', '--json']);
  if (st.code !== 0) throw new Error(`svault status failed (exit ${st.code}): ${st.stderr}`);
  const live = (JSON.parse(st.stdout) as Array<{ mountpoint: string; live: LiveStatus | null }>).find((r) => r.mountpoint === box.mnt)?.live;
  if (!live) throw new Error(`no live status for ${box.mnt}`);
  return live;
}

/** How many times the box's mount has counted `op` (e.g. 'fuse.read'), from `svault status --json`; 0 if never. */
export async function opCalls(box: Sandbox, op: string): Promise<number> {
  return (await liveStatus(box)).ops.find((o) => o.op === op)?.calls ?? 0;
}

/** Every sandbox dir created by this test file, checked once more after all teardowns ran. */
const sandboxDirs: string[] = [];

/** A fresh vault, mounted; its sandbox is remembered for the end-of-file "nothing left mounted" check. */
export async function mountedBox(t: ExecutionContext, init: string[] = ['--chaff', '0.1'], opts: SandboxOptions = {}): Promise<Sandbox> {
  const box = await mountedSandbox(t, init, opts);
  sandboxDirs.push(box.dir);
  return box;
}

/** A sandbox with no vault yet (also remembered). */
export function emptyBox(t: ExecutionContext, name = 'sv', opts: SandboxOptions = {}): Sandbox {
  const box = sandbox(t, name, opts);
  sandboxDirs.push(box.dir);
  return box;
}

/** The mount points listed in /proc/mounts that lie under dir (octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

/** Whether a process runs (a zombie counts as gone). */
export const alive = processAlive;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls cond every 100 ms until it holds or ms pass; returns whether it held. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(100);
  }
  return cond();
}

/** waitFor() for a condition that has to ask another process (ls through the mount, say). */
export async function waitForAsync(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

/** Registers the end-of-file check: after every teardown, nothing under any sandbox of the file is mounted. */
export function checkNothingLeftMounted(test: TestFn): void {
  test.after.always('nothing under any sandbox is still mounted', (t) => {
    const left = sandboxDirs.flatMap(mountsUnder);
    t.deepEqual(left, [], `still mounted: ${left.join(', ')}`);
  });
}

/** Runs a shell line and fails the test (with its output) unless it exits 0; returns stdout. */
export async function ok(t: ExecutionContext, line: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await sh(line, opts);
  if (r.code !== 0) {
    t.log(`failed: ${line}`);
    throw new Error(`command failed (exit ${r.code}): ${line}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`);
  }
  return r.stdout;
}

/** Quotes a string for bash. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** sha256 of a file, computed by sha256sum in a child process (safe for files in the mount). */
export async function sha(t: ExecutionContext, path: string): Promise<string> {
  const out = await ok(t, `sha256sum ${q(path)}`);
  return out.split(' ')[0] ?? '';
}

/** `stat -c FORMAT path`, trimmed. */
export async function stat(t: ExecutionContext, format: string, path: string, extra = ''): Promise<string> {
  return (await ok(t, `stat ${extra} -c ${q(format)} ${q(path)}`)).trim();
}

/** Writes a file of random bytes outside the mount (never call it for a path in the mount). */
export function randomFile(path: string, size: number): Buffer {
  const data = randomBytes(size);
  writeFileSync(path, data);
  return data;
}

/** Unmounts (if mounted) with `svault unmount`, expecting success, then checks nothing under the sandbox is mounted and no server is left. */
export async function unmountAndCheck(t: ExecutionContext, box: Sandbox, pids: number[] = []): Promise<void> {
  const servers = new Set([...pids, ...serverPids(box).filter(alive)]);
  if (mountedAt(box.mnt)) {
    const u = await box.unmount();
    t.is(u.code, 0, `svault unmount: ${u.stderr}`);
  }
  t.deepEqual(mountsUnder(box.dir), [], 'nothing under the sandbox is mounted');
  for (const pid of servers) t.false(alive(pid), `server ${pid} has exited`);
}

/** Remounts the sandbox's store, failing the test if that fails. */
export async function remount(t: ExecutionContext, box: Sandbox): Promise<void> {
  const u = await box.unmount();
  t.is(u.code, 0, `svault unmount: ${u.stderr}`);
  t.deepEqual(mountsUnder(box.dir), []);
  const m = await box.mount();
  if (m.code !== 0) throw new Error(`remount failed (${m.code}): ${m.stderr}`);
}

/**
 * A shell command that drops one file's pages from the kernel's page cache (posix_fadvise DONTNEED), so
 * its next read reaches the filesystem. Unlike drop_caches it leaves the caches of other tests alone.
 */
export function dropFileCache(path: string): string {
  return `python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' ${q(path)}`;
}

/**
 * Maps a file that is in the page cache into another process (MAP_SHARED, MAP_POPULATE), and keeps it
 * mapped until release(): a test that asserts "no FUSE read, the kernel's cache served it" must not fail
 * because something else on the machine dropped caches (drop_caches skips mapped pages) meanwhile. It
 * hides nothing svault does: a FUSE open without FOPEN_KEEP_CACHE, or attributes that change the size,
 * invalidate mapped pages too. The mapping holds the file open until released; call it only once the
 * file's pages are cached, or populating it reads them through FUSE.
 */
export async function holdPageCache(t: ExecutionContext, path: string): Promise<{ release: () => Promise<void> }> {
  const script = [
    'import mmap, os, sys',
    'fd = os.open(sys.argv[1], os.O_RDONLY)',
    'm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)',
    'os.close(fd)',
    'print("held", flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const child = spawn('python3', ['-c', script, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`holding ${path} in the page cache failed (exit ${code})`)));
  });
  const release = async () => {
    child.stdin.end();
    await exited;
  };
  // A failed assertion must not leave the file mapped: the mount could not be unmounted.
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    return exited;
  });
  return { release };
}
