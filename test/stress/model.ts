// An in-memory model of what POSIX (as Linux implements it) says a directory tree must hold after a
// sequence of operations: contents, sizes, names, link counts, extended attributes, and the errno of
// every operation that must fail. One model per worker subtree, so it stays deterministic however the
// workers interleave.

import { sha256, tagData } from './util.js';

export type Errno = 'ENOENT' | 'EEXIST' | 'ENOTEMPTY' | 'EISDIR' | 'ENOTDIR' | 'EINVAL' | 'EPERM' | 'ENODATA';

export interface FileNode {
  kind: 'file';
  id: number;
  data: Buffer;
  nlink: number;
  xattrs: Map<string, string>; // name -> value (hex)
}

export interface DirNode {
  kind: 'dir';
  id: number;
  children: Map<string, Node>;
  xattrs: Map<string, string>;
}

export type Node = FileNode | DirNode;

/** The operations the model checker runs (the worker performs the same, see worker.py). */
export type Op =
  | { op: 'mkdir'; p: string }
  | { op: 'create'; p: string }
  | { op: 'write'; p: string; off: number; len: number; tag: string; mode: 'plain' | 'trunc' | 'two'; p2?: string; fsync?: boolean }
  | { op: 'truncate'; p: string; size: number; via: 'path' | 'fd' }
  | { op: 'rename'; p: string; to: string }
  | { op: 'link'; p: string; to: string }
  | { op: 'unlink'; p: string }
  | { op: 'rmdir'; p: string }
  | { op: 'fsync'; p: string }
  | { op: 'setxattr'; p: string; name: string; value: string; flags: number }
  | { op: 'getxattr'; p: string; name: string }
  | { op: 'removexattr'; p: string; name: string }
  | { op: 'listxattr'; p: string }
  | { op: 'read'; p: string }
  | { op: 'stat'; p: string }
  | { op: 'listdir'; p: string }
  | { op: 'unlinkOpen'; p: string; off: number; len: number; tag: string }
  | { op: 'session'; p: string; acts: Act[] }
  /** Writes a whole file from given bytes (O_CREAT|O_TRUNC): the shrinker's setup of a known state. */
  | { op: 'put'; p: string; b64: string };

/**
 * One step of a session: a file opened once (O_RDWR) and used for several calls before its close, with
 * namespace operations and reads through other handles in between. Results: ['ok', ...values] or ['err', errno].
 */
export type Act =
  | ['w', number, number, string] // pwrite(fd, data(tag, len), off): [w, off, len, tag]
  | ['t', number] // ftruncate(fd, size)
  | ['r', number, number] // pread(fd, len, off): [r, off, len] -> [ok, length, sha]
  | ['s'] // fsync(fd)
  | ['mv', string, string] // rename(from, to)
  | ['ln', string, string] // link(from, to)
  | ['rm', string] // unlink(path)
  | ['ls', string] // listdir(path) -> [ok, names]
  | ['rd', string]; // read the whole file at path through another handle -> [ok, size, sha]

export type ActResult = ['ok', ...unknown[]] | ['err', string];

export type OpName = Op['op'];

/** What an operation must return: ok with its results, or the errno it must fail with. */
export type Expect = { ok: true; r: Record<string, unknown>; node?: Node } | { ok: false; err: Errno };

export class ModelError extends Error {
  constructor(readonly errno: Errno) {
    super(errno);
  }
}

const fail = (e: Errno): never => {
  throw new ModelError(e);
};

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

function comps(path: string): string[] {
  return path.split('/').filter((c) => c.length > 0);
}

/** One entry of a flattened tree, as a snapshot reports it. */
export interface FlatEntry {
  p: string;
  type: 'file' | 'dir';
  id: number;
  nlink: number;
  size?: number;
  sha?: string;
  x: Record<string, string>;
}

export class Model {
  readonly root: DirNode;
  private nextId: number;

  /** ids start at idBase so that models of different workers never share one. */
  constructor(idBase: number) {
    this.root = { kind: 'dir', id: idBase, children: new Map(), xattrs: new Map() };
    this.nextId = idBase + 1;
  }

  /** Directory link count: "." and the entry in its parent, plus each subdirectory's "..". */
  static dirNlink(d: DirNode): number {
    let n = 2;
    for (const c of d.children.values()) if (c.kind === 'dir') n++;
    return n;
  }

