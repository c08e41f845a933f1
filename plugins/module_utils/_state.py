# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Resumable run state: one JSON file per run_id, replaced atomically.

A run moves ``running`` -> ``failed`` or ``finished``; a failed run is resumed
by starting it again with the same run_id, and the phases it completed before
stay completed so that roles can skip them.  A state file that cannot be read
or does not have the expected shape is reported (StateCorrupt) and left exactly
as it is: resetting it would silently forget which phases already ran.
"""

from __future__ import annotations

import json
import os

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
    """The state file exists but cannot be trusted; it is left untouched."""


def state_path(state_dir, run_id):
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise StateError('run_id %r is not valid: use 1-128 letters, digits and . _ : @ + - '
                         '(starting with a letter or digit)' % (run_id,))
    return os.path.join(os.path.abspath(os.fspath(state_dir)), run_id + '.json')


def _corrupt(path, why):
    return StateCorrupt('run state %s is corrupt: %s. It was left untouched. Inspect it; restore it from a backup '
                        'or fix it by hand to resume the run, or move it aside to start the run over '
                        '(its completed phases would then run again)' % (path, why))


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


def _update(state_dir, run_id, change, check):
    """Apply ``change(state or None) -> new state or None (no change)`` under the directory lock."""
    path = state_path(state_dir, run_id)
    # read-modify-write of the state files is serialised by a flock on <state_dir>/.lock
    with FlockFile(os.path.join(os.path.abspath(os.fspath(state_dir)), '.lock'), create=not check):
        before = load(state_dir, run_id)
        after = change(json.loads(json.dumps(before)) if before is not None else None)
        if after is None or after == before:
            return {'changed': False, 'state': before, 'before': before, 'previous_status': before and before['status']}
        after['updated'] = utc_now()
        if not check:
            remove_stale_temps(path)
            atomic_write_json(path, after, mode=0o600)
        return {'changed': True, 'state': after, 'before': before, 'previous_status': before and before['status']}


def _require(state, run_id, state_dir, what):
    if state is None:
        raise StateError('run %s has no state in %s; %s needs a started run' % (run_id, state_dir, what))
    return state


def start(state_dir, run_id, meta=None, check=False):
    """Start ``run_id`` or resume it; ``state['completed_phases']`` lists what to skip.

    A failed run goes back to ``running`` (its attempts counted); a finished or
    running run is reported unchanged.
    """
    def change(state):
        if state is None:
            return start_state(run_id, meta)
        if state['status'] == 'failed':
            state['status'] = 'running'
            state['attempts'] += 1
            state['failure_reason'] = None
            state['failed_phase'] = None
            return state
        return None
    result = _update(state_dir, run_id, change, check)
    result['resumed'] = result['previous_status'] is not None
    return result


def phase_done(state_dir, run_id, phase, artifacts=None, check=False):
    """Record ``phase`` as completed with its ``artifacts`` (merged over earlier ones)."""
    if not isinstance(phase, str) or not phase:
        raise StateError('phase_done needs a phase name')

    def change(state):
        _require(state, run_id, state_dir, 'phase_done')
        if state['status'] != 'running':
            raise StateError('run %s is %s; start it again before recording phase %s (state unchanged)'
                             % (run_id, state['status'], phase))
        if phase not in state['completed_phases']:
            state['completed_phases'].append(phase)
        state['phase'] = phase
        merged = dict(state['artifacts'].get(phase) or {})
        merged.update(artifacts or {})
        state['artifacts'][phase] = merged
        return state
    return _update(state_dir, run_id, change, check)


def fail(state_dir, run_id, reason, phase=None, check=False):
    """Mark ``run_id`` failed with ``reason`` (creating its state if the run never started)."""
    if not isinstance(reason, str) or not reason:
        raise StateError('fail needs a failure_reason')

    def change(state):
        if state is None:
            state = start_state(run_id)
        if state['status'] == 'finished':
            raise StateError('run %s already finished; it cannot be marked failed (state unchanged)' % run_id)
        state['status'] = 'failed'
        state['failure_reason'] = reason
        state['failed_phase'] = phase
        return state
    return _update(state_dir, run_id, change, check)


def finish(state_dir, run_id, check=False):
    """Mark ``run_id`` finished."""
    def change(state):
        _require(state, run_id, state_dir, 'finish')
        if state['status'] == 'failed':
            raise StateError('run %s is failed (%s); start it again and complete it before finishing '
                             '(state unchanged)' % (run_id, state.get('failure_reason')))
        state['status'] = 'finished'
        return state
    return _update(state_dir, run_id, change, check)


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
