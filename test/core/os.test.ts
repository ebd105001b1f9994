// The OS addon and StoreDir (issue 22, findings 2 and 9): store entries reached one name at a time,
// never through a link, never opening a FIFO or device; the process made non-dumpable.

import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadStoreError } from '../../src/core/errors.js';
import { nativeOs } from '../../src/core/os/native-os.js';
import { StoreDir } from '../../src/core/os/store-dir.js';
import { tempDir } from '../helpers/temp-vault.js';

const ADDON = fileURLToPath(new URL('../../src/core/os/native/build/Release/svault_os.node', import.meta.url));

function storeWithVictim(t: Parameters<typeof tempDir>[0]): { dir: StoreDir; root: string; victim: string } {
  const root = tempDir(t);
  const store = join(root, 'store');
  mkdirSync(store);
  const victim = join(root, 'victim');
  writeFileSync(victim, 'precious');
  const dir = StoreDir.open(store);
  t.teardown(() => dir.close());
  return { dir, root, victim };
}

test('a link at a file name is refused for reading, writing, creating and atomic replacing; the target is untouched', (t) => {
  const { dir, victim } = storeWithVictim(t);
  symlinkSync(victim, join(dir.path, 'f'));
  for (const [what, op] of [
    ['readFile', () => dir.readFile('f', 100)],
    ['writeFile', () => dir.writeFile('f', 'x')],
  ] as const) {
    const err = t.throws(op, undefined, what);
    t.true(err instanceof BadStoreError, what);
    t.regex(err?.message ?? '', /f should be a regular file but is a symbolic link/, what);
  }
  t.is(t.throws(() => dir.createFile('f', 'x')).message.includes('EEXIST'), true, 'an exclusive create does not follow it either');
  dir.writeFileAtomic('f', 'replaced'); // the link itself is replaced by a file: rename never follows
  t.is(readFileSync(victim, 'utf8'), 'precious');
  t.is(readFileSync(join(dir.path, 'f'), 'utf8'), 'replaced');
  t.true(lstatSync(join(dir.path, 'f')).isFile());
});

test('a link at a temporary file name of an atomic write is removed, not followed', (t) => {
  const { dir, victim } = storeWithVictim(t);
  symlinkSync(victim, join(dir.path, `cfg.tmp-${process.pid}`));
  dir.writeFileAtomic('cfg', 'new');
  t.is(readFileSync(victim, 'utf8'), 'precious');
  t.is(readFileSync(join(dir.path, 'cfg'), 'utf8'), 'new');
  t.false(existsSync(join(dir.path, `cfg.tmp-${process.pid}`)));
});

test('a FIFO is refused without blocking, for reading and for writing', (t) => {
  const { dir } = storeWithVictim(t);
  t.is(spawnSync('mkfifo', [join(dir.path, 'p')]).status, 0);
  for (const op of [() => dir.readFile('p', 100), () => dir.writeFile('p', 'x')]) {
    const err = t.throws(op);
    t.true(err instanceof BadStoreError);
    t.regex(err?.message ?? '', /p should be a regular file but is a FIFO, socket or device/);
  }
});

test('a link at a subdirectory name is refused; created subdirectories are real ones', (t) => {
  const { dir, root } = storeWithVictim(t);
  const elsewhere = join(root, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(dir.path, 'sub'));
  const err = t.throws(() => dir.subdir('sub', true));
  t.true(err instanceof BadStoreError);
  t.regex(err?.message ?? '', /sub should be a directory but is a symbolic link/);
  const made = dir.subdir('made', true);
  t.teardown(() => made.close());
  made.writeFile('x', 'inside');
  t.true(statSync(join(dir.path, 'made')).isDirectory());
  t.is(readFileSync(join(dir.path, 'made', 'x'), 'utf8'), 'inside');
});

test('removeTree removes links and directories without following a link into what it points to', (t) => {
  const { dir, root, victim } = storeWithVictim(t);
  const elsewhere = join(root, 'elsewhere');
  mkdirSync(elsewhere);
  writeFileSync(join(elsewhere, 'keep'), 'keep');
  mkdirSync(join(dir.path, 'tree', 'deep'), { recursive: true });
  symlinkSync(elsewhere, join(dir.path, 'tree', 'deep', 'dirlink'));
  symlinkSync(victim, join(dir.path, 'tree', 'filelink'));
  dir.removeTree('tree');
  t.false(existsSync(join(dir.path, 'tree')));
  t.is(readFileSync(join(elsewhere, 'keep'), 'utf8'), 'keep');
  t.is(readFileSync(victim, 'utf8'), 'precious');
});

test('the directory the store descriptor holds stays the one used after its path is swapped for a link', (t) => {
  const { dir, root } = storeWithVictim(t);
  const sub = dir.subdir('blobs', true);
  t.teardown(() => sub.close());
  const elsewhere = join(root, 'elsewhere');
  mkdirSync(elsewhere);
  spawnSync('mv', [join(dir.path, 'blobs'), join(root, 'moved')]);
  symlinkSync(elsewhere, join(dir.path, 'blobs'));
  sub.writeFile('x', 'data');
  t.false(existsSync(join(elsewhere, 'x')), 'nothing went through the link');
  t.is(readFileSync(join(root, 'moved', 'x'), 'utf8'), 'data');
});

test('names with a slash, "..", a NUL or over 255 bytes are refused before any system call', (t) => {
  const { dir } = storeWithVictim(t);
  t.notThrows(() => dir.writeFile('y'.repeat(255), 'a name of 255 bytes is fine'));
  for (const name of ['a/b', '..', '.', '', 'a\0b', 'x'.repeat(256)]) {
    t.throws(() => nativeOs().openAt(dir.fd, name, 0, 0), { instanceOf: TypeError }, JSON.stringify(name));
  }
});

test('a closed StoreDir refuses to be used (its descriptor number may name another file by then)', (t) => {
  const { dir } = storeWithVictim(t);
  const sub = dir.subdir('s', true);
  sub.close();
  t.throws(() => sub.writeFile('x', 'y'), { message: /used after close/ });
});

test('makeUndumpable: no core dumps, and a process of another user cannot be inspected through /proc (finding 9)', async (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root to run the child as another user');
  // The child runs as nobody; once non-dumpable, the kernel makes its /proc entries root's.
  const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(ADDON)}).makeUndumpable(); console.log('ready'); setTimeout(() => {}, 20000);`], {
    uid: 65534,
    gid: 65534,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const pid = child.pid as number;
  t.is(statSync(`/proc/${pid}/environ`).uid, 0, '/proc/PID/environ is no longer owned by the process\'s user');
  t.regex(readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max core file size\s+0\s+0\s/);
  // And a dumpable one, for contrast: owned by its user.
  const plain = spawn(process.execPath, ['-e', `console.log('ready'); setTimeout(() => {}, 20000);`], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => plain.kill('SIGKILL'));
  await new Promise<void>((resolve) => plain.stdout.once('data', () => resolve()));
  t.is(statSync(`/proc/${plain.pid as number}/environ`).uid, 65534);
});