  private resolveParent(parts: string[]): { dir: DirNode; name: string } {
    let node: Node = this.root;
    for (const c of parts.slice(0, -1)) {
      if (node.kind !== 'dir') fail('ENOTDIR');
      const child: Node | undefined = (node as DirNode).children.get(c);
      if (!child) fail('ENOENT');
      node = child as Node;
    }
    if (node.kind !== 'dir') fail('ENOTDIR');
    return { dir: node as DirNode, name: parts[parts.length - 1] as string };
  }

  private lookup(path: string): Node {
    if (comps(path).length === 0) return this.root;
    const { dir, name } = this.resolveParent(comps(path));
    return dir.children.get(name) ?? fail('ENOENT');
  }

  /** The node at a path, or undefined (no errno): for generators and checks. */
  find(path: string): Node | undefined {
    try {
      return this.lookup(path);
    } catch {
      return undefined;
    }
  }

  private newFile(): FileNode {
    return { kind: 'file', id: this.nextId++, data: Buffer.alloc(0), nlink: 1, xattrs: new Map() };
  }

  private openForWrite(path: string): FileNode {
    const n = this.lookup(path);
    if (n.kind === 'dir') fail('EISDIR');
    return n as FileNode;
  }

  static writeAt(f: FileNode, off: number, buf: Buffer): void {
    if (buf.length === 0) return;
    const end = off + buf.length;
    if (end > f.data.length) {
      const grown = Buffer.alloc(end);
      f.data.copy(grown);
      f.data = grown;
    }
    buf.copy(f.data, off);
  }

  static truncateTo(f: FileNode, size: number): void {
    if (size <= f.data.length) f.data = Buffer.from(f.data.subarray(0, size));
    else {
      const grown = Buffer.alloc(size);
      f.data.copy(grown);
      f.data = grown;
    }
  }

  private removeName(dir: DirNode, name: string): void {
    const n = dir.children.get(name);
    dir.children.delete(name);
    if (n && n.kind === 'file') n.nlink--;
  }

  /** Applies an operation; returns what the system must answer. */
  apply(o: Op): Expect {
    try {
      return { ok: true, ...this.run(o) };
    } catch (err) {
      if (err instanceof ModelError) return { ok: false, err: err.errno };
      throw err;
    }
  }

