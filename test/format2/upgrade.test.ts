// svault upgrade in place (src/core/format2/upgrade.ts, docs/format-2.md 4.4), end to end: a format-1 vault
// made through the Vault API is upgraded, and the format-2 vault reads every file from the same blobs; the
// format-1 files are kept; rollback returns to a format-1 vault that reads them too; an interrupted upgrade
// runs again from the start; a rolled-back format-1 store is refused by the upgrade's anchor check.

import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectFormat, FORMAT1_CONFIG_COPY } from '../../src/core/format2/format-detect.js';
import { rollbackUpgrade, upgradeStore } from '../../src/core/format2/upgrade.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { StoreDir } from '../../src/core/os/store-dir.js';
import { RollbackError } from '../../src/core/vault/anchor.js';
import { CONFIG_FILE } from '../../src/core/vault/config.js';
import { Vault } from '../../src/core/vault/vault.js';
import { tempDir } from '../helpers/temp-vault.js';

const PASS = 'correct horse battery staple';

interface Made {
  store: string;
  anchors: string;
  files: Map<string, Buffer>;
}

async function format1(t: ExecutionContext): Promise<Made> {
  const base = tempDir(t);
  const store = join(base, 'store');
  const anchors = join(base, 'anchors');
  const v = await Vault.create(store, PASS, { pieceSize: 4096, chaffRatio: 0.25 });
  const files = new Map<string, Buffer>([
    ['/a.txt', Buffer.from('a small file')],
    ['/docs/big.bin', randomBytes(40_000)],
    ['/docs/deep/empty', Buffer.alloc(0)],
  ]);
  v.mkdir('/docs', 0o755);
  v.mkdir('/docs/deep', 0o700);
  for (const [path, data] of files) await v.writeFile(path, data);
  v.symlink('docs/big.bin', '/link');
  v.link('/a.txt', '/docs/a-again');
  v.setxattr('/a.txt', 'user.note', Buffer.from('kept'), 0);
  await v.close();
  // Opened once with the anchors directory, so this machine has seen the store.
  await (await Vault.open(store, PASS, { anchorDir: anchors })).close();
  return { store, anchors, files };
}

async function readAll(v: Vault2, path: string): Promise<Buffer> {
  const fh = v.paths.open(path);
  const size = v.fgetattr(fh).size;
  const buf = Buffer.alloc(size);
  await v.read(fh, buf, size, 0);
  await v.release(fh);
  return buf;
}

test('an upgraded store reads every file from the same blobs; the format-1 files are kept until --finish', async (t) => {
  const { store, anchors, files } = await format1(t);
  const report = await upgradeStore(store, PASS, { anchorDir: anchors });
  t.is(report.files, 3);
  t.deepEqual(report.leftOut, []);
  const detected = StoreDir.using(store, detectFormat);
  t.is(detected.format, 2);
  t.true(detected.format === 2 && detected.format1Leftovers.includes(FORMAT1_CONFIG_COPY));
  t.is(JSON.parse(readFileSync(join(store, CONFIG_FILE), 'utf8')).kdf.salt, JSON.parse(readFileSync(join(store, FORMAT1_CONFIG_COPY), 'utf8')).kdf.salt, 'the same passphrase and salt');

  const v = await Vault2.open(store, PASS, { anchorDir: anchors });
  for (const [path, data] of files) t.true((await readAll(v, path)).equals(data), path);
  t.is(v.paths.readlink('/link'), 'docs/big.bin');
  t.is(v.paths.getattr('/docs/a-again').nlink, 2);
  t.is(v.paths.getxattr('/a.txt', 'user.note').toString(), 'kept');
  await v.close();
});

test('rollback returns to format 1, which reads its files as before; the format-2 files are gone', async (t) => {
  const { store, anchors, files } = await format1(t);
  await upgradeStore(store, PASS, { anchorDir: anchors });
  const v2 = await Vault2.open(store, PASS, { anchorDir: anchors });
  const fh = v2.paths.create('/made-in-format-2', 0o644, 0, 0);
  await v2.write(fh, Buffer.from('lost at rollback'), 0);
  await v2.release(fh);
  await v2.close();

  rollbackUpgrade(store, PASS, { anchorDir: anchors });
  t.is(StoreDir.using(store, detectFormat).format, 1);
  t.false(existsSync(join(store, 'meta2.db')));
  const v1 = await Vault.open(store, PASS, { anchorDir: anchors });
  for (const [path, data] of files) t.true((await v1.readFile(path)).equals(data), path);
  t.throws(() => v1.getattr('/made-in-format-2'), { message: /no such file/ });
  await v1.close();
});

test('an interrupted upgrade (format-2 files beside a format-1 config) runs again from the start', async (t) => {
  const { store, anchors, files } = await format1(t);
  writeFileSync(join(store, 'svault.layout.json'), '{ "half": "written" }');
  writeFileSync(join(store, 'meta2.db'), 'not a database');
  t.is(StoreDir.using(store, detectFormat).format, 'interrupted-upgrade');
  await upgradeStore(store, PASS, { anchorDir: anchors });
  const v = await Vault2.open(store, PASS, { anchorDir: anchors });
  for (const [path, data] of files) t.true((await readAll(v, path)).equals(data), path);
  await v.close();
});

test('an upgrade checks format 1\'s rollback anchor first: an older copy of the store is refused', async (t) => {
  const { store, anchors } = await format1(t);
  const { cpSync, rmSync } = await import('node:fs');
  const copy = `${store}-copy`;
  cpSync(store, copy, { recursive: true });
  const v = await Vault.open(store, PASS, { anchorDir: anchors });
  await v.writeFile('/newer', Buffer.from('x'));
  await v.close();
  rmSync(store, { recursive: true });
  cpSync(copy, store, { recursive: true });
  await t.throwsAsync(upgradeStore(store, PASS, { anchorDir: anchors }), { instanceOf: RollbackError });
  t.is(StoreDir.using(store, detectFormat).format, 1, 'nothing was converted');
  rmSync(copy, { recursive: true, force: true });
});

test('until --finish, format 1\'s blobs stay when format 2 supersedes them: a rollback after a rewrite reads the original', async (t) => {
  const { store, anchors, files } = await format1(t);
  await upgradeStore(store, PASS, { anchorDir: anchors });
  const v2 = await Vault2.open(store, PASS, { anchorDir: anchors });
  const fh = v2.paths.open('/docs/big.bin');
  await v2.write(fh, Buffer.alloc(10_000, 7), 0); // rewrites pieces 0 to 2
  await v2.release(fh);
  v2.paths.unlink('/a.txt');
  v2.paths.unlink('/docs/a-again'); // the last name: its piece would go
  await v2.close();
  rollbackUpgrade(store, PASS, { anchorDir: anchors });
  const v1 = await Vault.open(store, PASS, { anchorDir: anchors });
  for (const [path, data] of files) t.true((await v1.readFile(path)).equals(data), `${path}, as format 1 had it`);
  await v1.close();
});
