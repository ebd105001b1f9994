// Nothing the user stores may appear in the store directory in any recognisable form: not file names,
// contents, directory names, xattr names or values, symlink targets, nor the passphrase. Blob names are
// 64 hex digits and blob sizes fall in the few size classes, so neither says anything about files.

import test, { type ExecutionContext } from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { blobSizeClasses } from '../../src/core/pieces/piece-codec.js';
import { BLOB_DIR } from '../../src/core/store/local-dir-store.js';
import { createTempVault, listFilesRecursive, patternBytes, writeAt, type TempVault } from '../helpers/temp-vault.js';

const MARKER = 'ZqxMarker7Vq';
const PASSPHRASE = 'leakcheck-passphrase-9Kt';
const PIECE_SIZE = 65536;

/** Every encoding in which the marker could show up on disk. */
function needles(marker: string): { form: string; bytes: Buffer }[] {
  const out = [
    { form: 'utf8', bytes: Buffer.from(marker, 'utf8') },
    { form: 'utf8 lower case', bytes: Buffer.from(marker.toLowerCase(), 'utf8') },
    { form: 'utf16le', bytes: Buffer.from(marker, 'utf16le') },
    { form: 'utf16be', bytes: Buffer.from(marker, 'utf16le').swap16() },
    { form: 'hex', bytes: Buffer.from(Buffer.from(marker).toString('hex'), 'utf8') },
  ];
  // base64 at each of the three alignments: drop the edge characters that depend on the neighbours.
  for (const pad of ['', 'x', 'xy']) {
    const b64 = Buffer.from(pad + marker).toString('base64').replace(/=+$/, '');
    const skip = Math.ceil((pad.length * 4) / 3);
    out.push({ form: `base64 (offset ${pad.length})`, bytes: Buffer.from(b64.slice(skip, b64.length - 2), 'utf8') });
    out.push({ form: `base64url (offset ${pad.length})`, bytes: Buffer.from(Buffer.from(pad + marker).toString('base64url').slice(skip, b64.length - 2), 'utf8') });
  }
  return out;
}

/** Fails the test for every needle found in any file of the store (recursively). Returns the files scanned. */
function assertNotInStore(t: ExecutionContext, storeDir: string, secret: string, label: string): string[] {
  const files = listFilesRecursive(storeDir);
  for (const rel of files) {
    const bytes = readFileSync(join(storeDir, rel));
    for (const n of needles(secret)) {
      const at = bytes.indexOf(n.bytes);
      if (at >= 0) t.fail(`${label} found as ${n.form} in ${rel} at byte ${at}`);
    }
  }
  return files;
}

/** Fills a vault with the marker everywhere a user can put it. Leaves one file open (uncommitted state at close). */
async function fillWithMarker(tv: TempVault): Promise<number> {
  const v = tv.vault;
  const body = Buffer.from(`${MARKER} `.repeat(5000)); // several pieces of it
  v.mkdir(`/${MARKER}-dir`, 0o755);
  v.mkdir(`/${MARKER}-dir/sub-${MARKER}`, 0o755);
  await v.writeFile(`/${MARKER}.txt`, body.subarray(0, 100));
  await v.writeFile(`/${MARKER}-dir/big-${MARKER}`, body);
  await v.writeFile(`/${MARKER}-dir/sub-${MARKER}/small`, Buffer.from(MARKER));
  await v.writeFile(`/plain-name`, Buffer.concat([patternBytes(70000, 1), Buffer.from(MARKER)]));
  await v.writeFile(`/utf16-${MARKER}`, Buffer.from(MARKER.repeat(100), 'utf16le'));
  await writeAt(v, `/sparse-${MARKER}`, Buffer.from(MARKER), 5 * PIECE_SIZE);
  v.setxattr(`/${MARKER}.txt`, `user.${MARKER}`, Buffer.from(`value-${MARKER}`), 0);
  v.setxattr(`/${MARKER}-dir`, 'user.plain', Buffer.from(MARKER.repeat(50)), 0);
  v.symlink(`/target/${MARKER}/x`, `/link-${MARKER}`);
  v.symlink(`../${MARKER}`, `/${MARKER}-dir/plain-link`);
  v.link(`/${MARKER}.txt`, `/hardlink-${MARKER}`);
  v.rename(`/plain-name`, `/renamed-${MARKER}`);
  // A removed file and a removed directory, whose records and pieces are gone but might linger.
  await v.writeFile(`/deleted-${MARKER}`, body.subarray(0, 5000));
  v.unlink(`/deleted-${MARKER}`);
  v.mkdir(`/rmdir-${MARKER}`, 0o755);
  v.rmdir(`/rmdir-${MARKER}`);
  // Still open at close time: close() commits it.
  const fh = v.create(`/open-${MARKER}`, 0o644);
  await v.write(fh, body.subarray(0, 3000), 0);
  return fh;
}

