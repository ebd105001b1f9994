// npm run bench:check: runs the bench afresh with the baseline's options (or takes --report FILE) and
// compares it with reports/baseline.json. Absolute times on a shared VM are noise, so the comparison is
// of ratios from one run: svault's time over the Node-FUSE floor's, and over native's, per figure.
//
// A figure regresses when svault's ratio to the floor AND its ratio to native both grew by more than
// the tolerance (default 35 %) over the baseline's, and svault's own time grew by more than half the
// tolerance. A real slowdown of svault moves all three; a noisy reference moves one ratio, and references
// that merely ran in a quieter moment move the ratios but not svault's time. (--strict: either ratio.) Per workload, the server CPU seconds of svault
// over the floor's regress past the same tolerance. A failed target or integrity check fails too.
//
// Memory is checked against a fixed goal, not against the baseline: the mount's peak RSS in each workload
// of single files (cp, dd, the 4 GiB stream and the small files) must stay under 200 MiB. The RSS hardly
// depends on the machine's load, so an absolute limit holds from run to run. --peak-rss-mib 0 leaves it out.
//
// The build workload (issue 21: a git clone, then configure and make) is held to goals of its own, from the
// fresh run alone: svault's time for both phases at most 1.2× native's and at most gocryptfs's (a goal whose
// reference is not in the run is "not measured"). `--only build` adds gocryptfs to the targets unless
// --targets is given.
//
//   npm run bench:check -- [--baseline FILE] [--report FILE] [--tolerance 0.35] [--strict] [--peak-rss-mib 200] [bench options]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSummary, computeRatios, fmtMiB, fmtRatio, SCHEMA, type BenchReport, type BuildGoal, type Ratios } from './lib/report.js';
import type { WorkloadName, WorkloadResult } from './lib/workloads.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.basename(path.dirname(HERE)) === 'dist' ? path.resolve(HERE, '..', '..') : path.resolve(HERE, '..');

export const DEFAULT_TOLERANCE = 0.35;
/** The memory goal: the mount's peak RSS stays under this from 64 MiB files to 4 GiB. */
export const DEFAULT_PEAK_RSS_MIB = 200;
/** The workloads of single files that the memory goal is about (the tree is 10,000 small files at once). */
export const MEMORY_GOAL_WORKLOADS: readonly WorkloadName[] = ['cp', 'dd', 'stream4g', 'small'];

export interface Verdict {
  workload: WorkloadName;
  figure: string;
  label: string;
  base: Ratios;
  fresh: Ratios;
  /** Relative change of the ratio to floor and to native, and of svault's own time (0.1 = 10 % worse). */
  change: { floor?: number; native?: number; own?: number };
  status: 'ok' | 'regressed' | 'improved' | 'no reference';
}

/** One workload's peak RSS against the memory goal. */
export interface MemoryVerdict {
  workload: WorkloadName;
  peakRssBytes: number;
  withinGoal: boolean;
}

export interface CheckResult {
  verdicts: Verdict[];
  memory: MemoryVerdict[];
  /** The limit the memory verdicts used, in MiB; 0 when memory was not checked. */
  peakRssMib: number;
  /** The build workload's goals on both phases (issue 21), from the fresh run; empty when it did not run. */
  build: BuildGoal[];
  failures: string[];
  passed: boolean;
}

export function loadReport(file: string): BenchReport {
  const r = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  if (r.schema !== SCHEMA) throw new Error(`${file} is not a ${SCHEMA} report (schema ${String(r.schema)})`);
  return r;
}

