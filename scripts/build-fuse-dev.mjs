#!/usr/bin/env node
// Builds svault's FUSE device addon (fs/kernel/native/fuse_dev.c: /dev/fuse opened, mounted, read from the
// event loop and written to, with no libfuse) with node-gyp against Node's own headers, and checks in a child
// that it loads and refuses misuse with a TypeError rather than crashing. Run by `npm install` (postinstall);
// safe to rerun. Needs no /dev/fuse: the check does not open it, so it also passes where FUSE is unavailable.
//
// Usage: node scripts/build-fuse-dev.mjs [--force]   (--force: rebuild even if up to date)

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildAddon, runBuild, runProbe } from './node-gyp.mjs';

const TAG = 'build-fuse-dev';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'fs', 'kernel', 'native');
const addon = join(dir, 'build', 'Release', 'svault_fuse_dev.node');
const force = process.argv.includes('--force');

runBuild(TAG, main);

function main() {
  if (process.platform !== 'linux') {
    console.log(`${TAG}: skipped (it speaks Linux's /dev/fuse; fuse-native is used elsewhere)`);
    return;
  }
  const built = buildAddon({ root, dir, addon, what: 'the FUSE device addon', verify, force });
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
  runProbe(probe, addon);
}
