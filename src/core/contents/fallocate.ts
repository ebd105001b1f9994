// fallocate(2) on an open file, the same for every store format until format 2's PREALLOCATED slots
// (docs/format-2.md, section 9): PUNCH_HOLE (with KEEP_SIZE) and ZERO_RANGE zero the range and drop its
// whole pieces; mode 0 and KEEP_SIZE check that the store has room for the range's holes (ENOSPC up
// front), and mode 0 extends the size. The room is checked, not held. Committed like ftruncate.

import { statfsSync } from 'node:fs';
import { FsError } from '../errors.js';
import { PIECE_OVERHEAD } from '../pieces/piece-codec.js';
import type { Contents, OpenFile } from './contents.js';
import { fallocateOp } from './sparse.js';

function fail(errno: FsError['errno'], message: string): never {
  throw new FsError(errno, message);
}

/** Where a vault's blobs go, for the room check. */
export interface RoomFor {
  storeDir: string;
  pieceSize: number;
  chaffRatio: number;
}

export async function fallocateOpenFile(contents: Contents, of: OpenFile, mode: number, offset: number, length: number, room: RoomFor): Promise<void> {
  const op = fallocateOp(mode) ?? fail('EOPNOTSUPP', `fallocate mode 0x${mode.toString(16)} is not supported`);
  if (!(offset >= 0) || !(length > 0)) fail('EINVAL', 'fallocate: negative offset or empty range');
  if (offset + length > Number.MAX_SAFE_INTEGER) fail('EFBIG', 'fallocate: the range ends past the largest file size');
  if (op.op === 'allocate') await contents.allocate(of, offset, length, op.keepSize, (holes) => checkRoomForPieces(room, holes));
  else await contents.zeroRange(of, offset, length, op.keepSize);
  if (of.needsCommit) await contents.commit(of);
}

/** ENOSPC unless the store's filesystem has room now for `pieces` full pieces, their chaff and its block rounding. */
function checkRoomForPieces(room: RoomFor, pieces: number): void {
  if (pieces === 0) return;
  const s = statfsSync(room.storeDir);
  const blob = Math.ceil((room.pieceSize + PIECE_OVERHEAD) / s.bsize) * s.bsize;
  const need = Math.ceil(pieces * (1 + room.chaffRatio)) * blob;
  if (need > s.bavail * s.bsize) {
    fail('ENOSPC', `fallocate: the store has room for ${Math.floor((s.bavail * s.bsize) / blob)} more pieces, the range needs ${pieces}`);
  }
}
