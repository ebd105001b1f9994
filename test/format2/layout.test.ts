// The config files of a format-2 store (src/core/format2/layout.ts, store-marker.ts, format-detect.ts;
// docs/format-2.md, 4.1, 4.2, 4.3 and 10.3): svault.layout.json's rules and its MAC, pinned against a
// MAC computed by hand from the spec, with every field's tampering refused and every rule of 4.1's
// table broken at least once; the rekey's two-MAC form; the store marker, with a marker of another
// vault and of another store of this vault told apart; and format detection in each case, with its
// message.

import test, { type ExecutionContext } from 'ava';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadStoreError } from '../../src/core/errors.js';
import { deriveFormat2Keys } from '../../src/core/format2/keys.js';
import {
  checkLayoutMac,
  currentPlacement,
  homeStore,
  LAYOUT_FILE,
  LAYOUT_MISMATCH,
  layoutMac,
  newOneStoreLayout,
  parseLayout,
  readLayout,
  signLayout,
  writeLayout,
  type BoundSettings,
  type Layout,
  type LayoutBody,
} from '../../src/core/format2/layout.js';
import {
  checkStoreMarker,
  createStoreMarker,
  readStoreMarker,
  replaceStoreMarker,
  STORE_MARKER_FILE,
  StoreMarkerError,
  type StoreMarkerProblem,
} from '../../src/core/format2/store-marker.js';
import { detectFormat, FORMAT1_ADVICE, notFormat2Message, requireFormat2 } from '../../src/core/format2/format-detect.js';
import { StoreDir } from '../../src/core/os/store-dir.js';

const STORE = '/stores/home';
const vaultId = randomBytes(16);
const settings: BoundSettings = { format: 2, vaultId: vaultId.toString('hex'), cipher: 'aes-256-gcm', pieceSize: 131072, chaffRatio: 0.1 };
const master = randomBytes(32);
const keys = deriveFormat2Keys(master, vaultId);
const otherMaster = randomBytes(32);
const otherKeys = deriveFormat2Keys(otherMaster, vaultId);

const newId = (): string => randomBytes(16).toString('hex');
/** A key wrapped with seal(): nonce (12) ‖ sealed key (32) ‖ tag (16). */
const wrappedKey = (): string => randomBytes(60).toString('base64');

type Json = Record<string, unknown> & { stores: Record<string, unknown>[]; placement: Record<string, unknown>[] };

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'svault-layout-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openDir(t: ExecutionContext, path: string): StoreDir {
  const dir = StoreDir.open(path);
  t.teardown(() => dir.close());
  return dir;
}

/** Four stores: home h, scatter a (a path), b (S3), c (not placed yet); two epochs; recovery and rekey. */
function scatterBody(): LayoutBody {
  const [h, a, b, c] = [newId(), newId(), newId(), newId()];
  return {
    layout: 2,
    records: { size: 4000, inlineMax: 3818 },
    stores: [
      { id: h, role: 'home' },
      { id: a, role: 'scatter', at: '/media/usb/vault-b' },
      { id: b, role: 'scatter', at: 's3://bucket/prefix' },
      { id: c, role: 'scatter', at: '/srv/vault-c' },
    ],
    placement: [
      { epoch: 0, k: 1, m: 0, stores: [h] },
      { epoch: 1, k: 2, m: 1, stores: [h, a, b] },
    ],
    recovery: { wrappedKey: wrappedKey() },
    rekey: { previousKey: wrappedKey() },
  };
}

/** A signed layout as the plain JSON a file holds, to change by hand. */
function asJson(layout: Layout): Json {
  return JSON.parse(JSON.stringify(layout)) as Json;
}

function refusedText(t: ExecutionContext, text: string, pattern: RegExp, message?: string): void {
  const err = t.throws(() => parseLayout(text, STORE), { instanceOf: BadStoreError }, message);
  if (err) t.regex(err.message, pattern, message ?? pattern.source);
}

function refused(t: ExecutionContext, json: unknown, pattern: RegExp, message?: string): void {
  refusedText(t, JSON.stringify(json), pattern, message);
}

/** A valid signed layout changed by `change`, which must still parse: the change is for the MAC to catch. */
function mismatched(t: ExecutionContext, change: (j: Json) => void, what: string): void {
  const json = asJson(signLayout(scatterBody(), settings, [keys.config]));
  t.notThrows(() => checkLayoutMac(parseLayout(JSON.stringify(json), STORE), settings, keys.config, STORE), `${what}: untouched`);
  change(json);
  const layout = parseLayout(JSON.stringify(json), STORE);
  const err = t.throws(() => checkLayoutMac(layout, settings, keys.config, STORE), { instanceOf: BadStoreError }, what);
  t.is(err?.message, `${STORE}: ${LAYOUT_MISMATCH}`, what);
}

// ---- The layout ----

test('a new one-store layout: one home store, epoch 0 placed with k = 1, m = 0; written, read back and verified', (t) => {
  const path = tempDir(t);
  const dir = openDir(t, path);
  const layout = newOneStoreLayout(settings, keys.config);
  const home = homeStore(layout);
  t.regex(home.id, /^[0-9a-f]{32}$/);
  t.deepEqual(layout.stores, [{ id: home.id, role: 'home' }]);
  t.deepEqual(layout.placement, [{ epoch: 0, k: 1, m: 0, stores: [home.id] }]);
  t.deepEqual(currentPlacement(layout), layout.placement[0]);
  t.deepEqual(layout.records, { size: 4000, inlineMax: 3818 });
  t.false('recovery' in layout);
  t.false('rekey' in layout);
  t.not(homeStore(newOneStoreLayout(settings, keys.config)).id, home.id, 'a fresh random id each time');

  writeLayout(dir, layout);
  const text = readFileSync(join(path, LAYOUT_FILE), 'utf8');
  t.deepEqual(JSON.parse(text), layout);
  t.deepEqual(Object.keys(JSON.parse(text) as object), ['layout', 'records', 'stores', 'placement', 'mac']);
  t.deepEqual(readLayout(dir, settings, keys.config), layout);
  const err = t.throws(() => readLayout(dir, settings, otherKeys.config), { instanceOf: BadStoreError });
  t.is(err?.message, `${path}: ${LAYOUT_MISMATCH}`);

  const withRecovery = newOneStoreLayout(settings, keys.config, { wrappedKey: wrappedKey() });
  t.truthy(withRecovery.recovery);
  t.notThrows(() => checkLayoutMac(withRecovery, settings, keys.config, STORE));
});

test('the MAC is HMAC(config key, "svault-config-v2\\0" ‖ canonical JSON), computed here from the spec alone', (t) => {
  const home = newId();
  const scatter = newId();
  const recovery = wrappedKey();
  const body: LayoutBody = {
    layout: 2,
    records: { size: 4000, inlineMax: 3818 },
    stores: [{ id: home, role: 'home' }, { id: scatter, role: 'scatter', at: '/media/usb' }],
    placement: [{ epoch: 0, k: 1, m: 1, stores: [home, scatter] }],
    recovery: { wrappedKey: recovery },
  };
  const configKey = Buffer.from(hkdfSync('sha256', master, vaultId, 'svault/v2/config', 32));
  t.deepEqual(configKey, keys.config);
  const canonical =
    `[2,"${settings.vaultId}","aes-256-gcm",131072,0.1,{"size":4000,"inlineMax":3818},` +
    `[{"id":"${home}","role":"home"},{"id":"${scatter}","role":"scatter","at":"/media/usb"}],` +
    `[{"epoch":0,"k":1,"m":1,"stores":["${home}","${scatter}"]}],{"wrappedKey":"${recovery}"},null]`;
  const expected = createHmac('sha256', configKey).update('svault-config-v2\0').update(canonical).digest('hex');
  t.is(layoutMac(keys.config, settings, body), expected);
  t.is(signLayout(body, settings, [keys.config]).mac, expected);
});

test('the MAC does not depend on the order the file lists fields in', (t) => {
  const json = asJson(signLayout(scatterBody(), settings, [keys.config]));
  const reverse = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).reverse());
  const reordered = {
    ...reverse({ ...json, stores: json.stores.map(reverse), placement: json.placement.map(reverse), records: reverse(json.records as Record<string, unknown>) }),
  };
  t.not(JSON.stringify(reordered), JSON.stringify(json));
  t.notThrows(() => checkLayoutMac(parseLayout(JSON.stringify(reordered), STORE), settings, keys.config, STORE));
});

test('every field of the layout is covered by the MAC: each change is refused', (t) => {
  mismatched(t, (j) => {
    const old = j.stores[1]!.id as string;
    const id = newId();
    j.stores[1]!.id = id;
    for (const p of j.placement) p.stores = (p.stores as string[]).map((s) => (s === old ? id : s));
  }, 'a store id');
  mismatched(t, (j) => {
    j.stores[1]!.at = '/media/usb/elsewhere';
  }, 'a store location');
  mismatched(t, (j) => {
    [j.stores[1], j.stores[2]] = [j.stores[2]!, j.stores[1]!];
  }, 'the order of the stores');
  mismatched(t, (j) => {
    j.stores[0] = { id: j.stores[0]!.id, role: 'scatter', at: '/old/home' };
    j.stores[1] = { id: j.stores[1]!.id, role: 'home' };
  }, 'the home store swapped with a scatter store');
  mismatched(t, (j) => {
    j.stores.push({ id: newId(), role: 'scatter', at: '/added' });
  }, 'a store added');
  mismatched(t, (j) => {
    j.stores.pop();
  }, 'a store removed');
  mismatched(t, (j) => {
    j.placement[1]!.k = 1;
  }, 'k');
  mismatched(t, (j) => {
    j.placement[1]!.m = 0;
  }, 'm');
  mismatched(t, (j) => {
    j.placement[0]!.epoch = 4;
    j.placement[1]!.epoch = 5;
  }, 'the epochs');
  mismatched(t, (j) => {
    (j.placement[1]!.stores as string[]).reverse();
  }, 'the order of a placement’s stores');
  mismatched(t, (j) => {
    j.placement.shift();
  }, 'the previous epoch dropped');
  mismatched(t, (j) => {
    j.recovery = { wrappedKey: wrappedKey() };
  }, 'the recovery wrap replaced');
  mismatched(t, (j) => {
    delete j.recovery;
  }, 'the recovery wrap removed');
  mismatched(t, (j) => {
    j.rekey = { previousKey: wrappedKey() };
  }, 'the previous key replaced');
  mismatched(t, (j) => {
    delete j.rekey;
  }, 'the rekey removed');
  mismatched(t, (j) => {
    j.mac = layoutMac(keys.config, settings, { ...(j as unknown as LayoutBody), stores: [] });
  }, 'the MAC of another layout');
});

test('svault.json’s settings are covered by the MAC: each change is refused', (t) => {
  const layout = signLayout(scatterBody(), settings, [keys.config]);
  t.notThrows(() => checkLayoutMac(layout, settings, keys.config, STORE));
  const changes: [string, BoundSettings][] = [
    ['format', { ...settings, format: 1 }],
    ['vaultId', { ...settings, vaultId: newId() }],
    ['cipher', { ...settings, cipher: 'aes-128-gcm' as 'aes-256-gcm' }],
    ['pieceSize', { ...settings, pieceSize: 65536 }],
    ['chaffRatio', { ...settings, chaffRatio: 0.2 }],
  ];
  for (const [what, changed] of changes) {
    const err = t.throws(() => checkLayoutMac(layout, changed, keys.config, STORE), { instanceOf: BadStoreError }, what);
    t.is(err?.message, `${STORE}: ${LAYOUT_MISMATCH}`, what);
  }
});

test('a layout of another vault, or MACed under another master, is refused', (t) => {
  const otherVaultId = randomBytes(16);
  const otherVault = deriveFormat2Keys(otherMaster, otherVaultId);
  const otherSettings = { ...settings, vaultId: otherVaultId.toString('hex') };
  const foreign = signLayout(scatterBody(), otherSettings, [otherVault.config]);
  t.throws(() => checkLayoutMac(foreign, settings, keys.config, STORE), { instanceOf: BadStoreError, message: `${STORE}: ${LAYOUT_MISMATCH}` });
  const underOtherMaster = signLayout(scatterBody(), settings, [otherKeys.config]);
  t.throws(() => checkLayoutMac(underOtherMaster, settings, keys.config, STORE), { instanceOf: BadStoreError, message: `${STORE}: ${LAYOUT_MISMATCH}` });
});

test('a rekey’s switch: two MACs, accepted when either verifies under the unwrapped master', (t) => {
  const body = scatterBody();
  const layout = signLayout(body, settings, [otherKeys.config, keys.config]);
  t.true(Array.isArray(layout.mac));
  const reread = parseLayout(JSON.stringify(layout), STORE);
  t.deepEqual(reread, layout);
  // Step 2 to 3: the old master still unwraps; after step 3, the new one. Both must open the layout.
  t.notThrows(() => checkLayoutMac(reread, settings, keys.config, STORE), 'the second MAC');
  t.notThrows(() => checkLayoutMac(reread, settings, otherKeys.config, STORE), 'the first MAC');
  t.notThrows(() => checkLayoutMac(signLayout(body, settings, [keys.config, otherKeys.config]), settings, keys.config, STORE), 'either order');
  const third = deriveFormat2Keys(randomBytes(32), vaultId).config;
  t.throws(() => checkLayoutMac(reread, settings, third, STORE), { instanceOf: BadStoreError, message: `${STORE}: ${LAYOUT_MISMATCH}` });

  // A change is refused under both masters.
  const json = asJson(layout);
  json.stores[1]!.at = '/moved';
  const tampered = parseLayout(JSON.stringify(json), STORE);
  for (const key of [keys.config, otherKeys.config]) {
    t.throws(() => checkLayoutMac(tampered, settings, key, STORE), { instanceOf: BadStoreError, message: `${STORE}: ${LAYOUT_MISMATCH}` });
  }

  // Step 4: the MAC under the new master only. The old master no longer opens it.
  const after = signLayout(body, settings, [keys.config]);
  t.is(typeof after.mac, 'string');
  t.throws(() => checkLayoutMac(after, settings, otherKeys.config, STORE), { instanceOf: BadStoreError });

  // Two MACs belong to a rekey only.
  const { rekey: _rekey, ...withoutRekey } = body;
  t.throws(() => signLayout(withoutRekey, settings, [keys.config, otherKeys.config]), { message: /only while a rekey runs/ });
  t.throws(() => signLayout(body, settings, []), { message: /one or two config keys/ });
  const pair = asJson(layout);
  delete pair.rekey;
  refused(t, pair, /mac is a pair, but no rekey is running/);
  refused(t, { ...asJson(layout), mac: [...(layout.mac as string[]), layout.mac[0]] }, /mac must be two MACs/);
  refused(t, { ...asJson(layout), mac: [(layout.mac as string[])[0]] }, /mac must be two MACs/);
  refused(t, { ...asJson(layout), mac: [(layout.mac as string[])[0], 'zz'] }, /mac must be two MACs/);
});

test('unknown fields are refused at every level', (t) => {
  const layout = asJson(signLayout(scatterBody(), settings, [keys.config]));
  t.notThrows(() => parseLayout(JSON.stringify(layout), STORE));
  const cases: [string, (j: Json) => void, RegExp][] = [
    ['top', (j) => (j.extra = 1), /unknown field "extra" in the layout/],
    ['top, __proto__', (j) => Object.defineProperty(j, '__proto__', { value: {}, enumerable: true }), /unknown field "__proto__" in the layout/],
    ['records', (j) => ((j.records as Record<string, unknown>).pages = 1), /unknown field "pages" in records/],
    ['a store', (j) => (j.stores[2]!.region = 'eu'), /unknown field "region" in stores\[2\]/],
    ['a placement', (j) => (j.placement[1]!.parity = 'xor'), /unknown field "parity" in placement\[1\]/],
    ['recovery', (j) => ((j.recovery as Record<string, unknown>).hint = 'x'), /unknown field "hint" in recovery/],
    ['rekey', (j) => ((j.rekey as Record<string, unknown>).epoch = 1), /unknown field "epoch" in rekey/],
  ];
  for (const [what, change, pattern] of cases) {
    const j = asJson(layout as unknown as Layout);
    change(j);
    refused(t, j, pattern, what);
  }
});

test('the file’s shape: JSON, the layout number, records fixed at 4000 and 3818, required fields', (t) => {
  const base = asJson(newOneStoreLayout(settings, keys.config));
  refusedText(t, '{"layout": 2,', /svault\.layout\.json is not valid JSON/);
  refused(t, [base], /the layout is not an object/);
  refused(t, null, /the layout is not an object/);
  for (const field of ['layout', 'records', 'stores', 'placement', 'mac']) {
    const j = asJson(base as unknown as Layout);
    delete j[field];
    refused(t, j, new RegExp(`the layout has no "${field}"`), field);
  }
  refused(t, { ...base, layout: 1 }, /unsupported layout 1/);
  refused(t, { ...base, layout: 3 }, /unsupported layout 3/);
  refused(t, { ...base, layout: '2' }, /unsupported layout "2"/);
  refused(t, { ...base, records: { size: 4096, inlineMax: 3818 } }, /records\.size must be 4000/);
  refused(t, { ...base, records: { size: 4000, inlineMax: 3817 } }, /records\.inlineMax must be 3818/);
  refused(t, { ...base, records: { size: 4000 } }, /records has no "inlineMax"/);
  refused(t, { ...base, records: [4000, 3818] }, /records is not an object/);
  refused(t, { ...base, mac: 'A'.repeat(64) }, /mac is not 32 bytes in lowercase hex/);
  refused(t, { ...base, mac: 'a'.repeat(62) }, /mac is not 32 bytes in lowercase hex/);
  refused(t, { ...base, mac: 7 }, /mac is missing or not a string/);
  refused(t, { ...base, recovery: { wrappedKey: randomBytes(59).toString('base64') } }, /recovery\.wrappedKey is not 60 bytes in base64/);
  refused(t, { ...base, recovery: { wrappedKey: 'not base64!' } }, /recovery\.wrappedKey is not 60 bytes in base64/);
  refused(t, { ...base, recovery: {} }, /recovery has no "wrappedKey"/);
  refused(t, { ...base, recovery: 'x' }, /recovery is not an object/);
  refused(t, { ...base, rekey: { previousKey: randomBytes(61).toString('base64') } }, /rekey\.previousKey is not 60 bytes in base64/);
  refused(t, { ...base, rekey: null }, /rekey is not an object/);
});

test('stores: 1 to 32 distinct ids, exactly one home without "at", scatter stores at an absolute path or s3:// URL', (t) => {
  const layoutWith = (stores: unknown[], placed?: string[]): unknown => {
    const ids = placed ?? [(stores[0] as { id?: string } | undefined)?.id ?? newId()];
    return { ...asJson(newOneStoreLayout(settings, keys.config)), stores, placement: [{ epoch: 0, k: 1, m: 0, stores: ids }] };
  };
  const home = (id = newId()): Record<string, unknown> => ({ id, role: 'home' });
  const scatter = (at: unknown, id = newId()): Record<string, unknown> => ({ id, role: 'scatter', at });

  // Accepted, at the edges: 32 stores, paths and S3 URLs.
  const many = [home(), ...Array.from({ length: 31 }, (_, i) => scatter(`/mnt/store-${i}`))];
  t.notThrows(() => parseLayout(JSON.stringify(layoutWith(many)), STORE), '32 stores');
  for (const at of ['/', '/media/usb/vault b', 's3://my.bucket-1', 's3://abc/deep/prefix/', 's3://bucket/x?y']) {
    t.notThrows(() => parseLayout(JSON.stringify(layoutWith([home(), scatter(at)])), STORE), at);
  }

  refused(t, layoutWith([]), /stores must list 1 to 32 stores/);
  refused(t, layoutWith([...many, scatter('/mnt/one-too-many')]), /stores must list 1 to 32 stores/);
  refused(t, { ...asJson(newOneStoreLayout(settings, keys.config)), stores: { 0: home() } }, /stores must list 1 to 32 stores/);
  const twice = newId();
  refused(t, layoutWith([home(twice), scatter('/a', twice)]), new RegExp(`store ${twice} is listed twice`));
  refused(t, layoutWith([home(newId().toUpperCase())]), /stores\[0\]\.id is not 16 bytes in lowercase hex/);
  refused(t, layoutWith([home(randomBytes(15).toString('hex'))]), /stores\[0\]\.id is not 16 bytes in lowercase hex/);
  refused(t, layoutWith([home(), { role: 'scatter', at: '/a' }]), /stores\[1\] has no "id"/);
  refused(t, layoutWith([scatter('/a')]), /exactly one home store, not 0/);
  const [h1, h2] = [newId(), newId()];
  refused(t, layoutWith([home(h1), home(h2)], [h1]), /exactly one home store, not 2/);
  refused(t, layoutWith([{ ...home(), at: '/here' }]), /stores\[0\]: the home store has no "at"/);
  refused(t, layoutWith([home(), { id: newId(), role: 'scatter' }]), /stores\[1\]: a scatter store needs "at"/);
  refused(t, layoutWith([home(), { id: newId(), role: 'mirror', at: '/a' }]), /stores\[1\]\.role must be "home" or "scatter"/);
  refused(t, layoutWith([home(), 'store']), /stores\[1\] is not an object/);
  const badLocations: [unknown, RegExp][] = [
    ['relative/path', /neither an absolute path nor an s3:\/\/ URL/],
    ['~/vault', /neither an absolute path nor an s3:\/\/ URL/],
    ['https://bucket.s3.amazonaws.com/x', /neither an absolute path nor an s3:\/\/ URL/],
    ['', /is not a non-empty string/],
    [7, /is not a non-empty string/],
    ['/media/usb\nfake log line', /holds a control character/],
    ['/' + 'a'.repeat(4096), /is longer than 4096 characters/],
    ['s3://', /without a valid bucket name/],
    ['s3://ab/prefix', /without a valid bucket name/],
    ['s3://Bucket/prefix', /without a valid bucket name/],
    ['s3://-bucket', /without a valid bucket name/],
  ];
  for (const [at, pattern] of badLocations) refused(t, layoutWith([home(), scatter(at)]), pattern, String(at));
});

test('placement: one or two epochs, the current last; k ≥ 1, m ≥ 0, k + m ≤ 8 and ≤ the stores it lists', (t) => {
  const ids = Array.from({ length: 9 }, newId);
  const stores = [{ id: ids[0], role: 'home' }, ...ids.slice(1).map((id, i) => ({ id, role: 'scatter', at: `/s/${i}` }))];
  const layoutWith = (placement: unknown): unknown => ({ ...asJson(newOneStoreLayout(settings, keys.config)), stores, placement });
  const place = (epoch: unknown, k: unknown, m: unknown, on: unknown = ids.slice(0, 3)): Record<string, unknown> => ({ epoch, k, m, stores: on });

  // Accepted, at the edges.
  t.notThrows(() => parseLayout(JSON.stringify(layoutWith([place(0, 8, 0, ids.slice(0, 8))])), STORE), 'k + m = 8');
  t.notThrows(() => parseLayout(JSON.stringify(layoutWith([place(0, 1, 7, ids.slice(0, 8))])), STORE), 'k = 1, m = 7');
  t.notThrows(() => parseLayout(JSON.stringify(layoutWith([place(0, 2, 1, ids.slice(0, 9))])), STORE), 'more stores than k + m');
  t.notThrows(() => parseLayout(JSON.stringify(layoutWith([place(6, 1, 0), place(7, 2, 1)])), STORE), 'a rescatter from 6 to 7');
  t.notThrows(() => parseLayout(JSON.stringify(layoutWith([place(0xffff_ffff, 1, 0)])), STORE), 'the last u32 epoch');

  refused(t, layoutWith([]), /placement must have one entry per live epoch/);
  refused(t, layoutWith([place(0, 1, 0), place(1, 1, 0), place(2, 1, 0)]), /placement must have one entry per live epoch/);
  refused(t, layoutWith(place(0, 1, 0)), /placement must have one entry per live epoch/);
  refused(t, layoutWith([place(1, 1, 0), place(0, 1, 0)]), /the previous epoch, then the current one/, 'current epoch first');
  refused(t, layoutWith([place(0, 1, 0), place(2, 1, 0)]), /the previous epoch, then the current one/, 'epochs not consecutive');
  refused(t, layoutWith([place(3, 1, 0), place(3, 1, 0)]), /the previous epoch, then the current one/, 'one epoch twice');
  refused(t, layoutWith([place(-1, 1, 0)]), /placement\[0\]\.epoch is not an integer/);
  refused(t, layoutWith([place(2 ** 32, 1, 0)]), /placement\[0\]\.epoch is not an integer/);
  refused(t, layoutWith([place(0.5, 1, 0)]), /placement\[0\]\.epoch is not an integer/);
  refused(t, layoutWith([place(0, 0, 1)]), /placement\[0\]\.k must be an integer of at least 1/);
  refused(t, layoutWith([place(0, 1.5, 0)]), /placement\[0\]\.k must be an integer of at least 1/);
  refused(t, layoutWith([place(0, '1', 0)]), /placement\[0\]\.k must be an integer of at least 1/);
  refused(t, layoutWith([place(0, 1, -1)]), /placement\[0\]\.m must be an integer of at least 0/);
  refused(t, layoutWith([place(0, 1, null)]), /placement\[0\]\.m must be an integer of at least 0/);
  refused(t, layoutWith([place(0, 6, 3, ids)]), /placement\[0\]: k \+ m is 9, above 8/);
  refused(t, layoutWith([place(0, 9, 0, ids)]), /placement\[0\]: k \+ m is 9, above 8/);
  refused(t, layoutWith([place(0, 2, 2)]), /placement\[0\]: k \+ m is 4, more than the 3 stores it lists/);
  refused(t, layoutWith([place(0, 1, 0), place(1, 1, 1, [ids[0]])]), /placement\[1\]: k \+ m is 2, more than the 1 stores it lists/);
  const stranger = newId();
  refused(t, layoutWith([place(0, 1, 0, [ids[0], stranger])]), new RegExp(`placement\\[0\\]\\.stores names "${stranger}", which is not in stores`));
  refused(t, layoutWith([place(0, 1, 0, [ids[0], ids[0]])]), /placement\[0\]\.stores lists [0-9a-f]{32} twice/);
  refused(t, layoutWith([place(0, 1, 0, ids[0])]), /placement\[0\]\.stores is not a list of store ids/);
  refused(t, layoutWith([{ epoch: 0, k: 1, stores: [ids[0]] }]), /placement\[0\] has no "m"/);
});

test('readLayout and writeLayout: missing, malformed, a link; a layout svault would refuse is never written', (t) => {
  const path = tempDir(t);
  const dir = openDir(t, path);
  t.throws(() => readLayout(dir, settings, keys.config), { instanceOf: BadStoreError, message: /svault\.layout\.json is missing/ });

  const good = signLayout(scatterBody(), settings, [keys.config]);
  writeLayout(dir, good);
  t.deepEqual(readLayout(dir, settings, keys.config), good);
  const before = readFileSync(join(path, LAYOUT_FILE));
  const broken = { ...good, placement: [{ epoch: 0, k: 0, m: 0, stores: [homeStore(good).id] }] };
  t.throws(() => writeLayout(dir, broken), { instanceOf: BadStoreError, message: /k must be an integer of at least 1/ });
  t.deepEqual(readFileSync(join(path, LAYOUT_FILE)), before, 'the file is untouched');

  writeFileSync(join(path, LAYOUT_FILE), '{"layout":2');
  t.throws(() => readLayout(dir, settings, keys.config), { instanceOf: BadStoreError, message: /not valid JSON/ });

  rmSync(join(path, LAYOUT_FILE));
  writeFileSync(join(path, 'elsewhere.json'), before);
  symlinkSync(join(path, 'elsewhere.json'), join(path, LAYOUT_FILE));
  t.throws(() => readLayout(dir, settings, keys.config), { instanceOf: BadStoreError, message: /symbolic link/ });
});

// ---- The store marker ----

function markerRefused(t: ExecutionContext, fn: () => void, problem: StoreMarkerProblem, message: string): StoreMarkerError | undefined {
  const err = t.throws(fn, { instanceOf: StoreMarkerError }, problem);
  t.is(err?.problem, problem);
  t.is(err?.message, message);
  t.true(err instanceof BadStoreError, 'exit 4 for the home store');
  return err;
}

test('svault.store: created with the store id and HMAC(store-marker key, "svault-store-v2\\0" ‖ id), and checked', (t) => {
  const path = tempDir(t);
  const dir = openDir(t, path);
  const id = newId();
  createStoreMarker(dir, id, keys.storeMarker);
  const markerKey = Buffer.from(hkdfSync('sha256', master, vaultId, 'svault/v2/store-marker', 32));
  const mac = createHmac('sha256', markerKey).update('svault-store-v2\0').update(Buffer.from(id, 'hex')).digest('hex');
  t.deepEqual(JSON.parse(readFileSync(join(path, STORE_MARKER_FILE), 'utf8')), { svaultStore: 2, storeId: id, mac });
  t.deepEqual(readStoreMarker(dir), { svaultStore: 2, storeId: id, mac });
  t.notThrows(() => checkStoreMarker(dir, id, keys.storeMarker));
  t.throws(() => createStoreMarker(dir, id, keys.storeMarker), { instanceOf: BadStoreError, message: /svault\.store already exists/ });
  t.throws(() => createStoreMarker(openDir(t, tempDir(t)), 'ABC', keys.storeMarker), { instanceOf: RangeError });
});

test('a marker of another vault, of another store of this vault, forged, malformed or missing is refused, each clearly', (t) => {
  const path = tempDir(t);
  const dir = openDir(t, path);
  const id = newId();
  const file = join(path, STORE_MARKER_FILE);

  markerRefused(t, () => checkStoreMarker(dir, id, keys.storeMarker), 'missing', `store ${id} at ${path} has no svault.store: it is not a store of this vault, or it was damaged`);

  // Another vault's store, even one that happens to carry the id this layout expects.
  const foreign = `store ${id} at ${path} belongs to another vault or was damaged`;
  createStoreMarker(dir, id, deriveFormat2Keys(randomBytes(32), randomBytes(16)).storeMarker);
  markerRefused(t, () => checkStoreMarker(dir, id, keys.storeMarker), 'foreign', foreign);

  // Another store of this vault: the stores were swapped.
  const other = newId();
  replaceStoreMarker(dir, other, keys.storeMarker);
  const err = markerRefused(t, () => checkStoreMarker(dir, id, keys.storeMarker), 'other-store', `store ${id} at ${path} is store ${other} of this vault: give each store's place with --store-at ID=PATH`);
  t.is(err?.foundStoreId, other);

  // That store's marker with its id changed to the expected one: the MAC no longer verifies.
  const marker = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...marker, storeId: id }));
  markerRefused(t, () => checkStoreMarker(dir, id, keys.storeMarker), 'foreign', foreign);

  replaceStoreMarker(dir, id, keys.storeMarker);
  t.notThrows(() => checkStoreMarker(dir, id, keys.storeMarker), 'replaced: good again');
  const good = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const malformed: [string, string, RegExp][] = [
    ['not JSON', '{"svaultStore":', /svault\.store: not valid JSON/],
    ['an unknown field', JSON.stringify({ ...good, vaultId: 'x' }), /unknown field "vaultId"/],
    ['another marker version', JSON.stringify({ ...good, svaultStore: 1 }), /unsupported marker 1/],
    ['an uppercase id', JSON.stringify({ ...good, storeId: id.toUpperCase() }), /storeId is not 16 bytes/],
    ['a short MAC', JSON.stringify({ ...good, mac: (good.mac as string).slice(2) }), /mac is not 32 bytes/],
    ['an array', '[]', /svault\.store: not an object/],
  ];
  for (const [what, text, pattern] of malformed) {
    writeFileSync(file, text);
    t.throws(() => readStoreMarker(dir), { instanceOf: BadStoreError, message: pattern }, what);
    markerRefused(t, () => checkStoreMarker(dir, id, keys.storeMarker), 'foreign', foreign);
  }

  rmSync(file);
  writeFileSync(join(path, 'marker-elsewhere'), JSON.stringify(good));
  symlinkSync(join(path, 'marker-elsewhere'), file);
  markerRefused(t, () => checkStoreMarker(dir, id, keys.storeMarker), 'foreign', foreign);
});

// ---- Format detection ----

function storeWith(t: ExecutionContext, files: Record<string, string>): { path: string; dir: StoreDir } {
  const path = tempDir(t);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(path, name), content);
  return { path, dir: openDir(t, path) };
}

const config = (format: unknown): string => JSON.stringify({ format, vaultId: settings.vaultId, cipher: 'aes-256-gcm', pieceSize: 131072, chaffRatio: 0.1 });

function detectRefused(t: ExecutionContext, files: Record<string, string>, message: (path: string) => string, what: string): void {
  const { path, dir } = storeWith(t, files);
  const err = t.throws(() => detectFormat(dir), { instanceOf: BadStoreError }, what);
  t.is(err?.message, `${path}: ${message(path)}`, what);
}

test('format 1: told, and refused for everything but upgrade and info with 4.3’s advice', (t) => {
  const { path, dir } = storeWith(t, { 'svault.json': config(1), 'meta.db': '', 'svault.lock': '' });
  mkdirSync(join(path, 'blobs'));
  t.deepEqual(detectFormat(dir), { format: 1 });
  t.is(notFormat2Message(detectFormat(dir)), FORMAT1_ADVICE);
  t.throws(() => requireFormat2(dir), { instanceOf: BadStoreError, message: `${path}: format 1: run svault upgrade` });
});

