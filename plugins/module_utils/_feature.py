# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Turn features off on one host (Level 1) in one module run.

For each feature, ``turn_off`` writes the environment override (``NAME=false``, which wins over
the config file) and/or sets ``<feature>.enabled: false`` in the config file (through
:func:`_config.update`: validated, backed up into the store, written atomically), makes the
application read its flags again, reads the flag back as the application reports it until it
reads off, ends the feature's sessions (those the audit log shows active and those the
application ends itself), and records ``session_end`` and ``feature_disabled`` in the audit log.
A second run finds every flag off and changes nothing.  Check mode predicts the file changes,
reads the flag once and the audit log's sessions, and runs no command.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _checks, _config
from ansible_collections.lastgood.rollback.plugins.module_utils._fsatomic import atomic_write


class FeatureError(Exception):
    """A feature could not be turned off; the message says what failed and what state the host is in."""


def override_name(feature):
    """The environment override of a feature: partyMode -> PARTY_MODE_ENABLED."""
    return re.sub(r'(?<=[a-z0-9])([A-Z])', r'_\1', feature).upper() + '_ENABLED'


def override_text(text, name):
    """``text`` with the last line that sets ``name`` (``NAME=``, ``export NAME=``) replaced by ``NAME=false``,
    or with that line appended; as ansible.builtin.lineinfile with ``regexp`` and ``line`` does."""
    wanted = '%s=false' % name
    pattern = re.compile(r'^\s*(export\s+)?%s\s*=' % re.escape(name))
    parts = text.split('\n')  # lines end at \n only, as lineinfile reads them (not at \x1e, \x85, ...)
    lines = [part + '\n' for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    matches = [index for index, line in enumerate(lines) if pattern.match(line)]
    if matches:
        index = matches[-1]
        ending = '\n' if lines[index].endswith('\n') else ''
        lines[index] = wanted + ending
    else:
        if lines and not lines[-1].endswith('\n'):
            lines[-1] += '\n'
        lines.append(wanted + '\n')
    return ''.join(lines)


def set_override(path, name, mode, check_mode):
    """Write ``NAME=false`` into the override file (created with ``mode``); whether anything changed."""
    try:
        st = os.stat(path)
        with open(path, 'rb') as handle:
            original = handle.read().decode('utf-8')
    except FileNotFoundError:
        st, original = None, None
    text = override_text(original or '', name)
    if text == original and stat.S_IMODE(st.st_mode) == mode:
        return False
    if not check_mode:
        atomic_write(path, text.encode('utf-8'), mode=mode, uid=st.st_uid if st else None,
                     gid=st.st_gid if st else None)
    return True


def _extract(document, keys):
    """The value at ``keys`` (each a literal key) in ``document``; 'missing' when there is none."""
    value = document
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return 'missing'
        value = value[key]
    return value


def read_flag(url, command, keys):
    """The flag as the application reports it: the value at ``keys`` of the JSON document from ``url`` (fetched
    here) or from ``command``'s standard output; 'missing' when there is no such value or no JSON document."""
    try:
        if url:
            response = _checks.open_url(url, method='GET', timeout=_checks.URL_TIMEOUT, follow_redirects='safe')
            try:
                document = json.loads(response.read().decode('utf-8'))
            finally:
                response.close()
        else:
            rc, output, dummy_err = _checks.run_argv(command)
            document = json.loads(output) if rc == 0 and output.strip().startswith('{') else {}
    except (OSError, ValueError):
        document = {}
    return _extract(document, keys)


def _command(argv, what):
    rc, output = _checks.run_command(argv)
    if rc != 0:
        raise FeatureError(_checks.command_failure(what, argv, rc, output))


def end_app_sessions(command):
    """The sessions the application ended (its JSON output's ``ended`` list)."""
    rc, output, err = _checks.run_argv(command)
    if rc != 0 or not output.startswith('{'):
        raise FeatureError(_checks.command_failure('ending the application\'s sessions failed', command, rc,
                                                   output + ' ' + err))
    try:
        return list(json.loads(output).get('ended') or [])
    except (ValueError, AttributeError):
        raise FeatureError('%s did not print a JSON object with an "ended" list' % ' '.join(command))


def turn_off(params, feature, check_mode=False, sleep=time.sleep):
    """Turn one feature off; its summary ``{feature, via, reads, sessions_terminated, changed}``."""
    via = params['via']
    name = params['override_name'] or override_name(feature)
    key = params['config_key'] or '%s.enabled' % feature
    keys = params['readback_keys'] or ['flags', key]
    files_changed = False
    if 'override' in via:
        files_changed |= set_override(params['override_file'], name, int(params['override_mode'], 8), check_mode)
    if 'config' in via:
        try:
            update = _config.update(params['config_file'], set_values={key: False}, required_keys=[key],
                                    backup='store', backup_root=params['backup_root'], set_name=params['backup_set'],
                                    check=check_mode)
        except _config.ConfigError as exc:
            raise FeatureError('turning %s off in %s failed: %s' % (feature, params['config_file'], exc))
        files_changed |= update['changed']
    flag = None
    if not files_changed:
        # The files were already off: the application may not have read them yet.
        flag = read_flag(params['readback_url'], params['readback_command'], keys)
    if params['apply_command'] and (files_changed or flag is not False) and not check_mode:
        _command(params['apply_command'], 'the application did not read its flags again (the files turn %s off)'
                 % feature)
    if not check_mode:
        for attempt in range(params['readback_retries'] + 1):
            flag = read_flag(params['readback_url'], params['readback_command'], keys)
            if flag is False or attempt == params['readback_retries']:
                break
            sleep(params['readback_delay'])
        if flag is not False:
            raise FeatureError(
                'the application still reports %s = %s after the flag was turned off (%s; override %s, config %s).  '
                'The files are changed; the application did not take them up.  Check that the apply command (%s) '
                'works, that no other override turns the feature back on, then rerun with the same run id.'
                % (' / '.join(keys), flag, ' and '.join(via), params['override_file'], params['config_file'],
                   ' '.join(params['apply_command'])))
    logged = [session['session_id'] for session in _audit.active_sessions(params['audit_log'])] \
        if params['audit_log'] and os.path.exists(params['audit_log']) else []
    ended_by_app = end_app_sessions(params['end_sessions_command']) \
        if params['end_sessions_command'] and not check_mode else []
    ended = list(dict.fromkeys(logged + ended_by_app))  # each once, in order
    if not check_mode and params['audit_log']:
        for session in ended:
            _audit.append(params['audit_log'], 'session_end', run_id=params['run_id'] or None, level='notice',
                          detail={'session_id': session, 'status': 'terminated',
                                  'reason': params['session_reason'], 'feature': feature})
        if files_changed or ended:
            _audit.append(params['audit_log'], 'feature_disabled', run_id=params['run_id'] or None, level='warning',
                          detail={'feature': feature, 'via': via,
                                  'override': '%s:%s' % (params['override_file'], name) if 'override' in via else None,
                                  'config': '%s:%s' % (params['config_file'], key) if 'config' in via else None,
                                  'sessions_terminated': len(ended)})
    return {'feature': feature, 'via': via, 'reads': flag, 'sessions_terminated': ended,
            'changed': files_changed or bool(ended)}
