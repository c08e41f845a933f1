# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Durable file-system primitives.

Every write that must survive a crash goes through here: a temporary file in
the same directory, written in full, fsynced, renamed over the target, and the
directory fsynced so the rename itself is durable.

Rules this module keeps (and the reliability tests check):

* A failed fsync is never retried.  After a failed fsync the kernel may have
  dropped the dirty pages and cleared the error; a second fsync that succeeds
  proves nothing.  The operation is aborted and the temporary file removed.
* A file with more than one hard link is never written in place: it may be
  shared with a backup.  Writers always create a new inode and rename it.
* All calls go through the module-level ``os`` name so that fault-injection
  tests can substitute a proxy and fail the k-th call.

Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import secrets

TMP_PREFIX = '.lastgood-tmp-'
COPY_CHUNK = 8 * 1024 * 1024

RENAME_EXCHANGE = 2
_SYS_RENAMEAT2 = {'x86_64': 316, 'aarch64': 276, 'i686': 353, 'i386': 353, 'armv7l': 382, 'ppc64le': 357, 's390x': 347}
AT_FDCWD = -100


class DurabilityError(OSError):
    """An fsync failed: the data may not be on disk and must not be trusted."""


def _tmp_name(directory, base):
    return os.path.join(directory, '%s%s.%s' % (TMP_PREFIX, base[:80], secrets.token_hex(4)))


def fsync_fd(fd, what):
    """fsync ``fd`` once; a failure raises DurabilityError and is never retried."""
    try:
        os.fsync(fd)
    except OSError as exc:
        raise DurabilityError(exc.errno, 'fsync failed for %s: %s (not retried; the write is abandoned)'
                              % (what, exc.strerror or exc), what) from exc


def fsync_dir(path):
    """Make a directory's entries (creations, renames, unlinks) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync_fd(fd, path)
    finally:
        os.close(fd)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _replace(path, fill, sync_dir=True):
    """Have ``fill(tmp)`` make a flushed file at a temporary name beside ``path``, then rename it over ``path``.

    On any error ``path`` is unchanged and the temporary file is removed.
    """
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    tmp = _tmp_name(directory, base)
    try:
        fill(tmp)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if sync_dir:
        fsync_dir(directory)


def atomic_write(path, data, mode=0o600, uid=None, gid=None, mtime_ns=None, sync_dir=True):
    """Replace ``path`` with ``data`` (bytes) so that a crash leaves old or new, never a mix.

    ``mode`` is applied to the new file (the umask does not apply).  ``uid``/``gid``
    are applied when given (root only).  Returns nothing; raises OSError on failure,
    in which case ``path`` is unchanged and no temporary file is left.
    """
    def fill(tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            fsync_fd(fd, tmp)
        finally:
            os.close(fd)
    _replace(path, fill, sync_dir)


def atomic_produce(path, produce, mode=0o600):
    """Replace ``path`` with the file ``produce(tmp)`` writes at ``tmp`` (same directory), durably.

    For files another program writes (``tar``, ``git bundle``): the result is fsynced, renamed
    over ``path`` and the directory fsynced, so a crash leaves the old file or the whole new one.
    On any error ``path`` is unchanged and the temporary file is removed.
    """
    def fill(tmp):
        produce(tmp)
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, mode)
            fsync_fd(fd, tmp)
        finally:
            os.close(fd)
    _replace(path, fill)


def remove_stale_temps(path):
    """Remove the temporary files that interrupted atomic writes of ``path`` left behind.

    A write killed (or whose clean-up failed on a dying disk) leaves its
    ``.lastgood-tmp-`` file; nobody else would ever remove it.  Only callers that
    hold a lock serialising every writer of ``path`` may call this: then no
    temporary file found here belongs to a write still in progress.  Returns the
    names removed.
    """
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = '%s%s.' % (TMP_PREFIX, base[:80])
    stale = [name for name in os.listdir(directory)
             if name.startswith(prefix) and len(name) == len(prefix) + 8
             and all(char in '0123456789abcdef' for char in name[len(prefix):])]
    for name in stale:
        os.unlink(os.path.join(directory, name))
    if stale:
        fsync_dir(directory)
    return stale


def atomic_write_text(path, text, mode=0o600, **kwargs):
    atomic_write(path, text.encode('utf-8'), mode=mode, **kwargs)


def atomic_write_json(path, obj, mode=0o600, **kwargs):
    """Write ``obj`` as canonical, sorted, indented JSON with a trailing newline.

    ASCII only (``\\uXXXX`` escapes): a name that is not UTF-8 (lone surrogates from
    ``os.fsdecode``) cannot be encoded as UTF-8, but survives the escape and reads back as itself.
    """
    text = json.dumps(obj, indent=2, sort_keys=True) + '\n'
    atomic_write_text(path, text, mode=mode, **kwargs)


def read_bytes(path, limit=None):
    """Read a whole (small) file without following a final symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, COPY_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                raise ValueError('%s is larger than %d bytes' % (path, limit))
        return b''.join(chunks)
    finally:
        os.close(fd)


def makedirs_durable(path, mode=0o700):
    """Create ``path`` and missing parents, fsyncing each parent that gained an entry."""
    path = os.path.abspath(os.fspath(path))
    missing = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            continue
        fsync_dir(os.path.dirname(directory))
    return bool(missing)


def _load_renameat2():
    machine = os.uname().machine
    number = _SYS_RENAMEAT2.get(machine)
    libc_name = ctypes.util.find_library('c')
    if not libc_name:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    func = getattr(libc, 'renameat2', None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        func.restype = ctypes.c_int
        return func
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long

    def via_syscall(olddirfd, oldpath, newdirfd, newpath, flags):
        return syscall(ctypes.c_long(number), ctypes.c_int(olddirfd), ctypes.c_char_p(oldpath),
                       ctypes.c_int(newdirfd), ctypes.c_char_p(newpath), ctypes.c_uint(flags))
    return via_syscall


_RENAMEAT2 = _load_renameat2()


def _exchange_syscall(first, second):
    if _RENAMEAT2 is None:
        raise OSError(errno.ENOSYS, 'renameat2 is not available')
    rc = _RENAMEAT2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), first, None, second)


def exchange(first, second):
    """Atomically swap two paths on the same filesystem (RENAME_EXCHANGE).

    Raises OSError with errno ENOSYS/EINVAL/ENOTSUP when the kernel or filesystem
    cannot exchange; callers then fall back to two journalled renames.
    """
    _exchange_syscall(first, second)


EXCHANGE_UNSUPPORTED = frozenset((errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP))


def remove_tree(path):
    """Remove a directory tree without following symlinks; missing is fine.

    Used only for staging and temporary trees that this engine created itself.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not _is_dir(st.st_mode):
        os.unlink(path)
        return
    for name in os.listdir(path):
        remove_tree(os.path.join(path, name))
    os.rmdir(path)


def _is_dir(mode):
    return (mode & 0o170000) == 0o040000