  private run(o: Op): { r: Record<string, unknown>; node?: Node } {
    switch (o.op) {
      case 'mkdir': {
        const { dir, name } = this.resolveParent(comps(o.p));
        if (dir.children.has(name)) fail('EEXIST');
        dir.children.set(name, { kind: 'dir', id: this.nextId++, children: new Map(), xattrs: new Map() });
        return { r: {} };
      }
      case 'create': {
        const { dir, name } = this.resolveParent(comps(o.p));
        if (dir.children.has(name)) fail('EEXIST');
        dir.children.set(name, this.newFile());
        return { r: {} };
      }
      case 'write': {
        let f1: FileNode;
        if (o.mode === 'trunc') {
          const { dir, name } = this.resolveParent(comps(o.p));
          const n = dir.children.get(name);
          if (n && n.kind === 'dir') fail('EISDIR');
          if (n) {
            f1 = n as FileNode;
            f1.data = Buffer.alloc(0);
          } else {
            f1 = this.newFile();
            dir.children.set(name, f1);
          }
        } else {
          f1 = this.openForWrite(o.p);
        }
        const f2 = o.mode === 'two' ? this.openForWrite(o.p2 as string) : f1;
        const buf = tagData(o.tag, o.len);
        if (o.mode === 'two') {
          const half = Math.floor(buf.length / 2);
          Model.writeAt(f1, o.off, buf.subarray(0, half));
          Model.writeAt(f2, o.off + half, buf.subarray(half));
        } else {
          Model.writeAt(f1, o.off, buf);
        }
        return { r: { n: o.len } };
      }
      case 'truncate': {
        const f = this.openForWrite(o.p);
        Model.truncateTo(f, o.size);
        return { r: {} };
      }
      case 'rename':
        this.rename(o.p, o.to);
        return { r: {} };
      case 'link': {
        const src = this.lookup(o.p);
        const { dir, name } = this.resolveParent(comps(o.to));
        if (dir.children.has(name)) fail('EEXIST');
        if (src.kind === 'dir') fail('EPERM');
        (src as FileNode).nlink++;
        dir.children.set(name, src);
        return { r: {} };
      }
      case 'unlink': {
        const { dir, name } = this.resolveParent(comps(o.p));
        const n = dir.children.get(name) ?? fail('ENOENT');
        if (n.kind === 'dir') fail('EISDIR');
        this.removeName(dir, name);
        return { r: {} };
      }
      case 'rmdir': {
        const { dir, name } = this.resolveParent(comps(o.p));
        const n = dir.children.get(name) ?? fail('ENOENT');
        if (n.kind !== 'dir') fail('ENOTDIR');
        if ((n as DirNode).children.size > 0) fail('ENOTEMPTY');
        dir.children.delete(name);
        return { r: {} };
      }
      case 'fsync':
        this.openForWrite(o.p);
        return { r: {} };
      case 'setxattr': {
        const n = this.lookup(o.p);
        const has = n.xattrs.has(o.name);
        if (o.flags & XATTR_CREATE && has) fail('EEXIST');
        if (o.flags & XATTR_REPLACE && !has) fail('ENODATA');
        n.xattrs.set(o.name, o.value);
        return { r: {} };
      }
      case 'getxattr': {
        const n = this.lookup(o.p);
        return { r: { value: n.xattrs.get(o.name) ?? fail('ENODATA') } };
      }
      case 'removexattr': {
        const n = this.lookup(o.p);
        if (!n.xattrs.delete(o.name)) fail('ENODATA');
        return { r: {} };
      }
      case 'listxattr':
        return { r: { names: [...this.lookup(o.p).xattrs.keys()].sort() } };
      case 'read': {
        const n = this.lookup(o.p);
        if (n.kind === 'dir') fail('EISDIR');
        const f = n as FileNode;
        return { r: { size: f.data.length, sha: sha256(f.data) }, node: f };
      }
      case 'stat': {
        const n = this.lookup(o.p);
        if (n.kind === 'dir') return { r: { type: 'dir', nlink: Model.dirNlink(n) }, node: n };
        return { r: { type: 'file', nlink: n.nlink, size: n.data.length }, node: n };
      }
      case 'listdir': {
        const n = this.lookup(o.p);
        if (n.kind !== 'dir') fail('ENOTDIR');
        return { r: { names: [...(n as DirNode).children.keys()].sort() } };
      }
      case 'unlinkOpen': {
        const f = this.openForWrite(o.p);
        const { dir, name } = this.resolveParent(comps(o.p));
        this.removeName(dir, name);
        Model.writeAt(f, o.off, tagData(o.tag, o.len));
        return { r: { size: f.data.length, sha: sha256(f.data) }, node: f };
      }
      case 'put': {
        const { dir, name } = this.resolveParent(comps(o.p));
        const n = dir.children.get(name);
        if (n && n.kind === 'dir') fail('EISDIR');
        const f = (n as FileNode | undefined) ?? this.newFile();
        f.data = Buffer.from(o.b64, 'base64');
        dir.children.set(name, f);
        return { r: {} };
      }
      case 'session': {
        const f = this.openForWrite(o.p);
        return { r: { res: o.acts.map((a) => this.act(f, a)) } };
      }
    }
  }

  private act(f: FileNode, a: Act): ActResult {
    const sub = (e: Expect, values: (r: Record<string, unknown>) => unknown[] = () => []): ActResult =>
      e.ok ? ['ok', ...values(e.r)] : ['err', e.err];
    switch (a[0]) {
      case 'w':
        Model.writeAt(f, a[1], tagData(a[3], a[2]));
        return ['ok'];
      case 't':
        Model.truncateTo(f, a[1]);
        return ['ok'];
      case 'r': {
        const b = f.data.subarray(Math.min(a[1], f.data.length), Math.min(a[1] + a[2], f.data.length));
        return ['ok', b.length, sha256(b)];
      }
      case 's':
        return ['ok'];
      case 'mv':
        return sub(this.apply({ op: 'rename', p: a[1], to: a[2] }));
      case 'ln':
        return sub(this.apply({ op: 'link', p: a[1], to: a[2] }));
      case 'rm':
        return sub(this.apply({ op: 'unlink', p: a[1] }));
      case 'ls':
        return sub(this.apply({ op: 'listdir', p: a[1] }), (r) => [r.names]);
      case 'rd':
        return sub(this.apply({ op: 'read', p: a[1] }), (r) => [r.size, r.sha]);
    }
  }

