// The report: its JSON shape, the summary derived from the figures (design targets, ratios, memory over
// the long stream), and the markdown rendering.
import type { MachineInfo, Backing, CacheDropLog, Versions } from './system.js';
import { TARGET_LABELS, TARGET_NAMES, type TargetName } from './targets.js';
import { formatDuration, GiB, humanBytes, MiB } from './util.js';
import type { BenchOptions, Figure, WorkloadName, WorkloadResult } from './workloads.js';
import type { RssSample } from './proc.js';

export const SCHEMA = 'svault-bench/1';

export interface TargetEntry {
  present: boolean;
  label: string;
  /** Why the target is not in this run. */
  skipped?: string;
  info?: Record<string, unknown>;
}

export interface BenchReport {
  schema: typeof SCHEMA;
  /** Start of the run, ISO 8601 UTC. */
  timestamp: string;
  finishedAt: string;
  seconds: number;
  command: string[];
  machine: MachineInfo;
  versions: Versions;
  /** The run's options without the machine-local ones, the cp sizes as labels. */
  options: Omit<BenchOptions, 'sizes' | 'ballastBytes' | 'tmpfsBytes' | 'out' | 'timeoutMs'> & { sizes: string[] };
  environment: {
    /** The run's temporary directory (tmpfs and mount points under it), removed at the end. */
    workDir: string;
    backing: Omit<Backing, 'dir'>;
    ballastBytes: number;
    cacheDrops: CacheDropLog;
    build: string;
    /** 1-minute load average sampled every 10 s through the run. */
    load: { start: number; end: number; mean: number; max: number };
  };
  targets: Record<TargetName, TargetEntry>;
  workloads: Partial<Record<WorkloadName, WorkloadResult>>;
  summary: Summary;
  files: { json: string; markdown: string; throughputSvg: string; rssSvg: string };
  /** False if a target failed or a check did not hold. */
  ok: boolean;
  errors: string[];
}

export type Ratios = Partial<Record<Exclude<TargetName, 'svault'>, number>>;

export interface DesignRow {
  input: string;
  operation: string;
  /** workload/figure the row comes from. */
  source: string | null;
  seconds: number | null;
  mibps: number | null;
  target: string;
  limitSeconds: number;
  status: 'PASS' | 'FAIL' | 'not measured';
  extrapolated: boolean;
  note?: string;
  ratios: Ratios;
}

export interface StreamMemory {
  direction: 'write' | 'read';
  bytes: number;
  /** RSS at 0 %, 25 %, 50 %, 75 % and 100 % of the bytes moved. */
  at: Array<{ fraction: number; rss: number }>;
  peak: number;
  /** Peak after the first quarter minus RSS at the first quarter. */
  growthAfterQuarter: number;
  flat: boolean;
}

/** The floors compared with each other and with gocryptfs, on one figure. */
export interface FloorRow {
  /** workload/figure, or workload/server-cpu for the server's CPU seconds over the whole workload. */
  source: string;
  label: string;
  unit: Figure['unit'] | 'cpu-s';
  values: Partial<Record<FloorPeer, number>>;
  /** floor-devfuse's value over the fuse-native floor's, and over gocryptfs's (<1: devfuse lower). */
  devfuseOverFloor?: number;
  devfuseOverGocryptfs?: number;
  /** The issue's goal for this figure: floor-devfuse's value at most `limit` times the other's. */
  goal?: { against: 'floor' | 'gocryptfs'; limit: number; met: boolean | null };
}

export type FloorPeer = 'floor' | 'floor-devfuse' | 'gocryptfs';

export interface Summary {
  designTargets: DesignRow[];
  /** svault's median time divided by each other target's, per workload and figure (>1: svault slower). */
  ratios: Partial<Record<WorkloadName, Record<string, Ratios>>>;
  streamMemory: StreamMemory[];
  /** The pass-through on both transports against gocryptfs; empty without floor-devfuse (and in older reports). */
  floorTransports?: FloorRow[];
  /**
   * The sparse workload's rows of the design-target table (issue 26): the 1 TiB sparse file in, out and
   * checksummed, and the 64 GiB image against svault's own time for its data written dense. Empty when the
   * workload did not run; kept apart from designTargets, whose eight rows older reports have.
   */
  sparse?: DesignRow[];
  /** The build workload (issue 21): each phase on every target, and the goals on the sum. Absent when it did not run. */
  build?: BuildSummary;
}

/** One figure of the build workload on every target. */
export interface BuildRow {
  /** The figure's key: clone and build are the two phases, total their sum; the rest are their parts. */
  key: string;
  label: string;
  /** Median seconds per target. */
  seconds: Partial<Record<TargetName, number>>;
  /** Each target's median over native's (1.10× = 10 % slower than no FUSE at all). */
  overNative: Partial<Record<TargetName, number>>;
  /** svault's median over each other target's. */
  svault: Ratios;
}

/** A goal of issue 21 on the sum of both phases: svault's time at most `limit` times the other target's. */
export interface BuildGoal {
  against: 'native' | 'gocryptfs';
  limit: number;
  /** null when the other target (or svault) was not in the run. */
  ratio: number | null;
  met: boolean | null;
}

export interface BuildSummary {
  /** The C project compiled, e.g. "gzip 1.12". */
  project: string;
  rows: BuildRow[];
  goals: BuildGoal[];
}

/** Issue 21: the git clone and the configure-and-make together take svault ≤ 1.2× native's time and ≤ gocryptfs's. */
export const BUILD_GOALS: ReadonlyArray<{ against: BuildGoal['against']; limit: number }> = [
  { against: 'native', limit: 1.2 },
  { against: 'gocryptfs', limit: 1 },
];

