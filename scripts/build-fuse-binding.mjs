#!/usr/bin/env node
// Makes fuse-native work on a fresh Debian 12 (no libfuse2 / fuse packages) with
// its C bugs fixed. Run by `npm install` (postinstall); safe to rerun.
//
//   1. Applies scripts/fuse-native.patch to node_modules/fuse-native (utimens
//      mtime / UTIME_NOW / UTIME_OMIT, create flags, the caller's uid/gid for
//      create/mkdir/mknod/symlink, ...). The patch is applied here in JS, not
//      with `patch`, because Debian 12 does not install `patch` by default.
//      Every hunk must match exactly once or we stop.
//   2. Rebuilds build/Release/fuse.node with node-gyp against the headers and
//      libfuse that fuse-shared-library-linux ships, with an $ORIGIN rpath, and
//      puts libfuse.so.2 beside it (the shipped file is named libfuse.so).
//   3. Verifies with ldd that libfuse.so.2 resolves to that copy and that
//      node-gyp-build loads the patched build.
//   4. Reports which fusermount fuse-native will use (fs/fuse-binding.ts puts
//      fuse-shared-library-linux's copy on PATH when the system has none).
//
// Usage: node scripts/build-fuse-binding.mjs [--force]   (--force: rebuild even if up to date)

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { patchLevelOf } from './fuse-patch-level.cjs';
import { BuildError, nodeGypRebuild, runBuild, which } from './node-gyp.mjs';

const TAG = 'build-fuse-binding';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const patchFile = join(root, 'scripts', 'fuse-native.patch');
const force = process.argv.includes('--force');

const fail = (msg) => {
  throw new BuildError(msg);
};

runBuild(TAG, main);

function main() {
  if (process.platform !== 'linux') {
    console.log(`${TAG}: skipped (svault's FUSE binding is built on Linux only; platform is ${process.platform})`);
    return;
  }

  const fuseDir = dirname(createRequire(join(root, 'package.json')).resolve('fuse-native/package.json'));
  // Resolve the library the way fuse-native's binding.gyp does.
  const fuseRequire = createRequire(join(fuseDir, 'package.json'));
  const shared = fuseRequire('fuse-shared-library');
  const libfuse = shared.lib; // .../fuse-shared-library-linux/libfuse/lib/libfuse.so
  const bundledBin = join(dirname(dirname(libfuse)), 'bin');

  let patchLevel;
  try {
    patchLevel = patchLevelOf(readFileSync(patchFile, 'utf8'));
  } catch (err) {
    fail(err.message);
  }
  const patched = applyPatch(fuseDir);
  const built = build(fuseDir, libfuse);
  verify(fuseDir, fuseRequire, patchLevel);
  const fusermount = findFusermount(bundledBin);

  console.log(
    `${TAG}: fuse-native patch ${patched}; build/Release/fuse.node ${built} ` +
      `(libfuse.so.2 via $ORIGIN rpath, svault_patch=${patchLevel}); fusermount: ${fusermount}`,
  );
}

// ---------------------------------------------------------------------------
// 1. Patch

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

/** Parses a unified diff into [{ path, hunks: [{ old, new }] }]; text outside hunks is ignored. */
function parsePatch(text) {
  const lines = text.split('\n');
  const files = [];
  let file = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ')) {
      // "+++ b/fuse-native.c" -> "fuse-native.c" (like patch -p1)
      const target = lines[i + 1].slice(4).split('\t')[0].trim();
      file = { path: target.replace(/^[^/]+\//, ''), hunks: [] };
      files.push(file);
      i++;
      continue;
    }
    const m = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
    if (!m) continue;
    if (!file) fail(`${patchFile}: hunk before any file header`);
    let oldLeft = Number(m[1] ?? 1);
    let newLeft = Number(m[2] ?? 1);
    const oldLines = [];
    const newLines = [];
    while (oldLeft > 0 || newLeft > 0) {
      const l = lines[++i];
      if (l === undefined) fail(`${patchFile}: truncated hunk in ${file.path}`);
      const body = l.slice(1);
      if (l.startsWith('-')) { oldLines.push(body); oldLeft--; }
      else if (l.startsWith('+')) { newLines.push(body); newLeft--; }
      else if (l.startsWith(' ') || l === '') { oldLines.push(body); newLines.push(body); oldLeft--; newLeft--; }
      else fail(`${patchFile}: unsupported line in hunk for ${file.path}: ${JSON.stringify(l)}`);
    }
    file.hunks.push({ old: oldLines.join('\n') + '\n', new: newLines.join('\n') + '\n' });
  }
  if (files.length === 0) fail(`${patchFile} contains no diff`);
  return files;
}

/** Finds `needle` at a line start, exactly once. Returns its index or -1. */
function findOnce(haystack, needle) {
  let found = -1;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) {
    if (at !== 0 && haystack[at - 1] !== '\n') continue;
    if (found !== -1) return -1; // ambiguous
    found = at;
  }
  return found;
}

/** Applies hunks in order (forward, or backward to undo). Returns null if any hunk does not match exactly once. */
function applyHunks(text, hunks, reverse = false) {
  let out = text;
  for (const h of hunks) {
    const [from, to] = reverse ? [h.new, h.old] : [h.old, h.new];
    const at = findOnce(out, from);
    if (at === -1) return null;
    out = out.slice(0, at) + to + out.slice(at + from.length);
  }
  return out;
}

/**
 * Rewrites each file as patch(pristine). The pristine text is kept in
 * <file>.svault-orig, so reruns never double-apply and an edited patch is
 * applied afresh. A reinstall of fuse-native removes the backups along with
 * the old files.
 */
