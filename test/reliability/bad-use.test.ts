// Issue 7, item 5: bad use, through the mount. Name length limits, deep paths, non-UTF-8 and Unicode
// names, a huge directory, files renamed or unlinked while a writer holds them open, a busy or non-empty
// mount point, a read-only store and a second mount of one store. Every check runs in child processes
// (shell tools, python3 scripts, the svault CLI).

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountedAt, run, sh, testBinding, type Sandbox } from '../helpers/cli.js';
import { alive, emptyBox, mountedBox, mountsUnder, ok, q, remount, sha, sleep, unmountAndCheck, waitFor, waitForAsync } from '../helpers/mount-util.js';
import { checkNothingLeftMountedAtAll, mountStore, onlyServer, serverLogs, tmpfsFor } from '../helpers/reliability-util.js';

checkNothingLeftMountedAtAll(test);

const LONG = process.env.SVAULT_LONG === '1';

/** Runs a python3 script (text on stdin) with arguments; returns its stdout parsed as JSON. */
async function py<T>(t: ExecutionContext, script: string, args: string[] = []): Promise<T> {
  const r = await run('python3', ['-c', script, ...args], { timeoutMs: 15 * 60_000 });
  if (r.code !== 0) throw new Error(`python3 failed (${r.code}): ${r.stderr.slice(-2000)}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    t.log(r.stdout.slice(0, 2000));
    throw new Error('python3 did not print JSON');
  }
}

async function fsckClean(t: ExecutionContext, box: Sandbox): Promise<void> {
  const f = await box.svault(['fsck', '--store', box.store]);
  t.is(f.code, 0, `fsck: ${f.stdout.slice(-1500)}${f.stderr}`);
}

test('names of 255 bytes work; 256 bytes fail with ENAMETOOLONG for create, mkdir, rename and symlink', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const m = box.mnt;
  const ascii255 = 'a'.repeat(255);
  const euro255 = '€'.repeat(85); // 3 bytes each: 255 bytes
  const ascii256 = 'b'.repeat(256);
  const euro258 = '€'.repeat(86);
  for (const name of [ascii255, euro255]) {
    await ok(t, `echo content > ${q(join(m, name))} && mkdir ${q(join(m, `${name.slice(0, -1)}D`))}`);
    t.is(await ok(t, `cat ${q(join(m, name))}`), 'content\n', `${Buffer.byteLength(name)}-byte name`);
  }
  const listed = (await ok(t, `ls -1 ${q(m)}`)).split('\n');
  t.true(listed.includes(ascii255) && listed.includes(euro255), 'both 255-byte names are listed');
  for (const [what, line] of [
    ['create 256', `touch ${q(join(m, ascii256))}`],
    ['create 258 (UTF-8)', `touch ${q(join(m, euro258))}`],
    ['mkdir 256', `mkdir ${q(join(m, ascii256))}`],
    ['rename to 256', `mv ${q(join(m, ascii255))} ${q(join(m, ascii256))}`],
    ['symlink 256', `ln -s target ${q(join(m, ascii256))}`],
    ['lookup 256', `stat ${q(join(m, ascii256))}`],
  ] as const) {
    const r = await sh(line);
    t.not(r.code, 0, what);
    t.regex(r.stderr, /File name too long/, `${what}: ${r.stderr.trim()}`);
  }
  t.is(await ok(t, `cat ${q(join(m, ascii255))}`), 'content\n', 'the failed rename left the file alone');
  await unmountAndCheck(t, box);
  await fsckClean(t, box);
});

test('deep paths: 100 nested directories, and a path longer than PATH_MAX reached with openat', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const deep = join(box.mnt, ...Array.from({ length: 100 }, (_, i) => `d${i}`));
  await ok(t, `mkdir -p ${q(deep)} && echo bottom > ${q(join(deep, 'f'))}`);
  t.is(await ok(t, `cat ${q(join(deep, 'f'))}`), 'bottom\n');
  t.is((await ok(t, `find ${q(box.mnt)} -type d | wc -l`)).trim(), '101');
  // 80 levels of 60-byte names: 4,880+ bytes, longer than PATH_MAX (4096), so walked with dir_fd (openat).
  const res = await py<{ depth: number; pathBytes: number; read: string; walked: number }>(
    t,
    `
import os, sys, json
root = sys.argv[1]
name = 'x' * 60
os.mkdir(root)
fd = os.open(root, os.O_RDONLY)
fds = [fd]
for i in range(80):
    os.mkdir(name, dir_fd=fd)
    fd = os.open(name, os.O_RDONLY, dir_fd=fd)
    fds.append(fd)
w = os.open('leaf', os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
os.write(w, b'deep leaf'); os.close(w)
r = os.open('leaf', os.O_RDONLY, dir_fd=fd); data = os.read(r, 100); os.close(r)
for f in fds: os.close(f)
depth = 0
fd = os.open(root, os.O_RDONLY)
while name in os.listdir(fd):
    nfd = os.open(name, os.O_RDONLY, dir_fd=fd); os.close(fd); fd = nfd; depth += 1
leaf = os.listdir(fd); os.close(fd)
print(json.dumps({'depth': depth, 'pathBytes': len(root) + 61 * 80 + 5, 'read': data.decode(), 'walked': len(leaf)}))
`,
    [join(box.mnt, 'long')],
  );
  t.true(res.pathBytes > 4096, `${res.pathBytes} bytes`);
  t.is(res.read, 'deep leaf');
  t.is(res.depth, 80);
  t.is(res.walked, 1, 'the leaf directory lists its one file');
  await remount(t, box);
  t.is(await ok(t, `cat ${q(join(deep, 'f'))}`), 'bottom\n', 'after a remount');
  await ok(t, `rm -rf ${q(join(box.mnt, 'd0'))}`);
  // rm -rf handles paths longer than PATH_MAX itself (it uses openat).
  await ok(t, `rm -rf ${q(join(box.mnt, 'long'))}`);
  t.is((await ok(t, `ls -A ${q(box.mnt)}`)).trim(), '');
  await unmountAndCheck(t, box);
  await fsckClean(t, box);
});

const NAME_PROBE = `
import os, sys, json, errno
root = os.fsencode(sys.argv[1])
names = [bytes.fromhex(h) for h in sys.argv[2:]]
out = {'create': {}, 'listed': [], 'read': {}, 'distinct': True}
made = []
for i, n in enumerate(names):
    p = os.path.join(root, n)
    try:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b'content %d' % i); os.close(fd)
        out['create'][n.hex()] = 'ok'
        made.append((i, n))
    except OSError as e:
        out['create'][n.hex()] = errno.errorcode.get(e.errno, str(e.errno))
out['listed'] = sorted(x.hex() for x in os.listdir(root))
for i, n in made:
    try:
        with open(os.path.join(root, n), 'rb') as f: data = f.read()
        out['read'][n.hex()] = data.decode()
        if data != b'content %d' % i: out['distinct'] = False
    except OSError as e:
        out['read'][n.hex()] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
`;

interface NameProbe {
  create: Record<string, string>;
  listed: string[];
  read: Record<string, string>;
  distinct: boolean;
}

/**
 * Creates files with the given byte names (in a fresh directory), then checks svault's behaviour is
 * consistent: a name is either refused with a clean errno (never EIO), or it works — listed with exactly
 * its bytes, read back by those bytes, and distinct from every other name.
 */
function checkNames(t: ExecutionContext, what: string, names: Buffer[], p: NameProbe): void {
  const made = names.filter((n) => p.create[n.toString('hex')] === 'ok');
  for (const n of names) {
    const r = p.create[n.toString('hex')];
    t.not(r, 'EIO', `${what}: creating ${JSON.stringify(n.toString('latin1'))} gave EIO`);
  }
  t.deepEqual(p.listed, made.map((n) => n.toString('hex')).sort(), `${what}: the directory lists exactly the names created, byte for byte`);
  for (const n of made) t.regex(p.read[n.toString('hex')] ?? '', /^content \d+$/, `${what}: ${n.toString('hex')} reads back by its own bytes`);
  t.true(p.distinct, `${what}: every name is its own file (no two names alias)`);
}

test('non-UTF-8 names: either refused with a clean errno or kept exactly; never EIO, never two names for one file', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const dir = join(box.mnt, 'bytes');
  await ok(t, `mkdir ${q(dir)}`);
  const names = [Buffer.from('a\xff', 'latin1'), Buffer.from('a\xfe', 'latin1'), Buffer.from([0xc3, 0x28]), Buffer.from([0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('plain')];
  const p = await py<NameProbe>(t, NAME_PROBE, [dir, ...names.map((n) => n.toString('hex'))]);
  t.log(`create: ${JSON.stringify(p.create)}\nlisted: ${JSON.stringify(p.listed)}\nread: ${JSON.stringify(p.read)}`);
  const pid = onlyServer(box);
  t.true(alive(pid), 'the server survived');
  t.notRegex(serverLogs(box), /uncaught/i);
  checkNames(t, 'non-UTF-8', names, p);
  await unmountAndCheck(t, box, [pid]);
  await fsckClean(t, box);
});

test('Unicode names (NFC and NFD, emoji, CJK, RTL, joiners, odd ASCII) are kept byte for byte, also after a remount', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const dir = join(box.mnt, 'uni');
  await ok(t, `mkdir ${q(dir)}`);
  const strings = [
    'caf\u00e9', // NFC é
    'cafe\u0301', // NFD e + combining acute
    '\u{1F600}',
    '\u{1F469}\u200d\u{1F4BB}', // woman technologist (ZWJ sequence)
    '\u{1F1EB}\u{1F1F7}', // flag
    '日本語のファイル',
    '\u05e9\u05dc\u05d5\u05dd', // Hebrew
    '\u0627\u0644\u0639\u0631\u0628\u064a\u0629', // Arabic
    'Ω\u2126', // Greek omega and the Ohm sign (NFC-equal, different code points)
    '\ufeffbom',
    'new\nline',
    'tab\there',
    'back\\slash',
    ' leading space',
    '-dash',
    "quote'\"",
    '\u{10FFFF}',
  ];
  const names = strings.map((s) => Buffer.from(s, 'utf8'));
  const p = await py<NameProbe>(t, NAME_PROBE, [dir, ...names.map((n) => n.toString('hex'))]);
  checkNames(t, 'Unicode', names, p);
  t.is(Object.values(p.create).filter((r) => r === 'ok').length, names.length, `every valid UTF-8 name is accepted: ${JSON.stringify(p.create)}`);
  await remount(t, box);
  const again = await py<{ listed: string[] }>(t, 'import os, sys, json; print(json.dumps({"listed": sorted(x.hex() for x in os.listdir(os.fsencode(sys.argv[1])))}))', [dir]);
  t.deepEqual(again.listed, names.map((n) => n.toString('hex')).sort(), 'the names are the same after a remount');
  // Renaming NFC onto NFD replaces only that one (they are different names).
  await ok(t, `mv ${q(join(dir, strings[0] as string))} ${q(join(dir, strings[1] as string))}`);
  t.is((await ok(t, `ls -1b ${q(dir)} | wc -l`)).trim(), String(names.length - 1));
  t.is(await ok(t, `cat ${q(join(dir, strings[1] as string))}`), 'content 0');
  await unmountAndCheck(t, box);
  await fsckClean(t, box);
});

test(`${LONG ? '100,000' : '20,000 (100,000 with SVAULT_LONG=1)'} entries in one directory: created, listed, stat'ed, thinned (and fsck clean with SVAULT_LONG=1)`, async (t) => {
  const N = LONG ? 100_000 : 20_000;
  const box = await mountedBox(t, ['--chaff', '0']);
  const dir = join(box.mnt, 'big');
  await ok(t, `mkdir ${q(dir)}`);
  const times: Record<string, number> = {};
  const time = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      times[what] = (Date.now() - t0) / 1000;
    }
  };
  const made = await time('create', () =>
    py<{ n: number }>(
      t,
      `
import os, sys, json
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, 'f%06d' % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
print(json.dumps({'n': n}))
`,
      [dir, String(N)],
    ),
  );
  t.is(made.n, N);
  t.is((await time('ls | wc -l', () => ok(t, `ls ${q(dir)} | wc -l`))).trim(), String(N));
  t.is((await ok(t, `ls -f ${q(dir)} | wc -l`)).trim(), String(N + 2), '. and .. too');
  const probe = [0, 1, Math.floor(N / 2), N - 2, N - 1].map((i) => join(dir, `f${String(i).padStart(6, '0')}`));
  t.is((await time('stat 5', () => ok(t, `stat -c '%s %F' ${probe.map(q).join(' ')}`))).trim().split('\n').length, 5);
  // Remove entries from the middle of pages (their last-page fillers move), then check the listing.
  const gone = [5, 127, 128, 1000, Math.floor(N / 2), N - 1];
  await ok(t, `cd ${q(dir)} && rm ${gone.map((i) => `f${String(i).padStart(6, '0')}`).join(' ')}`);
  const listing = await py<{ n: number; missing: string[]; extra: string[] }>(
    t,
    `
import os, sys, json
d, n, gone = sys.argv[1], int(sys.argv[2]), set(int(x) for x in sys.argv[3].split(','))
l = os.listdir(d)
want = set('f%06d' % i for i in range(n) if i not in gone)
print(json.dumps({'n': len(l), 'missing': sorted(want - set(l))[:10], 'extra': sorted(set(l) - want)[:10]}))
`,
    [dir, String(N), gone.join(',')],
  );
  t.is(listing.n, N - gone.length, 'no name is listed twice');
  t.deepEqual(listing.missing, [], 'every remaining name is listed');
  t.deepEqual(listing.extra, [], 'no removed name is listed');
  for (const i of [4, 6, 129, N - 2]) await ok(t, `stat ${q(join(dir, `f${String(i).padStart(6, '0')}`))}`);
  const st = await sh(`stat ${q(join(dir, 'f000128'))}`);
  t.regex(st.stderr, /No such file/);
  await unmountAndCheck(t, box);
  if (LONG) {
    // Listing pages and entry records agree after the thinning (fsck checks both); ~30 s for 20,000 files on a busy machine.
    const f = await time('fsck', () => box.svault(['fsck', '--store', box.store]));
    t.is(f.code, 0, f.stdout.slice(-1000));
    t.regex(f.stdout, new RegExp(`${N - gone.length} files`));
  }
  t.log(`N=${N}: ${Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);
});

/** A python writer that opens a file, writes part 1 (and fsyncs it, so its pieces are in the store), says "ready", waits for a line on stdin, writes part 2, reads everything back through its fd and closes. */
const WRITER = `
import os, sys, json, hashlib
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
a = os.urandom(1_000_000); b = os.urandom(1_500_000)
os.write(fd, a)
os.fsync(fd)
print('ready', flush=True)
sys.stdin.readline()
os.write(fd, b)
os.fsync(fd)
os.lseek(fd, 0, 0)
back = b''
while True:
    chunk = os.read(fd, 1 << 20)
    if not chunk: break
    back += chunk
os.close(fd)
print(json.dumps({'sha': hashlib.sha256(a + b).hexdigest(), 'readback': hashlib.sha256(back).hexdigest()}), flush=True)
`;

/** Runs the writer on path; between its two writes, runs `between` (another process renames or unlinks). */
async function writerWith(path: string, between: () => Promise<void>): Promise<{ sha: string; readback: string }> {
  const child = spawn('python3', ['-c', WRITER, path], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  await new Promise<void>((ready, fail) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) ready();
    });
    child.on('close', () => fail(new Error(`writer exited early: ${err}`)));
  });
  try {
    await between();
  } catch (err) {
    // The writer waits on its stdin: left alone it would keep this test file (and npm test) from ending.
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  child.stdin.end('go\n');
  const code = await exited;
  if (code !== 0) throw new Error(`writer failed (${code}): ${err}`);
  return JSON.parse(out.slice('ready\n'.length)) as { sha: string; readback: string };
}

async function blobCount(box: Sandbox): Promise<number> {
  const r = await box.svault(['info', '--store', box.store, '--json']);
  if (r.code !== 0) throw new Error(`info: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { blobs: number }).blobs;
}

