"""Corrupt bookkeeping files through ansible-playbook: run state rebuilt, lock and audit log quarantined."""

import json
import os
import shutil

import pytest

from lib import local_playbook
from lib.local_playbook import ANSIBLE_PLAYBOOK

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

RUN = 'it-corrupt-1'

# a run as a playbook makes it: begin and a phase (the run module records them in the run state and the audit log)
RUN_PLAY = '''
- name: A run that records a phase
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    lastgood.rollback.run:
      run_id: "{{ run_id }}"
      operation: rollback_test
      level: 2
      checkpoint: "run-{{ run_id }}"
      backup_root: "{{ work }}/store"
      set: app
      state_dir: "{{ work }}/runs"
      audit_log: "{{ work }}/audit.jsonl"
  tasks:
    - name: Take the lock and start the run
      lastgood.rollback.run:
        state: begin

    - name: Record the preflight
      lastgood.rollback.run:
        state: phase
        phase: preflight
        artifacts: {disk_ok: true}

'''

# after the test damaged the run state, the lock and the audit log
CHECK_PLAY = '''
- name: Meet the damaged files
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Read the run state (it is corrupt)
      lastgood.rollback.run_state:
        state_dir: "{{ work }}/runs"
        run_id: "{{ run_id }}"
        operation: get
        audit_log: "{{ work }}/audit.jsonl"
      register: state_get

    - name: Take the lock (its file is corrupt)
      lastgood.rollback.lock:
        path: "{{ work }}/store/app/.lock"
        run_id: other-run
        audit_log: "{{ work }}/audit.jsonl"
      register: lock_acquire
      ignore_errors: true

    - name: Append to the other audit log (it is corrupt)
      lastgood.rollback.audit_log:
        path: "{{ work }}/other/audit.jsonl"
        event: after_damage
        run_id: "{{ run_id }}"
      register: audit_append

    - name: Verify the other audit log
      lastgood.rollback.audit_log:
        path: "{{ work }}/other/audit.jsonl"
        operation: verify
      register: audit_verify

    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{ results | to_json }}"
        dest: "{{ work }}/results.json"
        mode: "0600"
      vars:
        results:
          state_get: "{{ state_get }}"
          lock_acquire: "{{ lock_acquire }}"
          audit_append: "{{ audit_append }}"
          audit_verify: "{{ audit_verify }}"
'''


def _play(site, text, work):
    playbook = site / 'play.yml'
    playbook.write_text(text)
    completed, counts = local_playbook.run(playbook, {'work': str(work), 'run_id': RUN})
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    return counts


@pytest.fixture(scope='module')
def damaged(tmp_path_factory):
    site = tmp_path_factory.mktemp('corrupt')
    work = site / 'work'
    (work / 'store' / 'app').mkdir(parents=True)
    _play(site, RUN_PLAY, work)
    state_file = work / 'runs' / (RUN + '.json')
    truth = json.loads(state_file.read_text())
    bytes_of = {}
    # the run state: a byte flipped in its first line, and its tail cut off
    data = state_file.read_bytes()
    bytes_of['state'] = bytes([data[0] ^ 0x20]) + data[1:len(data) // 2]
    state_file.write_bytes(bytes_of['state'])
    # the lock the run holds: invalid UTF-8 in place of its content
    bytes_of['lock'] = b'\xff\xfe\x00 not a lock'
    (work / 'store' / 'app' / '.lock').write_bytes(bytes_of['lock'])
    # a second audit log (the run's own is the rebuild's source) with one line edited
    (work / 'other').mkdir()
    other = work / 'other' / 'audit.jsonl'
    shutil.copyfile(str(work / 'audit.jsonl'), str(other))
    shutil.copyfile(str(work / 'audit.jsonl.head'), str(work / 'other' / 'audit.jsonl.head'))
    bytes_of['audit'] = other.read_bytes().replace(b'"disk_ok":true', b'"disk_ok":false')
    other.write_bytes(bytes_of['audit'])
    _play(site, CHECK_PLAY, work)
    return {'work': work, 'truth': truth, 'bytes': bytes_of,
            'results': json.loads((work / 'results.json').read_text())}


def _assert_quarantined(path, data):
    assert os.stat(path).st_mode & 0o777 == 0o444
    with open(path, 'rb') as handle:
        assert handle.read() == data


def test_a_corrupt_run_state_is_rebuilt_from_the_audit_log_through_the_module(damaged):
    result = damaged['results']['state_get']
    truth = damaged['truth']
    [quarantined] = result['quarantined']
    _assert_quarantined(quarantined, damaged['bytes']['state'])
    assert result['changed'] and result['rebuilt']['from'] == str(damaged['work'] / 'audit.jsonl')
    assert result['completed_phases'] == truth['completed_phases'] and 'preflight' in truth['completed_phases']
    assert result['state']['artifacts'] == truth['artifacts'] and result['state']['attempts'] == truth['attempts']
    assert quarantined in json.dumps(result['warnings'])


def test_a_corrupt_lock_fails_the_task_naming_its_quarantined_copy(damaged):
    result = damaged['results']['lock_acquire']
    [quarantined] = result['quarantined']
    assert result['failed'] and quarantined in result['msg'] and 'unknown run' in result['msg']
    _assert_quarantined(quarantined, damaged['bytes']['lock'])
    holder = json.loads((damaged['work'] / 'store' / 'app' / '.lock').read_text())
    assert holder['corrupt_copy'] == quarantined


def test_a_corrupt_audit_log_is_not_extended_and_the_new_one_names_it(damaged):
    appended = damaged['results']['audit_append']
    verified = damaged['results']['audit_verify']
    quarantined, head = appended['quarantined']
    _assert_quarantined(quarantined, damaged['bytes']['audit'])
    assert head.startswith(str(damaged['work'] / 'other' / 'audit.jsonl.head.corrupt-'))
    assert verified['ok'] and [item['file'] for item in verified['quarantined']] == [quarantined]
    assert quarantined in json.dumps(appended['warnings'])
