#!/usr/bin/env node
// Builds svault's OS addon (src/core/os/native/: openat-style calls that never follow a link, syncfs on a
// libuv thread, and making the process non-dumpable) with node-gyp against Node's own headers, and checks
// in a child that it loads, refuses misuse with a TypeError and refuses to follow a link. Run by
// `npm install` (postinstall); safe to rerun.
//
// Usage: node scripts/build-os.mjs [--force]   (--force: rebuild even if up to date)

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildAddon, runBuild, runProbe } from './node-gyp.mjs';

const TAG = 'build-os';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'src', 'core', 'os', 'native');
const addon = join(dir, 'build', 'Release', 'svault_os.node');
const force = process.argv.includes('--force');

runBuild(TAG, main);

function main() {
  if (process.platform !== 'linux') {
    console.log(`${TAG}: skipped (svault's store and process calls are Linux's)`);
    return;
  }
  const built = buildAddon({ root, dir, addon, what: 'the OS addon', verify, force });
  console.log(`${TAG}: ${addon} ${built}; it loads, refuses misuse and does not follow links`);
}

/** In a child, so a crash while loading (or on misuse) cannot take npm with it. */
function verify() {
  const probe = `
    const fs = require('node:fs'), os = require('node:os'), path = require('node:path');
    const native = require(${JSON.stringify(addon)});
    for (const f of ['openAt', 'mkdirAt', 'unlinkAt', 'renameAt', 'syncfs', 'closeFd', 'makeUndumpable']) {
      if (typeof native[f] !== 'function') throw new Error('missing ' + f);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'svault-os-probe-'));
    try {
      const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      const misuse = [
        () => native.openAt(dfd, 'a/b', 0, 0),
        () => native.openAt(dfd, '..', 0, 0),
        () => native.openAt(dfd, '', 0, 0),
        () => native.openAt(dfd, 'a\\0b', 0, 0),
        () => native.openAt(-1, 'a', 0, 0),
        () => native.mkdirAt(dfd, 'x'.repeat(256), 0o700),
        () => native.unlinkAt(dfd, 'a'),
        () => native.renameAt(dfd, 'a', dfd),
        () => native.syncfs('3'),
      ];
      for (const call of misuse) {
        try { call(); } catch (err) { if (err instanceof TypeError) continue; throw err; }
        throw new Error('accepted: ' + call);
      }
      fs.writeFileSync(path.join(dir, 'target'), 'x');
      fs.symlinkSync(path.join(dir, 'target'), path.join(dir, 'link'));
      try {
        native.openAt(dfd, 'link', fs.constants.O_RDONLY, 0);
        throw new Error('followed a link');
      } catch (err) {
        if (err.code !== 'ELOOP') throw err;
      }
      const fd = native.openAt(dfd, 'target', fs.constants.O_RDONLY, 0);
      if (fs.readFileSync(fd, 'utf8') !== 'x') throw new Error('read the wrong file');
      native.closeFd(fd);
      fs.closeSync(dfd);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }`;
  runProbe(probe, addon);
}
