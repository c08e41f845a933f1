"""A real second user for the security tests: create it, act as it, watch what the engine touches.

``ensure_user`` makes a dedicated system user (idempotent: it is reused when
it exists, so a CI runner or a second session finds it ready); ``run_as`` runs
a command as that user through ``setpriv`` with no supplementary groups.
``snapshot`` records everything a user could notice about a tree (type, mode,
owner, inode, size, mtime, content, symlink target) so that a before/after
comparison shows any write; ``ReachesInto`` is a fault-proxy observer that
records every call resolving a path into a given directory.
"""

import collections
import hashlib
import os
import pwd
import shutil
import stat
import subprocess

User = collections.namedtuple('User', 'name uid gid')


class Unavailable(Exception):
    """The machine cannot host a second user (not root, or no useradd/setpriv)."""


def ensure_user(name):
    """The system user ``name``, created (no home, no login shell) when it does not exist yet."""
    if os.geteuid() != 0 or not shutil.which('setpriv'):
        raise Unavailable('needs root and setpriv(1) to act as another user')
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which('useradd')
        if useradd is None:
            raise Unavailable('useradd(8) is not installed') from None
        made = subprocess.run([useradd, '--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent',
                               '--shell', '/usr/sbin/nologin', name],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise Unavailable('could not create user %s: %s' % (name, made.stdout.decode(errors='replace'))) from None
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


def run_as(user, *argv, check=True, timeout=120, env=None):
    """Run ``argv`` as ``user`` (real and effective ids, no supplementary groups)."""
    proc = subprocess.run(['setpriv', '--reuid=%d' % user.uid, '--regid=%d' % user.gid, '--clear-groups', '--']
                          + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          check=False, env=env)
    if check and proc.returncode != 0:
        raise AssertionError('%s as %s failed (%d): %s'
                             % (' '.join(argv), user.name, proc.returncode, proc.stderr.decode(errors='replace')))
    return proc


def chown_tree(path, user):
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, user.uid, user.gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), user.uid, user.gid)


def snapshot(root, inodes=True):
    """``{relative path: what a user sees}`` for ``root`` and everything below it (no atime, ctime or link count).

    ``inodes=False`` leaves inode numbers out: for a tree a restore may legitimately rebuild.
    """
    seen = {}
    if not os.path.lexists(root):
        return seen
    pending = ['']
    while pending:
        rel = pending.pop()
        path = os.path.join(root, rel) if rel else root
        st = os.lstat(path)
        item = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino if inodes else None)
        if stat.S_ISDIR(st.st_mode):
            seen[rel or '.'] = item + (st.st_mtime_ns,)
            pending.extend(os.path.join(rel, name) if rel else name for name in os.listdir(path))
        elif stat.S_ISLNK(st.st_mode):
            seen[rel or '.'] = item + (os.readlink(path),)
        elif stat.S_ISREG(st.st_mode):
            with open(path, 'rb') as handle:
                seen[rel or '.'] = item + (st.st_size, st.st_mtime_ns, hashlib.sha256(handle.read()).hexdigest())
        else:
            seen[rel or '.'] = item
    return seen


def changes(before, after):
    """Readable differences between two snapshots."""
    return sorted('%s: %s -> %s' % (path, before.get(path), after.get(path))
                  for path in set(before) | set(after) if before.get(path) != after.get(path))


_FOLLOWS_FINAL = frozenset(('stat', 'listdir', 'scandir', 'walk', 'chmod', 'chown', 'utime', 'truncate', 'access',
                            'statvfs', 'setxattr', 'getxattr', 'path.isdir', 'path.exists', 'path.isfile'))


class ReachesInto:
    """Observer: every call that resolves a symlink leading into ``outside``.

    A call on the symlink itself (lstat, unlink, rename over it, open with
    O_NOFOLLOW) does not follow it; a call through it (a parent component, or the
    final one for calls that follow it) does.
    """

    def __init__(self, outside):
        self.outside = os.path.realpath(outside)
        self.reached = []

    def _inside(self, path):
        return path == self.outside or path.startswith(self.outside + '/')

    @staticmethod
    def _follows_final(name, args, kwargs):
        if name == 'open':
            flags = args[1] if len(args) > 1 else kwargs.get('flags', 0)
            return not flags & os.O_NOFOLLOW
        return name in _FOLLOWS_FINAL and kwargs.get('follow_symlinks', True)

    def before(self, name, args, kwargs):
        for index, arg in enumerate(args[:2]):
            if name == 'symlink' and index == 0:
                continue  # the new link's content, not a path the call resolves
            if not (isinstance(arg, (str, bytes)) and os.fsdecode(arg).startswith('/')):
                continue
            path = os.fsdecode(arg)
            through_parent = self._inside(os.path.realpath(os.path.dirname(path)))
            through_final = index == 0 and self._follows_final(name, args, kwargs) and self._inside(
                os.path.realpath(path))
            if through_parent or through_final:
                self.reached.append('%s(%s)' % (name, path))
        return None

    def after(self, name, args, kwargs, result, token):
        pass
