// What goes wrong around a mount, and what the user sees: wrong passphrase, bad mount points, a busy
// store, a killed server (stale mount), a damaged piece, an external unmount, SIGTERM, bad usage; and
// the status / info / --help output. Every check of the mount itself runs in a child process.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINDINGS } from '../../fs/bindings.js';
import { CLI, mountedAt, serverPids, sh, type Sandbox } from '../helpers/cli.js';
import { blobsOf2, deleteRecord2, recordNames2, withVault2 } from '../helpers/reliability-util.js';
import {
  alive,
  checkNothingLeftMounted,
  emptyBox,
  mountedBox,
  dropFileCache,
  mountsUnder,
  ok,
  q,
  randomFile,
  remount,
  sha,
  sha256,
  sleep,
  unmountAndCheck,
  waitFor,
} from '../helpers/mount-util.js';

checkNothingLeftMounted(test);


/** Every blob file under <store>/blobs, as shard/name. */
function blobFiles(box: Sandbox): Set<string> {
  const root = join(box.store, 'blobs');
  const out = new Set<string>();
  for (const shard of readdirSync(root)) for (const name of readdirSync(join(root, shard))) out.add(`${shard}/${name}`);
  return out;
}

/** The one live server of a sandbox (from its registry), failing the test if there is not exactly one. */
function onlyServer(box: Sandbox): number {
  const pids = serverPids(box).filter(alive);
  if (pids.length !== 1) throw new Error(`expected one live server, found ${JSON.stringify(pids)}`);
  return pids[0] as number;
}

/** The text of every server log of the sandbox. */
function serverLogs(box: Sandbox): string {
  const dir = join(box.dir, 'state', 'svault', 'logs');
  if (!existsSync(dir)) return '';
  return readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
}

test('a wrong passphrase fails the mount with exit 3 and a clear message, leaving nothing mounted', async (t) => {
  const box = emptyBox(t);
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  const r = await box.svault(['mount', '--store', box.store, box.mnt], { env: { SVAULT_PASSPHRASE: 'not the passphrase' } });
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, /wrong passphrase/);
  t.false(mountedAt(box.mnt));
  t.deepEqual(serverPids(box).filter(alive), []);
  t.false(existsSync(join(box.store, 'svault.lock')), 'no lock left behind');
  for (const cmd of ['info', 'fsck']) {
    const x = await box.svault([cmd, '--store', box.store], { env: { SVAULT_PASSPHRASE: 'nope' } });
    t.is(x.code, 3, `${cmd}: ${x.stderr}`);
    t.regex(x.stderr, /wrong passphrase/);
  }
  // The right one still works afterwards.
  const good = await box.mount();
  t.is(good.code, 0, good.stderr);
  await unmountAndCheck(t, box);
});

/** Unmounts dir (a mount point other than the box's own) when the test ends, whatever happened. */
function unmountOnTeardown(t: ExecutionContext, box: Sandbox, dir: string): void {
  // Registered after the sandbox's own teardown, so it runs first (ava runs them last in, first out).
  t.teardown(async () => {
    if (mountedAt(dir)) await box.svault(['unmount', dir]);
    if (mountedAt(dir)) await sh(`umount -l ${q(dir)}`);
  });
}

test('mount point missing with no parent, not a directory, not empty, already mounted: exit 5 with a clear message', async (t) => {
  const box = emptyBox(t);
  t.is((await box.svault(['init', '--store', box.store])).code, 0);
  const mount = (mnt: string, extra: string[] = [], store = box.store) => box.svault(['mount', '--store', store, mnt, ...extra]);

  // A missing mount point whose parent exists is created (see the next test); a missing parent is not.
  const created = join(box.dir, 'no-such-dir');
  unmountOnTeardown(t, box, created);
  const fresh = await mount(created);
  t.is(fresh.code, 0, fresh.stderr);
  t.regex(fresh.stderr, /created the mount point/);
  t.true(mountedAt(created));
  t.is((await box.svault(['unmount', created])).code, 0);

  const parent = join(box.dir, 'no-such-parent');
  const missing = await mount(join(parent, 'mnt'));
  t.is(missing.code, 5, missing.stderr);
  t.regex(missing.stderr, /does not exist/);
  t.true(missing.stderr.includes(`parent directory ${parent}`), `names the missing parent: ${missing.stderr}`);
  t.false(existsSync(parent), 'creates neither the parent nor the mount point');

  writeFileSync(join(box.dir, 'a-file'), 'x');
  const file = await mount(join(box.dir, 'a-file'));
  t.is(file.code, 5, file.stderr);
  t.regex(file.stderr, /not a directory/);

  const full = join(box.dir, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'something'), 'x');
  const nonEmpty = await mount(full);
  t.is(nonEmpty.code, 5, nonEmpty.stderr);
  t.regex(nonEmpty.stderr, /not empty/);
  t.regex(nonEmpty.stderr, /-o nonempty/, 'the message says how to mount over it anyway');
  t.deepEqual(mountsUnder(box.dir), [], 'none of the failures mounted anything');
  t.deepEqual(serverPids(box).filter(alive), [], 'nor left a server');

  // Already mounted (by another vault): exit 5, and the first mount is untouched.
  t.is((await mount(box.mnt)).code, 0);
  await ok(t, `echo first > ${q(box.mnt)}/f`);
  const store2 = join(box.dir, 'store2');
  t.is((await box.svault(['init', '--store', store2])).code, 0);
  const again = await mount(box.mnt, [], store2);
  t.is(again.code, 5, again.stderr);
  t.regex(again.stderr, /already a mount point/);
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'first\n');
  t.is(serverPids(box).filter(alive).length, 1, 'one server only');
  await unmountAndCheck(t, box);
});