test('a file renamed while a writer holds it open: the writer goes on, and the data ends up under the new name', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const w = await writerWith(join(box.mnt, 'orig'), async () => {
    await ok(t, `mkdir ${q(join(box.mnt, 'sub'))} && mv ${q(join(box.mnt, 'orig'))} ${q(join(box.mnt, 'sub', 'renamed'))}`);
  });
  t.is(w.readback, w.sha, 'the writer reads back all it wrote through its fd');
  t.is(await sha(t, join(box.mnt, 'sub', 'renamed')), w.sha, 'the new name has all the data');
  t.is((await sh(`stat ${q(join(box.mnt, 'orig'))}`)).code, 1, 'the old name is gone');
  await remount(t, box);
  t.is(await sha(t, join(box.mnt, 'sub', 'renamed')), w.sha, 'and after a remount');
  t.is((await ok(t, `ls -A ${q(box.mnt)}`)).trim(), 'sub');
  await unmountAndCheck(t, box);
  await fsckClean(t, box);
});

test('a file unlinked while a writer holds it open: the writer goes on; the name is gone; its pieces are freed after close', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `echo keep > ${q(join(box.mnt, 'keep'))}`);
  await unmountAndCheck(t, box);
  const baseline = await blobCount(box);
  t.is((await box.mount()).code, 0);
  let during = -1;
  let hidden: string[] = [];
  const w = await writerWith(join(box.mnt, 'victim'), async () => {
    during = await blobCount(box);
    await ok(t, `rm ${q(join(box.mnt, 'victim'))}`);
    t.is((await sh(`stat ${q(join(box.mnt, 'victim'))}`)).code, 1, 'the name is gone at once');
    t.is((await ok(t, `ls ${q(box.mnt)}`)).trim(), 'keep', 'ls does not show it');
    hidden = (await ok(t, `ls -A ${q(box.mnt)}`)).trim().split('\n').filter((n) => n !== 'keep');
  });
  t.deepEqual(hidden, [], 'ls -A shows nothing of it either (no libfuse .fuse_hidden name)');
  t.is(w.readback, w.sha, 'the writer reads back everything it wrote through its fd after the unlink');
  t.true(during > baseline, `the open file had pieces in the store (${baseline} -> ${during})`);
  // The kernel sends the release after close(2) returns: give the server time to see it on a busy machine.
  const listing = async () => (await ok(t, `ls -A ${q(box.mnt)}`)).trim().split('\n');
  await waitForAsync(async () => (await listing()).length === 1, 10_000);
  t.deepEqual(await listing(), ['keep'], 'after the close nothing of it is left, hidden or not');
  await unmountAndCheck(t, box);
  t.is(await blobCount(box), baseline, 'after close and unmount, the blob count is back to what it was');
  await fsckClean(t, box);
});

