// The benchmark harness end to end in --quick mode: it mounts svault, the Node-FUSE floor on both
// transports (fuse-native and svault's own), gocryptfs and securefs (each when installed) on a tmpfs of its
// own, runs every workload, writes valid reports into a directory of ours, and leaves nothing mounted. Then
// bench:check compares that report with itself, and a second tiny run checks that a missing gocryptfs and
// securefs are skipped cleanly and said so; --only build times a git clone and a configure-and-make of a C
// project on svault and native.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchReport } from '../../bench/lib/report.js';
import { processAlive } from '../../src/core/util/process-alive.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function node(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 240_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

function reportIn(dir: string): { report: BenchReport; file: string } {
  const jsons = readdirSync(dir).filter((f) => /^bench-.*\.json$/.test(f));
  if (jsons.length !== 1) throw new Error(`expected one bench JSON in ${dir}, found ${jsons.join(', ')}`);
  const file = path.join(dir, jsons[0] as string);
  return { report: JSON.parse(readFileSync(file, 'utf8')) as BenchReport, file };
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

test.serial('bench --quick runs every workload on every target and writes valid reports', async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'svault-bench-test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // --no-cache-drop: dropping the machine's page caches would empty those of tests running beside this one.
  const r = await node(['bench/run.ts', '--quick', '--no-cache-drop', '--out', out]);
  t.is(r.code, 0, `bench failed:\n${r.stderr.slice(-4000)}`);
  t.regex(r.stderr, /\[[#-]+\]\s+\d+%/, 'progress bar on stderr');

  const { report, file } = reportIn(out);
  t.is(report.schema, 'svault-bench/1');
  t.true(report.ok, report.errors.join('; '));
  t.true(report.options.quick);
  t.is(report.environment.cacheDrops.failed, 0, report.environment.cacheDrops.error);
  t.true(report.environment.cacheDrops.skipped, "the machine's page caches were left alone");
  t.true(isNum(report.targets.svault.info?.pieceSize), 'svault piece size recorded');

  // Nothing left mounted, and the run's directory is gone.
  t.deepEqual(mountsUnder(report.environment.workDir), []);
  t.false(existsSync(report.environment.workDir));

  const present = (['svault', 'native', 'floor', 'floor-devfuse', 'gocryptfs', 'securefs'] as const).filter((n) => report.targets[n].present);
  t.true(present.includes('svault') && present.includes('native') && present.includes('floor') && present.includes('floor-devfuse'), `present: ${present.join(', ')}`);
  // The devfuse floor's server is gone, and it was mounted through svault's own transport.
  const devfusePid = report.targets['floor-devfuse'].info?.pid;
  t.true(isNum(devfusePid), 'floor-devfuse pid recorded');
  t.false(processAlive(devfusePid as number), 'the floor-devfuse server exited');
  t.regex(String(report.targets['floor-devfuse'].info?.mount ?? ''), /^floor \S+ fuse\.floor /);
  for (const peer of ['gocryptfs', 'securefs'] as const) {
    if (!report.targets[peer].present) t.regex(report.targets[peer].skipped ?? '', /not installed/);
  }
  t.log(`present: ${present.join(', ')}`);

  const expected: Record<string, string[]> = {
    cp: ['cp-in-1K', 'cp-out-1K', 'cp-in-1M', 'cp-out-1M'],
    dd: ['dd-write', 'dd-read'],
    small: ['small-1K-write', 'small-1K-read', 'small-1M-write', 'small-1M-read'],
    tree: ['untar', 'ls-lR', 'read-all', 'reread-all', 'rm-rf'],
    stream4g: ['stream-write', 'stream-read'],
  };
  for (const [w, keys] of Object.entries(expected)) {
    const wl = report.workloads[w as keyof typeof report.workloads];
    if (!wl) {
      t.fail(`workload ${w} missing`);
      continue;
    }
    for (const target of present) {
      const tr = wl.targets[target];
      t.truthy(tr, `${w}/${target} missing`);
      if (!tr) continue;
      t.is(tr.error, undefined, `${w}/${target}: ${tr.error}`);
      for (const k of keys) {
        const f = tr.figures[k];
        t.truthy(f, `${w}/${target}/${k} missing`);
        if (!f) continue;
        t.true(isNum(f.time.median) && f.time.median > 0, `${w}/${target}/${k} median`);
        t.true(f.time.min <= f.time.median && f.time.median <= f.time.max, `${w}/${target}/${k} min <= median <= max`);
      }
      if (target === 'native') t.is(tr.process, null);
      else {
        t.true(isNum(tr.process?.cpuSeconds), `${w}/${target} cpu seconds`);
        t.true(isNum(tr.process?.peakRssBytes) && (tr.process?.peakRssBytes ?? 0) > 0, `${w}/${target} peak RSS`);
      }
    }
  }
  t.true(report.workloads.cp?.targets.svault?.checks.some((c) => c.includes('sha256')) ?? false);
  t.true(report.workloads.tree?.targets.svault?.checks.some((c) => c.includes('digest')) ?? false);
  t.true((report.workloads.stream4g?.targets.svault?.rss?.write.length ?? 0) >= 2, 'RSS sampled during the stream');

  t.is(report.summary.designTargets.length, 8);
  for (const row of report.summary.designTargets) {
    if (row.input === '1 GiB') t.is(row.status, 'not measured');
    else {
      t.true(isNum(row.seconds), `${row.input} ${row.operation}`);
      t.true(isNum(row.ratios.floor) && isNum(row.ratios.native) && isNum(row.ratios['floor-devfuse']), `${row.input} ${row.operation} ratios`);
    }
  }

  // The pass-through on both transports: the figures, with CPU per GiB on the fuse-native floor and devfuse.
  const floors = report.summary.floorTransports ?? [];
  for (const source of ['small/small-1K-write', 'small/small-1K-read', 'tree/untar', 'dd/dd-write-cpu', 'dd/dd-read-cpu', 'stream4g/stream-write-cpu']) {
    const row = floors.find((f) => f.source === source);
    t.truthy(row, `floor transports row ${source}`);
    if (!row) continue;
    // A quick run's CPU per GiB can be 0 (a few clock ticks over 8 MiB): figures, not ratios, are required.
    t.true(isNum(row.values['floor-devfuse']) && isNum(row.values.floor), `${source}: floor-devfuse and floor figures`);
    t.truthy(row.goal, `${source} has a goal`);
    if (report.targets.gocryptfs.present) t.true(isNum(row.values.gocryptfs), `${source}: gocryptfs figure`);
  }
  t.true(isNum(report.summary.ratios.dd?.['dd-write']?.['floor-devfuse']), 'svault/floor-devfuse ratio on dd write');

  const md = readFileSync(path.join(out, report.files.markdown), 'utf8');
  t.true(md.includes('| Input size | Operation | Time | Throughput | Target | Status | svault/native | svault/floor | svault/floor-devfuse'));
  t.true(md.includes('## The Node pass-through on both transports'));
  t.regex(md, /\| server CPU per GiB written \(dd\) \| [\d.]+ CPU s\/GiB \| [\d.]+ CPU s\/GiB \|/);
  t.true(md.includes('extrapolated'));
  t.regex(md, /- svault: piece size \d+ bytes, chaff ratio [\d.]+, aes-256-gcm through openssl-evp\./, 'the report names the AES-GCM the server ran');
  for (const peer of ['gocryptfs', 'securefs'] as const) {
    if (!report.targets[peer].present) continue;
    t.true(md.includes(` svault/${peer} |`), `the markdown has svault/${peer} columns`);
    t.true(report.summary.designTargets.filter((row) => row.seconds !== null).every((row) => isNum(row.ratios[peer])), `design rows have svault/${peer} ratios`);
    t.true(isNum(report.summary.ratios.dd?.['dd-write']?.[peer]), `svault/${peer} ratio on dd write`);
    t.true(isNum(report.workloads.dd?.targets[peer]?.figures['dd-write-cpu']?.time.median), `${peer} CPU per GiB written`);
  }
  if (report.targets.securefs.present) {
    t.is(report.targets.securefs.info?.format, '4', 'securefs format recorded');
    t.regex(report.versions.securefs ?? '', /^securefs /);
    t.regex(md, /- securefs: format 4 \(lite\)/);
  }
  for (const svg of [report.files.throughputSvg, report.files.rssSvg]) {
    const p = path.join(out, svg);
    t.true(statSync(p).size > 500, `${svg} is not empty`);
    const text = readFileSync(p, 'utf8');
    t.true(text.startsWith('<svg') && text.trimEnd().endsWith('</svg>'), `${svg} is an SVG document`);
  }

  // bench:check on a report against itself: every ratio unchanged, so it passes.
  const check = await node(['bench/check.ts', '--baseline', file, '--report', file], process.env, 60_000);
  t.is(check.code, 0, check.stdout + check.stderr);
  t.regex(check.stdout, /PASS: no regression/);
  t.regex(check.stdout, /peak RSS under 200 MiB in 4 workloads/, 'the memory goal is checked on cp, dd, stream4g and small');

  // A baseline from before securefs and floor-devfuse were targets (as reports/baseline.json) still compares cleanly.
  const older = JSON.parse(JSON.stringify(report)) as BenchReport;
  delete (older.targets as Partial<BenchReport['targets']>).securefs;
  delete (older.targets as Partial<BenchReport['targets']>)['floor-devfuse'];
  delete older.versions.securefs;
  delete older.summary.floorTransports;
  for (const w of Object.values(older.workloads)) {
    delete w?.targets.securefs;
    delete w?.targets['floor-devfuse'];
  }
  const olderFile = path.join(out, 'older.json');
  writeFileSync(olderFile, JSON.stringify(older));
  for (const [b, f] of [[olderFile, file], [file, olderFile]]) {
    const c = await node(['bench/check.ts', '--baseline', b as string, '--report', f as string], process.env, 60_000);
    t.is(c.code, 0, c.stdout + c.stderr);
    t.notRegex(c.stdout, /securefs|floor-devfuse/);
  }
  const rerendered = await node(['bench/render.ts', olderFile, '--out', out], process.env, 60_000);
  t.is(rerendered.code, 0, rerendered.stderr);
  t.false(readFileSync(path.join(out, report.files.markdown), 'utf8').includes('both transports'), 'no floor comparison without floor-devfuse');

  // The same report with svault twice as slow at the small files must fail the check, on those figures only.
  const slow = JSON.parse(JSON.stringify(report)) as BenchReport;
  for (const f of Object.values(slow.workloads.small?.targets.svault?.figures ?? {})) f.time.median *= 2;
  const slowFile = path.join(out, 'slower.json');
  writeFileSync(slowFile, JSON.stringify(slow));
  const failing = await node(['bench/check.ts', '--baseline', file, '--report', slowFile], process.env, 60_000);
  t.is(failing.code, 1, failing.stdout + failing.stderr);
  t.regex(failing.stdout, /small\/small-1K-write .* regressed/);
  t.notRegex(failing.stdout, /tree\/untar .* regressed/);

  // A peak RSS over issue 6's memory goal fails the check whatever the times; --peak-rss-mib 0 leaves memory out.
  const heavy = JSON.parse(JSON.stringify(report)) as BenchReport;
  const streamProcess = heavy.workloads.stream4g?.targets.svault?.process;
  if (!streamProcess) return t.fail('the stream workload has no svault process figures');
  streamProcess.peakRssBytes = 250 * 1024 * 1024;
  const heavyFile = path.join(out, 'heavier.json');
  writeFileSync(heavyFile, JSON.stringify(heavy));
  const overGoal = await node(['bench/check.ts', '--baseline', file, '--report', heavyFile], process.env, 60_000);
  t.is(overGoal.code, 1, overGoal.stdout + overGoal.stderr);
  t.regex(overGoal.stdout, /FAIL: stream4g: the mount's peak RSS was 250 MiB, not under 200 MiB/);
  const unchecked = await node(['bench/check.ts', '--baseline', file, '--report', heavyFile, '--peak-rss-mib', '0'], process.env, 60_000);
  t.is(unchecked.code, 0, unchecked.stdout + unchecked.stderr);
});

test.serial('bench skips gocryptfs and securefs cleanly when they are not installed, and says so', async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'svault-bench-test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const env = { ...process.env, SVAULT_BENCH_GOCRYPTFS: '/nonexistent/gocryptfs', SVAULT_BENCH_SECUREFS: '/nonexistent/securefs' };
  const r = await node(['bench/run.ts', '--quick', '--no-cache-drop', '--only', 'dd', '--targets', 'svault,native,gocryptfs,securefs', '--out', out], env);
  t.is(r.code, 0, r.stderr.slice(-4000));
  const { report } = reportIn(out);
  const md = readFileSync(path.join(out, report.files.markdown), 'utf8');
  for (const peer of ['gocryptfs', 'securefs'] as const) {
    t.regex(r.stderr, new RegExp(`${peer} is not installed: skipping`));
    t.false(report.targets[peer].present);
    t.regex(report.targets[peer].skipped ?? '', /not installed/);
    t.is(report.workloads.dd?.targets[peer], undefined);
    t.regex(md, new RegExp(`${peer} skipped\\*\\*: ${peer} is not installed`));
    t.false(md.includes(`svault/${peer}`), `no svault/${peer} column`);
  }
  t.is(report.versions.securefs, null);
  t.true(isNum(report.workloads.dd?.targets.svault?.figures['dd-write']?.time.median));
  t.deepEqual(mountsUnder(report.environment.workDir), []);
});

test.serial('bench --only sparse: the 1 TiB rows (quick: 1 GiB) measured on svault and native, a target without SEEK_DATA left out with its reason', async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'svault-bench-test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = await node(['bench/run.ts', '--quick', '--no-cache-drop', '--only', 'sparse', '--targets', 'svault,native,floor-devfuse', '--out', out]);
  t.is(r.code, 0, `bench failed:\n${r.stderr.slice(-4000)}`);
  const { report } = reportIn(out);
  const rows = report.summary.sparse ?? [];
  t.true(rows.length >= 3, JSON.stringify(rows));
  for (const row of rows.filter((x) => x.source?.startsWith('sparse/sparse-'))) t.true(typeof row.seconds === 'number' && row.seconds > 0, JSON.stringify(row));
  const skipped = ((report.workloads.sparse?.extra ?? {}) as { skipped?: Record<string, string> }).skipped ?? {};
  t.regex(skipped['floor-devfuse'] ?? '', /SEEK_DATA/, 'the pass-through floor does not answer SEEK_DATA and is left out, saying why');
});

test.serial('bench --only build: both phases (git clone; configure and make) timed on svault and native, with ratios and the goals', async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'svault-bench-test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // --quick builds GNU hello (fetched from Debian's archive once, then cached); one repeat.
  const r = await node(['bench/run.ts', '--quick', '--no-cache-drop', '--only', 'build', '--targets', 'svault,native', '--out', out], process.env, 280_000);
  t.is(r.code, 0, `bench failed:\n${r.stderr.slice(-4000)}`);
  const { report, file } = reportIn(out);
  t.true(report.ok, report.errors.join('; '));
  t.deepEqual(report.options.only, ['build']);
  t.is(report.options.buildProject, 'hello');
  t.deepEqual(mountsUnder(report.environment.workDir), []);
  const w = report.workloads.build;
  if (!w) return t.fail('no build workload in the report');
  for (const target of ['svault', 'native'] as const) {
    const tr = w.targets[target];
    t.is(tr?.error, undefined, `${target}: ${tr?.error}`);
    const fig = (k: string) => tr?.figures[k]?.time.median;
    for (const k of ['clone', 'unpack', 'configure', 'make', 'make-clean', 'build', 'total']) t.true(isNum(fig(k)) && (fig(k) as number) > 0, `build/${target}/${k}`);
    // One repeat: phase 2 is its three steps, and the total is both phases.
    t.true(Math.abs((fig('build') as number) - (fig('configure') as number) - (fig('make') as number) - (fig('make-clean') as number)) < 1e-6, `${target}: build = configure + make + make clean`);
    t.true(Math.abs((fig('total') as number) - (fig('clone') as number) - (fig('build') as number)) < 1e-6, `${target}: total = clone + build`);
    t.true(tr?.checks.some((c) => c.includes('clean git status') && c.includes('the built hello runs')) ?? false, `${target} checks: ${tr?.checks.join(', ')}`);
  }
  const extra = w.extra as { cpuSeconds?: Record<string, Record<string, number>>; svaultOps?: Record<string, Array<{ op: string; calls: number }>> };
  t.true(isNum(extra.cpuSeconds?.svault?.build), 'svault server CPU seconds of phase 2');
  t.true((extra.svaultOps?.clone ?? []).some((o) => o.op === 'fuse.create' && o.calls > 0), 'svault op counts of phase 1');

  // The summary: each phase and both on every target, ratios to native, and the goals (no gocryptfs here).
  const b = report.summary.build;
  if (!b) return t.fail('no build summary');
  t.is(b.project, 'hello 2.10');
  for (const key of ['clone', 'build', 'total']) {
    const row = b.rows.find((x) => x.key === key);
    t.true(isNum(row?.seconds.svault) && isNum(row?.seconds.native) && isNum(row?.svault.native) && isNum(row?.overNative.svault), `summary row ${key}`);
  }
  const goal = (against: string) => b.goals.find((g) => g.against === against);
  t.true(isNum(goal('native')?.ratio) && typeof goal('native')?.met === 'boolean');
  t.is(goal('gocryptfs')?.met, null, 'no gocryptfs in the run: not measured');
  t.regex(r.stderr, /build workload \(git clone, then hello 2\.10: configure, make -j2, make clean\)/);
  t.regex(r.stderr, /both phases: svault [\d.]+ m?s \([\d.]+×\), native/);
  const md = readFileSync(path.join(out, report.files.markdown), 'utf8');
  t.true(md.includes('## A real workload: git clone, then configure and make'));
  t.regex(md, /- svault ≤ 1\.2× native on both phases: [\d.]+×, (met|\*\*not met\*\*)\./);

  // bench:check holds the fresh run to the goals: met when svault takes native's time, failed at twice it.
  const variant = async (name: string, factor: number) => {
    const copy = JSON.parse(JSON.stringify(report)) as BenchReport;
    const total = copy.workloads.build?.targets.svault?.figures.total;
    const native = copy.workloads.build?.targets.native?.figures.total;
    if (!total || !native) throw new Error('no totals');
    total.time.median = native.time.median * factor;
    const f = path.join(out, name);
    writeFileSync(f, JSON.stringify(copy));
    return node(['bench/check.ts', '--baseline', file, '--report', f], process.env, 60_000);
  };
  const fast = await variant('as-native.json', 1);
  t.is(fast.code, 0, fast.stdout + fast.stderr);
  t.regex(fast.stdout, /\| svault ≤ 1\.2× native \| 1\.00× \| met \|/);
  t.regex(fast.stdout, /\| svault ≤ 1× gocryptfs \| — \| not measured/);
  const slow = await variant('twice-native.json', 2);
  t.is(slow.code, 1, slow.stdout + slow.stderr);
  t.regex(slow.stdout, /FAIL: build: svault took 2\.00× native's time for both phases/);
});
