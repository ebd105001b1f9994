// The seed's fixtures (fixtures/seed-files.ts) at small sizes, and one 1 TiB sparse file: sizes, contents,
// determinism, holes (st_blocks), and the hole-skipping digest read back through SEEK_DATA by python3.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSeedFiles, imageLayout, KiB, MiB, probeSeek, sparseDigest, sparseDigestOfFile, sparseLayout, TiB, writeDense, writeSparse, writeSparseImage } from '../../fixtures/seed-files.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'svault-seed-files-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('random and pattern files at 1 KiB and 1 MiB: sizes, contents and sha256', (t) => {
  const dir = tmp(t);
  const files = generateSeedFiles(dir, { kinds: ['random', 'pattern'], sizes: [KiB, MiB] });
  t.deepEqual(files.map((f) => path.basename(f.path)), ['random-1K', 'random-1M', 'pattern-1K', 'pattern-1M']);
  for (const f of files) {
    const data = readFileSync(f.path);
    t.is(data.length, f.size, `${f.path} size`);
    t.is(sha(data), f.sha256 ?? 'no sha256', `${f.path} sha256 as reported`);
  }
  // The pattern: "ΣVAULT" in UTF-8 (Σ is 2 bytes) over and over, cut at the size.
  const unit = Buffer.from('ΣVAULT', 'utf8');
  t.is(unit.length, 7);
  const pattern = readFileSync(path.join(dir, 'pattern-1M'));
  const expected = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) expected[i] = unit[i % 7] as number;
  t.true(pattern.equals(expected), 'pattern-1M is ΣVAULT repeated');
  t.true(readFileSync(path.join(dir, 'pattern-1K')).equals(expected.subarray(0, KiB)));
  // Random: not a pattern and not zeros (bytes spread over the 256 values).
  const random = readFileSync(path.join(dir, 'random-1M'));
  t.true(new Set(random).size === 256 && random.indexOf(random.subarray(0, 64), 1) === -1, 'random-1M looks random');
  // The 1 KiB file is the start of the 1 MiB one (one keystream per seed).
  t.true(readFileSync(path.join(dir, 'random-1K')).equals(random.subarray(0, KiB)));
});

test('the files are deterministic from the seed, and another seed gives other random data', (t) => {
  const a = generateSeedFiles(tmp(t), { sizes: [KiB, MiB], seed: 7 });
  const b = generateSeedFiles(tmp(t), { sizes: [KiB, MiB], seed: 7 });
  const c = generateSeedFiles(tmp(t), { kinds: ['random', 'sparse'], sizes: [MiB], seed: 8 });
  t.is(a.length, 6);
  t.deepEqual(a.map((f) => [f.sha256, f.sparseDigest]), b.map((f) => [f.sha256, f.sparseDigest]));
  t.not(c[0]?.sha256, a.find((f) => f.kind === 'random' && f.size === MiB)?.sha256);
  t.not(c[1]?.sparseDigest, a.find((f) => f.kind === 'sparse' && f.size === MiB)?.sparseDigest);
});

test('sparse files at 1 KiB and 1 MiB: the layout, zeros between the extents, and the digest', (t) => {
  const dir = tmp(t);
  for (const size of [KiB, MiB]) {
    const f = writeSparse(path.join(dir, `s-${size}`), size);
    const data = readFileSync(f.path);
    t.is(data.length, size);
    const layout = sparseLayout(size);
    t.deepEqual(f.extents, layout);
    t.is(layout.length, 4);
    t.is(layout[0]?.offset, size / 8, 'the first eighth is a hole');
    t.is((layout[3]?.offset ?? 0) + (layout[3]?.length ?? 0), size, 'the last extent ends the file');
    // Outside the extents, zeros; inside, data (not all zeros).
    const mask = Buffer.alloc(size);
    for (const e of layout) {
      mask.fill(1, e.offset, e.offset + e.length);
      t.true(data.subarray(e.offset, e.offset + e.length).some((b) => b !== 0), `extent at ${e.offset} holds data`);
    }
    t.true(data.every((b, i) => mask[i] === 1 || b === 0), 'zeros outside the extents');
    // The reported digest is the digest of the bytes on disk, and python3's SEEK_DATA reader agrees.
    t.is(sparseDigest(size, [{ offset: 0, data }]), f.sparseDigest);
    t.is(sparseDigestOfFile(f.path).digest, f.sparseDigest);
  }
  // The digest sees a changed byte.
  const f = writeSparse(path.join(dir, 'changed'), MiB);
  const data = readFileSync(f.path);
  data[MiB - 1] = (data[MiB - 1] as number) ^ 1;
  t.not(sparseDigest(MiB, [{ offset: 0, data }]), f.sparseDigest);
});