/** The build workload's rows, phases and their sum first. */
const BUILD_ROWS = ['clone', 'build', 'total', 'configure', 'make', 'make-clean', 'unpack'] as const;

// ---------------------------------------------------------------------------
// Summary

export function figureOf(r: Pick<BenchReport, 'workloads'>, workload: WorkloadName, target: TargetName, key: string): Figure | undefined {
  return r.workloads[workload]?.targets[target]?.figures[key];
}

export function computeRatios(r: Pick<BenchReport, 'workloads'>): Summary['ratios'] {
  const out: Summary['ratios'] = {};
  for (const [wname, w] of Object.entries(r.workloads) as Array<[WorkloadName, WorkloadResult]>) {
    const sv = w.targets.svault;
    if (!sv) continue;
    const per: Record<string, Ratios> = {};
    for (const [key, f] of Object.entries(sv.figures)) {
      const ratios: Ratios = {};
      for (const other of TARGET_NAMES) {
        if (other === 'svault') continue;
        const o = w.targets[other]?.figures[key];
        if (o && o.time.median > 0) ratios[other] = f.time.median / o.time.median;
      }
      per[key] = ratios;
    }
    out[wname] = per;
  }
  return out;
}

function seconds(f: Figure): number {
  return f.unit === 'ms/file' ? f.time.median / 1000 : f.time.median;
}

export function streamMemory(r: Pick<BenchReport, 'workloads'>): StreamMemory[] {
  const w = r.workloads.stream4g?.targets.svault;
  if (!w?.rss) return [];
  const out: StreamMemory[] = [];
  for (const direction of ['write', 'read'] as const) {
    const samples = w.rss[direction].filter((s): s is RssSample & { bytes: number } => s.bytes !== null);
    const bytes = w.figures[`stream-${direction}`]?.bytes ?? samples[samples.length - 1]?.bytes ?? 0;
    if (samples.length < 2 || bytes <= 0) continue;
    const rssAt = (fraction: number): number => {
      const want = fraction * bytes;
      let best = samples[0] as RssSample;
      for (const s of samples) if (Math.abs((s.bytes as number) - want) < Math.abs((best.bytes as number) - want)) best = s;
      return best.rss;
    };
    const quarter = rssAt(0.25);
    const later = samples.filter((s) => s.bytes >= 0.25 * bytes).map((s) => s.rss);
    const peak = Math.max(...samples.map((s) => s.rss));
    const growth = Math.max(...later, quarter) - quarter;
    out.push({
      direction,
      bytes,
      at: [0, 0.25, 0.5, 0.75, 1].map((fraction) => ({ fraction, rss: rssAt(fraction) })),
      peak,
      growthAfterQuarter: growth,
      flat: growth <= Math.max(32 * MiB, 0.1 * quarter),
    });
  }
  return out;
}

const TB = 1e12;

export function designTargets(r: Pick<BenchReport, 'workloads' | 'options'>): DesignRow[] {
  const ratios = computeRatios(r);
  const rows: DesignRow[] = [];
  const add = (input: string, operation: string, workload: WorkloadName, key: string, target: string, limitSeconds: number, extrapolate?: number) => {
    const f = figureOf(r, workload, 'svault', key);
    const base = { input, operation, target, limitSeconds, ratios: ratios[workload]?.[key] ?? {} };
    if (!f) {
      rows.push({ ...base, source: null, seconds: null, mibps: null, status: 'not measured', extrapolated: false });
      return;
    }
    let s = seconds(f);
    let mibps = f.mibps?.median ?? null;
    let note: string | undefined;
    if (extrapolate !== undefined && f.bytes) {
      const bytesPerSecond = f.bytes / f.time.median;
      s = extrapolate / bytesPerSecond;
      mibps = bytesPerSecond / MiB;
      note = `extrapolated from a measured ${humanBytes(f.bytes)} run${f.bytes < 4 * GiB ? ' (below the 4 GiB minimum: indicative only)' : ''}`;
    }
    rows.push({ ...base, source: `${workload}/${key}`, seconds: s, mibps, status: s < limitSeconds ? 'PASS' : 'FAIL', extrapolated: extrapolate !== undefined, ...(note ? { note } : {}) });
  };
  add('1 KiB', 'write (create, write, close)', 'small', 'small-1K-write', '1 KB < 1 ms', 0.001);
  add('1 KiB', 'read (open, read, close)', 'small', 'small-1K-read', '1 KB < 1 ms', 0.001);
  add('1 MiB', 'write (create, write, close)', 'small', 'small-1M-write', '1 MB < 10 ms', 0.01);
  add('1 MiB', 'read (open, read, close)', 'small', 'small-1M-read', '1 MB < 10 ms', 0.01);
  add('1 GiB', 'cp in', 'cp', 'cp-in-1G', '1 GB < 100 s', 100);
  add('1 GiB', 'cp out', 'cp', 'cp-out-1G', '1 GB < 100 s', 100);
  add('1 TB', 'stream write (dd, fsync)', 'stream4g', 'stream-write', '1 TB < 1000 s (≥ 1 GB/s)', 1000, TB);
  add('1 TB', 'stream read (dd)', 'stream4g', 'stream-read', '1 TB < 1000 s (≥ 1 GB/s)', 1000, TB);
  return rows;
}

/**
 * The Node pass-through on svault's own transport against the fuse-native one and gocryptfs. The goals:
 * per 1 KiB file and on the untar no slower than gocryptfs; server CPU per GiB at most half of fuse-native's.
 */
export function floorTransports(r: Pick<BenchReport, 'workloads'>): FloorRow[] {
  if (!Object.values(r.workloads).some((w) => w?.targets['floor-devfuse'])) return [];
  const rows: FloorRow[] = [];
  const peers: FloorPeer[] = ['floor', 'floor-devfuse', 'gocryptfs'];
  const add = (source: string, label: string, unit: FloorRow['unit'], value: (t: FloorPeer) => number | undefined, goal?: { against: 'floor' | 'gocryptfs'; limit: number }) => {
    const values: FloorRow['values'] = {};
    for (const t of peers) {
      const v = value(t);
      if (v !== undefined && Number.isFinite(v)) values[t] = v;
    }
    const dv = values['floor-devfuse'];
    if (dv === undefined) return;
    const over = (o: number | undefined) => (o !== undefined && o > 0 ? dv / o : undefined);
    const row: FloorRow = { source, label, unit, values };
    const overFloor = over(values.floor);
    const overGocryptfs = over(values.gocryptfs);
    if (overFloor !== undefined) row.devfuseOverFloor = overFloor;
    if (overGocryptfs !== undefined) row.devfuseOverGocryptfs = overGocryptfs;
    if (goal) {
      const ratio = goal.against === 'floor' ? overFloor : overGocryptfs;
      row.goal = { ...goal, met: ratio === undefined ? null : ratio <= goal.limit };
    }
    rows.push(row);
  };
  const fig = (w: WorkloadName, key: string, label: string, goal?: { against: 'floor' | 'gocryptfs'; limit: number }) => {
    const f = figureOf(r, w, 'floor-devfuse', key);
    if (f) add(`${w}/${key}`, label, f.unit, (t) => figureOf(r, w, t, key)?.time.median, goal);
  };
  const cpu = (w: WorkloadName) => add(`${w}/server-cpu`, `server CPU seconds, ${w} workload`, 'cpu-s', (t) => r.workloads[w]?.targets[t]?.process?.cpuSeconds ?? undefined);
  fig('small', 'small-1K-write', '1 KiB file write (create, write, close)', { against: 'gocryptfs', limit: 1 });
  fig('small', 'small-1K-read', '1 KiB file read (open, read, close)', { against: 'gocryptfs', limit: 1 });
  fig('tree', 'untar', 'untar of the source tree', { against: 'gocryptfs', limit: 1 });
  fig('dd', 'dd-write-cpu', 'server CPU per GiB written (dd)', { against: 'floor', limit: 0.5 });
  fig('dd', 'dd-read-cpu', 'server CPU per GiB read (dd)', { against: 'floor', limit: 0.5 });
  fig('stream4g', 'stream-write-cpu', 'server CPU per GiB written (long stream)', { against: 'floor', limit: 0.5 });
  fig('stream4g', 'stream-read-cpu', 'server CPU per GiB read (long stream)', { against: 'floor', limit: 0.5 });
  fig('small', 'small-1M-write', '1 MiB file write');
  fig('small', 'small-1M-read', '1 MiB file read');
  fig('tree', 'ls-lR', 'ls -lR of the tree');
  fig('tree', 'read-all', 'read all of the tree');
  fig('tree', 'rm-rf', 'rm -rf of the tree');
  fig('dd', 'dd-write', 'dd write');
  fig('dd', 'dd-read', 'dd read');
  cpu('small');
  cpu('tree');
  return rows;
}

/** The sparse workload's design rows: measured, never extrapolated. */
export function sparseTargets(r: Pick<BenchReport, 'workloads'>): DesignRow[] {
  const w = r.workloads.sparse;
  if (!w) return [];
  const ratios = computeRatios(r).sparse ?? {};
  const x = (w.extra ?? {}) as { fileBytes?: number; fileDataBytes?: number; imageBytes?: number; imageDataBytes?: number; denseBytes?: number };
  const size = (b: number | undefined) => (b === undefined ? '?' : b >= 2 ** 40 && b % 2 ** 40 === 0 ? `${b / 2 ** 40} TiB` : humanBytes(b));
  const rows: DesignRow[] = [];
  const add = (input: string, operation: string, key: string, target: string, limit: number | null, note?: string) => {
    const f = w.targets.svault?.figures[key];
    const base = { input, operation, target, limitSeconds: limit ?? 0, ratios: ratios[key] ?? {}, extrapolated: false, ...(note ? { note } : {}) };
    if (!f || limit === null) rows.push({ ...base, source: f ? `sparse/${key}` : null, seconds: f ? seconds(f) : null, mibps: f?.mibps?.median ?? null, status: 'not measured' });
    else rows.push({ ...base, source: `sparse/${key}`, seconds: seconds(f), mibps: f.mibps?.median ?? null, status: seconds(f) <= limit ? 'PASS' : 'FAIL' });
  };
  const file = `${size(x.fileBytes)} sparse (${size(x.fileDataBytes)} data)`;
  add(file, 'cp --sparse=always in', 'sparse-cp-in', `${size(x.fileBytes)} sparse < 10 s`, 10);
  add(file, 'cp --sparse=always out', 'sparse-cp-out', `${size(x.fileBytes)} sparse < 10 s`, 10);
  add(file, 'checksum skipping holes (SEEK_DATA)', 'sparse-digest', `${size(x.fileBytes)} sparse < 10 s`, 10);
  const image = `${size(x.imageBytes)} image (1 %: ${size(x.imageDataBytes)})`;
  for (const [op, key, ref] of [
    ['cp --sparse=always in', 'image-cp-in', 'dense-cp-in'],
    ['cp --sparse=always out', 'image-cp-out', 'dense-cp-out'],
    ['tar --sparse in (tar -x)', 'image-tar-in', 'dense-cp-in'],
    ['tar --sparse out (tar -c)', 'image-tar-out', 'dense-cp-out'],
  ] as const) {
    const d = w.targets.svault?.figures[ref];
    const limit = d ? 1.2 * seconds(d) : null;
    add(image, op, key, `≤ 1.2× svault's dense ${ref.endsWith('in') ? 'cp in' : 'cp out'}${d ? ` (${fmtSeconds(limit)})` : ''}`, limit, d ? `${size(x.imageBytes)} image ${op}: ${fmtRatio(seconds(w.targets.svault?.figures[key] ?? d) / seconds(d))} svault's time for the same ${size(x.denseBytes)} written dense (${fmtSeconds(seconds(d))})` : undefined);
  }
  return rows;
}

