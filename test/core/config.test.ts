// The vault config (svault.json): a wrong passphrase is refused without touching the store, every field
// is bound to the wrapped key so no tampered config opens, weak KDF parameters are refused, and a
// passphrase change rewraps the key without touching pieces or metadata.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILE, SCRYPT_MIN } from '../../src/core/vault/config.js';
import { BadStoreError, WrongPassphraseError } from '../../src/core/errors.js';
import { META_FILE } from '../../src/core/meta/record-store.js';
import { LOCK_FILE } from '../../src/core/vault/store-lock.js';
import { BLOB_DIR } from '../../src/core/store/local-dir-store.js';
import { Vault } from '../../src/core/vault/vault.js';
import { createTempVault, patternBytes, snapshotDir, snapshotObject, type TempVault } from '../helpers/temp-vault.js';

type Json = Record<string, unknown>;

function readJson(tv: TempVault): Json {
  return JSON.parse(readFileSync(join(tv.storeDir, CONFIG_FILE), 'utf8')) as Json;
}

function writeJson(tv: TempVault, c: Json): void {
  writeFileSync(join(tv.storeDir, CONFIG_FILE), JSON.stringify(c, null, 2) + '\n');
}

function kdfOf(c: Json): Json {
  return c.kdf as Json;
}

/** A vault with some content, closed, ready for open attempts. */
async function closedVaultWithData(t: Parameters<typeof createTempVault>[0]): Promise<{ tv: TempVault; files: Map<string, Buffer> }> {
  const tv = await createTempVault(t, { pieceSize: 4096, chaffRatio: 0.5 });
  const files = new Map<string, Buffer>([
    ['/a', patternBytes(10000, 1)],
    ['/b', patternBytes(1, 2)],
  ]);
  tv.vault.mkdir('/dir', 0o755);
  files.set('/dir/c', patternBytes(5000, 3));
  for (const [p, d] of files) await tv.vault.writeFile(p, d);
  tv.vault.setxattr('/a', 'user.k', Buffer.from('v'), 0);
  await tv.close();
  return { tv, files };
}

async function assertContent(t: import('ava').ExecutionContext, vault: Vault, files: Map<string, Buffer>): Promise<void> {
  for (const [p, d] of files) t.true((await vault.readFile(p)).equals(d), `content of ${p}`);
}

test('wrong passphrase: WrongPassphraseError naming the store, and nothing in the store is written', async (t) => {
  const { tv } = await closedVaultWithData(t);
  const before = snapshotDir(tv.storeDir);
  t.true(before.has(META_FILE) && [...before.keys()].some((k) => k.startsWith(BLOB_DIR + '/')), 'the store holds metadata and blobs');
  // Let any later write show up as a different mtime even on coarse-grained clocks.
  await new Promise((r) => setTimeout(r, 30));

  for (const wrong of ['wrong passphrase', tv.passphrase + ' ']) {
    const err = await t.throwsAsync(Vault.open(tv.storeDir, wrong), { instanceOf: WrongPassphraseError });
    t.is(err?.store, tv.storeDir);
    t.true(err?.message.includes(tv.storeDir), 'the message names the store');
  }
  t.false(existsSync(join(tv.storeDir, LOCK_FILE)), 'a failed open must not leave a lock file');
  t.deepEqual(snapshotObject(snapshotDir(tv.storeDir)), snapshotObject(before), 'files changed, appeared or vanished');

  // The right passphrase still opens it (so the failures above were about the passphrase).
  const v = await tv.open();
  t.deepEqual(v.readdir('/').sort(), ['a', 'b', 'dir']);
});

test('the passphrase is normalised (NFC): composed and decomposed forms open the same vault', async (t) => {
  const tv = await createTempVault(t, { passphrase: 'caf\u00e9 au lait' });
  await tv.vault.writeFile('/x', Buffer.from('y'));
  await tv.close();
  const v = await Vault.open(tv.storeDir, 'cafe\u0301 au lait');
  t.teardown(() => v.close());
  t.is((await v.readFile('/x')).toString(), 'y');
});

