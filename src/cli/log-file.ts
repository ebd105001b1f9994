// The mount server's log file, capped: past MAX_BYTES it becomes <log>.1 (the older ones move to .2 and
// .3, and what was .3 goes), so a long-running mount that logs on every error cannot fill the disk.

import { appendFileSync, renameSync, rmSync, statSync } from 'node:fs';

export const LOG_MAX_BYTES = 10 * 1024 * 1024;
export const LOG_KEEP = 3;

export class CappedLog {
  private bytes: number;

  constructor(private readonly path: string, private readonly maxBytes = LOG_MAX_BYTES, private readonly keep = LOG_KEEP) {
    try {
      this.bytes = statSync(path).size;
    } catch {
      this.bytes = 0;
    }
  }

  /** Appends one line; never throws (logging must never stop the server). */
  append(line: string): void {
    try {
      if (this.bytes + line.length > this.maxBytes && this.bytes > 0) this.rotate();
      appendFileSync(this.path, line);
      this.bytes += Buffer.byteLength(line);
    } catch {
      /* a full disk or a removed directory: the line is lost, the server goes on */
    }
  }

  private rotate(): void {
    rmSync(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        /* not there yet */
      }
    }
    renameSync(this.path, `${this.path}.1`);
    this.bytes = 0;
  }
}
