"""lastgood.rollback.verify's stability window and metrics against the demo application's real /health and
/metrics: the thresholds, the first failed reading, an endpoint that does not answer with metrics."""

import json

from ansible_collections.lastgood.rollback.plugins.modules import verify
from lib.module_runner import run_module


def urls(app):
    base = 'http://127.0.0.1:%d' % json.loads(app.read('settings.json'))['port']
    return base + '/health', base + '/metrics'


def _verify(tmp_path, app, check_mode=False, **options):
    health, metrics = urls(app)
    args = dict({'backup_root': str(tmp_path / 'store'), 'set': 'app', 'health_url': health, 'metrics_url': metrics,
                 'stability_seconds': 2, 'stability_interval': 1}, **options)
    return run_module(verify, args, check_mode=check_mode)


def _by_name(result, name):
    return [item for item in result['checks'] if item['name'] == name]


def test_a_quiet_application_is_stable_and_its_metrics_are_returned(app, tmp_path):
    assert app.run('start').returncode == 0
    failed, result = _verify(tmp_path, app)
    assert not failed, result['msg']
    window = _by_name(result, 'stability_window')[0]
    assert window == {'name': 'stability_window', 'ok': True,
                      'message': 'stable for 2 s (2 reading(s), every 1 s): health and session_success_rate, '
                                 'error_rate, security_violations within their thresholds'}
    assert result['metrics'] == {'session_success_rate': 99, 'error_rate': 0.5, 'security_violations': 0}
    assert result['stability'] == {'ok': True, 'seconds': 2, 'interval': 1, 'readings': 2}
    assert result['thresholds']['error_rate'] == {'relation': '<', 'value': 1.0}


def test_a_metric_outside_its_threshold_fails_the_window_naming_the_reading(app, tmp_path):
    assert app.run('start').returncode == 0
    assert app.run('simulate', 'error_rate=4', 'security_violations=2').returncode == 0
    failed, result = _verify(tmp_path, app)
    assert failed and result['failed_checks'] == ['stability_window']
    assert _by_name(result, 'stability_window')[0]['message'] == (
        'reading 1 of 2 (1 s into the stability window) failed: error rate 4 % (must be < 1 %); '
        'security violations 2 (must be <= 0)')
    assert result['metrics']['error_rate'] == 4 and result['stability']['readings'] == 1


def test_thresholds_are_options(app, tmp_path):
    assert app.run('start').returncode == 0
    assert app.run('simulate', 'error_rate=4', 'session_success_rate=90').returncode == 0
    failed, result = _verify(tmp_path, app, stability_max_error_rate=5, stability_min_success_rate=85)
    assert not failed, result['msg']


def test_an_endpoint_that_answers_no_metrics_fails_the_window(app, tmp_path):
    assert app.run('start').returncode == 0
    assert app.run('simulate', '--garbage').returncode == 0
    failed, result = _verify(tmp_path, app)
    assert failed and 'is not a Prometheus sample' in _by_name(result, 'stability_window')[0]['message']
    assert result['metrics'] == {}


def test_without_a_window_the_metrics_are_read_once_and_judge_nothing(app, tmp_path):
    assert app.run('start').returncode == 0
    assert app.run('simulate', 'error_rate=30').returncode == 0
    failed, result = _verify(tmp_path, app, stability_seconds=0)
    assert not failed and result['stability'] is None and result['metrics']['error_rate'] == 30
    assert app.run('stop').returncode == 0
    failed, result = _verify(tmp_path, app, stability_seconds=0, health_url='')
    assert not failed and result['metrics'] == {} and 'answered nothing' in result['metrics_error']


def test_check_mode_runs_no_window_but_reads_the_metrics(app, tmp_path):
    assert app.run('start').returncode == 0
    failed, result = _verify(tmp_path, app, check_mode=True)
    assert not failed and result['not_run'] == ['stability_window'] and result['metrics']['error_rate'] == 0.5
