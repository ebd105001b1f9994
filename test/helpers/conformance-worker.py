#!/usr/bin/env python3
# Conformance worker: runs the system calls of test/mount/conformance.test.ts as whatever user it was
# started as (the harness spawns one per user, with uid and gid set), and answers with each call's
# result or errno name. It never runs inside the serving process, so a FUSE call can only stall it.
#
# Protocol: one JSON object per line on stdin, {"i": id, "dir": path, "steps": [...], "stop": bool},
# answered by one line {"i": id, "results": [...]}. A step is {"op": name, ...}, its paths relative to
# `dir`; its result is "OK", "OK <value>" or an errno name ("EEXIST"). With "stop", the steps after the
# first failure are not run (their results are "SKIPPED"). Opens always add O_NONBLOCK, so a FIFO can
# never block the worker.

import errno
import json
import os
import stat
import sys

KINDS = {
    'reg': stat.S_IFREG, 'fifo': stat.S_IFIFO, 'sock': stat.S_IFSOCK, 'chr': stat.S_IFCHR, 'blk': stat.S_IFBLK,
}
FLAGS = {
    'O_RDONLY': os.O_RDONLY, 'O_WRONLY': os.O_WRONLY, 'O_RDWR': os.O_RDWR, 'O_CREAT': os.O_CREAT,
    'O_EXCL': os.O_EXCL, 'O_TRUNC': os.O_TRUNC, 'O_NOFOLLOW': os.O_NOFOLLOW, 'O_DIRECTORY': os.O_DIRECTORY,
    'O_APPEND': os.O_APPEND,
}
ACCESS = {'R': os.R_OK, 'W': os.W_OK, 'X': os.X_OK}


def flags_of(names):
    f = os.O_NONBLOCK | os.O_CLOEXEC
    for n in names:
        f |= FLAGS[n]
    return f


def kind_of(mode):
    return {
        stat.S_IFREG: 'file', stat.S_IFDIR: 'dir', stat.S_IFLNK: 'symlink', stat.S_IFIFO: 'fifo',
        stat.S_IFSOCK: 'sock', stat.S_IFCHR: 'chr', stat.S_IFBLK: 'blk',
    }.get(stat.S_IFMT(mode), 'other')


def snapshot(top):
    """lstat of `top` and everything below it (directories in name order), keyed by relative path."""
    out = {}

    def visit(rel):
        path = os.path.join(top, rel) if rel else top
        try:
            st = os.lstat(path)
        except OSError as e:
            out[rel or '.'] = errno.errorcode.get(e.errno, str(e.errno))
            return
        out[rel or '.'] = {
            'type': kind_of(st.st_mode), 'mode': stat.S_IMODE(st.st_mode), 'nlink': st.st_nlink, 'uid': st.st_uid,
            'gid': st.st_gid, 'size': st.st_size, 'ino': st.st_ino, 'mtime': str(st.st_mtime_ns), 'ctime': str(st.st_ctime_ns),
        }
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                out[(rel or '.') + '/*'] = errno.errorcode.get(e.errno, str(e.errno))
                return
            for name in names:
                visit(os.path.join(rel, name) if rel else name)

    visit('')
    return out


def write_fd(fd, data, offset):
    buf = data.encode()
    return os.pwrite(fd, buf, offset) if offset is not None else os.write(fd, buf)


def deep_chain(base, depth, length):
    """mkdirat a chain of `depth` directories named with `length` bytes each, past PATH_MAX if long
    enough, through directory descriptors; creates, writes and fstatats a file at the bottom; then
    removes it all again, bottom up (tools that work by path could not)."""
    name = 'd' * length
    fds = [os.open(base, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for _ in range(depth):
            os.mkdir(name, 0o755, dir_fd=fds[-1])
            fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        fd = os.open('leaf', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fds[-1])
        os.write(fd, b'deep')
        os.close(fd)
        st = os.stat('leaf', dir_fd=fds[-1], follow_symlinks=False)
        os.unlink('leaf', dir_fd=fds[-1])
        for parent in reversed(fds[:-1]):
            os.rmdir(name, dir_fd=parent)
        return 'OK %d' % st.st_size
    finally:
        for fd in fds:
            os.close(fd)


def run_step(base, s):
    op = s['op']
    p = os.path.join(base, s['path']) if 'path' in s else None
    if op == 'mkdir':
        os.mkdir(p, s.get('mode', 0o755))
    elif op == 'open':
        fd = os.open(p, flags_of(s['flags']), s.get('mode', 0o644))
        try:
            if 'write' in s:
                write_fd(fd, s['write'], s.get('offset'))
            if 'ftruncate' in s:
                os.ftruncate(fd, s['ftruncate'])
        finally:
            os.close(fd)
    elif op == 'mknod':
        dev = os.makedev(*s['dev']) if 'dev' in s else 0
        os.mknod(p, KINDS[s['kind']] | s.get('mode', 0o644), dev)
    elif op == 'symlink':
        os.symlink(s['target'], p)
    elif op == 'link':
        os.link(os.path.join(base, s['src']), os.path.join(base, s['dst']), follow_symlinks=False)
    elif op == 'rename':
        os.rename(os.path.join(base, s['src']), os.path.join(base, s['dst']))
    elif op == 'unlink':
        os.unlink(p)
    elif op == 'rmdir':
        os.rmdir(p)
    elif op == 'chmod':
        os.chmod(p, s['mode'])
    elif op == 'chown':
        os.chown(p, s['uid'], s['gid'], follow_symlinks=s.get('follow', True))
    elif op == 'utime':
        # [atime, mtime] as (seconds, nanoseconds) pairs; null: now
        times = s.get('times')
        if times:
            os.utime(p, ns=tuple(sec * 10**9 + nsec for sec, nsec in times), follow_symlinks=False)
        else:
            os.utime(p, None, follow_symlinks=False)
    elif op == 'truncate':
        os.truncate(p, s['size'])
    elif op == 'lstat':
        st = os.lstat(p)
        return 'OK %s' % kind_of(st.st_mode)
    elif op == 'stat':
        st = os.stat(p)
        return 'OK %s' % kind_of(st.st_mode)
    elif op == 'access':
        return 'OK %s' % ('yes' if os.access(p, ACCESS[s['mode']], follow_symlinks=False) else 'no')
    elif op == 'listdir':
        return 'OK %s' % ','.join(sorted(os.listdir(p)))
    elif op == 'deep':
        return deep_chain(p, s['depth'], s['length'])
    elif op == 'snapshot':
        return snapshot(p)
    else:
        raise ValueError('unknown op %s' % op)
    return 'OK'


def handle(req):
    base = req['dir']
    results = []
    failed = False
    for s in req['steps']:
        if failed and req.get('stop'):
            results.append('SKIPPED')
            continue
        try:
            results.append(run_step(base, s))
        except OSError as e:
            results.append(errno.errorcode.get(e.errno, str(e.errno)))
            failed = True
    return results


def main():
    os.umask(0o022)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        try:
            out = {'i': req['i'], 'results': handle(req)}
        except Exception as e:  # a bug in a request: answered, so the harness can report it
            out = {'i': req['i'], 'error': '%s: %s' % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
