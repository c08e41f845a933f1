"""The backup modules through ansible-playbook on localhost (connection local), with this checkout's ansible.cfg."""

import json
import os
import textwrap

import pytest

from lib import local_playbook

pytestmark = pytest.mark.skipif(not os.access(local_playbook.ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

BACKUP_PLAY = '''
- name: Back up the demo application
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Back up the application tree
      lastgood.rollback.backup:
        paths: ["{{ app }}"]
        backup_root: "{{ store }}"
        set: demo
        exclude: ["*.log"]
        mark_lastgood: true
      register: taken

    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{ taken | to_json }}"
        dest: "{{ out }}/backup.json"
        mode: "0600"
      check_mode: false
      changed_when: false
'''


def run_playbook(tmp_path, text, *args, extra=None):
    path = tmp_path / 'play.yml'
    path.write_text(textwrap.dedent(text))
    variables = {'app': str(tmp_path / 'app'), 'store': str(tmp_path / 'store'), 'out': str(tmp_path)}
    variables.update(extra or {})
    return local_playbook.run(path, variables, *args)


def saved(tmp_path, name):
    return json.loads((tmp_path / name).read_text())


@pytest.fixture
def app(tmp_path):
    root = tmp_path / 'app'
    (root / 'conf').mkdir(parents=True)
    (root / 'conf' / 'app.yml').write_text('port: 8080\n')
    (root / 'conf' / 'token').write_text('s3cr3t-token\n')
    (root / 'conf' / 'token').chmod(0o600)
    (root / 'app.log').write_text('noise\n')
    (root / 'empty').mkdir()
    (root / 'current').symlink_to('conf/app.yml')
    return root


def test_backup_then_identical_rerun_reports_no_change(tmp_path, app):
    first, counts = run_playbook(tmp_path, BACKUP_PLAY)
    assert first.returncode == 0, first.stdout + first.stderr
    assert counts['changed'] == 1
    taken = saved(tmp_path, 'backup.json')
    assert taken['new_backup'] and taken['lastgood'] and taken['files'] == 2
    assert os.path.isfile(taken['manifest'])
    assert not os.path.lexists(os.path.join(taken['path'], 'data', str(app).lstrip('/'), 'app.log'))
    assert 's3cr3t' not in first.stdout and 's3cr3t' not in json.dumps(taken)

    second, counts = run_playbook(tmp_path, BACKUP_PLAY)
    assert second.returncode == 0, second.stdout + second.stderr
    assert counts['changed'] == 0
    again = saved(tmp_path, 'backup.json')
    assert again['id'] == taken['id'] and again['new_backup'] is False
    assert sorted(os.listdir(tmp_path / 'store' / 'demo')) == sorted([taken['id'], 'LASTGOOD'])


def test_check_mode_writes_nothing(tmp_path, app):
    run, counts = run_playbook(tmp_path, BACKUP_PLAY, '--check')
    assert run.returncode == 0, run.stdout + run.stderr
    assert counts['changed'] == 1, 'check mode predicts the backup'
    predicted = saved(tmp_path, 'backup.json')
    assert predicted['new_backup'] and predicted['id'] is None and predicted['files'] == 2
    assert not os.path.exists(tmp_path / 'store')


def test_info_and_verify_report_the_backup_and_drift(tmp_path, app):
    run, counts = run_playbook(tmp_path, BACKUP_PLAY)
    assert run.returncode == 0 and counts['changed'] == 1, run.stdout + run.stderr
    taken = saved(tmp_path, 'backup.json')
    (app / 'conf' / 'app.yml').write_text('port: 9090\n')
    run, counts = run_playbook(tmp_path, '''
    - name: Inspect the demo store
      hosts: localhost
      connection: local
      gather_facts: false
      module_defaults:
        group/lastgood.rollback.all:
          backup_root: "{{ store }}"
          set: demo
      tasks:
        - name: List the backups
          lastgood.rollback.backup_info:
          register: info

        - name: Verify the last known good backup
          lastgood.rollback.backup_verify:
          register: intact

        - name: Compare the live tree with the backup, only reporting
          lastgood.rollback.backup_verify:
            against: live
            fail_on_mismatch: false
          register: drift

        - name: Save the results for the test
          ansible.builtin.copy:
            content: "{{ {'info': info, 'intact': intact, 'drift': drift} | to_json }}"
            dest: "{{ out }}/inspect.json"
            mode: "0600"
          changed_when: false
    ''')
    assert run.returncode == 0, run.stdout + run.stderr
    assert counts['changed'] == 0
    results = saved(tmp_path, 'inspect.json')
    info = results['info']
    assert info['sets'] == ['demo'] and info['lastgood'] == taken['id'] == info['latest']
    [backup] = info['backups']
    assert backup['complete'] and backup['lastgood'] and not backup['pinned'] and backup['files'] == 2
    assert results['intact']['ok'] and results['intact']['mismatches'] == []
    assert results['drift']['ok'] is False
    assert results['drift']['drift']['changed'] == [{'path': str(app / 'conf' / 'app.yml'), 'reasons': ['content']}]


def test_backup_verify_fails_on_a_corrupted_backup_unless_told_to_report(tmp_path, app):
    run, counts = run_playbook(tmp_path, BACKUP_PLAY)
    assert run.returncode == 0 and counts['changed'] == 1, run.stdout + run.stderr
    taken = saved(tmp_path, 'backup.json')
    stored = os.path.join(taken['path'], 'data', str(app).lstrip('/'), 'conf', 'app.yml')
    st = os.stat(stored)
    with open(stored, 'r+b') as handle:
        handle.write(b'q')
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))
    verify_play = '''
    - name: Verify the demo backup
      hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: Verify the last known good backup
          lastgood.rollback.backup_verify:
            backup_root: "{{ store }}"
            set: demo
            fail_on_mismatch: "{{ strict }}"
          register: checked

        - name: Save the result for the test
          ansible.builtin.copy:
            content: "{{ checked | to_json }}"
            dest: "{{ out }}/verify.json"
            mode: "0600"
          changed_when: false
    '''
    strict, counts = run_playbook(tmp_path, verify_play, extra={'strict': True})
    assert strict.returncode != 0 and counts['failed'] == 1
    assert 'is damaged' in strict.stdout and 'conf/app.yml: changed: content' in strict.stdout
    report, counts = run_playbook(tmp_path, verify_play, extra={'strict': False})
    assert report.returncode == 0, report.stdout + report.stderr
    checked = saved(tmp_path, 'verify.json')
    assert checked['ok'] is False and checked['id'] == taken['id']
    assert checked['mismatches'] == [{'path': 'data%s/conf/app.yml' % app, 'problem': 'changed: content'}]
