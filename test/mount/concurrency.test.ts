// Several processes at once on one mount: writers to different files, readers of one file, many small
// files created in one directory, and readers during writes. Every process is a child of this one.

import test from 'ava';
import { join } from 'node:path';
import { sh } from '../helpers/cli.js';
import { checkNothingLeftMounted, liveStatus, mountedBox, ok, opCalls, q, randomFile, remount, sha, sha256, unmountAndCheck } from '../helpers/mount-util.js';

checkNothingLeftMounted(test);

const MiB = 1024 * 1024;

test('4 writers to different files at once (dd and cp), then every file checks out', async (t) => {
  const box = await mountedBox(t);
  const sizes = [8 * MiB, 8 * MiB + 12345, 5 * MiB, 3 * MiB + 1];
  const want = sizes.map((n, i) => sha256(randomFile(join(box.dir, `src${i}`), n)));
  const cmds = sizes.map((_, i) =>
    i % 2 === 0
      ? `dd if=${q(join(box.dir, `src${i}`))} of=${q(join(box.mnt, `f${i}`))} bs=64K status=none`
      : `cp ${q(join(box.dir, `src${i}`))} ${q(join(box.mnt, `f${i}`))}`,
  );
  const results = await Promise.all(cmds.map((c) => sh(c)));
  results.forEach((r, i) => t.is(r.code, 0, `writer ${i}: ${r.stderr}`));
  for (let i = 0; i < sizes.length; i++) t.is(await sha(t, join(box.mnt, `f${i}`)), want[i] as string, `f${i}`);

  // Nothing is left open once the writers are done.
  const live = await liveStatus(box); // throws unless status exits 0 and lists this mount
  t.is(live.openFiles, 0);
  // The server says where its memory is: V8's heap by space, and the buffers outside it.
  const mem = live.process;
  t.truthy(mem, 'status reports the server process figures');
  if (mem) {
    t.true(mem.heapUsedBytes > 0 && mem.heapUsedBytes <= mem.heapTotalBytes, `heap used ${mem.heapUsedBytes} of ${mem.heapTotalBytes}`);
    t.true(mem.rssBytes > mem.heapUsedBytes, `rss ${mem.rssBytes}`);
    t.true(mem.externalBytes >= 0);
    t.true((mem.heapSpaces['old_space']?.usedBytes ?? 0) > 0 && mem.heapSpaces['new_space'] !== undefined, JSON.stringify(mem.heapSpaces));
  }

  await remount(t, box);
  for (let i = 0; i < sizes.length; i++) t.is(await sha(t, join(box.mnt, `f${i}`)), want[i] as string, `f${i} after remount`);
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('4 readers of one file at once all see the same bytes', async (t) => {
  const box = await mountedBox(t);
  const want = sha256(randomFile(join(box.dir, 'src'), 16 * MiB + 777));
  const f = join(box.mnt, 'f');
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(f)}`);
  await remount(t, box); // cold caches: every reader gathers pieces from the store
  const results = await Promise.all([1, 2, 3, 4].map(() => sh(`sha256sum ${q(f)}`)));
  for (const r of results) {
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.split(' ')[0], want);
  }
  // Readers at different offsets with small reads, at once.
  const slices = await Promise.all([0, 3, 7, 11].map((k) => sh(`dd if=${q(f)} bs=4096 skip=${k * 256} count=300 status=none | sha256sum`)));
  const local = await Promise.all([0, 3, 7, 11].map((k) => sh(`dd if=${q(join(box.dir, 'src'))} bs=4096 skip=${k * 256} count=300 status=none | sha256sum`)));
  t.deepEqual(slices.map((r) => r.stdout), local.map((r) => r.stdout));
  await unmountAndCheck(t, box);
});

test('4 shells creating 50 small files each in one directory, while a reader re-reads another file', async (t) => {
  const box = await mountedBox(t);
  const d = join(box.mnt, 'd');
  await ok(t, `mkdir ${q(d)}`);
  const wantBig = sha256(randomFile(join(box.dir, 'big'), 4 * MiB));
  await ok(t, `cp ${q(join(box.dir, 'big'))} ${q(box.mnt)}/big`);
  const writers = [0, 1, 2, 3].map((w) => sh(`for i in $(seq 1 50); do echo "writer ${w} file $i" > ${q(d)}/w${w}-$i; done`));
  const reader = sh(`for i in 1 2 3 4 5; do sha256sum ${q(box.mnt)}/big; done`);
  const [r0, r1, r2, r3, rr] = await Promise.all([...writers, reader]);
  for (const r of [r0, r1, r2, r3]) t.is(r?.code, 0, r?.stderr);
  t.is(rr?.code, 0, rr?.stderr);
  t.deepEqual(new Set(rr?.stdout.trim().split('\n').map((l) => l.split(' ')[0])), new Set([wantBig]));

  const names = (await ok(t, `ls -1 ${q(d)}`)).split('\n').filter(Boolean);
  t.is(names.length, 200);
  const contents = await ok(t, `cd ${q(d)} && for w in 0 1 2 3; do for i in $(seq 1 50); do cat w$w-$i; done; done`);
  const expected = [0, 1, 2, 3].flatMap((w) => Array.from({ length: 50 }, (_, i) => `writer ${w} file ${i + 1}`)).join('\n') + '\n';
  t.is(contents, expected);

  const creates = await opCalls(box, 'fuse.create');
  t.true(creates >= 201, `fuse.create counted ${creates} times`);
  await unmountAndCheck(t, box);
});