interface Tamper {
  name: string;
  change: (c: Json) => void;
  /** Expected refusal: BadStoreError when validation catches it, WrongPassphraseError when only the key binding can. */
  expect: 'bad' | 'wrong' | 'either';
}

const tampers: Tamper[] = [
  { name: 'pieceSize (valid but different)', change: (c) => (c.pieceSize = (c.pieceSize as number) * 2), expect: 'wrong' },
  { name: 'pieceSize (invalid)', change: (c) => (c.pieceSize = 1000), expect: 'bad' },
  { name: 'chaffRatio', change: (c) => (c.chaffRatio = 0.25), expect: 'wrong' },
  { name: 'chaffRatio (invalid)', change: (c) => (c.chaffRatio = -1), expect: 'bad' },
  { name: 'vaultId', change: (c) => (c.vaultId = randomBytes(16).toString('hex')), expect: 'wrong' },
  { name: 'vaultId (one digit)', change: (c) => (c.vaultId = flipHexDigit(c.vaultId as string)), expect: 'wrong' },
  { name: 'vaultId (malformed)', change: (c) => (c.vaultId = 'zz' + (c.vaultId as string).slice(2)), expect: 'bad' },
  { name: 'kdf.N (stronger)', change: (c) => (kdfOf(c).N = (kdfOf(c).N as number) * 2), expect: 'wrong' },
  { name: 'kdf.r', change: (c) => (kdfOf(c).r = (kdfOf(c).r as number) + 1), expect: 'wrong' },
  { name: 'kdf.p', change: (c) => (kdfOf(c).p = (kdfOf(c).p as number) + 1), expect: 'wrong' },
  { name: 'kdf.salt', change: (c) => (kdfOf(c).salt = randomBytes(32).toString('base64')), expect: 'wrong' },
  { name: 'kdf.salt (too short)', change: (c) => (kdfOf(c).salt = randomBytes(8).toString('base64')), expect: 'bad' },
  { name: 'kdf.name', change: (c) => (kdfOf(c).name = 'argon2id'), expect: 'bad' },
  { name: 'kdf unknown field', change: (c) => (kdfOf(c).extra = 1), expect: 'bad' },
  { name: 'format', change: (c) => (c.format = (c.format as number) + 1), expect: 'bad' },
  { name: 'format (as a string)', change: (c) => (c.format = String(c.format)), expect: 'bad' },
  { name: 'cipher', change: (c) => (c.cipher = 'aes-128-gcm'), expect: 'bad' },
  { name: 'wrappedKey (one bit)', change: (c) => (c.wrappedKey = flipBase64Bit(c.wrappedKey as string, 20)), expect: 'wrong' },
  { name: 'wrappedKey (tag bit)', change: (c) => (c.wrappedKey = flipBase64Bit(c.wrappedKey as string, -1)), expect: 'wrong' },
  { name: 'wrappedKey (truncated)', change: (c) => (c.wrappedKey = Buffer.from(c.wrappedKey as string, 'base64').subarray(0, 40).toString('base64')), expect: 'wrong' },
  { name: 'wrappedKey (from another vault)', change: (c) => (c.wrappedKey = randomBytes(60).toString('base64')), expect: 'wrong' },
  { name: 'an unknown added field', change: (c) => (c.comment = 'hello'), expect: 'bad' },
  { name: 'a missing field (chaffRatio)', change: (c) => delete c.chaffRatio, expect: 'bad' },
  { name: 'not an object', change: (c) => { for (const k of Object.keys(c)) delete c[k]; }, expect: 'bad' },
];

function flipHexDigit(hex: string): string {
  const d = hex[5] === '0' ? '1' : '0';
  return hex.slice(0, 5) + d + hex.slice(6);
}

/** Flips one bit of the decoded bytes at index i (negative: from the end) and re-encodes. */
function flipBase64Bit(b64: string, i: number): string {
  const b = Buffer.from(b64, 'base64');
  const at = i < 0 ? b.length + i : i;
  b[at] = (b[at] as number) ^ 0x01;
  return b.toString('base64');
}