function applyPatch(fuseDir) {
  const patchText = readFileSync(patchFile, 'utf8');
  const marker = join(fuseDir, '.svault-patch.json');
  const results = {};
  let changed = false;

  for (const file of parsePatch(patchText)) {
    const target = join(fuseDir, file.path);
    const backup = `${target}.svault-orig`;
    const current = readFileSync(target, 'utf8');

    let pristine;
    if (existsSync(backup)) {
      pristine = readFileSync(backup, 'utf8');
    } else if (applyHunks(current, file.hunks) !== null) {
      pristine = current;
    } else {
      // Patched by hand (patch -p1) without a backup: recover the original.
      pristine = applyHunks(current, file.hunks, true);
      if (pristine === null) {
        fail(
          `${target} does not match scripts/fuse-native.patch (is fuse-native still 2.2.6?). ` +
            'Reinstall it (rm -rf node_modules/fuse-native && npm install) or update the patch.',
        );
      }
    }

    const patched = applyHunks(pristine, file.hunks);
    if (patched === null) fail(`scripts/fuse-native.patch does not apply to the original ${target}`);
    if (!existsSync(backup)) writeFileSync(backup, pristine);
    if (current !== patched) {
      writeFileSync(target, patched);
      changed = true;
    }
    results[file.path] = sha256(patched);
  }

  // Marks the patched state (and which patch) for people and for build()'s stamp.
  const markerData = JSON.stringify({ patchSha256: sha256(patchText), files: results }, null, 2) + '\n';
  if (!existsSync(marker) || readFileSync(marker, 'utf8') !== markerData) writeFileSync(marker, markerData);
  return changed ? 'applied' : 'already applied';
}

// ---------------------------------------------------------------------------
// 2. Build

function build(fuseDir, libfuse) {
  const release = join(fuseDir, 'build', 'Release');
  const stampFile = join(release, '.svault-build.json');
  const stamp = JSON.stringify({
    patch: sha256(readFileSync(join(fuseDir, '.svault-patch.json'))),
    source: sha256(readFileSync(join(fuseDir, 'fuse-native.c'))),
    libfuse: sha256(readFileSync(libfuse)),
    node: process.version,
  });
  const upToDate =
    !force &&
    existsSync(join(release, 'fuse.node')) &&
    existsSync(join(release, 'libfuse.so.2')) &&
    existsSync(stampFile) &&
    readFileSync(stampFile, 'utf8') === stamp;
  if (upToDate) return 'up to date';

  // '$$' is make's escape for '$'; the quotes keep the shell from expanding $ORIGIN.
  const ldflags = [process.env.LDFLAGS, "-Wl,-rpath,'$$ORIGIN'"].filter(Boolean).join(' ');
  nodeGypRebuild({ root, dir: fuseDir, what: 'fuse-native', env: { LDFLAGS: ldflags } });

  // The binary asks for libfuse.so.2 (the library's soname); binding.gyp only
  // copies it here as libfuse.so.
  copyFileSync(libfuse, join(release, 'libfuse.so.2'));
  writeFileSync(stampFile, stamp);
  return 'built';
}

// ---------------------------------------------------------------------------
// 3. Verify

function verify(fuseDir, fuseRequire, patchLevel) {
  const release = join(fuseDir, 'build', 'Release');
  const addon = join(release, 'fuse.node');

  // ldd without LD_* overrides, so only the rpath can make this resolve.
  const env = { ...process.env };
  delete env.LD_LIBRARY_PATH;
  delete env.LD_PRELOAD;
  const ldd = spawnSync('ldd', [addon], { env, encoding: 'utf8' });
  if (ldd.error || ldd.status !== 0) fail(`ldd ${addon} failed: ${ldd.error?.message ?? ldd.stderr}`);
  const resolved = /^\s*libfuse\.so\.2 => (\S+)/m.exec(ldd.stdout)?.[1];
  const expected = realpathSync(join(release, 'libfuse.so.2'));
  if (!resolved || resolved === 'not' || realpathSync(resolved) !== expected) {
    fail(`ldd: fuse.node resolves libfuse.so.2 to ${resolved ?? 'nothing'}, expected ${expected}\n${ldd.stdout}`);
  }

  // Load it in a child, the way fuse-native does (node-gyp-build prefers build/Release).
  const nodeGypBuild = fuseRequire.resolve('node-gyp-build');
  const probe = `
    const load = require(${JSON.stringify(nodeGypBuild)});
    const file = load.path(${JSON.stringify(fuseDir)});
    console.log(JSON.stringify({ file, patch: require(file).svault_patch }));`;
  const res = spawnSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' });
  if (res.status !== 0) fail(`loading the built binding failed:\n${res.stderr}`);
  const { file, patch } = JSON.parse(res.stdout);
  if (realpathSync(file) !== realpathSync(addon)) fail(`node-gyp-build picks ${file}, not ${addon}`);
  if (patch !== patchLevel) fail(`${addon} reports svault_patch=${patch}, expected ${patchLevel}`);
}

// ---------------------------------------------------------------------------
// 4. fusermount

function findFusermount(bundledBin) {
  const system = which('fusermount');
  if (system) return system;
  const bundled = join(bundledBin, 'fusermount');
  const res = spawnSync(bundled, ['-V'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) fail(`bundled ${bundled} does not run: ${res.error?.message ?? res.stderr}`);
  return `${bundled} (none on PATH; fs/fuse-binding.ts adds its directory to PATH)`;
}
