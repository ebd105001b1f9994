// The byte-bounded two-generation cache behind the piece and metadata record caches (src/core/util/lru.ts).

import test from 'ava';
import { ByteLru } from '../../src/core/util/lru.js';

const buf = (n: number, fill = 0) => Buffer.alloc(n, fill);

test('holds what fits, and a set replaces the value (also one in the old generation)', (t) => {
  const c = new ByteLru<string>(1000);
  c.set('a', buf(100, 1));
  for (let i = 0; i < 4; i++) c.set(`x${i}`, buf(100)); // 'a' ends up in the old generation
  c.set('a', buf(100, 2));
  for (let i = 4; i < 8; i++) c.set(`x${i}`, buf(100)); // turnover: the replaced value must not come back
  t.is(c.get('a')?.[0], 2);
  c.delete('a');
  t.is(c.get('a'), undefined);
});

test('never holds more than its budget, and entries used again outlive ones that were not', (t) => {
  const budget = 10_000;
  const c = new ByteLru<number>(budget);
  let held = 0;
  for (let i = 0; i < 1000; i++) {
    c.set(i, buf(100));
    c.get(0); // used all the time
    held = 0;
    for (let k = 0; k <= i; k++) if (c.get(k) !== undefined) held += 100;
    t.true(held <= budget, `after ${i + 1} sets: ${held} bytes held`);
  }
  t.truthy(c.get(0), 'the entry used on every round is still there');
  t.is(c.get(1), undefined, 'an entry never used again is gone');
});

test('an entry larger than half the budget is not kept; a custom weight counts absent values', (t) => {
  const c = new ByteLru<string>(1000);
  c.set('big', buf(600));
  t.is(c.get('big'), undefined);
  const n = new ByteLru<string, Buffer | null>(1000, (k, v) => k.length + (v?.length ?? 0) + 100);
  for (let i = 0; i < 100; i++) n.set(`k${i}`, null);
  let kept = 0;
  for (let i = 0; i < 100; i++) if (n.get(`k${i}`) === null) kept++;
  t.true(kept > 0 && kept <= 10, `${kept} absent entries kept within 1000 bytes at >= 100 each`);
});
