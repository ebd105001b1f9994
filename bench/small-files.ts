// Small-file client for the bench: runs in its own process (never in a process serving a FUSE mount).
//
//   node bench/small-files.js write DIR COUNT SIZE   creates DIR/f00000..., each opened, written, closed
//   node bench/small-files.js read  DIR COUNT SIZE   opens, reads fully and closes each, checking its size
//
// Prints one JSON line: { count, size, seconds, msPerFile }. Only the loop is timed, not Node's start-up.
// The bytes are deterministic per file index, so a read checks its first and last 64 bytes too.
import { closeSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';

function fileName(dir: string, i: number): string {
  return path.join(dir, `f${String(i).padStart(5, '0')}`);
}

function pattern(size: number, i: number): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off < size; off += 4) b.writeUInt32LE(((i + 1) * 2654435761 + off) >>> 0, off);
  return b;
}

function main(): void {
  const [mode, dir, countArg, sizeArg] = process.argv.slice(2);
  const count = Number(countArg);
  const size = Number(sizeArg);
  if ((mode !== 'write' && mode !== 'read') || !dir || !Number.isInteger(count) || !Number.isInteger(size) || size % 4 !== 0) {
    process.stderr.write('usage: small-files (write|read) DIR COUNT SIZE (SIZE a multiple of 4)\n');
    process.exit(2);
  }
  const buffers = [pattern(size, 0), pattern(size, 1)];
  const readBuf = Buffer.alloc(size + 1);
  if (mode === 'write') mkdirSync(dir, { recursive: true });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const name = fileName(dir, i);
    if (mode === 'write') {
      const fd = openSync(name, 'w');
      const data = buffers[i % 2] as Buffer;
      let off = 0;
      while (off < size) off += writeSync(fd, data, off, size - off);
      closeSync(fd);
    } else {
      const fd = openSync(name, 'r');
      let got = 0;
      for (;;) {
        const n = readSync(fd, readBuf, got, readBuf.length - got, null);
        if (n === 0) break;
        got += n;
        if (got === readBuf.length) break;
      }
      closeSync(fd);
      const want = buffers[i % 2] as Buffer;
      const edge = Math.min(64, size);
      const same = readBuf.subarray(0, edge).equals(want.subarray(0, edge)) && readBuf.subarray(size - edge, size).equals(want.subarray(size - edge));
      if (got !== size || !same) {
        process.stderr.write(`${name}: read ${got} bytes, expected ${size}, or the contents differ\n`);
        process.exit(1);
      }
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ count, size, seconds, msPerFile: (seconds * 1000) / count }) + '\n');
}

main();
