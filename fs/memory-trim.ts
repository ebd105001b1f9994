// Gives the mount server's freed memory back to the system while it works, not only when it exits.
// Every piece is a 128 KiB buffer (plaintext, sealed blob, decrypted copy); a large write or read frees
// thousands of them, and glibc keeps the freed memory in its arenas, between chunks still in use,
// where its own trimming (the heap's top only) never reaches. That memory stays in the RSS, and what
// one workload leaves adds to the next one's peak.

import type { OpStats } from '../src/core/util/op-stats.js';

/** Trim again once the RSS has grown this much past what the last trim left. */
export const TRIM_GROWTH_BYTES = 8 * 1024 * 1024;
/** A second in which the server used less CPU than this counts as quiet. */
export const QUIET_CPU_MS = 20;

export interface MemoryTrimmerDeps {
  /** malloc_trim(0); true if it released anything. */
  trim: () => boolean;
  /** The process's resident set size now, in bytes. */
  rss: () => number;
  /** CPU time (user + system) the process has used so far, in ms. */
  cpuMs: () => number;
  stats: OpStats;
}

/**
 * Called once a second (the mount server's watchdog). It trims in two cases:
 * - the RSS has grown by TRIM_GROWTH_BYTES since the last trim: a large write or read is under way;
 * - the server has just gone quiet after working: what the work freed, it no longer needs.
 * Trimming costs a walk over the arenas' free chunks and, later, page faults when the memory is used
 * again; so it does not run while a steady workload reuses the same memory, nor while the mount stays
 * idle.
 */
export class MemoryTrimmer {
  private baseline: number;
  private lastCpuMs: number;
  private busy = false;

  constructor(private readonly deps: MemoryTrimmerDeps) {
    this.baseline = deps.rss();
    this.lastCpuMs = deps.cpuMs();
  }

  /** Trims if one of the two cases holds. Returns whether it trimmed. */
  tick(): boolean {
    const cpu = this.deps.cpuMs();
    const wasBusy = this.busy;
    this.busy = cpu - this.lastCpuMs >= QUIET_CPU_MS;
    this.lastCpuMs = cpu;
    const grew = this.deps.rss() >= this.baseline + TRIM_GROWTH_BYTES;
    const settled = wasBusy && !this.busy;
    if (!grew && !settled) return false;
    const t = process.hrtime.bigint();
    this.deps.trim();
    this.deps.stats.record('bg.malloc-trim', t, 0);
    this.baseline = this.deps.rss();
    this.lastCpuMs = this.deps.cpuMs(); // the trim's own time does not count as work
    return true;
  }
}
