// What svault's native builds share (scripts/build-fuse-binding.mjs, build-aead.mjs, build-fuse-dev.mjs):
// finding node-gyp, Node's own headers and a compiler, running `node-gyp rebuild` with a readable failure,
// and rebuilding an addon of svault's own only when its sources changed, keeping it only if it passes its check.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

/** Thrown for a failure the build scripts report as one line (no stack). */
export class BuildError extends Error {}

export function which(cmd, pathVar = process.env.PATH ?? '') {
  const dirs = cmd.includes('/') ? [''] : pathVar.split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    const candidate = dir ? join(dir, cmd) : cmd;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** node-gyp: the one npm hands to lifecycle scripts, else npm's bundled copy, else a local or global one. */
function findNodeGyp(root) {
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return [process.execPath, c];
  const onPath = which('node-gyp');
  return onPath ? [onPath] : null;
}

/** A --nodedir whose headers match this Node, so node-gyp needs no download. */
function findNodeHeaders() {
  const prefixes = [
    process.env.npm_config_nodedir,
    process.config.variables.node_prefix,
    join(dirname(process.execPath), '..'),
  ];
  for (const prefix of prefixes) {
    if (!prefix) continue;
    try {
      const h = readFileSync(join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
      const num = (name) => new RegExp(`#define ${name}\\s+(\\d+)`).exec(h)?.[1];
      const version = `v${num('NODE_MAJOR_VERSION')}.${num('NODE_MINOR_VERSION')}.${num('NODE_PATCH_VERSION')}`;
      if (version === process.version) return prefix;
    } catch {
      // no headers under this prefix
    }
  }
  return null;
}

/**
 * Runs `node-gyp rebuild --release` in dir (which holds a binding.gyp). `what` names the addon in
 * messages; `env` is added to the environment. Throws BuildError with the compiler's last lines.
 */
export function nodeGypRebuild({ root, dir, what, env = {} }) {
  // What node-gyp needs; on Debian: apt-get install -y python3 make g++
  const missing = [
    !(process.env.PYTHON || process.env.npm_config_python || which('python3') || which('python')) && 'python3',
    !which('make') && 'make',
    !(which(process.env.CC || 'cc') || which('gcc')) && 'gcc',
    !which(process.env.CXX || 'g++') && 'g++', // gyp links with $(CXX)
  ].filter(Boolean);
  if (missing.length) {
    throw new BuildError(`cannot compile ${what}: missing ${missing.join(', ')}. On Debian: apt-get install -y python3 make g++`);
  }
  const nodeGyp = findNodeGyp(root);
  if (!nodeGyp) throw new BuildError('cannot find node-gyp (it ships with npm; or: npm install -g node-gyp)');

  const nodedir = findNodeHeaders();
  const args = [...nodeGyp.slice(1), 'rebuild', '--release', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
  const res = spawnSync(nodeGyp[0], args, {
    cwd: dir,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.error || res.status !== 0) {
    const log = `${res.stdout ?? ''}${res.stderr ?? ''}`
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('gyp info'))
      .slice(-40)
      .join('\n');
    throw new BuildError(
      `node-gyp rebuild failed in ${dir} (${res.error?.message ?? `exit ${res.status}`})` +
        (nodedir ? '' : '; no local Node headers were found, so node-gyp had to download them') +
        `\n${log}`,
    );
  }
}

/** Runs a build script's main(): a BuildError prints as one line, anything else with its stack; both exit 1. */
export function runBuild(tag, main) {
  try {
    main();
  } catch (err) {
    const msg = err instanceof BuildError ? err.message : (err?.stack ?? String(err));
    console.error(`${tag}: FAILED: ${msg}`);
    process.exit(1);
  }
}

/**
 * Builds the addon in `dir` (binding.gyp there) when its sources or Node changed, then runs `verify()`; an
 * addon that fails its check is removed, since its loader would load whatever is there. The stamp beside
 * the addon records what it was built from. Returns 'built' or 'up to date'.
 */
export function buildAddon({ root, dir, addon, what, verify, force = false }) {
  const stampFile = join(dirname(addon), '.svault-build.json');
  const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
  // Every C source and header, and binding.gyp: a change to any rebuilds, with no second list to keep in step.
  const inputs = readdirSync(dir).filter((f) => /\.(c|h)$/.test(f) || f === 'binding.gyp').sort();
  const sources = Object.fromEntries(inputs.map((f) => [f, sha256(join(dir, f))]));
  const stamp = JSON.stringify({ sources, node: process.version });
  let built = 'up to date';
  if (force || !existsSync(addon) || !existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== stamp) {
    rmSync(stampFile, { force: true });
    nodeGypRebuild({ root, dir, what });
    built = 'built';
  }
  try {
    verify();
  } catch (err) {
    rmSync(addon, { force: true });
    rmSync(stampFile, { force: true });
    throw err;
  }
  writeFileSync(stampFile, stamp);
  return built;
}

/** Runs a check script in a child node, so a crash while loading an addon cannot take npm with it. */
export function runProbe(probe, what) {
  const res = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  if (res.status !== 0) throw new BuildError(`${what} failed its check: ${(res.stderr || res.stdout || `exit ${res.status}`).trim().split('\n').slice(-5).join(' ')}`);
  return res.stdout;
}
