// npm run profile: mounts a vault (store on a tmpfs) under a profiler (0x by default, or a Clinic.js
// tool), drives bench workloads through it, stops it with SIGINT so the profiler writes its output, and
// writes reports/profile-<timestamp>/ with the profiler's HTML, overhead.md and overhead.json. Each
// workload also runs on native and on the Node-FUSE floor of both transports, for the round trips.
// `--counting-cost` instead measures what svault's op counters cost (counters on vs SVAULT_NO_STATS=1).
// Nothing stays mounted: every mount is registered for a synchronous lazy unmount on any exit.
//
//   npm run profile -- [--quick] [--workload cp,small] [--tool 0x|clinic-flame|clinic-doctor|clinic-bubbleprof|clinic-heap] [--kernel]
//                      [--binding devfuse|fuse-native]
//   npm run profile -- --counting-cost [--quick]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, openSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_TREE } from '../fixtures/tree.js';
import { ensureFusermountOnPath, isMounted, lazyUnmount } from '../fs/fuse-binding.js';
import { Progress } from '../bench/lib/progress.js';
import { Ballast, CacheDropper, mountBacking, mountsUnder, unmountBacking, unmountBackingSync, type Backing } from '../bench/lib/system.js';
import { CleanupRegistry, floorDevfuseTarget, floorTarget, nativeTarget, svaultEnv, svaultTarget, type Target } from '../bench/lib/targets.js';
import { eachFlag, ROOT, runIfMain, stamp, withOptions } from '../bench/lib/command.js';
import { closeDevNull, errorMessage, GiB, humanBytes, KiB, MiB, parseSize, run, sleep } from '../bench/lib/util.js';
import { loadAverage, stepsOf, WORKLOAD_NAMES, WORKLOADS, type BenchOptions, type Ctx, type WorkloadName, type WorkloadResult } from '../bench/lib/workloads.js';
import { OpStats } from '../src/core/util/op-stats.js';
import { SERVER_NODE_FLAGS } from '../src/cli/server-flags.js';
import { processAlive as alive } from '../src/core/util/process-alive.js';
import { BINDINGS, DEFAULT_BINDING, type BindingName } from '../fs/bindings.js';
import { computeOverhead, renderOverhead, FLOOR_OF, TOLERANCE_PCT, TRANSPORTS, PART_NAMES, PART_LABELS, type Overhead, type Snapshot } from './overhead.js';

export { ROOT };

export const TOOLS = ['0x', 'clinic-flame', 'clinic-doctor', 'clinic-bubbleprof', 'clinic-heap'] as const;
export type Tool = (typeof TOOLS)[number];

const USAGE = `Usage: npm run profile -- [options]

Mounts a vault (store on a tmpfs) under a profiler, drives bench workloads through the mount, stops the
server with SIGINT so the profiler writes its output, and writes reports/profile-<timestamp>/:
flamegraph.html (0x) or <tool>.html (Clinic.js), overhead.md and overhead.json. Needs root.

Options:
  --workload LIST   bench workloads: ${WORKLOAD_NAMES.join(', ')} (default: cp,small)
  --quick           tiny sizes: a 1 MiB cp, 50 small files, an 8 MiB dd (seconds)
  --size SIZE       the cp file size (default 256M)
  --tool NAME       ${TOOLS.join(' | ')} (default 0x)
  --binding NAME    the transport svault is profiled on: ${BINDINGS.join(' | ')} (default ${DEFAULT_BINDING});
                    the round trips are always measured on both (floor and floor-devfuse)
  --kernel          0x only: perf samples of the kernel and native threads (0x --kernel-tracing);
                    installs linux-perf with profiling/setup-kernel.sh when perf is missing
  --counting-cost   instead of profiling: dd and cp of a large file with counters on vs
                    SVAULT_NO_STATS=1 in the same run; reports the % difference
  --no-cache-drop   do not drop the machine's page caches before read phases (tests use it)
  --out DIR         where profile-<timestamp>/ goes (default reports/)
  --help
`;

class UsageError extends Error {}

interface Options {
  quick: boolean;
  workloads: WorkloadName[];
  tool: Tool;
  binding: BindingName;
  kernel: boolean;
  countingCost: boolean;
  size: number;
  out: string;
  /** Test hook: throw right after the mount (to check that nothing stays mounted). */
  failAfterMount: boolean;
  /** Leave the machine's page caches alone (tests: other tests' caches are the same). */
  noCacheDrop: boolean;
  help: boolean;
}

