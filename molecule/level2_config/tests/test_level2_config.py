"""After converge ran rollback_level2, every host is back at the known good configuration, with proof."""

import hashlib
import json

import pytest

import lastgood_testinfra as checks

testinfra_hosts = ['all']

RUN_ID = 'molecule-level2'
GOLDEN = '/var/lib/lastgood/molecule/golden'
AUDIT_LOG = '/var/log/lastgood/audit.jsonl'
REPORT_DIR = '/var/lib/lastgood/reports/' + RUN_ID
GENESIS = '0' * 64


@pytest.mark.parametrize('name', ['config.yaml', 'custom_modes.json'])
def test_config_file_equals_the_known_good_copy(host, name):
    assert checks.live_against_copy(host, '/srv/app/' + name, '%s/%s' % (GOLDEN, name)) == []


def test_override_file_absent_from_the_known_good_state_is_gone(host):
    assert not host.file('/srv/app/app.env').exists


def test_live_configuration_matches_the_known_good_manifest(host):
    assert checks.live_against_manifest(host, checks.manifest(host, 'app', 'known-good')) == []


def test_application_answers_healthy(host):
    health = host.run('/srv/app/bin/appctl health')
    assert health.rc == 0, health.stdout
    assert json.loads(health.stdout)['status'] == 'healthy'


def test_audit_chain_verifies_line_by_line(host):
    lines = host.file(AUDIT_LOG).content_string.splitlines(True)
    assert lines
    previous = GENESIS
    for number, line in enumerate(lines, 1):
        assert json.loads(line)['prev'] == previous, 'chain broken at line %d' % number
        previous = hashlib.sha256(line.encode('utf-8')).hexdigest()


def test_audit_log_records_the_run_from_start_to_end(host):
    events = [json.loads(line) for line in host.file(AUDIT_LOG).content_string.splitlines()]
    ours = [event['event'] for event in events if event.get('run_id') == RUN_ID]
    assert ours[0] == 'run_start'
    assert ours[-1] == 'run_end'
    assert 'run_failed' not in ours


def test_lock_is_released(host):
    assert not host.file('/var/backups/lastgood/app/.lock').exists


def test_run_state_is_finished(host):
    state = json.loads(host.file('/var/lib/lastgood/runs/%s.json' % RUN_ID).content_string)
    assert state['status'] == 'finished'
    assert state['completed_phases'] == ['checkpoint', 'level2_config', 'verify']


def test_report_is_written_and_says_the_host_succeeded(host):
    assert host.file(REPORT_DIR + '/report.md').contains('Outcome on this host: \\*\\*SUCCESS\\*\\*')
    report = json.loads(host.file(REPORT_DIR + '/report.json').content_string)
    assert report['run']['run_id'] == RUN_ID
    assert report['host']['outcome'] == 'success'
    assert report['host']['audit']['chain_ok'] is True
    assert report['host']['verify']['checksums_verified'] is True


def test_run_checkpoint_holds_the_broken_state_it_replaced(host):
    manifest = checks.manifest(host, 'app', 'run-' + RUN_ID)
    assert sorted(manifest['sources']) == ['/srv/app/app.env', '/srv/app/config.yaml', '/srv/app/custom_modes.json']
    assert checks.sha256sum_check(host, 'app', 'run-' + RUN_ID).rc == 0


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []
