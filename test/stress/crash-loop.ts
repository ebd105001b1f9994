// Crash loops (issue 7, item 2; the crash guarantee of issue 21): a workload writes through the mount
// while the server is killed, then the vault is checked against what svault promises to keep.
//
// Each cycle: mount (which recovers from the previous crash), check every file against the model, run
// a workload in several worker processes, and crash the server — kill -9 at a random moment, or at a
// crash point (SVAULT_CRASH_AT=piece.put|piece.partial|meta.commit|meta.committed:n, random n; the two
// meta points are inside the group commit, after its blobs are durable and before, or after, its
// metadata is written) — then check the crashed store in turn with `svault fsck` (which may find orphaned
// blobs and nothing else), with `svault fsck --repair` (which may repair orphans and nothing else), or
// not at all (the next mount sweeps the orphans). After the last cycle the vault is unmounted cleanly and
// fsck must be clean, or find only orphans that --repair removes (see orphansNotSwept).
//
// The promise checked (README, crash safety):
//   - fsync is durable. What an fsync of a file or of a directory acknowledged is never lost, and with
//     it every change made before the fsync began, in every file of the vault (commits are vault-wide).
//   - A close is atomic and ordered but need not be durable yet. After a crash each file is as it was
//     at one of its closes or fsyncs, and all changes (closes, creates, renames, unlinks, truncates) are
//     committed in the order they happened: the vault is as it was after some prefix of the completed
//     calls, plus perhaps the call in flight.
//   - The loss is bounded. A change is committed at most `commit` seconds after it is made (-o
//     commit=SECONDS, --commit; svault's default is 1 s): every call that returned more than commit + 1 s
//     (a margin) before the crash is reflected after it.
//   - Under -o sync (--sync) every close and every metadata change is durable before it returns: each is
//     an acknowledgement, as an fsync is.
//
// The model: each worker owns a directory c<k> with a few files. Every operation is a list of system
// calls run by the worker (worker.py "steps"), which reports each call as it returns. The harness notes,
// on its own clock, when it sent each operation (its calls start after that) and when each report
// arrived (the call returned before that). The crash time is when the harness sent the kill, or for a
// crash point the last time it saw the server alive: both no later than the real crash. So after a crash,
// each worker's directory must be, as a whole, the state after one of its calls (or before all of them),
//   - not before its last acknowledgement (fsync, fsync of the directory; under -o sync also every close,
//     create, O_TRUNC, truncate, rename and unlink),
//   - not before the last call whose report arrived more than commit + 1 s before the crash,
//   - possibly the state the call in flight would leave (it may have been committed without its reply
//     getting through),
// and the directories together must fit one order: when a worker's state includes a call, every call of
// another worker whose report arrived before that call's operation was sent is included too (this is
// how one worker's fsync makes the others' changes durable). Never a state between those: not the
// bytes of a write before its close or fsync, not part old and part new content, not a wrong length.
// After a clean unmount, every returned call is there.
//
// Half the cycles are quiet: no operation fsyncs, so what survives is up to the commit window alone
// (or -o sync), and the atomic-replace idiom runs without its fsync (the order of commits alone must
// keep the rename from landing before the content). The workers' directories are made on a mount of
// their own, and the check after a crash changes nothing, so a cycle's crash point counts only the
// cycle's own work; temporary files an interrupted replace left are removed by the next workload.
//
// Power loss (--power-loss; issue 21's Tests): the store lives on a durable-fs disk (durable-fs.ts, whose
// model durable-image.ts describes), which knows which of svault's and SQLite's writes an fsync, fdatasync
// or directory fsync made durable. Each crash is followed by a power loss: once the server is dead, the
// store becomes what the disk made durable (unsynced bytes of every file dropped, meta.db and its WAL
// included; names created, removed or renamed since their directory's last fsync undone), and the next
// mount recovers from that. A clean unmount (the setup's, a cycle whose crash point was not reached, the
// last) is followed by one too: what it made durable must be every returned call. The checks are the
// same. The loss bound stays commit + 1 s: a commit survives a power loss once SQLite's fsync of the
// WAL returns rather than once its write does, and its blobs are fdatasynced before it in both cases.
// Commits are longer on this disk, though (no syncfs through FUSE: one fdatasync per blob), so the 1 s
// margin has less room than on ext4; the report gives commit times and the age of the last durable
// commit at each crash beside the oldest change lost (test/stress/README.md, Power loss).
//
//   node --import tsx test/stress/crash-loop.ts [--seed N] [--crashes N] [--workers N] [--files N]
//        [--piece-size N] [--time SECONDS] [--sync] [--commit SECONDS] [--power-loss] [--lenient]

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StressBox, cleanupOnSignals } from './box.js';
import { HIDDEN } from './model-check.js';
import { intArg, parseArgs, Rng, sha256, sleep, tagData, type HarnessOptions } from './util.js';
import { killAllWorkers, runHarnessIfMain, Worker, type Reply } from './worker-client.js';

export const CRASH_POINTS = ['piece.put', 'piece.partial', 'meta.commit', 'meta.committed'] as const;
export type CrashKind = 'kill' | (typeof CRASH_POINTS)[number];
export const CRASH_KINDS: readonly CrashKind[] = ['kill', ...CRASH_POINTS];

/** svault's commit window when the mount is given no commit= option (README, crash safety). */
export const DEFAULT_COMMIT_SECONDS = 1;
/** What a change may take beyond the commit window to be durable: a crash loses nothing older than commit + this. */
export const COMMIT_MARGIN_MS = 1000;

export interface CrashOptions extends HarnessOptions {
  /** Crash cycles to run. */
  crashes: number;
  /** The crash kinds the cycles go through, in turn. */
  kinds: readonly CrashKind[];
  filesPerWorker: number;
  /** A cycle's workload stops after this long if no crash came. */
  maxWorkloadMs: number;
  /**
   * Mount with -o sync: every close and every metadata change is an acknowledgement (durable when it
   * returns), not only fsync.
   */
  sync: boolean;
  /** -o commit=SECONDS; null passes none, and the bound is checked with svault's default (1 s). */
  commit: number | null;
  /**
   * Known issues are failures: a leaked .fuse_hidden* file (a file unlinked while open, left by the
   * crash), and, under -o sync, a file created and closed without data lost by a crash. Off (--lenient):
   * leaked files are counted and removed, and such a create and close are not acknowledgements (the
   * commit-window bound still holds for them).
   */
  strict: boolean;
  /** Each crash and each clean unmount is followed by a simulated power loss (see the header). */
  powerLoss: boolean;
  /** Keep the sandbox even when the run passed (--keep). */
  keep?: boolean;
}

export const CRASH_DEFAULTS: Omit<CrashOptions, 'seed' | 'log'> = {
  crashes: 100,
  kinds: CRASH_KINDS,
  workers: 3,
  filesPerWorker: 6,
  pieceSize: 16384,
  chaff: 0.1,
  timeBudgetMs: 3_600_000,
  maxWorkloadMs: 15_000,
  sync: false,
  commit: null,
  strict: true,
  powerLoss: false,
  keepFailing: true,
};

