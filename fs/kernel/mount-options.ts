// The -o options svault's own transport understands, checked before anything is mounted: an unknown one
// is refused with a message that names it (libfuse 2 only said that the mount failed).

export interface KernelMountOptions {
  readOnly: boolean;
  allowOther: boolean;
  defaultPermissions: boolean;
  suid: boolean;
  dev: boolean;
  noexec: boolean;
  noatime: boolean;
  writebackCache: boolean;
  /** Seconds the kernel may keep names and attributes. */
  entryTimeout: number;
  attrTimeout: number;
}

/** Options that change nothing here: the page cache is always kept (one node per inode), and so on. */
const ACCEPTED = new Set(['rw', 'nonempty', 'kernel_cache', 'auto_cache', 'big_writes', 'use_ino', 'async_read', 'atomic_o_trunc', 'nosuid', 'nodev', 'exec', 'atime', 'relatime']);

/**
 * How long the kernel may keep names, negative lookups and attributes, in seconds. A mount is its store's
 * only writer and every change reaches svault through the kernel, which updates or drops what it caches
 * as it forwards them (and each node is one inode, so hard links share what is cached): nothing changes
 * behind the kernel's back, and a minute saves the lookups and getattrs of ls -lR, tar and find.
 */
export const DEFAULT_TIMEOUT = 60;

export class MountOptionError extends Error {}

/** Parses the user's -o options (already split at commas). Throws MountOptionError naming a bad one. */
export function parseKernelMountOptions(options: readonly string[]): KernelMountOptions {
  const o: KernelMountOptions = {
    readOnly: false, allowOther: false, defaultPermissions: false, suid: false, dev: false, noexec: false,
    noatime: false, writebackCache: false, entryTimeout: DEFAULT_TIMEOUT, attrTimeout: DEFAULT_TIMEOUT,
  };
  for (const option of options) {
    const [key, value] = splitOption(option);
    const seconds = (): number => {
      const n = Number(value);
      if (value === undefined || !Number.isFinite(n) || n < 0) throw new MountOptionError(`mount option ${key} needs a number of seconds (${option})`);
      return n;
    };
    switch (key) {
      case 'ro': o.readOnly = true; break;
      case 'allow_other': o.allowOther = true; break;
      case 'default_permissions': o.defaultPermissions = true; break;
      case 'suid': o.suid = true; break;
      case 'dev': o.dev = true; break;
      case 'noexec': o.noexec = true; break;
      case 'noatime': o.noatime = true; break;
      case 'writeback_cache': o.writebackCache = true; break;
      case 'entry_timeout': o.entryTimeout = seconds(); break;
      case 'attr_timeout': o.attrTimeout = seconds(); break;
      case 'negative_timeout': seconds(); break; // negative entries live as long as entries do
      default:
        if (!ACCEPTED.has(key) || value !== undefined) throw new MountOptionError(`unknown mount option: ${option}`);
    }
  }
  // Other users see the mount only with the kernel checking their permissions.
  if (o.allowOther) o.defaultPermissions = true;
  if ((o.suid || o.dev) && process.getuid?.() !== 0) throw new MountOptionError(`mount options suid and dev need root`);
  return o;
}

function splitOption(option: string): [string, string | undefined] {
  const at = option.indexOf('=');
  return at < 0 ? [option, undefined] : [option.slice(0, at), option.slice(at + 1)];
}