const UNLINK_OPEN = `
import os, sys, json, errno
mnt = sys.argv[1]
out = {}
os.mkdir(os.path.join(mnt, 'd'))
f = open(os.path.join(mnt, 'd', 'f'), 'w+b')
f.write(b'x' * 300000); f.flush()
os.unlink(os.path.join(mnt, 'd', 'f'))
out['listing'] = os.listdir(os.path.join(mnt, 'd'))
f.write(b'y' * 1000); f.flush()
st = os.fstat(f.fileno())
out['size'], out['nlink'] = st.st_size, st.st_nlink
os.rmdir(os.path.join(mnt, 'd'))
out['rootAfterRmdir'] = os.listdir(mnt)
f.write(b'z' * 10); f.flush()
try:
    os.fstat(f.fileno()); out['fstatNoDir'] = 'ok'
except OSError as e:
    out['fstatNoDir'] = errno.errorcode[e.errno]
f.seek(0); data = f.read()
out['readBack'] = data == b'x' * 300000 + b'y' * 1000 + b'z' * 10
f.close()
# Past format 2's inline limit (3,818 bytes), so each has a blob whose freeing the test can count.
with open(os.path.join(mnt, 'a'), 'w') as a: a.write('new' * 2000)
with open(os.path.join(mnt, 'b'), 'w') as b: b.write('old' * 2000)
held = open(os.path.join(mnt, 'b'))
os.rename(os.path.join(mnt, 'a'), os.path.join(mnt, 'b'))
out['afterRenameOver'] = sorted(os.listdir(mnt))
out['newContent'] = open(os.path.join(mnt, 'b')).read()
out['heldContent'] = held.read()
held.close()
print(json.dumps(out))
`;

