"""After converge: a good change went out through staging and every canary batch; a change that broke
host3 in the first batch halted the rollout and put that batch back at the checkpoint."""

import json
import os

import pytest
import testinfra

import lastgood_testinfra as checks

testinfra_hosts = ['all']

GOOD = 'molecule-staged-good'
BAD = 'molecule-staged-bad'
GOLDEN = '/var/lib/lastgood/molecule/golden'
# Staging, then the canary batches molecule.yml asks for: two production hosts, then the rest.
ROLLOUT = [['host1'], ['host2', 'host3'], ['host4']]
# How the bad run left each host: staging kept the change, host3 failed its verification, host2 was
# rolled back with it, host4 was never reached.
BAD_OUTCOME = {'host1': 'success', 'host2': 'rolled_back', 'host3': 'failed', 'host4': 'stopped'}


def name_of(host):
    return host.backend.get_hostname()


def other(request, name):
    return testinfra.get_host('ansible://' + name, ansible_inventory=request.config.option.ansible_inventory)


def deployed(host, run_id):
    return [event for event in checks.audit_events(host) if event['event'] == 'change_deployed' and event.get('run_id') == run_id]


def fleet_report(run_id):
    path = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'controller', run_id, 'report.json')
    with open(path) as handle:
        return json.load(handle)


def rate_limit(host):
    config = host.file('/srv/app/config.yaml').content_string
    return [line.split(':')[1].strip() for line in config.splitlines() if 'sessionsPerMinute' in line]


def test_good_change_went_to_staging_first_then_batch_by_batch(request):
    times = [[deployed(other(request, name), GOOD)[0]['ts'] for name in batch] for batch in ROLLOUT]
    for earlier, later in zip(times, times[1:]):
        assert max(earlier) < min(later), times


def test_good_run_finished_on_every_host(host):
    state = json.loads(host.file('/var/lib/lastgood/runs/%s.json' % GOOD).content_string)
    assert state['status'] == 'finished'
    assert state['completed_phases'] == ['checkpoint', 'deploy', 'verify']
    assert host.file('/srv/app/NOTICE.txt').content_string == 'maintenance tonight at 02:00 UTC\n'


def test_hosts_that_passed_keep_the_change_and_the_others_hold_the_checkpoint(host):
    if BAD_OUTCOME[name_of(host)] == 'success':
        assert rate_limit(host) == ['45']
    else:
        assert rate_limit(host) == ['60']
        for name in ('config.yaml', 'custom_modes.json'):
            assert checks.live_against_copy(host, '/srv/app/' + name, '%s/%s' % (GOLDEN, name)) == []


def test_hosts_that_got_the_bad_change_are_exactly_the_ones_before_the_halt(host):
    got_it = [event['detail']['stage'] for event in deployed(host, BAD)]
    assert bool(got_it) is (name_of(host) != 'host4'), got_it


def test_rolled_back_hosts_match_the_run_checkpoint(host):
    if BAD_OUTCOME[name_of(host)] not in ('failed', 'rolled_back'):
        pytest.skip('kept the change')
    assert checks.live_against_manifest(host, checks.manifest(host, 'app', 'run-' + BAD)) == []
    assert checks.sha256sum_check(host, 'app', 'run-' + BAD).rc == 0
    assert 'run_checkpoint_restored' in [event['event'] for event in checks.audit_events(host) if event.get('run_id') == BAD]


def test_application_answers_healthy(host):
    checks.check_application_healthy(host)


def test_report_names_the_failing_host_and_says_how_each_host_was_left():
    report = fleet_report(BAD)
    assert report['run']['outcome'] == 'partial'
    assert dict((name, record['status']) for name, record in report['hosts'].items()) == BAD_OUTCOME
    assert report['run']['failed_hosts'] == ['host3'] and report['run']['stopped_hosts'] == ['host2', 'host4']
    failure = report['hosts']['host3']['failure']
    assert failure['phase'] == 'verify' and not failure['stopped_by_fleet']
    for name in ('host2', 'host4'):
        assert report['hosts'][name]['failure']['failed_hosts'] == ['host3']
    for name in ('host2', 'host3'):
        assert report['hosts'][name]['restore']['verified'] is True
    markdown = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'controller', BAD, 'report.md')
    with open(markdown) as handle:
        text = handle.read()
    assert '- Failed hosts: host3\n' in text
    assert 'Rolled back because other hosts failed (checkpoint restored and verified): host2' in text
    assert 'Stopped before any change because other hosts failed: host4' in text


def test_good_run_report_says_every_host_succeeded():
    report = fleet_report(GOOD)
    assert report['run']['outcome'] == 'success'
    assert sorted(report['run']['succeeded_hosts']) == sorted(BAD_OUTCOME)


def test_audit_chain_verifies_line_by_line(host):
    checks.check_audit_chain(host)


def test_lock_is_released(host):
    checks.check_lock_released(host)


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []
