// Hands the sealing of full pieces (seal-behind) to a worker thread (piece-worker.ts).
// Why: the JS thread answers every FUSE request one at a time, so while it seals a piece and writes its
// blob, the next request waits; on the worker that work runs on the other core while this thread
// answers. Foreground work (the seals of a commit, all reads) stays on this thread: a hop would only add
// latency. Read-ahead through the worker was tried and was slower (docs/optimization-log.md).
//
// The two threads share memory instead of posting messages: a message cost as much CPU as sealing the
// piece. A job is a slot of a SharedArrayBuffer (header, key, id, data); this thread fills it and queues
// it, the worker sleeps until there is work and marks the slot done. This thread never waits for a
// reply it does not need yet: it collects finished jobs when it passes by (poll, on each write), and
// blocks on one job only when it needs that job now (wait: a commit, or a write to a piece still being
// sealed).
//
// Only for the local directory store: the worker opens its own store stack over the same directory and
// stores through the same pieces layer (src/core/pieces/sealed-pieces.ts), and makes its puts durable
// when asked (flush), before the metadata commit that points to them. The calls it makes on its stack
// come back with each job's result and are counted here, as `<op>@worker` (store.put@worker, ...).

import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FsError, IntegrityError, type Errno } from '../errors.js';
import type { LoggedOp, OpStats } from '../util/op-stats.js';
import type { PieceId } from '../pieces/piece-codec.js';

/** What the worker is started with (workerData). */
export interface OffloadSetup {
  storeDir: string;
  vaultId: Uint8Array;
  addressKey: Uint8Array;
  pieceSize: number;
  chaffRatio: number;
  /**
   * The vault's chaff scheme (src/core/pieces/chaff.ts), the one its Contents has; format 1's when not
   * given. Its key crosses to the worker as a Uint8Array (structured clone).
   */
  chaff?: { scheme: 'format1' } | { scheme: 'derived'; chaffKey: Uint8Array };
  slots: number;
  control: SharedArrayBuffer;
  jobs: SharedArrayBuffer;
}

// ---- the shared layout (both threads use these) ----

/** control: Int32 cells. */
export const CTL_SUBMITTED = 0; // jobs queued so far (the worker sleeps on this)
export const CTL_STOP = 1; // set by close()
export const CTL_DEAD = 2; // set by the worker if its loop ever ends in an error
/** control: then one Int32 state per slot, then the queue of slot numbers (a ring as long as there are slots). */
export const CTL_STATE = 4;
export const SLOT_FREE = 0;
export const SLOT_QUEUED = 1;
export const SLOT_DONE = 2;

export const OP_SEAL_PUT = 1;
export const OP_FLUSH = 2;

export const STATUS_OK = 0;
export const STATUS_ERROR = 1;
export const STATUS_INTEGRITY = 2;

/**
 * A slot: a header of Float64 fields, key, file id, errno and message, the calls the job made on the
 * worker's store stack (a log of (op, ns, bytes) triples), then the piece's bytes.
 */
export const F_OP = 0;
export const F_INDEX = 1;
export const F_VERSION = 2;
export const F_LENGTH = 3; // the plaintext's length
export const F_STATUS = 4;
export const F_MESSAGE_LENGTH = 5;
export const F_LOGGED = 6; // how many calls the log holds
export const KEY_AT = 128;
export const FILE_ID_AT = 160;
export const ERRNO_AT = 192;
export const MESSAGE_AT = 256;
export const MESSAGE_MAX = 768;
export const LOG_AT = 1024;
/** A job makes one seal and at most 1 + MAX_CHAFF_RATIO puts, or one flush: this is room to spare. */
export const LOG_MAX = 32;
export const DATA_AT = LOG_AT + LOG_MAX * 3 * 8;

/** The calls the worker may log, by their number in the slot. */
export const WORKER_OPS = ['crypto.seal', 'store.put', 'store.get', 'store.delete', 'store.flush'] as const;

export function slotStride(pieceSize: number): number {
  return DATA_AT + pieceSize;
}

export function controlCells(slots: number): number {
  return CTL_STATE + 2 * slots;
}

/**
 * About 2 MiB of slots (16 of 128 KiB pieces), at least 4 and at most 64: the plaintext in flight stays
 * bounded, and the worker can still run 16 pieces behind the writer.
 */
function slotCount(pieceSize: number): number {
  return Math.max(4, Math.min(64, Math.floor((2 * 1024 * 1024) / pieceSize)));
}

/** A job handed to the worker; `result` settles when this thread has collected it (poll or wait). */
export interface Job<T> {
  readonly slot: number;
  readonly result: Promise<T>;
}

