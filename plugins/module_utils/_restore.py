# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verified, all-or-nothing restore from the backup store, with a journal for crashes.

A restore never writes into a live target piece by piece.  For each target path
it builds the backed-up tree beside the target (same file system), fsyncs and
verifies it, records its intent in a journal, and swaps the finished tree in:

* ``exchange`` (renameat2 RENAME_EXCHANGE) where the kernel and file system allow it;
* else two renames (target aside, stage in), each followed by a directory fsync;
* a target that is a mount point cannot be renamed: it keeps its directory, and each
  of its top-level children is swapped the same way, with the stage and the
  displaced children kept inside it.

Every version of every target (the old live one, the new staged one) is named in
the journal by its (device, inode) and sits at one of three paths: the target,
the stage, the displaced path.  Whoever reads the journal after a crash can see
which version is where and move them to reach exactly the old or exactly the new
state; every move re-reads the state first, so settling is idempotent and may
itself be interrupted.  The journal's ``phase`` is the decision:

``staging``  stages are being built; nothing live was touched: remove the stages.
``ready``    every stage is complete, fsynced and verified: settle forward when a
             swap has started (some target no longer holds its old version), else back.
``forward``  / ``back``: the direction is decided; finish it.

Only after the direction is written are the versions that lost discarded.

Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import concurrent.futures
import copy
import errno
import fcntl
import json
import os
import secrets
import socket
import stat
import threading
import time

from . import _quarantine
from ._fsatomic import (
    EXCHANGE_UNSUPPORTED, TMP_PREFIX, DurabilityError, atomic_write_json, exchange, fsync_dir, fsync_fd,
    makedirs_durable, read_bytes,
)
from ._manifest import (
    FILE_COST, ManifestError, check_rel_path, compare, copy_hashing, hash_workers, is_clean, scan, sha256_file,
    split_batches,
)
from ._manifest import _excluded as excluded_by
from ._manifest import _type_of as entry_type
from ._trust import problem as trust_problem
from ._trust import running_user

JOURNAL_VERSION = 1
JOURNAL_DIR = '.journal'
LASTRESTORE = 'LASTRESTORE'
STAGE_PREFIX = '.restore-'
DISPLACED_PREFIX = '.displaced-'
PRE_RESTORE_PREFIX = 'pre-restore-'
UNDO_PREFIX = 'pre-undo-'
REJECTED_PREFIX = 'rejected-'
# A backup renamed to this prefix is no longer listed; the store's recovery removes it and its pin.
DELETING_PREFIX = '.deleting-'
PHASES = ('staging', 'ready', 'forward', 'back')
TEXT_DIFF_MAX = 64 * 1024
# Below this many bytes, hashing in a thread pool costs more than it saves.
PARALLEL_HASH_BYTES = 4 * 1024 * 1024
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
# Copying: work handed to a thread at once, in bytes; opening a file counts as FILE_COST bytes.
COPY_BATCH = 4 * 1024 * 1024
# fsync waits on the disk, not the CPU: many in flight let the file system commit them together.
FSYNC_WORKERS = 32
FSYNC_BATCH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MOUNTINFO = '/proc/self/mountinfo'
_HERE = 'See docs/restore.md, "Recovering by hand".'


class RestoreError(Exception):
    """A restore was refused or failed; the message says what state everything is in.

    ``paths``: per target ``{path, state}``; ``journal``: the journal left for
    recovery (None when none was left); ``displaced_backup``: where the version
    the restore displaced is kept; ``quarantined``: corrupt journals moved aside.
    """

    def __init__(self, message, paths=None, journal=None, displaced_backup=None, quarantined=None):
        super().__init__(message)
        self.paths = paths or []
        self.journal = journal
        self.displaced_backup = displaced_backup
        self.quarantined = quarantined or []


class JournalError(RestoreError):
    """A journal cannot be settled automatically; it is left for an operator."""


def utc_now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def running_as_root():
    return os.geteuid() == 0


def _close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def fsync_failed(exc):
    """Whether ``exc`` is (or was caused by) a failed fsync, after which nothing may be fsynced again."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DurabilityError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


# -- identities and moves --------------------------------------------------------------

def _ident(path):
    """``[st_dev, st_ino]`` of ``path`` itself (never followed), or None when absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino]


def _sync_parents(*paths):
    for directory in sorted({os.path.dirname(path) for path in paths}):
        fsync_dir(directory)


def _rename(src, dst):
    os.rename(src, dst)
    _sync_parents(src, dst)


def _discard(path):
    """Remove the tree at ``path`` without following symlinks; missing is fine.

    Only for versions this engine moved aside or staged.  Works through directory
    descriptors so that a directory swapped for a symlink meanwhile makes it fail
    rather than reach outside the tree.
    """
    parent = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _discard_in(parent, os.path.basename(path))
    finally:
        os.close(parent)


def _discard_in(dir_fd, name):
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.fchmod(fd, 0o700)
        for child in os.listdir(fd):
            _discard_in(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _conflict(unit, what):
    return JournalError('%s: %s. Expected the old version %s and the new version %s at %s, %s or %s; '
                        'nothing was moved. %s'
                        % (unit['target'], what, _ident_text(unit['old']), _ident_text(unit['new']),
                           unit['target'], unit['stage'], unit['displaced'], _HERE))


def _ident_text(ident):
    return 'absent' if ident is None else '(dev %d, inode %d)' % tuple(ident)


def place(unit, goal):
    """Move things so that ``unit['target']`` holds version ``goal`` ('new' or 'old').

    A unit is ``{target, stage, displaced, old, new}``: three paths in directories on
    one file system and two versions named by identity (None: that version is
    "absent").  Each step re-reads where the versions are, so calling this again
    after an interruption continues where the last call stopped.
    """
    want, other = (unit['new'], unit['old']) if goal == 'new' else (unit['old'], unit['new'])
    target = unit['target']
    here = _ident(target)
    if here == want:
        return False
    if here is not None and here != other:
        raise _conflict(unit, 'the target holds something that is neither version (changed meanwhile?)')
    spares = [unit['displaced'], unit['stage']] if goal == 'new' else [unit['stage'], unit['displaced']]
    source = None
    if want is not None:
        source = next((path for path in spares if _ident(path) == want), None)
        if source is None:
            raise _conflict(unit, 'the %s version is not where the journal says' % goal)
    if here is None:
        _rename(source, target)
        return True
    if source is not None:
        try:
            exchange(source, target)
        except OSError as exc:
            if exc.errno not in EXCHANGE_UNSUPPORTED:
                raise
        else:
            _sync_parents(source, target)
            return True
    free = next((path for path in spares if path != source and _ident(path) is None), None)
    if free is None:
        raise _conflict(unit, 'no free path to move the current version aside')
    _rename(target, free)
    if source is not None:
        _rename(source, target)
    return True


def discard_loser(unit, goal):
    """Once the target holds ``goal``, remove the other version from the spare paths."""
    want, other = (unit['new'], unit['old']) if goal == 'new' else (unit['old'], unit['new'])
    if _ident(unit['target']) != want:
        raise _conflict(unit, 'the target does not hold the %s version; refusing to discard anything' % goal)
    for path in (unit['stage'], unit['displaced']):
        found = _ident(path)
        if found is None:
            continue
        if found != other:
            raise _conflict(unit, '%s holds something that is neither version' % path)
        _discard(path)
        fsync_dir(os.path.dirname(path))


def started(unit):
    """Whether a move of this unit has begun (its target no longer holds the old version)."""
    return _ident(unit['target']) != unit['old']


# -- the journal -----------------------------------------------------------------------

def journal_dir(set_dir):
    return os.path.join(set_dir, JOURNAL_DIR)


def open_journal_dir(directory, create):
    """A descriptor of the journal directory (made when ``create``), never reached through a symlink.

    The set directory is the store's and only its owner can write in it, so a
    journal checked here stays what it is while the lock is held.  Anything else
    planted at ``.journal`` -- a symlink, a file, a directory another user owns
    or can write to -- is refused: recovery reads its records and acts on the
    paths they name.  Returns None when it is absent and ``create`` is false.
    """
    if create:
        makedirs_durable(os.path.dirname(directory), mode=0o700)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        else:
            fsync_dir(os.path.dirname(directory))
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise JournalError(_planted_journal(directory, 'is %s, not a directory' % _what_is(directory))) from None
    try:
        untrusted = trust_problem(os.fstat(fd))
        if untrusted is not None:
            raise JournalError(_planted_journal(directory, '%s; this engine makes it owned by %s, mode 0700'
                                                % (untrusted, running_user())))
    except BaseException:
        _close_quietly(fd)
        raise
    return fd


def _what_is(path):
    try:
        return 'a symlink to %s' % os.readlink(path)
    except OSError:
        return 'something else'


def _planted_journal(directory, what):
    parent = os.path.dirname(directory)
    return ('the restore journal directory %s %s. It was not made by this engine and is never followed or trusted '
            '(someone else may have planted it to redirect or forge intent records). Nothing was done. Check who '
            'created it and how they could write to %s, remove it, and rerun.' % (directory, what, parent))


_HELD = {}
# Tokens of the restores this process is running: a recovery called from inside one (the
# store recovers before it takes the pre-restore backup) must not settle it.
_IN_FLIGHT = set()


class JournalLock:
    """Exclusive flock on the journal directory: one restore or recovery per set at a time.

    Re-entrant within a process (a restore calls the store, which may recover the
    journal too); ``held`` is false when there is no journal directory to lock and
    ``create`` is false -- then there is nothing to recover either.
    """

    def __init__(self, set_dir, create=True):
        self.directory = journal_dir(os.path.abspath(set_dir))
        self.create = create
        self.fd = None
        self.held = False

    def __enter__(self):
        if self.directory in _HELD:
            _HELD[self.directory] += 1
            self.held = True
            return self
        self.fd = open_journal_dir(self.directory, self.create)
        if self.fd is None:
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            _close_quietly(self.fd)
            raise
        _HELD[self.directory] = 1
        self.held = True
        return self

    def __exit__(self, *exc):
        if not self.held:
            return False
        _HELD[self.directory] -= 1
        if not _HELD[self.directory]:
            del _HELD[self.directory]
            _close_quietly(self.fd)
        return False


class Journal:
    """One intent record ``<set>/.journal/<token>.json``, replaced atomically at each phase."""

    def __init__(self, set_dir, token):
        self.directory = journal_dir(set_dir)
        self.path = os.path.join(self.directory, token + '.json')
        self.removed = False

    def write(self, record):
        atomic_write_json(self.path, record, mode=0o600)

    def advance(self, record, phase):
        """Persist ``record`` at ``phase``; the in-memory phase moves only once it is on disk."""
        self.write(dict(record, phase=phase))
        record['phase'] = phase

    def remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            self.removed = True
            return
        self.removed = True
        fsync_dir(self.directory)


def pending_journals(set_dir):
    """Paths of the intent records in ``set_dir``'s journal (sorted by name)."""
    directory = journal_dir(set_dir)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [os.path.join(directory, name) for name in sorted(names)
            if name.endswith('.json') and not name.startswith('.')]


def _abs_normal(path, what):
    if not isinstance(path, str) or not path.startswith('/') or os.path.normpath(path) != path or path == '/':
        raise ValueError('%s %r is not a normalised absolute path' % (what, path))
    check_rel_path(path[1:], what)
    return path


def _check_ident(value, what):
    if value is None:
        return
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise ValueError('%s is not [device, inode] or null' % what)


def _check_unit(unit, stage, displaced):
    if not isinstance(unit, dict) or set(unit) != {'target', 'stage', 'displaced', 'old', 'new'}:
        raise ValueError('a unit does not have exactly target, stage, displaced, old, new')
    _abs_normal(unit['target'], 'target')
    if unit['stage'] != stage or unit['displaced'] != displaced:
        raise ValueError('unit %s names a stage or displaced path other than %s and %s'
                         % (unit['target'], stage, displaced))
    _check_ident(unit['old'], 'old')
    _check_ident(unit['new'], 'new')


def check_record(record):
    """Refuse a journal record whose paths this engine would never have written.

    Recovery renames and removes what a record names, so a record is checked as
    strictly as a manifest: every stage and displaced path must sit exactly where
    this engine puts them for the target it names.
    """
    if not isinstance(record, dict):
        raise ValueError('the record is not an object')
    if record.get('version') != JOURNAL_VERSION or record.get('kind') != 'restore':
        raise ValueError('not a version %d restore record' % JOURNAL_VERSION)
    if record.get('phase') not in PHASES:
        raise ValueError('unknown phase %r' % (record.get('phase'),))
    token = record.get('token')
    if not isinstance(token, str) or not token.isalnum():
        raise ValueError('token %r is not alphanumeric' % (token,))
    if not isinstance(record.get('items'), list) or not record['items']:
        raise ValueError('no items')
    for key in ('pre_restore', 'backup_id'):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ValueError('%s is not a string' % key)
    pre_restore = record.get('pre_restore')
    if pre_restore is not None and (not pre_restore.startswith((PRE_RESTORE_PREFIX, UNDO_PREFIX))
                                    or '/' in pre_restore or len(pre_restore) > 100):
        raise ValueError('pre_restore %r is not a name this engine gives the backup of a displaced version'
                         % (pre_restore,))
    for item in record['items']:
        _check_item(item, token)
    return record


def _check_item(item, token):
    if not isinstance(item, dict) or item.get('method') not in ('swap', 'files'):
        raise ValueError('an item has no known method')
    target = _abs_normal(item.get('target'), 'target')
    units = item.get('units')
    if not isinstance(units, list):
        raise ValueError('item %s has no unit list' % target)
    if item['method'] == 'swap':
        if len(units) != 1 or not isinstance(units[0], dict) or units[0].get('target') != target \
                or item.get('containers') != [] or item.get('root') is not None:
            raise ValueError('swap item %s must have exactly one unit on its target and no containers' % target)
        stage, displaced = swap_paths(target, token)
        _check_unit(units[0], stage, displaced)
        return
    containers = list(file_containers(target, token))
    if item.get('containers') != containers:
        raise ValueError('files item %s has containers other than %s' % (target, containers))
    root = item.get('root')
    if not isinstance(root, dict) or set(root) != {'old', 'new'}:
        raise ValueError('files item %s has no root attributes' % target)
    for attrs in root.values():
        if not isinstance(attrs, dict) or set(attrs) != {'mode', 'uid', 'gid'} or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in attrs.values()):
            raise ValueError('files item %s root attributes are malformed' % target)
    for unit in units:
        child = unit.get('target') if isinstance(unit, dict) else None
        if not isinstance(child, str) or os.path.dirname(child) != target:
            raise ValueError('files item %s has a unit outside it' % target)
        name = os.path.basename(child)
        if child in containers:
            raise ValueError('files item %s has a unit on its own containers' % target)
        _check_unit(unit, os.path.join(containers[0], name), os.path.join(containers[1], name))


class JournalCorrupt(JournalError):
    """A journal record cannot be trusted: unreadable, or naming paths this engine never writes."""

    def __init__(self, message, why):
        super().__init__(message)
        self.why = why


def load_record(path):
    try:
        raw = read_bytes(path, limit=MAX_JOURNAL_BYTES)
        record = json.loads(raw.decode('utf-8'))
        return check_record(record)
    except (ValueError, ManifestError) as exc:
        raise JournalCorrupt('journal %s cannot be trusted (%s); nothing was touched. %s' % (path, exc, _HERE), str(exc))


def quarantine_journal(path, corrupt):
    """Move a journal that cannot be trusted aside (read-only) and say what that means; returns JournalError.

    Recovery never moves anything on a record it cannot trust, so the restore it recorded
    stays where it stopped.  The record is moved out of the way so that later runs are not
    blocked by it, and the error tells the operator where things may be.
    """
    token = os.path.basename(path)[:-len('.json')]
    try:
        quarantined = _quarantine.quarantine(path)
    except OSError as exc:
        return JournalError('%s Moving it aside failed too (%s); it is unchanged.' % (corrupt, exc), journal=path)
    return JournalError(
        'restore journal %s cannot be trusted (%s). It was moved aside to %s (read-only, as it was); recovery neither '
        'rolled forward nor back from it, nothing was moved. The backups in the store were not touched: recovery never '
        'writes into a backup, and every restore verifies its backup first. The restore it recorded (token %s) may '
        'have stopped half-way: each path it restored holds its old version, its restored version or nothing, with '
        'the other version beside it as .restore-<name>-%s or .displaced-<name>-%s (list them: find / -xdev -name '
        "'.*-%s'). Compare the live paths with the backup (restore in check "
        'mode shows the difference), then run the restore again: the journal no longer blocks it. See docs/restore.md, '
        '"A corrupt journal".' % (path, corrupt.why, quarantined, token, token, token, token),
        journal=None, quarantined=[quarantined])


def swap_paths(target, token):
    """Stage and displaced paths beside ``target`` for the restore ``token``."""
    parent, name = os.path.split(target)
    return (os.path.join(parent, '%s%s-%s' % (STAGE_PREFIX, name[:100], token)),
            os.path.join(parent, '%s%s-%s' % (DISPLACED_PREFIX, name[:100], token)))


def file_containers(target, token):
    """Stage and displaced directories inside a mount-point ``target``."""
    return os.path.join(target, STAGE_PREFIX + token), os.path.join(target, DISPLACED_PREFIX + token)


# -- settling a record -----------------------------------------------------------------

def _apply_root(item, goal, as_root):
    attrs = item['root']['new' if goal == 'new' else 'old']
    if attrs is None:
        return
    target = item['target']
    st = os.lstat(target)
    if as_root and (st.st_uid, st.st_gid) != (attrs['uid'], attrs['gid']):
        os.chown(target, attrs['uid'], attrs['gid'], follow_symlinks=False)
        st = os.lstat(target)
    if stat.S_IMODE(st.st_mode) != attrs['mode']:
        os.chmod(target, attrs['mode'])
    fsync_dir(target)


def _discard_staging(record):
    for item in record['items']:
        paths = item['containers'] if item['method'] == 'files' else [item['units'][0]['stage']]
        for path in paths:
            if _ident(path) is not None:
                _discard(path)
                fsync_dir(os.path.dirname(path))


def settle(journal, record, direction, as_root=None, set_dir=None):
    """Finish ``record`` in ``direction`` ('forward' or 'back') and drop the journal.

    A record still in ``staging`` can only go back (nothing live was touched).
    """
    as_root = running_as_root() if as_root is None else as_root
    if record['phase'] == 'staging':
        _discard_staging(record)
        _retire_displaced_backup(journal, record)
        journal.remove()
        return 'back'
    if record['phase'] != direction:
        journal.advance(record, direction)
    goal = 'new' if direction == 'forward' else 'old'
    for item in record['items']:
        for unit in item['units']:
            place(unit, goal)
        if item['method'] == 'files':
            _apply_root(item, goal, as_root)
    for item in record['items']:
        for unit in item['units']:
            discard_loser(unit, goal)
        for container in item.get('containers', ()):
            if _ident(container) is not None:
                _discard(container)
                fsync_dir(os.path.dirname(container))
    if direction == 'back':
        _retire_displaced_backup(journal, record)
    if direction == 'forward' and not record.get('undo') and set_dir is not None:
        write_lastrestore(set_dir, record)
    journal.remove()
    return direction


def _retire_displaced_backup(journal, record):
    """Unlist the backup a restore that went back took of the live versions: they are live again.

    It is renamed to the store's deleting prefix before the journal goes, so a crash in
    between repeats this (a no-op then) and the store's recovery removes it and its pin.
    """
    name = record.get('pre_restore')
    if not name:
        return
    set_dir = os.path.dirname(journal.directory)
    if _ident(os.path.join(set_dir, name)) is None:
        return
    os.rename(os.path.join(set_dir, name), os.path.join(set_dir, DELETING_PREFIX + name))
    fsync_dir(set_dir)


def decide(record):
    """The direction recovery takes: the one decided, else forward once any swap started."""
    if record['phase'] in ('forward', 'back'):
        return record['phase']
    if record['phase'] == 'staging':
        return 'back'
    moved = any(started(unit) for item in record['items'] for unit in item['units'])
    return 'forward' if moved else 'back'


def _remove_stale_temporaries(set_dir):
    """Temporary files a killed atomic write of a journal record left behind."""
    directory = journal_dir(set_dir)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    stale = [name for name in names if name.startswith(TMP_PREFIX)]
    for name in stale:
        os.unlink(os.path.join(directory, name))
    if stale:
        fsync_dir(directory)


def recover_journal(set_dir, check_mode=False):
    """Settle every restore left in flight in ``set_dir``; returns one report per record.

    Report: ``{journal, backup_id, phase_found, direction, paths}``.  In check mode
    nothing is touched and ``direction`` is what recovery would do.  Raises
    JournalError (leaving the record) when a record cannot be settled safely.
    """
    reports = []
    with JournalLock(set_dir, create=False) as lock:
        if not lock.held:
            return reports
        for path in pending_journals(set_dir):
            if os.path.basename(path)[:-len('.json')] in _IN_FLIGHT:
                continue
            try:
                record = load_record(path)
            except JournalCorrupt as exc:
                if check_mode:
                    raise
                raise quarantine_journal(path, exc) from None
            host = socket.gethostname()
            if record.get('host') != host:
                raise JournalError('journal %s was written on host %r, this is %r; it names paths on that host '
                                   'and is left alone. Settle it there. %s' % (path, record.get('host'), host, _HERE))
            direction = decide(record)
            report = {'journal': path, 'backup_id': record.get('backup_id'), 'phase_found': record['phase'],
                      'direction': direction, 'paths': [item['target'] for item in record['items']],
                      'displaced_backup': record.get('pre_restore')}
            if not check_mode:
                journal = Journal(set_dir, record['token'])
                settle(journal, record, direction, set_dir=set_dir)
            reports.append(report)
        if not check_mode:
            _remove_stale_temporaries(set_dir)
    return reports


def write_lastrestore(set_dir, record):
    """Remember what the last completed restore displaced, for ``undo``."""
    atomic_write_json(os.path.join(set_dir, LASTRESTORE), {
        'version': 1, 'restored': record['backup_id'], 'pre_restore': record.get('pre_restore'),
        'paths': [item['target'] for item in record['items']], 'finished': utc_now(), 'host': record.get('host'),
    }, mode=0o600)


