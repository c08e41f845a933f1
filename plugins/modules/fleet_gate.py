# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: fleet_gate
short_description: Take the fleet gate after a phase, once for the whole fleet
version_added: 0.1.0
description:
  - An action plugin that runs on the controller only; use it with C(run_once=true) right after a phase.
  - Counts the hosts of the population that did not get through the phase (the I(lagging) hosts) - those no
    longer in C(ansible_play_hosts) (unreachable, or removed) and those Ansible gave C(ansible_failed_result)
    (they failed in the block and are being rescued) - except a host a gate stopped, whose failed result
    M(lastgood.rollback.run) marks C(stopped_by_gate) - it got through its own phase, the others failed.
    Each host's variables are read once.
  - The gate is I(closed) when the lagging hosts are more than O(max_fail_percentage) of the population;
    every host still running is then in the gate's C(stop) list.  When a host of O(required_hosts) lags (the
    staging hosts of a staged rollout), every running host that is not required is stopped too.
  - Stops nothing itself - M(lastgood.rollback.run) with C(state=phase) fails the hosts the gate stopped, so
    they go to the rescue and put their checkpoint back.  Ansible's own C(max_fail_percentage) cannot do
    this - a host that is being rescued does not count as failed.
  - Sets the same facts on every host - C(lastgood_gates) (every gate of the run so far, by phase) and
    C(lastgood_gate) (this one).  A host I(passed) phase P when P is in C(lastgood_gates) and the host is not
    in C(lastgood_gates[P].lagging).  Each gate names its run (C(run_id)); gates of another run (from a fact
    cache) are dropped.
  - Fails only when it has no run id.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
attributes:
  check_mode:
    support: full
    details: The gate changes nothing; it is taken in check mode as outside it.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Taking a gate again replaces its entry in C(lastgood_gates).
options:
  phase:
    description: The phase that just ended.
    type: str
    required: true
  hosts:
    description:
      - The hosts the gate counts, in order.  Empty counts every host of the play (C(ansible_play_hosts_all));
        a play that acts on batches passes the hosts of the batches so far.
    type: list
    elements: str
    default: []
  max_fail_percentage:
    description: Share of the population (percent) that may fail or become unreachable before every other host stops.
    type: int
    default: 0
  required_hosts:
    description:
      - Hosts that must get through the phase for the others to go on (for example the staging group).  When one
        of them lags, every running host that is not one of them is stopped, whatever O(max_fail_percentage) allows.
    type: list
    elements: str
    default: []
  run_id:
    description:
      - The run's id.  Empty takes C(lastgood_run_id), which the run sets first with C(set_fact) - a fact an
        action returns would reach a fact cache and resume the run the next time.
    type: str
    default: ''
notes:
  - The gate reads C(ansible_failed_result), which Ansible sets on a host whenever one of its tasks fails inside
    a block that has a rescue - an inner block with its own rescue too.  A role that rescues its own failures
    inside the run's block makes its host count as lagging at the next gate.
seealso:
  - module: lastgood.rollback.fleet_outcome
'''

EXAMPLES = r'''
- name: Pass the gate of the configuration phase
  lastgood.rollback.fleet_gate:
    phase: level2_config
    max_fail_percentage: "{{ lastgood_max_fail_percentage }}"
  run_once: true

- name: Pass the staging gate (production goes on only when every staging host passed)
  lastgood.rollback.fleet_gate:
    phase: level3_code_staging
    required_hosts: "{{ groups['staging'] | default([]) }}"
  run_once: true
'''

RETURN = r'''
gate:
  description: The gate taken, as in C(lastgood_gate).
  returned: always
  type: dict
  contains:
    phase:
      description: The phase.
      type: str
    time:
      description: When the gate was taken (UTC, C(%Y-%m-%dT%H:%M:%SZ)).
      type: str
    population:
      description: The hosts counted.
      type: list
      elements: str
    lagging:
      description: The hosts of the population that did not get through the phase.
      type: list
      elements: str
    closed:
      description: Whether more hosts lagged than O(max_fail_percentage) allows.
      type: bool
    stop:
      description: The running hosts that must stop now.
      type: list
      elements: str
    message:
      description: What the gate found, naming the lagging and the stopped hosts.
      type: str
msg:
  description: The gate's message.
  returned: always
  type: str
ansible_facts:
  description: The facts set on every host.
  returned: always
  type: dict
  contains:
    lastgood_gates:
      description: Every gate of the run so far, by phase.
      type: dict
    lastgood_gate:
      description: This gate.
      type: dict
'''