test('a missing mount point whose parent exists is created, and stays after the unmount', async (t) => {
  const box = emptyBox(t);
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  const mnt = join(box.dir, 'new-mnt');
  unmountOnTeardown(t, box, mnt);
  const m = await box.svault(['mount', '--store', box.store, mnt]);
  t.is(m.code, 0, m.stderr);
  t.true(m.stderr.includes(`created the mount point ${mnt}`), m.stderr);
  t.true(mountedAt(mnt));
  await ok(t, `echo written > ${q(mnt)}/f`);
  t.is(await ok(t, `cat ${q(mnt)}/f`), 'written\n');
  const u = await box.svault(['unmount', mnt]);
  t.is(u.code, 0, u.stderr);
  t.false(mountedAt(mnt));
  t.true(statSync(mnt).isDirectory(), 'the directory stays after the unmount');
  t.deepEqual(readdirSync(mnt), [], 'and is empty: the file is in the vault');
  // Now it exists: mounted again as it is, with the file back.
  const again = await box.svault(['mount', '--store', box.store, mnt]);
  t.is(again.code, 0, again.stderr);
  t.false(again.stderr.includes('created the mount point'), again.stderr);
  t.is(await ok(t, `cat ${q(mnt)}/f`), 'written\n');
  t.is((await box.svault(['unmount', mnt])).code, 0);
  t.deepEqual(mountsUnder(box.dir), []);
});

test('a mount point svault created is removed again when the mount fails (fuse-native fails late)', async (t) => {
  // libfuse refuses an unknown option only after the kernel mount is made; svault's own transport
  // refuses it before anything is made (the usage-errors test).
  const box = emptyBox(t, 'sv', { binding: 'fuse-native' });
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  const mnt = join(box.dir, 'new-mnt');
  unmountOnTeardown(t, box, mnt);
  for (const extra of [[], ['-f']]) {
    const r = await box.svault(['mount', '--store', box.store, mnt, '-o', 'no_such_option', ...extra]);
    t.not(r.code, 0, `mount ${extra.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /created the mount point/);
    t.regex(r.stderr, /removed the mount point .* again/);
    t.false(existsSync(mnt), `mount ${extra.join(' ')}: the directory it created is gone`);
    t.deepEqual(mountsUnder(box.dir), [], 'nothing is left mounted');
    t.deepEqual(serverPids(box).filter(alive), [], 'nor a server');
  }
});

test('-o nonempty mounts over a non-empty directory, as the exit-5 message suggests', async (t) => {
  const box = emptyBox(t);
  t.is((await box.svault(['init', '--store', box.store])).code, 0);
  writeFileSync(join(box.mnt, 'underneath'), 'x');
  const over = await box.mount(['-o', 'nonempty']);
  t.is(over.code, 0, over.stderr);
  t.true(mountedAt(box.mnt));
  t.is((await ok(t, `ls -A ${q(box.mnt)}`)).trim(), '', 'the vault (empty) hides what is under it');
  await ok(t, `echo inside > ${q(box.mnt)}/f`);
  await unmountAndCheck(t, box);
  t.deepEqual(readdirSync(box.mnt), ['underneath'], 'what was underneath is back, untouched');
});

test('a second mount of the same store elsewhere: exit 6; fsck of a mounted store: exit 6', async (t) => {
  const box = await mountedBox(t);
  const pid = onlyServer(box);
  const other = join(box.dir, 'mnt2');
  mkdirSync(other);
  const r = await box.svault(['mount', '--store', box.store, other]);
  t.is(r.code, 6, r.stderr);
  t.regex(r.stderr, /already mounted/);
  t.regex(r.stderr, new RegExp(`${pid}`), 'names the server holding it');
  t.false(mountedAt(other));
  const f = await box.svault(['fsck', '--store', box.store]);
  t.is(f.code, 6, f.stderr);
  t.regex(f.stderr, /in use|mounted/);
  // info reads without the lock while mounted.
  const info = await box.svault(['info', '--store', box.store]);
  t.is(info.code, 0, info.stderr);
  await unmountAndCheck(t, box, [pid]);
});

test('kill -9 of the server leaves a stale mount that the next mount (and unmount) clears; fsck is clean', async (t) => {
  const box = await mountedBox(t);
  const data = randomFile(join(box.dir, 'src'), 700_000);
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(box.mnt)}/f && mkdir ${q(box.mnt)}/d && echo x > ${q(box.mnt)}/d/g`);
  // fsync of one file (coreutils' sync FILE) makes it and every change before it durable.
  await ok(t, `sync ${q(box.mnt)}/d/g`);
  const pid = onlyServer(box);
  process.kill(pid, 'SIGKILL');
  t.true(await waitFor(() => !alive(pid), 5000), 'the server is gone');
  t.true(mountedAt(box.mnt), 'the kernel still lists the mount');
  const st = await sh(`stat ${q(box.mnt)}`);
  t.not(st.code, 0);
  // ENOTCONN; ECONNABORTED if the stat was queued just before the kernel aborted the connection.
  t.regex(st.stderr, /Transport endpoint is not connected|Software caused connection abort/);
  const status = await box.svault(['status']);
  t.is(status.stdout.trim(), 'no svault mounts', 'status does not list the dead server');

  const m = await box.mount();
  t.is(m.code, 0, m.stderr);
  t.regex(m.stderr, /cleared a stale mount/);
  t.is(await sha(t, join(box.mnt, 'f')), sha256(data), 'a file closed and synced before the kill is intact');
  t.is(await ok(t, `cat ${q(box.mnt)}/d/g`), 'x\n');
  t.regex(serverLogs(box), /did not shut down cleanly/, 'the new server noticed the crash');
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);

  // Once more, now cleared by `svault unmount`.
  t.is((await box.mount()).code, 0);
  const pid2 = onlyServer(box);
  process.kill(pid2, 'SIGKILL');
  t.true(await waitFor(() => !alive(pid2), 5000));
  const u = await box.unmount();
  t.is(u.code, 0, u.stderr);
  t.regex(u.stderr, /cleared a stale mount/);
  t.deepEqual(mountsUnder(box.dir), []);
  const fsck2 = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck2.code, 0, fsck2.stdout + fsck2.stderr);
});