def read_lastrestore(set_dir):
    path = os.path.join(set_dir, LASTRESTORE)
    try:
        raw = read_bytes(path, limit=MAX_JOURNAL_BYTES)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode('utf-8'))
        if not isinstance(data, dict) or data.get('version') != 1:
            raise ValueError('unknown format')
        for target in data.get('paths', []):
            _abs_normal(target, 'paths')
        if data.get('pre_restore') is not None and not isinstance(data['pre_restore'], str):
            raise ValueError('pre_restore is not a backup id')
    except (ValueError, ManifestError) as exc:
        raise RestoreError('%s cannot be read (%s); undo does not know what the last restore displaced. '
                           'Restore the pre-restore backup by id instead (restore with id: pre-restore-...).'
                           % (path, exc))
    return data


# -- building and checking trees ---------------------------------------------------------

def entries_under(manifest, rel):
    if manifest is None:
        return []
    prefix = rel + '/'
    return [entry for entry in manifest.entries if entry.path == rel or entry.path.startswith(prefix)]


class _DirCursor:
    """Directories below ``root_fd`` opened one component at a time, never through a symlink."""

    def __init__(self, root_fd):
        self.root_fd = root_fd
        self.stack = []

    def at(self, parts):
        keep = 0
        while keep < len(self.stack) and keep < len(parts) and self.stack[keep][0] == parts[keep]:
            keep += 1
        while len(self.stack) > keep:
            _close_quietly(self.stack.pop()[1])
        for name in parts[keep:]:
            parent = self.stack[-1][1] if self.stack else self.root_fd
            self.stack.append((name, os.open(name, _DIR_FLAGS, dir_fd=parent)))
        return self.stack[-1][1] if self.stack else self.root_fd

    def close(self):
        while self.stack:
            _close_quietly(self.stack.pop()[1])


# Why setting or removing an xattr can fail without anything being wrong with the disk: the runner may not
# write that namespace (EPERM; SELinux answers EACCES for security.*), the file system does not support it
# (ENOTSUP), or the kernel refuses the value (EINVAL: an SELinux label the loaded policy does not know; E2BIG,
# ERANGE: larger than this file system holds).  These become warnings; anything else fails the restore.
_XATTR_REFUSED = frozenset((errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL, errno.E2BIG, errno.ERANGE))
_PROC_FD = '/proc/self/fd'


def _xattr_refused(exc, name):
    return exc.errno in _XATTR_REFUSED or (exc.errno == errno.EACCES and name.startswith('security.'))


class XattrProblems:
    """Xattrs a restore could not set or remove: the verification skips them and the operator is warned.

    Collected from the copy threads; ``unset`` maps a manifest path to the names
    left as the new inode had them, ``warnings()`` says it in one sentence per
    kind of problem.
    """

    EXAMPLES = 3

    def __init__(self):
        self.lock = threading.Lock()
        self.unset = {}
        self.kinds = {}

    def add(self, path, action, name, exc):
        with self.lock:
            self.unset.setdefault(path, set()).add(name)
            paths = self.kinds.setdefault((action, name, exc.errno), [])
            paths.append('/' + path)

    def warnings(self):
        out = []
        for (action, name, number), paths in sorted(self.kinds.items()):
            shown = ', '.join(sorted(paths)[:self.EXAMPLES])
            if len(paths) > self.EXAMPLES:
                shown += ' and %d more' % (len(paths) - self.EXAMPLES)
            if action == 'set':
                what = 'could not set xattr %s on %s (%s%s); the restored entries lack it' % (
                    name, shown, os.strerror(number), _xattr_hint(name, number))
            else:
                what = 'could not remove xattr %s from %s, which the new entries got from their directory but the ' \
                       'backup does not record (%s%s); they keep it' % (name, shown, os.strerror(number),
                                                                        _xattr_hint(name, number))
            out.append('Restore: ' + what + '. Everything else was restored and verified.')
        return out


def _xattr_hint(name, number):
    if number in (errno.ENOTSUP, errno.EOPNOTSUPP):
        return ': the file system of the target does not support it'
    if number == errno.EINVAL:
        return ': the kernel refused the value (an SELinux label the loaded policy does not know?)'
    if name.startswith(('trusted.', 'security.')) and not running_as_root():
        return ': only root (CAP_SYS_ADMIN, CAP_SETFCAP for security.capability) may write it; run the restore ' \
               'as root (become: true) to restore it'
    return ''


def _apply_xattrs(handle, entry, problems, **nofollow):
    """Make the xattrs of ``handle`` exactly the entry's: set the recorded ones, remove the inherited rest.

    ``handle`` is a descriptor, or (``follow_symlinks=False``) the path of a
    symlink through its directory's descriptor.  A new inode inherits xattrs (an
    access ACL from a default ACL, an SELinux label), which are removed unless
    recorded.  A version-1 manifest recorded none: the entry is left as created.
    """
    if entry.xattrs is None:
        return
    try:
        present = os.listxattr(handle, **nofollow)
    except OSError as exc:
        if exc.errno not in _XATTR_REFUSED:
            raise
        present = ()
    wanted = dict(entry.xattrs)
    for name in present:
        if name in wanted:
            continue
        try:
            os.removexattr(handle, name, **nofollow)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                if not _xattr_refused(exc, name):
                    raise
                problems.add(entry.path, 'remove', name, exc)
    for name, value in entry.xattrs:
        try:
            os.setxattr(handle, name, value, **nofollow)
        except OSError as exc:
            if not _xattr_refused(exc, name):
                raise
            if name not in present or os.getxattr(handle, name, **nofollow) != value:
                problems.add(entry.path, 'set', name, exc)


def _set_fd_attrs(fd, entry, as_root, problems):
    """Owner, mode, xattrs, mtime -- in that order.

    chown clears setuid, setgid and security.capability, so it comes first;
    chmod rewrites an access ACL's mask, so the ACL (an xattr) comes after it;
    every change moves the mtime, so it comes last.  Without root, a user.*
    xattr needs write permission: a read-only entry is writable meanwhile.
    """
    if as_root:
        os.fchown(fd, entry.uid, entry.gid)
    meanwhile = entry.mode
    if not as_root and not entry.mode & stat.S_IWUSR and entry.xattrs:
        meanwhile |= stat.S_IWUSR
    os.fchmod(fd, meanwhile)
    _apply_xattrs(fd, entry, problems)
    if meanwhile != entry.mode:
        os.fchmod(fd, entry.mode)
    os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))


def _set_symlink_attrs(dir_fd, leaf, entry, as_root, problems):
    """Owner, xattrs (trusted.* and security.* only: the kernel allows no others on a symlink), mtime."""
    if as_root and (entry.uid, entry.gid) != (os.geteuid(), os.getegid()):
        os.chown(leaf, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
    if entry.xattrs is not None:
        # l*xattr take no directory descriptor; /proc/self/fd/<fd> names the directory itself, and the
        # symlink, the last component, is not followed.
        handle = '%s/%d/%s' % (_PROC_FD, dir_fd, leaf)
        _apply_xattrs(handle, entry, problems, follow_symlinks=False)
    os.utime(leaf, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


class BackupDamaged(RestoreError):
    """A backed-up file does not hold what its manifest records; nothing live was touched."""


class _Stopped(Exception):
    """A batch gave up because another one failed first."""


def _run_batches(func, batches, workers):
    """``[func(batch, stop) for batch in batches]`` on up to ``workers`` threads.

    ``stop`` is a ``threading.Event`` set as soon as any batch fails: a batch checks
    it between items and stops (an operation that failed starts nothing new -- no
    write after an ENOSPC, no fsync after a failed one).  Every started batch is
    waited for; then the first real failure, in batch order, is raised.  One batch
    runs in the calling thread.
    """
    stop = threading.Event()
    if len(batches) <= 1 or workers <= 1:
        return [func(batch, stop) for batch in batches]

    def run(batch):
        if stop.is_set():
            raise _Stopped()
        try:
            return func(batch, stop)
        except BaseException:
            stop.set()
            raise

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
        futures = [pool.submit(run, batch) for batch in batches]
        concurrent.futures.wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, _Stopped):
            raise error
    return [future.result() for future in futures]


def _check_stop(stop):
    if stop.is_set():
        raise _Stopped()


def _copy_file(src, dst, entry, where):
    """Copy ``src`` to ``dst`` (descriptors), hashing the very bytes written in the same pass.

    Raises BackupDamaged unless size and SHA-256 are what the manifest records.
    """
    size, digest = copy_hashing(src, dst)
    if size != entry.size or digest != entry.sha256:
        raise BackupDamaged('%s: the backup does not match its manifest (%s)'
                            % (where, 'size %d, the manifest says %d' % (size, entry.size) if size != entry.size
                                      else 'its SHA-256 differs'))


def _parts_below(rel, path):
    return () if path == rel else tuple(path[len(rel) + 1:].split('/'))


class _TreeBuild:
    """The work of one ``build_tree``: directory descriptors, the files to copy, what was written."""

    def __init__(self, manifest, rel, leaf, as_root, root_attrs, problems):
        self.manifest = manifest
        self.rel = rel
        self.leaf = leaf
        self.as_root = as_root
        self.root_attrs = root_attrs
        self.problems = problems
        self.src_root = None
        self.base = None        # the descriptor every destination path is relative to
        self.copies = []        # (entry, destination parts, content parts)
        self.holders = {}       # hardlink target outside the subset -> the member here that holds its content
        self.dirs = []          # (destination parts, entry)
        self.written = {}

    def copy_batch(self, batch, stop):
        """Copy a run of files, each from the backup into a new inode; returns ``[(path, inode)]``."""
        source, dest = _DirCursor(self.src_root), _DirCursor(self.base)
        done = []
        try:
            for entry, parts, content in batch:
                _check_stop(stop)
                done.append((entry.path, self._copy_one(entry, source.at(content[:-1]), content[-1],
                                                        dest.at(parts[:-1]), parts[-1])))
        finally:
            source.close()
            dest.close()
        return done

    def _copy_one(self, entry, src_dir_fd, src_name, dir_fd, name):
        where = 'backup %s, /%s' % (self.manifest.id, entry.path)
        src = os.open(src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(src).st_mode):
                raise BackupDamaged('%s: not a regular file, the backup does not match its manifest' % where)
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=dir_fd)
            try:
                try:
                    _copy_file(src, dst, entry, where)
                except BackupDamaged as exc:
                    links = sorted('/' + other.path for other in self.manifest.entries
                                   if other.type == 'hardlink' and other.target == entry.path)
                    if not links:
                        raise
                    raise BackupDamaged('%s; its hardlinks %s share the damaged content' % (exc, ', '.join(links)))
                _set_fd_attrs(dst, entry, self.as_root, self.problems)
                inode = os.fstat(dst).st_ino
                if not self.reopenable(entry):
                    fsync_fd(dst, '/' + entry.path)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return inode

    def reopenable(self, entry):
        """Whether the written file can be opened again to be fsynced later (else it is fsynced at once)."""
        return self.as_root or bool(entry.mode & stat.S_IRUSR)

    def dest_parts(self, entry):
        parts = _parts_below(self.rel, entry.path)
        return parts if parts else (self.leaf,)

    def fsync_batch(self, batch, stop):
        dest = _DirCursor(self.base)
        try:
            for parts, where in batch:
                _check_stop(stop)
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dest.at(parts[:-1]))
                try:
                    fsync_fd(fd, where)
                finally:
                    os.close(fd)
        finally:
            dest.close()

    def dir_batch(self, batch, stop):
        """Set each directory's attributes (its entries are all made) and fsync it."""
        dest = _DirCursor(self.base)
        try:
            for parts, entry in batch:
                _check_stop(stop)
                fd = dest.at(parts)
                if parts or self.root_attrs:
                    _set_fd_attrs(fd, entry, self.as_root, self.problems)
                fsync_fd(fd, '/' + entry.path)
        finally:
            dest.close()


