// The random workload of the model checker: a deterministic function of (seed, count, workers, piece
// size). Each worker gets its own stream of operations on its own subtree, chosen against a model of
// that subtree so that most operations hit existing names (and many still fail in interesting ways).

import { Model, XATTR_CREATE, XATTR_REPLACE, type Act, type Op, type OpName } from './model.js';
import { Rng } from './util.js';

/** An operation of the global sequence: global index g, worker w. Worker w runs ops with g % workers === w. */
export type GenOp = Op & { g: number; w: number };

export interface GenConfig {
  seed: number;
  count: number;
  workers: number;
  pieceSize: number;
  /** Sessions may write more than svault keeps unsealed per file (8 MiB), so pieces are sealed before the commit. */
  bigWrites?: boolean;
  /** Sessions may unlink or rename over names (libfuse then hides the open file as .fuse_hidden*). */
  namespaceInSessions?: boolean;
}

/** svault seals the oldest dirty pieces of a file once more than this is unsealed (src/core/contents/contents.ts). */
const DIRTY_LIMIT = 8 * 1024 * 1024;

const NAMES = ['a', 'b', 'c', 'd', 'e'];
const XATTR_NAMES = ['user.x1', 'user.x2', 'user.x3', 'user.long.name.of.an.attribute'];

const WEIGHTS: Record<OpName, number> = {
  write: 22,
  read: 12,
  create: 6,
  mkdir: 6,
  truncate: 7,
  rename: 9,
  link: 5,
  unlink: 6,
  rmdir: 4,
  fsync: 3,
  setxattr: 5,
  getxattr: 3,
  removexattr: 2,
  listxattr: 2,
  stat: 5,
  listdir: 4,
  unlinkOpen: 2,
  session: 6,
  put: 0, // only the shrinker's setups use it
};

/** Largest file the workload grows (it truncates back when above). */
export function maxFileSize(pieceSize: number): number {
  return pieceSize <= 16384 ? pieceSize * 12 : pieceSize * 4 + pieceSize / 2;
}

class WorkerGen {
  private readonly model: Model;
  private readonly P: number;
  private readonly maxSize: number;

  constructor(
    private readonly rng: Rng,
    w: number,
    pieceSize: number,
    private readonly seed: number,
    private readonly bigWrites: boolean,
    private readonly namespaceInSessions: boolean,
  ) {
    this.model = new Model((w + 1) * 1_000_000);
    this.P = pieceSize;
    this.maxSize = maxFileSize(pieceSize);
  }

  private randomPath(): string {
    const depth = this.rng.weighted({ 1: 5, 2: 4, 3: 2 });
    return Array.from({ length: Number(depth) }, () => this.rng.pick(NAMES)).join('/');
  }

  /** An existing path of the wanted kind with probability pExisting, else a random one. */
  private path(kind: 'file' | 'dir' | 'any', pExisting = 0.8): string {
    const { files, dirs } = this.model.paths();
    const pool = kind === 'file' ? files : kind === 'dir' ? dirs : [...files, ...dirs];
    if (pool.length > 0 && this.rng.chance(pExisting)) return this.rng.pick(pool);
    // A name next to an existing directory is more likely to be creatable.
    if (dirs.length > 0 && this.rng.chance(0.5)) return `${this.rng.pick(dirs)}/${this.rng.pick(NAMES)}`;
    return this.randomPath();
  }

  private sizeOf(p: string): number {
    const n = this.model.find(p);
    return n && n.kind === 'file' ? n.data.length : 0;
  }

  /** Offsets: the start, inside the file, at a piece boundary give or take a little, the end, past the end. */
  private offset(size: number): number {
    const P = this.P;
    switch (this.rng.weighted({ zero: 2, inside: 3, boundary: 4, end: 1, hole: 1 })) {
      case 'zero':
        return 0;
      case 'inside':
        return this.rng.int(0, size);
      case 'boundary': {
        const k = this.rng.int(1, Math.max(1, Math.ceil(this.maxSize / P) - 2));
        return Math.max(0, k * P + this.rng.int(-70, 70));
      }
      case 'end':
        return size;
      default:
        return size + this.rng.int(1, 2 * P);
    }
  }

  private length(off: number): number {
    const P = this.P;
    switch (this.rng.weighted({ small: 4, medium: 2, cross: 3, large: 1 })) {
      case 'small':
        return this.rng.int(1, 600);
      case 'medium':
        return this.rng.int(1, Math.floor(P / 2));
      case 'cross': {
        const next = (Math.floor(off / P) + 1) * P;
        return next - off + this.rng.int(1, 300);
      }
      default:
        return this.rng.int(P, Math.floor(2.5 * P));
    }
  }

