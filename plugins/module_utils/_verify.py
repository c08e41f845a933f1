# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify a host after a change: every check runs, read-only, and the result lists each one.

Checks, in order (names as the report shows them): ``file_exists`` per file that is not also a
document, ``document_valid`` per document (parses, required keys, schema, validate command - the
validation config_update applies to new content), ``manifest_match`` (the live paths against a
backup's manifest, only differences below ``backup_paths`` counting), ``health_command``,
``health_url``, ``health_monitor`` (health kept passing through the monitoring window),
``stability_window`` (health kept passing and the application's metrics - session success rate, error
rate, security violations, read from its metrics endpoint - stayed within their thresholds through
the window) and ``test_command``.  Commands and windows are not run in check mode (``not_run`` names
them).  With a metrics endpoint the result holds the last reading (``metrics``), for the report.
"""

from __future__ import annotations

import os
import time

from . import _checks, _config, _watch
from ._fsatomic import read_bytes
from ._store import Store, StoreError
from ._manifest import ManifestError

MISMATCHES_SHOWN = 5
# What the report shows of the application and the stability window judges, by metric: the metric's
# name in the Prometheus answer (the demo application's names; docs/demo-app.md).
METRIC_NAMES = {
    'session_success_rate': _watch.DEFAULT_METRIC_NAMES['session_success_rate'],
    'error_rate': _watch.DEFAULT_METRIC_NAMES['error_rate'],
    'security_violations': 'app_security_violations',
}
# (metric, how it must compare with its threshold, the option holding the threshold, its unit)
LIMITS = (('session_success_rate', '>', 'stability_min_success_rate', ' %'),
          ('error_rate', '<', 'stability_max_error_rate', ' %'),
          ('security_violations', '<=', 'stability_max_violations', ''))
_WITHIN = {'>': lambda value, limit: value > limit, '<': lambda value, limit: value < limit,
           '<=': lambda value, limit: value <= limit}


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


def read_metrics(url, names):
    """``(metrics, error)``: ``{metric: value}`` of the metrics ``names`` maps to Prometheus names, read from
    ``url``, or ``({}, why)`` when the endpoint did not answer with metrics."""
    body, error = _checks.fetch_text(url)
    if error:
        return {}, error
    try:
        return _watch.read_metrics(_watch.parse_prometheus(body), names), None
    except _watch.WatchError as exc:
        return {}, '%s: %s' % (url, exc)


def thresholds_of(params):
    """``{metric: {relation, value}}``: what the stability window judges, from the module's options."""
    return dict((metric, {'relation': relation, 'value': params[option]}) for metric, relation, option, dummy in LIMITS)


def outside_limits(metrics, thresholds):
    """The metrics of ``metrics`` outside their ``thresholds`` (thresholds_of), in words; [] when all are within.
    The report judges the fleet's metrics with it too."""
    problems = []
    for metric, dummy_relation, dummy_option, unit in LIMITS:
        limit, value = thresholds.get(metric), metrics.get(metric)
        if limit and value is not None and not _WITHIN[limit['relation']](value, limit['value']):
            problems.append('%s %g%s (must be %s %g%s)' % (
                metric.replace('_', ' '), value, unit, limit['relation'], limit['value'], unit))
    return problems


def stability_check(params, command, url, sleep=time.sleep):
    """``(check, metrics, readings)``: ``stability_window`` - health, and the metrics when
    ``params['metrics_url']`` is set, read every ``stability_interval`` seconds for ``stability_seconds``;
    the first reading that fails fails it.  ``metrics`` is the last reading."""
    interval = max(int(params['stability_interval']), 1)
    rounds = max(int(params['stability_seconds']) // interval, 1)
    metrics_url, names = params['metrics_url'], params['metric_names'] or METRIC_NAMES
    metrics = {}
    for number in range(1, rounds + 1):
        sleep(interval)
        where = 'reading %d of %d (%d s into the stability window)' % (number, rounds, number * interval)
        problem = health_once(command, url)
        if problem is None and metrics_url:
            metrics, error = read_metrics(metrics_url, names)
            if error or not metrics:
                problem = error or '%s has none of %s' % (metrics_url, ', '.join(sorted(names.values())))
            else:
                problem = '; '.join(outside_limits(metrics, thresholds_of(params))) or None
        if problem is not None:
            return _checks.check('stability_window', False, '%s failed: %s' % (where, problem)), metrics, number
    judged = ', '.join(metric for metric, dummy, dummy_option, dummy_unit in LIMITS if metric in metrics)
    return _checks.check('stability_window', True, 'stable for %d s (%d reading(s), every %d s): health%s' % (
        rounds * interval, rounds, interval, ' and %s within their thresholds' % judged if judged else ''
    )), metrics, rounds


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
    metrics, metrics_error, stability = {}, None, None
    if params['stability_seconds'] > 0 and (command or url or params['metrics_url']):
        if check_mode:
            not_run.append('stability_window')
        elif healthy:
            found, metrics, readings = stability_check(params, command, url)
            checks.append(found)
            stability = {'ok': found['ok'], 'seconds': params['stability_seconds'],
                         'interval': params['stability_interval'], 'readings': readings}
    if params['metrics_url'] and not metrics:
        metrics, metrics_error = read_metrics(params['metrics_url'], params['metric_names'] or METRIC_NAMES)
    if params['test_command']:
        if check_mode:
            not_run.append('test_command')
        else:
            checks.append(_checks.command_check('test_command', params['test_command']))
    result = _checks.summary(checks)
    result.update(changed=False, backup=backup_id, checksums_verified=checksums_verified, mismatches=mismatches,
                  not_run=not_run, metrics=metrics, metrics_error=metrics_error, stability=stability,
                  thresholds=thresholds_of(params))
    return result
