// svault passwd: the new passphrase never comes from where the current one does (security finding 8).

import test from 'ava';
import { writeFileSync } from 'node:fs';
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
