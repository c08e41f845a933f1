"""Level 4 refused without approvals and changed nothing; with them it restored the baseline and kept the evidence."""

import json
import shlex

import pytest

import lastgood_testinfra as checks

testinfra_hosts = ['all']

RUN_ID = 'molecule-level4'
GOLDEN = '/var/lib/lastgood/molecule/golden'
INVESTIGATIONS = '/var/lib/lastgood/investigations'
TAG = 'rollback-snapshot-' + RUN_ID


def package(host):
    found = host.check_output('find %s -mindepth 1 -maxdepth 1 -type d -name "INC-*-%s"' % (INVESTIGATIONS, RUN_ID))
    assert len(found.split()) == 1, found
    return found


def test_unapproved_run_changed_nothing_on_the_host(host):
    before = host.file('/var/lib/lastgood/molecule/state-before-refusal').content_string
    after = host.file('/var/lib/lastgood/molecule/state-after-refusal').content_string
    assert before
    assert before == after


def test_unapproved_run_said_which_approvals_were_missing(host):
    said = ' '.join(host.file('/var/lib/lastgood/molecule/refusal').content_string.split())
    assert 'Level 4 full restore refused; nothing was changed on any host' in said
    assert 'Missing: cto, security_architect' in said


@pytest.mark.parametrize('name', ['config.yaml', 'custom_modes.json', 'code', 'releases'])
def test_restored_path_equals_the_golden_copy_of_the_baseline(host, name):
    assert checks.live_against_copy(host, '/srv/app/' + name, '%s/%s' % (GOLDEN, name)) == []


def test_current_points_at_the_baseline_release(host):
    assert host.check_output('readlink /srv/app/current') == 'releases/1'


def test_backdoor_is_gone_from_the_live_code(host):
    assert not host.file('/srv/app/code/backdoor.py').exists


def test_party_mode_stays_off_through_the_override(host):
    assert host.file('/srv/app/app.env').content_string == 'PARTY_MODE_ENABLED=false\n'
    flags = json.loads(host.check_output('/srv/app/bin/appctl flags'))
    assert flags['flags']['partyMode.enabled'] is False


def test_application_answers_healthy_on_the_baseline_version(host):
    document = checks.check_application_healthy(host)
    assert document['version'] == '1.0.0'


def test_snapshot_of_the_compromised_state_verifies_and_holds_the_backdoor(host):
    assert checks.sha256sum_check(host, 'investigation', 'snapshot-' + RUN_ID).rc == 0
    manifest = checks.manifest(host, 'investigation', 'snapshot-' + RUN_ID)
    assert 'srv/app/code/backdoor.py' in [entry['path'] for entry in manifest['entries']]


def test_investigation_materials_match_their_checksums(host):
    result = host.run('cd %s && sha256sum --check --strict SHA256SUMS' % shlex.quote(package(host)))
    assert result.rc == 0, result.stdout + result.stderr
    listed = [line.split()[1] for line in host.file(package(host) + '/SHA256SUMS').content_string.splitlines()]
    assert listed == ['evidence.tar.gz', 'repo.bundle', 'git-log.txt', 'approvals.json', 'restore.json']


def test_evidence_archive_holds_both_audit_logs_as_they_were(host):
    names = host.check_output('tar --list --gzip --file %s/evidence.tar.gz' % shlex.quote(package(host))).split()
    assert 'srv/app/logs/audit.jsonl' in names
    assert 'var/log/lastgood/audit.jsonl' in names


def test_git_bundle_keeps_the_snapshot_tag_on_the_backdoor_commit(host):
    clone = '/var/lib/lastgood/molecule/bundle-clone'
    host.run('rm -rf %s' % clone)
    cloned = host.run('git clone --quiet %s/repo.bundle %s' % (shlex.quote(package(host)), clone))
    assert cloned.rc == 0, cloned.stderr
    shown = host.run('git -C %s show %s:backdoor.py' % (clone, TAG))
    assert shown.rc == 0, shown.stderr
    assert 'exfiltrates' in shown.stdout


def test_investigation_archive_packs_the_package(host):
    names = host.check_output('tar --list --gzip --file %s.tar.gz' % shlex.quote(package(host))).split()
    base = package(host).rsplit('/', 1)[1]
    for name in ('evidence.tar.gz', 'repo.bundle', 'SHA256SUMS', 'approvals.json'):
        assert '%s/%s' % (base, name) in names


def test_incident_skeleton_names_the_approvers_and_the_evidence(host):
    incident = host.file(package(host) + '/INCIDENT.md').content_string
    assert '| ana.ortiz | cto |' in incident
    assert '| bo.chen | security_architect |' in incident
    assert 'snapshot-' + RUN_ID in incident
    assert TAG in incident


def test_each_approval_is_recorded_in_the_audit_log(host):
    approvals = [event for event in checks.audit_events(host) if event['event'] == 'approval_recorded']
    assert sorted((event['detail']['who'], event['detail']['role']) for event in approvals) == [
        ('ana.ortiz', 'cto'), ('bo.chen', 'security_architect')]
    assert all(event['run_id'] == RUN_ID for event in approvals)


def test_full_restore_is_recorded_after_the_approvals(host):
    names = [event['event'] for event in checks.audit_events(host) if event.get('run_id') == RUN_ID]
    assert names.index('approval_recorded') < names.index('feature_disabled') < names.index('full_restore_done')


def test_audit_chain_verifies_line_by_line(host):
    checks.check_audit_chain(host)


def test_lock_is_released(host):
    checks.check_lock_released(host)


def test_run_state_is_finished(host):
    checks.check_run_finished(host, RUN_ID, ['checkpoint', 'level4_full_restore', 'verify'])


def test_report_is_written_and_says_the_host_succeeded(host):
    report = checks.check_report_says_success(host, RUN_ID)
    assert report['host']['verify']['checksums_verified'] is True


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []
