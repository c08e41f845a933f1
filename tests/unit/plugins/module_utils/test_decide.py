import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _decide

ON_CALL = ['on_call_engineer']
DEVOPS = ['devops_engineer']
EXECUTIVE = ['cto', 'security_architect']

# Every row of the runbook's decision matrix, written out independently of DEFAULT_RULES:
# (rule, level, urgency, authority).
CONDITION_ROWS = [
    ('sec_pm_004_violation', 1, 'immediate', ON_CALL),
    ('sec_pm_006_violation', 1, 'immediate', ON_CALL),
    ('bad_configuration_deployed', 2, 'within 30 minutes', DEVOPS),
    ('critical_bug_in_code', 3, 'within 2 hours', ['engineering_lead']),
    ('security_vulnerability_in_code', 3, 'within 1 hour', ['security_architect']),
    ('system_compromise_suspected', 4, 'immediate', EXECUTIVE),
    ('multiple_critical_violations', 4, 'within 4 hours', EXECUTIVE),
]

# Metric rows of the matrix and the automatic triggers: (rule, metric, value, fires).
# Each threshold is probed just below, at and just above it.
METRIC_ROWS = [
    ('session_success_rate_low', 'session_success_rate', 1, 'within 15 minutes', ON_CALL, [(79.9, True), (80, False), (80.1, False)]),
    ('agent_spawn_failure_rate_high', 'agent_spawn_failure_rate', 1, 'within 15 minutes', ON_CALL, [(9.9, False), (10, False), (10.1, True)]),
    ('performance_degradation', 'performance_degradation_factor', 2, 'within 1 hour', DEVOPS, [(1.9, False), (2, False), (2.1, True)]),
    ('quality_score_low', 'quality_score', 2, 'immediate', ON_CALL, [(59.9, True), (60, False), (60.1, False)]),
    ('integration_test_failure_rate_high', 'integration_test_failure_rate', 3, 'within 1 hour', ['engineering_lead'],
     [(49.9, False), (50, False), (50.1, True)]),
    ('resource_usage_high', 'resource_usage', 2, 'within 1 hour', DEVOPS, [(89.9, False), (90, False), (90.1, True)]),
    ('error_rate_high', 'error_rate', 1, 'within 15 minutes', ON_CALL, [(9.9, False), (10, False), (10.1, True)]),
]


@pytest.mark.parametrize('rule, level, urgency, authority', CONDITION_ROWS)
def test_each_condition_row_of_the_matrix_gives_its_level_urgency_and_authority(rule, level, urgency, authority):
    result = _decide.decide(conditions=[rule])
    assert (result['rule'], result['level'], result['urgency'], result['authority']) == (rule, level, urgency, authority)
    assert [entry['name'] for entry in result['fired']] == [rule]


@pytest.mark.parametrize('rule, metric, level, urgency, authority, value, fires', [
    (rule, metric, level, urgency, authority, value, fires)
    for rule, metric, level, urgency, authority, probes in METRIC_ROWS for value, fires in probes
])
def test_each_metric_row_fires_only_on_its_side_of_the_threshold(rule, metric, level, urgency, authority, value, fires):
    result = _decide.decide(metrics={metric: value})
    if fires:
        assert (result['rule'], result['level'], result['urgency'], result['authority']) == (rule, level, urgency, authority)
        assert metric in result['reason']
    else:
        assert (result['rule'], result['level'], result['fired']) == (None, 0, [])


def test_every_default_rule_is_covered_by_the_tables_above():
    covered = set(row[0] for row in CONDITION_ROWS) | set(row[0] for row in METRIC_ROWS)
    assert covered == set(rule['name'] for rule in _decide.DEFAULT_RULES)


BREAKER_FIRES = {'security_violations': 1, 'session_success_rate': 50, 'minutes_since_first_alert': 20,
                 'manual_intervention': False}


@pytest.mark.parametrize('metric, value, fires', [
    ('security_violations', 0, False),
    ('security_violations', 1, True),
    ('security_violations', 2, True),
    ('session_success_rate', 69.9, True),
    ('session_success_rate', 70, False),
    ('session_success_rate', 70.1, False),
    ('minutes_since_first_alert', 14.9, False),
    ('minutes_since_first_alert', 15, True),
    ('minutes_since_first_alert', 15.1, True),
    ('manual_intervention', True, False),
    ('manual_intervention', False, True),
])
def test_circuit_breaker_boundaries(metric, value, fires):
    metrics = dict(BREAKER_FIRES, **{metric: value})
    result = _decide.decide(metrics=metrics)
    assert result['automatic'] is fires and result['circuit_breaker']['fired'] is fires
    if fires:
        assert (result['rule'], result['level'], result['urgency'], result['automatic_level']) == ('circuit_breaker', 1, 'immediate', 1)
        assert result['notify'] == ['on_call_engineer', 'security_team']
    else:
        assert result['automatic_level'] is None and 'not fired' in result['circuit_breaker']['reason']


