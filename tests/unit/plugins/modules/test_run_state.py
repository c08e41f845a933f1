from ansible_collections.lastgood.rollback.plugins.module_utils import _state
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


def test_a_corrupt_state_file_fails_clearly_and_stays(tmp_path):
    path = _state.state_path(str(tmp_path), 'run-1')
    with open(path, 'w') as handle:
        handle.write('{"version": 1, "run_id": "run-1"')
    failed, result = run_module(run_state, {'state_dir': str(tmp_path), 'run_id': 'run-1', 'operation': 'start'})
    assert failed and result['corrupt'] is True and path in result['msg'] and 'left untouched' in result['msg']
    assert open(path).read() == '{"version": 1, "run_id": "run-1"'


def test_phase_done_needs_a_phase_and_fail_a_reason(tmp_path):
    base = {'state_dir': str(tmp_path), 'run_id': 'run-1'}
    failed, result = run_module(run_state, dict(base, operation='phase_done'))
    assert failed and 'phase' in result['msg']
    failed, result = run_module(run_state, dict(base, operation='fail'))
    assert failed and 'failure_reason' in result['msg']
