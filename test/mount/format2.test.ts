// Format 2 through real mounts (docs/format-2.md): a store `svault init` made, mounted through both
// transports and driven from other processes: a tree copied in and compared across a remount, tar and git, every file type
// (FIFOs, sockets and device nodes, with -o dev or without), link counts and nanosecond times right at
// once, SEEK_DATA/SEEK_HOLE and fallocate, and an fsync that survives a kill -9 of the server.

import test, { type ExecutionContext } from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sandbox, serverPids, sh, type Sandbox } from '../helpers/cli.js';
import { checkNothingLeftMounted, ok, q, randomFile, remount, sha, sha256, unmountAndCheck } from '../helpers/mount-util.js';
import type { BindingName } from '../../fs/bindings.js';

checkNothingLeftMounted(test);

const BINDINGS: BindingName[] = ['devfuse', 'fuse-native'];
const asRoot = process.getuid?.() === 0;
const rootTest = asRoot ? test : test.skip;

/** A format-2 vault, mounted through `binding` (extra mount options after the store). */
async function format2Box(t: ExecutionContext, binding: BindingName, mountOptions: string[] = []): Promise<Sandbox> {
  const box = sandbox(t, 'f2', { binding });
  const init = await box.svault(['init', '--store', box.store, '--chaff', '0.1']);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  const config = JSON.parse(readFileSync(join(box.store, 'svault.json'), 'utf8')) as { format: number };
  t.is(config.format, 2, 'the store is format 2');
  const m = await box.mount(mountOptions);
  if (m.code !== 0) throw new Error(`mount failed (${m.code}): ${m.stderr}`);
  return box;
}

/** Files of every size around format 2's thresholds (inline up to 3,818 bytes, pieces of 128 KiB), odd ones in a/, even ones in a/b/. */
function makeTree(root: string): void {
  mkdirSync(join(root, 'a', 'b', 'c'), { recursive: true });
  const sizes = [0, 1, 1000, 3818, 3819, 4096, 131_071, 131_072, 131_073, 1_000_000];
  sizes.forEach((size, i) => randomFile(join(root, i % 2 ? 'a' : join('a', 'b'), `f${size}`), size));
  writeFileSync(join(root, 'a', 'b', 'c', 'text'), 'hello\n'.repeat(100));
}

for (const binding of BINDINGS) {
  rootTest(`${binding}: a tree copied into a format-2 vault reads back the same, across a remount`, async (t) => {
    const box = await format2Box(t, binding);
    const src = join(box.dir, 'src');
    makeTree(src);
    await ok(t, `cd ${q(src)} && ln a/b/f1000 a/b/c/hard && ln -s f1000 a/b/sym && chmod 600 a/f1 && touch -d '2001-02-03 04:05:06' a/b/f0`);
    await ok(t, `cp -a ${q(src)}/. ${q(box.mnt)}/`);
    const compare = async (what: string) => {
      const d = await sh(`diff -r --no-dereference ${q(src)} ${q(box.mnt)}`);
      t.is(d.code, 0, `${what}: ${d.stdout}${d.stderr}`);
      // fuse-native passes times in milliseconds, svault's own transport nanoseconds; a directory's size is the filesystem's own.
      const digits = binding === 'devfuse' ? 10 : 3;
      const listing = (dir: string) => `cd ${q(dir)} && find . -printf '%p %y %m %n %s %T@\\n' | sed -E -e 's/([.][0-9]{${digits}})[0-9]*$/\\1/' -e 's/^([^ ]+ d [^ ]+ [^ ]+) [0-9]+/\\1 -/' | sort`;
      t.is(await ok(t, listing(box.mnt)), await ok(t, listing(src)), `${what}: types, modes, link counts, sizes and mtimes`);
    };
    await compare('mounted');
    t.regex((await box.svault(['status'])).stdout, new RegExp(`via ${binding}  format 2`));
    await remount(t, box);
    await compare('remounted');
    // Changes after the remount: a rewrite in the middle, an append, a truncate, a rename over a file.
    await ok(t, `cd ${q(box.mnt)} && printf XYZ | dd of=a/f1000000 bs=1 seek=500000 conv=notrunc status=none && echo more >> a/b/c/text && truncate -s 100 a/b/f131073 && mv a/f3818 a/b/f3819`);
    await ok(t, `cd ${q(src)} && printf XYZ | dd of=a/f1000000 bs=1 seek=500000 conv=notrunc status=none && echo more >> a/b/c/text && truncate -s 100 a/b/f131073 && mv a/f3818 a/b/f3819`);
    await remount(t, box);
    const d = await sh(`diff -r --no-dereference ${q(src)} ${q(box.mnt)}`);
    t.is(d.code, 0, d.stdout + d.stderr);
    await unmountAndCheck(t, box);
    const fsck = await box.svault(['fsck', '--store', box.store]);
    t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
    t.regex(fsck.stdout, /clean/);
    const info = await box.svault(['info', '--store', box.store, '--json']);
    t.is(info.code, 0, info.stderr);
    const facts = JSON.parse(info.stdout) as { format: number; files: number; directories: number; symlinks: number };
    t.deepEqual([facts.format, facts.files, facts.directories, facts.symlinks], [2, 10, 4, 1], 'files (a hard link once, one replaced by the rename), directories with the root, symlinks');
  });
}

