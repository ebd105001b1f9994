#!/usr/bin/env python3
# Stress worker: performs file-system operations on a mounted svault with real system calls and reports
# each result (or errno) as one JSON line. It is a plain process of its own (never the serving process),
# so a blocked FUSE call can only stall this worker.
#
# Protocol: one JSON object per line on stdin, {"i": id, "op": name, ...}; for each, zero or more
# progress lines {"i": id, "step": k} (k system calls of a compound operation have returned), then one
# final line {"i": id, "ok": true, ...results} or {"i": id, "ok": false, "err": "ENOENT", "step": k}.
# Paths are relative to the root given as argv[1]. File data is never sent: it is derived from a tag,
# shake256(tag) truncated to the length, exactly as test/stress/data.ts does.
#
# Observations (read, stat, snapshot, scan) first refresh the kernel's cached attributes with
# statx(AT_STATX_FORCE_SYNC): the mount lets the kernel cache attributes for a second, and hard links
# are separate kernel inodes, so without it a read through one name can stop at the size another name
# had a moment ago (README, known limitations). --no-sync turns the refresh off.

import base64
import ctypes
import errno
import hashlib
import json
import os
import struct
import sys
import time

ROOT = sys.argv[1]
FORCE_SYNC = '--no-sync' not in sys.argv[2:]
# libfuse renames a file unlinked while open to .fuse_hidden* and removes it after the last close, which
# the kernel reports asynchronously: with --wait-hidden, an rmdir or rename that fails with ENOTEMPTY only
# because of such files is retried for up to a second.
WAIT_HIDDEN = '--wait-hidden' in sys.argv[2:]

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_STATX_FORCE_SYNC = 0x2000
STATX_BASIC_STATS = 0x7FF

_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, 'statx', None)


class Stat:
    __slots__ = ('mode', 'nlink', 'ino', 'size')

    def __init__(self, mode, nlink, ino, size):
        self.mode = mode
        self.nlink = nlink
        self.ino = ino
        self.size = size


def xstat(path):
    """lstat, refreshed from the server first when FORCE_SYNC."""
    if FORCE_SYNC and _statx is not None:
        buf = ctypes.create_string_buffer(256)
        if _statx(AT_FDCWD, os.fsencode(path), AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, buf) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        nlink, = struct.unpack_from('<I', buf, 16)
        mode, = struct.unpack_from('<H', buf, 28)
        ino, size = struct.unpack_from('<QQ', buf, 32)
        return Stat(mode, nlink, ino, size)
    st = os.lstat(path)
    return Stat(st.st_mode, st.st_nlink, st.st_ino, st.st_size)


def data(tag, n):
    return hashlib.shake_256(tag.encode()).digest(n) if n > 0 else b''


def full(p):
    return os.path.join(ROOT, p) if p else ROOT


def kind(mode):
    if (mode & 0o170000) == 0o040000:
        return 'dir'
    if (mode & 0o170000) == 0o100000:
        return 'file'
    return 'other'


def read_fd(fd):
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        chunks.append(b)
    return b''.join(chunks)


def read_path(path):
    xstat(path)  # refresh the cached size first
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def pwrite_all(fd, buf, off):
    done = 0
    while done < len(buf):
        done += os.pwrite(fd, buf[done:], off + done)
    return done


def xattrs_of(path):
    out = {}
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        out[name] = os.getxattr(path, name, follow_symlinks=False).hex()
    return out


def only_hidden(d):
    try:
        names = os.listdir(d)
    except OSError:
        return False
    return len(names) > 0 and all(n.startswith('.fuse_hidden') for n in names)


def retry_hidden(fn, d):
    for _ in range(50):
        try:
            return fn()
        except OSError as e:
            if not (WAIT_HIDDEN and e.errno == errno.ENOTEMPTY and only_hidden(d)):
                raise
        time.sleep(0.02)
    return fn()


def entry(path, rel, with_data):
    st = xstat(path)
    e = {'p': rel, 'type': kind(st.mode), 'nlink': st.nlink, 'ino': st.ino, 'x': xattrs_of(path)}
    if e['type'] == 'file':
        e['size'] = st.size
        if with_data:
            b = read_path(path)
            e['sha'] = hashlib.sha256(b).hexdigest()
            e['len'] = len(b)
    return e


