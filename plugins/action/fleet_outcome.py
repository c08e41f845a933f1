# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.fleet_outcome: how the run ended on every host, summed up once (run_once)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet
from ansible_collections.lastgood.rollback.plugins.plugin_utils._vars import play_hosts, plain, read_host_vars

ARGUMENT_SPEC = {
    'phases': {'type': 'list', 'elements': 'str', 'default': []},
    'operation': {'type': 'str'},
    'level': {'type': 'int'},
    'checkpoint': {'type': 'str'},
    'run_id': {'type': 'str', 'default': ''},
    'hosts': {'type': 'list', 'elements': 'str', 'default': []},
}
# What the run's hosts all recorded the same: taken from them when the task does not say.
RUN_DEFAULTS = (('operation', 'run'), ('level', 0), ('checkpoint', ''), ('run_id', None))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        everyone, running = play_hosts(task_vars)
        hosts = args['hosts'] or everyone
        records = dict((host, found.get('lastgood_host'))
                       for host, found in read_host_vars(task_vars, hosts, ('lastgood_host',)).items())
        run = {}
        for key, default in RUN_DEFAULTS:
            recorded = [record[key] for record in records.values() if record and record.get(key) is not None]
            run[key] = args[key] if args[key] not in (None, '') else (recorded[0] if recorded else default)
        if not run['run_id']:
            run['run_id'] = self._templar.template(task_vars.get('lastgood_run_id'))
        gates = _fleet.run_gates(plain(self._templar.template(task_vars.get('lastgood_gates'))), run['run_id'])
        fleet = _fleet.fleet_summary(run, records, gates, args['phases'], set(running))
        result.update(
            changed=False,
            msg='Run %s (%s): %s - %d of %d hosts succeeded.' % (
                fleet['run_id'], fleet['operation'], fleet['outcome'], len(fleet['succeeded_hosts']), len(hosts)),
            ansible_facts={'lastgood_fleet': fleet},
            ansible_stats={'data': {'lastgood_run': _fleet.run_stats(fleet)}, 'per_host': False, 'aggregate': False},
        )
        return result
