// Test helpers that drive the real svault CLI in child processes (a FUSE server must never be called
// synchronously from its own process) and guarantee nothing stays mounted after a test.

import type { ExecutionContext } from 'ava';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BINDINGS, DEFAULT_BINDING, type BindingName } from '../../fs/bindings.js';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'bin', 'svault.js');
export const PASSPHRASE = 'correct horse battery staple';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (never throws for a non-zero exit). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((done) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      done({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/**
 * Whether a program is on PATH. Synchronous, for deciding at load time between `test` and `test.skip`,
 * so a test whose tool is missing shows as skipped instead of passing without checking.
 */
export function installed(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

/** Runs a shell command line (for pipelines such as tar | tar). */
export function sh(line: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  return run('bash', ['-c', line], opts);
}

export function mountedAt(mnt: string): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);
}

/** A sandbox: its own store, mount point and XDG dirs (so registries and logs do not mix between tests). */
export interface Sandbox {
  dir: string;
  store: string;
  mnt: string;
  env: NodeJS.ProcessEnv;
  svault(args: string[], opts?: { env?: NodeJS.ProcessEnv; input?: string }): Promise<RunResult>;
  mount(extra?: string[]): Promise<RunResult>;
  unmount(): Promise<RunResult>;
}

/** The binding the mount tests run on: SVAULT_BINDING when set (to run the suite on one transport), else svault's default. */
export function testBinding(): BindingName {
  const env = process.env.SVAULT_BINDING;
  return env && (BINDINGS as readonly string[]).includes(env) ? (env as BindingName) : DEFAULT_BINDING;
}

export interface SandboxOptions {
  /** Mount through this binding instead of testBinding(). */
  binding?: BindingName;
}

export function sandbox(t: ExecutionContext, name = 'sv', opts: SandboxOptions = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), `svault-${name}-`));
  const store = join(dir, 'store');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SVAULT_PASSPHRASE: PASSPHRASE,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    SVAULT_BINDING: opts.binding ?? testBinding(),
  };
  const box: Sandbox = {
    dir,
    store,
    mnt,
    env,
    svault: (args, o = {}) => run(process.execPath, [CLI, ...args], { env: { ...env, ...o.env }, input: o.input }),
    mount: (extra = []) => box.svault(['mount', '--store', store, mnt, ...extra]),
    unmount: () => box.svault(['unmount', mnt]),
  };
  t.teardown(async () => {
    if (mountedAt(mnt)) await box.unmount();
    if (mountedAt(mnt)) await run('umount', ['-l', mnt]);
    // A server still running (e.g. after a failed unmount) must not outlive the test.
    for (const pid of serverPids(box)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (mountedAt(mnt)) await run('umount', ['-l', mnt]);
    rmSync(dir, { recursive: true, force: true });
  });
  return box;
}

/** Pids of this sandbox's mount servers, from its registry of live mounts. */
export function serverPids(box: Sandbox): number[] {
  const dir = join(box.dir, 'state', 'svault', 'mounts');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => Number.parseInt(f, 10))
    .filter((n) => Number.isInteger(n));
}

/** Creates the vault and mounts it; fails the test with the CLI's message otherwise. */
export async function mountedSandbox(t: ExecutionContext, init: string[] = ['--chaff', '0.1'], opts: SandboxOptions = {}): Promise<Sandbox> {
  const box = sandbox(t, 'sv', opts);
  const i = await box.svault(['init', '--store', box.store, ...init]);
  if (i.code !== 0) throw new Error(`init failed: ${i.stderr}`);
  const m = await box.mount();
  if (m.code !== 0) throw new Error(`mount failed (${m.code}): ${m.stderr}`);
  return box;
}

/** Starts a long-running process and returns it (for concurrent readers/writers). */
export function start(cmd: string, args: string[], env?: NodeJS.ProcessEnv) {
  return spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
}
