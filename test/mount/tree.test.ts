// Directory trees through a real mount: tar in and out of a few hundred files with symlinks, directory
// renames with contents, rename over an existing file, rmdir of a non-empty directory, and git at work.
// The mount is only ever touched by child processes.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { installed, sh } from '../helpers/cli.js';
import { prng } from '../../fixtures/tree.js';
import { checkNothingLeftMounted, mountedBox, ok, q, remount, sha, stat, unmountAndCheck } from '../helpers/mount-util.js';

checkNothingLeftMounted(test);

/** Builds a tree outside the mount: nested dirs, files of mixed sizes (0 B to ~400 KiB), symlinks. Returns the counts. */
function buildTree(root: string, seed = 42): { files: number; dirs: number; links: number } {
  const rnd = prng(seed);
  const dirs = [''];
  mkdirSync(root, { recursive: true });
  for (let d = 0; d < 40; d++) {
    const parent = dirs[Math.floor(rnd() * dirs.length)] as string;
    const depth = parent.split('/').length;
    const name = depth > 5 ? `leaf${d}` : `dir ${d}${d % 7 === 0 ? ' ümlaut' : ''}`;
    const rel = parent ? `${parent}/${name}` : name;
    mkdirSync(join(root, rel), { recursive: true });
    dirs.push(rel);
  }
  let files = 0;
  for (let i = 0; i < 300; i++) {
    const dir = dirs[Math.floor(rnd() * dirs.length)] as string;
    const r = rnd();
    // Mostly small files, some around the 128 KiB piece size, a few larger.
    const size = r < 0.1 ? 0 : r < 0.7 ? Math.floor(rnd() * 4096) : r < 0.95 ? Math.floor(rnd() * 140_000) : 200_000 + Math.floor(rnd() * 200_000);
    writeFileSync(join(root, dir, `file-${i}.bin`), randomBytes(size));
    files++;
  }
  let links = 0;
  for (let i = 0; i < 20; i++) {
    const dir = dirs[Math.floor(rnd() * dirs.length)] as string;
    const target = i % 4 === 0 ? '/nonexistent/dangling' : i % 4 === 1 ? `file-${i}.bin` : i % 4 === 2 ? '..' : `../../some/relative/${'x'.repeat(i * 10)}`;
    symlinkSync(target, join(root, dir, `link-${i}`));
    links++;
  }
  return { files, dirs: dirs.length - 1, links };
}

/** sha256 of every file and the target of every symlink, one sorted line each, relative to root. */
async function manifest(t: Parameters<typeof ok>[0], root: string): Promise<string> {
  return ok(
    t,
    `cd ${q(root)} && { find . -type f -print0 | sort -z | xargs -0 -r sha256sum; find . -type l -printf 'L %p -> %l\\n' | sort; find . -type d -printf 'D %p\\n' | sort; }`,
  );
}

test('a tree of a few hundred files and symlinks tars in and out unchanged, also after a remount', async (t) => {
  const box = await mountedBox(t);
  const src = join(box.dir, 'src');
  const counts = buildTree(src);
  t.true(counts.files >= 300 && counts.links >= 20);
  const tarIn = join(box.dir, 'in.tar');
  await ok(t, `tar -C ${q(src)} -cf ${q(tarIn)} .`);
  await ok(t, `tar -C ${q(box.mnt)} -xf ${q(tarIn)}`);

  const want = await manifest(t, src);
  t.is(want.split('\n').filter((l) => l.startsWith('L ')).length, counts.links);
  t.is(await manifest(t, box.mnt), want, 'manifest of the mount equals the source');
  await ok(t, `diff -r --no-dereference ${q(src)} ${q(box.mnt)}`);

  const out = join(box.dir, 'out');
  await ok(t, `mkdir ${q(out)} && tar -C ${q(box.mnt)} -cf - . | tar -C ${q(out)} -xf -`);
  await ok(t, `diff -r --no-dereference ${q(src)} ${q(out)}`);
  t.is(await manifest(t, out), want, 'manifest of the tar taken out of the mount');

  await remount(t, box);
  t.is(await manifest(t, box.mnt), want, 'manifest after remount');
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, `fsck after tar in: ${fsck.stdout}${fsck.stderr}`);
});

