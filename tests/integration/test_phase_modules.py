"""The phase modules (verify, preflight) and their roles through ansible-playbook on localhost, on a running demo app.

Pins what only a playbook run shows: the action plugin names the inventory host, the fact is set, the
custom stats reach the recap (ANSIBLE_SHOW_CUSTOM_STATS) and the host fails once with every failed check.
"""

import json
import os

import pytest

from lib import trees
from lib.demo_site import PLAYBOOK, ROOT, Site

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

VERIFY = os.path.join(ROOT, 'playbooks', 'verify.yml')


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setenv('ANSIBLE_SHOW_CUSTOM_STATS', '1')
    monkeypatch.setenv('ANSIBLE_CALLBACK_RESULT_FORMAT', 'json')
    current = Site(tmp_path)
    try:
        current.start()
        yield current
    finally:
        current.app.run('stop')


def custom_stats(stdout):
    """The custom stats the recap prints (RUN: followed by JSON), as a dict."""
    return json.loads(stdout.split('CUSTOM STATS:', 1)[1].split('RUN:', 1)[1])


def test_verify_role_runs_the_module_once_sets_the_fact_and_publishes_stats(site):
    run = site.playbook(VERIFY)

    assert run.returncode == 0, run.stdout + run.stderr
    assert 'localhost passed: ' in run.stdout
    assert 'the live paths match backup known-good (SHA-256, size, mode, owner)' in run.stdout
    assert custom_stats(run.stdout) == {
        'lastgood_verify': {'localhost': {'ok': True, 'failed_checks': []}}}
    assert run.stdout.count('TASK [lastgood.rollback.verify : ') == 2, 'the role is its argument check and one task'


def test_failed_verification_names_the_host_and_every_failed_check_and_keeps_the_result(site, tmp_path):
    site.app.write('config.yaml', site.app.read('config.yaml').replace('maxAgents', 'agents'))
    keep = tmp_path / 'kept.yml'
    keep.write_text('''
- name: Verify and keep the result of a failed verification
  hosts: localhost
  gather_facts: false
  vars_files: [%s]
  tasks:
    - name: Verify
      block:
        - name: Run the role
          ansible.builtin.include_role:
            name: lastgood.rollback.verify
          vars:
            verify_documents: "{{ lastgood_config_documents }}"
            verify_files: []
            verify_backup_root: "{{ lastgood_backup_root }}"
            verify_set: app
            verify_backup: lastgood
            verify_health_command: "{{ lastgood_health_command }}"
            verify_test_command: [sh, -c, 'echo broken; exit 4']
            verify_health_retries: 0
      rescue:
        - name: Save the result the rescue sees
          ansible.builtin.copy:
            content: "{{ verify_result | to_json }}"
            dest: %s
            mode: "0600"
''' % (os.path.join(ROOT, 'playbooks', 'vars', 'run_defaults.yml'), tmp_path / 'result.json'))

    run = site.playbook(str(keep))

    assert run.returncode == 0, run.stdout + run.stderr
    assert 'rescued=1' in run.stdout
    message = run.stdout.split('Verification failed on localhost:', 1)[1].split('TASK [')[0]
    assert 'required key partyMode.maxAgents is missing' in message
    assert 'differ from backup known-good' in message
    assert 'exit 4 exited 4: broken' in message
    result = json.loads((tmp_path / 'result.json').read_text())
    assert result['host'] == 'localhost' and result['ok'] is False
    assert result['failed_checks'] == ['document_valid', 'manifest_match', 'test_command']
    assert result['checksums_verified'] is False and result['backup'] == 'known-good'
    assert 'lastgood_verify' not in run.stdout.split('PLAY RECAP', 1)[1], 'Ansible drops the stats of a failed task'


def test_verify_in_check_mode_changes_nothing_and_runs_no_command(site):
    before = trees.tree_digest(str(site.base))

    run = site.playbook(VERIFY, '--check', extra={'lastgood_test_command': ['touch', str(site.base / 'ran')]})

    assert run.returncode == 0, run.stdout + run.stderr
    assert trees.tree_digest(str(site.base)) == before


def test_preflight_role_runs_the_module_once_sets_the_fact_and_publishes_stats(site):
    before = trees.tree_digest(str(site.base))

    run = site.playbook(os.path.join(ROOT, 'playbooks', 'preflight.yml'), '--check')

    assert run.returncode == 0, run.stdout + run.stderr
    assert 'localhost passed 7 checks: localhost answers over its connection; ' in run.stdout
    assert 'backup lastgood (known-good) matches its manifest' in run.stdout
    assert custom_stats(run.stdout) == {'lastgood_preflight': {'localhost': {'ok': True, 'failed_checks': []}}}
    assert run.stdout.count('TASK [lastgood.rollback.preflight : ') == 2, 'the role is its argument check and one task'
    assert trees.tree_digest(str(site.base)) == before
