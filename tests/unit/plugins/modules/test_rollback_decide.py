import json

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit
from ansible_collections.lastgood.rollback.plugins.modules import rollback_decide
from lib.module_runner import run_module


def test_conditions_and_metrics_given_as_strings_decide_the_level():
    failed, result = run_module(rollback_decide, {'conditions': ['bad_configuration_deployed'],
                                                  'metrics': {'session_success_rate': '75.5'}})
    assert not failed and result['changed'] is False
    assert (result['level'], result['rule'], result['urgency'], result['authority']) == (
        2, 'bad_configuration_deployed', 'within 30 minutes', ['devops_engineer'])
    assert [entry['name'] for entry in result['fired']] == ['bad_configuration_deployed', 'session_success_rate_low']


def test_the_circuit_breaker_fires_from_the_audit_log(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    _audit.append(path, 'security_violation', level='critical', ts='2026-01-01T11:30:00Z',
                  detail={'code': 'SEC-PM-006', 'session_id': 's1'})
    for index in range(4):
        _audit.append(path, 'session_end', ts='2026-01-01T11:4%d:00Z' % index,
                      detail={'session_id': 's%d' % index, 'status': 'success' if index == 0 else 'failed'})
    failed, result = run_module(rollback_decide, {'audit_log': path, 'now': '2026-01-01T12:00:00Z'})
    assert not failed and result['automatic'] is True and result['automatic_level'] == 1
    assert result['audit_chain']['ok'] is True and result['metrics']['session_success_rate'] == 25.0


def test_a_broken_audit_chain_is_reported_with_a_warning(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    for event in ('a', 'b'):
        _audit.append(path, event)
    lines = open(path).readlines()
    with open(path, 'w') as handle:
        handle.writelines(lines[1:])
    failed, result = run_module(rollback_decide, {'audit_log': path})
    assert not failed and result['audit_chain']['ok'] is False
    assert 'chain is broken' in json.dumps(result['warnings'])


def test_unknown_metrics_and_non_numbers_fail():
    failed, result = run_module(rollback_decide, {'metrics': {'succes_rate': 1}})
    assert failed and 'unknown metric' in result['msg']
    failed, result = run_module(rollback_decide, {'metrics': {'error_rate': 'lots'}})
    assert failed and 'must be a number' in result['msg']


def test_overrides_reach_the_rules_and_the_breaker():
    failed, result = run_module(rollback_decide, {
        'metrics': {'session_success_rate': 84, 'security_violations': 1, 'minutes_since_first_alert': 30,
                    'manual_intervention': 'no'},
        'rule_overrides': {'session_success_rate_low': {'threshold': 85}},
        'circuit_breaker': {'success_rate_below': 90}})
    assert not failed and result['automatic'] is True
    assert 'session_success_rate_low' in [entry['name'] for entry in result['fired']]
