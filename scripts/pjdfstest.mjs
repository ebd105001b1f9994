#!/usr/bin/env node
// Runs pjdfstest, the POSIX conformance suite of issue 25, on svault and, in the same run, on gocryptfs
// and on a native ext4 directory, all mounted with `-o allow_other,default_permissions`. It builds the
// suite from its source in a temporary directory, runs `prove -v` on every test file from inside each
// target as root, and prints files and subtests failed per target; reports/conformance-<timestamp>.json
// holds every failing subtest. A fourth run, `reference`, is the native directory with the suite's
// FIFO, socket and device creation refused with EPERM, as svault's store format 1 refuses them: an
// svault failure that the reference shares is explained by that alone (store format 2 brings them);
// any other is svault's own. Nothing stays mounted after a run, a failure or Ctrl-C.
//
// Usage: node scripts/pjdfstest.mjs [options]      (npm run conformance:pjdfstest -- [options])
//   --source DIR        pjdfstest's source: a git directory or a checked-out tree
//                       (default /work/.mirror/pjd+pjdfstest/repo); missing: a skip message, exit 0
//   --binding LIST      svault's transport(s), comma separated: devfuse (default), fuse-native
//   --targets LIST      svault, gocryptfs, native, reference (default: all four)
//   --only LIST         test files whose path (under tests/) contains one of these, e.g. chmod,rename/09.t
//   --svault-options O  more mount options for svault, after allow_other,default_permissions
//                       (e.g. attr_timeout=0)
//   --timeout SECONDS   longest one test file may run before it is killed and failed (default 600)
//   --out FILE          the JSON report (default reports/conformance-<timestamp>.json)
//   --keep              keep the work directory (build, stores, native directories) for a look after
//
// Exit codes: 0 when every target ran (whatever failed in it) or the source is missing; 1 on a harness
// error (a build, a mount or a tool that failed, not being root); 2 on bad usage; 130 on Ctrl-C.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_SOURCE = '/work/.mirror/pjd+pjdfstest/repo';
const MOUNT_OPTIONS = 'allow_other,default_permissions';
const BINDINGS = ['devfuse', 'fuse-native'];
const TARGET_KINDS = ['svault', 'gocryptfs', 'native', 'reference'];
const PASSPHRASE = 'pjdfstest passphrase';

/** A failure of the harness itself (not of a filesystem under test): exit 1. */
class HarnessError extends Error {}

// ---------------------------------------------------------------------------
// Options

function usage(message) {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n');
  if (message) console.error(`pjdfstest: ${message}\n`);
  (message ? console.error : console.log)(text);
  process.exit(message ? 2 : 0);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        source: { type: 'string', default: DEFAULT_SOURCE },
        binding: { type: 'string', multiple: true },
        targets: { type: 'string' },
        only: { type: 'string' },
        'svault-options': { type: 'string' },
        timeout: { type: 'string', default: '600' },
        out: { type: 'string' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    usage(err.message);
  }
  const v = parsed.values;
  if (v.help) usage();
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const bindings = v.binding ? v.binding.flatMap(list) : ['devfuse'];
  for (const b of bindings) if (!BINDINGS.includes(b)) usage(`unknown binding ${b} (${BINDINGS.join(', ')})`);
  const kinds = v.targets ? list(v.targets) : TARGET_KINDS;
  for (const k of kinds) if (!TARGET_KINDS.includes(k)) usage(`unknown target ${k} (${TARGET_KINDS.join(', ')})`);
  const timeout = Number(v.timeout);
  if (!(timeout > 0)) usage(`--timeout must be a number of seconds, not ${v.timeout}`);
  return {
    source: resolve(v.source),
    bindings: [...new Set(bindings)],
    kinds,
    only: v.only ? list(v.only) : null,
    svaultOptions: v['svault-options'] ? [MOUNT_OPTIONS, ...list(v['svault-options'])].join(',') : MOUNT_OPTIONS,
    timeoutMs: timeout * 1000,
    out: v.out ? resolve(v.out) : null,
    keep: v.keep,
  };
}

// ---------------------------------------------------------------------------
// Small process helpers

