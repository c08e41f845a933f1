import json
import os

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _fsatomic, _lock, _state
from lib import faults

RUN = 'run-42'


def _prepare(state_dir, status):
    """A run in ``status`` (None: no state) that completed the phase ``preflight``."""
    if status is None:
        return
    _state.start(state_dir, RUN)
    _state.phase_done(state_dir, RUN, 'preflight', {'disk_ok': True})
    if status == 'failed':
        _state.fail(state_dir, RUN, 'restore failed', phase='restore')
    elif status == 'finished':
        _state.finish(state_dir, RUN)


OPERATIONS = {
    'start': lambda d: _state.start(d, RUN),
    'phase_done': lambda d: _state.phase_done(d, RUN, 'checkpoint', {'backup_id': 'b1'}),
    'fail': lambda d: _state.fail(d, RUN, 'restore failed', phase='restore'),
    'finish': lambda d: _state.finish(d, RUN),
}

# (operation, status before) -> (status after, changed) or the error expected
TRANSITIONS = [
    ('start', None, ('running', True)),
    ('start', 'running', ('running', False)),
    ('start', 'failed', ('running', True)),
    ('start', 'finished', ('finished', False)),
    ('phase_done', None, 'has no state'),
    ('phase_done', 'running', ('running', True)),
    ('phase_done', 'failed', 'start it again'),
    ('phase_done', 'finished', 'start it again'),
    ('fail', None, ('failed', True)),
    ('fail', 'running', ('failed', True)),
    ('fail', 'failed', ('failed', False)),
    ('fail', 'finished', 'already finished'),
    ('finish', None, 'has no state'),
    ('finish', 'running', ('finished', True)),
    ('finish', 'failed', 'start it again and complete it'),
    ('finish', 'finished', ('finished', False)),
]


@pytest.mark.parametrize('operation, before, expected', TRANSITIONS)
def test_run_state_transitions(tmp_path, operation, before, expected):
    state_dir = str(tmp_path / 'runs')
    _prepare(state_dir, before)
    path = _state.state_path(state_dir, RUN)
    old = open(path, 'rb').read() if os.path.exists(path) else None
    if isinstance(expected, str):
        with pytest.raises(_state.StateError, match=expected):
            OPERATIONS[operation](state_dir)
        assert (open(path, 'rb').read() if os.path.exists(path) else None) == old
        return
    result = OPERATIONS[operation](state_dir)
    assert (result['state']['status'], result['changed']) == expected
    assert _state.load(state_dir, RUN) == result['state']
    if not result['changed']:
        assert open(path, 'rb').read() == old


def test_a_rerun_after_a_failure_resumes_with_the_completed_phases(tmp_path):
    state_dir = str(tmp_path)
    _state.start(state_dir, RUN, meta={'level': 2})
    _state.phase_done(state_dir, RUN, 'preflight')
    _state.phase_done(state_dir, RUN, 'checkpoint', {'backup_id': 'b1'})
    _state.fail(state_dir, RUN, 'host web2 unreachable', phase='restore')
    resumed = _state.start(state_dir, RUN)
    state = resumed['state']
    assert resumed['resumed'] is True and resumed['changed'] is True
    assert state['completed_phases'] == ['preflight', 'checkpoint']
    assert state['artifacts']['checkpoint'] == {'backup_id': 'b1'}
    assert (state['status'], state['attempts'], state['failure_reason'], state['meta']) == ('running', 2, None, {'level': 2})


def test_phase_done_merges_artifacts_and_is_idempotent(tmp_path):
    state_dir = str(tmp_path)
    _state.start(state_dir, RUN)
    _state.phase_done(state_dir, RUN, 'checkpoint', {'backup_id': 'b1'})
    assert _state.phase_done(state_dir, RUN, 'checkpoint', {'backup_id': 'b1'})['changed'] is False
    result = _state.phase_done(state_dir, RUN, 'checkpoint', {'manifest': 'm'})
    assert result['changed'] is True
    assert result['state']['artifacts']['checkpoint'] == {'backup_id': 'b1', 'manifest': 'm'}
    assert result['state']['completed_phases'] == ['checkpoint']


def test_fail_records_status_reason_and_phase(tmp_path):
    state_dir = str(tmp_path)
    _state.start(state_dir, RUN)
    state = _state.fail(state_dir, RUN, 'verify: checksum mismatch', phase='verify')['state']
    assert (state['status'], state['failure_reason'], state['failed_phase']) == ('failed', 'verify: checksum mismatch', 'verify')


def _valid_state_text(tmp_path):
    _state.start(str(tmp_path), RUN)
    return open(_state.state_path(str(tmp_path), RUN)).read()


CORRUPTIONS = [
    ('empty file', lambda text: ''),
    ('truncated', lambda text: text[:len(text) // 2]),
    ('not an object', lambda text: '[1, 2]'),
    ('unknown version', lambda text: text.replace('"version": 1', '"version": 7')),
    ('another run', lambda text: text.replace('"run_id": "%s"' % RUN, '"run_id": "other"')),
    ('unknown status', lambda text: text.replace('"status": "running"', '"status": "paused"')),
    ('missing field', lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != 'completed_phases'})),
    ('phases not names', lambda text: text.replace('"completed_phases": []', '"completed_phases": [1]')),
    ('phase twice', lambda text: text.replace('"completed_phases": []', '"completed_phases": ["a", "a"]')),
    ('invalid utf-8', lambda text: text.replace('"meta": {}', '"meta": {"x": "\udcff"}')),
]


def _corrupt_state(tmp_path, corrupt):
    text = _valid_state_text(tmp_path)
    path = _state.state_path(str(tmp_path), RUN)
    data = corrupt(text).encode('utf-8', 'surrogateescape')
    assert data != text.encode()
    with open(path, 'wb') as handle:
        handle.write(data)
    return path, data


@pytest.mark.parametrize('operation', ['start', 'phase_done', 'fail', 'finish'])
@pytest.mark.parametrize('name, corrupt', CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_corrupt_state_file_is_moved_aside_read_only_and_named(tmp_path, operation, name, corrupt):
    path, data = _corrupt_state(tmp_path, corrupt)
    with pytest.raises(_state.StateCorrupt) as raised:
        OPERATIONS[operation](str(tmp_path))
    message = str(raised.value)
    [quarantined] = raised.value.quarantined
    assert path in message and quarantined in message and 'no audit log was given' in message
    assert open(quarantined, 'rb').read() == data and os.stat(quarantined).st_mode & 0o777 == 0o444
    assert sorted(os.listdir(tmp_path)) == sorted(['.lock', os.path.basename(quarantined)])


@pytest.mark.parametrize('read', [
    lambda d: _state.load(d, RUN),
    lambda d: _state.get(d, RUN, check=True),
    lambda d: _state.start(d, RUN, check=True),
], ids=['load', 'get in check mode', 'start in check mode'])
@pytest.mark.parametrize('name, corrupt', CORRUPTIONS[:3], ids=[c[0] for c in CORRUPTIONS[:3]])
def test_a_read_or_check_mode_reports_a_corrupt_state_file_and_leaves_it(tmp_path, read, name, corrupt):
    path, data = _corrupt_state(tmp_path, corrupt)
    with pytest.raises(_state.StateCorrupt) as raised:
        read(str(tmp_path))
    assert path in str(raised.value) and 'left untouched' in str(raised.value) and raised.value.quarantined == []
    assert open(path, 'rb').read() == data


@pytest.mark.parametrize('run_id', ['../escape', '.hidden', '', 'a/b', 'x' * 129])
def test_run_ids_that_are_not_plain_file_names_are_refused(tmp_path, run_id):
    with pytest.raises(_state.StateError, match='not valid'):
        _state.start(str(tmp_path), run_id)
    assert os.listdir(tmp_path) == []


def test_check_mode_reports_the_new_state_and_writes_nothing(tmp_path):
    state_dir = str(tmp_path / 'runs')
    result = _state.start(state_dir, RUN, check=True)
    assert result['changed'] is True and result['state']['status'] == 'running'
    assert not os.path.exists(state_dir)
    _state.start(state_dir, RUN)
    before = open(_state.state_path(state_dir, RUN), 'rb').read()
    assert _state.phase_done(state_dir, RUN, 'x', check=True)['state']['completed_phases'] == ['x']
    assert _state.finish(state_dir, RUN, check=True)['state']['status'] == 'finished'
    assert open(_state.state_path(state_dir, RUN), 'rb').read() == before


def test_phase_done_leaves_the_old_or_the_new_state_at_every_fault(tmp_path):
    state_dir = str(tmp_path)
    _state.start(state_dir, RUN)
    _state.phase_done(state_dir, RUN, 'preflight')
    path = _state.state_path(state_dir, RUN)
    old = open(path, 'rb').read()

    def check(k, plan, error):
        state = _state.load(state_dir, RUN)
        phases = state['completed_phases']
        if error is None:
            assert phases == ['preflight', 'checkpoint'], 'fault %d' % k
        else:
            assert phases in (['preflight'], ['preflight', 'checkpoint']), 'fault %d (%s)' % (k, plan.fired_call)
        assert sorted(os.listdir(state_dir)) == ['.lock', RUN + '.json'], 'fault %d' % k
        with open(path, 'wb') as handle:
            handle.write(old)

    points = faults.sweep([_state, _lock, _audit, _fsatomic],
                          lambda: _state.phase_done(state_dir, RUN, 'checkpoint', {'backup_id': 'b1'}), check)
    assert points >= 6
