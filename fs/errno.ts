// Errors to FUSE result codes, in one place: a known FsError becomes its negative errno; anything else is
// a bug or a store failure, which becomes EIO and a log line, never a crash.

import { constants } from 'node:os';
import { FsError } from '../src/core/errors.js';

const errnos = constants.errno as Record<string, number>;

export function toFuseCode(err: unknown): { code: number; unexpected: boolean } {
  if (err instanceof FsError) {
    const n = errnos[err.errno];
    return { code: -(n ?? errnos.EIO ?? 5), unexpected: err.errno === 'EIO' };
  }
  const sysCode = (err as NodeJS.ErrnoException | undefined)?.code;
  if (sysCode === 'ENOSPC' || sysCode === 'EROFS' || sysCode === 'EDQUOT') return { code: -(errnos[sysCode] ?? 5), unexpected: false };
  return { code: -(errnos.EIO ?? 5), unexpected: true };
}
