# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup store: verified backups of file trees, published atomically.

Layout of one set (see docs/store.md)::

    <backup_root>/<set>/                 mode 0700
        <id>/data/<absolute path without the leading />
        <id>/MANIFEST.sha256             content digests + the digest of MANIFEST.json
        <id>/MANIFEST.json               written last
        .staging-<id>/                   a backup being written; never listed
        .deleting-<id>/                  a backup being removed (retention, a rolled-back restore); never listed
        LASTGOOD                         the id of the backup marked known-good
        PINNED                           ids retention must keep, one per line

A backup is built in ``.staging-<id>``: files are copied and hashed in one read
pass (in parallel), then fsynced, then the directories; the staged tree is
verified against the manifest; the two manifest files are written; and the
directory is renamed to ``<id>`` and the set directory fsynced.  So a backup
directory either does not exist or is complete and verified, and nothing in it
is ever written again.  Leftovers of an interrupted run only carry the
``.staging-``/``.deleting-`` prefixes and ``recover()`` removes them; every
entry point that writes to the store calls it first.

Named checkpoints are pinned (listed in ``PINNED`` before they are published),
so retention keeps them until they are unpinned.  Incremental backups hardlink
files whose size, mtime, mode and owner match the previous complete backup and
reuse its digests.  A hardlinked file is re-hashed unless its inode has not
changed since the previous backup was sealed: its change time (ctime, which no
write, chmod, chown, utime, link or unlink can leave alone) is older than that
of the previous backup's ``MANIFEST.json``, and its size and mtime still match;
and that manifest's ctime is within ``SEALED_WITHIN_NS`` of its mtime (it was
written where it is, not copied there with its times kept, nor changed since).
The manifest is written only once the coarse clock the kernel stamps ctimes
with has passed every change made to the backup, so the comparison is strict.
``rehash=True`` re-hashes every hardlinked file regardless.

Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import errno
import fcntl
import hashlib
import os
import re
import secrets
import socket
import stat
import time

from . import _fsatomic
from . import _manifest
from . import _restore
from . import _trust

DEFAULT_BACKUP_ROOT = '/var/backups/lastgood'
DEFAULT_SET = 'default'
STAGING_PREFIX = '.staging-'
DELETING_PREFIX = _restore.DELETING_PREFIX
DATA_DIR = 'data'
MANIFEST_JSON = 'MANIFEST.json'
MANIFEST_SHA256 = 'MANIFEST.sha256'
LASTGOOD_FILE = 'LASTGOOD'
PINNED_FILE = 'PINNED'
CHECKSUM_MODES = ('auto', 'always')
# Work handed to a copy thread at once, in bytes; opening a file counts as _manifest.FILE_COST bytes.
COPY_BATCH = 4 * 1024 * 1024
# fsync waits on the disk, not the CPU: many in flight let the filesystem commit them together.
FSYNC_WORKERS = 32
FSYNC_BATCH = 64
# Parsed manifests a Store keeps (the newest few: a run keeps coming back to them).
MANIFEST_CACHE = 4
# clock_gettime id of CLOCK_REALTIME_COARSE on Linux, the clock file change times (ctime) are taken from;
# the time module does not name it.
_CLOCK_REALTIME_COARSE = 5
# The engine writes MANIFEST.json and renames it into place within seconds (an fsync apart): a manifest whose
# ctime is further from its mtime was copied (cp -a, rsync -a, tar keep the mtime) or changed since, and the
# files beside it were not verified where they are now.
SEALED_WITHIN_NS = 60 * 10 ** 9

# The checkpoint a run takes of the state it is about to change is named run-<run id> (playbooks/vars/run_defaults.yml).
RUN_CHECKPOINT_PREFIX = 'run-'
_LEFTOVER_PREFIXES = (STAGING_PREFIX, DELETING_PREFIX, _fsatomic.TMP_PREFIX)
_NAME_RE = re.compile(r'\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z')
AUTO_ID_RE = re.compile(r'\A[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}\Z')
_RESERVED = frozenset(('lastgood', 'latest', 'pinned', 'data'))
# The first line of a MANIFEST.json after its opening brace (keys are sorted; "created" comes first).
_CREATED_LINE_RE = re.compile(br'\A\{\n "created": "([0-9A-Za-z:.+-]{1,64})",\n')
_SUMS_MANIFEST_RE = re.compile(r'\A([0-9a-f]{64})  ' + re.escape(MANIFEST_JSON) + r'\n\Z')
_ERRNO_HINTS = {
    errno.ENOSPC: 'free space on the filesystem holding the store (or lower keep_last) and rerun',
    errno.EDQUOT: 'raise the disk quota of the store owner (or lower keep_last) and rerun',
    errno.EROFS: 'the filesystem is read-only; remount it read-write (check dmesg for why it went read-only)',
    errno.EACCES: 'run as root (become: true) or fix the permissions of the path named above',
    errno.EPERM: 'run as root (become: true) or fix the permissions of the path named above',
    errno.EIO: 'the disk reported an I/O error; check dmesg and the disk before trusting this host',
}


class StoreError(Exception):
    """A store operation failed or was refused.

    The message says what failed, where, what state the store is in now and
    what to do next.  ``path`` names the file the problem is about, when one is;
    ``settled`` tells that the message already states the outcome of a backup;
    ``unreadable`` that reading failed (an I/O error), not that content is bad.
    """

    def __init__(self, message, path=None, settled=False, unreadable=False):
        super().__init__(message)
        self.path = path
        self.settled = settled
        self.unreadable = unreadable


class _BaseDamaged(Exception):
    """Files hardlinked from the previous backup do not match its manifest."""

    def __init__(self, paths):
        super().__init__(', '.join(paths))
        self.paths = paths


def check_name(name, what='name'):
    """Return ``name`` if it is a safe set name, backup id or checkpoint name."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StoreError('%s %r is not valid: use 1 to 100 letters, digits, ".", "_" or "-", starting with a '
                         'letter or digit' % (what, name))
    if name.lower() in _RESERVED:
        raise StoreError('%s %r is reserved (%s); choose another' % (what, name, ', '.join(sorted(_RESERVED))))
    return name


def check_checkpoint_name(name):
    check_name(name, 'checkpoint name')
    if AUTO_ID_RE.match(name):
        raise StoreError('checkpoint name %r has the form of an automatic backup id; choose a descriptive name '
                         'such as "pre-upgrade-42"' % name)
    return name


def new_backup_id(now):
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now)) + '-' + secrets.token_hex(3)


def iso_utc(now):
    return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def parse_created(text):
    """Seconds since the epoch for a manifest's ``created`` field, or None if it does not parse."""
    for layout in ('%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%dT%H:%M:%SZ'):
        try:
            moment = datetime.datetime.strptime(text, layout)
        except (TypeError, ValueError):
            continue
        return moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    return None


def sums_bytes(manifest, json_bytes):
    """MANIFEST.sha256: the content digests, then the digest of MANIFEST.json itself.

    File names that are not valid UTF-8 are written as the bytes they are on disk,
    which is what ``sha256sum -c`` needs to find them.
    """
    text = manifest.sha256sum_text(prefix=DATA_DIR + '/') + '%s  %s\n' % (
        hashlib.sha256(json_bytes).hexdigest(), MANIFEST_JSON)
    return text.encode('utf-8', 'surrogateescape')


def errno_hint(exc, default='fix the cause and rerun'):
    """What an operator should do about an OSError, by errno."""
    return _ERRNO_HINTS.get(getattr(exc, 'errno', None), default)


def is_root():
    return os.geteuid() == 0


def _untrusted_error(exc, where):
    """The StoreError for a store that fails the trust rule (``exc``: a ``_trust.Untrusted``)."""
    return StoreError('refusing to use the backup store (%s): %s %s. Someone other than %s could change it, so '
                      'backups there could be read, replaced or forged, and a restore would install what they hold. '
                      'Nothing was read or written. Next: %s.'
                      % (where, exc.path, exc.problem, _trust.trusted_owners(), exc.remedy), exc.path, settled=True)


def _symlink_target(path):
    try:
        return os.readlink(path)
    except OSError:
        return '?'


def _is_dir(path):
    """Whether ``path`` is a directory (not a symlink to one).

    Only absence answers False; any other error (EIO, EACCES) raises OSError, so
    that a failing disk is never taken for a missing backup.
    """
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _exists(path):
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _reusable(base_by_path, entry, checksum):
    """The previous backup's entry for ``entry`` if its file can be hardlinked instead of copied."""
    if base_by_path is None or entry.type != 'file':
        return None
    old = base_by_path.get(entry.path)
    if old is None or old.type != 'file':
        return None
    same = (old.size, old.mtime_ns, old.mode, old.uid, old.gid) == (
        entry.size, entry.mtime_ns, entry.mode, entry.uid, entry.gid)
    if not same:
        return None
    if checksum == 'always' and entry.sha256 != old.sha256:
        return None
    return old


