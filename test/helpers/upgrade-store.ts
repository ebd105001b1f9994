// What the upgrade tests share (docs/format-2.md 4.4, 16): a format-1 store made through format 1's Vault
// with one of everything the upgrade maps (small files around the 3,818-byte INLINE limit, a large file, a
// sparse file, a hole-only small file, empty files, symlinks, hard links, xattrs, a directory tree, set
// times and modes), the manifest format 1 gives of it, and checks of a format-2 store against it: bytes,
// modes, times, link counts, xattrs and targets through Vault2 with no mount, which files are INLINE, and
// every blob told apart as a referenced piece, chaff (format 2's derived chaff of a referenced piece, computed
// from the spec in chaff2.ts, or format 1's by its rule) or an orphan.

import type { ExecutionContext } from 'ava';
import { fsck2 } from '../../src/core/format2/fsck2.js';
import { msOfTimespec } from '../../src/core/format2/inode-record.js';
import { Vault2 } from '../../src/core/format2/vault2.js';
import { FsError } from '../../src/core/errors.js';
import { Vault } from '../../src/core/vault/vault.js';
import { chaffAddresses2 } from './chaff2.js';
import { readAll2 } from './format2.js';
import { blobFiles, withVault2 } from './reliability-util.js';
import { patternBytes } from './temp-vault.js';

export const PIECE = 4096;
export const UPGRADE_PASS = 'correct horse battery staple';

/** Regular files with content, by size; the ones of at most 3,818 bytes (and the hole-only one) go INLINE at --finish. */
export const SIZES: Record<string, number> = {
  '/tiny': 1,
  '/docs/one-k': 1024,
  '/docs/edge-3817': 3817,
  '/docs/edge-3818': 3818,
  '/docs/edge-3819': 3819,
  '/docs/full-4064': 4064,
  '/big.bin': 40_000,
  '/docs/deep/er/est/leaf': 500,
};
/** A sparse file: 100 bytes at this offset, holes before. */
export const SPARSE = { path: '/sparse', at: 5 * PIECE + 7, length: 100 };
/** A small file with a size and no piece: a map with no slot after the upgrade, INLINE zeros after --finish. */
export const HOLE_ONLY = { path: '/docs/hole-only', size: 2000 };
export const EMPTY = ['/empty', '/docs/deep/empty-too'];
export const DIRS = ['/docs', '/docs/deep', '/docs/deep/er', '/docs/deep/er/est', '/empty-dir'];
export const SYMLINKS: Record<string, string> = { '/link': 'docs/one-k', '/docs/deep/up': '../../big.bin' };
/** Second names of hard-linked files. */
export const LINKS: Record<string, string> = { '/docs/one-k-again': '/docs/one-k', '/docs/big-again': '/big.bin' };
/** Files that go INLINE at --finish (by their first name). */
export const INLINED = ['/tiny', '/docs/one-k', '/docs/edge-3817', '/docs/edge-3818', '/docs/deep/er/est/leaf', HOLE_ONLY.path];
/** Files that keep their pieces. */
export const MAPPED = ['/docs/edge-3819', '/docs/full-4064', '/big.bin', SPARSE.path];

export function contentOf(path: string): Buffer {
  if (path === SPARSE.path) {
    const out = Buffer.alloc(SPARSE.at + SPARSE.length);
    patternBytes(SPARSE.length, 99).copy(out, SPARSE.at);
    return out;
  }
  if (path === HOLE_ONLY.path) return Buffer.alloc(HOLE_ONLY.size);
  if (EMPTY.includes(path)) return Buffer.alloc(0);
  const size = SIZES[path];
  if (size === undefined) throw new Error(`no content for ${path}`);
  return patternBytes(size, Object.keys(SIZES).indexOf(path) + 1);
}

/** Every path of the tree, directories first. */
export function allPaths(): string[] {
  return [...DIRS, ...Object.keys(SIZES), SPARSE.path, HOLE_ONLY.path, ...EMPTY, ...Object.keys(SYMLINKS), ...Object.keys(LINKS)];
}

