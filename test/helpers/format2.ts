// What the format-2 tests share: fresh random keys for a vault, a fixed time, a vault holding one of every
// kind of record, and for tests of a whole Vault2, reading a file and a simulated crash.

import type { ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileType, ROOT_INO } from '../../src/core/format2/inode-record.js';
import { Metadata2, type Metadata2Options } from '../../src/core/format2/metadata2.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import type { Vault2 } from '../../src/core/format2/vault2.js';
import { tempDir } from './temp-vault.js';

/** Options for a test vault's Metadata2: random keys and vault id, 128 KiB pieces, the given chaff ratio. */
export function metadata2Options(chaffRatio: number): Metadata2Options {
  return {
    keys: { record: randomBytes(32), names: randomBytes(32), dirhash: randomBytes(32), chaff: randomBytes(32) },
    vaultId: randomBytes(16),
    pieceSize: 128 * 1024,
    chaffRatio,
  };
}

/** A time for new inodes: fixed, so a test can compare it after a reopen. */
export const T0 = { sec: 1_700_000_000, nsec: 5 };

export const name = (s: string): Buffer => Buffer.from(s);

export interface Sample {
  md: Metadata2;
  dir: string;
  table: RecordTable;
  /** A directory in buckets, a file with a level of map nodes, an INLINE file, a spilled symlink. */
  bucketed: number;
  mapped: number;
  inline: number;
}

/** A vault holding one of each kind of record, committed and reopened. */
export function fsckSample(t: ExecutionContext, options: Metadata2Options): Sample {
  const dir = tempDir(t);
  let md = Metadata2.create(RecordTable.create(dir), options, { mode: 0o755, uid: 0, gid: 0, time: T0 });
  const mkdir = (parent: number, n: string) => {
    const ino = md.createInode({ type: FileType.directory, mode: 0o755, uid: 0, gid: 0, parentIno: parent, time: T0 }).ino;
    md.link(parent, name(n), ino);
    md.setAttributes(parent, (p) => ({ nlink: p.nlink + 1 }));
    return ino;
  };
  const file = (parent: number, n: string) => {
    const ino = md.createInode({ type: FileType.regular, mode: 0o644, uid: 0, gid: 0, parentIno: parent, time: T0 }).ino;
    md.link(parent, name(n), ino);
    return ino;
  };
  const bucketed = mkdir(ROOT_INO, 'many');
  for (let i = 0; i < 400; i++) file(bucketed, `entry-${i}`);
  const mapped = file(ROOT_INO, 'mapped');
  const map = md.pieceMap(mapped);
  for (let i = 0; i < 600; i++) map.setSlot(i, md.newPieceVersion());
  md.setAttributes(mapped, () => ({ size: 600 * options.pieceSize }));
  const inline = file(ROOT_INO, 'inline');
  md.setInline(inline, Buffer.from('inline bytes'));
  md.setXattrs(inline, Array.from({ length: 3 }, (_, i) => ({ name: name(`user.big${i}`), value: randomBytes(2500) })));
  const link = md.createInode({ type: FileType.symlink, mode: 0o777, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0, target: Buffer.alloc(4000, 0x61) }).ino;
  md.link(ROOT_INO, name('long-link'), link);
  const fifo = md.createInode({ type: FileType.fifo, mode: 0o600, uid: 0, gid: 0, parentIno: ROOT_INO, time: T0 }).ino;
  md.link(ROOT_INO, name('fifo'), fifo);
  const sub = mkdir(ROOT_INO, 'sub');
  file(sub, 'x');
  md.commitNow();
  md.close();
  const table = RecordTable.open(dir);
  md = Metadata2.open(table, options).reserve();
  return { md, dir, table, bucketed, mapped, inline };
}


/** A whole file of a Vault2, through a handle. */
export async function readAll2(v: Vault2, path: string): Promise<Buffer> {
  const fh = v.paths.open(path);
  try {
    const size = v.fgetattr(fh).size;
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = await v.read(fh, buf.subarray(done), size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf;
  } finally {
    await v.release(fh);
  }
}

/**
 * The process dies: its staged changes and its lock are left behind, SQLite keeps what was committed.
 * Vaults that crash run without the piece worker, whose thread would outlive them.
 */
export function crash2(v: Vault2, store: string): void {
  const internals = v as unknown as { s: { table: { close(): void } }; committer: { stop(): void } };
  internals.committer.stop();
  internals.s.table.close();
  const dead = spawnSync('true').pid as number;
  writeFileSync(join(store, 'svault.lock'), String(dead));
}
