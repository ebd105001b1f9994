// The long stress run (`npm run stress`): the model checker on a vault with small pieces (4 KiB, many
// pieces per file) and on one with the default 128 KiB pieces, then the crash loop, then the power-loss
// loops (the check of the simulation itself first, then the crash loop with a power loss after every
// crash, by default and under -o sync), then the known-issue reproductions; prints a summary with the
// figures. Exit code 1 if the model check, a crash loop or the simulation's check failed.
//
//   npm run stress -- [--seed N] [--ops 20000] [--crashes 100] [--power-losses 30] [--sync-power-losses 15]
//                     [--workers 3] [--time SECONDS] [--skip-model] [--skip-crash] [--skip-power-loss]
//                     [--skip-known] [--skip-big-dir] [--lenient]
//
// --time bounds each model check (operations stop being issued; the final checks still run) and each
// crash loop (no new cycle starts). The fixed known issues are failures in the random runs too; --lenient tolerates them (counted, not failed).

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cleanupOnSignals } from './box.js';
import { crashLoop, formatCrashReport, CRASH_DEFAULTS, type CrashReport } from './crash-loop.js';
import { durableFsCheck, formatDurableCheck } from './durable-fs-check.js';
import { hiddenInListing, orphansAfterPlainFsck, renameOntoOpenLink, touchLostByCrash, unlinkedOpenAfterCrash } from './known-issues.js';
import { formatFailure, formatOutcomes, MC_DEFAULTS, modelCheck, type McReport } from './model-check.js';
import { HIDDEN } from './model-check.js';
import { intArg, parseArgs } from './util.js';
import { runHarnessIfMain } from './worker-client.js';

