// The harness side of test/stress/worker.py: one python3 process per worker, driven over pipes with
// one JSON request per line. The harness never touches the mount itself, so it never blocks on FUSE.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const WORKER_PY = fileURLToPath(new URL('./worker.py', import.meta.url));

export interface Reply {
  i: number;
  ok: boolean;
  err?: string;
  msg?: string;
  /** Failed compound operations: how many of its system calls had returned. */
  step?: number;
  [k: string]: unknown;
}

interface Pending {
  resolve: (r: Reply) => void;
  onStep?: (k: number) => void;
}

/** Live workers of this process, killed by killAllWorkers() (cleanup paths). */
const all = new Set<Worker>();

export class Worker {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited = false;
  private stderr = '';

  constructor(root: string, opts: { forceSync?: boolean; waitHidden?: boolean } = {}) {
    const args = [WORKER_PY, root];
    if (opts.forceSync === false) args.push('--no-sync');
    if (opts.waitHidden) args.push('--wait-hidden');
    this.proc = spawn('python3', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    all.add(this);
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.onLine(line));
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.proc.on('exit', (code, sig) => {
      this.exited = true;
      all.delete(this);
      for (const [i, p] of this.pending) p.resolve({ i, ok: false, err: 'EWORKER', msg: `worker exited (${code ?? sig}): ${this.stderr}` });
      this.pending.clear();
    });
    this.proc.stdin.on('error', () => undefined);
  }

  private onLine(line: string): void {
    let msg: Reply & { step?: number };
    try {
      msg = JSON.parse(line) as Reply;
    } catch {
      return;
    }
    const p = this.pending.get(msg.i);
    if (!p) return;
    if (msg.ok === undefined && typeof msg.step === 'number') {
      p.onStep?.(msg.step);
      return;
    }
    this.pending.delete(msg.i);
    p.resolve(msg);
  }

  /** Sends one request; onStep hears each returned system call of a compound operation. */
  call(req: Record<string, unknown>, onStep?: (k: number) => void): Promise<Reply> {
    const i = this.nextId++;
    if (this.exited) return Promise.resolve({ i, ok: false, err: 'EWORKER', msg: `worker has exited: ${this.stderr}` });
    return new Promise((resolve) => {
      this.pending.set(i, { resolve, onStep });
      this.proc.stdin.write(JSON.stringify({ ...req, i }) + '\n');
    });
  }

  /** Ends the worker: closes its input, then kills it if it does not exit (it may be stuck in FUSE). */
  async close(ms = 5000): Promise<void> {
    if (this.exited) return;
    this.proc.stdin.end();
    const done = new Promise<void>((r) => this.proc.once('exit', () => r()));
    const timer = new Promise<void>((r) => setTimeout(r, ms).unref());
    await Promise.race([done, timer]);
    if (!this.exited) {
      this.proc.kill('SIGKILL');
      await done;
    }
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

export function killAllWorkers(): void {
  for (const w of all) w.kill();
}

/**
 * Runs a harness's main() when moduleUrl is the script node was started with: its workers are killed
 * however it ends, and a thrown error exits 2 with its stack.
 */
export function runHarnessIfMain(moduleUrl: string, main: () => Promise<number | void>): void {
  if (!process.argv[1] || fileURLToPath(moduleUrl) !== process.argv[1]) return;
  main().then(
    (code) => {
      killAllWorkers();
      if (typeof code === 'number') process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      killAllWorkers();
      process.exit(2);
    },
  );
}
