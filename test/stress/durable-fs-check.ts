// A check of the power-loss simulation itself (durable-fs.ts, durable-image.ts): random file-system calls
// through a durable-fs mount (writes at random offsets, O_TRUNC, truncate and ftruncate, renames within
// and across directories and over other files, hard links, unlinks, a file unlinked while open and then
// written and fsynced, mkdir and rmdir, fsync of files and of directories), then a power loss, and the
// image compared, name by name and byte by byte, with a second model written the plain way: a full copy
// of a file's bytes at each of its fsyncs, a copy of a directory's entries at each of its fsyncs. Several
// rounds, each on the image the last one left. If the simulation kept more than the calls made durable,
// or less, the crash loop's power-loss mode would prove nothing; this says which.
//
//   node --import tsx test/stress/durable-fs-check.ts [--seed N] [--ops N] [--rounds N]

import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DurableDisk, killAllDisks } from './durable-disk.js';
import { intArg, parseArgs, Rng, sha256, tagData } from './util.js';
import { killAllWorkers, runHarnessIfMain, Worker } from './worker-client.js';

interface RNode {
  id: number;
  dir: boolean;
  /** Files: live bytes, and the bytes at the last fsync. */
  data: Buffer;
  dData: Buffer;
  /** Directories: live entries, and the entries at the last fsync of the directory. */
  entries: Map<string, number>;
  dEntries: Map<string, number>;
}

export interface DurableCheckReport {
  seed: number;
  rounds: number;
  ops: number;
  /** Power losses whose image matched the plain model. */
  imagesChecked: number;
  filesCompared: number;
  /** What the losses dropped, as durable-fs counted it (so the check is not vacuous). */
  bytesDropped: number;
  namesDropped: number;
  namesRevived: number;
  failures: string[];
  ms: number;
}

const FILES = ['f0', 'f1', 'f2', 'f3'];
const DIRS = ['', 'd0', 'd1', 'd0/s'];

class PlainModel {
  nodes = new Map<number, RNode>();
  private next = 1;
  readonly root: RNode;

  constructor() {
    this.root = this.make(true);
  }

  make(dir: boolean): RNode {
    const n: RNode = { id: this.next++, dir, data: Buffer.alloc(0), dData: Buffer.alloc(0), entries: new Map(), dEntries: new Map() };
    this.nodes.set(n.id, n);
    return n;
  }

  /** The live node at a path ('' is the root), or undefined. */
  at(path: string): RNode | undefined {
    let cur: RNode | undefined = this.root;
    for (const part of path.split('/').filter(Boolean)) {
      const id: number | undefined = cur?.dir ? cur.entries.get(part) : undefined;
      cur = id === undefined ? undefined : this.nodes.get(id);
    }
    return cur;
  }

  parentOf(path: string): [RNode | undefined, string] {
    const at = path.lastIndexOf('/');
    return at < 0 ? [this.root, path] : [this.at(path.slice(0, at)), path.slice(at + 1)];
  }

  /** After a power loss: the durable state is the live one, with nothing pending. */
  settle(): void {
    const keep = new Map<number, RNode>();
    const walk = (d: RNode, seen: Set<number>) => {
      keep.set(d.id, d);
      d.entries = new Map(d.dEntries);
      for (const id of d.dEntries.values()) {
        const n = this.nodes.get(id) as RNode;
        if (n.dir) {
          if (seen.has(n.id)) continue;
          walk(n, new Set([...seen, n.id]));
        } else {
          n.data = Buffer.from(n.dData);
          keep.set(n.id, n);
        }
      }
    };
    walk(this.root, new Set([this.root.id]));
    this.nodes = keep;
  }
}

function write(into: Buffer, off: number, data: Buffer): Buffer {
  const out = Buffer.alloc(Math.max(into.length, off + data.length));
  into.copy(out);
  data.copy(out, off);
  return out;
}

function resize(b: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  b.copy(out, 0, 0, Math.min(size, b.length));
  return out;
}

