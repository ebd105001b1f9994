// Zero bytes to pad with: pieces up to their blob size class, records up to a power of two. One shared
// buffer, grown to the largest pad asked for, so padding allocates and zeroes nothing per seal.

let zeroes = Buffer.alloc(4096);

/** n zero bytes. A view of a shared buffer: only ever read it (sealing copies out of it). */
export function zeroBytes(n: number): Buffer {
  if (zeroes.length < n) zeroes = Buffer.alloc(n);
  return zeroes.subarray(0, n);
}
