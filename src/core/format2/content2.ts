// Format 2's side of the contents engine's metadata (src/core/contents/content-metadata.ts): a file's
// content is its inode's INLINE bytes (section 7), or its size and piece map (6.3), whose slots hold piece
// versions from the vault's one counter (section 11) and lost slots for quarantined pieces. The engine's
// file ids are inode numbers, in decimal.

import type { ContentMetadata, StoredContent } from '../contents/content-metadata.js';
import { INLINE_MAX, msOfTimespec, timespecOfMs } from './inode-record.js';
import type { Metadata2 } from './metadata2.js';
import { HOLE, lostSlot } from './slot.js';

/** The engine's id of inode `ino`. */
export function contentId(ino: number): string {
  return String(ino);
}

function inoOf(id: string): number {
  const ino = Number(id);
  if (!Number.isSafeInteger(ino) || ino < 1) throw new RangeError(`not an inode number: ${id}`);
  return ino;
}

export class Format2Content implements ContentMetadata {
  readonly inlineMax = INLINE_MAX;

  constructor(
    private readonly md: Metadata2,
    /**
     * Throws ENOSPC when the store's disk has no room for the metadata the next commit writes. Asked before
     * a file grows: INLINE bytes live only in that commit, and a 4,000-byte record per changed inode, bucket
     * or map node fills a disk that blobs have left nearly full. So the file's close fails with ENOSPC, as
     * for a blob that does not fit, and what it stored is given back; else a commit that can never be
     * written would hold everything after it, deletions too, until it is lost at unmount.
     */
    private readonly room: () => void = () => {},
  ) {}

  newPieceVersion(): number {
    return this.md.newPieceVersion();
  }

  stage(id: string, content: StoredContent): void {
    const ino = inoOf(id);
    const mtime = timespecOfMs(content.mtime);
    if (content.size > this.md.requireInode(ino).size) this.room(); // before anything changes
    if (content.inline) {
      if (content.pieces.size > 0 || content.lost.length > 0) throw new RangeError(`ino ${ino}: an INLINE file has no pieces`);
      this.md.setInline(ino, content.inline);
    } else {
      const map = this.md.pieceMap(ino);
      // Slots the file no longer has, then the ones it has: only changed slots touch the tree. (Comparing
      // with the last commit's map instead of the tree saved about 20 % of this on 50,000 pieces: not kept.)
      const stale: number[] = [];
      for (const { index } of map.versions()) if (!content.pieces.has(index)) stale.push(index);
      for (const index of stale) map.setSlot(index, HOLE);
      for (const [index, version] of content.pieces) if (map.slot(index) !== version) map.setSlot(index, version);
      // Quarantined pieces (rare, so the tree is walked for them only when it has some).
      const lost = new Set(content.lost);
      if (map.tree.lost > 0) for (const index of [...map.tree.lostIndices()]) if (!lost.has(index) && !content.pieces.has(index)) map.setSlot(index, HOLE);
      for (const index of lost) if (map.slot(index) !== lostSlot(0)) map.setSlot(index, lostSlot(0));
    }
    this.md.setAttributes(ino, (inode) => {
      // The engine keeps times in milliseconds. An mtime that is the inode's own in milliseconds (set by
      // utimens while open, or not moved by a write) keeps the inode's nanoseconds.
      const exact = msOfTimespec(inode.mtime) === content.mtime ? inode.mtime : mtime;
      return {
        ...(content.inline ? {} : { size: content.size }),
        mtime: exact,
        ctime: msOfTimespec(inode.ctime) >= content.mtime ? inode.ctime : exact,
      };
    });
  }

  afterCommit(fn: () => void): void {
    this.md.whenDurable(fn);
  }

  /** Between an upgrade and its --finish, format 1's pieces (below legacyBelow) stay for a rollback (4.4). */
  mayDelete(version: number): boolean {
    const { upgradeStage, legacyBelow } = this.md.state;
    return upgradeStage !== 1 || version >= legacyBelow;
  }
}

/** A format-2 file's stored content, for an open file: its INLINE bytes, or its piece map and quarantined pieces. */
export function storedContent2(md: Metadata2, ino: number): StoredContent {
  const inode = md.requireInode(ino);
  const mtime = msOfTimespec(inode.mtime);
  const inline = md.inlineContent(ino);
  if (inline !== null) return { size: inode.size, pieces: new Map(), lost: [], mtime, nextVersion: 0, inline };
  const map = md.pieceMapIfAny(ino);
  const pieces = new Map<number, number>();
  const lost: number[] = [];
  if (map) {
    for (const { index, version } of map.versions()) pieces.set(index, version);
    for (const index of map.tree.lostIndices()) lost.push(index);
  }
  return { size: inode.size, pieces, lost, mtime, nextVersion: 0 };
}