test('a 1 TiB sparse file: its size, few blocks, and a digest read through SEEK_DATA without the holes', (t) => {
  const dir = tmp(t);
  const f = writeSparse(path.join(dir, 'sparse-1T'), TiB);
  const st = statSync(f.path);
  t.is(st.size, TiB);
  t.is(f.dataBytes, 4 * MiB);
  // 4 MiB of data: 8192 blocks of 512 bytes, with some room for the filesystem's own metadata.
  t.true(st.blocks >= 8192 && st.blocks < 16384, `st_blocks ${st.blocks}`);
  const p = probeSeek(f.path);
  t.is(p.data, TiB / 8, 'SEEK_DATA from 0 skips the first eighth');
  t.is(p.hole, 0);
  // The reader is stopped if it reads more than 8 MiB, so it cannot have read the holes.
  const d = sparseDigestOfFile(f.path, 8 * MiB);
  t.is(d.digest, f.sparseDigest);
  t.is(d.size, TiB);
  t.true(d.bytesRead >= 4 * MiB && d.bytesRead <= 8 * MiB, `read ${d.bytesRead} bytes`);
});

test('the digest reader refuses to read past its limit', (t) => {
  const dir = tmp(t);
  const f = writeSparse(path.join(dir, 's'), MiB);
  t.throws(() => sparseDigestOfFile(f.path, 1000), undefined, 'a 1000-byte limit is below one 64 KiB block');
});

test('the sparse image and its dense copy hold the same data', (t) => {
  const dir = tmp(t);
  const layout = imageLayout(256 * MiB);
  t.is(layout.length, 3, '1 % of 256 MiB in 1 MiB extents');
  for (const e of layout) t.is(e.offset % MiB, 0, 'aligned to 1 MiB');
  const img = writeSparseImage(path.join(dir, 'img'), 256 * MiB);
  const dense = writeDense(path.join(dir, 'dense'), img.extents ?? []);
  t.is(dense.size, 3 * MiB);
  const data = readFileSync(img.path);
  const joined = Buffer.concat(layout.map((e) => data.subarray(e.offset, e.offset + e.length)));
  t.is(sha(joined), dense.sha256 ?? 'no sha256');
  t.is(sparseDigestOfFile(img.path).digest, img.sparseDigest);
});

test('the CLI writes the chosen files and prints one JSON line each', (t) => {
  const dir = tmp(t);
  const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'fixtures', 'seed-files.ts'), '--out', dir, '--sizes', '1K,1T', '--kinds', 'sparse,pattern'], { cwd: ROOT, encoding: 'utf8' });
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; size: number; path: string });
  t.deepEqual(lines.map((l) => [l.kind, l.size]), [['sparse', KiB], ['sparse', TiB], ['pattern', KiB]]);
  t.is(statSync(path.join(dir, 'sparse-1T')).size, TiB);
  t.is(statSync(path.join(dir, 'pattern-1K')).size, KiB);
  t.throws(() => execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'fixtures', 'seed-files.ts'), '--out', dir, '--kinds', 'zeros'], { cwd: ROOT, stdio: 'pipe' }));
});
