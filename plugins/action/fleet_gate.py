# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.fleet_gate: the fleet gate after a phase, computed once for every host (run_once)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet
from ansible_collections.lastgood.rollback.plugins.plugin_utils._vars import host_vars, play_hosts, plain

ARGUMENT_SPEC = {
    'phase': {'type': 'str', 'required': True},
    'hosts': {'type': 'list', 'elements': 'str', 'default': []},
    'max_fail_percentage': {'type': 'int', 'default': 0},
    'required_hosts': {'type': 'list', 'elements': 'str', 'default': []},
    'run_id': {'type': 'str', 'default': ''},
}


def _failed_on_its_own(variables):
    """Whether a host's vars show it failed in the run's block, other than by being stopped by a fleet gate."""
    if 'ansible_failed_result' not in variables:
        return False
    failed = variables['ansible_failed_result']
    return not (isinstance(failed, Mapping) and failed.get('stopped_by_gate'))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        everyone, running = play_hosts(task_vars)
        population = args['hosts'] or everyone
        # A host being rescued is still in ansible_play_hosts; Ansible has given it ansible_failed_result.  A host
        # a gate stopped (its run step says so) got through its own phase: it did not fail, the others did.
        failed = [host for host in population if host in running and _failed_on_its_own(host_vars(task_vars, host))]
        run_id = args['run_id'] or self._templar.template(task_vars.get('lastgood_run_id'))
        if not run_id:
            result.update(failed=True, msg='fleet_gate needs the run id: set lastgood_run_id first (run_once set_fact) '
                                           'or pass run_id')
            return result
        entry = _fleet.gate(args['phase'], population, running, failed, args['max_fail_percentage'],
                            args['required_hosts'])
        entry['run_id'] = run_id
        # Only this run's gates: an earlier run's may come back from a fact cache.
        gates = _fleet.add_gate(_fleet.run_gates(plain(self._templar.template(task_vars.get('lastgood_gates'))), run_id),
                                entry)
        entry = gates[entry['phase']]
        result.update(changed=False, msg=entry['message'], gate=entry,
                      ansible_facts={'lastgood_gates': gates, 'lastgood_gate': entry})
        return result
