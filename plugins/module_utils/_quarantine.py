# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving a corrupt bookkeeping file aside: the run state, the lock, a restore journal, the audit log.

A corrupt file is evidence.  It is never edited, overwritten or deleted: it gets a new name
``<file>.corrupt-<UTC time>`` in the same directory (``-2``, ``-3``... when that name is
taken, so an earlier quarantined copy is never overwritten), is made read-only (0444), and
the directory is fsynced so the new name survives a crash.  Only then does the original name
go away, or get a replacement, so at no moment is the file's content at neither name.

The caller holds whatever lock serialises the writers of the file.
Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import errno
import os
import time

from ._fsatomic import atomic_write, fsync_dir, fsync_fd

SUFFIX = '.corrupt-'
# a file system without hard links (vfat, some FUSE) refuses the link with one of these
_NO_LINKS = frozenset((errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS))


def stamp(now=None):
    """The UTC time in a quarantined file's name: ``20261207T231500.123456Z``."""
    now = time.time() if now is None else now
    whole = int(now)
    return time.strftime('%Y%m%dT%H%M%S', time.gmtime(whole)) + '.%06dZ' % min(int((now - whole) * 1e6), 999999)


def _link_aside(path, now):
    base = '%s%s%s' % (path, SUFFIX, stamp(now))
    number = 1
    while True:
        candidate = base if number == 1 else '%s-%d' % (base, number)
        try:
            os.link(path, candidate, follow_symlinks=False)
            return candidate, True
        except FileExistsError:
            number += 1
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if not os.path.lexists(candidate):
                # the caller's lock keeps every other quarantine of this file out of the way
                os.rename(path, candidate)
                return candidate, False
            number += 1


def quarantine(path, replacement=None, mode=0o600, now=None):
    """Move the corrupt file ``path`` aside read-only; returns the quarantined path.

    ``replacement(quarantined path) -> bytes``: written atomically at ``path`` once the copy is
    safe (a lock keeps its name occupied that way); without it ``path`` is removed.  Raises OSError when
    the file could not be moved; ``path`` is then unchanged.
    """
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    quarantined, linked = _link_aside(path, now)
    fd = os.open(quarantined, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o444)
        fsync_fd(fd, quarantined)
    finally:
        os.close(fd)
    fsync_dir(directory)
    if replacement is not None:
        atomic_write(path, replacement(quarantined), mode=mode)
    elif linked:
        os.unlink(path)
        fsync_dir(directory)
    return quarantined


def quarantined_copies(path):
    """The quarantined copies of ``path``, oldest first."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, name) for name in names if name.startswith(base + SUFFIX))