@pytest.mark.parametrize('missing', sorted(BREAKER_FIRES))
def test_circuit_breaker_does_not_fire_on_unknown_inputs(missing):
    metrics = dict((k, v) for k, v in BREAKER_FIRES.items() if k != missing)
    result = _decide.decide(metrics=metrics)
    assert result['automatic'] is False and 'unknown' in result['circuit_breaker']['reason']


def test_the_most_severe_level_decides_and_the_others_are_listed():
    result = _decide.decide(conditions=['sec_pm_004_violation', 'critical_bug_in_code'], metrics={'error_rate': 20})
    assert (result['level'], result['rule']) == (3, 'critical_bug_in_code')
    assert [entry['name'] for entry in result['fired']] == ['critical_bug_in_code', 'sec_pm_004_violation', 'error_rate_high']


def test_on_equal_levels_the_most_urgent_rule_decides():
    result = _decide.decide(conditions=['critical_bug_in_code', 'security_vulnerability_in_code'])
    assert (result['rule'], result['urgency_minutes'], result['authority']) == ('security_vulnerability_in_code', 60, ['security_architect'])


def test_no_rule_firing_means_level_zero_and_says_so():
    result = _decide.decide(metrics={'session_success_rate': 99})
    assert (result['level'], result['rule'], result['authority']) == (0, None, [])
    assert 'no rollback' in result['reason']
    assert 'error_rate_high' in result['not_evaluated'] and 'session_success_rate_low' not in result['not_evaluated']


def test_overrides_change_a_threshold_and_disable_a_rule():
    overrides = {'session_success_rate_low': {'threshold': 85}, 'error_rate_high': {'enabled': False}}
    result = _decide.decide(metrics={'session_success_rate': 84, 'error_rate': 50}, rule_overrides=overrides)
    assert [entry['name'] for entry in result['fired']] == ['session_success_rate_low']
    assert _decide.decide(metrics={'session_success_rate': 84})['level'] == 0


def test_an_override_can_turn_a_condition_rule_into_a_metric_rule():
    overrides = {'bad_configuration_deployed': {'metric': 'quality_score', 'op': '<=', 'threshold': 70}}
    result = _decide.decide(metrics={'quality_score': 70}, rule_overrides=overrides)
    assert result['rule'] == 'bad_configuration_deployed' and result['level'] == 2


def test_rules_replace_the_defaults_entirely():
    rules = [{'name': 'latency', 'metric': 'p99_ms', 'op': '>=', 'threshold': 500, 'level': 2,
              'urgency': 'within 10 minutes', 'authority': ['sre']}]
    result = _decide.decide(metrics={'p99_ms': 500}, rules=rules)
    assert (result['rule'], result['urgency_minutes'], result['authority']) == ('latency', 10, ['sre'])
    with pytest.raises(_decide.DecisionError, match='unknown condition'):
        _decide.decide(conditions=['critical_bug_in_code'], rules=rules)


def test_circuit_breaker_settings_can_be_overridden():
    metrics = dict(BREAKER_FIRES, session_success_rate=65)
    assert _decide.decide(metrics=metrics, breaker_overrides={'success_rate_below': 60})['automatic'] is False
    assert _decide.decide(metrics=metrics, breaker_overrides={'enabled': False})['automatic'] is False
    assert _decide.decide(metrics=metrics, breaker_overrides={'intervention_wait_minutes': 30})['automatic'] is False


@pytest.mark.parametrize('rule, message', [
    ({'metric': 'x', 'op': '<', 'threshold': 1, 'level': 1, 'urgency': 'immediate', 'authority': ['a']}, 'needs a name'),
    ({'name': 'r', 'level': 1, 'urgency': 'immediate', 'authority': ['a']}, 'exactly one of condition or metric'),
    ({'name': 'r', 'metric': 'x', 'op': '~', 'threshold': 1, 'level': 1, 'urgency': 'immediate', 'authority': ['a']}, 'needs op'),
    ({'name': 'r', 'metric': 'x', 'op': '<', 'threshold': '1', 'level': 1, 'urgency': 'immediate', 'authority': ['a']}, 'numeric threshold'),
    ({'name': 'r', 'condition': 'c', 'level': 5, 'urgency': 'immediate', 'authority': ['a']}, 'level must be'),
    ({'name': 'r', 'condition': 'c', 'level': 1, 'urgency': 'soon', 'authority': ['a']}, 'urgency'),
    ({'name': 'r', 'condition': 'c', 'level': 1, 'urgency': 'immediate', 'authority': []}, 'authority'),
    ({'name': 'r', 'condition': 'c', 'level': 1, 'urgency': 'immediate', 'authority': ['a'], 'colour': 'red'}, 'unknown fields'),
])
def test_invalid_rules_are_refused_with_the_reason(rule, message):
    with pytest.raises(_decide.DecisionError, match=message):
        _decide.decide(rules=[rule])


