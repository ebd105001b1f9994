// A vault over format 2 (src/core/format2/vault2.ts), through its path operations: files of every size
// and every file type survive a close and an open; small files take no blob; an unlinked open file lives
// until its last close; and a copy of an older store is refused by this machine's anchor.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileType } from '../../src/core/format2/inode-record.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { RollbackError } from '../../src/core/vault/anchor.js';
import { tempDir } from '../helpers/temp-vault.js';

const PASS = 'correct horse battery staple';
const SETTINGS = { pieceSize: 4096, chaffRatio: 0 };

function paths(t: ExecutionContext): { store: string; anchors: string } {
  const base = tempDir(t);
  return { store: join(base, 'store'), anchors: join(base, 'anchors') };
}

async function writeFile(v: Vault2, path: string, data: Buffer): Promise<void> {
  const fh = v.create(path, 0o644);
  await v.write(fh, data, 0);
  await v.release(fh);
}

async function readFile(v: Vault2, path: string): Promise<Buffer> {
  const fh = v.open(path);
  const size = v.getattr(path).size;
  const buf = Buffer.alloc(size);
  const n = await v.read(fh, buf, size, 0);
  await v.release(fh);
  return buf.subarray(0, n);
}

function blobCount(store: string): number {
  let n = 0;
  for (const shard of readdirSync(join(store, 'blobs'), { withFileTypes: true })) if (shard.isDirectory()) n += readdirSync(join(store, 'blobs', shard.name)).length;
  return n;
}

test('files, directories, links and special files survive a close and an open; small files take no blob', async (t) => {
  const { store, anchors } = paths(t);
  const v = Vault2.create(store, PASS, SETTINGS, { anchorDir: anchors });
  const small = Buffer.from('a small file, kept in its inode');
  const big = randomBytes(5 * 4096 + 17);
  v.mkdir('/docs', 0o755);
  await writeFile(v, '/docs/small.txt', small);
  await writeFile(v, '/docs/big.bin', big);
  v.symlink('docs/small.txt', '/link');
  v.symlink(`/${'deep/'.repeat(800)}`, '/long-link');
  v.link('/docs/small.txt', '/hard');
  v.mknod('/fifo', FileType.fifo, 0o600);
  v.mknod('/tty', FileType.charDevice, 0o620, (4 << 8) | 1);
  await v.close();
  t.is(blobCount(store), 6, 'the big file\'s 6 pieces, and none for the small one');

  const again = Vault2.open(store, PASS, { anchorDir: anchors });
  t.teardown(() => again.close());
  t.true((await readFile(again, '/docs/small.txt')).equals(small));
  t.true((await readFile(again, '/hard')).equals(small));
  t.true((await readFile(again, '/docs/big.bin')).equals(big));
  t.is(again.readlink('/link'), 'docs/small.txt');
  t.is(again.readlink('/long-link').length, 4001);
  t.is(again.getattr('/hard').nlink, 2);
  t.is(again.getattr('/fifo').type, FileType.fifo);
  t.is(again.getattr('/tty').rdev, (4 << 8) | 1);
  t.deepEqual(again.readdir('/docs').map((e) => e.name.toString()).sort(), ['big.bin', 'small.txt']);
});

test('an unlinked open file reads on until its last close; then its blobs go', async (t) => {
  const { store } = paths(t);
  const v = Vault2.create(store, PASS, SETTINGS);
  t.teardown(() => v.close());
  const data = randomBytes(3 * 4096);
  await writeFile(v, '/f', data);
  await v.sync();
  const before = blobCount(store);
  const fh = v.open('/f');
  v.unlink('/f');
  t.throws(() => v.getattr('/f'), { message: /no such file/ });
  const buf = Buffer.alloc(data.length);
  await v.read(fh, buf, data.length, 0);
  t.true(buf.equals(data), 'still readable through its handle');
  await v.sync();
  t.is(blobCount(store), before, 'its pieces stay while it is open');
  await v.release(fh);
  await v.sync();
  t.is(blobCount(store), before - 3);
});

test('a copy of the store from before this machine\'s last commit is refused as a rollback, unless accepted', async (t) => {
  const { store, anchors } = paths(t);
  const v = Vault2.create(store, PASS, SETTINGS, { anchorDir: anchors });
  await writeFile(v, '/a', Buffer.from('one'));
  await v.close();
  const copy = `${store}-copy`;
  cpSync(store, copy, { recursive: true });
  const w = Vault2.open(store, PASS, { anchorDir: anchors });
  await writeFile(w, '/b', Buffer.from('two'));
  await w.close();
  rmSync(store, { recursive: true });
  cpSync(copy, store, { recursive: true });
  t.throws(() => Vault2.open(store, PASS, { anchorDir: anchors }), { instanceOf: RollbackError });
  const accepted = Vault2.open(store, PASS, { anchorDir: anchors, acceptRollback: true });
  t.throws(() => accepted.getattr('/b'), { message: /no such file/ });
  await accepted.close();
  await Vault2.open(store, PASS, { anchorDir: anchors }).close(); // the accepted store is the anchor's from then on
  t.pass();
  rmSync(copy, { recursive: true, force: true });
});

test('a crash loses at most what was not yet committed; fsync\'d files are there, fsck2 is clean, and no piece version is used twice', async (t) => {
  const { store } = paths(t);
  const v = Vault2.create(store, PASS, SETTINGS, { commitWindowMs: 60_000 });
  const kept = randomBytes(2 * 4096);
  const fh = v.create('/kept', 0o644);
  await v.write(fh, kept, 0);
  await v.fsync(fh);
  await v.release(fh);
  await writeFile(v, '/lost', randomBytes(3 * 4096)); // closed, but its commit never ran
  const internals = v as unknown as { s: { md: { newPieceVersion(): number }; table: { close(): void } }; committer: { stop(): void } };
  const usedBefore = internals.s.md.newPieceVersion();
  const blobsBefore = blobCount(store);
  // The crash: the process dies with its staged changes and its lock; SQLite keeps what was committed.
  internals.committer.stop();
  internals.s.table.close();
  const dead = spawnSync('true').pid as number;
  writeFileSync(join(store, 'svault.lock'), String(dead));

  const again = Vault2.open(store, PASS);
  t.true(again.recoveredFromCrash, 'the stale lock says the last session did not close');
  t.deepEqual(await again.sweepOrphans(), { removed: 3 }, 'the lost file\'s three stored pieces, which nothing points to');
  t.is(blobCount(store), blobsBefore - 3);
  t.teardown(() => again.close());
  t.true((await readFile(again, '/kept')).equals(kept), 'the fsync\'d file is whole');
  t.throws(() => again.getattr('/lost'), { message: /no such file/ }, 'the change of the last window is lost, whole');
  const md = (again as unknown as { s: { md: import('../../src/core/format2/metadata2.js').Metadata2; table: import('../../src/core/format2/record-table.js').RecordTable } }).s;
  t.true(md.md.newPieceVersion() > usedBefore, 'versions after the crash start past every one handed out before it');
  const { fsck2 } = await import('../../src/core/format2/fsck2.js');
  const report = await fsck2(md.md, md.table);
  t.deepEqual(report.problems, []);
});

test('attributes, xattrs and truncate by path, across a close and an open; utimens on an open file is kept by its close', async (t) => {
  const { store } = paths(t);
  const v = Vault2.create(store, PASS, SETTINGS);
  await writeFile(v, '/f', randomBytes(3 * 4096));
  v.chmod('/f', 0o4640);
  v.chown('/f', 1234, 5678);
  v.setxattr('/f', 'user.a', Buffer.from('1'), 0);
  v.setxattr('/f', 'user.b', randomBytes(6000), 0); // spills
  v.removexattr('/f', 'user.a');
  await v.truncate('/f', 5000);
  const fh = v.open('/f');
  await v.write(fh, Buffer.from('x'), 10);
  v.utimens('/f', { sec: 1_000, nsec: 5 }, { sec: 2_000, nsec: 0 });
  await v.release(fh);
  t.true(v.statfs().files >= 2);
  await v.close();
  const again = Vault2.open(store, PASS);
  t.teardown(() => again.close());
  const a = again.getattr('/f');
  t.is(a.mode, 0o104640);
  t.deepEqual([a.uid, a.gid, a.size], [1234, 5678, 5000]);
  t.deepEqual(a.atime, { sec: 1_000, nsec: 5 });
  t.deepEqual(a.mtime, { sec: 2_000, nsec: 0 }, 'the write before the close did not move the mtime just set');
  t.deepEqual(again.listxattr('/f'), ['user.b']);
  t.is(again.getxattr('/f', 'user.b').length, 6000);
});
