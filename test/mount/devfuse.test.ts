// svault's own transport (--binding devfuse) through real mounts, driven from other processes: what it
// does that fuse-native could not, and how it is mounted: nosuid,nodev unless asked, setuid bits cleared
// by another user's write, rename between two names of an open file, fstat after the directory went,
// an external umount, and a mount by a user other than root through the setuid fusermount.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, PASSPHRASE, run, sandbox, sh } from '../helpers/cli.js';
import { checkNothingLeftMounted, mountedBox, mountsUnder, ok, q, unmountAndCheck, waitForAsync } from '../helpers/mount-util.js';

checkNothingLeftMounted(test);

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const rootTest = asRoot ? test : test.skip;

/** The options /proc/mounts shows for a mount point. */
function mountOptions(mnt: string): string[] {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt);
  return line?.split(' ')[3]?.split(',') ?? [];
}

/** Runs a shell command as nobody. */
function asNobody(cmd: string, env: NodeJS.ProcessEnv = {}) {
  return run('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'sh', '-c', cmd], { env: { ...process.env, ...env } });
}

/** A setuid-root fusermount on PATH, which a mount by another user needs (Debian's fuse package). */
function setuidFusermount(): string | null {
  for (const name of ['fusermount3', 'fusermount']) {
    const where = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
    if (!where) continue;
    const st = statSync(where);
    if (st.uid === 0 && st.mode & 0o4000) return where;
  }
  return null;
}

rootTest('mounts are nosuid,nodev unless -o suid,dev; -o ro is read-only; the binding is in svault status', async (t) => {
  const box = await mountedBox(t, undefined, { binding: 'devfuse' });
  const opts = mountOptions(box.mnt);
  t.true(opts.includes('nosuid') && opts.includes('nodev'), opts.join(','));
  t.regex((await box.svault(['status'])).stdout, /via devfuse/);
  t.is((await box.unmount()).code, 0);
  t.is((await box.mount(['-o', 'suid,dev,ro'])).code, 0);
  const opts2 = mountOptions(box.mnt);
  t.false(opts2.includes('nosuid') || opts2.includes('nodev'), opts2.join(','));
  t.true(opts2.includes('ro'));
  const write = await sh(`echo x > ${q(box.mnt)}/f`);
  t.not(write.code, 0);
  t.regex(write.stderr, /Read-only file system/);
  await unmountAndCheck(t, box);
});

rootTest('a write by another user clears setuid and setgid; a write by root keeps them', async (t) => {
  const box = sandbox(t, 'sv', { binding: 'devfuse' });
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  chmodSync(box.dir, 0o755); // nobody must reach the mount point
  t.is((await box.mount(['-o', 'allow_other'])).code, 0);
  const f = join(box.mnt, 'f');
  await ok(t, `echo a > ${q(f)} && chmod 6777 ${q(f)} && echo b >> ${q(f)}`);
  t.is((await ok(t, `stat -c %a ${q(f)}`)).trim(), '6777', 'a write by root keeps the bits');
  const w = await asNobody(`echo c >> ${q(f)}`);
  t.is(w.code, 0, w.stderr);
  t.is((await ok(t, `stat -c %a ${q(f)}`)).trim(), '777', 'a write by nobody cleared them');
  t.is((await ok(t, `cat ${q(f)}`)).trim(), 'a\nb\nc');
  await unmountAndCheck(t, box);
});

rootTest('renaming one name of an open file onto another name of it changes nothing, as POSIX says', async (t) => {
  // fuse-native loses the source name here (README, known limitations): libfuse hides the open target first.
  const box = await mountedBox(t, undefined, { binding: 'devfuse' });
  const r = await sh(`cd ${q(box.mnt)} && echo data > f && ln f g && exec 3<f && mv g f; ls; cat f <&3; exec 3<&-`);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['f', 'g', 'data']);
  await unmountAndCheck(t, box);
});

rootTest('fstat of an open file whose name and directory are both gone still answers', async (t) => {
  const box = await mountedBox(t, undefined, { binding: 'devfuse' });
  const script = `import os, sys
d = sys.argv[1] + '/d'
os.mkdir(d)
fd = os.open(d + '/f', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'12345')
os.unlink(d + '/f')
os.rmdir(d)
print(os.fstat(fd).st_size, os.fstat(fd).st_nlink)
os.close(fd)`;
  const r = await run('python3', ['-c', script, box.mnt]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), '5 0');
  await unmountAndCheck(t, box);
});

rootTest('an external umount stops the server and leaves nothing mounted', async (t) => {
  const box = await mountedBox(t, undefined, { binding: 'devfuse' });
  await ok(t, `echo kept > ${q(box.mnt)}/f`);
  await ok(t, `umount ${q(box.mnt)}`);
  const gone = await waitForAsync(async () => (await box.svault(['status'])).stdout.includes('no svault mounts'), 15_000);
  t.true(gone, 'the server exited');
  t.deepEqual(mountsUnder(box.dir), []);
  t.is((await box.mount()).code, 0);
  t.is((await ok(t, `cat ${q(box.mnt)}/f`)).trim(), 'kept');
  await unmountAndCheck(t, box);
});

/** Why a mount by another user cannot be tried here, or '' when it can. */
function whyNoUserMount(): string {
  if (!asRoot) return 'the test sets up the user as root';
  if (!setuidFusermount()) return 'no setuid fusermount; Debian\'s fuse package installs one';
  if ((statSync('/dev/fuse').mode & 0o006) !== 0o006) return '/dev/fuse is not open to other users here (Debian makes it 0666; .ci/run does)';
  return '';
}
const noUserMount = whyNoUserMount();
(noUserMount ? test.skip : test)(
  `a user other than root mounts through the setuid fusermount, works in the mount and unmounts${noUserMount ? ` (skipped: ${noUserMount})` : ''}`,
  async (t) => {
    const box = sandbox(t, 'sv', { binding: 'devfuse' });
    const home = join(box.dir, 'home');
    mkdirSync(home);
    for (const d of [box.dir, box.mnt, home]) chownSync(d, NOBODY, NOBODY);
    const env = { HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), SVAULT_PASSPHRASE: PASSPHRASE, SVAULT_BINDING: 'devfuse' };
    const svault = (args: string) => asNobody(`${q(process.execPath)} ${q(CLI)} ${args}`, env);
    const init = await svault(`init --store ${q(box.store)} --chaff 0`);
    t.is(init.code, 0, init.stderr);
    const m = await svault(`mount --store ${q(box.store)} ${q(box.mnt)}`);
    t.is(m.code, 0, m.stderr);
    t.true(mountsUnder(box.dir).includes(box.mnt));
    const rw = await asNobody(`cd ${q(box.mnt)} && echo hello > f && ln f g && cat g && stat -c '%h %U' f`);
    t.is(rw.code, 0, rw.stderr);
    t.deepEqual(rw.stdout.trim().split('\n'), ['hello', '2 nobody']);
    const u = await svault(`unmount ${q(box.mnt)}`);
    t.is(u.code, 0, u.stderr);
    t.deepEqual(mountsUnder(box.dir), []);
  },
);
