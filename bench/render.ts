// Re-renders the markdown and the two SVG charts of a bench JSON (after a change to the rendering, or to
// view an older run), next to the JSON or into --out DIR. The summary is recomputed from the figures, and
// its goal lines (the build workload's) are printed on stderr as at the end of `npm run bench`.
//
//   node --import tsx bench/render.ts reports/bench-<timestamp>.json [--out DIR]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderMarkdown, SCHEMA, summarize, summaryLines, type BenchReport } from './lib/report.js';
import { rssSvg, throughputSvg } from './lib/svg.js';

export function render(file: string, outDir = path.dirname(file)): string[] {
  const r = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  if (r.schema !== SCHEMA) throw new Error(`${file} is not a ${SCHEMA} report`);
  r.summary = summarize(r);
  const written = [
    [r.files.markdown, renderMarkdown(r)],
    [r.files.throughputSvg, throughputSvg(r)],
    [r.files.rssSvg, rssSvg(r)],
  ].map(([name, text]) => {
    const p = path.join(outDir, name as string);
    writeFileSync(p, text as string);
    return p;
  });
  // The same closing summary as `npm run bench` prints (the figures a goal is set on).
  for (const line of summaryLines(r)) process.stderr.write(`${line}\n`);
  return written;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const outAt = args.indexOf('--out');
  const out = outAt >= 0 ? args[outAt + 1] : undefined;
  const file = args.find((a, i) => !a.startsWith('--') && (outAt < 0 || i !== outAt + 1));
  if (!file) {
    process.stderr.write('usage: bench/render.ts REPORT.json [--out DIR]\n');
    process.exit(2);
  }
  for (const p of render(path.resolve(file), out ? path.resolve(out) : undefined)) process.stdout.write(`${p}\n`);
}
