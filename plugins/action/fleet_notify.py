# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.fleet_notify: the internal and the user-facing messages about a run, once on the controller."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _notify
from ansible_collections.lastgood.rollback.plugins.plugin_utils._vars import plain

ARGUMENT_SPEC = dict(_notify.OPTIONS, run={'type': 'dict'})


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        run = plain(args['run'] if args['run'] is not None else self._templar.template(task_vars.get('lastgood_fleet')))
        told, failure = _notify.send(run, args, _notify.template_finder(self), self._task.check_mode)
        result.update(told, changed=not self._task.check_mode)
        if failure:
            result.update(failed=True, msg=failure)
        return result