rootTest('devfuse: tar and git work in a format-2 vault', async (t) => {
  const box = await format2Box(t, 'devfuse');
  const repo = join(box.mnt, 'repo');
  const git = `git -c user.name=t -c user.email=t@example.org -c init.defaultBranch=main`;
  await ok(t, `mkdir ${q(repo)} && cd ${q(repo)} && ${git} init -q && for i in $(seq 1 30); do echo "line $i" > f$i; done && ${git} add . && ${git} commit -qm one && echo changed >> f7 && ${git} commit -qam two`);
  t.is((await ok(t, `cd ${q(repo)} && git log --oneline | wc -l`)).trim(), '2');
  t.is((await ok(t, `cd ${q(repo)} && git fsck --strict 2>&1; echo rc=$?`)).trim().split('\n').pop(), 'rc=0');
  await ok(t, `cd ${q(box.mnt)} && tar cf ${q(box.dir)}/repo.tar repo && mkdir out && tar xf ${q(box.dir)}/repo.tar -C out`);
  t.is((await sh(`diff -r ${q(repo)} ${q(box.mnt)}/out/repo`)).code, 0);
  await remount(t, box);
  t.is((await ok(t, `cd ${q(repo)} && git status --porcelain | wc -l && git log --format=%s | head -1`)).trim(), '0\ntwo');
  await unmountAndCheck(t, box);
});

for (const binding of BINDINGS) {
  rootTest(`${binding}: FIFOs, sockets and device nodes are made, listed, kept and tarred; a FIFO works; devices open only with -o dev`, async (t) => {
    const box = await format2Box(t, binding);
    const m = box.mnt;
    await ok(t, `cd ${q(m)} && mkfifo -m 640 fifo && mknod null c 1 3 && mknod blk b 7 200 && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'`);
    const types = `cd ${q(m)} && stat -c '%n %F %a %t:%T' fifo null blk sock`;
    const expected = ['fifo fifo 640 0:0', 'null character special file 644 1:3', 'blk block special file 644 7:c8', 'sock socket 755 0:0'];
    const shown = async () => (await ok(t, types)).trim().split('\n').map((l) => l.replace(/ (\d+) /, ' $1 '));
    const first = await shown();
    t.deepEqual(first.map((l) => l.split(' ')[0]), ['fifo', 'null', 'blk', 'sock']);
    t.is(first[0], expected[0]);
    t.is(first[1]?.replace(/ \d{3} /, ' 644 '), expected[1]);
    t.is(first[2]?.replace(/ \d{3} /, ' 644 '), expected[2]);
    t.regex(first[3] ?? '', /^sock socket \d+ 0:0$/);
    // A FIFO through the mount is the kernel's: a writer and a reader meet there, svault reads no pieces.
    const fifo = await sh(`cd ${q(m)} && (echo through > fifo &) && cat fifo`);
    t.is(fifo.stdout.trim(), 'through', fifo.stderr);
    // nodev by default: the node is there but opening it is refused.
    const nodev = await sh(`head -c 1 ${q(m)}/null`);
    t.not(nodev.code, 0);
    t.regex(nodev.stderr, /Permission denied/);
    // tar keeps them (as root it makes device nodes too).
    await ok(t, `cd ${q(m)} && tar cf ${q(box.dir)}/nodes.tar fifo null blk && mkdir copy && tar xf ${q(box.dir)}/nodes.tar -C copy`);
    t.is((await ok(t, `cd ${q(m)}/copy && stat -c '%n %F %t:%T' fifo null blk`)).trim(), 'fifo fifo 0:0\nnull character special file 1:3\nblk block special file 7:c8');
    await remount(t, box);
    t.deepEqual(await shown(), first, 'the same after a remount');
    t.is((await box.unmount()).code, 0);
    t.is((await box.mount(['-o', 'dev'])).code, 0);
    t.is((await ok(t, `head -c 0 ${q(m)}/null && echo opened`)).trim(), 'opened', 'with -o dev the device node opens');
    await ok(t, `cd ${q(m)} && rm fifo null blk sock && rm -r copy`);
    t.is((await ok(t, `ls -A ${q(m)} | wc -l`)).trim(), '0');
    await unmountAndCheck(t, box);
  });
}

