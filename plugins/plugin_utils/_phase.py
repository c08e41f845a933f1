# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller half of a phase module (preflight, verify): what only the controller knows.

The module runs every check on the host and never fails for a failed check (``fail: false`` is
passed to it); the action then names the inventory host, sets the phase's fact (``preflight_result``,
``verify_result``), publishes the per-host summary in the run's custom stats (``lastgood_preflight``,
``lastgood_verify``, aggregated over the hosts) and fails the host once, one line per failed check.
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.lastgood.rollback.plugins.module_utils._checks import failure_message


def phase_result(module_result, host, fact, fact_keys, stat, title, fail, publish=True):
    """The action's result from the module's: ``host`` set, the fact and the stats (when ``publish``) and, when
    ``fail`` and a check failed, ``failed`` with ``title % host`` and the failed checks' messages."""
    result = dict(module_result, host=host)
    if publish:
        result['ansible_facts'] = {fact: {key: result.get(key) for key in fact_keys}}
        result['ansible_stats'] = {'data': {stat: {host: {'ok': result['ok'], 'failed_checks': result['failed_checks']}}},
                                   'per_host': False, 'aggregate': True}
    result.pop('failed', None)
    if fail and not result['ok']:
        result.update(failed=True, msg=failure_message(title % host, result['checks']))
    return result


def name_reachable(module_result, host):
    """The module's result with the ``reachable`` check naming the inventory host instead of the host's own name."""
    checks = [dict(item, message='%s answers over its connection' % host) if item['name'] == 'reachable' else item
              for item in module_result['checks']]
    return dict(module_result, checks=checks)


def run_phase_module(action, task_vars, module, fact, fact_keys, stat, title, adjust=None):
    """Run ``lastgood.rollback.<module>`` with the task's arguments (``fail`` kept for the controller);
    ``adjust(result, host)`` may correct what only the controller knows before the result is summed up."""
    args = dict(action._task.args)  # pylint: disable=protected-access
    fail = boolean(args.pop('fail', True), strict=False)
    publish = boolean(args.pop('publish', True), strict=False)
    args['fail'] = False
    result = action._execute_module(module_name='lastgood.rollback.' + module, module_args=args,  # pylint: disable=protected-access
                                    task_vars=task_vars)
    if result.get('failed') or 'checks' not in result:
        return result
    host = task_vars.get('inventory_hostname')
    if adjust is not None:
        result = adjust(result, host)
    return phase_result(result, host, fact, fact_keys, stat, title, fail, publish)
