// Two self-contained SVG charts, no dependencies: throughput per workload and target side by side
// (log scale: native is often ten times the rest), and svault's memory against file size plus its RSS
// over the long stream.
import type { BenchReport } from './report.js';
import { TARGET_LABELS, TARGET_NAMES, type TargetName } from './targets.js';
import { GiB, humanBytes, MiB, parseSize, sizeLabel } from './util.js';
import type { WorkloadName } from './workloads.js';

const COLORS: Record<TargetName, string> = { svault: '#d62728', native: '#7f7f7f', floor: '#1f77b4', 'floor-devfuse': '#17becf', gocryptfs: '#2ca02c', securefs: '#9467bd' };
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n = (x: number): string => (Math.round(x * 10) / 10).toString();

function fmtValue(v: number): string {
  if (v >= 1000) return v.toFixed(0);
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

interface Group {
  label: string;
  values: Partial<Record<TargetName, number>>;
}

interface Panel {
  title: string;
  unit: string;
  groups: Group[];
}

function present(r: BenchReport): TargetName[] {
  return TARGET_NAMES.filter((t) => r.targets[t]?.present);
}

function throughputPanels(r: BenchReport): Panel[] {
  const targets = present(r);
  const data: Group[] = [];
  const files: Group[] = [];
  const pick = (w: WorkloadName, key: string, label: string, into: Group[], what: 'mibps' | 'files') => {
    const values: Partial<Record<TargetName, number>> = {};
    for (const t of targets) {
      const f = r.workloads[w]?.targets[t]?.figures[key];
      const v = what === 'mibps' ? f?.mibps?.median : f?.filesPerSecond?.median;
      if (v !== undefined && Number.isFinite(v) && v > 0) values[t] = v;
    }
    if (Object.keys(values).length) into.push({ label, values });
  };
  pick('dd', 'dd-write', `dd write ${humanBytes(r.options.ddBytes)}`, data, 'mibps');
  pick('dd', 'dd-read', `dd read ${humanBytes(r.options.ddBytes)}`, data, 'mibps');
  pick('stream4g', 'stream-write', `stream write ${humanBytes(r.options.streamBytes)}`, data, 'mibps');
  pick('stream4g', 'stream-read', `stream read ${humanBytes(r.options.streamBytes)}`, data, 'mibps');
  for (const s of r.options.sizes) {
    pick('cp', `cp-in-${s}`, `cp in ${s}`, data, 'mibps');
    pick('cp', `cp-out-${s}`, `cp out ${s}`, data, 'mibps');
  }
  for (const { size } of r.options.small) {
    const l = sizeLabel(size);
    const into = size >= MiB ? data : files;
    pick('small', `small-${l}-write`, `small ${l} write`, into, size >= MiB ? 'mibps' : 'files');
    pick('small', `small-${l}-read`, `small ${l} read`, into, size >= MiB ? 'mibps' : 'files');
  }
  pick('tree', 'untar', 'tree: untar', files, 'files');
  pick('tree', 'ls-lR', 'tree: ls -lR', files, 'files');
  pick('tree', 'read-all', 'tree: read all', files, 'files');
  pick('tree', 'reread-all', 'tree: read all again', files, 'files');
  pick('tree', 'rm-rf', 'tree: rm -rf', files, 'files');
  return [
    { title: 'Data throughput (MiB/s, log scale, higher is better)', unit: 'MiB/s', groups: data },
    { title: 'File rate (files/s, log scale, higher is better)', unit: 'files/s', groups: files },
  ].filter((p) => p.groups.length > 0);
}

/** The legend, wrapped onto more lines when it does not fit before `right`; returns it and the y below it. */
function legend(targets: TargetName[], x: number, y: number, right: number): { svg: string; y: number } {
  const step = 190;
  const perLine = Math.max(1, Math.floor((right - x) / step));
  const svg = targets
    .map((t, i) => {
      const lx = x + (i % perLine) * step;
      const ly = y + Math.floor(i / perLine) * 18;
      return `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[t]}"/><text x="${lx + 17}" y="${ly}" font-size="12" ${FONT}>${esc(TARGET_LABELS[t])}</text>`;
    })
    .join('\n');
  return { svg, y: y + (Math.ceil(targets.length / perLine) - 1) * 18 };
}

export function throughputSvg(r: BenchReport): string {
  const targets = present(r);
  const panels = throughputPanels(r);
  const W = 1000;
  const left = 190;
  const right = W - 90;
  const barH = 11;
  const parts: string[] = [];
  let y = 30;
  parts.push(`<text x="${W / 2}" y="${y}" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>svault benchmark ${esc(r.timestamp)}: throughput per workload and target</text>`);
  y += 24;
  const key = legend(targets, left, y, W);
  parts.push(key.svg);
  y = key.y + 20;
  for (const p of panels) {
    const all = p.groups.flatMap((g) => Object.values(g.values) as number[]);
    let lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
    let hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
    if (hi <= lo) hi = lo * 10;
    if (hi / lo < 100) lo = hi / 100;
    const x = (v: number) => left + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (right - left);
    y += 20;
    parts.push(`<text x="${left}" y="${y}" font-size="13" font-weight="bold" ${FONT}>${esc(p.title)}</text>`);
    y += 10;
    const top = y;
    const groupH = (g: Group) => Object.keys(g.values).length * (barH + 2) + 10;
    const height = p.groups.reduce((a, g) => a + groupH(g), 0);
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      parts.push(`<line x1="${n(x(d))}" y1="${top}" x2="${n(x(d))}" y2="${top + height}" stroke="#ddd"/>`);
      parts.push(`<text x="${n(x(d))}" y="${top + height + 14}" text-anchor="middle" font-size="10" ${FONT}>${d >= 1 ? d.toLocaleString('en-US') : d}</text>`);
    }
    parts.push(`<text x="${right}" y="${top + height + 28}" text-anchor="end" font-size="10" ${FONT}>${esc(p.unit)}</text>`);
    for (const g of p.groups) {
      const h = groupH(g);
      parts.push(`<text x="${left - 8}" y="${n(y + (h - 10) / 2 + 4)}" text-anchor="end" font-size="11" ${FONT}>${esc(g.label)}</text>`);
      for (const t of targets) {
        const v = g.values[t];
        if (v === undefined) continue;
        const w = Math.max(1, x(Math.max(v, lo)) - left);
        parts.push(`<rect x="${left}" y="${y}" width="${n(w)}" height="${barH}" fill="${COLORS[t]}"><title>${esc(`${TARGET_LABELS[t]}: ${fmtValue(v)} ${p.unit}`)}</title></rect>`);
        parts.push(`<text x="${n(left + w + 4)}" y="${y + barH - 2}" font-size="9" ${FONT}>${fmtValue(v)}</text>`);
        y += barH + 2;
      }
      y += 10;
    }
    y = top + height + 36;
  }
  if (panels.length === 0) {
    y += 20;
    parts.push(`<text x="${left}" y="${y}" font-size="12" ${FONT}>No throughput figures in this run.</text>`);
    y += 20;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 10}" viewBox="0 0 ${W} ${y + 10}">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}

interface Series {
  target: TargetName;
  dashed?: boolean;
  name: string;
  points: Array<[number, number]>;
}

function lineChart(o: { x0: number; y0: number; w: number; h: number; title: string; xLabel: string; yLabel: string; series: Series[]; logX?: boolean; markers?: boolean; xTicks: Array<[number, string]> }): string {
  const parts: string[] = [];
  const pts = o.series.flatMap((s) => s.points);
  parts.push(`<text x="${o.x0}" y="${o.y0 - 12}" font-size="13" font-weight="bold" ${FONT}>${esc(o.title)}</text>`);
  if (pts.length === 0) {
    parts.push(`<text x="${o.x0}" y="${o.y0 + 20}" font-size="12" ${FONT}>No samples in this run.</text>`);
    return parts.join('\n');
  }
  const xs = pts.map((p) => p[0]);
  const tx = (v: number) => (o.logX ? Math.log2(Math.max(v, 1)) : v);
  let xmin = Math.min(...xs.map(tx), ...o.xTicks.map((t) => tx(t[0])));
  let xmax = Math.max(...xs.map(tx), ...o.xTicks.map((t) => tx(t[0])));
  if (xmax <= xmin) {
    xmax = xmin + 1;
    xmin -= 1;
  }
  const ymaxRaw = Math.max(...pts.map((p) => p[1]));
  const step = ymaxRaw > 1000 ? 250 : ymaxRaw > 400 ? 100 : ymaxRaw > 100 ? 50 : ymaxRaw > 40 ? 20 : 10;
  const ymax = Math.ceil((ymaxRaw * 1.05) / step) * step;
  const X = (v: number) => o.x0 + ((tx(v) - xmin) / (xmax - xmin)) * o.w;
  const Y = (v: number) => o.y0 + o.h - (v / ymax) * o.h;
  for (let v = 0; v <= ymax; v += step) {
    parts.push(`<line x1="${o.x0}" y1="${n(Y(v))}" x2="${o.x0 + o.w}" y2="${n(Y(v))}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${o.x0 - 6}" y="${n(Y(v) + 3)}" text-anchor="end" font-size="10" ${FONT}>${v}</text>`);
  }
  for (const [v, label] of o.xTicks) {
    parts.push(`<line x1="${n(X(v))}" y1="${o.y0 + o.h}" x2="${n(X(v))}" y2="${o.y0 + o.h + 4}" stroke="#333"/>`);
    parts.push(`<text x="${n(X(v))}" y="${o.y0 + o.h + 16}" text-anchor="middle" font-size="10" ${FONT}>${esc(label)}</text>`);
  }
  parts.push(`<rect x="${o.x0}" y="${o.y0}" width="${o.w}" height="${o.h}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${o.x0 + o.w / 2}" y="${o.y0 + o.h + 32}" text-anchor="middle" font-size="11" ${FONT}>${esc(o.xLabel)}</text>`);
  parts.push(`<text x="${o.x0 - 40}" y="${o.y0 + o.h / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 ${o.x0 - 40} ${o.y0 + o.h / 2})" ${FONT}>${esc(o.yLabel)}</text>`);
  let ly = o.y0 + 14;
  for (const s of o.series) {
    if (s.points.length === 0) continue;
    const width = s.target === 'svault' ? 2.5 : 1.5;
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${n(X(p[0]))},${n(Y(p[1]))}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${COLORS[s.target]}" stroke-width="${width}"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (o.markers) for (const p of s.points) parts.push(`<circle cx="${n(X(p[0]))}" cy="${n(Y(p[1]))}" r="3" fill="${COLORS[s.target]}"><title>${esc(`${s.name}: ${p[1].toFixed(0)} MiB`)}</title></circle>`);
    // The legend sits right of the plot, clear of the lines.
    parts.push(`<line x1="${o.x0 + o.w + 15}" y1="${ly - 4}" x2="${o.x0 + o.w + 40}" y2="${ly - 4}" stroke="${COLORS[s.target]}" stroke-width="${width}"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${o.x0 + o.w + 45}" y="${ly}" font-size="10" ${FONT}>${esc(s.name)}</text>`);
    ly += 14;
  }
  return parts.join('\n');
}

export function rssSvg(r: BenchReport): string {
  const W = 1000;
  const targets = present(r).filter((t) => t !== 'native');
  // Panel 1: peak RSS of each server while copying a file of each size (cp in and out), plus the streams.
  const bySize: Series[] = targets.map((t) => {
    const pts: Array<[number, number]> = [];
    for (const label of r.options.sizes) {
      const bytes = sizeBytesOf(label);
      const s = r.workloads.cp?.targets[t]?.processBy?.[label]?.peakRssBytes;
      if (bytes && s) pts.push([bytes, s / MiB]);
    }
    const dd = r.workloads.dd?.targets[t]?.process?.peakRssBytes;
    if (dd) pts.push([r.options.ddBytes, dd / MiB]);
    const st = r.workloads.stream4g?.targets[t]?.process?.peakRssBytes;
    if (st) pts.push([r.options.streamBytes, st / MiB]);
    pts.sort((a, b) => a[0] - b[0]);
    return { target: t, name: TARGET_LABELS[t], points: pts };
  });
  const allSizes = bySize.flatMap((s) => s.points.map((p) => p[0]));
  const ticks: Array<[number, string]> = [...new Set(allSizes)].sort((a, b) => a - b).map((b) => [b, sizeLabel(b)]);
  // Panel 2: RSS over the long stream (or dd if there was none) against the bytes moved.
  const source = r.workloads.stream4g ? 'stream4g' : 'dd';
  const bytesTotal = source === 'stream4g' ? r.options.streamBytes : r.options.ddBytes;
  const overStream: Series[] = [];
  for (const t of targets) {
    const rss = r.workloads[source]?.targets[t]?.rss;
    if (!rss) continue;
    for (const dir of ['write', 'read'] as const) {
      const pts = rss[dir].filter((s) => s.bytes !== null).map((s): [number, number] => [(s.bytes as number) / GiB, s.rss / MiB]);
      overStream.push({ target: t, dashed: dir === 'read', name: `${TARGET_LABELS[t]} ${dir}`, points: pts });
    }
  }
  const gib = bytesTotal / GiB;
  const streamTicks: Array<[number, string]> = [0, 0.25, 0.5, 0.75, 1].map((f) => [f * gib, gib >= 1 ? `${(f * gib).toFixed(f * gib >= 1 || f === 0 ? 0 : 2)} GiB` : humanBytes(Math.round(f * bytesTotal)) || '0']);
  const p1 = lineChart({ x0: 90, y0: 80, w: W - 300, h: 260, markers: true, title: 'Peak RSS of each server while copying one file of each size in and out (cp), and over the dd and long streams', xLabel: 'file size (log scale)', yLabel: 'peak RSS (MiB)', series: bySize, logX: true, xTicks: ticks });
  const p2 = lineChart({ x0: 90, y0: 450, w: W - 300, h: 260, title: `RSS during the ${humanBytes(bytesTotal)} ${source === 'stream4g' ? 'long stream' : 'dd stream'} against bytes moved (solid: write, dashed: read)`, xLabel: 'GiB moved by dd', yLabel: 'RSS (MiB)', series: overStream, xTicks: streamTicks });
  const H = 770;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">\n<rect width="100%" height="100%" fill="white"/>\n<text x="${W / 2}" y="30" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>svault benchmark ${esc(r.timestamp)}: server memory against file size</text>\n${p1}\n${p2}\n</svg>\n`;
}

function sizeBytesOf(label: string): number | null {
  try {
    return parseSize(label);
  } catch {
    return null;
  }
}
