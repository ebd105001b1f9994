// What the format-2 metadata tests share: fresh random keys for a vault, and a fixed time.

import { randomBytes } from 'node:crypto';
import type { Metadata2Options } from '../../src/core/format2/metadata2.js';

/** Options for a test vault's Metadata2: random keys and vault id, 128 KiB pieces, the given chaff ratio. */
export function metadata2Options(chaffRatio: number): Metadata2Options {
  return {
    keys: { record: randomBytes(32), names: randomBytes(32), dirhash: randomBytes(32), chaff: randomBytes(32) },
    vaultId: randomBytes(16),
    pieceSize: 128 * 1024,
    chaffRatio,
  };
}

/** A time for new inodes: fixed, so a test can compare it after a reopen. */
export const T0 = { sec: 1_700_000_000, nsec: 5 };

export const name = (s: string): Buffer => Buffer.from(s);
