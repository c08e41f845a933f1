import json
import os

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit
from ansible_collections.lastgood.rollback.plugins.modules import lock
from lib.module_runner import run_module


def test_acquire_status_and_release_through_the_module(tmp_path):
    args = {'backup_root': str(tmp_path), 'set': 'app', 'run_id': 'run-1'}
    failed, result = run_module(lock, args)
    assert not failed and result['changed'] is True and result['lock_file'] == str(tmp_path / 'app' / '.lock')
    failed, again = run_module(lock, args)
    assert not failed and again['changed'] is False
    failed, status = run_module(lock, dict(args, operation='status'))
    assert not failed and status['held'] is True and status['holder']['run_id'] == 'run-1'
    failed, released = run_module(lock, dict(args, operation='release'))
    assert not failed and released['changed'] is True and not os.path.exists(result['lock_file'])


def test_a_second_run_fails_with_the_holder_in_the_result(tmp_path):
    path = str(tmp_path / 'rollback.lock')
    run_module(lock, {'path': path, 'run_id': 'run-1'})
    failed, result = run_module(lock, {'path': path, 'run_id': 'run-2'})
    assert failed and 'held by run run-1' in result['msg'] and result['holder']['run_id'] == 'run-1'
    failed, result = run_module(lock, {'path': path, 'run_id': 'run-2', 'operation': 'release'})
    assert failed and 'not released' in result['msg']


def test_force_takes_the_lock_warns_and_audits(tmp_path):
    path, audit_log = str(tmp_path / 'rollback.lock'), str(tmp_path / 'audit.jsonl')
    run_module(lock, {'path': path, 'run_id': 'run-1'})
    failed, result = run_module(lock, {'path': path, 'run_id': 'run-2', 'force': True, 'audit_log': audit_log})
    assert not failed and result['previous']['run_id'] == 'run-1'
    assert 'taken over' in json.dumps(result['warnings'])
    assert [r['event'] for r in _audit.records(audit_log)] == ['lock_forced']


def test_check_mode_acquire_writes_nothing(tmp_path):
    failed, result = run_module(lock, {'path': str(tmp_path / 'x' / '.lock'), 'run_id': 'run-1'}, check_mode=True)
    assert not failed and result['changed'] is True and os.listdir(tmp_path) == []


def test_acquire_without_run_id_and_a_hostile_set_name_are_refused(tmp_path):
    failed, result = run_module(lock, {'backup_root': str(tmp_path)})
    assert failed and 'run_id' in result['msg']
    failed, result = run_module(lock, {'backup_root': str(tmp_path), 'set': '../etc', 'run_id': 'r'})
    assert failed and 'may hold only' in result['msg'] and os.listdir(tmp_path) == []