test('format 2: told, with its metadata databases and any format-1 files kept for a rollback', (t) => {
  const { dir } = storeWith(t, { 'svault.json': config(2), 'svault.layout.json': '{}', 'svault.store': '{}', 'meta2.db': '', 'meta2.db-wal': '' });
  const expected = { format: 2 as const, metadataDatabases: ['meta2.db'], format1Leftovers: [] };
  t.deepEqual(detectFormat(dir), expected);
  t.is(notFormat2Message(expected), null);
  t.deepEqual(requireFormat2(dir), expected);

  const rekeyed = storeWith(t, { 'svault.json': config(2), 'svault.layout.json': '{}', 'meta2-0123456789abcdef.db': '', 'meta2.db': '' });
  t.deepEqual(detectFormat(rekeyed.dir), { format: 2, metadataDatabases: ['meta2-0123456789abcdef.db', 'meta2.db'], format1Leftovers: [] }, 'mid-rekey: both');
  const afterRekey = storeWith(t, { 'svault.json': config(2), 'svault.layout.json': '{}', 'meta2-0123456789abcdef.db': '' });
  t.deepEqual(detectFormat(afterRekey.dir), { format: 2, metadataDatabases: ['meta2-0123456789abcdef.db'], format1Leftovers: [] });

  const upgraded = storeWith(t, { 'svault.json': config(2), 'svault.layout.json': '{}', 'meta2.db': '', 'svault.format1.json': config(1), 'meta.db': '', 'meta.db-wal': '' });
  t.deepEqual(detectFormat(upgraded.dir), { format: 2, metadataDatabases: ['meta2.db'], format1Leftovers: ['meta.db', 'meta.db-wal', 'svault.format1.json'] });
});

test('format 2 without its layout or any metadata database is refused', (t) => {
  detectRefused(t, { 'svault.json': config(2), 'meta2.db': '' }, () => 'svault.json is format 2, but svault.layout.json is missing', 'no layout');
  const noDb = (): string => 'metadata missing: svault.json is format 2, but there is no meta2.db or meta2-<key id>.db';
  detectRefused(t, { 'svault.json': config(2), 'svault.layout.json': '{}' }, noDb, 'no database');
  detectRefused(t, { 'svault.json': config(2), 'svault.layout.json': '{}', 'meta.db': '' }, noDb, 'a format-1 database only');
  detectRefused(t, { 'svault.json': config(2), 'svault.layout.json': '{}', 'meta2.db-wal': '', 'meta2-xyz.db': '' }, noDb, 'a WAL and a misnamed database only');
});

test('a format-1 svault.json beside format-2 files is an interrupted upgrade, which points to svault upgrade', (t) => {
  const cases: [string[], string][] = [
    [['meta2.db'], 'meta2.db beside it'],
    [['svault.layout.json'], 'the layout beside it'],
    [['meta2.db', 'meta2.db-wal', 'svault.layout.json', 'svault.format1.json', 'svault.store'], 'everything before step 10'],
    [['svault.store', 'svault.prealloc'], 'what a rollback stopped in its step 4 leaves'],
  ];
  for (const [leftovers, what] of cases) {
    const files: Record<string, string> = { 'svault.json': config(1), 'meta.db': '' };
    for (const name of leftovers) files[name] = '';
    const { path, dir } = storeWith(t, files);
    const detected = detectFormat(dir);
    t.deepEqual(detected, { format: 'interrupted-upgrade', format2Leftovers: [...leftovers].sort() }, what);
    const message = `format 1: run svault upgrade (an upgrade was interrupted and left ${[...leftovers].sort().join(', ')}; svault upgrade starts it over)`;
    t.is(notFormat2Message(detected), message, what);
    t.throws(() => requireFormat2(dir), { instanceOf: BadStoreError, message: `${path}: ${message}` }, what);
  }
});

test('any other format is refused with 4.2’s message; so are a missing, malformed or linked svault.json', (t) => {
  const unsupported = (n: string) => (): string => `svault.json: unsupported format ${n} (this svault reads format 2, and format 1 only to upgrade it)`;
  for (const [format, shown] of [[3, '3'], [0, '0'], [-1, '-1'], [1.5, '1.5'], ['2', '"2"'], [null, 'null'], [[2], '[2]']] as const) {
    detectRefused(t, { 'svault.json': config(format), 'svault.layout.json': '{}', 'meta2.db': '' }, unsupported(shown), `format ${shown}`);
  }
  detectRefused(t, { 'svault.json': JSON.stringify({ vaultId: settings.vaultId }) }, unsupported('none'), 'no format field');
  detectRefused(t, {}, () => 'no vault here (svault.json is missing); create one with "svault init"', 'no svault.json');
  detectRefused(t, { 'svault.json': '{"format": 2' }, () => 'svault.json is not valid JSON', 'not JSON');
  detectRefused(t, { 'svault.json': '[2]' }, () => 'svault.json: not an object', 'an array');

  const { path, dir } = storeWith(t, { 'real.json': config(2), 'svault.layout.json': '{}', 'meta2.db': '' });
  symlinkSync(join(path, 'real.json'), join(path, 'svault.json'));
  t.throws(() => detectFormat(dir), { instanceOf: BadStoreError, message: /svault\.json should be a regular file but is a symbolic link/ });
});
