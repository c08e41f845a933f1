"""After converge ran rollback_level2, every host is back at the known good configuration, with proof."""

import pytest

import lastgood_testinfra as checks

testinfra_hosts = ['all']

RUN_ID = 'molecule-level2'
GOLDEN = '/var/lib/lastgood/molecule/golden'
REPORT_DIR = '/var/lib/lastgood/reports/' + RUN_ID


@pytest.mark.parametrize('name', ['config.yaml', 'custom_modes.json'])
def test_config_file_equals_the_known_good_copy(host, name):
    assert checks.live_against_copy(host, '/srv/app/' + name, '%s/%s' % (GOLDEN, name)) == []


def test_override_file_absent_from_the_known_good_state_is_gone(host):
    assert not host.file('/srv/app/app.env').exists


def test_live_configuration_matches_the_known_good_manifest(host):
    assert checks.live_against_manifest(host, checks.manifest(host, 'app', 'known-good')) == []


def test_application_answers_healthy(host):
    checks.check_application_healthy(host)


def test_audit_chain_verifies_line_by_line(host):
    checks.check_audit_chain(host)


def test_audit_log_records_the_run_from_start_to_end(host):
    checks.check_run_recorded_start_to_end(host, RUN_ID)


def test_lock_is_released(host):
    checks.check_lock_released(host)


def test_run_state_is_finished(host):
    checks.check_run_finished(host, RUN_ID, ['checkpoint', 'level2_config', 'verify'])


def test_report_is_written_and_says_the_host_succeeded(host):
    report = checks.check_report_says_success(host, RUN_ID)
    assert report['host']['verify']['checksums_verified'] is True
    assert host.file(REPORT_DIR + '/report.md').contains('Outcome on this host: \\*\\*SUCCESS\\*\\*')


def test_run_checkpoint_holds_the_broken_state_it_replaced(host):
    manifest = checks.manifest(host, 'app', 'run-' + RUN_ID)
    assert sorted(manifest['sources']) == ['/srv/app/app.env', '/srv/app/config.yaml', '/srv/app/custom_modes.json']
    assert checks.sha256sum_check(host, 'app', 'run-' + RUN_ID).rc == 0


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []
