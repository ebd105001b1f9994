// Sparse files by piece: which pieces of a file hold data and which are holes, for SEEK_DATA and
// SEEK_HOLE, for reads that fall in holes, and for st_blocks. A piece is data when the file's piece map
// has it (stored, dirty in memory, being sealed, or quarantined by fsck: reading that one fails, and a
// copying tool must see the failure rather than skip it). A piece never written, or punched, is a hole.
// Granularity is the piece: a piece written in part is data from its start to its end, as ext4 counts
// a block. The end of the file is a hole.

/** The pieces of a file that hold data: what the seek and hole logic needs of an open file's maps. */
export interface PieceSet {
  has(index: number): boolean;
  /** Every index in the set (in any order, possibly repeated); may include indices past the end of the file. */
  indices(): Iterable<number>;
  /** An upper bound on how many indices indices() yields. */
  readonly count: number;
}

export type SeekWhence = 'data' | 'hole';

/**
 * lseek(2) with SEEK_DATA or SEEK_HOLE on a file of `size` bytes: the offset found, or null where
 * lseek answers ENXIO (an offset below 0 or at or past the end; SEEK_DATA with no data after it).
 */
export function seekPieces(set: PieceSet, size: number, pieceSize: number, offset: number, whence: SeekWhence): number | null {
  if (!(offset >= 0) || offset >= size) return null;
  const i = Math.floor(offset / pieceSize);
  if (whence === 'data') {
    if (set.has(i)) return offset;
    const next = nextPresent(set, i + 1, Math.ceil(size / pieceSize));
    return next === undefined ? null : next * pieceSize;
  }
  if (!set.has(i)) return offset;
  let j = i + 1;
  while (set.has(j)) j++; // bounded by the number of pieces present
  return Math.min(j * pieceSize, size);
}

/**
 * The first index in [from, end) that is in the set. Whichever is shorter is walked: the indices in the
 * range one by one, or the whole set (a 1 TiB hole is 8 million pieces of 128 KiB, and may hold few).
 */
export function nextPresent(set: PieceSet, from: number, end: number): number | undefined {
  if (from >= end) return undefined;
  if (end - from <= set.count) {
    for (let j = from; j < end; j++) if (set.has(j)) return j;
    return undefined;
  }
  let best: number | undefined;
  for (const j of set.indices()) if (j >= from && j < end && (best === undefined || j < best)) best = j;
  return best;
}

/** Whether the bytes [from, to) of the file lie wholly in holes: a read of them is zeros, with no piece read. */
export function inHole(set: PieceSet, pieceSize: number, from: number, to: number): boolean {
  if (to <= from) return true;
  return nextPresent(set, Math.floor(from / pieceSize), Math.ceil(to / pieceSize)) === undefined;
}

/** How many pieces of [first, end) are holes: what a preallocation of that range would have to store. */
export function holesIn(set: PieceSet, first: number, end: number): number {
  if (end <= first) return 0;
  let present = 0;
  if (end - first <= set.count) {
    for (let j = first; j < end; j++) if (set.has(j)) present++;
  } else {
    const seen = new Set<number>();
    for (const j of set.indices()) if (j >= first && j < end) seen.add(j);
    present = seen.size;
  }
  return end - first - present;
}

/** fallocate(2)'s mode bits that svault implements (linux/falloc.h); any other bit is EOPNOTSUPP. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

export interface FallocateOp {
  op: 'allocate' | 'punch' | 'zero';
  keepSize: boolean;
}

/** What a fallocate(2) mode asks for, or null for a mode svault does not do (COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE...). */
export function fallocateOp(mode: number): FallocateOp | null {
  const keepSize = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
  switch (mode & ~FALLOC_FL_KEEP_SIZE) {
    case 0:
      return { op: 'allocate', keepSize };
    case FALLOC_FL_PUNCH_HOLE:
      return keepSize ? { op: 'punch', keepSize } : null; // Linux: a punch never changes the size
    case FALLOC_FL_ZERO_RANGE:
      return { op: 'zero', keepSize };
    default:
      return null;
  }
}
