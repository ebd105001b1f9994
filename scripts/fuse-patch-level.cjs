// The level of svault's fuse-native patch is written in one place only: the C line that
// scripts/fuse-native.patch adds, `static const uint32_t svault_patch = N;`. The build script
// (scripts/build-fuse-binding.mjs) and the loader (fs/fuse-binding.ts) both read it from there with
// this rule, so the binding, the build check and the loader cannot disagree. CommonJS and without
// imports, so the loader can require it synchronously from fs/ under tsx and from dist/fs/ alike.
'use strict';

const LEVEL_LINE = /^\+static const uint32_t svault_patch = (\d+);$/gm;

/** The patch level in the text of scripts/fuse-native.patch; throws unless its line is there exactly once. */
exports.patchLevelOf = function patchLevelOf(patchText) {
  const found = [...patchText.matchAll(LEVEL_LINE)];
  if (found.length !== 1) {
    throw new Error(
      `scripts/fuse-native.patch must add exactly one line "static const uint32_t svault_patch = N;" (found ${found.length})`,
    );
  }
  return Number(found[0][1]);
};
