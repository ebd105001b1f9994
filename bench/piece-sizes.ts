// Piece-size sweep: for each candidate piece size, what the store costs (bytes on disk, overhead, blob
// count) for a fixed set of fixtures written through the vault core, and what a real mount delivers (dd
// and 1 KiB files, with the server's CPU), each throughput figure beside the Node-FUSE floor measured in
// the same round. Writes reports/piece-sizes-<timestamp>.json and reports/piece-sizes.md. See bench/README.md.
//
//   npm run bench:pieces -- [--quick] [--sizes 16384,32768,...] [--rounds N] [--out DIR]
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_TREE, fileContents, planTree, prng } from '../fixtures/tree.js';
import { ensureFusermountOnPath } from '../fs/fuse-binding.js';
import { isChaff } from '../src/core/pieces/address.js';
import { deriveVaultKeys } from '../src/core/crypto/crypto.js';
import { readConfig, unwrapMasterKey, validateSettings } from '../src/core/vault/config.js';
import { META_FILE } from '../src/core/meta/record-store.js';
import { BLOB_DIR } from '../src/core/store/local-dir-store.js';
import { DEFAULT_CHAFF_RATIO, DEFAULT_PIECE_SIZE, Vault } from '../src/core/vault/vault.js';
import { Progress } from './lib/progress.js';
import { fmtRate, fmtRatio } from './lib/report.js';
import { Ballast, CacheDropper, machineInfo, memoryPlan, mountBacking, mountsUnder, unmountBacking, unmountBackingSync, versions, type Backing } from './lib/system.js';
import { CleanupRegistry, floorTarget, svaultTarget, type Target } from './lib/targets.js';
import { eachFlag, loadSummary, runIfMain, runTimes, stamp, withOptions } from './lib/command.js';
import { closeDevNull, errorMessage, formatDuration, GiB, humanBytes, KiB, MiB, parseSize, stat } from './lib/util.js';
import { ROOT } from './run.js';
import { loadAverage, stepsOf, WORKLOADS, type BenchOptions, type Ctx, type WorkloadResult } from './lib/workloads.js';

const SCHEMA = 'svault-piece-sizes/1';
const DEFAULT_SIZES = [16384, 32768, 65536, 131072, 262144, 524288, 1048576];
const SMALL = { count: 1000, size: KiB };
const PASSPHRASE = 'svault piece-size bench';
/** Seeds Math.random while the fixtures are written, so that the chaff (and so the blob count) is reproducible. */
const CHAFF_SEED = 7919;

const USAGE = `Usage: npm run bench:pieces -- [options]

For each piece size: writes a fixed set of fixtures into a fresh store through the vault core and measures
the store (blob bytes, metadata DB, overhead, blob count); then mounts a fresh vault and runs dd and
${SMALL.count} x 1 KiB files through it, beside the Node-FUSE floor run in the same round. Writes
reports/piece-sizes-<timestamp>.json and reports/piece-sizes.md. Needs root (tmpfs, drop_caches, /dev/fuse).

Options:
  --sizes LIST   piece sizes, powers of two (default ${DEFAULT_SIZES.join(',')})
  --quick        one round and a 256 MiB dd instead of three rounds of 512 MiB (fixtures unchanged)
  --rounds N     rounds of the mount measurements (default 3; quick 1); figures are medians
  --out DIR      where the reports go (default reports/)
  --render JSON  measure nothing: rewrite piece-sizes.md in --out from a piece-sizes-*.json
  --help
`;

interface Options {
  sizes: number[];
  quick: boolean;
  rounds: number;
  ddBytes: number;
  out: string;
  render: string | null;
  help: boolean;
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = { sizes: DEFAULT_SIZES, quick, rounds: quick ? 1 : 3, ddBytes: quick ? 256 * MiB : 512 * MiB, out: path.join(ROOT, 'reports'), render: null, help: false };
  eachFlag(argv, (flag, value, a) => {
    if (flag === '--quick') return;
    else if (flag === '--help' || flag === '-h') o.help = true;
    else if (flag === '--out') o.out = path.resolve(value());
    else if (flag === '--render') o.render = path.resolve(value());
    else if (flag === '--rounds') {
      o.rounds = Number(value());
      if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error('--rounds needs an integer >= 1');
    } else if (flag === '--sizes') {
      o.sizes = [...new Set(value().split(',').filter(Boolean).map((s) => parseSize(s.trim())))].sort((x, y) => x - y);
      for (const s of o.sizes) {
        const problem = validateSettings({ pieceSize: s, chaffRatio: DEFAULT_CHAFF_RATIO });
        if (problem) throw new Error(`--sizes ${s}: ${problem}`);
      }
    } else throw new Error(`unknown option ${a}`);
  });
  if (o.sizes.length === 0) throw new Error('--sizes needs at least one size');
  return o;
}

// ---------------------------------------------------------------------------
// Storage: fixtures written through the vault core, the store measured on disk

interface Fixture {
  name: string;
  label: string;
  /** Writes the fixture into the vault; returns files and plaintext bytes. */
  write(v: Vault): Promise<{ files: number; bytes: number }>;
}

async function manyFiles(v: Vault, dir: string, count: number, size: number): Promise<{ files: number; bytes: number }> {
  v.mkdir(dir, 0o755);
  for (let i = 0; i < count; i++) await v.writeFile(`${dir}/f${i}`, fileContents(DEFAULT_TREE.seed, i, size));
  return { files: count, bytes: count * size };
}

