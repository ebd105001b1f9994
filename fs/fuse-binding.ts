// Loads fuse-native (CommonJS, patched and rebuilt by scripts/build-fuse-binding.mjs)
// and adds what svault needs around it: a fusermount on PATH, bigger FUSE
// requests, and synchronous unmount / mount-state helpers for exit handlers.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Fuse from 'fuse-native';
import { findOnPath } from './path-search.js';

export type FuseClass = typeof Fuse;
export type FuseOperations = Fuse.Operations;
export type FuseStat = Fuse.Stat;

/**
 * What ops.utimens receives for a time that must be left unchanged
 * (UTIME_OMIT, e.g. the atime of `touch -m`). UTIME_NOW arrives as the current time.
 */
export const UTIME_OMIT = -1;

/**
 * Always passed by createFuse: without big_writes the kernel sends 4 KiB
 * writes; with these, 128 KiB (libfuse 2's maximum) in each direction.
 */
export const DEFAULT_MOUNT_OPTIONS: readonly string[] = ['big_writes', 'max_write=131072', 'max_read=131072'];

/** fuse-native copies the option string into a 1024-byte C buffer and cuts it silently. */
const MAX_OPTION_BYTES = 1023;

// fuse-native is CommonJS. Its own dependencies (node-gyp-build,
// fuse-shared-library) are resolved from its directory, as it does itself.
const cjsRequire = createRequire(import.meta.url);
const fuseDir = (): string => path.dirname(cjsRequire.resolve('fuse-native/package.json'));
const fuseRequire = (id: string): unknown => createRequire(path.join(fuseDir(), 'package.json'))(id);

/** The package's root: the nearest directory above this file that holds package.json (fs/ under tsx, dist/fs/ compiled). */
function packageRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

/**
 * The patch level the binding must report, read from `svault_patch` in scripts/fuse-native.patch (the
 * only place it is written) by the rule the build script uses too.
 */
function expectedPatchLevel(): number {
  const scripts = path.join(packageRoot(), 'scripts');
  const { patchLevelOf } = cjsRequire(path.join(scripts, 'fuse-patch-level.cjs')) as { patchLevelOf: (patchText: string) => number };
  return patchLevelOf(readFileSync(path.join(scripts, 'fuse-native.patch'), 'utf8'));
}

/** What svault uses of the patched binding itself, besides the Fuse class. */
interface SvaultBinding {
  svault_patch?: number;
  /** malloc_trim(0): see trimMallocArenas. */
  svault_malloc_trim?: () => number;
}

let cachedFuse: FuseClass | undefined;
let cachedBinding: SvaultBinding | undefined;

/**
 * Returns the Fuse class. Puts a fusermount on PATH first (fuse-native
 * unmounts with `fusermount -uz` from PATH) and refuses a binding that lacks
 * svault's patch, which would silently lose mtimes.
 */
export function loadFuse(): FuseClass {
  if (cachedFuse) return cachedFuse;
  ensureFusermountOnPath();

  let FuseCtor: FuseClass;
  let binding: SvaultBinding;
  let expected: number;
  try {
    expected = expectedPatchLevel();
  } catch (err) {
    throw new Error(`cannot read svault's fuse-native patch level (${(err as Error).message})`, { cause: err });
  }
  try {
    FuseCtor = cjsRequire('fuse-native') as FuseClass;
    // Same file fuse-native just loaded (node-gyp-build picks build/Release), so this is the require cache.
    const loadBinding = fuseRequire('node-gyp-build') as (dir: string) => SvaultBinding;
    binding = loadBinding(fuseDir());
  } catch (err) {
    throw new Error(
      `cannot load fuse-native (${(err as Error).message}); run: node scripts/build-fuse-binding.mjs`,
      { cause: err },
    );
  }
  if (binding.svault_patch !== expected) {
    throw new Error(
      `fuse-native's binding is not svault's patched build (svault_patch=${String(binding.svault_patch)}, ` +
        `expected ${expected}); run: node scripts/build-fuse-binding.mjs`,
    );
  }
  cachedFuse = FuseCtor;
  cachedBinding = binding;
  return FuseCtor;
}

/**
 * Gives the free memory of glibc's malloc arenas back to the system (malloc_trim(0), from the patched
 * binding). Pieces are 128 KiB buffers; after a large write or read, tens of MiB of them are free but
 * lie between chunks still in use, where glibc's own trimming (the heap's top only) never reaches.
 * Returns whether anything was released; false before loadFuse() has run.
 */
export function trimMallocArenas(): boolean {
  return (cachedBinding?.svault_malloc_trim?.() ?? 0) === 1;
}

export interface CreateFuseOptions extends Fuse.Options {
  /**
   * Extra -o options, verbatim, e.g. 'attr_timeout=0', 'entry_timeout=1',
   * 'negative_timeout=0', 'kernel_cache', 'allow_other',
   * 'default_permissions', 'ro'. For a repeated key the last one wins, so
   * these can also override DEFAULT_MOUNT_OPTIONS. No commas inside one option.
   */
  mountOptions?: readonly string[];
}

