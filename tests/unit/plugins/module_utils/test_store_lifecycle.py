"""Checkpoints as a lifecycle: removing one backup, and retention releasing the pins of finished runs.

Crash safety of the removal is swept in tests/reliability (scenarios ``remove`` and ``remove_lastgood``).
"""

import os
import subprocess
import time

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _state, _store
from lib import trees

MTIME = 1763766900 * 10 ** 9


@pytest.fixture
def live(tmp_path):
    root = tmp_path / 'live' / 'app'
    trees.make_tree(str(root), {'conf/app.yml': 'port: 8080\n', 'bin/run.sh': '#!/bin/sh\n', 'data/blob': b'x' * 4096})
    return str(root)


@pytest.fixture
def store(tmp_path):
    return _store.Store(str(tmp_path / 'store'), 'app')


def change(live, number):
    trees.write_file(os.path.join(live, 'conf/app.yml'), b'port: %d\n' % number, 0o640, MTIME + number)


def take(store, live, number, **kwargs):
    change(live, number)
    taken = store.create([live], **kwargs)
    time.sleep(0.01)  # created stamps order the backups
    return taken['id']


def ids(store):
    return [info['id'] for info in store.list()]


def sha256sum_ok(store, backup_id):
    """The backup checked by coreutils, not by the engine that wrote it."""
    done = subprocess.run(['sha256sum', '--quiet', '-c', '--strict', '--', _store.MANIFEST_SHA256],
                          cwd=store.backup_dir(backup_id), capture_output=True, check=False)
    return done.returncode == 0


def test_removing_a_parent_leaves_its_incremental_children_complete_and_verified(store, live):
    parent = take(store, live, 1, name='before-upgrade')
    child = take(store, live, 2, mark_lastgood=True)
    newest = take(store, live, 3)
    assert store.list()[1]['parent'] == parent
    assert store.verify(child)['ok']

    result = store.remove(parent)

    assert result['changed'] and result['pinned'] and not result['lastgood'] and not result['newest']
    assert ids(store) == [child, newest]
    assert not os.path.lexists(store.backup_dir(parent))
    assert parent not in store._read_pins()
    for backup_id in (child, newest):
        assert store.verify(backup_id)['ok']
        assert sha256sum_ok(store, backup_id)
    assert not [name for name in os.listdir(store.set_dir) if name.startswith('.')]


def test_removing_what_does_not_exist_changes_nothing(store, live):
    take(store, live, 1)
    before = sorted(os.listdir(store.set_dir))
    assert store.remove('never-taken')['changed'] is False
    assert sorted(os.listdir(store.set_dir)) == before
    assert _store.Store(store.backup_root, 'other').remove('anything')['changed'] is False
    assert not os.path.exists(os.path.join(store.backup_root, 'other'))


@pytest.mark.parametrize('which', ['lastgood', 'newest'])
def test_lastgood_and_newest_complete_are_refused_without_force(store, live, which):
    marked = take(store, live, 1, mark_lastgood=True)
    newest = take(store, live, 2)
    doomed = marked if which == 'lastgood' else newest
    audited = []
    with pytest.raises(_store.StoreError, match='refusing to remove backup %s.*%s' % (doomed, 'LASTGOOD' if which == 'lastgood' else 'newest complete')):
        store.remove(doomed, audit=audited.append)
    with pytest.raises(_store.StoreError):
        store.remove(doomed, check_mode=True)
    assert ids(store) == [marked, newest] and audited == []

    result = store.remove(doomed, force=True, audit=audited.append)
    assert result['changed'] and ids(store) == [newest if which == 'lastgood' else marked]
    assert audited == [dict(result, set='app', backup_root=store.backup_root, forced=True)]
    if which == 'lastgood':
        assert not os.path.exists(os.path.join(store.set_dir, _store.LASTGOOD_FILE))
        with pytest.raises(_store.StoreError, match='no backup .* is marked last-good'):
            store.resolve()
    else:
        assert store.resolve()['id'] == marked


