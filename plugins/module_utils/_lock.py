# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One rollback at a time: an exclusive lock file naming its holder.

The lock file is created with ``O_CREAT|O_EXCL`` and holds JSON
``{run_id, host, pid, pid_start, boot_id, user, created, ttl}``.  It is
released only by the run_id that holds it.  It is stale when its ttl has run
out, or when it names a pid on this host that is dead (or reused by another
process, or from before a reboot); a stale lock is taken over.  ``force``
breaks a live lock, and only after an audit event recording who broke whose
lock has been written.

A lock file whose content cannot be read (damaged bytes, or an acquire killed
between creating and writing it) names no holder, so nobody can tell whether a
run still holds it.  It is never taken over: acquire and release move it aside
read-only (``<lock>.corrupt-<UTC time>``) and put in its place a lock held by an
unknown run, which never goes stale.  Only ``force`` (audited) takes it, once an
operator has made sure no rollback is running.

Every inspection and change happens under an exclusive ``flock`` on the guard
file ``<lock>.guard``, so deciding that a lock is stale and replacing it is one
step: two processes can never both take over the same stale lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import time

from . import _audit, _quarantine
from ._fsatomic import (
    atomic_write_json, fsync_dir, fsync_fd, makedirs_durable, read_bytes, remove_stale_temps, write_all,
)

DEFAULT_TTL = 4 * 3600
GUARD_SUFFIX = '.guard'
RUN_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$')
# no valid run id looks like this, so no run but a forced one releases the lock it marks
UNKNOWN_HOLDER = '(unknown: the lock file was corrupt)'
_BOOT_ID = '/proc/sys/kernel/random/boot_id'


class LockError(Exception):
    """The lock could not be inspected or changed; the message says why and what to do."""


class LockHeld(LockError):
    """Another run holds the lock."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


class LockCorrupt(LockHeld):
    """The lock file was unreadable; it was moved aside and the lock is held by an unknown run."""

    def __init__(self, message, holder, quarantined):
        super().__init__(message, holder)
        self.quarantined = [quarantined]


def check_run_id(run_id):
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise LockError('run_id %r is not valid: use 1-128 letters, digits and . _ : @ + - '
                        '(starting with a letter or digit)' % (run_id,))


def _read_proc(path):
    """A small /proc file (procfs refuses the multi-megabyte reads read_bytes makes)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
    finally:
        _audit.close_quietly(fd)


def boot_id():
    try:
        return _read_proc(_BOOT_ID).decode('ascii').strip()
    except (OSError, ValueError):
        return None


def process_start(pid):
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        raw = _read_proc('/proc/%d/stat' % pid).decode('ascii', 'replace')
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(')') + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(holder, now=None, host=None):
    """Why ``holder`` no longer holds the lock, or None while it does."""
    if 'corrupt_copy' in holder or 'unreadable' in holder:
        return None
    now = time.time() if now is None else now
    try:
        created = _audit.parse_ts(holder['created'])
        ttl = int(holder['ttl'])
    except (KeyError, TypeError, ValueError):
        return 'the lock file does not say when it was created or for how long (treated as expired)'
    if now >= created + ttl:
        return 'its ttl of %ds ran out at %s' % (ttl, _audit.format_ts(created + ttl))
    pid = holder.get('pid')
    if pid is None or holder.get('host') != (host or socket.gethostname()):
        return None
    current_boot = boot_id()
    if holder.get('boot_id') and current_boot and holder['boot_id'] != current_boot:
        return 'host %s has rebooted since pid %d took it' % (holder['host'], pid)
    if not pid_alive(pid):
        return 'pid %d on host %s is dead' % (pid, holder['host'])
    if holder.get('pid_start') is not None and process_start(pid) != holder['pid_start']:
        return 'pid %d on host %s now belongs to another process' % (pid, holder['host'])
    return None


def describe(holder):
    if 'unreadable' in holder:
        return 'an unknown run (the lock file is unreadable: %s)' % holder['unreadable']
    if 'corrupt_copy' in holder:
        return ('an unknown run (the lock file was unreadable, %s; it was moved aside to %s at %s)'
                % (holder.get('reason'), holder['corrupt_copy'], holder.get('created')))
    return ('run %s (pid %s on %s, user %s, since %s, ttl %ss)'
            % (holder.get('run_id'), holder.get('pid'), holder.get('host'), holder.get('user'),
               holder.get('created'), holder.get('ttl')))


class FlockFile:
    """Exclusive flock on the file ``path`` (see open_lock_file) for the duration of a with-block.

    A read-only caller (status, check mode) passes ``create=False``: when the file does
    not exist yet no lock was ever taken there, and the caller reads unguarded.
    """

    def __init__(self, path, create=True):
        self.path = path
        self.create = create
        self.fd = None

    def __enter__(self):
        self.fd = open_lock_file(self.path, self.create)
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            _audit.close_quietly(self.fd)
        return False


def open_lock_file(path, create):
    """An fd of the flock file ``path``; None when it is missing and ``create`` is false.

    A newly created flock file gets its directory fsynced, like every other name the
    engine creates.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        if not create:
            return None
    makedirs_durable(os.path.dirname(path), mode=0o700)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fsync_dir(os.path.dirname(path))
    except BaseException:
        _audit.close_quietly(fd)
        raise
    return fd


def _read(path):
    """The holder recorded in ``path``: dict, None when absent, or ``{'unreadable': why}``."""
    try:
        raw = read_bytes(path, limit=65536)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        return {'unreadable': str(exc)}
    try:
        holder = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        return {'unreadable': 'not JSON (%s)' % exc}
    if not isinstance(holder, dict) or not isinstance(holder.get('run_id'), str):
        return {'unreadable': 'no run_id in it'}
    return holder


def _inspect(path, now):
    holder = _read(path)
    if holder is None:
        return None, None
    return holder, stale_reason(holder, now)


def _corrupt_holder(quarantined, why, now):
    return {'run_id': UNKNOWN_HOLDER, 'host': socket.gethostname(), 'pid': None, 'pid_start': None, 'boot_id': None,
            'user': None, 'created': _audit.format_ts(time.time() if now is None else now), 'ttl': None,
            'corrupt_copy': quarantined, 'reason': why}


def _set_aside(path, holder, now):
    """Move the unreadable lock file aside, leaving a lock held by an unknown run; returns that holder."""
    marker = {}

    def replacement(quarantined):
        marker.update(_corrupt_holder(quarantined, holder['unreadable'], now))
        return (json.dumps(marker, indent=2, sort_keys=True) + '\n').encode('utf-8')
    try:
        _quarantine.quarantine(path, replacement=replacement, mode=0o644, now=now)
    except OSError as exc:
        raise LockError('lock %s is unreadable (%s) and moving it aside failed (%s); no run takes it. Make sure no '
                        'rollback is running, then move it aside by hand' % (path, holder['unreadable'], exc))
    return marker


def status(path, now=None):
    """``{held, holder, stale, stale_reason}`` for the lock at ``path``."""
    path = os.path.abspath(os.fspath(path))
    with FlockFile(path + GUARD_SUFFIX, create=False):
        holder, reason = _inspect(path, now)
    return {'held': holder is not None and reason is None, 'holder': holder,
            'stale': reason is not None, 'stale_reason': reason}


def new_holder(run_id, ttl, pid=None, user=None, now=None):
    check_run_id(run_id)
    if not isinstance(ttl, int) or ttl <= 0:
        raise LockError('ttl must be a positive number of seconds, got %r' % (ttl,))
    return {
        'run_id': run_id,
        'host': socket.gethostname(),
        'pid': pid,
        'pid_start': process_start(pid) if pid is not None else None,
        'boot_id': boot_id() if pid is not None else None,
        'user': user or _audit.current_user(),
        'created': _audit.format_ts(time.time() if now is None else now),
        'ttl': ttl,
    }


def _create_exclusive(path, holder):
    data = (json.dumps(holder, indent=2, sort_keys=True) + '\n').encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            write_all(fd, data)
            fsync_fd(fd, path)
        finally:
            os.close(fd)
        fsync_dir(os.path.dirname(path))
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise


def _audit_break(audit_log, event, level, run_id, path, previous, why):
    if audit_log is None:
        raise LockError('breaking the lock %s held by %s needs an audit log to record it; none was given; '
                        'the lock is unchanged' % (path, describe(previous)))
    try:
        _audit.append(audit_log, event, run_id=run_id, level=level,
                      detail={'lock': path, 'previous_holder': previous, 'reason': why})
    except (OSError, _audit.AuditError) as exc:
        raise LockError('could not write the audit event for breaking the lock %s (%s); the lock is unchanged '
                        '(held by %s)' % (path, exc, describe(previous)))


def _settle_unreadable(path, holder, run_id, force, check, now, action, result):
    """Move an unreadable lock file aside (not in check mode); unless ``force``, refuse with LockCorrupt."""
    if holder is None or 'unreadable' not in holder or check:
        return holder
    marker = _set_aside(path, holder, now)
    result['quarantined'] = [marker['corrupt_copy']]
    if force:
        return marker
    raise LockCorrupt(
        'lock %s is unreadable (%s): it names no holder, so a run may still hold it. It was moved aside to %s '
        '(read-only, as it was) and the lock is now held by an unknown run; not %s for run %s. Make sure no '
        'rollback is running on %s (its AWX jobs; run states with status running), then take the lock with force '
        '(recorded in the audit log)' % (path, holder['unreadable'], marker['corrupt_copy'], action, run_id,
                                         marker['host']), marker, marker['corrupt_copy'])


def acquire(path, run_id, ttl=DEFAULT_TTL, pid=None, user=None, force=False, audit_log=None, check=False, now=None):
    """Take the lock for ``run_id``.

    Returns ``{changed, holder, previous, took_over, quarantined}``: ``previous`` is the holder
    that was replaced (stale or forced), ``took_over`` says why, ``quarantined`` lists the
    unreadable lock file moved aside.  Raises LockHeld naming the holder when another live run
    holds it and ``force`` is false (LockCorrupt when that holder is unknown: the file was unreadable).
    """
    path = os.path.abspath(os.fspath(path))
    mine = new_holder(run_id, ttl, pid=pid, user=user, now=now)
    result = {'changed': False, 'holder': mine, 'previous': None, 'took_over': None, 'quarantined': []}
    with FlockFile(path + GUARD_SUFFIX, create=not check):
        holder, reason = _inspect(path, now)
        holder = _settle_unreadable(path, holder, run_id, force, check, now, 'acquired', result)
        if holder is not None and holder.get('run_id') == run_id and reason is None:
            result['holder'] = holder
            return result
        if holder is not None and reason is None and not force:
            raise LockHeld('lock %s is held by %s; not acquired for run %s. Wait for that run to finish, '
                           'or break the lock with force (recorded in the audit log)'
                           % (path, describe(holder), run_id), holder)
        result['changed'] = True
        result['previous'] = holder
        if holder is not None:
            result['took_over'] = reason or 'forced by run %s' % run_id
        if check:
            return result
        # the lock file is only ever replaced under the guard, so a temporary file of
        # it is left by an acquire that died; nothing else would remove it
        remove_stale_temps(path)
        if holder is None:
            _create_exclusive(path, mine)
            return result
        if reason is None:
            _audit_break(audit_log, 'lock_forced', 'warning', run_id, path, holder, 'acquire with force')
        elif audit_log is not None:
            _audit_break(audit_log, 'lock_stale_taken_over', 'notice', run_id, path, holder, reason)
        try:
            atomic_write_json(path, mine, mode=0o644)
        except BaseException:
            # the rename may have happened before the failure (a failed directory fsync):
            # a run told that acquire failed must not be left holding the lock
            try:
                if _read(path) == mine:
                    os.unlink(path)
            except OSError:
                pass
            raise
    return result


def release(path, run_id, force=False, audit_log=None, check=False, now=None):
    """Release the lock held by ``run_id``; returns ``{changed, previous}``.

    A lock held by another run is left alone (LockHeld) unless ``force``, which
    writes an audit event first.  Releasing a lock nobody holds changes nothing.
    An unreadable lock file is moved aside first (``quarantined``, as for acquire).
    """
    path = os.path.abspath(os.fspath(path))
    check_run_id(run_id)
    result = {'changed': False, 'previous': None, 'quarantined': []}
    with FlockFile(path + GUARD_SUFFIX, create=False):
        holder, reason = _inspect(path, now)
        holder = _settle_unreadable(path, holder, run_id, force, check, now, 'released', result)
        if holder is None:
            return result
        if holder.get('run_id') != run_id and not force:
            raise LockHeld('lock %s is held by %s%s, not by run %s; it was not released. Only the holding run '
                           'releases it (or force, recorded in the audit log)'
                           % (path, describe(holder), '' if reason is None else ' (stale: %s)' % reason, run_id),
                           holder)
        result['changed'] = True
        result['previous'] = holder
        if check:
            return result
        if holder.get('run_id') != run_id:
            _audit_break(audit_log, 'lock_forced', 'warning', run_id, path, holder,
                         'release with force' + ('' if reason is None else ' (%s)' % reason))
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        fsync_dir(os.path.dirname(path))
    return result
