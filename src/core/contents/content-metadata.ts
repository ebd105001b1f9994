// What the contents engine needs of the metadata, whichever format holds it: a file's stored content to
// open it from, piece versions, and a way to stage a file's new content in one transaction, ordered with
// the vault's other changes, with work to run once that is durable. Format 1 (src/core/meta/) and format
// 2 (src/core/format2/) each give one; the engine does not know which.

/** A file's content as its committed metadata has it: what an open file starts from, and what a commit stages. */
export interface StoredContent {
  readonly size: number;
  /** Piece index → version; an absent index is a hole. */
  readonly pieces: ReadonlyMap<number, number>;
  /** Pieces fsck quarantined: reading them fails until they are written again. */
  readonly lost: readonly number[];
  /** Milliseconds since 1970. */
  readonly mtime: number;
  /** Format 1's per-file count, kept past every version the file used (format 2 has none: 0). */
  readonly nextVersion: number;
  /** Format 2's INLINE: the bytes of a small file, kept in its inode, which then has no pieces. */
  readonly inline?: Buffer;
}

export interface ContentMetadata {
  /** A piece version never used before in this vault. */
  newPieceVersion(): number;
  /**
   * Stages file `id`'s new content as one transaction (its ctime moves up to its mtime). With `inline`,
   * the file is kept INLINE and `pieces` is empty; only when inlineMax allows it.
   */
  stage(id: string, content: StoredContent): void;
  /** Runs fn once everything staged so far is durable: deleting the blobs it superseded. */
  afterCommit(fn: () => void): void;
  /** Files of at most this many bytes, with no quarantined piece, are kept in their inode (format 2); 0: never. */
  readonly inlineMax: number;
  /**
   * Whether a superseded or removed piece version's blob may be deleted. False keeps it (format 2 between
   * an upgrade and its --finish: format 1's metadata, kept for a rollback, still points to it).
   */
  mayDelete?(version: number): boolean;
}
