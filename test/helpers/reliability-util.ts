// Helpers for the reliability-*.test.ts files (issue 7, items 3–6): a tmpfs of a given size for the
// store (mounted outside the sandbox and unmounted only after the svault mount is gone), blob and
// metadata-record damage, server logs, and a check that nothing a test mounted is left in /proc/mounts.

import type { ExecutionContext, TestFn } from 'ava';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { blobPath } from '../../src/core/pieces/address.js';
import { META2_FILE } from '../../src/core/format2/record-table.js';
import { bucketRecordName, inodeRecordName, mapNodeRecordName, spillRecordName, stateRecordName } from '../../src/core/format2/record-names.js';
import { CLI, mountedAt, PASSPHRASE, run, serverPids, type RunResult, type Sandbox } from './cli.js';
import { alive, checkNothingLeftMounted, mountsUnder, sleep, waitFor } from './mount-util.js';

/** Every extra directory (tmpfs mount points) created by this test file, checked after all teardowns. */
const extraDirs: string[] = [];

export { sha256 } from './mount-util.js';

/** Remembers a directory (e.g. one a hook created) for the end-of-file "nothing left mounted" check. */
export function rememberDir(dir: string): void {
  extraDirs.push(dir);
}

/** Registers the end-of-file check: nothing under any sandbox or tmpfs dir of this file is still mounted. */
export function checkNothingLeftMountedAtAll(test: TestFn): void {
  checkNothingLeftMounted(test);
  test.after.always('no tmpfs of this file is still mounted', (t) => {
    const left = extraDirs.flatMap(mountsUnder);
    t.deepEqual(left, [], `still mounted: ${left.join(', ')}`);
  });
}

/** Stops whatever of the sandbox is still mounted or running (used before unmounting a tmpfs under its store). */
export async function stopBox(box: Sandbox): Promise<void> {
  if (mountedAt(box.mnt)) await box.unmount();
  if (mountedAt(box.mnt)) await run('umount', ['-l', box.mnt]);
  for (const pid of serverPids(box)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await waitFor(() => !alive(pid), 5000);
  }
  if (mountedAt(box.mnt)) await run('umount', ['-l', box.mnt]);
}

/**
 * A tmpfs of sizeMiB mounted on a fresh directory outside the sandbox (so mountsUnder(box.dir) stays
 * meaningful). Its teardown is registered after the sandbox's and so runs first: it unmounts svault and
 * stops its servers before unmounting the tmpfs.
 */
