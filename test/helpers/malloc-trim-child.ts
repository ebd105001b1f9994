// Child process of binding.test.ts (started with --expose-gc): fills glibc's heap with 64 KiB buffers,
// each followed by a small one that stays, frees the large ones, and prints the RSS before and after
// trimMallocArenas() as JSON. The small buffers pin the freed space between chunks in use, where only
// malloc_trim gives it back.

import { loadFuse, trimMallocArenas } from '../../fs/fuse-binding.js';

loadFuse();
const kept: Buffer[] = [];
let freed: Buffer[] = [];
for (let i = 0; i < 1600; i++) {
  freed.push(Buffer.allocUnsafeSlow(64 * 1024).fill(1)); // under glibc's mmap threshold: from the heap
  kept.push(Buffer.allocUnsafeSlow(256).fill(2));
}
freed = [];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
gc();
gc();
const before = process.memoryUsage.rss();
const released = trimMallocArenas();
const after = process.memoryUsage.rss();
console.log(JSON.stringify({ before, after, released, kept: kept.length }));