rootTest('devfuse: link counts, ctime and nanosecond times are right at once', async (t) => {
  const box = await format2Box(t, 'devfuse');
  const f = join(box.mnt, 'f');
  await ok(t, `echo x > ${q(f)} && stat -c %h ${q(f)} >/dev/null && ln ${q(f)} ${q(box.mnt)}/g`);
  t.is((await ok(t, `stat -c %h ${q(f)}`)).trim(), '2', 'the link count through the first name at once');
  await ok(t, `rm ${q(box.mnt)}/g`);
  t.is((await ok(t, `stat -c %h ${q(f)}`)).trim(), '1');
  await ok(t, `touch -m -d '2021-05-06 07:08:09.123456789' ${q(f)}`);
  t.is((await ok(t, `stat -c %y ${q(f)}`)).trim().slice(0, 29), '2021-05-06 07:08:09.123456789');
  await remount(t, box);
  t.is((await ok(t, `stat -c %y ${q(f)}`)).trim().slice(0, 29), '2021-05-06 07:08:09.123456789', 'kept exactly across a remount');
  await unmountAndCheck(t, box);
});

rootTest('devfuse: SEEK_DATA/SEEK_HOLE and fallocate on a format-2 vault', async (t) => {
  const box = await format2Box(t, 'devfuse');
  const f = join(box.mnt, 'sparse');
  const script = String.raw`
import os, sys, ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
M = 1 << 20
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 64 * M)
os.pwrite(fd, b'x' * M, 10 * M)
os.fsync(fd)
out = [os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 10 * M, os.SEEK_HOLE)]
assert libc.fallocate(fd, 3, 10 * M, 512 * 1024) == 0  # PUNCH_HOLE | KEEP_SIZE
out.append(os.lseek(fd, 0, os.SEEK_DATA))
assert libc.fallocate(fd, 0, 64 * M, M) == 0
out.append(os.fstat(fd).st_size)
print(' '.join(map(str, out)))
os.close(fd)`;
  const r = await run('python3', ['-c', script, f]);
  t.is(r.code, 0, r.stderr);
  const M = 1 << 20;
  t.is(r.stdout.trim(), [10 * M, 11 * M, 10 * M + 512 * 1024, 65 * M].join(' '));
  await remount(t, box);
  t.is((await ok(t, `stat -c %s ${q(f)}`)).trim(), String(65 * M));
  t.is((await ok(t, `tail -c +$((10 * 1024 * 1024 + 512 * 1024 + 1)) ${q(f)} | head -c 524288 | tr -d x | wc -c`)).trim(), '0', 'the data after the hole is kept');
  await unmountAndCheck(t, box);
});

for (const binding of BINDINGS) {
  rootTest(`${binding}: what an fsync acknowledged survives a kill -9 of the server; the next mount sweeps the orphans`, async (t) => {
    const box = await format2Box(t, binding);
    const data = randomFile(join(box.dir, 'data'), 3 * 131_072 + 5);
    await ok(t, `cp ${q(box.dir)}/data ${q(box.mnt)}/f && python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' ${q(box.mnt)}/f`);
    await ok(t, `echo small > ${q(box.mnt)}/s && sync ${q(box.mnt)}/s`);
    const pids = serverPids(box);
    t.true(pids.length > 0, 'the server is known');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await run('umount', ['-l', box.mnt]);
    const m = await box.mount();
    t.is(m.code, 0, m.stderr);
    t.is(await sha(t, join(box.mnt, 'f')), sha256(data));
    t.is((await ok(t, `cat ${q(box.mnt)}/s`)).trim(), 'small');
    await unmountAndCheck(t, box);
  });
}
