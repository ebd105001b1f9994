// Small shared pieces of the stress harnesses: a seeded PRNG, the tag-derived file data the worker
// also derives (shake256, see worker.py), hashing and timing.

import { createHash } from 'node:crypto';

/** A small, fast, seedable PRNG (mulberry32). Every random choice of a harness goes through one. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** A key of weights chosen in proportion to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) {
      r -= w;
      if (r < 0) return k;
    }
    return (entries[entries.length - 1] as [K, number])[0];
  }

  /** A new generator seeded from this one (independent streams per worker). */
  fork(): Rng {
    return new Rng(this.int(0, 0xffffffff));
  }
}

/** The bytes a worker writes for a tag: shake256(tag), `n` bytes (worker.py computes the same). */
export function tagData(tag: string, n: number): Buffer {
  if (n <= 0) return Buffer.alloc(0);
  return createHash('shake256', { outputLength: n }).update(tag).digest();
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export const SHA_EMPTY = sha256(Buffer.alloc(0));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Parses "--name value" / "--name=value" / "--flag" arguments into a map. */
export function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (k + 1 < argv.length && !(argv[k + 1] as string).startsWith('--')) out.set(a.slice(2), argv[++k] as string);
    else out.set(a.slice(2), 'true');
  }
  return out;
}

export function intArg(args: Map<string, string>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
  return Math.floor(n);
}

/** What the model checker and the crash loop both take: the vault, the workers, the budget, the log. */
export interface HarnessOptions {
  seed: number;
  workers: number;
  pieceSize: number;
  chaff: number;
  /** The run stops starting new work after this long (its final checks still run). */
  timeBudgetMs: number;
  /** Keep the sandbox (store and server logs) of a failing run. */
  keepFailing: boolean;
  log: (line: string) => void;
}
