// Unit test of when the mount server trims glibc's arenas (fs/memory-trim.ts), with a fake clock of RSS
// and CPU; test/mount-files.test.ts checks that a real mount trims after a large write, and
// test/binding.test.ts that the patched binding's malloc_trim answers.

import test from 'ava';
import { MemoryTrimmer, QUIET_CPU_MS, TRIM_GROWTH_BYTES } from '../../fs/memory-trim.js';
import { OpStats } from '../../src/core/util/op-stats.js';

const MiB = 1024 * 1024;

/**
 * A trimmer over a fake process: set rss and cpu, then tick. A trim takes `releases` bytes off the RSS
 * and `trimCpuMs` of CPU.
 */
function fakeProcess(releases = 0, trimCpuMs = 0) {
  const p = { rss: 100 * MiB, cpu: 0, trims: 0 };
  const stats = new OpStats(true);
  const trimmer = new MemoryTrimmer({
    trim: () => {
      p.trims++;
      p.rss -= releases;
      p.cpu += trimCpuMs;
      return releases > 0;
    },
    rss: () => p.rss,
    cpuMs: () => p.cpu,
    stats,
  });
  return { p, trimmer, stats };
}

test('an idle mount never trims', (t) => {
  const { p, trimmer } = fakeProcess();
  for (let i = 0; i < 10; i++) t.false(trimmer.tick());
  t.is(p.trims, 0);
});

test('trims when the RSS has grown by the threshold since the last trim, and counts it', (t) => {
  const { p, trimmer, stats } = fakeProcess(4 * MiB);
  p.rss += TRIM_GROWTH_BYTES - 1;
  t.false(trimmer.tick(), 'just under the threshold');
  p.rss += 1;
  t.true(trimmer.tick(), 'at the threshold');
  t.is(stats.summary().find((o) => o.op === 'bg.malloc-trim')?.calls, 1);
  // The next threshold counts from what the trim left (100 + 8 - 4 MiB), not from the start.
  p.rss += TRIM_GROWTH_BYTES - 1;
  t.false(trimmer.tick());
  p.rss += 1;
  t.true(trimmer.tick());
  t.is(p.trims, 2);
});

test('trims once when the server goes quiet after working, not while it keeps working at a steady RSS', (t) => {
  const { p, trimmer } = fakeProcess();
  for (let i = 0; i < 5; i++) {
    p.cpu += 500; // busy: half a core, RSS flat (a steady read reusing its memory)
    t.false(trimmer.tick(), `busy second ${i}`);
  }
  p.cpu += QUIET_CPU_MS - 1;
  t.true(trimmer.tick(), 'the first quiet second');
  for (let i = 0; i < 5; i++) t.false(trimmer.tick(), 'still quiet: nothing new to give back');
  p.cpu += QUIET_CPU_MS;
  t.false(trimmer.tick(), 'busy again');
  t.true(trimmer.tick(), 'quiet again');
  t.is(p.trims, 2);
});

test('the trim\'s own CPU time does not make the mount look busy', (t) => {
  const { p, trimmer } = fakeProcess(0, 5 * QUIET_CPU_MS); // a slow trim
  p.rss += TRIM_GROWTH_BYTES;
  t.true(trimmer.tick());
  for (let i = 0; i < 3; i++) t.false(trimmer.tick(), 'no work since: no "settled" trim after the trim itself');
  t.is(p.trims, 1);
});
