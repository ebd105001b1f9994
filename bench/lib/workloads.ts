// The workloads. Each runs every target one after another, repeat by repeat (so slow drift of the
// machine spreads over all targets alike), driving the mounts with real external processes: cp, dd, tar,
// ls -lR, find -exec cat, rm -rf, and bench/small-files.ts for the small files. The page cache is dropped
// before every read phase; GiB-sized phases take their memory from the ballast (see system.ts).
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, ftruncateSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { C_PROJECTS, fetchCProject, type CProjectName } from '../../fixtures/c-project.js';
import { probeSeek, sparseDigestOfFile, SPARSE_DIGEST_PY, TiB, writeDense, writeSparse, writeSparseImage, type FileDigest } from '../../fixtures/seed-files.js';
import { generateTree, tarTree, treeDigest, type TreeOptions, type TreeSummary } from '../../fixtures/tree.js';
import { cpuSeconds, ProcessMeter, RssSampler, type ProcessStats, type RssSample } from './proc.js';
import type { Progress } from './progress.js';
import type { Ballast, CacheDropLog, CacheDropper } from './system.js';
import type { OpCounts, Target, TargetName } from './targets.js';
import { errorMessage, GiB, humanBytes, MiB, run, sizeLabel, stat, type Stat } from './util.js';

// In this order: the file-size progression (cp, dd, the long stream) runs before the metadata-heavy
// workloads, whose caches would otherwise inflate the servers' RSS under the large files.
// build (issue 21: a git clone, then configure and make of a C project) comes after them. sparse (issue
// 26) and build are opt-in (--only sparse, --only build), see DEFAULT_WORKLOADS.
export const WORKLOAD_NAMES = ['cp', 'dd', 'stream4g', 'small', 'tree', 'build', 'sparse'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];
/**
 * What runs without --only. Not build: its configure forks hundreds of compilers on each target, about
 * 6 min for three repeats on this VM (bench/README.md), far more than the 2 minutes a default workload may add.
 */
export const DEFAULT_WORKLOADS: readonly WorkloadName[] = WORKLOAD_NAMES.filter((w) => w !== 'sparse' && w !== 'build');

export interface BenchOptions {
  quick: boolean;
  sizes: number[];
  only: WorkloadName[];
  targets: TargetName[];
  repeats: number;
  streamRepeats: number;
  pieceSize: number;
  chaff: number;
  ddBytes: number;
  streamBytes: number;
  small: Array<{ count: number; size: number }>;
  tree: TreeOptions;
  ballastBytes: number | null;
  tmpfsBytes: number | null;
  out: string;
  /** Per external command. */
  timeoutMs: number;
  /** --no-cache-drop: leave the machine's page caches alone (the report says reads may come from them). */
  noCacheDrop?: boolean;
  /** The build workload's C project (fixtures/c-project.ts); default gzip, hello with --quick. */
  buildProject?: CProjectName;
}

export interface Figure {
  label: string;
  /** Unit of `time`: seconds for a whole phase, ms per file for the small files. */
  /** Seconds for the phase, ms per file, or the server's CPU seconds per GiB moved (not a time). */
  unit: 's' | 'ms/file' | 'cpu-s/GiB';
  time: Stat;
  /** Bytes moved by one run of the phase, when it moves data. */
  bytes?: number;
  /** Files touched by one run of the phase, when it is about files. */
  files?: number;
  /** MiB/s over the repeats (from bytes), median / min / max. */
  mibps?: Omit<Stat, 'samples'>;
  /** Files per second over the repeats (from files). */
  filesPerSecond?: Omit<Stat, 'samples'>;
}

export interface TargetResult {
  figures: Record<string, Figure>;
  /** The server process over the whole workload (null for native). */
  process: ProcessStats | null;
  /** The server process per part of the workload (per file size for cp and small). */
  processBy?: Record<string, ProcessStats>;
  /** RSS samples of the server during the first repeat's write and read (dd and stream4g). */
  rss?: { write: RssSample[]; read: RssSample[] };
  /** Integrity checks done, e.g. "sha256 1G in/out". */
  checks: string[];
  /** Set if the target failed; its figures are then partial. */
  error?: string;
}

export interface WorkloadResult {
  name: WorkloadName;
  title: string;
  description: string;
  seconds: number;
  /** 1-minute load average at the start and end: other work on the machine skews the figures. */
  load: { start: number; end: number };
  cacheDrops: CacheDropLog;
  targets: Partial<Record<TargetName, TargetResult>>;
  /** svault's own per-operation counters over this workload (all repeats), most time first. */
  svaultOps?: OpCounts[];
  extra?: Record<string, unknown>;
}

/** after - before, per op, dropping ops that did not run; sorted by time spent. */
export function diffOps(before: OpCounts[], after: OpCounts[]): OpCounts[] {
  const b = new Map(before.map((o) => [o.op, o]));
  return after
    .map((a) => {
      const o = b.get(a.op);
      return { op: a.op, calls: a.calls - (o?.calls ?? 0), bytes: a.bytes - (o?.bytes ?? 0), totalMs: Math.round((a.totalMs - (o?.totalMs ?? 0)) * 10) / 10 };
    })
    .filter((o) => o.calls > 0)
    .sort((x, y) => y.totalMs - x.totalMs);
}

export interface Ctx {
  opts: BenchOptions;
  root: string;
  targets: Target[];
  /** Native scratch space on the backing tmpfs (sources, copies out, fixtures). */
  work: string;
  ballast: Ballast;
  dropper: CacheDropper;
  progress: Progress;
}

/** Phases that move at least this much take their memory from the ballast. */
const BALLAST_THRESHOLD = 32 * MiB;

/** Frees ballast for a phase about to touch `bytes` (page cache, backing copy, server buffers). */
function ballastFor(ctx: Ctx, bytes: number): void {
  if (bytes >= BALLAST_THRESHOLD) ctx.ballast.release(Math.ceil(bytes * 2.5) + 256 * MiB);
}

function toStat(values: number[]): Omit<Stat, 'samples'> {
  const s = stat(values);
  return { median: s.median, min: s.min, max: s.max };
}

function figure(label: string, unit: Figure['unit'], samples: number[], extra: { bytes?: number; files?: number } = {}): Figure {
  const f: Figure = { label, unit, time: stat(samples), ...extra };
  // Seconds for one unit of work: the whole phase, or one file for ms/file figures (bytes and files are per unit).
  const seconds = samples.map((v) => (unit === 'ms/file' ? v / 1000 : v));
  const { bytes, files } = extra;
  if (bytes) f.mibps = toStat(seconds.map((s) => bytes / MiB / s));
  if (files) f.filesPerSecond = toStat(seconds.map((s) => files / s));
  return f;
}