/** The build workload's phases on every target, with ratios to native and svault's to each, and the goals. */
export function buildSummary(r: Pick<BenchReport, 'workloads'>): BuildSummary | undefined {
  const w = r.workloads.build;
  if (!w) return undefined;
  const ratios = computeRatios(r).build ?? {};
  const rows: BuildRow[] = [];
  for (const key of BUILD_ROWS) {
    const seconds: BuildRow['seconds'] = {};
    let label: string = key;
    for (const t of TARGET_NAMES) {
      const f = w.targets[t]?.figures[key];
      if (!f) continue;
      seconds[t] = f.time.median;
      label = f.label;
    }
    if (Object.keys(seconds).length === 0) continue;
    const overNative: BuildRow['overNative'] = {};
    const n = seconds.native;
    if (n !== undefined && n > 0) for (const [t, v] of Object.entries(seconds) as Array<[TargetName, number]>) if (t !== 'native') overNative[t] = v / n;
    rows.push({ key, label, seconds, overNative, svault: ratios[key] ?? {} });
  }
  const total = rows.find((x) => x.key === 'total');
  const goals = BUILD_GOALS.map(({ against, limit }) => {
    const ratio = total?.svault[against];
    return { against, limit, ratio: ratio ?? null, met: ratio === undefined ? null : ratio <= limit };
  });
  const p = (w.extra ?? {}) as { project?: { name?: string; version?: string } };
  const project = p.project?.name ? `${p.project.name}${p.project.version ? ` ${p.project.version}` : ''}` : '?';
  return { project, rows, goals };
}

export function summarize(r: Pick<BenchReport, 'workloads' | 'options'>): Summary {
  const build = buildSummary(r);
  return { designTargets: designTargets(r), ratios: computeRatios(r), streamMemory: streamMemory(r), floorTransports: floorTransports(r), sparse: sparseTargets(r), ...(build ? { build } : {}) };
}

function fmtGoal(g: BuildGoal): string {
  const what = `svault/${g.against} ${g.ratio === null ? '—' : fmtRatio(g.ratio)}, goal ≤ ${g.limit}×`;
  return `${what}: ${g.met === null ? 'not measured' : g.met ? 'met' : 'NOT MET'}`;
}

/** A few lines for the end of `npm run bench`: the figures a goal is set on (the build workload's). */
export function summaryLines(r: Pick<BenchReport, 'summary'>): string[] {
  const b = r.summary.build;
  if (!b) return [];
  const L = [`build workload (git clone, then ${b.project}: configure, make -j2, make clean), medians:`];
  for (const row of b.rows.filter((x) => x.key === 'clone' || x.key === 'build' || x.key === 'total')) {
    const name = row.key === 'total' ? 'both phases' : row.key === 'clone' ? 'phase 1, clone' : 'phase 2, build';
    const times = (Object.entries(row.seconds) as Array<[TargetName, number]>).map(([t, v]) => `${t} ${fmtSeconds(v)}${row.overNative[t] !== undefined ? ` (${fmtRatio(row.overNative[t])})` : ''}`);
    L.push(`  ${name}: ${times.join(', ')}; svault/gocryptfs ${fmtRatio(row.svault.gocryptfs)}`);
  }
  L.push(`  goals on both phases: ${b.goals.map(fmtGoal).join('; ')}`);
  return L;
}

// ---------------------------------------------------------------------------
// Reference figures: native, floor and gocryptfs on this machine class, from another run.

export const REFERENCE: Array<{ target: string; cells: string[] }> = [
  { target: 'native', cells: ['2894 MiB/s', '6375 MiB/s', '2842 MiB/s', '2946 MiB/s', '0.004 / 0.002 ms', '0.10 s', '0.04 s', '0.21 s', '0.05 s'] },
  { target: 'Node floor', cells: ['516 MiB/s', '985 MiB/s', '564 MiB/s', '1177 MiB/s', '0.38 / 0.36 ms', '5.7 s', '1.1 s', '5.1 s', '1.8 s'] },
  { target: 'gocryptfs', cells: ['451 MiB/s', '1016 MiB/s', '544 MiB/s', '1171 MiB/s', '0.14 / 0.10 ms', '3.0 s', '0.71 s', '1.6 s', '0.60 s'] },
];

// ---------------------------------------------------------------------------
// Markdown

function fmtSeconds(s: number | null): string {
  if (s === null) return '—';
  if (s < 0.001) return `${(s * 1000).toFixed(3)} ms`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  if (s < 100) return `${s.toFixed(2)} s`;
  return `${s.toFixed(0)} s`;
}

export function fmtRate(mibps: number | null | undefined): string {
  if (mibps === null || mibps === undefined) return '—';
  return `${mibps >= 100 ? mibps.toFixed(0) : mibps >= 10 ? mibps.toFixed(1) : mibps.toFixed(2)} MiB/s`;
}

