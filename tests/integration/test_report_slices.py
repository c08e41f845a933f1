"""The fleet report of a run played in slices: each slice merges its hosts into one report.

A sliced AWX job runs one ansible-playbook per slice, each on its share of the hosts, all with
the same run id, all writing the fleet report to the same controller directory.  Here each
"host" is localhost under another name (local connection); the report role runs as the
playbooks run it, with the summary run_control would hand it.
"""

import json
import os
import subprocess
import sys

import pytest

from lib.awx import REPO_ROOT

ANSIBLE_PLAYBOOK = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-playbook')
HOSTS = ['web1', 'web2', 'web3']

PLAYBOOK = '''
- name: Record this host's run in the audit log, then report
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Write the event of this host's run
      lastgood.rollback.audit_log:
        path: "{{ audit_dir }}/{{ inventory_hostname }}.jsonl"
        run_id: "{{ run_id }}"
        event: run_finished
        detail: "{{ summaries[inventory_hostname] }}"

    - name: Report on the run
      ansible.builtin.include_role:
        name: lastgood.rollback.report
      vars:
        report_audit_log: "{{ audit_dir }}/{{ inventory_hostname }}.jsonl"
        report_dir: "{{ audit_dir }}/host-reports/{{ inventory_hostname }}"
        report_controller_dir: "{{ controller_dir }}"
        report_print: false
        report_run:
          run_id: "{{ run_id }}"
          operation: rollback
          level: 2
          checkpoint: "run-{{ run_id }}"
          outcome: "{{ 'success' if report_outcomes == ['success'] else 'partial' if 'success' in report_outcomes else 'failed' }}"
          hosts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', summaries))) }}"
        report_outcomes: "{{ ansible_play_hosts_all | map('extract', summaries) | map(attribute='outcome') | unique }}"
'''


def _run_slices(work, run_id, slices, outcomes):
    """Play ``slices`` (lists of hosts) at the same time, as AWX starts the slices of a job."""
    summaries = dict((host, {'outcome': outcome, 'restore': {'restored': outcome != 'success'}})
                     for host, outcome in outcomes.items())
    extra = {'run_id': run_id, 'summaries': summaries, 'audit_dir': str(work / 'audit'),
             'controller_dir': str(work / 'controller'), 'ansible_python_interpreter': sys.executable}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'))
    processes = [subprocess.Popen([ANSIBLE_PLAYBOOK, '-i', ','.join(HOSTS) + ',', str(work / 'report.yml'),
                                   '--limit', ','.join(hosts), '-e', json.dumps(extra)],
                                  cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for hosts in slices]
    for process in processes:
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output[-4000:]
    return json.loads((work / 'controller' / 'report.json').read_text()), (work / 'controller' / 'report.md').read_text()


@pytest.fixture(scope='module')
def reports(tmp_path_factory):
    """The fleet report after each step: two slices at once (web2 fails), web2 again, another run."""
    work = tmp_path_factory.mktemp('report-slices')
    (work / 'report.yml').write_text(PLAYBOOK)
    (work / 'audit').mkdir()
    succeeded = dict((host, 'success') for host in HOSTS)
    return {
        'sliced': _run_slices(work, 'slices-1', [['web1', 'web2'], ['web3']], dict(succeeded, web2='failed')),
        'replayed': _run_slices(work, 'slices-1', [['web2']], succeeded),
        'next_run': _run_slices(work, 'slices-2', [['web3']], succeeded),
    }


def test_slices_of_one_run_played_at_once_write_one_report_with_every_host(reports):
    report, markdown = reports['sliced']
    assert report['run']['run_id'] == 'slices-1' and report['run']['checkpoint'] == 'run-slices-1'
    assert sorted(report['hosts']) == HOSTS
    assert report['run']['outcome'] == 'partial'
    assert report['run']['failed_hosts'] == ['web2'] and report['run']['restored_hosts'] == ['web2']
    assert sorted(report['run']['succeeded_hosts']) == ['web1', 'web3']
    assert sorted(event['host'] for event in report['timeline']) == HOSTS
    assert report['audit_chains_verified'] is True and report['unchecked_hosts'] == []
    assert '(2 of 3 hosts succeeded)' in markdown
    assert all('| %s | %s |' % (host, 'failed' if host == 'web2' else 'success') in markdown for host in HOSTS)


def test_a_slice_played_again_replaces_its_hosts_and_keeps_the_others(reports):
    report = reports['replayed'][0]
    assert sorted(report['hosts']) == HOSTS
    assert report['run']['outcome'] == 'success' and report['run']['failed_hosts'] == []
    assert report['run']['restored_hosts'] == []
    # The host played again brings its whole timeline (its audit log holds both plays' events).
    assert sorted(event['host'] for event in report['timeline']) == ['web1', 'web2', 'web2', 'web3']


def test_a_report_of_another_run_in_the_directory_is_replaced_not_merged(reports):
    report = reports['next_run'][0]
    assert report['run']['run_id'] == 'slices-2'
    assert sorted(report['hosts']) == ['web3'] and report['run']['outcome'] == 'success'