test('no marker in file names, contents, xattrs, symlink targets or the passphrase appears anywhere in the store', async (t) => {
  const tv = await createTempVault(t, { pieceSize: PIECE_SIZE, chaffRatio: 1, passphrase: PASSPHRASE });
  await fillWithMarker(tv);
  // The markers are really in the vault (so the scan below would have something to find if it leaked).
  t.true((await tv.vault.readFile(`/${MARKER}-dir/big-${MARKER}`)).includes(MARKER));
  t.is(tv.vault.readlink(`/link-${MARKER}`), `/target/${MARKER}/x`);

  // While the vault is open (WAL and shared-memory files present) ...
  const openFiles = assertNotInStore(t, tv.storeDir, MARKER, 'marker (vault open)');
  assertNotInStore(t, tv.storeDir, PASSPHRASE, 'passphrase (vault open)');
  // ... and after it is closed.
  await tv.close();
  const files = assertNotInStore(t, tv.storeDir, MARKER, 'marker');
  assertNotInStore(t, tv.storeDir, PASSPHRASE, 'passphrase');
  t.true(files.includes('meta.db') && files.includes('svault.json'));
  t.true(files.filter((f) => f.startsWith(BLOB_DIR + '/')).length >= 10, 'the scan covered the blobs');
  t.true(openFiles.some((f) => f.startsWith('meta.db-')), 'the open-vault scan covered the WAL');

  // Reopened, the data is all there (the scan looked at a store that really holds it).
  const v = await tv.open();
  t.true((await v.readFile(`/open-${MARKER}`)).equals(Buffer.from(`${MARKER} `.repeat(5000)).subarray(0, 3000)));
  t.is(v.getxattr(`/${MARKER}.txt`, `user.${MARKER}`).toString(), `value-${MARKER}`);
});

test('blob names are 64 hex digits in their shard, and blob sizes are only the size classes', async (t) => {
  const tv = await createTempVault(t, { pieceSize: PIECE_SIZE, chaffRatio: 1 });
  await fillWithMarker(tv);
  for (const size of [1, 4000, 4065, 17000, 65535, 65536, 65537, 200000]) await tv.vault.writeFile(`/size-${size}`, patternBytes(size, size));
  await tv.close();

  const classes = blobSizeClasses(PIECE_SIZE);
  t.deepEqual(classes, [4096, 16384, 65536, PIECE_SIZE + 32], 'the size classes this test expects');
  const blobsDir = join(tv.storeDir, BLOB_DIR);
  const seen = new Map<number, number>();
  let count = 0;
  for (const shard of readdirSync(blobsDir)) {
    t.regex(shard, /^[0-9a-f]{2}$/, `shard directory ${shard}`);
    for (const name of readdirSync(join(blobsDir, shard))) {
      count++;
      t.regex(name, /^[0-9a-f]{64}$/, `blob name ${name}`);
      t.true(name.startsWith(shard), `${name} is in shard ${shard}`);
      const size = statSync(join(blobsDir, shard, name)).size;
      seen.set(size, (seen.get(size) ?? 0) + 1);
      t.true(classes.includes(size), `blob ${shard}/${name} has size ${size}, not a size class`);
    }
  }
  t.true(count > 20, `only ${count} blobs`);
  t.true(seen.size >= 3, `sizes seen: ${[...seen.keys()].join(', ')}`);
  // Only the directory of shards, the metadata, the config and the full-disk reserve (zeroes) sit at the top.
  t.deepEqual(readdirSync(tv.storeDir).sort(), [BLOB_DIR, 'meta.db', 'svault.json', 'svault.reserve']);
  t.true(readFileSync(join(tv.storeDir, 'svault.reserve')).every((b) => b === 0), 'the reserve holds only zeroes');
});