/** Regular files by every name, with the content each name reads. */
export function regularFiles(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const path of [...Object.keys(SIZES), SPARSE.path, HOLE_ONLY.path, ...EMPTY]) out.set(path, contentOf(path));
  for (const [second, first] of Object.entries(LINKS)) out.set(second, contentOf(first));
  return out;
}

export interface Manifest {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  xattrs: Record<string, string>;
  target?: string;
}

/**
 * Makes the format-1 store in `store` (pieces of 4 KiB, chaff at 0.5), opened once with `anchorDir` so that
 * this machine has seen it, and returns format 1's manifest of every path.
 */
export async function makeFormat1Store(store: string, anchorDir?: string): Promise<Map<string, Manifest>> {
  const v = await Vault.create(store, UPGRADE_PASS, { pieceSize: PIECE, chaffRatio: 0.5 });
  try {
    for (const dir of DIRS) v.mkdir(dir, dir === '/docs/deep' ? 0o700 : 0o755);
    for (const path of [...Object.keys(SIZES), ...EMPTY]) await v.writeFile(path, contentOf(path));
    const fh = v.create(SPARSE.path, 0o644);
    await v.write(fh, contentOf(SPARSE.path).subarray(SPARSE.at), SPARSE.at);
    await v.release(fh);
    await v.writeFile(HOLE_ONLY.path, Buffer.alloc(0));
    await v.truncate(HOLE_ONLY.path, HOLE_ONLY.size);
    for (const [path, target] of Object.entries(SYMLINKS)) v.symlink(target, path);
    for (const [second, first] of Object.entries(LINKS)) v.link(first, second);
    v.setxattr('/docs/one-k', 'user.note', Buffer.from('kept'), 0);
    v.setxattr('/docs', 'user.dir', Buffer.from('on a directory'), 0);
    v.setxattr('/big.bin', 'user.large', patternBytes(3000, 7), 0);
    v.chmod('/docs/edge-3817', 0o600);
    v.chmod('/empty', 0o640);
    v.utimens('/tiny', 1_600_000_000_123, 1_650_000_000_456);
    v.utimens('/docs/deep/er/est', 1_500_000_000_001, 1_550_000_000_002);
  } finally {
    await v.close();
  }
  const again = await Vault.open(store, UPGRADE_PASS, { anchorDir });
  try {
    const out = new Map<string, Manifest>();
    for (const path of allPaths()) {
      const a = again.getattr(path);
      const xattrs: Record<string, string> = {};
      for (const name of again.listxattr(path)) xattrs[name] = again.getxattr(path, name).toString('hex');
      out.set(path, {
        mode: a.mode, uid: a.uid, gid: a.gid, nlink: a.nlink, size: a.size, atimeMs: a.atime, mtimeMs: a.mtime, ctimeMs: a.ctime, xattrs,
        ...(path in SYMLINKS ? { target: again.readlink(path) } : {}),
      });
    }
    return out;
  } finally {
    await again.close();
  }
}

/** Opens a format-2 store to look (no lock, nothing written) and runs fn. */
export function looking<T>(store: string, fn: (v: Vault2) => T | Promise<T>): Promise<T> {
  return withVault2(store, fn, UPGRADE_PASS);
}

export { readAll2 };

/** What format 2 shows of a path, in the manifest's terms (times in ms: format 1 kept ms). */
export function manifestOf2(v: Vault2, path: string): Manifest {
  const a = v.paths.getattr(path);
  const xattrs: Record<string, string> = {};
  for (const name of v.paths.listxattr(path)) xattrs[name] = v.paths.getxattr(path, name).toString('hex');
  const isLink = path in SYMLINKS;
  return {
    mode: a.mode, uid: a.uid, gid: a.gid, nlink: a.nlink, size: a.size,
    atimeMs: msOfTimespec(a.atime), mtimeMs: msOfTimespec(a.mtime), ctimeMs: msOfTimespec(a.ctime), xattrs,
    ...(isLink ? { target: v.paths.readlink(path) } : {}),
  };
}

/**
 * Checks, mount-free, that the format-2 store holds format 1's tree as the manifest has it: every byte of
 * every name, and each path's mode, owner, link count, size, times and xattrs. `except` leaves out paths a
 * test changed on purpose.
 */