  private writeParams(size: number): { off: number; len: number } {
    let off = this.offset(size);
    let len = this.length(off);
    if (off + len > this.maxSize) {
      off = Math.max(0, Math.min(off, this.maxSize - 1 - this.rng.int(0, this.P)));
      len = Math.max(1, Math.min(len, this.maxSize - off));
    }
    return { off, len };
  }

  private truncSize(size: number): number {
    const P = this.P;
    switch (this.rng.weighted({ zero: 1, shrink: 3, boundary: 3, grow: 2 })) {
      case 'zero':
        return 0;
      case 'shrink':
        return this.rng.int(0, size);
      case 'boundary':
        return Math.max(0, this.rng.int(0, Math.ceil(this.maxSize / P) - 1) * P + this.rng.int(-3, 3));
      default:
        return Math.min(this.maxSize, size + this.rng.int(1, 2 * P));
    }
  }

  /** A file held open across writes, truncates, reads, fsyncs and namespace changes, then closed. */
  private session(tag: string): Op {
    const p = this.path('file', 0.9);
    let size = this.sizeOf(p);
    const acts: Act[] = [];
    const P = this.P;
    const n = this.rng.int(2, 9);
    const big = this.bigWrites && this.rng.chance(0.04);
    for (let k = 0; k < n; k++) {
      const t = `${tag}-${k}`;
      if (big && k === 1) {
        // More than the dirty limit in one go: svault seals pieces early, before any commit; then
        // overwrite, read and cut what was sealed but not yet committed.
        const len = DIRTY_LIMIT + this.rng.int(P, 16 * P);
        acts.push(['w', this.rng.int(0, 2 * P), len, t]);
        acts.push(['w', this.rng.int(0, 3 * P), this.rng.int(1, 2 * P), `${t}b`]);
        acts.push(['r', this.rng.int(0, 2 * P), 3 * P]);
        acts.push(['t', this.rng.int(0, 4 * P)]);
        size = 4 * P;
        continue;
      }
      const ns = this.namespaceInSessions ? 1 : 0;
      switch (this.rng.weighted({ w: 6, r: 3, t: 2, s: 1, mv: ns, ln: 1, rm: ns, ls: 1, rd: 2 })) {
        case 'w': {
          const { off, len } = this.writeParams(size);
          acts.push(['w', off, len, t]);
          size = Math.max(size, off + len);
          break;
        }
        case 'r':
          acts.push(['r', this.rng.chance(0.3) ? 0 : this.offset(size), this.rng.chance(0.3) ? size + P : this.length(0)]);
          break;
        case 't':
          size = this.truncSize(size);
          acts.push(['t', size]);
          break;
        case 's':
          acts.push(['s']);
          break;
        case 'mv':
          acts.push(['mv', this.rng.chance(0.5) ? p : this.path('any', 0.8), this.path('any', 0.4)]);
          break;
        case 'ln':
          acts.push(['ln', this.rng.chance(0.5) ? p : this.path('file', 0.8), this.path('any', 0.2)]);
          break;
        case 'rm':
          acts.push(['rm', this.rng.chance(0.4) ? p : this.path('file', 0.8)]);
          break;
        case 'ls':
          acts.push(['ls', this.rng.chance(0.5) ? p.split('/').slice(0, -1).join('/') : this.path('dir', 0.8)]);
          break;
        case 'rd':
          acts.push(['rd', this.rng.chance(0.6) ? p : this.path('file', 0.8)]);
          break;
      }
    }
    return { op: 'session', p, acts };
  }

