"""A model of what fsync makes durable, fed by the fault proxy's observer hook.

A killed process loses nothing that reached the page cache; a power cut loses
everything that was not fsynced.  Crash loops cannot see a missing fsync, so
this tracker replays the engine's calls against the POSIX rules instead:

* a file's data and metadata are durable once the file was fsynced after its
  last change (write, truncate, chmod, chown, utime, ...);
* a directory entry (create, rename, link, unlink, mkdir, rmdir, symlink) is
  durable once its directory was fsynced after the change.

It reports two kinds of problem:

* ``publish``: a rename, exchange or link that makes something visible under
  a real (non-temporary) name while what it publishes -- the file's data, or
  every entry and file of a directory tree -- is not yet durable.  After a power
  cut the name could point at an empty file or a half-empty tree.
* ``order``: an unlink or rmdir inside a directory tree that a rename moved, before
  that rename is durable.  After a power cut the rename may be undone while the
  deletions stay, bringing the tree back emptied (the old version a restore
  displaced, discarded before the swap was durable; a backup retention moved aside).
  Or a rename of a durable entry into a directory whose own entry is not durable
  yet: a power cut may keep the entry's removal and lose the directory with it.
* ``unsynced``: when the operation reports success, a change to a real name
  that is still not durable (checked by ``problems()``).

Names that mark unfinished work (temporary files, staging trees, displaced
copies: the ``markers``) need not be durable while they exist -- recovery
removes them -- but once one was durable, its removal must be made durable too,
or a power cut brings the leftover back.  Changes whose net effect is nil (a
temp file created and removed again before any fsync) are not reported.
"""

import os
import stat

DEFAULT_MARKERS = ('.lastgood-tmp-', '.staging-', '.restore-', '.displaced-', '.deleting-', '.trash-')

_ENTRY_CALLS = frozenset(('mkdir', 'symlink', 'link', 'unlink', 'remove', 'rmdir', 'mknod', 'mkfifo'))
_RENAME_CALLS = frozenset(('replace', 'rename', 'exchange'))
_FD_DIRTY_CALLS = frozenset(('write', 'pwrite', 'writev', 'ftruncate', 'fchmod', 'fchown', 'posix_fallocate'))
_PATH_DIRTY_CALLS = frozenset(('chmod', 'chown', 'lchown', 'lchmod', 'setxattr', 'removexattr', 'truncate'))


def _key(st):
    return (st.st_dev, st.st_ino)


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def _fd_path(fd):
    try:
        return os.readlink('/proc/self/fd/%d' % fd)
    except OSError:
        return None


def _resolve(path, dir_fd=None):
    path = os.fsdecode(path)
    if dir_fd is not None and not path.startswith('/'):
        base = _fd_path(dir_fd)
        if base is None:
            return None
        path = os.path.join(base, path)
    return os.path.abspath(path)


def _within(path, top):
    return path == top or path.startswith(top.rstrip('/') + '/')