test('unlink or rename over an open file: no hidden name, rmdir works, fstat and the fd go on, nothing left after close', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  const r = await py<Record<string, unknown>>(t, UNLINK_OPEN, [box.mnt]);
  t.deepEqual(r.listing, [], 'the directory is empty at once');
  t.deepEqual(r.rootAfterRmdir, [], 'rmdir of that directory succeeds while the file is open');
  t.is(r.size, 301000, 'fstat gives the open file its size');
  t.is(r.nlink, 0, 'and no links');
  t.true(r.readBack, 'the fd reads back what was written before and after the unlink, and after the rmdir');
  // fuse-native's known limitation (README): once the directory is gone too, libfuse's path-based API has
  // no path to ask for its attributes. svault's own transport asks by inode.
  t.is(r.fstatNoDir, testBinding() === 'fuse-native' ? 'ENOENT' : 'ok', 'fstat of a file whose directory was removed after the unlink');
  t.deepEqual(r.afterRenameOver, ['b'], 'rename over an open file leaves one name');
  t.is(r.newContent, 'new'.repeat(2000));
  t.is(r.heldContent, 'old'.repeat(2000), 'the replaced file stays readable through the fd that holds it');
  const listing = async () => (await ok(t, `ls -A ${q(box.mnt)}`)).trim().split('\n');
  await waitForAsync(async () => (await listing()).length === 1, 10_000); // the releases come after close(2)
  t.deepEqual(await listing(), ['b']);
  await unmountAndCheck(t, box);
  // The unlinked file's pieces and the replaced b's are freed; a and b are bigger than an inline file, so
  // the new b is one piece.
  t.is(await blobCount(box), 1, 'only b\'s piece is left in the store');
  await fsckClean(t, box);
});

