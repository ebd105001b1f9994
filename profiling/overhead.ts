// The FUSE overhead report: where svault's wall time goes on each workload, from two status snapshots
// of the profiled server (event-loop active/idle time and per-operation counters) and the same
// workload's timed phases on native and on the Node-FUSE floor of each transport from the same run.
import type { WorkloadResult } from '../bench/lib/workloads.js';
import type { BindingName } from '../fs/bindings.js';

/** One operation's counters as the status socket reports them. */
export interface OpRow {
  op: string;
  calls: number;
  bytes: number;
  totalMs: number;
}

/** The server's process figures as the status socket reports them. */
export interface ProcessFigures {
  uptimeMs: number;
  eventLoopActiveMs: number;
  eventLoopIdleMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBytes: number;
}

export interface Snapshot {
  ops: OpRow[];
  process: ProcessFigures;
}

/** Allowed difference between the parts' sum and the wall time measured by the driver. */
export const TOLERANCE_PCT = 10;

/** The Node pass-through floor (bench target) on each transport. */
export const FLOOR_OF: Record<BindingName, 'floor' | 'floor-devfuse'> = { 'fuse-native': 'floor', devfuse: 'floor-devfuse' };
/** The order of the side-by-side table. */
export const TRANSPORTS: readonly BindingName[] = ['fuse-native', 'devfuse'];

export const PART_NAMES = ['fuseRoundTrips', 'crypto', 'metadata', 'storeIo', 'bookkeeping', 'dispatch', 'waiting', 'harness'] as const;
export type PartName = (typeof PART_NAMES)[number];

export const PART_LABELS: Record<PartName, string> = {
  fuseRoundTrips: "kernel↔user FUSE round trips (floor of svault's binding − native)",
  crypto: 'crypto (crypto.*)',
  metadata: 'metadata (meta.*)',
  storeIo: 'backing-store I/O (store.*)',
  bookkeeping: 'scatter/gather bookkeeping (fuse.* − nested)',
  dispatch: 'transport dispatch (active − handlers)',
  waiting: 'waiting in the timed phases (client, kernel)',
  harness: 'harness between phases (wall − timed phases)',
};

/** What one transport's round trips would be on this workload: (its floor − native) against svault's timed wall. */
export interface TransportRoundTrips {
  /** The bench target that measured it. */
  floorTarget: 'floor' | 'floor-devfuse';
  /** The floor's timed phases (s), null if it failed. */
  floorS: number | null;
  /** max(0, floor − native) (s), null if either failed. */
  roundTripsS: number | null;
  share: number | null;
  speedupBound: number | null;
}

export interface Overhead {
  workload: string;
  /** The transport the profiled svault ran on: its floor gives the round trips in parts. */
  binding: BindingName;
  /** Driver's clock over the svault-only run of the workload (ms). */
  wallMs: number;
  /** Event-loop figures of the server over that run (ms). */
  activeMs: number;
  idleMs: number;
  cpuMs: number;
  /** Sums of the timed phases (s) on each target, as the bench measures them. */
  timed: { svault: number; native: number | null; floor: number | null; floorDevfuse: number | null };
  /** Counter sums over the run (ms). */
  counters: { fuseHandlers: number; crypto: number; meta: number; store: number; fuseCalls: number; allCalls: number };
  parts: Record<PartName, number>;
  check: { sumMs: number; wallMs: number; diffPct: number; tolerancePct: number; ok: boolean; notes: string[] };
  /** What removing FUSE could gain at most: (floor − native) as a share of svault's timed wall. */
  kernelModule: { fuseShare: number | null; speedupBound: number | null; floorTarget: 'floor' | 'floor-devfuse' };
  /** Both transports' round trips side by side, whichever svault ran on. */
  transports: Record<BindingName, TransportRoundTrips>;
  ops: OpRow[];
}

/** after − before per op, dropping ops that did not run. */
export function opsDelta(before: OpRow[], after: OpRow[]): OpRow[] {
  const b = new Map(before.map((o) => [o.op, o]));
  return after
    .map((a) => {
      const o = b.get(a.op);
      return { op: a.op, calls: a.calls - (o?.calls ?? 0), bytes: a.bytes - (o?.bytes ?? 0), totalMs: a.totalMs - (o?.totalMs ?? 0) };
    })
    .filter((o) => o.calls > 0)
    .sort((x, y) => y.totalMs - x.totalMs);
}

/** Seconds of the timed phases of one target in a workload result (ms/file figures times their file count). */
export function timedSeconds(result: WorkloadResult | undefined, target: string): number | null {
  const t = result?.targets[target as keyof WorkloadResult['targets']];
  if (!t || t.error) return null;
  let s = 0;
  for (const f of Object.values(t.figures)) {
    const v = f.time.median;
    if (f.unit === 'cpu-s/GiB') continue; // not a time
    if (f.unit === 'ms/file') {
      const count = Number(/^(\d+) files/.exec(f.label)?.[1] ?? 1);
      s += (v * count) / 1000;
    } else s += v;
  }
  return s;
}

/** Calls the piece worker made on its own thread are counted as `<op>@worker` (src/core/contents/piece-offload.ts). */
const WORKER_SUFFIX = '@worker';
const onJsThread = (o: OpRow) => !o.op.endsWith(WORKER_SUFFIX);
/** Total time of the JS thread's operations whose name starts with prefix. */
const sum = (ops: OpRow[], prefix: string) => ops.filter((o) => onJsThread(o) && o.op.startsWith(prefix)).reduce((a, o) => a + o.totalMs, 0);
/** Total time of the piece worker's operations. */
const workerSum = (ops: OpRow[]) => ops.filter((o) => !onJsThread(o)).reduce((a, o) => a + o.totalMs, 0);

/**
 * The breakdown. Nesting: crypto.*, meta.* and store.* run inside fuse.* handlers, or inside the
 * background tasks that run between them (bg.*: sealing behind writes, reading ahead, trimming), so what is not
 * background is taken out of the handler total (bookkeeping = handlers − (nested − background), never
 * below 0), and the background tasks' time is active time outside the handlers. The handlers' time counts
 * as active up to the event loop's active time; beyond that it is time a handler spent awaiting
 * (thread-pool I/O), which the event loop saw as idle, so it comes out of idle. What is left of idle
 * is split into FUSE round trips (floor − native of the same run) and waiting (the client, the driver,
 * the kernel outside FUSE). Nothing is clamped to make the sum fit: if the round trips exceed the idle
 * time left, or the handlers overlap one another, the sum exceeds the wall time and the check says so.
 */
export function computeOverhead(workload: string, before: Snapshot, after: Snapshot, wallMs: number, svault: WorkloadResult | undefined, others: WorkloadResult | undefined, binding: BindingName): Overhead {
  const ops = opsDelta(before.ops, after.ops);
  const activeMs = after.process.eventLoopActiveMs - before.process.eventLoopActiveMs;
  const idleMs = after.process.eventLoopIdleMs - before.process.eventLoopIdleMs;
  const cpuMs = after.process.cpuUserMs + after.process.cpuSystemMs - before.process.cpuUserMs - before.process.cpuSystemMs;
  const H = sum(ops, 'fuse.');
  const C = sum(ops, 'crypto.');
  const M = sum(ops, 'meta.');
  const S = sum(ops, 'store.');
  const G = sum(ops, 'bg.');
  const tSv = timedSeconds(svault, 'svault') ?? 0;
  const tNat = timedSeconds(others, 'native');
  const floorTarget = FLOOR_OF[binding];
  // svault pays its own transport's round trips, so the breakdown takes that transport's floor.
  const tFloor = timedSeconds(others, floorTarget);
  const F = tNat !== null && tFloor !== null ? Math.max(0, (tFloor - tNat) * 1000) : 0;
  const notes: string[] = [];
  if (tNat === null || tFloor === null) notes.push(`native or ${floorTarget} did not complete: FUSE round trips counted as 0`);
  for (const b of TRANSPORTS) {
    const tf = timedSeconds(others, FLOOR_OF[b]);
    if (tNat !== null && tf !== null && tf < tNat) notes.push(`${FLOOR_OF[b]} was faster than native (${tf.toFixed(3)} s < ${tNat.toFixed(3)} s): noise; its round trips counted as 0`);
  }

  // The piece worker (src/core/contents/piece-offload.ts) seals full pieces on its own thread: its time overlaps
  // everything here, so it is reported beside the sum, not in it.
  const sealedOff = ops.find((o) => o.op === `crypto.seal${WORKER_SUFFIX}`);
  const W = workerSum(ops);
  if (W > 0) notes.push(`the piece worker thread sealed and stored ${sealedOff?.calls ?? 0} pieces in ${W.toFixed(0)} ms, off the JS thread (not part of the sum: it overlaps it)`);
  const nested = Math.max(0, C + M + S - G); // inside handlers
  const bookkeeping = Math.max(0, H - nested);
  if (nested > H * 1.001) notes.push(`crypto+meta+store outside bg.* (${nested.toFixed(0)} ms) exceed the fuse.* handler total (${H.toFixed(0)} ms): some ran outside handlers (e.g. background commits)`);
  const handlers = nested + bookkeeping;
  // Background tasks are active time outside the handlers; their crypto and store time is in C and S.
  const dispatch = Math.max(0, activeMs - handlers - G);
  const spill = Math.max(0, handlers - activeMs); // handler time the event loop saw as idle (awaits)
  const idleLeft = idleMs - spill;
  if (idleLeft < 0) notes.push(`handler time exceeds active+idle: handlers overlapped one another (concurrent FUSE requests)`);
  // With background work, svault is busy while the kernel carries a round trip: that part of the round
  // trips overlaps svault's active time and is not idle time. The rest shows up as idle.
  const roundTripsIdle = G > 0 ? Math.min(F, Math.max(0, idleLeft)) : F;
  if (roundTripsIdle < F) notes.push(`${(F - roundTripsIdle).toFixed(0)} ms of the FUSE round trips (${F.toFixed(0)} ms) overlapped svault's background work (bg.* ${G.toFixed(0)} ms); the table counts the rest`);
  const idleRest = Math.max(0, idleLeft - roundTripsIdle);
  if (roundTripsIdle > Math.max(0, idleLeft)) notes.push(`the FUSE round trips (${F.toFixed(0)} ms) exceed the idle time left (${Math.max(0, idleLeft).toFixed(0)} ms)`);
  // The idle time left is the client and the kernel inside the timed phases, and the harness's untimed
  // work between them (making sources, checksums, cache drops: the server sits idle then).
  const harness = Math.min(idleRest, Math.max(0, wallMs - tSv * 1000));
  const waiting = idleRest - harness;
  const parts: Record<PartName, number> = { fuseRoundTrips: roundTripsIdle, crypto: C, metadata: M, storeIo: S, bookkeeping, dispatch, waiting, harness };
  const sumMs = PART_NAMES.reduce((a, p) => a + parts[p], 0);
  const diffPct = wallMs > 0 ? ((sumMs - wallMs) / wallMs) * 100 : 0;
  const fuseShare = tSv > 0 && tNat !== null && tFloor !== null ? F / 1000 / tSv : null;
  if (fuseShare !== null && fuseShare >= 1) notes.push(`${floorTarget} − native (${(F / 1000).toFixed(3)} s) is at least svault's whole timed wall (${tSv.toFixed(3)} s): the floor pass-through does a backing syscall per request where svault answers from its caches, so here it overstates the round trips and bounds nothing`);
  const transports = Object.fromEntries(TRANSPORTS.map((b) => [b, roundTripsOf(b, others, tNat, tSv)])) as Record<BindingName, TransportRoundTrips>;
  return {
    workload,
    binding,
    wallMs,
    activeMs,
    idleMs,
    cpuMs,
    timed: { svault: tSv, native: tNat, floor: timedSeconds(others, 'floor'), floorDevfuse: timedSeconds(others, 'floor-devfuse') },
    counters: { fuseHandlers: H, crypto: C, meta: M, store: S, fuseCalls: ops.filter((o) => o.op.startsWith('fuse.')).reduce((a, o) => a + o.calls, 0), allCalls: ops.filter(onJsThread).reduce((a, o) => a + o.calls, 0) },
    parts,
    check: { sumMs, wallMs, diffPct, tolerancePct: TOLERANCE_PCT, ok: Math.abs(diffPct) <= TOLERANCE_PCT, notes },
    kernelModule: { fuseShare, speedupBound: bound(fuseShare), floorTarget },
    transports,
    ops,
  };
}