async function oneFile(v: Vault, file: string, size: number): Promise<{ files: number; bytes: number }> {
  const chunk = fileContents(DEFAULT_TREE.seed, 0, MiB);
  const fh = v.create(file, 0o644);
  try {
    for (let off = 0; off < size; off += chunk.length) await v.write(fh, chunk.subarray(0, Math.min(chunk.length, size - off)), off);
  } finally {
    await v.release(fh);
  }
  return { files: 1, bytes: size };
}

async function sourceTree(v: Vault): Promise<{ files: number; bytes: number }> {
  const { dirs, files } = planTree(DEFAULT_TREE);
  for (const d of dirs) if (d) v.mkdir(`/${d}`, 0o755);
  let bytes = 0;
  for (const [i, f] of files.entries()) {
    await v.writeFile(`/${f.path}`, fileContents(DEFAULT_TREE.seed, i, f.size));
    bytes += f.size;
  }
  return { files: files.length, bytes };
}

const FIXTURES: Fixture[] = [
  { name: 'files-1K', label: '1,000 × 1 KiB', write: (v) => manyFiles(v, '/small', 1000, KiB) },
  { name: 'files-100K', label: '100 × 100 KiB', write: (v) => manyFiles(v, '/medium', 100, 100 * KiB) },
  { name: 'tree', label: `source tree (${DEFAULT_TREE.files.toLocaleString('en')} files, ${DEFAULT_TREE.minSize} B–${humanBytes(DEFAULT_TREE.maxSize)})`, write: sourceTree },
  { name: 'file-256M', label: 'one 256 MiB file', write: (v) => oneFile(v, '/big', 256 * MiB) },
];

interface StoreFigures {
  files: number;
  plaintextBytes: number;
  /** Sum of the blob files' sizes. */
  blobBytes: number;
  /** The metadata database (meta.db and any -wal / -shm left) after the vault is closed. */
  metaBytes: number;
  /** Everything else in the store (config, the 1 MiB space reserve, lock): fixed per store, not in the overhead. */
  otherBytes: number;
  /** Of blobBytes, the chaff blobs'. */
  chaffBytes: number;
  /** (blobBytes + metaBytes - plaintextBytes) / plaintextBytes. */
  overhead: number;
  /** The same without the chaff: what the piece size itself costs (padding, seal, metadata). */
  overheadWithoutChaff: number;
  blobs: number;
  realBlobs: number;
  chaffBlobs: number;
  blobsPerGiB: number;
  /** Blob size -> count. */
  sizeClasses: Record<string, number>;
  /** Seconds to write the fixture through the vault core (informative: this process, not a mount). */
  writeSeconds: number;
}