interface Pending {
  job: Job<unknown>;
  /** Settles the job's result from its slot and frees the slot; does nothing the second time. */
  collect: () => void;
}

/**
 * Starts the worker from the compiled .js next to this module; when that is missing (the sources run
 * through tsx, as in the tests), from the .ts source, with tsx registered in the worker first: a worker
 * does not inherit the loader hooks of the thread that starts it. Neither node flags nor NODE_OPTIONS
 * reach the worker: a profiler's preload (Clinic.js's samplers, given in NODE_OPTIONS) must run once,
 * in the thread it measures; two samplers writing one file made Clinic Doctor's data unreadable.
 */
function startWorker(workerData: OffloadSetup): Worker {
  const options = { workerData, execArgv: [], env: { ...process.env, NODE_OPTIONS: '' }, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } };
  const js = new URL('./piece-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js, options);
  const ts = new URL('./piece-worker.ts', import.meta.url).href;
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(ts)}); })`;
  return new Worker(boot, { ...options, eval: true });
}

/**
 * The worker's young generation, small: it seals into one reused buffer (SealedPieces' oneBlobAtATime),
 * so what is left per job is a few small objects, and a larger young generation only raised the RSS.
 */
const WORKER_YOUNG_GENERATION_MB = 2;

/** How long one job may take before the worker is given up for dead (a hung disk, say). */
const JOB_TIMEOUT_MS = 120_000;
/**
 * An idle worker is ended after this long: a V8 heap that sleeps collects no garbage, and ending the
 * worker gives its memory back after a large write. The next full piece starts a new one (the pieces
 * meanwhile are sealed on this thread).
 */
const IDLE_MS = 2000;

export class PieceOffload {
  private worker!: Worker;
  private readonly setup: OffloadSetup;
  /** Ended for idleness (or being ended): the next available() starts a new worker once it is gone. */
  private retiring = false;
  private retired = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly ctl: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly fields: Float64Array;
  private readonly slots: number;
  private readonly stride: number;
  private readonly free: number[] = [];
  /** Jobs queued and not collected yet, by slot, in the order they were queued. */
  private readonly pending = new Map<number, Pending>();
  private queued = 0;
  /** Blobs the worker wrote since it last made them durable: a commit asks it to flush only then. */
  private unflushed = 0;
  private dead: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  /**
   * Set when the worker has loaded and sleeps waiting for jobs. Until then no job is queued: loading it
   * may need this thread's event loop (a module loader's hooks), which a blocking wait would starve.
   */
  private started = false;
  private exited = false;
  /** Settles when the current worker is up, or has failed to start (then `alive` stays false). */
  ready!: Promise<void>;

  constructor(
    setup: Omit<OffloadSetup, 'slots' | 'control' | 'jobs'>,
    private readonly stats: OpStats,
    private readonly idleMs = IDLE_MS,
  ) {
    this.slots = slotCount(setup.pieceSize);
    this.stride = slotStride(setup.pieceSize);
    const control = new SharedArrayBuffer(4 * controlCells(this.slots));
    const jobs = new SharedArrayBuffer(this.slots * this.stride);
    this.ctl = new Int32Array(control);
    this.bytes = new Uint8Array(jobs);
    this.fields = new Float64Array(jobs);
    for (let s = this.slots - 1; s >= 0; s--) this.free.push(s);
    this.setup = { ...setup, slots: this.slots, control, jobs };
    this.spawn();
  }

  /** Starts a worker on fresh shared state (no job is pending: the one before has exited, or none ran). */
  private spawn(): void {
    for (const cell of [CTL_SUBMITTED, CTL_STOP, CTL_DEAD]) Atomics.store(this.ctl, cell, 0);
    this.queued = 0;
    this.started = false;
    this.exited = false;
    this.retired = false;
    const worker = startWorker(this.setup);
    this.worker = worker;
    this.ready = new Promise((resolve) => {
      worker.once('message', () => {
        if (this.worker === worker && !this.retiring) {
          this.started = true;
          worker.unref(); // it sleeps in the event loop when idle; retire() or close() ends it
        }
        resolve();
      });
      worker.once('error', () => resolve());
      worker.once('exit', () => resolve());
    });
    worker.on('error', (err) => {
      if (this.worker === worker) this.markDead(err.message);
    });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.exited = true;
      this.started = false;
      if (this.retiring) {
        this.retiring = false;
        this.retired = true;
      } else this.markDead(`it exited (code ${code})`);
    });
  }

  /** Ready for jobs now. A worker ended for idleness is started again (ready soon, not now). */
  available(): boolean {
    if (this.retired && this.dead === null) this.spawn();
    return this.alive;
  }

  /** Ends the worker if it has had nothing to do for idleMs and holds nothing to make durable. */
  private retireIfIdle(): void {
    this.idleTimer = undefined;
    if (!this.alive || this.pending.size > 0 || this.unflushed > 0) return;
    this.retiring = true;
    this.started = false; // no job is queued from now on
    Atomics.store(this.ctl, CTL_STOP, 1);
    Atomics.notify(this.ctl, CTL_SUBMITTED);
  }

  /** Ready for jobs: started and not dead. Callers do the work themselves otherwise. */
  get alive(): boolean {
    return this.started && this.dead === null && Atomics.load(this.ctl, CTL_DEAD) === 0;
  }

  /**
   * Seals `data` as the given piece and stores its blob, with chaff at the vault's ratio. The data is
   * copied into the job's slot: the caller keeps its plaintext, so a failure loses nothing.
   */
  sealAndPut(key: Buffer, id: PieceId, data: Buffer): Job<void> {
    if (!this.alive) return refused();
    const slot = this.takeSlot();
    const f = this.header(slot, OP_SEAL_PUT, key, id);
    f[F_LENGTH] = data.length;
    this.bytes.set(data, slot * this.stride + DATA_AT);
    return this.submit(slot, () => {
      this.unflushed++;
    });
  }

  /** Makes every blob the worker wrote durable (fdatasync of the blobs and their directories). */
  async flush(): Promise<void> {
    if (this.unflushed === 0) return;
    const count = this.unflushed;
    if (!this.alive) await refused().result;
    const slot = this.takeSlot();
    this.fieldsOf(slot)[F_OP] = OP_FLUSH;
    const job = this.submit(slot, () => {
      this.unflushed -= count;
    });
    await this.wait(job);
  }

  /** Collects every finished job: their results settle. Cheap when none has finished. */
  poll(): void {
    for (const p of this.pending.values()) {
      if (Atomics.load(this.ctl, CTL_STATE + p.job.slot) === SLOT_DONE) p.collect();
    }
  }

  /** Blocks this thread until the job is done, collects it, and gives its result. */
  wait<T>(job: Job<T>): Promise<T> {
    const p = this.pending.get(job.slot);
    if (p?.job === job) {
      this.block(job.slot);
      p.collect();
    }
    return job.result;
  }

  async close(): Promise<void> {
    this.markDead('it was closed');
    // The worker ends by itself once it sees STOP (it wakes from its wait at once, or within a second).
    // Waiting for its 'exit' (with a timer as the fallback) keeps this process alive meanwhile: worker.
    // terminate() alone was seen to let the process exit in the middle of the await, before the caller
    // had set its exit code, when the worker was ending already.
    if (this.idleTimer) clearTimeout(this.idleTimer);
    Atomics.store(this.ctl, CTL_STOP, 1);
    Atomics.notify(this.ctl, CTL_SUBMITTED);
    if (this.exited) return;
    this.worker.ref();
    await new Promise<void>((resolve) => {
      const fallback = setTimeout(() => void this.worker.terminate(), 5000);
      this.worker.once('exit', () => {
        clearTimeout(fallback);
        resolve();
      });
    });
  }

  // ---- inside ----

  /** The header fields of a slot (its first bytes, as Float64s). */
  private fieldsOf(slot: number): Float64Array {
    return this.fields.subarray((slot * this.stride) / 8);
  }

  private header(slot: number, op: number, key: Buffer, id: PieceId): Float64Array {
    const base = slot * this.stride;
    const f = this.fieldsOf(slot);
    f[F_OP] = op;
    f[F_INDEX] = id.index;
    f[F_VERSION] = id.version;
    this.bytes.set(key, base + KEY_AT);
    this.bytes.set(id.fileId, base + FILE_ID_AT);
    return f;
  }

  private submit<T>(slot: number, read: () => T): Job<T> {
    let settle!: { resolve: (v: T) => void; reject: (e: Error) => void };
    const result = new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
    const f = this.fieldsOf(slot);
    const job: Job<T> = { slot, result };
    const collect = (): void => {
      if (this.pending.get(slot)?.job !== job) return;
      this.pending.delete(slot);
      try {
        if (this.dead !== null && Atomics.load(this.ctl, CTL_STATE + slot) !== SLOT_DONE) throw new FsError('EIO', `piece worker: ${this.dead}`);
        for (const call of readLog(this.fields, this.stride, slot)) this.stats.add(`${call.op}@worker`, call.ns, call.bytes);
        const status = f[F_STATUS];
        if (status === STATUS_ERROR || status === STATUS_INTEGRITY) throw this.errorOf(slot, status);
        settle.resolve(read());
      } catch (err) {
        settle.reject(err as Error);
      } finally {
        Atomics.store(this.ctl, CTL_STATE + slot, SLOT_FREE);
        this.free.push(slot);
        if (this.pending.size === 0) {
          this.stopTimer();
          if (this.dead === null) this.idleTimer ??= setTimeout(() => this.retireIfIdle(), this.idleMs).unref();
        }
      }
    };
    this.pending.set(slot, { job, collect });
    if (this.dead !== null) {
      collect();
      return job;
    }
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
    Atomics.store(this.ctl, CTL_STATE + slot, SLOT_QUEUED);
    Atomics.store(this.ctl, CTL_STATE + this.slots + (this.queued % this.slots), slot);
    this.queued++;
    Atomics.store(this.ctl, CTL_SUBMITTED, this.queued);
    Atomics.notify(this.ctl, CTL_SUBMITTED, 1);
    this.startTimer();
    return job;
  }

  /** A free slot; when all are in use, waits for the oldest job (the bound on plaintext in flight). */
  private takeSlot(): number {
    let slot = this.free.pop();
    while (slot === undefined) {
      const oldest = this.pending.values().next().value;
      if (!oldest) throw new Error('piece offload: no free slot and nothing pending');
      this.block(oldest.job.slot);
      oldest.collect();
      slot = this.free.pop();
    }
    return slot;
  }

  /** Sleeps until the slot's job is done (or the worker is dead: then its collect fails it). */
  private block(slot: number): void {
    const started = Date.now();
    while (Atomics.load(this.ctl, CTL_STATE + slot) === SLOT_QUEUED) {
      if (Atomics.load(this.ctl, CTL_DEAD) !== 0) return this.markDead('it failed');
      if (Date.now() - started > JOB_TIMEOUT_MS) return this.markDead(`a job took more than ${JOB_TIMEOUT_MS / 1000} s`);
      Atomics.wait(this.ctl, CTL_STATE + slot, SLOT_QUEUED, 1000);
    }
  }

  private errorOf(slot: number, status: number): Error {
    const base = slot * this.stride;
    const f = this.fieldsOf(slot);
    const text = (at: number, n: number): string => Buffer.from(this.bytes.subarray(at, at + n)).toString('utf8');
    const message = text(base + MESSAGE_AT, f[F_MESSAGE_LENGTH] ?? 0);
    if (status === STATUS_INTEGRITY) return new IntegrityError(message);
    const errno = text(base + ERRNO_AT, 32).replace(/\0+$/, '') as Errno;
    return new FsError(errno || 'EIO', message);
  }

  private markDead(why: string): void {
    if (this.dead !== null) return;
    this.dead = why;
    for (const p of [...this.pending.values()]) p.collect();
  }

  // A safety net: jobs nobody waits for are still collected (their results settle) every few ms.
  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.poll(), 5);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Writes a job's logged calls into its slot (the worker, after the job). Calls past LOG_MAX are dropped. */
export function writeLog(fields: Float64Array, stride: number, slot: number, calls: readonly LoggedOp[]): void {
  const f = fields.subarray((slot * stride) / 8);
  const log = fields.subarray((slot * stride + LOG_AT) / 8);
  let n = 0;
  for (const call of calls) {
    const op = (WORKER_OPS as readonly string[]).indexOf(call.op);
    if (op < 0 || n >= LOG_MAX) continue;
    log[3 * n] = op;
    log[3 * n + 1] = call.ns;
    log[3 * n + 2] = call.bytes;
    n++;
  }
  f[F_LOGGED] = n;
}

/** The calls a finished job logged in its slot. */
function readLog(fields: Float64Array, stride: number, slot: number): LoggedOp[] {
  const f = fields.subarray((slot * stride) / 8);
  const log = fields.subarray((slot * stride + LOG_AT) / 8);
  const calls: LoggedOp[] = [];
  for (let n = 0; n < Math.min(LOG_MAX, f[F_LOGGED] ?? 0); n++) {
    const op = WORKER_OPS[log[3 * n] ?? -1];
    if (op) calls.push({ op, ns: log[3 * n + 1] ?? 0, bytes: log[3 * n + 2] ?? 0 });
  }
  return calls;
}

function refused<T>(): Job<T> {
  const result = Promise.reject(new FsError('EIO', 'piece worker: not running'));
  result.catch(() => undefined); // the caller sees it when it looks; no unhandled rejection before that
  return { slot: -1, result };
}
