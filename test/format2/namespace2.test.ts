// Format 2's namespace (src/core/format2/namespace2.ts) over Metadata2 and a real meta2.db: every file
// type, the POSIX errors a program relies on, link counts through links, renames and removals, setgid
// directories, xattrs with their flags and limits, and refused operations that change nothing.

import test, { type ExecutionContext } from 'ava';
import { FsError } from '../../src/core/errors.js';
import { FileType, ROOT_INO, type InodeRecord } from '../../src/core/format2/inode-record.js';
import { Metadata2 } from '../../src/core/format2/metadata2.js';
import { Namespace2 } from '../../src/core/format2/namespace2.js';
import { RecordTable } from '../../src/core/format2/record-table.js';
import { metadata2Options, name, T0 } from '../helpers/format2.js';
import { tempDir } from '../helpers/temp-vault.js';

const OPTIONS = metadata2Options(0.25);

interface Rig {
  md: Metadata2;
  ns: Namespace2;
  dir: string;
  gone: { ino: number; versions: number; open: boolean }[];
  open: Set<number>;
}

function rig(t: ExecutionContext, dir = tempDir(t), fresh = true): Rig {
  const md = fresh ? Metadata2.create(RecordTable.create(dir), OPTIONS, { mode: 0o755, uid: 0, gid: 0, time: T0 }) : Metadata2.open(RecordTable.open(dir), OPTIONS).reserve();
  const gone: Rig['gone'] = [];
  const open = new Set<number>();
  const ns = new Namespace2(md, { isOpen: (ino) => open.has(ino), gone: (inode, versions, isOpen) => gone.push({ ino: inode.ino, versions: versions.length, open: isOpen }) });
  t.teardown(() => md.close());
  return { md, ns, dir, gone, open };
}

const file = (r: Rig, dirIno: number, n: string): InodeRecord => r.ns.create(dirIno, name(n), { type: FileType.regular, mode: 0o644, uid: 1000, gid: 1000 });
const mkdir = (r: Rig, dirIno: number, n: string): InodeRecord => r.ns.create(dirIno, name(n), { type: FileType.directory, mode: 0o755, uid: 1000, gid: 1000 });

function errno(t: ExecutionContext, fn: () => unknown, want: FsError['errno']): void {
  const err = t.throws(fn);
  t.true(err instanceof FsError, String(err));
  t.is((err as FsError).errno, want, err?.message);
}

test('every file type is made, listed with its type, and kept across a reopen', (t) => {
  const r = rig(t);
  file(r, ROOT_INO, 'f');
  const d = mkdir(r, ROOT_INO, 'd');
  r.ns.create(ROOT_INO, name('l'), { type: FileType.symlink, mode: 0o777, uid: 0, gid: 0, target: name('f') });
  r.ns.create(ROOT_INO, name('p'), { type: FileType.fifo, mode: 0o600, uid: 0, gid: 0 });
  r.ns.create(ROOT_INO, name('s'), { type: FileType.socket, mode: 0o600, uid: 0, gid: 0 });
  r.ns.create(ROOT_INO, name('c'), { type: FileType.charDevice, mode: 0o600, uid: 0, gid: 0, rdev: 0x0103 });
  r.ns.create(ROOT_INO, name('b'), { type: FileType.blockDevice, mode: 0o600, uid: 0, gid: 0, rdev: 0x0801 });
  t.is(r.ns.inode(ROOT_INO).nlink, 3, 'the root counts its one subdirectory');
  t.is(r.ns.inode(d.ino).nlink, 2);
  r.md.commitNow();
  r.md.close();
  const again = rig(t, r.dir, false);
  const types = Object.fromEntries(again.ns.list(ROOT_INO).map((e) => [e.name.toString(), e.type]));
  t.deepEqual(types, { f: FileType.regular, d: FileType.directory, l: FileType.symlink, p: FileType.fifo, s: FileType.socket, c: FileType.charDevice, b: FileType.blockDevice });
  const c = again.ns.inode(again.ns.entry(ROOT_INO, name('c')).ino);
  t.is(c.rdev, 0x0103);
  t.is(c.mode, 0o020600);
  t.is(again.ns.readlink(again.ns.entry(ROOT_INO, name('l')).ino).toString(), 'f');
});

