"""lastgood.rollback.verify run in-process: every check, its name and message, one failure listing them all."""

import http.server
import threading

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _checks, _verify
from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store
from ansible_collections.lastgood.rollback.plugins.modules import verify
from lib.module_runner import run_module
from lib.trees import tree_digest


@pytest.fixture
def app(tmp_path):
    root = tmp_path / 'app'
    root.mkdir()
    (root / 'config.yaml').write_text('partyMode:\n  enabled: false\n  maxAgents: 4\n')
    (root / 'modes.json').write_text('{"customModes": []}\n')
    (root / 'app.env').write_text('X=1\n')
    return root


def _args(tmp_path, **options):
    return dict({'backup_root': str(tmp_path / 'store'), 'set': 'app'}, **options)


def _by_name(result, name):
    return [item for item in result['checks'] if item['name'] == name]


def test_verify_passes_and_reports_every_check_by_name(app, tmp_path):
    failed, result = run_module(verify, _args(
        tmp_path, files=[str(app / 'app.env'), str(app / 'config.yaml')],
        documents=[{'path': str(app / 'config.yaml'), 'required_keys': ['partyMode.enabled']},
                   {'path': str(app / 'modes.json'), 'required_keys': ['customModes']}],
        health_command=['true'], test_command=['sh', '-c', 'exit 0']))
    assert not failed and result['ok'] is True and result['changed'] is False
    assert [item['name'] for item in result['checks']] == [
        'file_exists', 'document_valid', 'document_valid', 'health_command', 'test_command']
    assert result['checks'][1]['message'] == '%s parses and holds partyMode.enabled' % (app / 'config.yaml')
    assert result['failed_checks'] == [] and result['checksums_verified'] is None and result['backup'] == ''


def test_verify_fails_once_listing_every_failed_check(app, tmp_path):
    (app / 'modes.json').write_text('{"customModes": [}\n')
    failed, result = run_module(verify, _args(
        tmp_path, files=[str(app / 'gone.txt')],
        documents=[{'path': str(app / 'config.yaml'), 'required_keys': ['partyMode.maxRounds']},
                   {'path': str(app / 'modes.json')}, {'path': str(app / 'absent.yaml')}],
        health_command=['sh', '-c', 'echo unhealthy >&2; exit 3'], health_retries=1, health_delay=0,
        test_command=['false']))
    assert failed and result['ok'] is False
    assert result['failed_checks'] == ['file_exists', 'document_valid', 'document_valid', 'document_valid',
                                       'health_command', 'test_command']
    lines = result['msg'].splitlines()
    assert lines[0].startswith('Verification failed on ') and len(lines) == 7
    assert '- %s is missing' % (app / 'gone.txt') in lines
    assert 'required key partyMode.maxRounds is missing' in lines[2]
    assert 'is not valid JSON' in lines[3]
    assert '- %s is missing' % (app / 'absent.yaml') in lines
    assert '- sh -c echo unhealthy >&2; exit 3 exited 3: unhealthy' in lines
    assert '- false exited 1' in lines


def test_a_document_is_refused_by_its_validate_command(app, tmp_path):
    failed, result = run_module(verify, _args(tmp_path, documents=[
        {'path': str(app / 'config.yaml'), 'validate': 'grep -q maxRounds %s'}], fail=False))
    assert not failed and result['ok'] is False
    assert "validate command 'grep -q maxRounds %s' rejected " in result['checks'][0]['message']
    assert str(app / 'config.yaml') in result['checks'][0]['message']


def test_manifest_match_counts_only_differences_below_the_backup_paths(app, tmp_path):
    store = Store(str(tmp_path / 'store'), 'app')
    backup_id = store.create([str(app)], name='good')['id']
    (app / 'app.env').write_text('X=2\n')
    in_scope = _args(tmp_path, backup='good', backup_paths=[str(app / 'config.yaml')])
    failed, result = run_module(verify, in_scope)
    assert not failed and result['checksums_verified'] is True and result['backup'] == backup_id
    assert result['checks'][0]['message'] == 'the live paths match backup good (SHA-256, size, mode, owner)'
    failed, result = run_module(verify, _args(tmp_path, backup='good'))
    assert failed and result['checksums_verified'] is False
    assert [item['path'] for item in result['mismatches']] == [str(app / 'app.env')]
    assert '1 path(s) differ from backup good: %s' % (app / 'app.env') in result['msg']


def test_an_unusable_backup_fails_the_manifest_check_with_its_reason(tmp_path):
    failed, result = run_module(verify, _args(tmp_path, backup='no-such', fail=False))
    assert not failed and result['failed_checks'] == ['manifest_match'] and result['backup'] == ''
    assert result['checks'][0]['message'].startswith('no-such is not usable: ')


def test_check_mode_runs_no_command_and_changes_nothing(app, tmp_path):
    marker = tmp_path / 'ran'
    before = tree_digest(str(tmp_path))
    failed, result = run_module(verify, _args(
        tmp_path, documents=[{'path': str(app / 'config.yaml')}], health_command=['touch', str(marker)],
        test_command=['touch', str(marker)], monitor_seconds=5), check_mode=True)
    assert not failed and result['ok'] and result['not_run'] == ['health_command', 'health_monitor', 'test_command']
    assert tree_digest(str(tmp_path)) == before


class _Health:
    """An HTTP server answering the statuses given, one per request, then the last one."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                status = owner.statuses.pop(0) if len(owner.statuses) > 1 else owner.statuses[0]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/health' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_health_url_is_retried_until_it_answers_200():
    health = _Health([503, 503, 200])
    try:
        assert _checks.url_check('health_url', health.url, retries=2, delay=0)['ok'] is True
        health.statuses = [500]
        found = _checks.url_check('health_url', health.url, retries=1, delay=0)
    finally:
        health.close()
    assert found == {'name': 'health_url', 'ok': False, 'message': '%s answered 500: Internal Server Error' % health.url}


def test_the_monitoring_window_fails_at_the_first_failed_health_check(tmp_path):
    counter = tmp_path / 'count'
    # healthy twice, then not: the third check of the window fails
    command = ['sh', '-c', 'echo x >> %s; test $(wc -l < %s) -lt 3' % (counter, counter)]
    slept = []
    found = _verify.monitor_check(command, '', seconds=50, interval=10, sleep=slept.append)
    assert found['ok'] is False and slept == [10, 10, 10]
    assert found['message'].startswith('health check 3 of 5 (30 s into the monitoring window) failed: ')
    passed = _verify.monitor_check(['true'], '', seconds=20, interval=10, sleep=slept.append)
    assert passed == {'name': 'health_monitor', 'ok': True,
                      'message': 'health kept passing for 20 s (2 check(s), every 10 s)'}


def test_monitoring_is_skipped_when_health_already_failed(tmp_path):
    failed, result = run_module(verify, _args(tmp_path, health_command=['false'], health_retries=0,
                                              monitor_seconds=30, monitor_interval=10, fail=False))
    assert not failed and [item['name'] for item in result['checks']] == ['health_command']


@pytest.mark.parametrize('path, scope, counts', [
    ('/srv/app/config.yaml', [], True),
    ('/srv/app/config.yaml', ['/srv/app'], True),
    ('/srv/app/config.yaml', ['/srv/app/config.yaml'], True),
    ('/srv/application', ['/srv/app'], False),
    ('/srv/app.env', ['/srv/app/'], False),
])
def test_a_difference_counts_at_or_below_a_scope_path_only(path, scope, counts):
    assert _verify.in_scope(path, scope) is counts