test('a busy mount point (a shell cwd inside) is still unmounted (lazily) and reported; the dir is usable afterwards', async (t) => {
  const box = await mountedBox(t, ['--chaff', '0']);
  await ok(t, `mkdir ${q(join(box.mnt, 'inside'))} && echo data > ${q(join(box.mnt, 'inside', 'f'))}`);
  const pid = onlyServer(box);
  const shell = spawn('bash', ['-c', 'cat inside/f > /dev/null; sleep 60'], { cwd: box.mnt, stdio: 'ignore' });
  t.teardown(() => {
    shell.kill('SIGKILL');
  });
  await sleep(500);
  const busy = await sh(`umount ${q(box.mnt)}`);
  t.regex(busy.stderr, /busy/i, 'a plain umount refuses: the mount point is busy');
  const u = await box.unmount();
  t.is(u.code, 0, u.stderr);
  t.regex(u.stderr, /unmounted/, `svault unmount reports it: ${u.stderr.trim()}`);
  t.log(`svault unmount of a busy mount point said: ${u.stderr.trim()}`);
  t.false(mountedAt(box.mnt), 'detached at once although a shell is still inside');
  t.true(await waitFor(() => !alive(pid), 10_000), 'the server exited');
  shell.kill('SIGKILL');
  await new Promise((r) => (shell.exitCode !== null || shell.signalCode !== null ? r(null) : shell.on('close', r)));
  t.deepEqual(mountsUnder(box.dir), []);
  t.is((await ok(t, `ls -A ${q(box.mnt)}`)).trim(), '', 'the mount point is an ordinary empty dir again');
  t.is((await box.mount()).code, 0, 'and can be mounted on again');
  t.is(await ok(t, `cat ${q(join(box.mnt, 'inside', 'f'))}`), 'data\n');
  await unmountAndCheck(t, box);
  await fsckClean(t, box);
});

