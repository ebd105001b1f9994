// Attributes through a real mount: symlinks, hard links, chmod, chown, times (touch, cp -p, tar x,
// rsync -t) and extended attributes (python3's os.*xattr). Only child processes touch the mount.

import test from 'ava';
import { join } from 'node:path';
import { installed, sh } from '../helpers/cli.js';
import { checkNothingLeftMounted, mountedBox, ok, q, remount, sleep, stat, unmountAndCheck } from '../helpers/mount-util.js';

checkNothingLeftMounted(test);

/** The kernel caches attributes for 1 s (attr_timeout=1). */
const ATTR_CACHE_MS = 1100;
const T2001 = 981173106; // 2001-02-03 04:05:06 UTC

test('symlinks: readlink gives the target back, reads follow it, lstat sees a link', async (t) => {
  const box = await mountedBox(t);
  const m = box.mnt;
  const long = 'd/'.repeat(400) + 'end';
  await ok(t, `echo hello > ${q(m)}/target && ln -s target ${q(m)}/rel && ln -s ${q(m + '/target')} ${q(m)}/abs && ln -s /no/such/file ${q(m)}/dangling && ln -s ${q(long)} ${q(m)}/long`);
  t.is((await ok(t, `readlink ${q(m)}/rel`)).trim(), 'target');
  t.is((await ok(t, `readlink ${q(m)}/abs`)).trim(), join(m, 'target'));
  t.is((await ok(t, `readlink ${q(m)}/dangling`)).trim(), '/no/such/file');
  t.is((await ok(t, `readlink ${q(m)}/long`)).trim(), long);
  t.is((await ok(t, `cat ${q(m)}/rel ${q(m)}/abs`)), 'hello\nhello\n');
  t.is(await stat(t, '%F', join(m, 'rel')), 'symbolic link');
  t.is(await stat(t, '%s', join(m, 'rel')), '6', 'a symlink\'s size is its target\'s length');
  t.is(await stat(t, '%F', join(m, 'rel'), '-L'), 'regular file');
  const dang = await sh(`cat ${q(m)}/dangling`);
  t.not(dang.code, 0);
  t.regex(dang.stderr, /No such file or directory/);
  const rl = await sh(`readlink -v ${q(m)}/target`);
  t.not(rl.code, 0, 'readlink of a regular file fails (EINVAL)');
  await remount(t, box);
  t.is((await ok(t, `readlink ${q(m)}/long`)).trim(), long, 'after remount');
  await unmountAndCheck(t, box);
});

