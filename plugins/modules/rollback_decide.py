#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: rollback_decide
short_description: Decide which rollback level is needed, how urgently, and on whose authority
version_added: 0.1.0
description:
  - Evaluates the rollback decision matrix (condition or metric threshold -> level, urgency,
    authority required), the automatic triggers (quality score, error rate, integration-test
    failure rate, resource use) and the circuit breaker (security violations in the last hour,
    session success rate over the last sessions, no manual intervention since the first alert
    -> automatic Level 1).
  - Inputs are named O(conditions) and O(metrics), and/or an O(audit_log) from which the
    violation count, the session success rate, the minutes since the first alert, whether a
    human intervened and the violation conditions are computed.  Explicit inputs win.
  - The rules are data with documented defaults (C(docs/decision_matrix.md) of the collection);
    O(rules) replaces them, O(rule_overrides) changes single rules, O(circuit_breaker) changes the breaker.
  - Returns the level of the most severe rule that fired (then the most urgent), that rule's urgency
    and authority, why it fired, and every other rule that fired.  Level 0 means no rollback is indicated.
  - With O(approvals), also checks that the recorded approvals satisfy the authority a Level 4 full
    restore requires, and fails, saying what is missing, unless they do (RV(approved)).
  - Reads only; never changes anything.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode returns the same decision.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything.
options:
  conditions:
    description:
      - Conditions that hold now, by name (for example V(bad_configuration_deployed),
        V(critical_bug_in_code), V(system_compromise_suspected), V(sec_pm_004_violation)).
      - An unknown name is an error, so that a typo cannot hide a condition.
    type: list
    elements: str
    default: []
  metrics:
    description:
      - Measured values by name, percentages as numbers from 0 to 100 (for example
        V(session_success_rate), V(agent_spawn_failure_rate), V(performance_degradation_factor),
        V(quality_score), V(error_rate), V(integration_test_failure_rate), V(resource_usage),
        V(security_violations), V(minutes_since_first_alert), V(manual_intervention)).
      - An unknown name is an error.
    type: dict
    default: {}
  audit_log:
    description:
      - Audit log (see M(lastgood.rollback.audit_log)) to compute the circuit-breaker metrics and the
        violation conditions from.  Its chain is verified first and the result reported in RV(audit_chain).
    type: path
  rules:
    description:
      - The complete rule list, replacing the defaults.  Each rule has C(name), either C(condition)
        or C(metric) with C(op) (one of C(<), C(<=), C(>), C(>=)) and C(threshold), C(level) (1-4),
        C(urgency) (C(immediate) or C(within N minutes/hours)), C(authority) (list of roles),
        and optionally C(description), C(source), C(enabled).
    type: list
    elements: dict
  rule_overrides:
    description:
      - Changes to single rules by name, a mapping of rule name to the fields to change, for example
        threshold V(85) for C(session_success_rate_low), or C(enabled) V(false) to switch C(error_rate_high) off.
    type: dict
    default: {}
  circuit_breaker:
    description:
      - Changes to the circuit breaker by field, for example C(success_rate_below) V(60) and C(session_window) V(50),
        or C(enabled) V(false).  See C(docs/decision_matrix.md) for every field and its default.
    type: dict
    default: {}
  now:
    description: Evaluate as of this ISO-8601 time instead of the current time (replaying an incident).
    type: str
  approvals:
    description:
      - Approvals of a Level 4 full restore, each a mapping with C(who), C(role) (for example C(cto)) and
        C(when) (UTC, C(YYYY-MM-DDTHH:MM:SSZ)), optionally C(reference) (ticket, call).  An approval without
        these, dated in the future (beyond five minutes of clock skew) or older than
        O(approval_max_age_hours) does not count.
      - When given (also as an empty list), the module fails unless the decision is Level 4 and every role
        of its authority plus O(extra_authority) is approved by a different person.  The message says what
        is missing and which approvals did not count, and names the variables a run playbook reads them
        from, C(lastgood_approvals) and C(lastgood_conditions).
      - Not given, no approval is checked.
    type: list
    elements: dict
  extra_authority:
    description: Roles whose approval is needed on top of the deciding rule's authority (with O(approvals)).
    type: list
    elements: str
    default: []
  approval_max_age_hours:
    description: Approvals older than this many hours do not count; V(0) accepts any age (with O(approvals)).
    type: int
    default: 24
seealso:
  - module: lastgood.rollback.audit_log
'''

EXAMPLES = r'''
- name: Decide from what the operator reports
  lastgood.rollback.rollback_decide:
    conditions: [bad_configuration_deployed]
    metrics:
      session_success_rate: 91.5
  register: decision

- name: Circuit breaker from the audit log
  lastgood.rollback.rollback_decide:
    audit_log: /var/log/lastgood/audit.jsonl
  register: breaker

- name: Fire Level 1 when the circuit breaker says so
  ansible.builtin.include_role:
    name: lastgood.rollback.level1_feature_flag
  when: breaker.automatic

- name: Refuse a full restore unless a CTO and a security architect approved it
  lastgood.rollback.rollback_decide:
    conditions: [system_compromise_suspected]
    approvals:
      - who: ana.ortiz
        role: cto
        when: "2026-12-07T20:15:00Z"
        reference: SEC-4711
      - who: bo.chen
        role: security_architect
        when: "2026-12-07T20:17:00Z"
  delegate_to: localhost
  run_once: true
  register: approval

- name: Stricter success-rate threshold, no error-rate trigger
  lastgood.rollback.rollback_decide:
    metrics:
      session_success_rate: 84
    rule_overrides:
      session_success_rate_low:
        threshold: 85
      error_rate_high:
        enabled: false