test('the errors programs rely on: EEXIST, ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EPERM, ENAMETOOLONG, EILSEQ, EINVAL', (t) => {
  const r = rig(t);
  const f = file(r, ROOT_INO, 'f');
  const d = mkdir(r, ROOT_INO, 'd');
  file(r, d.ino, 'inside');
  for (const type of [FileType.regular, FileType.directory, FileType.fifo]) {
    errno(t, () => r.ns.create(ROOT_INO, name('f'), { type, mode: 0o644, uid: 0, gid: 0 }), 'EEXIST');
  }
  errno(t, () => r.ns.create(ROOT_INO, name('d'), { type: FileType.symlink, mode: 0o777, uid: 0, gid: 0, target: name('x') }), 'EEXIST');
  errno(t, () => r.ns.link(f.ino, ROOT_INO, name('d')), 'EEXIST');
  errno(t, () => r.ns.entry(ROOT_INO, name('nothing')), 'ENOENT');
  errno(t, () => r.ns.unlink(ROOT_INO, name('nothing')), 'ENOENT');
  errno(t, () => r.ns.create(f.ino, name('x'), { type: FileType.regular, mode: 0o644, uid: 0, gid: 0 }), 'ENOTDIR');
  errno(t, () => r.ns.rmdir(ROOT_INO, name('f')), 'ENOTDIR');
  errno(t, () => r.ns.unlink(ROOT_INO, name('d')), 'EISDIR');
  errno(t, () => r.ns.rmdir(ROOT_INO, name('d')), 'ENOTEMPTY');
  errno(t, () => r.ns.link(d.ino, ROOT_INO, name('d2')), 'EPERM');
  errno(t, () => file(r, ROOT_INO, 'x'.repeat(256)), 'ENAMETOOLONG');
  errno(t, () => r.ns.create(ROOT_INO, Buffer.from([0x66, 0xff]), { type: FileType.regular, mode: 0o644, uid: 0, gid: 0 }), 'EILSEQ');
  errno(t, () => file(r, ROOT_INO, '..'), 'EINVAL');
  errno(t, () => r.ns.readlink(f.ino), 'EINVAL');
  t.is(file(r, ROOT_INO, 'y'.repeat(255)).nlink, 1, '255 bytes is allowed');
});

test('a refused operation changes nothing', (t) => {
  const r = rig(t);
  const d = mkdir(r, ROOT_INO, 'd');
  file(r, d.ino, 'inside');
  mkdir(r, ROOT_INO, 'e');
  r.md.commitNow();
  const before = r.md.state.commit;
  errno(t, () => r.ns.rename(ROOT_INO, name('e'), ROOT_INO, name('d')), 'ENOTEMPTY');
  errno(t, () => r.ns.rename(ROOT_INO, name('e'), ROOT_INO, name('d'), true), 'EEXIST');
  errno(t, () => r.ns.rmdir(ROOT_INO, name('d')), 'ENOTEMPTY');
  t.false(r.md.pending, 'nothing to commit');
  r.md.commitNow();
  t.is(r.md.state.commit, before);
});

test('hard links count their names; the inode and its pieces go with the last one, later if it is open', (t) => {
  const r = rig(t);
  const f = file(r, ROOT_INO, 'a');
  const map = r.md.pieceMap(f.ino);
  map.setSlot(0, r.md.newPieceVersion());
  map.setSlot(1, r.md.newPieceVersion());
  const d = mkdir(r, ROOT_INO, 'd');
  t.is(r.ns.link(f.ino, d.ino, name('b')).nlink, 2);
  t.is(r.ns.inode(f.ino).parentIno, d.ino, 'parentIno follows the newest link');
  r.ns.unlink(ROOT_INO, name('a'));
  t.is(r.ns.inode(f.ino).nlink, 1);
  t.deepEqual(r.gone, []);
  r.open.add(f.ino);
  r.ns.unlink(d.ino, name('b'));
  t.deepEqual(r.gone, [{ ino: f.ino, versions: 2, open: true }], 'the caller is told, with its two piece versions, while a handle is open');
  t.is(r.md.inode(f.ino), null);
  r.md.commitNow();
});

test('rename: over a file, a directory into another, over an empty directory, two names of one inode, NOREPLACE', (t) => {
  const r = rig(t);
  const a = file(r, ROOT_INO, 'a');
  const b = file(r, ROOT_INO, 'b');
  t.deepEqual(r.ns.rename(ROOT_INO, name('a'), ROOT_INO, name('b'))?.replaced, { ino: b.ino, type: FileType.regular });
  t.is(r.ns.entry(ROOT_INO, name('b')).ino, a.ino);
  t.deepEqual(r.gone.map((g) => g.ino), [b.ino], 'the replaced file went');

  const src = mkdir(r, ROOT_INO, 'src');
  const dst = mkdir(r, ROOT_INO, 'dst');
  const moving = mkdir(r, src.ino, 'moving');
  t.is(r.ns.inode(src.ino).nlink, 3);
  r.ns.rename(src.ino, name('moving'), dst.ino, name('moved'));
  t.is(r.ns.inode(src.ino).nlink, 2, 'the old parent lost a subdirectory');
  t.is(r.ns.inode(dst.ino).nlink, 3, 'the new parent gained one');
  t.is(r.ns.inode(moving.ino).parentIno, dst.ino);

  const empty = mkdir(r, dst.ino, 'empty');
  r.ns.rename(dst.ino, name('moved'), dst.ino, name('empty'));
  t.is(r.ns.inode(dst.ino).nlink, 3, 'one subdirectory replaced another in the same directory');
  t.is(r.md.inode(empty.ino), null, 'the replaced directory is gone');
  t.is(r.ns.entry(dst.ino, name('empty')).ino, moving.ino);

  r.ns.link(a.ino, ROOT_INO, name('c'));
  t.is(r.ns.rename(ROOT_INO, name('b'), ROOT_INO, name('c')), null, 'two names of one inode: nothing happens');
  t.is(r.ns.inode(a.ino).nlink, 2);
  errno(t, () => r.ns.rename(ROOT_INO, name('b'), ROOT_INO, name('dst')), 'EISDIR');
  errno(t, () => r.ns.rename(ROOT_INO, name('src'), ROOT_INO, name('b')), 'ENOTDIR');
  r.md.commitNow();
  r.md.close();
  const again = rig(t, r.dir, false);
  t.deepEqual(again.ns.list(ROOT_INO).map((e) => e.name.toString()).sort(), ['b', 'c', 'dst', 'src']);
  t.deepEqual(again.ns.list(dst.ino).map((e) => e.name.toString()), ['empty']);
});

test('a setgid directory hands its group down, and its setgid bit to subdirectories', (t) => {
  const r = rig(t);
  const d = r.ns.create(ROOT_INO, name('shared'), { type: FileType.directory, mode: 0o2775, uid: 0, gid: 50 });
  const f = r.ns.create(d.ino, name('f'), { type: FileType.regular, mode: 0o644, uid: 1000, gid: 1000 });
  const sub = r.ns.create(d.ino, name('sub'), { type: FileType.directory, mode: 0o755, uid: 1000, gid: 1000 });
  t.is(f.gid, 50);
  t.is(f.mode & 0o2000, 0, 'a file does not get the bit');
  t.is(sub.gid, 50);
  t.is(sub.mode & 0o2000, 0o2000);
});

