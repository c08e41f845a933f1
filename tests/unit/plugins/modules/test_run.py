"""The run module's own part (as the action plugin calls it on the host): options, results, failures."""

from ansible_collections.lastgood.rollback.plugins.module_utils import _lock
from ansible_collections.lastgood.rollback.plugins.modules import run
from lib.module_runner import run_module


def common(tmp_path, **extra):
    args = {'run_id': 'r-1', 'operation': 'rollback_level2', 'level': 2, 'backup_root': str(tmp_path / 'store'),
            'set': 'app', 'state_dir': str(tmp_path / 'runs'), 'audit_log': str(tmp_path / 'audit.jsonl')}
    args.update(extra)
    return args


def test_begin_returns_the_host_record_as_the_lastgood_host_fact(tmp_path):
    failed, result = run_module(run, common(tmp_path, state='begin'))
    assert not failed and result['changed'] is True
    host = result['ansible_facts']['lastgood_host']
    assert host['run_id'] == 'r-1' and host['level'] == 2 and host['attempt'] == 1 and host['completed'] == []
    assert result['msg'] == 'Started run r-1 (attempt 1) on this host.'


def test_begin_of_a_resumed_run_warns_which_phases_it_skips(tmp_path):
    failed, first = run_module(run, common(tmp_path, state='begin'))
    host = first['ansible_facts']['lastgood_host']
    run_module(run, common(tmp_path, state='phase', phase='checkpoint', host=host))
    run_module(run, common(tmp_path, state='rescue', host=host, failure={
        'phase': 'act', 'task': '', 'message': 'x', 'stopped_by_fleet': False, 'failed_hosts': ['h']}))
    failed, again = run_module(run, common(tmp_path, state='begin'))
    assert not failed and again['msg'] == 'Resuming run r-1 (attempt 2): skipping checkpoint.'
    assert [warning['event']['msg'] for warning in again['warnings']] == [again['msg']]


def test_begin_fails_naming_the_run_that_holds_the_lock(tmp_path):
    _lock.acquire(str(tmp_path / 'store' / 'app' / '.lock'), 'other')
    failed, result = run_module(run, common(tmp_path, state='begin'))
    assert failed and 'held by run other' in result['msg'] and result['holder']['run_id'] == 'other'
    assert 'ansible_facts' not in result


def test_phase_needs_the_phase_name(tmp_path):
    failed, result = run_module(run, common(tmp_path, state='phase'))
    assert failed and 'phase' in result['msg']


def test_phase_of_a_run_that_did_not_begin_fails_saying_so(tmp_path):
    failed, result = run_module(run, common(tmp_path, state='phase', phase='act'))
    assert failed and 'has not begun' in result['msg']


def test_close_writes_the_given_documents_and_reports_what_changed(tmp_path):
    args = common(tmp_path, state='close', report_dir=str(tmp_path / 'reports'),
                  report_documents={'report.json': '{}\n'})
    failed, result = run_module(run, args)
    assert not failed and result['changed'] is True
    assert result['report'] == {'dir': str(tmp_path / 'reports' / 'r-1'), 'changed': ['report.json']}
    assert 'ansible_facts' not in result  # the host's record stays what end left
    failed, again = run_module(run, args)
    assert not failed and again['changed'] is False


def test_end_in_check_mode_reports_a_change_and_writes_nothing(tmp_path):
    failed, result = run_module(run, common(tmp_path, state='end'), check_mode=True)
    assert not failed and result['changed'] is True
    assert result['ansible_facts']['lastgood_host']['outcome'] == 'success'
    assert not (tmp_path / 'audit.jsonl').exists() and not (tmp_path / 'runs').exists()
