import os

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _state
from ansible_collections.lastgood.rollback.plugins.modules import run_state
from lib.module_runner import run_module


def test_a_rerun_reports_the_completed_phases(tmp_path):
    base = {'state_dir': str(tmp_path), 'run_id': 'run-1'}
    failed, started = run_module(run_state, dict(base, operation='start', meta={'level': 2}))
    assert not failed and started['changed'] is True and started['resumed'] is False
    run_module(run_state, dict(base, operation='phase_done', phase='checkpoint', artifacts={'backup_id': 'b1'}))
    run_module(run_state, dict(base, operation='fail', phase='restore', failure_reason='host down'))
    failed, resumed = run_module(run_state, dict(base, operation='start'))
    assert not failed and resumed['resumed'] is True and resumed['completed_phases'] == ['checkpoint']
    assert resumed['status'] == 'running' and resumed['state']['artifacts'] == {'checkpoint': {'backup_id': 'b1'}}


def test_get_of_an_unknown_run_reports_no_state(tmp_path):
    failed, result = run_module(run_state, {'state_dir': str(tmp_path), 'run_id': 'nope', 'operation': 'get'})
    assert not failed and (result['exists'], result['state'], result['status'], result['changed']) == (False, None, None, False)


def test_diff_shows_the_state_before_and_after(tmp_path):
    base = {'state_dir': str(tmp_path), 'run_id': 'run-1'}
    run_module(run_state, dict(base, operation='start'))
    failed, result = run_module(run_state, dict(base, operation='finish'), diff=True)
    assert not failed and result['diff']['before']['status'] == 'running' and result['diff']['after']['status'] == 'finished'


def test_a_corrupt_state_file_that_cannot_be_rebuilt_fails_naming_its_quarantined_copy(tmp_path):
    path = _state.state_path(str(tmp_path), 'run-1')
    with open(path, 'w') as handle:
        handle.write('{"version": 1, "run_id": "run-1"')
    failed, result = run_module(run_state, {'state_dir': str(tmp_path), 'run_id': 'run-1', 'operation': 'start',
                                            'audit_log': str(tmp_path / 'audit.jsonl')})
    [quarantined] = result['quarantined']
    assert failed and result['corrupt'] is True and path in result['msg'] and quarantined in result['msg']
    assert 'could not be rebuilt' in result['msg'] and 'no run_start event' in result['msg']
    assert open(quarantined).read() == '{"version": 1, "run_id": "run-1"' and not os.path.exists(path)


def test_a_corrupt_state_file_is_rebuilt_from_the_run_modules_audit_events(tmp_path):
    audit_log = str(tmp_path / 'audit.jsonl')
    _audit.append(audit_log, 'run_start', run_id='run-1', detail={'operation': 'rollback', 'level': 2, 'attempt': 1,
                                                                  'checkpoint': 'cp', 'skipping': []})
    _audit.append(audit_log, 'run_phase_done', run_id='run-1', detail={'phase': 'checkpoint', 'attempt': 1,
                                                                       'artifacts': {'checkpoint': 'cp'}})
    path = _state.state_path(str(tmp_path), 'run-1')
    with open(path, 'wb') as handle:
        handle.write(b'\xff\xfe garbage')
    failed, result = run_module(run_state, {'state_dir': str(tmp_path), 'run_id': 'run-1', 'operation': 'get',
                                            'audit_log': audit_log})
    assert not failed and result['changed'] is True and result['completed_phases'] == ['checkpoint']
    assert result['rebuilt']['from'] == audit_log and result['rebuilt']['not_rebuilt']
    assert result['quarantined'][0] in str(result['warnings'])
    assert open(result['quarantined'][0], 'rb').read() == b'\xff\xfe garbage'


def test_phase_done_needs_a_phase_and_fail_a_reason(tmp_path):
    base = {'state_dir': str(tmp_path), 'run_id': 'run-1'}
    failed, result = run_module(run_state, dict(base, operation='phase_done'))
    assert failed and 'phase' in result['msg']
    failed, result = run_module(run_state, dict(base, operation='fail'))
    assert failed and 'failure_reason' in result['msg']