test('a non-empty mount point is refused (exit 5); a second mount of one store is refused (exit 6)', async (t) => {
  const box = emptyBox(t, 'busy');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);
  writeFileSync(join(box.mnt, 'something'), 'x');
  const ne = await box.mount();
  t.is(ne.code, 5, ne.stderr);
  t.regex(ne.stderr, /not empty/);
  t.false(mountedAt(box.mnt));
  const other = join(box.dir, 'mnt2');
  mkdirSync(other);
  t.is((await box.svault(['mount', '--store', box.store, other])).code, 0);
  const pid = onlyServer(box);
  const second = await box.mount(['-o', 'nonempty']);
  t.is(second.code, 6, second.stderr);
  t.regex(second.stderr, /already mounted|in use/);
  t.false(mountedAt(box.mnt));
  t.true(alive(pid) && mountedAt(other), 'the first mount is untouched');
  const u = await box.svault(['unmount', other]);
  t.is(u.code, 0, u.stderr);
  t.true(await waitFor(() => !alive(pid), 10_000));
  t.deepEqual(mountsUnder(box.dir), []);
});

test('a read-only store (tmpfs remounted ro): mount, fsck and info refuse with exit 4 and a clear message', async (t) => {
  const box = emptyBox(t, 'ro');
  const disk = await tmpfsFor(t, box, 16);
  const store = join(disk, 'store');
  t.is((await box.svault(['init', '--store', store, '--chaff', '0'])).code, 0);
  t.is((await mountStore(box, store)).code, 0);
  await ok(t, `echo data > ${q(join(box.mnt, 'f'))}`);
  await unmountAndCheck(t, box);
  await ok(t, `mount -o remount,ro ${q(disk)}`);
  for (const args of [['mount', '--store', store, box.mnt], ['fsck', '--store', store], ['info', '--store', store]]) {
    const r = await box.svault(args);
    t.is(r.code, 4, `${args[0]}: ${r.stderr}`);
    t.regex(r.stderr, /not writable/, `${args[0]}: ${r.stderr.trim()}`);
    t.regex(r.stderr, /EROFS|read-only/i);
  }
  t.false(mountedAt(box.mnt));
  await ok(t, `mount -o remount,rw ${q(disk)}`);
  t.is((await mountStore(box, store)).code, 0, 'writable again: it mounts');
  t.is(await ok(t, `cat ${q(join(box.mnt, 'f'))}`), 'data\n');
  await unmountAndCheck(t, box);
});