  next(g: number, w: number): GenOp {
    const { files, dirs } = this.model.paths();
    const weights = { ...WEIGHTS };
    const nodes = files.length + dirs.length;
    if (nodes > 30) {
      weights.unlink *= 3;
      weights.rmdir *= 3;
      weights.create = 1;
      weights.mkdir = 1;
    }
    if (nodes < 4) {
      weights.create *= 2;
      weights.mkdir *= 2;
    }
    const kind = this.rng.weighted(weights);
    const tag = `s${this.seed}-g${g}`;
    let op: Op;
    switch (kind) {
      case 'mkdir':
        op = { op: 'mkdir', p: this.path('any', 0.2) };
        break;
      case 'create':
        op = { op: 'create', p: this.path('any', 0.2) };
        break;
      case 'write': {
        const p = this.path('file', 0.85);
        const size = this.sizeOf(p);
        const mode = this.rng.weighted({ plain: 7, trunc: 2, two: 2 });
        const { off, len } = this.writeParams(mode === 'trunc' ? 0 : size);
        op = { op: 'write', p, off, len, tag, mode, fsync: this.rng.chance(0.2) };
        if (mode === 'two') {
          // The second handle: the same name, or another name (a hard link of the same file, or not).
          op.p2 = this.rng.chance(0.5) ? p : this.path('file', 0.95);
        }
        if (size > this.maxSize) op = { op: 'truncate', p, size: this.truncSize(size), via: 'fd' };
        break;
      }
      case 'truncate': {
        const p = this.path('file', 0.9);
        op = { op: 'truncate', p, size: this.truncSize(this.sizeOf(p)), via: this.rng.chance(0.5) ? 'path' : 'fd' };
        break;
      }
      case 'rename': {
        const from = this.path('any', 0.9);
        // Targets: an existing name (replace), a new name, or a name inside the source (EINVAL).
        const to = this.rng.chance(0.1) ? `${from}/${this.rng.pick(NAMES)}` : this.path('any', 0.5);
        op = { op: 'rename', p: from, to };
        break;
      }
      case 'link':
        op = { op: 'link', p: this.path('file', 0.9), to: this.path('any', 0.2) };
        break;
      case 'unlink':
        op = { op: 'unlink', p: this.path('file', 0.85) };
        break;
      case 'rmdir':
        op = { op: 'rmdir', p: this.path('dir', 0.85) };
        break;
      case 'fsync':
        op = { op: 'fsync', p: this.path('file', 0.9) };
        break;
      case 'setxattr': {
        const len = this.rng.chance(0.1) ? this.rng.int(1000, 4000) : this.rng.int(0, 64);
        const value = Buffer.from(Array.from({ length: len }, () => this.rng.int(0, 255))).toString('hex');
        const flags = this.rng.weighted({ 0: 6, [XATTR_CREATE]: 2, [XATTR_REPLACE]: 2 });
        op = { op: 'setxattr', p: this.path('any', 0.9), name: this.rng.pick(XATTR_NAMES), value, flags: Number(flags) };
        break;
      }
      case 'getxattr':
        op = { op: 'getxattr', p: this.path('any', 0.9), name: this.rng.pick(XATTR_NAMES) };
        break;
      case 'removexattr':
        op = { op: 'removexattr', p: this.path('any', 0.9), name: this.rng.pick(XATTR_NAMES) };
        break;
      case 'listxattr':
        op = { op: 'listxattr', p: this.path('any', 0.9) };
        break;
      case 'read':
        op = { op: 'read', p: this.path('file', 0.9) };
        break;
      case 'stat':
        op = { op: 'stat', p: this.path('any', 0.9) };
        break;
      case 'listdir':
        op = { op: 'listdir', p: this.rng.chance(0.2) ? '' : this.path('dir', 0.9) };
        break;
      case 'unlinkOpen': {
        const p = this.path('file', 0.9);
        const { off, len } = this.writeParams(this.sizeOf(p));
        op = { op: 'unlinkOpen', p, off, len, tag };
        break;
      }
      case 'session':
        op = this.session(tag);
        break;
      default:
        throw new Error(`not generated: ${kind}`);
    }
    this.model.apply(op);
    return { ...op, g, w };
  }
}

/** The whole global sequence for a configuration (deterministic). */
export function generate(cfg: GenConfig): GenOp[] {
  const root = new Rng(cfg.seed);
  const gens = Array.from({ length: cfg.workers }, (_, w) => new WorkerGen(root.fork(), w, cfg.pieceSize, cfg.seed, cfg.bigWrites ?? true, cfg.namespaceInSessions ?? true));
  const ops: GenOp[] = [];
  for (let g = 0; g < cfg.count; g++) {
    const w = g % cfg.workers;
    ops.push((gens[w] as WorkerGen).next(g, w));
  }
  return ops;
}

/** One line per operation, for reports and replays. */
export function describe(o: GenOp): string {
  const base = `#${o.g} w${o.w} ${o.op} ${o.p}`;
  switch (o.op) {
    case 'write':
      return `${base} off=${o.off} len=${o.len} mode=${o.mode}${o.p2 ? ` p2=${o.p2}` : ''}${o.fsync ? ' fsync' : ''} tag=${o.tag}`;
    case 'truncate':
      return `${base} size=${o.size} via=${o.via}`;
    case 'rename':
    case 'link':
      return `${base} -> ${o.to}`;
    case 'setxattr':
      return `${base} ${o.name} value=${o.value.length / 2}B flags=${o.flags}`;
    case 'getxattr':
    case 'removexattr':
      return `${base} ${o.name}`;
    case 'unlinkOpen':
      return `${base} off=${o.off} len=${o.len} tag=${o.tag}`;
    case 'put':
      return `${base} (${Buffer.from(o.b64, 'base64').length} bytes)`;
    case 'session':
      return `${base} [${o.acts.map((a) => (a[0] === 'w' ? `w off=${a[1]} len=${a[2]}` : a.join(' '))).join('; ')}]`;
    default:
      return base;
  }
}
