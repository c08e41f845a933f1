"""What an operator can do after a failed run, end to end on localhost: abort it, or skip a phase on the record.

Each test fails a level 2 run first (its test command fails in verify, so the rescue puts the checkpoint
of the broken state back), then makes the choice through ansible-playbook, as docs/level2.md says.
"""

import json
import os

import pytest

from lib.demo_site import PLAYBOOK, ROOT, break_config

LEVEL2 = os.path.join(ROOT, 'playbooks', 'rollback_level2.yml')

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


def audit(site, run_id):
    lines = (site.base / 'log' / 'audit.jsonl').read_text().splitlines()
    return [event for event in map(json.loads, lines) if event.get('run_id') == run_id]


def fail_a_run(site, run_id):
    bad = break_config(site)
    failed = site.playbook(LEVEL2, extra={'lastgood_run_id': run_id, 'lastgood_test_command': ['false']})
    assert failed.returncode == 2, failed.stdout
    assert site.run_state(run_id)['status'] == 'failed'
    return bad


def test_abort_puts_the_checkpoint_back_verified_and_closes_the_run(site):
    bad = fail_a_run(site, 'it-abort')
    # someone kept working on the host after the failure: the abort puts the checkpoint back
    site.app.write('config.yaml', site.app.read('config.yaml').replace('maxRounds', 'maxRoundz'))

    run = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-abort', 'lastgood_run_action': 'abort',
                                       'lastgood_reason': 'fix forward instead (INC-42)'})

    assert run.returncode == 0, run.stdout
    assert site.app.read('config.yaml') == bad
    assert site.app.read('app.env') == 'PARTY_MODE_ENABLED=true\n'
    state = site.run_state('it-abort')
    assert state['status'] == 'finished' and state['attempts'] == 2
    assert state['artifacts']['abort'] == dict(state['artifacts']['abort'], restored=True, verified=True,
                                               reason='fix forward instead (INC-42)')
    assert state['artifacts']['level2_config']['attempt'] == 1, 'the aborted run acted again'
    events = audit(site, 'it-abort')
    names = [event['event'] for event in events]
    assert names.index('run_checkpoint_restored', names.index('run_resume')) < names.index('run_aborted')
    aborted = [event for event in events if event['event'] == 'run_aborted'][0]
    assert aborted['detail']['verified'] is True and aborted['detail']['reason'] == 'fix forward instead (INC-42)'
    assert [event['detail']['outcome'] for event in events if event['event'] == 'run_end'][-1] == 'aborted'
    report = site.report()
    assert report['run']['outcome'] == 'aborted' and report['run']['aborted_hosts'] == ['localhost']
    host = report['hosts']['localhost']
    assert host['restore'] == dict(host['restore'], attempted=True, restored=True, verified=True, reapplied=True)
    assert host['state_verified'] is True
    markdown = (site.controller / 'report.md').read_text()
    assert 'Aborted in phase: abort' in markdown and 'fix forward instead (INC-42)' in markdown
    host_report = (site.base / 'reports' / 'it-abort' / 'report.md').read_text()
    assert 'Outcome on this host: **ABORTED**' in host_report and 'Aborted in phase abort' in host_report
    assert not os.path.exists(os.path.join(site.extra['lastgood_backup_root'], 'app', '.lock'))

    again = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-abort', 'lastgood_run_action': 'abort'})

    assert again.returncode == 2
    assert 'already ended on this host' in again.stdout
    assert site.app.read('config.yaml') == bad


def test_abort_of_a_run_that_never_ran_here_is_refused_and_changes_nothing(site):
    before = site.app.read('config.yaml')

    run = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-no-such-run', 'lastgood_run_action': 'abort'})

    assert run.returncode == 2
    assert 'run it-no-such-run has no state' in run.stdout and 'nothing to abort here' in run.stdout
    assert site.app.read('config.yaml') == before
    assert 'run_aborted' not in [event['event'] for event in audit(site, 'it-no-such-run')]


def test_skipping_verify_needs_a_reason_and_is_recorded_in_the_audit_log_and_the_report(site):
    fail_a_run(site, 'it-skip')

    refused = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-skip', 'lastgood_skip_phases': ['verify'],
                                           'lastgood_test_command': ['false']})

    assert refused.returncode == 2
    assert 'needs a reason' in refused.stdout and 'lastgood_skip_reason' in refused.stdout
    assert 'run_phase_skipped' not in [event['event'] for event in audit(site, 'it-skip')]

    not_checkpoint = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-skip', 'lastgood_skip_phases': ['checkpoint'],
                                                  'lastgood_skip_reason': 'no'})

    assert not_checkpoint.returncode == 2
    assert 'phase(s) checkpoint cannot be skipped' in not_checkpoint.stdout

    reason = 'test suite down for maintenance, verified by hand (CHG-7)'
    skipped = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-skip', 'lastgood_skip_phases': ['verify'],
                                           'lastgood_skip_reason': reason, 'lastgood_test_command': ['false']})

    assert skipped.returncode == 0, skipped.stdout
    assert site.app.run('health').returncode == 0
    events = [event for event in audit(site, 'it-skip') if event['event'] == 'run_phase_skipped']
    assert [(event['detail']['phase'], event['detail']['reason']) for event in events] == [('verify', reason)]
    state = site.run_state('it-skip')
    assert state['status'] == 'finished'
    assert 'verify' not in state['completed_phases'], 'a skipped phase was recorded as done'
    report = site.report()
    assert report['run']['outcome'] == 'success'
    host = report['hosts']['localhost']
    assert host['skipped'] == [{'phase': 'verify', 'reason': reason}]
    assert host['state_verified'] is None, 'a skipped verification claimed the final state proven'
    assert 'Skipped by explicit override on localhost: phase verify (%s)' % reason in (
        site.controller / 'report.md').read_text()
    assert 'phase verify (%s)' % reason in (site.base / 'reports' / 'it-skip' / 'report.md').read_text()
