"""The fleet report (lastgood.rollback.fleet_report) in a real play: h1-h3 end their run with their audit
events in lastgood_host (as lastgood.rollback.run state=end leaves them), h2 failed and put its checkpoint
back, h4 is unreachable; the action writes the fleet report once on the controller."""

import json
import os

import pytest

from lib.fleet_play import ANSIBLE_PLAYBOOK, play, saved

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

PLAY = '''
- name: A run that failed on h2, then its report
  hosts: all
  gather_facts: false
  tasks:
    - name: Reach every host
      ansible.builtin.ping:

    - name: Pass the checkpoint gate
      lastgood.rollback.fleet_gate:
        phase: checkpoint
        run_id: report-1
      run_once: true

    - name: Verify each host
      ansible.builtin.set_fact:
        verify_result: {ok: "{{ inventory_hostname != 'h2' }}", checksums_verified: true, backup: known-good,
                        checks: [{name: health, ok: "{{ inventory_hostname != 'h2' }}"}]}

    - name: End the run on the host
      ansible.builtin.set_fact:
        lastgood_host:
          run_id: report-1
          operation: rollback_level2
          level: 2
          checkpoint: run-report-1
          attempt: 1
          started: "2026-11-21T23:15:0{{ inventory_hostname[-1] }}Z"
          finished: "2026-11-21T23:16:00Z"
          outcome: "{{ 'failed' if inventory_hostname == 'h2' else 'success' }}"
          failure: "{{ {'phase': 'verify', 'task': 'Verify', 'message': 'health failed', 'stopped_by_fleet': false,
                        'failed_hosts': ['h2']} if inventory_hostname == 'h2' else none }}"
          restore: "{{ {'attempted': true, 'restored': true, 'verified': true, 'changed': true,
                        'message': 'Checkpoint run-report-1 restored and verified.'} if inventory_hostname == 'h2'
                       else {'attempted': false, 'restored': false, 'verified': false, 'message': ''} }}"
          audit: {chain_ok: true, lines: 3, first_broken: null, events: 1}
          events:
            - {ts: "2026-11-21T23:15:0{{ inventory_hostname[-1] }}.5Z", event: run_start, run_id: report-1,
               detail: {attempt: 1}}

    - name: Sum up the run
      lastgood.rollback.fleet_outcome:
        phases: [preflight, start, checkpoint, level2_config, verify]
      run_once: true

    - name: Tell people, then write the report
      lastgood.rollback.fleet_report:
        controller_dir: "{{ out }}/controller"
        report_dir: /var/lib/lastgood/reports
        notify:
          dir: "{{ out }}/notes"
      register: written_report
      run_once: true

    - name: Show the report
      ansible.builtin.debug:
        msg: "{{ written_report.report_md }}"
      run_once: true
      when: print_it | default(false)

    - name: Save what the hosts see
      ansible.builtin.copy:
        content: "{{ report_result | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0600"
      check_mode: false
'''


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    work = tmp_path_factory.mktemp('fleet-report')
    run, stats = play(work, PLAY, {'print_it': True})
    assert saved(work, 'h1'), run.stdout + run.stderr
    return work, run, stats


def test_the_report_has_every_host_and_names_the_unreachable_one_unchecked(written):
    work, dummy, dummy_stats = written
    report = json.loads((work / 'controller' / 'report.json').read_text())
    assert sorted(report['hosts']) == ['h1', 'h2', 'h3', 'h4']
    assert report['unchecked_hosts'] == ['h4'] and report['hosts']['h4']['outcome'] == 'unreachable'
    assert report['run']['outcome'] == 'partial' and report['run']['failed_hosts'] == ['h2', 'h4']
    assert report['run']['started'] == '2026-11-21T23:15:01Z'
    assert report['hosts']['h2']['verify']['failed_checks'] == [{'name': 'health', 'ok': False}]
    assert report['hosts']['h1']['state_verified'] is True and report['checksums_verified'] is True
    assert [event['host'] for event in report['timeline']] == ['h1', 'h2', 'h3']
    markdown = (work / 'controller' / 'report.md').read_text()
    assert '| h4 | unreachable |' in markdown and '- Could not be checked (unreachable): h4\n' in markdown
    assert 'Post-mortem: rollback_level2 run report-1' in (work / 'controller' / 'postmortem.md').read_text()
    assert oct((work / 'controller' / 'report.md').stat().st_mode & 0o777) == '0o640'


def test_report_result_is_set_on_every_host_and_lastgood_report_is_published(written):
    work, run, stats = written
    results = [saved(work, host) for host in ('h1', 'h2', 'h3')]
    assert results[0] == results[1] == results[2]
    assert results[0]['report_json'] == str(work / 'controller' / 'report.json')
    assert results[0]['host_report'] == '/var/lib/lastgood/reports/report-1/report.md'
    assert stats['lastgood_report']['hosts'] == {'h1': 'success', 'h2': 'failed', 'h3': 'success', 'h4': 'unreachable'}
    assert stats['lastgood_report']['outcome'] == 'partial'
    assert '# Post-rollback status report: rollback_level2 (level 2)' in run.stdout


def test_the_end_notice_goes_out_with_the_report_as_fleet_notify_sends_it(written):
    work, run, stats = written
    internal = (work / 'notes' / 'notify-failed-internal.txt').read_text()
    assert internal.startswith('INFO: Configuration rollback (Level 2) - Failed')
    assert 'Hosts: 4 (2 done, 2 failed: h2, h4)\n' in internal
    assert stats['lastgood_notify'] == {'status': 'failed', 'webhook_posted': False, 'files': [
        str(work / 'notes' / name) for name in ('notify-failed-internal.txt', 'notify-failed-user.txt',
                                                'notify-failed.json')]}
    assert stats['lastgood_report']['outcome'] == 'partial'


def test_check_mode_writes_no_report(tmp_path):
    run, dummy = play(tmp_path, PLAY, {}, '--check')
    assert run.returncode == 4, run.stdout + run.stderr  # 4: h4 unreachable, nothing failed
    assert saved(tmp_path, 'h1')['outcome'] == 'partial'
    assert not (tmp_path / 'controller').exists() and not (tmp_path / 'notes').exists()
