// The kernel's readahead window for a mount. FUSE reads a file ahead in its connection's readahead
// window, 128 KiB by default (the INIT reply can only lower it), so a sequential reader's requests carry
// 128 KiB however large the reads it makes and however large the requests may be (1 MiB). Raised to
// the request size, a sequential read takes an eighth of the requests, which matters most where a
// request costs little else (holes, cached pieces). Only root may change it; otherwise the kernel's
// default stays.

import { readFileSync, writeFileSync } from 'node:fs';
import { kernelPath, unescapeMountField } from '../fuse-binding.js';

/** The backing device of the FUSE mount at `mountpoint` ("major:minor"), from /proc/self/mountinfo (no request to the mount). */
export function mountDevice(mountpoint: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  const target = kernelPath(mountpoint);
  let dev: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const fstype = fields[fields.indexOf('-') + 1] ?? '';
    // The last one wins: it is on top when mounts are stacked.
    if (fields[4] !== undefined && unescapeMountField(fields[4]) === target && fstype.startsWith('fuse')) dev = fields[2];
  }
  return dev;
}

/**
 * Raises the mount's readahead window to `kib` KiB (never lowers it). Call once INIT is answered: the
 * kernel sets the window from the INIT reply and would bring an earlier value back down. Returns what
 * happened, for the log.
 */
export function raiseReadahead(mountpoint: string, kib: number): string {
  const dev = mountDevice(mountpoint);
  if (!dev) return 'readahead: the mount is not in /proc/self/mountinfo; left as the kernel set it';
  const file = `/sys/class/bdi/${dev}/read_ahead_kb`;
  try {
    const now = Number(readFileSync(file, 'utf8').trim());
    if (now >= kib) return `readahead: ${now} KiB`;
    writeFileSync(file, `${kib}\n`);
    return `readahead: ${kib} KiB (was ${now} KiB)`;
  } catch (err) {
    return `readahead: left as the kernel set it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}
