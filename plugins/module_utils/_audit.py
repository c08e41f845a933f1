# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tamper-evident audit log: hash-chained JSON lines.

One event per line.  Every line carries ``prev``, the SHA-256 (hex) of the
complete bytes of the line before it, newline included, so
``sed -n 'Np' log | sha256sum`` is the ``prev`` of line N+1.  The first line of
the first file carries ``GENESIS``.  Rotation renames the live file to
``<log>.<6-digit number>`` and the first line of the new live file chains to
the last line of the rotated one, so the chain runs through every file in
number order and ends in the live file.

A hash chain proves that nothing before the last line was edited, inserted or
removed; it cannot see the last lines vanish.  The sidecar ``<log>.head`` holds
the SHA-256 of the last appended line (replaced atomically after each append),
so removing or editing lines at the end is detected too.

A log that fails these checks is never extended.  Before each append the live file is
checked (every line a record chained to the one before it, the first to the rotated
files, the head among them); a live file that fails is moved aside read-only as
``<log>.corrupt-<UTC time>`` (its head too) and a new live file starts with an
``audit_log_quarantined`` record that chains to the rotated files and pins the
quarantined file by its SHA-256, so the break stays on record and provable.

Appends from several processes are serialised with an exclusive ``flock`` on
the live file, taken before the last line is read and held until the new line
is written and fsynced.  Readers take a shared ``flock`` so that they see a
consistent chain and head.
"""

from __future__ import annotations

import calendar
import fcntl
import hashlib
import json
import os
import pwd
import re
import socket
import time

from . import _quarantine
from ._fsatomic import (
    atomic_write_json, fsync_dir, fsync_fd, makedirs_durable, read_bytes, remove_stale_temps, write_all,
)

GENESIS = '0' * 64
LEVELS = ('debug', 'info', 'notice', 'warning', 'error', 'critical')
MAX_LINE_BYTES = 64 * 1024
HEAD_SUFFIX = '.head'
ROTATED_DIGITS = 6
SESSION_START = 'session_start'
SESSION_END = 'session_end'
QUARANTINED = 'audit_log_quarantined'
_TAIL_CHUNK = 4096


class AuditError(Exception):
    """An audit log operation failed; the message says which log and what state it is in."""


def line_digest(raw):
    """SHA-256 hex of one complete line (bytes, trailing newline included)."""
    return hashlib.sha256(raw).hexdigest()


def utc_now():
    """Current time as the log writes it: ISO-8601 UTC with microseconds and ``Z``."""
    return format_ts(time.time())


def format_ts(epoch):
    whole = int(epoch)
    micros = int(round((epoch - whole) * 1000000))
    if micros == 1000000:
        whole, micros = whole + 1, 0
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole)) + '.%06dZ' % micros


_TS_RE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?'
                    r'(Z|[+-]\d{2}:?\d{2})?$')


def parse_ts(text):
    """Seconds since the epoch for an ISO-8601 time (``Z``/offset; no zone means UTC)."""
    if not isinstance(text, str):
        raise ValueError('not a timestamp: %r' % (text,))
    match = _TS_RE.match(text.strip())
    if not match:
        raise ValueError('not an ISO-8601 timestamp: %r' % text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    epoch = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second or 0), 0, 0, 0))
    if fraction:
        epoch += int(fraction) / (10 ** len(fraction))
    if zone and zone != 'Z':
        sign = -1 if zone[0] == '-' else 1
        digits = zone[1:].replace(':', '')
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def current_user():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def head_path(path):
    return path + HEAD_SUFFIX


def rotated_files(path):
    """Rotated files of ``path`` as ``[(number, full path)]``, oldest first."""
    directory, base = os.path.split(os.path.abspath(path))
    pattern = re.compile(r'^%s\.(\d{%d,})$' % (re.escape(base), ROTATED_DIGITS))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def chain_files(path):
    """Every file of the chain in order: rotated files oldest first, then the live file."""
    files = [full for _number, full in rotated_files(path)]
    if os.path.lexists(path):
        files.append(os.path.abspath(path))
    return files


def close_quietly(fd):
    """Close ``fd`` ignoring errors: used once its data is fsynced or when it was only read."""
    try:
        os.close(fd)
    except OSError:
        pass


def _open_current(path, flags, lock_op, mode=0o640):
    """Open the live file and lock it, retrying if a rotation replaced it meanwhile."""
    while True:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            fcntl.flock(fd, lock_op)
            held = os.fstat(fd)
            try:
                named = os.stat(path)
            except FileNotFoundError:
                named = None
        except BaseException:
            close_quietly(fd)
            raise
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd
        close_quietly(fd)
        if not flags & os.O_CREAT and named is None:
            return None


def _tail(fd, size):
    """(last complete line, offset just past it) of an open file of ``size`` bytes.

    Bytes after the last newline are a torn append and are not part of any line.
    """
    buf = b''
    pos = size
    while True:
        last_nl = buf.rfind(b'\n')
        if last_nl >= 0:
            start = buf.rfind(b'\n', 0, last_nl)
            if start >= 0 or pos == 0:
                return buf[start + 1:last_nl + 1], pos + last_nl + 1
        elif pos == 0:
            return None, 0
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf


def _last_line_of_file(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        line, _end = _tail(fd, os.fstat(fd).st_size)
        return line
    finally:
        close_quietly(fd)


def _prev_for_empty_file(path):
    rotated = rotated_files(path)
    for _number, full in reversed(rotated):
        line = _last_line_of_file(full)
        if line is not None:
            return line_digest(line)
    return GENESIS


def build_record(event, run_id=None, level='info', detail=None, host=None, user=None, ts=None):
    if not isinstance(event, str) or not event:
        raise AuditError('an audit event needs a non-empty event name')
    if level not in LEVELS:
        raise AuditError('audit level %r is not one of %s' % (level, ', '.join(LEVELS)))
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        raise AuditError('audit detail must be a mapping, got %s' % type(detail).__name__)
    return {
        'ts': ts or utc_now(),
        'run_id': run_id,
        'host': host or socket.gethostname(),
        'user': user or current_user(),
        'level': level,
        'event': event,
        'detail': detail,
    }


def encode_line(record, prev):
    body = dict(record)
    body['prev'] = prev
    raw = (json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False) + '\n').encode('utf-8')
    if len(raw) > MAX_LINE_BYTES:
        raise AuditError('audit event %r is %d bytes; the limit is %d (shorten its detail)'
                         % (record.get('event'), len(raw), MAX_LINE_BYTES))
    return raw


def _rotate(path):
    numbers = [number for number, _full in rotated_files(path)]
    target = '%s.%0*d' % (os.path.abspath(path), ROTATED_DIGITS, (numbers[-1] + 1) if numbers else 1)
    if os.path.lexists(target):
        raise AuditError('cannot rotate %s: %s already exists; the log was not changed' % (path, target))
    # no directory fsync here: the new live file is created next, and its name is made
    # durable (with this rename, same directory) before any line in it is acknowledged
    os.rename(path, target)
    return target


def append(path, event, run_id=None, level='info', detail=None, host=None, user=None, ts=None,
           rotate_bytes=None, mode=0o640):
    """Append one event; returns ``{sha256, prev, record, rotated, repaired_bytes, head_updated, warning, quarantined}``.

    ``quarantined``: the live file (and head) moved aside because they failed the check,
    before this event started a new live file.  Raises AuditError (or OSError) when the
    event was not recorded; the log is then unchanged apart from a torn tail that a failed
    write may leave and that the next append removes.
    """
    record = build_record(event, run_id=run_id, level=level, detail=detail, host=host, user=user, ts=ts)
    line_size = len(encode_line(record, GENESIS))
    path = os.path.abspath(os.fspath(path))
    makedirs_durable(os.path.dirname(path), mode=0o750)
    rotated = None
    note = None
    repaired = 0
    while True:
        fd = _open_current(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX, mode)
        try:
            size = os.fstat(fd).st_size
            if rotate_bytes and rotated is None and size > 0 and size + line_size > rotate_bytes:
                rotated = _rotate(path)
                continue
            if note is None:
                # checked before a torn tail is cut, so a quarantined file keeps every byte it had
                problem = _live_problem(path, fd, size)
                if problem:
                    note = _set_aside(path, fd, size, problem, record)
                    continue
                repaired, size = size, _cut_torn_tail(fd, size)
                repaired -= size
            if note is not None and size == 0:
                _append_locked(path, fd, size, note, rotated, mode)
                size = os.fstat(fd).st_size
            result = _append_locked(path, fd, size, record, rotated, mode, repaired)
            result['quarantined'] = [] if note is None else [
                name for name in (note['detail']['quarantined'], note['detail']['head_quarantined']) if name]
            return result
        finally:
            close_quietly(fd)


def _cut_torn_tail(fd, size):
    """Remove the fragment a previous append left when it died after writing part of its line.

    That line was never acknowledged, so it is cut before anything is chained to it.
    """
    _last, end = _tail(fd, size)
    if end != size:
        os.ftruncate(fd, end)
    return end


def line_problem(raw, prev, first):
    """Why the line ``raw`` does not continue a chain ending in ``prev``: ``(reason, None)`` or ``(None, record)``."""
    try:
        body = json.loads(raw.decode('utf-8'))
    except ValueError:
        return 'not a JSON record', None
    if not isinstance(body, dict) or 'prev' not in body:
        return 'record has no prev field', None
    if body['prev'] != prev:
        if first:
            return ('prev is not the genesis value: the first line of the log was removed or edited, '
                    'or older rotated files are missing'), None
        return ('prev does not match the SHA-256 of the line before it: that line was edited, '
                'or lines between them were removed or inserted'), None
    return None, body


def _live_problem(path, fd, size):
    """Why the live file (open as ``fd``, ``size`` bytes) must not be extended, or None.

    A fragment after the last newline is an interrupted append, not damage: it is not looked at.
    """
    data = os.pread(fd, size, 0)
    head = _read_head(path)
    proven = _proven_bytes(data, head)
    if proven:
        # the head pins the file as the last append left it: only the lines after that need a look
        prev = head['sha256']
        for raw in _split_lines(data[proven:])[0]:
            reason, _body = line_problem(raw, prev, False)
            if reason:
                return 'the line after byte %d: %s' % (proven, reason)
            prev = line_digest(raw)
        return None
    lines, _torn = _split_lines(data)
    prev = _prev_for_empty_file(path)
    start = prev
    if not lines:
        if head is None or head.get('sha256') == start:
            return None
        # a new or freshly rotated live file: the head is absent, or records the last rotated line
        return 'the live file holds no line, but its head %s records one' % head_path(path)
    seen = set()
    rotated = bool(rotated_files(path))
    for line_no, raw in enumerate(lines, 1):
        reason, _body = line_problem(raw, prev, not rotated and line_no == 1)
        if reason:
            return 'line %d: %s' % (line_no, reason)
        prev = line_digest(raw)
        seen.add(prev)
    if head is None:
        # an append that died between its line and its head leaves one line of a new log without a head
        return None if len(lines) == 1 and not rotated else 'the head file %s is missing' % head_path(path)
    if 'invalid' in head:
        return head['invalid']
    if head['sha256'] not in seen and head['sha256'] != start:
        return ('the head %s records line %s, which is not in the log (lines were removed from the end or the last '
                'line was edited)' % (head_path(path), head['sha256'][:16]))
    return None


def _proven_bytes(data, head):
    """How many leading bytes of ``data`` the head pins (its ``bytes`` and ``file_sha256``), or 0.

    Every append checks the file before it writes and then records the whole file's digest in the
    head, so bytes that still hash to it are a chain already checked, and reading them once (one
    SHA-256 pass, not a JSON parse per line) is enough.  Anything else gets the full check.
    """
    if head is None or 'invalid' in head:
        return 0
    length = head.get('bytes')
    if not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= len(data):
        return 0
    if data[length - 1:length] != b'\n' or hashlib.sha256(data[:length]).hexdigest() != head.get('file_sha256'):
        return 0
    return length


def _set_aside(path, fd, size, problem, record):
    """Quarantine the live file and its head; returns the record that opens the new live file."""
    digest = hashlib.sha256(os.pread(fd, size, 0)).hexdigest()
    try:
        quarantined = _quarantine.quarantine(path)
        head_quarantined = _quarantine.quarantine(head_path(path)) if os.path.lexists(head_path(path)) else None
    except OSError as exc:
        raise AuditError('audit log %s is corrupt (%s) and moving it aside failed (%s); the event %r was not '
                         'recorded and nothing was written to the log' % (path, problem, exc, record['event']))
    # the event that found the damage carries the time: the two records stay in time order
    return build_record(QUARANTINED, run_id=record['run_id'], level='critical', host=record['host'],
                        user=record['user'], ts=record['ts'], detail={
                            'file': path, 'quarantined': quarantined, 'sha256': digest, 'bytes': size,
                            'head_quarantined': head_quarantined, 'reason': problem})


def _append_locked(path, fd, size, record, rotated, mode, repaired=0):
    # the head is only ever written under this lock, so any temporary file of it is
    # left by an append that died; nothing else would remove it
    remove_stale_temps(head_path(path))
    last, _end = _tail(fd, size)
    if size == 0:
        os.fchmod(fd, mode)
        # the new file's name must be durable before a line in it is acknowledged
        fsync_dir(os.path.dirname(path))
        prev = _prev_for_empty_file(path)
    else:
        prev = line_digest(last)
    raw = encode_line(record, prev)
    try:
        write_all(fd, raw)
        fsync_fd(fd, path)
    except BaseException:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise
    digest = line_digest(raw)
    result = {'sha256': digest, 'prev': prev, 'record': record, 'rotated': rotated,
              'repaired_bytes': repaired, 'head_updated': True, 'warning': None}
    length = size + len(raw)
    try:
        atomic_write_json(head_path(path), {'sha256': digest, 'updated': record['ts'], 'bytes': length,
                                            'file_sha256': hashlib.sha256(os.pread(fd, length, 0)).hexdigest()},
                          mode=mode)
    except OSError as exc:
        result['head_updated'] = False
        result['warning'] = ('event recorded and fsynced in %s, but its head file %s was not updated (%s); '
                             'verify reports the lines after the old head as unanchored until the next append'
                             % (path, head_path(path), exc))
    return result


def _read_locked_snapshot(path):
    """[(file, bytes)] for every file of the chain plus the head, read under a shared lock."""
    fd = None
    if os.path.lexists(path):
        fd = _open_current(path, os.O_RDONLY, fcntl.LOCK_SH)
    try:
        files = [(name, read_bytes(name)) for name in chain_files(path)]
        head = _read_head(path)
    finally:
        if fd is not None:
            close_quietly(fd)
    return files, head


def _read_head(path):
    try:
        raw = read_bytes(head_path(path), limit=4096)
    except FileNotFoundError:
        return None
    try:
        head = json.loads(raw.decode('utf-8'))
        if not isinstance(head, dict) or not isinstance(head.get('sha256'), str):
            raise ValueError('no sha256 field')
        return head
    except ValueError as exc:
        return {'invalid': 'head file %s is unreadable: %s' % (head_path(path), exc)}


def _split_lines(data):
    lines = data.split(b'\n')
    torn = lines.pop()
    return [line + b'\n' for line in lines], torn


def verify(path):
    """Prove the chain of ``path`` and its rotated files.

    Returns ``{ok, files, lines, first_broken, head, unanchored_lines, torn_tail_bytes, quarantined, message}``;
    ``first_broken`` is ``{file, line, number, reason}`` (``line`` is 1-based within
    ``file``, ``number`` across the whole chain) or None.
    """
    path = os.path.abspath(os.fspath(path))
    files, head = _read_locked_snapshot(path)
    result = {'ok': True, 'files': [name for name, _data in files], 'lines': 0, 'first_broken': None,
              'head': None, 'unanchored_lines': 0, 'torn_tail_bytes': 0, 'quarantined': [], 'message': ''}
    prev = GENESIS
    number = 0
    head_at = None
    last = None

    def broken(name, line, reason):
        result['ok'] = False
        result['first_broken'] = {'file': name, 'line': line, 'number': number, 'reason': reason}
        result['message'] = 'audit chain broken at %s line %d: %s' % (name, line, reason)
        return result

    for index, (name, data) in enumerate(files):
        lines, torn = _split_lines(data)
        if torn:
            if index != len(files) - 1:
                number += 1
                return broken(name, len(lines) + 1, 'unterminated line inside a rotated file')
            result['torn_tail_bytes'] = len(torn)
        for line_no, raw in enumerate(lines, 1):
            number += 1
            reason, body = line_problem(raw, prev, number == 1)
            if reason is None and body.get('event') == QUARANTINED:
                reason = _check_quarantined(body, result)
            if reason:
                return broken(name, line_no, reason)
            prev = line_digest(raw)
            last = (name, line_no)
            if head is not None and prev == head.get('sha256'):
                head_at = number
        result['lines'] = number
    return _check_head(result, head, head_at, last, number, path)


def _check_quarantined(body, result):
    """A quarantine record holds when the file it moved aside is still there, byte for byte."""
    detail = body.get('detail') if isinstance(body.get('detail'), dict) else {}
    name = detail.get('quarantined')
    if not isinstance(name, str):
        return 'a quarantine record names no quarantined file'
    try:
        digest = hashlib.sha256(read_bytes(name)).hexdigest()
    except OSError as exc:
        return 'the quarantined file %s it records cannot be read (%s)' % (name, exc.strerror or exc)
    if digest != detail.get('sha256'):
        return 'the quarantined file %s it records was changed since it was moved aside' % name
    result['quarantined'].append({'file': name, 'ts': body.get('ts'), 'reason': detail.get('reason')})
    return None


def _check_head(result, head, head_at, last, number, path):
    if head is None:
        result['head'] = 'missing'
        if number:
            result['ok'] = False
            result['message'] = ('head file %s is missing: the end of the log cannot be proven complete '
                                 '(lines may have been removed from the end)' % head_path(path))
            result['first_broken'] = {'file': last[0], 'line': last[1], 'number': number, 'reason': 'head missing'}
        return result
    if 'invalid' in head:
        result['ok'] = False
        result['head'] = 'invalid'
        result['message'] = head['invalid']
        return result
    if head_at is None:
        result['ok'] = False
        result['head'] = 'not found'
        where = last or (path, 0)
        result['first_broken'] = {'file': where[0], 'line': where[1], 'number': number,
                                  'reason': 'the last appended line recorded in the head is no longer in the log'}
        result['message'] = ('audit chain broken at the end: the head %s records line %s, which is no longer in the log '
                             '(lines were removed from the end or the last line was edited)'
                             % (head_path(path), head['sha256'][:16]))
        return result
    result['head'] = 'ok'
    result['unanchored_lines'] = number - head_at
    result['message'] = 'audit chain intact: %d lines in %d files' % (number, len(result['files']))
    for quarantined in result['quarantined']:
        result['message'] += ('; a corrupt live file was moved aside to %s at %s (%s), its bytes pinned by SHA-256'
                              % (quarantined['file'], quarantined['ts'], quarantined['reason']))
    if result['unanchored_lines']:
        result['message'] += '; %d line(s) after the head are chained but not anchored' % result['unanchored_lines']
    if result['torn_tail_bytes']:
        result['message'] += ('; %d byte(s) of an interrupted append follow the last line (removed by the next append)'
                              % result['torn_tail_bytes'])
    return result


def records(path):
    """Every parseable record of the chain, oldest first, each with ``_file`` and ``_line``."""
    path = os.path.abspath(os.fspath(path))
    files, _head = _read_locked_snapshot(path)
    found = []
    for name, data in files:
        lines, _torn = _split_lines(data)
        for line_no, raw in enumerate(lines, 1):
            try:
                body = json.loads(raw.decode('utf-8'))
            except ValueError:
                continue
            if isinstance(body, dict):
                body['_file'] = name
                body['_line'] = line_no
                found.append(body)
    return found


def _record_epoch(record):
    try:
        return parse_ts(record.get('ts'))
    except ValueError:
        return None


def query(path, run_id=None, events=None, since=None, until=None, levels=None):
    """Records matching every given filter (``since``/``until`` are epoch seconds, inclusive)."""
    matched = []
    for record in records(path):
        if run_id is not None and record.get('run_id') != run_id:
            continue
        if events and record.get('event') not in events:
            continue
        if levels and record.get('level') not in levels:
            continue
        if since is not None or until is not None:
            epoch = _record_epoch(record)
            if epoch is None or (since is not None and epoch < since) or (until is not None and epoch > until):
                continue
        matched.append(record)
    return matched


def session_id_of(record):
    detail = record.get('detail')
    if isinstance(detail, dict):
        return detail.get('session_id')
    return None


def active_sessions(path, start_event=SESSION_START, end_event=SESSION_END):
    """Sessions with a start event and no end event (matched by ``detail.session_id``), oldest first."""
    open_sessions = {}
    for record in records(path):
        sid = session_id_of(record)
        if sid is None:
            continue
        if record.get('event') == start_event:
            open_sessions[sid] = {'session_id': sid, 'started': record.get('ts'), 'run_id': record.get('run_id'),
                                  'host': record.get('host'), 'user': record.get('user')}
        elif record.get('event') == end_event:
            open_sessions.pop(sid, None)
    return list(open_sessions.values())