/** A Fuse whose mount options are DEFAULT_MOUNT_OPTIONS, then fuse-native's own from opts, then opts.mountOptions. */
export function createFuse(mountpoint: string, ops: FuseOperations, opts: CreateFuseOptions = {}): Fuse {
  const Base = loadFuse();
  const extra = opts.mountOptions ?? [];
  // Fail here rather than inside mount().
  joinMountOptions(DEFAULT_MOUNT_OPTIONS, extra);

  class TunedFuse extends Base {
    protected override _fuseOptions(): string {
      const own = super._fuseOptions().replace(/^-o/, '');
      return joinMountOptions(DEFAULT_MOUNT_OPTIONS, own ? own.split(',') : [], extra);
    }
  }
  return new TunedFuse(mountpoint, ops, opts);
}

/**
 * Joins option lists into fuse-native's '-oa,b,c' form ('' if none). For a
 * repeated key (the part before '='), the last value wins. Throws if an option
 * is empty or has a comma, or if the result would be cut by fuse-native.
 */
export function joinMountOptions(...lists: ReadonlyArray<readonly string[]>): string {
  const byKey = new Map<string, string>();
  for (const option of lists.flat()) {
    if (option === '' || option.includes(',')) throw new RangeError(`invalid FUSE mount option: ${JSON.stringify(option)}`);
    const key = option.split('=', 1)[0] ?? option;
    byKey.delete(key); // re-insert so the order shows which one won
    byKey.set(key, option);
  }
  if (byKey.size === 0) return '';
  const joined = `-o${[...byKey.values()].join(',')}`;
  if (Buffer.byteLength(joined) > MAX_OPTION_BYTES) {
    throw new RangeError(`FUSE mount options are ${Buffer.byteLength(joined)} bytes; fuse-native allows ${MAX_OPTION_BYTES}`);
  }
  return joined;
}

// ---------------------------------------------------------------------------
// fusermount

/** Directory of the fusermount that fuse-shared-library-linux ships (works as root, no setuid). */
function bundledFusermountDir(): string {
  const { lib } = fuseRequire('fuse-shared-library') as { lib: string }; // .../libfuse/lib/libfuse.so
  return path.join(path.dirname(path.dirname(lib)), 'bin');
}

/** Makes `fusermount` resolvable from PATH; the system's if it has one, else the bundled one. */
export function ensureFusermountOnPath(): void {
  if (findOnPath('fusermount')) return;
  const dir = bundledFusermountDir();
  process.env.PATH = process.env.PATH ? `${dir}${path.delimiter}${process.env.PATH}` : dir;
}

function fusermountPath(): string {
  return findOnPath('fusermount') ?? path.join(bundledFusermountDir(), 'fusermount');
}

// ---------------------------------------------------------------------------
// Mount state. None of these touch the mountpoint itself except
// isStaleMount: stat'ing a live mount served by this same process deadlocks.

/** Absolute path as the kernel shows it in /proc/mounts, resolving symlinks in the parent only. */
export function kernelPath(mountpoint: string): string {
  const abs = path.resolve(mountpoint);
  try {
    return path.join(realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

/** /proc/mounts escapes space, tab, newline and backslash as \ooo. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

/** Entries of /proc/mounts whose target is the mountpoint (more than one if stacked). */
export function mountEntries(mountpoint: string): MountEntry[] {
  const target = kernelPath(mountpoint);
  const entries: MountEntry[] = [];
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [source, mnt, fstype, options] = line.split(' ');
    if (source === undefined || mnt === undefined || fstype === undefined || options === undefined) continue;
    if (unescapeMountField(mnt) === target) {
      entries.push({ source: unescapeMountField(source), target, fstype, options });
    }
  }
  return entries;
}

/** Whether anything is mounted at mountpoint (reads /proc/mounts only). */
export function isMounted(mountpoint: string): boolean {
  return mountEntries(mountpoint).length > 0;
}

/**
 * Whether mountpoint is a FUSE mount whose server is gone ("Transport
 * endpoint is not connected"). Stats the mountpoint: do not call it for a
 * mount that this process serves. ECONNABORTED counts too: it is what a
 * request gets when it was queued just before the kernel aborted the
 * connection of a server that died.
 */
export function isStaleMount(mountpoint: string): boolean {
  if (!mountEntries(mountpoint).some((e) => e.fstype.startsWith('fuse'))) return false;
  try {
    statSync(mountpoint);
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOTCONN' || code === 'ECONNABORTED';
  }
}

/**
 * Synchronous lazy unmount for exit handlers and cleanup: `fusermount -uz`,
 * then `umount -l` if that did not work. Never throws. Returns true if
 * something was unmounted; check isMounted() to see whether anything is left.
 * Safe from the serving process (a lazy unmount does not wait for it).
 */
export function lazyUnmount(mountpoint: string): boolean {
  const target = kernelPath(mountpoint);
  if (!isMounted(target)) return false;
  const attempts: Array<[string, string[]]> = [
    [fusermountPath(), ['-uz', target]],
    ['umount', ['-l', target]],
  ];
  for (const [cmd, args] of attempts) {
    try {
      execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // fall through to the next way, then report through isMounted
    }
    if (!isMounted(target)) return true;
  }
  return false;
}