test('mv of a directory with contents keeps every file, to a new name and into another directory', async (t) => {
  const box = await mountedBox(t);
  const m = box.mnt;
  await ok(t, `mkdir -p ${q(m)}/a/b/c ${q(m)}/x/y && for d in a a/b a/b/c; do for i in 1 2 3; do echo "$d $i" > ${q(m)}/$d/f$i; done; done && ln -s b/c ${q(m)}/a/lnk`);
  const before = await manifest(t, join(m, 'a'));
  t.regex(before, /L \.\/lnk -> b\/c/);

  await ok(t, `mv ${q(m)}/a ${q(m)}/renamed`);
  t.is((await sh(`test -e ${q(m)}/a`)).code, 1, 'the old name is gone');
  t.is(await manifest(t, join(m, 'renamed')), before, 'same contents under the new name');
  t.is((await ok(t, `cat ${q(m)}/renamed/b/c/f2`)).trim(), 'a/b/c 2');

  // Into another directory (a different parent), then a file read through the deepest new path.
  await ok(t, `mv ${q(m)}/renamed ${q(m)}/x/y/moved`);
  t.is(await manifest(t, join(m, 'x/y/moved')), before);
  t.is((await ok(t, `cat ${q(m)}/x/y/moved/lnk/f3`)).trim(), 'a/b/c 3', 'a relative symlink still resolves');
  t.deepEqual((await ok(t, `ls -A ${q(m)}`)).split('\n').filter(Boolean), ['x']);
  // Directory link counts: x/y holds one subdirectory now (2 + 1).
  await new Promise((r) => setTimeout(r, 1100)); // attr_timeout=1
  t.is(await stat(t, '%h', join(m, 'x/y')), '3');

  // Moving a directory into itself is refused.
  const bad = await sh(`mv ${q(m)}/x ${q(m)}/x/y/moved/inside`);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /Invalid argument|cannot move .* to a subdirectory of itself/);

  await remount(t, box);
  t.is(await manifest(t, join(m, 'x/y/moved')), before, 'after remount');
  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('rename over an existing file replaces it and frees its pieces', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const m = box.mnt;
  // Every file here is bigger than format 2 keeps INLINE (3,818 bytes), so each has a blob to free.
  writeFileSync(join(box.dir, 'big'), randomBytes(600_000));
  writeFileSync(join(box.dir, 'new'), randomBytes(5000));
  await ok(t, `cp ${q(join(box.dir, 'big'))} ${q(m)}/old && cp ${q(join(box.dir, 'new'))} ${q(m)}/new`);
  const wantNew = await sha(t, join(m, 'new'));
  await ok(t, `mv -f ${q(m)}/new ${q(m)}/old`);
  t.deepEqual((await ok(t, `ls -A ${q(m)}`)).split('\n').filter(Boolean), ['old']);
  t.is(await sha(t, join(m, 'old')), wantNew);
  t.is(await stat(t, '%s', join(m, 'old')), '5000');

  // Through rename(2) directly as well (python's os.replace), over a file that is open for reading.
  writeFileSync(join(box.dir, 'p'), 'one'.repeat(2000));
  writeFileSync(join(box.dir, 'r'), 'two'.repeat(2000));
  await ok(t, `cp ${q(join(box.dir, 'p'))} ${q(m)}/p && cp ${q(join(box.dir, 'r'))} ${q(m)}/r`);
  const out = await ok(t, `python3 -c ${q(`
import os, sys
m = sys.argv[1]
f = open(os.path.join(m, 'r'), 'rb')
os.replace(os.path.join(m, 'p'), os.path.join(m, 'r'))
print(f.read().decode(), open(os.path.join(m, 'r'), 'rb').read().decode(), os.path.exists(os.path.join(m, 'p')))
f.close()
`)} ${q(m)}`);
  t.is(out.trim(), `${'two'.repeat(2000)} ${'one'.repeat(2000)} False`, 'the open old file keeps its data; the name now holds the new one');

  await unmountAndCheck(t, box);
  const fsck = await box.svault(['fsck', '--store', box.store, '--json']);
  t.is(fsck.code, 0, `no orphaned pieces after the replaced files are gone: ${fsck.stdout}`);
  const info = JSON.parse((await box.svault(['info', '--store', box.store, '--json'])).stdout) as { blobs: number; files: number };
  t.is(info.files, 2);
  t.is(info.blobs, 2, 'only the pieces of old and r are left (chaff 0): the replaced files\' pieces are freed');
});