export interface CrashReport {
  seed: number;
  /** Mounted with -o sync. */
  sync: boolean;
  /** The commit window the loss bound was checked with (seconds; commit + 1 s is the bound). */
  commitSeconds: number;
  cycles: number;
  /** Cycles in which no operation fsynced (durability by the commit window, or -o sync, alone). */
  quietCycles: number;
  /** Cycles in which the server died (by kill -9 or at its crash point). */
  crashesInjected: number;
  byKind: Record<string, { cycles: number; crashed: number }>;
  /** Operations whose every call returned. */
  opsAcknowledged: number;
  /** Operations in flight when the server died. */
  opsInFlight: number;
  /** File checks after remounts: each file found or expected in a worker's directory, each cycle. */
  filesChecked: number;
  /**
   * Bytes of content that had to survive (acknowledged, or older than the commit window) and were not
   * there after a crash. Must be 0.
   */
  bytesLost: number;
  tornFiles: number;
  /** How each worker's directory was found after a crash: with every returned call, fewer, the call in flight. */
  outcomes: Record<string, number>;
  /** Returned but unacknowledged changes (closes, metadata changes) a crash undid: allowed within the commit window. */
  changesLost: number;
  /** The oldest of those: how long before the crash its report had arrived (ms); at most commit + 1 s. */
  oldestLostMs: number;
  orphansFound: number;
  /**
   * Orphans a plain `svault fsck` found after a crash that the next mount then did not sweep: fsck takes
   * over the dead server's lock and releases it cleanly, so the mount no longer knows there was a crash.
   */
  orphansNotSwept: number;
  /** Mounts after a crash that swept orphans themselves, and how many. */
  sweeps: number;
  orphansSwept: number;
  hiddenLeaked: number;
  /** Power-loss mode: the losses simulated, and what they dropped. */
  powerLoss: PowerLossReport | null;
  failures: string[];
  logs: string[];
  dir: string;
  ms: number;
}

export interface PowerLossReport {
  losses: number;
  /** Of them, after a clean unmount (which must have left every returned call durable). */
  afterUnmount: number;
  /** What the losses dropped, as the disk counted it: files written since their last fsync, and at most how many bytes; names not made durable; removed names back. */
  dirtyFiles: number;
  bytesDropped: number;
  namesDropped: number;
  namesRevived: number;
  /** The store's syncs the disk saw: fsync, fdatasync (blobs, SQLite), directory fsync. */
  fsyncs: number;
  fdatasyncs: number;
  fsyncdirs: number;
  /** Times the disk's model found its own invariant broken (must stay 0). */
  anomalies: number;
  /** After crashes: how long before the crash SQLite's WAL was last fsynced (the last durable commit), the largest (ms). */
  lastCommitMaxMs: number;
  /** Commits as the disk saw them (a burst of blob and directory syncs ending with the WAL's fsync): how many, total and longest time (ms). */
  commits: number;
  commitMs: number;
  commitMaxMs: number;
  /** Images whose space reserve (svault.reserve, written and never fsynced) was not its full size. */
  reserveShort: number;
  /** Time spent on the losses: writing images and starting new disks (ms). */
  ms: number;
}

type Content = Buffer | null;
/**
 * A call's place in the durability story: ack = once it returns, the state is durable (fsync of a file
 * or of the directory; under -o sync also every close and metadata change); change = a close or a
 * metadata change (create, O_TRUNC, ftruncate, truncate, rename, unlink), committed in order with the
 * others but lost by a crash within the commit window; volatile = a pwrite (or an open that changes
 * nothing), whose bytes must never be seen after a crash without the close or fsync that commits them.
 */
type CallKind = 'ack' | 'change' | 'volatile';

interface Plan {
  desc: string;
  calls: unknown[][];
  /** Contents of the names the operation touches, before it (index 0) and after each call. */
  states: Map<string, Content>[];
  kinds: CallKind[];
}

class PlanBuilder {
  readonly calls: unknown[][] = [];
  readonly states: Map<string, Content>[];
  readonly kinds: CallKind[] = [];
  private cur: Map<string, Content>;

  constructor(touched: Map<string, Content>) {
    this.cur = new Map(touched);
    this.states = [new Map(this.cur)];
  }

  get(name: string): Content {
    return this.cur.get(name) ?? null;
  }

  call(c: unknown[], kind: CallKind, change?: (cur: Map<string, Content>) => void): void {
    change?.(this.cur);
    this.calls.push(c);
    this.kinds.push(kind);
    this.states.push(new Map(this.cur));
  }

  plan(desc: string): Plan {
    return { desc, calls: this.calls, states: this.states, kinds: this.kinds };
  }
}

function writeInto(b: Content, off: number, data: Buffer): Buffer {
  const base = b ?? Buffer.alloc(0);
  const out = Buffer.alloc(Math.max(base.length, off + data.length));
  base.copy(out);
  data.copy(out, off);
  return out;
}

function resize(b: Content, size: number): Buffer {
  const base = b ?? Buffer.alloc(0);
  const out = Buffer.alloc(size);
  base.copy(out, 0, 0, Math.min(size, base.length));
  return out;
}

/** The harness's clock: monotonic, in ms. */
const now = () => performance.now();

/** A call as reports show it: its name and first arguments (no data tags). */
const callText = (c: unknown[]) => `${String(c[0])}(${c.slice(1, c[0] === 'pwrite' ? 4 : 3).map((x) => JSON.stringify(x)).join(', ')})`;

/** A state the worker's directory may be found in after a crash: the state after one of its calls. */
interface Candidate {
  label: 'acknowledged' | 'change' | 'in flight';
  files: Map<string, Content>;
  /**
   * When the report of the call that left this state arrived (the harness's clock; the call returned
   * before it). -Infinity for the state checked after the last crash; Infinity for the call in flight.
   */
  at: number;
  /** When that call's operation was sent to the worker: the call began after it. -Infinity for the checked state. */
  sent: number;
  /** Which call, for reports. */
  call: string;
}

/** The model of one worker's directory and its workload generator. */
class CrashWorker {
  /** Every returned call applied. */
  files = new Map<string, Content>();
  /** The states a crash may leave, oldest first: [0] the last acknowledged one, then one per later change. */
  window: Candidate[] = [];
  inflight: { plan: Plan; base: Map<string, Content>; returned: number; sent: number } | null = null;
  /** Operations (and how far they got) since the last acknowledged state, for reports. */
  history: string[] = [];
  /**
   * Whether operations may fsync (set per cycle). In a quiet cycle nothing does: what becomes durable is
   * up to the group commit's window alone (or to -o sync).
   */
  fsyncs = true;
  private opNo = 0;

