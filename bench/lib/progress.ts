// Progress on stderr: a bar redrawn in place on a terminal, one line per step otherwise (logs, tests).
import { formatDuration } from './util.js';

export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  private readonly tty: boolean;
  private lastLine = '';

  constructor(
    private total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** One timed phase starts. */
  step(workload: string, target: string, phase: string, rep: number): void {
    this.done++;
    const frac = this.total ? Math.min(1, (this.done - 1) / this.total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const elapsed = formatDuration((performance.now() - this.t0) / 1000);
    const line = `[${bar}] ${String(Math.round(frac * 100)).padStart(3)}% ${this.done}/${this.total} ${workload} | ${target} | ${phase} | rep ${rep + 1} | ${elapsed}`;
    this.write(line);
  }

  /** A message that stays on screen. */
  note(message: string): void {
    if (this.tty && this.lastLine) this.stream.write('\r\x1b[K');
    this.stream.write(`[${formatDuration((performance.now() - this.t0) / 1000)}] ${message}\n`);
    if (this.tty && this.lastLine) this.stream.write(this.lastLine);
  }

  private write(line: string): void {
    if (this.tty) {
      const cols = this.stream.columns || 120;
      this.lastLine = line.length > cols - 1 ? line.slice(0, cols - 1) : line;
      this.stream.write(`\r\x1b[K${this.lastLine}`);
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  finish(message: string): void {
    if (this.tty && this.lastLine) this.stream.write('\r\x1b[K');
    this.lastLine = '';
    this.stream.write(`${message}\n`);
  }
}
