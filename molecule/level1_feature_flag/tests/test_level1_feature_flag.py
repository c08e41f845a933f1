"""After the circuit breaker fired Level 1, Party Mode is off on every host, with proof."""

import json

import pytest

import lastgood_testinfra as checks

testinfra_hosts = ['all']

RUN_ID = 'molecule-level1'
GOLDEN = '/var/lib/lastgood/molecule/golden'


def test_override_file_turns_party_mode_off(host):
    assert host.file('/srv/app/app.env').content_string == 'PARTY_MODE_ENABLED=false\n'


@pytest.mark.parametrize('name', ['config.yaml', 'custom_modes.json'])
def test_config_files_are_left_as_they_were(host, name):
    assert checks.live_against_copy(host, '/srv/app/' + name, '%s/%s' % (GOLDEN, name)) == []


def test_application_reads_the_flag_off_from_the_override(host):
    flags = json.loads(host.check_output('/srv/app/bin/appctl flags'))
    assert flags['flags']['partyMode.enabled'] is False
    assert flags['sources']['partyMode.enabled'] == 'app.env:PARTY_MODE_ENABLED'


def test_application_answers_healthy(host):
    checks.check_application_healthy(host)


def test_no_new_party_mode_session_starts(host):
    refused = host.run('/srv/app/bin/appctl session start')
    assert refused.rc != 0
    assert 'Party Mode is disabled' in refused.stdout


def test_application_has_no_active_session_left(host):
    assert json.loads(host.check_output('/srv/app/bin/appctl sessions'))['active'] == []


def test_application_session_is_recorded_terminated_because_the_feature_was_disabled(host):
    session = host.file('/var/lib/lastgood/molecule/app-session').content_string.strip()
    ends = [event for event in checks.audit_events(host)
            if event['event'] == 'session_end' and event['detail'].get('session_id') == session]
    assert len(ends) == 1
    assert ends[0]['run_id'] == RUN_ID
    assert ends[0]['detail']['status'] == 'terminated'
    assert ends[0]['detail']['reason'] == 'feature_disabled'


def is_staging(host):
    variables = host.ansible.get_variables()
    return variables['inventory_hostname'] in variables['groups']['staging']


def test_session_only_the_audit_log_knew_is_recorded_terminated_too(host):
    if not is_staging(host):
        pytest.skip('only the staging host\'s audit log knew of a session')
    ends = [event for event in checks.audit_events(host)
            if event['event'] == 'session_end' and event['detail'].get('session_id') == 'logged-1']
    assert len(ends) == 1
    assert ends[0]['detail']['reason'] == 'feature_disabled'


def test_breaker_fired_on_the_host_with_the_violation_only(host):
    fired = [event for event in checks.audit_events(host) if event['event'] == 'circuit_breaker_fired']
    assert len(fired) == (1 if is_staging(host) else 0)


def test_audit_chain_verifies_line_by_line(host):
    checks.check_audit_chain(host)


def test_audit_log_records_the_run_from_start_to_end(host):
    assert 'feature_disabled' in checks.check_run_recorded_start_to_end(host, RUN_ID)


def test_lock_is_released(host):
    checks.check_lock_released(host)


def test_run_state_is_finished(host):
    checks.check_run_finished(host, RUN_ID, ['checkpoint', 'level1_feature_flag', 'verify'])


def test_report_is_written_and_says_the_host_succeeded(host):
    checks.check_report_says_success(host, RUN_ID)


def test_run_checkpoint_holds_the_configuration_before_level_1(host):
    manifest = checks.manifest(host, 'app', 'run-' + RUN_ID)
    assert sorted(manifest['sources']) == ['/srv/app/app.env', '/srv/app/config.yaml', '/srv/app/custom_modes.json']
    assert checks.sha256sum_check(host, 'app', 'run-' + RUN_ID).rc == 0


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []
