// Model-checked random workload through a real svault mount (issue 7, item 1).
//
// Several worker processes (test/stress/worker.py) run random operations at once, each in its own
// subtree /w<k> of the mount, and every result (success and its values, or the errno) is compared with an
// in-memory POSIX model of that subtree (test/stress/model.ts). Every `snapshotEvery` operations a worker
// compares its whole subtree (names, types, sizes, contents, link counts, xattrs, inode numbers); at the
// end the whole tree is compared, again after a remount, and `svault fsck` must find the store clean.
// On a difference it prints the seed and the smallest failing prefix of the operation sequence, found by
// bisecting the prefix length and replaying each candidate on a fresh vault; then it reduces that prefix
// further (the failing worker alone, the model's state rebuilt directly, delta debugging) and saves the
// result as JSON for --replay. A libfuse .fuse_hidden file in a listing is a difference (--allow-fuse-hidden
// tolerates them, as before the adapter hid them).
//
//   node --import tsx test/stress/model-check.ts [--seed N] [--ops N] [--workers N] [--piece-size N]
//        [--time SECONDS] [--snapshot-every N] [--prefix N] [--only-worker K] [--no-shrink]
//        [--only G1,G2,...] [--replay OPS.json] [--shrink-time SECONDS] [--allow-fuse-hidden] [--no-sync] [--outcomes]

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { StressBox, cleanupOnSignals } from './box.js';
import { describe, generate, type GenOp } from './gen.js';
import { Model, type Expect, type FileNode, type FlatEntry } from './model.js';
import { intArg, parseArgs, type HarnessOptions } from './util.js';
import { killAllWorkers, runHarnessIfMain, Worker, type Reply } from './worker-client.js';

export interface McOptions extends HarnessOptions {
  ops: number;
  snapshotEvery: number;
  /** Refresh cached attributes before observations (see worker.py). */
  forceSync: boolean;
  shrink: boolean;
  shrinkBudgetMs: number;
  /** Replay only the first `prefix` operations of the sequence. */
  prefix?: number;
  /** Replay only this worker's operations. */
  onlyWorker?: number;
  /** Replay exactly these global op indexes (a shrunk sequence). */
  only?: number[];
  /** Replay the operations saved in this JSON file (a shrunk sequence, see formatFailure). */
  replayFile?: string;
  /**
   * Tolerate libfuse's .fuse_hidden* files (a file unlinked while open is renamed, not removed, until its
   * last close): leave them out of listings, wait for them to go before rmdir/rename, and do not unlink or
   * rename within sessions. Off (the default since fs/hidden-files.ts): they are reported as differences.
   */
  allowFuseHidden: boolean;
}

export const MC_DEFAULTS: Omit<McOptions, 'seed' | 'log'> = {
  ops: 2000,
  workers: 3,
  pieceSize: 4096,
  chaff: 0.1,
  timeBudgetMs: 600_000,
  snapshotEvery: 50,
  forceSync: true,
  shrink: true,
  shrinkBudgetMs: 600_000,
  keepFailing: true,
  allowFuseHidden: false,
};

export interface McFailure {
  /** Global index of the failing operation; -1 for the setup, ops.length for the final checks. */
  g: number;
  where: string;
  op?: GenOp;
  expected?: unknown;
  actual?: unknown;
  detail: string;
  /** Server logs of the failing run, and its sandbox (kept on failure). */
  logs: string[];
  dir: string;
}

export interface McRun {
  /** Operations issued and compared (all of them unless the time budget ran out). */
  opsChecked: number;
  snapshots: number;
  failure: McFailure | null;
  ms: number;
  /** How often each operation succeeded or failed with each errno ("write ok", "rename ENOTEMPTY", ...). */
  outcomes: Record<string, number>;
}

export interface McReport {
  options: Omit<McOptions, 'log'>;
  run: McRun;
  shrunk?: { prefix: number; ops: GenOp[]; failure: McFailure | null; replays: number; reproduced: boolean; note: string };
}