test('every tampered config field is refused, and the store is not written', async (t) => {
  const { tv, files } = await closedVaultWithData(t);
  const original = readFileSync(join(tv.storeDir, CONFIG_FILE), 'utf8');
  const snapshot = snapshotObject(snapshotDir(tv.storeDir));
  for (const tamper of tampers) {
    const c = JSON.parse(original) as Json;
    tamper.change(c);
    writeJson(tv, c);
    const tamperedSnapshot = snapshotObject(snapshotDir(tv.storeDir));
    const err = await Vault.open(tv.storeDir, tv.passphrase).then(
      async (v) => {
        await v.close();
        return null;
      },
      (e: unknown) => e,
    );
    if (err === null) {
      t.fail(`a config with a tampered ${tamper.name} opened`);
      continue;
    }
    const ok =
      tamper.expect === 'bad' ? err instanceof BadStoreError
      : tamper.expect === 'wrong' ? err instanceof WrongPassphraseError
      : err instanceof BadStoreError || err instanceof WrongPassphraseError;
    t.true(ok, `${tamper.name}: expected ${tamper.expect}, got ${String(err)}`);
    if (err instanceof BadStoreError || err instanceof WrongPassphraseError) t.is(err.store, tv.storeDir, `${tamper.name}: names the store`);
    t.deepEqual(snapshotObject(snapshotDir(tv.storeDir)), tamperedSnapshot, `${tamper.name}: the refused open wrote to the store`);
  }
  // Restored, the same config opens and the data is intact: the refusals were due to the tampering.
  writeFileSync(join(tv.storeDir, CONFIG_FILE), original);
  const restored = snapshotObject(snapshotDir(tv.storeDir));
  // Rewriting the config just above gave it a new mtime; everything else must be as it was.
  for (const snap of [restored, snapshot]) if (snap[CONFIG_FILE]) snap[CONFIG_FILE].mtimeMs = 0;
  t.deepEqual(restored, snapshot);
  const v = await tv.open();
  await assertContent(t, v, files);
});

test('KDF parameters below the minimum are refused before any key derivation', async (t) => {
  const { tv } = await closedVaultWithData(t);
  const original = readJson(tv);
  const weak: [string, (c: Json) => void][] = [
    ['N halved', (c) => (kdfOf(c).N = SCRYPT_MIN.N / 2)],
    ['N = 2', (c) => (kdfOf(c).N = 2)],
    ['N = 0', (c) => (kdfOf(c).N = 0)],
    ['N negative', (c) => (kdfOf(c).N = -SCRYPT_MIN.N)],
    ['N not a power of two', (c) => (kdfOf(c).N = SCRYPT_MIN.N + 1)],
    ['N fractional', (c) => (kdfOf(c).N = SCRYPT_MIN.N + 0.5)],
    ['N as a string', (c) => (kdfOf(c).N = String(SCRYPT_MIN.N))],
    ['N missing', (c) => delete kdfOf(c).N],
    ['r below', (c) => (kdfOf(c).r = SCRYPT_MIN.r - 1)],
    ['p = 0', (c) => (kdfOf(c).p = 0)],
    ['N huge (hostile cost)', (c) => (kdfOf(c).N = 2 ** 30)],
    ['p huge (hostile cost)', (c) => (kdfOf(c).p = 1000)],
  ];
  // What running scrypt at the minimum cost takes here (a wrong passphrase: all checks pass, then scrypt runs).
  // Vault.open does its config checks and key derivation before its first await, so timing the synchronous
  // part of the call leaves out other tests running meanwhile.
  const syncPart = (passphrase: string): { ms: number; opening: Promise<Vault> } => {
    const started = process.hrtime.bigint();
    const opening = Vault.open(tv.storeDir, passphrase);
    return { ms: Number(process.hrtime.bigint() - started) / 1e6, opening };
  };
  const baseline = syncPart('not the passphrase');
  await t.throwsAsync(baseline.opening, { instanceOf: WrongPassphraseError });
  for (const [name, change] of weak) {
    const c = structuredClone(original);
    change(c);
    writeJson(tv, c);
    const { ms, opening } = syncPart(tv.passphrase);
    await t.throwsAsync(opening, { instanceOf: BadStoreError }, name);
    // Refused by validation, not after running scrypt.
    t.true(ms < baseline.ms / 4, `${name}: took ${ms.toFixed(0)} ms, as if scrypt ran (scrypt takes ${baseline.ms.toFixed(0)} ms here)`);
  }
  const below = structuredClone(original);
  kdfOf(below).N = SCRYPT_MIN.N / 2;
  writeJson(tv, below);
  await t.throwsAsync(Vault.open(tv.storeDir, tv.passphrase), { message: /minimum/ });
});