export async function checkTree(t: ExecutionContext, store: string, manifest: Map<string, Manifest>, except: string[] = []): Promise<void> {
  await looking(store, async (v) => {
    for (const [path, data] of regularFiles()) {
      if (except.includes(path)) continue;
      t.true((await readAll2(v, path)).equals(data), `${path}: every byte`);
    }
    for (const [path, m] of manifest) {
      if (except.includes(path)) continue;
      // A directory's size is format 2's own: its entry bytes (6.1), where format 1 showed 0.
      const got = manifestOf2(v, path);
      if (DIRS.includes(path)) got.size = m.size;
      t.deepEqual(got, m, `${path}: attributes, times, link count, xattrs`);
    }
  });
}

/** Whether each of `paths` is INLINE now. */
export async function inlineState(store: string, paths: string[]): Promise<Record<string, boolean>> {
  return looking(store, (v) => {
    const { md } = v.check();
    return Object.fromEntries(paths.map((p) => [p, md.inlineContent(v.paths.idAt(p)) !== null]));
  });
}

/** The addresses (hex) of the blobs the piece map of `path` points to, at this moment. */
export async function pieceBlobsOf(store: string, path: string): Promise<string[]> {
  return looking(store, (v) => {
    const { md, pieces } = v.check();
    const ino = v.paths.idAt(path);
    const inode = md.requireInode(ino);
    return [...(md.pieceMapIfAny(ino)?.versions() ?? [])].map((s) => pieces.pieceAddress(inode, s.index, s.version).toString('hex'));
  });
}

export interface Census {
  referenced: Set<string>;
  /** derivedChaff and format1Chaff together. */
  chaff: Set<string>;
  /** Blobs at a chaff address of a referenced piece (10.2). */
  derivedChaff: Set<string>;
  /** Other blobs that are chaff by format 1's rule, whatever the upgrade's stage. */
  format1Chaff: Set<string>;
  /** Chaff addresses of referenced pieces with no blob. */
  missingChaff: Set<string>;
  orphans: Set<string>;
}

/** Every blob of a format-2 store, told apart: a piece a map points to, its derived chaff, format 1's chaff, or an orphan. */
export async function census(store: string): Promise<Census> {
  return looking(store, async (v) => {
    const { md, table, pieces, chaffKeys, config } = v.check();
    const pointed = new Set<string>();
    const chaffOfPointed = new Set<string>();
    await fsck2(md, table, {
      verifyPiece: async (inode, index, version) => {
        pointed.add(pieces.pieceAddress(inode, index, version).toString('hex'));
        for (const hex of chaffAddresses2(chaffKeys, config.chaffRatio, { fileId: inode.fileId, index, version })) chaffOfPointed.add(hex);
      },
    });
    const out: Census = { referenced: new Set(), chaff: new Set(), derivedChaff: new Set(), format1Chaff: new Set(), missingChaff: new Set(), orphans: new Set() };
    for (const file of blobFiles(store)) {
      const hex = file.slice(3);
      if (pointed.has(hex)) out.referenced.add(hex);
      else if (chaffOfPointed.has(hex)) out.derivedChaff.add(hex);
      else if (await pieces.isChaffAt(Buffer.from(hex, 'hex'))) out.format1Chaff.add(hex);
      else out.orphans.add(hex);
    }
    out.chaff = new Set([...out.derivedChaff, ...out.format1Chaff]);
    for (const hex of chaffOfPointed) if (!out.derivedChaff.has(hex)) out.missingChaff.add(hex);
    return out;
  });
}

/** The blob files of a store, as addresses (hex). */
export function blobAddresses(store: string): Set<string> {
  return new Set([...blobFiles(store)].map((f) => f.slice(3)));
}

/** The errno a read of `path` fails with, or null when it reads. */
export async function readErrno(store: string, path: string): Promise<string | null> {
  return looking(store, async (v) => {
    try {
      await readAll2(v, path);
      return null;
    } catch (err) {
      if (err instanceof FsError) return err.errno;
      throw err;
    }
  });
}