async function main(): Promise<number> {
  cleanupOnSignals();
  const a = parseArgs(process.argv.slice(2));
  const seed = intArg(a, 'seed', Math.floor(Math.random() * 2 ** 31));
  const ops = intArg(a, 'ops', 20_000);
  const crashes = intArg(a, 'crashes', 100);
  const powerLosses = intArg(a, 'power-losses', 30);
  const syncPowerLosses = intArg(a, 'sync-power-losses', 15);
  const workers = intArg(a, 'workers', 3);
  const timeMs = intArg(a, 'time', 3600) * 1000;
  const strict = !a.has('lenient');
  const log = (l: string) => process.stderr.write(l + '\n');
  const t0 = Date.now();
  const summary: string[] = [`svault stress run: seed ${seed}`];
  let failed = false;

  const models: { pieceSize: number; report: McReport }[] = [];
  if (!a.has('skip-model')) {
    const split = [
      { pieceSize: 4096, ops: Math.ceil(ops * 0.6) },
      { pieceSize: 131072, ops: ops - Math.ceil(ops * 0.6) },
    ];
    for (const s of split) {
      if (s.ops <= 0) continue;
      const report = await modelCheck({
        ...MC_DEFAULTS,
        seed,
        ops: s.ops,
        workers,
        pieceSize: s.pieceSize,
        timeBudgetMs: timeMs,
        allowFuseHidden: !strict,
        log,
      });
      models.push({ pieceSize: s.pieceSize, report });
      const r = report.run;
      if (r.failure) {
        failed = true;
        summary.push(formatFailure(report));
      }
      summary.push(
        `model check, piece size ${s.pieceSize}: ${r.failure ? 'FAILED' : 'passed'}; ${r.opsChecked} of ${s.ops} operations checked, ${r.snapshots} tree snapshots compared, ${workers} workers, ${(r.ms / 1000).toFixed(1)} s`,
        formatOutcomes(r.outcomes),
      );
    }
  }

  let crash: CrashReport | null = null;
  if (!a.has('skip-crash')) {
    crash = await crashLoop({ ...CRASH_DEFAULTS, seed, crashes, workers, timeBudgetMs: timeMs, strict, log });
    if (crash.failures.length > 0 || crash.bytesLost > 0) failed = true;
    summary.push(formatCrashReport(crash));
  }

  const losses: CrashReport[] = [];
  if (!a.has('skip-power-loss')) {
    // The simulation first: if its images were wrong, the loops below would prove nothing.
    const check = await durableFsCheck({ seed, ops: 300, rounds: 4, log });
    if (check.failures.length > 0) failed = true;
    summary.push(formatDurableCheck(check));
    for (const sync of [false, true]) {
      const n = sync ? syncPowerLosses : powerLosses;
      if (n <= 0) continue;
      const r = await crashLoop({ ...CRASH_DEFAULTS, seed, crashes: n, workers, sync, powerLoss: true, timeBudgetMs: timeMs, strict, log });
      if (r.failures.length > 0 || r.bytesLost > 0) failed = true;
      losses.push(r);
      summary.push(formatCrashReport(r));
    }
  }

  if (!a.has('skip-known')) {
    summary.push('known issues (deterministic reproductions, test/stress/known-issues.ts):');
    const still = (b: boolean) => (b ? 'STILL PRESENT' : 'fixed');
    const h = await hiddenInListing();
    summary.push(`  1. unlinked-while-open file listed as .fuse_hidden*: ${still(!!h.failure && /fuse_hidden/.test(h.failure.detail))}`);
    const u = await unlinkedOpenAfterCrash();
    summary.push(`  2. unlinked-while-open file back after a crash: ${still(u.names.some((n) => HIDDEN.test(n)))} (after remount: ${JSON.stringify(u.names)})`);
    const e = await touchLostByCrash();
    summary.push(`  3. empty file created and closed, lost by a crash: ${still(!e.names.includes('empty'))} (after remount: ${JSON.stringify(e.names)})`);
    const o = await orphansAfterPlainFsck();
    summary.push(`  4. crash orphans not swept after a plain fsck: ${still(o.leftAfterUnmount > 0)} (${o.foundAfterCrash} found, swept by mount: ${o.sweptByMount}, left: ${o.leftAfterUnmount}, fsck exit ${o.fsckExit})`);
    // Open and documented (README, Known limitations): reported, not counted as a failure of the run.
    for (const binding of ['fuse-native', 'devfuse'] as const) {
      const r5 = await renameOntoOpenLink(binding);
      summary.push(`  5. (${binding}) rename onto another name of the same file while that name is open loses the source name: ${r5.failure ? `open, reproduces (${r5.failure.detail.split('\n')[0]})` : 'does not reproduce'}`);
    }
  }

  if (!a.has('skip-big-dir')) {
    // The long version of the bad-use test's big directory: 100,000 entries in one directory through a
    // real mount, listed, stat'ed, thinned, then fsck (SVAULT_LONG=1; npm test runs it with 20,000).
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const t1 = Date.now();
    const big = spawnSync('npx', ['ava', 'test/reliability/bad-use.test.ts', '--match', '*entries in one directory*', '--timeout', '30m', '--verbose'], {
      cwd: root,
      env: { ...process.env, SVAULT_LONG: '1' },
      encoding: 'utf8',
    });
    const timings = /N=100000: ([^\n]*)/.exec(big.stdout)?.[1] ?? 'no timings printed';
    if (big.status !== 0) {
      failed = true;
      summary.push(`100,000 entries in one directory: FAILED (exit ${big.status})`, big.stdout.slice(-3000), big.stderr.slice(-2000));
    } else {
      summary.push(`100,000 entries in one directory: passed in ${((Date.now() - t1) / 1000).toFixed(0)} s (${timings})`);
    }
  }

  const opsChecked = models.reduce((s, m) => s + m.report.run.opsChecked, 0);
  const lossCount = (sync: boolean) => losses.filter((r) => r.sync === sync).reduce((s, r) => s + r.crashesInjected, 0);
  summary.push(
    '',
    `FIGURES: ops checked ${opsChecked}; crashes injected ${crash?.crashesInjected ?? 0}; power losses after crashes ${lossCount(false)} (-o sync ${lossCount(true)}); ` +
      `files checked ${(crash?.filesChecked ?? 0) + losses.reduce((s, r) => s + r.filesChecked, 0)}; bytes lost ${(crash?.bytesLost ?? 0) + losses.reduce((s, r) => s + r.bytesLost, 0)}; ` +
      `total ${((Date.now() - t0) / 1000).toFixed(0)} s; ${failed ? 'FAILED' : 'passed'}`,
  );
  process.stdout.write(summary.join('\n') + '\n');
  return failed ? 1 : 0;
}

runHarnessIfMain(import.meta.url, main);