export function compare(base: BenchReport, fresh: BenchReport, tolerance = DEFAULT_TOLERANCE, strict = false, peakRssMib = DEFAULT_PEAK_RSS_MIB): CheckResult {
  const failures: string[] = [];
  if (!fresh.ok) failures.push(`the fresh run reported errors: ${fresh.errors.join('; ') || 'see its report'}`);
  if (!fresh.targets.svault?.present) failures.push('svault was not measured in the fresh run');
  const br = computeRatios(base);
  const fr = computeRatios(fresh);
  const verdicts: Verdict[] = [];
  for (const [w, figs] of Object.entries(br) as Array<[WorkloadName, Record<string, Ratios>]>) {
    for (const [key, b] of Object.entries(figs)) {
      const f = fr[w]?.[key];
      if (!f) continue; // not in the fresh run (e.g. --only)
      const change: Verdict['change'] = {};
      for (const ref of ['floor', 'native'] as const) {
        const bv = b[ref];
        const fv = f[ref];
        if (bv !== undefined && fv !== undefined && bv > 0) change[ref] = fv / bv - 1;
      }
      // svault's own median time, run against run: a regression must show there too, or it is the
      // references that got faster (a quieter moment for them in a one-repeat phase, say).
      const bs = base.workloads[w]?.targets.svault?.figures[key]?.time.median;
      const fs = fresh.workloads[w]?.targets.svault?.figures[key]?.time.median;
      const own = bs && fs ? fs / bs - 1 : undefined;
      const changes = Object.values(change);
      let status: Verdict['status'];
      const ratiosWorse = strict ? changes.some((c) => c > tolerance) : changes.every((c) => c > tolerance);
      if (changes.length === 0) status = 'no reference';
      else if (ratiosWorse && (own === undefined || own > tolerance / 2)) status = 'regressed';
      else if (changes.every((c) => c < -tolerance)) status = 'improved';
      else status = 'ok';
      if (own !== undefined) change.own = own;
      const label = fresh.workloads[w]?.targets.svault?.figures[key]?.label ?? key;
      verdicts.push({ workload: w, figure: key, label, base: b, fresh: f, change, status });
    }
  }
  // Server CPU seconds per workload, svault's over the floor's: far less sensitive to other load on the
  // machine than wall-clock times, and it has only the floor to compare with (native has no server).
  for (const [w, bw] of Object.entries(base.workloads) as Array<[WorkloadName, WorkloadResult]>) {
    const fw = fresh.workloads[w];
    const b = cpuRatio(bw);
    const f = fw ? cpuRatio(fw) : undefined;
    if (b === undefined || f === undefined) continue;
    const c = f / b - 1;
    verdicts.push({
      workload: w,
      figure: 'server-cpu',
      label: 'server CPU seconds',
      base: { floor: b },
      fresh: { floor: f },
      change: { floor: c },
      status: c > tolerance ? 'regressed' : c < -tolerance ? 'improved' : 'ok',
    });
  }
  const build = buildSummary(fresh)?.goals ?? [];
  if (verdicts.length === 0 && build.length === 0) failures.push('no figure is in both the baseline and the fresh run');
  for (const v of verdicts) {
    if (v.status === 'regressed') failures.push(`${v.workload}/${v.figure} (${v.label}) regressed: ${describe(v)}`);
  }
  const memory = peakRssMib > 0 ? memoryVerdicts(fresh, peakRssMib) : [];
  for (const m of memory) {
    if (!m.withinGoal) failures.push(`${m.workload}: the mount's peak RSS was ${fmtMiB(m.peakRssBytes)}, not under ${peakRssMib} MiB`);
  }
  for (const g of build) {
    if (g.met === false) failures.push(`build: svault took ${fmtRatio(g.ratio ?? undefined)} ${g.against}'s time for both phases (git clone, configure and make), not ≤ ${g.limit}×`);
  }
  return { verdicts, memory, peakRssMib, build, failures, passed: failures.length === 0 };
}

function memoryVerdicts(fresh: BenchReport, peakRssMib: number): MemoryVerdict[] {
  const out: MemoryVerdict[] = [];
  for (const w of MEMORY_GOAL_WORKLOADS) {
    const peak = fresh.workloads[w]?.targets.svault?.process?.peakRssBytes;
    if (peak === undefined || peak === null) continue; // not in this run, or not sampled
    out.push({ workload: w, peakRssBytes: peak, withinGoal: peak < peakRssMib * 1024 * 1024 });
  }
  return out;
}