  constructor(
    readonly w: number,
    readonly names: string[],
    private readonly rng: Rng,
    private readonly P: number,
    private readonly seed: number,
    private readonly sync: boolean,
    private readonly strict: boolean,
  ) {
    for (const n of names) this.files.set(n, null);
    this.settle(this.files);
  }

  /** A close, or a metadata change: an acknowledgement under -o sync, else an ordered change. */
  private get change(): CallKind {
    return this.sync ? 'ack' : 'change';
  }

  /** Creating a file without data, and closing it: as change, but no acknowledgement under --lenient (known issue 3). */
  private get emptyCreate(): CallKind {
    return this.sync && this.strict ? 'ack' : 'change';
  }

  begin(plan: Plan, sent: number): void {
    this.inflight = { plan, base: new Map(this.files), returned: 0, sent };
    this.history.push(plan.desc);
  }

  private stateAfter(k: number): Map<string, Content> {
    const fl = this.inflight as NonNullable<CrashWorker['inflight']>;
    const files = new Map(fl.base);
    for (const [n, c] of fl.plan.states[k] as Map<string, Content>) files.set(n, c);
    return files;
  }

  /** Call k (1-based) of the operation in flight has returned; its report arrived at `at`. */
  returned(k: number, at: number): void {
    const fl = this.inflight;
    if (!fl || k <= fl.returned) return;
    for (let j = fl.returned + 1; j <= k; j++) {
      const files = this.stateAfter(j);
      this.files = files;
      const kind = fl.plan.kinds[j - 1];
      const c = { files, at, sent: fl.sent, call: `${fl.plan.desc}: ${callText(fl.plan.calls[j - 1] as unknown[])}` };
      if (kind === 'ack') {
        this.window = [{ label: 'acknowledged', ...c }];
        this.history = [`${fl.plan.desc} (from call ${j + 1})`];
      } else if (kind === 'change') this.window.push({ label: 'change', ...c });
    }
    fl.returned = k;
  }

  done(at: number): void {
    if (this.inflight) this.returned(this.inflight.plan.calls.length, at);
    this.inflight = null;
  }

  /** The states a crash now may leave behind, oldest first. */
  candidates(): Candidate[] {
    const out = [...this.window];
    const fl = this.inflight;
    if (fl && fl.returned < fl.plan.calls.length && fl.plan.kinds[fl.returned] !== 'volatile') {
      const call = `${fl.plan.desc}: ${callText(fl.plan.calls[fl.returned] as unknown[])}`;
      out.push({ label: 'in flight', files: this.stateAfter(fl.returned + 1), at: Infinity, sent: fl.sent, call });
    }
    return out;
  }

  /** After a crash was checked: the state found is the new acknowledged one. */
  settle(files: Map<string, Content>): void {
    this.files = new Map([...files].filter(([n, c]) => this.names.includes(n) || c !== null));
    this.window = [{ label: 'acknowledged', files: new Map(this.files), at: -Infinity, sent: -Infinity, call: 'the state checked after the last crash' }];
    this.inflight = null;
    this.history = [];
  }

  private size(): number {
    const P = this.P;
    return this.rng.chance(0.15) ? this.rng.int(6 * P, 24 * P) : this.rng.chance(0.2) ? this.rng.int(0, 300) : this.rng.int(0, 6 * P);
  }

  /** pwrite calls covering [0, len) of fresh data in random-sized chunks. */
  private fill(b: PlanBuilder, name: string, len: number, tag: string): void {
    let off = 0;
    let k = 0;
    while (off < len) {
      const n = Math.min(len - off, this.rng.int(1, 2 * this.P));
      const t = `${tag}-${k++}`;
      const at = off;
      b.call(['pwrite', 0, at, n, t], 'volatile', (cur) => cur.set(name, writeInto(cur.get(name) ?? null, at, tagData(t, n))));
      off += n;
    }
  }

  next(cycle: number): Plan {
    // Temporary files a crash left (an interrupted replace) go first, as changes like any other.
    const leftovers = [...this.files].filter(([n, c]) => !this.names.includes(n) && c !== null).map(([n]) => n);
    if (leftovers.length > 0) {
      const b = new PlanBuilder(new Map(leftovers.map((n) => [n, this.files.get(n) ?? null])));
      for (const n of leftovers) b.call(['unlink', n], this.change, (c) => c.set(n, null));
      return b.plan(`cleanup ${leftovers.join(' ')}`);
    }
    const name = this.rng.pick(this.names);
    const cur = this.files.get(name) ?? null;
    const tag = `c${this.seed}-${cycle}-${this.w}-${this.opNo++}`;
    const kinds: Record<string, number> = cur === null
      ? { create: 4, touch: 1, rewrite: 2, replace: 2, ...(this.fsyncs ? { fsyncSteps: 2 } : {}) }
      : { overwrite: 5, rewrite: 2, replace: 3, unlink: 1, truncate: 1, unlinkOpen: 1, ...(this.fsyncs ? { fsyncSteps: 3, sync: 1 } : {}) };
    const kind = this.rng.weighted<string>(kinds);
    const b = new PlanBuilder(new Map([[name, cur]]));
    const change = this.change;
    switch (kind) {
      case 'create': {
        const len = this.size();
        const create = len > 0 ? change : this.emptyCreate;
        b.call(['open', 0, name, 'wronly|creat|excl'], create, (c) => c.set(name, Buffer.alloc(0)));
        this.fill(b, name, len, tag);
        b.call(['close', 0], create);
        break;
      }
      case 'touch': {
        // Created and closed, nothing written (known issue 3: the create was once lost by a crash right
        // after the close).
        b.call(['open', 0, name, 'wronly|creat|excl'], this.emptyCreate, (c) => c.set(name, Buffer.alloc(0)));
        b.call(['close', 0], this.emptyCreate);
        if (this.fsyncs && this.rng.chance(0.3)) b.call(['fsyncdir', '.'], 'ack');
        break;
      }
      case 'sync':
        b.call(['fsyncdir', '.'], 'ack');
        break;
      case 'rewrite': {
        b.call(['open', 0, name, 'wronly|creat|trunc'], change, (c) => c.set(name, Buffer.alloc(0)));
        this.fill(b, name, this.size(), tag);
        if (this.fsyncs && this.rng.chance(0.3)) b.call(['fsync', 0], 'ack');
        b.call(['close', 0], change);
        break;
      }
      case 'overwrite': {
        // In place, no O_TRUNC: new data over the old, cut to length at the end if shorter.
        const len = this.size();
        b.call(['open', 0, name, 'wronly'], 'volatile');
        this.fill(b, name, len, tag);
        if (len < (cur as Buffer).length) b.call(['ftruncate', 0, len], change, (c) => c.set(name, resize(c.get(name) ?? null, len)));
        b.call(['close', 0], change);
        break;
      }
      case 'fsyncSteps': {
        // Rounds of writes (appends or overwrites), each made durable by an fsync.
        const creating = cur === null;
        b.call(['open', 0, name, 'rdwr|creat'], creating ? change : 'volatile', (c) => c.set(name, c.get(name) ?? Buffer.alloc(0)));
        const rounds = this.rng.int(2, 4);
        for (let r = 0; r < rounds; r++) {
          const size = (b.get(name) as Buffer).length;
          const off = this.rng.chance(0.5) ? size : this.rng.int(0, size);
          const len = this.rng.int(1, 3 * this.P);
          let done = 0;
          let k = 0;
          while (done < len) {
            const n = Math.min(len - done, this.rng.int(1, 2 * this.P));
            const t = `${tag}-r${r}-${k++}`;
            const at = off + done;
            b.call(['pwrite', 0, at, n, t], 'volatile', (c) => c.set(name, writeInto(c.get(name) ?? null, at, tagData(t, n))));
            done += n;
          }
          b.call(['fsync', 0], 'ack');
        }
        b.call(['close', 0], change);
        break;
      }
      case 'replace': {
        // The atomic-replace idiom: write a temporary file, fsync, close, rename over the target. In a
        // quiet cycle without the fsync: the order of commits alone must keep the rename from coming
        // before the content.
        const tmp = `${name}.tmp`;
        b.call(['open', 0, tmp, 'wronly|creat|excl'], change, (c) => c.set(tmp, Buffer.alloc(0)));
        this.fill(b, tmp, this.size(), tag);
        if (this.fsyncs) b.call(['fsync', 0], 'ack');
        b.call(['close', 0], change);
        b.call(['rename', tmp, name], change, (c) => {
          c.set(name, c.get(tmp) ?? null);
          c.set(tmp, null);
        });
        break;
      }
      case 'unlink':
        b.call(['unlink', name], change, (c) => c.set(name, null));
        break;
      case 'truncate': {
        const len = this.rng.chance(0.5) ? this.rng.int(0, (cur as Buffer).length) : this.size();
        b.call(['truncate', name, len], change, (c) => c.set(name, resize(c.get(name) ?? null, len)));
        break;
      }
      case 'unlinkOpen': {
        // An open file loses its name, then is written through its handle and closed.
        b.call(['open', 0, name, 'rdwr'], 'volatile');
        b.call(['unlink', name], change, (c) => c.set(name, null));
        b.call(['pwrite', 0, 0, this.rng.int(1, 2 * this.P), `${tag}-u`], 'volatile');
        b.call(['close', 0], change);
        break;
      }
    }
    return b.plan(`${kind} ${name}`);
  }
}

