// The commit model (src/core/vault/committer.ts): a close is atomic and ordered but waits for no disk;
// fsync and the commit window make changes durable. A "crash" here is abandoning the vault: its SQLite
// handle is closed with nothing more written, and its lock is left stale.

import test from 'ava';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE } from '../../src/core/vault/store-lock.js';
import { Vault } from '../../src/core/vault/vault.js';
import { abandon, patternBytes, tempDir, PASSPHRASE } from '../helpers/temp-vault.js';

const P = 4096;

async function vaultIn(t: Parameters<typeof tempDir>[0], commitWindowMs: number): Promise<{ dir: string; v: Vault }> {
  const dir = join(tempDir(t), 'store');
  const v = await Vault.create(dir, PASSPHRASE, { pieceSize: P, chaffRatio: 0 }, { commitWindowMs });
  return { dir, v };
}

/** The process dies: nothing more reaches SQLite. Then the store is opened again, as after a crash. */
async function crashAndReopen(t: Parameters<typeof tempDir>[0], dir: string, v: Vault): Promise<Vault> {
  abandon(v);
  unlinkSync(join(dir, LOCK_FILE));
  const again = await Vault.open(dir, PASSPHRASE, { pieceWorker: false });
  t.teardown(() => again.close());
  return again;
}

test('changes not yet committed are lost by a crash in order: a rename after a close never lands without it', async (t) => {
  const { dir, v } = await vaultIn(t, 60_000);
  await v.writeFile('/x', patternBytes(3 * P, 1));
  await v.sync();
  await v.writeFile('/x', patternBytes(3 * P + 5, 2)); // closed: atomic, not durable yet
  v.rename('/x', '/y');
  const after = await crashAndReopen(t, dir, v);
  t.deepEqual(after.readdir('/'), ['x'], 'neither the close nor the rename after it survived');
  t.true((await after.readFile('/x')).equals(patternBytes(3 * P, 1)), 'the file is whole, as at its last durable state');
});

test('fsync makes the file and every change before it durable', async (t) => {
  const { dir, v } = await vaultIn(t, 60_000);
  v.mkdir('/d', 0o755);
  await v.writeFile('/d/a', patternBytes(2 * P, 3));
  const fh = v.create('/b', 0o600);
  await v.write(fh, patternBytes(P + 1, 4), 0);
  await v.fsync(fh);
  v.rename('/d/a', '/d/c'); // after the fsync: may be lost
  const after = await crashAndReopen(t, dir, v);
  t.deepEqual(after.readdir('/').sort(), ['b', 'd']);
  t.true((await after.readFile('/b')).equals(patternBytes(P + 1, 4)));
  t.deepEqual(after.readdir('/d'), ['a'], 'the rename after the fsync was lost, the write before it was not');
  t.true((await after.readFile('/d/a')).equals(patternBytes(2 * P, 3)));
});

test('the commit window makes closed files durable without any fsync', async (t) => {
  const { dir, v } = await vaultIn(t, 100);
  await v.writeFile('/w', patternBytes(2 * P + 9, 5));
  const commits = () => v.stats.summary().find((s) => s.op === 'bg.commit')?.calls ?? 0;
  t.is(commits(), 0, 'nothing committed the close yet');
  // The window's timer commits in the background; a busy machine may run it late, so wait for it.
  for (let waited = 0; commits() === 0 && waited < 20_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  t.is(commits(), 1, 'one background commit, with no fsync');
  const after = await crashAndReopen(t, dir, v);
  t.true((await after.readFile('/w')).equals(patternBytes(2 * P + 9, 5)));
});

test('a commit that fails keeps its changes for the next one, in order', async (t) => {
  const { dir, v } = await vaultIn(t, 60_000);
  await v.writeFile('/first', patternBytes(P, 6));
  // Fail the blob step of the next commit once: the cut stays, and the commit after it writes it.
  const contents = (v as unknown as { contents: { makeStoredDurable(): Promise<void> } }).contents;
  const real = contents.makeStoredDurable.bind(contents);
  contents.makeStoredDurable = async () => {
    contents.makeStoredDurable = real;
    throw new Error('simulated EIO syncing blobs');
  };
  await t.throwsAsync(v.sync(), { message: /simulated EIO/ });
  await v.writeFile('/second', patternBytes(P, 7));
  await v.sync();
  const after = await crashAndReopen(t, dir, v);
  t.deepEqual(after.readdir('/').sort(), ['first', 'second']);
  t.true((await after.readFile('/first')).equals(patternBytes(P, 6)));
});
