// What the bench and profiling commands share around their work: reading the arguments (a bad one
// prints the usage and exits 2, --help prints it and exits 0), starting main() when the module is the
// script node was given, and the load-average summary every report carries.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from './util.js';

/** The project root: the nearest directory above with svault's package.json and bin/ (works from dist/ too). */
export const ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  let dir = from;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'bin', 'svault.js'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find svault's root above ${from}`);
    dir = up;
  }
}

/** Parses argv with parse() and runs body; usage errors exit 2, --help prints the usage. */
export async function withOptions<O extends { help: boolean }>(argv: string[], usage: string, parse: (argv: string[]) => O, body: (o: O) => Promise<number>): Promise<number> {
  let o: O;
  try {
    o = parse(argv);
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n\n${usage}`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(usage);
    return 0;
  }
  return body(o);
}

/**
 * Walks argv flag by flag: onFlag gets the flag (`--out` of `--out=DIR` too), a function that takes its
 * value (from after the `=`, or the next argument), and the argument as written.
 */
export function eachFlag(argv: string[], onFlag: (flag: string, value: () => string, arg: string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    onFlag(flag, value, arg);
  }
}

/** Runs main(argv) if moduleUrl is the script node was started with; exits with its code (`failCode` on a throw). */
export function runIfMain(moduleUrl: string, main: (argv: string[]) => Promise<number>, failCode = 1): void {
  if (!process.argv[1] || path.resolve(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(failCode);
    },
  );
}

/** The 1-minute load averages sampled through a run: first, last, mean and max. */
export function loadSummary(loads: number[]): { start: number; end: number; mean: number; max: number } {
  if (loads.length === 0) return { start: 0, end: 0, mean: 0, max: 0 };
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  return { start: loads[0] ?? 0, end: loads[loads.length - 1] ?? 0, mean: Math.round(mean * 100) / 100, max: Math.max(...loads) };
}

/** A run's start as it appears in report file names: 2026-11-27T13-35-32Z. */
export function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** The fields every report opens with: when the run started and finished, how long it took, the command. */
export function runTimes(started: Date, finished: Date, command: string[]): { timestamp: string; finishedAt: string; seconds: number; command: string[] } {
  return {
    timestamp: started.toISOString(),
    finishedAt: finished.toISOString(),
    seconds: Math.round((finished.getTime() - started.getTime()) / 100) / 10,
    command,
  };
}