function readLog(path: string | undefined): string {
  try {
    return path ? readFileSync(path, 'utf8') : '';
  } catch {
    return '';
  }
}

/** sha256 of a model content, computed once per buffer (a state is compared with many found ones). */
const shas = new WeakMap<Buffer, string>();
function shaOf(b: Buffer): string {
  let s = shas.get(b);
  if (s === undefined) {
    s = sha256(b);
    shas.set(b, s);
  }
  return s;
}

const describeContent = (c: Content) => (c === null ? 'absent' : `${c.length} bytes ${shaOf(c).slice(0, 12)}`);

/** Which piece-sized blocks of a torn file match the old, the new, or neither: the shape of a tear. */
function tearMap(got: Buffer, old: Content, next: Content, P: number): string {
  const parts: string[] = [];
  for (let off = 0; off < got.length; off += P) {
    const blk = got.subarray(off, off + P);
    const same = (c: Content) => c !== null && c.length > off && c.subarray(off, off + blk.length).equals(blk);
    parts.push(same(next) ? 'N' : same(old) ? 'o' : blk.every((x) => x === 0) ? '0' : '?');
  }
  return parts.join('');
}

type Entry = { type: string; size?: number; sha?: string };

/** One worker's directory as found after a crash, with the states it may be in. */
interface Found {
  cw: CrashWorker;
  worker: Worker;
  entries: Record<string, Entry>;
  cands: Candidate[];
  /** Every name found or in some candidate. */
  universe: string[];
  /** The candidates the found directory equals. */
  matching: number[];
  /** The oldest candidate allowed: the last acknowledged one, or a later one the commit window's bound requires. */
  required: number;
  /** matching, from required on. */
  allowed: number[];
}

export async function crashLoop(o: CrashOptions): Promise<CrashReport> {
  const t0 = Date.now();
  const rng = new Rng(o.seed);
  const commitSeconds = o.commit ?? DEFAULT_COMMIT_SECONDS;
  /** A call whose report arrived longer than this before the crash must be reflected after it. */
  const boundMs = commitSeconds * 1000 + COMMIT_MARGIN_MS;
  const mountOptions = [...(o.sync ? ['sync'] : []), ...(o.commit !== null ? [`commit=${o.commit}`] : [])];
  const box = new StressBox(o.powerLoss ? 'power' : 'crash', { mountOptions, powerLoss: o.powerLoss });
  const report: CrashReport = {
    seed: o.seed,
    sync: o.sync,
    commitSeconds,
    cycles: 0,
    quietCycles: 0,
    crashesInjected: 0,
    byKind: Object.fromEntries(o.kinds.map((k) => [k, { cycles: 0, crashed: 0 }])),
    opsAcknowledged: 0,
    opsInFlight: 0,
    filesChecked: 0,
    bytesLost: 0,
    tornFiles: 0,
    outcomes: {},
    changesLost: 0,
    oldestLostMs: 0,
    orphansFound: 0,
    orphansNotSwept: 0,
    sweeps: 0,
    orphansSwept: 0,
    hiddenLeaked: 0,
    powerLoss: o.powerLoss
      ? { losses: 0, afterUnmount: 0, dirtyFiles: 0, bytesDropped: 0, namesDropped: 0, namesRevived: 0, fsyncs: 0, fdatasyncs: 0, fsyncdirs: 0, anomalies: 0, lastCommitMaxMs: 0, commits: 0, commitMs: 0, commitMaxMs: 0, reserveShort: 0, ms: 0 }
      : null,
    failures: [],
    logs: box.logs,
    dir: box.dir,
    ms: 0,
  };
  const fail = (msg: string) => {
    report.failures.push(msg);
    o.log(`FAILURE: ${msg}`);
  };
  /**
   * The power loss after a crash (crashAt: when, on the harness's clock) or after a clean unmount (null):
   * the store becomes what its disk made durable. What it dropped is kept beside the store (powerloss-N.json).
   */
  const powerLoss = async (when: string, crashAt: number | null): Promise<void> => {
    const pl = report.powerLoss as PowerLossReport;
    const { summary, image, ms, phases } = await box.powerLoss();
    writeFileSync(join(box.dir, `powerloss-${box.powerLosses}.json`), JSON.stringify({ when, ...summary }, null, 1));
    pl.losses++;
    if (crashAt === null) pl.afterUnmount++;
    pl.dirtyFiles += summary.dirtyFiles;
    pl.bytesDropped += summary.bytesDropped;
    pl.namesDropped += summary.namesDropped;
    pl.namesRevived += summary.namesRevived;
    pl.fsyncs += summary.counters.fsyncs;
    pl.fdatasyncs += summary.counters.fdatasyncs;
    pl.fsyncdirs += summary.counters.fsyncdirs;
    pl.anomalies += summary.counters.anomalies;
    pl.commits += summary.counters.commits;
    pl.commitMs += summary.counters.commitMs;
    pl.commitMaxMs = Math.max(pl.commitMaxMs, summary.counters.commitMaxMs);
    pl.ms += ms;
    let age = '';
    const walSync = summary.lastSyncs['meta.db-wal'];
    if (crashAt !== null && walSync !== undefined) {
      const ageMs = Math.round(Date.now() - (now() - crashAt) - walSync);
      pl.lastCommitMaxMs = Math.max(pl.lastCommitMaxMs, ageMs);
      age = `; last durable commit ${ageMs} ms before the crash`;
    }
    let reserve = '';
    try {
      const size = statSync(join(image, 'svault.reserve')).size;
      if (size < 1024 * 1024) {
        pl.reserveShort++;
        reserve = `; svault.reserve ${size} bytes`;
      }
    } catch {
      /* none: svault makes one at its next commit when there is room */
    }
    o.log(
      `  power loss ${box.powerLosses} (${when}): dropped ${summary.bytesDropped} bytes of ${summary.dirtyFiles} files, ${summary.namesDropped} names, ${summary.namesRevived} removed names back${age}${reserve}; ${ms} ms (kill ${phases.killMs}, image ${phases.imageMs} of which writing it ${summary.ms}, new disk ${phases.restartMs})`,
    );
    if (summary.counters.anomalies > 0) fail(`${when}: the durable-fs found its model broken ${summary.counters.anomalies} times (see ${box.dir}/durable-fs.log)`);
  };

  const names = Array.from({ length: o.filesPerWorker }, (_, k) => `f${k}`);
  const cws = Array.from({ length: o.workers }, (_, w) => new CrashWorker(w, names, rng.fork(), o.pieceSize, o.seed, o.sync, o.strict));
  const root = { worker: null as Worker | null };
  const workers: Worker[] = [];

  const sameContent = (want: Content, got: Entry | undefined) =>
    want === null ? got === undefined : got !== undefined && got.type === 'file' && got.size === want.length && got.sha === shaOf(want);
  const sameState = (f: Found, files: Map<string, Content>) => f.universe.every((n) => sameContent(files.get(n) ?? null, f.entries[n]));
  /** The last candidate whose report arrived before t (candidates are in the order their reports arrived). */
  const lastBefore = (cands: Candidate[], t: number) => {
    let j = 0;
    cands.forEach((c, i) => {
      if (c.at < t) j = i;
    });
    return j;
  };

  /**
   * Checks every worker's directory against the states it may be in, and all of them against one order
   * of their calls; adopts the state found. crashAt: the crash time (the harness's clock, no later than
   * the real crash), or null after a clean unmount, which must have kept every returned call.
   */
  const verify = async (cycle: number, crashAt: number | null): Promise<void> => {
    const ref = crashAt ?? now();
    const ago = (t: number) => (t === -Infinity ? 'before the cycle' : t === Infinity ? 'no reply' : `${((ref - t) / 1000).toFixed(3)} s before the ${crashAt === null ? 'unmount' : 'crash'}`);
    const mustHave = crashAt === null ? Infinity : crashAt - boundMs;
    const found: Found[] = [];
    for (const cw of cws) {
      const worker = workers[cw.w] as Worker;
      const rep = await worker.call({ op: 'scan', p: '' });
      if (!rep.ok) {
        fail(`cycle ${cycle}: scanning c${cw.w} failed: ${rep.err} ${rep.msg}`);
        continue;
      }
      const entries = rep.entries as Record<string, Entry>;
      // libfuse's hidden files: a file unlinked while open, left behind by the crash.
      for (const n of Object.keys(entries)) {
        if (!HIDDEN.test(n)) continue;
        report.hiddenLeaked++;
        const msg = `cycle ${cycle}: c${cw.w}/${n} is left over: a file unlinked while open came back, as libfuse's hidden file, after the crash`;
        if (o.strict) fail(msg);
        else o.log(`  note: ${msg}; removing it`);
        await worker.call({ op: 'unlink', p: n });
        delete entries[n];
      }
      const cands = cw.candidates();
      const universe = [...new Set<string>([...Object.keys(entries), ...cands.flatMap((c) => [...c.files.keys()])])].sort();
      const f: Found = { cw, worker, entries, cands, universe, matching: [], required: lastBefore(cands, mustHave), allowed: [] };
      f.matching = cands.flatMap((c, i) => (sameState(f, c.files) ? [i] : []));
      f.allowed = f.matching.filter((i) => i >= f.required);
      report.filesChecked += universe.filter((n) => entries[n] !== undefined || cands.some((c) => (c.files.get(n) ?? null) !== null)).length;
      found.push(f);
    }

    /** The found directory and every state allowed, name by name, for failure reports. */
    const table = (f: Found): string[] => {
      const show = (files: (n: string) => string) => f.universe.map((n) => `${n}=${files(n)}`).join(' ');
      const lines = [`found:  ${show((n) => (f.entries[n] ? `${f.entries[n]?.size}:${f.entries[n]?.sha?.slice(0, 8)}` : '-'))}`];
      // A long window is shown around what matters: its ends, the oldest allowed state, the matching ones.
      const len = f.cands.length;
      const shown = new Set<number>();
      const around = (i: number, r: number) => {
        for (let k = Math.max(0, i - r); k <= Math.min(len - 1, i + r); k++) shown.add(k);
      };
      around(0, 1);
      around(f.required, 3);
      around(len - 1, 6);
      for (const i of [...f.matching.slice(0, 3), ...f.matching.slice(-3)]) around(i, 0);
      let prev = -1;
      for (const i of [...shown].sort((a, b) => a - b)) {
        if (i > prev + 1) lines.push(`... ${i - prev - 1} more`);
        prev = i;
        const c = f.cands[i] as Candidate;
        const mark = i < f.required ? 'too old' : i === f.required ? 'oldest allowed' : 'allowed';
        const state = show((n) => {
          const v = c.files.get(n) ?? null;
          return v === null ? '-' : `${v.length}:${shaOf(v).slice(0, 8)}`;
        });
        lines.push(`#${i} ${c.label}, ${mark}${f.matching.includes(i) ? ', matches' : ''} (${c.call}; reply ${ago(c.at)}): ${state}`);
      }
      lines.push(`operations since the last acknowledged state: ${f.cw.history.join('; ')}`);
      const fl = f.cw.inflight;
      lines.push(fl ? `in flight: ${fl.plan.desc}, ${fl.returned}/${fl.plan.calls.length} calls returned: ${JSON.stringify(fl.plan.calls.map((c) => c.slice(0, 3)))}` : 'no operation in flight');
      return lines;
    };
    /** Bytes of a state that had to survive (by default the oldest allowed one) missing from what was found. */
    const lost = (f: Found, idx = f.required) =>
      f.universe.reduce((s, n) => {
        const want = f.cands[idx]?.files.get(n) ?? null;
        return sameContent(want, f.entries[n]) ? s : s + (want?.length ?? 0);
      }, 0);

    // Each directory on its own: in the state after one of its calls, and not too old.
    for (const f of found) {
      const w = `c${f.cw.w}`;
      if (f.matching.length === 0) {
        // Which files are wrong, and how: torn (matches no allowed content) or a combination that never existed.
        const details: string[] = [];
        const kept = f.cands[f.required]?.files ?? f.cw.files;
        for (const n of f.universe) {
          const options = f.cands.map((c) => c.files.get(n) ?? null);
          const got = f.entries[n];
          if (options.some((want) => sameContent(want, got))) continue;
          report.tornFiles++;
          const keptContent = kept.get(n) ?? null;
          report.bytesLost += keptContent?.length ?? 0;
          let shape = '';
          if (got && got.type === 'file') {
            const dump = await f.worker.call({ op: 'dump', p: n });
            if (dump.ok) shape = ` blocks [${tearMap(Buffer.from(dump.b64 as string, 'base64'), keptContent, options[options.length - 1] ?? null, o.pieceSize)}] (N newest, o oldest allowed, 0 zero, ? neither)`;
          }
          details.push(`${n}: found ${got ? `${got.size} bytes ${got.sha?.slice(0, 12)}` : 'absent'}; allowed: ${[...new Set(options.map(describeContent))].join(' | ')}${shape}`);
        }
        if (details.length === 0) details.push('every file has a content it had after some call, but not all from one state (an operation was half applied, or the changes were committed out of order)');
        fail(`cycle ${cycle}: ${w} is in no state it had after one of its calls:\n    ${[...details, ...table(f)].join('\n    ')}`);
      } else if (f.allowed.length === 0) {
        const newest = f.cands[f.matching[f.matching.length - 1] as number] as Candidate;
        const req = f.cands[f.required] as Candidate;
        report.bytesLost += lost(f);
        const why = crashAt === null
          ? 'after a clean unmount every returned call must be there'
          : `every call whose reply came more than ${commitSeconds} s + ${COMMIT_MARGIN_MS / 1000} s before the crash must be reflected`;
        fail(`cycle ${cycle}: ${w} lost a change it had to keep: it is found as after "${newest.call}" (reply ${ago(newest.at)}), but ${why}, up to "${req.call}" (reply ${ago(req.at)}):\n    ${table(f).join('\n    ')}`);
      }
    }

    // All directories together: one order of all calls. When a's state includes a call, b's includes
    // every call whose report arrived before that call's operation was sent. The least choice that
    // satisfies this, if any: start from each directory's oldest allowed state, move up where needed.
    const ok = found.filter((f) => f.allowed.length > 0);
    const choice = new Map<Found, number>(ok.map((f) => [f, f.allowed[0] as number]));
    let moved = true;
    let violation = '';
    while (moved && !violation) {
      moved = false;
      for (const b of ok) {
        for (const a of ok) {
          if (a === b) continue;
          const ca = a.cands[choice.get(a) as number] as Candidate;
          const need = lastBefore(b.cands, ca.sent);
          if ((choice.get(b) as number) >= need) continue;
          const next = b.allowed.find((i) => i >= need);
          if (next === undefined) {
            const latest = b.cands[b.allowed[b.allowed.length - 1] as number] as Candidate;
            const nb = b.cands[need] as Candidate;
            violation =
              `c${a.cw.w} is found at least as after "${ca.call}", whose operation was sent ${ago(ca.sent)}, so c${b.cw.w} must have every call ` +
              `whose reply came before then, up to "${nb.call}" (reply ${ago(nb.at)}); but c${b.cw.w} is found at most as after "${latest.call}" (reply ${ago(latest.at)}):\n    ` +
              [`c${a.cw.w}:`, ...table(a), `c${b.cw.w}:`, ...table(b)].join('\n    ');
            report.bytesLost += lost(b, need);
            break;
          }
          choice.set(b, next);
          moved = true;
        }
        if (violation) break;
      }
    }
    if (violation) fail(`cycle ${cycle}: the workers' directories fit no single order of their calls (vault-wide commits): ${violation}`);

    // Adopt what was found, and go on from there (also after a failure, so later cycles still check something).
    for (const f of found) {
      const cw = f.cw;
      const j = choice.get(f) ?? f.matching[0];
      if (j !== undefined) {
        const c = f.cands[j] as Candidate;
        const label = c.label === 'in flight' ? 'in-flight call committed' : j === cw.window.length - 1 ? 'every returned call' : 'changes of the commit window lost';
        report.outcomes[label] = (report.outcomes[label] ?? 0) + 1;
        if (crashAt !== null && c.label !== 'in flight' && j < cw.window.length - 1) {
          report.changesLost += cw.window.length - 1 - j;
          report.oldestLostMs = Math.max(report.oldestLostMs, Math.round(crashAt - (cw.window[j + 1] as Candidate).at));
        }
        cw.settle(c.files);
      } else {
        const files = new Map<string, Content>();
        for (const n of f.universe) {
          const dump = f.entries[n] ? await f.worker.call({ op: 'dump', p: n }) : null;
          files.set(n, dump?.ok ? Buffer.from(dump.b64 as string, 'base64') : null);
        }
        cw.settle(files);
      }
      // Nothing more here: what a recovering mount finds is committed already, and the check itself
      // changes nothing (a commit here would count towards the crash point armed for this cycle).
      // Temporary files of interrupted replaces are removed by the workload (CrashWorker.next).
    }
  };

  const isCrashErr = (r: Reply) => r.err !== 'EXC' && r.err !== 'EWORKER';

  /** Runs every worker until stopped or the server dies. */
  const workload = async (cycle: number, stop: { now: boolean }): Promise<void> => {
    await Promise.all(
      cws.map(async (cw) => {
        const worker = workers[cw.w] as Worker;
        while (!stop.now) {
          const plan = cw.next(cycle);
          cw.begin(plan, now());
          const rep = await worker.call({ op: 'steps', calls: plan.calls }, (k) => cw.returned(k, now()));
          if (rep.ok) {
            cw.done(now());
            report.opsAcknowledged++;
            continue;
          }
          if (typeof rep.step === 'number') cw.returned(rep.step, now());
          const fl = cw.inflight as NonNullable<CrashWorker['inflight']>;
          // The server's death shows as ENOTCONN/ECONNABORTED; any error counts as the crash only if the server is gone.
          if (isCrashErr(rep) && (await box.waitServerGone(3000))) {
            stop.now = true;
            report.opsInFlight++;
            return;
          }
          fail(`cycle ${cycle}: ${plan.desc} failed with ${rep.err} (${rep.msg}) while the server was alive (call ${fl.returned + 1} of ${JSON.stringify(plan.calls)})`);
          stop.now = true;
          return;
        }
      }),
    );
  };

  try {
    await box.init(['--piece-size', String(o.pieceSize), '--chaff', String(o.chaff)]);
    o.log(`crash loop: seed ${o.seed}, ${o.sync ? '-o sync' : 'group commit'}, commit window ${commitSeconds} s${o.commit === null ? ' (default)' : ''}; mount options: ${mountOptions.join(',') || 'none'}`);
    // The workers' directories, made on a mount of their own: no crash point is armed yet, and each
    // cycle's mount then starts counting from the cycle's first change.
    await box.mount();
    root.worker = new Worker(box.mnt);
    for (let w = 0; w < o.workers; w++) {
      const r = await root.worker.call({ op: 'mkdir', p: `c${w}` });
      if (!r.ok) throw new Error(`mkdir c${w}: ${r.err} ${r.msg}`);
      workers.push(new Worker(`${box.mnt}/c${w}`));
    }
    const setup = await box.unmount();
    if (setup.code !== 0) throw new Error(`svault unmount after the setup exited ${setup.code}: ${setup.stderr}`);
    if (o.powerLoss) await powerLoss('after the setup\'s unmount', null);
    let pendingOrphans = 0;
    /** When the last cycle's crash came (see verify), or null if it ended with a clean unmount. */
    let crashAt: number | null = null;
    for (let cycle = 0; cycle <= o.crashes; cycle++) {
      const last = cycle === o.crashes || Date.now() - t0 > o.timeBudgetMs;
      const kind = o.kinds[cycle % o.kinds.length] as CrashKind;
      // Half the cycles are quiet: no operation fsyncs (see CrashWorker.fsyncs).
      const quiet = rng.chance(0.5);
      // n: from the first time to well into the workload (a few pieces per operation; a group commit per
      // change under -o sync, per fsync, or per commit window in a quiet cycle).
      const n = kind === 'piece.put' || kind === 'piece.partial' ? rng.int(1, 120) : rng.int(1, o.sync ? 50 : quiet ? Math.max(1, Math.floor(8 / commitSeconds)) : 25);
      const env = !last && kind !== 'kill' ? { SVAULT_CRASH_AT: `${kind}:${n}` } : {};
      // Mounting recovers from the previous crash (clears the stale mount, sweeps orphans).
      await box.mount(env);
      const swept = /removed (\d+) orphaned blob/.exec(readLog(box.currentLog()));
      if (swept) {
        report.sweeps++;
        report.orphansSwept += Number(swept[1]);
      }
      if (pendingOrphans > 0 && !swept) report.orphansNotSwept += pendingOrphans;
      pendingOrphans = 0;
      // Cycle 0 checks the empty directories the setup's clean unmount left.
      await verify(cycle, crashAt);
      if (report.failures.length > 0) break;
      if (last) break;

      report.cycles++;
      if (quiet) report.quietCycles++;
      for (const cw of cws) cw.fsyncs = !quiet;
      const k = report.byKind[kind] as { cycles: number; crashed: number };
      k.cycles++;
      const stop = { now: false };
      const running = workload(cycle, stop);
      const started = Date.now();
      // The crash time as the harness knows it, never later than the real one: when it sent the kill,
      // or the last time it saw the server alive.
      let lastAlive = now();
      let killAt: number | null = null;
      const watch = async (until: () => boolean) => {
        while (!stop.now && !until()) {
          const t = now();
          if (!box.serverAlive()) return;
          lastAlive = t;
          await sleep(20);
        }
      };
      if (kind === 'kill') {
        // Half the kills early in the workload, half after the commit window and its margin have passed.
        const delay = rng.chance(0.5) ? rng.int(100, 1500) : rng.int(boundMs + 200, boundMs + 3000);
        await watch(() => Date.now() - started >= delay);
        if (!stop.now && box.serverAlive()) {
          killAt = now();
          await box.killServer();
        }
      } else {
        await watch(() => Date.now() - started >= o.maxWorkloadMs);
      }
      const crashed = !box.serverAlive();
      stop.now = true;
      await running;
      if (report.failures.length > 0) break;
      if (crashed) {
        if (kind === 'kill' && killAt === null) {
          fail(`cycle ${cycle}: the server died without being killed (no crash point was set)${box.logTail()}`);
          break;
        }
        crashAt = killAt ?? lastAlive;
        report.crashesInjected++;
        k.crashed++;
        o.log(`cycle ${cycle}${quiet ? ' (quiet)' : ''}: ${kind === 'kill' ? 'kill -9' : `${kind}:${n}`} after ${Date.now() - started} ms, ${cws.filter((c) => c.inflight).length} operations in flight`);
        if (o.powerLoss) await powerLoss(`cycle ${cycle}, ${kind === 'kill' ? 'kill -9' : `${kind}:${n}`}`, crashAt);
      } else {
        o.log(`cycle ${cycle}${quiet ? ' (quiet)' : ''}: ${kind}:${n} was not reached within ${o.maxWorkloadMs} ms; unmounting cleanly`);
        crashAt = null;
        const u = await box.unmount();
        if (u.code !== 0) fail(`cycle ${cycle}: svault unmount exited ${u.code}: ${u.stderr}`);
        if (o.powerLoss && u.code === 0) await powerLoss(`cycle ${cycle}, after a clean unmount`, null);
        continue;
      }
      // The crashed store: a plain fsck, a repairing one, or none (then the next mount sweeps). Either
      // finds orphans (blobs written for a commit that never happened) and nothing else.
      const check = (['fsck', 'fsck --repair', 'none'] as const)[cycle % 3];
      if (check !== 'none') {
        const repair = check === 'fsck --repair';
        const f = await box.fsck(repair);
        const before = f.json?.before;
        if (!before) fail(`cycle ${cycle}: svault ${check} exited ${f.code} without a report: ${f.text.slice(0, 2000)}`);
        else {
          report.orphansFound += before.orphans;
          if (!repair) pendingOrphans = before.orphans;
          const onlyOrphans = before.problems.length === 0 && before.unreachableRecords === 0;
          const codeOk = repair ? f.code === 0 || f.code === 8 : f.code === 0 || f.code === 7;
          const afterOk = !repair || !f.json?.after || (f.json.after.problems.length === 0 && f.json.after.orphans === 0 && f.json.after.unreachableRecords === 0);
          if (!onlyOrphans || !codeOk || !afterOk) fail(`cycle ${cycle}: svault ${check} after the crash exited ${f.code} and found more than orphans:\n${f.text.slice(0, 3000)}`);
        }
      }
      if (report.failures.length > 0) break;
    }
    if (report.failures.length === 0) {
      const u = await box.unmount();
      if (u.code !== 0 || box.mounted()) fail(`final svault unmount exited ${u.code}: ${u.stderr}`);
      if (o.powerLoss && report.failures.length === 0) {
        // The clean unmount made everything durable: after a power loss every returned call is still there.
        await powerLoss('after the final unmount', null);
        await box.mount();
        await verify(report.cycles + 1, null);
        const again = await box.unmount();
        if (again.code !== 0 || box.mounted()) fail(`svault unmount after the last power loss exited ${again.code}: ${again.stderr}`);
      }
      const f = await box.fsck(false);
      const before = f.json?.before;
      if (f.code === 7 && before && before.problems.length === 0 && before.unreachableRecords === 0 && before.orphans <= report.orphansNotSwept) {
        // Orphans no mount swept (see orphansNotSwept): --repair must remove them, and only them.
        o.log(`final fsck: ${before.orphans} orphaned blob(s) left unswept after a plain fsck of a crashed store; repairing`);
        const r = await box.fsck(true);
        const after = r.json?.after;
        if (r.code !== 8 || !after || after.problems.length > 0 || after.orphans > 0) fail(`final svault fsck --repair exited ${r.code}:\n${r.text.slice(0, 3000)}`);
        const again = await box.fsck(false);
        if (again.code !== 0) fail(`svault fsck after the final repair exited ${again.code}:\n${again.text.slice(0, 3000)}`);
      } else if (f.code !== 0) {
        fail(`final svault fsck exited ${f.code} (expected 0, clean):\n${f.text.slice(0, 3000)}`);
      }
    }
  } catch (err) {
    fail(`harness error: ${(err as Error).stack ?? String(err)}${box.logTail()}`);
  } finally {
    await Promise.all([root.worker, ...workers].map((w) => w?.close()));
    const keep = (o.keepFailing && report.failures.length > 0) || o.keep === true;
    // A kept sandbox holds its failures in full (the log may have been cut short).
    if (keep) writeFileSync(join(box.dir, 'failures.txt'), `seed ${o.seed}, ${o.sync ? '-o sync' : `commit window ${commitSeconds} s`}\n\n${report.failures.join('\n\n')}\n`);
    await box.cleanup(keep);
    report.ms = Date.now() - t0;
  }
  return report;
}

export function formatCrashReport(r: CrashReport): string {
  const kinds = Object.entries(r.byKind)
    .map(([k, v]) => `${k} ${v.crashed}/${v.cycles}`)
    .join(', ');
  const outcomes = Object.entries(r.outcomes)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [
    `${r.powerLoss ? 'power-loss' : 'crash'} loop ${r.failures.length === 0 ? 'passed' : 'FAILED'}: seed ${r.seed}, ${r.sync ? '-o sync' : `group commit, window ${r.commitSeconds} s`}, ${r.cycles} cycles (${r.quietCycles} quiet: no fsync), ${(r.ms / 1000).toFixed(1)} s`,
    `  crashes injected: ${r.crashesInjected} (crashed/cycles: ${kinds})`,
    `  operations completed: ${r.opsAcknowledged}, in flight at a crash: ${r.opsInFlight}; directories found after crashes: ${outcomes || 'none'}`,
    `  changes undone by crashes (allowed within the commit window): ${r.changesLost}, the oldest ${(r.oldestLostMs / 1000).toFixed(3)} s before its crash (bound ${r.commitSeconds + COMMIT_MARGIN_MS / 1000} s)`,
    `  files checked: ${r.filesChecked}, torn files: ${r.tornFiles}, bytes lost: ${r.bytesLost}`,
    `  orphaned blobs: ${r.orphansFound} found by fsck after crashes, ${r.orphansSwept} swept by ${r.sweeps} recovering mounts, ${r.orphansNotSwept} not swept (a plain fsck ran first)`,
    `  leaked .fuse_hidden files (unlinked while open, back after the crash): ${r.hiddenLeaked}`,
  ];
  const pl = r.powerLoss;
  if (pl) {
    lines.push(
      `  power losses: ${pl.losses} (${pl.losses - pl.afterUnmount} after crashes, ${pl.afterUnmount} after clean unmounts), ${(pl.ms / Math.max(1, pl.losses) / 1000).toFixed(2)} s each; ` +
        `dropped ${pl.bytesDropped} unsynced bytes of ${pl.dirtyFiles} files, ${pl.namesDropped} unsynced names, ${pl.namesRevived} removed names back`,
      `  store syncs seen by the disk: ${pl.fsyncs} fsync, ${pl.fdatasyncs} fdatasync, ${pl.fsyncdirs} directory fsync; model anomalies: ${pl.anomalies}; ` +
        `last durable commit at most ${(pl.lastCommitMaxMs / 1000).toFixed(3)} s before a crash; space reserve short after ${pl.reserveShort} losses`,
      `  commits as the disk saw them (blob and directory syncs, then the WAL's fsync): ${pl.commits}, mean ${(pl.commitMs / Math.max(1, pl.commits)).toFixed(1)} ms, longest ${pl.commitMaxMs} ms`,
    );
  }
  if (r.failures.length > 0) lines.push(...r.failures.map((f) => `  FAILURE: ${f}`), `  server logs: ${r.logs.join(', ')}`, `  sandbox kept: ${r.dir} (failures.txt: the failures in full)`);
  return lines.join('\n');
}