def _after_coarse_clock(moment_ns):
    """Return once a file changed now gets a ctime later than ``moment_ns`` (at most a clock tick).

    The kernel stamps ctimes from a coarse clock that lags the fine one by up to
    a tick: without this wait, a manifest written right after the last change to
    a backup could carry the same ctime as that change.
    """
    try:
        while time.clock_gettime_ns(_CLOCK_REALTIME_COARSE) <= moment_ns:
            time.sleep(0.001)
    except OSError:
        time.sleep(0.02)  # no coarse clock to read: wait longer than any kernel tick


def _run_parallel(func, items, workers, batch=None):
    """``[func(item) for item in items]`` on a thread pool; the first failure cancels what has not started.

    ``batch=(limit, weight)`` hands consecutive items to a worker together until
    their ``weight(item)`` adds up to ``limit``: one task per small file would spend
    more time in the pool's bookkeeping than in the file.
    """
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [func(item) for item in items]
    batches = _manifest.split_batches(items, batch[0], batch[1]) if batch else [[item] for item in items]

    def run_batch(group):
        return [func(item) for item in group]

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
        futures = [pool.submit(run_batch, batch) for batch in batches]
        try:
            return [result for future in futures for result in future.result()]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class Store:
    """One backup set: ``<backup_root>/<set_name>``.

    Use one instance per set in a process: the set lock is a ``flock`` on the
    set directory, re-entrant within the instance only.
    """

    def __init__(self, backup_root=DEFAULT_BACKUP_ROOT, set_name=DEFAULT_SET, lock_timeout=60):
        if not isinstance(backup_root, str) or not backup_root.startswith('/'):
            raise StoreError('backup_root %r must be an absolute path' % (backup_root,))
        self.backup_root = os.path.normpath(backup_root)
        self.set_name = check_name(set_name, 'backup set name')
        self.set_dir = os.path.join(self.backup_root, self.set_name)
        self.lock_timeout = lock_timeout
        self.host = socket.gethostname()
        self._lock_depth = 0
        # backup id -> (MANIFEST.json bytes, MANIFEST.sha256 bytes, Manifest): listing, resolving and
        # restoring load the same manifest several times in one run; identical bytes parse identically.
        self._manifests = {}
        # what recover() settled or removed through this instance, for modules to report
        self.recovered = []
        # run checkpoints whose pins retention released (keep_runs) through this instance
        self.released = []
        # The backup root and the directories above it passed the trust rule: only root and the running user can
        # change them, so the verdict holds for the rest of the run.
        self._root_trusted = False

    # -- paths --------------------------------------------------------------------------

    def backup_dir(self, backup_id):
        return os.path.join(self.set_dir, check_name(backup_id, 'backup id'))

    def data_dir(self, backup_id):
        return os.path.join(self.backup_dir(backup_id), DATA_DIR)

    def manifest_path(self, backup_id):
        return os.path.join(self.backup_dir(backup_id), MANIFEST_JSON)

    @property
    def _lastgood_path(self):
        return os.path.join(self.set_dir, LASTGOOD_FILE)

    @property
    def _pinned_path(self):
        return os.path.join(self.set_dir, PINNED_FILE)

    def check_trust(self):
        """Refuse a store someone other than root and the running user could change; whether the set exists.

        Every entry point calls this (through ``_set_dir_exists``) before it reads
        or writes anything in the store; see ``_trust`` for the rule.
        """
        return self._set_dir_exists()

    def _set_dir_exists(self):
        """Whether the set directory exists, once the store passed the trust rule.

        The backup root and every directory above it are checked first (once per
        instance), then the set directory (every call).  A set directory that is a
        symlink is refused whoever owns it: another user who could write to the
        backup root may have planted it to redirect the backups (and LASTGOOD,
        pins, manifests); the lock opens it with ``O_NOFOLLOW``.
        """
        if not self._root_trusted and not self._check_root():
            return False
        try:
            st = os.lstat(self.set_dir)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise StoreError('cannot read %s: %s. Nothing was changed. Next: %s.'
                             % (self._where(), exc, errno_hint(exc)), self.set_dir, unreadable=True) from exc
        if stat.S_ISDIR(st.st_mode):
            self._check_dir(self.set_dir, st)
            return True
        what = 'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'
        raise StoreError('the set directory %s is %s; refusing to follow it (someone who can write to %s may have '
                         'planted it to redirect the backups). Nothing was read or written. Next: inspect it '
                         '(ls -l %s), remove it, make sure only root can write to %s, and rerun.'
                         % (self.set_dir, what, self.backup_root, self.set_dir, self.backup_root), self.set_dir)

    def _check_root(self, create=False):
        """Check (with ``create``: make) the backup root and the directories above it; whether it exists."""
        try:
            exists = _trust.check_dirs(self.backup_root, create=create)
        except _trust.Untrusted as exc:
            raise _untrusted_error(exc, self._where()) from None
        except OSError as exc:
            raise StoreError('cannot %s the backup root %s: %s. Nothing was changed. Next: %s.'
                             % ('create' if create else 'check', self.backup_root, exc, errno_hint(exc)),
                             self.backup_root, unreadable=True) from exc
        self._root_trusted = exists
        return exists

    def _make_set_dir(self):
        """Create the set directory (and the backup root), each checked like an existing one."""
        self._check_root(create=True)
        try:
            os.mkdir(self.set_dir, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError('cannot create %s: %s. No backup was touched. Next: %s.'
                             % (self._where(), exc, errno_hint(exc)), self.set_dir) from exc
        else:
            try:
                _fsatomic.fsync_dir(self.backup_root)
            except OSError as exc:
                raise StoreError('cannot flush the backup root %s after creating %s: %s. Nothing else was changed. '
                                 'Next: %s.' % (self.backup_root, self.set_dir, exc, errno_hint(exc)),
                                 self.backup_root) from exc
        # whatever is there now (made here or planted meanwhile) passes the same checks
        self._set_dir_exists()

    def _check_dir(self, path, st):
        try:
            _trust.check_dir(path, st)
        except _trust.Untrusted as exc:
            raise _untrusted_error(exc, self._where()) from None

    def _check_backup_dir(self, backup_id):
        """Refuse a backup directory that is a symlink or that someone else could change."""
        directory = self.backup_dir(backup_id)
        try:
            st = os.lstat(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreError('cannot read backup %s in %s: %s' % (backup_id, self._where(), exc), directory,
                             unreadable=True) from exc
        if stat.S_ISLNK(st.st_mode):
            raise StoreError('backup %s in %s is a symlink (to %s), not a directory; it is never followed and must '
                             'not be used. Nothing was read. Next: remove %s.'
                             % (backup_id, self._where(), _symlink_target(directory), directory), directory)
        self._check_dir(directory, st)

    def _backup_exists(self, backup_id):
        if not self._set_dir_exists():
            return False
        try:
            return _is_dir(self.backup_dir(backup_id))
        except OSError as exc:
            raise StoreError('cannot read backup %s in %s: %s' % (backup_id, self._where(), exc),
                             self.backup_dir(backup_id), unreadable=True) from exc

    def _where(self):
        return "set '%s' at %s on host %s" % (self.set_name, self.set_dir, self.host)

    # -- locking and recovery -----------------------------------------------------------

    @contextlib.contextmanager
    def locked(self):
        """Hold the set's writer lock (a flock on the set directory, released if the process dies)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        if not self._set_dir_exists():
            self._make_set_dir()
        try:
            # O_NOFOLLOW: a symlink planted after the check above is refused, not locked and written through.
            fd = os.open(self.set_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError('cannot create or open %s: %s. Nothing was changed. Next: %s.'
                             % (self._where(), exc, errno_hint(exc)),
                             self.set_dir) from exc
        try:
            self._flock(fd)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # close(2) releases the descriptor, and with it the lock, even when it reports an error

    def _flock(self, fd):
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError('%s is busy: another backup, retention or restore holds its lock (waited %s s). '
                                     'Nothing was changed. Next: let the other run finish, then rerun.'
                                     % (self._where(), self.lock_timeout)) from None
                time.sleep(0.05)

    def recover(self):
        """Settle and remove what interrupted runs left behind; returns what it did.

        First the journal of a restore that was interrupted (rolled forward or
        back to exactly-old or exactly-new; a record that cannot be trusted is moved
        aside read-only and stops everything), then staging and half-deleted backups,
        temporary files of atomic writes, and pins of backups that do not exist.
        Also fsyncs the set directory, so a publish whose final fsync failed
        becomes durable.  Everything done is also added to ``self.recovered``.
        """
        if not self._set_dir_exists():
            return []
        with self.locked():
            removed = self._settle_restore_journals()
            try:
                for name in sorted(os.listdir(self.set_dir)):
                    if name.startswith(_LEFTOVER_PREFIXES):
                        _fsatomic.remove_tree(os.path.join(self.set_dir, name))
                        removed.append(name)
                _fsatomic.fsync_dir(self.set_dir)
                self._prune_pins()
            except OSError as exc:
                raise StoreError('recovering %s failed: %s. Leftovers are never listed as backups; removed so far: '
                                 '%s. Next: %s.' % (self._where(), exc, removed or 'nothing',
                                                    errno_hint(exc)),
                                 getattr(exc, 'filename', None)) from exc
            self.recovered.extend(removed)
            return removed

    def _settle_restore_journals(self):
        try:
            settled = _restore.recover_journal(self.set_dir)
        except _restore.RestoreError as exc:
            raise StoreError('%s Nothing else was done.' % exc, getattr(exc, 'journal', None)) from exc
        except OSError as exc:
            raise StoreError('settling the journal an interrupted restore left in %s failed: %s. The journal is '
                             'kept; nothing else was done. Next: %s.' % (self._where(), exc, errno_hint(exc)),
                             getattr(exc, 'filename', None)) from exc
        return ['journal %s: restore of %s rolled %s'
                % (os.path.basename(item['journal']), ', '.join(item['paths']), item['direction'])
                for item in settled]

    # -- marks: LASTGOOD and PINNED ------------------------------------------------------

    def _read_lastgood(self):
        try:
            text = _fsatomic.read_bytes(self._lastgood_path, limit=4096).decode('utf-8')
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError('cannot read %s: %s' % (self._lastgood_path, exc), self._lastgood_path) from exc
        backup_id = text.strip()
        if text != backup_id + '\n' or not _NAME_RE.match(backup_id):
            raise StoreError('%s is damaged (expected one backup id and a newline); write the id of a known-good '
                             'backup into it, or remove it' % self._lastgood_path, self._lastgood_path)
        return backup_id

    def _read_pins(self):
        try:
            text = _fsatomic.read_bytes(self._pinned_path, limit=1024 * 1024).decode('utf-8')
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            raise StoreError('cannot read %s: %s' % (self._pinned_path, exc), self._pinned_path) from exc
        pins = set()
        for number, line in enumerate(text.splitlines(), 1):
            if not _NAME_RE.match(line):
                raise StoreError('%s is damaged at line %d (expected one backup id per line); fix it by hand - '
                                 'retention refuses to run until it is readable' % (self._pinned_path, number),
                                 self._pinned_path)
            pins.add(line)
        return pins

    def _prune_pins(self):
        """Drop pins of backups that do not exist (a publish that failed after pinning)."""
        try:
            pins = self._read_pins()
        except StoreError:
            return
        existing = set(name for name in pins if _is_dir(os.path.join(self.set_dir, name)))
        if existing != pins:
            self._write_pins(existing)

    def _write_pins(self, pins):
        _fsatomic.atomic_write(self._pinned_path, ''.join(name + '\n' for name in sorted(pins)).encode('utf-8'),
                               mode=0o600)

    def _marks(self):
        """(LASTGOOD id, pinned ids) for listing; a damaged file reads as empty here."""
        try:
            lastgood = self._read_lastgood()
        except StoreError:
            lastgood = None
        try:
            pins = self._read_pins()
        except StoreError:
            pins = set()
        return lastgood, pins

    def mark_lastgood(self, backup_id):
        """Record ``backup_id`` (complete, intact manifest) as last known good; returns whether LASTGOOD changed."""
        with self.locked():
            self.recover()
            self.load_manifest(backup_id)
            try:
                current = self._read_lastgood()
            except StoreError:
                current = None
            if current == backup_id:
                return False
            try:
                _fsatomic.atomic_write(self._lastgood_path, (backup_id + '\n').encode('utf-8'), mode=0o600)
            except OSError as exc:
                raise StoreError('marking backup %s last-good in %s failed: %s. LASTGOOD still names %s. Next: %s.'
                                 % (backup_id, self._where(), exc, current or 'no backup',
                                    errno_hint(exc)), self._lastgood_path) from exc
            return True

    def pin(self, backup_id):
        """Protect ``backup_id`` from retention; returns whether PINNED changed."""
        return self._change_pin(backup_id, True)

    def unpin(self, backup_id):
        """Let retention consider ``backup_id`` again; returns whether PINNED changed."""
        return self._change_pin(backup_id, False)

    def _change_pin(self, backup_id, pinned):
        with self.locked():
            self.recover()
            if pinned:
                self.load_manifest(backup_id)
            pins = self._read_pins()
            if (backup_id in pins) == pinned:
                return False
            try:
                self._write_pins(pins | {backup_id} if pinned else pins - {backup_id})
            except OSError as exc:
                raise StoreError('updating %s failed: %s; the pins are unchanged' % (self._pinned_path, exc),
                                 self._pinned_path) from exc
            return True

    # -- reading ------------------------------------------------------------------------

    def _backup_names(self):
        if not self._set_dir_exists():
            return []
        try:
            names = os.listdir(self.set_dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError('cannot list %s: %s' % (self._where(), exc), self.set_dir) from exc
        found = []
        for name in names:
            if name.startswith('.') or name in (LASTGOOD_FILE, PINNED_FILE) or not _NAME_RE.match(name):
                continue
            try:
                st = os.lstat(os.path.join(self.set_dir, name))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError('cannot list %s: %s' % (self._where(), exc), self.set_dir) from exc
            if stat.S_ISDIR(st.st_mode):
                found.append(name)
        return found

    def list(self, strict=False):
        """Every backup of the set, oldest first, as info dicts.

        Keys: id, name (the checkpoint name or None), path, manifest, created,
        complete (MANIFEST.json present and intact), lastgood, pinned, parent,
        files, bytes, sources, host, error (why the backup is not complete).
        ``strict``: a manifest that cannot be read (I/O error) raises StoreError
        instead of listing the backup as incomplete.
        """
        names = self._backup_names()
        lastgood, pins = self._marks()
        infos = [self._info(name, lastgood, pins, strict) for name in names]
        infos.sort(key=lambda info: (info['created'] or '', info['id']))
        return infos

    def _info(self, backup_id, lastgood, pins, strict=False):
        info = {
            'id': backup_id, 'name': None if AUTO_ID_RE.match(backup_id) else backup_id,
            'path': self.backup_dir(backup_id), 'manifest': self.manifest_path(backup_id),
            'created': None, 'complete': False, 'lastgood': backup_id == lastgood, 'pinned': backup_id in pins,
            'parent': None, 'files': None, 'bytes': None, 'sources': [], 'host': None, 'error': None,
        }
        try:
            manifest = self.load_manifest(backup_id)
        except StoreError as exc:
            if strict and exc.unreadable:
                raise
            info['error'] = str(exc)
            return info
        totals = manifest.totals
        info.update(created=manifest.created, complete=True, parent=manifest.parent, files=totals['files'],
                    bytes=totals['bytes'], sources=list(manifest.sources), host=manifest.host)
        return info

    def resolve(self, ref=None):
        """The info dict of a complete backup: ``None``/``'lastgood'``, ``'latest'``, an id or a checkpoint name."""
        self._set_dir_exists()
        if ref in (None, 'lastgood'):
            backup_id = self._read_lastgood()
            if backup_id is None:
                raise StoreError('no backup in %s is marked last-good. Next: mark one (backup with mark_lastgood: '
                                 'true) or name a backup explicitly' % self._where())
        elif ref == 'latest':
            complete = [info for info in self.list() if info['complete']]
            if not complete:
                raise StoreError('%s holds no complete backup. Next: take one with lastgood.rollback.backup'
                                 % self._where())
            return complete[-1]
        else:
            backup_id = check_name(ref, 'backup reference')
        if not self._backup_exists(backup_id):
            raise StoreError('backup %s does not exist in %s (backups there: %s)'
                             % (backup_id, self._where(), ', '.join(sorted(self._backup_names())) or 'none'))
        lastgood, pins = self._marks()
        info = self._info(backup_id, lastgood, pins)
        if not info['complete']:
            raise StoreError('backup %s cannot be used: %s' % (backup_id, info['error']))
        return info

    def load_manifest(self, backup_id):
        """The backup's manifest, after checking it against MANIFEST.sha256 and its directory."""
        directory = self.backup_dir(backup_id)
        json_path = os.path.join(directory, MANIFEST_JSON)
        sums_path = os.path.join(directory, MANIFEST_SHA256)
        self._set_dir_exists()
        self._check_backup_dir(backup_id)
        try:
            json_bytes = _fsatomic.read_bytes(json_path, limit=_manifest.MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise StoreError('backup %s in %s has no %s: it is incomplete and must not be used'
                             % (backup_id, self._where(), MANIFEST_JSON), MANIFEST_JSON) from None
        except OSError as exc:
            raise StoreError('cannot read %s: %s' % (json_path, exc), MANIFEST_JSON, unreadable=True) from exc
        except ValueError as exc:
            raise StoreError('cannot read %s: %s' % (json_path, exc), MANIFEST_JSON) from exc
        try:
            sums = _fsatomic.read_bytes(sums_path, limit=_manifest.MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise StoreError('backup %s has no %s, so its manifest cannot be proven intact; it must not be used'
                             % (backup_id, MANIFEST_SHA256), MANIFEST_SHA256) from None
        except OSError as exc:
            raise StoreError('cannot read %s: %s' % (sums_path, exc), MANIFEST_SHA256, unreadable=True) from exc
        except ValueError as exc:
            raise StoreError('cannot read %s: %s' % (sums_path, exc), MANIFEST_SHA256) from exc
        cached = self._manifests.get(backup_id)
        if cached is not None and cached[0] == json_bytes and cached[1] == sums:
            return cached[2]
        self._check_manifest_digest(backup_id, json_bytes, sums)
        try:
            manifest = _manifest.loads(json_bytes, source=json_path)
        except _manifest.ManifestError as exc:
            raise StoreError('%s; backup %s must not be used' % (exc, backup_id), MANIFEST_JSON) from None
        if manifest.id != backup_id or manifest.set != self.set_name:
            raise StoreError('%s describes backup %r of set %r but lives in %s; it was moved or tampered with and '
                             'must not be used' % (json_path, manifest.id, manifest.set, directory), MANIFEST_JSON)
        expected = sums_bytes(manifest, json_bytes)
        if sums != expected:
            line = _first_differing_line(sums, expected)
            raise StoreError('%s disagrees with %s at line %d; one of them is corrupt and backup %s must not be used'
                             % (sums_path, MANIFEST_JSON, line, backup_id), MANIFEST_SHA256)
        while len(self._manifests) >= MANIFEST_CACHE:
            del self._manifests[next(iter(self._manifests))]
        self._manifests[backup_id] = (json_bytes, sums, manifest)
        return manifest

    @staticmethod
    def _check_manifest_digest(backup_id, json_bytes, sums):
        last = sums[sums.rfind(b'\n', 0, len(sums) - 1) + 1:]
        match = _SUMS_MANIFEST_RE.match(last.decode('utf-8', 'replace'))
        if match is None:
            raise StoreError('%s of backup %s is damaged: its last line must be the digest of %s'
                             % (MANIFEST_SHA256, backup_id, MANIFEST_JSON), MANIFEST_SHA256)
        if hashlib.sha256(json_bytes).hexdigest() != match.group(1):
            raise StoreError('%s of backup %s does not match the digest recorded in %s: one of them is corrupt and '
                             'the backup must not be used' % (MANIFEST_JSON, backup_id, MANIFEST_SHA256), MANIFEST_JSON)

    # -- verification ---------------------------------------------------------------------

    def verify(self, backup_id):
        """Check a backup against its manifest: content, metadata, missing and unexpected files.

        Returns ``{ok, id, path, mismatches: [{path, problem}], files, bytes}``;
        paths are relative to the backup directory (``data/...``, ``MANIFEST.json``),
        as ``sha256sum -c MANIFEST.sha256`` run there prints them.
        """
        directory = self.backup_dir(backup_id)
        if not self._backup_exists(backup_id):
            raise StoreError('backup %s does not exist in %s' % (backup_id, self._where()))
        result = {'ok': False, 'id': backup_id, 'path': directory, 'mismatches': [], 'files': None, 'bytes': None}
        try:
            manifest = self.load_manifest(backup_id)
        except StoreError as exc:
            result['mismatches'] = [{'path': exc.path or MANIFEST_JSON, 'problem': str(exc)}]
            return result
        try:
            diff = _manifest.verify(manifest, os.path.join(directory, DATA_DIR), owner=is_root(), mtime=True,
                                    store_copy=True)
            strays = self._strays(directory, manifest)
        except OSError as exc:
            raise StoreError('verifying backup %s in %s failed: %s; the backup was only read, not changed'
                             % (backup_id, self._where(), exc), getattr(exc, 'filename', None)) from exc
        mismatches = [{'path': DATA_DIR + '/' + item['path'], 'problem': item['problem']}
                      for item in _manifest.mismatch_list(diff)]
        mismatches.extend(strays)
        totals = manifest.totals
        result.update(ok=not mismatches, mismatches=mismatches, files=totals['files'], bytes=totals['bytes'])
        return result

    @staticmethod
    def _strays(directory, manifest):
        """Entries of the backup directory outside the manifest's sources (the scan does not see them)."""
        unexpected = 'unexpected (not in manifest)'
        strays = [{'path': name, 'problem': unexpected} for name in sorted(os.listdir(directory))
                  if name not in (DATA_DIR, MANIFEST_JSON, MANIFEST_SHA256)]
        sources = set(manifest.rel_sources)
        ancestors = set()
        for rel in sources:
            parts = rel.split('/')
            ancestors.update('/'.join(parts[:index]) for index in range(1, len(parts)))
        pending = ['']
        while pending:
            rel_dir = pending.pop()
            path = os.path.join(directory, DATA_DIR, rel_dir)
            if not _is_dir(path):
                continue
            for name in sorted(os.listdir(path)):
                rel = rel_dir + '/' + name if rel_dir else name
                if rel in sources:
                    continue
                if rel in ancestors:
                    pending.append(rel)
                else:
                    strays.append({'path': DATA_DIR + '/' + rel, 'problem': unexpected})
        return strays

    def drift(self, backup_id, excludes=None):
        """Differences of the live paths from a backup (what a restore would change).

        Content, type, size, mode, owner (when root), xattrs (ACLs and SELinux labels included) and symlink
        targets count; mtimes and special files (sockets and devices, never backed up) do not.  Paths are
        absolute.  Returns ``{ok, id, added, removed, changed: [{path, reasons}], mismatches: [{path, problem}]}``.
        """
        manifest = self.load_manifest(backup_id)
        patterns = manifest.excludes if excludes is None else list(excludes)
        try:
            # Sockets and devices are never backed up, so they are not drift.
            entries, _special = _manifest.scan_and_hash_like('/', manifest, patterns, prune=self._prune_paths())
            diff = _manifest.compare(manifest.entries, entries, owner=is_root(), mtime=False)
        except OSError as exc:
            raise StoreError('comparing the live paths with backup %s failed: %s; nothing was changed'
                             % (backup_id, exc), getattr(exc, 'filename', None)) from exc
        mismatches = [dict(item, path='/' + item['path']) for item in _manifest.mismatch_list(diff)]
        return {
            'ok': not mismatches, 'id': backup_id,
            'added': ['/' + path for path in diff['added']], 'removed': ['/' + path for path in diff['removed']],
            'changed': [dict(item, path='/' + item['path']) for item in diff['changed']],
            'mismatches': mismatches,
        }

    def _store_holders(self):
        """The directories (relative paths) that directly hold the store, wherever a source contains it."""
        return {os.path.dirname(path) for path in self._prune_paths()}

    def _prune_paths(self):
        """The store as relative paths, so a scan of a source that contains it skips it."""
        return {path.lstrip('/') for path in (self.backup_root, os.path.realpath(self.backup_root))}

    # -- creating -------------------------------------------------------------------------

    def _check_sources(self, paths):
        if isinstance(paths, (str, bytes)) or not paths:
            raise StoreError('paths must be a non-empty list of absolute paths')
        sources = []
        for path in paths:
            if not isinstance(path, str) or not path.startswith('/') or '\0' in path:
                raise StoreError('path %r is not an absolute path' % (path,))
            normal = '/' + os.path.normpath(path).lstrip('/')
            if normal == '/':
                raise StoreError('refusing to back up "/" as a whole; list the directories to protect')
            sources.append(normal)
        for first in sources:
            for second in sources:
                if first is not second and (first == second or second.startswith(first + '/')):
                    raise StoreError('paths %s and %s overlap; list each tree once' % (first, second))
        store_real = os.path.realpath(self.backup_root)
        for source in sources:
            real = os.path.realpath(source)
            if real == store_real or real.startswith(store_real + '/'):
                raise StoreError('path %s lies inside the backup store %s; refusing to back up the store into itself'
                                 % (source, self.backup_root))
        return sources

    def create(self, paths, name=None, incremental=True, excludes=(), checksum='auto', mark_lastgood=False,
               force=False, check_mode=False, rehash=False):
        """Back up ``paths`` (absolute) as a new backup, unless nothing changed since the latest one.

        ``name`` makes a pinned checkpoint with that id; an existing checkpoint is
        never overwritten (an unchanged tree reports it, a changed one is refused).
        ``checksum='always'`` compares and reuses by content instead of by
        size/mtime/mode/owner.  ``rehash=True`` re-reads every file hardlinked
        from the previous backup to check it against its manifest, even those
        whose inode has not changed since that backup was sealed.  Returns a
        dict: changed, new_backup, id, path, manifest, files, bytes, reused,
        copied, copied_bytes, rehashed (hardlinked files re-read), parent,
        lastgood, pinned, duration, special_files, missing, warnings, verified
        (a new backup's staged copy matched its manifest before it was published).
        """
        started = time.monotonic()
        sources = self._check_sources(paths)
        if isinstance(excludes, (str, bytes)):
            raise StoreError('excludes must be a list of patterns, not the string %r' % (excludes,))
        excludes = list(excludes or ())
        if name is not None:
            check_checkpoint_name(name)
        if checksum not in CHECKSUM_MODES:
            raise StoreError('checksum must be one of %s, not %r' % (', '.join(CHECKSUM_MODES), checksum))
        for pattern in excludes:
            if not isinstance(pattern, str) or not pattern or '\0' in pattern:
                raise StoreError('exclude pattern %r is not a non-empty string without NUL' % (pattern,))
        try:
            return self._create(sources, name, incremental, excludes, (checksum, rehash), mark_lastgood, force,
                                check_mode, started)
        except StoreError as exc:
            if exc.settled:
                raise
            raise StoreError('%s. No backup was published; existing backups and LASTGOOD are unchanged.'
                             % str(exc).rstrip('.'), exc.path, settled=True) from exc
        except OSError as exc:
            hint = errno_hint(exc)
            raise StoreError('backup in %s failed: %s. No backup was published; existing backups and LASTGOOD are '
                             'unchanged. Next: %s.' % (self._where(), exc, hint), getattr(exc, 'filename', None),
                             settled=True) from exc

    def _create(self, sources, name, incremental, excludes, how, mark_lastgood, force, check_mode, started):
        checksum = how[0]
        rels = [source.lstrip('/') for source in sources]
        entries, special = self._scan_live(rels, excludes, checksum)
        present = set(entry.path for entry in entries)
        live = {'entries': entries, 'sources': sources, 'excludes': excludes, 'rels': rels,
                'special_files': ['/' + path for path in special],
                'missing': ['/' + rel for rel in rels if rel not in present]}
        live['warnings'] = _live_warnings(entries, live)
        self._set_dir_exists()
        if name is not None and _exists(os.path.join(self.set_dir, name)):
            return self._existing_checkpoint(name, live, checksum, mark_lastgood, check_mode, started)
        base = None
        newest = self._latest_complete()
        if newest is not None:
            latest = self.load_manifest(newest['id'])
            # an older manifest did not record everything (xattrs, fifos): take a full-fidelity backup instead
            current = latest.version == _manifest.MANIFEST_VERSION
            if not force and name is None and current and self._matches(latest, live, checksum, self._store_holders()):
                return self._unchanged(newest, live, mark_lastgood, check_mode, started)
            base = latest if incremental else None
        if check_mode:
            return self._predicted(name, base, live, checksum, mark_lastgood, started)
        with self.locked():
            self.recover()
            return self._build_and_publish(name, base, live, how, mark_lastgood, started)

    def _scan_live(self, rels, excludes, checksum):
        try:
            entries, skipped = _manifest.scan('/', rels, excludes, prune=self._prune_paths())
            if checksum == 'always':
                _manifest.hash_entries('/', entries)
        except (OSError, _manifest.ManifestError) as exc:
            raise StoreError('reading the paths to back up failed: %s. Nothing was written. Next: %s.'
                             % (exc, errno_hint(exc, 'fix the path and rerun')),
                             getattr(exc, 'filename', None), settled=True) from exc
        return entries, skipped

    @staticmethod
    def _matches(manifest, live, checksum, dir_mtimes_but=None):
        """Whether the live tree equals a backup (metadata; content too with checksum=always).

        ``dir_mtimes_but``: directory mtimes count too, except those of the directories
        named (the ones holding the store, whose mtime moves with it): a backup reused
        for a touched directory would restore the old mtime.
        """
        if sorted(manifest.sources) != sorted(live['sources']) or sorted(manifest.excludes) != sorted(live['excludes']):
            return False
        diff = _manifest.compare(manifest.entries, live['entries'], owner=True, mtime=True,
                                 dir_mtime=dir_mtimes_but is not None)
        if dir_mtimes_but:
            diff['changed'] = [item for item in diff['changed']
                               if not (item['reasons'] == ['mtime'] and item['path'] in dir_mtimes_but)]
        return _manifest.is_clean(diff) and (checksum != 'always' or all(
            entry.sha256 is not None for entry in live['entries'] if entry.is_content()))

    def _latest_complete(self):
        """The info dict of the newest complete backup (as ``list()`` orders them), or None.

        Parsing every manifest of a set to find the newest costs a parse per
        backup and file; the ``created`` stamp on the first line of each
        MANIFEST.json orders them, and only the newest are loaded and checked
        until one is complete.  When a stamp cannot be read, or the manifest
        loaded says otherwise, the full listing decides.
        """
        names = self._backup_names()
        stamps = {name: self._peek_created(name) for name in names}
        if None not in stamps.values():
            lastgood, pins = self._marks()
            for name in sorted(names, key=lambda name: (stamps[name], name), reverse=True):
                info = self._info(name, lastgood, pins)
                if info['complete']:
                    if info['created'] == stamps[name]:
                        return info
                    break
        complete = [info for info in self.list() if info['complete']]
        return complete[-1] if complete else None

    def _peek_created(self, backup_id):
        """The ``created`` stamp a backup's MANIFEST.json starts with (unchecked), or None."""
        try:
            fd = os.open(self.manifest_path(backup_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            head = os.read(fd, 256)
        except OSError:
            return None
        finally:
            os.close(fd)
        match = _CREATED_LINE_RE.match(head)
        return match.group(1).decode('ascii') if match else None

    def _existing_checkpoint(self, name, live, checksum, mark_lastgood, check_mode, started):
        info = None
        if _is_dir(self.backup_dir(name)):
            lastgood, pins = self._marks()
            info = self._info(name, lastgood, pins)
        if info is None or not info['complete']:
            raise StoreError('checkpoint %s already exists in %s but is not a complete backup; remove %s by hand '
                             '(it is never used) or choose another name'
                             % (name, self._where(), self.backup_dir(name)))
        if not self._matches(self.load_manifest(name), live, checksum):
            raise StoreError('checkpoint %s already exists in %s and the paths have changed since it was taken; a '
                             'checkpoint is never overwritten. Nothing was written. Next: choose a new name (or '
                             'remove the old checkpoint first).' % (name, self._where()), settled=True)
        return self._unchanged(info, live, mark_lastgood, check_mode, started)

    def _unchanged(self, info, live, mark_lastgood, check_mode, started):
        marked = False
        if mark_lastgood and not info['lastgood']:
            marked = check_mode or self.mark_lastgood(info['id'])
        return self._result(info['id'], changed=marked, new=False, files=info['files'], size=info['bytes'],
                            parent=info['parent'], lastgood=info['lastgood'] or mark_lastgood,
                            pinned=info['pinned'], live=live, started=started, verified=False)

    def _predicted(self, name, base, live, checksum, mark_lastgood, started):
        base_by_path = base.by_path if base is not None else None
        entries = live['entries']
        files = [entry for entry in entries if entry.type == 'file']
        reused = [entry for entry in files if _reusable(base_by_path, entry, checksum) is not None]
        totals = _manifest.totals_of(entries)
        result = self._result(name, changed=True, new=True, files=totals['files'], size=totals['bytes'],
                              parent=base.id if base is not None else None, lastgood=mark_lastgood,
                              pinned=name is not None, live=live, started=started, verified=False)
        result.update(path=None, manifest=None, reused=len(reused), copied=len(files) - len(reused),
                      copied_bytes=totals['bytes'] - sum(entry.size for entry in reused))
        return result

    def _result(self, backup_id, changed, new, files, size, parent, lastgood, pinned, live, started, **extra):
        result = {
            'changed': changed, 'new_backup': new, 'id': backup_id,
            'path': self.backup_dir(backup_id) if backup_id else None,
            'manifest': self.manifest_path(backup_id) if backup_id else None,
            'files': files, 'bytes': size, 'reused': 0, 'copied': 0, 'copied_bytes': 0, 'rehashed': 0,
            'parent': parent, 'lastgood': lastgood, 'pinned': pinned,
            'special_files': live['special_files'], 'missing': live['missing'],
        }
        result.update(extra)
        result['warnings'] = live['warnings'] + extra.get('warnings', [])
        result['duration'] = round(time.monotonic() - started, 3)
        return result

    def _build_and_publish(self, name, base, live, how, mark_lastgood, started):
        now = time.time()
        backup_id = name or new_backup_id(now)
        warnings = []
        try:
            build = self._stage(backup_id, iso_utc(now), base, live, how)
        except _BaseDamaged as damaged:
            warnings.append('previous backup %s does not match its manifest at %s; this backup copied every file '
                            'instead of hardlinking from it. Run lastgood.rollback.backup_verify on %s.'
                            % (base.id, ', '.join(damaged.paths[:5]), base.id))
            build = self._stage(backup_id, iso_utc(now), None, live, how)
        self._publish(build, name)
        lastgood = False
        if mark_lastgood:
            try:
                lastgood = self.mark_lastgood(backup_id) or True
            except StoreError as exc:
                raise StoreError('backup %s was created, verified and published, but %s' % (backup_id, exc),
                                 self._lastgood_path, settled=True) from exc
        totals = build.manifest.totals
        return self._result(backup_id, changed=True, new=True, files=totals['files'], size=totals['bytes'],
                            parent=build.manifest.parent, lastgood=lastgood, pinned=name is not None, live=live,
                            started=started, reused=build.reused, copied=build.copied,
                            copied_bytes=build.copied_bytes, rehashed=build.rehashed, warnings=warnings,
                            verified=True)

    def _stage(self, backup_id, created, base, live, how):
        """Build the backup in its staging directory; on failure remove it and raise StoreError."""
        build = _Build(self, backup_id, created, base, live, how)
        try:
            build.run()
        except BaseException as exc:
            cleanup = self._discard(build.staging)
            if isinstance(exc, _BaseDamaged) or not isinstance(exc, Exception):
                raise
            raise StoreError(self._failure_message(build.step, exc, cleanup), getattr(exc, 'filename', None),
                             settled=True) from exc
        return build

    def _publish(self, build, name):
        final = self.backup_dir(build.backup_id)
        try:
            if name is not None:
                self._write_pins(self._read_pins() | {name})
            if _exists(final):
                raise StoreError('%s appeared while the backup was being written' % final, final)
            os.rename(build.staging, final)
        except BaseException as exc:
            cleanup = self._discard(build.staging)
            if not isinstance(exc, Exception):
                raise
            raise StoreError(self._failure_message('publishing the backup', exc, cleanup),
                             getattr(exc, 'filename', None), settled=True) from exc
        try:
            _fsatomic.fsync_dir(self.set_dir)
        except OSError as exc:
            self._unpublish(build, final, exc)

    def _unpublish(self, build, final, exc):
        """The set directory could not be fsynced after the rename: take the backup back if possible."""
        try:
            os.rename(final, build.staging)
        except OSError as undo:
            raise StoreError('backup %s is complete and verified and was published, but flushing %s failed (%s) and '
                             'it could not be taken back (%s): it may not survive a power loss. Next: %s; then run '
                             'lastgood.rollback.backup_verify on it.'
                             % (build.backup_id, self.set_dir, exc, undo,
                                errno_hint(exc, 'check the disk')), self.set_dir, settled=True) from exc
        cleanup = self._discard(build.staging)
        raise StoreError(self._failure_message('publishing the backup', exc, cleanup), self.set_dir,
                         settled=True) from exc

    @staticmethod
    def _discard(staging):
        """Remove a staging directory; returns a sentence on the state it leaves."""
        try:
            _fsatomic.remove_tree(staging)
        except OSError as exc:
            return ('the partial staging directory %s could not be removed (%s); it is never listed and the next '
                    'run removes it' % (staging, exc))
        return 'the partial staging directory was removed'

    def _failure_message(self, step, exc, cleanup):
        hint = 'fix the cause and rerun' if isinstance(exc, StoreError) else errno_hint(exc)
        return ('backup failed while %s in %s: %s. No backup was published; existing backups and LASTGOOD are '
                'unchanged; %s. Next: %s.' % (step, self._where(), exc, cleanup, hint))

    # -- retention ------------------------------------------------------------------------

    def retention(self, keep_last=None, keep_days=None, check_mode=False, now=None, keep_runs=None, state_dir=None):
        """Remove old complete backups; returns the removed (or, in check mode, removable) ids.

        A backup is kept when it is among the ``keep_last`` newest or younger than
        ``keep_days`` days (either rule keeps it), and always when it is LASTGOOD,
        pinned or the newest complete backup.  Incomplete backups are never touched.

        ``keep_runs`` releases the pins of runs' own checkpoints (``run-<run id>``):
        the pin of a run whose state in ``state_dir`` says ``finished`` (it
        succeeded) is dropped once ``keep_runs`` newer run checkpoints exist in the
        set; such a checkpoint is then removed unless ``keep_last``/``keep_days``
        keep it.  The released ids are added to ``self.released`` (in check mode:
        those that would be).  With no rule given nothing is removed.
        """
        for value, what in ((keep_last, 'keep_last'), (keep_days, 'keep_days'), (keep_runs, 'keep_runs')):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise StoreError('%s must be a positive integer, not %r' % (what, value))
        if keep_runs is not None and not state_dir:
            raise StoreError('keep_runs needs state_dir, the directory of the run states that tell which runs '
                             'succeeded')
        if keep_last is None and keep_days is None and keep_runs is None:
            return []
        if not self._set_dir_exists():
            return []
        if check_mode:
            released = self._released_runs(keep_runs, state_dir)
            self.released.extend(released)
            return self._doomed(keep_last, keep_days, now, released)
        with self.locked():
            self.recover()
            released = self._released_runs(keep_runs, state_dir)
            if released:
                pins = self._read_pins()
                try:
                    self._write_pins(pins - set(released))
                except OSError as exc:
                    raise StoreError('retention in %s could not release the pins of finished runs (%s): %s. The '
                                     'pins and every backup are unchanged. Next: %s.'
                                     % (self._where(), ', '.join(released), exc, errno_hint(exc)),
                                     self._pinned_path) from exc
                self.released.extend(released)
            removed = []
            for backup_id in self._doomed(keep_last, keep_days, now):
                self._remove_backup(backup_id, removed)
                removed.append(backup_id)
            return removed

    def _released_runs(self, keep_runs, state_dir):
        """The pinned run checkpoints (``run-<run id>``) of finished runs with ``keep_runs`` newer runs."""
        if keep_runs is None:
            return []
        pins = self._read_pins()
        runs = [info['id'] for info in self._complete_infos() if info['id'].startswith(RUN_CHECKPOINT_PREFIX)]
        older = runs[:-keep_runs]
        try:
            return [backup_id for backup_id in older
                    if backup_id in pins and run_finished(state_dir, backup_id[len(RUN_CHECKPOINT_PREFIX):])]
        except OSError as exc:
            raise StoreError('retention refused: reading the run states in %s failed: %s; nothing was released or '
                             'removed. Next: %s.' % (state_dir, exc, errno_hint(exc)),
                             getattr(exc, 'filename', None), unreadable=True) from exc

    def _complete_infos(self):
        try:
            return [info for info in self.list(strict=True) if info['complete']]
        except StoreError as exc:
            raise StoreError('retention refused: %s; nothing was removed' % exc, exc.path, unreadable=True) from exc

    def _doomed(self, keep_last, keep_days, now, unpinned=()):
        infos = self._complete_infos()
        if not infos:
            return []
        protected = {infos[-1]['id'], self._read_lastgood()} | (self._read_pins() - set(unpinned))
        keep = set()
        if keep_last is not None:
            keep.update(info['id'] for info in infos[-keep_last:])
        if keep_days is not None:
            cutoff = (time.time() if now is None else now) - keep_days * 86400
            keep.update(info['id'] for info in infos if (parse_created(info['created']) or 0) >= cutoff)
        if keep_last is None and keep_days is None:
            # keep_runs alone: only the released run checkpoints go
            keep.update(info['id'] for info in infos if not info['id'].startswith(RUN_CHECKPOINT_PREFIX))
        return [info['id'] for info in infos if info['id'] not in keep | protected]

    def _remove_backup(self, backup_id, removed, what='retention'):
        """Take a backup out of the listing in one rename (then flushed), and only then delete its files.

        The rename to ``.deleting-<id>`` is atomic: the backup is either listed and
        complete or gone; the files of a removal interrupted after it are deleted by
        the next ``recover()`` (and a pin left naming it is dropped there too).
        """
        doomed = os.path.join(self.set_dir, DELETING_PREFIX + backup_id)
        try:
            os.rename(self.backup_dir(backup_id), doomed)
        except OSError as exc:
            raise StoreError('%s in %s failed to remove backup %s: %s; it is untouched. Removed so far: %s. '
                             'Next: %s.' % (what, self._where(), backup_id, exc, ', '.join(removed) or 'none',
                                            errno_hint(exc)),
                             getattr(exc, 'filename', None)) from exc
        try:
            _fsatomic.fsync_dir(self.set_dir)
            _fsatomic.remove_tree(doomed)
            _fsatomic.fsync_dir(self.set_dir)
        except OSError as exc:
            raise StoreError('%s in %s removed backup %s from the listing but could not delete its files '
                             '(%s); the next run removes %s. Removed so far: %s.'
                             % (what, self._where(), backup_id, exc, doomed, ', '.join(removed + [backup_id])),
                             getattr(exc, 'filename', None)) from exc

    # -- removing one backup ----------------------------------------------------------------

    def remove(self, ref, force=False, check_mode=False, audit=None):
        """Remove the backup or checkpoint ``ref`` (an id or a checkpoint name), complete or not.

        Refuses the LASTGOOD backup and the newest complete backup unless ``force``
        (a forced removal of the LASTGOOD backup removes the LASTGOOD file first, so
        LASTGOOD never names a missing backup).  ``audit(detail)`` is called before
        anything is changed; when it raises, nothing is removed.  The removal itself
        is crash-safe (see ``_remove_backup``); its pin is dropped after it.
        Returns ``{changed, id, path, complete, lastgood, pinned, newest}`` - the
        backup as it was; ``changed`` false when it did not exist.
        """
        backup_id = check_name(ref, 'backup id or checkpoint name')
        result = {'changed': False, 'id': backup_id, 'path': self.backup_dir(backup_id), 'complete': False,
                  'lastgood': False, 'pinned': False, 'newest': False}
        if not self._set_dir_exists():
            return result
        with contextlib.ExitStack() as stack:
            if not check_mode:
                stack.enter_context(self.locked())
                self.recover()
            if not self._backup_exists(backup_id):
                return result
            lastgood = self._read_lastgood()
            pins = self._read_pins()
            info = self._info(backup_id, lastgood, pins, strict=True)
            newest = self._latest_complete()
            result.update(changed=True, complete=info['complete'], lastgood=info['lastgood'],
                          pinned=info['pinned'], newest=newest is not None and newest['id'] == backup_id)
            why = [text for flag, text in ((result['lastgood'], 'the LASTGOOD backup (what restores use by default)'),
                                           (result['newest'], 'the newest complete backup')) if flag]
            if why and not force:
                raise StoreError('refusing to remove backup %s from %s: it is %s. Nothing was removed. Next: mark '
                                 'another backup last-good or take a newer one first, or set force: true.'
                                 % (backup_id, self._where(), ' and '.join(why)))
            if check_mode:
                return result
            if audit is not None:
                audit(dict(result, set=self.set_name, backup_root=self.backup_root, forced=bool(why)))
            if result['lastgood']:
                self._forget_lastgood(backup_id)
            try:
                self._remove_backup(backup_id, [], what='removing a backup')
            except StoreError as exc:
                if not result['lastgood']:
                    raise
                raise StoreError('%s The LASTGOOD mark was removed first; mark a backup last-good again if this one '
                                 'stays.' % exc, exc.path) from exc
            try:
                self._prune_pins()
            except OSError as exc:
                raise StoreError('backup %s was removed from %s, but its pin could not be dropped (%s); the next run '
                                 'drops it.' % (backup_id, self._where(), exc), self._pinned_path) from exc
            return result

    def _forget_lastgood(self, backup_id):
        try:
            os.unlink(self._lastgood_path)
            _fsatomic.fsync_dir(self.set_dir)
        except OSError as exc:
            raise StoreError('removing the LASTGOOD mark of backup %s in %s failed: %s. Backup %s is untouched. '
                             'Next: %s.' % (backup_id, self._where(), exc, backup_id, errno_hint(exc)),
                             self._lastgood_path) from exc


def _live_warnings(entries, live):
    """What the backup of ``live`` cannot keep as the user may expect: a source that is a symlink, special files."""
    warnings = []
    links = {entry.path: entry.target for entry in entries if entry.type == 'symlink'}
    for rel in live['rels']:
        if rel in links:
            warnings.append('/%s is a symlink (to %s): it is backed up as the link itself, not the files it points to; '
                            'to back those up, list the directory it points to' % (rel, links[rel]))
    special = live['special_files']
    if special:
        shown = ', '.join(special[:10]) + (' and %d more' % (len(special) - 10) if len(special) > 10 else '')
        warnings.append('%d special file(s) a backup cannot hold were left out: %s; a restore leaves such files in '
                        'place below the directories it restores' % (len(special), shown))
    return warnings


def run_finished(state_dir, run_id):
    """Whether the run state of ``run_id`` in ``state_dir`` says it finished (succeeded).

    No state, a corrupt state and an invalid run id answer False: a pin is only
    released on proof that its run succeeded.  An I/O error raises OSError (a
    failing disk is not taken for a run that did not succeed).
    """
    from . import _state  # only retention with keep_runs reads run states
    try:
        state = _state.load(state_dir, run_id)
    except _state.StateError:
        return False
    return state is not None and state['status'] == 'finished'


def list_sets(backup_root):
    """Names of the backup sets under ``backup_root`` (sorted), once it passed the trust rule."""
    try:
        if not _trust.check_dirs(backup_root):
            return []
    except _trust.Untrusted as exc:
        raise _untrusted_error(exc, 'backup root %s on host %s' % (backup_root, socket.gethostname())) from None
    except OSError as exc:
        raise StoreError('cannot check the backup store %s: %s' % (backup_root, exc), backup_root) from exc
    try:
        names = os.listdir(backup_root)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError('cannot list the backup store %s: %s' % (backup_root, exc), backup_root) from exc
    try:
        return sorted(name for name in names if _NAME_RE.match(name) and name.lower() not in _RESERVED
                      and _is_dir(os.path.join(backup_root, name)))
    except OSError as exc:
        raise StoreError('cannot list the backup store %s: %s' % (backup_root, exc), backup_root) from exc


def _first_differing_line(first, second):
    for number, (one, two) in enumerate(zip(first.split(b'\n'), second.split(b'\n')), 1):
        if one != two:
            return number
    return min(first.count(b'\n'), second.count(b'\n')) + 1


class _Build:
    """One backup being written into ``.staging-<id>``: copy, flush, verify, write the manifests."""

    def __init__(self, store, backup_id, created, base, live, how):
        self.store = store
        self.backup_id = backup_id
        self.created = created
        self.base = base
        self.base_by_path = base.by_path if base is not None else None
        self.base_data = store.data_dir(base.id) if base is not None else None
        self.live = live
        self.checksum, self.rehash = how
        # ctime of the previous backup's MANIFEST.json: its files changed before it are as it verified them
        self.base_sealed_ns = None
        self.staging = os.path.join(store.set_dir, STAGING_PREFIX + backup_id)
        self.data = os.path.join(self.staging, DATA_DIR)
        self.as_root = is_root()
        self.workers = _manifest.hash_workers()
        self.step = 'preparing the staging directory'
        self.manifest = None
        self.reused_paths = set()
        self.rehash_paths = set()
        self.copied_paths = []
        self.dirs = []
        self.reused = 0
        self.rehashed = 0
        self.copied = 0
        self.copied_bytes = 0

    def _dest(self, rel):
        return os.path.join(self.data, rel)

    def run(self):
        self._prepare()
        self.step = 'copying files'
        if self.base is not None and not self.rehash:
            sealed = os.lstat(self.store.manifest_path(self.base.id))
            if 0 <= sealed.st_ctime_ns - sealed.st_mtime_ns <= SEALED_WITHIN_NS:
                self.base_sealed_ns = sealed.st_ctime_ns
        self._populate()
        last_change_ns = time.time_ns()
        # Everything is written before anything is fsynced (OSTree's order): the
        # kernel writes back in bulk while the copy runs, and the fsyncs (files
        # and directories alike, many in flight at once) mostly wait for one
        # journal commit instead of one each.
        self.step = 'flushing the backup to disk'
        _run_parallel(self._fsync_path, [(path, False) for path in self.copied_paths] +
                      [(path, True) for path in self.dirs], FSYNC_WORKERS, batch=(FSYNC_BATCH, lambda item: 1))
        self.step = 'verifying the staged backup'
        self.manifest = _manifest.Manifest(
            self.backup_id, self.store.set_name, self.created, self.store.host, self.live['sources'],
            self.live['entries'], parent=self.base.id if self.base is not None else None,
            excludes=self.live['excludes'])
        self._verify()
        self.step = 'writing the manifest'
        _after_coarse_clock(last_change_ns)
        json_bytes = self.manifest.to_json().encode('utf-8')
        _fsatomic.atomic_write(os.path.join(self.staging, MANIFEST_SHA256),
                               sums_bytes(self.manifest, json_bytes), mode=0o600, sync_dir=False)
        _fsatomic.atomic_write(os.path.join(self.staging, MANIFEST_JSON), json_bytes, mode=0o600)

    def _prepare(self):
        os.mkdir(self.staging, 0o700)
        os.mkdir(self.data, 0o700)
        self.dirs.extend((self.staging, self.data))
        made = set()
        for rel in self.live['rels']:
            parts = rel.split('/')
            for index in range(1, len(parts)):
                parent = '/'.join(parts[:index])
                if parent not in made:
                    os.mkdir(self._dest(parent), 0o700)
                    made.add(parent)
                    self.dirs.append(self._dest(parent))

    def _populate(self):
        files = []
        for entry in self.live['entries']:
            dest = self._dest(entry.path)
            if entry.type == 'dir':
                os.mkdir(dest, 0o700)
                self.dirs.append(dest)
            elif entry.type == 'symlink':
                os.symlink(entry.target, dest)
                # A symlink cannot be fsynced: its inode changes reach the disk with the journal commit its
                # directory's fsync waits for.
                if self.as_root and (entry.uid, entry.gid) != (0, 0):
                    os.lchown(dest, entry.uid, entry.gid)
                os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
            elif entry.type == 'fifo':
                # The store holds the fifo itself (never opened), so its data directory mirrors the manifest.
                os.mkfifo(dest, 0o600)
                if self.as_root:
                    os.lchown(dest, entry.uid, entry.gid)
                os.chmod(dest, entry.mode)
                os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
            elif entry.type == 'file':
                files.append(entry)
        placed = _run_parallel(self._place_file, files, self.workers,
                               batch=(COPY_BATCH, lambda entry: entry.size + _manifest.FILE_COST))
        for outcome, entry in zip(placed, files):
            if outcome != 'copied':
                self.reused += 1
                self.reused_paths.add(entry.path)
                if outcome == 'reused':
                    self.rehash_paths.add(entry.path)
            else:
                self.copied += 1
                self.copied_bytes += entry.size
                self.copied_paths.append(self._dest(entry.path))
        by_path = {entry.path: entry for entry in files}
        for entry in self.live['entries']:
            if entry.type == 'hardlink':
                first = by_path[entry.target]
                os.link(self._dest(first.path), self._dest(entry.path))
                for field in ('size', 'mode', 'uid', 'gid', 'mtime_ns', 'sha256'):
                    setattr(entry, field, getattr(first, field))
        for entry in reversed(self.live['entries']):
            if entry.type == 'dir':
                dest = self._dest(entry.path)
                if self.as_root:
                    os.chown(dest, entry.uid, entry.gid)
                os.chmod(dest, entry.mode)
                os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns))

    def _place_file(self, entry):
        """Hardlink ``entry`` from the previous backup when unchanged, else copy it.

        Returns 'copied', 'reused' (hardlinked, to be re-hashed) or 'trusted'
        (hardlinked from an inode untouched since the previous backup was sealed).
        """
        old = _reusable(self.base_by_path, entry, self.checksum)
        dest = self._dest(entry.path)
        if old is not None:
            base_file = os.path.join(self.base_data, entry.path)
            # before the link, which itself changes the inode's ctime
            untouched = self._untouched_since_sealed(base_file, old)
            try:
                os.link(base_file, dest)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EMLINK):
                    raise
            else:
                entry.sha256 = old.sha256
                return 'trusted' if untouched else 'reused'
        self._copy_file(entry, dest)
        return 'copied'

    def _untouched_since_sealed(self, path, old):
        if self.base_sealed_ns is None:
            return False
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        return (stat.S_ISREG(st.st_mode) and st.st_ctime_ns < self.base_sealed_ns
                and (st.st_size, st.st_mtime_ns) == (old.size, old.mtime_ns))

    def _copy_file(self, entry, dest):
        source = '/' + entry.path
        for _attempt in range(2):
            if self._copy_once(entry, source, dest):
                return
            os.unlink(dest)
        raise StoreError('%s changed while it was being copied, twice in a row (its size or mtime differed before '
                         'and after reading it); a backup of it would not be consistent. Next: stop the process '
                         'writing to it (or exclude it) and rerun' % source, source)

    def _copy_once(self, entry, source, dest):
        """Copy and hash in one read pass; False if the source changed meanwhile."""
        try:
            fd_in = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StoreError('%s disappeared while the backup was running; rerun (exclude it if it is a temporary '
                             'file)' % source, source) from None
        try:
            before = os.fstat(fd_in)
            if not stat.S_ISREG(before.st_mode):
                raise StoreError('%s stopped being a regular file while the backup was running; rerun' % source,
                                 source)
            fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                # No read for the end of file: a file that grows or changes meanwhile shows in the fstat below.
                copied, digest = _manifest.copy_hashing(fd_in, fd_out, size=before.st_size, src_stat=before)
                after = os.fstat(fd_in)
                stable = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
                if copied != before.st_size or not stable:
                    return False
                if self.as_root:
                    os.fchown(fd_out, before.st_uid, before.st_gid)
                # Without setuid/setgid (and without xattrs, security.capability included: they live in the
                # manifest), so no copy in the store is a privileged binary.
                os.fchmod(fd_out, stat.S_IMODE(before.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
                os.utime(fd_out, ns=(before.st_atime_ns, before.st_mtime_ns))
            finally:
                os.close(fd_out)
        finally:
            os.close(fd_in)
        entry.size = before.st_size
        entry.mtime_ns = before.st_mtime_ns
        entry.mode = stat.S_IMODE(before.st_mode)
        entry.uid = before.st_uid
        entry.gid = before.st_gid
        entry.sha256 = digest
        return True

    @staticmethod
    def _fsync_path(item):
        path, is_dir = item
        if is_dir:
            _fsatomic.fsync_dir(path)
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _fsatomic.fsync_fd(fd, path)
        finally:
            os.close(fd)

    def _verify(self):
        """Check the staged tree against the manifest before publishing it.

        Every entry's presence, type, size, mode, owner, mtime and target is compared.
        Content is re-read only where that can find something: a copied file's digest
        was taken from the very bytes written to it, in the same pass, and reading them
        back (from the page cache) proves nothing more; a file hardlinked from the
        previous backup is re-hashed, which is how a damaged previous backup shows,
        unless its inode is untouched since that backup was verified and sealed.
        """
        self.rehashed = len(self.rehash_paths)
        diff = _manifest.verify(self.manifest, self.data, owner=self.as_root, mtime=True,
                                hash_only=self.rehash_paths, store_copy=True)
        if _manifest.is_clean(diff):
            return
        bad = set(diff['added']) | set(diff['removed']) | set(item['path'] for item in diff['changed'])
        damaged = sorted(bad & self.reused_paths)
        if damaged:
            raise _BaseDamaged(damaged)
        problems = ['%s (%s)' % (item['path'], item['problem']) for item in _manifest.mismatch_list(diff)]
        raise StoreError('the staged copy does not match what was read from the sources: %s; the disk under the '
                         'store may be failing' % '; '.join(problems[:5]))
