import errno
import json
import os
import subprocess

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic
from lib import faults
from lib.durability import DurabilityTracker


def test_atomic_write_replaces_content_and_sets_mode(tmp_path):
    target = tmp_path / 'f'
    target.write_bytes(b'old')
    _fsatomic.atomic_write(str(target), b'new', mode=0o640)
    assert target.read_bytes() == b'new'
    assert (target.stat().st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ['f']


def test_atomic_write_json_keeps_a_name_that_is_not_utf8(tmp_path):
    # a restore journal and LASTRESTORE record the paths a restore changes, whatever their bytes
    name = os.fsdecode(b'/srv/app/\xff\xfe.conf')
    target = tmp_path / 'journal.json'
    _fsatomic.atomic_write_json(str(target), {'paths': [name, 'caf\u00e9']})
    assert json.loads(target.read_bytes().decode('utf-8')) == {'paths': [name, 'caf\u00e9']}


def test_atomic_write_leaves_old_content_and_no_temp_at_every_fault(tmp_path):
    target = tmp_path / 'f'
    target.write_bytes(b'old')

    def check(k, plan, error):
        content = target.read_bytes()
        assert content in (b'old', b'new'), 'fault %d left %r' % (k, content)
        if error is not None and plan.log[-1] != 'fsync':
            # every fault before the rename keeps the old content; only the final
            # directory fsync can fail after the new content is in place
            assert content == b'old' or plan.log.count('replace') == 1
        assert os.listdir(tmp_path) == ['f'], 'fault %d left %s' % (k, os.listdir(tmp_path))
        target.write_bytes(b'old')

    points = faults.sweep([_fsatomic], lambda: _fsatomic.atomic_write(str(target), b'new'), check)
    assert points >= 5


def test_failed_fsync_is_not_retried_and_aborts_the_write(tmp_path):
    target = tmp_path / 'f'
    target.write_bytes(b'old')
    plan = faults.FaultPlan(fail_at=1, err=errno.EIO, only={'fsync'})
    with faults.inject([_fsatomic], plan):
        with pytest.raises(_fsatomic.DurabilityError):
            _fsatomic.atomic_write(str(target), b'new')
    assert plan.log.count('fsync') == 1
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['f']


def test_exchange_swaps_a_file_and_a_directory(tmp_path):
    (tmp_path / 'a').write_text('file')
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'inner').write_text('x')
    _fsatomic.exchange(str(tmp_path / 'a'), str(tmp_path / 'b'))
    assert (tmp_path / 'a' / 'inner').read_text() == 'x'
    assert (tmp_path / 'b').read_text() == 'file'


def test_makedirs_durable_creates_missing_parents_only(tmp_path):
    deep = tmp_path / 'x' / 'y' / 'z'
    assert _fsatomic.makedirs_durable(str(deep), mode=0o700) is True
    assert deep.is_dir()
    assert (deep.stat().st_mode & 0o777) == 0o700
    assert _fsatomic.makedirs_durable(str(deep)) is False


def test_remove_tree_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'keep').write_text('keep')
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'link').symlink_to(outside)
    _fsatomic.remove_tree(str(tree))
    assert not tree.exists()
    assert (outside / 'keep').read_text() == 'keep'


def test_removing_stale_temporary_files_is_made_durable(tmp_path):
    target = tmp_path / 'state.json'
    target.write_text('{}\n')
    stale = tmp_path / ('%sstate.json.%s' % (_fsatomic.TMP_PREFIX, '0badcafe'))
    stale.write_text('half-written by a killed run')
    _fsatomic.fsync_dir(str(tmp_path))  # the leftover is durable: a power cut would keep it
    tracker = DurabilityTracker()
    with faults.inject([_fsatomic], faults.FaultPlan(observer=tracker)):
        assert _fsatomic.remove_stale_temps(str(target)) == [stale.name]
    assert not stale.exists()
    assert tracker.problems() == [], 'the removal would be undone by a power cut'


def test_atomic_produce_replaces_the_file_only_when_the_producer_finished(tmp_path):
    target = tmp_path / 'evidence.tar.gz'
    target.write_bytes(b'old')

    def failing(tmp):
        with open(tmp, 'wb') as handle:
            handle.write(b'half')
        raise OSError('tar died')
    with pytest.raises(OSError, match='tar died'):
        _fsatomic.atomic_produce(str(target), failing)
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['evidence.tar.gz']

    (tmp_path / 'in').mkdir()
    _fsatomic.atomic_produce(str(target), lambda tmp: subprocess.run(
        ['tar', '--create', '--gzip', '--file', tmp, '--directory', str(tmp_path), 'in'], check=True))
    assert subprocess.check_output(['tar', '--list', '--gzip', '--file', str(target)], text=True) == 'in/\n'
    assert oct(os.stat(target).st_mode & 0o777) == '0o600'
    assert sorted(os.listdir(tmp_path)) == ['evidence.tar.gz', 'in']