function fmt(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'undefined' : s.length > 300 ? `${s.slice(0, 300)}...` : s;
}

function request(o: GenOp): Record<string, unknown> {
  const { g: _g, w: _w, ...rest } = o;
  return rest;
}

/** Why a reply differs from the model's expectation, or null. */
function compareReply(exp: Expect, rep: Reply): string | null {
  if (rep.err === 'EXC' || rep.err === 'EWORKER') return `worker error: ${rep.msg}`;
  if (!exp.ok) {
    if (rep.ok) return `expected ${exp.err}, got success ${fmt(stripMeta(rep))}`;
    if (rep.err !== exp.err) return `expected ${exp.err}, got ${rep.err} (${rep.msg})`;
    return null;
  }
  if (!rep.ok) return `expected success, got ${rep.err} (${rep.msg})`;
  for (const [k, v] of Object.entries(exp.r)) {
    if (!isDeepStrictEqual(v, rep[k])) return `${k}: expected ${fmt(v)}, got ${fmt(rep[k])}`;
  }
  return null;
}

function stripMeta(rep: Reply): Record<string, unknown> {
  const { i: _i, ok: _ok, ...rest } = rep;
  return rest;
}

interface SnapEntry {
  p: string;
  type: string;
  nlink: number;
  ino: number;
  x: Record<string, string>;
  size?: number;
  sha?: string;
  len?: number;
}

/** Inode numbers: each model node keeps one (also across remounts), and two live nodes never share one. */
class InoMap {
  private readonly inoOf = new Map<number, number>();
  private readonly idOf = new Map<number, number>();

  check(id: number, ino: number, live: (id: number) => boolean): string | null {
    const known = this.inoOf.get(id);
    if (known !== undefined && known !== ino) return `inode number changed: was ${known}, now ${ino}`;
    const other = this.idOf.get(ino);
    if (other !== undefined && other !== id && live(other)) return `inode number ${ino} is shared by two different files (model nodes ${other} and ${id})`;
    this.inoOf.set(id, ino);
    this.idOf.set(ino, id);
    return null;
  }
}

/** Differences between a flattened model and a snapshot, or null. */
function compareTree(want: FlatEntry[], got: SnapEntry[], inos: InoMap, live: (id: number) => boolean): string | null {
  const diffs: string[] = [];
  const byPath = new Map(got.map((e) => [e.p, e]));
  const wantPaths = new Set(want.map((e) => e.p));
  for (const e of got) if (!wantPaths.has(e.p)) diffs.push(`unexpected ${e.type} ${e.p}`);
  for (const w of want) {
    const g = byPath.get(w.p);
    if (!g) {
      diffs.push(`missing ${w.type} ${w.p}`);
      continue;
    }
    if (g.type !== w.type) {
      diffs.push(`${w.p}: type ${g.type}, expected ${w.type}`);
      continue;
    }
    if (g.nlink !== w.nlink) diffs.push(`${w.p}: nlink ${g.nlink}, expected ${w.nlink}`);
    if (!isDeepStrictEqual(g.x, w.x)) diffs.push(`${w.p}: xattrs ${fmt(g.x)}, expected ${fmt(w.x)}`);
    if (w.type === 'file') {
      if (g.size !== w.size) diffs.push(`${w.p}: stat size ${g.size}, expected ${w.size}`);
      if (g.len !== w.size || g.sha !== w.sha) diffs.push(`${w.p}: content (${g.len} bytes, sha256 ${g.sha?.slice(0, 16)}) differs from expected (${w.size} bytes, ${w.sha?.slice(0, 16)})`);
    }
    const inoProblem = inos.check(w.id, g.ino, live);
    if (inoProblem) diffs.push(`${w.p}: ${inoProblem}`);
  }
  if (diffs.length === 0) return null;
  return diffs.slice(0, 20).join('\n') + (diffs.length > 20 ? `\n... and ${diffs.length - 20} more` : '');
}

/** First differing byte of two buffers, for a readable report. */
function firstDiff(want: Buffer, got: Buffer): string {
  const n = Math.min(want.length, got.length);
  for (let k = 0; k < n; k++) {
    if (want[k] !== got[k]) {
      let end = k;
      while (end < n && want[end] !== got[end]) end++;
      return `first difference at byte ${k} (differs through ${end - 1}); expected length ${want.length}, got ${got.length}`;
    }
  }
  return want.length === got.length ? 'identical bytes' : `same bytes up to ${n}; expected length ${want.length}, got ${got.length}`;
}

/** libfuse (high-level API, no hard_remove) renames a file that is unlinked while open to .fuse_hidden*. */
export const HIDDEN = /^\.fuse_hidden[0-9a-f]+$/;

function withoutHidden(names: unknown): unknown {
  return Array.isArray(names) ? names.filter((n) => typeof n !== 'string' || !HIDDEN.test(n)) : names;
}

/** A reply with libfuse's hidden files taken out of every listing (--allow-fuse-hidden). */
function hideHidden(rep: Reply): Reply {
  const out: Reply = { ...rep };
  if (Array.isArray(rep.names)) out.names = withoutHidden(rep.names);
  if (Array.isArray(rep.res)) out.res = (rep.res as unknown[][]).map((r) => (r[0] === 'ok' && Array.isArray(r[1]) ? ['ok', withoutHidden(r[1])] : r));
  if (Array.isArray(rep.entries)) out.entries = (rep.entries as SnapEntry[]).filter((e) => !e.p.split('/').some((c) => HIDDEN.test(c)));
  return out;
}

type McCounts = Pick<McRun, 'opsChecked' | 'snapshots' | 'outcomes'>;

/**
 * One run of a sequence on a mounted vault: workers rooted at <mount>/<base>/w<k>, their models, and the
 * checks. Several trials can share a mount (the shrinker's fast replays), each under its own base.
 */
class Trial {
  readonly models: Model[];
  readonly workers: Worker[] = [];
  readonly inos = new InoMap();
  readonly counts: McCounts = { opsChecked: 0, snapshots: 0, outcomes: {} };
  failure: McFailure | null = null;

  constructor(
    private readonly box: StressBox,
    private readonly base: string,
    private readonly o: McOptions,
  ) {
    this.models = Array.from({ length: o.workers }, (_, w) => new Model((w + 1) * 1_000_000));
  }

  private live = (id: number) => this.models.some((m) => m.liveIds().has(id));

  fail(f: Omit<McFailure, 'logs' | 'dir'>): void {
    if (!this.failure || f.g < this.failure.g) this.failure = { ...f, logs: this.box.logs, dir: this.box.dir };
  }

  private newWorker(rel: string): Worker {
    const flags = { forceSync: this.o.forceSync, waitHidden: this.o.allowFuseHidden };
    return new Worker(rel ? `${this.box.mnt}/${rel}` : this.box.mnt, flags);
  }

  private call(worker: Worker, req: Record<string, unknown>): Promise<Reply> {
    return worker.call(req).then((r) => (this.o.allowFuseHidden ? hideHidden(r) : r));
  }

  /** Creates the worker roots (and the base) through a worker at the mount's root. */
  async setup(): Promise<boolean> {
    const root = this.newWorker('');
    this.workers.push(root);
    const dirs = [...(this.base ? [this.base] : []), ...this.models.map((_, w) => this.rel(w))];
    for (const d of dirs) {
      const r = await root.call({ op: 'mkdir', p: d });
      if (!r.ok) {
        this.fail({ g: -1, where: 'setup', detail: `mkdir ${d}: ${r.err} ${r.msg}` });
        return false;
      }
    }
    for (let w = 0; w < this.models.length; w++) this.workers.push(this.newWorker(this.rel(w)));
    return true;
  }

  private rel(w: number): string {
    return this.base ? `${this.base}/w${w}` : `w${w}`;
  }

  private async snapshotCheck(w: number, g: number): Promise<boolean> {
    const rep = await this.call(this.workers[w + 1] as Worker, { op: 'snapshot', p: '' });
    this.counts.snapshots++;
    if (!rep.ok) {
      this.fail({ g, where: 'snapshot', detail: `snapshot of w${w} failed: ${rep.err} ${rep.msg}` });
      return false;
    }
    const diff = compareTree((this.models[w] as Model).flatten(), rep.entries as SnapEntry[], this.inos, this.live);
    if (diff) {
      this.fail({ g, where: 'snapshot', detail: `subtree w${w} differs from the model after operation #${g}:\n${diff}` });
      return false;
    }
    return true;
  }

  private async runWorker(w: number, ops: GenOp[], deadline: number): Promise<void> {
    const worker = this.workers[w + 1] as Worker;
    const model = this.models[w] as Model;
    let k = 0;
    let lastG = -1;
    for (const op of ops) {
      if (op.w !== w) continue;
      if (this.failure || Date.now() > deadline) return;
      lastG = op.g;
      const exp = model.apply(op);
      const rep = await this.call(worker, request(op));
      let diff = compareReply(exp, rep);
      if (!diff && exp.ok && exp.node && typeof rep.ino === 'number') diff = this.inos.check(exp.node.id, rep.ino, this.live);
      if (diff) {
        let detail = diff;
        if (op.op === 'read' && exp.ok && exp.node && rep.ok) {
          const dump = await worker.call({ op: 'dump', p: op.p });
          if (dump.ok) detail += `\n${firstDiff((exp.node as FileNode).data, Buffer.from(dump.b64 as string, 'base64'))}`;
        }
        this.fail({ g: op.g, where: 'operation', op, expected: exp.ok ? exp.r : exp.err, actual: stripMeta(rep), detail });
        return;
      }
      this.counts.opsChecked++;
      const key = `${op.op} ${exp.ok ? 'ok' : exp.err}`;
      this.counts.outcomes[key] = (this.counts.outcomes[key] ?? 0) + 1;
      if (++k % this.o.snapshotEvery === 0 && !(await this.snapshotCheck(w, op.g))) return;
    }
    if (lastG >= 0 && k % this.o.snapshotEvery !== 0) await this.snapshotCheck(w, lastG);
  }

  /** Every worker runs its operations, all at once. Returns whether everything matched. */
  async runOps(ops: GenOp[], deadline = Number.MAX_SAFE_INTEGER): Promise<boolean> {
    await Promise.all(this.models.map((_, w) => this.runWorker(w, ops, deadline)));
    return this.failure === null;
  }

  /** The whole tree below the base, compared with every model at once. */
  async fullCheck(where: string, g: number): Promise<boolean> {
    const rep = await this.call(this.workers[0] as Worker, { op: 'snapshot', p: this.base });
    this.counts.snapshots++;
    if (!rep.ok) {
      this.fail({ g, where, detail: `snapshot of the whole tree failed: ${rep.err} ${rep.msg}` });
      return false;
    }
    const want = this.models.flatMap((m, w) => [
      { p: this.rel(w), type: 'dir' as const, id: m.root.id, nlink: Model.dirNlink(m.root), x: {} },
      ...m.flatten(this.rel(w)),
    ]);
    const diff = compareTree(want, rep.entries as SnapEntry[], this.inos, this.live);
    if (diff) this.fail({ g, where, detail: `the tree differs from the model (${where}):\n${diff}` });
    return !diff;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/** Runs a sequence of operations on a fresh vault and checks everything: each result, snapshots, the final tree, again after a remount, then fsck. */
export async function runOnce(ops: GenOp[], o: McOptions, keepOnFailure: boolean, opsOnly = false): Promise<McRun> {
  const t0 = Date.now();
  const box = new StressBox('mc');
  const trial = new Trial(box, '', o);
  const result = (): McRun => ({ ...trial.counts, failure: trial.failure, ms: Date.now() - t0 });
  const end = ops.length;
  try {
    try {
      await box.init(['--piece-size', String(o.pieceSize), '--chaff', String(o.chaff)]);
      await box.mount();
    } catch (err) {
      trial.fail({ g: -1, where: 'setup', detail: (err as Error).message });
      return result();
    }
    if (!(await trial.setup())) return result();
    if (!(await trial.runOps(ops, t0 + o.timeBudgetMs))) return result();
    if (opsOnly) return result();
    // The whole tree, from the mount's root; then again after a remount (persistence, stable inode numbers).
    if (!(await trial.fullCheck('final tree', end))) return result();
    try {
      await box.remount();
    } catch (err) {
      trial.fail({ g: end, where: 'remount', detail: (err as Error).message });
      return result();
    }
    if (!(await trial.fullCheck('after remount', end))) return result();
    const u = await box.unmount();
    if (u.code !== 0 || box.mounted()) {
      trial.fail({ g: end, where: 'unmount', detail: `svault unmount exited ${u.code}: ${u.stderr}` });
      return result();
    }
    const f = await box.fsck(false);
    if (f.code !== 0) trial.fail({ g: end, where: 'fsck', detail: `svault fsck exited ${f.code} (expected 0, clean):\n${f.text.slice(0, 3000)}` });
    return result();
  } finally {
    await trial.close();
    await box.cleanup(keepOnFailure && trial.failure !== null);
  }
}

/** The sequence selected by the options: generated from the seed, then cut to a prefix and/or one worker. */
export function selectOps(o: McOptions): GenOp[] {
  if (o.replayFile) return JSON.parse(readFileSync(o.replayFile, 'utf8')) as GenOp[];
  let ops = generate({ seed: o.seed, count: o.ops, workers: o.workers, pieceSize: o.pieceSize, namespaceInSessions: !o.allowFuseHidden });
  if (o.prefix !== undefined) ops = ops.filter((x) => x.g < (o.prefix as number));
  if (o.onlyWorker !== undefined) ops = ops.filter((x) => x.w === o.onlyWorker);
  if (o.only !== undefined) {
    const keep = new Set(o.only);
    ops = ops.filter((x) => keep.has(x.g));
  }
  return ops;
}

/** Whether two failures look like the same problem (the shrinker must not drift to another one). */
function sameProblem(a: McFailure, b: McFailure): boolean {
  if (a.where !== b.where) return false;
  return a.where !== 'operation' || a.op?.op === b.op?.op;
}

/**
 * Delta debugging on one mounted vault (fast: no init or mount per candidate): removes chunks of the
 * sequence while it still fails the same way. Any subsequence is a valid test, since the model computes
 * what each operation must return. Returns the smallest failing sequence found within the budget.
 */
async function ddmin(ops: GenOp[], target: McFailure, o: McOptions, until: number, log: (l: string) => void): Promise<{ ops: GenOp[]; tries: number }> {
  const box = new StressBox('mc-ddmin');
  let tries = 0;
  try {
    await box.init(['--piece-size', String(o.pieceSize), '--chaff', String(o.chaff)]);
    await box.mount();
    /** Runs a candidate; if it fails the same way, returns it cut after the failing operation. */
    const fails = async (cand: GenOp[]): Promise<GenOp[] | null> => {
      tries++;
      const opLevel = target.where === 'operation';
      const trial = new Trial(box, `t${tries}`, opLevel ? { ...o, snapshotEvery: Number.MAX_SAFE_INTEGER } : o);
      try {
        if (!(await trial.setup())) throw new Error(trial.failure?.detail ?? 'setup failed');
        await trial.runOps(cand);
        if (!trial.failure && target.where !== 'operation' && target.where !== 'snapshot') await trial.fullCheck('final tree', Number.MAX_SAFE_INTEGER);
        const f = trial.failure as McFailure | null;
        if (!f || !sameProblem(f, target)) return null;
        return f.g < Number.MAX_SAFE_INTEGER ? cand.filter((x) => x.g <= f.g) : cand;
      } finally {
        await trial.close();
      }
    };
    let cur = ops;
    // Often only the last few operations matter: try growing suffixes first (cheap, and a big cut).
    for (let k = 1; k < cur.length / 2 && Date.now() < until; k *= 2) {
      const cut = await fails(cur.slice(cur.length - k));
      if (cut) {
        cur = cut;
        log(`  ddmin: the last ${cur.length} ops alone still fail`);
        break;
      }
    }
    let n = 2;
    while (cur.length >= 2 && Date.now() < until) {
      const size = Math.ceil(cur.length / n);
      let reduced = false;
      for (let start = 0; start < cur.length && Date.now() < until; start += size) {
        const cut = await fails([...cur.slice(0, start), ...cur.slice(start + size)]);
        if (cut) {
          cur = cut;
          n = Math.max(n - 1, 2);
          reduced = true;
          log(`  ddmin: ${cur.length} ops still fail`);
          break;
        }
      }
      if (!reduced) {
        if (n >= cur.length) break;
        n = Math.min(cur.length, n * 2);
      }
    }
    return { ops: cur, tries };
  } finally {
    await box.cleanup(false);
  }
}

/**
 * Smallest failing prefix: bisects the prefix length between 0 (passes) and the failing operation,
 * replaying each candidate on a fresh vault; then tries the failing worker's operations alone, then
 * removes what else it can (ddmin), and replays the result once more on a fresh vault, kept for its log.
 */
export async function shrink(ops: GenOp[], failure: McFailure, o: McOptions): Promise<NonNullable<McReport['shrunk']>> {
  const t0 = Date.now();
  const until = t0 + o.shrinkBudgetMs;
  const sub: McOptions = { ...o, timeBudgetMs: Number.MAX_SAFE_INTEGER };
  const opsOnly = failure.where === 'operation' || failure.where === 'snapshot';
  let replays = 0;
  const fails = async (subset: GenOp[]): Promise<McFailure | null> => {
    replays++;
    const r = await runOnce(subset, sub, false, opsOnly);
    o.log(`  replay ${replays}: ${subset.length} ops -> ${r.failure ? `fails (${r.failure.where} at #${r.failure.g})` : 'passes'} (${(r.ms / 1000).toFixed(1)} s)`);
    return r.failure && sameProblem(r.failure, failure) ? r.failure : null;
  };
  let hi = failure.g >= 0 && failure.g < ops.length ? failure.g + 1 : ops.length;
  // A failing operation is the end of its smallest prefix (earlier ones all passed); a difference found
  // later (a snapshot, the final tree, fsck) may come from any earlier operation: bisect for those.
  let lo = failure.where === 'operation' ? hi - 1 : 0;
  let base = ops.filter((x) => x.g < hi);
  if (!(await fails(base))) {
    return { prefix: hi, ops: base, failure, replays, reproduced: false, note: 'the failure did not reproduce on a fresh vault (timing-dependent?)' };
  }
  const notes: string[] = [];
  // The workers' subtrees are independent: the failing worker's operations alone usually suffice.
  const last = failure.op ?? base[base.length - 1];
  if (last && base.some((x) => x.w !== last.w)) {
    const alone = base.filter((x) => x.w === last.w);
    if (await fails(alone)) base = alone;
  }
  const prefixOf = (n: number) => base.filter((x) => x.g < n);
  while (hi - lo > 1) {
    if (Date.now() > until) {
      notes.push(`time budget ran out while bisecting (prefix between ${lo} and ${hi})`);
      break;
    }
    const mid = Math.floor((lo + hi) / 2);
    if (prefixOf(mid).length === prefixOf(hi).length) hi = mid;
    else if (await fails(prefixOf(mid))) hi = mid;
    else lo = mid;
  }
  const prefix = hi;
  let best = prefixOf(prefix);
  // State-based: the model's state just before the failing operation, built directly, then that
  // operation. If the failure only needs the state (not the history), this is tiny.
  const failing = failure.op;
  if (failing && failure.where === 'operation' && best.length > 1 && Date.now() < until && new Set(best.map((x) => x.w)).size === 1) {
    const model = new Model(0);
    for (const x of best) if (x.g < failing.g) model.apply(x);
    const setup = model.setupOps();
    const synthetic: GenOp[] = [...setup.map((x, k) => ({ ...x, g: k - setup.length, w: failing.w }) as GenOp), failing];
    if (synthetic.length < best.length && (await fails(synthetic))) {
      best = synthetic;
      notes.push(`state-based: the ${setup.length} operations that build the state before #${failing.g}, then #${failing.g}`);
    }
  }
  if (best.length > 1 && Date.now() < until && new Set(best.map((x) => x.w)).size === 1) {
    const td = Date.now();
    const d = await ddmin(best, failure, o, until, o.log);
    replays += d.tries;
    o.log(`  ddmin: ${d.tries} tries on one mount, ${((Date.now() - td) / 1000).toFixed(1)} s`);
    if (d.ops.length < best.length && (await fails(d.ops))) best = d.ops;
    else if (d.ops.length < best.length) notes.push(`ddmin's ${d.ops.length}-op sequence did not fail on a fresh vault; kept the longer one`);
  }
  // Fewer steps in a failing session.
  const tail = best[best.length - 1];
  if (tail && tail.op === 'session' && failure.where === 'operation' && Date.now() < until) {
    let acts = tail.acts;
    for (let k = acts.length - 1; k >= 0 && Date.now() < until; k--) {
      const fewer = acts.filter((_, j) => j !== k);
      const cand = [...best.slice(0, -1), { ...tail, acts: fewer }];
      if (await fails(cand)) acts = fewer;
    }
    best = [...best.slice(0, -1), { ...tail, acts }];
  }
  // The final, kept replay: its server log is the one to read; the sequence is saved next to it.
  replays++;
  const final = await runOnce(best, sub, true);
  if (final.failure) writeFileSync(join(final.failure.dir, 'ops.json'), JSON.stringify(best) + '\n');
  return { prefix, ops: best, failure: final.failure, replays, reproduced: final.failure !== null, note: notes.join('; ') };
}

export async function modelCheck(o: McOptions): Promise<McReport> {
  const ops = selectOps(o);
  o.log(`model check: seed ${o.seed}, ${ops.length} ops, ${o.workers} workers, piece size ${o.pieceSize}`);
  const run = await runOnce(ops, o, o.keepFailing && !o.shrink);
  const { log: _log, ...options } = o;
  const report: McReport = { options, run };
  if (run.failure && o.shrink) {
    o.log(`FAILED at #${run.failure.g} (${run.failure.where}); shrinking...`);
    report.shrunk = await shrink(ops, run.failure, o);
  }
  return report;
}

export function formatFailure(r: McReport): string {
  const f = r.run.failure;
  if (!f) return '';
  const o = r.options;
  const lines = [
    `MODEL CHECK FAILED — seed ${o.seed} (ops ${o.ops}, workers ${o.workers}, piece size ${o.pieceSize})`,
    `first difference: ${f.where}${f.op ? ` at ${describe(f.op)}` : ''}`,
    f.detail,
  ];
  if (f.expected !== undefined) lines.push(`expected: ${fmt(f.expected)}`, `actual:   ${fmt(f.actual)}`);
  const s = r.shrunk;
  if (s) {
    lines.push('', `smallest failing prefix: ${s.prefix} operations; reduced to ${s.ops.length} (${s.replays} replays)${s.note ? ` — ${s.note}` : ''}:`);
    for (const op of s.ops) lines.push(`  ${describe(op)}`);
    if (s.failure) {
      lines.push(`replayed failure: ${s.failure.where}${s.failure.op ? ` at ${describe(s.failure.op)}` : ''}`, s.failure.detail);
      if (s.failure.expected !== undefined) lines.push(`expected: ${fmt(s.failure.expected)}`, `actual:   ${fmt(s.failure.actual)}`);
      lines.push(`server log: ${s.failure.logs.join(', ')}`, `sandbox kept: ${s.failure.dir}`);
      lines.push(
        `replay: node --import tsx test/stress/model-check.ts --replay ${join(s.failure.dir, 'ops.json')} --workers ${o.workers} --piece-size ${o.pieceSize}${o.allowFuseHidden ? ' --allow-fuse-hidden' : ''} --no-shrink`,
      );
    }
    if (s.ops.every((x) => x.g >= 0)) {
      lines.push(
        `replay: node --import tsx test/stress/model-check.ts --seed ${o.seed} --ops ${o.ops} --workers ${o.workers} --piece-size ${o.pieceSize}${o.allowFuseHidden ? ' --allow-fuse-hidden' : ''} --only ${s.ops.map((x) => x.g).join(',')} --no-shrink`,
      );
    }
  } else {
    lines.push(`server log: ${f.logs.join(', ')}`, `sandbox: ${f.dir}`);
  }
  return lines.join('\n');
}

/** "write ok 120, write ENOENT 14, ..." grouped by operation. */
export function formatOutcomes(outcomes: Record<string, number>): string {
  const byOp = new Map<string, string[]>();
  for (const [k, n] of Object.entries(outcomes).sort()) {
    const [op, res] = k.split(' ');
    byOp.set(op as string, [...(byOp.get(op as string) ?? []), `${res} ${n}`]);
  }
  return [...byOp].map(([op, parts]) => `  ${op.padEnd(12)} ${parts.join(', ')}`).join('\n');
}

export function optionsFromArgs(a: Map<string, string>, log: (l: string) => void): McOptions {
  const o: McOptions = {
    ...MC_DEFAULTS,
    seed: intArg(a, 'seed', Math.floor(Math.random() * 2 ** 31)),
    ops: intArg(a, 'ops', MC_DEFAULTS.ops),
    workers: intArg(a, 'workers', MC_DEFAULTS.workers),
    pieceSize: intArg(a, 'piece-size', MC_DEFAULTS.pieceSize),
    chaff: Number(a.get('chaff') ?? MC_DEFAULTS.chaff),
    timeBudgetMs: intArg(a, 'time', MC_DEFAULTS.timeBudgetMs / 1000) * 1000,
    snapshotEvery: intArg(a, 'snapshot-every', MC_DEFAULTS.snapshotEvery),
    forceSync: !a.has('no-sync'),
    shrink: !a.has('no-shrink'),
    shrinkBudgetMs: intArg(a, 'shrink-time', MC_DEFAULTS.shrinkBudgetMs / 1000) * 1000,
    keepFailing: true,
    allowFuseHidden: a.has('allow-fuse-hidden'),
    log,
  };
  if (a.has('prefix')) o.prefix = intArg(a, 'prefix', 0);
  if (a.has('only-worker')) o.onlyWorker = intArg(a, 'only-worker', 0);
  if (a.has('replay')) o.replayFile = a.get('replay');
  if (a.has('only')) o.only = (a.get('only') as string).split(',').map(Number);
  return o;
}

async function main(): Promise<void> {
  cleanupOnSignals();
  const log = (l: string) => process.stderr.write(l + '\n');
  const a = parseArgs(process.argv.slice(2));
  const o = optionsFromArgs(a, log);
  const r = await modelCheck(o);
  const sec = (r.run.ms / 1000).toFixed(1);
  if (r.run.failure) {
    process.stdout.write(formatFailure(r) + '\n');
    process.exitCode = 1;
  } else {
    process.stdout.write(`model check passed: seed ${o.seed}, ${r.run.opsChecked} ops checked, ${r.run.snapshots} tree snapshots compared, ${o.workers} workers, piece size ${o.pieceSize}, ${sec} s\n`);
    if (a.has('outcomes')) process.stdout.write(formatOutcomes(r.run.outcomes) + '\n');
  }
  killAllWorkers();
}

runHarnessIfMain(import.meta.url, main);
