// svault's benchmark harness: every workload on svault, on the plain backing directory (native), on a
// minimal Node pass-through (the Node-FUSE floor) over fuse-native and over svault's own transport, and on
// gocryptfs and securefs when installed, in one run.
// Writes reports/bench-<timestamp>.{json,md} and two SVG charts. See bench/README.md.
//
//   npm run bench -- [--quick] [--sizes 1K,1M,64M,1G] [--only cp,dd,small,tree,stream4g,build,sparse] [--out DIR] ...
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { C_PROJECT_NAMES, type CProjectName } from '../fixtures/c-project.js';
import { DEFAULT_TREE } from '../fixtures/tree.js';
import { ensureFusermountOnPath } from '../fs/fuse-binding.js';
import { Progress } from './lib/progress.js';
import { renderMarkdown, SCHEMA, summarize, summaryLines, type BenchReport, type TargetEntry } from './lib/report.js';
import { rssSvg, throughputSvg } from './lib/svg.js';
import { Ballast, CacheDropper, machineInfo, memoryPlan, mountBacking, mountsUnder, unmountBacking, unmountBackingSync, versions } from './lib/system.js';
import { CleanupRegistry, GOCRYPTFS, floorDevfuseTarget, floorTarget, gocryptfsAvailable, gocryptfsTarget, nativeTarget, SECUREFS, securefsAvailable, securefsTarget, svaultTarget, TARGET_LABELS, TARGET_NAMES, type PeerName, type Target, type TargetName } from './lib/targets.js';
import { eachFlag, loadSummary, ROOT, runIfMain, runTimes, stamp, withOptions } from './lib/command.js';
import { closeDevNull, errorMessage, formatDuration, GiB, humanBytes, KiB, MiB, parseSize, sizeLabel } from './lib/util.js';
import { buildProjectOf, DEFAULT_WORKLOADS, diffOps, loadAverage, stepsOf, WORKLOAD_NAMES, WORKLOADS, type BenchOptions, type WorkloadName, type WorkloadResult } from './lib/workloads.js';

export { ROOT };

export const USAGE = `Usage: npm run bench -- [options]

Runs every workload on svault, native (the backing tmpfs, no FUSE), the Node-FUSE floor over
fuse-native (floor: bench/passthrough-fs.ts) and over svault's own transport (floor-devfuse:
bench/passthrough-devfuse.ts), gocryptfs and securefs (each if installed), and writes
reports/bench-<timestamp>.json, .md, -throughput.svg and -rss.svg. Needs root (tmpfs, drop_caches,
/dev/fuse).

Options:
  --quick               tiny sizes and one repeat: finishes in seconds (for tests)
  --sizes LIST          cp file sizes (default 1K,1M,64M,1G; quick 1K,1M)
  --only LIST           workloads to run: ${WORKLOAD_NAMES.join(', ')} (default: all but build and sparse)
  --targets LIST        targets: ${TARGET_NAMES.join(', ')} (default: all; gocryptfs, securefs only if installed)
  --repeats N           repeats of each measured phase (default 3; quick 1); figures are medians
  --stream-repeats N    repeats of the long stream (default 1)
  --stream-size SIZE    the long stream behind the 1 TB row (default 4G; at least 4G for a valid row)
  --dd-size SIZE        the dd stream (default 512M)
  --small LIST          small-file sets COUNTxSIZE (default 1000x1K,100x1M)
  --tree-files N        files in the generated source tree (default 10000)
  --tree-dirs N         directories in it (default 150)
  --tree-seed N         its PRNG seed (default ${DEFAULT_TREE.seed})
  --build-project NAME  the C project of the build workload: ${C_PROJECT_NAMES.join(', ')} (default gzip; quick hello)
  --piece-size N        svault init --piece-size (default 131072)
  --chaff R             svault init --chaff (default 0.1)
  --ballast SIZE        tmpfs ballast (default min(8G, 30% of RAM); 0 turns it off)
  --tmpfs-size SIZE     size of the tmpfs for the backing stores (default 75% of RAM)
  --timeout SECONDS     base timeout of each external command (default 600; quick 60)
  --out DIR             where the reports go (default reports/)
  --no-cache-drop       do not drop the page caches before read phases (the machine's caches are
                        shared: the test suite uses it so as not to empty other tests'; the report says so)
  --help
`;