class DurabilityTracker:
    """Observer for tests/lib/faults.FaultPlan: tracks dirty files and unsynced entries."""

    def __init__(self, markers=DEFAULT_MARKERS):
        self.markers = tuple(markers)
        self.dirty = {}          # inode key -> last known path: changed since its last fsync
        self.pending = {}        # dir inode key -> {name: inode key or None at the last fsync}
        self.dir_paths = {}      # dir inode key -> last known path
        self.violations = []     # ('publish' | 'order', message) found while the operation ran
        self.fsynced = []        # paths fsynced, in order
        self.failed_fsyncs = []  # inode keys whose fsync failed (for the never-retried check)
        self.failed_fsync_paths = []
        self.symlinks_in = {}    # dir inode key -> symlink inode keys changed in it
        self.moved = {}          # dir inode key -> {path, parents not fsynced since it was renamed}
        self.retried = []        # paths fsynced again after their fsync failed

    # -- classification ---------------------------------------------------------------

    def is_marker_path(self, path):
        return any(part.startswith(self.markers) for part in path.split('/') if part)

    # -- observer protocol ------------------------------------------------------------

    def before(self, name, args, kwargs):
        if name in _RENAME_CALLS:
            src = _resolve(args[0], kwargs.get('src_dir_fd'))
            dst = _resolve(args[1], kwargs.get('dst_dir_fd'))
            if src is None or dst is None:
                return None
            if not (self.is_marker_path(src) and self.is_marker_path(dst)):
                self._check_published(src, dst, name)
                if name == 'exchange':
                    self._check_published(dst, src, name)
            self._check_moved_into(src, dst, name)
            if name == 'exchange':
                self._check_moved_into(dst, src, name)
            return [self._entry_state(src), self._entry_state(dst)]
        if name == 'link':
            src = _resolve(args[0], kwargs.get('src_dir_fd'))
            dst = _resolve(args[1], kwargs.get('dst_dir_fd'))
            if src is None or dst is None:
                return None
            if not self.is_marker_path(dst):
                self._check_published(src, dst, name)
            return [self._entry_state(dst)]
        if name == 'symlink':
            path = _resolve(args[1], kwargs.get('dir_fd'))
            return [self._entry_state(path)] if path else None
        if name in _ENTRY_CALLS:
            path = _resolve(args[0], kwargs.get('dir_fd'))
            if path and name in ('unlink', 'remove', 'rmdir'):
                self._check_delete(path, name)
            return [self._entry_state(path)] if path else None
        if name == 'open':
            flags = args[1] if len(args) > 1 else kwargs.get('flags', 0)
            if flags & (os.O_CREAT | os.O_TRUNC):
                path = _resolve(args[0], kwargs.get('dir_fd'))
                return [self._entry_state(path)] if path else None
        if name in ('fsync', 'fdatasync'):
            return self._fd_key(args[0])
        return None

    def after(self, name, args, kwargs, result, token):
        if name in _RENAME_CALLS:
            if token:
                src = _resolve(args[0], kwargs.get('src_dir_fd'))
                dst = _resolve(args[1], kwargs.get('dst_dir_fd'))
                self._note_entries(token)
                self._moved(src, dst, swap=(name == 'exchange'))
                self._note_moved_trees(token, src, dst, swap=(name == 'exchange'))
            return
        if name in _ENTRY_CALLS or name == 'symlink':
            if token:
                self._note_entries(token)
                before = token[0][3] if token[0] else None
                if name in ('unlink', 'remove') and before in self.failed_fsyncs:
                    # the file whose fsync failed is gone; its inode number may be reused
                    self.failed_fsyncs.remove(before)
            return
        if name == 'open':
            if token:
                self._note_entries(token)
                flags = args[1] if len(args) > 1 else kwargs.get('flags', 0)
                if flags & os.O_TRUNC:
                    self._mark_fd_dirty(result)
            return
        if name in _FD_DIRTY_CALLS:
            self._mark_fd_dirty(args[0])
        elif name in ('copy_file_range', 'sendfile'):
            self._mark_fd_dirty(args[1] if name == 'copy_file_range' else args[0])
        elif name == 'utime':
            target = args[0]
            if isinstance(target, int):
                self._mark_fd_dirty(target)
            else:
                self._mark_path_dirty(_resolve(target, kwargs.get('dir_fd')), kwargs.get('follow_symlinks', True))
        elif name in _PATH_DIRTY_CALLS and isinstance(args[0], int):
            self._mark_fd_dirty(args[0])  # fsetxattr, fremovexattr
        elif name in _PATH_DIRTY_CALLS:
            follow = kwargs.get('follow_symlinks', name not in ('lchown', 'lchmod'))
            self._mark_path_dirty(_resolve(args[0], kwargs.get('dir_fd')), follow)
        elif name in ('fsync', 'fdatasync'):
            self._synced(token, args[0])

    # -- bookkeeping ------------------------------------------------------------------

    def _fd_key(self, fd):
        try:
            return _key(os.fstat(fd))
        except OSError:
            return None

    def _entry_state(self, path):
        parent, base = os.path.split(path)
        parent_st = _lstat(parent)
        if parent_st is None:
            return None
        st = _lstat(path)
        return (_key(parent_st), parent, base, _key(st) if st else None)

    def _note_entries(self, states):
        for state in states:
            if state is None:
                continue
            parent_key, parent, base, before = state
            names = self.pending.setdefault(parent_key, {})
            names.setdefault(base, before)
            self.dir_paths[parent_key] = parent

    def _note_moved_trees(self, token, src, dst, swap):
        """Remember directories a rename moved until both parents are fsynced."""
        parents = {state[0] for state in token if state is not None}
        for now in ((dst, src) if swap else (dst,)):
            st = _lstat(now)
            if st is not None and stat.S_ISDIR(st.st_mode):
                self.moved[_key(st)] = {'path': now, 'parents': set(parents)}

    def _check_delete(self, path, call):
        """Deleting inside (or the whole of) a directory tree whose move is not durable yet.

        After a power cut the move may be undone while the deletions stay: the tree
        would be back where it was, emptied -- e.g. the old version a restore displaced,
        discarded before the swap that displaced it was durable.
        """
        for info in self.moved.values():
            if _within(path, info['path']):
                self.violations.append(('order', '%s(%s) deletes inside %s before the rename that moved it there '
                                        'is durable' % (call, path, info['path'])))
                return

    def _check_moved_into(self, src, dst, call):
        """Moving a durable entry into a directory whose own entry is not durable yet.

        The entry leaves a durable place; after a power cut its removal there may
        stay while the new directory (and the entry in it) is gone: lost.
        """
        if _lstat(src) is None or not self._entry_is_durable(src):
            return
        into = os.path.dirname(dst)
        if os.path.dirname(src) != into and not self._entry_is_durable(into):
            self.violations.append(('order', '%s(%s -> %s) moves it into %s, whose own entry is not durable yet'
                                    % (call, src, dst, into)))

    def _moved(self, src, dst, swap):
        def relocate(path):
            if _within(path, src):
                return dst + path[len(src):]
            if swap and _within(path, dst):
                return src + path[len(dst):]
            return path
        self.dir_paths = {key: relocate(path) for key, path in self.dir_paths.items()}
        self.dirty = {key: relocate(path) for key, path in self.dirty.items()}
        for info in self.moved.values():
            info['path'] = relocate(info['path'])

    def _mark_fd_dirty(self, fd):
        try:
            st = os.fstat(fd)
        except OSError:
            return
        path = _fd_path(fd)
        if path is not None:
            self.dirty[_key(st)] = path
            self._note_unsyncable(path, st)

    def _mark_path_dirty(self, path, follow):
        if path is None:
            return
        try:
            st = os.stat(path) if follow else os.lstat(path)
        except OSError:
            return
        self.dirty[_key(st)] = path
        self._note_unsyncable(path, st)

    def _note_unsyncable(self, path, st):
        """A symlink or a fifo cannot be fsynced (EINVAL): its directory's fsync is the best there is."""
        if stat.S_ISLNK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            parent = _lstat(os.path.dirname(path))
            if parent is not None:
                self.symlinks_in.setdefault(_key(parent), set()).add(_key(st))

    def _synced(self, key, fd):
        if key is None:
            return
        path = _fd_path(fd)
        is_dir = os.path.isdir(path) if path else False
        if key in self.failed_fsyncs and not is_dir:
            # a directory may be fsynced again for later changes (cleanup); a file whose
            # fsync failed must be abandoned, never fsynced again and trusted
            self.retried.append(path)
        self.fsynced.append(path)
        self.dirty.pop(key, None)
        self.pending.pop(key, None)
        for moved_key in list(self.moved):
            self.moved[moved_key]['parents'].discard(key)
            if not self.moved[moved_key]['parents']:
                del self.moved[moved_key]
        # a symlink or a fifo cannot be fsynced; the best there is, is its directory's fsync
        for link_key in self.symlinks_in.pop(key, ()):
            self.dirty.pop(link_key, None)

    def failed(self, name, args, kwargs):
        """A fault hit ``name``; remember failed fsyncs for the never-retried check."""
        if name in ('fsync', 'fdatasync'):
            key = self._fd_key(args[0])
            if key is not None:
                self.failed_fsyncs.append(key)
                self.failed_fsync_paths.append(_fd_path(args[0]))

    def fsyncs_after_failure(self):
        """Paths fsynced again after an fsync of the same file or directory failed."""
        return list(self.retried)

    # -- the checks -------------------------------------------------------------------

    def _not_durable(self, counts):
        """What is not durable yet, as messages, among the files and directories ``counts(path)`` accepts."""
        found = []
        for key, path in self.dirty.items():
            if counts(path) and self._still_there(key, path):
                found.append('%s: data/metadata not fsynced' % path)
        for key, names in self.pending.items():
            directory = self.dir_paths.get(key)
            if directory is None or not counts(directory) or not self._still_there(key, directory):
                continue
            for base, before in names.items():
                st = _lstat(os.path.join(directory, base))
                if (_key(st) if st else None) != before:
                    found.append('%s: entry %r changed, directory not fsynced' % (directory, base))
        return found

    def _not_durable_below(self, top):
        """What under ``top`` (a file or a tree) is not durable yet, as messages."""
        return self._not_durable(lambda path: _within(path, top))

    def _check_published(self, published, destination, call):
        problems = self._not_durable_below(published)
        if problems:
            self.violations.append(('publish', '%s(%s -> %s) publishes what is not durable: %s'
                                    % (call, published, destination, '; '.join(sorted(problems)[:5]))))

    @staticmethod
    def _still_there(key, path):
        st = _lstat(path)
        return st is not None and _key(st) == key

    def unsynced(self):
        """Changes to real (non-marker) names that are not durable now."""
        found = []
        for key, path in self.dirty.items():
            if self.is_marker_path(path) or not self._still_there(key, path):
                continue
            st = _lstat(path)
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                found.append('%s: data/metadata written but never fsynced' % path)
        for key, names in self.pending.items():
            directory = self.dir_paths.get(key)
            if directory is None or self.is_marker_path(directory) or not self._still_there(key, directory):
                continue
            for base, before in names.items():
                st = _lstat(os.path.join(directory, base))
                now = _key(st) if st else None
                if base.startswith(self.markers):
                    # a leftover that was durable must be durably gone, or a power cut brings it back
                    if before is not None and now is None:
                        found.append('%s: removal of %r not durable (it would come back after a power cut)'
                                     % (directory, base))
                    continue
                if now != before:
                    found.append('%s: entry %r changed but the directory was never fsynced afterwards'
                                 % (directory, base))
        return sorted(found)

    def not_durable_anywhere(self, exclude=None):
        """Every change not durable yet, marker names included (for write-ahead rules); none under ``exclude``."""
        return self._not_durable(lambda path: exclude is None or not _within(path, exclude))

    def is_durable(self, path):
        """Whether ``path`` (its entry, its data, and for a directory its tree) is durable now."""
        path = os.path.abspath(path)
        return self._entry_is_durable(path) and not self._not_durable_below(path)

    def chain_is_durable(self, path, top):
        """Whether ``path`` is durable and so is the entry of each directory between it and ``top``.

        A record in a directory made by the same run is lost in a power cut with
        that directory when the directory's own entry is not durable yet.
        """
        path, top = os.path.abspath(path), os.path.abspath(top)
        if not self.is_durable(path):
            return False
        parent = os.path.dirname(path)
        while _within(parent, top) and parent != top:
            if not self._entry_is_durable(parent):
                return False
            parent = os.path.dirname(parent)
        return True

    def _entry_is_durable(self, path):
        parent, base = os.path.split(path)
        st = _lstat(parent)
        names = self.pending.get(_key(st), {}) if st is not None else {}
        if base not in names:
            return True
        now = _lstat(path)
        return (_key(now) if now else None) == names[base]

    def problems(self):
        """Everything wrong, for an operation that reported success."""
        return [message for _kind, message in self.violations] + self.unsynced()
