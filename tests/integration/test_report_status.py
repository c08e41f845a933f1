"""The report role on localhost: how it says a run left each host, from what run_control recorded.

Three "hosts" on this machine, each with its own report directory and audit log, and a run summary
(run_control_fleet's shape) in which h1 failed, h2 was stopped by the fleet gate after it changed
and had its checkpoint put back, and h3 was stopped before it changed anything.
"""

import json
import os
import subprocess

import pytest

from lib.demo_site import PLAYBOOK, ROOT

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

RESTORED = {'attempted': True, 'restored': True, 'verified': True, 'changed': True, 'message': 'Checkpoint put back.'}
STOPPED = {'phase': 'verify', 'task': '', 'message': 'stopped by the fleet', 'stopped_by_fleet': True, 'failed_hosts': ['h1']}
RUN = {
    'run_id': 'it-status', 'operation': 'deploy_staged', 'level': 0, 'checkpoint': 'run-it-status',
    'outcome': 'failed', 'succeeded_hosts': [], 'failed_hosts': ['h1'], 'stopped_hosts': ['h2', 'h3'],
    'unreachable_hosts': [],
    'restored_hosts': ['h1', 'h2', 'h3'],
    'hosts': {
        'h1': {'outcome': 'failed', 'passed_phases': ['deploy'], 'restore': RESTORED,
               'failure': {'phase': 'verify', 'task': 'Stop when a check failed', 'message': 'health failed',
                           'stopped_by_fleet': False, 'failed_hosts': ['h1']}},
        'h2': {'outcome': 'failed', 'passed_phases': ['deploy', 'verify'], 'restore': RESTORED, 'failure': STOPPED},
        'h3': {'outcome': 'failed', 'passed_phases': ['checkpoint'], 'restore': dict(RESTORED, changed=False),
               'failure': dict(STOPPED, phase='deploy')},
    },
}
PLAY = '''
- name: Write the report of a run that failed on h1
  hosts: all
  gather_facts: false
  tasks:
    - name: Give each host an audit log with the run in it
      lastgood.rollback.audit_log:
        path: "{{ base }}/{{ inventory_hostname }}/audit.jsonl"
        event: run_start
        run_id: it-status

    - name: Write the report
      ansible.builtin.include_role:
        name: lastgood.rollback.report
      vars:
        report_run: "{{ run }}"
        report_audit_log: "{{ base }}/{{ inventory_hostname }}/audit.jsonl"
        report_dir: "{{ base }}/{{ inventory_hostname }}/reports"
        report_controller_dir: "{{ base }}/controller"
        report_print: false
'''


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    base = tmp_path_factory.mktemp('status')
    (base / 'inventory.yml').write_text('all:\n  hosts: {h1: {}, h2: {}, h3: {}}\n  vars: {ansible_connection: local}\n')
    (base / 'play.yml').write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    extra = {'base': str(base), 'run': RUN, 'ansible_python_interpreter': os.path.join(ROOT, '.venv', 'bin', 'python')}
    run = subprocess.run([PLAYBOOK, '-i', str(base / 'inventory.yml'), '-e', json.dumps(extra), str(base / 'play.yml')],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return base


def test_host_stopped_by_the_fleet_after_it_changed_is_reported_rolled_back_and_the_failing_host_failed(written):
    report = json.loads((written / 'controller' / 'report.json').read_text())
    assert {name: host['status'] for name, host in report['hosts'].items()} == {
        'h1': 'failed', 'h2': 'rolled_back', 'h3': 'stopped'}
    text = (written / 'controller' / 'report.md').read_text()
    assert '- Failed hosts: h1\n' in text
    assert '- Rolled back because other hosts failed (checkpoint restored and verified): h2\n' in text
    assert '- Stopped before any change because other hosts failed: h3\n' in text
    assert '### h2: rolled back (checkpoint restored and verified)' in text
    assert '| h2 | rolled_back |' in text


def test_host_report_says_rolled_back_beside_the_failed_outcome(written):
    text = (written / 'h2' / 'reports' / 'it-status' / 'report.md').read_text()
    assert 'Outcome on this host: **FAILED** (fleet: failed) - rolled back (checkpoint restored and verified)' in text