/** Collects samples of one target within one workload. */
class Recorder {
  private readonly samples = new Map<string, { label: string; unit: Figure['unit']; values: number[]; bytes?: number; files?: number }>();
  readonly checks: string[] = [];
  error?: string;
  process: ProcessStats | null = null;
  processBy: Record<string, ProcessStats> = {};
  rss?: { write: RssSample[]; read: RssSample[] };

  add(key: string, label: string, unit: Figure['unit'], value: number, extra: { bytes?: number; files?: number } = {}): void {
    let s = this.samples.get(key);
    if (!s) this.samples.set(key, (s = { label, unit, values: [], ...extra }));
    s.values.push(value);
  }

  result(): TargetResult {
    const figures: Record<string, Figure> = {};
    for (const [key, s] of this.samples) figures[key] = figure(s.label, s.unit, s.values, { bytes: s.bytes, files: s.files });
    const r: TargetResult = { figures, process: this.process, checks: this.checks };
    if (Object.keys(this.processBy).length) r.processBy = this.processBy;
    if (this.rss) r.rss = this.rss;
    if (this.error) r.error = this.error;
    return r;
  }
}

/** Sums per-part process stats into the workload's. */
function combine(parts: ProcessStats[]): ProcessStats | null {
  if (parts.length === 0) return null;
  const nums = (f: (p: ProcessStats) => number | null) => parts.map(f).filter((v): v is number => v !== null);
  const cpu = nums((p) => p.cpuSeconds);
  const peak = nums((p) => p.peakRssBytes);
  return {
    cpuSeconds: cpu.length ? Math.round(cpu.reduce((a, b) => a + b, 0) * 100) / 100 : null,
    peakRssBytes: peak.length ? Math.max(...peak) : null,
    rssBeforeBytes: parts[0]?.rssBeforeBytes ?? null,
    rssAfterBytes: parts[parts.length - 1]?.rssAfterBytes ?? null,
    peakIsPerWorkload: parts.every((p) => p.peakIsPerWorkload),
  };
}

/**
 * Runs `reps` repeats of `body` on every target, target after target within a repeat. A target that
 * throws is recorded as failed and skipped for the rest of this part. The server's CPU and peak RSS are
 * measured over the part and stored under `part` (or as the whole workload's when part is null).
 */
async function repeatOnTargets(ctx: Ctx, recs: Map<TargetName, Recorder>, part: string | null, reps: number, body: (t: Target, rep: number, rec: Recorder) => Promise<void>, rotate = false): Promise<void> {
  const meters = new Map<TargetName, ProcessMeter>();
  for (const t of ctx.targets) {
    if (t.pid !== null) {
      const m = new ProcessMeter(t.pid);
      m.start();
      meters.set(t.name, m);
    }
  }
  const failed = new Set<TargetName>();
  for (let rep = 0; rep < reps; rep++) {
    // rotate: each repeat starts one target later, so a slow spell of the machine does not always hit the same one.
    const order = rotate ? ctx.targets.map((_, i) => ctx.targets[(i + rep) % ctx.targets.length] as Target) : ctx.targets;
    for (const t of order) {
      const rec = recs.get(t.name) as Recorder;
      if (failed.has(t.name) || rec.error) continue;
      try {
        await body(t, rep, rec);
      } catch (err) {
        failed.add(t.name);
        rec.error = `${part ?? 'workload'} rep ${rep + 1}: ${errorMessage(err)}`;
        ctx.progress.note(`${t.name} failed: ${rec.error}`);
        ctx.ballast.fill();
      }
    }
  }
  for (const [name, m] of meters) {
    const rec = recs.get(name) as Recorder;
    const stats = m.stop();
    if (part === null) rec.process = stats;
    else rec.processBy[part] = stats;
  }
}

function newRecorders(ctx: Ctx): Map<TargetName, Recorder> {
  return new Map(ctx.targets.map((t) => [t.name, new Recorder()]));
}

/** Where a workload starts: its time, cache-drop count and load average. */
interface Start {
  t0: number;
  drops0: CacheDropLog;
  load0: number;
}

function begin(ctx: Ctx): Start {
  return { t0: performance.now(), drops0: { ...ctx.dropper.log }, load0: loadAverage() };
}

export function loadAverage(): number {
  return Math.round((os.loadavg()[0] ?? 0) * 100) / 100;
}

function finish(ctx: Ctx, name: WorkloadName, title: string, description: string, start: Start, recs: Map<TargetName, Recorder>, extra?: Record<string, unknown>): WorkloadResult {
  const { t0, drops0 } = start;
  const targets: Partial<Record<TargetName, TargetResult>> = {};
  for (const [n, rec] of recs) {
    if (rec.process === null && Object.keys(rec.processBy).length) rec.process = combine(Object.values(rec.processBy));
    targets[n] = rec.result();
  }
  const log = ctx.dropper.log;
  const cacheDrops: CacheDropLog = { attempted: log.attempted - drops0.attempted, failed: log.failed - drops0.failed };
  if (cacheDrops.failed && log.error) cacheDrops.error = log.error;
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  return { name, title, description, seconds, load: { start: start.load0, end: loadAverage() }, cacheDrops, targets, ...(extra ? { extra } : {}) };
}

const timeout = (ctx: Ctx, bytes = 0) => ctx.opts.timeoutMs + Math.ceil(bytes / MiB) * 200; // >= 5 MiB/s

// ---------------------------------------------------------------------------
// cp

async function makeRandomFile(file: string, bytes: number): Promise<string> {
  const h = createHash('sha256');
  const chunk = Buffer.allocUnsafe(Math.min(bytes, 16 * MiB));
  const fd = openSync(file, 'w');
  try {
    for (let off = 0; off < bytes; ) {
      const n = Math.min(chunk.length, bytes - off);
      const part = chunk.subarray(0, n);
      randomFillSync(part);
      h.update(part);
      let w = 0;
      while (w < n) w += writeSync(fd, part, w, n - w);
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function cpWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const recs = newRecorders(ctx);
  const srcDir = path.join(ctx.work, 'cp-src');
  const outDir = path.join(ctx.work, 'cp-out');
  mkdirSync(srcDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  for (const size of ctx.opts.sizes) {
    const label = sizeLabel(size);
    const src = path.join(srcDir, `random-${label}`);
    ctx.progress.note(`cp: making ${humanBytes(size)} of random data`);
    const digest = await makeRandomFile(src, size);
    await repeatOnTargets(ctx, recs, label, ctx.opts.repeats, async (t, rep, rec) => {
      const inside = path.join(t.dir, `cp-${label}`);
      const out = path.join(outDir, `cp-${label}`);
      ctx.progress.step(`cp ${label}`, t.name, 'cp in', rep);
      ballastFor(ctx, size);
      const cin = await run('cp', [src, inside], { timeoutMs: timeout(ctx, size) });
      ctx.ballast.fill();
      rec.add(`cp-in-${label}`, `cp in ${humanBytes(size)}`, 's', cin.seconds, { bytes: size });
      await ctx.dropper.drop();
      ctx.progress.step(`cp ${label}`, t.name, 'cp out', rep);
      ballastFor(ctx, size);
      const cout = await run('cp', [inside, out], { timeoutMs: timeout(ctx, size) });
      ctx.ballast.fill();
      rec.add(`cp-out-${label}`, `cp out ${humanBytes(size)}`, 's', cout.seconds, { bytes: size });
      const got = await sha256File(out);
      if (got !== digest) throw new Error(`sha256 of ${humanBytes(size)} copied in and out differs: ${got} != ${digest}`);
      if (rep === 0) rec.checks.push(`sha256 ${label} in/out`);
      await rm(out, { force: true });
      await rm(inside, { force: true });
    });
    await rm(src, { force: true });
  }
  return finish(ctx, 'cp', 'cp of single files', `cp of one file of random data into the target, page cache dropped, cp back out; sha256 checked. Sizes: ${ctx.opts.sizes.map(humanBytes).join(', ')}.`, start, recs);
}

// ---------------------------------------------------------------------------
// dd streaming (512 MiB) and the >= 4 GiB stream

/** The server's CPU seconds over one phase, per GiB moved (nothing for native: it has no server). */
class CpuPerGiB {
  private cpu0: number | null = null;

  constructor(private readonly pid: number | null, private readonly bytes: number) {}

  start(): void {
    this.cpu0 = this.pid === null ? null : cpuSeconds(this.pid);
  }

  record(rec: Recorder, key: string, label: string): void {
    const cpu1 = this.pid === null ? null : cpuSeconds(this.pid);
    if (this.cpu0 === null || cpu1 === null) return;
    rec.add(key, label, 'cpu-s/GiB', (cpu1 - this.cpu0) / (this.bytes / (1024 * MiB)));
  }
}

async function streamOnce(ctx: Ctx, t: Target, rec: Recorder, key: string, bytes: number, sample: boolean, wl: string, rep: number): Promise<void> {
  const file = path.join(t.dir, `${key}.bin`);
  const block = 128 * 1024;
  const count = Math.ceil(bytes / block);
  const total = count * block;
  const samplers = sample && t.pid !== null ? { write: new RssSampler(t.pid, 'written'), read: new RssSampler(t.pid, 'read') } : null;

  // The server's CPU seconds per GiB moved, per direction (the goal: no worse than gocryptfs's).
  const cpu = new CpuPerGiB(t.pid, total);
  ctx.progress.step(wl, t.name, 'write', rep);
  ballastFor(ctx, total);
  samplers?.write.start();
  cpu.start();
  let w;
  try {
    w = await run('dd', ['if=/dev/zero', `of=${file}`, `bs=${block}`, `count=${count}`, 'conv=fsync', 'status=none'], {
      timeoutMs: timeout(ctx, total),
      onStart: (pid) => samplers?.write.setClient(pid),
    });
  } finally {
    samplers?.write.stop(total);
  }
  ctx.ballast.fill();
  rec.add(`${key}-write`, `write ${humanBytes(total)} (dd, 128 KiB blocks, fsync)`, 's', w.seconds, { bytes: total });
  cpu.record(rec, `${key}-write-cpu`, 'server CPU seconds per GiB written');

  await ctx.dropper.drop();
  ctx.progress.step(wl, t.name, 'read', rep);
  ballastFor(ctx, total);
  samplers?.read.start();
  cpu.start();
  let r;
  try {
    r = await run('dd', [`if=${file}`, 'of=/dev/null', `bs=${block}`, 'status=none'], {
      timeoutMs: timeout(ctx, total),
      onStart: (pid) => samplers?.read.setClient(pid),
    });
  } finally {
    samplers?.read.stop(total);
  }
  ctx.ballast.fill();
  rec.add(`${key}-read`, `read ${humanBytes(total)} (dd, 128 KiB blocks)`, 's', r.seconds, { bytes: total });
  cpu.record(rec, `${key}-read-cpu`, 'server CPU seconds per GiB read');
  const writeSamples = samplers?.write.samples;
  const readSamples = samplers?.read.samples;
  if (writeSamples && readSamples) rec.rss = { write: writeSamples, read: readSamples };
  await rm(file, { force: true });
}

export async function ddWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const recs = newRecorders(ctx);
  await repeatOnTargets(ctx, recs, null, ctx.opts.repeats, (t, rep, rec) => streamOnce(ctx, t, rec, 'dd', ctx.opts.ddBytes, rep === 0, 'dd', rep));
  return finish(ctx, 'dd', 'dd streaming', `dd if=/dev/zero of=FILE bs=128K count=${Math.ceil(ctx.opts.ddBytes / 131072)} conv=fsync, page cache dropped, dd the file back to /dev/null (as gocryptfs's canonical benchmark).`, start, recs);
}

export async function streamWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const recs = newRecorders(ctx);
  await repeatOnTargets(ctx, recs, null, ctx.opts.streamRepeats, (t, rep, rec) => streamOnce(ctx, t, rec, 'stream', ctx.opts.streamBytes, rep === 0, 'stream', rep));
  return finish(ctx, 'stream4g', 'long stream', `As dd, with ${humanBytes(ctx.opts.streamBytes)}: the measured run behind the 1 TB extrapolation. The server's RSS is sampled every 200 ms against the bytes dd has moved.`, start, recs);
}

// ---------------------------------------------------------------------------
// small files

function nodeScript(ctx: Ctx, name: string): string[] {
  // run.ts builds dist/ before starting, so the compiled script is there and current.
  return [path.join(ctx.root, 'dist', 'bench', `${name}.js`)];
}

interface SmallResult {
  seconds: number;
  msPerFile: number;
}

export async function smallWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const recs = newRecorders(ctx);
  const script = nodeScript(ctx, 'small-files');
  for (const { count, size } of ctx.opts.small) {
    const label = sizeLabel(size);
    await repeatOnTargets(ctx, recs, label, ctx.opts.repeats, async (t, rep, rec) => {
      const dir = path.join(t.dir, `small-${label}`);
      const client = async (mode: 'write' | 'read'): Promise<SmallResult> => {
        const r = await run(process.execPath, [...script, mode, dir, String(count), String(size)], { stdout: 'capture', timeoutMs: timeout(ctx, count * size) + count * 100 });
        return JSON.parse(r.stdout.trim().split('\n').pop() as string) as SmallResult;
      };
      ctx.progress.step(`small ${count}x${label}`, t.name, 'write', rep);
      ballastFor(ctx, count * size);
      const w = await client('write');
      ctx.ballast.fill();
      rec.add(`small-${label}-write`, `${count} files of ${humanBytes(size)}: create, write, close`, 'ms/file', w.msPerFile, { bytes: size, files: 1 });
      await ctx.dropper.drop();
      ctx.progress.step(`small ${count}x${label}`, t.name, 'read', rep);
      ballastFor(ctx, count * size);
      const r = await client('read');
      ctx.ballast.fill();
      rec.add(`small-${label}-read`, `${count} files of ${humanBytes(size)}: open, read, close`, 'ms/file', r.msPerFile, { bytes: size, files: 1 });
      if (rep === 0) rec.checks.push(`sizes and edges of ${count} x ${label}`);
      await run('rm', ['-rf', dir], { timeoutMs: timeout(ctx, count * size) + count * 100 });
    });
  }
  return finish(ctx, 'small', 'small files', `A child Node process creates, writes and closes each file (${ctx.opts.small.map((s) => `${s.count} x ${humanBytes(s.size)}`).join(', ')}), then, after the page cache is dropped, opens, reads and closes each. Figures are mean ms per file, timed inside the child.`, start, recs);
}

