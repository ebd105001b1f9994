// Issue 7, item 3: a full disk under the store. The store lives on a 16 MiB tmpfs mounted by the test.
// Writes that cannot fit fail with ENOSPC ("No space left on device", at write or at close), never with
// EIO and never with garbage; what was closed before stays readable with the right sha256; deleting
// files frees space so writing works again; after unmount, fsck is clean. Everything runs through the
// real CLI and shell tools in child processes.

import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { mountedAt, run, sh, type Sandbox } from '../helpers/cli.js';
import { alive, emptyBox, ok, q, randomFile, sha, sleep, unmountAndCheck } from '../helpers/mount-util.js';
import { checkNothingLeftMountedAtAll, mountStore, onlyServer, serverLogs, sha256, tmpfsFor } from '../helpers/reliability-util.js';

checkNothingLeftMountedAtAll(test);

const ENOSPC = /No space left on device/;
const FILE_SIZES = [2_500_000, 1_700_000, 3_100_000];

/** A fresh vault whose store is on a 16 MiB tmpfs, mounted. */
async function fullDiskBox(t: ExecutionContext): Promise<{ box: Sandbox; store: string; disk: string }> {
  const box = emptyBox(t, 'full');
  const disk = await tmpfsFor(t, box, 16);
  const store = join(disk, 'store');
  const i = await box.svault(['init', '--store', store, '--chaff', '0.1']);
  if (i.code !== 0) throw new Error(`init: ${i.stderr}`);
  const m = await mountStore(box, store);
  if (m.code !== 0) throw new Error(`mount (${m.code}): ${m.stderr}`);
  return { box, store, disk };
}

/** Bytes available on the tmpfs. */
async function avail(t: ExecutionContext, disk: string): Promise<number> {
  return Number((await ok(t, `df -B1 --output=avail ${q(disk)} | tail -1`)).trim());
}

/** Polls an async condition every 100 ms for up to ms. */
async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

