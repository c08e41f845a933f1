"""The demo application's /metrics: Prometheus text, a quiet baseline, simulated values and garbage."""

import json
import urllib.request

from ansible_collections.lastgood.rollback.plugins.module_utils import _watch


def metrics(app):
    settings = json.loads(app.read('settings.json'))
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % settings['port'], timeout=5) as response:
        return response.headers['Content-Type'], response.read().decode('utf-8')


def readings(app):
    return _watch.read_metrics(_watch.parse_prometheus(metrics(app)[1]), _watch.DEFAULT_METRIC_NAMES)


def test_metrics_are_prometheus_text_with_a_quiet_baseline(app):
    assert app.run('start').returncode == 0
    content_type, body = metrics(app)
    assert content_type.startswith('text/plain; version=0.0.4')
    assert '# TYPE app_error_rate_percent gauge' in body
    assert 'app_feature_enabled{host="unit",feature="partyMode"} 0' in body
    assert readings(app) == {'error_rate': 0.5, 'session_success_rate': 99, 'quality_score': 92, 'resource_usage': 35,
                             'integration_test_failure_rate': 0, 'latency_seconds': 0.08}


def test_simulated_values_while_a_feature_is_on_go_away_when_it_is_turned_off(app):
    assert app.run('start').returncode == 0
    assert app.run('simulate', 'error_rate=25', '--while-enabled', 'partyMode').returncode == 0
    assert readings(app)['error_rate'] == 0.5
    app.write('config.yaml', app.read('config.yaml').replace('partyMode:\n  enabled: false', 'partyMode:\n  enabled: true'))
    app.run('reload')
    assert readings(app)['error_rate'] == 25
    app.write('app.env', 'PARTY_MODE_ENABLED=false\n')
    app.run('reload')
    assert readings(app)['error_rate'] == 0.5


def test_garbage_and_clear(app):
    assert app.run('start').returncode == 0
    app.run('simulate', 'quality_score=40', '--garbage')
    assert metrics(app)[1].startswith('<html>')
    app.run('simulate', '--clear')
    assert readings(app)['quality_score'] == 92


def test_an_unknown_metric_is_refused(app):
    result = app.run('simulate', 'errors=3')
    assert result.returncode == 1 and 'unknown metric errors' in result.stderr
