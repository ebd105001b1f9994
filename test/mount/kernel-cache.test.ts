// Unit test of the per-open page-cache decision (fs/kernel-cache.ts); test/mount-cache.test.ts drives it
// through a real mount.

import test from 'ava';
import { KernelCacheTracker } from '../../fs/kernel-cache.js';

test('kept from the second open of the same file through the same path, until its content changes', (t) => {
  const k = new KernelCacheTracker();
  t.false(k.open('/a', 'id1'), 'first open: the node may hold anything');
  t.true(k.open('/a', 'id1'));
  k.contentChanged('id1');
  t.false(k.open('/a', 'id1'), 'changed since the last open');
  t.true(k.open('/a', 'id1'));
  k.contentChanged('id2');
  t.true(k.open('/a', 'id1'), 'another file changed');
});

test('another file at the path, or a path that was moved or removed, drops the cache', (t) => {
  const k = new KernelCacheTracker();
  k.open('/a', 'id1');
  t.false(k.open('/a', 'id2'), 'another file now at /a');
  k.open('/d/x', 'id3');
  k.open('/d/y/z', 'id4');
  k.open('/dd', 'id5');
  k.pathChanged('/d', true);
  t.false(k.open('/d/x', 'id3'));
  t.false(k.open('/d/y/z', 'id4'));
  t.true(k.open('/dd', 'id5'), 'a sibling that only shares a prefix of the name is not below /d');
  k.pathChanged('/dd', false);
  t.false(k.open('/dd', 'id5'));
});

test('bounded: forgetting opens or changes never makes a stale cache look current', (t) => {
  const k = new KernelCacheTracker();
  k.open('/a', 'id1');
  k.open('/a', 'id1');
  k.contentChanged('id1');
  for (let i = 0; i < 60_000; i++) k.contentChanged(`other${i}`); // forgets id1's change: must forget /a's open too
  t.false(k.open('/a', 'id1'));
  t.true(k.open('/a', 'id1'));
  for (let i = 0; i < 60_000; i++) k.open(`/p${i}`, `q${i}`);
  t.false(k.open('/a', 'id1'), 'past the bound the remembered opens are forgotten: dropped, not kept');
});
