import json
import math
import re

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _decide, _watch

EXPOSITION = '''# HELP app_error_rate_percent Share of requests that failed.
# TYPE app_error_rate_percent gauge
app_error_rate_percent{host="web1",route="/a"} 3
app_error_rate_percent{host="web1",route="/b"} 27.5
app_quality_score 91
app_weird{path="a\\"b,c"} NaN
app_big +Inf 1700000000000
'''


def test_prometheus_text_is_read_with_labels_special_values_and_timestamps():
    samples = _watch.parse_prometheus(EXPOSITION)
    assert samples[0] == ('app_error_rate_percent', {'host': 'web1', 'route': '/a'}, 3.0)
    assert samples[3][1] == {'path': 'a"b,c'} and math.isnan(samples[3][2])
    assert samples[4] == ('app_big', {}, math.inf)


@pytest.mark.parametrize('body, says', [
    ('<html><body><h1>502 Bad Gateway</h1></body></html>', 'line 1 is not a Prometheus sample'),
    ('app_error_rate_percent twelve', "'twelve' is not a number"),
    ('app_x{host=web1} 1', 'cannot read the labels'),
    ('# only comments\n\n', 'no Prometheus samples'),
    ('', 'no Prometheus samples'),
])
def test_garbage_is_an_error_never_an_empty_reading(body, says):
    with pytest.raises(_watch.WatchError, match=says):
        _watch.parse_prometheus(body)


def test_a_selector_takes_the_worst_matching_series_and_ignores_nan():
    samples = _watch.parse_prometheus(EXPOSITION)
    assert _watch.select(samples, 'app_error_rate_percent') == 27.5
    assert _watch.select(samples, 'app_error_rate_percent{route="/a"}') == 3
    assert _watch.select(samples, 'app_weird') is None
    assert _watch.select(samples, 'app_missing') is None


def test_read_metrics_maps_decision_names_to_selectors_and_skips_missing_ones():
    samples = _watch.parse_prometheus(EXPOSITION)
    assert _watch.read_metrics(samples, {'error_rate': 'app_error_rate_percent', 'quality_score': 'app_quality_score',
                                         'resource_usage': 'app_resource_usage_percent'}) == {
        'error_rate': 27.5, 'quality_score': 91}


def test_only_metrics_the_decision_matrix_knows_are_judged():
    assert _watch.decision_metrics({'error_rate': 12, 'latency_seconds': 0.4}) == {'error_rate': 12}


def test_thresholds_given_as_text_become_numbers_and_bad_ones_name_the_rule():
    assert _watch.numeric_overrides({'error_rate_high': {'threshold': '20'}}) == {'error_rate_high': {'threshold': 20.0}}
    with pytest.raises(_decide.DecisionError, match='error_rate_high'):
        _watch.numeric_overrides({'error_rate_high': {'threshold': 'ten'}})
    assert _watch.numeric_breaker({'success_rate_below': '60', 'enabled': True}) == {'success_rate_below': 60.0,
                                                                                     'enabled': True}


def test_back_off_doubles_per_failure_up_to_the_maximum():
    assert [_watch.next_delay(5, failures, 60) for failures in range(6)] == [5, 10, 20, 40, 60, 60]


def _decision(level, rule='error_rate_high'):
    return {'level': level, 'rule': rule if level else None}


def test_an_incident_opens_once_escalates_once_and_resolves_after_clear_after_quiet_readings(tmp_path):
    incidents = _watch.Incidents(str(tmp_path / 'state.json'), clear_after=2)
    change, opened = incidents.observe('web1', _decision(1), now=1000)
    assert change == 'opened' and re.match(r'^web1-error_rate_high-19700101T001640Z-[0-9a-f]{6}$', opened['id'])
    assert incidents.observe('web1', _decision(1), now=1010)[0] is None
    assert incidents.observe('web1', _decision(0), now=1020)[0] is None
    assert incidents.observe('web1', _decision(1), now=1030)[0] is None  # one quiet reading is not the end
    change, escalated = incidents.observe('web1', _decision(3, 'integration_test_failure_rate_high'), now=1040)
    assert change == 'escalated' and escalated['id'] == opened['id'] and escalated['level'] == 3
    assert incidents.observe('web1', _decision(0), now=1050)[0] is None
    change, resolved = incidents.observe('web1', _decision(0), now=1060)
    assert change == 'resolved' and resolved['id'] == opened['id']
    assert incidents.observe('web1', _decision(1), now=1070)[1]['id'] != opened['id']


def test_an_open_incident_survives_a_restart(tmp_path):
    path = str(tmp_path / 'sources' / 'state.json')
    first = _watch.Incidents(path)
    opened = first.observe('web1', _decision(1), now=1000)[1]
    again = _watch.Incidents(path)
    assert again.observe('web1', _decision(1), now=2000) == (None, opened)
    assert json.loads(open(path).read())['open']['web1']['id'] == opened['id']


def test_a_damaged_incident_file_starts_afresh_instead_of_stopping_the_watch(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text('{not json')
    assert _watch.Incidents(str(path)).observe('web1', _decision(1))[0] == 'opened'


def test_the_event_summary_names_the_source_host_and_what_crossed():
    decision = _decide.decide(metrics={'error_rate': 25})
    assert _watch.event_summary('health_metrics', 'web1', decision) == \
        'health_metrics event on web1 (error_rate is 25, > 10)'
