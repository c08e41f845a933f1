"""The event sources on their own (no ansible-rulebook): polling the demo app, following an audit log."""

import os

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit
from lib.eda import collect, demo_template, install_demo_app, load_source

HEALTH_METRICS = load_source('health_metrics')
AUDIT_FOLLOW = load_source('audit_follow')


@pytest.fixture(scope='module')
def template(tmp_path_factory):
    return demo_template(tmp_path_factory)


@pytest.fixture
def demo(tmp_path, template):
    app, url = install_demo_app(template, str(tmp_path / 'app'), 'eda')
    yield app, url
    app.run('stop')


def _args(tmp_path, url, **extra):
    args = {'targets': [{'host': 'web1', 'metrics_url': url + '/metrics', 'health_url': url + '/health'}],
            'interval': 0.2, 'max_interval': 0.8, 'timeout': 2, 'clear_after': 2,
            'state_dir': str(tmp_path / 'sources')}
    args.update(extra)
    return args


def _types(events):
    return [event['type'] for event in events]


def _seen(kind):
    return lambda events: kind in _types(events)


def test_a_crossed_threshold_opens_one_incident_with_the_decision_and_the_readings(tmp_path, demo):
    app, url = demo
    app.run('simulate', 'error_rate=25')
    events = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('trigger'), settle=1)
    triggers = [event for event in events if event['type'] == 'trigger']
    assert len(triggers) == 1, events
    trigger = triggers[0]
    assert trigger['hosts'] == ['web1'] and trigger['incident'].startswith('web1-error_rate_high-')
    assert trigger['metrics'] == {'error_rate': 25, 'session_success_rate': 99, 'quality_score': 92,
                                  'resource_usage': 35, 'integration_test_failure_rate': 0}
    assert trigger['readings']['latency_seconds'] == 0.08
    assert (trigger['decision']['level'], trigger['decision']['rule']) == (1, 'error_rate_high')
    assert trigger['summary'] == 'health_metrics event on web1 (error_rate is 25, > 10)'
    assert trigger['health']['ok'] is True


def test_thresholds_are_the_rulebooks_variables(tmp_path, demo):
    app, url = demo
    app.run('simulate', 'error_rate=25')
    events = collect(HEALTH_METRICS, _args(tmp_path, url, rule_overrides={'error_rate_high': {'threshold': '30'}}), 10,
                     until=_seen('health'), settle=1)
    assert 'health' in _types(events) and 'trigger' not in _types(events)


def test_a_restarted_source_goes_on_with_the_open_incident_and_announces_nothing_new(tmp_path, demo):
    app, url = demo
    app.run('simulate', 'error_rate=25')
    first = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('trigger'))
    assert _types(first).count('trigger') == 1
    again = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('health'), settle=1)
    assert 'health' in _types(again) and 'trigger' not in _types(again)


def test_a_flapping_metric_resolves_and_opens_a_new_incident_each_time(tmp_path, demo):
    app, url = demo
    app.run('simulate', 'error_rate=25')
    first = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('trigger'))
    app.run('simulate', '--clear')
    calm = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('resolved'))
    app.run('simulate', 'error_rate=25')
    second = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('trigger'))
    assert 'resolved' in _types(calm)
    ids = [event['incident'] for event in first + second if event['type'] == 'trigger']
    assert len(ids) == 2 and ids[0] != ids[1]


def test_a_level3_metric_opens_an_incident_at_level3(tmp_path, demo):
    app, url = demo
    app.run('simulate', 'integration_test_failure_rate=60')
    events = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('trigger'))
    decision = [event for event in events if event['type'] == 'trigger'][0]['decision']
    assert (decision['level'], decision['rule'], decision['authority']) == (3, 'integration_test_failure_rate_high',
                                                                            ['engineering_lead'])


def test_garbage_from_the_endpoint_is_one_clear_event_no_trigger_and_a_back_off(tmp_path, demo):
    app, url = demo
    app.run('simulate', 'error_rate=25', '--garbage')
    events = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('target_error'), settle=1.2)
    assert _types(events) == ['target_error'], events
    assert 'is not a Prometheus sample' in events[0]['error'] and 'no action taken' in events[0]['summary']
    assert events[0]['retry_in'] == 0.4


