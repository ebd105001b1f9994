// Format 1's side of the contents engine's metadata (src/core/contents/content-metadata.ts): a file's
// content is its inode's size, piece map, quarantined pieces, mtime and per-file version count, staged
// with the inode in one transaction. Format 1 keeps no file inline.

import type { ContentMetadata, StoredContent } from '../contents/content-metadata.js';
import type { Inode } from './inode.js';
import type { Metadata } from './metadata.js';

export class Format1Content implements ContentMetadata {
  readonly inlineMax = 0;

  constructor(private readonly meta: Metadata) {}

  newPieceVersion(): number {
    return this.meta.newPieceVersion();
  }

  stage(id: string, content: StoredContent): void {
    this.meta.transaction(() => {
      const inode = this.meta.requireInode(id);
      inode.size = content.size;
      inode.pieces = new Map(content.pieces);
      inode.nextVersion = content.nextVersion;
      inode.mtime = content.mtime;
      inode.ctime = Math.max(inode.ctime, content.mtime);
      inode.lost = [...content.lost];
      this.meta.putInode(inode);
    });
  }

  afterCommit(fn: () => void): void {
    this.meta.afterCommit(fn);
  }
}

/** A format-1 file's stored content, for an open file. */
export function storedContentOf(inode: Inode): StoredContent {
  return { size: inode.size, pieces: inode.pieces, lost: inode.lost, mtime: inode.mtime, nextVersion: inode.nextVersion };
}
