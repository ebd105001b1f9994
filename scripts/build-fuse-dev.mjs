#!/usr/bin/env node
// Builds svault's FUSE device addon (fs/kernel/native/fuse_dev.c: /dev/fuse opened, mounted, read from the
// event loop and written to, with no libfuse) with node-gyp against Node's own headers, and checks in a child
// that it loads and refuses misuse with a TypeError rather than crashing. Run by `npm install` (postinstall);
// safe to rerun. Needs no /dev/fuse: the check does not open it, so it also passes where FUSE is unavailable.
//
// Usage: node scripts/build-fuse-dev.mjs [--force]   (--force: rebuild even if up to date)

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BuildError, nodeGypRebuild, runBuild } from './node-gyp.mjs';

const TAG = 'build-fuse-dev';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'fs', 'kernel', 'native');
const addon = join(dir, 'build', 'Release', 'svault_fuse_dev.node');
const stampFile = join(dir, 'build', 'Release', '.svault-build.json');
const force = process.argv.includes('--force');

runBuild(TAG, main);

function main() {
  if (process.platform !== 'linux') {
    console.log(`${TAG}: skipped (it speaks Linux's /dev/fuse; fuse-native is used elsewhere)`);
    return;
  }
  const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
  // Every C source and header, and binding.gyp: a change to any rebuilds.
  const inputs = readdirSync(dir).filter((f) => /\.(c|h)$/.test(f) || f === 'binding.gyp').sort();
  const sources = Object.fromEntries(inputs.map((f) => [f, sha256(join(dir, f))]));
  const stamp = JSON.stringify({ sources, node: process.version });
  let built = 'up to date';
  if (force || !existsSync(addon) || !existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== stamp) {
    rmSync(stampFile, { force: true });
    nodeGypRebuild({ root, dir, what: 'the FUSE device addon' });
    built = 'built';
  }
  try {
    verify();
  } catch (err) {
    // fs/kernel/device.ts loads whatever is there: an addon that failed its check must not stay.
    rmSync(addon, { force: true });
    rmSync(stampFile, { force: true });
    throw err;
  }
  writeFileSync(stampFile, stamp);
  console.log(`${TAG}: ${addon} ${built}; it loads and refuses misuse`);
}

/** In a child, so a crash while loading (or on misuse) cannot take npm with it. */
function verify() {
  const probe = `
    const dev = require(${JSON.stringify(addon)});
    for (const f of ['openDevice', 'mount', 'umount', 'mountWithFusermount', 'writeReply', 'Reader']) {
      if (typeof dev[f] !== 'function') throw new Error('missing ' + f);
    }
    if (dev.constants.MS_NOSUID !== 2 || dev.constants.MNT_DETACH !== 2) throw new Error('wrong constants');
    const misuse = [
      () => dev.mount('3', '/x', 'fuse', 'x', 0, ''),
      () => dev.umount('/x', -1),
      () => dev.writeReply(-1, [Buffer.alloc(16)]),
      () => dev.writeReply(0, []),
      () => dev.writeReply(0, [Buffer.alloc(8)]),
      () => dev.writeReply(0, ['not a buffer']),
      () => dev.mountWithFusermount('/x', 'ro', 1),
      () => new dev.Reader(0, null, () => {}),
      () => dev.Reader(0, () => {}, () => {}),
    ];
    for (const call of misuse) {
      try { call(); } catch (err) { if (err instanceof TypeError) continue; throw err; }
      throw new Error('accepted: ' + call);
    }`;
  const res = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  if (res.status !== 0) throw new BuildError(`${addon} fails its check:\n${res.stderr}${res.signal ? `(killed by ${res.signal})` : ''}`);
}
