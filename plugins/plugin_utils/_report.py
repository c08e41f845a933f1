# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The post-rollback report: each host's record, the fleet report and its merge across plays, the documents.

Plain functions over plain data.  The fleet summary comes from _fleet.fleet_summary (the
``lastgood_fleet`` fact); each host's ``lastgood_host`` fact holds its run's audit events and the
result of verifying its audit chain (``events``, ``audit``); ``results`` are what the run's phases
returned on the host.  The Markdown comes from the report role's templates (roles/report/templates),
rendered with Jinja2 as Ansible renders them.
"""

from __future__ import annotations

import datetime
import json
import os

import jinja2

from ansible_collections.lastgood.rollback.plugins.module_utils import _verify
from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         'roles', 'report', 'templates')
DEFAULT_AUDIT_LOG = '/var/log/lastgood/audit.jsonl'
# Where each phase's result is on a host, by phase: the name of the host's variable (``name.key`` reads a key).
RESULT_VARS = {'preflight': 'preflight_result', 'checkpoint': 'lastgood_checkpoint_result.checkpoint_result',
               'action': 'lastgood_action_result', 'verify': 'verify_result'}
EMPTY = {'hosts': {}, 'timeline': [], 'unchecked_hosts': []}


def _dict2items(mapping):
    return [{'key': key, 'value': value} for key, value in mapping.items()]


def _to_datetime(text, fmt='%Y-%m-%d %H:%M:%S'):
    return datetime.datetime.strptime(text, fmt)


def environment(search_path=TEMPLATES):
    """A Jinja2 environment rendering the report templates as Ansible's template lookup does."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(search_path), trim_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update({'dict2items': _dict2items, 'ansible.builtin.dict2items': _dict2items,
                        'to_datetime': _to_datetime, 'ansible.builtin.to_datetime': _to_datetime})
    return env


def to_nice_json(value):
    """JSON as Ansible's to_nice_json writes it, with a final newline."""
    return json.dumps(value, indent=4, sort_keys=True, separators=(',', ': ')) + '\n'


def run_part(fleet):
    """The run without its hosts, as report.json's ``run`` holds it."""
    return dict((key, value) for key, value in (fleet or {}).items() if key != 'hosts')


def lookup(variables, dotted):
    """``variables[a][b]...`` for ``dotted`` = ``a.b...``, or None when a step is missing."""
    name, dummy, rest = dotted.partition('.')
    value = variables.get(name)
    for key in rest.split('.') if rest else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value


def results_from_vars(variables, result_vars=None):
    """A host's phase results (for host_record) from its variables, named as ``result_vars`` (RESULT_VARS)."""
    return dict((phase, lookup(variables, name) or {}) for phase, name in (result_vars or RESULT_VARS).items())


def host_status(summary):
    """How the run left a host, for people.

    A host the fleet gate stopped because others failed is ``rolled_back`` when putting its
    checkpoint back changed it (verified), ``stopped`` when it was still unchanged; any other host
    keeps its outcome.
    """
    restore = summary.get('restore') or {}
    stopped = summary.get('outcome') == 'failed' and bool((summary.get('failure') or {}).get('stopped_by_fleet'))
    if stopped and restore.get('verified') and restore.get('changed'):
        return 'rolled_back'
    if stopped and (restore.get('verified') or not restore.get('attempted')):
        return 'stopped'
    return summary.get('outcome') or 'unknown'


def _failed_checks(result):
    return [check for check in (result.get('checks') or []) if not check.get('ok')]


