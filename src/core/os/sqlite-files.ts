// SQLite opens its database, -wal and -shm files by path, following links, and better-sqlite3 offers no
// way to hand it a descriptor. So around the open: each of the three must be absent or a regular file
// beforehand (lstat through the store's descriptor), and afterwards every descriptor SQLite holds on
// those names must be the very file the store directory lists under them. What remains is a race: a file
// swapped for a link between the check and SQLite's own open is opened, and found out only by the check
// after it, once SQLite may have read or written it. The README says so (threat model).

import { fstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BadStoreError } from '../errors.js';
import type { StoreDir } from './store-dir.js';

const SUFFIXES = ['', '-wal', '-shm'];

/** Refuses a link, directory, FIFO or device at `db`, `db`-wal or `db`-shm in the store directory. */
export function checkSqliteFilesBeforeOpen(dir: StoreDir, db: string): void {
  for (const suffix of SUFFIXES) {
    const name = db + suffix;
    const st = dir.stat(name);
    if (st && !st.isFile()) throw new BadStoreError(dir.path, `${name} is not a regular file (${st.isSymbolicLink() ? 'a symbolic link' : 'a directory or special file'}); svault never follows links in a store`);
  }
}

/**
 * Checks every descriptor of this process open on `db`, `db`-wal or `db`-shm in the store directory:
 * each must be a regular file and the one the directory holds under that name now.
 */
export function checkSqliteFilesAfterOpen(dir: StoreDir, db: string): void {
  const base = readlinkSync(dir.viaDescriptor());
  const wanted = new Map(SUFFIXES.map((s) => [join(base, db + s), db + s]));
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (readdir's own descriptor)
    }
    const name = wanted.get(target);
    if (name === undefined) continue;
    const held = fstatSync(Number(fd));
    const listed = dir.stat(name);
    if (!held.isFile() || !listed || !listed.isFile() || held.dev !== listed.dev || held.ino !== listed.ino) {
      throw new BadStoreError(dir.path, `${name} changed while SQLite opened it (a link or another file was put in its place)`);
    }
  }
}