test('Vault.create refuses bad settings and a non-empty directory', async (t) => {
  const tv = await createTempVault(t);
  await t.throwsAsync(Vault.create(tv.storeDir, 'x'), { instanceOf: BadStoreError, message: /not empty/ });
  const fresh = join(tv.storeDir, '..', 'fresh');
  await t.throwsAsync(Vault.create(fresh, 'x', { pieceSize: 1000 }), { message: /piece size/ });
  await t.throwsAsync(Vault.create(join(tv.storeDir, '..', 'f2'), 'x', { pieceSize: 2048 }), { message: /piece size/ });
  await t.throwsAsync(Vault.create(join(tv.storeDir, '..', 'f3'), 'x', { chaffRatio: 5 }), { message: /chaff/ });
});

test('changePassphrase: the old passphrase stops working, the new one works, data intact, pieces and metadata untouched', async (t) => {
  const { tv, files } = await closedVaultWithData(t);
  const NEW = 'a brand new passphrase';
  const v = await Vault.open(tv.storeDir, tv.passphrase);
  let closed = false;
  t.teardown(async () => {
    if (!closed) await v.close();
  });
  const configBefore = readJson(tv);
  const blobs = (dir: string) => snapshotObject(snapshotDir(join(dir, BLOB_DIR)));
  const metaBytes = () => readFileSync(join(tv.storeDir, META_FILE));
  const blobsBefore = blobs(tv.storeDir);
  const metaBefore = metaBytes();
  t.true(Object.keys(blobsBefore).length > 0);

  v.changePassphrase(NEW);
  t.deepEqual(blobs(tv.storeDir), blobsBefore, 'changing the passphrase touched piece blobs');
  t.true(metaBytes().equals(metaBefore), 'changing the passphrase touched meta.db');
  const configAfter = readJson(tv);
  t.not(configAfter.wrappedKey, configBefore.wrappedKey);
  t.not(kdfOf(configAfter).salt, kdfOf(configBefore).salt, 'a fresh salt');
  for (const k of ['format', 'vaultId', 'cipher', 'pieceSize', 'chaffRatio']) t.deepEqual(configAfter[k], configBefore[k], `${k} unchanged`);
  t.false(readFileSync(join(tv.storeDir, CONFIG_FILE), 'utf8').includes(NEW), 'the passphrase is not stored');

  // The open vault keeps working.
  await assertContent(t, v, files);
  await v.close();
  closed = true;
  t.deepEqual(blobs(tv.storeDir), blobsBefore, 'pieces untouched across the close');

  const err = await t.throwsAsync(Vault.open(tv.storeDir, tv.passphrase), { instanceOf: WrongPassphraseError });
  t.is(err?.store, tv.storeDir);
  const reopened = await Vault.open(tv.storeDir, NEW);
  t.teardown(() => reopened.close());
  await assertContent(t, reopened, files);
  t.deepEqual(reopened.getxattr('/a', 'user.k').toString(), 'v');
  t.deepEqual(blobs(tv.storeDir), blobsBefore, 'opening with the new passphrase and reading touched no blob');
});