test('rmdir of a non-empty directory fails with "Directory not empty"', async (t) => {
  const box = await mountedBox(t);
  const d = join(box.mnt, 'd');
  await ok(t, `mkdir -p ${q(d)}/sub && echo x > ${q(d)}/f`);
  const r = await sh(`rmdir ${q(d)}`);
  t.is(r.code, 1);
  t.regex(r.stderr, /Directory not empty/);
  const py = await sh(`python3 -c 'import os,sys
try:
    os.rmdir(sys.argv[1])
except OSError as e:
    print(e.errno)' ${q(d)}`);
  t.is(py.stdout.trim(), '39', 'ENOTEMPTY');
  // Renaming a directory over a non-empty one fails the same way.
  await ok(t, `mkdir ${q(box.mnt)}/e`);
  const mv = await sh(`python3 -c 'import os,sys
try:
    os.rename(sys.argv[1] + "/e", sys.argv[1] + "/d")
except OSError as e:
    print(e.errno)' ${q(box.mnt)}`);
  t.is(mv.stdout.trim(), '39');
  t.is(await stat(t, '%F', d), 'directory', 'still there');
  await ok(t, `rmdir ${q(d)}/sub && rm ${q(d)}/f && rmdir ${q(d)}`);
  t.is((await sh(`test -e ${q(d)}`)).code, 1, 'gone once empty');
  await unmountAndCheck(t, box);
});

const hasGit = installed('git');
(hasGit ? test : test.skip)(`git init, add, commit, log and checkout work inside the mount${hasGit ? '' : ' (skipped: git is not installed)'}`, async (t) => {
  const box = await mountedBox(t);
  const repo = join(box.mnt, 'repo');
  const env = {
    ...process.env,
    HOME: box.dir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'T',
    GIT_AUTHOR_EMAIL: 't@example.org',
    GIT_COMMITTER_NAME: 'T',
    GIT_COMMITTER_EMAIL: 't@example.org',
  };
  const git = (args: string) => ok(t, `cd ${q(repo)} && git ${args}`, { env });
  await ok(t, `mkdir ${q(repo)} && cd ${q(repo)} && git init -q -b main .`, { env });
  await ok(t, `cd ${q(repo)} && mkdir -p src && for i in $(seq 1 30); do echo "line $i" > src/f$i.txt; done && head -c 300000 /dev/urandom > blob.bin && ln -s src/f1.txt link`);
  await git('add -A');
  await git('commit -q -m first');
  await ok(t, `cd ${q(repo)} && echo changed >> src/f1.txt && git mv src/f2.txt src/renamed.txt && git rm -q src/f3.txt`, { env });
  await git('commit -q -am second');
  t.is((await git('log --format=%s')).trim(), 'second\nfirst');
  t.is((await git('status --porcelain')).trim(), '', 'clean work tree');
  await git('fsck --strict');
  await git('checkout -q HEAD~1');
  t.is((await ok(t, `cat ${q(repo)}/src/f1.txt`)).trim(), 'line 1');
  t.is((await sh(`test -e ${q(repo)}/src/f3.txt`)).code, 0);
  await git('checkout -q main');
  t.is((await ok(t, `cat ${q(repo)}/src/f1.txt`)).trim(), 'line 1\nchanged');
  await git('gc -q');
  await remount(t, box);
  t.is((await git('log --format=%s')).trim(), 'second\nfirst', 'history after remount');
  await git('fsck --strict');
  t.is((await git('status --porcelain')).trim(), '');
  await unmountAndCheck(t, box);
});