export function crashOptionsFromArgs(a: Map<string, string>, log: (l: string) => void): CrashOptions {
  const commitText = a.get('commit');
  const commit = commitText === undefined ? null : Number(commitText);
  if (commit !== null && !(Number.isFinite(commit) && commit > 0)) throw new Error(`--commit: not a positive number of seconds: ${commitText}`);
  return {
    ...CRASH_DEFAULTS,
    seed: intArg(a, 'seed', Math.floor(Math.random() * 2 ** 31)),
    crashes: intArg(a, 'crashes', CRASH_DEFAULTS.crashes),
    workers: intArg(a, 'workers', CRASH_DEFAULTS.workers),
    filesPerWorker: intArg(a, 'files', CRASH_DEFAULTS.filesPerWorker),
    pieceSize: intArg(a, 'piece-size', CRASH_DEFAULTS.pieceSize),
    chaff: Number(a.get('chaff') ?? CRASH_DEFAULTS.chaff),
    timeBudgetMs: intArg(a, 'time', CRASH_DEFAULTS.timeBudgetMs / 1000) * 1000,
    sync: a.has('sync'),
    commit,
    strict: !a.has('lenient'),
    powerLoss: a.has('power-loss'),
    keep: a.has('keep'),
    log,
  };
}

async function main(): Promise<void> {
  cleanupOnSignals();
  const log = (l: string) => process.stderr.write(l + '\n');
  const r = await crashLoop(crashOptionsFromArgs(parseArgs(process.argv.slice(2)), log));
  process.stdout.write(formatCrashReport(r) + '\n');
  if (r.failures.length > 0 || r.bytesLost > 0) process.exitCode = 1;
  killAllWorkers();
}

runHarnessIfMain(import.meta.url, main);
