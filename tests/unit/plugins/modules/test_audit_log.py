import os

from ansible_collections.lastgood.rollback.plugins.modules import audit_log
from lib.module_runner import run_module


def _append(path, event, **extra):
    return run_module(audit_log, dict({'path': path, 'event': event, 'run_id': 'run-1'}, **extra))


def test_append_then_verify_query_and_active_sessions(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    failed, appended = _append(path, 'session_start', detail={'session_id': 's1'})
    assert not failed and appended['changed'] is True and appended['prev'] == '0' * 64
    _append(path, 'session_start', detail={'session_id': 's2'})
    _append(path, 'session_end', detail={'session_id': 's1', 'status': 'success'}, level='notice')
    failed, verified = run_module(audit_log, {'path': path, 'operation': 'verify'})
    assert not failed and verified['ok'] is True and verified['lines'] == 3 and verified['changed'] is False
    failed, queried = run_module(audit_log, {'path': path, 'operation': 'query', 'levels': ['notice']})
    assert not failed and queried['count'] == 1 and queried['events'][0]['event'] == 'session_end'
    failed, active = run_module(audit_log, {'path': path, 'operation': 'active_sessions'})
    assert not failed and [s['session_id'] for s in active['sessions']] == ['s2']


def test_check_mode_append_returns_the_record_and_writes_nothing(tmp_path):
    path = str(tmp_path / 'logs' / 'audit.jsonl')
    failed, result = _append(path, 'rollback_start')
    assert not failed
    before = open(path, 'rb').read()
    failed, result = run_module(audit_log, {'path': path, 'event': 'x'}, check_mode=True)
    assert not failed and result['changed'] is True and result['record']['event'] == 'x'
    assert open(path, 'rb').read() == before


def test_a_broken_chain_fails_verify_unless_only_reporting(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    for event in ('a', 'b', 'c'):
        _append(path, event)
    lines = open(path).readlines()
    with open(path, 'w') as handle:
        handle.writelines(lines[:1] + lines[2:])
    failed, result = run_module(audit_log, {'path': path, 'operation': 'verify'})
    assert failed and result['first_broken']['line'] == 2 and 'line 2' in result['msg']
    failed, result = run_module(audit_log, {'path': path, 'operation': 'verify', 'fail_on_broken': False})
    assert not failed and result['ok'] is False


def test_append_needs_an_event_and_query_a_valid_time(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    failed, result = run_module(audit_log, {'path': path})
    assert failed and 'event' in result['msg']
    failed, result = run_module(audit_log, {'path': path, 'operation': 'query', 'since': 'yesterday'})
    assert failed and 'since' in result['msg']
    assert not os.path.exists(path)
