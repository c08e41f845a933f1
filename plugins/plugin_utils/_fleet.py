# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in on branch i14-run for the fleet helpers of branch i14-fleet (issue 14, helper C).

Only what lastgood.rollback.run uses, copied from i14-fleet's _fleet.py as it was when this was
written; when the branches are merged, i14-fleet's file replaces this one.
"""

from __future__ import annotations


def passed(gates, host, phase):
    """Whether ``host`` got through ``phase``: its gate was taken and the host was not lagging there."""
    entry = (gates or {}).get(phase)
    return entry is not None and host not in entry.get('lagging', ())


def passed_phases(gates, host, phases):
    """The phases of ``phases`` (in that order) ``host`` passed; every gated phase when ``phases`` is empty."""
    return [phase for phase in (phases or list(gates or {})) if passed(gates, host, phase)]


def stopping_gate(gates, host, phases):
    """The gate that stopped ``host`` (the gate of the last phase it passed, when that stopped it), or None."""
    done = passed_phases(gates, host, phases)
    if not done:
        return None
    entry = gates[done[-1]]
    return entry if host in entry.get('stop', ()) else None


def failure_place(gates, host, phases):
    """Where the run failed on ``host`` as its rescue records it: ``{phase, stopped_by_fleet, failed_hosts}``.

    A host a gate stopped got through its own phase: the phase is the gate's, and the hosts that
    failed are the gate's lagging hosts.  Otherwise it is the first phase the host did not pass.
    """
    entry = stopping_gate(gates, host, phases)
    if entry is not None:
        return {'phase': entry['phase'], 'stopped_by_fleet': True, 'failed_hosts': list(entry['lagging'])}
    done = passed_phases(gates, host, phases)
    return {'phase': next((p for p in phases if p not in done), 'end'), 'stopped_by_fleet': False,
            'failed_hosts': [host]}
