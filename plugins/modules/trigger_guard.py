#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: trigger_guard
short_description: Let an automatic action go ahead once per incident, with a cooldown
version_added: 0.2.0
description:
  - Before an automatic action (a rollback started by an Event-Driven Ansible rulebook, an approval
    request) it claims the right to act for O(key).
  - The claim is refused when the O(pause_file) exists, when O(incident) was already acted on under
    O(key) (a restarted rulebook or a repeated alert), or when O(key) was acted on less than
    O(cooldown_minutes) ago (a flapping metric).  Otherwise it is granted, recorded with O(record) and a
    new run id, and kept in O(state_file), so the decision survives restarts.
  - Every claim, granted or refused, is written to the O(audit_log) with the rule and the event that asked for it.
  - Runs on the host that holds the state file, normally the controller (C(delegate_to) V(localhost)).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
attributes:
  check_mode:
    support: full
    details: Says whether the claim would be granted; writes neither the state file nor the audit log.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: A granted claim makes the same claim fail until the cooldown is over.
options:
  state_file:
    description: JSON file that holds the last claim per key (created with its directory, mode C(0600)).
    type: path
    required: true
  key:
    description:
      - What one action stands for, for example C(level1:web1,web2).  The cooldown counts per key.
    type: str
    required: true
  incident:
    description: Identifier of the incident that asks for the action ('' when there is none).
    type: str
    default: ''
  cooldown_minutes:
    description: Minutes after a granted claim during which the same key is refused.
    type: float
    default: 30
  pause_file:
    description: While this file exists every claim is refused; its text is quoted as the reason.
    type: path
  record:
    description: What to keep with a granted claim and write to the audit log (rule, event, level, hosts, ...).
    type: dict
    default: {}
  audit_log:
    description: Audit log (see M(lastgood.rollback.audit_log)) that receives C(auto_action_claimed) or C(auto_action_suppressed).
    type: path
    required: true
seealso:
  - module: lastgood.rollback.rollback_decide
  - module: lastgood.rollback.audit_log
'''

EXAMPLES = r'''
- name: Claim the automatic Level 1 for this incident
  lastgood.rollback.trigger_guard:
    state_file: ~/.lastgood/automatic/guard.json
    audit_log: ~/.lastgood/automatic/audit.jsonl
    key: level1:web1
    incident: web1-error_rate_high-20261207T201500Z
    cooldown_minutes: 30
    record:
      rule: error_rate_high
      event: "health_metrics on web1: error_rate is 25, > 10"
  delegate_to: localhost
  register: claim
'''

RETURN = r'''
claimed:
  description: Whether the action may go ahead.
  returned: always
  type: bool
reason:
  description: Why the claim was granted or refused, in words.
  returned: always
  type: str
  sample: level1:web1 acted 42 s ago (run 20261207T201500Z-a1b2c3, incident web1-error_rate_high-20261207T201500Z); cooldown until 2026-12-07T20:45:00.000000Z
run_id:
  description: A new run id (YYYYMMDDTHHMMSSZ-6 hex) for the action when granted, else null.
  returned: always
  type: str
previous:
  description: The last granted claim of O(key), or null.
  returned: always
  type: dict
paused:
  description: Whether the pause file refused the claim.
  returned: always
  type: bool
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _trigger_guard
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def run(module):
    params = module.params
    record = dict(params['record'], key=params['key'], incident=params['incident'])
    result = _trigger_guard.claim(params['state_file'], params['key'], params['incident'],
                                  params['cooldown_minutes'] * 60, record=params['record'],
                                  pause_file=params['pause_file'], check=module.check_mode)
    if not module.check_mode:
        _audit.append(params['audit_log'], 'auto_action_claimed' if result['claimed'] else 'auto_action_suppressed',
                      run_id=result['run_id'], level='warning' if result['claimed'] else 'notice',
                      detail=dict(record, reason=result['reason']))
    return dict(result, changed=result['claimed'])


def main():
    module = ResultModule(
        argument_spec=dict(
            state_file=dict(type='path', required=True),
            key=dict(type='str', required=True, no_log=False),
            incident=dict(type='str', default=''),
            cooldown_minutes=dict(type='float', default=30),
            pause_file=dict(type='path'),
            record=dict(type='dict', default={}),
            audit_log=dict(type='path', required=True),
        ),
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (_audit.AuditError, OSError, ValueError) as exc:
        module.fail_json(msg='trigger guard %s: %s; nothing was started automatically'
                         % (module.params['state_file'], exc))


if __name__ == '__main__':
    main()