class UsageError extends Error {}

export function parseArgs(argv: string[]): BenchOptions & { help: boolean } {
  const quick = argv.includes('--quick');
  const o: BenchOptions & { help: boolean } = {
    help: false,
    quick,
    sizes: quick ? [KiB, MiB] : [KiB, MiB, 64 * MiB, GiB],
    only: [...DEFAULT_WORKLOADS],
    targets: [...TARGET_NAMES],
    repeats: quick ? 1 : 3,
    streamRepeats: 1,
    pieceSize: 131072,
    chaff: 0.1,
    ddBytes: quick ? 8 * MiB : 512 * MiB,
    streamBytes: quick ? 32 * MiB : 4 * GiB,
    small: quick ? [{ count: 50, size: KiB }, { count: 5, size: MiB }] : [{ count: 1000, size: KiB }, { count: 100, size: MiB }],
    tree: quick ? { ...DEFAULT_TREE, files: 200, dirs: 10 } : { ...DEFAULT_TREE },
    ballastBytes: null,
    tmpfsBytes: null,
    out: path.join(ROOT, 'reports'),
    timeoutMs: quick ? 60_000 : 600_000,
  };
  const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const int = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs an integer >= ${min}, not ${v}`);
    return n;
  };
  eachFlag(argv, (flag, takeValue, a) => {
    if (a === '--quick') return;
    if (a === '--no-cache-drop') {
      o.noCacheDrop = true;
      return;
    }
    if (a === '--help' || a === '-h') {
      o.help = true;
      return;
    }
    switch (flag) {
      case '--sizes':
        o.sizes = [...new Set(list(takeValue()).map(parseSize))].sort((x, y) => x - y);
        break;
      case '--only': {
        const names = list(takeValue());
        for (const n of names) if (!(WORKLOAD_NAMES as readonly string[]).includes(n)) throw new UsageError(`unknown workload ${n}; one of ${WORKLOAD_NAMES.join(', ')}`);
        o.only = WORKLOAD_NAMES.filter((w) => names.includes(w));
        break;
      }
      case '--targets': {
        const names = list(takeValue());
        for (const n of names) if (!(TARGET_NAMES as readonly string[]).includes(n)) throw new UsageError(`unknown target ${n}; one of ${TARGET_NAMES.join(', ')}`);
        o.targets = TARGET_NAMES.filter((t) => names.includes(t));
        break;
      }
      case '--repeats':
        o.repeats = int(flag, takeValue(), 1);
        break;
      case '--stream-repeats':
        o.streamRepeats = int(flag, takeValue(), 1);
        break;
      case '--stream-size':
        o.streamBytes = parseSize(takeValue());
        break;
      case '--dd-size':
        o.ddBytes = parseSize(takeValue());
        break;
      case '--small':
        o.small = list(takeValue()).map((s) => {
          const m = /^(\d+)x(.+)$/.exec(s);
          if (!m) throw new UsageError(`--small wants COUNTxSIZE, e.g. 1000x1K, not ${s}`);
          const size = parseSize(m[2] as string);
          if (size % 4) throw new UsageError('small-file sizes must be multiples of 4 bytes');
          return { count: int('--small', m[1] as string, 1), size };
        });
        break;
      case '--tree-files':
        o.tree = { ...o.tree, files: int(flag, takeValue(), 1) };
        break;
      case '--tree-dirs':
        o.tree = { ...o.tree, dirs: int(flag, takeValue(), 1) };
        break;
      case '--tree-seed':
        o.tree = { ...o.tree, seed: int(flag, takeValue(), 0) };
        break;
      case '--build-project': {
        const v = takeValue();
        if (!(C_PROJECT_NAMES as string[]).includes(v)) throw new UsageError(`--build-project is one of ${C_PROJECT_NAMES.join(', ')}, not ${v}`);
        o.buildProject = v as CProjectName;
        break;
      }
      case '--piece-size':
        o.pieceSize = int(flag, takeValue(), 1);
        break;
      case '--chaff': {
        const v = Number(takeValue());
        if (!Number.isFinite(v) || v < 0) throw new UsageError('--chaff needs a ratio >= 0');
        o.chaff = v;
        break;
      }
      case '--ballast': {
        const v = takeValue();
        o.ballastBytes = v === '0' ? 0 : parseSize(v);
        break;
      }
      case '--tmpfs-size':
        o.tmpfsBytes = parseSize(takeValue());
        break;
      case '--timeout':
        o.timeoutMs = int(flag, takeValue(), 1) * 1000;
        break;
      case '--out':
        o.out = path.resolve(takeValue());
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  });
  return o;
}

/** Rebuilds dist/ if any TypeScript source is newer than the compiled files the bench runs. */
function ensureBuilt(progress: Progress): string {
  const newest = (dir: string): number => {
    let t = 0;
    if (!existsSync(dir)) return t;
    for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile() && e.name.endsWith('.ts')) t = Math.max(t, statSync(path.join(e.parentPath, e.name)).mtimeMs);
    }
    return t;
  };
  const sources = Math.max(...['src', 'fs', 'bench', 'fixtures'].map((d) => newest(path.join(ROOT, d))));
  const outputs = ['dist/src/cli/cli.js', 'dist/bench/passthrough-fs.js', 'dist/bench/passthrough-devfuse.js', 'dist/bench/small-files.js'].map((f) => path.join(ROOT, f));
  const oldest = Math.min(...outputs.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  if (oldest >= sources) return 'dist/ up to date';
  progress.note('dist/ is older than the sources: building (tsc -p tsconfig.build.json)');
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? '';
    throw new Error(`the build failed, so the bench would measure stale code:\n${out.slice(0, 4000)}`, { cause: err });
  }
  return 'rebuilt dist/ before the run';
}

export async function main(argv: string[]): Promise<number> {
  return withOptions(argv, USAGE, parseArgs, (opts) => bench(opts, argv));
}

async function bench(opts: ReturnType<typeof parseArgs>, argv: string[]): Promise<number> {
  const started = new Date();
  const progress = new Progress(0);
  // Other work on the machine skews every figure: sample the load average through the run.
  const loads = [loadAverage()];
  const loadTimer = setInterval(() => loads.push(loadAverage()), 10_000);
  loadTimer.unref();
  const build = ensureBuilt(progress);
  ensureFusermountOnPath(); // gocryptfs and securefs need a fusermount too

  const machine = machineInfo();
  const plan = memoryPlan(machine.memTotalBytes, opts.quick);
  const tmpfsBytes = opts.tmpfsBytes ?? plan.tmpfsBytes;
  const ballastBytes = opts.ballastBytes ?? plan.ballastBytes;
  const cleanup = new CleanupRegistry();
  const base = mkdtempSync(path.join(os.tmpdir(), 'svault-bench-'));
  const tmpfsDir = path.join(base, 'tmpfs');
  const mntBase = path.join(base, 'mnt');
  mkdirSync(tmpfsDir);
  mkdirSync(mntBase);

  const removeBase = () => {
    if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
    else process.stderr.write(`still mounted, not removing ${base}: ${mountsUnder(base).join(', ')}\n`);
  };
  const emergency = () => {
    cleanup.runAll();
    try {
      removeBase();
    } catch {
      /* best effort */
    }
  };
  process.on('exit', emergency);
  const onSignal = (sig: NodeJS.Signals) => {
    progress.finish(`\n${sig}: unmounting everything and stopping`);
    emergency();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const errors: string[] = [];
  const dropper = new CacheDropper(!opts.noCacheDrop);
  const targetEntries = Object.fromEntries(TARGET_NAMES.map((t) => [t, { present: false, label: TARGET_LABELS[t], skipped: 'not selected (--targets)' } as TargetEntry])) as Record<TargetName, TargetEntry>;
  const workloads: Partial<Record<WorkloadName, WorkloadResult>> = {};
  const targets: Target[] = [];
  let backing: Awaited<ReturnType<typeof mountBacking>> = { dir: tmpfsDir, kind: 'disk', sizeBytes: null };
  const vers = await versions(ROOT, GOCRYPTFS(), SECUREFS());

  try {
    backing = await mountBacking(tmpfsDir, tmpfsBytes);
    if (backing.kind === 'tmpfs') cleanup.add('tmpfs', () => unmountBackingSync(backing));
    else progress.note(`warning: ${backing.note}`);
    const ballast = new Ballast(tmpfsDir, backing.kind === 'tmpfs' ? ballastBytes : 0);
    if (ballast.fullBytes > 0) progress.note(`writing a ${humanBytes(ballast.fullBytes)} ballast on the tmpfs`);
    ballast.fill();
    const work = path.join(tmpfsDir, 'work');
    mkdirSync(work);
    const dataDir = path.join(tmpfsDir, 'data');
    mkdirSync(dataDir);

    for (const name of opts.targets) {
      progress.note(`setting up ${TARGET_LABELS[name]}`);
      try {
        let t: Target;
        if (name === 'svault') t = await svaultTarget(dataDir, mntBase, { root: ROOT, pieceSize: opts.pieceSize, chaff: opts.chaff }, cleanup);
        else if (name === 'native') t = nativeTarget(dataDir);
        else if (name === 'floor') t = await floorTarget(dataDir, mntBase, ROOT, cleanup);
        else if (name === 'floor-devfuse') t = await floorDevfuseTarget(dataDir, mntBase, ROOT, cleanup);
        else {
          const peer: PeerName = name;
          const where = await (peer === 'gocryptfs' ? gocryptfsAvailable() : securefsAvailable());
          if (!where) {
            targetEntries[peer] = { present: false, label: TARGET_LABELS[peer], skipped: `${peer} is not installed (apt-get install ${peer})` };
            progress.note(`${peer} is not installed: skipping it (apt-get install ${peer} to include it)`);
            continue;
          }
          t = await (peer === 'gocryptfs' ? gocryptfsTarget : securefsTarget)(dataDir, mntBase, cleanup);
        }
        targets.push(t);
        targetEntries[name] = { present: true, label: TARGET_LABELS[name], info: { ...t.info, ...(t.pid !== null ? { pid: t.pid } : {}) } };
      } catch (err) {
        const msg = `${TARGET_LABELS[name]} could not be set up: ${errorMessage(err)}`;
        targetEntries[name] = { present: false, label: TARGET_LABELS[name], skipped: msg };
        errors.push(msg);
        progress.note(msg);
      }
    }
    if (targets.length === 0) throw new Error('no target could be set up');

    progress.setTotal(opts.only.reduce((a, w) => a + stepsOf(w, opts, targets.length), 0));
    await dropper.init(['cp', 'dd', 'ls', 'find', 'cat', 'tar', 'rm', 'sh', 'sync', 'python3'], [
      process.execPath,
      path.join(ROOT, 'dist', 'bench', 'small-files.js'),
      '/etc/passwd',
      '/etc/group',
      '/etc/nsswitch.conf',
      '/etc/localtime',
    ]);
    // A first drop, so that setting up does not leave the first read phase with a warm cache.
    await dropper.drop();
    const ctx = { opts, root: ROOT, targets, work, ballast, dropper, progress };
    for (const w of opts.only) {
      progress.note(`workload ${w}`);
      try {
        const sv = targets.find((t) => t.name === 'svault');
        const ops0 = await sv?.opStats?.();
        workloads[w] = await WORKLOADS[w](ctx);
        const ops1 = await sv?.opStats?.();
        if (ops0 && ops1) (workloads[w] as WorkloadResult).svaultOps = diffOps(ops0, ops1);
      } catch (err) {
        errors.push(`workload ${w} failed: ${errorMessage(err)}`);
        progress.note(`workload ${w} failed: ${errorMessage(err)}`);
        ballast.fill();
      }
      for (const [t, r] of Object.entries(workloads[w]?.targets ?? {})) if (r?.error) errors.push(`${w} on ${t}: ${r.error}`);
    }
  } catch (err) {
    errors.push(errorMessage(err));
    progress.note(`error: ${errorMessage(err)}`);
  } finally {
    progress.note('stopping the targets');
    for (const t of [...targets].reverse()) {
      try {
        await t.stop();
      } catch (err) {
        errors.push(`stopping ${t.name}: ${errorMessage(err)}`);
      }
    }
    await unmountBacking(backing);
    cleanup.runAll();
    removeBase();
    closeDevNull();
  }
  clearInterval(loadTimer);
  loads.push(loadAverage());
  const left = mountsUnder(base);
  if (left.length) errors.push(`still mounted after the run: ${left.join(', ')}`);

  const finished = new Date();
  const ts = stamp(started);
  mkdirSync(opts.out, { recursive: true });
  const names = { json: `bench-${ts}.json`, markdown: `bench-${ts}.md`, throughputSvg: `bench-${ts}-throughput.svg`, rssSvg: `bench-${ts}-rss.svg` };
  const partial: Omit<BenchReport, 'summary'> = {
    schema: SCHEMA,
    ...runTimes(started, finished, ['bench/run.ts', ...argv]),
    machine,
    versions: vers,
    options: {
      quick: opts.quick,
      sizes: opts.sizes.map(sizeLabel),
      only: opts.only,
      targets: opts.targets,
      repeats: opts.repeats,
      streamRepeats: opts.streamRepeats,
      pieceSize: opts.pieceSize,
      chaff: opts.chaff,
      ddBytes: opts.ddBytes,
      streamBytes: opts.streamBytes,
      small: opts.small,
      tree: opts.tree,
      ...(opts.only.includes('build') ? { buildProject: buildProjectOf(opts) } : {}),
    },
    environment: { workDir: base, backing: { kind: backing.kind, sizeBytes: backing.sizeBytes, ...(backing.note ? { note: backing.note } : {}) }, ballastBytes: backing.kind === 'tmpfs' ? ballastBytes : 0, cacheDrops: dropper.log, build, load: loadSummary(loads) },
    targets: targetEntries,
    workloads,
    files: names,
    ok: false,
    errors,
  };
  const report: BenchReport = { ...partial, summary: summarize(partial) };
  report.ok = errors.length === 0 && Boolean(report.targets.svault?.present || !opts.targets.includes('svault'));
  writeFileSync(path.join(opts.out, names.json), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(path.join(opts.out, names.markdown), renderMarkdown(report));
  writeFileSync(path.join(opts.out, names.throughputSvg), throughputSvg(report));
  writeFileSync(path.join(opts.out, names.rssSvg), rssSvg(report));
  progress.finish(`done in ${formatDuration(report.seconds)}: ${path.join(opts.out, names.markdown)}${report.ok ? '' : ` (with errors: ${errors.join('; ')})`}`);
  // The figures a goal is set on, in a few lines (today: the build workload's phases).
  for (const line of summaryLines(report)) process.stderr.write(`${line}\n`);
  process.stdout.write(`${path.join(opts.out, names.json)}\n`);
  return report.ok ? 0 : 1;
}

runIfMain(import.meta.url, main);

