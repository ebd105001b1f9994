// Model-based property test: random sequences of writes, truncations, reads and file reopenings on one
// file, compared step by step against a plain in-memory Buffer. pieceSize 4096, so sequences cross many
// piece boundaries, make holes, shrink into pieces and grow again.

import test from 'ava';
import fc from 'fast-check';
import { fsck, isClean } from '../../src/core/fsck/fsck.js';
import { createTempVault, patternBytes, type TempVault } from '../helpers/temp-vault.js';

const P = 4096;
const RUNS = Number(process.env.SVAULT_PROPERTY_RUNS ?? 300);
const MAX_OFFSET = 6 * P + 123;
const MAX_LEN = 2 * P + 50;

type Cmd =
  | { op: 'write'; offset: number; length: number; seed: number }
  | { op: 'truncate'; size: number; byPath: boolean }
  | { op: 'read'; offset: number; length: number }
  | { op: 'flush' }
  | { op: 'reopenFile' };

/** Offsets and sizes biased towards piece boundaries, where the off-by-ones live. */
const position = fc.oneof(
  fc.integer({ min: 0, max: MAX_OFFSET }),
  fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: -2, max: 2 })).map(([k, d]) => Math.max(0, k * P + d)),
);

const length = fc.oneof(fc.integer({ min: 0, max: MAX_LEN }), fc.integer({ min: 1, max: 16 }), fc.constantFrom(P - 1, P, P + 1));

// Writes of zero bytes are left to a deterministic test in core-roundtrip (they currently change the size:
// see 'a zero-length write changes nothing' there), so that this property checks everything else.
const writeLength = length.filter((n) => n > 0);

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('write' as const), offset: position, length: writeLength, seed: fc.integer({ min: 1, max: 1 << 30 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), size: position, byPath: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('read' as const), offset: position, length }) },
  { weight: 1, arbitrary: fc.constant({ op: 'flush' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'reopenFile' as const }) },
);

/** The model file: a Buffer holding exactly the file's bytes. */
class Model {
  data = Buffer.alloc(0);

  write(offset: number, bytes: Buffer): void {
    const end = offset + bytes.length;
    if (bytes.length > 0 && end > this.data.length) this.resize(end);
    bytes.copy(this.data, offset);
  }

  resize(size: number): void {
    const next = Buffer.alloc(size);
    this.data.copy(next, 0, 0, Math.min(size, this.data.length));
    this.data = next;
  }

  read(offset: number, len: number): Buffer {
    if (offset >= this.data.length) return Buffer.alloc(0);
    return this.data.subarray(offset, Math.min(this.data.length, offset + len));
  }
}

let fileCounter = 0;

async function runSequence(tv: TempVault, cmds: Cmd[]): Promise<void> {
  const v = tv.vault;
  const path = `/prop-${++fileCounter}`;
  const model = new Model();
  let fh = v.create(path, 0o644);
  const where = (k: number, c: Cmd) => `step ${k} ${JSON.stringify(c)}`;
  try {
    for (const [k, c] of cmds.entries()) {
      switch (c.op) {
        case 'write': {
          const bytes = patternBytes(c.length, c.seed);
          const n = await v.write(fh, bytes, c.offset);
          if (n !== c.length) throw new Error(`${where(k, c)}: wrote ${n} bytes`);
          model.write(c.offset, bytes);
          break;
        }
        case 'truncate':
          if (c.byPath) await v.truncate(path, c.size);
          else await v.ftruncate(fh, c.size);
          model.resize(c.size);
          break;
        case 'read': {
          const buf = Buffer.alloc(c.length);
          const n = await v.read(fh, buf, c.length, c.offset);
          const want = model.read(c.offset, c.length);
          if (n !== want.length) throw new Error(`${where(k, c)}: read ${n} bytes, model has ${want.length} (size ${model.data.length})`);
          if (!buf.subarray(0, n).equals(want)) throw new Error(`${where(k, c)}: bytes differ from the model`);
          break;
        }
        case 'flush':
          await v.flush(fh);
          break;
        case 'reopenFile':
          await v.release(fh);
          fh = -1;
          fh = v.open(path);
          break;
      }
      const size = v.fgetattr(fh).size;
      if (size !== model.data.length) throw new Error(`${where(k, c)}: size ${size}, model ${model.data.length}`);
    }
  } finally {
    if (fh !== -1) await v.release(fh);
  }
  // After the last close: the committed file, read whole through a fresh handle.
  const whole = await v.readFile(path);
  if (whole.length !== model.data.length) throw new Error(`final size ${whole.length}, model ${model.data.length}`);
  if (!whole.equals(model.data)) {
    let at = 0;
    while (whole[at] === model.data[at]) at++;
    throw new Error(`final content differs from the model at byte ${at} (piece ${Math.floor(at / P)})`);
  }
  // Holes are not stored: no piece lies wholly past the end.
  for (const i of v.inodeAt(path).pieces.keys()) {
    if (i * P >= model.data.length) throw new Error(`piece ${i} is stored past the end (size ${model.data.length})`);
  }
  v.unlink(path);
}

test('random write/truncate/read/reopen sequences match an in-memory model', async (t) => {
  const tv = await createTempVault(t, { pieceSize: P, chaffRatio: 0.2 });
  // Full pieces go to the piece worker once it is up (until a reopen, whose new worker starts in the
  // background: the sequences then mix both paths).
  t.true(await tv.vault.pieceWorkerReady());
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 40 }), async (cmds) => {
      runs++;
      await runSequence(tv, cmds);
    }),
    // SVAULT_PROPERTY_SEED replays a failing run (fast-check prints the seed and path on failure).
    { numRuns: RUNS, ...(process.env.SVAULT_PROPERTY_SEED ? { seed: Number(process.env.SVAULT_PROPERTY_SEED) } : {}) },
  );
  t.true(runs >= RUNS);
  // After all those files came and went, the store holds chaff only: no leaked piece versions, no stray records.
  await new Promise((r) => setTimeout(r, 20)); // unlink deletes pieces just after its commit
  await tv.reopen();
  t.deepEqual(tv.vault.readdir('/'), []);
  const { before } = await fsck(tv.vault);
  t.true(isClean(before), JSON.stringify(before));
  t.is(before.pieces, 0);
  t.is((await tv.vault.usage()).blobs, before.chaff);
});