function cpuRatio(w: WorkloadResult): number | undefined {
  const sv = w.targets.svault?.process?.cpuSeconds;
  const fl = w.targets.floor?.process?.cpuSeconds;
  return sv && fl && fl >= 0.5 ? sv / fl : undefined; // under half a second of floor CPU is mostly noise
}

const pct = (x: number | undefined): string => (x === undefined ? '—' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)} %`);
const ratio = (x: number | undefined): string => (x === undefined ? '—' : `${x.toFixed(2)}×`);

function describe(v: Verdict): string {
  return `svault/floor ${ratio(v.base.floor)} -> ${ratio(v.fresh.floor)} (${pct(v.change.floor)}), svault/native ${ratio(v.base.native)} -> ${ratio(v.fresh.native)} (${pct(v.change.native)}), svault's time ${pct(v.change.own)}`;
}

export function renderCheck(r: CheckResult, tolerance: number, strict: boolean, baseFile: string, freshFile: string): string {
  const L: string[] = [];
  L.push(`Baseline ${baseFile}`);
  L.push(`Fresh    ${freshFile}`);
  L.push(`Rule: a figure regresses when svault/floor ${strict ? 'or' : 'and'} svault/native grew by more than ${(tolerance * 100).toFixed(0)} % over the baseline and svault's own time grew by more than ${((tolerance / 2) * 100).toFixed(0)} %; "server CPU seconds" rows compare svault's CPU over the floor's.`);
  L.push('');
  if (r.verdicts.length === 0) L.push('No figure is in both the baseline and the fresh run: nothing to compare with the baseline.');
  else {
    L.push('| Workload | Figure | svault/floor base → now | change | svault/native base → now | change | svault time | verdict |');
    L.push('|---|---|---|---|---|---|---|---|');
  }
  for (const v of r.verdicts) {
    L.push(`| ${v.workload} | ${v.label} | ${ratio(v.base.floor)} → ${ratio(v.fresh.floor)} | ${pct(v.change.floor)} | ${ratio(v.base.native)} → ${ratio(v.fresh.native)} | ${pct(v.change.native)} | ${pct(v.change.own)} | ${v.status === 'regressed' ? '**REGRESSED**' : v.status} |`);
  }
  if (r.memory.length > 0) {
    L.push('');
    L.push(`Memory goal: the mount's peak RSS under ${r.peakRssMib} MiB in each workload of single files.`);
    L.push('');
    L.push('| Workload | peak RSS | verdict |');
    L.push('|---|---|---|');
    for (const m of r.memory) L.push(`| ${m.workload} | ${fmtMiB(m.peakRssBytes)} | ${m.withinGoal ? 'ok' : '**OVER**'} |`);
  }
  if (r.build.length > 0) {
    L.push('');
    L.push('Build goals (issue 21), on both phases of the build workload (git clone, then configure and make), from the fresh run:');
    L.push('');
    L.push('| Goal | svault over it | verdict |');
    L.push('|---|---|---|');
    for (const g of r.build) L.push(`| svault ≤ ${g.limit}× ${g.against} | ${fmtRatio(g.ratio ?? undefined)} | ${g.met === null ? `not measured (no ${g.against} in the run)` : g.met ? 'met' : '**NOT MET**'} |`);
  }
  L.push('');
  if (r.passed) L.push(`PASS: no regression past the tolerance (${r.verdicts.length} figures compared)${r.memory.length > 0 ? `; peak RSS under ${r.peakRssMib} MiB in ${r.memory.length} workloads` : ''}${r.build.some((g) => g.met) ? `; build goals met: ${r.build.filter((g) => g.met).map((g) => `≤ ${g.limit}× ${g.against}`).join(', ')}` : ''}.`);
  else for (const f of r.failures) L.push(`FAIL: ${f}`);
  return L.join('\n') + '\n';
}

