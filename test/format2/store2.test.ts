// A format-2 store on disk (src/core/format2/store2.ts): created with its config, layout, marker and
// metadata, opened again, and refused with the right error for a wrong passphrase, a tampered layout, a
// marker of another vault, a format-1 store, and a format-2 config read by format 1's parser.

import test from 'ava';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadStoreError, WrongPassphraseError } from '../../src/core/errors.js';
import { FileType, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { LAYOUT_FILE } from '../../src/core/format2/layout.js';
import { STORE_MARKER_FILE } from '../../src/core/format2/store-marker.js';
import { createStore2, openStore2 } from '../../src/core/format2/store2.js';
import { CONFIG_FILE, parseConfig } from '../../src/core/vault/config.js';
import { RESERVE_FILE } from '../../src/core/vault/space-reserve.js';
import { Vault } from '../../src/core/vault/vault.js';
import { name } from '../helpers/format2.js';
import { tempDir } from '../helpers/temp-vault.js';

const PASS = 'correct horse battery staple';
const SETTINGS = { pieceSize: 131072, chaffRatio: 0.1 };

test('a new format-2 store opens again with its root directory and what was committed', (t) => {
  const dir = join(tempDir(t), 'store');
  const created = createStore2(dir, PASS, SETTINGS, { uid: 1000, gid: 1000 });
  t.is(created.config.format, 2);
  const ino = created.md.createInode({ type: FileType.regular, mode: 0o644, uid: 1000, gid: 1000, parentIno: ROOT_INO, time: { sec: 1, nsec: 2 } }).ino;
  created.md.link(ROOT_INO, name('f'), ino);
  created.md.commitNow();
  created.close();
  t.true(created.keys.record.equals(Buffer.alloc(32)), 'the keys are wiped at close');
  const opened = openStore2(dir, PASS);
  t.teardown(() => opened.close());
  t.is(opened.md.requireInode(ROOT_INO).uid, 1000);
  t.is(opened.md.lookup(ROOT_INO, name('f'))?.ino, ino);
  t.deepEqual(JSON.parse(readFileSync(join(dir, CONFIG_FILE), 'utf8')).format, 2);
});

test('svault.reserve (section 2): 1 MiB of zeroes made at a commit when the disk has room; opening to look makes none', (t) => {
  const dir = join(tempDir(t), 'store');
  createStore2(dir, PASS, SETTINGS).close();
  const reserve = join(dir, RESERVE_FILE);
  t.deepEqual(readFileSync(reserve), Buffer.alloc(1024 * 1024), 'the new store has its reserve');
  rmSync(reserve);
  openStore2(dir, PASS).close();
  t.false(existsSync(reserve), 'an open that commits nothing writes nothing');
  const opened = openStore2(dir, PASS);
  opened.md.reserve(); // a vault's opening commit (section 11)
  opened.close();
  t.is(statSync(reserve).size, 1024 * 1024, 'the next commit made it again');
});

test('refusals: a wrong passphrase (exit 3), a tampered layout and another vault\'s marker (exit 4)', (t) => {
  const base = tempDir(t);
  const a = join(base, 'a');
  const b = join(base, 'b');
  createStore2(a, PASS, SETTINGS).close();
  createStore2(b, PASS, SETTINGS).close();
  t.throws(() => openStore2(a, 'wrong passphrase'), { instanceOf: WrongPassphraseError });

  const layoutText = readFileSync(join(a, LAYOUT_FILE), 'utf8');
  const layout = JSON.parse(layoutText);
  layout.placement[0].k = 1;
  layout.records.inlineMax = 3818;
  layout.stores.push({ id: 'ab'.repeat(16), role: 'scatter', at: '/elsewhere' });
  writeFileSync(join(a, LAYOUT_FILE), JSON.stringify(layout));
  const tampered = t.throws(() => openStore2(a, PASS));
  t.true(tampered instanceof BadStoreError, String(tampered));
  t.regex(tampered?.message ?? '', /does not match this vault/);
  writeFileSync(join(a, LAYOUT_FILE), layoutText);

  writeFileSync(join(a, STORE_MARKER_FILE), readFileSync(join(b, STORE_MARKER_FILE)));
  const foreign = t.throws(() => openStore2(a, PASS));
  t.true(foreign instanceof BadStoreError, String(foreign));
});

test('format 1 and format 2 tell each other apart: neither opens as the other', async (t) => {
  const base = tempDir(t);
  const one = join(base, 'one');
  const two = join(base, 'two');
  await (await Vault.create(one, PASS, SETTINGS)).close();
  createStore2(two, PASS, SETTINGS).close();
  t.throws(() => openStore2(one, PASS), { instanceOf: BadStoreError, message: /format 1: run svault upgrade/ });
  t.throws(() => parseConfig(readFileSync(join(two, CONFIG_FILE), 'utf8'), two), { instanceOf: BadStoreError, message: /unsupported format 2 \(this svault reads format 1\)/ });
  // The format is bound into the wrap: a format-1 config relabelled 2 does not open.
  const relabelled = JSON.parse(readFileSync(join(one, CONFIG_FILE), 'utf8'));
  relabelled.format = 2;
  const config = parseConfig(JSON.stringify(relabelled), one, [2]);
  const { unwrapMasterKey } = await import('../../src/core/vault/config.js');
  t.throws(() => unwrapMasterKey(config, PASS, one), { instanceOf: WrongPassphraseError });
});