export function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, workloads: ['cp', 'small'], tool: '0x', binding: DEFAULT_BINDING, kernel: false, countingCost: false, size: 256 * MiB, out: path.join(ROOT, 'reports'), failAfterMount: false, noCacheDrop: false, help: false };
  let sizeGiven = false;
  eachFlag(argv, (flag, value, a) => {
    switch (flag) {
      case '--quick':
        o.quick = true;
        break;
      case '--kernel':
        o.kernel = true;
        break;
      case '--counting-cost':
        o.countingCost = true;
        break;
      case '--fail-after-mount':
        o.failAfterMount = true;
        break;
      case '--no-cache-drop':
        o.noCacheDrop = true;
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      case '--workload':
      case '--workloads': {
        const names = value().split(',').map((s) => s.trim()).filter(Boolean);
        for (const n of names) if (!(WORKLOAD_NAMES as readonly string[]).includes(n)) throw new UsageError(`unknown workload ${n}; one of ${WORKLOAD_NAMES.join(', ')}`);
        o.workloads = names as WorkloadName[];
        break;
      }
      case '--tool': {
        const t = value();
        if (!(TOOLS as readonly string[]).includes(t)) throw new UsageError(`unknown tool ${t}; one of ${TOOLS.join(', ')}`);
        o.tool = t as Tool;
        break;
      }
      case '--binding': {
        const b = value();
        if (!(BINDINGS as readonly string[]).includes(b)) throw new UsageError(`unknown binding ${b}; one of ${BINDINGS.join(', ')}`);
        o.binding = b as BindingName;
        break;
      }
      case '--size':
        o.size = parseSize(value());
        sizeGiven = true;
        break;
      case '--out':
        o.out = path.resolve(value());
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  });
  if (o.quick && !sizeGiven) o.size = MiB;
  if (o.kernel && o.tool !== '0x') throw new UsageError('--kernel works with --tool 0x only (0x --kernel-tracing)');
  return o;
}

function benchOptions(o: Options, ballastBytes: number): BenchOptions {
  return {
    quick: o.quick,
    sizes: [o.size],
    only: o.workloads,
    targets: ['svault', 'native', 'floor', 'floor-devfuse'],
    repeats: 1,
    streamRepeats: 1,
    pieceSize: 131072,
    chaff: 0.1,
    ddBytes: o.quick ? 8 * MiB : 256 * MiB,
    streamBytes: o.quick ? 32 * MiB : 4 * GiB,
    small: o.quick ? [{ count: 50, size: KiB }] : [{ count: 1000, size: KiB }],
    tree: o.quick ? { ...DEFAULT_TREE, files: 200, dirs: 10 } : { ...DEFAULT_TREE, files: 2000, dirs: 40 },
    ballastBytes,
    tmpfsBytes: null,
    out: o.out,
    timeoutMs: o.quick ? 60_000 : 600_000,
  };
}

const PASSPHRASE = 'svault profile passphrase';

function binOf(pkg: string, rel: string): string {
  return realpathSync(path.join(ROOT, 'node_modules', pkg, rel));
}

/** The status of the mount at mnt, straight from the server's socket via `svault status --json`. */
async function statusOf(env: NodeJS.ProcessEnv, mnt: string): Promise<{ pid: number; binding: string | null; snap: Snapshot | null } | null> {
  try {
    const r = await run(process.execPath, [path.join(ROOT, 'bin', 'svault.js'), 'status', '--json'], { env, stdout: 'capture', timeoutMs: 30_000 });
    const rows = JSON.parse(r.stdout) as Array<{ pid: number; mountpoint: string; binding?: string; live?: { ops?: Snapshot['ops']; process?: Snapshot['process'] } | null }>;
    const row = rows.find((x) => x.mountpoint === mnt);
    if (!row) return null;
    const snap = row.live?.ops && row.live.process ? { ops: row.live.ops, process: row.live.process } : null;
    return { pid: row.pid, binding: row.binding ?? null, snap };
  } catch {
    return null;
  }
}