// ---------------------------------------------------------------------------
// source tree

async function digestOf(dir: string): Promise<string> {
  const entries: Array<{ path: string; data: Buffer }> = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p);
      else entries.push({ path: p, data: await readFile(path.join(dir, p)) });
    }
  };
  await walk('');
  return treeDigest(entries);
}

export async function treeWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const recs = newRecorders(ctx);
  const fixture = path.join(ctx.work, 'tree-fixture');
  const tar = path.join(ctx.work, 'tree.tar');
  ctx.progress.note(`tree: generating ${ctx.opts.tree.files} files in ${ctx.opts.tree.dirs} directories (seed ${ctx.opts.tree.seed})`);
  const summary: TreeSummary = generateTree(fixture, ctx.opts.tree);
  tarTree(fixture, tar);
  await rm(fixture, { recursive: true, force: true });
  const files = summary.files;
  const slow = (n: number) => timeout(ctx, summary.bytes) + n * 50;
  await repeatOnTargets(ctx, recs, null, ctx.opts.repeats, async (t, rep, rec) => {
    const dir = path.join(t.dir, 'tree');
    await mkdir(dir);
    const wl = 'tree';
    ctx.progress.step(wl, t.name, 'untar', rep);
    ballastFor(ctx, summary.bytes);
    const untar = await run('tar', ['-xf', tar, '-C', dir], { timeoutMs: slow(files) });
    ctx.ballast.fill();
    rec.add('untar', `untar ${files} files, ${humanBytes(summary.bytes)}`, 's', untar.seconds, { bytes: summary.bytes, files });

    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, 'ls -lR', rep);
    const ls = await run('ls', ['-lR', dir], { timeoutMs: slow(files) });
    rec.add('ls-lR', `ls -lR of ${files} files in ${summary.dirs} directories`, 's', ls.seconds, { files });

    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, 'read all', rep);
    ballastFor(ctx, summary.bytes);
    const readAll = () => run('find', [dir, '-type', 'f', '-exec', 'cat', '{}', '+'], { timeoutMs: slow(files) });
    const cat = await readAll();
    ctx.ballast.fill();
    rec.add('read-all', `read every file (find -exec cat)`, 's', cat.seconds, { bytes: summary.bytes, files });

    // The page cache kept this time: what a second build step, grep or git diff over unchanged files sees.
    ctx.progress.step(wl, t.name, 'read all again', rep);
    const again = await readAll();
    rec.add('reread-all', `read every file again, page cache kept (find -exec cat)`, 's', again.seconds, { bytes: summary.bytes, files });
    if (rep === 0) {
      const d = await digestOf(dir);
      if (d !== summary.digest) throw new Error(`the tree read back differs from the fixture (digest ${d} != ${summary.digest})`);
      rec.checks.push('tree digest (paths, sizes, contents)');
    }

    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, 'rm -rf', rep);
    const del = await run('rm', ['-rf', dir], { timeoutMs: slow(files) });
    rec.add('rm-rf', `rm -rf of the tree`, 's', del.seconds, { files });
  });
  await rm(tar, { force: true });
  return finish(ctx, 'tree', 'source tree', `A generated tree (fixtures/tree.ts: ${summary.files} files in ${summary.dirs} directories, ${humanBytes(summary.bytes)}, sizes log-uniform ${ctx.opts.tree.minSize} B to ${humanBytes(ctx.opts.tree.maxSize)}, seed ${summary.seed}): tar -xf into the target, then ls -lR, find -exec cat of every file and rm -rf, the page cache dropped before each; and right after the first find -exec cat, a second one with the page cache kept (re-read).`, start, recs, { tree: summary });
}

// ---------------------------------------------------------------------------
// sparse files (issue 26): the seed's 1 TiB sparse file and a 64 GiB image with 1 % data

/** Bytes for people, with TiB: "1 TiB", "64 GiB". */
export function humanSize(bytes: number): string {
  return bytes >= TiB && bytes % TiB === 0 ? `${bytes / TiB} TiB` : humanBytes(bytes);
}

/** The sparse workload's sizes: the seed's 1 TiB file and the 64 GiB image, or 1 GiB and 256 MiB in --quick. */
export function sparseSizes(opts: Pick<BenchOptions, 'quick'>): { file: number; image: number } {
  return opts.quick ? { file: GiB, image: 256 * MiB } : { file: TiB, image: 64 * GiB };
}

/**
 * Whether a target answers SEEK_DATA: a 4 MiB file whose only data is its last MiB must give an offset of
 * at least 1 MiB. A target that does not (the kernel answering for it, as under libfuse 2) gives back the
 * offset asked, 0, and a copy would read every hole: such a target is left out of the workload.
 */
