"""The run's checkpoint step releases the checkpoints of earlier successful runs (keep_runs)."""

import time

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _run, _state
from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store


@pytest.fixture
def work(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    (app / 'app.conf').write_text('good\n')
    return tmp_path


def settings(work, run_id):
    return _run.RunSettings({
        'run_id': run_id, 'operation': 'rollback_level2', 'level': 2, 'checkpoint': 'run-' + run_id,
        'checkpoint_paths': [str(work / 'app')], 'keep_phases': ['checkpoint'],
        'backup_root': str(work / 'store'), 'set': 'app', 'state_dir': str(work / 'runs'),
        'audit_log': str(work / 'log' / 'audit.jsonl'), 'lock_path': '', 'lock_ttl': 3600, 'user': '',
    })


def whole_run(work, run_id, succeed=True, keep_runs=None, check=False):
    run = settings(work, run_id)
    host, _changed = _run.begin(run, {}, check=check)
    host, _changed, taken = _run.checkpoint(run, host, [str(work / 'app')], [], False, keep_runs=keep_runs,
                                            check=check)
    if not succeed:
        host['outcome'] = 'failed'
        _state.fail(str(work / 'runs'), run_id, 'verify failed')
    if not check:
        _run.end(run, host)
    time.sleep(0.01)  # created stamps order the checkpoints
    return taken


def test_a_run_releases_the_checkpoints_of_successful_runs_with_enough_newer_runs(work):
    for run_id, ok in (('a', True), ('b', False), ('c', True), ('d', True)):
        assert whole_run(work, run_id, ok)['released'] == []
    store = Store(str(work / 'store'), 'app')
    assert store._read_pins() == {'run-a', 'run-b', 'run-c', 'run-d'}  # pylint: disable=protected-access

    predicted = whole_run(work, 'e', keep_runs=2, check=True)
    assert predicted['released'] == predicted['removed'] == ['run-a']
    assert [info['id'] for info in store.list()] == ['run-a', 'run-b', 'run-c', 'run-d']

    taken = whole_run(work, 'e', keep_runs=2)
    # a: finished with 4 newer runs; b failed; c has 2 newer runs (d, e) and is released too
    assert taken['released'] == taken['removed'] == ['run-a', 'run-c']
    assert [info['id'] for info in store.list()] == ['run-b', 'run-d', 'run-e']
    assert all(store.verify(backup_id)['ok'] for backup_id in ('run-b', 'run-d', 'run-e'))


def test_a_failing_retention_is_a_warning_and_the_checkpoint_is_taken(work):
    whole_run(work, 'a')
    whole_run(work, 'b')
    (work / 'store' / 'app' / 'LASTGOOD').write_text('damaged!\n')
    warnings = []
    run = settings(work, 'c')
    host, _changed = _run.begin(run, {})
    host, changed, taken = _run.checkpoint(run, host, [str(work / 'app')], [], False, keep_runs=1,
                                           warn=warnings.append)
    assert changed and taken['new_backup'] and taken['removed'] == []
    assert any('releasing the checkpoints of earlier runs failed' in warning for warning in warnings)
