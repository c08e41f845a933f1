# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Once per incident, with a cooldown: may an automatic action go ahead?

Automatic actions (an Event-Driven Ansible rulebook starting a rollback) claim the
right to act here first.  A claim is refused when

- the pause file exists (an operator paused automatic actions),
- the same incident was already acted on under the same key (a restarted rulebook,
  a source that announces the incident again, a repeated webhook), or
- the key was acted on less than ``cooldown`` seconds ago (a flapping metric opens a
  new incident each time it crosses; the cooldown keeps it from starting a second
  rollback).

The state is one JSON file per guard, replaced atomically under an flock, so it
survives restarts and two rulebooks never both win a claim.
"""

from __future__ import annotations

import binascii
import json
import os
import time

from . import _audit
from ._fsatomic import atomic_write_json, makedirs_durable
from ._lock import FlockFile

KEEP_INCIDENTS = 50


def new_run_id(now):
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now)) + '-' + binascii.hexlify(os.urandom(3)).decode('ascii')


def _load(path):
    try:
        with open(path) as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return {'version': 1, 'keys': {}}
    if not isinstance(state, dict) or not isinstance(state.get('keys'), dict):
        raise ValueError('%s is not a trigger guard state file (no "keys" mapping)' % path)
    return state


def pause_reason(pause_file):
    """The pause file's text (or a default sentence) when it exists, else None."""
    if not pause_file or not os.path.exists(pause_file):
        return None
    try:
        with open(pause_file) as handle:
            text = handle.read().strip()
    except OSError:
        text = ''
    return 'automatic actions are paused (%s exists%s)' % (pause_file, ': ' + text if text else '')


def claim(path, key, incident, cooldown, record=None, pause_file=None, check=False, now=None):
    """``{claimed, reason, run_id, previous, paused}``; a granted claim is written unless ``check``.

    ``record`` (rule, event, level, ...) is stored with the claim, so the state file
    alone tells who acted last and why.
    """
    now = time.time() if now is None else now
    paused = pause_reason(pause_file)
    path = os.path.abspath(path)
    if not check:
        makedirs_durable(os.path.dirname(path), mode=0o700)
    with FlockFile(path + '.lock', create=not check):
        state = _load(path)
        previous = state['keys'].get(key)
        reason = None
        if paused:
            reason = paused
        elif previous and incident and incident in previous.get('incidents', []):
            reason = ('incident %s was already acted on by run %s at %s (once per incident)'
                      % (incident, previous.get('run_id'), previous.get('claimed')))
        elif previous and now - _audit.parse_ts(previous['claimed']) < cooldown:
            until = _audit.parse_ts(previous['claimed']) + cooldown
            reason = ('%s acted %d s ago (run %s, incident %s); cooldown until %s'
                      % (key, now - _audit.parse_ts(previous['claimed']), previous.get('run_id'),
                         previous.get('incident'), _audit.format_ts(until)))
        if reason:
            return {'claimed': False, 'reason': reason, 'run_id': None, 'previous': previous, 'paused': bool(paused)}
        run_id = new_run_id(now)
        incidents = ((previous or {}).get('incidents', []) + ([incident] if incident else []))[-KEEP_INCIDENTS:]
        entry = dict(record or {}, key=key, incident=incident, run_id=run_id, claimed=_audit.format_ts(now),
                     incidents=incidents)
        if not check:
            state['keys'][key] = entry
            atomic_write_json(path, state)
        return {'claimed': True, 'reason': 'first action for %s on incident %s' % (key, incident or '(none)'),
                'run_id': run_id, 'previous': previous, 'paused': False}
