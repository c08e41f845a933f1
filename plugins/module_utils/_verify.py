# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify a host after a change: every check runs, read-only, and the result lists each one.

Checks, in order (names as the report shows them): ``file_exists`` per file that is not also a
document, ``document_valid`` per document (parses, required keys, schema, validate command - the
validation config_update applies to new content), ``manifest_match`` (the live paths against a
backup's manifest, only differences below ``backup_paths`` counting), ``health_command``,
``health_url``, ``health_monitor`` (health kept passing through the monitoring window) and
``test_command``.  Commands are not run in check mode (``not_run`` names them).
"""

from __future__ import annotations

import os
import time

from . import _checks, _config
from ._fsatomic import read_bytes
from ._store import Store, StoreError
from ._manifest import ManifestError

MISMATCHES_SHOWN = 5


def file_check(path):
    exists = os.path.lexists(path)
    return _checks.check('file_exists', exists, '%s exists' % path if exists else '%s is missing' % path, path=path)


def document_check(document):
    """``document_valid`` of one document ({path, format, required_keys, schema, schema_path, validate})."""
    path = document['path']
    try:
        data = read_bytes(os.path.realpath(path), limit=_config.MAX_BYTES)
    except FileNotFoundError:
        return _checks.check('document_valid', False, '%s is missing' % path, path=path)
    except (OSError, ValueError) as exc:
        return _checks.check('document_valid', False, '%s: cannot be read: %s' % (path, exc), path=path)
    keys = document.get('required_keys') or []
    try:
        _config.check_bytes(data, path, document.get('format') or 'auto', keys, document.get('schema'),
                            document.get('schema_path'), document.get('validate'))
    except _config.ConfigError as exc:
        return _checks.check('document_valid', False, str(exc), path=path)
    return _checks.check('document_valid', True, '%s parses and holds %s' % (path, ', '.join(keys) or 'its content'),
                         path=path)


def in_scope(path, scope):
    """Whether ``path`` is one of ``scope`` or below one of them; every path is when ``scope`` is empty."""
    return not scope or any(path == top or path.startswith(top.rstrip('/') + '/') for top in scope)


def manifest_check(backup_root, set_name, backup, scope):
    """(``manifest_match`` check, backup id or '', mismatches in scope) of the live paths against ``backup``."""
    try:
        store = Store(backup_root, set_name)
        info = store.resolve(backup)
        drift = store.drift(info['id'])
    except (StoreError, ManifestError, OSError) as exc:
        return (_checks.check('manifest_match', False, '%s is not usable: %s' % (backup, exc), backup=backup), '', [])
    backup_id = info['id']
    mismatches = [item for item in drift['mismatches'] if in_scope(item['path'], scope)]
    if not mismatches:
        message = 'the live paths match backup %s (SHA-256, size, mode, owner)' % backup_id
    else:
        message = '%d path(s) differ from backup %s: %s' % (
            len(mismatches), backup_id, ', '.join(item['path'] for item in mismatches[:MISMATCHES_SHOWN]))
    return _checks.check('manifest_match', not mismatches, message, backup=backup_id), backup_id, mismatches


def health_once(command, url):
    """The first failed health check's message, or None when both (those given) pass."""
    if command:
        found = _checks.command_check('health_command', command)
        if not found['ok']:
            return found['message']
    if url:
        found = _checks.url_check('health_url', url)
        if not found['ok']:
            return found['message']
    return None


def monitor_check(command, url, seconds, interval, sleep=time.sleep):
    """``health_monitor``: health checked every ``interval`` seconds for ``seconds``; the first failure fails it."""
    interval = max(int(interval), 1)
    rounds = int(seconds) // interval
    for number in range(1, rounds + 1):
        sleep(interval)
        problem = health_once(command, url)
        if problem is not None:
            return _checks.check('health_monitor', False, 'health check %d of %d (%d s into the monitoring window) '
                                 'failed: %s' % (number, rounds, number * interval, problem))
    return _checks.check('health_monitor', True, 'health kept passing for %d s (%d check(s), every %d s)'
                         % (rounds * interval, rounds, interval))


def verify(params, check_mode=False):
    """Run every check of ``params`` (the module's options); the module's result without ``host``."""
    documents = params['documents'] or []
    document_paths = {document['path'] for document in documents}
    checks = [file_check(path) for path in params['files'] or [] if path not in document_paths]
    checks += [document_check(document) for document in documents]
    backup_id, mismatches, checksums_verified = '', [], None
    if params['backup']:
        found, backup_id, mismatches = manifest_check(params['backup_root'], params['set'], params['backup'],
                                                      params['backup_paths'] or [])
        checks.append(found)
        checksums_verified = found['ok']
    not_run = []
    command, url = params['health_command'] or [], params['health_url'] or ''
    if command:
        if check_mode:
            not_run.append('health_command')
        else:
            checks.append(_checks.command_check('health_command', command, params['health_retries'],
                                                params['health_delay']))
    if url:
        checks.append(_checks.url_check('health_url', url, params['health_retries'], params['health_delay']))
    healthy = all(item['ok'] for item in checks if item['name'] in ('health_command', 'health_url'))
    if params['monitor_seconds'] > 0 and (command or url):
        if check_mode:
            not_run.append('health_monitor')
        elif healthy:
            checks.append(monitor_check(command, url, params['monitor_seconds'], params['monitor_interval']))
    if params['test_command']:
        if check_mode:
            not_run.append('test_command')
        else:
            checks.append(_checks.command_check('test_command', params['test_command']))
    result = _checks.summary(checks)
    result.update(changed=False, backup=backup_id, checksums_verified=checksums_verified, mismatches=mismatches,
                  not_run=not_run)
    return result
