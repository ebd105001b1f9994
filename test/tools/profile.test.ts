// npm run profile (profiling/run.ts): a --quick run under each profiler leaves a non-empty HTML and an
// overhead report whose parts add up to the wall time and that puts both transports' FUSE round trips side
// by side (svault on devfuse by default, on fuse-native with --binding); nothing stays mounted, even when the run fails
// after the mount, when the profiler is killed midway, or when the driver itself is killed.
// Every tool runs in npm test: 0x, clinic-flame, clinic-doctor, clinic-bubbleprof and clinic-heap.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../../src/core/util/process-alive.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const canMount = existsSync('/dev/fuse') && process.getuid?.() === 0;
const maybe = canMount ? test.serial : test.serial.skip;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Mount points under dir (the run's TMPDIR): what must be empty after every run. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

/** Runs profiling/run.ts with its own TMPDIR (its work dir and mounts land under it) and --out. */
function profile(args: string[], onStderr?: (text: string, child: ReturnType<typeof spawn>) => void): { tmp: string; out: string; done: Promise<Run> } {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'svault-profile-test-'));
  const out = path.join(tmp, 'reports');
  mkdirSync(out);
  // --no-cache-drop: dropping the machine's page cache would empty those of the tests running beside this
  // one (the mount cache tests saw it as extra FUSE reads).
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'profiling', 'run.ts'), ...args, '--no-cache-drop', '--out', out], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    onStderr?.(stderr, child);
  });
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { tmp, out, done };
}

function reportDir(out: string): string {
  const dirs = readdirSync(out).filter((d) => d.startsWith('profile-'));
  if (dirs.length !== 1) throw new Error(`expected one profile-* directory in ${out}, found ${dirs.join(', ') || 'none'}`);
  return path.join(out, dirs[0] as string);
}

interface TransportRoundTrips {
  floorTarget: string;
  floorS: number | null;
  roundTripsS: number | null;
  share: number | null;
  speedupBound: number | null;
}

interface OverheadJson {
  ok: boolean;
  errors: string[];
  tolerancePct: number;
  binding: string;
  options: { binding: string };
  overhead: Array<{
    workload: string;
    binding: string;
    wallMs: number;
    parts: Record<string, number>;
    check: { sumMs: number; diffPct: number; ok: boolean };
    timed: { svault: number; native: number | null; floor: number | null; floorDevfuse: number | null };
    kernelModule: { fuseShare: number | null; floorTarget: string };
    transports: Record<'fuse-native' | 'devfuse', TransportRoundTrips>;
  }>;
}

const clinicTools = ['clinic-flame', 'clinic-doctor', 'clinic-bubbleprof', 'clinic-heap'];

/** The end of a failed run's profiler log (the profiler's own reason), which goes with the temporary directory. */
function profilerLogTail(out: string): string {
  try {
    return `profiler.log:\n${readFileSync(path.join(reportDir(out), 'profiler.log'), 'utf8').slice(-3000)}`;
  } catch {
    return '(no profiler log)';
  }
}