function seekDataAnswer(dir: string): string | null {
  const file = path.join(dir, 'seek-data-probe');
  try {
    const fd = openSync(file, 'w');
    try {
      ftruncateSync(fd, 4 * MiB);
      writeSync(fd, Buffer.alloc(MiB, 0x5a), 0, MiB, 3 * MiB);
    } finally {
      closeSync(fd);
    }
    const p = probeSeek(file);
    if (p.data !== null && p.data >= MiB) return null;
    return `it does not answer SEEK_DATA: on a 4 MiB file whose only data is its last MiB, SEEK_DATA from 0 gave ${p.data === null ? 'ENXIO' : p.data}, so a copy would read every hole as zeros`;
  } catch (err) {
    return `SEEK_DATA failed on it: ${errorMessage(err)}`;
  } finally {
    rmSync(file, { force: true });
  }
}

export async function sparseWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const sizes = sparseSizes(ctx.opts);
  const src = path.join(ctx.work, 'sparse-src');
  const outDir = path.join(ctx.work, 'sparse-out');
  mkdirSync(src, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const fileLabel = humanSize(sizes.file);
  const imageLabel = humanSize(sizes.image);
  ctx.progress.note(`sparse: making the ${fileLabel} sparse file, the ${imageLabel} image and its dense data`);
  const big = writeSparse(path.join(src, `sparse-${sizeLabel(sizes.file)}`), sizes.file);
  const img = writeSparseImage(path.join(src, 'image'), sizes.image);
  const dense = writeDense(path.join(src, 'dense'), img.extents ?? []);
  const tarIn = path.join(ctx.work, 'image.tar');
  await run('tar', ['--sparse', '--format=gnu', '-cf', tarIn, '-C', src, 'image'], { timeoutMs: timeout(ctx, img.dataBytes) });

  // Leave out, and say why, every target that does not answer SEEK_DATA: never read a TiB of holes.
  const skipped: Partial<Record<TargetName, string>> = {};
  for (const t of ctx.targets) {
    const why = seekDataAnswer(t.dir);
    if (why) {
      skipped[t.name] = why;
      ctx.progress.note(`sparse: leaving ${t.name} out: ${why}`);
    }
  }
  const sub: Ctx = { ...ctx, targets: ctx.targets.filter((t) => !skipped[t.name]) };
  const recs = newRecorders(sub);
  // A reader that skips holes reads the data extents, rounded out to the target's granularity (svault:
  // whole 128 KiB pieces); past this, it is reading holes, and it stops.
  const maxRead = (f: { dataBytes: number; extents?: unknown[] }) => 2 * f.dataBytes + (f.extents?.length ?? 1) * 4 * MiB;
  const checkDigest = (what: string, file: string, want: { sparseDigest: string; dataBytes: number; extents?: unknown[] }): FileDigest => {
    const d = sparseDigestOfFile(file, maxRead(want));
    if (d.digest !== want.sparseDigest) throw new Error(`${what}: the sparse digest differs (${d.digest} != ${want.sparseDigest})`);
    return d;
  };
  const warmPython = () => run('python3', ['-c', 'pass'], { timeoutMs: 60_000 });
  const wl = 'sparse';

  await repeatOnTargets(sub, recs, null, ctx.opts.repeats, async (t, rep, rec) => {
    const tmo = (f: { dataBytes: number }) => timeout(ctx, f.dataBytes);
    // The seed's sparse file: cp in, a checksum through SEEK_DATA inside the target, cp out.
    const inside = path.join(t.dir, path.basename(big.path));
    const out = path.join(outDir, path.basename(big.path));
    ctx.progress.step(wl, t.name, `${fileLabel} cp in`, rep);
    const cin = await run('cp', ['--sparse=always', big.path, inside], { timeoutMs: tmo(big) });
    rec.add('sparse-cp-in', `cp --sparse=always in, ${fileLabel} sparse file (${humanBytes(big.dataBytes)} of data)`, 's', cin.seconds);
    await ctx.dropper.drop();
    await warmPython();
    ctx.progress.step(wl, t.name, `${fileLabel} checksum`, rep);
    const sum = await run('python3', ['-c', SPARSE_DIGEST_PY, 'digest', inside, String(maxRead(big))], { stdout: 'capture', timeoutMs: tmo(big) });
    const d = JSON.parse(sum.stdout) as FileDigest;
    if (d.digest !== big.sparseDigest) throw new Error(`the ${fileLabel} sparse file's checksum inside the target differs (${d.digest} != ${big.sparseDigest})`);
    rec.add('sparse-digest', `checksum of the ${fileLabel} sparse file, skipping holes (SEEK_DATA/SEEK_HOLE, python3)`, 's', sum.seconds);
    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, `${fileLabel} cp out`, rep);
    const cout = await run('cp', ['--sparse=always', inside, out], { timeoutMs: tmo(big) });
    rec.add('sparse-cp-out', `cp --sparse=always out, ${fileLabel} sparse file`, 's', cout.seconds);
    if (rep === 0) {
      checkDigest(`the ${fileLabel} sparse file copied out`, out, big);
      rec.checks.push(`${sizeLabel(sizes.file)} sparse: checksum inside (${humanBytes(d.bytesRead)} read) and after cp out`);
    }
    await rm(out, { force: true });
    await rm(inside, { force: true });

    // The image: cp --sparse=always in and out, then GNU tar --sparse in and out.
    const imgIn = path.join(t.dir, 'image');
    const imgOut = path.join(outDir, 'image');
    ctx.progress.step(wl, t.name, `${imageLabel} image cp in`, rep);
    ballastFor(ctx, img.dataBytes);
    const iin = await run('cp', ['--sparse=always', img.path, imgIn], { timeoutMs: tmo(img) });
    ctx.ballast.fill();
    rec.add('image-cp-in', `cp --sparse=always in, ${imageLabel} image (${humanBytes(img.dataBytes)} of data in 1 MiB extents)`, 's', iin.seconds, { bytes: img.dataBytes });
    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, `${imageLabel} image cp out`, rep);
    ballastFor(ctx, img.dataBytes);
    const iout = await run('cp', ['--sparse=always', imgIn, imgOut], { timeoutMs: tmo(img) });
    ctx.ballast.fill();
    rec.add('image-cp-out', `cp --sparse=always out, ${imageLabel} image`, 's', iout.seconds, { bytes: img.dataBytes });
    if (rep === 0) checkDigest(`the ${imageLabel} image copied out`, imgOut, img);
    await rm(imgOut, { force: true });
    await rm(imgIn, { force: true });

    const tarDir = path.join(t.dir, 'tar-in');
    const tarOut = path.join(outDir, 'image.tar');
    await mkdir(tarDir, { recursive: true });
    ctx.progress.step(wl, t.name, `${imageLabel} image tar in`, rep);
    ballastFor(ctx, img.dataBytes);
    const tin = await run('tar', ['-xf', tarIn, '-C', tarDir], { timeoutMs: tmo(img) });
    ctx.ballast.fill();
    rec.add('image-tar-in', `tar -x of the ${imageLabel} image's --sparse archive into the target`, 's', tin.seconds, { bytes: img.dataBytes });
    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, `${imageLabel} image tar out`, rep);
    ballastFor(ctx, img.dataBytes);
    const tout = await run('tar', ['--sparse', '--format=gnu', '-cf', tarOut, '-C', tarDir, 'image'], { timeoutMs: tmo(img) });
    ctx.ballast.fill();
    rec.add('image-tar-out', `tar --sparse -c of the ${imageLabel} image out of the target`, 's', tout.seconds, { bytes: img.dataBytes });
    if (rep === 0) {
      const check = path.join(outDir, 'tar-check');
      await mkdir(check, { recursive: true });
      await run('tar', ['-xf', tarOut, '-C', check], { timeoutMs: tmo(img) });
      checkDigest(`the ${imageLabel} image through tar out`, path.join(check, 'image'), img);
      await rm(check, { recursive: true, force: true });
    }
    await rm(tarOut, { force: true });
    await rm(tarDir, { recursive: true, force: true });

    // The reference: the image's data written as a dense file, copied in and out the same way.
    const denseIn = path.join(t.dir, 'dense');
    const denseOut = path.join(outDir, 'dense');
    ctx.progress.step(wl, t.name, 'dense cp in', rep);
    ballastFor(ctx, dense.size);
    const din = await run('cp', [dense.path, denseIn], { timeoutMs: tmo(dense) });
    ctx.ballast.fill();
    rec.add('dense-cp-in', `cp in, the image's ${humanBytes(dense.size)} of data as a dense file (the reference)`, 's', din.seconds, { bytes: dense.size });
    await ctx.dropper.drop();
    ctx.progress.step(wl, t.name, 'dense cp out', rep);
    ballastFor(ctx, dense.size);
    const dout = await run('cp', [denseIn, denseOut], { timeoutMs: tmo(dense) });
    ctx.ballast.fill();
    rec.add('dense-cp-out', `cp out, the dense file`, 's', dout.seconds, { bytes: dense.size });
    if (rep === 0) {
      const got = await sha256File(denseOut);
      if (got !== dense.sha256) throw new Error(`sha256 of the dense file copied in and out differs: ${got} != ${dense.sha256}`);
      rec.checks.push(`${sizeLabel(sizes.image)} image: sparse digest after cp out and tar out; dense sha256 in/out`);
    }
    await rm(denseOut, { force: true });
    await rm(denseIn, { force: true });
  });
  await rm(src, { recursive: true, force: true });
  await rm(outDir, { recursive: true, force: true });
  await rm(tarIn, { force: true });
  const result = finish(
    sub,
    'sparse',
    'sparse files',
    `The seed's ${fileLabel} sparse file (fixtures/seed-files.ts: ${humanBytes(big.dataBytes)} of data in four extents) copied in and out with cp --sparse=always, and checksummed inside the target by a python3 reader that skips holes through SEEK_DATA/SEEK_HOLE; a ${imageLabel} image with 1 % data (${humanBytes(img.dataBytes)} in 1 MiB extents aligned to 1 MiB) copied in and out with cp --sparse=always and with GNU tar (-x of a --sparse archive, tar --sparse -c out); and, as the reference, the image's data written as a dense file, copied in and out with cp. The page cache is dropped before each read out. Targets that do not answer SEEK_DATA are left out (a copy would read every hole).`,
    start,
    recs,
    { fileBytes: big.size, fileDataBytes: big.dataBytes, imageBytes: img.size, imageDataBytes: img.dataBytes, denseBytes: dense.size, skipped },
  );
  return result;
}