@pytest.mark.parametrize('kwargs, message', [
    ({'conditions': ['bad_config_deployed']}, 'unknown condition'),
    ({'metrics': {'sesion_success_rate': 50}}, 'unknown metric'),
    ({'metrics': {'error_rate': 'high'}}, 'must be a number'),
    ({'rule_overrides': {'no_such_rule': {'threshold': 1}}}, 'unknown rule'),
    ({'breaker_overrides': {'window': 5}}, 'unknown fields'),
    ({'breaker_overrides': {'min_violations': -1}}, 'non-negative'),
])
def test_typos_in_inputs_are_errors_not_silently_ignored(kwargs, message):
    with pytest.raises(_decide.DecisionError, match=message):
        _decide.decide(**kwargs)


NOW = _audit.parse_ts('2026-01-01T12:00:00Z')


def _incident_log(tmp_path, intervention=False, successes=6, failures=4):
    path = str(tmp_path / 'audit.jsonl')

    def add(ts, event, level='info', **detail):
        _audit.append(path, event, run_id='app', level=level, detail=detail, ts='2026-01-01T%sZ' % ts)
    add('10:30:00', 'security_violation', level='critical', code='SEC-PM-006', session_id='old')
    for index in range(successes + failures):
        add('11:%02d:00' % index, 'session_end', session_id='s%d' % index,
            status='success' if index < successes else 'failed')
    add('11:30:00', 'security_violation', level='critical', code='SEC-PM-004', session_id='s1')
    if intervention:
        add('11:40:00', 'manual_intervention', operator='bob')
    add('12:30:00', 'security_violation', level='critical', code='SEC-PM-006', session_id='future')
    return _audit.records(path)


def test_metrics_and_conditions_are_computed_from_the_audit_log(tmp_path):
    result = _decide.decide(audit_records=_incident_log(tmp_path), now=NOW)
    assert result['metrics'] == {'security_violations': 1, 'session_success_rate': 60.0,
                                 'minutes_since_first_alert': 30.0, 'manual_intervention': False}
    assert result['conditions'] == ['sec_pm_004_violation']
    assert result['automatic'] is True and result['rule'] == 'circuit_breaker'
    assert [entry['name'] for entry in result['fired']] == ['circuit_breaker', 'sec_pm_004_violation', 'session_success_rate_low']


def test_a_manual_intervention_after_the_first_alert_stops_the_circuit_breaker(tmp_path):
    result = _decide.decide(audit_records=_incident_log(tmp_path, intervention=True), now=NOW)
    assert result['metrics']['manual_intervention'] is True and result['automatic'] is False
    assert result['rule'] == 'sec_pm_004_violation'


def test_the_success_rate_counts_only_the_last_n_sessions(tmp_path):
    records = _incident_log(tmp_path, successes=3, failures=3)
    assert _decide.decide(audit_records=records, now=NOW)['metrics']['session_success_rate'] == 50.0
    last_two = _decide.decide(audit_records=records, now=NOW, breaker_overrides={'session_window': 2})
    assert last_two['metrics']['session_success_rate'] == 0.0


def test_explicit_metrics_win_over_the_audit_log(tmp_path):
    result = _decide.decide(audit_records=_incident_log(tmp_path), metrics={'manual_intervention': True}, now=NOW)
    assert result['automatic'] is False and result['metrics']['manual_intervention'] is True


def test_critical_violations_in_two_sessions_within_the_window_mean_level_4(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    for minute, session in (('11:10', 'a'), ('11:20', 'b')):
        _audit.append(path, 'security_violation', level='critical', ts='2026-01-01T%s:00Z' % minute,
                      detail={'code': 'SEC-PM-004', 'session_id': session})
    result = _decide.decide(audit_records=_audit.records(path), now=NOW)
    assert (result['level'], result['rule'], result['authority']) == (4, 'multiple_critical_violations', EXECUTIVE)
    one_session = _decide.decide(audit_records=_audit.records(path)[:1], now=NOW)
    assert one_session['level'] == 1