test('a damaged piece makes reads of its file fail with EIO while other files read fine; fsck finds it', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const a = randomFile(join(box.dir, 'a'), 1024 * 1024); // 8 pieces of 128 KiB
  const b = randomFile(join(box.dir, 'b'), 1024 * 1024);
  await ok(t, `cp ${q(join(box.dir, 'a'))} ${q(box.mnt)}/A`);
  const blobsOfA = blobFiles(box);
  t.is(blobsOfA.size, 8, 'chaff 0: one blob per piece');
  await ok(t, `cp ${q(join(box.dir, 'b'))} ${q(box.mnt)}/B`);
  t.is(blobFiles(box).size, 16);
  await unmountAndCheck(t, box);

  // Flip one byte in the middle of one of A's blobs.
  const victimBlob = [...blobsOfA][3] as string;
  const victim = join(box.store, 'blobs', victimBlob);
  const blob = readFileSync(victim);
  blob[blob.length >> 1] = (blob[blob.length >> 1] as number) ^ 0x40;
  writeFileSync(victim, blob);

  t.is((await box.mount()).code, 0);
  const catA = await sh(`cat ${q(box.mnt)}/A > /dev/null`);
  t.not(catA.code, 0, 'reading A fails');
  t.regex(catA.stderr, /Input\/output error/);
  t.is(await sha(t, join(box.mnt, 'B')), sha256(b), 'B reads fine');
  // Exactly one 128 KiB piece of A fails; the other seven read back right.
  let bad = 0;
  for (let i = 0; i < 8; i++) {
    const r = await sh(`dd if=${q(box.mnt)}/A bs=128K skip=${i} count=1 status=none | sha256sum`);
    const piece = await sh(`set -o pipefail; dd if=${q(box.mnt)}/A bs=128K skip=${i} count=1 status=none > /dev/null`);
    if (piece.code !== 0) bad++;
    else t.is(r.stdout.split(' ')[0], sha256(a.subarray(i * 131072, (i + 1) * 131072)), `piece ${i} of A`);
  }
  t.is(bad, 1, 'one damaged piece');
  t.regex(serverLogs(box), /failed authentication/, 'the server log says why');
  await unmountAndCheck(t, box);

  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 7, fsck.stdout + fsck.stderr);
  // Format 2's fsck names inodes, not paths (security finding 11).
  const [inoA, inoB, piece] = await withVault2(box.store, (v) => [v.paths.idAt('/A'), v.paths.idAt('/B'), blobsOf2(v, '/A').indexOf(victimBlob)]);
  t.true(piece >= 0, 'the damaged blob is one of A\'s pieces');
  t.regex(fsck.stdout, new RegExp(`bad-piece: inode ${inoA}: piece ${piece}\\b`), 'fsck names A\'s inode and the damaged piece');
  t.notRegex(fsck.stdout, new RegExp(`inode ${inoB}\\b`), 'and nothing of B');
  const repair = await box.svault(['fsck', '--store', box.store, '--repair']);
  t.is(repair.code, 8, repair.stdout + repair.stderr);
  const after = await box.svault(['fsck', '--store', box.store]);
  t.is(after.code, 0, after.stdout);
});

test('the server follows its mount: an external umount -l stops it; SIGTERM unmounts cleanly', async (t) => {
  const box = await mountedBox(t);
  await ok(t, `echo before > ${q(box.mnt)}/f`);
  const pid = onlyServer(box);
  await ok(t, `umount -l ${q(box.mnt)}`);
  t.true(await waitFor(() => !alive(pid), 5000), 'the server exits by itself within 5 s');
  t.false(mountedAt(box.mnt));
  t.is((await box.svault(['status'])).stdout.trim(), 'no svault mounts');
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, `the store was closed cleanly (lock released, no orphans): ${fsck.stdout}${fsck.stderr}`);

  t.is((await box.mount()).code, 0);
  t.is(await ok(t, `cat ${q(box.mnt)}/f`), 'before\n');
  await ok(t, `echo after > ${q(box.mnt)}/g`);
  const pid2 = onlyServer(box);
  process.kill(pid2, 'SIGTERM');
  t.true(await waitFor(() => !alive(pid2) && !mountedAt(box.mnt), 10_000), 'SIGTERM: unmounted and gone');
  t.deepEqual(mountsUnder(box.dir), []);
  t.regex(serverLogs(box), /stopping: SIGTERM[\s\S]*stopped/);
  const fsck2 = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck2.code, 0, fsck2.stdout + fsck2.stderr);
  t.is((await box.mount()).code, 0);
  t.is(await ok(t, `cat ${q(box.mnt)}/g`), 'after\n');
  t.false(/did not shut down cleanly/.test(serverLogs(box)), 'no crash recovery was needed');
  await unmountAndCheck(t, box);
});