function measureStore(storeDir: string, addressKey: Buffer): Omit<StoreFigures, 'files' | 'plaintextBytes' | 'overhead' | 'overheadWithoutChaff' | 'blobsPerGiB' | 'writeSeconds'> {
  const blobDir = path.join(storeDir, BLOB_DIR);
  const head = Buffer.alloc(16);
  const sizeClasses: Record<string, number> = {};
  let blobs = 0;
  let chaffBlobs = 0;
  let chaffBytes = 0;
  let blobBytes = 0;
  for (const shard of readdirSync(blobDir)) {
    for (const name of readdirSync(path.join(blobDir, shard))) {
      const file = path.join(blobDir, shard, name);
      const size = statSync(file).size;
      const fd = openSync(file, 'r');
      const n = readSync(fd, head, 0, head.length, 0);
      closeSync(fd);
      blobs++;
      blobBytes += size;
      sizeClasses[size] = (sizeClasses[size] ?? 0) + 1;
      if (isChaff(addressKey, Buffer.from(name, 'hex'), head.subarray(0, n))) {
        chaffBlobs++;
        chaffBytes += size;
      }
    }
  }
  let metaBytes = 0;
  let otherBytes = 0;
  for (const e of readdirSync(storeDir, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    const size = statSync(path.join(storeDir, e.name)).size;
    if (e.name.startsWith(META_FILE)) metaBytes += size;
    else otherBytes += size;
  }
  return { blobBytes, chaffBytes, metaBytes, otherBytes, blobs, realBlobs: blobs - chaffBlobs, chaffBlobs, sizeClasses };
}

/** The vault's address key, from its config and passphrase: what tells chaff blobs from real ones. */
function addressKeyOf(storeDir: string): Buffer {
  const config = readConfig(storeDir);
  return deriveVaultKeys(unwrapMasterKey(config, PASSPHRASE, storeDir), Buffer.from(config.vaultId, 'hex')).address;
}

async function storageFor(pieceSize: number, fixture: Fixture, dir: string): Promise<StoreFigures> {
  const storeDir = path.join(dir, `store-${pieceSize}-${fixture.name}`);
  const realRandom = Math.random;
  Math.random = prng(CHAFF_SEED);
  let written: { files: number; bytes: number };
  let addressKey: Buffer;
  const t0 = performance.now();
  try {
    const v = await Vault.create(storeDir, PASSPHRASE, { pieceSize, chaffRatio: DEFAULT_CHAFF_RATIO });
    addressKey = addressKeyOf(storeDir);
    try {
      written = await fixture.write(v);
    } finally {
      await v.close();
    }
  } finally {
    Math.random = realRandom;
  }
  const writeSeconds = Math.round((performance.now() - t0) / 10) / 100;
  const m = measureStore(storeDir, addressKey);
  rmSync(storeDir, { recursive: true, force: true });
  return {
    files: written.files,
    plaintextBytes: written.bytes,
    ...m,
    overhead: (m.blobBytes + m.metaBytes - written.bytes) / written.bytes,
    overheadWithoutChaff: (m.blobBytes - m.chaffBytes + m.metaBytes - written.bytes) / written.bytes,
    blobsPerGiB: Math.round(m.blobs / (written.bytes / GiB)),
    writeSeconds,
  };
}

/** The four fixtures together: what a store holding all of them would cost. */
function mixed(figs: StoreFigures[]): { plaintextBytes: number; storeBytes: number; overhead: number; overheadWithoutChaff: number; blobs: number; blobsPerGiB: number } {
  const sum = (f: (s: StoreFigures) => number) => figs.reduce((a, s) => a + f(s), 0);
  const plaintextBytes = sum((s) => s.plaintextBytes);
  const storeBytes = sum((s) => s.blobBytes + s.metaBytes);
  const chaffBytes = sum((s) => s.chaffBytes);
  const blobs = sum((s) => s.blobs);
  return {
    plaintextBytes,
    storeBytes,
    overhead: (storeBytes - plaintextBytes) / plaintextBytes,
    overheadWithoutChaff: (storeBytes - chaffBytes - plaintextBytes) / plaintextBytes,
    blobs,
    blobsPerGiB: Math.round(blobs / (plaintextBytes / GiB)),
  };
}

// ---------------------------------------------------------------------------
// Throughput: a real mount per piece size and round, and the floor once per round

/** One round's figures of one target: times (s, or ms per file), MiB/s and the server's CPU seconds. */
interface RoundFigures {
  round: number;
  ddWriteSeconds: number;
  ddReadSeconds: number;
  ddWriteMiBps: number;
  ddReadMiBps: number;
  /** Server CPU over the dd workload: write, read and the file's removal. */
  ddCpuSeconds: number | null;
  smallWriteMsPerFile: number;
  smallReadMsPerFile: number;
  smallWriteMiBps: number;
  smallReadMiBps: number;
  /** Server CPU over the small-file workload: write, read and rm -rf. */
  smallCpuSeconds: number | null;
  load: number;
}

const RATIO_KEYS = ['ddWriteSeconds', 'ddReadSeconds', 'smallWriteMsPerFile', 'smallReadMsPerFile'] as const;
type RatioKey = (typeof RATIO_KEYS)[number];
const RATIO_LABELS: Record<RatioKey, string> = { ddWriteSeconds: 'dd write', ddReadSeconds: 'dd read', smallWriteMsPerFile: '1 KiB write', smallReadMsPerFile: '1 KiB read' };

async function measureRound(ctx: Ctx, target: Target, round: number): Promise<RoundFigures> {
  const run = async (w: 'dd' | 'small'): Promise<WorkloadResult> => {
    const r = await WORKLOADS[w]({ ...ctx, targets: [target] });
    const tr = r.targets[target.name];
    if (!tr || tr.error) throw new Error(`${w} on ${target.name}: ${tr?.error ?? 'no result'}`);
    return r;
  };
  const load = loadAverage();
  const dd = (await run('dd')).targets[target.name];
  const small = (await run('small')).targets[target.name];
  const fig = (t: typeof dd, key: string) => {
    const f = t?.figures[key];
    if (!f) throw new Error(`no figure ${key} for ${target.name}`);
    return { time: f.time.median, mibps: f.mibps?.median ?? 0 };
  };
  const w = fig(dd, 'dd-write');
  const r = fig(dd, 'dd-read');
  const sw = fig(small, 'small-1K-write');
  const sr = fig(small, 'small-1K-read');
  return {
    round,
    ddWriteSeconds: w.time,
    ddReadSeconds: r.time,
    ddWriteMiBps: w.mibps,
    ddReadMiBps: r.mibps,
    ddCpuSeconds: dd?.process?.cpuSeconds ?? null,
    smallWriteMsPerFile: sw.time,
    smallReadMsPerFile: sr.time,
    smallWriteMiBps: sw.mibps,
    smallReadMiBps: sr.mibps,
    smallCpuSeconds: small?.process?.cpuSeconds ?? null,
    load,
  };
}

interface SizeThroughput {
  pieceSize: number;
  rounds: RoundFigures[];
  /** Per round: svault's time / the floor's time in the same round (2.00× = twice as long); then the median. */
  ratios: Record<RatioKey, { perRound: number[]; median: number }>;
  median: Record<Exclude<keyof RoundFigures, 'round' | 'load' | 'ddCpuSeconds' | 'smallCpuSeconds'>, number> & {
    ddCpuSeconds: number | null;
    smallCpuSeconds: number | null;
    /** dd's server CPU per GiB moved (written + read). */
    ddCpuSecondsPerGiB: number | null;
    /** The small-file workload's server CPU per file (written + read + removed), ms. */
    smallCpuMsPerFile: number | null;
  };
  errors: string[];
}

function medians(rounds: RoundFigures[], ddBytes: number): SizeThroughput['median'] {
  const med = (f: (r: RoundFigures) => number | null): number | null => {
    const v = rounds.map(f).filter((x): x is number => x !== null);
    return v.length ? stat(v).median : null;
  };
  const m = (k: keyof RoundFigures) => med((r) => r[k]) ?? NaN;
  const ddCpu = med((r) => r.ddCpuSeconds);
  const smallCpu = med((r) => r.smallCpuSeconds);
  return {
    ddWriteSeconds: m('ddWriteSeconds'),
    ddReadSeconds: m('ddReadSeconds'),
    ddWriteMiBps: m('ddWriteMiBps'),
    ddReadMiBps: m('ddReadMiBps'),
    smallWriteMsPerFile: m('smallWriteMsPerFile'),
    smallReadMsPerFile: m('smallReadMsPerFile'),
    smallWriteMiBps: m('smallWriteMiBps'),
    smallReadMiBps: m('smallReadMiBps'),
    ddCpuSeconds: ddCpu,
    smallCpuSeconds: smallCpu,
    ddCpuSecondsPerGiB: ddCpu === null ? null : Math.round((ddCpu / ((2 * ddBytes) / GiB)) * 100) / 100,
    smallCpuMsPerFile: smallCpu === null ? null : Math.round((smallCpu / SMALL.count) * 1000 * 1000) / 1000,
  };
}

// ---------------------------------------------------------------------------
// Report

interface PieceSizeReport {
  schema: typeof SCHEMA;
  timestamp: string;
  finishedAt: string;
  seconds: number;
  command: string[];
  machine: ReturnType<typeof machineInfo>;
  versions: Awaited<ReturnType<typeof versions>>;
  options: { sizes: number[]; quick: boolean; rounds: number; ddBytes: number; small: typeof SMALL; chaffRatio: number; chaffSeed: number; currentDefault: number; fixtures: Array<{ name: string; label: string }> };
  environment: { backing: Omit<Backing, 'dir'>; ballastBytes: number; cacheDrops: CacheDropper['log']; build: string; load: { start: number; end: number; mean: number; max: number } };
  storage: Array<{ pieceSize: number; fixtures: Record<string, StoreFigures>; mixed: ReturnType<typeof mixed> }>;
  floor: { rounds: RoundFigures[]; median: SizeThroughput['median'] | null; errors: string[] };
  throughput: SizeThroughput[];
  choice: { supported: number | null; text: string[] };
  files: { json: string; markdown: string };
  ok: boolean;
  errors: string[];
}

const kib = (n: number) => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`);
const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 2 : 1)} %`;
const num = (n: number) => n.toLocaleString('en');
const ms = (x: number) => `${x.toFixed(3)} ms`;
const bold = (s: string, on: boolean) => (on ? `**${s}**` : s);

/**
 * The throughput score: geometric mean of dd write's and dd read's time ratios to the floor, lower is
 * better. The 1 KiB figures are left out: a 1 KiB file is one 4 KiB blob at every piece size, so their
 * spread across sizes is the machine's noise (they are reported all the same).
 */
const SCORE_KEYS = ['ddWriteSeconds', 'ddReadSeconds'] as const;
function score(t: SizeThroughput): number | null {
  const r = SCORE_KEYS.map((k) => t.ratios[k].median);
  if (r.some((x) => !Number.isFinite(x) || x <= 0)) return null;
  return Math.exp(r.reduce((a, x) => a + Math.log(x), 0) / r.length);
}

/**
 * The generated half of the "Choice" paragraph: figures only. The supported size is the one with the
 * lowest overhead on the mixed set among the sizes whose throughput score is within 10 % of the best.
 */
function choose(r: Pick<PieceSizeReport, 'storage' | 'throughput' | 'options'>): PieceSizeReport['choice'] {
  const text: string[] = [];
  const storage = new Map(r.storage.map((s) => [s.pieceSize, s]));
  const byOverhead = [...r.storage].sort((a, b) => a.mixed.overhead - b.mixed.overhead);
  const best = byOverhead[0];
  const worst = byOverhead[byOverhead.length - 1];
  if (best && worst) {
    text.push(`Storage: on the four fixtures together, overhead runs from ${pct(best.mixed.overhead)} at ${kib(best.pieceSize)} to ${pct(worst.mixed.overhead)} at ${kib(worst.pieceSize)}.`);
    for (const f of FIXTURES) {
      const sorted = [...r.storage].sort((a, b) => (a.fixtures[f.name]?.overhead ?? 0) - (b.fixtures[f.name]?.overhead ?? 0));
      const lo = sorted[0];
      const hi = sorted[sorted.length - 1];
      if (lo && hi) text.push(`${f.label}: ${pct(lo.fixtures[f.name]?.overhead ?? NaN)} at ${kib(lo.pieceSize)} to ${pct(hi.fixtures[f.name]?.overhead ?? NaN)} at ${kib(hi.pieceSize)}.`);
    }
    const big = r.storage.map((s) => ({ p: s.pieceSize, n: s.fixtures['file-256M']?.blobsPerGiB ?? NaN }));
    text.push(`Blobs per GiB of the 256 MiB file: ${big.map((b) => `${num(b.n)} (${kib(b.p)})`).join(', ')}.`);
  }
  const scored = r.throughput.map((t) => ({ t, s: score(t) })).filter((x): x is { t: SizeThroughput; s: number } => x.s !== null);
  let supported: number | null = null;
  if (scored.length) {
    const top = Math.min(...scored.map((x) => x.s));
    for (const k of RATIO_KEYS) {
      const sorted = [...scored].sort((a, b) => a.t.ratios[k].median - b.t.ratios[k].median);
      const lo = sorted[0] as (typeof scored)[number];
      const hi = sorted[sorted.length - 1] as (typeof scored)[number];
      text.push(`${RATIO_LABELS[k]} /floor: best ${fmtRatio(lo.t.ratios[k].median)} at ${kib(lo.t.pieceSize)}, worst ${fmtRatio(hi.t.ratios[k].median)} at ${kib(hi.t.pieceSize)}.`);
    }
    const cpu = r.throughput.filter((t) => t.median.ddCpuSecondsPerGiB !== null);
    if (cpu.length) text.push(`svault server CPU per GiB of dd (the steadiest figure on a busy machine): ${cpu.map((t) => `${t.median.ddCpuSecondsPerGiB?.toFixed(2)} s (${kib(t.pieceSize)})`).join(', ')}.`);
    const near = scored.filter((x) => x.s <= top * 1.1);
    text.push(`Throughput score (geometric mean of the dd write and dd read /floor ratios, lower is better; the 1 KiB files are one 4 KiB blob at every size, so they do not enter it): ${scored.map((x) => `${kib(x.t.pieceSize)} ${fmtRatio(x.s)}`).join(', ')}; within 10 % of the best: ${near.map((x) => kib(x.t.pieceSize)).join(', ')}.`);
    const overheadOf = (p: number) => storage.get(p)?.mixed.overhead ?? Infinity;
    const front = scored.filter((a) => !scored.some((b) => b !== a && b.s <= a.s && overheadOf(b.t.pieceSize) <= overheadOf(a.t.pieceSize) && (b.s < a.s || overheadOf(b.t.pieceSize) < overheadOf(a.t.pieceSize))));
    text.push(`Not beaten on both overhead and score by another size: ${front.map((x) => `${kib(x.t.pieceSize)} (${pct(overheadOf(x.t.pieceSize))}, ${fmtRatio(x.s)})`).join(', ')}.`);
    const pick = near.map((x) => ({ p: x.t.pieceSize, o: storage.get(x.t.pieceSize)?.mixed.overhead ?? Infinity })).sort((a, b) => a.o - b.o)[0];
    if (pick) {
      supported = pick.p;
      const cur = r.options.currentDefault;
      text.push(
        `By the rule "lowest overhead on the four fixtures together among the sizes within 10 % of the best throughput score", the data supports **${kib(pick.p)}** ` +
          `(overhead ${pct(pick.o)}, score ${fmtRatio(scored.find((x) => x.t.pieceSize === pick.p)?.s ?? NaN)})` +
          (pick.p === cur ? ', the current default.' : `; the current default, ${kib(cur)}, has overhead ${storage.get(cur) ? pct(storage.get(cur)?.mixed.overhead ?? NaN) : 'not measured'} and score ${fmtRatio(scored.find((x) => x.t.pieceSize === cur)?.s)}.`),
      );
    }
  }
  return { supported, text };
}

function renderMarkdown(r: PieceSizeReport): string {
  const L: string[] = [];
  const cur = r.options.currentDefault;
  const label = (p: number) => bold(kib(p), p === cur);
  L.push('# Piece size: overhead, blob count and throughput');
  L.push('');
  if (r.options.quick) L.push('**Quick run (--quick): one round, 256 MiB dd; the throughput figures are indicative only.**\n');
  L.push(`Generated by \`npm run bench:pieces${r.command.length > 1 ? ' -- ' + r.command.slice(1).join(' ') : ''}\` (bench/piece-sizes.ts) on ${r.timestamp}; the run took ${formatDuration(r.seconds)}. JSON: \`${r.files.json}\`. The current default (**${kib(cur)}**) is in bold.`);
  L.push('');
  L.push(`- Machine: ${r.machine.cpuModel}, ${r.machine.cores} cores, ${humanBytes(r.machine.memTotalBytes)} RAM, kernel ${r.machine.kernel}${r.machine.virtualization ? `, ${r.machine.virtualization} VM` : ''}; Node ${r.versions.node}; svault ${r.versions.svault} (${r.versions.git.commit?.slice(0, 10) ?? 'no git'}${r.versions.git.dirty ? ', with uncommitted changes' : ''}).`);
  L.push(`- Chaff ratio ${r.options.chaffRatio} (the default) in every store; Math.random seeded (${r.options.chaffSeed}) while the fixtures are written, so the chaff and blob counts repeat exactly.`);
  L.push(`- Stores on ${r.environment.backing.kind === 'tmpfs' ? `a tmpfs mounted for the run` : `**not a tmpfs**: ${r.environment.backing.note ?? ''}`}; page cache dropped before every read phase (${r.environment.cacheDrops.attempted} drops, ${r.environment.cacheDrops.failed} failed).`);
  L.push(`- Load average (1 min): mean ${r.environment.load.mean.toFixed(2)}, max ${r.environment.load.max.toFixed(2)} on ${r.machine.cores} cores${r.environment.load.mean > r.machine.cores * 0.75 ? ': **the machine was busy; compare the /floor ratios, not the absolute figures**' : ''}.`);
  if (r.errors.length) L.push('', '**Errors:**', ...r.errors.map((e) => `- ${e}`));

  L.push('');
  L.push('## Summary');
  L.push('');
  L.push(`Overhead: (blob bytes + metadata DB − plaintext) ÷ plaintext, for the four fixtures together (${humanBytes(r.storage[0]?.mixed.plaintextBytes ?? 0)} of plaintext; in brackets without the chaff, which costs the same ~${r.options.chaffRatio * 100} % at every size), then per fixture: ${FIXTURES.map((x) => x.label).join(' / ')}. Blobs: real + chaff, all four fixtures; per GiB: of the 256 MiB file. Throughput: median of ${r.options.rounds} round${r.options.rounds > 1 ? 's' : ''} through a real mount; /floor = svault's time ÷ the Node-FUSE floor's in the same round, median over rounds (2.00× = twice as long; lower is better). dd: ${humanBytes(r.options.ddBytes)}, 128 KiB blocks, fsync on write. 1 KiB: ${num(r.options.small.count)} files, create+write+close / open+read+close, mean per file. CPU: the svault server's user+system seconds per GiB moved by dd (write + read), and ÷ the floor's.`);
  L.push('');
  L.push('| piece size | overhead, all (no chaff) | overhead per fixture | blobs | blobs per GiB | dd write | /floor | dd read | /floor | 1 KiB write | /floor | 1 KiB read | /floor | CPU s per GiB (dd) | /floor |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const floorCpu = r.floor.median?.ddCpuSecondsPerGiB ?? null;
  const tp = new Map(r.throughput.map((t) => [t.pieceSize, t]));
  for (const s of r.storage) {
    const t = tp.get(s.pieceSize);
    const m = t?.median;
    const ratio = (k: RatioKey) => (t ? fmtRatio(t.ratios[k].median) : '—');
    L.push(
      `| ${label(s.pieceSize)} | ${pct(s.mixed.overhead)} (${pct(s.mixed.overheadWithoutChaff)}) | ${FIXTURES.map((x) => (s.fixtures[x.name] ? pct(s.fixtures[x.name]?.overhead ?? NaN) : '—')).join(' / ')} | ${num(s.mixed.blobs)} | ${num(s.fixtures['file-256M']?.blobsPerGiB ?? NaN)} | ${m ? fmtRate(m.ddWriteMiBps) : '—'} | ${ratio('ddWriteSeconds')} | ${m ? fmtRate(m.ddReadMiBps) : '—'} | ${ratio('ddReadSeconds')} | ` +
        `${m ? `${ms(m.smallWriteMsPerFile)} (${fmtRate(m.smallWriteMiBps)})` : '—'} | ${ratio('smallWriteMsPerFile')} | ${m ? `${ms(m.smallReadMsPerFile)} (${fmtRate(m.smallReadMiBps)})` : '—'} | ${ratio('smallReadMsPerFile')} | ${m?.ddCpuSecondsPerGiB?.toFixed(2) ?? '—'} | ${m?.ddCpuSecondsPerGiB != null && floorCpu ? fmtRatio(m.ddCpuSecondsPerGiB / floorCpu) : '—'} |`,
    );
  }
  const f = r.floor.median;
  if (f) L.push(`| *Node-FUSE floor* | — | — | — | — | ${fmtRate(f.ddWriteMiBps)} | 1× | ${fmtRate(f.ddReadMiBps)} | 1× | ${ms(f.smallWriteMsPerFile)} (${fmtRate(f.smallWriteMiBps)}) | 1× | ${ms(f.smallReadMsPerFile)} (${fmtRate(f.smallReadMiBps)}) | 1× | ${f.ddCpuSecondsPerGiB?.toFixed(2) ?? '—'} | 1× |`);

  L.push('');
  L.push('## Storage per fixture');
  L.push('');
  L.push(`Each fixture is written into its own fresh store through the vault core (src/core/vault/vault.ts), the vault closed, then the store directory measured: blob bytes (sum of the blob files' sizes), the metadata DB (${META_FILE} and its WAL), overhead = (blobs + metadata − plaintext) ÷ plaintext, and blob count, real + chaff (told apart with the key). The config and the 1 MiB space reserve (${humanBytes(r.storage[0]?.fixtures[FIXTURES[0]?.name ?? '']?.otherBytes ?? 0)} per store) are the same at every size and left out.`);
  for (const fx of FIXTURES) {
    L.push('');
    const first = r.storage[0]?.fixtures[fx.name];
    L.push(`### ${fx.label}${first ? `: ${num(first.files)} file${first.files === 1 ? '' : 's'}, ${humanBytes(first.plaintextBytes)}` : ''}`);
    L.push('');
    L.push('| piece size | blob bytes (chaff) | metadata DB | overhead (no chaff) | blobs (real + chaff) | blobs per GiB | blob sizes (bytes × count) | write time (core) |');
    L.push('|---|---|---|---|---|---|---|---|');
    for (const s of r.storage) {
      const x = s.fixtures[fx.name];
      if (!x) continue;
      const classes = Object.entries(x.sizeClasses).sort((a, b) => Number(a[0]) - Number(b[0])).map(([size, n]) => `${size} × ${num(n)}`).join(', ');
      L.push(`| ${label(s.pieceSize)} | ${humanBytes(x.blobBytes)} (${humanBytes(x.chaffBytes)}) | ${humanBytes(x.metaBytes)} | ${pct(x.overhead)} (${pct(x.overheadWithoutChaff)}) | ${num(x.blobs)} (${num(x.realBlobs)} + ${num(x.chaffBlobs)}) | ${num(x.blobsPerGiB)} | ${classes} | ${x.writeSeconds.toFixed(2)} s |`);
    }
  }

  L.push('');
  L.push('## Throughput, every round');
  L.push('');
  L.push('Absolute figures of each round, with /floor against that round\'s floor. The server\'s CPU seconds are over each whole workload (dd: write, read and the removal; 1 KiB: write, read and rm -rf).');
  L.push('');
  L.push('| piece size | round | load | dd write | dd read | 1 KiB write | 1 KiB read | dd CPU s | 1 KiB CPU s |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  const row = (name: string, x: RoundFigures, t?: SizeThroughput) => {
    const i = t ? t.rounds.indexOf(x) : -1;
    const rr = (k: RatioKey) => (t && i >= 0 ? ` (${fmtRatio(t.ratios[k].perRound[i])})` : '');
    L.push(`| ${name} | ${x.round + 1} | ${x.load.toFixed(1)} | ${fmtRate(x.ddWriteMiBps)}${rr('ddWriteSeconds')} | ${fmtRate(x.ddReadMiBps)}${rr('ddReadSeconds')} | ${ms(x.smallWriteMsPerFile)}${rr('smallWriteMsPerFile')} | ${ms(x.smallReadMsPerFile)}${rr('smallReadMsPerFile')} | ${x.ddCpuSeconds?.toFixed(2) ?? '—'} | ${x.smallCpuSeconds?.toFixed(2) ?? '—'} |`);
  };
  for (const x of r.floor.rounds) row('*floor*', x);
  for (const t of r.throughput) for (const x of t.rounds) row(label(t.pieceSize), x, t);

  L.push('');
  L.push('## Choice');
  L.push('');
  L.push(r.choice.text.join(' '));
  L.push('');
  L.push('**Decision:** recorded in docs/optimization-log.md (section "Piece size"); this run does not change the default.');
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------------------
// The run

function build(progress: Progress): string {
  progress.note('building dist/ (tsc -p tsconfig.build.json): the mounts run the compiled code');
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`the build failed, so the mounts would run stale code:\n${((err as { stdout?: Buffer }).stdout ?? '').toString().slice(0, 4000)}`, { cause: err });
  }
  return 'rebuilt dist/ before the run';
}

async function main(argv: string[]): Promise<number> {
  return withOptions(argv, USAGE, parseArgs, (opts) => measure(opts, argv));
}

async function measure(opts: Options, argv: string[]): Promise<number> {
  if (opts.render) {
    const saved = JSON.parse(readFileSync(opts.render, 'utf8')) as PieceSizeReport;
    const md = path.join(opts.out, 'piece-sizes.md');
    writeFileSync(md, renderMarkdown({ ...saved, choice: choose(saved) }));
    process.stdout.write(`${md}\n`);
    return 0;
  }
  const started = new Date();
  const progress = new Progress(0);
  const loads = [loadAverage()];
  const loadTimer = setInterval(() => loads.push(loadAverage()), 10_000);
  loadTimer.unref();
  const errors: string[] = [];
  const buildNote = build(progress);
  ensureFusermountOnPath();

  const machine = machineInfo();
  const tmpfsBytes = memoryPlan(machine.memTotalBytes, false).tmpfsBytes;
  const ballastBytes = memoryPlan(machine.memTotalBytes, opts.quick).ballastBytes;
  const base = mkdtempSync(path.join(os.tmpdir(), 'svault-pieces-'));
  const [tmpfsDir, mntBase] = ['tmpfs', 'mnt'].map((d) => path.join(base, d)) as [string, string];
  for (const d of [tmpfsDir, mntBase]) mkdirSync(d);
  const cleanup = new CleanupRegistry();
  const removeBase = () => {
    const left = mountsUnder(base);
    if (left.length === 0) rmSync(base, { recursive: true, force: true });
    else errors.push(`still mounted, not removing ${base}: ${left.join(', ')}`);
  };
  const emergency = () => {
    cleanup.runAll();
    removeBase();
  };
  process.on('exit', emergency);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      progress.finish(`\n${sig}: unmounting everything and stopping`);
      process.exit(128 + (os.constants.signals[sig] ?? 1)); // runs emergency through 'exit'
    });
  }

  const dropper = new CacheDropper();
  const vers = await versions(ROOT);
  let backing: Backing = { dir: tmpfsDir, kind: 'disk', sizeBytes: null };
  const storage: PieceSizeReport['storage'] = [];
  const throughput: SizeThroughput[] = [];
  const floorRounds: RoundFigures[] = [];
  const floorErrors: string[] = [];
  let floor: Target | null = null;
  try {
    backing = await mountBacking(tmpfsDir, tmpfsBytes);
    if (backing.kind === 'tmpfs') cleanup.add('tmpfs', () => unmountBackingSync(backing));
    else progress.note(`warning: ${backing.note ?? ''}`);

    // 1. Storage, deterministic: no mount needed, nothing else competes for the tmpfs yet.
    const fixturesDir = path.join(tmpfsDir, 'fixtures');
    mkdirSync(fixturesDir);
    for (const pieceSize of opts.sizes) {
      const fixtures: Record<string, StoreFigures> = {};
      for (const fx of FIXTURES) {
        progress.note(`storage: ${kib(pieceSize)} pieces, ${fx.label}`);
        try {
          fixtures[fx.name] = await storageFor(pieceSize, fx, fixturesDir);
        } catch (err) {
          errors.push(`storage ${pieceSize} ${fx.name}: ${errorMessage(err)}`);
        }
      }
      const figs = Object.values(fixtures);
      storage.push({ pieceSize, fixtures, mixed: mixed(figs) });
    }

    // 2. Throughput through real mounts: per round, the floor and then every size, in an order rotated
    // round by round so that slow drift of the machine does not always fall on the same sizes.
    const ballast = new Ballast(tmpfsDir, backing.kind === 'tmpfs' ? ballastBytes : 0);
    if (ballast.fullBytes > 0) progress.note(`writing a ${humanBytes(ballast.fullBytes)} ballast on the tmpfs`);
    ballast.fill();
    const [work, dataDir] = ['work', 'data'].map((d) => path.join(tmpfsDir, d)) as [string, string];
    for (const d of [work, dataDir]) mkdirSync(d);
    const benchOpts: BenchOptions = {
      quick: opts.quick, sizes: [], only: ['dd', 'small'], targets: ['svault', 'floor'], repeats: 1, streamRepeats: 1,
      pieceSize: DEFAULT_PIECE_SIZE, chaff: DEFAULT_CHAFF_RATIO, ddBytes: opts.ddBytes, streamBytes: opts.ddBytes,
      small: [SMALL], tree: DEFAULT_TREE, ballastBytes, tmpfsBytes, out: opts.out, timeoutMs: 600_000,
    };
    const ctx: Ctx = { opts: benchOpts, root: ROOT, targets: [], work, ballast, dropper, progress };
    progress.setTotal(opts.rounds * (opts.sizes.length + 1) * (stepsOf('dd', benchOpts, 1) + stepsOf('small', benchOpts, 1)));
    await dropper.init(['dd', 'rm', 'sh', 'sync'], [process.execPath, path.join(ROOT, 'dist', 'bench', 'small-files.js'), '/etc/passwd', '/etc/group', '/etc/nsswitch.conf']);
    floor = await floorTarget(dataDir, mntBase, ROOT, cleanup);
    await dropper.drop();
    const perSize = new Map(opts.sizes.map((p) => [p, { rounds: [] as RoundFigures[], floors: [] as Array<RoundFigures | undefined>, errors: [] as string[] }]));
    for (let round = 0; round < opts.rounds; round++) {
      progress.note(`round ${round + 1} of ${opts.rounds}: the floor`);
      let floorNow: RoundFigures | undefined;
      try {
        floorNow = await measureRound(ctx, floor, round);
        floorRounds.push(floorNow);
      } catch (err) {
        floorErrors.push(`round ${round + 1}: ${errorMessage(err)}`);
        ballast.fill();
      }
      const order = opts.sizes.map((_, i) => opts.sizes[(i + round) % opts.sizes.length] as number);
      for (const pieceSize of order) {
        const acc = perSize.get(pieceSize) as NonNullable<ReturnType<typeof perSize.get>>;
        progress.note(`round ${round + 1}: svault with ${kib(pieceSize)} pieces`);
        const dir = path.join(dataDir, `svault-${pieceSize}-r${round}`);
        let t: Target | null = null;
        try {
          t = await svaultTarget(dir, path.join(mntBase, `svault-${pieceSize}-r${round}`), { root: ROOT, pieceSize, chaff: DEFAULT_CHAFF_RATIO }, cleanup);
          acc.rounds.push(await measureRound(ctx, t, round));
          acc.floors.push(floorNow);
        } catch (err) {
          acc.errors.push(`round ${round + 1}: ${errorMessage(err)}`);
          progress.note(`${kib(pieceSize)} failed: ${errorMessage(err)}`);
          ballast.fill();
        } finally {
          await t?.stop();
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
    for (const [pieceSize, acc] of perSize) {
      const ratios = Object.fromEntries(
        RATIO_KEYS.map((k) => {
          const perRound = acc.rounds.map((x, i) => {
            const fl = acc.floors[i];
            return fl ? x[k] / fl[k] : NaN;
          });
          const ok = perRound.filter((v) => Number.isFinite(v));
          return [k, { perRound, median: ok.length ? stat(ok).median : NaN }];
        }),
      ) as SizeThroughput['ratios'];
      throughput.push({ pieceSize, rounds: acc.rounds, ratios, median: medians(acc.rounds, opts.ddBytes), errors: acc.errors });
      errors.push(...acc.errors.map((e) => `${kib(pieceSize)}: ${e}`));
    }
    errors.push(...floorErrors.map((e) => `floor: ${e}`));
  } catch (err) {
    errors.push(errorMessage(err));
    progress.note(`error: ${errorMessage(err)}`);
  } finally {
    progress.note('stopping');
    try {
      await floor?.stop();
    } catch (err) {
      errors.push(`stopping the floor: ${errorMessage(err)}`);
    }
    await unmountBacking(backing);
    cleanup.runAll();
    removeBase();
    closeDevNull();
  }
  clearInterval(loadTimer);
  loads.push(loadAverage());

  const finished = new Date();
  const ts = stamp(started);
  const files = { json: `piece-sizes-${ts}.json`, markdown: 'piece-sizes.md' };
  const partial: Omit<PieceSizeReport, 'choice'> = {
    schema: SCHEMA,
    ...runTimes(started, finished, ['bench/piece-sizes.ts', ...argv]),
    machine,
    versions: vers,
    options: { sizes: opts.sizes, quick: opts.quick, rounds: opts.rounds, ddBytes: opts.ddBytes, small: SMALL, chaffRatio: DEFAULT_CHAFF_RATIO, chaffSeed: CHAFF_SEED, currentDefault: DEFAULT_PIECE_SIZE, fixtures: FIXTURES.map(({ name, label }) => ({ name, label })) },
    environment: {
      backing: { kind: backing.kind, sizeBytes: backing.sizeBytes, ...(backing.note ? { note: backing.note } : {}) },
      ballastBytes: backing.kind === 'tmpfs' ? ballastBytes : 0,
      cacheDrops: dropper.log,
      build: buildNote,
      load: loadSummary(loads),
    },
    storage,
    floor: { rounds: floorRounds, median: floorRounds.length ? medians(floorRounds, opts.ddBytes) : null, errors: floorErrors },
    throughput,
    files,
    ok: errors.length === 0,
    errors,
  };
  const report: PieceSizeReport = { ...partial, choice: choose(partial) };
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(path.join(opts.out, files.json), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(path.join(opts.out, files.markdown), renderMarkdown(report));
  progress.finish(`done in ${formatDuration(report.seconds)}: ${path.join(opts.out, files.markdown)}${report.ok ? '' : ` (with errors: ${errors.join('; ')})`}`);
  process.stdout.write(`${path.join(opts.out, files.json)}\n`);
  return report.ok ? 0 : 1;
}

runIfMain(import.meta.url, main);
