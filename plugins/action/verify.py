# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.verify: the module's checks on the host; fact, stats and the failure here (plugin_utils/_phase.py)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.plugin_utils._phase import run_phase_module

FACT_KEYS = ('host', 'ok', 'checks', 'failed_checks', 'backup', 'checksums_verified', 'mismatches')


class ActionModule(ActionBase):
    """Run the verify module, then set verify_result and lastgood_verify and fail the host once."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        return run_phase_module(self, task_vars or {}, 'verify', 'verify_result', FACT_KEYS, 'lastgood_verify',
                                'Verification failed on %s:')
