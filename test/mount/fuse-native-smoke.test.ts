// The fuse-native binding (libfuse 2, svault mount --binding fuse-native) still serves a working mount:
// the rest of the suite runs on svault's own transport, the default, so this is fuse-native's smoke test.

import test from 'ava';
import { join } from 'node:path';
import { checkNothingLeftMounted, mountedBox, ok, q, randomFile, remount, sha, sha256, unmountAndCheck } from '../helpers/mount-util.js';

checkNothingLeftMounted(test);

test('fuse-native: files, directories, links and a remount', async (t) => {
  const box = await mountedBox(t, undefined, { binding: 'fuse-native' });
  t.regex((await box.svault(['status'])).stdout, /via fuse-native/);
  const data = randomFile(join(box.dir, 'src'), 3 * 1024 * 1024 + 17);
  await ok(t, `cp ${q(join(box.dir, 'src'))} ${q(box.mnt)}/big && mkdir -p ${q(box.mnt)}/d/e && echo small > ${q(box.mnt)}/d/e/s`);
  await ok(t, `ln ${q(box.mnt)}/big ${q(box.mnt)}/d/link && ln -s ../big ${q(box.mnt)}/d/sym && mv ${q(box.mnt)}/d/e ${q(box.mnt)}/e2`);
  t.is(await sha(t, join(box.mnt, 'd', 'link')), sha256(data));
  t.is((await ok(t, `cat ${q(box.mnt)}/e2/s && readlink ${q(box.mnt)}/d/sym && ls ${q(box.mnt)}`)).trim(), 'small\n../big\nbig\nd\ne2');
  await remount(t, box);
  t.is(await sha(t, join(box.mnt, 'big')), sha256(data));
  await ok(t, `rm -rf ${q(box.mnt)}/d ${q(box.mnt)}/e2 ${q(box.mnt)}/big`);
  t.is((await ok(t, `ls -A ${q(box.mnt)}`)).trim(), '');
  await unmountAndCheck(t, box);
});
