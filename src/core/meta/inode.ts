// The inode: a file's, directory's or symlink's attributes, and for files the piece map that, together
// with the size, is authenticated as one record (so truncation or rollback of a piece is detected).

import { randomBytesPooled } from '../crypto/crypto.js';
import { IntegrityError } from '../errors.js';

export type Kind = 'file' | 'dir' | 'symlink';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

export const ROOT_ID = '0000000000000000';

export interface Inode {
  id: string; // 16 hex digits, random (the root's is all zeros)
  /** The inode number stat shows: small, unique in the vault and stable across mounts (hard links share it). */
  ino: number;
  kind: Kind;
  /** 16 random bytes bound into every piece's associated data and address. New on every file. */
  fileId: Buffer;
  mode: number; // st_mode with the type bits
  uid: number;
  gid: number;
  atime: number; // milliseconds since the epoch
  mtime: number;
  ctime: number;
  size: number;
  nlink: number;
  target?: string; // symlinks
  xattrs: Map<string, Buffer>;
  /**
   * piece index -> piece version; an absent index is a hole (reads as zeroes, authenticated by absence).
   * Never changed in place: copies of an inode share this map (it can be large), so replace it instead.
   */
  pieces: ReadonlyMap<number, number>;
  /** The next piece version to hand out: versions are never reused, so old blobs can never replay. */
  nextVersion: number;
  /** Directories: how many listing pages and entries they have. */
  dirPages: number;
  entries: number;
  /** Pieces fsck found damaged and quarantined: reading them fails instead of returning zeroes. */
  lost: number[];
}

export function newInodeId(): string {
  return randomBytesPooled(8).toString('hex');
}

export function newInode(kind: Kind, mode: number, uid: number, gid: number, now = Date.now()): Inode {
  const typeBits = kind === 'dir' ? S_IFDIR : kind === 'symlink' ? S_IFLNK : S_IFREG;
  return {
    id: newInodeId(),
    ino: 0, // assigned by Metadata.allocIno when the inode is first stored
    kind,
    fileId: randomBytesPooled(16),
    mode: typeBits | (mode & 0o7777),
    uid,
    gid,
    atime: now,
    mtime: now,
    ctime: now,
    size: 0,
    nlink: kind === 'dir' ? 2 : 1,
    xattrs: new Map(),
    pieces: new Map(),
    nextVersion: 1,
    dirPages: 0,
    entries: 0,
    lost: [],
  };
}

interface InodeJson {
  id: string;
  ino: number;
  kind: Kind;
  fileId: string;
  mode: number;
  uid: number;
  gid: number;
  atime: number;
  mtime: number;
  ctime: number;
  size: number;
  nlink: number;
  target?: string;
  xattrs: [string, string][];
  pieces: string; // base64 of float64 pairs (index, version), sorted by index
  nextVersion: number;
  dirPages: number;
  entries: number;
  lost: number[];
}

export function encodeInode(inode: Inode): Buffer {
  const sorted = [...inode.pieces.entries()].sort((a, b) => a[0] - b[0]);
  const pairs = new Float64Array(sorted.length * 2);
  sorted.forEach(([index, version], i) => {
    pairs[2 * i] = index;
    pairs[2 * i + 1] = version;
  });
  const json: InodeJson = {
    id: inode.id,
    ino: inode.ino,
    kind: inode.kind,
    fileId: inode.fileId.toString('base64'),
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    atime: inode.atime,
    mtime: inode.mtime,
    ctime: inode.ctime,
    size: inode.size,
    nlink: inode.nlink,
    ...(inode.target !== undefined ? { target: inode.target } : {}),
    xattrs: [...inode.xattrs.entries()].map(([k, v]) => [k, v.toString('base64')]),
    pieces: Buffer.from(pairs.buffer).toString('base64'),
    nextVersion: inode.nextVersion,
    dirPages: inode.dirPages,
    entries: inode.entries,
    lost: inode.lost,
  };
  return Buffer.from(JSON.stringify(json), 'utf8');
}

/** Decodes an authenticated inode record; `expectedId` guards against a record stored under another name. */
export function decodeInode(bytes: Buffer, expectedId: string): Inode {
  let j: InodeJson;
  try {
    j = JSON.parse(bytes.toString('utf8')) as InodeJson;
  } catch {
    throw new IntegrityError(`inode ${expectedId}: record is not valid`);
  }
  if (j?.id !== expectedId) throw new IntegrityError(`inode ${expectedId}: record belongs to another inode`);
  const counts = [j.ino, j.mode, j.uid, j.gid, j.size, j.nlink, j.nextVersion, j.dirPages, j.entries];
  const times = [j.atime, j.mtime, j.ctime]; // may be before 1970
  const isCount = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (
    !counts.every(isCount) ||
    !times.every((n) => typeof n === 'number' && Number.isFinite(n)) ||
    !['file', 'dir', 'symlink'].includes(j.kind) ||
    typeof j.fileId !== 'string' ||
    Buffer.from(j.fileId, 'base64').length !== 16 ||
    typeof j.pieces !== 'string' ||
    !Array.isArray(j.xattrs) ||
    !j.xattrs.every((x) => Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'string') ||
    (j.target !== undefined && typeof j.target !== 'string') ||
    (j.lost !== undefined && !(Array.isArray(j.lost) && j.lost.every(isCount)))
  ) {
    throw new IntegrityError(`inode ${expectedId}: record is malformed`);
  }
  const raw = Buffer.from(j.pieces, 'base64');
  const pairs = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const pieces = new Map<number, number>();
  for (let i = 0; i + 1 < pairs.length; i += 2) pieces.set(pairs[i] as number, pairs[i + 1] as number);
  return {
    id: j.id,
    ino: j.ino,
    kind: j.kind,
    fileId: Buffer.from(j.fileId, 'base64'),
    mode: j.mode,
    uid: j.uid,
    gid: j.gid,
    atime: j.atime,
    mtime: j.mtime,
    ctime: j.ctime,
    size: j.size,
    nlink: j.nlink,
    ...(j.target !== undefined ? { target: j.target } : {}),
    xattrs: new Map(j.xattrs.map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    pieces,
    nextVersion: j.nextVersion,
    dirPages: j.dirPages,
    entries: j.entries,
    lost: j.lost ?? [],
  };
}

/** A copy the caller may change; the piece map is shared, as it is only ever replaced. */
export function cloneInode(i: Inode): Inode {
  return { ...i, xattrs: new Map(i.xattrs), lost: [...i.lost] };
}
