// The kernel's page cache through a real mount: a file read again while unchanged is served by the kernel,
// with no FUSE read, and a change through any of its names is seen at once. With fuse-native each name is
// its own node and fs/kernel-cache.ts decides per open what may be kept; with svault's own transport
// (devfuse) hard links are one node with one cache. Only child processes touch the mount; the FUSE read
// count comes from `svault status --json`.

import test from 'ava';
import { join } from 'node:path';
import type { Sandbox } from '../helpers/cli.js';
import { checkNothingLeftMounted, dropFileCache, holdPageCache, mountedBox, opCalls, ok, q, randomFile, sha, sha256, sleep, unmountAndCheck } from '../helpers/mount-util.js';

checkNothingLeftMounted(test);

const MiB = 1024 * 1024;
/** The kernel caches attributes (the size) for 1 s (attr_timeout=1). */
const ATTR_CACHE_MS = 1100;

/** FUSE read requests the server has answered so far. */
async function fuseReads(box: Sandbox): Promise<number> {
  return opCalls(box, 'fuse.read');
}

test('fuse-native: an unchanged file is read again from the kernel cache; a change through another name is seen', async (t) => {
  // libfuse 2 gives each name its own node: fs/kernel-cache.ts decides per open what may be kept.
  const box = await mountedBox(t, undefined, { binding: 'fuse-native' });
  const f = join(box.mnt, 'f');
  const g = join(box.mnt, 'g');
  const data = randomFile(join(box.dir, 'src'), 4 * MiB);
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(f)}`);

  const r0 = await fuseReads(box);
  t.is(await sha(t, f), sha256(data));
  t.true((await fuseReads(box)) > r0, 'the first read after the write goes through svault');
  const held = await holdPageCache(t, f); // so that only svault could empty the cache
  const r1 = await fuseReads(box);
  t.is(await sha(t, f), sha256(data));
  t.is(await fuseReads(box), r1, 'the second open keeps the cache: no FUSE read');
  await held.release();

  // g is another name, so another kernel node with its own cache: its first open reads through svault.
  await ok(t, `ln ${q(f)} ${q(g)}`);
  t.is(await sha(t, g), sha256(data));
  const r2 = await fuseReads(box);
  t.true(r2 > r1, 'a new name starts with an empty cache');

  // Both names hold cached pages now. A write through g must not leave f showing the old bytes.
  await ok(t, `printf CHANGED | dd of=${q(g)} bs=1 seek=1000 conv=notrunc status=none`);
  data.write('CHANGED', 1000);
  t.is(await sha(t, f), sha256(data), 'written via g, read via f');
  t.true((await fuseReads(box)) > r2, 'the change dropped f\'s cache at its next open');

  // Truncates through g, down and up again (zeros where the old bytes were): by handle (ftruncate, the
  // truncate command), then by path (truncate(2), from perl). f's next open sees the new bytes.
  const cut = Buffer.concat([data.subarray(0, 100000), Buffer.alloc(data.length - 100000)]);
  await ok(t, `truncate -s 100000 ${q(g)} && truncate -s ${data.length} ${q(g)}`);
  await sleep(ATTR_CACHE_MS); // f's node may hold its old size for 1 s, with or without the page cache
  t.is(await sha(t, f), sha256(cut), 'truncated via g (by handle), read via f');
  await ok(t, `perl -e 'truncate($ARGV[0], 50000) or die "$!"; truncate($ARGV[0], ${data.length}) or die "$!"' ${q(g)}`);
  cut.fill(0, 50000);
  await sleep(ATTR_CACHE_MS);
  t.is(await sha(t, f), sha256(cut), 'truncated via g (by path), read via f');
  await unmountAndCheck(t, box);
});

test('devfuse: hard links are one node with one page cache; an unchanged file is read again with no FUSE read', async (t) => {
  const box = await mountedBox(t, undefined, { binding: 'devfuse' });
  const f = join(box.mnt, 'f');
  const g = join(box.mnt, 'g');
  const data = randomFile(join(box.dir, 'src'), 4 * MiB);
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(f)} && ${dropFileCache(f)}`);
  const r0 = await fuseReads(box);
  t.is(await sha(t, f), sha256(data));
  t.true((await fuseReads(box)) > r0, 'the first read after the file\'s cache was dropped goes through svault');
  const held = await holdPageCache(t, f); // so that only svault could empty the cache
  const r1 = await fuseReads(box);
  t.is(await sha(t, f), sha256(data));
  t.is(await fuseReads(box), r1, 'the second open keeps the cache: no FUSE read');
  await ok(t, `ln ${q(f)} ${q(g)}`);
  t.is(await sha(t, g), sha256(data));
  t.is(await fuseReads(box), r1, 'another name of the same file reads the same cache');
  await held.release();
  t.is((await ok(t, `stat -c %h ${q(f)}`)).trim(), '2', 'the link count through the other name, at once');
  // A write through g is in the one cache f reads: seen at once, with no stale bytes and no FUSE read.
  await ok(t, `printf CHANGED | dd of=${q(g)} bs=1 seek=1000 conv=notrunc status=none`);
  data.write('CHANGED', 1000);
  t.is(await sha(t, f), sha256(data), 'written via g, read via f');
  await ok(t, `truncate -s 100000 ${q(g)} && truncate -s ${data.length} ${q(g)}`);
  const cut = Buffer.concat([data.subarray(0, 100000), Buffer.alloc(data.length - 100000)]);
  t.is(await sha(t, f), sha256(cut), 'truncated via g, read via f at once');
  // What the cache holds is what svault stores: dropped and read again, the same bytes.
  await ok(t, dropFileCache(f));
  t.is(await sha(t, f), sha256(cut));
  await unmountAndCheck(t, box);
});