def test_check_mode_predicts_and_changes_nothing(store, live):
    old = take(store, live, 1, name='old-checkpoint')
    take(store, live, 2)
    before = sorted(os.listdir(store.set_dir))
    audited = []
    result = store.remove(old, check_mode=True, audit=audited.append)
    assert result['changed'] and result['pinned']
    assert sorted(os.listdir(store.set_dir)) == before and audited == []


def test_a_failing_audit_removes_nothing(store, live):
    old = take(store, live, 1)
    take(store, live, 2)

    def refuse(_detail):
        raise OSError(28, 'No space left on device')

    with pytest.raises(OSError):
        store.remove(old, audit=refuse)
    assert old in ids(store) and store.verify(old)['ok']


def test_an_incomplete_backup_can_be_removed(store, live):
    take(store, live, 1)
    broken = take(store, live, 2)
    take(store, live, 3)
    os.unlink(store.manifest_path(broken))
    assert not [info for info in store.list() if info['id'] == broken][0]['complete']
    assert store.remove(broken)['complete'] is False
    assert broken not in ids(store)


def finished_run(state_dir, run_id, finish=True):
    _state.start(str(state_dir), run_id)
    if finish:
        _state.finish(str(state_dir), run_id)
    else:
        _state.fail(str(state_dir), run_id, 'verify failed')


def test_keep_runs_releases_finished_runs_with_enough_newer_runs_and_removes_them(store, live, tmp_path):
    state_dir = tmp_path / 'runs'
    outcomes = {'r1': True, 'r2': False, 'r3': True, 'r4': True, 'r5': True}
    for number, (run_id, ok) in enumerate(outcomes.items(), 1):
        take(store, live, number, name='run-' + run_id)
        finished_run(state_dir, run_id, ok)
    hand = take(store, live, 10, name='pre-upgrade-7')
    take(store, live, 11, name='run-r6')  # a run still going: no state
    everything = ids(store)

    predicted = store.retention(keep_runs=2, state_dir=str(state_dir), check_mode=True)
    assert store.released == ['run-r1', 'run-r3', 'run-r4']
    assert ids(store) == everything
    store.released = []

    removed = store.retention(keep_runs=2, state_dir=str(state_dir))
    # r2 failed, r5 and r6 are the newest two runs, a checkpoint named by hand is never released
    assert removed == predicted == ['run-r1', 'run-r3', 'run-r4']
    assert store.released == removed
    assert ids(store) == ['run-r2', 'run-r5', hand, 'run-r6']
    assert store._read_pins() == {'run-r2', 'run-r5', hand, 'run-r6'}
    assert store.retention(keep_runs=2, state_dir=str(state_dir)) == []


def test_keep_runs_with_keep_last_releases_the_pin_but_keep_last_keeps_the_backup(store, live, tmp_path):
    state_dir = tmp_path / 'runs'
    for number, run_id in enumerate(('a', 'b', 'c'), 1):
        take(store, live, number, name='run-' + run_id)
        finished_run(state_dir, run_id)
    removed = store.retention(keep_runs=1, keep_last=3, state_dir=str(state_dir))
    assert removed == [] and store.released == ['run-a', 'run-b']
    assert store._read_pins() == {'run-c'}
    assert store.retention(keep_last=1) == ['run-a', 'run-b']


def test_keep_runs_needs_the_run_states(store):
    with pytest.raises(_store.StoreError, match='keep_runs needs state_dir'):
        store.retention(keep_runs=3)
    with pytest.raises(_store.StoreError, match='keep_runs must be a positive integer'):
        store.retention(keep_runs=0, state_dir='/nonexistent')


def test_a_corrupt_run_state_keeps_the_pin(store, live, tmp_path):
    state_dir = tmp_path / 'runs'
    for number, run_id in enumerate(('a', 'b'), 1):
        take(store, live, number, name='run-' + run_id)
        finished_run(state_dir, run_id)
    (state_dir / 'a.json').write_text('{"status": "finished"')
    assert store.retention(keep_runs=1, state_dir=str(state_dir)) == []
    assert 'run-a' in store._read_pins()