def walk(rel, with_data, out):
    path = full(rel)
    for name in sorted(os.listdir(path)):
        child = f'{rel}/{name}' if rel else name
        e = entry(full(child), child, with_data)
        out.append(e)
        if e['type'] == 'dir':
            walk(child, with_data, out)


class Progress:
    """Counts the system calls of a compound operation and reports each as a step line."""

    def __init__(self, i):
        self.i = i
        self.k = 0

    def step(self):
        self.k += 1
        emit({'i': self.i, 'step': self.k})


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(',', ':')) + '\n')
    sys.stdout.flush()


def do(req, prog):
    op = req['op']
    p = full(req.get('p', ''))

    if op == 'mkdir':
        os.mkdir(p, 0o755)
        return {}
    if op == 'create':
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        return {}
    if op == 'write':
        # mode: plain (O_WRONLY), trunc (O_WRONLY|O_CREAT|O_TRUNC), two (a second handle, maybe through
        # another name p2, writes the second half; the first handle is closed first).
        mode = req.get('mode', 'plain')
        flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if mode == 'trunc' else 0)
        buf = data(req['tag'], req['len'])
        fd = os.open(p, flags, 0o644)
        try:
            if mode == 'two':
                fd2 = os.open(full(req['p2']), os.O_WRONLY)
                try:
                    half = len(buf) // 2
                    n = pwrite_all(fd, buf[:half], req['off'])
                    n += pwrite_all(fd2, buf[half:], req['off'] + half)
                    if req.get('fsync'):
                        os.fsync(fd2)
                finally:
                    os.close(fd)
                    fd = -1
                    os.close(fd2)
            else:
                n = pwrite_all(fd, buf, req['off'])
                if req.get('fsync'):
                    os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        return {'n': n}
    if op == 'put':
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            pwrite_all(fd, base64.b64decode(req['b64']), 0)
        finally:
            os.close(fd)
        return {}
    if op == 'truncate':
        if req.get('via') == 'fd':
            fd = os.open(p, os.O_WRONLY)
            try:
                os.ftruncate(fd, req['size'])
            finally:
                os.close(fd)
        else:
            os.truncate(p, req['size'])
        return {}
    if op == 'rename':
        retry_hidden(lambda: os.rename(p, full(req['to'])), full(req['to']))
        return {}
    if op == 'link':
        os.link(p, full(req['to']))
        return {}
    if op == 'unlink':
        os.unlink(p)
        return {}
    if op == 'rmdir':
        retry_hidden(lambda: os.rmdir(p), p)
        return {}
    if op == 'fsync':
        fd = os.open(p, os.O_WRONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return {}
    if op == 'setxattr':
        os.setxattr(p, req['name'], bytes.fromhex(req['value']), req.get('flags', 0))
        return {}
    if op == 'getxattr':
        return {'value': os.getxattr(p, req['name']).hex()}
    if op == 'removexattr':
        os.removexattr(p, req['name'])
        return {}
    if op == 'listxattr':
        return {'names': sorted(os.listxattr(p))}
    if op == 'read':
        b = read_path(p)
        return {'size': len(b), 'sha': hashlib.sha256(b).hexdigest()}
    if op == 'dump':
        return {'b64': base64.b64encode(read_path(p)).decode()}
    if op == 'stat':
        st = xstat(p)
        r = {'type': kind(st.mode), 'nlink': st.nlink, 'ino': st.ino}
        if r['type'] == 'file':
            r['size'] = st.size
        return r
    if op == 'listdir':
        return {'names': sorted(os.listdir(p))}
    if op == 'unlinkOpen':
        # An open file loses its name, is written and read back through the handle, then closed.
        xstat(p)
        fd = os.open(p, os.O_RDWR)
        try:
            os.unlink(p)
            buf = data(req['tag'], req['len'])
            pwrite_all(fd, buf, req['off'])
            size = os.fstat(fd).st_size
            got = b''
            while len(got) < size:
                b = os.pread(fd, size - len(got), len(got))
                if not b:
                    break
                got += b
        finally:
            os.close(fd)
        return {'size': len(got), 'sha': hashlib.sha256(got).hexdigest()}
    if op == 'session':
        return session(req, p)
    if op == 'snapshot':
        out = []
        walk(req.get('p', ''), True, out)
        return {'entries': out}
    if op == 'scan':
        # Crash harness: every name in a directory with its content's hash (files) or type.
        out = {}
        for name in sorted(os.listdir(p)):
            q = os.path.join(p, name)
            st = xstat(q)
            if kind(st.mode) == 'file':
                b = read_path(q)
                out[name] = {'type': 'file', 'size': len(b), 'sha': hashlib.sha256(b).hexdigest()}
            else:
                out[name] = {'type': kind(st.mode)}
        return {'entries': out}
    if op == 'steps':
        return steps(req, prog)
    raise ValueError(f'unknown op {op}')


def pread_range(fd, off, n):
    got = b''
    while len(got) < n:
        b = os.pread(fd, n - len(got), off + len(got))
        if not b:
            break
        got += b
    return got


def session(req, p):
    """A file opened once, used for several calls (and namespace operations around it), then closed."""
    xstat(p)  # the handle's reads stop at the kernel's cached size: refresh it first
    fd = os.open(p, os.O_RDWR)
    res = []
    try:
        for a in req['acts']:
            k = a[0]
            try:
                if k == 'w':
                    pwrite_all(fd, data(a[3], a[2]), a[1])
                    res.append(['ok'])
                elif k == 't':
                    os.ftruncate(fd, a[1])
                    res.append(['ok'])
                elif k == 'r':
                    b = pread_range(fd, a[1], a[2])
                    res.append(['ok', len(b), hashlib.sha256(b).hexdigest()])
                elif k == 's':
                    os.fsync(fd)
                    res.append(['ok'])
                elif k == 'mv':
                    os.rename(full(a[1]), full(a[2]))
                    res.append(['ok'])
                elif k == 'ln':
                    os.link(full(a[1]), full(a[2]))
                    res.append(['ok'])
                elif k == 'rm':
                    os.unlink(full(a[1]))
                    res.append(['ok'])
                elif k == 'ls':
                    res.append(['ok', sorted(os.listdir(full(a[1])))])
                elif k == 'rd':
                    b = read_path(full(a[1]))
                    res.append(['ok', len(b), hashlib.sha256(b).hexdigest()])
                else:
                    raise ValueError(f'unknown session step {k}')
            except OSError as e:
                res.append(['err', errno.errorcode.get(e.errno, str(e.errno))])
    finally:
        os.close(fd)
    return {'res': res}


def steps(req, prog):
    """A compound operation for the crash harness: a list of system calls on numbered file handles.
    Each returned call is reported as a step, so the harness knows which states were acknowledged."""
    fds = {}
    try:
        for c in req['calls']:
            k = c[0]
            if k == 'open':  # ['open', h, path, flags]
                fl = 0
                for f in c[3].split('|'):
                    fl |= {'wronly': os.O_WRONLY, 'rdwr': os.O_RDWR, 'creat': os.O_CREAT, 'excl': os.O_EXCL, 'trunc': os.O_TRUNC}[f]
                fds[c[1]] = os.open(full(c[2]), fl, 0o644)
            elif k == 'pwrite':  # ['pwrite', h, off, len, tag]
                pwrite_all(fds[c[1]], data(c[4], c[3]), c[2])
            elif k == 'fsync':
                os.fsync(fds[c[1]])
            elif k == 'ftruncate':
                os.ftruncate(fds[c[1]], c[2])
            elif k == 'close':
                fd = fds.pop(c[1])
                os.close(fd)
            elif k == 'truncate':
                os.truncate(full(c[1]), c[2])
            elif k == 'rename':
                os.rename(full(c[1]), full(c[2]))
            elif k == 'unlink':
                os.unlink(full(c[1]))
            elif k == 'sleep':  # ['sleep', seconds]: holds the open handles meanwhile
                time.sleep(c[1])
            elif k == 'fsyncdir':  # ['fsyncdir', path]: makes the names in it durable
                dfd = os.open(full(c[1]), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            else:
                raise ValueError(f'unknown call {k}')
            prog.step()
    finally:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
    return {}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        prog = Progress(req['i'])
        try:
            res = do(req, prog)
            res['i'] = req['i']
            res['ok'] = True
            emit(res)
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno is not None else 'EUNKNOWN'
            emit({'i': req['i'], 'ok': False, 'err': name, 'msg': str(e), 'step': prog.k})
        except Exception as e:  # a harness bug, not a file-system result
            emit({'i': req['i'], 'ok': False, 'err': 'EXC', 'msg': f'{type(e).__name__}: {e}', 'step': prog.k})


if __name__ == '__main__':
    main()