for (const binding of ['fuse-native', 'devfuse'] as const) test(`${binding}: a rename puts another node at a path: its cache is never served as the path's`, async (t) => {
  const box = await mountedBox(t, undefined, { binding });
  const a = join(box.mnt, 'a');
  const b = join(box.mnt, 'b');
  const tmp = join(box.mnt, 'tmp');
  const data = randomFile(join(box.dir, 'src'), 2 * MiB);
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(a)} && ln ${q(a)} ${q(b)}`);
  // Each name's node caches the content (the second open of each is kept).
  await ok(t, `cat ${q(a)} ${q(a)} ${q(b)} ${q(b)} > /dev/null`);
  // A write through b: b's node is current, a's is stale until its next open.
  await ok(t, `printf NEW | dd of=${q(b)} bs=1 seek=0 conv=notrunc status=none`);
  data.write('NEW', 0);
  await ok(t, `cat ${q(b)} > /dev/null`); // b opened after the change: remembered as current
  // Swap the names: the node with the stale cache (a's) is now at path b.
  await ok(t, `mv ${q(a)} ${q(tmp)} && mv ${q(b)} ${q(a)} && mv ${q(tmp)} ${q(b)}`);
  t.is(await sha(t, b), sha256(data), 'the stale node now at b is dropped at its open');
  t.is(await sha(t, a), sha256(data));

  // A directory rename moves every node below it: swap two directories holding names of one file.
  const d1 = join(box.mnt, 'd1');
  const d2 = join(box.mnt, 'd2');
  const inDirs = randomFile(join(box.dir, 'src2'), MiB);
  await ok(t, `mkdir ${q(d1)} ${q(d2)} && cp ${q(join(box.dir, 'src2'))} ${q(d1)}/x && ln ${q(d1)}/x ${q(d2)}/x`);
  await ok(t, `cat ${q(d1)}/x ${q(d1)}/x ${q(d2)}/x ${q(d2)}/x > /dev/null`);
  await ok(t, `printf Z | dd of=${q(d2)}/x bs=1 seek=5 conv=notrunc status=none && cat ${q(d2)}/x > /dev/null`);
  inDirs.write('Z', 5);
  await ok(t, `mv ${q(d1)} ${q(box.mnt)}/dt && mv ${q(d2)} ${q(d1)} && mv ${q(box.mnt)}/dt ${q(d2)}`);
  t.is(await sha(t, join(d2, 'x')), sha256(inDirs), 'the stale node now at d2/x is dropped at its open');
  await unmountAndCheck(t, box);
});
