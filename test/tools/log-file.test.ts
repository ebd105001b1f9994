// The mount server's log is capped (security finding 11: logs are never rotated or capped).

import test from 'ava';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CappedLog } from '../../src/cli/log-file.js';
import { tempDir } from '../helpers/temp-vault.js';

test('past its cap the log moves to .1, the older ones to .2 and .3, and the oldest goes', (t) => {
  const path = join(tempDir(t), 'mount.log');
  const log = new CappedLog(path, 1000, 3);
  const line = (i: number) => `line ${String(i).padStart(4, '0')} ${'x'.repeat(88)}\n`; // 100 bytes
  for (let i = 0; i < 55; i++) log.append(line(i));
  t.true(statSync(path).size <= 1000, 'the current log stays under its cap');
  for (const n of [1, 2, 3]) t.true(statSync(`${path}.${n}`).size <= 1000, `.${n} is under the cap`);
  t.false(existsSync(`${path}.4`), 'no more than three old logs are kept');
  t.true(readFileSync(path, 'utf8').endsWith(line(54)), 'the newest line is in the current log');
  t.true(readFileSync(`${path}.1`, 'utf8').endsWith(line(49)), '.1 holds the lines just before');
  t.false([path, `${path}.1`, `${path}.2`, `${path}.3`].some((f) => readFileSync(f, 'utf8').includes(line(0))), 'the oldest lines are gone');
});

test('a log that cannot be written loses the line and does not throw', (t) => {
  const log = new CappedLog(join(tempDir(t), 'missing-dir', 'mount.log'));
  t.notThrows(() => log.append('lost\n'));
});
