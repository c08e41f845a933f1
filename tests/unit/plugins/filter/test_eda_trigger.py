import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lastgood.rollback.plugins.filter.eda_trigger import eda_overrides, eda_trigger


def _eda(event):
    return {'ruleset': 'Roll back automatically on health and metrics', 'rule': 'Roll back automatically (level 1 or 2)',
            'event': event}


def test_a_source_event_gives_its_hosts_incident_metrics_and_summary():
    trigger = eda_trigger(_eda({'lastgood': {
        'type': 'trigger', 'source': 'health_metrics', 'hosts': ['web1'], 'incident': 'web1-error_rate_high-X',
        'metrics': {'error_rate': 25}, 'readings': {'latency_seconds': 1}, 'conditions': [],
        'summary': 'health_metrics event on web1 (error_rate is 25, > 10)'}}))
    assert trigger == {'source': 'health_metrics', 'event_type': 'trigger', 'hosts': ['web1'],
                       'incident': 'web1-error_rate_high-X', 'metrics': {'error_rate': 25}, 'conditions': [],
                       'summary': 'health_metrics event on web1 (error_rate is 25, > 10)',
                       'rule': 'Roll back automatically (level 1 or 2)',
                       'ruleset': 'Roll back automatically on health and metrics'}


ALERTMANAGER = {'payload': {
    'status': 'firing', 'groupKey': '{}:{alertname="HighErrorRate"}',
    'alerts': [
        {'status': 'firing', 'fingerprint': 'a1',
         'labels': {'alertname': 'HighErrorRate', 'instance': 'web1:9100', 'lastgood_metric': 'error_rate'},
         'annotations': {'value': '23.5'}},
        {'status': 'firing', 'fingerprint': 'b2',
         'labels': {'alertname': 'CriticalBug', 'host': 'web2', 'lastgood_condition': 'critical_bug_in_code'}},
        {'status': 'resolved', 'labels': {'alertname': 'Old', 'host': 'web3', 'lastgood_condition': 'x'}},
    ]}, 'meta': {'endpoint': ''}}


def test_an_alertmanager_payload_gives_the_firing_alerts_metrics_conditions_and_hosts():
    trigger = eda_trigger(_eda(ALERTMANAGER))
    assert trigger['source'] == 'alertmanager'
    assert trigger['hosts'] == ['web1', 'web2']
    assert trigger['metrics'] == {'error_rate': 23.5}
    assert trigger['conditions'] == ['critical_bug_in_code']
    assert trigger['incident'].startswith('alertmanager-') and trigger['incident'] == eda_trigger(_eda(ALERTMANAGER))['incident']
    assert trigger['summary'] == 'alertmanager alert CriticalBug, HighErrorRate on web1, web2'


@pytest.mark.parametrize('event, says', [
    ({'i': 1}, 'neither a lastgood.rollback source event'),
    ({'payload': {'status': 'resolved', 'alerts': [{'status': 'resolved', 'labels': {}}]}}, 'no firing alert'),
    ({'payload': {'status': 'firing', 'alerts': [{'labels': {'alertname': 'Disk', 'host': 'web1'}}]}},
     'no firing alert carries'),
    ({'payload': {'status': 'firing', 'alerts': [{'labels': {'alertname': 'E', 'lastgood_condition': 'x'}}]}},
     'no firing alert names a host'),
    ({'payload': {'status': 'firing', 'alerts': [{'labels': {'alertname': 'E', 'lastgood_metric': 'error_rate', 'host': 'h'},
                                                  'annotations': {'value': 'high'}}]}}, 'numeric value annotation'),
])
def test_an_event_that_asks_for_nothing_known_is_refused_with_the_reason(event, says):
    with pytest.raises(AnsibleFilterError, match=says):
        eda_trigger(_eda(event))


def test_a_run_not_started_by_a_rulebook_is_refused():
    with pytest.raises(AnsibleFilterError, match='ansible_eda variable'):
        eda_trigger('')


def test_overrides_from_rulebook_variables_become_numbers():
    assert eda_overrides({'quality_score_low': {'threshold': '55'}}) == {'quality_score_low': {'threshold': 55.0}}
    with pytest.raises(AnsibleFilterError, match='quality_score_low'):
        eda_overrides({'quality_score_low': {'threshold': 'low'}})
