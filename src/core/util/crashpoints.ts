// Fault injection for crash tests: SVAULT_CRASH_AT="point:n" makes the process kill itself with SIGKILL
// the n-th time it reaches that point (n defaults to 1). Unset, each call is one comparison.
// Points: piece.put (before a blob write), piece.partial (half a blob written), meta.commit (inside the
// metadata transaction, before it commits), meta.committed (after the commit, before superseded pieces
// are deleted); svault upgrade --finish's upgrade.finish.stage2 (after its first commit), upgrade.finish.commit
// (after each commit of its walk, before the blobs of the files it made INLINE are deleted) and
// upgrade.finish.swept (after its blob sweep, before its last commit).

import { closeSync, openSync, writeSync } from 'node:fs';

const spec = process.env.SVAULT_CRASH_AT ?? '';
const [target, countText] = spec.split(':');
let remaining = spec ? Number.parseInt(countText ?? '1', 10) || 1 : 0;

/** True (once) when this is the n-th time the armed point is reached. */
export function shouldCrash(point: string): boolean {
  if (remaining === 0 || point !== target) return false;
  return --remaining === 0;
}

export function crashpoint(point: string): void {
  if (shouldCrash(point)) process.kill(process.pid, 'SIGKILL');
}

/** Writes half of a blob, then dies: the torn write a power cut or kill leaves behind. */
export function writeHalfAndCrash(path: string, blob: Buffer): void {
  const fd = openSync(path, 'w', 0o600);
  writeSync(fd, blob, 0, Math.floor(blob.length / 2));
  closeSync(fd);
  process.kill(process.pid, 'SIGKILL');
}