// ---------------------------------------------------------------------------
// build (issue 21): a git clone of a local repository, then ./configure && make -j2 of a C project

/** The C project the build workload compiles: --build-project, or gzip (hello with --quick). */
export function buildProjectOf(opts: Pick<BenchOptions, 'quick' | 'buildProject'>): CProjectName {
  return opts.buildProject ?? (opts.quick ? 'hello' : 'gzip');
}

/** The same environment for every target: C locale, no user or system git config, no inherited make flags. */
function buildEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0', CONFIG_SITE: '/dev/null' };
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE']) delete env[k];
  return env;
}

let clockTicks: number | undefined;

/**
 * User + system CPU seconds of this process's children that have exited and been waited for (cutime and
 * cstime in /proc/self/stat): a command's whole process tree, configure's compilers included. Unlike wall
 * time it hardly depends on what else the machine runs.
 */
function childrenCpuSeconds(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const s = readFileSync('/proc/self/stat', 'utf8');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[13]) + Number(rest[14])) / clockTicks;
}

/** Adds one phase's svault operation counts into a running sum per operation. */
function addOps(into: Map<string, OpCounts>, ops: OpCounts[]): void {
  for (const o of ops) {
    const a = into.get(o.op) ?? { op: o.op, calls: 0, bytes: 0, totalMs: 0 };
    a.calls += o.calls;
    a.bytes += o.bytes;
    a.totalMs = Math.round((a.totalMs + o.totalMs) * 10) / 10;
    into.set(o.op, a);
  }
}

export interface BuildExtra {
  repo: { source: string; commit: string; files: number; packBytes: number; objects: number };
  project: { name: string; version: string; description: string; tarball: string; sha256: string; from: 'cache' | 'debian'; cFiles: number; hFiles: number; files: number; objects: number };
  /** The untimed native build run first: it loads the toolchain into the page cache and proves it works. */
  warmup: { seconds: number };
  /** Targets left out, and why (one that does not keep the mtimes tar sets cannot build a release tarball). */
  skipped: Partial<Record<TargetName, string>>;
  /** Each server's CPU seconds per phase, summed over the repeats (native has no server). */
  cpuSeconds: Partial<Record<TargetName, Record<string, number>>>;
  /** The timed commands' own CPU seconds per phase (their whole process trees), summed over the repeats. */
  clientCpuSeconds: Partial<Record<TargetName, Record<string, number>>>;
  /** svault's own per-operation counters per phase, summed over the repeats, most time first. */
  svaultOps: Record<string, OpCounts[]>;
}

/** The build-system files whose times make compares: they must keep the times the archive gives them. */
const BUILD_SYSTEM_FILES = ['configure.ac', 'aclocal.m4', 'configure', 'Makefile.am', 'Makefile.in'];

