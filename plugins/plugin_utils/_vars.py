# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the fleet action plugins read from a task's variables: the play's hosts and each host's vars, once."""

from __future__ import annotations

import json


def plain(value):
    """``value`` as plain JSON data (Ansible's tagged and lazy containers become dicts, lists and strings)."""
    return json.loads(json.dumps(value, default=str))


def play_hosts(task_vars):
    """``(all hosts of the play, hosts still running)``: the reachable ones, including hosts being rescued."""
    return list(task_vars.get('ansible_play_hosts_all') or []), list(task_vars.get('ansible_play_hosts') or [])


def host_vars(task_vars, host):
    """The variables of ``host`` (a read-only mapping, templated on access), or {} when it is unknown."""
    hostvars = task_vars.get('hostvars') or {}
    return hostvars[host] if host in hostvars else {}


def read_host_vars(task_vars, hosts, names):
    """``{host: {name: value}}`` of the variables ``names`` each of ``hosts`` has, each host's vars read once."""
    found = {}
    for host in hosts:
        variables = host_vars(task_vars, host)
        found[host] = dict((name, plain(variables[name])) for name in names if name in variables)
    return found