def test_an_endpoint_that_is_down_is_one_clear_event_then_recovered_when_it_answers(tmp_path, demo):
    app, url = demo
    app.run('stop')
    down = collect(HEALTH_METRICS, _args(tmp_path, url), 10, until=_seen('target_error'), settle=1)
    assert _types(down) == ['target_error']
    assert 'does not answer' in down[0]['error'] and url in down[0]['error']

    def restart_once(events):
        if events and app.run('status').returncode != 0:
            app.run('start')
        return 'target_recovered' in _types(events)
    events = collect(HEALTH_METRICS, _args(tmp_path, url), 15, until=restart_once)
    assert _types(events)[:2] == ['target_error', 'target_recovered']


def test_bad_arguments_are_an_event_and_the_source_keeps_running(tmp_path):
    events = collect(HEALTH_METRICS, {'targets': [{'host': 'web1'}]}, 10, until=_seen('source_error'), settle=0.3)
    assert _types(events) == ['source_error'] and 'metrics_url' in events[0]['error']


def test_a_host_without_the_watched_metrics_is_an_error_not_a_quiet_host(tmp_path, demo):
    _app, url = demo
    events = collect(HEALTH_METRICS, _args(tmp_path, url, metrics={'error_rate': 'http_errors_total'}), 10,
                     until=_seen('target_error'), settle=0.5)
    assert _types(events) == ['target_error'] and 'none of the watched metrics' in events[0]['error']


def _violation(log, code, session):
    _audit.append(log, 'security_violation', level='critical', detail={'code': code, 'session_id': session})


def test_the_audit_follower_turns_a_sec_pm_004_violation_into_one_level1_trigger(tmp_path):
    log = str(tmp_path / 'audit.jsonl')
    _audit.append(log, 'session_end', detail={'session_id': 's1', 'status': 'success'})
    args = {'logs': [{'host': 'web1', 'path': log}], 'interval': 0.2, 'state_dir': str(tmp_path / 'sources')}
    quiet = collect(AUDIT_FOLLOW, args, 10, until=_seen('audit'), settle=0.5)
    assert _types(quiet) == ['audit']
    _violation(log, 'SEC-PM-004', 's2')
    events = collect(AUDIT_FOLLOW, args, 10, until=_seen('trigger'))
    trigger = [event for event in events if event['type'] == 'trigger'][0]
    assert (trigger['decision']['level'], trigger['decision']['rule']) == (1, 'sec_pm_004_violation')
    assert trigger['conditions'] == ['sec_pm_004_violation'] and trigger['metrics']['security_violations'] == 1
    again = collect(AUDIT_FOLLOW, args, 10, until=_seen('audit'), settle=0.5)
    assert 'trigger' not in _types(again), 'a restart announced the incident again'


def test_the_audit_follower_reports_a_missing_log_once_and_reads_it_when_it_appears(tmp_path):
    log = str(tmp_path / 'later' / 'audit.jsonl')
    args = {'path': log, 'host': 'web1', 'interval': 0.1, 'max_interval': 0.2, 'state_dir': str(tmp_path / 's')}

    def appear(events):
        if events and not os.path.exists(log):
            _violation(log, 'SEC-PM-006', 's1')
        return 'trigger' in _types(events)
    events = collect(AUDIT_FOLLOW, args, 15, until=appear)
    assert _types(events)[0] == 'target_error' and 'cannot be read' in events[0]['error']
    assert 'target_recovered' in _types(events) and 'trigger' in _types(events)


def test_the_audit_follower_skips_a_line_that_is_not_json_and_says_so(tmp_path):
    log = tmp_path / 'audit.jsonl'
    log.write_text('not json\n')
    events = collect(AUDIT_FOLLOW, {'path': str(log), 'interval': 0.2, 'state_dir': str(tmp_path / 's')}, 10,
                     until=_seen('target_error'), settle=0.5)
    assert _types(events) == ['target_error'] and 'not a JSON object' in events[0]['error']


def test_the_audit_follower_follows_rotation(tmp_path):
    log = str(tmp_path / 'audit.jsonl')
    _audit.append(log, 'session_end', detail={'session_id': 's1', 'status': 'success'})
    follower = AUDIT_FOLLOW['LogFollower'](log)
    assert len(follower.read()) == 1
    os.rename(log, log + '.000001')
    _audit.append(log, 'session_end', detail={'session_id': 's2', 'status': 'success'})
    assert len(follower.read()) == 1
