# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which rollback level, how urgent, on whose authority.

The decision matrix and the automatic triggers are data (``DEFAULT_RULES``):
each rule fires on a named condition or on a metric crossing a threshold and
carries a level, an urgency and the roles whose authority it needs.  The
circuit breaker (``DEFAULT_CIRCUIT_BREAKER``) fires an automatic Level 1 when
security violations, a low session success rate and the absence of any human
intervention coincide.  Both can be replaced or overridden by the caller.

Inputs are named conditions and metrics, and/or the audit log, from which the
violation count, session success rate, time since the first alert, manual
intervention and violation conditions are computed.  Explicit inputs win over
computed ones.  Nothing is written anywhere.
"""

from __future__ import annotations

import copy
import re
import time

from . import _audit

OPERATORS = {
    '<': lambda value, threshold: value < threshold,
    '<=': lambda value, threshold: value <= threshold,
    '>': lambda value, threshold: value > threshold,
    '>=': lambda value, threshold: value >= threshold,
}
LEVELS = (1, 2, 3, 4)

ON_CALL = ['on_call_engineer']
DEVOPS = ['devops_engineer']
EXECUTIVE = ['cto', 'security_architect']

# The decision matrix (runbook 004) followed by the automatic triggers (runbook 001).
DEFAULT_RULES = [
    {'name': 'sec_pm_004_violation', 'source': 'decision_matrix', 'condition': 'sec_pm_004_violation',
     'description': 'SEC-PM-004 violation (context leakage)',
     'level': 1, 'urgency': 'immediate', 'authority': ON_CALL},
    {'name': 'sec_pm_006_violation', 'source': 'decision_matrix', 'condition': 'sec_pm_006_violation',
     'description': 'SEC-PM-006 violation (memory boundary)',
     'level': 1, 'urgency': 'immediate', 'authority': ON_CALL},
    {'name': 'session_success_rate_low', 'source': 'decision_matrix', 'metric': 'session_success_rate',
     'op': '<', 'threshold': 80, 'description': 'session success rate below 80 %',
     'level': 1, 'urgency': 'within 15 minutes', 'authority': ON_CALL},
    {'name': 'agent_spawn_failure_rate_high', 'source': 'decision_matrix', 'metric': 'agent_spawn_failure_rate',
     'op': '>', 'threshold': 10, 'description': 'agent spawn failure rate above 10 %',
     'level': 1, 'urgency': 'within 15 minutes', 'authority': ON_CALL},
    {'name': 'bad_configuration_deployed', 'source': 'decision_matrix', 'condition': 'bad_configuration_deployed',
     'description': 'bad configuration deployed',
     'level': 2, 'urgency': 'within 30 minutes', 'authority': DEVOPS},
    {'name': 'performance_degradation', 'source': 'decision_matrix', 'metric': 'performance_degradation_factor',
     'op': '>', 'threshold': 2, 'description': 'performance degraded more than 2x',
     'level': 2, 'urgency': 'within 1 hour', 'authority': DEVOPS},
    {'name': 'critical_bug_in_code', 'source': 'decision_matrix', 'condition': 'critical_bug_in_code',
     'description': 'critical bug in code',
     'level': 3, 'urgency': 'within 2 hours', 'authority': ['engineering_lead']},
    {'name': 'security_vulnerability_in_code', 'source': 'decision_matrix',
     'condition': 'security_vulnerability_in_code', 'description': 'security vulnerability in code',
     'level': 3, 'urgency': 'within 1 hour', 'authority': ['security_architect']},
    {'name': 'system_compromise_suspected', 'source': 'decision_matrix', 'condition': 'system_compromise_suspected',
     'description': 'system compromise suspected',
     'level': 4, 'urgency': 'immediate', 'authority': EXECUTIVE},
    {'name': 'multiple_critical_violations', 'source': 'decision_matrix',
     'condition': 'multiple_critical_violations', 'description': 'critical violations in several sessions',
     'level': 4, 'urgency': 'within 4 hours', 'authority': EXECUTIVE},
    {'name': 'quality_score_low', 'source': 'automatic_trigger', 'metric': 'quality_score',
     'op': '<', 'threshold': 60, 'description': 'quality score below 60 % (roll back to the last checkpoint)',
     'level': 2, 'urgency': 'immediate', 'authority': ON_CALL},
    {'name': 'integration_test_failure_rate_high', 'source': 'automatic_trigger',
     'metric': 'integration_test_failure_rate', 'op': '>', 'threshold': 50,
     'description': 'integration test failure rate above 50 % (revert to the previous version)',
     'level': 3, 'urgency': 'within 1 hour', 'authority': ['engineering_lead']},
    {'name': 'resource_usage_high', 'source': 'automatic_trigger', 'metric': 'resource_usage',
     'op': '>', 'threshold': 90, 'description': 'resource usage above 90 % (scale back or roll back)',
     'level': 2, 'urgency': 'within 1 hour', 'authority': DEVOPS},
    {'name': 'error_rate_high', 'source': 'automatic_trigger', 'metric': 'error_rate',
     'op': '>', 'threshold': 10, 'description': 'error rate above 10 % (diagnose, then roll back)',
     'level': 1, 'urgency': 'within 15 minutes', 'authority': ON_CALL},
]

DEFAULT_CIRCUIT_BREAKER = {
    'enabled': True,
    'violation_event': 'security_violation',
    'violation_codes': ['SEC-PM-004', 'SEC-PM-006'],
    'violation_window_minutes': 60,
    'min_violations': 1,
    'session_end_event': 'session_end',
    'success_statuses': ['success'],
    'session_window': 100,
    'success_rate_below': 70,
    'intervention_events': ['manual_intervention'],
    'intervention_wait_minutes': 15,
    'level': 1,
    'urgency': 'immediate',
    'authority': ON_CALL,
    'notify': ['on_call_engineer', 'security_team'],
}

# Metrics the circuit breaker reads (and computes from the audit log).
BREAKER_METRICS = ('security_violations', 'session_success_rate', 'minutes_since_first_alert', 'manual_intervention')
_RULE_KEYS = frozenset(('name', 'source', 'description', 'condition', 'metric', 'op', 'threshold', 'level',
                        'urgency', 'authority', 'enabled'))


class DecisionError(Exception):
    """The rules or inputs are not usable; the message names the offending entry."""


def urgency_minutes(text):
    """``'immediate'`` -> 0, ``'within 2 hours'`` -> 120."""
    if text == 'immediate':
        return 0
    match = re.match(r'^within (\d+) (minute|minutes|hour|hours)$', text or '')
    if not match:
        raise DecisionError("urgency %r is not 'immediate' or 'within N minutes/hours'" % (text,))
    return int(match.group(1)) * (60 if match.group(2).startswith('hour') else 1)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_rule(rule):
    if not isinstance(rule, dict) or not isinstance(rule.get('name'), str) or not rule['name']:
        raise DecisionError('every rule needs a name: %r' % (rule,))
    name = rule['name']
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise DecisionError('rule %s has unknown fields: %s' % (name, ', '.join(sorted(unknown))))
    if ('condition' in rule) == ('metric' in rule):
        raise DecisionError('rule %s needs exactly one of condition or metric' % name)
    if 'metric' in rule and (rule.get('op') not in OPERATORS or not _is_number(rule.get('threshold'))):
        raise DecisionError('rule %s needs op (one of %s) and a numeric threshold'
                            % (name, ' '.join(sorted(OPERATORS))))
    if rule.get('level') not in LEVELS:
        raise DecisionError('rule %s: level must be one of 1, 2, 3, 4' % name)
    urgency_minutes(rule.get('urgency'))
    authority = rule.get('authority')
    if not isinstance(authority, list) or not authority or not all(isinstance(a, str) for a in authority):
        raise DecisionError('rule %s: authority must be a non-empty list of role names' % name)
    return rule


def effective_rules(rules=None, overrides=None):
    """The rule list: ``rules`` (replacing the defaults) or the defaults, with ``overrides`` merged by name.

    Disabled rules (``enabled: false``) stay in the list; ``decide`` skips them but
    still accepts their condition and metric names as inputs.
    """
    chosen = copy.deepcopy(DEFAULT_RULES if rules is None else rules)
    if not isinstance(chosen, list):
        raise DecisionError('rules must be a list')
    by_name = {}
    for rule in chosen:
        check_rule(rule)
        if rule['name'] in by_name:
            raise DecisionError('rule %s is defined twice' % rule['name'])
        by_name[rule['name']] = rule
    for name, fields in (overrides or {}).items():
        if name not in by_name:
            raise DecisionError('override for unknown rule %s (known: %s)' % (name, ', '.join(sorted(by_name))))
        if not isinstance(fields, dict) or 'name' in fields:
            raise DecisionError('override for rule %s must be a mapping of fields other than name' % name)
        by_name[name].update(copy.deepcopy(fields))
        if 'metric' in fields:
            by_name[name].pop('condition', None)
        if 'condition' in fields:
            for key in ('metric', 'op', 'threshold'):
                by_name[name].pop(key, None)
        check_rule(by_name[name])
    return chosen


def effective_breaker(overrides=None):
    breaker = copy.deepcopy(DEFAULT_CIRCUIT_BREAKER)
    unknown = set(overrides or {}) - set(breaker)
    if unknown:
        raise DecisionError('circuit_breaker has unknown fields: %s' % ', '.join(sorted(unknown)))
    breaker.update(copy.deepcopy(overrides or {}))
    for key in ('violation_window_minutes', 'min_violations', 'session_window', 'success_rate_below',
                'intervention_wait_minutes'):
        if not _is_number(breaker[key]) or breaker[key] < 0:
            raise DecisionError('circuit_breaker.%s must be a non-negative number' % key)
    if breaker['level'] not in LEVELS:
        raise DecisionError('circuit_breaker.level must be one of 1, 2, 3, 4')
    urgency_minutes(breaker['urgency'])
    return breaker


def condition_for_code(code):
    """``'SEC-PM-004'`` -> ``'sec_pm_004_violation'``."""
    return re.sub(r'[^a-z0-9]+', '_', code.lower()).strip('_') + '_violation'


def _detail(record):
    detail = record.get('detail')
    return detail if isinstance(detail, dict) else {}


def from_audit(records, breaker, now):
    """(metrics, conditions) computed from audit records as of ``now`` (epoch seconds)."""
    window_start = now - breaker['violation_window_minutes'] * 60
    timed = []
    for record in records:
        try:
            epoch = _audit.parse_ts(record.get('ts'))
        except ValueError:
            continue
        if epoch <= now:
            timed.append((epoch, record))
    violations = [(epoch, record) for epoch, record in timed
                  if record.get('event') == breaker['violation_event'] and epoch >= window_start
                  and _detail(record).get('code') in breaker['violation_codes']]
    conditions = sorted(set(condition_for_code(_detail(record)['code']) for _epoch, record in violations))
    critical_sessions = set(_detail(record).get('session_id') for epoch, record in timed
                            if record.get('event') == breaker['violation_event'] and epoch >= window_start
                            and record.get('level') == 'critical' and _detail(record).get('session_id') is not None)
    if len(critical_sessions) >= 2:
        conditions.append('multiple_critical_violations')
    metrics = {'security_violations': len(violations)}
    ends = [record for _epoch, record in timed if record.get('event') == breaker['session_end_event']]
    recent = ends[-int(breaker['session_window']):] if breaker['session_window'] else []
    if recent:
        good = sum(1 for record in recent if _detail(record).get('status') in breaker['success_statuses'])
        metrics['session_success_rate'] = 100.0 * good / len(recent)
    if violations:
        first = min(epoch for epoch, _record in violations)
        metrics['minutes_since_first_alert'] = (now - first) / 60.0
        metrics['manual_intervention'] = any(record.get('event') in breaker['intervention_events'] and epoch >= first
                                             for epoch, record in timed)
    return metrics, conditions


def circuit_breaker(metrics, breaker):
    """``{fired, enabled, checks, reason}``: every check must hold for the breaker to fire."""
    violations = metrics.get('security_violations')
    rate = metrics.get('session_success_rate')
    waited = metrics.get('minutes_since_first_alert')
    intervened = metrics.get('manual_intervention')
    checks = [
        {'check': 'security_violations >= %s in the last %s minutes' % (breaker['min_violations'], breaker['violation_window_minutes']),
         'value': violations, 'met': violations is not None and violations >= breaker['min_violations']},
        {'check': 'session_success_rate < %s over the last %s sessions' % (breaker['success_rate_below'], breaker['session_window']),
         'value': rate, 'met': rate is not None and rate < breaker['success_rate_below']},
        {'check': 'minutes_since_first_alert >= %s' % breaker['intervention_wait_minutes'],
         'value': waited, 'met': waited is not None and waited >= breaker['intervention_wait_minutes']},
        {'check': 'no manual intervention since the first alert',
         'value': intervened, 'met': intervened is not None and not intervened},
    ]
    fired = bool(breaker['enabled']) and all(check['met'] for check in checks)
    if not breaker['enabled']:
        reason = 'circuit breaker disabled'
    elif fired:
        reason = 'every circuit-breaker check holds: automatic Level %d' % breaker['level']
    else:
        reason = 'not fired: ' + '; '.join(
            '%s (value %s)' % (check['check'], 'unknown' if check['value'] is None else check['value'])
            for check in checks if not check['met'])
    return {'fired': fired, 'enabled': bool(breaker['enabled']), 'checks': checks, 'reason': reason}


def _fired_entry(rule, reason):
    return {'name': rule['name'], 'source': rule.get('source'), 'description': rule.get('description'),
            'level': rule['level'], 'urgency': rule['urgency'], 'urgency_minutes': urgency_minutes(rule['urgency']),
            'authority': list(rule['authority']), 'reason': reason}


def decide(conditions=(), metrics=None, audit_records=None, rules=None, rule_overrides=None,
           breaker_overrides=None, now=None):
    """Evaluate the rules and the circuit breaker; see the module docs for the result's keys."""
    now = time.time() if now is None else now
    every_rule = effective_rules(rules, rule_overrides)
    table = [rule for rule in every_rule if rule.get('enabled', True)]
    breaker = effective_breaker(breaker_overrides)
    known_conditions = set(rule['condition'] for rule in every_rule if 'condition' in rule)
    known_conditions.update(condition_for_code(code) for code in breaker['violation_codes'])
    known_conditions.add('multiple_critical_violations')
    known_metrics = set(rule['metric'] for rule in every_rule if 'metric' in rule) | set(BREAKER_METRICS)
    unknown = sorted(set(conditions or ()) - known_conditions)
    if unknown:
        raise DecisionError('unknown condition(s) %s; known: %s' % (', '.join(unknown), ', '.join(sorted(known_conditions))))
    unknown = sorted(set(metrics or {}) - known_metrics)
    if unknown:
        raise DecisionError('unknown metric(s) %s; known: %s' % (', '.join(unknown), ', '.join(sorted(known_metrics))))
    for name, value in (metrics or {}).items():
        if not _is_number(value) and not (name == 'manual_intervention' and isinstance(value, bool)):
            raise DecisionError('metric %s must be a number, got %r' % (name, value))

    active_metrics, active_conditions = {}, set()
    if audit_records is not None:
        derived_metrics, derived_conditions = from_audit(audit_records, breaker, now)
        active_metrics.update(derived_metrics)
        active_conditions.update(derived_conditions)
    active_metrics.update(metrics or {})
    active_conditions.update(conditions or ())

    fired, not_evaluated = [], []
    for rule in table:
        if 'condition' in rule:
            if rule['condition'] in active_conditions:
                fired.append(_fired_entry(rule, 'condition %s is present' % rule['condition']))
            continue
        value = active_metrics.get(rule['metric'])
        if value is None:
            not_evaluated.append(rule['name'])
        elif OPERATORS[rule['op']](value, rule['threshold']):
            fired.append(_fired_entry(rule, '%s is %s, %s %s' % (rule['metric'], _fmt(value), rule['op'], _fmt(rule['threshold']))))
    breaker_result = circuit_breaker(active_metrics, breaker)
    if breaker_result['fired']:
        entry = _fired_entry(dict(breaker, name='circuit_breaker', source='circuit_breaker',
                                  description='automatic rollback: circuit breaker'), breaker_result['reason'])
        # on equal level and urgency the automatic verdict decides: it needs no human to act
        fired.insert(0, entry)
    order = dict((entry['name'], index) for index, entry in enumerate(fired))
    fired.sort(key=lambda entry: (-entry['level'], entry['urgency_minutes'], order[entry['name']]))
    winner = fired[0] if fired else None
    return {
        'level': winner['level'] if winner else 0,
        'urgency': winner['urgency'] if winner else None,
        'urgency_minutes': winner['urgency_minutes'] if winner else None,
        'authority': winner['authority'] if winner else [],
        'rule': winner['name'] if winner else None,
        'reason': ('%s: %s' % (winner['name'], winner['reason'])) if winner else 'no rule fired: no rollback indicated',
        'fired': fired,
        'not_evaluated': not_evaluated,
        'automatic': breaker_result['fired'],
        'automatic_level': breaker['level'] if breaker_result['fired'] else None,
        'notify': list(breaker['notify']) if breaker_result['fired'] else [],
        'circuit_breaker': breaker_result,
        'metrics': active_metrics,
        'conditions': sorted(active_conditions),
    }


def _fmt(number):
    return ('%g' % number) if isinstance(number, float) else str(number)