/**
 * Unpacks the tarball into the target and compares the build-system files' mtimes with those native got
 * (`want`). Null if they are kept (to the second), else why not.
 */
async function keepsTarTimes(t: Target, tarball: string, dir: string, want: Map<string, number>, cmd: (c: string, args: string[]) => Promise<unknown>): Promise<string | null> {
  const probe = path.join(t.dir, 'mtime-probe');
  try {
    await mkdir(probe, { recursive: true });
    await cmd('tar', ['-xf', tarball, '-C', probe]);
    for (const [f, ms] of want) {
      const got = statSync(path.join(probe, dir, f)).mtimeMs;
      if (Math.abs(got - ms) >= 1000) {
        return `it does not keep the file times tar sets (${f}: ${new Date(got).toISOString()}, the archive's ${new Date(ms).toISOString()}), so make would take the generated Makefile.in for stale and try to rerun automake`;
      }
    }
    return null;
  } catch (err) {
    return `unpacking the release into it failed: ${errorMessage(err)}`;
  } finally {
    await cmd('rm', ['-rf', probe]).catch(() => undefined);
  }
}

export async function buildWorkload(ctx: Ctx): Promise<WorkloadResult> {
  const start = begin(ctx);
  const env = buildEnv();
  const project = C_PROJECTS[buildProjectOf(ctx.opts)];
  const scratch = path.join(ctx.work, 'build-src');
  await mkdir(scratch, { recursive: true });
  const tmo = Math.max(ctx.opts.timeoutMs, 300_000);
  const cmd = (c: string, args: string[], cwd?: string, capture = false) => run(c, args, { env, cwd, timeoutMs: tmo, stdout: capture ? 'capture' : 'null' });

  // Phase 1's source: a bare copy of the project's own repository as it is now (its commits, not the
  // work tree), made once and repacked into one pack, as a clone over the network would leave it.
  ctx.progress.note('build: a bare copy of the repository, and the C project');
  const bare = path.join(scratch, 'repo.git');
  try {
    await cmd('git', ['-c', 'safe.directory=*', '-C', ctx.root, 'rev-parse', '--git-dir']);
  } catch (err) {
    throw new Error(`${ctx.root} is not a git repository, so there is nothing to clone: ${errorMessage(err)}`, { cause: err });
  }
  await cmd('git', ['-c', 'safe.directory=*', 'clone', '--bare', '--no-hardlinks', '--quiet', ctx.root, bare]);
  await cmd('git', ['-C', bare, 'gc', '--quiet', '--prune=now']);
  const commit = (await cmd('git', ['-C', bare, 'rev-parse', 'HEAD'], undefined, true)).stdout.trim();
  const repoFiles = (await cmd('git', ['-C', bare, 'ls-tree', '-r', '--name-only', 'HEAD'], undefined, true)).stdout.split('\n').filter(Boolean).length;
  const counts = Object.fromEntries(
    (await cmd('git', ['-C', bare, 'count-objects', '-v'], undefined, true)).stdout
      .split('\n')
      .map((l) => l.split(': '))
      .filter((kv) => kv.length === 2)
      .map(([k, v]) => [k, Number(v)]),
  ) as Record<string, number>;

  // Phase 2's source: the release tarball, fetched once (fixtures/c-project.ts) and kept in the scratch dir.
  const fetched = fetchCProject(project, scratch);
  const tarball = fetched.file;
  const listing = (await cmd('tar', ['-tf', tarball], undefined, true)).stdout.split('\n').filter((l) => l && !l.endsWith('/'));

  // An untimed native build first: it proves the toolchain works (gcc, make) and leaves it in the page
  // cache, so the first timed target does not load the compiler from disk.
  ctx.progress.note(`build: warming up with a native build of ${project.name}`);
  const warm = path.join(scratch, 'warmup');
  await mkdir(warm, { recursive: true });
  const w0 = performance.now();
  await cmd('git', ['clone', '--no-hardlinks', '--quiet', bare, path.join(warm, 'clone')]);
  await cmd('tar', ['-xf', tarball, '-C', warm]);
  const warmSrc = path.join(warm, project.dir);
  try {
    await cmd('./configure', [], warmSrc);
    await cmd('make', ['-j2'], warmSrc);
  } catch (err) {
    throw new Error(`the native build of ${project.name} failed, so the toolchain (gcc, make) is missing or broken: ${errorMessage(err)}`, { cause: err });
  }
  const objects = (await cmd('find', [warmSrc, '-name', '*.o'], undefined, true)).stdout.split('\n').filter(Boolean).length;
  const times = new Map(BUILD_SYSTEM_FILES.map((f) => [f, statSync(path.join(warmSrc, f)).mtimeMs]));
  const warmSeconds = Math.round((performance.now() - w0) / 100) / 10;
  await rm(warm, { recursive: true, force: true });

  // Leave out, and say why, a target that does not keep the times tar sets: make would take its Makefile.in
  // for older than its Makefile.am and rerun automake, which a release build must not need.
  const skipped: Partial<Record<TargetName, string>> = {};
  for (const t of ctx.targets) {
    const why = await keepsTarTimes(t, tarball, project.dir, times, cmd);
    if (why) {
      skipped[t.name] = why;
      ctx.progress.note(`build: leaving ${t.name} out: ${why}`);
    }
  }
  const sub: Ctx = { ...ctx, targets: ctx.targets.filter((t) => !skipped[t.name]) };
  const recs = newRecorders(sub);

  const cpu: BuildExtra['cpuSeconds'] = {};
  const clientCpu: BuildExtra['cpuSeconds'] = {};
  const opsBy = new Map<string, Map<string, OpCounts>>();
  const wl = 'build';
  await repeatOnTargets(sub, recs, null, ctx.opts.repeats, async (t, rep, rec) => {
    const clone = path.join(t.dir, 'clone');
    const buildDir = path.join(t.dir, 'build');
    const src = path.join(buildDir, project.dir);
    // Per phase: the server's CPU seconds and svault's own counters, read outside the timed commands.
    const phase = async (name: string, body: () => Promise<void>) => {
      const ops0 = t.opStats ? await t.opStats() : null;
      const cpu0 = t.pid !== null ? cpuSeconds(t.pid) : null;
      const client0 = childrenCpuSeconds();
      await body();
      const client1 = childrenCpuSeconds();
      const cpu1 = t.pid !== null ? cpuSeconds(t.pid) : null;
      const add = (into: BuildExtra['cpuSeconds'], v: number) => {
        const c = (into[t.name] ??= {});
        c[name] = Math.round(((c[name] ?? 0) + v) * 100) / 100;
      };
      add(clientCpu, client1 - client0);
      if (cpu0 !== null && cpu1 !== null) add(cpu, cpu1 - cpu0);
      const ops1 = ops0 && t.opStats ? await t.opStats() : null;
      if (ops0 && ops1) {
        let m = opsBy.get(name);
        if (!m) opsBy.set(name, (m = new Map()));
        addOps(m, diffOps(ops0, ops1));
      }
    };

    // Phase 1: git clone --no-hardlinks, git status, git log -1 in the clone.
    let cloneSeconds = 0;
    await phase('clone', async () => {
      ctx.progress.step(wl, t.name, 'git clone', rep);
      cloneSeconds += (await cmd('git', ['clone', '--no-hardlinks', '--quiet', bare, clone])).seconds;
      cloneSeconds += (await cmd('git', ['status'], clone)).seconds;
      cloneSeconds += (await cmd('git', ['log', '-1'], clone)).seconds;
    });
    rec.add('clone', `phase 1: git clone --no-hardlinks (${repoFiles} files), git status, git log -1`, 's', cloneSeconds, { files: repoFiles });
    const head = (await cmd('git', ['rev-parse', 'HEAD'], clone, true)).stdout.trim();
    const dirty = (await cmd('git', ['status', '--porcelain'], clone, true)).stdout.trim();
    if (head !== commit || dirty) throw new Error(`the clone is not the repository: HEAD ${head} (want ${commit})${dirty ? `, git status: ${dirty.slice(0, 300)}` : ''}`);

    // Unpacking the release is how the source gets there: timed, but outside the phases and the goal.
    await mkdir(buildDir, { recursive: true });
    await phase('unpack', async () => {
      ctx.progress.step(wl, t.name, 'unpack', rep);
      rec.add('unpack', `unpack the release tarball (tar -x, ${listing.length} files; not part of the phases)`, 's', (await cmd('tar', ['-xf', tarball, '-C', buildDir])).seconds, { files: listing.length });
    });

    // Phase 2: ./configure, make -j2, make clean.
    let configure = 0;
    let make = 0;
    let clean = 0;
    await phase('build', async () => {
      ctx.progress.step(wl, t.name, 'configure', rep);
      configure = (await cmd('./configure', [], src)).seconds;
      ctx.progress.step(wl, t.name, 'make -j2', rep);
      make = (await cmd('make', ['-j2'], src)).seconds;
    });
    // The program built inside the target runs, and says what it should (outside the timing).
    const out = (await cmd(path.join(src, project.name), [...project.check.args], src, true)).stdout;
    if (!project.check.expect.test(out)) throw new Error(`the ${project.name} built in ${t.name} printed ${JSON.stringify(out.slice(0, 200))}, not ${String(project.check.expect)}`);
    await phase('build', async () => {
      ctx.progress.step(wl, t.name, 'make clean', rep);
      clean = (await cmd('make', ['clean'], src)).seconds;
    });
    rec.add('configure', `./configure (${project.name} ${project.version})`, 's', configure);
    rec.add('make', `make -j2 (${objects} objects)`, 's', make);
    rec.add('make-clean', 'make clean', 's', clean);
    rec.add('build', `phase 2: ./configure, make -j2, make clean`, 's', configure + make + clean);
    rec.add('total', 'both phases: clone and build (the goal: svault ≤ 1.2× native, ≤ 1× gocryptfs)', 's', cloneSeconds + configure + make + clean);
    if (rep === 0) rec.checks.push(`clone at ${commit.slice(0, 10)}, clean git status; the built ${project.name} runs`);

    await cmd('rm', ['-rf', clone, buildDir]);
  }, true);

  const extra: BuildExtra = {
    repo: { source: ctx.root, commit, files: repoFiles, packBytes: (counts['size-pack'] ?? 0) * 1024, objects: (counts['in-pack'] ?? 0) + (counts.count ?? 0) },
    project: {
      name: project.name,
      version: project.version,
      description: project.description,
      tarball: project.tarball,
      sha256: project.sha256,
      from: fetched.from,
      cFiles: listing.filter((f) => f.endsWith('.c')).length,
      hFiles: listing.filter((f) => f.endsWith('.h')).length,
      files: listing.length,
      objects,
    },
    warmup: { seconds: warmSeconds },
    skipped,
    cpuSeconds: cpu,
    clientCpuSeconds: clientCpu,
    svaultOps: Object.fromEntries([...opsBy].map(([k, m]) => [k, [...m.values()].sort((x, y) => y.totalMs - x.totalMs)])),
  };
  await rm(scratch, { recursive: true, force: true });
  return finish(
    sub,
    'build',
    'a real workload: git clone, then configure and make',
    `Phase 1: \`git clone --no-hardlinks\` of a bare copy of this project's own repository (commit ${commit.slice(0, 10)}, ${repoFiles} files, one pack of ${humanBytes(extra.repo.packBytes)}) into the target, then \`git status\` and \`git log -1\` in the clone. Phase 2: ${project.description}, from Debian's archive (sha256 pinned), unpacked into the target (timed apart, outside the phases), then \`./configure\`, \`make -j2\` and \`make clean\` inside it. The page cache is kept (a build after a clone sees a warm cache); an untimed native build first loads the toolchain; the order of the targets rotates from repeat to repeat. A target that does not keep the mtimes tar sets is left out (make would rerun automake there). The goal is on the sum of both phases.`,
    start,
    recs,
    extra as unknown as Record<string, unknown>,
  );
}

export const WORKLOADS: Record<WorkloadName, (ctx: Ctx) => Promise<WorkloadResult>> = {
  cp: cpWorkload,
  dd: ddWorkload,
  small: smallWorkload,
  tree: treeWorkload,
  stream4g: streamWorkload,
  build: buildWorkload,
  sparse: sparseWorkload,
};

/** Timed phases per workload, for the progress bar. */
export function stepsOf(name: WorkloadName, opts: BenchOptions, targets: number): number {
  switch (name) {
    case 'cp':
      return opts.sizes.length * opts.repeats * targets * 2;
    case 'dd':
      return opts.repeats * targets * 2;
    case 'small':
      return opts.small.length * opts.repeats * targets * 2;
    case 'tree':
      return opts.repeats * targets * 5;
    case 'stream4g':
      return opts.streamRepeats * targets * 2;
    case 'sparse':
      return opts.repeats * targets * 9;
    case 'build':
      return opts.repeats * targets * 5;
  }
}
