// svault upgrade --finish (src/core/format2/upgrade-finish.ts, docs/format-2.md 4.4): a format-1 store made
// through format 1's Vault is upgraded, used as format 2, and finished. Small files go INLINE with their
// blobs deleted, format 1's superseded pieces and files go, format 1's chaff goes and every live piece has
// its derived chaff (10.2), every byte and attribute stays; fsck is clean and the orphan sweep finds
// nothing; rollback is refused. A --finish interrupted after a commit of its
// walk (a hook that throws, as a crash would stop it there) goes on from finishCursor and ends where a run
// without the interruption ends, blob for blob. A small file whose piece cannot be read keeps its map.

import test, { type ExecutionContext } from 'ava';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadStoreError } from '../../src/core/errors.js';
import { FORMAT1_CONFIG_COPY, FORMAT1_METADATA } from '../../src/core/format2/format-detect.js';
import { fsckVault2, isClean2, scanVault2 } from '../../src/core/format2/fsck2-vault.js';
import { finishUpgrade } from '../../src/core/format2/upgrade-finish.js';
import { rollbackUpgrade, upgradeStore } from '../../src/core/format2/upgrade.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { BLOB_DIR } from '../../src/core/store/local-dir-store.js';
import { CONFIG_FILE } from '../../src/core/vault/config.js';
import { chaffAddresses2 } from '../helpers/chaff2.js';
import { tempDir } from '../helpers/temp-vault.js';
import {
  blobAddresses, census, checkTree, contentOf, INLINED, inlineState, looking, makeFormat1Store, MAPPED, pieceBlobsOf, readAll2, readErrno, UPGRADE_PASS,
  type Manifest,
} from '../helpers/upgrade-store.js';

const PASS = UPGRADE_PASS;

interface Upgraded {
  store: string;
  anchors: string;
  manifest: Map<string, Manifest>;
}

/** A format-1 store, upgraded (stage 1). */
async function upgraded(t: ExecutionContext, base = tempDir(t)): Promise<Upgraded> {
  const store = join(base, 'store');
  const anchors = join(base, 'anchors');
  const manifest = await makeFormat1Store(store, anchors);
  await upgradeStore(store, PASS, { anchorDir: anchors });
  return { store, anchors, manifest };
}

/**
 * The derived chaff (10.2, computed from the spec) of the pieces the maps of `paths` point to now, by
 * address (hex), with the size of its piece's blob; `legacy` only format 1's pieces, or only format 2's.
 */
async function chaffOfPaths(store: string, paths: string[], legacy?: boolean): Promise<Map<string, number>> {
  return looking(store, async (v) => {
    const { md, pieces, chaffKeys, config, storeDir } = v.check();
    const out = new Map<string, number>();
    for (const path of paths) {
      const ino = v.paths.idAt(path);
      const inode = md.requireInode(ino);
      for (const { index, version } of md.pieceMapIfAny(ino)?.versions() ?? []) {
        if (legacy !== undefined && legacy !== version < md.state.legacyBelow) continue;
        const hex = pieces.pieceAddress(inode, index, version).toString('hex');
        const size = statSync(join(storeDir, BLOB_DIR, hex.slice(0, 2), hex)).size;
        for (const c of chaffAddresses2(chaffKeys, config.chaffRatio, { fileId: inode.fileId, index, version })) out.set(c, size);
      }
    }
    return out;
  });
}

/** The size of each blob at the given addresses (hex); absent ones are left out. */
function blobSizes(store: string, addresses: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const hex of addresses) {
    const path = join(store, BLOB_DIR, hex.slice(0, 2), hex);
    if (existsSync(path)) out.set(hex, statSync(path).size);
  }
  return out;
}