test('attributes: chmod keeps the type, chown leaves -1 alone, utimens leaves an omitted time, ctime moves', (t) => {
  let now = { sec: 100, nsec: 1 };
  const r = rig(t);
  const ns = new Namespace2(r.md, { isOpen: () => false, gone: () => undefined }, () => now);
  const f = ns.create(ROOT_INO, name('f'), { type: FileType.regular, mode: 0o644, uid: 1, gid: 2 });
  now = { sec: 200, nsec: 2 };
  t.is(ns.chmod(f.ino, 0o4755).mode, 0o104755);
  t.deepEqual(ns.inode(f.ino).ctime, now);
  const owned = ns.chown(f.ino, -1, 0xffffffff);
  t.deepEqual([owned.uid, owned.gid], [1, 2]);
  t.deepEqual([ns.chown(f.ino, 7, -1).uid, ns.inode(f.ino).gid], [7, 2]);
  const set = ns.utimens(f.ino, { sec: 5, nsec: 6 }, undefined);
  t.deepEqual(set.atime, { sec: 5, nsec: 6 });
  t.deepEqual(set.mtime, { sec: 100, nsec: 1 });
});

test('xattrs: CREATE and REPLACE, ENODATA, the 64 KiB value and 255-byte name limits, ENOSPC past 240 KiB in all', (t) => {
  const r = rig(t);
  const f = file(r, ROOT_INO, 'f');
  r.ns.setxattr(f.ino, name('user.a'), name('1'), 0);
  errno(t, () => r.ns.setxattr(f.ino, name('user.a'), name('2'), 1), 'EEXIST');
  errno(t, () => r.ns.setxattr(f.ino, name('user.b'), name('2'), 2), 'ENODATA');
  r.ns.setxattr(f.ino, name('user.a'), name('2'), 2);
  t.is(r.ns.getxattr(f.ino, name('user.a')).toString(), '2');
  errno(t, () => r.ns.getxattr(f.ino, name('user.none')), 'ENODATA');
  errno(t, () => r.ns.setxattr(f.ino, name('user.big'), Buffer.alloc(65_537), 0), 'E2BIG');
  errno(t, () => r.ns.setxattr(f.ino, Buffer.alloc(256, 0x61), name('x'), 0), 'ERANGE');
  for (let i = 0; i < 3; i++) r.ns.setxattr(f.ino, name(`user.v${i}`), Buffer.alloc(65_536, i), 0);
  errno(t, () => r.ns.setxattr(f.ino, name('user.v3'), Buffer.alloc(65_536), 0), 'ENOSPC');
  r.ns.removexattr(f.ino, name('user.a'));
  errno(t, () => r.ns.removexattr(f.ino, name('user.a')), 'ENODATA');
  r.md.commitNow();
  r.md.close();
  const again = rig(t, r.dir, false);
  t.deepEqual(again.ns.listxattr(f.ino).map((n) => n.toString()), ['user.v0', 'user.v1', 'user.v2']);
  t.true(again.ns.getxattr(f.ino, name('user.v2')).equals(Buffer.alloc(65_536, 2)));
});

test('rmdir and rename see a directory\'s entries as they are now, not as its last commit left them', (t) => {
  const r = rig(t);
  mkdir(r, ROOT_INO, 'e');
  const a = mkdir(r, ROOT_INO, 'a');
  const b = mkdir(r, ROOT_INO, 'b');
  r.md.commitNow();
  const rootLinks = r.ns.inode(ROOT_INO).nlink;
  // A child made since the commit: not empty.
  file(r, r.ns.entry(ROOT_INO, name('e')).ino, 'y');
  errno(t, () => r.ns.rmdir(ROOT_INO, name('e')), 'ENOTEMPTY');
  file(r, b.ino, 'z');
  errno(t, () => r.ns.rename(ROOT_INO, name('a'), ROOT_INO, name('b')), 'ENOTEMPTY');
  t.is(r.ns.inode(ROOT_INO).nlink, rootLinks, 'nothing changed');
  t.is(r.ns.entry(ROOT_INO, name('a')).ino, a.ino);
  // The last child removed since the commit: empty now.
  r.ns.unlink(r.ns.entry(ROOT_INO, name('e')).ino, name('y'));
  t.notThrows(() => r.ns.rmdir(ROOT_INO, name('e')));
  r.md.commitNow();
});
