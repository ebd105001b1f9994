// Node flags the mount server starts with (the background server is forked with them; profiling adds
// them to `svault mount -f`, and bin/svault.js's shebang carries them). V8 reads heap sizes only at start.

/**
 * A larger initial old-generation limit. Reading a file of a few GiB holds its piece maps (tens of
 * thousands of entries) and puts the JS heap just above V8's 8 MB threshold for incremental marking;
 * with the default initial limit V8 then marked and compacted the heap about 25 times a second while
 * the 128 KiB decrypted pieces streamed through. Measured on a 4 GiB read: 290 mark-compacts and 3.9 s
 * of CPU per GiB by default, 2 mark-compacts and 2.4 s per GiB with 64 MB.
 *
 * A young generation of at most 2 x 4 MiB (V8's default grows it to 2 x 16 MiB under load). Together with
 * trimming the freed memory (fs/memory-trim.ts), the 4 GiB stream's peak RSS fell from 189-199 to
 * 185-189 MiB, with no more CPU per GiB (optimization log, entry 14). Without the trim it made no
 * difference (entry 9): what V8 freed stayed in glibc's arenas.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64', '--max-semi-space-size=4'];

/** The flags a child node process serving a mount gets: the parent's, plus the server's own. */
export function serverExecArgv(parent: readonly string[]): string[] {
  return [...parent, ...SERVER_NODE_FLAGS.filter((f) => !parent.includes(f))];
}