def build_tree(manifest, rel, data_dir, dest, as_root, root_attrs=True, parent_fd=None, problems=None):
    """Create at ``dest`` (absent) the object the manifest records at ``rel``; returns ``{path: inode}``.

    Content comes from ``data_dir`` (a backup's data directory); type, mode, mtime,
    xattrs and (as root) owner from the manifest; fifos are made anew.  Xattrs
    that cannot be set (see ``XattrProblems``) are collected in ``problems``.
    Each file is copied and hashed in one pass and must match the manifest's size
    and SHA-256 (else BackupDamaged): that read is the verification of the
    backup's content and of what was written.  The result maps each copied file's
    manifest path to the inode written.

    OSTree's order: every file is written (on worker threads, small files in
    batches), then every file is fsynced (many at once), then every directory gets
    its attributes and is fsynced, and ``dest``'s parent last.  A failed fsync
    stops everything and is never retried.  All creation goes through directory
    descriptors opened with O_NOFOLLOW, so no entry can land outside ``dest``
    whatever the manifest says.  ``root_attrs`` false leaves ``dest`` itself at mode
    0700 (a container whose children move).  ``parent_fd``: a descriptor of ``dest``'s parent (the
    caller's, reached without following a symlink; see ``open_parent``) instead of opening that path.
    """
    entries = sorted(entries_under(manifest, rel), key=lambda entry: entry.path.split('/'))
    if not entries or entries[0].path != rel:
        raise RestoreError('backup %s holds nothing at /%s' % (manifest.id, rel))
    in_subset = {entry.path for entry in entries}
    parent_dir, name = os.path.split(dest)
    build = _TreeBuild(manifest, rel, name, as_root, root_attrs, XattrProblems() if problems is None else problems)
    opened = dst_root = cursor = None
    try:
        build.src_root = os.open(data_dir, _DIR_FLAGS)
        if parent_fd is None:
            parent_fd = opened = os.open(parent_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        build.base = parent_fd
        if entries[0].type == 'dir':
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            dst_root = build.base = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        cursor = _DirCursor(build.base)
        _make_entries(build, entries, in_subset, cursor)
        batches = split_batches(build.copies, COPY_BATCH, lambda job: job[0].size + FILE_COST)
        for done in _run_batches(build.copy_batch, batches, hash_workers()):
            build.written.update(done)
        _link_hardlinks(build, entries, in_subset, cursor)
        cursor.close()
        deferred = [(parts, '/' + entry.path) for entry, parts, _content in build.copies if build.reopenable(entry)]
        _run_batches(build.fsync_batch, split_batches(deferred, FSYNC_BATCH, lambda job: 1), FSYNC_WORKERS)
        _run_batches(build.dir_batch, split_batches(build.dirs, FSYNC_BATCH, lambda job: 1), FSYNC_WORKERS)
        fsync_fd(parent_fd, parent_dir)
    finally:
        # read-only directory descriptors: a failed close loses nothing, and must not leak the others
        if cursor is not None:
            cursor.close()
        for fd in (dst_root, opened, build.src_root):
            if fd is not None:
                _close_quietly(fd)
    return build.written


def _link_hardlinks(build, entries, in_subset, cursor):
    """Link each hardlink to its file, or (file outside the subset) to the group's member holding the content.

    The file's directory has a cursor of its own.

    One cursor for both ends would close the file's directory while opening the link's
    (and the next open could reuse that descriptor number for another directory).
    """
    sources = _DirCursor(build.base)
    try:
        for entry in entries:
            if entry.type != 'hardlink':
                continue
            first = entry.target if entry.target in in_subset else build.holders[entry.target]
            if first != entry.path:
                parts = _parts_below(build.rel, entry.path) or (build.leaf,)
                first = _parts_below(build.rel, first) or (build.leaf,)
                os.link(first[-1], parts[-1], src_dir_fd=sources.at(first[:-1]), dst_dir_fd=cursor.at(parts[:-1]),
                        follow_symlinks=False)
    finally:
        sources.close()


def _make_entries(build, entries, in_subset, cursor):
    """Directories and symlinks now, in order; the files to copy and the directories to finish, listed."""
    for entry in entries:
        parts = _parts_below(build.rel, entry.path)
        if entry.type == 'dir':
            if parts:
                os.mkdir(parts[-1], 0o700, dir_fd=cursor.at(parts[:-1]))
            build.dirs.append((parts, entry))
        elif entry.type == 'symlink':
            dir_fd, leaf = (cursor.at(parts[:-1]), parts[-1]) if parts else (build.base, build.leaf)
            os.symlink(entry.target, leaf, dir_fd=dir_fd)
            # A symlink cannot be fsynced: its inode changes reach the disk with the journal commit that
            # its directory's fsync waits for.
            _set_symlink_attrs(dir_fd, leaf, entry, build.as_root, build.problems)
        elif entry.type == 'fifo':
            dir_fd, leaf = (cursor.at(parts[:-1]), parts[-1]) if parts else (build.base, build.leaf)
            os.mkfifo(leaf, 0o600, dir_fd=dir_fd)
            # O_NONBLOCK: opening a fifo to read never waits for a writer
            fd = os.open(leaf, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                _set_fd_attrs(fd, entry, build.as_root, build.problems)
            finally:
                os.close(fd)
        elif entry.type == 'file':
            build.copies.append((entry, build.dest_parts(entry), tuple(entry.path.split('/'))))
        elif entry.target not in in_subset:
            if entry.target in build.holders:
                continue  # linked to the group's first member in this subset (see build_tree)
            # the group's file lies outside what is restored: its first member here holds the content,
            # with the inode's xattrs (recorded on the file entry)
            build.holders[entry.target] = entry.path
            holder = copy.copy(entry)
            holder.xattrs = build.manifest.by_path[entry.target].xattrs
            build.copies.append((holder, build.dest_parts(entry), tuple(entry.target.split('/'))))
    # deepest first: a directory is finished after the directories in it (they are fsynced in parallel anyway)
    build.dirs.reverse()


def inspect(manifest, rel, path, owner, excludes=(), ignore_root_attrs=False, root_mtime=True):
    """Compare the object at ``path`` with what the manifest records at ``rel``.

    ``path`` may be anywhere (a stage, a displaced copy, the live target); entries are
    compared as if it sat at ``/rel``.  Returns the ``_manifest.compare`` result in
    manifest-relative paths (``added``: at ``path`` but not in the backup).
    """
    parent, name = os.path.split(path)
    scanned, skipped, local = _scan_as(parent, name, rel, excludes)
    expected = entries_under(manifest, rel)
    want = {entry.path: entry for entry in expected}
    to_hash = [entry for entry in scanned if entry.type == 'file' and entry.path in want
               and want[entry.path].is_content() and want[entry.path].size == entry.size]

    def digest(entry):
        return sha256_file(os.path.join(parent, local[entry.path]))
    if sum(entry.size for entry in to_hash) < PARALLEL_HASH_BYTES:
        digests = [digest(entry) for entry in to_hash]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=hash_workers()) as pool:
            digests = list(pool.map(digest, to_hash))
    for entry, value in zip(to_hash, digests):
        entry.sha256 = value
    return _compare_scanned(expected, want, scanned, skipped, rel, name, owner, ignore_root_attrs,
                            dir_mtime=True, root_mtime=root_mtime)


def _scan_as(parent, name, rel, excludes):
    """``scan`` of ``parent/name`` with its entries renamed as if it sat at ``/rel``.

    Returns ``(entries, skipped, {manifest path: path relative to parent})``.
    """
    scanned, skipped = scan(parent, [name], excludes)
    local = {}
    for entry in scanned:
        original = entry.path
        entry.path = rel + original[len(name):]
        local[entry.path] = original
        if entry.type == 'hardlink':
            entry.target = rel + entry.target[len(name):]
    return scanned, skipped, local


def _compare_scanned(reference, want, scanned, skipped, rel, name, owner, ignore_root_attrs, unset=None,
                     dir_mtime=False, root_mtime=True):
    """Compare scanned entries (file digests set) with the manifest's; hardlinks take their file's digest.

    ``unset``: ``{manifest path: xattr names}`` the restore could not set or
    remove (and warned about); they are taken as the manifest has them.
    ``dir_mtime``: directory mtimes count (the plan: a restore puts them back; the
    checks after building and swapping leave them out, as a live directory's mtime
    moves with its contents); ``root_mtime`` false leaves out that of ``rel`` itself.
    """
    files = {entry.path: entry.sha256 for entry in scanned if entry.type == 'file'}
    for entry in scanned:
        if entry.type == 'hardlink':
            entry.sha256 = files.get(entry.target)
    if unset:
        _forgive_unset(scanned, want, unset)
    if ignore_root_attrs and scanned and scanned[0].path == rel and rel in want:
        for key in ('mode', 'uid', 'gid', 'mtime_ns', 'xattrs'):
            setattr(scanned[0], key, getattr(want[rel], key))
    if not root_mtime and scanned and scanned[0].path == rel and rel in want:
        scanned[0].mtime_ns = want[rel].mtime_ns
    result = compare(reference, scanned, owner=owner, mtime=True, dir_mtime=dir_mtime)
    result['special'] = {'kept': [], 'lost': []}
    for skipped_path in skipped:
        path = rel + skipped_path[len(name):]
        parent = want.get(os.path.dirname(path))
        # what the restore carries over (see carry_over) is no difference; what goes with its directory is
        if path not in want and parent is not None and parent.type == 'dir':
            result['special']['kept'].append(path)
        else:
            result['special']['lost'].append(path)
            result['added'].append(path)
    return result


def _forgive_unset(scanned, want, unset):
    for entry in scanned:
        names = unset.get(entry.path, set())
        if entry.type == 'hardlink':
            names = names | unset.get(entry.target, set())
        reference = want.get(entry.path)
        if not names or entry.xattrs is None or reference is None or reference.xattrs is None:
            continue
        recorded = dict(reference.xattrs)
        found = dict(entry.xattrs)
        for xattr in names:
            if xattr in recorded:
                found[xattr] = recorded[xattr]
            else:
                found.pop(xattr, None)
        entry.xattrs = tuple(sorted(found.items()))


def mount_points():
    """Mount points of this process's namespace (bind mounts of one file system included)."""
    try:
        raw = read_bytes(_MOUNTINFO, limit=16 * 1024 * 1024)
    except (OSError, ValueError):
        return frozenset()
    points = set()
    for line in raw.decode('utf-8', 'surrogateescape').splitlines():
        fields = line.split(' ')
        if len(fields) > 4:
            points.add(_unescape_mount(fields[4]))
    return frozenset(points)


def _unescape_mount(text):
    """mountinfo writes space, tab, newline and backslash as ``\\ooo`` (octal)."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == '\\' and i + 3 < len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


def is_mount_point(path, points=None):
    if os.path.ismount(path):
        return True
    points = mount_points() if points is None else points
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) in points


# -- plan and diff -----------------------------------------------------------------------

def plan_target(manifest, rel, target, as_root, excludes=(), root=None):
    """What restoring ``target`` would do: files the restore adds, removes and changes.

    Returns ``(plan, special)``: ``special`` lists the live sockets and device nodes (which no
    backup holds) the restore ``kept`` (carries over) and ``lost`` (removes with their directory).
    ``root``: the backed-up root ``target`` is reached from (see ``walk_root``).
    """
    if _unreachable(root or source_of(manifest, rel), rel):
        return {'path': target, 'added': [], 'removed': [], 'changed': []}, {'kept': [], 'lost': []}
    # a mount point's own mtime moves with the restore's containers inside it (see _choose_method)
    result = inspect(manifest, rel, target, owner=as_root, excludes=excludes, root_mtime=not is_mount_point(target))
    changed = result['changed']
    directory = [manifest.by_path[item['path']].type == 'dir' for item in changed]
    if result['added'] or result['removed'] or any(
            not is_dir or item['reasons'] != ['mtime'] for item, is_dir in zip(changed, directory)):
        # a directory's mtime moves with its contents: it is named only when directory mtimes are all that differ
        changed = [dict(item, reasons=[reason for reason in item['reasons'] if reason != 'mtime']) if is_dir else item
                   for item, is_dir in zip(changed, directory)]
        changed = [item for item in changed if item['reasons']]
    return {
        'path': target,
        'added': ['/' + path for path in result['removed']],
        'removed': ['/' + path for path in result['added']],
        'changed': [{'path': '/' + item['path'], 'reasons': item['reasons']} for item in changed],
    }, {key: ['/' + path for path in paths] for key, paths in result['special'].items()}


def _unreachable(root, rel):
    """Whether ``rel`` lies below a live non-directory (the backup has none there either: see widen_targets)."""
    found = _first_non_directory(root, rel)
    return found is not None and found[1] != errno.ENOENT


def plan_is_empty(plan):
    return not (plan['added'] or plan['removed'] or plan['changed'])


def _text_of(path):
    """``(text, None)`` for a small UTF-8 file without NUL bytes, else ``(None, why not)``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return '', None
    except OSError as exc:
        return None, 'unreadable: %s' % exc.strerror
    if stat.S_ISDIR(st.st_mode):
        return None, 'directory'
    if stat.S_ISLNK(st.st_mode):
        return None, 'symlink'
    if not stat.S_ISREG(st.st_mode):
        return None, 'special file'
    if st.st_size > TEXT_DIFF_MAX:
        return None, 'larger than %d bytes' % TEXT_DIFF_MAX
    try:
        data = read_bytes(path, limit=TEXT_DIFF_MAX)
    except (OSError, ValueError) as exc:
        return None, 'unreadable: %s' % exc
    if b'\0' in data:
        return None, 'binary'
    try:
        return data.decode('utf-8'), None
    except UnicodeDecodeError:
        return None, 'binary'


def _backup_side(manifest, data_dir, path):
    entry = manifest.by_path.get(path.lstrip('/')) if manifest is not None else None
    if entry is None:
        return '', None
    if entry.type == 'dir':
        return None, 'directory'
    if entry.type == 'symlink':
        return None, 'symlink'
    if entry.size > TEXT_DIFF_MAX:
        return None, 'larger than %d bytes' % TEXT_DIFF_MAX
    return _text_of(os.path.join(data_dir, entry.path if entry.type == 'file' else entry.target))


def diff_for(plans, manifest, data_dir):
    """Ansible diffs: before/after text for small text files, one summary line for everything else.

    Contents appear only here (diff mode is the caller's choice); files that look
    binary or are larger than TEXT_DIFF_MAX are only named.
    """
    diffs = []
    summary = []
    for plan in plans:
        touched = ([(path, 'add', None) for path in plan['added']]
                   + [(path, 'remove', None) for path in plan['removed']]
                   + [(item['path'], 'change', item['reasons']) for item in plan['changed']])
        for path, action, reasons in sorted(touched):
            before, why_before = _text_of(path) if action != 'add' else ('', None)
            after, why_after = _backup_side(manifest, data_dir, path) if action != 'remove' else ('', None)
            detail = ' (%s)' % ', '.join(reasons) if reasons else ''
            if before is not None and after is not None and before != after:
                diffs.append({'before_header': path, 'after_header': path, 'before': before, 'after': after})
            else:
                why = why_before or why_after
                summary.append('%s %s%s%s\n' % (action, path, detail, '; ' + why if why else ''))
    if summary:
        diffs.append({'prepared': ''.join(summary)})
    return diffs


# -- the restore ---------------------------------------------------------------------------

class _Item:
    """One target path of a restore: what is there, what the backup has, how to swap."""

    def __init__(self, target, rel, manifest, excludes, plan, special=None, root=None):
        self.target = target
        self.rel = rel
        self.root = root or source_of(manifest, rel)
        self.excludes = excludes
        self.plan = plan
        self.special = special or {'kept': [], 'lost': []}
        self.new = manifest.by_path.get(rel)
        self.old_exists = _ident(target) is not None
        self.method = None
        self.record = None
        self.ids = {}
        self.carried = []


def select_targets(manifest, paths):
    """``[(target, rel)]`` for the requested paths (all sources when none), checked against the backup."""
    rels = manifest.rel_sources
    if not paths:
        return [('/' + rel, rel) for rel in rels]
    chosen = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith('/'):
            raise RestoreError('path %r is not absolute; give paths as the backup recorded them (%s)'
                               % (path, ', '.join(manifest.sources)))
        rel = '/'.join(part for part in path.split('/') if part and part != '.')
        try:
            check_rel_path(rel, 'path')
        except ManifestError as exc:
            raise RestoreError('path %r is not usable: %s' % (path, exc))
        if not any(rel == source or rel.startswith(source + '/') for source in rels):
            raise RestoreError('%s is not part of backup %s (it holds %s); nothing was restored'
                               % (path, manifest.id, ', '.join(manifest.sources) or 'nothing'))
        chosen.append(('/' + rel, rel))
    _refuse_overlaps([rel for _target, rel in chosen])
    return chosen


def _refuse_overlaps(rels):
    ordered = sorted(set(rels))
    if len(ordered) != len(rels):
        raise RestoreError('a path is listed twice; nothing was restored')
    for first, second in zip(ordered, ordered[1:]):
        if second.startswith(first + '/'):
            raise RestoreError('/%s lies inside /%s; list one of them; nothing was restored' % (second, first))


def refuse_store_overlap(targets, backup_root):
    """A restore must never move the store it reads from (nor the journal that guards it)."""
    roots = {os.path.normpath(backup_root), os.path.realpath(backup_root)}
    for target, _rel in targets:
        for candidate in (target, os.path.join(os.path.realpath(os.path.dirname(target)), os.path.basename(target))):
            for root in roots:
                if candidate == root or root.startswith(candidate + '/') or candidate.startswith(root + '/'):
                    raise RestoreError('%s overlaps the backup store %s; a restore never moves or writes into the '
                                       'store. Nothing was restored. Restore the paths beside the store instead '
                                       '(paths: [...])' % (target, backup_root))


def source_of(manifest, rel):
    """The backed-up root (a manifest source, relative) that holds ``rel``."""
    return next(src for src in manifest.rel_sources if rel == src or rel.startswith(src + '/'))


def walk_root(manifest, rel, roots=()):
    """The backed-up root ``rel`` is reached from: the outermost of ``roots`` and the manifest's sources
    that holds it.  An undo passes the roots of the backup the undone restore restored: a pre-restore
    backup's sources are the restored paths themselves, which may lie deep inside a backed-up tree."""
    holding = [root for root in list(roots) + manifest.rel_sources if rel == root or rel.startswith(root + '/')]
    return min(holding, key=len)


def _components(root, rel):
    """``(above, below)``: the path above the backed-up ``root``, and the relative paths from that
    root down to ``rel``'s parent -- the directories reached without following a symlink."""
    parts = rel.split('/')
    depth = len(root.split('/'))
    below = ['/'.join(parts[:end]) for end in range(depth, len(parts))]
    return '/' + '/'.join(parts[:depth - 1]), below


def _first_non_directory(root, rel):
    """``(component, errno)`` for the first directory above ``rel`` (from its backed-up ``root`` down) that
    is not a directory when reached without following a symlink; None when all are."""
    above, below = _components(root, rel)
    if not below:
        return None
    try:
        fd = os.open(above, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return below[0], errno.ENOENT
    try:
        for component in below:
            try:
                inner = os.open(os.path.basename(component), _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return component, exc.errno
                raise
            _close_quietly(fd)
            fd = inner
    finally:
        _close_quietly(fd)
    return None


def open_parent(manifest, root, rel, as_root=False, create=False):
    """A descriptor of the directory that holds ``/rel``, reached from its backed-up root without following.

    Directories above the backed-up root are the system's and resolve as usual.  Below it, a
    component that is not a directory (a symlink planted there, a file) raises RestoreError;
    a missing one is made with the backup's mode (and owner, as root) when ``create``.
    """
    above, below = _components(root, rel)
    if create:
        makedirs_durable(above, mode=0o755)
    fd = os.open(above, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for component in below:
            inner = _open_component(fd, component, manifest, as_root, create)
            _close_quietly(fd)
            fd = inner
    except BaseException:
        _close_quietly(fd)
        raise
    return fd


def _open_component(fd, component, manifest, as_root, create):
    name = os.path.basename(component)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        raise RestoreError('/%s is no longer a directory (a symlink or another file was put there while the restore '
                           'ran); a restore never writes through it' % component) from None
    entry = manifest.by_path.get(component)
    os.mkdir(name, 0o700, dir_fd=fd)
    inner = os.open(name, _DIR_FLAGS, dir_fd=fd)
    try:
        if entry is not None and entry.type == 'dir':
            if as_root:
                os.fchown(inner, entry.uid, entry.gid)
            os.fchmod(inner, entry.mode)
        else:
            os.fchmod(inner, 0o755)
        fsync_fd(inner, '/' + component)
        fsync_fd(fd, os.path.dirname('/' + component))
    except BaseException:
        _close_quietly(inner)
        raise
    return inner


def _kind_of(path):
    try:
        return 'a symlink to %s' % os.readlink(path)
    except OSError:
        return 'not a directory'


def check_parents(manifest, items):
    """Refuse to go on when a directory above a target is no longer one (see ``open_parent``).

    The journal and ``place`` name targets by absolute path, so the kernel resolves every
    component again at each rename.  This check, run right before the stage is built, before
    the live version is kept and before the swap, leaves a window of a few system calls in
    which a user who can rename directories below a backed-up root could put a symlink in a
    component; every move in ``place`` re-checks the identity of what it moves first, so such
    a symlink makes it stop with a conflict rather than move something else.
    """
    for item in items:
        _close_quietly(open_parent(manifest, item.root, item.rel))


def widen_targets(manifest, targets, roots=()):
    """Targets reached without following a symlink below their backed-up root; returns ``(targets, warnings)``.

    Where a directory above a target is, live, a symlink or another non-directory and the backup has a
    directory there, that component itself becomes the target: it is replaced as an entry (the link
    is kept in the pre-restore backup like anything replaced), never followed.  Where the backup has
    no directory there either, the target is absent on both sides and stays as asked (its plan is empty).
    ``roots``: see ``walk_root``.
    """
    widened = []
    warnings = []
    for target, rel in targets:
        found = _first_non_directory(walk_root(manifest, rel, roots), rel)
        if found is None or found[1] == errno.ENOENT:
            widened.append((target, rel))
            continue
        component = found[0]
        entry = manifest.by_path.get(component)
        if entry is None or entry.type != 'dir':
            warnings.append('/%s is %s, and backup %s has no directory there: %s, below it, is left alone (a restore '
                            'never follows it)' % (component, _kind_of('/' + component), manifest.id, target))
            widened.append((target, rel))
            continue
        warnings.append('/%s is %s where backup %s has a directory, and %s lies below it: the restore replaces /%s '
                        'as a whole with the backed-up directory instead of following it (the live entry is kept in '
                        'the pre-restore backup)' % (component, _kind_of('/' + component), manifest.id, target,
                                                     component))
        widened.append(('/' + component, component))
    kept = []
    for target, rel in sorted(set(widened), key=lambda pair: pair[1]):
        if not any(rel.startswith(other + '/') for _target, other in kept):
            kept.append((target, rel))
    order = {rel: index for index, (_target, rel) in enumerate(widened)}
    return sorted(kept, key=lambda pair: order[pair[1]]), warnings


def target_excludes(manifest, rel):
    """The backup's exclude patterns as they apply below ``rel`` (patterns are source-relative)."""
    source = source_of(manifest, rel)
    if rel == source:
        return list(manifest.excludes)
    prefix = rel[len(source) + 1:] + '/'
    return [pattern[len(prefix):] if pattern.startswith(prefix) else pattern for pattern in manifest.excludes]


def carry_over(live_fd, stage_fd, excludes, skip=()):
    """Hard-link into the stage the live entries the restore keeps though the backup does not hold them.

    Those are the entries the backup excluded, and the sockets and device nodes a backup cannot
    hold (a live service's socket must not vanish because its directory was restored); only below
    directories that exist in both trees, and only where the stage has nothing of that name.
    ``skip`` names top-level entries of ``live`` that are not the user's (a stage built inside a
    mount point).  Works through directory descriptors opened with O_NOFOLLOW: a live tree changed
    under our feet can make this fail, never make it link something from outside it.  Returns the
    sockets and device nodes carried, as paths relative to ``live``.
    """
    carried = []
    _carry_dir(live_fd, stage_fd, '', excludes, carried, frozenset(skip))
    return carried


def _open_dir_at(dir_fd, name):
    """A descriptor of the directory ``name`` in ``dir_fd`` (never followed), or None when it is not one."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise


def _carry_dir(live_fd, stage_fd, rel_in_source, excludes, carried, skip=frozenset()):
    in_stage = set(os.listdir(stage_fd))
    # linking moves the staged directory's mtime, which build_tree set to the backup's
    times = os.fstat(stage_fd)
    linked = False
    for name in sorted(set(os.listdir(live_fd)) - skip):
        child = name if not rel_in_source else rel_in_source + '/' + name
        st = os.stat(name, dir_fd=live_fd, follow_symlinks=False)
        excluded = excluded_by(child, name, excludes)
        if excluded or entry_type(st.st_mode) is None:
            if name not in in_stage:
                _replicate(live_fd, stage_fd, name, st)
                linked = True
                if not excluded:
                    carried.append(child)
        elif stat.S_ISDIR(st.st_mode) and name in in_stage and stat.S_ISDIR(
                os.stat(name, dir_fd=stage_fd, follow_symlinks=False).st_mode):
            sub_live = os.open(name, _DIR_FLAGS, dir_fd=live_fd)
            try:
                sub_stage = os.open(name, _DIR_FLAGS, dir_fd=stage_fd)
                try:
                    _carry_dir(sub_live, sub_stage, child, excludes, carried)
                finally:
                    os.close(sub_stage)
            finally:
                os.close(sub_live)
    if linked:
        os.utime(stage_fd, ns=(times.st_atime_ns, times.st_mtime_ns))
        fsync_fd(stage_fd, 'staged directory')


def _replicate(live_fd, stage_fd, name, st):
    if not stat.S_ISDIR(st.st_mode):
        os.link(name, name, src_dir_fd=live_fd, dst_dir_fd=stage_fd, follow_symlinks=False)
        return
    os.mkdir(name, 0o700, dir_fd=stage_fd)
    sub_live = os.open(name, _DIR_FLAGS, dir_fd=live_fd)
    try:
        sub_stage = os.open(name, _DIR_FLAGS, dir_fd=stage_fd)
        try:
            for child in sorted(os.listdir(sub_live)):
                _replicate(sub_live, sub_stage, child, os.stat(child, dir_fd=sub_live, follow_symlinks=False))
            if running_as_root():
                os.fchown(sub_stage, st.st_uid, st.st_gid)
            os.fchmod(sub_stage, stat.S_IMODE(st.st_mode))
            os.utime(sub_stage, ns=(st.st_atime_ns, st.st_mtime_ns))
            fsync_fd(sub_stage, 'staged directory')
        finally:
            os.close(sub_stage)
    finally:
        os.close(sub_live)


def _choose_method(item, points):
    if not item.old_exists or not is_mount_point(item.target, points):
        item.method = 'swap'
        return
    st = os.lstat(item.target)
    if not stat.S_ISDIR(st.st_mode) or item.new is None or item.new.type != 'dir':
        raise RestoreError('%s is a mount point and the backup does not hold a directory there; a mount point '
                           'cannot be replaced or removed. Target untouched.' % item.target)
    item.method = 'files'


def _new_record(token, backup_id, set_name, undo, items):
    return {
        'version': JOURNAL_VERSION, 'kind': 'restore', 'token': token, 'phase': 'staging',
        'host': socket.gethostname(), 'pid': os.getpid(), 'created': utc_now(),
        'set': set_name, 'backup_id': backup_id, 'undo': undo, 'pre_restore': None,
        'items': [item.record for item in items],
    }


def _item_record(item, token):
    if item.method == 'swap':
        stage, displaced = swap_paths(item.target, token)
        unit = {'target': item.target, 'stage': stage, 'displaced': displaced, 'old': None, 'new': None}
        return {'target': item.target, 'method': 'swap', 'containers': [], 'root': None, 'units': [unit]}
    containers = list(file_containers(item.target, token))
    st = os.lstat(item.target)
    old = {'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid}
    new = {'mode': item.new.mode, 'uid': item.new.uid, 'gid': item.new.gid}
    return {'target': item.target, 'method': 'files', 'containers': containers,
            'root': {'old': old, 'new': new}, 'units': []}


def _stage(item, manifest, data_dir, as_root, problems):
    """Build and check the new version of one item; fill in the record's identities."""
    record = item.record
    if item.method == 'swap':
        unit = record['units'][0]
        if item.new is None:
            return
        parent = open_parent(manifest, item.root, item.rel, as_root, create=True)
        try:
            written = build_tree(manifest, item.rel, data_dir, unit['stage'], as_root, parent_fd=parent,
                                 problems=problems)
            if item.new.type == 'dir':
                _carry_between(item, parent, os.path.basename(item.target), parent, os.path.basename(unit['stage']))
        finally:
            _close_quietly(parent)
        item.ids = _verify_stage(manifest, item, unit['stage'], as_root, written, problems)
        unit['new'] = _ident(unit['stage'])
        return
    stage, displaced = record['containers']
    parent = open_parent(manifest, item.root, item.rel)
    try:
        live = os.open(os.path.basename(item.target), _DIR_FLAGS, dir_fd=parent)
    finally:
        _close_quietly(parent)
    try:
        written = build_tree(manifest, item.rel, data_dir, stage, as_root, root_attrs=False, parent_fd=live,
                             problems=problems)
        _carry_between(item, live, '.', live, os.path.basename(stage),
                       skip=(os.path.basename(stage), os.path.basename(displaced)))
        item.ids = _verify_stage(manifest, item, stage, as_root, written, problems, ignore_root_attrs=True)
        os.mkdir(os.path.basename(displaced), 0o700, dir_fd=live)
        fsync_fd(live, item.target)
    finally:
        _close_quietly(live)


def _carry_between(item, live_parent, live_name, stage_parent, stage_name, skip=()):
    """``carry_over`` from the live directory into the stage; a live version that is no directory keeps nothing."""
    live = _open_dir_at(live_parent, live_name)
    if live is None:
        return
    try:
        stage = os.open(stage_name, _DIR_FLAGS, dir_fd=stage_parent)
        try:
            carried = carry_over(live, stage, item.excludes, skip)
        finally:
            _close_quietly(stage)
    finally:
        _close_quietly(live)
    item.carried = ['/%s/%s' % (item.rel, path) for path in carried]


def _fill_old_identities(item):
    record = item.record
    if item.method == 'swap':
        record['units'][0]['old'] = _ident(item.target)
        return
    stage, displaced = record['containers']
    ours = {os.path.basename(stage), os.path.basename(displaced)}
    names = sorted((set(os.listdir(item.target)) | set(os.listdir(stage))) - ours)
    record['units'] = [{'target': os.path.join(item.target, name), 'stage': os.path.join(stage, name),
                        'displaced': os.path.join(displaced, name), 'old': _ident(os.path.join(item.target, name)),
                        'new': _ident(os.path.join(stage, name))} for name in names]


def check_tree(manifest, rel, path, owner, excludes, expected, moved=frozenset(), ignore_root_attrs=False,
               unset=None):
    """Compare the tree at ``path`` with the manifest at ``rel`` without reading any content.

    Every entry is compared by metadata (presence, type, size, mode, owner when
    ``owner``, file, symlink and fifo mtime, symlink target, xattrs except the
    ``unset`` ones the restore warned about, which files are hardlinks of which),
    and every regular file must be a known inode: ``expected`` maps a manifest
    path to ``(inode, ctime_ns)`` -- ctime None when any is fine -- of a file whose
    content was already proven (hashed while it was written).  A file that is
    another inode, or the same inode changed since (its ctime moved; renaming an
    inode moves its ctime too, so for the paths in ``moved`` only the inode
    counts), is reported as changed content.  Returns ``(compare result,
    {path: (inode, ctime_ns)} as found)``.
    """
    parent, name = os.path.split(path)
    scanned, skipped, local = _scan_as(parent, name, rel, excludes)
    reference = entries_under(manifest, rel)
    want = {entry.path: entry for entry in reference}
    found = {}
    unproven = []
    for entry in scanned:
        if entry.type != 'file':
            continue
        st = os.lstat(os.path.join(parent, local[entry.path]))
        found[entry.path] = (st.st_ino, st.st_ctime_ns)
        known = expected.get(entry.path)
        proven = known is not None and known[0] == st.st_ino and (
            known[1] is None or entry.path in moved or known[1] == st.st_ctime_ns)
        reference_entry = want.get(entry.path)
        if reference_entry is not None and reference_entry.is_content():
            entry.sha256 = reference_entry.sha256 if proven else None
            if not proven:
                unproven.append(entry.path)
    result = _compare_scanned(reference, want, scanned, skipped, rel, name, owner, ignore_root_attrs, unset)
    reasons = {item['path']: item['reasons'] for item in result['changed']}
    for changed in unproven:
        if changed not in reasons:
            reasons[changed] = []
            result['changed'].append({'path': changed, 'reasons': reasons[changed]})
        if 'content' not in reasons[changed]:
            reasons[changed].append('content')
    return result, found


def _verify_stage(manifest, item, path, as_root, written, problems, ignore_root_attrs=False):
    """Check the stage entry by entry; content is proven by the digests taken while it was written."""
    result, found = check_tree(manifest, item.rel, path, as_root, item.excludes,
                               {rel: (inode, None) for rel, inode in written.items()},
                               ignore_root_attrs=ignore_root_attrs, unset=problems.unset)
    if not is_clean(result):
        raise RestoreError('the staged copy of %s does not match the backup manifest (%s)'
                           % (item.target, _describe_mismatch(result)))
    return found


def _describe_mismatch(result, limit=5):
    problems = (['%s: not in the backup' % path for path in result['added']]
                + ['%s: missing' % path for path in result['removed']]
                + ['%s: %s' % (item['path'], ', '.join(item['reasons'])) for item in result['changed']])
    more = '' if len(problems) <= limit else ' and %d more' % (len(problems) - limit)
    return '; '.join('/' + problem for problem in problems[:limit]) + more


def _verify_targets(items, manifest, as_root, token, problems):
    """After the swap: each target is, entry by entry, the stage that was checked (see ``check_tree``)."""
    failures = []
    for item in items:
        excludes = list(item.excludes)
        if item.method == 'files':
            excludes.extend(os.path.basename(path) for path in file_containers(item.target, token))
        if item.new is None:
            if _ident(item.target) is not None:
                failures.append('%s should be absent but exists' % item.target)
            continue
        moved = frozenset(unit['target'][1:] for unit in item.record['units'])
        result, _found = check_tree(manifest, item.rel, item.target, as_root, excludes, item.ids, moved=moved,
                                    unset=problems.unset)
        if not is_clean(result):
            failures.append('%s: %s' % (item.target, _describe_mismatch(result)))
    return failures


def _free_checkpoint_name(store, base):
    name = base
    number = 1
    while os.path.lexists(store.backup_dir(name)):
        number += 1
        name = '%s-%d' % (base, number)
    return name


class ParentTimes:
    """The times of the directories holding swapped targets, put back once the restore is over.

    Staging beside a target and swapping it rename entries in its parent, which moves
    the parent's mtime; the parent is not part of what is restored (for a sub-path
    restore it is a directory of the backed-up tree the operator did not ask for), so it
    keeps its times.  Descriptors reached as the stage's are (``open_parent``): a planted
    symlink is never followed.  Losing this on a crash only leaves a newer mtime.
    """

    def __init__(self, manifest, items):
        self.parents = []
        for item in items:
            if item.method != 'swap':
                continue
            try:
                fd = open_parent(manifest, item.root, item.rel)
            except (OSError, RestoreError):
                continue  # made by the restore, or not a directory: nothing of the operator's to keep
            st = os.fstat(fd)
            self.parents.append((fd, os.path.dirname(item.target), st.st_atime_ns, st.st_mtime_ns))

    def put_back(self, write=True):
        """Put the times back (durably) and close the descriptors; returns a warning per directory that could not.

        A failed fsync is raised (DurabilityError) once every descriptor is closed.
        """
        warnings = []
        failed = None
        for fd, path, atime_ns, mtime_ns in self.parents:
            try:
                if write and failed is None:
                    os.utime(fd, ns=(atime_ns, mtime_ns))
                    fsync_fd(fd, path)
            except DurabilityError as exc:
                failed = exc  # never retried, and nothing more is flushed after it
            except OSError as exc:
                warnings.append('could not put back the modification time of %s, which holds a restored path (%s); '
                                'only its mtime differs' % (path, exc.strerror or exc))
            finally:
                _close_quietly(fd)
        self.parents = []
        if failed is not None:
            raise failed
        return warnings


class Restorer:
    """One restore of one backup (or one undo) into the live system.

    ``store`` is a ``_store.Store``; the restorer uses its public interface
    (load_manifest, data_dir, backup_dir, create) and keeps its own journal in
    ``<set>/.journal/``.  The caller holds the store lock.
    """

    def __init__(self, store, keep_displaced=True, verify_after=True, as_root=None):
        self.store = store
        self.set_dir = store.set_dir
        self.keep_displaced = keep_displaced
        self.verify_after = verify_after
        self.as_root = running_as_root() if as_root is None else as_root
        self.problems = XattrProblems()

    def run(self, manifest, targets, undo=False, check_mode=False, diff=False, roots=()):
        """Restore ``targets`` (``[(path, rel)]``) from the backup ``manifest``.

        The backup is verified on the way: a restore that changes something copies
        and hashes every file it restores in one pass and refuses a mismatch
        (BackupDamaged) before anything live is touched; check mode and a restore
        that finds nothing to change verify the whole backup (``verify_backup``).
        ``roots``: backed-up roots to reach the targets from besides the manifest's
        sources (see ``walk_root``).
        """
        data_dir = self.store.data_dir(manifest.id)
        items = []
        try:
            targets, warnings = widen_targets(manifest, targets, roots)
            refuse_store_overlap(targets, self.store.backup_root)
            for target, rel in targets:
                excludes = target_excludes(manifest, rel)
                root = walk_root(manifest, rel, roots)
                plan, special = plan_target(manifest, rel, target, self.as_root, excludes, root)
                items.append(_Item(target, rel, manifest, excludes, plan, special, root))
        except OSError as exc:
            raise RestoreError('reading the live paths to plan the restore of backup %s failed: %s. Nothing was '
                               'changed.' % (manifest.id, exc))
        result = {
            'changed': False, 'backup_id': manifest.id, 'undo': undo, 'displaced_backup': None,
            'plan': [item.plan for item in items],
            'paths': [{'path': item.target, 'state': 'unchanged', 'verified': True, 'method': None}
                      for item in items],
            'warnings': warnings,
        }
        todo = [item for item in items if not plan_is_empty(item.plan)]
        if check_mode or not todo:
            verify_backup(self.store, manifest.id)
        if diff:
            result['diff'] = diff_for([item.plan for item in todo], manifest, data_dir)
        if not todo:
            return result
        result['changed'] = True
        states = {entry['path']: entry for entry in result['paths']}
        if check_mode:
            for item in todo:
                states[item.target].update(state='would be restored', verified=None)
            warnings.extend(_special_warnings(todo, check_mode))
            return result
        try:
            self._swap(todo, manifest, data_dir, undo, states, result)
        except OSError as exc:
            raise RestoreError('restore of backup %s failed before anything was written: %s. Target untouched.'
                               % (manifest.id, exc))
        warnings.extend(_special_warnings(todo, check_mode))
        warnings.extend(self.problems.warnings())
        return result

    def _swap(self, items, manifest, data_dir, undo, states, result):
        points = mount_points()
        for item in items:
            _choose_method(item, points)
        token = secrets.token_hex(6)
        for item in items:
            item.record = _item_record(item, token)
        record = _new_record(token, manifest.id, os.path.basename(self.set_dir), undo, items)
        journal = Journal(self.set_dir, token)
        with JournalLock(self.set_dir):
            _IN_FLIGHT.add(token)
            parents = ParentTimes(manifest, items)
            try:
                self._prepare(journal, record, items, manifest, data_dir, undo, states)
                result['displaced_backup'] = record['pre_restore']
                self._switch(journal, record, items, manifest, token, states)
                self._finish(journal, record, items, states)
            except BaseException as exc:
                # after a failed fsync nothing more is written in this run (recovery finishes it)
                parents.put_back(write=not fsync_failed(exc))
                raise
            else:
                try:
                    result['warnings'].extend(parents.put_back())
                except DurabilityError as exc:
                    raise RestoreError(
                        'restored %s from backup %s, but flushing the directory that holds it (its modification time '
                        'put back) to disk failed (%s). The restore is complete; check the disk (dmesg) before '
                        'trusting this host.' % (', '.join(item.target for item in items), manifest.id, exc),
                        paths=list(states.values()), displaced_backup=record['pre_restore'])
            finally:
                _IN_FLIGHT.discard(token)

    def _prepare(self, journal, record, items, manifest, data_dir, undo, states):
        """Journal, keep the live version, stage and verify the stages: up to phase ``ready``."""
        try:
            journal.write(record)
        except OSError as exc:
            raise RestoreError('could not write the restore journal %s (%s); nothing was done, target untouched '
                               '(if the record did reach the disk, the next run removes it)' % (journal.path, exc))
        try:
            # Stages beside their targets first: staging verifies the backup, so a damaged one is refused
            # before anything is kept.  A stage inside a mount point comes after the live version is kept,
            # or it would end up in that backup.
            for item in items:
                if item.method == 'swap':
                    _stage(item, manifest, data_dir, self.as_root, self.problems)
            check_parents(manifest, items)
            if self.keep_displaced:
                # named in the journal before it is made: whatever settles this restore back removes it
                record['pre_restore'] = _free_checkpoint_name(
                    self.store, (UNDO_PREFIX if undo else PRE_RESTORE_PREFIX) + _name_part(manifest.id))
                journal.write(record)
                self._keep_displaced(items, record['pre_restore'])
            for item in items:
                if item.method == 'files':
                    _stage(item, manifest, data_dir, self.as_root, self.problems)
            for item in items:
                _fill_old_identities(item)
            journal.advance(record, 'ready')
        except Exception as exc:
            self._fail(journal, record, items, states, 'preparing the restore', exc)

    def _switch(self, journal, record, items, manifest, token, states):
        """Put every new version in place, then verify the targets; any failure settles back."""
        failures = []
        try:
            check_parents(manifest, items)
            for item in items:
                for unit in item.record['units']:
                    place(unit, 'new')
                if item.method == 'files':
                    _apply_root(item.record, 'new', self.as_root)
            if self.verify_after:
                failures = _verify_targets(items, manifest, self.as_root, token, self.problems)
        except Exception as exc:
            self._fail(journal, record, items, states, 'swapping the restored version in', exc)
        if failures:
            rejected = self._keep_rejected(items, manifest.id, token)
            self._fail(journal, record, items, states, 'verifying the restored targets',
                       RestoreError('; '.join(failures)), rejected)

    def _finish(self, journal, record, items, states):
        """Commit forward: discard the displaced versions (kept in the store), drop the journal."""
        try:
            settle(journal, record, 'forward', as_root=self.as_root, set_dir=self.set_dir)
        except Exception as exc:
            restored = 'restored %s from backup %s%s' % (', '.join(item.target for item in items), record['backup_id'],
                                                         ' and verified it' if self.verify_after else '')
            if journal.removed:
                for item in items:
                    states[item.target].update(state='restored', verified=bool(self.verify_after), method=item.method)
                raise RestoreError(
                    '%s; the journal was removed, but flushing its directory to disk failed (%s). The restore is '
                    'complete; check the disk (dmesg) before trusting this host.' % (restored, exc),
                    paths=list(states.values()), displaced_backup=record['pre_restore'])
            for item in items:
                states[item.target].update(state='restored, cleanup pending', verified=bool(self.verify_after),
                                           method=item.method)
            raise RestoreError(
                '%s, but finishing up failed (%s). The journal %s is kept; the next run of any store module '
                'finishes it (the restored version stays). %s' % (restored, exc, journal.path, _HERE),
                paths=list(states.values()), journal=journal.path, displaced_backup=record['pre_restore'])
        for item in items:
            states[item.target].update(state='restored', verified=bool(self.verify_after), method=item.method)

    def _keep_displaced(self, items, name):
        """Back up the live versions about to be displaced (absent ones as absent) as checkpoint ``name``."""
        self.store.create([item.target for item in items], name=name, incremental=True, mark_lastgood=False)

    def _keep_rejected(self, items, backup_id, token):
        """Back up what the targets hold after a swap that failed its check: ``(backup id, None)`` or ``(None, why not)``.

        The restored version may hold what another process wrote meanwhile; rolling back must not lose it.
        """
        containers = [os.path.basename(path) for item in items if item.method == 'files'
                      for path in file_containers(item.target, token)]
        try:
            created = self.store.create([item.target for item in items], excludes=containers, incremental=True,
                                        name=_free_checkpoint_name(self.store, REJECTED_PREFIX + _name_part(backup_id)),
                                        mark_lastgood=False)
        except Exception as exc:
            return None, str(exc)
        return created['id'], None

    def _fail(self, journal, record, items, states, step, exc, rejected=None):
        """Settle back after a failure and raise the error that says where things are.

        After a failed fsync nothing is settled in this run (a second fsync of the same
        directory would prove nothing): the journal stays for the next run's recovery.
        ``rejected``: what ``_keep_rejected`` returned, when the targets were kept first.
        """
        targets = ', '.join(item.target for item in items)
        # named in the journal before it is made: say where it is only once it exists
        kept = record['pre_restore'] if record['pre_restore'] and os.path.isdir(
            self.store.backup_dir(record['pre_restore'])) else None
        if fsync_failed(exc):
            for item in items:
                states[item.target].update(state='unknown until recovery', verified=False, method=item.method)
            raise RestoreError(
                'restore of %s failed while %s: %s. A failed fsync is never retried, so this run stops here: the '
                'journal %s records where the old and the new versions are, and the next run of any store module '
                'settles it to exactly the old (or, if the swap had begun, exactly the new) version. Check the '
                'disk (dmesg) first. %s' % (targets, step, exc, journal.path, _HERE),
                paths=list(states.values()), journal=journal.path, displaced_backup=kept)
        try:
            settle(journal, record, 'back', as_root=self.as_root)
        except Exception as second:
            for item in items:
                states[item.target].update(state='unknown until recovery', verified=False, method=item.method)
            raise RestoreError(
                'restore of %s failed while %s (%s), and rolling back failed too (%s). The journal %s records '
                'where the old and the new versions are; the next run of any store module settles it to exactly '
                'the old or exactly the new version. %s' % (targets, step, exc, second, journal.path, _HERE),
                paths=list(states.values()), journal=journal.path, displaced_backup=kept)
        for item in items:
            states[item.target].update(state='untouched', verified=None, method=item.method)
        rejected_id, rejected_why = rejected or (None, None)
        if rejected_id:
            outcome = ('Rolled back: every target is as it was before the restore; files written during the restore '
                       'are kept in backup %s, with everything the targets held after the swap (pinned: restore '
                       'what you need from it by id and paths, then unpin it)' % rejected_id)
        elif rejected_why:
            outcome = ('Rolled back: every target is as it was before the restore. What the targets held after the '
                       'swap could not be kept (%s): anything written there during the restore is lost' % rejected_why)
        else:
            outcome = 'Rolled back: every target is exactly as before (untouched)'
        raise RestoreError('restore of %s failed while %s: %s. %s.%s %s'
                           % (targets, step, exc, outcome, self._drop_retired(record), _next_step(exc)),
                           paths=list(states.values()))

    def _drop_retired(self, record):
        """Remove the backup of the displaced versions a rollback unlisted; returns a sentence on it."""
        name = record['pre_restore']
        if not name or not os.path.lexists(os.path.join(self.set_dir, DELETING_PREFIX + name)):
            return ''
        try:
            self.store.recover()
        except Exception as exc:
            return (' The copy taken beforehand (backup %s) is no longer listed; removing its files failed (%s), the '
                    'next run of any store module finishes that.' % (name, exc))
        return ' The copy taken beforehand (backup %s) was removed: it is what is live again.' % name


def _special_warnings(items, check_mode):
    """What happened to the live sockets and device nodes below the restored paths (no backup holds them)."""
    kept = [path for item in items for path in (item.special['kept'] if check_mode else item.carried)]
    lost = [path for item in items for path in item.special['lost']]
    warnings = []
    if kept:
        warnings.append('%s: live socket(s) or device node(s) a backup cannot hold; the restore %s them as they '
                        'are' % (', '.join(kept), 'would keep' if check_mode else 'kept'))
    if lost:
        warnings.append('%s: live socket(s) or device node(s) a backup cannot hold, in a directory the backup does not '
                        'have; the restore %s them with it and undo cannot bring them back (restart the service '
                        'that made them)' % (', '.join(lost), 'would remove' if check_mode else 'removed'))
    return warnings


def _next_step(exc):
    if isinstance(exc, BackupDamaged):
        return ('The backup is damaged: restore another backup (see backup_info) and check the disk under the store '
                '(backup_verify shows every damaged file).')
    if getattr(exc, 'errno', None) in (errno.EXDEV, errno.EBUSY):
        return ('The file system refused to move the target (%s): it is probably a mount point this process '
                'cannot see in /proc/self/mountinfo, or a directory on overlayfs without redirect_dir (a container '
                'image layer). Restore onto a bind-mounted volume, or restore its parent directory.'
                % os.strerror(exc.errno))
    if getattr(exc, 'errno', None) in (errno.ENOSPC, errno.EDQUOT):
        return 'Free space on the file system of the target (a restore needs room for one more copy) and rerun.'
    return 'Fix the cause and run the restore again.'


def _name_part(backup_id):
    return backup_id[:100 - len(PRE_RESTORE_PREFIX) - 4]


def verify_backup(store, backup_id):
    """Refuse a backup that does not match its manifest."""
    check = store.verify(backup_id)
    if not check['ok']:
        problems = check.get('mismatches') or []
        shown = '; '.join('%s: %s' % (item.get('path'), item.get('problem')) for item in problems[:5])
        raise RestoreError('backup %s does not match its manifest (%d problem(s): %s). Restore refused; target '
                           'untouched. The backup is damaged: restore another backup (see backup_info) and '
                           'investigate the store at %s.' % (backup_id, len(problems), shown, store.set_dir))


def restore(store, set_dir=None, ref=None, paths=None, keep_displaced=True, verify_after=True, undo=False,
            check_mode=False, diff=False):
    """Recover any interrupted restore, then restore backup ``ref`` (or undo the last restore).

    ``ref``: None/'lastgood', 'latest', a backup id or checkpoint name.  ``paths``: a
    subset of the backup's paths (default all).  Returns ``{changed, backup_id, undo,
    recovered, store_recovered, paths: [{path, state, verified, method}], plan: [{path,
    added, removed, changed}], displaced_backup, warnings[, undone][, diff]}``.  Raises
    RestoreError (or the store's StoreError) with a message that says what state
    everything is in; the backup is never written.
    """
    if set_dir is not None and os.path.abspath(set_dir) != os.path.abspath(store.set_dir):
        raise RestoreError('set_dir %s is not the store\'s set directory %s' % (set_dir, store.set_dir))
    # before the journal is read, also in check mode (which takes no lock)
    store.check_trust()
    if check_mode:
        return _restore_locked(store, ref, paths, keep_displaced, verify_after, undo, check_mode, diff)
    with store.locked():
        return _restore_locked(store, ref, paths, keep_displaced, verify_after, undo, check_mode, diff)


def _restore_locked(store, ref, paths, keep_displaced, verify_after, undo, check_mode, diff):
    try:
        recovered = recover_journal(store.set_dir, check_mode=check_mode)
    except JournalError:
        raise
    except OSError as exc:
        raise RestoreError('settling the journal an interrupted restore left in %s failed: %s. The journal is '
                           'kept and the next run continues from where this one stopped; nothing else was done. %s'
                           % (journal_dir(store.set_dir), exc, _HERE))
    store_recovered = [] if check_mode else store.recover()
    undone = None
    if undo:
        if ref is not None:
            raise RestoreError('undo restores what the last restore displaced; do not name a backup with it')
        undone = read_lastrestore(store.set_dir)
        if undone is None:
            raise RestoreError('nothing to undo: no restore has completed in %s' % store.set_dir)
        if undone.get('pre_restore') is None:
            raise RestoreError('the last restore (of backup %s, finished %s) kept no copy of what it displaced '
                               '(keep_displaced was off), so it cannot be undone; restore an older backup by id '
                               'instead' % (undone.get('restored'), undone.get('finished')))
        ref = undone['pre_restore']
    backup_id = store.resolve(ref)['id']
    manifest = store.load_manifest(backup_id)
    targets = select_targets(manifest, paths)
    refuse_store_overlap(targets, store.backup_root)
    restorer = Restorer(store, keep_displaced=keep_displaced, verify_after=verify_after)
    result = restorer.run(manifest, targets, undo=undo, check_mode=check_mode, diff=diff,
                          roots=_undone_roots(store, undone))
    result['recovered'] = recovered
    result['store_recovered'] = store_recovered
    if undone is not None:
        result['undone'] = {'restored': undone.get('restored'), 'finished': undone.get('finished')}
    result['changed'] = result['changed'] or bool(recovered)
    result['msg'] = summarize(result, check_mode)
    return result


def _undone_roots(store, undone):
    """For an undo, the roots of the backup the undone restore restored (see ``walk_root``)."""
    if undone is None or not undone.get('restored'):
        return ()
    try:
        return store.load_manifest(undone['restored']).rel_sources
    except Exception:  # the backup may be gone (retention); the pre-restore backup's own roots remain
        return ()


def _count(plan):
    return '%d added, %d removed, %d changed' % (len(plan['added']), len(plan['removed']), len(plan['changed']))


def summarize(result, check_mode=False):
    """One paragraph for the operator: what happened to which path, where the old version is."""
    parts = []
    for report in result.get('recovered', []):
        parts.append('First settled an interrupted restore of %s (backup %s) from its journal %s: %s.'
                     % (', '.join(report['paths']), report['backup_id'], report['journal'],
                        'rolled forward to the restored version' if report['direction'] == 'forward'
                        else 'rolled back to the version before it'))
    changed = [plan for plan in result['plan'] if not plan_is_empty(plan)]
    same = [plan['path'] for plan in result['plan'] if plan_is_empty(plan)]
    source = 'backup %s' % result['backup_id']
    if result.get('undone'):
        source = 'backup %s (what the restore of %s, finished %s, displaced)' % (
            result['backup_id'], result['undone']['restored'], result['undone']['finished'])
    if changed and check_mode:
        parts.append('Check mode: restoring %s would change %s; nothing was changed.'
                     % (source, '; '.join('%s (%s)' % (plan['path'], _count(plan)) for plan in changed)))
    elif changed:
        verified = ', and verified the result against the backup manifest' if all(
            entry['verified'] for entry in result['paths'] if entry['state'] == 'restored') else ''
        parts.append('Restored %s from %s%s.' % (', '.join(plan['path'] for plan in changed), source, verified))
        if result['displaced_backup']:
            parts.append('The versions it replaced are kept as backup %s%s.' % (
                result['displaced_backup'], '' if result.get('undo') else ' (undo: true puts them back)'))
        else:
            parts.append('The versions it replaced were not kept (keep_displaced: false).')
    if same:
        parts.append('%s already match%s %s.' % (', '.join(same), 'es' if len(same) == 1 else '', source))
    return ' '.join(parts)