/** A map's entries by key: AVA compares Maps in their insertion order. */
function sortedEntries(m: Map<string, number>): [string, number][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const vaultIdOf = (store: string): string => (JSON.parse(readFileSync(join(store, CONFIG_FILE), 'utf8')) as { vaultId: string }).vaultId;

/** Format-2 changes before --finish: a large file's first piece rewritten, a small file deleted, a file made. */
async function useAsFormat2(store: string, anchors: string): Promise<void> {
  const v = await Vault2.open(store, PASS, { anchorDir: anchors, pieceWorker: false });
  try {
    const fh = v.paths.open('/docs/full-4064');
    await v.write(fh, Buffer.from('rewritten in format 2'), 0); // its format-1 piece stays, superseded
    await v.release(fh);
    v.paths.unlink('/docs/edge-3817'); // its format-1 piece stays, an orphan kept for a rollback
    const nf = v.paths.create('/made-in-format-2', 0o644, 0, 0);
    await v.write(nf, Buffer.alloc(9000, 3), 0);
    await v.release(nf);
  } finally {
    await v.close();
  }
}

test('--finish: small files INLINE with their blobs gone, format 1\'s superseded pieces and files gone, every byte and attribute kept; fsck clean; rollback refused', async (t) => {
  const { store, anchors, manifest } = await upgraded(t);
  const smallBlobs = (await Promise.all(INLINED.map((p) => pieceBlobsOf(store, p)))).flat();
  t.is(smallBlobs.length, 5, 'five small files have one piece each in format 1 (the hole-only one has none)');
  const fullPiece = (await pieceBlobsOf(store, '/docs/full-4064'))[0] as string;
  const unlinkedPiece = (await pieceBlobsOf(store, '/docs/edge-3817'))[0] as string;
  await useAsFormat2(store, anchors);

  const before = await census(store);
  t.deepEqual([...before.orphans].sort(), [fullPiece, unlinkedPiece].sort(), 'at stage 1 the superseded and the unlinked format-1 pieces are kept');
  for (const hex of smallBlobs) t.is(before.referenced.has(hex), hex !== unlinkedPiece);
  t.true(before.format1Chaff.size > 0, 'format 1 wrote chaff');
  // Format 2 wrote derived chaff with each piece it stored (10.2); format 1's pieces have format 1's chaff.
  const format2Files = ['/docs/full-4064', '/made-in-format-2'];
  const format2Chaff = await chaffOfPaths(store, format2Files);
  t.deepEqual(sortedEntries(blobSizes(store, before.derivedChaff)), sortedEntries(format2Chaff), 'at stage 1 the derived chaff is that of the pieces format 2 wrote, each the size of its piece\'s blob');
  const legacyFiles = ['/docs/edge-3819', '/big.bin', '/sparse'];
  const legacyChaff = await chaffOfPaths(store, legacyFiles, true);
  const smallLegacyChaff = await chaffOfPaths(store, INLINED.filter((p) => p !== '/docs/edge-3817'), true);
  t.deepEqual([...before.missingChaff].sort(), [...legacyChaff.keys(), ...smallLegacyChaff.keys()].sort(), 'format 1\'s pieces have no derived chaff yet');
  await looking(store, async (v) => {
    const { report } = await scanVault2(v);
    t.is(report.chaff, before.format1Chaff.size + before.derivedChaff.size, 'at stage 1, fsck counts format 1\'s chaff and format 2\'s');
    t.is(report.orphans, 0);
    t.false(report.notes.some((n) => /chaff blob/.test(n)), 'no note of missing chaff: format 1\'s pieces have format 1\'s until --finish');
  });
  t.true(existsSync(join(anchors, `${vaultIdOf(store)}.json`)), 'this machine has format 1\'s anchor');

  const report = await finishUpgrade(store, PASS, { anchorDir: anchors, inodesPerCommit: 3 });
  t.like(report, { outcome: 'finished', resumedAt: null, inlined: 5, inlinedBlobs: 4, orphansDeleted: 2, notInlined: [] });
  t.is(report.format1ChaffDeleted, before.format1Chaff.size, 'every format-1 chaff blob was deleted');
  t.is(report.chaffAdded, legacyChaff.size, 'the legacy pieces were given their derived chaff');
  t.deepEqual(report.format1FilesRemoved, [FORMAT1_CONFIG_COPY, FORMAT1_METADATA]);

  // Small files are INLINE, larger ones keep their pieces; exactly their blobs and the orphans are gone.
  t.deepEqual(await inlineState(store, [...INLINED.filter((p) => p !== '/docs/edge-3817'), ...MAPPED]), {
    '/tiny': true, '/docs/one-k': true, '/docs/edge-3818': true, '/docs/deep/er/est/leaf': true, '/docs/hole-only': true,
    '/docs/edge-3819': false, '/docs/full-4064': false, '/big.bin': false, '/sparse': false,
  });
  const after = await census(store);
  t.deepEqual(after.orphans, new Set(), 'no orphan is left');
  t.deepEqual(after.format1Chaff, new Set(), 'format 1\'s chaff is gone (4.4, --finish step 4)');
  for (const hex of before.format1Chaff) t.false(blobAddresses(store).has(hex), 'a format-1 chaff blob is deleted');
  t.deepEqual(after.missingChaff, new Set(), 'every live piece has its derived chaff');
  t.deepEqual(sortedEntries(blobSizes(store, after.derivedChaff)), sortedEntries(new Map([...format2Chaff, ...legacyChaff])), 'the chaff is exactly the derived chaff of the live pieces, each the size of its piece\'s blob');
  const gone = new Set([...smallBlobs.filter((h) => h !== unlinkedPiece), fullPiece, unlinkedPiece]);
  t.deepEqual(after.referenced, new Set([...before.referenced].filter((h) => !gone.has(h))));
  t.is(blobAddresses(store).size, after.referenced.size + format2Chaff.size + legacyChaff.size, 'the blobs are the live pieces and their derived chaff, nothing else');

  for (const name of [FORMAT1_CONFIG_COPY, FORMAT1_METADATA, `${FORMAT1_METADATA}-wal`, `${FORMAT1_METADATA}-shm`]) t.false(existsSync(join(store, name)), name);
  t.false(existsSync(join(anchors, `${vaultIdOf(store)}.json`)), 'format 1\'s anchor is gone');
  t.true(existsSync(join(anchors, `${vaultIdOf(store)}.v2`)), 'format 2\'s is there');

  await checkTree(t, store, manifest, ['/docs/edge-3817', '/docs/full-4064', '/docs']);
  await looking(store, async (v) => {
    t.like(v.check().md.state, { upgradeStage: 0, finishCursor: 0 });
    const rewritten = Buffer.from(contentOf('/docs/full-4064'));
    Buffer.from('rewritten in format 2').copy(rewritten);
    t.true((await readAll2(v, '/docs/full-4064')).equals(rewritten));
    t.true((await readAll2(v, '/made-in-format-2')).equals(Buffer.alloc(9000, 3)));
    const { before: check } = await fsckVault2(v);
    t.true(isClean2(check), JSON.stringify(check.problems));
    t.deepEqual(check.notes, []);
    t.is(check.chaff, format2Chaff.size + legacyChaff.size, 'fsck counts the derived chaff of the live pieces');
  });

  t.throws(() => rollbackUpgrade(store, PASS, { anchorDir: anchors }), { instanceOf: BadStoreError, message: /rollback refused: the format-1 files are gone/ });
  // The sweep works as on any format-2 vault, and format 1's blobs go as any other once their file does.
  const bigPieces = await pieceBlobsOf(store, '/big.bin');
  const bigChaff = await chaffOfPaths(store, ['/big.bin']);
  const v = await Vault2.open(store, PASS, { anchorDir: anchors, pieceWorker: false });
  try {
    t.deepEqual(await v.sweepOrphans(), { removed: 0 });
    v.paths.unlink('/docs/big-again');
    v.paths.unlink('/big.bin');
    await v.settle();
  } finally {
    await v.close();
  }
  const left = blobAddresses(store);
  for (const hex of bigPieces) t.false(left.has(hex), 'a format-1 piece is deleted with its file after --finish');
  for (const hex of bigChaff.keys()) t.false(left.has(hex), 'and its derived chaff with it');
  t.deepEqual((await census(store)).orphans, new Set());
});

test('--finish run again on a finished store changes nothing; on a store made as format 2 there is nothing to finish; on format 1 it is refused', async (t) => {
  const { store, anchors } = await upgraded(t);
  await finishUpgrade(store, PASS, { anchorDir: anchors });
  const blobs = blobAddresses(store);
  const again = await finishUpgrade(store, PASS, { anchorDir: anchors });
  t.like(again, { outcome: 'already-finished', inlined: 0, format1FilesRemoved: [] });
  t.deepEqual(blobAddresses(store), blobs);

  const made = join(tempDir(t), 'made');
  await (await Vault2.create(made, PASS, { pieceSize: 4096, chaffRatio: 0 }, { pieceWorker: false })).close();
  t.like(await finishUpgrade(made, PASS), { outcome: 'not-upgraded' });

  const base = tempDir(t);
  await makeFormat1Store(join(base, 'one'));
  await t.throwsAsync(finishUpgrade(join(base, 'one'), PASS), { instanceOf: BadStoreError, message: /format 1: run svault upgrade/ });
});

/** Interrupts --finish after its `n`-th commit of the walk, as a crash there would. */
async function interruptedAfter(t: ExecutionContext, u: Upgraded, n: number): Promise<number> {
  let commits = 0;
  let cursor = -1;
  await t.throwsAsync(
    finishUpgrade(u.store, PASS, {
      anchorDir: u.anchors,
      inodesPerCommit: 4,
      afterCommit: (c) => {
        if (++commits === n) {
          cursor = c;
          throw new Error('crash');
        }
      },
    }),
    { message: 'crash' },
  );
  return cursor;
}

for (const n of [1, 3]) {
  test(`a --finish interrupted after commit ${n} of its walk goes on from finishCursor and ends as an uninterrupted one, blob for blob`, async (t) => {
    const base = tempDir(t);
    const a = await upgraded(t, join(base, 'a'));
    await useAsFormat2(a.store, a.anchors);
    // The same store twice (the vault id and every blob alike), one of them finished without a break.
    const b = { ...a, store: join(base, 'b-store'), anchors: join(base, 'b-anchors') };
    cpSync(a.store, b.store, { recursive: true });
    cpSync(a.anchors, b.anchors, { recursive: true });

    const cursor = await interruptedAfter(t, a, n);
    t.true(cursor > 0);
    await looking(a.store, async (v) => {
      t.like(v.check().md.state, { upgradeStage: 2, finishCursor: cursor });
      const { report } = await scanVault2(v);
      t.true(report.notes.includes(`svault upgrade --finish was interrupted at inode ${cursor}: run it again`), report.notes.join('; '));
      t.true(isClean2(report), 'midway, fsck finds no problem');
      for (const path of [...INLINED.filter((p) => p !== '/docs/edge-3817'), ...MAPPED]) {
        t.true((await readAll2(v, path)).equals(contentOf(path)) || path === '/docs/full-4064', `${path} reads midway`);
      }
    });
    t.throws(() => rollbackUpgrade(a.store, PASS, { anchorDir: a.anchors }), { instanceOf: BadStoreError, message: /rollback refused/ });

    const inos = await looking(a.store, (v) => [...v.check().md.inodeVersions()].map((s) => s.index));
    const resumed = await finishUpgrade(a.store, PASS, { anchorDir: a.anchors, inodesPerCommit: 4 });
    t.like(resumed, { outcome: 'finished', resumedAt: cursor });
    t.is(resumed.inodes, inos.filter((ino) => ino >= cursor).length, 'the walk went on from the cursor, not from the start');
    const whole = await finishUpgrade(b.store, PASS, { anchorDir: b.anchors });
    t.deepEqual(blobAddresses(a.store), blobAddresses(b.store), 'the same blobs as a --finish that was not interrupted');
    t.deepEqual((await census(a.store)).orphans, new Set());
    t.is(whole.inlined, 5);
    const paths = [...INLINED.filter((p) => p !== '/docs/edge-3817'), ...MAPPED];
    t.deepEqual(await inlineState(a.store, paths), await inlineState(b.store, paths));
    await checkTree(t, a.store, a.manifest, ['/docs/edge-3817', '/docs/full-4064', '/docs']);
    await looking(a.store, async (v) => t.true(isClean2((await fsckVault2(v)).before)));
  });
}

test('a small file whose piece fails authentication keeps its map at --finish, and is reported; the rest finishes', async (t) => {
  const { store, anchors } = await upgraded(t);
  const [hex] = await pieceBlobsOf(store, '/docs/one-k');
  const blob = join(store, BLOB_DIR, (hex as string).slice(0, 2), hex as string);
  const bytes = readFileSync(blob);
  bytes[100] = (bytes[100] as number) ^ 1;
  writeFileSync(blob, bytes);
  const ino = await looking(store, (v) => v.paths.idAt('/docs/one-k'));

  const report = await finishUpgrade(store, PASS, { anchorDir: anchors });
  t.is(report.outcome, 'finished');
  t.deepEqual(report.notInlined.map((n) => n.ino), [ino]);
  t.regex(report.notInlined[0]?.detail ?? '', /failed authentication/);
  t.is(report.inlined, 5, 'the other small files went INLINE');
  t.deepEqual(await inlineState(store, ['/docs/one-k', '/tiny']), { '/docs/one-k': false, '/tiny': true });
  t.true(existsSync(blob), 'its blob is kept for fsck to report');
  t.is(await readErrno(store, '/docs/one-k'), 'EIO');
  await looking(store, async (v) => {
    const { before } = await fsckVault2(v);
    t.deepEqual(before.problems.map((p) => [p.kind, p.ino]), [['bad-piece', ino]]);
    t.is(v.check().md.state.upgradeStage, 0);
  });
});