test('svault status into a pipe whose reader has gone exits 0 without a stack trace', async (t) => {
  const box = emptyBox(t);
  // The pipe's read end is closed before the CLI has even started, so its first write gets EPIPE.
  const child = spawn(process.execPath, [CLI, 'status'], { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.is(code, 0, stderr);
  t.is(stderr, '');
});

test('usage errors: unmount of a non-mounted dir (5), unknown flags (2); --help of every command shows Examples', async (t) => {
  const box = emptyBox(t);
  const u = await box.svault(['unmount', box.mnt]);
  t.is(u.code, 5, u.stderr);
  t.regex(u.stderr, /is not mounted/);
  const u2 = await box.svault(['unmount', join(box.dir, 'nowhere')]);
  t.is(u2.code, 5, u2.stderr);

  for (const args of [['mount', '--bogus', box.mnt], ['init', '--store', box.store, '--frobnicate'], ['status', '-z'], ['fsck', '--repiar'], ['nosuchcommand']]) {
    const r = await box.svault(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /unknown (option|command)/, args.join(' '));
  }
  const badSize = await box.svault(['init', '--store', box.store, '--piece-size', '1000']);
  t.is(badSize.code, 2, badSize.stderr);
  t.false(existsSync(join(box.store, 'svault.json')));
  const noArg = await box.svault(['mount']);
  t.is(noArg.code, 2, 'a missing mount point is a usage error');
  // With fuse-native, kernel_cache would serve stale data through hard links (each name is its own node).
  const kernelCache = await box.svault(['mount', '--binding', 'fuse-native', '-o', 'ro,kernel_cache', '--store', box.store, box.mnt]);
  t.is(kernelCache.code, 2, kernelCache.stderr);
  t.regex(kernelCache.stderr, /mount option kernel_cache is not accepted: .*hard link/);
  // svault's own transport names an unknown option before it mounts or creates anything.
  const unknown = await box.svault(['mount', '--binding', 'devfuse', '-o', 'ro,no_such_option', '--store', box.store, join(box.dir, 'not-made')]);
  t.is(unknown.code, 2, unknown.stderr);
  t.regex(unknown.stderr, /unknown mount option: no_such_option/);
  t.false(existsSync(join(box.dir, 'not-made')));
  const badBinding = await box.svault(['mount', '--binding', 'libfuse9', '--store', box.store, box.mnt]);
  t.is(badBinding.code, 2, badBinding.stderr);

  for (const cmd of ['init', 'mount', 'unmount', 'status', 'info', 'fsck', 'passwd']) {
    const h = await box.svault([cmd, '--help']);
    t.is(h.code, 0, `${cmd} --help`);
    t.regex(h.stdout, /Examples:/, `${cmd} --help shows examples`);
    t.regex(h.stdout, new RegExp(`svault ${cmd}`), `${cmd} --help shows the command`);
  }
  const top = await box.svault(['--help']);
  t.is(top.code, 0);
  for (const cmd of ['init', 'mount', 'unmount', 'status', 'info', 'fsck', 'passwd']) t.regex(top.stdout, new RegExp(`\\b${cmd}\\b`));
  t.deepEqual(mountsUnder(box.dir), []);
});

test('svault status lists the mount with live operation counts; svault info shows piece size and blob count', async (t) => {
  const box = await mountedBox(t, ['--piece-size', '65536', '--chaff', '0']);
  const pid = onlyServer(box);
  randomFile(join(box.dir, 'src'), 1024 * 1024);
  // The file's cached pages are dropped before the cat, so its read reaches svault (it kept the written pages).
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(box.mnt)}/big && for i in 1 2 3; do echo $i > ${q(box.mnt)}/s$i; done && ${dropFileCache(join(box.mnt, 'big'))} && cat ${q(box.mnt)}/big > /dev/null`);

  const text = await box.svault(['status']);
  t.is(text.code, 0, text.stderr);
  t.true(text.stdout.includes(box.mnt), text.stdout);
  t.true(text.stdout.includes(box.store));
  t.regex(text.stdout, new RegExp(`pid ${pid}`));
  t.regex(text.stdout, /log \S+\.log/);
  t.regex(text.stdout, /open files 0/);
  const writeLine = text.stdout.split('\n').find((l) => l.trim().startsWith('fuse.write'));
  t.truthy(writeLine, text.stdout);
  t.true(Number(writeLine?.trim().split(/\s+/)[1]) > 0, `fuse.write calls in: ${writeLine}`);

  const json = await box.svault(['status', '--json']);
  const rows = JSON.parse(json.stdout) as Array<{ pid: number; mountpoint: string; store: string; live: { ops: Array<{ op: string; calls: number; bytes: number }> } }>;
  t.is(rows.length, 1);
  const row = rows[0];
  t.is(row?.pid, pid);
  t.is(row?.mountpoint, box.mnt);
  const op = (name: string) => row?.live.ops.find((o) => o.op === name);
  t.true((op('fuse.create')?.calls ?? 0) >= 4, 'four files created');
  t.true((op('fuse.write')?.bytes ?? 0) >= 1024 * 1024, 'at least 1 MiB written');
  t.true((op('fuse.read')?.bytes ?? 0) >= 1024 * 1024, 'at least 1 MiB read');

  const live = await box.svault(['info', '--store', box.store]);
  t.is(live.code, 0, `info while mounted: ${live.stderr}`);
  await unmountAndCheck(t, box, [pid]);

  const info = await box.svault(['info', '--store', box.store]);
  t.is(info.code, 0, info.stderr);
  t.regex(info.stdout, /piece size:\s+65536 bytes/);
  // 1 MiB in 64 KiB pieces; chaff 0. The three small files are INLINE (in their inode records): no blob.
  t.regex(info.stdout, /blobs:\s+16 \(16 pieces, 0 chaff\)/);
  t.regex(info.stdout, /files:\s+4 files, 1 directories/);
  const j = JSON.parse((await box.svault(['info', '--store', box.store, '--json'])).stdout) as { pieceSize: number; blobs: number; files: number; chaffRatio: number };
  t.like(j, { pieceSize: 65536, blobs: 16, files: 4, chaffRatio: 0 });
  t.is(blobFiles(box).size, 16, 'and that is what lies in the store');
});

test('unmount never signals a process that only has a dead server\'s pid (security finding 14)', async (t) => {
  const box = await mountedBox(t);
  await unmountAndCheck(t, box);
  // A stale record whose pid now belongs to an unrelated process (a killed server's pid, reused).
  const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => bystander.kill('SIGKILL'));
  const mounts = join(box.env.XDG_STATE_HOME as string, 'svault', 'mounts');
  mkdirSync(mounts, { recursive: true });
  const record = { pid: bystander.pid, mountpoint: box.mnt, store: box.store, started: new Date().toISOString(), readOnly: false, binding: 'devfuse' };
  writeFileSync(join(mounts, `${bystander.pid}.json`), JSON.stringify(record));
  const u = await box.unmount();
  t.is(u.code, 5, u.stderr);
  t.regex(u.stderr, /is not mounted/);
  t.true(alive(bystander.pid as number), 'the unrelated process was not signalled');
});

test('the background mount server does not hold SVAULT_PASSPHRASE in its environment (security finding 9)', async (t) => {
  const box = await mountedBox(t);
  const pid = onlyServer(box);
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  t.true(environ.some((e) => e.startsWith('XDG_STATE_HOME=')), 'the server has the rest of the environment');
  t.false(environ.some((e) => e.startsWith('SVAULT_PASSPHRASE=')), 'no passphrase in /proc/PID/environ');
  await unmountAndCheck(t, box);
});

/** Runs a python3 script with arguments; returns its stdout parsed as JSON. */
async function py<T>(script: string, args: string[]): Promise<T> {
  const r = await sh(`python3 -c ${q(script)} ${args.map(q).join(' ')}`);
  if (r.code !== 0) throw new Error(`python3 failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as T;
}

/**
 * How each name of a directory answers through the mount, lookups first (on devfuse a listing, readdirplus,
 * hands the kernel each name with its inode, and the kernel then needs no lookup for it): reading it
 * ('ok' when it holds its own name, 'other' for anything else, or the errno), then, for those that do not
 * read, making it again as a file (O_EXCL), a directory and a symlink (ok or the errno); and the listing.
 */
const PROBE_NAMES = `
import os, sys, json, errno
d, names = sys.argv[1], sys.argv[2:]
def err(e): return errno.errorcode.get(e.errno, str(e.errno))
out = {'read': {}, 'remake': {}, 'ls': None}
for n in names:
    p = os.path.join(d, n)
    try:
        with open(p, 'rb') as f: out['read'][n] = 'ok' if f.read() == n.encode() else 'other'
    except OSError as e:
        out['read'][n] = err(e)
for n in [n for n in names if out['read'][n] != 'ok']:
    p, r = os.path.join(d, n), []
    for make in (lambda: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)), lambda: os.mkdir(p), lambda: os.symlink('x', p)):
        try:
            make(); r.append('ok')
        except OSError as e:
            r.append(err(e))
    out['remake'][n] = r
try:
    out['ls'] = sorted(os.listdir(d))
except OSError as e:
    out['ls'] = err(e)
print(json.dumps(out))
`;

interface NameProbe {
  read: Record<string, string>;
  remake: Record<string, string[]>;
  ls: string[] | string;
}

// Security finding 13: a record deleted from the store must not turn a name into "No such file or
// directory", where the next create would put a second file (the attacker's choice of content) in its
// place. Format 1 kept each name in an entry record of its own; format 2 keeps the names in the directory's
// inode or, past 3,818 bytes of entries, in bucket records (docs/format-2.md 6.4), and a file's attributes
// and small content in its inode record. Both kinds are deleted here, through both transports.
for (const binding of BINDINGS) {
  test(`${binding}: names whose bucket record was deleted from the store answer EIO, never ENOENT or a second file; fsck names it; --repair brings their files back as #<ino> (security finding 13)`, async (t) => {
    const box = await mountedBox(t, ['--chaff', '0'], { binding });
    // 100 entries of 50 bytes: more than the directory's inode holds (3,818 bytes), so in buckets.
    const names = Array.from({ length: 100 }, (_, i) => `entry-${String(i).padStart(3, '0')}-${'x'.repeat(34)}`);
    await ok(t, `mkdir ${q(box.mnt)}/d && cd ${q(box.mnt)}/d && for n in ${names.join(' ')}; do printf "$n" > "$n"; done`);
    await unmountAndCheck(t, box);
    const dirIno = await withVault2(box.store, (v) => {
      const ino = v.paths.idAt('/d');
      t.is(v.check().md.requireInode(ino).primary.form, 'buckets', 'd keeps its entries in bucket records');
      return ino;
    });
    // The attacker deletes bucket 0 from meta2.db. Which names it held is found offline: their lookups fail.
    await withVault2(box.store, (v) => deleteRecord2(box.store, recordNames2(v).bucket(dirIno, 0)));
    const lost = await withVault2(box.store, (v) =>
      names.filter((n) => {
        try {
          v.check().md.lookup(dirIno, Buffer.from(n));
          return false;
        } catch {
          return true;
        }
      }),
    );
    t.true(lost.length > 0 && lost.length < names.length, `bucket 0 held ${lost.length} of the ${names.length} names`);

    t.is((await box.mount()).code, 0);
    const p = await py<NameProbe>(PROBE_NAMES, [join(box.mnt, 'd'), ...names]);
    for (const n of names) {
      if (lost.includes(n)) {
        t.is(p.read[n], 'EIO', `${n}, in the deleted bucket: EIO, never ENOENT`);
        t.deepEqual(p.remake[n], ['EIO', 'EIO', 'EIO'], `${n}: no second file, directory or symlink is made in its place`);
      } else {
        t.is(p.read[n], 'ok', `${n}, in another bucket, reads its own content`);
      }
    }
    t.is(p.ls, 'EIO', 'ls of d fails with EIO: the listing never leaves names out silently');
    await unmountAndCheck(t, box);

    const fsck = await box.svault(['fsck', '--store', box.store]);
    t.is(fsck.code, 7, fsck.stdout + fsck.stderr);
    t.regex(fsck.stdout, new RegExp(`missing-record: directory ${dirIno}\\b.*bucket 0`), 'fsck names the missing bucket and its directory');
    // Format 2's repair (5.10): the bucket is rewritten empty, and the files it named come back as nameless
    // inodes, linked as #<ino> in their directory, with their content.
    const repair = await box.svault(['fsck', '--store', box.store, '--repair']);
    t.is(repair.code, 8, repair.stdout + repair.stderr);
    const after = await box.svault(['fsck', '--store', box.store]);
    t.is(after.code, 0, after.stdout + after.stderr);
    t.is((await box.mount()).code, 0);
    const listed = (await ok(t, `ls -A ${q(box.mnt)}/d`)).split('\n').filter(Boolean);
    const recovered = listed.filter((n) => /^#\d+$/.test(n));
    t.deepEqual(listed.filter((n) => !recovered.includes(n)).sort(), names.filter((n) => !lost.includes(n)).sort(), 'the other names are all there');
    const contents = await Promise.all(recovered.map((n) => ok(t, `cat ${q(join(box.mnt, 'd', n))}`)));
    t.deepEqual(contents.sort(), [...lost].sort(), 'each file of the deleted bucket is back as #<ino>, with its content');
    await unmountAndCheck(t, box);
  });

  test(`${binding}: a name whose inode record was deleted from the store answers EIO, not ENOENT, while ls lists it; fsck names it; --repair removes it (security finding 13)`, async (t) => {
    const box = await mountedBox(t, ['--chaff', '0'], { binding });
    await ok(t, `mkdir ${q(box.mnt)}/d && printf healthy > ${q(box.mnt)}/d/a && printf precious > ${q(box.mnt)}/d/b`);
    await unmountAndCheck(t, box);
    // The attacker deletes b's inode record from meta2.db: d's inode, sealed apart, still holds the name.
    const ino = await withVault2(box.store, (v) => {
      const b = v.paths.idAt('/d/b');
      deleteRecord2(box.store, recordNames2(v).inode(b));
      return b;
    });

    t.is((await box.mount()).code, 0);
    // Lookups first (see PROBE_NAMES).
    for (const line of [`stat ${q(box.mnt)}/d/b`, `cat ${q(box.mnt)}/d/b`, `printf new > ${q(box.mnt)}/d/b`, `mkdir ${q(box.mnt)}/d/b`, `ln -s x ${q(box.mnt)}/d/b`]) {
      const r = await sh(line);
      t.not(r.code, 0, line);
      t.regex(r.stderr, /Input\/output error/, `${line}: EIO, never "No such file or directory" (or a second b)`);
    }
    // Listed from d's own entries, which record each child's number and type: b's inode is not needed.
    t.deepEqual((await ok(t, `ls ${q(box.mnt)}/d`)).split('\n').filter(Boolean), ['a', 'b'], 'the listing shows b, once: no second b was made');
    t.is(await ok(t, `cat ${q(box.mnt)}/d/a`), 'healthy', 'the healthy neighbour reads');
    await unmountAndCheck(t, box);

    const fsck = await box.svault(['fsck', '--store', box.store]);
    t.is(fsck.code, 7, fsck.stdout + fsck.stderr);
    t.regex(fsck.stdout, new RegExp(`missing-record: inode ${ino}\\b`), 'fsck names b\'s inode');
    // Format 2's repair (5.10, section 7): a file whose inode record is gone is gone, as in format 1 for a
    // damaged inode; its INLINE content went with the record (there is no second copy). Its name goes too.
    const repair = await box.svault(['fsck', '--store', box.store, '--repair']);
    t.is(repair.code, 8, repair.stdout + repair.stderr);
    const after = await box.svault(['fsck', '--store', box.store]);
    t.is(after.code, 0, after.stdout + after.stderr);
    t.is((await box.mount()).code, 0);
    t.deepEqual((await ok(t, `ls ${q(box.mnt)}/d`)).split('\n').filter(Boolean), ['a'], 'the repair removed the name of the lost file');
    await ok(t, `printf again > ${q(box.mnt)}/d/b`);
    t.is(await ok(t, `cat ${q(box.mnt)}/d/b`), 'again', 'and the name can be used again');
    await unmountAndCheck(t, box);
  });
}

test('fuse-native: a user\'s rename onto a .fuse_hidden name keeps the file; unlinking an open file still hides it (security finding 13)', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0'], { binding: 'fuse-native' });
  const m = box.mnt;
  await ok(t, `printf one > ${q(m)}/closed && printf two > ${q(m)}/open && printf three > ${q(m)}/unlinked && mkdir ${q(m)}/d && printf four > ${q(m)}/d/inner`);
  // libfuse's own form, .fuse_hidden + 16 hex digits: a closed file, and an open one with a counter
  // libfuse would not give next.
  await ok(t, `mv ${q(m)}/closed ${q(m)}/.fuse_hidden0000000100000001`);
  const script = [
    'import os, sys',
    'm = sys.argv[1]',
    "fd = os.open(m + '/open', os.O_RDONLY)",
    "os.rename(m + '/open', m + '/.fuse_hidden00000002000000ff')",
    'os.close(fd)',
    // A file unlinked while open: libfuse hides it, svault must not list it, and it goes at its close.
    "fd = os.open(m + '/unlinked', os.O_RDONLY)",
    "os.unlink(m + '/unlinked')",
    "print(sorted(os.listdir(m)))",
    'print(os.read(fd, 10).decode())',
    'os.close(fd)',
    // And in a directory removed while the file is open.
    "fd = os.open(m + '/d/inner', os.O_RDONLY)",
    "os.unlink(m + '/d/inner')",
    "os.rmdir(m + '/d')",
    'print(os.read(fd, 10).decode())',
    'os.close(fd)',
  ].join('\n');
  const out = (await ok(t, `python3 -c ${q(script)} ${q(m)}`)).split('\n');
  t.is(out[0], "['.fuse_hidden0000000100000001', '.fuse_hidden00000002000000ff', 'd']", 'the hidden file of an unlink is not listed; the renamed ones are');
  t.is(out[1], 'three', 'the unlinked file reads through its handle');
  t.is(out[2], 'four');
  await sleep(300); // libfuse unlinks the hidden name after the close, asynchronously
  t.is(await ok(t, `cat ${q(m)}/.fuse_hidden0000000100000001`), 'one');
  t.is(await ok(t, `cat ${q(m)}/.fuse_hidden00000002000000ff`), 'two');
  await remount(t, box);
  t.deepEqual((await ok(t, `ls -A ${q(m)}`)).split('\n').filter(Boolean), ['.fuse_hidden0000000100000001', '.fuse_hidden00000002000000ff'], 'after a remount: the renamed files, and nothing else');
  t.is(await ok(t, `cat ${q(m)}/.fuse_hidden00000002000000ff`), 'two');
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
});
