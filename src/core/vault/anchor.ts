// The rollback anchor: the highest metadata generation this machine has seen for a vault, kept outside
// the store (in the user's state directory) and MACed with a key from the master key. A store whose
// generation is lower than its anchor was replaced by an older copy of itself, which no per-record check
// can notice: every old record is authentic. The anchor records only generations SQLite holds durably
// (the group commit is synchronous=FULL), and is itself fsynced, so a power cut gives no false alarm.
// It fails closed: an anchor that cannot be read or authenticated refuses the store, as a rollback does,
// because an attacker who can write the state directory could otherwise erase it to allow a rollback.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
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

/** The anchor file exists but cannot be read or fails authentication. */
export class AnchorError extends Error {
  constructor(readonly path: string, why: string) {
    super(
      `the rollback anchor ${path} ${why}, so this store cannot be checked for a rollback. If you trust the store as it is, ` +
        'open it with --accept-rollback (which records its generation anew)',
    );
    this.name = 'AnchorError';
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

  /** The generation last recorded here, or null if there is no anchor yet. AnchorError when it is unreadable or forged. */
  read(): number | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new AnchorError(this.path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let j: { generation?: unknown; mac?: unknown };
    try {
      j = JSON.parse(text) as typeof j;
    } catch {
      throw new AnchorError(this.path, 'is not valid JSON');
    }
    if (!Number.isSafeInteger(j?.generation) || typeof j.mac !== 'string') throw new AnchorError(this.path, 'is malformed');
    const generation = j.generation as number;
    if (!constantTimeEqual(Buffer.from(j.mac, 'hex'), this.mac(generation))) throw new AnchorError(this.path, 'fails authentication');
    return generation;
  }

  /** Moves the anchor back (the user accepted an older store). */
  reset(generation: number): void {
    this.saved = -1;
    this.write(generation);
  }

  /** Records a generation (only ever moving forward), atomically and durably. */
  save(generation: number): void {
    if (generation <= this.saved) return;
    let known: number | null;
    try {
      known = this.read();
    } catch {
      known = null; // checked when the vault was opened; damaged since: write a good one
    }
    if (known !== null && known >= generation) {
      this.saved = known;
      return;
    }
    this.write(generation);
  }

  private write(generation: number): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify({ generation, mac: this.mac(generation).toString('hex') }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dir = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.saved = generation;
  }
}