  /** rename(2) as Linux does it, checks in the kernel's order (do_renameat2, then vfs_rename, then the file system). */
  private rename(from: string, to: string): void {
    const A = comps(from);
    const B = comps(to);
    const pa = this.resolveParent(A);
    const pb = this.resolveParent(B);
    const src = pa.dir.children.get(pa.name) ?? fail('ENOENT');
    const dst = pb.dir.children.get(pb.name);
    const adir = A.slice(0, -1);
    const bdir = B.slice(0, -1);
    const isPrefix = (p: string[], q: string[]) => p.length < q.length && p.every((c, k) => q[k] === c);
    if (pa.dir !== pb.dir) {
      // lock_rename's trap: the child of the upper directory on the path to the lower one.
      if (isPrefix(adir, bdir) && bdir[adir.length] === pa.name) fail('EINVAL'); // source is an ancestor of the target
      if (isPrefix(bdir, adir) && dst !== undefined && adir[bdir.length] === pb.name) fail('ENOTEMPTY'); // target is an ancestor of the source
    }
    if (dst === src) return; // the same file (the same name, or two hard links of one inode): nothing happens
    if (dst) {
      if (src.kind === 'dir' && dst.kind !== 'dir') fail('ENOTDIR');
      if (src.kind !== 'dir' && dst.kind === 'dir') fail('EISDIR');
      if (dst.kind === 'dir' && dst.children.size > 0) fail('ENOTEMPTY');
      this.removeName(pb.dir, pb.name);
    }
    pa.dir.children.delete(pa.name);
    pb.dir.children.set(pb.name, src);
  }

  /** Every entry below the root, depth first in name order, paths prefixed with prefix. */
  flatten(prefix = ''): FlatEntry[] {
    const out: FlatEntry[] = [];
    const walk = (d: DirNode, base: string) => {
      for (const name of [...d.children.keys()].sort()) {
        const n = d.children.get(name) as Node;
        const p = base ? `${base}/${name}` : name;
        const x = Object.fromEntries([...n.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        if (n.kind === 'dir') {
          out.push({ p, type: 'dir', id: n.id, nlink: Model.dirNlink(n), x });
          walk(n, p);
        } else {
          out.push({ p, type: 'file', id: n.id, nlink: n.nlink, size: n.data.length, sha: sha256(n.data), x });
        }
      }
    };
    walk(this.root, prefix);
    return out;
  }

  /** Paths of every node (for generators), files and dirs separately. */
  paths(): { files: string[]; dirs: string[] } {
    const files: string[] = [];
    const dirs: string[] = [];
    const walk = (d: DirNode, base: string) => {
      for (const [name, n] of d.children) {
        const p = base ? `${base}/${name}` : name;
        if (n.kind === 'dir') {
          dirs.push(p);
          walk(n, p);
        } else files.push(p);
      }
    };
    walk(this.root, '');
    return { files, dirs };
  }

  /**
   * Operations that build this model's current state from an empty directory: directories, each file
   * written once and linked under its other names, extended attributes.
   */
  setupOps(): Op[] {
    const ops: Op[] = [];
    const seen = new Map<number, string>();
    const xattrs = (n: Node, p: string) => {
      for (const [name, value] of n.xattrs) ops.push({ op: 'setxattr', p, name, value, flags: 0 });
    };
    const walk = (d: DirNode, base: string) => {
      for (const name of [...d.children.keys()].sort()) {
        const n = d.children.get(name) as Node;
        const p = base ? `${base}/${name}` : name;
        if (n.kind === 'dir') {
          ops.push({ op: 'mkdir', p });
          xattrs(n, p);
          walk(n, p);
        } else if (seen.has(n.id)) {
          ops.push({ op: 'link', p: seen.get(n.id) as string, to: p });
        } else {
          seen.set(n.id, p);
          ops.push({ op: 'put', p, b64: n.data.toString('base64') });
          xattrs(n, p);
        }
      }
    };
    walk(this.root, '');
    return ops;
  }

  /** Ids of every live node. */
  liveIds(): Set<number> {
    const ids = new Set<number>([this.root.id]);
    const walk = (d: DirNode) => {
      for (const n of d.children.values()) {
        ids.add(n.id);
        if (n.kind === 'dir') walk(n);
      }
    };
    walk(this.root);
    return ids;
  }
}
