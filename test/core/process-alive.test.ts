// Unit test of src/core/util/process-alive.ts, which `svault status`, `svault unmount` and the tests use to tell a
// server that is gone from one that is still running.

import test from 'ava';
import { spawn } from 'node:child_process';
import { processAlive, threadState } from '../../src/core/util/process-alive.js';

/** The main thread's id is the process id. */
const mainThreadState = (pid: number): string | null => threadState(pid, pid);

test('a running process (with several threads) is alive; a killed one that is not reaped yet (a zombie) is not', async (t) => {
  t.true(processAlive(process.pid), 'this test process: node, several threads');
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const pid = child.pid!;
  t.true(processAlive(pid));
  process.kill(pid, 'SIGKILL');
  // Spin without yielding to the event loop, so that Node cannot reap the child: it stays a zombie.
  const deadline = Date.now() + 5000;
  while (mainThreadState(pid) !== 'Z' && Date.now() < deadline);
  t.is(mainThreadState(pid), 'Z');
  t.notThrows(() => process.kill(pid, 0), 'kill(pid, 0) still succeeds for a zombie');
  t.false(processAlive(pid));
  await new Promise((resolve) => child.once('exit', resolve));
  t.false(processAlive(pid), 'reaped');
});