/** One snapshot straight from the server's status socket (milliseconds, unlike spawning `svault status`). */
function snapshot(sock: string): Promise<{ snap: Snapshot; at: number }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const c = connect(sock);
    c.setEncoding('utf8');
    c.on('data', (d: string) => (data += d));
    c.on('error', reject);
    c.on('end', () => {
      const at = performance.now();
      try {
        const j = JSON.parse(data) as { ops?: Snapshot['ops']; process?: Snapshot['process'] };
        if (!j.ops || !j.process) throw new Error('the status socket gave no ops/process figures');
        resolve({ snap: { ops: j.ops, process: j.process }, at });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

/** perf for --kernel: installs it with setup-kernel.sh if missing, then checks that it can sample. */
async function preparePerf(progress: Progress): Promise<{ ok: boolean; why: string; shimDir: string | null }> {
  const has = () => spawnSync('perf', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!has()) {
    progress.note('perf is missing: running profiling/setup-kernel.sh (apt-get install -y linux-perf)');
    const r = spawnSync('sh', [path.join(ROOT, 'profiling', 'setup-kernel.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0 || !has()) return { ok: false, why: 'perf is not installed and profiling/setup-kernel.sh could not install it (needs root and apt)', shimDir: null };
  }
  const probe = spawnSync('perf', ['record', '-e', 'cpu-clock', '-q', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return { ok: false, why: `perf cannot sample here: ${(probe.stderr || '').trim().split('\n').slice(0, 3).join(' ')}`, shimDir: null };
  // 0x --kernel-tracing runs `sudo perf ...`: without sudo, a pass-through shim (we are root).
  let shimDir: string | null = null;
  if (spawnSync('sh', ['-c', 'command -v sudo'], { stdio: 'ignore' }).status !== 0) {
    if (process.getuid?.() !== 0) return { ok: false, why: '0x --kernel-tracing calls sudo, which is not installed, and this is not root', shimDir: null };
    shimDir = mkdtempSync(path.join(os.tmpdir(), 'svault-sudo-shim-'));
    writeFileSync(path.join(shimDir, 'sudo'), '#!/bin/sh\n# pass-through sudo for 0x --kernel-tracing (already root)\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n', { mode: 0o755 });
  }
  return { ok: true, why: '', shimDir };
}

/** The profiler's command line for `node [server flags] dist/src/cli/cli.js mount -f --binding B --store S MNT`. */
function profilerCommand(tool: Tool, dataDir: string, kernel: boolean, server: string[]): string[] {
  if (tool === '0x') return [binOf('0x', 'cmd.js'), '-D', dataDir, ...(kernel ? ['--kernel-tracing'] : []), '--', process.execPath, ...server];
  const sub = { 'clinic-flame': 'flame', 'clinic-doctor': 'doctor', 'clinic-bubbleprof': 'bubbleprof', 'clinic-heap': 'heapprofiler' }[tool];
  return [binOf('clinic', 'bin.js'), sub, '--open=false', '--dest', dataDir, '--', process.execPath, ...server];
}

function findHtml(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.html'))
    .map((e) => path.join(e.parentPath, e.name));
}

interface Session {
  base: string;
  backing: Backing;
  cleanup: CleanupRegistry;
  progress: Progress;
  dataDir: string;
  work: string;
  mntBase: string;
  ballast: Ballast;
  dropper: CacheDropper;
}

/** tmpfs, scratch dirs, exit and signal handlers that unmount everything. */
async function openSession(o: Options, progress: Progress): Promise<Session> {
  const cleanup = new CleanupRegistry();
  const base = mkdtempSync(path.join(os.tmpdir(), 'svault-profile-'));
  const tmpfsDir = path.join(base, 'tmpfs');
  const mntBase = path.join(base, 'mnt');
  mkdirSync(tmpfsDir);
  mkdirSync(mntBase);
  progress.note(`work dir ${base}`);
  const emergency = () => {
    cleanup.runAll();
    try {
      if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
      else process.stderr.write(`still mounted, not removing ${base}: ${mountsUnder(base).join(', ')}\n`);
    } catch {
      /* best effort */
    }
  };
  process.on('exit', emergency);
  const onSignal = (sig: NodeJS.Signals) => {
    progress.note(`${sig}: unmounting everything and stopping`);
    emergency();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const tmpfsBytes = o.quick ? 1 * GiB : Math.min(Math.floor(os.totalmem() * 0.5), 8 * GiB);
  const backing = await mountBacking(tmpfsDir, tmpfsBytes);
  if (backing.kind === 'tmpfs') cleanup.add('tmpfs', () => unmountBackingSync(backing));
  else progress.note(`warning: ${backing.note}`);
  const ballast = new Ballast(tmpfsDir, backing.kind === 'tmpfs' ? (o.quick ? 0 : Math.min(2 * GiB, Math.floor(os.totalmem() * 0.1))) : 0);
  ballast.fill();
  const work = path.join(tmpfsDir, 'work');
  const dataDir = path.join(tmpfsDir, 'data');
  mkdirSync(work);
  mkdirSync(dataDir);
  const dropper = new CacheDropper(!o.noCacheDrop);
  await dropper.init(['cp', 'dd', 'ls', 'find', 'cat', 'tar', 'rm', 'sh', 'sync'], [process.execPath, path.join(ROOT, 'dist', 'bench', 'small-files.js')]);
  return { base, backing, cleanup, progress, dataDir, work, mntBase, ballast, dropper };
}

async function closeSession(s: Session): Promise<string[]> {
  await unmountBacking(s.backing);
  s.cleanup.runAll();
  closeDevNull();
  const left = mountsUnder(s.base);
  if (left.length === 0) rmSync(s.base, { recursive: true, force: true });
  return left;
}

function ensureBuilt(): void {
  for (const f of ['dist/src/cli/cli.js', 'dist/bench/passthrough-fs.js', 'dist/bench/passthrough-devfuse.js', 'dist/bench/small-files.js']) {
    if (!existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
}

// ---------------------------------------------------------------------------
// profile

async function profile(o: Options, progress: Progress): Promise<number> {
  const started = new Date();
  const reportDir = path.join(o.out, `profile-${stamp(started)}`);
  mkdirSync(reportDir, { recursive: true });
  const errors: string[] = [];
  const files: Record<string, string> = {};
  const s = await openSession(o, progress);
  const store = path.join(s.dataDir, 'svault-store');
  const mnt = path.join(s.mntBase, 'svault');
  const xdg = path.join(s.base, 'xdg');
  mkdirSync(mnt, { recursive: true });
  const env = svaultEnv(xdg, PASSPHRASE, { NO_INSIGHT: '1' });
  delete env.SVAULT_NO_STATS;
  const cli = path.join(ROOT, 'dist', 'src', 'cli', 'cli.js');
  let profiler: ChildProcess | null = null;
  let profilerExit: Promise<number | null> = Promise.resolve(null);
  let serverPid: number | null = null;
  let kernelNote = '';
  const targets: Target[] = [];
  const overheads: Overhead[] = [];
  const results: Record<string, { svault?: WorkloadResult; others?: WorkloadResult }> = {};
  const rawDir = path.join(reportDir, o.tool === '0x' ? '0x-data' : 'clinic-data');
  let shimDir: string | null = null;
  try {
    await run(process.execPath, [cli, 'init', '--store', store, '--piece-size', '131072', '--chaff', '0.1'], { env, timeoutMs: 180_000 });
    let kernel = o.kernel;
    if (kernel) {
      const p = await preparePerf(progress);
      shimDir = p.shimDir;
      if (!p.ok) {
        kernel = false;
        kernelNote = `--kernel: perf is unusable, profiling the JS thread only: ${p.why}`;
        errors.push(kernelNote);
        progress.note(kernelNote);
      } else kernelNote = '--kernel: perf samples of the kernel and native threads (0x --kernel-tracing)';
    }
    if (shimDir) env.PATH = `${shimDir}:${env.PATH ?? ''}`;
    const cmd = profilerCommand(o.tool, rawDir, kernel, [...SERVER_NODE_FLAGS, cli, 'mount', '-f', '--binding', o.binding, '--store', store, mnt]);
    progress.note(`starting ${o.tool}: ${cmd.map((a) => path.relative(ROOT, a).startsWith('..') ? a : path.relative(ROOT, a)).join(' ')}`);
    // Registered before the mount: whatever happens, the mount goes and the profiler's group is killed.
    s.cleanup.add('svault', () => {
      if (isMounted(mnt)) lazyUnmount(mnt);
      if (serverPid !== null && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
      if (profiler?.pid && profiler.exitCode === null) {
        try {
          process.kill(-profiler.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });
    const logFile = path.join(reportDir, 'profiler.log');
    const logFd = openSync(logFile, 'w');
    files.profilerLog = logFile;
    profiler = spawn(process.execPath, cmd, { cwd: reportDir, env, stdio: ['ignore', logFd, logFd], detached: true });
    const child = profiler;
    profilerExit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let exited = false;
    void profilerExit.then(() => (exited = true));
    const deadline = Date.now() + 120_000;
    while (!isMounted(mnt) && !exited && Date.now() < deadline) await sleep(100);
    if (!isMounted(mnt)) throw new Error(`the mount did not come up under ${o.tool}${exited ? ' (the profiler exited)' : ''}; see ${logFile}`);
    let servedBy: string | null = null;
    for (let i = 0; i < 50 && serverPid === null; i++) {
      const st = await statusOf(env, mnt);
      serverPid = st?.pid ?? null;
      servedBy = st?.binding ?? null;
      if (serverPid === null) await sleep(200);
    }
    if (serverPid === null) throw new Error('mounted, but the server does not answer `svault status`');
    // The round trips are taken from this binding's floor: a mismatch would make them the wrong transport's.
    if (servedBy !== o.binding) throw new Error(`asked for --binding ${o.binding}, but the server reports ${servedBy ?? 'no binding'}`);
    const sock = path.join(env.XDG_STATE_HOME as string, 'svault', 'mounts', `${serverPid}.sock`);
    progress.note(`mounted ${mnt} through ${o.binding}, server pid ${serverPid} (profiled), profiler pid ${profiler.pid}`);
    if (o.failAfterMount) throw new Error('--fail-after-mount: simulated failure after the mount');

    const sv: Target = { name: 'svault', dir: mnt, backing: store, pid: serverPid, info: { tool: o.tool, binding: o.binding }, stop: async () => undefined };
    targets.push(sv);
    targets.push(nativeTarget(s.dataDir));
    targets.push(await floorTarget(s.dataDir, s.mntBase, ROOT, s.cleanup));
    targets.push(await floorDevfuseTarget(s.dataDir, s.mntBase, ROOT, s.cleanup));
    const opts = benchOptions(o, s.ballast.fullBytes);
    progress.setTotal(o.workloads.reduce((a, w) => a + stepsOf(w, opts, targets.length), 0));
    const ctx = (ts: Target[]): Ctx => ({ opts, root: ROOT, targets: ts, work: s.work, ballast: s.ballast, dropper: s.dropper, progress });
    await s.dropper.drop();
    for (const w of o.workloads) {
      progress.note(`workload ${w}: svault (profiled)`);
      // Wall: the driver's clock between the two snapshots' answers.
      const before = await snapshot(sock);
      const svRes = await WORKLOADS[w](ctx([sv]));
      const after = await snapshot(sock);
      const wallMs = after.at - before.at;
      if (svRes.targets.svault?.error) throw new Error(`workload ${w} failed on svault: ${svRes.targets.svault.error}`);
      progress.note(`workload ${w}: native, floor and floor-devfuse`);
      const others = await WORKLOADS[w](ctx(targets.slice(1)));
      for (const [t, r] of Object.entries(others.targets)) if (r?.error) errors.push(`${w} on ${t}: ${r.error}`);
      results[w] = { svault: svRes, others };
      overheads.push(computeOverhead(w, before.snap, after.snap, wallMs, svRes, others, o.binding));
    }
  } catch (err) {
    errors.push(errorMessage(err));
    progress.note(`error: ${errorMessage(err)}`);
  } finally {
    for (const t of [...targets].reverse()) if (t.name !== 'svault') await t.stop().catch((e: unknown) => errors.push(`stopping ${t.name}: ${errorMessage(e)}`));
    // Stop the profiled server with SIGINT to its own pid: it unmounts and the profiler writes its output.
    if (serverPid !== null && alive(serverPid)) {
      progress.note(`stopping the server (SIGINT to pid ${serverPid}); ${o.tool} writes its output`);
      process.kill(serverPid, 'SIGINT');
    } else if (profiler?.pid && profiler.exitCode === null) {
      try {
        process.kill(-profiler.pid, 'SIGINT');
      } catch {
        /* gone */
      }
    }
    const limit = o.tool === '0x' ? 180_000 : 300_000;
    const code = await Promise.race([profilerExit, sleep(limit).then(() => 'timeout' as const)]);
    if (code === 'timeout') errors.push(`${o.tool} did not finish within ${limit / 1000} s`);
    else if (code !== 0 && code !== null && profiler) errors.push(`${o.tool} exited with ${code}; see ${files.profilerLog}`);
    if (isMounted(mnt)) {
      errors.push('the mount was still there after the server stopped: detached lazily');
    }
    const left = await closeSession(s);
    if (left.length) errors.push(`still mounted after the run: ${left.join(', ')}`);
    if (shimDir) rmSync(shimDir, { recursive: true, force: true });
  }

  // The profiler's HTML: flamegraph.html for 0x, <tool>.html for Clinic.js, beside the reports.
  const html = findHtml(rawDir);
  if (html.length) {
    const target = path.join(reportDir, o.tool === '0x' ? 'flamegraph.html' : `${o.tool}.html`);
    copyFileSync(html.find((h) => h.endsWith('flamegraph.html')) ?? (html[0] as string), target);
    files.html = target;
    if (statSync(target).size === 0) errors.push(`${target} is empty`);
  } else errors.push(`${o.tool} wrote no HTML (see ${files.profilerLog ?? 'its log'})`);

  const command = `npm run profile -- ${process.argv.slice(2).join(' ')}`.trim();
  const meta = { tool: o.tool + (o.kernel ? ' --kernel' : ''), command, started: started.toISOString(), load: loadAverage().toFixed(2), binding: o.binding };
  const json = {
    schema: 'svault-profile/1',
    ...meta,
    finishedAt: new Date().toISOString(),
    options: { quick: o.quick, workloads: o.workloads, size: o.size, tool: o.tool, binding: o.binding, kernel: o.kernel },
    floorOfBinding: FLOOR_OF[o.binding],
    kernel: kernelNote || null,
    tolerancePct: TOLERANCE_PCT,
    parts: PART_LABELS,
    overhead: overheads,
    timedPhases: Object.fromEntries(Object.entries(results).map(([w, r]) => [w, { svault: r.svault?.targets.svault?.figures, native: r.others?.targets.native?.figures, floor: r.others?.targets.floor?.figures, 'floor-devfuse': r.others?.targets['floor-devfuse']?.figures }])),
    files,
    errors,
    ok: errors.length === 0 && overheads.length === o.workloads.length && overheads.every((r) => r.check.ok),
  };
  files.overheadJson = path.join(reportDir, 'overhead.json');
  files.overheadMd = path.join(reportDir, 'overhead.md');
  writeFileSync(files.overheadJson, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(files.overheadMd, renderOverhead(overheads, meta) + (kernelNote ? `\n${kernelNote}\n` : '') + (errors.length ? `\n## Errors\n\n${errors.map((e) => `- ${e}`).join('\n')}\n` : ''));
  process.stdout.write(summary(o, reportDir, files, overheads, errors));
  return json.ok ? 0 : 1;
}

function summary(o: Options, dir: string, files: Record<string, string>, rows: Overhead[], errors: string[]): string {
  const rel = (f: string) => path.relative(process.cwd(), f) || f;
  const l: string[] = [];
  l.push('', `svault profile (${o.tool}${o.kernel ? ' --kernel' : ''}${o.quick ? ', quick' : ''}, svault on ${o.binding}): ${rel(dir)}/`);
  if (files.html) l.push(`  profiler HTML   ${rel(files.html)}`);
  l.push(`  overhead report ${rel(files.overheadMd ?? '')}`, `  overhead data   ${rel(files.overheadJson ?? '')}`);
  if (files.profilerLog) l.push(`  profiler log    ${rel(files.profilerLog)}`);
  for (const r of rows) {
    l.push('', `  ${r.workload}: wall ${(r.wallMs / 1000).toFixed(2)} s (event loop active ${(r.activeMs / 1000).toFixed(2)} s, idle ${(r.idleMs / 1000).toFixed(2)} s)`);
    l.push('    ' + PART_NAMES.map((p) => `${p} ${((r.parts[p] / Math.max(1, r.wallMs)) * 100).toFixed(1)}%`).join(', '));
    l.push(`    parts sum to ${(r.check.sumMs / 1000).toFixed(2)} s: ${r.check.diffPct >= 0 ? '+' : ''}${r.check.diffPct.toFixed(1)}% of wall (tolerance ${r.check.tolerancePct}%) ${r.check.ok ? 'ok' : 'FAIL'}`);
    const km = r.kernelModule;
    l.push(`    FUSE round trips (${km.floorTarget} − native): ${km.fuseShare === null ? 'n/a' : `${(km.fuseShare * 100).toFixed(1)}% of svault's timed wall, ${km.speedupBound === null ? 'no bound (the floor is slower than svault here; see overhead.md)' : `a kernel module could give at most ${km.speedupBound.toFixed(2)}×`}`}`);
    const side = (b: BindingName) => {
      const t = r.transports[b];
      return `${b} ${t.roundTripsS === null ? 'n/a' : `${t.roundTripsS.toFixed(3)} s (${t.share === null ? 'n/a' : `${(t.share * 100).toFixed(1)}%`}, bound ${t.speedupBound === null ? '–' : `${t.speedupBound.toFixed(2)}×`})`}`;
    };
    l.push(`    round trips by transport: ${TRANSPORTS.map(side).join(', ')}`);
  }
  if (errors.length) l.push('', '  errors:', ...errors.map((e) => `    - ${e}`));
  l.push('');
  return l.join('\n') + '\n';
}

// ---------------------------------------------------------------------------
// counting cost

interface CostRow {
  phase: string;
  on: number[];
  off: number[];
}

async function countingCost(o: Options, progress: Progress): Promise<number> {
  const started = new Date();
  const reportDir = path.join(o.out, `profile-${stamp(started)}-counting-cost`);
  mkdirSync(reportDir, { recursive: true });
  const errors: string[] = [];
  const s = await openSession(o, progress);
  const rounds = o.quick ? 1 : 3;
  const rows = new Map<string, CostRow>();
  // The server's CPU seconds per workload (from /proc): far less sensitive to other load than wall time.
  const cpu = { on: [] as number[], off: [] as number[] };
  let calls = 0;
  let wallOnMs = 0;
  const targets: Target[] = [];
  try {
    const onBase = path.join(s.dataDir, 'on');
    const offBase = path.join(s.dataDir, 'off');
    const onMnt = path.join(s.mntBase, 'on');
    const offMnt = path.join(s.mntBase, 'off');
    for (const d of [onBase, offBase, onMnt, offMnt]) mkdirSync(d, { recursive: true });
    delete process.env.SVAULT_NO_STATS;
    const on = await svaultTarget(onBase, onMnt, { root: ROOT, pieceSize: 131072, chaff: 0.1 }, s.cleanup);
    targets.push(on);
    process.env.SVAULT_NO_STATS = '1';
    let off: Target;
    try {
      off = await svaultTarget(offBase, offMnt, { root: ROOT, pieceSize: 131072, chaff: 0.1 }, s.cleanup);
    } finally {
      delete process.env.SVAULT_NO_STATS;
    }
    targets.push(off);
    const offOps = await off.opStats?.();
    if (offOps && offOps.some((x) => x.calls > 0)) errors.push('the SVAULT_NO_STATS=1 mount counts operations: it did not get the variable');
    const opts = benchOptions({ ...o, workloads: ['dd', 'cp'], size: o.quick ? 16 * MiB : 256 * MiB }, s.ballast.fullBytes);
    opts.ddBytes = o.quick ? 16 * MiB : 512 * MiB;
    const ctx = (t: Target): Ctx => ({ opts, root: ROOT, targets: [t], work: s.work, ballast: s.ballast, dropper: s.dropper, progress });
    const add = (res: WorkloadResult, which: 'on' | 'off') => {
      const f = res.targets.svault?.figures ?? {};
      if (res.targets.svault?.error) throw new Error(`${res.name} (${which}): ${res.targets.svault.error}`);
      const c = res.targets.svault?.process?.cpuSeconds;
      if (typeof c === 'number') cpu[which].push(c);
      for (const [k, fig] of Object.entries(f)) {
        let r = rows.get(k);
        if (!r) rows.set(k, (r = { phase: fig.label, on: [], off: [] }));
        r[which].push(fig.time.median);
      }
    };
    progress.setTotal(rounds * 2 * (stepsOf('dd', opts, 1) + stepsOf('cp', opts, 1)));
    await s.dropper.drop();
    for (let round = 0; round < rounds; round++) {
      // Alternating order, so that drift of the machine falls on both alike.
      const order = round % 2 === 0 ? ([['on', on], ['off', off]] as const) : ([['off', off], ['on', on]] as const);
      for (const w of ['dd', 'cp'] as const) {
        for (const [which, t] of order) {
          progress.note(`counting cost: round ${round + 1}/${rounds}, ${w}, counters ${which}`);
          const ops0 = which === 'on' ? await t.opStats?.() : null;
          const t0 = performance.now();
          add(await WORKLOADS[w](ctx(t)), which);
          if (which === 'on') {
            wallOnMs += performance.now() - t0;
            const ops1 = await t.opStats?.();
            if (ops0 && ops1) calls += ops1.reduce((a, x) => a + x.calls, 0) - ops0.reduce((a, x) => a + x.calls, 0);
          }
        }
      }
    }
  } catch (err) {
    errors.push(errorMessage(err));
    progress.note(`error: ${errorMessage(err)}`);
  } finally {
    for (const t of targets.reverse()) await t.stop().catch((e: unknown) => errors.push(`stopping: ${errorMessage(e)}`));
    const left = await closeSession(s);
    if (left.length) errors.push(`still mounted after the run: ${left.join(', ')}`);
  }
  // The direct cost: one record() per counted call, measured here.
  const st = new OpStats(true);
  const N = 200_000;
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) st.record(i & 1 ? 'fuse.write' : 'store.put', process.hrtime.bigint(), 131072);
  const nsPerRecord = Number(process.hrtime.bigint() - t) / N;

  const median = (v: number[]) => {
    const s2 = [...v].sort((a, b) => a - b);
    const m = Math.floor(s2.length / 2);
    return s2.length % 2 ? (s2[m] as number) : ((s2[m - 1] as number) + (s2[m] as number)) / 2;
  };
  const table = [...rows.values()].map((r) => {
    const on = median(r.on);
    const off = median(r.off);
    return { phase: r.phase, onS: on, offS: off, diffPct: off > 0 ? ((on - off) / off) * 100 : 0, onSamples: r.on, offSamples: r.off };
  });
  const totOn = table.reduce((a, r) => a + r.onS, 0);
  const totOff = table.reduce((a, r) => a + r.offS, 0);
  const totalPct = totOff > 0 ? ((totOn - totOff) / totOff) * 100 : 0;
  // Against the timed phases of the counted runs (all rounds), not the harness's time around them.
  const minOn = table.reduce((a, r) => a + Math.min(...r.onSamples), 0);
  const minOff = table.reduce((a, r) => a + Math.min(...r.offSamples), 0);
  const minPct = minOff > 0 ? ((minOn - minOff) / minOff) * 100 : 0;
  const cpuOn = cpu.on.reduce((a, b) => a + b, 0);
  const cpuOff = cpu.off.reduce((a, b) => a + b, 0);
  const cpuPct = cpuOff > 0 && cpu.on.length === cpu.off.length ? ((cpuOn - cpuOff) / cpuOff) * 100 : null;
  const timedOnMs = table.reduce((a, r) => a + r.onSamples.reduce((x, y) => x + y, 0), 0) * 1000;
  const direct = timedOnMs > 0 ? ((calls * nsPerRecord) / 1e6 / timedOnMs) * 100 : null;
  const json = { schema: 'svault-counting-cost/1', started: started.toISOString(), rounds, table, total: { onS: totOn, offS: totOff, diffPct: totalPct }, bestOf: { onS: minOn, offS: minOff, diffPct: minPct }, serverCpu: { onS: cpuOn, offS: cpuOff, diffPct: cpuPct }, direct: { countedCalls: calls, nsPerRecord, timedOnMs, wallOnMs, pctOfTimed: direct }, targetPct: 2, errors };
  const md = [
    '# Cost of svault\'s op counters',
    '',
    `Run ${started.toISOString()}, ${rounds} round(s), order alternating; two mounts in the same run: counters on, and SVAULT_NO_STATS=1. Medians.`,
    '',
    '| phase | counters on s | SVAULT_NO_STATS=1 s | difference | samples on / off |',
    '|---|---:|---:|---:|---|',
    ...table.map((r) => `| ${r.phase} | ${r.onS.toFixed(3)} | ${r.offS.toFixed(3)} | ${r.diffPct >= 0 ? '+' : ''}${r.diffPct.toFixed(1)}% | ${r.onSamples.map((v) => v.toFixed(2)).join(', ')} / ${r.offSamples.map((v) => v.toFixed(2)).join(', ')} |`),
    `| **total** | ${totOn.toFixed(3)} | ${totOff.toFixed(3)} | **${totalPct >= 0 ? '+' : ''}${totalPct.toFixed(1)}%** | |`,
    `| best of each (min) | ${minOn.toFixed(3)} | ${minOff.toFixed(3)} | ${minPct >= 0 ? '+' : ''}${minPct.toFixed(1)}% | |`,
    `| server CPU, all rounds | ${cpuOn.toFixed(2)} | ${cpuOff.toFixed(2)} | ${cpuPct === null ? 'n/a' : `${cpuPct >= 0 ? '+' : ''}${cpuPct.toFixed(1)}%`} | |`,
    '',
    `Direct estimate: ${calls} counted calls × ${nsPerRecord.toFixed(0)} ns per record() = ${((calls * nsPerRecord) / 1e6).toFixed(1)} ms over ${(timedOnMs / 1000).toFixed(1)} s of timed phases with counters on (all rounds): ${direct === null ? 'n/a' : `${direct.toFixed(3)}%`} (target < 2%).`,
    'Wall times on this VM vary by ±30% between runs (see the samples), far more than the effect; the server\'s CPU time and the direct estimate are the tighter figures.',
    ...(errors.length ? ['', '## Errors', '', ...errors.map((e) => `- ${e}`)] : []),
    '',
  ].join('\n');
  writeFileSync(path.join(reportDir, 'counting-cost.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(path.join(reportDir, 'counting-cost.md'), md);
  process.stdout.write(`\n${md}\nWritten: ${path.relative(process.cwd(), reportDir)}/counting-cost.md and counting-cost.json\n`);
  return errors.length ? 1 : 0;
}

export async function main(argv: string[]): Promise<number> {
  return withOptions(argv, USAGE, parseArgs, profileCommand);
}

async function profileCommand(o: Options): Promise<number> {
  ensureBuilt();
  ensureFusermountOnPath();
  const progress = new Progress(0);
  if (!o.quick) progress.note(`profiling ${o.workloads.join(', ')} (cp of ${humanBytes(o.size)})`);
  return o.countingCost ? countingCost(o, progress) : profile(o, progress);
}

runIfMain(import.meta.url, main);
