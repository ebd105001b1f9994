// The FUSE overhead report: where svault's wall time goes on each workload, from two status snapshots
// of the profiled server (event-loop active/idle time and per-operation counters) and the same
// workload's timed phases on native and on the Node-FUSE floor from the same run.
import type { WorkloadResult } from '../bench/lib/workloads.js';

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

export const PART_NAMES = ['fuseRoundTrips', 'crypto', 'metadata', 'storeIo', 'bookkeeping', 'dispatch', 'waiting', 'harness'] as const;
export type PartName = (typeof PART_NAMES)[number];

export const PART_LABELS: Record<PartName, string> = {
  fuseRoundTrips: 'kernel↔user FUSE round trips (floor − native)',
  crypto: 'crypto (crypto.*)',
  metadata: 'metadata (meta.*)',
  storeIo: 'backing-store I/O (store.*)',
  bookkeeping: 'scatter/gather bookkeeping (fuse.* − nested)',
  dispatch: 'fuse-native dispatch (active − handlers)',
  waiting: 'waiting in the timed phases (client, kernel)',
  harness: 'harness between phases (wall − timed phases)',
};

export interface Overhead {
  workload: string;
  /** Driver's clock over the svault-only run of the workload (ms). */
  wallMs: number;
  /** Event-loop figures of the server over that run (ms). */
  activeMs: number;
  idleMs: number;
  cpuMs: number;
  /** Sums of the timed phases (s) on each target, as the bench measures them. */
  timed: { svault: number; native: number | null; floor: number | null };
  /** Counter sums over the run (ms). */
  counters: { fuseHandlers: number; crypto: number; meta: number; store: number; fuseCalls: number; allCalls: number };
  parts: Record<PartName, number>;
  check: { sumMs: number; wallMs: number; diffPct: number; tolerancePct: number; ok: boolean; notes: string[] };
  /** What removing FUSE could gain at most: (floor − native) as a share of svault's timed wall. */
  kernelModule: { fuseShare: number | null; speedupBound: number | null };
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
export function computeOverhead(workload: string, before: Snapshot, after: Snapshot, wallMs: number, svault: WorkloadResult | undefined, others: WorkloadResult | undefined): Overhead {
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
  const tFloor = timedSeconds(others, 'floor');
  const F = tNat !== null && tFloor !== null ? Math.max(0, (tFloor - tNat) * 1000) : 0;
  const notes: string[] = [];
  if (tNat === null || tFloor === null) notes.push('native or floor did not complete: FUSE round trips counted as 0');
  if (tNat !== null && tFloor !== null && tFloor < tNat) notes.push(`the floor was faster than native (${tFloor.toFixed(3)} s < ${tNat.toFixed(3)} s): noise; FUSE round trips counted as 0`);

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
  if (fuseShare !== null && fuseShare >= 1) notes.push(`floor − native (${(F / 1000).toFixed(3)} s) is at least svault's whole timed wall (${tSv.toFixed(3)} s): the floor pass-through does a backing syscall per request where svault answers from its caches, so here it overstates the round trips and bounds nothing`);
  return {
    workload,
    wallMs,
    activeMs,
    idleMs,
    cpuMs,
    timed: { svault: tSv, native: tNat, floor: tFloor },
    counters: { fuseHandlers: H, crypto: C, meta: M, store: S, fuseCalls: ops.filter((o) => o.op.startsWith('fuse.')).reduce((a, o) => a + o.calls, 0), allCalls: ops.filter(onJsThread).reduce((a, o) => a + o.calls, 0) },
    parts,
    check: { sumMs, wallMs, diffPct, tolerancePct: TOLERANCE_PCT, ok: Math.abs(diffPct) <= TOLERANCE_PCT, notes },
    kernelModule: { fuseShare, speedupBound: fuseShare !== null && fuseShare < 1 ? 1 / (1 - fuseShare) : null },
    ops,
  };
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const pct = (v: number, of: number) => (of > 0 ? `${((v / of) * 100).toFixed(1)}%` : '–');

export function renderOverhead(rows: Overhead[], meta: { tool: string; command: string; started: string; load: string }): string {
  const out: string[] = [];
  out.push(`# FUSE overhead report`, '');
  out.push(`Run ${meta.started}, profiler ${meta.tool}, load average ${meta.load}. Command: \`${meta.command}\`.`, '');
  out.push(
    'Each workload ran once on svault alone (the profiled mount, counters on), with two status snapshots around it, then on native (the backing tmpfs) and on the Node-FUSE floor (bench/passthrough-fs.ts). ' +
      'Wall is the driver\'s clock between the two snapshots (it includes the harness\'s untimed work between phases: making sources, checksums, cache drops, rm of the results; the server is idle then except for the rm). ' +
      'The server\'s event loop was active for A ms and idle for I ms of it. Parts: crypto, metadata and store I/O are the counters\' totals (they nest inside the fuse.* handlers or the background tasks bg.*, so bookkeeping is the handler total minus what ran inside it); ' +
      'dispatch is the active time outside the handlers and background tasks (fuse-native\'s callbacks, GC, timers); handler time beyond A was spent awaiting and comes out of idle; ' +
      'the FUSE round trips are (floor − native) of the timed phases; of the idle time left, wall − timed phases is the harness, the rest is waiting for the client and the kernel. store.* are latencies (thread-pool I/O), not JS-thread time.',
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
  out.push('| workload | svault | native | floor | fuse.* calls | all counted calls | server CPU ms |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  const s = (v: number | null) => (v === null ? '–' : v.toFixed(3));
  for (const r of rows) out.push(`| ${r.workload} | ${s(r.timed.svault)} | ${s(r.timed.native)} | ${s(r.timed.floor)} | ${r.counters.fuseCalls} | ${r.counters.allCalls} | ${ms(r.cpuMs)} |`);
  out.push('');
  out.push('## Top operations (deltas over the svault run)', '');
  for (const r of rows) {
    out.push(`**${r.workload}**: ${r.ops.slice(0, 8).map((o) => `${o.op} ${o.calls}× ${ms(o.totalMs)} ms`).join(', ')}`, '');
  }
  out.push('## What a kernel module could gain at most', '');
  out.push('Removing FUSE removes at most the round trips: share = (floor − native) / svault over the timed phases; bound on the speed-up = 1 / (1 − share). svault\'s own handler time stays whatever the transport.', '');
  out.push('| workload | FUSE round trips s | svault s | share | speed-up bound |');
  out.push('|---|---:|---:|---:|---:|');
  for (const r of rows) {
    const share = r.kernelModule.fuseShare;
    out.push(`| ${r.workload} | ${(r.parts.fuseRoundTrips / 1000).toFixed(3)} | ${r.timed.svault.toFixed(3)} | ${share === null ? '–' : `${(share * 100).toFixed(1)}%`} | ${r.kernelModule.speedupBound === null ? (share !== null && share >= 1 ? 'not bounded (see note)' : '–') : `${r.kernelModule.speedupBound.toFixed(2)}×`} |`);
  }
  out.push('');
  return out.join('\n');
}
