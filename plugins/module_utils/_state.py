# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Resumable run state: one JSON file per run_id, replaced atomically.

A run moves ``running`` -> ``failed`` or ``finished``; a failed run is resumed
by starting it again with the same run_id, and the phases it completed before
stay completed so that roles can skip them.

A state file that cannot be read or does not have the expected shape is never
written to or reset.  An operation that meets one (outside check mode) moves it
aside read-only (``<run_id>.json.corrupt-<UTC time>``) and rebuilds the state from
the run's events in the audit log (``rebuild``), but only when that log's hash
chain verifies; what the audit log does not hold is named in the result.  When
it cannot be rebuilt the operation fails (StateCorrupt) naming the quarantined
file, and the run has no state: starting it again starts it over.
"""

from __future__ import annotations

import json
import os

from . import _audit, _quarantine
from ._audit import utc_now
from ._fsatomic import atomic_write_json, read_bytes, remove_stale_temps
from ._lock import RUN_ID_RE, FlockFile

VERSION = 1
STATUSES = ('running', 'failed', 'finished')
_KEYS = {
    'version': int, 'run_id': str, 'status': str, 'created': str, 'updated': str, 'attempts': int,
    'completed_phases': list, 'artifacts': dict, 'meta': dict,
}


class StateError(Exception):
    """A run-state operation was refused; the state file is unchanged."""


class StateCorrupt(StateError):
    """The state file exists but cannot be trusted; ``quarantined``: where it was moved aside (empty: it was not)."""

    def __init__(self, message, path, why, quarantined=None):
        super().__init__(message)
        self.path = path
        self.why = why
        self.quarantined = [quarantined] if quarantined else []


# what the run module records in the audit log, which is all a rebuild can know
NOT_IN_AUDIT = [
    'meta other than operation, level and checkpoint (run_start does not record it)',
    'phases recorded with the run_state module alone (only the run module audits its phases)',
    'changes whose audit event could not be written (the run warned about each one then)',
]


def state_path(state_dir, run_id):
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise StateError('run_id %r is not valid: use 1-128 letters, digits and . _ : @ + - '
                         '(starting with a letter or digit)' % (run_id,))
    return os.path.join(os.path.abspath(os.fspath(state_dir)), run_id + '.json')


def _corrupt(path, why):
    return StateCorrupt('run state %s is corrupt: %s. It was left untouched (check mode, or a read that changes '
                        'nothing); the next operation on the run moves it aside and rebuilds the state from the audit '
                        'log' % (path, why), path, why)


def validate(state, path, run_id):
    if not isinstance(state, dict):
        raise _corrupt(path, 'the top level is %s, not an object' % type(state).__name__)
    for key, kind in _KEYS.items():
        if not isinstance(state.get(key), kind) or (kind is int and isinstance(state.get(key), bool)):
            raise _corrupt(path, 'field %r is missing or not a %s' % (key, kind.__name__))
    if state['version'] != VERSION:
        raise _corrupt(path, 'unknown version %r (this collection writes version %d)' % (state['version'], VERSION))
    if state['run_id'] != run_id:
        raise _corrupt(path, 'it belongs to run %r' % state['run_id'])
    if state['status'] not in STATUSES:
        raise _corrupt(path, 'status %r is not one of %s' % (state['status'], ', '.join(STATUSES)))
    if not all(isinstance(phase, str) for phase in state['completed_phases']):
        raise _corrupt(path, 'completed_phases holds something other than phase names')
    if len(set(state['completed_phases'])) != len(state['completed_phases']):
        raise _corrupt(path, 'completed_phases lists a phase twice')
    return state


def load(state_dir, run_id):
    """The state of ``run_id``, or None when it has none yet.  Raises StateCorrupt."""
    path = state_path(state_dir, run_id)
    try:
        raw = read_bytes(path, limit=16 * 1024 * 1024)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise _corrupt(path, str(exc))
    try:
        state = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        raise _corrupt(path, 'not valid JSON (%s)' % exc)
    return validate(state, path, run_id)


def _update(state_dir, run_id, change, check, audit_log=None, create=True):
    """Apply ``change(state or None) -> new state or None (no change)`` under the directory lock.

    Returns ``{changed, state, before, previous_status, repair}``; ``repair`` (or None) is what
    ``repair`` did to a corrupt state file first.
    """
    path = state_path(state_dir, run_id)
    # read-modify-write of the state files is serialised by a flock on <state_dir>/.lock
    with FlockFile(os.path.join(os.path.abspath(os.fspath(state_dir)), '.lock'), create=create and not check):
        try:
            before, repaired = load(state_dir, run_id), None
        except StateCorrupt as exc:
            if check:
                raise
            before, repaired = repair(exc, run_id, audit_log)
        after = change(json.loads(json.dumps(before)) if before is not None else None)
        result = {'changed': repaired is not None, 'state': before, 'before': before,
                  'previous_status': before and before['status'], 'repair': repaired}
        if after is None or after == before:
            return result
        after['updated'] = utc_now()
        if not check:
            remove_stale_temps(path)
            atomic_write_json(path, after, mode=0o600)
        return dict(result, changed=True, state=after)


def repair(corrupt, run_id, audit_log):
    """Quarantine the corrupt state file, then rebuild it from ``audit_log``; returns ``(state, report)``.

    ``report``: ``{quarantined: [path], rebuilt_from, not_rebuilt: [what], warnings}``.  Raises
    StateCorrupt naming the quarantined file when the state cannot be rebuilt.  The caller holds
    the state directory's lock.
    """
    try:
        quarantined = _quarantine.quarantine(corrupt.path)
    except OSError as exc:
        raise StateCorrupt('run state %s is corrupt: %s. Moving it aside failed (%s); it is unchanged and nothing was '
                           'written' % (corrupt.path, corrupt.why, exc), corrupt.path, corrupt.why)
    found = 'run state %s is corrupt: %s. It was moved aside to %s (read-only, as it was)' % (
        corrupt.path, corrupt.why, quarantined)
    try:
        state = rebuild(audit_log, run_id)
    except StateError as exc:
        _audit_repair(audit_log, run_id, corrupt, quarantined, None)
        raise StateCorrupt('%s and could not be rebuilt: %s. The run has no state now: starting it again starts it '
                           'over (its completed phases run again); to resume it instead, repair the quarantined copy '
                           'by hand and move it back to %s' % (found, exc, corrupt.path),
                           corrupt.path, corrupt.why, quarantined)
    state['rebuilt'] = {'from': audit_log, 'quarantined': quarantined, 'at': utc_now()}
    atomic_write_json(corrupt.path, state, mode=0o600)
    report = {'quarantined': [quarantined], 'rebuilt_from': audit_log, 'not_rebuilt': list(NOT_IN_AUDIT),
              'warnings': []}
    warning = _audit_repair(audit_log, run_id, corrupt, quarantined, state)
    report['warnings'].append('%s and was rebuilt from the audit log %s (completed phases: %s). Not in the audit log, '
                              'so not rebuilt: %s' % (found, audit_log, ', '.join(state['completed_phases']) or 'none',
                                                      '; '.join(NOT_IN_AUDIT)))
    if warning:
        report['warnings'].append(warning)
    return state, report


def _audit_repair(audit_log, run_id, corrupt, quarantined, state):
    """Record the quarantine (and the rebuild) in the audit log; returns a warning when that failed."""
    if not audit_log:
        return None
    try:
        _audit.append(audit_log, 'run_state_quarantined', run_id=run_id, level='error', detail={
            'state_file': corrupt.path, 'quarantined': quarantined, 'reason': corrupt.why, 'rebuilt': state is not None,
            'completed_phases': state['completed_phases'] if state else None})
    except (_audit.AuditError, OSError) as exc:
        return 'recording the quarantine of %s in the audit log %s failed: %s' % (corrupt.path, audit_log, exc)
    return None


def rebuild(audit_log, run_id):
    """The state of ``run_id`` as the run module's events in ``audit_log`` record it.

    Only a log whose whole hash chain verifies is used.  Raises StateError saying why not.
    """
    if not audit_log:
        raise StateError('no audit log was given to rebuild it from')
    try:
        chain = _audit.verify(audit_log)
        events = _audit.query(audit_log, run_id=run_id)
    except (_audit.AuditError, OSError) as exc:
        raise StateError('the audit log %s cannot be read (%s)' % (audit_log, exc))
    if not chain['ok']:
        raise StateError('the audit log %s fails its chain check (%s), so it is not trusted to rebuild from'
                         % (audit_log, chain['message']))
    state = None
    for record in events:
        detail = record.get('detail') if isinstance(record.get('detail'), dict) else {}
        if record.get('event') == 'run_start':
            state = start_state(run_id, {key: detail.get(key) for key in ('operation', 'level', 'checkpoint')})
            state['created'] = record.get('ts')
        elif state is None or not _replay(state, record.get('event'), detail):
            continue
        state['attempts'] = _attempt(detail, state['attempts'])
        state['updated'] = record.get('ts')
    if state is None:
        raise StateError('the audit log %s has no run_start event of run %s' % (audit_log, run_id))
    try:
        return validate(state, '(rebuilt)', run_id)
    except StateCorrupt as exc:
        raise StateError('the events of run %s in %s do not make a valid state (%s)' % (run_id, audit_log, exc.why))


def _attempt(detail, current):
    attempt = detail.get('attempt')
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0 else current


def _replay(state, event, detail):
    """Apply one of the run module's events to ``state``, as the run module changed the state then."""
    if event == 'run_resume':
        if state['status'] == 'failed':
            _resume(state)
    elif event == 'run_phase_done' and isinstance(detail.get('phase'), str):
        artifacts = detail.get('artifacts') if isinstance(detail.get('artifacts'), dict) else {}
        _record_phase(state, detail['phase'], dict(artifacts, attempt=_attempt(detail, state['attempts'])))
    elif event == 'run_checkpoint_restored':
        _record_phase(state, 'rescue', {'attempt': state['attempts'], 'checkpoint': detail.get('checkpoint'),
                                        'restored': detail.get('restored'), 'verified': detail.get('verified')})
    elif event == 'run_failed':
        _mark_failed(state, detail.get('message') or 'failed in %s' % detail.get('phase'), detail.get('phase'))
    elif event == 'run_end' and detail.get('outcome') == 'success':
        state['status'] = 'finished'
    else:
        return False
    return True


def _resume(state):
    state.update(status='running', attempts=state['attempts'] + 1, failure_reason=None, failed_phase=None)
    return state


def _mark_failed(state, reason, phase):
    state.update(status='failed', failure_reason=reason, failed_phase=phase)
    return state


def _record_phase(state, phase, artifacts):
    if phase not in state['completed_phases']:
        state['completed_phases'].append(phase)
    state['phase'] = phase
    merged = dict(state['artifacts'].get(phase) or {})
    merged.update(artifacts)
    state['artifacts'][phase] = merged


def _require(state, run_id, state_dir, what):
    if state is None:
        raise StateError('run %s has no state in %s; %s needs a started run' % (run_id, state_dir, what))
    return state


def start(state_dir, run_id, meta=None, check=False, audit_log=None):
    """Start ``run_id`` or resume it; ``state['completed_phases']`` lists what to skip.

    A failed run goes back to ``running`` (its attempts counted); a finished or
    running run is reported unchanged.  ``audit_log``: where a corrupt state file is
    rebuilt from (see ``repair``), in every operation.
    """
    def change(state):
        if state is None:
            return start_state(run_id, meta)
        if state['status'] == 'failed':
            return _resume(state)
        return None
    result = _update(state_dir, run_id, change, check, audit_log)
    result['resumed'] = result['previous_status'] is not None
    return result


def phase_done(state_dir, run_id, phase, artifacts=None, check=False, audit_log=None):
    """Record ``phase`` as completed with its ``artifacts`` (merged over earlier ones)."""
    if not isinstance(phase, str) or not phase:
        raise StateError('phase_done needs a phase name')

    def change(state):
        _require(state, run_id, state_dir, 'phase_done')
        if state['status'] != 'running':
            raise StateError('run %s is %s; start it again before recording phase %s (state unchanged)'
                             % (run_id, state['status'], phase))
        _record_phase(state, phase, artifacts or {})
        return state
    return _update(state_dir, run_id, change, check, audit_log)


def fail(state_dir, run_id, reason, phase=None, check=False, audit_log=None):
    """Mark ``run_id`` failed with ``reason`` (creating its state if the run never started)."""
    if not isinstance(reason, str) or not reason:
        raise StateError('fail needs a failure_reason')

    def change(state):
        if state is None:
            state = start_state(run_id)
        if state['status'] == 'finished':
            raise StateError('run %s already finished; it cannot be marked failed (state unchanged)' % run_id)
        return _mark_failed(state, reason, phase)
    return _update(state_dir, run_id, change, check, audit_log)


def finish(state_dir, run_id, check=False, audit_log=None):
    """Mark ``run_id`` finished."""
    def change(state):
        _require(state, run_id, state_dir, 'finish')
        if state['status'] == 'failed':
            raise StateError('run %s is failed (%s); start it again and complete it before finishing '
                             '(state unchanged)' % (run_id, state.get('failure_reason')))
        state['status'] = 'finished'
        return state
    return _update(state_dir, run_id, change, check, audit_log)


def get(state_dir, run_id, check=False, audit_log=None):
    """The state of ``run_id`` (None when it has none), repairing a corrupt file outside check mode.

    A read creates nothing: without the directory's lock file no state was ever written there.
    """
    return _update(state_dir, run_id, lambda state: None, check, audit_log, create=False)


def start_state(run_id, meta=None):
    now = utc_now()
    return {'version': VERSION, 'run_id': run_id, 'status': 'running', 'created': now, 'updated': now,
            'attempts': 1, 'phase': None, 'completed_phases': [], 'artifacts': {}, 'meta': dict(meta or {}),
            'failure_reason': None, 'failed_phase': None}


def running_runs(state_dir):
    """The run ids whose state file in ``state_dir`` says ``running``, sorted.

    A file that cannot be read or parsed is not counted (``load`` reports it when that run resumes);
    only its ``status`` is looked at, so a run of an older or newer state version still counts.
    """
    try:
        names = os.listdir(os.fspath(state_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    running = []
    for name in sorted(names):
        if name.startswith('.') or not name.endswith('.json'):
            continue
        try:
            state = json.loads(read_bytes(os.path.join(os.fspath(state_dir), name), limit=16 * 1024 * 1024)
                               .decode('utf-8'))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and state.get('status') == 'running':
            running.append(name[:-len('.json')])
    return running
