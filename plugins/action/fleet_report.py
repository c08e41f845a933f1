# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.fleet_report: the fleet report and the post-mortem skeleton, written once on the controller."""

from __future__ import annotations

import json
import os
import secrets
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic, _lock
from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet, _notify, _report
from ansible_collections.lastgood.rollback.plugins.plugin_utils._vars import play_hosts, plain, read_host_vars

ARGUMENT_SPEC = {
    'run': {'type': 'dict'},
    'result_vars': {'type': 'dict', 'default': _report.RESULT_VARS},
    'host_var': {'type': 'str', 'default': 'lastgood_host'},
    'hosts': {'type': 'list', 'elements': 'str', 'default': []},
    'controller_dir': {'type': 'path', 'default': '~/.lastgood/reports'},
    'report_dir': {'type': 'str', 'default': '/var/lib/lastgood/reports'},
    'audit_log': {'type': 'str', 'default': _report.DEFAULT_AUDIT_LOG},
    'host_documents': {'type': 'bool', 'default': False},
    # The end notice, sent first (lastgood.rollback.fleet_notify's options): one controller task for both.
    'notify': {'type': 'dict'},
}
# Writing the report takes a moment: a lock left by a play that died is taken over after this.
LOCK_TTL = 120
LOCK_WAIT = 180


def _read_report(path):
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        # A report that does not parse is replaced, as a report of another run would be.
        return None


def _locked(directory, writer, write):
    """Run ``write()`` holding the controller-side report lock of ``directory``, waiting for other plays."""
    path = os.path.join(directory, '.report.lock')
    audit_log = os.path.join(directory, '.report-lock.jsonl')
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            _lock.acquire(path, writer, ttl=LOCK_TTL, audit_log=audit_log)
            break
        except _lock.LockHeld as exc:
            if time.monotonic() > deadline:
                raise AnsibleActionFail('the fleet report was not written: %s' % exc)
            time.sleep(2)
    try:
        return write()
    finally:
        _lock.release(path, writer, audit_log=audit_log)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        fleet = plain(args['run'] if args['run'] is not None else self._templar.template(task_vars.get('lastgood_fleet')))
        if not fleet or not fleet.get('run_id'):
            raise AnsibleActionFail('no run to report on: pass run (the lastgood_fleet fact of lastgood.rollback.fleet_outcome)')
        told, notify_failure = {}, None
        # A paused run has not ended: the job that ends it sends the end notice.
        if args['notify'] is not None and fleet.get('outcome') != 'paused':
            told, notify_failure = _notify.send(fleet, _notify.options(args['notify']), _notify.template_finder(self),
                                                self._task.check_mode)
        everyone = play_hosts(task_vars)[0]
        hosts = args['hosts'] or everyone
        names = {args['host_var']} | set(name.partition('.')[0] for name in args['result_vars'].values())
        found = read_host_vars(task_vars, hosts, names)
        records, events, documents = {}, [], {}
        for name in hosts:
            host = found[name].get(args['host_var']) or {}
            if 'audit' not in host:
                continue  # it never got to read its audit log (unreachable): the summary stands for it
            results = _report.results_from_vars(found[name], args['result_vars'])
            records[name] = _report.host_record(fleet, name, host, results)
            events.extend(_report.host_events(name, host))
            if args['host_documents']:
                documents[name] = _report.host_report_documents(fleet, name, host, results)
        part = _report.report_slice(fleet, records, events, hosts)
        directory = os.path.expanduser(args['controller_dir'])

        def write():
            report = _report.merge_report(_read_report(os.path.join(directory, 'report.json')), part, _fleet.utc_now())
            texts = _report.fleet_documents(report, args['audit_log'])
            if not self._task.check_mode:
                for file_name, text in texts.items():
                    _fsatomic.atomic_write_text(os.path.join(directory, file_name), text, mode=0o640)
            return report, texts

        if self._task.check_mode:
            report, texts = write()
        else:
            _fsatomic.makedirs_durable(directory, mode=0o750)
            report, texts = _locked(directory, 'report-%s' % secrets.token_hex(6), write)
        outcome = _report.report_result(report, directory, args['report_dir'])
        result.update(
            # shown by a debug task of the play: printing here would break a callback that writes JSON
            report_md=texts['report.md'],
            changed=not self._task.check_mode,
            msg='Fleet report of run %s (%s) %s %s.' % (
                outcome['run_id'], outcome['outcome'], 'would be written to' if self._task.check_mode else 'written to',
                directory),
            ansible_facts={'report_result': outcome},
            ansible_stats={'data': {'lastgood_report': _report.report_stats(outcome, report)}, 'per_host': False,
                           'aggregate': False},
        )
        if args['host_documents']:
            result['host_documents'] = documents
        if told:
            result['ansible_facts'].update(told['ansible_facts'])
            result['ansible_stats']['data'].update(told['ansible_stats']['data'])
            result['msg'] = '%s  Notice %s' % (result['msg'], told['msg'])
            if told.get('warnings'):
                result['warnings'] = told['warnings']
        if notify_failure:
            result.update(failed=True, msg=notify_failure)
        return result