/** Runs a python3 one-liner with arguments; its stdout, trimmed (fails the test if it fails). */
async function py(script: string, args: string[]): Promise<string> {
  const r = await run('python3', ['-c', script, ...args]);
  if (r.code !== 0) throw new Error(`python3 failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return r.stdout.trim();
}

async function fsckClean(t: ExecutionContext, box: Sandbox, store: string): Promise<void> {
  const f = await box.svault(['fsck', '--store', store]);
  t.is(f.code, 0, `fsck after unmount: ${f.stdout}${f.stderr}`);
}

test('writes that cannot fit fail with ENOSPC; closed files stay intact; deleting frees space; fsck is clean', async (t) => {
  const { box, store, disk } = await fullDiskBox(t);
  const pid = onlyServer(box);
  const src = (name: string, size: number) => {
    const p = join(box.dir, name);
    return { path: p, data: randomFile(p, size) };
  };
  const files = FILE_SIZES.map((size, i) => src(`s${i}`, size));

  // cp files in until one does not fit (16 MiB: at most six or seven of these).
  const stored: { name: string; sha: string }[] = [];
  let failed: { name: string; src: string; stderr: string; code: number } | null = null;
  for (let i = 0; i < 40 && !failed; i++) {
    const f = files[i % files.length] as { path: string; data: Buffer };
    const name = `f${i}`;
    const r = await sh(`cp ${q(f.path)} ${q(join(box.mnt, name))}`);
    if (r.code === 0) stored.push({ name, sha: sha256(f.data) });
    else failed = { name, src: f.path, stderr: r.stderr, code: r.code };
  }
  t.truthy(failed, 'the disk filled up within 40 files');
  if (!failed) return;
  t.log(`${stored.length} files stored before ENOSPC; cp of ${failed.name} said: ${failed.stderr.trim()}`);
  t.not(failed.code, 0);
  t.regex(failed.stderr, ENOSPC, 'cp reports ENOSPC (not EIO)');
  t.notRegex(failed.stderr, /Input\/output error/);
  t.true(stored.length >= 3, `at least 3 files fitted (${stored.length})`);

  // A big stream (more than the 8 MiB the server holds unsealed per file): ENOSPC at write time.
  const dd = await sh(`dd if=/dev/urandom of=${q(join(box.mnt, 'big'))} bs=1M count=24 status=none`);
  t.not(dd.code, 0, 'dd of 24 MiB into a full 16 MiB store fails');
  t.regex(dd.stderr, ENOSPC, `dd reports ENOSPC: ${dd.stderr}`);
  t.notRegex(dd.stderr, /Input\/output error/);

  // The server is still up and everything closed before reads back exactly.
  t.true(alive(pid) && mountedAt(box.mnt), 'the server survived');
  for (const f of stored) t.is(await sha(t, join(box.mnt, f.name)), f.sha, `${f.name} intact after ENOSPC`);
  // What the failed writes left is no garbage: an empty file, or a prefix of what was written.
  for (const [name, from] of [[failed.name, failed.src], ['big', '/dev/null']] as const) {
    const size = Number((await ok(t, `stat -c %s ${q(join(box.mnt, name))}`)).trim());
    if (from === '/dev/null') {
      const r = await sh(`cat ${q(join(box.mnt, name))} > /dev/null`);
      t.is(r.code, 0, `the remains of ${name} (${size} bytes) read without error: ${r.stderr}`);
    } else {
      const r = await sh(`cmp -n ${size} ${q(from)} ${q(join(box.mnt, name))}`);
      t.is(r.code, 0, `${name}: its ${size} bytes are a prefix of what cp wrote: ${r.stdout}${r.stderr}`);
    }
  }

  // Free space: the failed ones and two stored files go; their space comes back; writing works again.
  const [gone1, gone2, ...kept] = stored;
  const availBefore = await avail(t, disk);
  const removed = [gone1, gone2].reduce((n, f) => n + Number(f ? FILE_SIZES[Number(f.name.slice(1)) % FILE_SIZES.length] : 0), 0);
  await ok(t, `rm -f ${q(join(box.mnt, failed.name))} ${q(join(box.mnt, 'big'))} ${q(join(box.mnt, gone1?.name ?? ''))} ${q(join(box.mnt, gone2?.name ?? ''))}`);
  let availAfter = availBefore;
  const freed = await until(async () => (availAfter = await avail(t, disk)) - availBefore >= 0.9 * removed, 5000);
  t.log(`df avail: ${availBefore} bytes before rm, ${availAfter} after (${removed} bytes of files removed)`);
  t.true(freed, `deleting ${removed} bytes of files gives their space back within 5 s (avail ${availBefore} -> ${availAfter})`);
  const again = files[0] as { path: string; data: Buffer };
  await ok(t, `cp ${q(again.path)} ${q(join(box.mnt, 'again'))}`);
  t.is(await sha(t, join(box.mnt, 'again')), sha256(again.data), 'a file written after freeing space reads back');
  await ok(t, `dd if=/dev/zero of=${q(join(box.mnt, 'zeros'))} bs=1M count=1 status=none`);
  t.is(await sha(t, join(box.mnt, 'zeros')), sha256(Buffer.alloc(1 << 20)));
  for (const f of kept) t.is(await sha(t, join(box.mnt, f.name)), f.sha, `${f.name} still intact`);
  t.notRegex(serverLogs(box), /uncaught|unhandled/i, 'no uncaught error in the server log');

  await unmountAndCheck(t, box, [pid]);
  await fsckClean(t, box, store);
  // And the data survives a remount.
  t.is((await mountStore(box, store)).code, 0);
  for (const f of kept) t.is(await sha(t, join(box.mnt, f.name)), f.sha, `${f.name} after remount`);
  await unmountAndCheck(t, box);
});

test('a store full to the last byte (metadata cannot grow either): rm still frees space, and writing works again', async (t) => {
  const { box, store, disk } = await fullDiskBox(t);
  const pid = onlyServer(box);
  const big = join(box.dir, 'big');
  const data = randomFile(big, 3_000_000);
  let n = 0;
  while (n < 10 && (await sh(`cp ${q(big)} ${q(join(box.mnt, `f${n}`))}`)).code === 0) n++;
  t.true(n >= 2 && n < 10, `${n} big files fitted`);
  // Now small files until even they do not fit. Their bytes are INLINE (in the inode record, no blob), so
  // they live only in the commit that writes that record: svault refuses them at close once the disk has
  // no room for that commit, instead of losing them when it fails. python checks every step, close
  // included (bash ignores the result of close after "echo x > file").
  const fill = await run('python3', ['-c', `
import os, sys, errno
d = sys.argv[1]
for i in range(5000):
    step = 'open'
    try:
        fd = os.open(os.path.join(d, 's%d' % i), os.O_CREAT | os.O_WRONLY, 0o644)
        step = 'write'; os.write(fd, b'hello')
        step = 'close'; os.close(fd)
    except OSError as e:
        print('%d small files, then %s failed: %s' % (i, step, errno.errorcode[e.errno])); sys.exit(0)
print('all 5000 fitted')
`, box.mnt]);
  t.log(`${n} big files, then ${fill.stdout.trim()}`);
  t.regex(fill.stdout, /failed: ENOSPC/, 'small files stop fitting too, with ENOSPC');
  // svault stops files from growing while the disk still has room for the next commit (a few hundred KiB);
  // another program takes that, as on a disk shared with anything else.
  await sh(`dd if=/dev/zero of=${q(join(disk, 'other-program'))} bs=4k status=none`);
  const left = await avail(t, disk);
  t.log(`${left} bytes left on the store's disk`);
  t.is(left, 0, 'the store\'s disk is full to the last byte');

  // Reading needs no space.
  t.is(await sha(t, join(box.mnt, 'f0')), sha256(data), 'reads work on a full store');

  // The user frees space the only way they can: by deleting files in the mount.
  const availBefore = await avail(t, disk);
  const rm = await sh(`rm ${q(join(box.mnt, 'f0'))} ${q(join(box.mnt, 'f1'))}`);
  t.is(rm.code, 0, `rm on a full store must work (it is how space is freed): ${rm.stderr}`);
  let availAfter = availBefore;
  const freed = await until(async () => (availAfter = await avail(t, disk)) - availBefore >= 5_000_000, 5000);
  t.log(`df avail: ${availBefore} bytes before rm, ${availAfter} after (6,000,000 bytes of files removed)`);
  t.true(freed, `rm gives the space of the deleted files back within 5 s (avail ${availBefore} -> ${availAfter})`);
  const cp = await sh(`cp ${q(big)} ${q(join(box.mnt, 'after'))}`);
  t.is(cp.code, 0, `writing works again after deleting: ${cp.stderr}`);
  t.is(await sha(t, join(box.mnt, 'after')), sha256(data));
  t.true(alive(pid), 'the server survived');

  const u = await box.unmount();
  t.is(u.code, 0, u.stderr);
  const logs = serverLogs(box);
  t.notRegex(logs, /closing the vault:/, `the server closed the vault cleanly: ${logs.split('\n').filter((l) => /closing|full/.test(l)).join(' | ')}`);
  await unmountAndCheck(t, box, [pid]);
  await fsckClean(t, box, store);
  t.is((await mountStore(box, store)).code, 0);
  t.is((await sh(`stat ${q(join(box.mnt, 'f0'))}`)).code, 1, 'the deletion is durable: f0 stays gone after a remount');
  // Every small file whose close succeeded is there with its bytes: none was accepted and then lost.
  const closed = Number(/^(\d+) small files/.exec(fill.stdout)?.[1] ?? -1);
  const small = await py(`import os, sys, json; d = sys.argv[1]; n = int(sys.argv[2]); print(json.dumps(sum(1 for i in range(n) if open(os.path.join(d, 's%d' % i), 'rb').read() == b'hello')))`, [box.mnt, String(closed)]);
  t.is(small, String(closed), `the ${closed} small files closed before ENOSPC read back after a remount`);
  t.is(await sha(t, join(box.mnt, 'after')), sha256(data));
  await unmountAndCheck(t, box);
});
