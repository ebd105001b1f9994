// The rollback anchor: the highest metadata generation this machine has seen for a vault, kept outside
// the store (in the user's state directory) and MACed with a key from the master key. A store whose
// generation is lower than its anchor was replaced by an older copy of itself, which no per-record check
// can notice: every old record is authentic. The anchor is written after commits, never before.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { constantTimeEqual, hkdf, prf } from '../crypto/crypto.js';

export class RollbackError extends Error {
  constructor(readonly store: string, readonly storeGeneration: number, readonly anchorGeneration: number) {
    super(
      `${store}: the store is older than this machine last saw it (metadata generation ${storeGeneration} < ${anchorGeneration}): ` +
        'it may have been replaced by an older copy (rollback). If you restored a backup on purpose, open it with --accept-rollback',
    );
    this.name = 'RollbackError';
  }
}

export class Anchor {
  private readonly key: Buffer;
  private readonly path: string;
  private saved = -1;

  constructor(dir: string, private readonly vaultId: Buffer, master: Buffer) {
    this.key = hkdf(master, vaultId, 'svault/v1/anchor');
    this.path = join(dir, `${vaultId.toString('hex')}.json`);
  }

  private mac(generation: number): Buffer {
    return prf(this.key, this.vaultId, String(generation));
  }

  /** The generation last recorded here, or null if none (or the file was tampered with: then it is ignored). */
  read(): number | null {
    try {
      const j = JSON.parse(readFileSync(this.path, 'utf8')) as { generation: number; mac: string };
      if (!Number.isSafeInteger(j.generation)) return null;
      return constantTimeEqual(Buffer.from(j.mac, 'hex'), this.mac(j.generation)) ? j.generation : null;
    } catch {
      return null;
    }
  }

  /** Moves the anchor back (the user accepted an older store). */
  reset(generation: number): void {
    this.saved = -1;
    this.write(generation);
  }

  /** Records a generation (only ever moving forward), atomically. */
  save(generation: number): void {
    if (generation <= this.saved) return;
    const known = this.read();
    if (known !== null && known >= generation) {
      this.saved = known;
      return;
    }
    this.write(generation);
  }

  private write(generation: number): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ generation, mac: this.mac(generation).toString('hex') }), { mode: 0o600 });
    renameSync(tmp, this.path);
    this.saved = generation;
  }
}
