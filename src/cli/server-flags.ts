// Node flags the mount server starts with (the background server is forked with them; profiling adds
// them to `svault mount -f`, and bin/svault.js's shebang carries them). V8 reads heap sizes only at start.

/**
 * A larger initial old-generation limit. Reading a file of a few GiB holds its piece maps (tens of
 * thousands of entries) and puts the JS heap just above V8's 8 MB threshold for incremental marking;
 * with the default initial limit V8 then marks and compacts the heap over and over while the 128 KiB
 * decrypted pieces stream through, a large share of the server's CPU per GiB read.
 *
 * A young generation of at most 2 x 4 MiB (V8's default grows it to 2 x 16 MiB under load), which lowers
 * the peak RSS of a long stream without costing CPU. It helps only together with trimming the freed
 * memory (fs/memory-trim.ts): without that, what V8 frees stays in glibc's arenas.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64', '--max-semi-space-size=4'];

/** The flags a child node process serving a mount gets: the parent's, plus the server's own. */
export function serverExecArgv(parent: readonly string[]): string[] {
  return [...parent, ...SERVER_NODE_FLAGS.filter((f) => !parent.includes(f))];
}
