// svault's own -o options, about when changes become durable. They are taken out before the rest go to
// the transport: libfuse refuses commit=, and the kernel's `sync` would mean a flush on every write.
//   commit=SECONDS  the longest a change waits for its durable commit (default 1, as ext4's commit=)
//   sync            every close and every metadata change is durable before it returns

import { DEFAULT_COMMIT_MS } from '../src/core/vault/committer.js';
import { MountOptionError } from './kernel/mount-options.js';

export interface CommitOptions {
  commitWindowMs: number;
  syncCommits: boolean;
}

/** The longest commit window accepted: an hour. */
const MAX_COMMIT_SECONDS = 3600;

/** Splits the user's -o options (split at commas) into svault's commit options and the rest. */
export function takeCommitOptions(options: readonly string[]): { commit: CommitOptions; rest: string[] } {
  const commit: CommitOptions = { commitWindowMs: DEFAULT_COMMIT_MS, syncCommits: false };
  const rest: string[] = [];
  for (const option of options) {
    if (option === 'sync') commit.syncCommits = true;
    else if (option === 'async') commit.syncCommits = false;
    else if (option.startsWith('commit=')) {
      const text = option.slice('commit='.length);
      const seconds = Number(text);
      if (text.trim() === '' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_COMMIT_SECONDS) {
        throw new MountOptionError(`mount option commit needs a number of seconds above 0 and at most ${MAX_COMMIT_SECONDS} (${option})`);
      }
      commit.commitWindowMs = Math.round(seconds * 1000);
    } else rest.push(option);
  }
  return { commit, rest };
}