export function fmtRatio(x: number | undefined): string {
  if (x === undefined) return '—';
  return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

function fmtFigure(f: Figure | undefined): string {
  if (!f) return '—';
  if (f.unit === 'ms/file') return `${f.time.median.toFixed(3)} ms`;
  if (f.unit === 'cpu-s/GiB') return `${f.time.median.toFixed(2)} CPU s/GiB`;
  return fmtSeconds(f.time.median);
}

export function fmtMiB(b: number | null | undefined): string {
  return b === null || b === undefined ? '—' : `${(b / MiB).toFixed(0)} MiB`;
}

/** Targets a workload left out, and why (sparse: they do not answer SEEK_DATA; build: they do not keep tar's mtimes). */
function skippedIn(r: BenchReport, w: WorkloadName): Record<string, string> {
  return ((r.workloads[w]?.extra ?? {}) as { skipped?: Record<string, string> }).skipped ?? {};
}

function sparseSkipped(r: BenchReport): Record<string, string> {
  return skippedIn(r, 'sparse');
}

const presentTargets = (r: BenchReport): TargetName[] => TARGET_NAMES.filter((t) => r.targets[t]?.present);

export function renderMarkdown(r: BenchReport): string {
  const L: string[] = [];
  const targets = presentTargets(r);
  const others = targets.filter((t) => t !== 'svault');
  L.push(`# svault benchmark, ${r.timestamp}`);
  L.push('');
  L.push(`${r.options.quick ? '**Quick run (--quick): tiny sizes, for testing the harness; the figures mean little.** ' : ''}` + `Run took ${formatDuration(r.seconds)}. JSON: \`${r.files.json}\`. Charts: [throughput](${r.files.throughputSvg}), [svault RSS](${r.files.rssSvg}).`);
  L.push('');
  L.push(`- Machine: ${r.machine.cpuModel}, ${r.machine.cores} cores, ${humanBytes(r.machine.memTotalBytes)} RAM, ${r.machine.os}, kernel ${r.machine.kernel}${r.machine.virtualization ? `, ${r.machine.virtualization} VM` : ''}.`);
  L.push(`- Versions: Node ${r.versions.node}, svault ${r.versions.svault} (${r.versions.git.commit?.slice(0, 10) ?? 'no git'}${r.versions.git.dirty ? ', uncommitted changes' : ''}), fuse-native ${r.versions.fuseNative ?? '?'}, ${r.versions.gocryptfs ?? 'no gocryptfs'}, ${r.versions.securefs ?? 'no securefs'}, ${r.versions.coreutils ?? ''}, ${r.versions.tar ?? ''}.`);
  const sv = r.targets.svault?.info;
  L.push(`- svault: piece size ${String(sv?.pieceSize ?? r.options.pieceSize)} bytes, chaff ratio ${String(sv?.chaffRatio ?? r.options.chaff)}${sv?.cipher ? `, ${String(sv.cipher)}` : ''}${sv?.aead ? ` through ${String(sv.aead)}` : ''}.`);
  const sf = r.targets.securefs?.present ? r.targets.securefs.info : undefined;
  if (sf) L.push(`- securefs: format ${String(sf.format ?? '?')}${sf.variant ? ` (${String(sf.variant)})` : ''}${sf.cipher ? `, ${String(sf.cipher)}` : ''}${sf.blockSize ? `, blocks of ${String(sf.blockSize)}` : ''}, its defaults otherwise.`);
  L.push(`- Options: repeats ${r.options.repeats} (stream ${r.options.streamRepeats}), cp sizes ${r.options.sizes.join(', ')}, dd ${humanBytes(r.options.ddBytes)}, stream ${humanBytes(r.options.streamBytes)}, small files ${r.options.small.map((s) => `${s.count} x ${humanBytes(s.size)}`).join(' and ')}, tree ${r.options.tree.files} files / ${r.options.tree.dirs} dirs (seed ${r.options.tree.seed}), workloads ${r.options.only.join(', ')}.`);
  const b = r.environment.backing;
  L.push(`- Backing stores: ${b.kind === 'tmpfs' ? `a tmpfs of ${humanBytes(b.sizeBytes ?? 0)} mounted for the run` : `**not a tmpfs**: ${b.note ?? ''}`}; ballast ${humanBytes(r.environment.ballastBytes)} (freed just before each phase of ≥ 32 MiB, written back after).`);
  const cd = r.environment.cacheDrops;
  if (cd.skipped) {
    L.push(`- Page caches were **not** dropped before read phases (\`--no-cache-drop\`): reads may have been served from the page cache, and their figures flatter the FUSE targets.`);
  } else if (cd.failed > 0) {
    L.push(`- **Page caches could NOT be dropped** before ${cd.failed} of ${cd.attempted} read phases (${cd.error ?? 'unknown error'}): those reads may have been served from the page cache, and their figures flatter the FUSE targets.`);
  } else {
    L.push(`- Page caches dropped (\`sync; echo 3 > /proc/sys/vm/drop_caches\`) before every read phase: ${cd.attempted} times, all succeeded.`);
  }
  const load = r.environment.load ?? { start: 0, end: 0, mean: 0, max: 0 };
  const busy = load.mean > r.machine.cores * 0.75;
  if (r.environment.load) L.push(`- Load average (1 min) through the run: mean ${load.mean.toFixed(2)}, max ${load.max.toFixed(2)} on ${r.machine.cores} cores${busy ? ': **the machine was busy with other work, so absolute figures are low and noisy; compare the ratios**' : ''}.`);
  for (const t of TARGET_NAMES) {
    const e = r.targets[t];
    if (e && !e.present) L.push(`- **${e.label} skipped**: ${e.skipped ?? 'not in this run'}.`);
  }
  if (r.errors.length) {
    L.push('');
    L.push('**Errors:**');
    for (const e of r.errors) L.push(`- ${e}`);
  }

  // Design targets
  L.push('');
  L.push('## svault against the design targets');
  L.push('');
  L.push('Ratios are svault\'s time divided by the other target\'s for the same figure in this run (2.00× = svault takes twice as long).');
  L.push('');
  L.push(`| Input size | Operation | Time | Throughput | Target | Status | ${others.map((o) => `svault/${o === 'floor' ? 'floor' : o}`).join(' | ')} |`);
  L.push(`|---|---|---|---|---|---|${others.map(() => '---').join('|')}|`);
  const designRows = [...r.summary.designTargets, ...(r.summary.sparse ?? [])];
  for (const row of designRows) {
    const time = row.seconds === null ? 'not measured' : `${fmtSeconds(row.seconds)}${row.extrapolated ? ' (extrapolated)' : ''}`;
    L.push(`| ${row.input} | ${row.operation} | ${time} | ${fmtRate(row.mibps)} | ${row.target} | ${row.status} | ${others.map((o) => fmtRatio(row.ratios[o])).join(' | ')} |`);
  }
  const notes = r.summary.designTargets.filter((d) => d.note).map((d) => `${d.input} ${d.operation}: ${d.note}`);
  for (const d of r.summary.sparse ?? []) if (d.note) notes.push(d.note);
  const unmeasured = r.summary.designTargets.filter((d) => d.status === 'not measured').map((d) => `${d.input} ${d.operation}`);
  L.push('');
  L.push('1 KiB and 1 MiB rows: mean per file from the small-files workload; 1 GiB rows: cp of one file; 1 TB rows: the long stream\'s throughput carried to 10¹² bytes.');
  for (const n of notes) L.push(`- ${n}`);
  if (unmeasured.length) L.push(`- Not measured in this run: ${unmeasured.join(', ')} (see --sizes / --only).`);
  if (r.summary.sparse?.length) {
    L.push('- Sparse rows (`--only sparse`): measured, not extrapolated; svault and native, and a peer only if it answers SEEK_DATA. The image rows are held to 1.2× svault\'s own time for the same data written as a dense file.');
    for (const [t, why] of Object.entries(sparseSkipped(r))) L.push(`- ${TARGET_LABELS[t as TargetName]} left out of the sparse rows: ${why}.`);
  }

  // The real workload (issue 21)
  const build = r.summary.build;
  if (build) {
    const cols = targets;
    L.push('');
    L.push('## A real workload: git clone, then configure and make');
    L.push('');
    L.push(`Phase 1: \`git clone --no-hardlinks\` of this project's own repository into the target, \`git status\`, \`git log -1\`. Phase 2: ${build.project} (a GNU release tarball) built inside the target: \`./configure\`, \`make -j2\`, \`make clean\`. Median seconds, and in brackets each target's time over native's; the goals (issue 21) are on both phases together.`);
    L.push('');
    L.push(`| Figure | ${cols.map((t) => TARGET_LABELS[t]).join(' | ')} | svault/native | svault/gocryptfs |`);
    L.push(`|---|${cols.map(() => '---').join('|')}|---|---|`);
    for (const row of build.rows) {
      const name = row.key === 'total' ? '**both phases**' : row.key === 'clone' || row.key === 'build' ? `**${row.label}**` : row.label;
      const cells = cols.map((t) => {
        const v = row.seconds[t];
        if (v === undefined) return '—';
        const o = row.overNative[t];
        return `${fmtSeconds(v)}${o !== undefined ? ` (${fmtRatio(o)})` : ''}`;
      });
      L.push(`| ${name} | ${cells.join(' | ')} | ${fmtRatio(row.svault.native)} | ${fmtRatio(row.svault.gocryptfs)} |`);
    }
    L.push('');
    for (const g of build.goals) {
      const what = `svault ≤ ${g.limit}× ${g.against === 'native' ? 'native' : 'gocryptfs'} on both phases`;
      L.push(`- ${what}: ${g.met === null ? `not measured (${g.against} not in this run)` : `${fmtRatio(g.ratio ?? undefined)}, ${g.met ? 'met' : '**not met**'}`}.`);
    }
    for (const [t, why] of Object.entries(skippedIn(r, 'build'))) L.push(`- ${TARGET_LABELS[t as TargetName]} left out: ${why}.`);
  }

  // The pass-through on both transports
  const floors = r.summary.floorTransports ?? [];
  if (floors.length) {
    const cols = (['floor', 'floor-devfuse', 'gocryptfs'] as const).filter((t) => r.targets[t]?.present);
    const fmt = (row: FloorRow, v: number | undefined) =>
      v === undefined ? '—' : row.unit === 'ms/file' ? `${v.toFixed(3)} ms` : row.unit === 'cpu-s/GiB' ? `${v.toFixed(2)} CPU s/GiB` : row.unit === 'cpu-s' ? `${v.toFixed(2)} CPU s` : fmtSeconds(v);
    const goal = (row: FloorRow) => {
      if (!row.goal) return '';
      const what = `≤ ${row.goal.limit}× ${row.goal.against === 'floor' ? 'floor' : 'gocryptfs'}`;
      return row.goal.met === null ? `${what}: not measured` : `${what}: ${row.goal.met ? 'met' : '**not met**'}`;
    };
    L.push('');
    L.push('## The Node pass-through on both transports');
    L.push('');
    L.push(`The same pass-through over fuse-native (${TARGET_LABELS.floor}, \`bench/passthrough-fs.ts\`) and over svault's own /dev/fuse transport (${TARGET_LABELS['floor-devfuse']}, \`bench/passthrough-devfuse.ts\`), with gocryptfs beside. Times are medians (lower is better); the goals: per 1 KiB file and on the untar no slower than gocryptfs, server CPU per GiB at most half the fuse-native floor's.`);
    L.push('');
    L.push(`| Figure | ${cols.map((t) => TARGET_LABELS[t]).join(' | ')} | devfuse/floor | devfuse/gocryptfs | goal |`);
    L.push(`|---|${cols.map(() => '---').join('|')}|---|---|---|`);
    for (const row of floors) {
      L.push(`| ${row.label} | ${cols.map((t) => fmt(row, row.values[t])).join(' | ')} | ${fmtRatio(row.devfuseOverFloor)} | ${fmtRatio(row.devfuseOverGocryptfs)} | ${goal(row)} |`);
    }
  }

  // Memory over the stream
  if (r.summary.streamMemory.length) {
    L.push('');
    L.push('### svault memory during the long stream');
    L.push('');
    L.push('| Phase | RSS at 0 % | 25 % | 50 % | 75 % | 100 % | Peak | Growth after 25 % | Flat |');
    L.push('|---|---|---|---|---|---|---|---|---|');
    for (const m of r.summary.streamMemory) {
      L.push(`| ${m.direction} ${humanBytes(m.bytes)} | ${m.at.map((a) => fmtMiB(a.rss)).join(' | ')} | ${fmtMiB(m.peak)} | ${fmtMiB(m.growthAfterQuarter)} | ${m.flat ? 'yes' : '**no**'} |`);
    }
    L.push('');
    L.push('Flat means the RSS after the first quarter never rose more than max(32 MiB, 10 %) above its value at the first quarter.');
  }

  // The reference-format table
  L.push('');
  L.push('## All targets, in the reference figures\' format');
  L.push('');
  const cpKey = r.options.sizes.length ? `${r.options.sizes[r.options.sizes.length - 1]}` : null;
  L.push(`write/read: dd of ${humanBytes(r.options.ddBytes)}; cp in/out: the ${cpKey ?? '—'} file; 1 KiB: small files, mean per file; the rest: the source tree. Reference rows are the figures from issue 4 (another run, mean of two passes).`);
  L.push('');
  L.push('| target | write | read | cp in | cp out | 1 KiB write / read | untar | ls -lR | read all | rm -rf |');
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const t of targets) {
    const f = (w: WorkloadName, k: string) => r.workloads[w]?.targets[t]?.figures[k];
    const small = (k: string) => f('small', k)?.time.median;
    const sw = small('small-1K-write');
    const sr = small('small-1K-read');
    L.push(
      `| ${TARGET_LABELS[t]} | ${fmtRate(f('dd', 'dd-write')?.mibps?.median)} | ${fmtRate(f('dd', 'dd-read')?.mibps?.median)} | ${fmtRate(cpKey ? f('cp', `cp-in-${cpKey}`)?.mibps?.median : null)} | ${fmtRate(cpKey ? f('cp', `cp-out-${cpKey}`)?.mibps?.median : null)} | ` +
        `${sw === undefined ? '—' : sw.toFixed(3)} / ${sr === undefined ? '—' : sr.toFixed(3)} ms | ${fmtFigure(f('tree', 'untar'))} | ${fmtFigure(f('tree', 'ls-lR'))} | ${fmtFigure(f('tree', 'read-all'))} | ${fmtFigure(f('tree', 'rm-rf'))} |`,
    );
  }
  for (const ref of REFERENCE) L.push(`| *reference: ${ref.target}* | ${ref.cells.map((c) => `*${c}*`).join(' | ')} |`);

  // Every figure
  L.push('');
  L.push('## Every figure');
  L.push('');
  L.push('Median over the repeats, with min–max when there was more than one.');
  for (const [wname, w] of Object.entries(r.workloads) as Array<[WorkloadName, WorkloadResult]>) {
    L.push('');
    L.push(`### ${w.title} (\`--only ${wname}\`, ${formatDuration(w.seconds)}${w.load ? `, load ${w.load.start.toFixed(1)} → ${w.load.end.toFixed(1)}` : ''})`);
    L.push('');
    L.push(w.description);
    if (w.cacheDrops.failed) L.push(`\n**The page cache could not be dropped before ${w.cacheDrops.failed} of ${w.cacheDrops.attempted} read phases of this workload.**`);
    L.push('');
    L.push(`| Figure | ${targets.map((t) => TARGET_LABELS[t]).join(' | ')} | ${others.map((o) => `svault/${o}`).join(' | ')} |`);
    L.push(`|---|${targets.map(() => '---').join('|')}|${others.map(() => '---').join('|')}|`);
    const keys = new Set<string>();
    for (const t of targets) for (const k of Object.keys(w.targets[t]?.figures ?? {})) keys.add(k);
    for (const key of keys) {
      const anyF = targets.map((t) => w.targets[t]?.figures[key]).find((x) => x) as Figure;
      const cells = targets.map((t) => {
        const f = w.targets[t]?.figures[key];
        if (!f) return '—';
        const fmt = (x: number) => (f.unit === 'ms/file' ? x.toFixed(3) : f.unit === 'cpu-s/GiB' ? x.toFixed(2) : fmtSeconds(x));
        const unit = f.unit === 'ms/file' ? ' ms/file' : f.unit === 'cpu-s/GiB' ? ' CPU s/GiB' : '';
        const v = `${fmt(f.time.median)}${unit}`;
        const range = f.time.samples.length > 1 ? ` (${fmt(f.time.min)}–${fmt(f.time.max)})` : '';
        const rate = f.mibps && f.unit === 's' ? `, ${fmtRate(f.mibps.median)}` : f.filesPerSecond && !f.bytes ? `, ${f.filesPerSecond.median.toFixed(0)} files/s` : '';
        return `${v}${range}${rate}`;
      });
      const ratios = r.summary.ratios[wname]?.[key] ?? {};
      L.push(`| ${anyF.label} | ${cells.join(' | ')} | ${others.map((o) => fmtRatio(ratios[o])).join(' | ')} |`);
    }
    L.push('');
    L.push(`| Server process | ${targets.map((t) => TARGET_LABELS[t]).join(' | ')} |`);
    L.push(`|---|${targets.map(() => '---').join('|')}|`);
    const proc = (t: TargetName) => w.targets[t]?.process;
    L.push(`| CPU seconds | ${targets.map((t) => (proc(t)?.cpuSeconds ?? null) === null ? '—' : (proc(t)?.cpuSeconds as number).toFixed(2)).join(' | ')} |`);
    L.push(`| peak RSS | ${targets.map((t) => fmtMiB(proc(t)?.peakRssBytes)).join(' | ')} |`);
    L.push(`| RSS before → after | ${targets.map((t) => (proc(t) ? `${fmtMiB(proc(t)?.rssBeforeBytes)} → ${fmtMiB(proc(t)?.rssAfterBytes)}` : '—')).join(' | ')} |`);
    const parts = new Set<string>();
    for (const t of targets) for (const p of Object.keys(w.targets[t]?.processBy ?? {})) parts.add(p);
    for (const p of parts) {
      L.push(`| ${p}: CPU s / peak RSS | ${targets.map((t) => {
        const s = w.targets[t]?.processBy?.[p];
        return s ? `${s.cpuSeconds?.toFixed(2) ?? '—'} / ${fmtMiB(s.peakRssBytes)}` : '—';
      }).join(' | ')} |`);
    }
    if (w.svaultOps?.length) {
      const total = w.svaultOps.filter((o) => o.op.startsWith('fuse.')).reduce((a, o) => a + o.totalMs, 0);
      L.push('');
      L.push(`svault's own time per operation over this workload, all repeats, untimed clean-up included (from \`svault status --json\`; fuse.* ops total ${(total / 1000).toFixed(2)} s, the others are parts of them):`);
      L.push('');
      L.push('| Operation | Calls | Total | Mean | MiB |');
      L.push('|---|---|---|---|---|');
      for (const o of w.svaultOps.slice(0, 12)) {
        L.push(`| ${o.op} | ${o.calls} | ${fmtSeconds(o.totalMs / 1000)} | ${(o.totalMs / o.calls).toFixed(3)} ms | ${o.bytes ? (o.bytes / MiB).toFixed(0) : '—'} |`);
      }
    }
    if (wname === 'build') renderBuildDetails(L, w, targets);
    for (const [t, why] of wname === 'sparse' || wname === 'build' ? Object.entries(skippedIn(r, wname)) : []) L.push(`\n**${TARGET_LABELS[t as TargetName]} left out**: ${why}.`);
    for (const t of targets) {
      const e = w.targets[t]?.error;
      if (e) L.push(`\n**${TARGET_LABELS[t]} failed**: ${e}`);
    }
    const checks = targets.flatMap((t) => (w.targets[t]?.checks.length ? [`${t}: ${w.targets[t]?.checks.join(', ')}`] : []));
    if (checks.length) L.push(`\nChecks passed: ${checks.join('; ')}.`);
  }
  L.push('');
  return L.join('\n');
}

