# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.run: the controller's part of each step of a run, around the run module on the host.

What only the controller knows is read here, from the task's variables: the fleet gates (a host the
gate stopped fails before it begins, or after it recorded its phase), where the run failed (for the
rescue), the host's report (for the close), and the times of the
run (the controller's clock, like the gates').  The module does the host's part: lock, run state,
audit, restore, report files.
"""

from __future__ import annotations

import json
import re
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.modules.run import ARGUMENT_SPEC
from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet

MODULE = 'lastgood.rollback.run'
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
# options only the action reads: not sent to the host
ACTION_ONLY = ('fleet', 'result_vars')


def utc_now():
    return time.strftime(TIME_FORMAT, time.gmtime())


def stop_message(gate, host_name):
    """Why a host the fleet gate stopped fails (the gate's message names the hosts, not this one)."""
    return 'Stopping the run on %s: %s' % (host_name, gate.get('message') or 'the fleet gate of %s stopped it'
                                           % gate.get('phase'))


def stopped_by(gate, host_name):
    return bool(gate) and host_name in (gate.get('stop') or [])


def phase_gate(gates, latest, phase):
    """The gate taken after ``phase``: from the run's gates, or the latest gate when it is that phase's."""
    if phase in (gates or {}):
        return gates[phase]
    return latest if (latest or {}).get('phase') == phase else None


def gate_mark(gate):
    """What a run step that stops a host puts in its failed result, for the rescue: the gate's phase and lagging hosts."""
    return {'phase': gate.get('phase'), 'lagging': list(gate.get('lagging') or [])}


def failure_record(gates, host_name, phases, failed_task, failed_result):
    """Where and why the run failed on ``host_name``, as the rescue records it.

    ``failed_task``/``failed_result`` are Ansible's ``ansible_failed_task``/``ansible_failed_result``.
    A host a gate stopped got through its own phase: the phase is that gate's, the failed hosts are
    the ones the gate counted as lagging; otherwise the phase is the first one the host did not pass.
    """
    result = failed_result or {}
    stopped = result.get('stopped_by_gate')
    if isinstance(stopped, dict) and stopped.get('phase'):
        # the run step that failed this host said which gate stopped it (a gate whose entry a later gate of
        # the same phase replaced, as deploy_staged takes one per stage, still names it here)
        place = {'phase': stopped['phase'], 'stopped_by_fleet': True, 'failed_hosts': list(stopped.get('lagging') or [])}
    else:
        place = _fleet.failure_place(gates, host_name, phases)
    message = '' if result.get('msg') is None else str(result.get('msg'))
    stderr = str(result.get('stderr') or '').strip()
    if stderr:
        message += ' ' + stderr
    record = {
        'phase': place['phase'],
        'task': str((failed_task or {}).get('name') or ''),
        'message': message,
        'stopped_by_fleet': bool(place['stopped_by_fleet']),
        'failed_hosts': list(place['failed_hosts']),
    }
    if result.get('not_begun'):
        # the run was refused because it never began on the host (continue): the rescue records no run state
        record['not_begun'] = True
    return record


def success_message(host, host_name, check_mode):
    return 'Run %s (%s) finished on %s: every phase passed%s.' % (
        host.get('run_id'), host.get('operation'), host_name, ' (dry run: nothing was changed)' if check_mode else '')


def failure_message(host, host_name):
    """Where the run failed on the host, what state the host is in and how to resume."""
    failure = host.get('failure') or {}
    reason = str(failure.get('message') or '').strip()
    parts = ['Run %s (%s) failed on %s in phase %s%s.' % (
        host.get('run_id'), host.get('operation'), host_name, failure.get('phase', 'end'),
        (': ' + re.sub(r'[.:]$', '', reason)) if reason else '')]
    parts.append(str((host.get('restore') or {}).get('message') or '').strip())
    if host.get('lock_released'):
        parts.append('The rollback lock was released.')
    elif host.get('lock_held') and host.get('outcome') == 'restore_failed':
        parts.append('The rollback lock stays held by this run until the host is checked.')
    if failure.get('phase') == 'abort':
        parts.append('Next: fix the cause, then abort again with -e lastgood_run_id=%s -e lastgood_run_action=abort.'
                     % host.get('run_id'))
    else:
        parts.append('Next: read the report, fix the cause, then rerun with -e lastgood_run_id=%s to resume the run '
                     '(or -e lastgood_run_action=abort with it to put the checkpoint back and close the run).'
                     % host.get('run_id'))
    return ' '.join(part for part in parts if part)


def abort_message(host, host_name):
    """How an aborted run left the host: its checkpoint (back or never taken) and the run closed."""
    closed = ('Nothing of the run was recorded on this host.' if host.get('never_began')
              else 'The run is closed and its lock released; start a new run when ready.')
    return 'Run %s (%s) aborted on %s. %s %s' % (
        host.get('run_id'), host.get('operation'), host_name, str((host.get('restore') or {}).get('message') or '').strip(),
        closed)


def pause_message(host, host_name):
    """Where a paused run stands on the host and how it goes on."""
    held = host.get('held') or []
    return ('Run %s (%s) paused on %s after phase %s%s. The run stays open and holds its lock; continue it with '
            '-e lastgood_run_id=%s -e lastgood_run_action=continue, or put its checkpoint back and close it with '
            '-e lastgood_run_action=abort.' % (
                host.get('run_id'), host.get('operation'), host_name, host.get('pause_after'),
                ' (left for the next job: %s)' % ', '.join(held) if held else '', host.get('run_id')))


def lookup(value, keys):
    """``value[a][b]...`` for ``keys`` = ``a.b...`` ('' for ``value`` itself), or None when a step is missing."""
    for key in keys.split('.') if keys else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value


def plain(value):
    """``value`` as plain JSON data (Ansible's tagged and lazy containers become dicts, lists and strings)."""
    return json.loads(json.dumps(value, default=str))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        self._task_vars = task_vars or {}
        result = super().run(tmp, self._task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC,
                                                  required_if=[('state', 'phase', ('phase',))])
        self._host_name = self._task_vars.get('inventory_hostname')
        host = self._var('lastgood_host') or {}
        # a record left by another run (an earlier play of the playbook) is not this run's
        self._host = host if host.get('run_id') == args['run_id'] else {}
        state = args['state']
        if state == 'begin':
            result.update(self._begin())
        elif state == 'checkpoint':
            result.update(self._checkpoint())
        elif state == 'phase':
            result.update(self._phase(args))
        elif state == 'rescue':
            result.update(self._rescue(args))
        elif state == 'end':
            result.update(self._end())
        else:
            result.update(self._close(args))
        return result

    def _var(self, name):
        if name not in self._task_vars:
            return None
        return plain(self._templar.template(self._task_vars[name]))

    def _failed_task(self):
        """The failed task's name.  Only the name: a task that failed in its condition still has its arguments as
        templates, which may read variables of the task or of an included role alone, not in scope here."""
        task = self._task_vars.get('ansible_failed_task') or {}
        try:
            return {'name': plain(self._templar.template(task.get('name')))}
        except AnsibleError:
            return {'name': str(task.get('name'))}

    def _gates(self):
        """This run's gates (an earlier run's may come back from a fact cache), and the latest of them."""
        run_id = self._task.args.get('run_id') or self._var('lastgood_run_id')
        latest = self._var('lastgood_gate')
        return (_fleet.run_gates(self._var('lastgood_gates'), run_id),
                latest if isinstance(latest, dict) and latest.get('run_id') == run_id else None)

    def _module(self, **extra):
        """The run module on the host with the task's own arguments (paths as the host reads them) and ``extra``."""
        module_args = dict((key, value) for key, value in self._task.args.items() if key not in ACTION_ONLY)
        module_args.update(extra)
        return self._execute_module(module_name=MODULE, module_args=module_args, task_vars=self._task_vars)

    def _begin(self):
        gate = self._gates()[1]
        if stopped_by(gate, self._host_name):
            return {'failed': True, 'changed': False, 'msg': stop_message(gate, self._host_name),
                    'stopped_by_gate': gate_mark(gate)}
        result = self._module()
        if not result.get('failed'):
            result['ansible_facts']['lastgood_host']['started'] = utc_now()
        return result

    def _phase(self, args):
        phase = args['phase']
        if phase == 'start' or not args['record'] or 'attempt' not in self._host:
            # the start gate, or a phase before the run began here (preflight): nothing to record
            result = {'changed': False, 'msg': 'Phase %s passed; nothing to record.' % phase}
        else:
            result = self._module(host=self._host)
            if result.get('failed'):
                return result
        gate = phase_gate(*self._gates(), phase=phase)
        if stopped_by(gate, self._host_name):
            result.update(failed=True, msg=stop_message(gate, self._host_name), stopped_by_gate=gate_mark(gate))
            result.pop('ansible_facts', None)
        return result

    def _rescue(self, args):
        gates = self._gates()[0]
        failure = failure_record(gates, self._host_name, args['phases'], self._failed_task(),
                                 self._var('ansible_failed_result'))
        return self._module(host=self._host, failure=failure,
                            passed_phases=_fleet.passed_phases(gates, self._host_name, args['phases']))

    def _checkpoint(self):
        result = self._module(host=self._host)
        taken = result.get('checkpoint_result')
        if not result.get('failed') and taken:
            # for AWX workflow nodes, as the checkpoint role publishes it
            result['ansible_stats'] = {'data': {'lastgood_checkpoint': {
                'id': taken.get('id'), 'hosts': {self._host_name: {
                    'verified': taken.get('verified', False), 'files': taken.get('files'),
                    'bytes': taken.get('bytes')}}}}, 'per_host': False, 'aggregate': True}
        return result

    def _end(self):
        result = self._module(host=self._host)
        if not result.get('failed'):
            result['ansible_facts']['lastgood_host']['finished'] = utc_now()
        return result

    def _close(self, args):
        check_mode = self._play_context.check_mode
        documents = args['report_documents']
        warnings = []
        if documents is None and not check_mode:
            if args['fleet']:
                # helper of the fleet report: imported here, the other steps do not need it
                from ansible_collections.lastgood.rollback.plugins.plugin_utils._report import host_report_documents
                results = dict((phase, lookup(self._var(name.partition('.')[0]), name.partition('.')[2]) or {})
                               for phase, name in args['result_vars'].items())
                documents = host_report_documents(args['fleet'], self._host_name, self._host, results)
            else:
                warnings.append('no fleet summary (fleet) and no report_documents given: no report was written '
                                'on this host')
        result = self._module(report_documents={} if check_mode else (documents or {}))
        if result.get('failed'):
            return result
        result.setdefault('warnings', []).extend(warnings)
        host = dict(self._host)
        for key in ('run_id', 'operation'):
            host.setdefault(key, args[key])
        if (host.get('outcome') or 'success') == 'success':
            result['msg'] = success_message(host, self._host_name, check_mode)
            return result
        if host.get('outcome') == 'aborted':
            result['msg'] = abort_message(host, self._host_name)
            if args['fail_aborted']:
                # the job must not end successful: the run it belongs to did not go through
                result['failed'] = True
            return result
        if host.get('outcome') == 'paused':
            result['msg'] = pause_message(host, self._host_name)
            return result
        result.update(failed=True, msg=failure_message(host, self._host_name))
        return result
