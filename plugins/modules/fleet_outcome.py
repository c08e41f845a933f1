# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: fleet_outcome
short_description: Sum up how a run ended on every host, once for the fleet
version_added: 0.1.0
description:
  - An action plugin that runs on the controller only; use it with C(run_once=true) in the run's C(always)
    section, after M(lastgood.rollback.run) with C(state=rescue) or C(state=end) recorded each host's outcome.
  - Reads each host's C(lastgood_host) fact once, and the run's gates (C(lastgood_gates), set by
    M(lastgood.rollback.fleet_gate)).
  - Per host - C(outcome) (C(success), C(failed), C(restore_failed), or C(unreachable) for a host that left the
    play without one), C(passed_phases), C(phase_times) (when each gate was taken), C(started), C(finished),
    C(attempt), C(failure), C(restore) and C(stopped_by_fleet).  For the run - C(succeeded_hosts),
    C(failed_hosts), C(stopped_hosts) (stopped by the fleet gate because others failed, checkpoint back),
    C(unreachable_hosts), C(restored_hosts), C(outcome) (C(success), C(partial) or C(failed)), C(started)
    (the earliest host start) and C(finished) (the latest host end).
  - Sets the fact C(lastgood_fleet) on every host and publishes C(lastgood_run) (run_id, operation, level,
    outcome, checkpoint, failed_hosts, stopped_hosts, restored_hosts) for AWX workflow nodes, as
    C(set_stats) would.
  - The report's merge of several plays of one run (slices of a sliced AWX job) sums up its hosts with the
    same code.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
attributes:
  check_mode:
    support: full
    details: Reads only; works the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Changes nothing.
options:
  phases:
    description:
      - The run's phases in order, including C(preflight) and C(start); names the phase in which an unreachable
        host stopped (the first it did not pass) and orders C(passed_phases).
      - Empty orders by the gates taken.
    type: list
    elements: str
    default: []
  operation:
    description: What the run does, for example C(rollback_level2).  Default - what the hosts' C(lastgood_host) records, else C(run).
    type: str
  level:
    description: The rollback level (0 for runs that are not one).  Default - what the hosts' C(lastgood_host) records, else 0.
    type: int
  checkpoint:
    description: The run's checkpoint id.  Default - what the hosts' C(lastgood_host) records, else empty.
    type: str
  run_id:
    description: The run's id.  Empty takes the hosts' C(lastgood_host.run_id), else C(lastgood_run_id).
    type: str
    default: ''
  hosts:
    description: The hosts of the run.  Empty means every host of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
    default: []
seealso:
  - module: lastgood.rollback.fleet_gate
  - module: lastgood.rollback.fleet_report
  - module: lastgood.rollback.fleet_notify
'''

EXAMPLES = r'''
- name: Sum up the run on every host
  lastgood.rollback.fleet_outcome:
    phases: [preflight, start, checkpoint, level2_config, verify]
    operation: rollback_level2
    level: 2
    checkpoint: "{{ lastgood_checkpoint_id }}"
  run_once: true
'''

RETURN = r'''
msg:
  description: The run's outcome in one sentence.
  returned: always
  type: str
ansible_facts:
  description: The fact set on every host.
  returned: always
  type: dict
  contains:
    lastgood_fleet:
      description:
        - The run - C(run_id), C(operation), C(level), C(checkpoint), C(outcome), C(started), C(finished),
          C(succeeded_hosts), C(failed_hosts), C(stopped_hosts), C(unreachable_hosts), C(restored_hosts) - and C(hosts), by host
          name - C(outcome), C(passed_phases), C(phase_times), C(started), C(finished), C(attempt), C(failure)
          (C(phase), C(task), C(message), C(stopped_by_fleet), C(failed_hosts); null after success), C(restore),
          C(stopped_by_fleet).
      type: dict
ansible_stats:
  description: C(lastgood_run), published for the whole play (not per host, not aggregated).
  returned: always
  type: dict
'''