'''

RETURN = r'''
level:
  description: Rollback level of the deciding rule (1-4), or 0 when no rule fired.
  returned: always
  type: int
  sample: 2
urgency:
  description: Urgency of the deciding rule (C(immediate), C(within 30 minutes), ...), or null.
  returned: always
  type: str
urgency_minutes:
  description: The urgency in minutes (0 for immediate), or null.
  returned: always
  type: int
authority:
  description: Roles whose authority the deciding rule requires.
  returned: always
  type: list
  elements: str
  sample: [cto, security_architect]
rule:
  description: Name of the deciding rule, or null.
  returned: always
  type: str
reason:
  description: Why the deciding rule fired, in words.
  returned: always
  type: str
fired:
  description: Every rule that fired, most severe first (C(name), C(source), C(description), C(level), C(urgency), C(urgency_minutes), C(authority), C(reason)).
  returned: always
  type: list
  elements: dict
not_evaluated:
  description: Metric rules whose metric was not given and could not be computed.
  returned: always
  type: list
  elements: str
automatic:
  description: Whether the circuit breaker fired (an automatic rollback at RV(automatic_level) is indicated).
  returned: always
  type: bool
automatic_level:
  description: The level the circuit breaker fires, or null.
  returned: always
  type: int
notify:
  description: Who the circuit breaker says to notify when it fired.
  returned: always
  type: list
  elements: str
circuit_breaker:
  description: The breaker's verdict (C(fired), C(enabled), C(checks) with C(check), C(value), C(met), and C(reason)).
  returned: always
  type: dict
metrics:
  description: The metrics the decision used (computed from the audit log, overridden by O(metrics)).
  returned: always
  type: dict
conditions:
  description: The conditions the decision used.
  returned: always
  type: list
  elements: str
audit_chain:
  description: Verification of the audit log's chain (C(ok), C(message)), or null without O(audit_log).
  returned: always
  type: dict
required:
  description: The roles that must approve, the deciding rule's authority plus O(extra_authority).
  returned: with O(approvals)
  type: list
  elements: str
  sample: [cto, security_architect]
valid:
  description: The approvals that count, each with an empty C(problems) list.
  returned: with O(approvals)
  type: list
  elements: dict
invalid:
  description: The approvals that do not count, each with C(problems) saying why.
  returned: with O(approvals)
  type: list
  elements: dict
missing:
  description: Required roles no valid approval covers.
  returned: with O(approvals)
  type: list
  elements: str
approvers:
  description: The different people whose approvals for a required role count.
  returned: with O(approvals)
  type: list
  elements: str
  sample: [ana.ortiz, bo.chen]
approved:
  description: Whether the approvals satisfy the authority required for Level 4 (the module fails otherwise).
  returned: with O(approvals)
  type: bool
msg:
  description: With O(approvals), who approved under which rule; on a refusal, what is missing.
  returned: with O(approvals)
  type: str
'''

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.lastgood.rollback.plugins.module_utils import _approval, _audit, _decide
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def _metrics(module):
    metrics = {}
    for name, value in module.params['metrics'].items():
        try:
            if name == 'manual_intervention':
                metrics[name] = boolean(value, strict=True)
            elif isinstance(value, str):
                metrics[name] = float(value)
            else:
                metrics[name] = value
        except (TypeError, ValueError):
            module.fail_json(msg='metric %s must be a %s, got %r'
                             % (name, 'boolean' if name == 'manual_intervention' else 'number', value))
    return metrics


def run(module):
    params = module.params
    now = None
    if params['now']:
        try:
            now = _audit.parse_ts(params['now'])
        except ValueError as exc:
            module.fail_json(msg='now: %s' % exc)
    records, chain = None, None
    if params['audit_log']:
        verified = _audit.verify(params['audit_log'])
        chain = {'ok': verified['ok'], 'message': verified['message']}
        if not verified['ok']:
            module.warn('deciding from an audit log whose chain is broken: %s' % verified['message'])
        records = _audit.records(params['audit_log'])
    result = _decide.decide(conditions=params['conditions'], metrics=_metrics(module), audit_records=records,
                            rules=params['rules'], rule_overrides=params['rule_overrides'],
                            breaker_overrides=params['circuit_breaker'], now=now)
    result = dict(result, changed=False, audit_chain=chain)
    if params['approvals'] is not None:
        approval = _approval.check(result, params['approvals'], params['extra_authority'],
                                   params['approval_max_age_hours'], now)
        result.update(approval)
        if not approval['approved']:
            module.fail_json(msg=_approval.refusal(approval, params['conditions']), **result)
        result['msg'] = _approval.approved_message(approval)
    return result


def main():
    module = ResultModule(
        argument_spec=dict(
            conditions=dict(type='list', elements='str', default=[]),
            metrics=dict(type='dict', default={}),
            audit_log=dict(type='path'),
            rules=dict(type='list', elements='dict'),
            rule_overrides=dict(type='dict', default={}),
            circuit_breaker=dict(type='dict', default={}),
            now=dict(type='str'),
            approvals=dict(type='list', elements='dict'),
            extra_authority=dict(type='list', elements='str', default=[]),
            approval_max_age_hours=dict(type='int', default=24),
        ),
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except _decide.DecisionError as exc:
        module.fail_json(msg='rollback decision: %s' % exc)
    except (_audit.AuditError, OSError) as exc:
        module.fail_json(msg='rollback decision: cannot read the audit log %s: %s' % (module.params['audit_log'], exc))


if __name__ == '__main__':
    main()
