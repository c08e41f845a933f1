# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether only root and the running user can change a path: the backup store's trust rule.

A restore installs, as whoever runs it (often root), whatever the store holds.
So the store must be out of everyone else's reach: the backup root and every
directory above it, the set directory and each backup directory must be owned
by the running user or root and writable by neither group nor others -- the
rule OpenSSH applies to ``~/.ssh`` with StrictModes.  One exception: an
*ancestor* owned by root with the sticky bit (``/tmp``, ``/dev/shm``); others
can add entries there but cannot rename or remove ours, and the next component
must pass the rule itself.  A symlink on the way is followed only when root or
the running user owns it, and where it leads is checked the same way.

Once a path passed, nobody but root and the running user can change any of its
components, so the verdict holds for the rest of the run: no one else can swap
a checked directory for a symlink between the check and its use.

Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat

from ._fsatomic import fsync_dir

# The kernel's own limit on symlinks followed while resolving one path (MAXSYMLINKS).
MAX_SYMLINKS = 40


class Untrusted(Exception):
    """``path`` could be changed by someone other than root and the running user.

    ``problem`` says how (owner, mode) and ``remedy`` what an operator can do.
    """

    def __init__(self, path, problem, remedy):
        super().__init__('%s %s' % (path, problem))
        self.path = path
        self.problem = problem
        self.remedy = remedy


def user_name(uid):
    """``uid 1001 (alice)``, or ``uid 1001`` when it has no name."""
    try:
        return 'uid %d (%s)' % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return 'uid %d' % uid


def running_user():
    return user_name(os.geteuid())


def trusted_owners():
    """Who may own the store and the way to it, in words: ``root`` or ``root or uid 1001 (alice)``."""
    uid = os.geteuid()
    return 'root' if uid == 0 else 'root or %s' % user_name(uid)


def problem(st, ancestor=False):
    """Why a directory whose lstat is ``st`` is out of the running user's control, or None.

    ``ancestor``: the directory lies above the one to be used, so a root-owned
    sticky directory (``/tmp``) passes.
    """
    if st.st_uid not in (0, os.geteuid()):
        return 'is owned by %s, mode %04o' % (user_name(st.st_uid), stat.S_IMODE(st.st_mode))
    if st.st_mode & 0o022 and not (ancestor and st.st_uid == 0 and st.st_mode & stat.S_ISVTX):
        who = 'group and others' if st.st_mode & 0o022 == 0o022 else 'group' if st.st_mode & 0o020 else 'others'
        return 'is writable by %s (owned by %s, mode %04o)' % (who, user_name(st.st_uid), stat.S_IMODE(st.st_mode))
    return None


def _refuse_dir(path, st, ancestor):
    why = problem(st, ancestor)
    if why is not None:
        raise Untrusted(path, why, 'choose a backup_root whose directories all belong to %s and are not writable '
                                   'by others; or, if %s is meant for this, as root: chown root: %s; chmod go-w %s'
                                   % (trusted_owners(), path, path, path))


def _refuse_symlink(path, st):
    if st.st_uid not in (0, os.geteuid()):
        try:
            target = os.readlink(path)
        except OSError:
            target = '?'
        raise Untrusted(path, 'is a symlink to %s owned by %s' % (target, user_name(st.st_uid)),
                        'remove the symlink (rm %s) or point backup_root at a directory owned by %s'
                        % (path, trusted_owners()))


def check_dirs(path, create=False):
    """Check ``path`` and every directory above it against the rule; return whether ``path`` exists.

    The real chain is walked: each component is ``lstat``-ed, a symlink is
    followed only when its owner passes, and its target is walked the same way.
    With ``create``, missing directories are made (mode 0700, each parent
    fsynced) and checked like the others, so one planted meanwhile is refused.
    Raises Untrusted, or OSError when a component cannot be read or is not a
    directory.  Costs one ``lstat`` per component.
    """
    pending = [part for part in path.split('/') if part]
    chain = [('/', os.lstat('/'))]
    followed = 0
    while pending:
        name = pending.pop(0)
        if name == '.':
            continue
        if name == '..':
            if len(chain) > 1:
                chain.pop()
            continue
        parent, parent_st = chain[-1]
        _refuse_dir(parent, parent_st, ancestor=True)
        here = os.path.join(parent, name)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            if not create:
                return False
            try:
                os.mkdir(here, 0o700)
            except FileExistsError:
                pass
            else:
                fsync_dir(parent)
            st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode):
            _refuse_symlink(here, st)
            followed += 1
            if followed > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(here)
            if target.startswith('/'):
                del chain[1:]
            pending[:0] = [part for part in target.split('/') if part]
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), here)
        chain.append((here, st))
    _refuse_dir(chain[-1][0], chain[-1][1], ancestor=False)
    return True


def check_dir(path, st):
    """Refuse the directory ``path`` (its lstat ``st``) unless only root and the running user can change it."""
    _refuse_dir(path, st, ancestor=False)