/** 1 / (1 − share); none when the round trips are at least svault's whole timed wall. */
const bound = (share: number | null): number | null => (share !== null && share < 1 ? 1 / (1 - share) : null);

function roundTripsOf(b: BindingName, others: WorkloadResult | undefined, tNat: number | null, tSv: number): TransportRoundTrips {
  const floorTarget = FLOOR_OF[b];
  const floorS = timedSeconds(others, floorTarget);
  const roundTripsS = tNat !== null && floorS !== null ? Math.max(0, floorS - tNat) : null;
  const share = roundTripsS !== null && tSv > 0 ? roundTripsS / tSv : null;
  return { floorTarget, floorS, roundTripsS, share, speedupBound: bound(share) };
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const pct = (v: number, of: number) => (of > 0 ? `${((v / of) * 100).toFixed(1)}%` : '–');

const share = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)}%`);
const speedup = (t: { share: number | null; speedupBound: number | null }) => (t.speedupBound === null ? (t.share !== null && t.share >= 1 ? 'not bounded (see note)' : '–') : `${t.speedupBound.toFixed(2)}×`);
const sec = (v: number | null) => (v === null ? '–' : v.toFixed(3));
/** Seconds with a sign, and no "-0.000" for a difference below the last digit. */
const signed = (v: number) => (Math.abs(v) < 0.0005 ? '0.000' : `${v > 0 ? '+' : ''}${v.toFixed(3)}`);

export function renderOverhead(rows: Overhead[], meta: { tool: string; command: string; started: string; load: string; binding: BindingName }): string {
  const floorOfRun = FLOOR_OF[meta.binding];
  const out: string[] = [];
  out.push(`# FUSE overhead report`, '');
  out.push(`Run ${meta.started}, profiler ${meta.tool}, load average ${meta.load}. Command: \`${meta.command}\`.`, '');
  out.push(`svault ran on **${meta.binding}** (\`svault mount -f --binding ${meta.binding}\`), so the FUSE round trips in the breakdown are ${floorOfRun} − native.`, '');
  out.push(
    'Each workload ran once on svault alone (the profiled mount, counters on), with two status snapshots around it, then on native (the backing tmpfs) and on the Node-FUSE floor of each transport (floor: bench/passthrough-fs.ts on fuse-native; floor-devfuse: bench/passthrough-devfuse.ts on devfuse). ' +
      'Wall is the driver\'s clock between the two snapshots (it includes the harness\'s untimed work between phases: making sources, checksums, cache drops, rm of the results; the server is idle then except for the rm). ' +
      'The server\'s event loop was active for A ms and idle for I ms of it. Parts: crypto, metadata and store I/O are the counters\' totals (they nest inside the fuse.* handlers or the background tasks bg.*, so bookkeeping is the handler total minus what ran inside it); ' +
      `dispatch is the active time outside the handlers and background tasks (${meta.binding}'s request dispatch, GC, timers); handler time beyond A was spent awaiting and comes out of idle; ` +
      `the FUSE round trips are (${floorOfRun} − native) of the timed phases; of the idle time left, wall − timed phases is the harness, the rest is waiting for the client and the kernel. store.* are latencies (thread-pool I/O), not JS-thread time.`,
    '',
  );
  out.push(`| workload | wall ms | A / I ms | ${PART_NAMES.map((p) => PART_LABELS[p]).join(' | ')} | sum ms | check |`);
  out.push(`|---|---:|---:|${PART_NAMES.map(() => '---:').join('|')}|---:|---|`);
  for (const r of rows) {
    out.push(
      `| ${r.workload} | ${ms(r.wallMs)} | ${ms(r.activeMs)} / ${ms(r.idleMs)} | ${PART_NAMES.map((p) => `${ms(r.parts[p])} (${pct(r.parts[p], r.wallMs)})`).join(' | ')} | ${ms(r.check.sumMs)} | ${r.check.diffPct >= 0 ? '+' : ''}${r.check.diffPct.toFixed(1)}% ${r.check.ok ? 'ok' : 'FAIL'} |`,
    );
  }
  out.push('');
  out.push(`Check: |Σ parts − wall| / wall ≤ ${TOLERANCE_PCT}% for every workload: ${rows.every((r) => r.check.ok) ? 'passed' : 'FAILED'} (${rows.map((r) => `${r.workload} ${r.check.diffPct >= 0 ? '+' : ''}${r.check.diffPct.toFixed(1)}%`).join(', ')}).`);
  for (const r of rows) for (const n of r.check.notes) out.push(`- ${r.workload}: ${n}`);
  out.push('');
  out.push('## Timed phases (s, as the bench measures them)', '');
  out.push(`| workload | svault (${meta.binding}) | native | floor (fuse-native) | floor-devfuse | fuse.* calls | all counted calls | server CPU ms |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) out.push(`| ${r.workload} | ${sec(r.timed.svault)} | ${sec(r.timed.native)} | ${sec(r.timed.floor)} | ${sec(r.timed.floorDevfuse)} | ${r.counters.fuseCalls} | ${r.counters.allCalls} | ${ms(r.cpuMs)} |`);
  out.push('');
  out.push('## Top operations (deltas over the svault run)', '');
  for (const r of rows) {
    out.push(`**${r.workload}**: ${r.ops.slice(0, 8).map((o) => `${o.op} ${o.calls}× ${ms(o.totalMs)} ms`).join(', ')}`, '');
  }
  out.push('## FUSE round trips by transport', '');
  out.push(
    'The same workloads on the pass-through floor of each transport, in the same run: round trips = floor − native over the timed phases (0 when the floor was faster); ' +
      `share = round trips / svault's timed wall (svault on ${meta.binding}); bound = 1 / (1 − share), what removing that transport's round trips could give at most. ` +
      'fuse-native − devfuse is what svault\'s own transport saves over libfuse on the same pass-through (negative: devfuse cost more).',
    '',
  );
  out.push('| workload | native s | floor (fuse-native) s | floor-devfuse s | svault s | round trips fuse-native s | round trips devfuse s | fuse-native − devfuse s | share fuse-native | share devfuse | bound fuse-native | bound devfuse |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const fn = r.transports['fuse-native'];
    const df = r.transports.devfuse;
    const saved = fn.roundTripsS !== null && df.roundTripsS !== null ? fn.roundTripsS - df.roundTripsS : null;
    out.push(`| ${r.workload} | ${sec(r.timed.native)} | ${sec(fn.floorS)} | ${sec(df.floorS)} | ${sec(r.timed.svault)} | ${sec(fn.roundTripsS)} | ${sec(df.roundTripsS)} | ${saved === null ? '–' : signed(saved)} | ${share(fn.share)} | ${share(df.share)} | ${speedup(fn)} | ${speedup(df)} |`);
  }
  out.push('');
  out.push('## What a kernel module could gain at most', '');
  out.push(`Removing FUSE removes at most the round trips of the transport svault ran on (${meta.binding}): share = (${floorOfRun} − native) / svault over the timed phases; bound on the speed-up = 1 / (1 − share). svault's own handler time stays whatever the transport.`, '');
  out.push('| workload | FUSE round trips s | svault s | share | speed-up bound |');
  out.push('|---|---:|---:|---:|---:|');
  for (const r of rows) {
    const km = r.kernelModule;
    out.push(`| ${r.workload} | ${(r.parts.fuseRoundTrips / 1000).toFixed(3)} | ${r.timed.svault.toFixed(3)} | ${share(km.fuseShare)} | ${speedup({ share: km.fuseShare, speedupBound: km.speedupBound })} |`);
  }
  out.push('');
  return out.join('\n');
}