/** The build workload's servers' CPU seconds per phase, and svault's own operations per phase. */
function renderBuildDetails(L: string[], w: WorkloadResult, targets: TargetName[]): void {
  const x = (w.extra ?? {}) as { cpuSeconds?: Partial<Record<TargetName, Record<string, number>>>; clientCpuSeconds?: Partial<Record<TargetName, Record<string, number>>>; svaultOps?: Record<string, Array<{ op: string; calls: number; bytes: number; totalMs: number }>>; warmup?: { seconds: number } };
  const phases = ['clone', 'unpack', 'build'];
  const withCpu = targets.filter((t) => x.cpuSeconds?.[t] || x.clientCpuSeconds?.[t]);
  if (withCpu.length) {
    L.push('');
    L.push('CPU seconds per phase, all repeats: the commands\' own (git, tar, configure, make and all their children) + the server\'s (user + system of the process serving the mount). Far less disturbed by other load than wall time:');
    L.push('');
    L.push(`| Phase | ${withCpu.map((t) => TARGET_LABELS[t]).join(' | ')} |`);
    L.push(`|---|${withCpu.map(() => '---').join('|')}|`);
    const cell = (t: TargetName, p: string) => {
      const c = x.clientCpuSeconds?.[t]?.[p];
      const s = x.cpuSeconds?.[t]?.[p];
      if (c === undefined && s === undefined) return '—';
      return `${c?.toFixed(2) ?? '—'} + ${s === undefined ? '—' : s.toFixed(2)}`;
    };
    for (const p of phases) L.push(`| ${p} | ${withCpu.map((t) => cell(t, p)).join(' | ')} |`);
  }
  for (const p of phases) {
    const ops = x.svaultOps?.[p];
    if (!ops?.length) continue;
    const fuse = ops.filter((o) => o.op.startsWith('fuse.'));
    const calls = fuse.reduce((a, o) => a + o.calls, 0);
    const ms = fuse.reduce((a, o) => a + o.totalMs, 0);
    L.push('');
    L.push(`svault's own operations in the ${p} phase, all repeats (fuse.* ops: ${calls} calls, ${(ms / 1000).toFixed(2)} s inside the handlers; the others are parts of them):`);
    L.push('');
    L.push('| Operation | Calls | Total | Mean | MiB |');
    L.push('|---|---|---|---|---|');
    for (const o of ops.slice(0, 14)) L.push(`| ${o.op} | ${o.calls} | ${fmtSeconds(o.totalMs / 1000)} | ${(o.totalMs / o.calls).toFixed(3)} ms | ${o.bytes ? (o.bytes / MiB).toFixed(1) : '—'} |`);
  }
  if (x.warmup) L.push(`\nBefore the repeats, an untimed native build (${x.warmup.seconds.toFixed(1)} s) loaded the toolchain into the page cache.`);
}
