// svault passwd: the new passphrase never comes from where the current one does (security finding 8).

import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PASSPHRASE, sandbox } from '../helpers/cli.js';

test('passwd takes the new passphrase from --new-passphrase-file or a terminal, never from SVAULT_PASSPHRASE, and refuses the same one', async (t) => {
  const box = sandbox(t, 'passwd');
  t.is((await box.svault(['init', '--store', box.store, '--chaff', '0'])).code, 0);

  // SVAULT_PASSPHRASE is the current passphrase; with no terminal there is no new one: exit 2.
  const noNew = await box.svault(['passwd', '--store', box.store]);
  t.is(noNew.code, 2, noNew.stderr);
  t.regex(noNew.stderr, /no new passphrase: use --new-passphrase-file/);

  const same = join(box.dir, 'same');
  writeFileSync(same, `${PASSPHRASE}\n`);
  const unchanged = await box.svault(['passwd', '--store', box.store, '--new-passphrase-file', same]);
  t.is(unchanged.code, 2, unchanged.stderr);
  t.regex(unchanged.stderr, /the new passphrase is the current one/);
  t.is((await box.svault(['info', '--store', box.store])).code, 0, 'the current passphrase still opens the vault');

  const other = join(box.dir, 'other');
  writeFileSync(other, 'a different passphrase\n');
  const changed = await box.svault(['passwd', '--store', box.store, '--new-passphrase-file', other]);
  t.is(changed.code, 0, changed.stderr);
  t.is((await box.svault(['info', '--store', box.store])).code, 3, 'the old passphrase no longer opens it');
  t.is((await box.svault(['info', '--store', box.store], { env: { SVAULT_PASSPHRASE: 'a different passphrase' } })).code, 0);
});

test('a generated passphrase is a warning at creation, info names its file (never the passphrase), and passwd says the old one is not revoked (security finding 7)', async (t) => {
  const box = sandbox(t, 'generated');
  const noPassphrase = { env: { SVAULT_PASSPHRASE: '' } };
  const created = await box.svault(['mount', box.mnt], noPassphrase);
  t.is(created.code, 0, created.stderr);
  const file = join(box.dir, 'config', 'svault', 'default.passphrase');
  const generated = readFileSync(file, 'utf8').trim();
  t.regex(created.stderr, new RegExp(`warning: its passphrase was generated and saved in ${file}`));
  t.regex(created.stderr, /a backup of your home directory\s+holds both/);
  t.is((await box.svault(['unmount', box.mnt])).code, 0);

  const info = await box.svault(['info'], noPassphrase);
  t.is(info.code, 0, info.stderr);
  t.regex(info.stdout, new RegExp(`passphrase:\\s+generated, saved in ${file}`));
  t.false(info.stdout.includes(generated), 'info never prints the passphrase');
  const json = JSON.parse((await box.svault(['info', '--json'], noPassphrase)).stdout) as { generatedPassphraseFile: string | null };
  t.is(json.generatedPassphraseFile, file);

  const mine = join(box.dir, 'mine');
  writeFileSync(mine, 'my own passphrase\n');
  const changed = await box.svault(['passwd', '--new-passphrase-file', mine], noPassphrase);
  t.is(changed.code, 0, changed.stderr);
  t.regex(changed.stderr, /removed the generated passphrase file/);
  t.regex(changed.stderr, /the master key is unchanged\. A copy of the old svault\.json/);
  t.false(existsSync(file));
  const after = await box.svault(['info'], { env: { SVAULT_PASSPHRASE: 'my own passphrase' } });
  t.is(after.code, 0, after.stderr);
  t.notRegex(after.stdout, /passphrase:/, 'no generated passphrase any more');
});