def host_record(fleet, host_name, host, results=None):
    """This host's part of the report, from the fleet summary, its ``lastgood_host`` and its phases' results.

    ``results`` has ``preflight``, ``checkpoint``, ``action`` and ``verify`` (each a result, or absent;
    see results_from_vars).  A host the summary does not list is summed up from its ``lastgood_host``.
    """
    summary = ((fleet or {}).get('hosts') or {}).get(host_name) or _fleet.host_summary(host_name, host, {}, [])
    results = results or {}
    preflight = results.get('preflight') or {}
    checkpoint = results.get('checkpoint') or {}
    verify = results.get('verify') or {}
    restore = summary.get('restore') or {}
    passed_phases = summary.get('passed_phases') or []
    outcome = summary.get('outcome') or 'unknown'
    skipped = list(summary.get('skipped') or [])
    if outcome == 'success' and 'verify' in [item.get('phase') for item in skipped]:
        state_verified = None
    elif outcome == 'success':
        state_verified = verify['checksums_verified'] if 'checksums_verified' in verify else checkpoint.get('verified')
    elif outcome == 'paused':
        # the run goes on in the next job: only its verification so far proves the state
        state_verified = verify.get('checksums_verified')
    else:
        state_verified = bool(restore.get('verified')) if restore.get('attempted') else None
    audit = (host or {}).get('audit') or {}
    return {
        'host': host_name,
        'outcome': outcome,
        'attempt': summary.get('attempt'),
        'started': summary.get('started'),
        'finished': summary.get('finished'),
        'passed_phases': passed_phases,
        'phase_times': summary.get('phase_times') or {},
        'failure': summary.get('failure'),
        # phases the operator skipped on this attempt, each with the reason given
        'skipped': skipped,
        'restore': restore,
        'status': host_status(summary),
        'preflight': {'ok': preflight.get('ok'), 'failed_checks': _failed_checks(preflight)},
        'checkpoint': {
            'id': checkpoint.get('id', (fleet or {}).get('checkpoint', '')),
            # 'earlier': a resumed run skipped the checkpoint phase; the checkpoint was verified then.
            'verified': checkpoint['verified'] if 'verified' in checkpoint else (
                'earlier' if 'checkpoint' in passed_phases else None),
            'files': checkpoint.get('files'),
            'bytes': checkpoint.get('bytes'),
        },
        'action': dict((key, value) for key, value in (results.get('action') or {}).items() if key != 'host'),
        'verify': {'ok': verify.get('ok'), 'backup': verify.get('backup', ''),
                   'checksums_verified': verify.get('checksums_verified'), 'failed_checks': _failed_checks(verify),
                   # the application's metrics and the stability window (the status report's verification)
                   'metrics': verify.get('metrics') or {}, 'metrics_error': verify.get('metrics_error'),
                   'stability': verify.get('stability'), 'thresholds': verify.get('thresholds') or {}},
        # The final state proven by checksums: the known good one after a successful run (or the
        # checkpoint, for a run that only takes one), the checkpoint after a failed run that put it
        # back.  None where no files were restored, so nothing was compared (e.g. level 1).
        'state_verified': state_verified,
        'audit': {'chain_ok': audit.get('chain_ok'), 'lines': audit.get('lines'),
                  'first_broken': audit.get('first_broken'), 'events': audit.get('events')},
    }


def host_events(host_name, host):
    """This host's audit events of the run, each naming the host."""
    return [dict(event, host=host_name) for event in ((host or {}).get('events') or [])]


def host_report_documents(fleet, host_name, host, results=None):
    """``{'report.json': text, 'report.md': text}`` of one host's report, written on the host.

    ``fleet`` is the run's summary (``lastgood_fleet``), ``host`` the host's ``lastgood_host`` (its
    ``events`` and ``audit``), ``results`` what its phases returned (see host_record).
    """
    record = host_record(fleet, host_name, host, results)
    events = host_events(host_name, host)
    run = run_part(fleet)
    markdown = environment().get_template('host_report.md.j2').render(
        report_run=run, report_host=record, report_host_events=events)
    return {'report.json': to_nice_json({'run': run, 'host': record, 'events': events}), 'report.md': markdown}


def report_slice(fleet, records, events, hosts):
    """This play's part of the fleet report.

    ``records`` maps the hosts that could be checked (their audit log read) to their record, ``events``
    those hosts' events; ``hosts`` are every host of the play.  Hosts that could not be checked keep
    what the fleet summary knows of them.
    """
    merged_hosts = dict((fleet or {}).get('hosts') or {})
    merged_hosts.update(records)
    return {
        'run': run_part(fleet),
        'hosts': merged_hosts,
        'timeline': sorted(events, key=lambda event: event.get('ts', '')),
        'unchecked_hosts': [name for name in hosts if name not in records],
    }


def fleet_metrics(hosts, outcome):
    """The status report's verification over ``hosts`` (host records): the lowest session success rate, the
    highest error rate and the security violations added up, over the hosts whose metrics were read; the
    stability window; the thresholds; and the system status the runbook asks for - ``ISSUES`` when the run did
    not succeed, a window failed or a metric is outside its threshold, ``STABLE`` when the window passed on every
    host checked, else ``MONITORING`` (no window: watch the application).
    """
    verified = dict((name, record.get('verify') or {}) for name, record in hosts.items() if 'audit' in record)
    read = dict((name, found['metrics']) for name, found in verified.items() if found.get('metrics'))

    def values(metric):
        return [metrics[metric] for metrics in read.values() if metrics.get(metric) is not None]

    combine = {'session_success_rate': min, 'error_rate': max, 'security_violations': sum}
    metrics = dict((metric, how(values(metric)) if values(metric) else None) for metric, how in combine.items())
    thresholds = next((found['thresholds'] for found in verified.values() if found.get('thresholds')), {})
    windows = dict((name, found['stability']) for name, found in verified.items() if found.get('stability'))
    problems = _verify.outside_limits(metrics, thresholds)
    if outcome not in ('success', 'paused') or problems or not all(window.get('ok') for window in windows.values()):
        status = 'ISSUES'
    elif verified and len(windows) == len(verified):
        status = 'STABLE'
    else:
        status = 'MONITORING'
    return {
        'status': status,
        'metrics': metrics,
        'hosts_read': sorted(read),
        'unread': sorted(name for name in verified if name not in read),
        'outside_thresholds': problems,
        'thresholds': thresholds,
        'stability': {'seconds': max(window.get('seconds') or 0 for window in windows.values()),
                      'passed': sorted(name for name, window in windows.items() if window.get('ok')),
                      'failed': sorted(name for name, window in windows.items() if not window.get('ok'))}
        if windows else None,
    }


def carry_over(earlier, record):
    """A host's record from this job, with the parts of the run an earlier job of the same run reported.

    A run resumed or continued (the next node of an AWX workflow) skips the phases done before: its
    record has no result for them, and the earlier job's report of the host does.  A part this job
    reported itself is kept.
    """
    if not earlier or 'audit' not in earlier or 'audit' not in record:
        return record
    record = dict(record)
    if not record.get('action') and earlier.get('action'):
        record['action'] = earlier['action']
    if (record.get('checkpoint') or {}).get('files') is None and (earlier.get('checkpoint') or {}).get('files') is not None:
        record['checkpoint'] = earlier['checkpoint']
    if (record.get('verify') or {}).get('ok') is None and (earlier.get('verify') or {}).get('ok') is not None:
        record['verify'] = earlier['verify']
        if record.get('state_verified') is None and record.get('outcome') in ('success', 'paused'):
            record['state_verified'] = earlier.get('state_verified')
    return record


def merge_report(earlier, part, generated):
    """The fleet report after this play: its hosts merged into the report other plays of the run wrote.

    A report of another run (``earlier`` with another run id, or None) is replaced, not merged.  The
    run's host lists and outcome are summed up over every play's hosts as _fleet.classify does for one.
    """
    earlier = earlier or {}
    if (earlier.get('run') or {}).get('run_id') != part['run'].get('run_id') or not earlier.get('hosts'):
        earlier = EMPTY
    hosts = dict(earlier['hosts'])
    hosts.update((name, carry_over(earlier['hosts'].get(name), record)) for name, record in part['hosts'].items())
    records = [record for record in hosts.values() if 'audit' in record]
    proven = [record['state_verified'] for record in records if record.get('state_verified') is not None]
    run = dict(part['run'])
    unchecked = [name for name in earlier.get('unchecked_hosts') or [] if name not in part['hosts']]
    if earlier['hosts']:
        run.update(_fleet.classify(hosts))
    return {
        'run': run,
        'hosts': hosts,
        'timeline': sorted([event for event in earlier.get('timeline') or [] if event.get('host') not in part['hosts']]
                           + part['timeline'], key=lambda event: event.get('ts', '')),
        # Over the hosts that could be checked; unchecked_hosts lists the others (unreachable).
        # None when no host's final state was checked against a manifest.
        'checksums_verified': all(proven) if proven else None,
        'audit_chains_verified': all((record.get('audit') or {}).get('chain_ok') for record in records),
        'unchecked_hosts': unchecked + part['unchecked_hosts'],
        'verification': fleet_metrics(hosts, run.get('outcome')),
        'generated': generated,
    }


def fleet_documents(report, audit_log=DEFAULT_AUDIT_LOG):
    """``{'report.json', 'report.md', 'postmortem.md'}`` of the fleet report."""
    env = environment()
    context = {'report_fleet': report, 'report_audit_log': audit_log}
    return {
        'report.json': to_nice_json(report),
        'report.md': env.get_template('report.md.j2').render(**context),
        'postmortem.md': env.get_template('postmortem.md.j2').render(**context),
    }


def report_result(report, controller_dir, report_dir):
    """The ``report_result`` fact: where the reports are and what they prove."""
    run_id = report['run'].get('run_id')
    return {
        'run_id': run_id,
        'outcome': report['run'].get('outcome') or 'unknown',
        'report_md': os.path.join(controller_dir, 'report.md'),
        'report_json': os.path.join(controller_dir, 'report.json'),
        'postmortem': os.path.join(controller_dir, 'postmortem.md'),
        'host_report': '%s/%s/report.md' % (report_dir, run_id),
        'checksums_verified': report['checksums_verified'],
        'audit_chains_verified': report['audit_chains_verified'],
    }


def report_stats(result, report):
    """The ``lastgood_report`` statistics AWX workflow nodes read."""
    stats = dict((key, result[key]) for key in ('run_id', 'outcome', 'report_md', 'report_json', 'postmortem',
                                                'checksums_verified', 'audit_chains_verified'))
    stats['hosts'] = dict((name, (host or {}).get('outcome', 'unknown')) for name, host in report['hosts'].items())
    return stats