/** Runs a command to completion; throws a HarnessError with its output when it fails. */
function must(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error || r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new HarnessError(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})${out ? `:\n${out}` : ''}`);
  }
  return r.stdout ?? '';
}

function which(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** Installs Debian packages for the commands that are missing (apt-get update first if needed). */
function ensureCommands(wanted) {
  const missing = Object.entries(wanted).filter(([cmd]) => !which(cmd));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
  console.log(`installing ${pkgs.join(', ')} (missing: ${missing.map(([c]) => c).join(', ')})`);
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', ...pkgs], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
    r = install();
  }
  const still = missing.filter(([cmd]) => !which(cmd)).map(([c]) => c);
  if (still.length) throw new HarnessError(`could not install ${still.join(', ')} with apt-get: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`);
}

function isMounted(dir) {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
}

function mountLine(dir) {
  return readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === dir) ?? null;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(100);
  }
  return cond();
}

/** Whether a directory answers a stat within a few seconds (a wedged FUSE server does not). */
function responsive(dir) {
  const r = spawnSync('stat', ['-f', dir], { stdio: 'ignore', timeout: 15_000, killSignal: 'SIGKILL' });
  return r.status === 0;
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

// ---------------------------------------------------------------------------
// Emergency cleanup: every mount is registered before it is made, and undone synchronously on exit,
// on Ctrl-C and on any error, newest first.

const emergency = new Map();
let currentChild = null;

function cleanupNow() {
  if (currentChild?.pid && currentChild.exitCode === null) {
    try {
      process.kill(-currentChild.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const [key, action] of [...emergency].reverse()) {
    try {
      action();
    } catch {
      /* keep going: the others must still be undone */
    }
    emergency.delete(key);
  }
}

/** Unmounts (lazily, so a wedged server cannot block it) and stops the server. */
function forceUnmount(mnt, pid) {
  if (isMounted(mnt)) {
    if (spawnSync('fusermount', ['-uz', mnt], { stdio: 'ignore', timeout: 15_000 }).status !== 0) spawnSync('umount', ['-l', mnt], { stdio: 'ignore', timeout: 15_000 });
  }
  if (pid && alive(pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
}

process.on('exit', cleanupNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\npjdfstest: ${sig}: unmounting and stopping`);
    cleanupNow();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------
// The suite: source, build, and the reference build

/** The source's commit, or null when it is not there (the caller skips). */
function sourceCommit(source) {
  if (!existsSync(source)) return null;
  const git = (...args) => spawnSync('git', ['-c', 'safe.directory=*', '-C', source, ...args], { encoding: 'utf8' });
  if (existsSync(join(source, 'pjdfstest.c')) && existsSync(join(source, 'tests'))) {
    const r = git('rev-parse', 'HEAD');
    return r.status === 0 ? r.stdout.trim() : 'working tree';
  }
  // A git directory whose own HEAD is pjdfstest (not some other repository the directory sits in).
  if (git('cat-file', '-e', 'HEAD:pjdfstest.c').status !== 0) return null;
  const r = git('rev-parse', 'HEAD');
  return r.status === 0 ? r.stdout.trim() : null;
}

function extract(source, dest) {
  mkdirSync(dest, { recursive: true });
  if (existsSync(join(source, 'pjdfstest.c'))) {
    cpSync(source, dest, { recursive: true, filter: (p) => !p.split('/').includes('.git') });
    return;
  }
  const git = spawnSync('git', ['-c', 'safe.directory=*', '-C', source, 'archive', '--format=tar', 'HEAD'], { maxBuffer: 256 << 20 });
  if (git.status !== 0) throw new HarnessError(`git archive of ${source} failed: ${String(git.stderr).trim()}`);
  const tar = spawnSync('tar', ['-x', '-C', dest], { input: git.stdout });
  if (tar.status !== 0) throw new HarnessError(`tar -x failed: ${String(tar.stderr).trim()}`);
}

function build(source, dir) {
  extract(source, dir);
  must('autoreconf', ['-ifs'], { cwd: dir });
  must('./configure', [], { cwd: dir });
  must('make', ['pjdfstest'], { cwd: dir });
  if (!existsSync(join(dir, 'pjdfstest'))) throw new HarnessError(`make did not produce ${join(dir, 'pjdfstest')}`);
}

/**
 * The reference suite: the same tests, with a pjdfstest binary linked with a shim in place of mknod(2),
 * mknodat(2), mkfifo(3), mkfifoat(3) and bind(2) of a UNIX socket. For a FIFO, socket or device node
 * it creates nothing: it makes the checks the kernel makes before it would ask the filesystem, in the
 * kernel's order, with the kernel answering each (the parent's path, search permission on it, the
 * name's length, an existing name, write permission), and then fails with EPERM, as svault format 1's
 * mknod does. It creates nothing because a create-and-remove would touch the directory's times, which
 * svault's refusal leaves alone. Regular files and everything else go to the real call.
 */
const SHIM_C = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int special(mode_t mode) {
	mode_t type = mode & S_IFMT;
	return type == S_IFIFO || type == S_IFCHR || type == S_IFBLK || type == S_IFSOCK;
}

/* What creating 'path' (relative to dirfd) would fail with before the filesystem's mknod: 0 if nothing. */
static int precheck(int dirfd, const char *path) {
	char parent[PATH_MAX];
	const char *base;
	const char *slash;
	/* A path outside the address space: let the kernel say so (EFAULT), as it would for the real call. */
	if (faccessat(dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) != 0 && errno == EFAULT) return EFAULT;
	slash = strrchr(path, '/');
	if (path[0] == '\0') return ENOENT;
	if (strlen(path) >= PATH_MAX) return ENAMETOOLONG;
	if (slash == NULL) {
		strcpy(parent, ".");
		base = path;
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);
		memcpy(parent, path, n);
		parent[n] = '\0';
		base = slash + 1;
	}
	int pfd = openat(dirfd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) return errno;
	int err = 0;
	struct stat st;
	if (faccessat(pfd, ".", X_OK, AT_EACCESS) != 0) err = errno;              /* search the parent */
	else if (strlen(base) > NAME_MAX) err = ENAMETOOLONG;                      /* look the name up */
	else if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) err = EEXIST;
	else if (errno != ENOENT) err = errno;
	else if (faccessat(pfd, ".", W_OK | X_OK, AT_EACCESS) != 0) err = errno;  /* may_create */
	close(pfd);
	return err;
}

static int refuse(int err) {
	errno = err ? err : EPERM;
	return -1;
}

int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev) {
	static int (*real)(int, const char *, mode_t, dev_t);
	if (special(mode)) return refuse(precheck(dirfd, path));
	if (!real) real = (int (*)(int, const char *, mode_t, dev_t))dlsym(RTLD_NEXT, "mknodat");
	return real(dirfd, path, mode, dev);
}

int mknod(const char *path, mode_t mode, dev_t dev) { return mknodat(AT_FDCWD, path, mode, dev); }
int mkfifoat(int dirfd, const char *path, mode_t mode) { return mknodat(dirfd, path, (mode & ~S_IFMT) | S_IFIFO, 0); }
int mkfifo(const char *path, mode_t mode) { return mkfifoat(AT_FDCWD, path, mode); }

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
	static int (*real)(int, const struct sockaddr *, socklen_t);
	const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
	if (addr->sa_family == AF_UNIX && len > sizeof(sa_family_t) && un->sun_path[0] != '\0') {
		int err = precheck(AT_FDCWD, un->sun_path);
		return refuse(err == EEXIST ? EADDRINUSE : err); /* as unix_bind_bsd answers an existing name */
	}
	if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	return real(fd, addr, len);
}
`;

function buildReference(built, dir) {
  mkdirSync(dir, { recursive: true });
  cpSync(join(built, 'tests'), join(dir, 'tests'), { recursive: true });
  writeFileSync(join(dir, 'refuse-special.c'), SHIM_C);
  must('cc', ['-Wall', '-Werror', '-O2', '-o', join(dir, 'pjdfstest'), join(built, 'pjdfstest.o'), join(dir, 'refuse-special.c'), '-ldl']);
}

function testFiles(testsDir, only) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.t')) out.push(relative(testsDir, p));
    }
  };
  walk(testsDir);
  out.sort();
  return only ? out.filter((f) => only.some((o) => f.includes(o))) : out;
}

// ---------------------------------------------------------------------------
// Targets: each has a directory to run in, made fresh, and a stop() that leaves nothing mounted.

function svaultEnv(xdg) {
  const env = { ...process.env, SVAULT_PASSPHRASE: PASSPHRASE, XDG_STATE_HOME: join(xdg, 'state'), XDG_DATA_HOME: join(xdg, 'data'), XDG_CONFIG_HOME: join(xdg, 'config') };
  delete env.SVAULT_STORE;
  delete env.SVAULT_BINDING;
  return env;
}

async function svaultTarget(work, binding, mountOptions) {
  const cli = join(ROOT, 'bin', 'svault.js');
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'cli.js'))) throw new HarnessError('dist/ is missing: build svault first (npx tsc -p tsconfig.build.json)');
  const base = join(work, `svault-${binding}`);
  const store = join(base, 'store');
  const mnt = join(base, 'mnt');
  mkdirSync(mnt, { recursive: true });
  const env = svaultEnv(join(base, 'xdg'));
  const svault = (args) => must(process.execPath, [cli, ...args], { env, timeout: 180_000 });
  svault(['init', '--store', store]);
  let pid = null;
  const key = `svault:${mnt}`;
  emergency.set(key, () => forceUnmount(mnt, pid));
  const r = spawnSync(process.execPath, [cli, 'mount', '--store', store, '-o', mountOptions, '--binding', binding, mnt], { env, encoding: 'utf8', timeout: 180_000 });
  const said = /server pid (\d+)/.exec(`${r.stdout}${r.stderr}`);
  pid = said ? Number(said[1]) : null;
  const logFile = /log (\S+?)\)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? null;
  if (r.status !== 0 || !isMounted(mnt)) {
    forceUnmount(mnt, pid);
    emergency.delete(key);
    throw new HarnessError(`svault mount --binding ${binding} failed (exit ${r.status}): ${`${r.stdout}${r.stderr}`.trim()}`);
  }
  return {
    name: `svault-${binding}`,
    label: `svault (${binding})`,
    dir: mnt,
    mount: mountLine(mnt),
    info: { binding, options: mountOptions, store, serverPid: pid, log: logFile },
    alive: () => isMounted(mnt) && (pid === null || alive(pid)),
    async stop() {
      const u = spawnSync(process.execPath, [cli, 'unmount', mnt], { env, encoding: 'utf8', timeout: 120_000 });
      if (u.status !== 0) console.error(`svault unmount ${mnt}: exit ${u.status}: ${`${u.stdout}${u.stderr}`.trim()}`);
      if (pid) await waitFor(() => !alive(pid), 15_000);
      forceUnmount(mnt, pid);
      emergency.delete(key);
      return u.status === 0 ? null : `svault unmount failed (exit ${u.status})`;
    },
  };
}

async function gocryptfsTarget(work) {
  const base = join(work, 'gocryptfs');
  const cipher = join(base, 'cipher');
  const mnt = join(base, 'mnt');
  mkdirSync(cipher, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  const extpass = ['-extpass', 'echo pjdfstest-password'];
  must('gocryptfs', ['-init', '-q', ...extpass, cipher], { timeout: 120_000 });
  const version = must('gocryptfs', ['-version']).trim();
  // -allow_other is gocryptfs's "allow_other plus default_permissions" (gocryptfs(1)); the mount line
  // in the report shows both.
  const child = spawn('gocryptfs', ['-fg', '-q', '-nosyslog', '-allow_other', ...extpass, cipher, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid;
  const key = `gocryptfs:${mnt}`;
  emergency.set(key, () => forceUnmount(mnt, pid));
  let stderr = '';
  let exited = false;
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-8192)));
  child.on('exit', () => (exited = true));
  child.on('error', (err) => {
    exited = true;
    stderr += err.message;
  });
  await waitFor(() => exited || isMounted(mnt), 60_000);
  if (!isMounted(mnt)) {
    forceUnmount(mnt, pid);
    emergency.delete(key);
    throw new HarnessError(`gocryptfs did not mount: ${stderr.trim()}`);
  }
  return {
    name: 'gocryptfs',
    label: 'gocryptfs',
    dir: mnt,
    mount: mountLine(mnt),
    info: { version, options: '-allow_other (allow_other,default_permissions)' },
    alive: () => isMounted(mnt) && !exited,
    async stop() {
      const u = spawnSync('fusermount', ['-u', mnt], { encoding: 'utf8', timeout: 60_000 });
      await waitFor(() => exited, 15_000);
      forceUnmount(mnt, pid);
      emergency.delete(key);
      return u.status === 0 ? null : `fusermount -u failed: ${u.stderr.trim()}`;
    },
  };
}

function nativeTarget(work, name) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const fsType = spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout.trim();
  const reference = name === 'reference';
  return {
    name,
    label: reference ? 'reference (native, no special files)' : 'native',
    dir,
    mount: null,
    info: {
      fsType,
      ...(reference ? { description: 'the native directory, with FIFO, socket and device creation refused with EPERM as svault format 1 does (a shim linked into pjdfstest)' } : {}),
    },
    alive: () => true,
    stop: async () => null,
  };
}

// ---------------------------------------------------------------------------
// Running prove and reading its output

/** prove -v on one test file from inside `cwd`, killed (with its process group) after timeoutMs. */
function prove(file, cwd, timeoutMs) {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    const child = spawn('prove', ['--norc', '-v', file], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    currentChild = child;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    const done = (status, error) => {
      clearTimeout(timer);
      currentChild = null;
      resolvePromise({ stdout, stderr, status, timedOut, error, ms: Date.now() - started });
    };
    child.on('error', (err) => done(null, err.message));
    child.on('close', (code, signal) => done(code ?? signal, undefined));
  });
}

/**
 * One file's result from `prove -v FILE`: the TAP lines it passed through, and prove's own verdict.
 * A failed subtest is a `not ok` without a TODO directive, as prove counts them; a file fails when any
 * subtest failed, its plan was not kept, it exited non-zero, or it was killed.
 */
function parseProve(file, out) {
  const r = { file, planned: null, run: 0, failed: [], todo: 0, skipped: 0, wstat: null, parseErrors: [], timedOut: out.timedOut, seconds: Math.round(out.ms / 100) / 10, result: null };
  let inSummary = false;
  for (const raw of out.stdout.split('\n')) {
    const line = raw.replace(/^\S+\.t \.+ ?/, ''); // the "tests/x/00.t ..... " header prefix
    if (/^Test Summary Report/.test(line)) inSummary = true;
    let m;
    if (!inSummary && (m = /^1\.\.(\d+)/.exec(line))) {
      r.planned = Number(m[1]);
    } else if (!inSummary && line !== 'ok' && (m = /^(not )?ok\b\s*(\d*)\s*(.*)$/.exec(line))) {
      // (a bare "ok" is prove's verdict on a file that passed, not a TAP line)
      r.run++;
      const n = m[2] ? Number(m[2]) : r.run;
      const rest = m[3];
      const todo = /#\s*TODO\b/i.test(rest);
      if (/#\s*SKIP\b/i.test(rest)) r.skipped++;
      if (m[1] && todo) r.todo++;
      else if (m[1]) r.failed.push({ n, message: rest.replace(/^-\s*/, '') });
    } else if ((m = /\(Wstat: (\d+)(?: Tests: \d+ Failed: (\d+))?/.exec(line))) {
      r.wstat = Number(m[1]);
      if (m[2] !== undefined) r.proveFailed = Number(m[2]);
    } else if ((m = /^\s+Parse errors: (.*)$/.exec(line))) {
      r.parseErrors.push(m[1]);
    } else if (inSummary && r.parseErrors.length && /^\s{16,}\S/.test(line)) {
      r.parseErrors.push(line.trim()); // prove's further parse errors, indented under the first
    } else if ((m = /^Result: (\w+)/.exec(line))) {
      r.result = m[1];
    }
  }
  if (out.error) r.parseErrors.push(`prove did not run: ${out.error}`);
  if (out.timedOut) r.parseErrors.push(`killed after ${duration(out.ms)} (--timeout)`);
  if (r.planned !== null && r.run !== r.planned) r.missing = Math.max(0, r.planned - r.run);
  if (r.proveFailed !== undefined && r.proveFailed !== r.failed.length) r.parseErrors.push(`prove counted ${r.proveFailed} failed subtests, this parser ${r.failed.length}`);
  r.ok = r.result === 'PASS' && r.failed.length === 0 && !out.timedOut;
  // A failed file with no failed subtest (a broken plan, a crash, a kill): keep what it printed.
  if (!r.ok && r.failed.length === 0) r.output = `${out.stdout}${out.stderr ? `\n[stderr]\n${out.stderr}` : ''}`.slice(-16_384);
  return r;
}

async function runTarget(target, testsDir, files, timeoutMs) {
  const started = Date.now();
  // Tests switch to other users: the directory they run in must let them in, on every target alike.
  chmodSync(target.dir, 0o755);
  const results = [];
  let abandoned = null;
  console.log(`\n== ${target.label}: ${files.length} test files in ${target.dir}${target.mount ? `\n   ${target.mount}` : ''}`);
  for (const [i, file] of files.entries()) {
    if (abandoned) {
      results.push({ file, planned: null, run: 0, failed: [], todo: 0, skipped: 0, wstat: null, parseErrors: [`not run: ${abandoned}`], timedOut: false, seconds: 0, result: null, ok: false, notRun: true });
      continue;
    }
    const out = await prove(join(testsDir, file), target.dir, timeoutMs);
    const r = parseProve(file, out);
    results.push(r);
    if (!r.ok) {
      const what = r.failed.length ? `${r.failed.length}/${r.run} failed, first: ${r.failed[0].message}` : r.parseErrors.join('; ');
      console.log(`   ${file.padEnd(22)} ${what.slice(0, 150)}`);
    }
    if ((i + 1) % 40 === 0) console.log(`   … ${i + 1}/${files.length} files, ${duration(Date.now() - started)}`);
    if (!target.alive()) abandoned = 'the mount went away (its server exited)';
    else if (r.timedOut && !responsive(target.dir)) abandoned = 'the mount stopped answering';
    if (abandoned) console.log(`   ${abandoned}: the remaining files count as failed`);
  }
  return { results, ms: Date.now() - started, abandoned };
}

function summarise(results) {
  return {
    files: results.length,
    filesFailed: results.filter((r) => !r.ok).length,
    subtests: results.reduce((s, r) => s + r.run, 0),
    subtestsFailed: results.reduce((s, r) => s + r.failed.length, 0),
    todoFailed: results.reduce((s, r) => s + r.todo, 0),
    skipped: results.reduce((s, r) => s + r.skipped, 0),
    filesWithoutFailedSubtestsFailed: results.filter((r) => !r.ok && r.failed.length === 0).map((r) => r.file),
  };
}

// ---------------------------------------------------------------------------
// Classification of svault's failures against the reference

/**
 * A failure's message with what differs between filesystems for no fault made equal: the suite's random
 * names (namegen, and namegen_len's long hex ones), and inode numbers, each filesystem's own
 * ("tried 'lstat NAME type,inode,nlink', expected regular,566,2, got regular,566,1").
 */
function normalise(message) {
  const m = message.replace(/pjdfstest_[0-9a-f]{32}/g, 'NAME').replace(/[0-9a-f]{32,}/g, 'LONGNAME');
  const t = /^tried '(.*)', expected (.*), got (.*)$/.exec(m);
  const fields = t ? (t[1].trim().split(/\s+/).pop() ?? '').split(',') : [];
  const at = fields.indexOf('inode');
  if (at < 0) return m;
  const mask = (value) => {
    const parts = value.split(',');
    if (parts.length === fields.length && /^\d+$/.test(parts[at])) parts[at] = 'INODE';
    return parts.join(',');
  };
  return `tried '${t[1]}', expected ${mask(t[2])}, got ${mask(t[3])}`;
}

/**
 * Splits an svault run's failures in two: those the reference shares (same file, subtest and message,
 * so refused FIFO, socket and device creation explains them) and the rest, svault's own.
 */
function classify(svault, reference) {
  const ref = new Map(reference.results.map((r) => [r.file, new Map(r.failed.map((f) => [f.n, normalise(f.message)]))]));
  const refOk = new Map(reference.results.map((r) => [r.file, r.ok]));
  const format2 = { subtests: 0, files: [] };
  const other = { subtests: 0, files: [] };
  for (const r of svault.results) {
    const shared = [];
    const own = [];
    for (const f of r.failed) (ref.get(r.file)?.get(f.n) === normalise(f.message) ? shared : own).push(f);
    if (shared.length) {
      format2.subtests += shared.length;
      format2.files.push({ file: r.file, subtests: shared.length, first: shared[0].message });
    }
    const fileLevel = r.failed.length === 0 && !r.ok && refOk.get(r.file) !== false;
    if (own.length || fileLevel) {
      other.subtests += own.length;
      other.files.push({ file: r.file, subtests: own.length, failed: own.map((f) => f.n), first: own[0]?.message ?? r.parseErrors.join('; ') });
    }
  }
  return { format2, other };
}

// ---------------------------------------------------------------------------

async function main() {
  const o = options();
  const commit = sourceCommit(o.source);
  if (!commit) {
    console.log(`pjdfstest: skipped: no pjdfstest source at ${o.source} (give one with --source DIR: a git directory or a checked-out tree of https://github.com/pjd/pjdfstest)`);
    return 0;
  }
  if (process.getuid?.() !== 0) throw new HarnessError('pjdfstest must run as root (its tests switch users and create device nodes)');
  if (o.kinds.includes('svault') || o.kinds.includes('gocryptfs')) {
    try {
      statSync('/dev/fuse');
    } catch {
      throw new HarnessError('/dev/fuse is missing: FUSE is not usable here');
    }
  }
  const tools = { autoreconf: 'autoconf', automake: 'automake', make: 'make', cc: 'gcc', prove: 'perl', git: 'git', fusermount: 'fuse' };
  if (o.kinds.includes('gocryptfs')) tools.gocryptfs = 'gocryptfs';
  ensureCommands(tools);

  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const outFile = o.out ?? join(ROOT, 'reports', `conformance-${stamp}.json`);
  // Under /var/tmp: the native runs need the machine's own disk filesystem (ext4 here), not a tmpfs.
  const work = mkdtempSync('/var/tmp/svault-pjdfstest-');
  chmodSync(work, 0o755);
  // Removed last, and only when nothing under it is mounted any more.
  emergency.set('work', () => {
    if (!o.keep && !readFileSync('/proc/mounts', 'utf8').includes(work)) rmSync(work, { recursive: true, force: true });
  });
  console.log(`pjdfstest ${commit.slice(0, 12)} from ${o.source}; work directory ${work}`);

  const report = {
    kind: 'pjdfstest',
    started: started.toISOString(),
    finished: null,
    seconds: null,
    source: { path: o.source, commit },
    svault: { commit: spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim(), dirty: spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim() !== '' },
    host: { kernel: spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim(), node: process.version, prove: spawnSync('prove', ['--version'], { encoding: 'utf8' }).stdout.trim() },
    mountOptions: { svault: o.svaultOptions, gocryptfs: '-allow_other' },
    timeoutSeconds: o.timeoutMs / 1000,
    only: o.only,
    counting: 'as prove counts: a subtest fails when it prints "not ok" without a TODO directive; a file fails when a subtest failed, its plan was not kept, it exited non-zero or it was killed',
    targets: [],
    classification: {},
    harnessErrors: [],
  };

  const buildDir = join(work, 'build');
  console.log('building pjdfstest ...');
  build(o.source, buildDir);
  const files = testFiles(join(buildDir, 'tests'), o.only);
  if (files.length === 0) throw new HarnessError(`no test files${o.only ? ` match --only ${o.only.join(',')}` : ''}`);
  const refDir = join(work, 'build-reference');
  if (o.kinds.includes('reference')) buildReference(buildDir, refDir);

  const plan = [];
  for (const kind of o.kinds) {
    if (kind === 'svault') for (const b of o.bindings) plan.push({ name: `svault-${b}`, make: () => svaultTarget(work, b, o.svaultOptions), tests: join(buildDir, 'tests') });
    if (kind === 'gocryptfs') plan.push({ name: 'gocryptfs', make: () => gocryptfsTarget(work), tests: join(buildDir, 'tests') });
    if (kind === 'native') plan.push({ name: 'native', make: async () => nativeTarget(work, 'native'), tests: join(buildDir, 'tests') });
    if (kind === 'reference') plan.push({ name: 'reference', make: async () => nativeTarget(work, 'reference'), tests: join(refDir, 'tests') });
  }

  for (const p of plan) {
    let target;
    try {
      target = await p.make();
    } catch (err) {
      if (!(err instanceof HarnessError)) throw err;
      console.error(`\n== ${p.name}: ${err.message}`);
      report.harnessErrors.push(`${p.name}: ${err.message}`);
      report.targets.push({ name: p.name, error: err.message });
      continue;
    }
    let run;
    let stopError = null;
    try {
      run = await runTarget(target, p.tests, files, o.timeoutMs);
    } finally {
      stopError = await target.stop();
    }
    if (stopError) report.harnessErrors.push(`${target.name}: ${stopError}`);
    const summary = summarise(run.results);
    report.targets.push({ name: target.name, label: target.label, dir: target.dir, mount: target.mount, info: target.info, seconds: Math.round(run.ms / 1000), abandoned: run.abandoned, ...summary, results: run.results });
    console.log(`   ${target.label}: ${summary.filesFailed}/${summary.files} files and ${summary.subtestsFailed}/${summary.subtests} subtests failed, ${duration(run.ms)}`);
    writeFileSync(outFile + '.partial', JSON.stringify(report, null, 1)); // what is done so far, should a later target hang
  }

  const reference = report.targets.find((t) => t.name === 'reference' && t.results);
  for (const t of report.targets) {
    if (t.name.startsWith('svault-') && t.results) report.classification[t.name] = reference ? classify(t, reference) : null;
  }
  report.finished = new Date().toISOString();
  report.seconds = Math.round((Date.now() - started.getTime()) / 1000);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(report, null, 1)}\n`);
  rmSync(outFile + '.partial', { force: true });

  printTable(report);
  console.log(`\nreport: ${relative(process.cwd(), outFile) || outFile} (${duration(report.seconds * 1000)})`);
  if (o.keep) console.log(`work directory kept: ${work}`);
  for (const e of report.harnessErrors) console.error(`harness error: ${e}`);
  return report.harnessErrors.length ? 1 : 0;
}

function printTable(report) {
  console.log('\n| target | files failed | subtests failed | time |');
  console.log('|---|---:|---:|---:|');
  for (const t of report.targets) {
    if (t.error) console.log(`| ${t.name} | harness error | | |`);
    else console.log(`| ${t.label} | ${t.filesFailed} / ${t.files} | ${t.subtestsFailed} / ${t.subtests} | ${duration(t.seconds * 1000)} |`);
  }
  for (const [name, c] of Object.entries(report.classification)) {
    if (!c) {
      console.log(`\n${name}: not classified (no reference run)`);
      continue;
    }
    console.log(`\n${name}: ${c.format2.subtests} subtests in ${c.format2.files.length} files fail as on the reference (FIFO, socket and device creation: store format 2):`);
    console.log(`  ${c.format2.files.map((f) => `${f.file} ${f.subtests}`).join(', ')};`);
    console.log(`${c.other.subtests} subtests in ${c.other.files.length} files fail otherwise:`);
    for (const f of c.other.files) console.log(`  ${f.file.padEnd(22)} ${String(f.subtests).padStart(4)}  first: ${f.first.slice(0, 140)}`);
  }
}

main().then(
  (code) => {
    cleanupNow();
    process.exit(code);
  },
  (err) => {
    cleanupNow();
    console.error(`pjdfstest: ${err instanceof HarnessError ? err.message : err.stack}`);
    process.exit(1);
  },
);
