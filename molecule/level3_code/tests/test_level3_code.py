"""After converge ran rollback_level3, every host runs the known-good release, with proof."""

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

import lastgood_testinfra as checks

testinfra_hosts = ['all']

RUN_ID = 'molecule-level3'
GOLDEN = '/var/lib/lastgood/molecule/golden'


def test_current_points_at_the_release_marked_known_good_not_the_newest_by_mtime(host):
    assert host.file('/srv/app/current').linked_to == '/srv/app/releases/1'
    assert host.check_output('readlink /srv/app/current') == 'releases/1'


def test_running_release_equals_the_golden_copy(host):
    assert checks.live_against_copy(host, '/srv/app/releases/1', GOLDEN + '/release-1') == []


@pytest.mark.parametrize('path', ['lib/party-mode', 'docs/PARTY_MODE.md'])
def test_no_party_mode_file_is_live(host, path):
    assert not host.file('/srv/app/current/' + path).exists


def test_bad_release_is_kept_for_the_investigation_but_not_running(host):
    assert host.file('/srv/app/releases/3/BAD_RELEASE').exists


def test_application_answers_healthy_on_the_old_version(host):
    document = checks.check_application_healthy(host)
    assert document['version'] == '1.0.0'
    assert document['release'] == 'releases/1'


def test_release_smoke_test_passes(host):
    selftest = host.run('/srv/app/bin/appctl selftest')
    assert selftest.rc == 0, selftest.stderr


def test_code_rollback_is_recorded_with_where_it_came_from(host):
    done = [event for event in checks.audit_events(host) if event['event'] == 'code_rolled_back']
    assert len(done) == 1
    assert done[0]['run_id'] == RUN_ID
    assert done[0]['detail']['to_release'] == '1'
    assert done[0]['detail']['from']['release'] == '3'
    assert done[0]['detail']['chosen_by'] == 'known-good marker'


def test_staging_rolled_back_before_any_production_host(request):
    inventory = request.config.option.ansible_inventory

    def rolled_back_at(name):
        other = testinfra.get_host('ansible://' + name, ansible_inventory=inventory)
        return [event['ts'] for event in checks.audit_events(other) if event['event'] == 'code_rolled_back'][0]

    runner = AnsibleRunner(inventory)
    staging = max(rolled_back_at(name) for name in runner.get_hosts('staging'))
    production = min(rolled_back_at(name) for name in runner.get_hosts('production'))
    assert staging < production


def test_audit_chain_verifies_line_by_line(host):
    checks.check_audit_chain(host)


def test_lock_is_released(host):
    checks.check_lock_released(host)


def test_run_state_is_finished(host):
    checks.check_run_finished(host, RUN_ID, ['checkpoint', 'level3_code', 'verify'])


def test_report_is_written_and_says_the_host_succeeded(host):
    checks.check_report_says_success(host, RUN_ID)


def test_run_checkpoint_holds_the_bad_release_it_replaced(host):
    manifest = checks.manifest(host, 'app', 'run-' + RUN_ID)
    assert sorted(manifest['sources']) == ['/srv/app/code', '/srv/app/current', '/srv/app/releases']
    current = [entry for entry in manifest['entries'] if entry['path'] == 'srv/app/current']
    assert current[0]['target'] == 'releases/3'
    assert checks.sha256sum_check(host, 'app', 'run-' + RUN_ID).rc == 0


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []
