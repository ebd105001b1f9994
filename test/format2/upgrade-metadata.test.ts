// svault upgrade's conversion of the metadata (src/core/format2/upgrade-metadata.ts, docs/format-2.md 4.4):
// a format-1 vault made through the real Vault API, with every kind of inode, hard links, xattrs, a sparse
// file and a directory big enough for buckets, is converted, and every inode compares equal through format
// 2's namespace: ino, fileId, type, mode, owner, link count, size, times to the nanosecond, xattrs, targets
// and every piece version. fsck2 finds nothing. A damaged store is refused before anything is written.

import test from 'ava';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsck2 } from '../../src/core/format2/fsck2.js';
import { FileType, ROOT_INO, timespecOfMs } from '../../src/core/format2/inode-record.js';
import type { Metadata2 } from '../../src/core/format2/metadata2.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import { lostSlot } from '../../src/core/format2/slot.js';
import { convertMetadata, UpgradeRefused } from '../../src/core/format2/upgrade-metadata.js';
import { fsck } from '../../src/core/fsck/fsck.js';
import { ROOT_ID, type Inode } from '../../src/core/meta/inode.js';
import { META_FILE } from '../../src/core/meta/record-store.js';
import { Vault } from '../../src/core/vault/vault.js';
import { metadata2Options } from '../helpers/format2.js';
import { PASSPHRASE, TempVault, tempDir } from '../helpers/temp-vault.js';

const KIND_TYPE = { file: FileType.regular, dir: FileType.directory, symlink: FileType.symlink } as const;

/** A format-1 vault holding one of everything; closed. */
async function format1Vault(t: Parameters<typeof TempVault.create>[0]): Promise<TempVault> {
  const tv = await TempVault.create(t, { pieceSize: 4096 });
  const v = tv.vault;
  const write = async (path: string, data: Buffer, position = 0, mode = 0o644) => {
    const fh = v.create(path, mode, 1000, 1000);
    await v.write(fh, data, position);
    await v.release(fh);
  };
  v.mkdir('/docs', 0o755, 1000, 1000);
  v.mkdir('/docs/deep', 0o700, 0, 0);
  await write('/docs/a.txt', Buffer.from('hello'));
  await write('/docs/big.bin', randomBytes(50_000));
  await write('/empty', Buffer.alloc(0));
  await write('/sparse', Buffer.from('x'), 500_000, 0o600); // a hole from 0, one piece of data
  v.symlink('docs/a.txt', '/link');
  v.symlink(`/${'long/'.repeat(800)}`, '/longlink'); // 4,001 bytes: spills in format 2
  v.link('/docs/a.txt', '/docs/deep/hard');
  v.setxattr('/docs/a.txt', 'user.tag', Buffer.from('v'), 0);
  v.setxattr('/docs/big.bin', 'user.big', randomBytes(10_000), 0);
  v.chmod('/docs/big.bin', 0o4755);
  v.utimens('/docs/a.txt', 1_600_000_000_123, 1_500_000_000_456);
  v.mkdir('/many', 0o755);
  for (let i = 0; i < 300; i++) await write(`/many/file-${i}`, Buffer.from(`#${i}`));
  await tv.close();
  return tv;
}

/** Every format-1 inode reachable from the root, by path. */
function format1Tree(meta: ReturnType<Vault['check']>['meta']): Map<string, Inode> {
  const out = new Map<string, Inode>([['/', meta.requireInode(ROOT_ID)]]);
  const dirs = ['/'];
  for (let path = dirs.pop(); path !== undefined; path = dirs.pop()) {
    for (const e of meta.list(out.get(path) as Inode)) {
      const child = path === '/' ? `/${e.name}` : `${path}/${e.name}`;
      out.set(child, meta.requireInode(e.id));
      if (e.kind === 'dir') dirs.push(child);
    }
  }
  return out;
}

/** The ino that a path names in format 2. */
function inoAt(md: Metadata2, path: string): number {
  let ino = ROOT_INO;
  for (const part of path.split('/').filter(Boolean)) {
    const e = md.lookup(ino, Buffer.from(part));
    if (!e) throw new Error(`${path}: no ${part}`);
    ino = e.ino;
  }
  return ino;
}