test('hard links: link count, shared content both ways, survive unlinking the first name', async (t) => {
  const box = await mountedBox(t);
  const a = join(box.mnt, 'a');
  const b = join(box.mnt, 'sub', 'b');
  await ok(t, `mkdir ${q(box.mnt)}/sub && printf first > ${q(a)} && ln ${q(a)} ${q(b)}`);
  t.is(await stat(t, '%h', b), '2', 'nlink on the new name');
  t.is(await ok(t, `cat ${q(b)}`), 'first');
  await ok(t, `printf ' second' >> ${q(b)}`);
  await sleep(ATTR_CACHE_MS); // the other name may hold a cached size for 1 s
  t.is(await ok(t, `cat ${q(a)}`), 'first second', 'written via b, read via a');
  t.is(await stat(t, '%h', a), '2', 'nlink on the first name, once its cache expired');
  await ok(t, `printf X | dd of=${q(a)} bs=1 seek=0 conv=notrunc status=none`);
  await sleep(ATTR_CACHE_MS);
  t.is(await ok(t, `cat ${q(b)}`), 'Xirst second', 'written via a, read via b');
  await ok(t, `ln ${q(b)} ${q(box.mnt)}/c`);
  t.is(await stat(t, '%h', join(box.mnt, 'c')), '3');
  await ok(t, `rm ${q(a)}`);
  await sleep(ATTR_CACHE_MS);
  t.is(await stat(t, '%h', b), '2', 'one name fewer');
  t.is(await ok(t, `cat ${q(b)}`), 'Xirst second');
  await remount(t, box);
  t.is(await stat(t, '%h', b), '2', 'after remount');
  t.is(await ok(t, `cat ${q(box.mnt)}/c`), 'Xirst second');
  await ok(t, `rm ${q(b)} ${q(box.mnt)}/c`);
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('inode numbers: hard links share one (stat %i), and a file keeps its number across a remount', async (t) => {
  const box = await mountedBox(t);
  const a = join(box.mnt, 'a');
  const b = join(box.mnt, 'b');
  await ok(t, `echo x > ${q(a)} && ln ${q(a)} ${q(b)} && echo y > ${q(box.mnt)}/other`);
  const ia = await stat(t, '%i', a);
  t.is(await stat(t, '%i', b), ia, 'two names of one file show one inode number (tar, cp -a, rsync -H, du and find -samefile rely on it)');
  t.not(await stat(t, '%i', join(box.mnt, 'other')), ia, 'another file has another number');
  await remount(t, box);
  t.is(await stat(t, '%i', a), ia, 'the same number after a remount');
  await unmountAndCheck(t, box);
});

test('chmod and chown show in stat and survive a remount', async (t) => {
  const box = await mountedBox(t);
  const f = join(box.mnt, 'f');
  const d = join(box.mnt, 'd');
  const l = join(box.mnt, 'l');
  await ok(t, `echo x > ${q(f)} && mkdir ${q(d)} && ln -s f ${q(l)}`);
  await ok(t, `chmod 640 ${q(f)}`);
  t.is(await stat(t, '%a', f), '640');
  await ok(t, `chmod 0 ${q(f)}`);
  t.is(await stat(t, '%a', f), '0');
  await ok(t, `chmod 4751 ${q(f)}`);
  t.is(await stat(t, '%a', f), '4751');
  await ok(t, `chmod 1777 ${q(d)}`);
  t.is(await stat(t, '%a %F', d), '1777 directory');
  await ok(t, `chmod u=rw,go=r ${q(f)}`);
  t.is(await stat(t, '%a', f), '644', 'symbolic modes (chmod reads the mode first)');

  await ok(t, `chown 1234:5678 ${q(f)}`);
  t.is(await stat(t, '%u:%g', f), '1234:5678');
  await ok(t, `chown :99 ${q(f)}`);
  t.is(await stat(t, '%u:%g', f), '1234:99', 'chown :g keeps the owner');
  await ok(t, `chown 42 ${q(f)}`);
  t.is(await stat(t, '%u:%g', f), '42:99', 'chown u keeps the group');
  await ok(t, `chown 7:8 ${q(d)}`);
  t.is(await stat(t, '%u:%g', d), '7:8');
  await ok(t, `chown -h 11:12 ${q(l)}`);
  t.is(await stat(t, '%u:%g', l), '11:12', 'lchown changes the link');
  t.is(await stat(t, '%u:%g', f), '42:99', 'and not its target');

  await remount(t, box);
  t.is(await stat(t, '%a %u:%g', f), '644 42:99');
  t.is(await stat(t, '%a %u:%g', d), '1777 7:8');
  t.is(await stat(t, '%u:%g', l), '11:12');
  await unmountAndCheck(t, box);
});

test('touch -m / -a set exactly one time; plain touch sets now; cp -p and tar x keep mtimes', async (t) => {
  const box = await mountedBox(t);
  const f = join(box.mnt, 'f');
  const env = { ...process.env, TZ: 'UTC' };
  await ok(t, `echo data > ${q(f)}`);
  await ok(t, `touch -a -d '1999-12-31 23:59:59 UTC' ${q(f)}`);
  t.is(await stat(t, '%X', f), '946684799', 'touch -a sets atime');
  await ok(t, `touch -m -d '2001-02-03 04:05:06 UTC' ${q(f)}`);
  t.is(await stat(t, '%Y', f), String(T2001), 'touch -m sets mtime exactly');
  t.is(await stat(t, '%X', f), '946684799', 'touch -m keeps atime');
  await ok(t, `touch -a -d '2010-01-01 00:00:00 UTC' ${q(f)}`);
  t.is(await stat(t, '%X', f), '1262304000');
  t.is(await stat(t, '%Y', f), String(T2001), 'touch -a keeps mtime');
  await ok(t, `touch -d '2003-03-03 03:03:03.250 UTC' ${q(f)}`, { env });
  t.is(await stat(t, '%X %Y', f), '1046660583 1046660583', 'touch -d sets both');
  t.is((await ok(t, `stat -c %y ${q(f)}`, { env })).trim().slice(0, 23), '2003-03-03 03:03:03.250', 'milliseconds are kept');

  await ok(t, `touch ${q(f)}`);
  const now = Math.floor(Date.now() / 1000);
  const [at, mt] = (await stat(t, '%X %Y', f)).split(' ').map(Number);
  t.true(Math.abs((mt ?? 0) - now) < 60, `plain touch: mtime ${mt} within a minute of ${now}`);
  t.true(Math.abs((at ?? 0) - now) < 60, `plain touch: atime ${at} within a minute of ${now}`);
  await ok(t, `touch ${q(box.mnt)}/new-by-touch`);
  t.true(Math.abs(Number(await stat(t, '%Y', join(box.mnt, 'new-by-touch'))) - now) < 60, 'touch creates a file with the time now');

  // A write moves mtime to now.
  await ok(t, `touch -m -d @${T2001} ${q(f)} && echo more >> ${q(f)}`);
  t.true(Math.abs(Number(await stat(t, '%Y', f)) - now) < 60, 'a write sets mtime to now');

  // cp -p into the mount and back out.
  const outside = join(box.dir, 'outside');
  await ok(t, `head -c 300000 /dev/urandom > ${q(outside)} && touch -d '2005-06-07 08:09:10 UTC' ${q(outside)}`);
  const want = await stat(t, '%Y', outside);
  await ok(t, `cp -p ${q(outside)} ${q(box.mnt)}/copied`);
  t.is(await stat(t, '%Y', join(box.mnt, 'copied')), want, 'cp -p into the mount keeps mtime');
  await ok(t, `cp -p ${q(box.mnt)}/copied ${q(box.dir)}/back`);
  t.is(await stat(t, '%Y', join(box.dir, 'back')), want, 'cp -p out of the mount keeps mtime');

  // tar x restores the mtimes of files, directories and symlinks recorded in the archive.
  const tree = join(box.dir, 'tree');
  await ok(
    t,
    `mkdir -p ${q(tree)}/d/e && head -c 200000 /dev/urandom > ${q(tree)}/d/big && echo small > ${q(tree)}/d/e/small && echo s > ${q(tree)}/top && ln -s d/big ${q(tree)}/lnk` +
      ` && touch -d '1995-05-05 05:05:05 UTC' ${q(tree)}/d/big && touch -d '2011-11-11 11:11:11 UTC' ${q(tree)}/d/e/small && touch -d '2020-02-20 20:20:20 UTC' ${q(tree)}/top` +
      ` && touch -h -d '2015-01-01 00:00:00 UTC' ${q(tree)}/lnk && touch -d '1990-01-01 00:00:00 UTC' ${q(tree)}/d/e ${q(tree)}/d` +
      ` && tar -C ${q(tree)} -cf ${q(box.dir)}/tree.tar .`,
  );
  await ok(t, `mkdir ${q(box.mnt)}/x && tar -C ${q(box.mnt)}/x -xf ${q(box.dir)}/tree.tar`);
  const times = (root: string) => ok(t, `cd ${q(root)} && find . -mindepth 1 -printf '%y %p %T@\\n' | sed 's/\\.[0-9]*$//' | sort`);
  const wantTimes = await times(tree);
  t.regex(wantTimes, /f \.\/d\/big 799650305/);
  t.is(await times(join(box.mnt, 'x')), wantTimes, 'mtimes of files, dirs and the symlink after tar x');

  await remount(t, box);
  t.is(await stat(t, '%Y', join(box.mnt, 'copied')), want, 'cp -p mtime after remount');
  t.is(await times(join(box.mnt, 'x')), wantTimes, 'tar mtimes after remount');
  await unmountAndCheck(t, box);
});

// .ci/run installs rsync; elsewhere it may be missing, and the test says so in its title.
const hasRsync = installed('rsync');
(hasRsync ? test : test.skip)(`rsync -t keeps mtimes${hasRsync ? '' : ' (skipped: rsync is not installed)'}`, async (t) => {
  const box = await mountedBox(t);
  const src = join(box.dir, 'src');
  await ok(t, `mkdir -p ${q(src)}/d && echo a > ${q(src)}/a && echo b > ${q(src)}/d/b && touch -d '2002-02-02 02:02:02 UTC' ${q(src)}/a ${q(src)}/d/b`);
  await ok(t, `rsync -rt ${q(src)}/ ${q(box.mnt)}/`);
  t.is(await stat(t, '%Y', join(box.mnt, 'a')), '1012615322');
  t.is(await stat(t, '%Y', join(box.mnt, 'd/b')), '1012615322');
  await ok(t, `rsync -rt ${q(box.mnt)}/ ${q(box.dir)}/back/`);
  t.is(await stat(t, '%Y', join(box.dir, 'back/d/b')), '1012615322');
  await unmountAndCheck(t, box);
});

// Each step is run on its own and reports its result or the errno name, so one failing call does not
// hide the others. python3's os.getxattr first tries a 128-byte buffer (ERANGE then a bigger one) and
// os.listxattr a 256-byte one, as many tools do: values and name lists bigger than that are part of the test.
const XATTR_SCRIPT = `
import errno, json, os, sys
f = sys.argv[1]
binary = bytes(range(256)) * 4
names = ['user.name-%02d-%s' % (k, 'x' * 30) for k in range(12)]
out = {}
def step(key, fn):
    try:
        out[key] = fn()
    except OSError as e:
        out[key] = errno.errorcode.get(e.errno, str(e.errno))
step('set_text', lambda: os.setxattr(f, 'user.text', b'hello'))
step('set_binary', lambda: os.setxattr(f, 'user.binary', binary))
step('set_empty', lambda: os.setxattr(f, 'user.empty', b''))
step('text', lambda: os.getxattr(f, 'user.text').decode())
step('binary', lambda: os.getxattr(f, 'user.binary') == binary)
step('empty', lambda: os.getxattr(f, 'user.empty').hex())
step('list', lambda: sorted(os.listxattr(f)))
step('replace', lambda: os.setxattr(f, 'user.text', b'replaced', os.XATTR_REPLACE))
step('replaced', lambda: os.getxattr(f, 'user.text').decode())
step('missing', lambda: os.getxattr(f, 'user.missing'))
step('create_existing', lambda: os.setxattr(f, 'user.text', b'x', os.XATTR_CREATE))
step('replace_missing', lambda: os.setxattr(f, 'user.nope', b'x', os.XATTR_REPLACE))
step('remove', lambda: os.removexattr(f, 'user.empty'))
step('removed', lambda: os.getxattr(f, 'user.empty'))
step('remove_missing', lambda: os.removexattr(f, 'user.empty'))
step('list_after', lambda: sorted(os.listxattr(f)))
for n in names:
    os.setxattr(f, n, b'v')
step('long_list', lambda: sorted(os.listxattr(f)) == sorted(['user.binary', 'user.text'] + names))
for n in names:
    os.removexattr(f, n)
print(json.dumps(out))
`;

const EXPECTED_XATTRS = {
  set_text: null,
  set_binary: null,
  set_empty: null,
  text: 'hello',
  binary: true,
  empty: '',
  list: ['user.binary', 'user.empty', 'user.text'],
  replace: null,
  replaced: 'replaced',
  missing: 'ENODATA',
  create_existing: 'EEXIST',
  replace_missing: 'ENODATA',
  remove: null,
  removed: 'ENODATA',
  remove_missing: 'ENODATA',
  list_after: ['user.binary', 'user.text'],
  long_list: true,
};

const CHECK_SCRIPT = `
import json, os, sys
f = sys.argv[1]
out = {}
for key, fn in [('list', lambda: sorted(os.listxattr(f))), ('text', lambda: os.getxattr(f, 'user.text').decode()), ('binary', lambda: os.getxattr(f, 'user.binary') == bytes(range(256)) * 4)]:
    try:
        out[key] = fn()
    except OSError as e:
        out[key] = e.strerror
print(json.dumps(out))
`;

test('xattrs: set, get, list and remove (binary values too), ENODATA for a missing one', async (t) => {
  const box = await mountedBox(t);
  const f = join(box.mnt, 'f');
  const d = join(box.mnt, 'd');
  await ok(t, `echo x > ${q(f)} && mkdir ${q(d)}`);
  for (const target of [f, d]) {
    const out = JSON.parse(await ok(t, `python3 -c ${q(XATTR_SCRIPT)} ${q(target)}`)) as Record<string, unknown>;
    t.deepEqual(out, EXPECTED_XATTRS, `xattrs on ${target}`);
  }
  // The file's contents are untouched by its xattrs.
  t.is(await ok(t, `cat ${q(f)}`), 'x\n');
  await remount(t, box);
  const after = JSON.parse(await ok(t, `python3 -c ${q(CHECK_SCRIPT)} ${q(f)}`)) as Record<string, unknown>;
  t.deepEqual(after, { list: ['user.binary', 'user.text'], text: 'replaced', binary: true }, 'xattrs after remount');
  await unmountAndCheck(t, box);
});