for (const tool of ['0x', ...clinicTools]) {
  maybe(`--quick --tool ${tool}: HTML, an overhead report that adds up, nothing mounted`, async (t) => {
    t.timeout(300_000);
    // 0x runs both default workloads; the slower Clinic.js tools one. clinic-flame profiles svault on
    // fuse-native, so both bindings are covered without another run.
    const binding = tool === 'clinic-flame' ? 'fuse-native' : 'devfuse';
    const args = tool === '0x' ? ['--quick', '--tool', tool] : ['--quick', '--tool', tool, '--workload', 'cp', ...(binding === 'devfuse' ? [] : ['--binding', binding])];
    const { tmp, out, done } = profile(args);
    const r = await done;
    try {
      t.is(r.code, 0, `${r.stdout}\n${r.stderr.slice(-4000)}\n${profilerLogTail(out)}`);
      const dir = reportDir(out);
      const html = path.join(dir, tool === '0x' ? 'flamegraph.html' : `${tool}.html`);
      t.true(existsSync(html), `${html} exists`);
      t.true(statSync(html).size > 1000, 'the HTML is not empty');
      t.true(readFileSync(html, 'utf8').includes('<html') || readFileSync(html, 'utf8').includes('<!DOCTYPE'), 'it is HTML');
      const j = JSON.parse(readFileSync(path.join(dir, 'overhead.json'), 'utf8')) as OverheadJson;
      t.deepEqual(j.errors, []);
      t.is(j.overhead.length, tool === '0x' ? 2 : 1);
      for (const row of j.overhead) {
        const sum = Object.values(row.parts).reduce((a, b) => a + b, 0);
        t.true(Math.abs(sum - row.check.sumMs) < 1e-6, `${row.workload}: the parts are the sum`);
        t.true(Object.values(row.parts).every((v) => v >= 0), `${row.workload}: no negative part`);
        t.true(Math.abs(sum - row.wallMs) / row.wallMs <= j.tolerancePct / 100, `${row.workload}: parts ${sum} ms vs wall ${row.wallMs} ms`);
        t.true(row.check.ok);
        // Both transports side by side; the breakdown's round trips come from svault's own transport's floor.
        t.is(row.binding, binding);
        t.is(row.kernelModule.floorTarget, binding === 'devfuse' ? 'floor-devfuse' : 'floor');
        t.is(row.transports['fuse-native'].floorTarget, 'floor');
        t.is(row.transports.devfuse.floorTarget, 'floor-devfuse');
        t.is(row.transports['fuse-native'].floorS, row.timed.floor);
        t.is(row.transports.devfuse.floorS, row.timed.floorDevfuse);
        for (const b of ['fuse-native', 'devfuse'] as const) {
          const tr = row.transports[b];
          t.true(typeof tr.floorS === 'number' && typeof tr.roundTripsS === 'number' && typeof tr.share === 'number', `${row.workload}: ${b}'s floor ran`);
          t.true(Math.abs((tr.roundTripsS as number) - Math.max(0, (tr.floorS as number) - (row.timed.native as number))) < 1e-9, `${row.workload}: ${b} round trips = floor − native`);
          if ((tr.share as number) < 1) t.true(Math.abs((tr.speedupBound as number) - 1 / (1 - (tr.share as number))) < 1e-9, `${row.workload}: ${b} bound`);
        }
        t.true(Math.abs((row.kernelModule.fuseShare as number) - (row.transports[binding].share as number)) < 1e-9, `${row.workload}: the kernel-module share is ${binding}'s`);
      }
      t.is(j.binding, binding);
      t.is(j.options.binding, binding);
      const md = readFileSync(path.join(dir, 'overhead.md'), 'utf8');
      t.regex(md, /What a kernel module could gain at most/);
      t.regex(md, new RegExp(`svault ran on \\*\\*${binding}\\*\\*`));
      t.regex(md, /## FUSE round trips by transport/);
      t.regex(md, /\| workload \| native s \| floor \(fuse-native\) s \| floor-devfuse s \|/);
      t.regex(r.stdout, /round trips by transport: fuse-native .*, devfuse /);
      t.regex(r.stdout, /overhead report/);
      t.deepEqual(mountsUnder(tmp), [], 'nothing left mounted');
    } finally {
      if (mountsUnder(tmp).length === 0) rmSync(tmp, { recursive: true, force: true });
    }
  });
}

maybe('a failure right after the mount leaves nothing mounted and says so', async (t) => {
  t.timeout(120_000);
  const { tmp, out, done } = profile(['--quick', '--fail-after-mount']);
  const r = await done;
  try {
    t.is(r.code, 1);
    t.regex(r.stderr, /mounted .*server pid/);
    const j = JSON.parse(readFileSync(path.join(reportDir(out), 'overhead.json'), 'utf8')) as OverheadJson;
    t.true(j.errors.some((e) => e.includes('simulated failure')));
    t.false(j.ok);
    t.deepEqual(mountsUnder(tmp), []);
  } finally {
    if (mountsUnder(tmp).length === 0) rmSync(tmp, { recursive: true, force: true });
  }
});

maybe('killing the profiler (0x) midway: the run fails, nothing stays mounted', async (t) => {
  t.timeout(120_000);
  let killed = false;
  const { tmp, done } = profile(['--quick'], (text) => {
    const m = /profiler pid (\d+)/.exec(text);
    if (m && !killed && text.includes('workload cp')) {
      killed = true;
      process.kill(Number(m[1]), 'SIGKILL');
    }
  });
  const r = await done;
  try {
    t.true(killed, 'the profiler was killed');
    t.not(r.code, 0);
    t.regex(r.stdout + r.stderr, /0x (exited|wrote no HTML)|did not finish/);
    t.deepEqual(mountsUnder(tmp), []);
  } finally {
    if (mountsUnder(tmp).length === 0) rmSync(tmp, { recursive: true, force: true });
  }
});

maybe('killing the driver (SIGTERM) midway: nothing stays mounted, the profiled server is gone', async (t) => {
  t.timeout(120_000);
  let serverPid = 0;
  let sent = false;
  const { tmp, done } = profile(['--quick'], (text, child) => {
    const m = /server pid (\d+)/.exec(text);
    if (m && !sent && text.includes('workload cp')) {
      sent = true;
      serverPid = Number(m[1]);
      child.kill('SIGTERM');
    }
  });
  const r = await done;
  try {
    t.true(sent);
    t.is(r.code, 128 + 15);
    t.deepEqual(mountsUnder(tmp), []);
    // The server was SIGKILLed by the exit handler; give the kernel a moment to end all its threads.
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      gone = !processAlive(serverPid);
      if (!gone) await new Promise((res) => setTimeout(res, 100));
    }
    t.true(gone, `the server ${serverPid} is gone`);
  } finally {
    if (mountsUnder(tmp).length === 0) rmSync(tmp, { recursive: true, force: true });
  }
});
