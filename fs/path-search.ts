// Finding a program on PATH, for the fusermount that mounts and unmounts FUSE file systems.

import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The first executable `cmd` in the directories of `pathVar`; undefined when there is none. */
export function findOnPath(cmd: string, pathVar = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, cmd);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}
