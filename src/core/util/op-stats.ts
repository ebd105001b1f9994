// Cheap, always-on operation counters: calls, bytes, total time and a log2 latency histogram per operation.

const BUCKETS = 40; // bucket i counts latencies in [2^i, 2^(i+1)) nanoseconds

export interface OpSummary {
  op: string;
  calls: number;
  bytes: number;
  totalMs: number;
  p50Ms: number;
  p99Ms: number;
}

class OpCounter {
  calls = 0;
  bytes = 0;
  totalNs = 0;
  readonly histogram = new Uint32Array(BUCKETS);

  add(ns: number, bytes: number): void {
    this.calls++;
    this.bytes += bytes;
    this.totalNs += ns;
    const bucket = ns < 2 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(ns)));
    this.histogram[bucket] = (this.histogram[bucket] ?? 0) + 1;
  }

  /** The upper bound of the bucket holding quantile q: a histogram answer, within a factor of two. */
  quantileNs(q: number): number {
    const target = Math.ceil(this.calls * q);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.histogram[i] ?? 0;
      if (seen >= target && target > 0) return 2 ** (i + 1);
    }
    return 0;
  }
}

/** Where an operation's count goes: OpStats on the JS thread, an OpLog on the piece worker. */
export interface OpRecorder {
  /** Records one call that started at `startNs` (process.hrtime.bigint()) and moved `bytes`. */
  record(op: string, startNs: bigint, bytes: number): void;
}

/** One call as an OpLog holds it. */
export interface LoggedOp {
  op: string;
  ns: number;
  bytes: number;
}

/**
 * Calls recorded as a list, for a thread whose counts are kept by another: the piece worker logs each
 * job's calls and hands them over with the job's result (piece-offload.ts), where OpStats adds them.
 */
export class OpLog implements OpRecorder {
  private entries: LoggedOp[] = [];

  record(op: string, startNs: bigint, bytes: number): void {
    this.entries.push({ op, ns: Number(process.hrtime.bigint() - startNs), bytes });
  }

  /** The calls logged since the last take. */
  take(): LoggedOp[] {
    const taken = this.entries;
    this.entries = [];
    return taken;
  }
}

export class OpStats implements OpRecorder {
  private readonly counters = new Map<string, OpCounter>();

  /** Counting can be switched off (SVAULT_NO_STATS=1) to measure what it costs. */
  constructor(readonly enabled = process.env.SVAULT_NO_STATS !== '1') {}

  /** Records one call that started at `startNs` (process.hrtime.bigint()) and moved `bytes`. */
  record(op: string, startNs: bigint, bytes: number): void {
    if (this.enabled) this.add(op, Number(process.hrtime.bigint() - startNs), bytes);
  }

  add(op: string, ns: number, bytes: number): void {
    let c = this.counters.get(op);
    if (!c) {
      c = new OpCounter();
      this.counters.set(op, c);
    }
    c.add(ns, bytes);
  }

  summary(): OpSummary[] {
    return [...this.counters.entries()]
      .map(([op, c]) => ({
        op,
        calls: c.calls,
        bytes: c.bytes,
        totalMs: c.totalNs / 1e6,
        p50Ms: c.quantileNs(0.5) / 1e6,
        p99Ms: c.quantileNs(0.99) / 1e6,
      }))
      .sort((a, b) => a.op.localeCompare(b.op));
  }

  reset(): void {
    this.counters.clear();
  }
}