export async function tmpfsFor(t: ExecutionContext, box: Sandbox, sizeMiB: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'svault-rel-disk-'));
  extraDirs.push(dir);
  const m = await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir]);
  if (m.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mount -t tmpfs failed: ${m.stderr}`);
  }
  t.teardown(async () => {
    await stopBox(box);
    for (let i = 0; i < 10 && mountedAt(dir); i++) {
      if ((await run('umount', [dir])).code === 0) break;
      await sleep(300);
    }
    if (mountedAt(dir)) await run('umount', ['-l', dir]);
    if (mountedAt(dir)) throw new Error(`could not unmount the tmpfs ${dir}`);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** `svault mount --store store box.mnt` for a store that is not box.store. */
export function mountStore(box: Sandbox, store: string, extra: string[] = []): Promise<RunResult> {
  return box.svault(['mount', '--store', store, box.mnt, ...extra]);
}

/** Every blob file of a store, as "shard/name". */
export function blobFiles(store: string): Set<string> {
  const root = join(store, 'blobs');
  const out = new Set<string>();
  if (!existsSync(root)) return out;
  for (const shard of readdirSync(root)) for (const name of readdirSync(join(root, shard))) out.add(`${shard}/${name}`);
  return out;
}

/** The text of every server log of the sandbox. */
export function serverLogs(box: Sandbox): string {
  const dir = join(box.dir, 'state', 'svault', 'logs');
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

/** The one live server of a sandbox. */
export function onlyServer(box: Sandbox): number {
  const pids = serverPids(box).filter(alive);
  if (pids.length !== 1) throw new Error(`expected one live server, found ${JSON.stringify(pids)}`);
  return pids[0] as number;
}

/** A JavaScript stack trace in CLI output: what exit 1 ("a bug") prints. A clear error has none. */
export const STACK_TRACE = /\n\s+at .+:\d+:\d+\)?/;

/** Flips one bit in the middle of a row's sealed value. */
function flipRow(value: Buffer): Buffer {
  value[value.length >> 1] = (value[value.length >> 1] as number) ^ 0x10;
  return value;
}

// ---- format 2: the same damage targets, named as format 2 names them ----

/**
 * Opens a (closed, unmounted) format-2 store with the core library to locate damage targets: no store lock,
 * no rollback anchor, inspect-only (nothing is written), no piece worker. Closes it afterwards.
 */
export async function withVault2<T>(store: string, fn: (v: Vault2) => T | Promise<T>, passphrase = PASSPHRASE): Promise<T> {
  const v = await Vault2.open(store, passphrase, { noLock: true, inspectOnly: true, pieceWorker: false });
  try {
    return await fn(v);
  } finally {
    await v.close();
  }
}

/** The blob files ("shard/name") of every committed piece of the format-2 file at path, by piece index (none for an INLINE file). */
export function blobsOf2(v: Vault2, path: string): string[] {
  const { md, pieces } = v.check();
  const inode = md.requireInode(v.paths.idAt(path));
  const versions = [...(md.pieceMapIfAny(inode.ino)?.versions() ?? [])].sort((a, b) => a.index - b.index);
  return versions.map(({ index, version }) => blobPath(pieces.pieceAddress(inode, index, version)));
}

/** Every blob file of the format-2 file at path: its pieces and their derived chaff (10.2), which live and die together. */
export function fileBlobs2(v: Vault2, path: string): string[] {
  const { md, pieces } = v.check();
  const inode = md.requireInode(v.paths.idAt(path));
  const out: string[] = [];
  for (const { index, version } of md.pieceMapIfAny(inode.ino)?.versions() ?? []) {
    for (const a of [pieces.pieceAddress(inode, index, version), ...pieces.chaffAddresses(inode, index, version)]) out.push(blobPath(a));
  }
  return out;
}

/** The keyed names of a format-2 vault's metadata records (record-names.ts), for damaging one on purpose. */
export function recordNames2(v: Vault2) {
  const key = v.check().namesKey;
  return {
    state: () => stateRecordName(key),
    inode: (ino: number) => inodeRecordName(key, ino),
    bucket: (dirIno: number, bucket = 0, chainPosition = 0) => bucketRecordName(key, dirIno, bucket, chainPosition),
    mapNode: (ownerIno: number, level: number, nodeNumber: number) => mapNodeRecordName(key, ownerIno, level, nodeNumber),
    spill: (ino: number, position = 0) => spillRecordName(key, ino, position),
  };
}

/** Changes the sealed value of one format-2 metadata row (by its keyed name) in place with fn. */
export function changeRecord2(store: string, name: Buffer, fn: (value: Buffer) => Buffer | string | number): void {
  const db = new Database(join(store, META2_FILE));
  try {
    const row = db.prepare<[Buffer], { v: Buffer }>('SELECT v FROM r WHERE k = ?').get(name);
    if (!row) throw new Error(`no record ${name.toString('hex')}`);
    if (db.prepare<[Buffer | string | number, Buffer]>('UPDATE r SET v = ? WHERE k = ?').run(fn(Buffer.from(row.v)), name).changes !== 1) throw new Error('record not updated');
  } finally {
    db.close();
  }
}

/** Flips one bit in the middle of a format-2 row's sealed value. */
export function flipRecord2(store: string, name: Buffer): void {
  changeRecord2(store, name, flipRow);
}

export function deleteRecord2(store: string, name: Buffer): void {
  const db = new Database(join(store, META2_FILE));
  try {
    if (db.prepare('DELETE FROM r WHERE k = ?').run(name).changes !== 1) throw new Error('record not deleted');
  } finally {
    db.close();
  }
}

/** The value of one format-2 row now (to put it back later: a replay). */
export function readRecord2(store: string, name: Buffer): Buffer {
  const db = new Database(join(store, META2_FILE), { readonly: true });
  try {
    const row = db.prepare<[Buffer], { v: Buffer }>('SELECT v FROM r WHERE k = ?').get(name);
    if (!row) throw new Error(`no record ${name.toString('hex')}`);
    return Buffer.from(row.v);
  } finally {
    db.close();
  }
}

/** A deterministic PRNG (mulberry32, the fixtures' own) so damage is reproducible from the logged seed. */
export { prng } from '../../fixtures/tree.js';

/**
 * Runs the svault CLI with a deadline; unlike run(), says whether it had to be killed (a hang), and
 * how long it took.
 */
export function svaultTimed(box: Sandbox, args: string[], ms: number): Promise<RunResult & { hung: boolean; elapsedMs: number }> {
  return new Promise((done) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr, hung, elapsedMs: Date.now() - t0 });
    });
  });
}