test('every inode of a format-1 vault comes through with its ino, fileId, attributes, xattrs and piece versions', async (t) => {
  const tv = await format1Vault(t);
  const v1 = await Vault.open(tv.storeDir, PASSPHRASE, { inspectOnly: true, noLock: true });
  t.teardown(() => v1.close());
  const meta = v1.check().meta;
  const tree = format1Tree(meta);
  const dir = tempDir(t);
  const table = RecordTable.create(dir);
  const converted = convertMetadata(meta, table, metadata2Options(0.5));
  const { md } = converted;
  t.teardown(() => md.close());
  t.log(`${converted.inodes} inodes, ${converted.pieces} pieces, first commit ${converted.h0}`);
  t.is(converted.inodes, tree.size - 1, 'every inode once (the hard link is one inode)');
  t.deepEqual(converted.leftOut, []);

  let highest = 0;
  for (const [path, one] of tree) {
    const ino = inoAt(md, path);
    t.is(ino, one.ino, `${path}: ino`);
    const two = md.requireInode(ino);
    t.is(two.type, KIND_TYPE[one.kind], `${path}: type`);
    t.is(two.mode, one.mode, `${path}: mode`);
    t.deepEqual([two.uid, two.gid, two.nlink], [one.uid, one.gid, one.nlink], `${path}: owner and links`);
    t.deepEqual([two.atime, two.mtime, two.ctime], [timespecOfMs(one.atime), timespecOfMs(one.mtime), timespecOfMs(one.ctime)], `${path}: times`);
    t.deepEqual(
      md.xattrs(ino).map((x) => [x.name.toString(), x.value.toString('hex')]),
      [...one.xattrs].map(([n, value]) => [n, value.toString('hex')]).sort(),
      `${path}: xattrs`,
    );
    if (one.kind === 'symlink') t.is(md.symlinkTarget(ino).toString(), one.target ?? '', `${path}: target`);
    if (one.kind === 'file') {
      t.true(two.fileId.equals(one.fileId), `${path}: fileId, so its blobs keep their addresses`);
      t.is(two.size, one.size, `${path}: size`);
      const map = md.pieceMapIfAny(ino);
      const versions = map ? [...map.versions()] : [];
      t.deepEqual(versions, [...one.pieces].sort((a, b) => a[0] - b[0]).map(([index, version]) => ({ index, version })), `${path}: piece versions`);
      for (const [, version] of one.pieces) highest = Math.max(highest, version);
    }
  }
  t.is(md.requireInode(inoAt(md, '/empty')).primary.form, 'inline', 'an empty file needs no map');
  t.is(md.requireInode(inoAt(md, '/many')).primary.form, 'buckets');
  t.true(converted.h0 > highest, 'every commit is above every piece version');
  t.is(md.state.legacyBelow, converted.h0);
  t.is(md.state.upgradeStage, 1);
  const report = await fsck2(md, table);
  t.deepEqual(report.problems, []);
  t.deepEqual(report.incomplete, []);
  t.is(report.unreachableRows, 0);
});

test('a piece format-1 fsck quarantined as lost becomes a lost slot', async (t) => {
  const tv = await TempVault.create(t, { pieceSize: 4096 });
  const fh = tv.vault.create('/f', 0o644);
  await tv.vault.write(fh, randomBytes(20_000), 0);
  await tv.vault.release(fh);
  await tv.vault.close();
  unlinkSync(tv.blobFile('/f', 2));
  const v = await Vault.open(tv.storeDir, PASSPHRASE);
  await fsck(v, { repair: true });
  const quarantined = [...format1Tree(v.check().meta)].find(([, inode]) => inode.lost.length > 0);
  await v.close();
  t.truthy(quarantined, 'format-1 fsck quarantined the file');
  const v1 = await Vault.open(tv.storeDir, PASSPHRASE, { inspectOnly: true, noLock: true });
  t.teardown(() => v1.close());
  const table = RecordTable.create(tempDir(t));
  const { md, lostPieces } = convertMetadata(v1.check().meta, table, metadata2Options(0));
  t.teardown(() => md.close());
  t.is(lostPieces, 1);
  const [path, one] = quarantined as [string, Inode];
  const ino = inoAt(md, path);
  t.is(md.pieceMapIfAny(ino)?.slot(2), lostSlot(0));
  t.true(md.requireInode(ino).hasLost);
  t.is(md.pieceMapIfAny(ino)?.slot(1), one.pieces.get(1));
  t.deepEqual((await fsck2(md, table)).problems, []);
});

test('a damaged format-1 store is refused before anything is written; --salvage converts the rest and lists what it left out', async (t) => {
  const tv = await format1Vault(t);
  const v1 = await Vault.open(tv.storeDir, PASSPHRASE, { inspectOnly: true, noLock: true });
  const meta = v1.check().meta;
  const name = meta.inodeRecordName(v1.inodeAt('/docs/big.bin').id);
  await v1.close();
  const db = new Database(join(tv.storeDir, META_FILE));
  db.prepare('DELETE FROM records WHERE k = ?').run(name);
  db.close();

  const damaged = await Vault.open(tv.storeDir, PASSPHRASE, { inspectOnly: true, noLock: true });
  t.teardown(() => damaged.close());
  const table = RecordTable.create(tempDir(t));
  const err = t.throws(() => convertMetadata(damaged.check().meta, table, metadata2Options(0)));
  t.true(err instanceof UpgradeRefused, String(err));
  t.regex(err?.message ?? '', /\/docs\/big\.bin/);
  t.is(table.rowCount(), 0, 'nothing was written');
  const salvaged = convertMetadata(damaged.check().meta, table, metadata2Options(0), { salvage: true });
  t.teardown(() => salvaged.md.close());
  t.deepEqual(salvaged.leftOut.map((p) => p.path), ['/docs/big.bin']);
  t.is(salvaged.md.lookup(inoAt(salvaged.md, '/docs'), Buffer.from('big.bin')), null);
  t.truthy(salvaged.md.lookup(inoAt(salvaged.md, '/docs'), Buffer.from('a.txt')));
  t.deepEqual((await fsck2(salvaged.md, table)).problems, []);
});

test('the free space is checked after the walk and before anything is written (4.4, step 5)', async (t) => {
  const tv = await format1Vault(t);
  const v1 = await Vault.open(tv.storeDir, PASSPHRASE, { inspectOnly: true, noLock: true });
  t.teardown(() => v1.close());
  const table = RecordTable.create(tempDir(t));
  let asked = 0;
  const err = t.throws(() =>
    convertMetadata(v1.check().meta, table, metadata2Options(0.5), {
      checkSpace: (bytes) => {
        asked = bytes;
        throw new Error(`no room for ${bytes} bytes (simulated)`);
      },
    }),
  );
  t.regex(err?.message ?? '', /simulated/);
  // 310 inodes with chaff at 0.5, a 300-entry directory's buckets, 4 KiB each, with the WAL's margin.
  t.true(asked > 310 * 1.5 * 4096 && asked < 3 * 310 * 1.5 * 4096, `${asked} bytes asked for`);
  t.is(table.rowCount(), 0, 'nothing written');
  table.close();
});