export async function durableFsCheck(o: { seed: number; ops: number; rounds: number; log: (l: string) => void }): Promise<DurableCheckReport> {
  const t0 = Date.now();
  const rng = new Rng(o.seed);
  const dir = mkdtempSync(join(tmpdir(), 'svault-stress-durable-'));
  const mnt = join(dir, 'mnt');
  const report: DurableCheckReport = { seed: o.seed, rounds: 0, ops: 0, imagesChecked: 0, filesCompared: 0, bytesDropped: 0, namesDropped: 0, namesRevived: 0, failures: [], ms: 0 };
  const m = new PlainModel();
  let disk: DurableDisk | null = null;
  let worker: Worker | null = null;
  let backing = join(dir, 'disk-0');
  let tag = 0;
  const ok = async (req: Record<string, unknown>, what: string) => {
    const r = await (worker as Worker).call(req);
    if (!r.ok) throw new Error(`${what}: ${r.err} ${r.msg ?? ''}`);
    report.ops++;
  };
  try {
    disk = await DurableDisk.start(backing, mnt, join(dir, 'durable-fs.log'));
    worker = new Worker(mnt);
    for (const d of ['d0', 'd1']) {
      await ok({ op: 'mkdir', p: d }, `mkdir ${d}`);
      const [parent, name] = m.parentOf(d);
      (parent as RNode).entries.set(name, m.make(true).id);
    }
    for (let round = 0; round < o.rounds; round++) {
      report.rounds++;
      for (let i = 0; i < o.ops; i++) {
        const dirs = DIRS.filter((d) => m.at(d)?.dir);
        const files = dirs.flatMap((d) => FILES.map((f) => (d ? `${d}/${f}` : f)));
        const existing = files.filter((p) => m.at(p) && !m.at(p)?.dir);
        const pick = <T>(xs: T[]) => rng.pick(xs);
        const kind = rng.weighted({ write: 6, truncate: 1, rename: 2, unlink: 1, link: 1, fsyncdir: 3, fsync: 2, unlinkOpen: 1, mkdir: 1, rmdir: 1 });
        if (kind === 'write' || (existing.length === 0 && kind !== 'fsyncdir' && kind !== 'mkdir')) {
          const p = pick(files);
          const trunc = rng.chance(0.25);
          const calls: unknown[][] = [['open', 0, p, `rdwr|creat${trunc ? '|trunc' : ''}`]];
          let n = m.at(p);
          if (!n) {
            n = m.make(false);
            const [parent, name] = m.parentOf(p);
            (parent as RNode).entries.set(name, n.id);
          }
          if (trunc) n.data = Buffer.alloc(0);
          for (let k = rng.int(1, 3); k > 0; k--) {
            const off = rng.chance(0.3) ? n.data.length : rng.int(0, n.data.length + 5000);
            const len = rng.int(1, 9000);
            const t = `dc${o.seed}-${tag++}`;
            calls.push(['pwrite', 0, off, len, t]);
            n.data = write(n.data, off, tagData(t, len));
          }
          if (rng.chance(0.2)) {
            const size = rng.int(0, n.data.length + 3000);
            calls.push(['ftruncate', 0, size]);
            n.data = resize(n.data, size);
          }
          if (rng.chance(0.4)) {
            calls.push(['fsync', 0]);
            n.dData = Buffer.from(n.data);
          }
          calls.push(['close', 0]);
          await ok({ op: 'steps', calls }, `write ${p}`);
        } else if (kind === 'truncate') {
          const p = pick(existing);
          const n = m.at(p) as RNode;
          const size = rng.int(0, n.data.length + 3000);
          await ok({ op: 'steps', calls: [['truncate', p, size]] }, `truncate ${p}`);
          n.data = resize(n.data, size);
        } else if (kind === 'rename') {
          const p = pick(existing);
          const q = pick(files.filter((f) => f !== p));
          await ok({ op: 'steps', calls: [['rename', p, q]] }, `rename ${p} ${q}`);
          const x = m.at(p) as RNode;
          const y = m.at(q);
          if (y !== x) {
            const [pp, pn] = m.parentOf(p);
            const [qp, qn] = m.parentOf(q);
            (pp as RNode).entries.delete(pn);
            (qp as RNode).entries.set(qn, x.id);
          }
        } else if (kind === 'unlink') {
          const p = pick(existing);
          await ok({ op: 'unlink', p }, `unlink ${p}`);
          const [pp, pn] = m.parentOf(p);
          (pp as RNode).entries.delete(pn);
        } else if (kind === 'link') {
          const free = files.filter((f) => !m.at(f));
          if (free.length === 0) continue;
          const p = pick(existing);
          const q = pick(free);
          await ok({ op: 'link', p, to: q }, `link ${p} ${q}`);
          const [qp, qn] = m.parentOf(q);
          (qp as RNode).entries.set(qn, (m.at(p) as RNode).id);
        } else if (kind === 'fsyncdir') {
          const d = pick(dirs);
          await ok({ op: 'steps', calls: [['fsyncdir', d || '.']] }, `fsyncdir ${d}`);
          const n = m.at(d) as RNode;
          n.dEntries = new Map(n.entries);
        } else if (kind === 'fsync') {
          const p = pick(existing);
          await ok({ op: 'steps', calls: [['open', 0, p, 'rdwr'], ['fsync', 0], ['close', 0]] }, `fsync ${p}`);
          const n = m.at(p) as RNode;
          n.dData = Buffer.from(n.data);
        } else if (kind === 'unlinkOpen') {
          // The durable name (if its directory was not synced since) still points to this inode: the fsync
          // through the open handle is what the image must show under it.
          const p = pick(existing);
          const n = m.at(p) as RNode;
          const t = `dc${o.seed}-${tag++}`;
          const off = rng.int(0, n.data.length);
          const len = rng.int(1, 5000);
          const sync = rng.chance(0.6);
          await ok({ op: 'steps', calls: [['open', 0, p, 'rdwr'], ['unlink', p], ['pwrite', 0, off, len, t], ...(sync ? [['fsync', 0]] : []), ['close', 0]] }, `unlinkOpen ${p}`);
          const [pp, pn] = m.parentOf(p);
          (pp as RNode).entries.delete(pn);
          n.data = write(n.data, off, tagData(t, len));
          if (sync) n.dData = Buffer.from(n.data);
        } else if (kind === 'mkdir') {
          // A directory that is missing (removed, or lost with a power loss before its parent was synced).
          const missing = DIRS.filter((d) => d && !m.at(d) && m.parentOf(d)[0]?.dir);
          if (missing.length === 0) continue;
          const d = pick(missing);
          await ok({ op: 'mkdir', p: d }, `mkdir ${d}`);
          const [parent, name] = m.parentOf(d);
          (parent as RNode).entries.set(name, m.make(true).id);
        } else if (kind === 'rmdir') {
          const s = m.at('d0/s');
          if (!s) continue;
          for (const f of [...s.entries.keys()]) {
            await ok({ op: 'unlink', p: `d0/s/${f}` }, `unlink d0/s/${f}`);
            s.entries.delete(f);
          }
          await ok({ op: 'rmdir', p: 'd0/s' }, 'rmdir d0/s');
          (m.at('d0') as RNode).entries.delete('s');
        }
      }
      await worker?.close();
      worker = null;
      // The power loss, and the image against the plain model.
      const dest = join(dir, `disk-${round + 1}`);
      // The disk serves the image from here on; nothing writes to it before it is compared.
      const { summary } = await (disk as DurableDisk).powerLoss(dest);
      report.bytesDropped += summary.bytesDropped;
      report.namesDropped += summary.namesDropped;
      report.namesRevived += summary.namesRevived;
      if (summary.counters.anomalies > 0) report.failures.push(`round ${round}: durable-fs counted ${summary.counters.anomalies} anomalies (see its log)`);
      const diffs = compare(m, dest, report);
      if (diffs.length > 0) report.failures.push(`round ${round} (seed ${o.seed}): the image differs from the plain model:\n    ${diffs.slice(0, 40).join('\n    ')}`);
      else report.imagesChecked++;
      o.log(`durable-fs check, round ${round}: ${diffs.length === 0 ? 'image matches' : `${diffs.length} differences`} (dropped ${summary.bytesDropped} bytes of ${summary.dirtyFiles} files, ${summary.namesDropped} names; ${summary.namesRevived} names back)`);
      if (report.failures.length > 0) break;
      m.settle();
      DurableDisk.remove(backing);
      backing = dest;
      if (round + 1 < o.rounds) worker = new Worker(mnt);
    }
  } catch (err) {
    report.failures.push(`harness error: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await worker?.close();
    await disk?.stop();
    if (report.failures.length === 0) rmSync(dir, { recursive: true, force: true });
    else report.failures.push(`kept: ${dir}`);
    report.ms = Date.now() - t0;
  }
  return report;
}

/** The image at `dest` against the plain model's durable state: names, kinds, bytes, and which names share an inode. */
function compare(m: PlainModel, dest: string, report: DurableCheckReport): string[] {
  const diffs: string[] = [];
  const inoOf = new Map<number, number>();
  const walk = (d: RNode, path: string, rel: string, seen: Set<number>) => {
    const want = new Map([...d.dEntries].filter(([, id]) => !(m.nodes.get(id)?.dir && seen.has(id))));
    const got = readdirSync(path).sort();
    for (const name of got) if (!want.has(name)) diffs.push(`${rel}${name}: in the image, not durable in the model`);
    for (const [name, id] of want) {
      const n = m.nodes.get(id) as RNode;
      const p = join(path, name);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st) {
        diffs.push(`${rel}${name}: durable in the model (${n.dir ? 'directory' : `${n.dData.length} bytes`}), missing from the image`);
        continue;
      }
      if (n.dir) {
        if (!st.isDirectory()) diffs.push(`${rel}${name}: a directory in the model, not in the image`);
        else walk(n, p, `${rel}${name}/`, new Set([...seen, n.id]));
        continue;
      }
      report.filesCompared++;
      const b = readFileSync(p);
      if (!b.equals(n.dData)) diffs.push(`${rel}${name}: image ${b.length} bytes ${sha256(b).slice(0, 10)}, model ${n.dData.length} bytes ${sha256(n.dData).slice(0, 10)}`);
      const ino = inoOf.get(n.id);
      if (ino === undefined) inoOf.set(n.id, st.ino);
      else if (ino !== st.ino) diffs.push(`${rel}${name}: should be a hard link of another name of node ${n.id}`);
    }
  };
  walk(m.root, dest, '', new Set([m.root.id]));
  const inos = [...inoOf.values()];
  if (new Set(inos).size !== inos.length) diffs.push('two different files of the model are one inode in the image');
  return diffs;
}

export function formatDurableCheck(r: DurableCheckReport): string {
  const lines = [
    `durable-fs check ${r.failures.length === 0 ? 'passed' : 'FAILED'}: seed ${r.seed}, ${r.rounds} power losses after ${r.ops} calls, ${r.imagesChecked} images equal to the plain model (${r.filesCompared} files compared), ${(r.ms / 1000).toFixed(1)} s`,
    `  dropped by the losses: ${r.bytesDropped} bytes, ${r.namesDropped} names; ${r.namesRevived} removed names back`,
  ];
  for (const f of r.failures) lines.push(`  FAILURE: ${f}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  process.on('exit', killAllDisks);
  const a = parseArgs(process.argv.slice(2));
  const r = await durableFsCheck({
    seed: intArg(a, 'seed', Math.floor(Math.random() * 2 ** 31)),
    ops: intArg(a, 'ops', 300),
    rounds: intArg(a, 'rounds', 4),
    log: (l) => process.stderr.write(l + '\n'),
  });
  process.stdout.write(formatDurableCheck(r) + '\n');
  killAllWorkers();
  return r.failures.length > 0 ? 1 : 0;
}

runHarnessIfMain(import.meta.url, main);