/** bench/run.ts arguments that reproduce the baseline's options (the user's own come after and win). */
export function argsFromBaseline(b: BenchReport): string[] {
  const o = b.options;
  const args = [
    ...(o.quick ? ['--quick'] : []),
    '--sizes', o.sizes.join(','),
    '--only', o.only.join(','),
    '--targets', 'svault,native,floor',
    '--repeats', String(o.repeats),
    '--stream-repeats', String(o.streamRepeats),
    '--stream-size', String(o.streamBytes),
    '--dd-size', String(o.ddBytes),
    '--small', o.small.map((s) => `${s.count}x${s.size}`).join(','),
    '--tree-files', String(o.tree.files),
    '--tree-dirs', String(o.tree.dirs),
    '--tree-seed', String(o.tree.seed),
    '--piece-size', String(o.pieceSize),
    '--chaff', String(o.chaff),
  ];
  return args;
}

function freshRun(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const runTs = path.join(ROOT, 'bench', 'run.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', runTs, ...args], { cwd: ROOT, stdio: ['inherit', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', () => {
      // Even a run with errors writes its report; the comparison then fails on report.ok.
      const json = out.trim().split('\n').filter((l) => l.endsWith('.json')).pop();
      if (json) resolve(json);
      else reject(new Error('the bench run wrote no report'));
    });
  });
}

export async function main(argv: string[]): Promise<number> {
  let baseline = path.join(ROOT, 'reports', 'baseline.json');
  let reportFile: string | undefined;
  let tolerance = DEFAULT_TOLERANCE;
  let strict = false;
  let peakRssMib = DEFAULT_PEAK_RSS_MIB;
  const passThrough: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--baseline') baseline = path.resolve(argv[++i] ?? '');
    else if (a === '--report') reportFile = path.resolve(argv[++i] ?? '');
    else if (a === '--tolerance') tolerance = Number(argv[++i]);
    else if (a === '--strict') strict = true;
    else if (a === '--peak-rss-mib') peakRssMib = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      process.stdout.write('Usage: npm run bench:check -- [--baseline FILE] [--report FILE] [--tolerance 0.35] [--strict] [--peak-rss-mib 200] [bench options such as --only small,tree]\n');
      return 0;
    } else passThrough.push(a);
  }
  if (!Number.isFinite(tolerance) || tolerance <= 0) {
    process.stderr.write('--tolerance needs a positive fraction, e.g. 0.35\n');
    return 2;
  }
  if (!Number.isFinite(peakRssMib) || peakRssMib < 0) {
    process.stderr.write('--peak-rss-mib needs a number of MiB, e.g. 200 (0: do not check memory)\n');
    return 2;
  }
  const base = loadReport(baseline);
  // The build goals compare with gocryptfs, which the baseline's targets leave out: add it for the build workload.
  const onlyAt = passThrough.lastIndexOf('--only');
  const only = onlyAt >= 0 ? (passThrough[onlyAt + 1] ?? '').split(',') : passThrough.find((a) => a.startsWith('--only='))?.slice(7).split(',') ?? base.options.only;
  if (only.includes('build') && !passThrough.some((a) => a === '--targets' || a.startsWith('--targets='))) passThrough.push('--targets', 'svault,native,floor,gocryptfs');
  if (!reportFile) {
    const hasOut = passThrough.some((a) => a === '--out' || a.startsWith('--out='));
    const out = hasOut ? [] : ['--out', mkdtempSync(path.join(os.tmpdir(), 'svault-bench-check-'))];
    process.stderr.write(`bench:check: a fresh run with the baseline's options${passThrough.length ? ` and ${passThrough.join(' ')}` : ''}\n`);
    reportFile = await freshRun([...argsFromBaseline(base), ...out, ...passThrough]);
  }
  const fresh = loadReport(reportFile);
  const result = compare(base, fresh, tolerance, strict, peakRssMib);
  process.stdout.write(renderCheck(result, tolerance, strict, baseline, reportFile));
  return result.passed ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
