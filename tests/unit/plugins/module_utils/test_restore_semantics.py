"""What a restore puts back and what it leaves alone: hardlinks across directories, symlinks planted
inside a backed-up tree, live sockets and devices, files written while the restore ran, failed restores."""

import os
import socket
import stat
import threading

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic, _manifest, _restore, _store
from lib import faults, trees
from lib.scenarios import remove_tree

ENGINE = [_restore, _store, _manifest, _fsatomic]


class Place:
    """A directory ``src`` to back up, a store beside it, and ``outside`` (never to be written)."""

    def __init__(self, base):
        self.base = str(base)
        self.src = os.path.join(self.base, 'src')
        self.outside = os.path.join(self.base, 'outside')
        self.backup_root = os.path.join(self.base, 'store')
        os.makedirs(self.src)
        os.makedirs(self.outside)

    def path(self, rel):
        return os.path.join(self.src, rel)

    def write(self, rel, data):
        trees.write_file(self.path(rel), data)

    def store(self):
        return _store.Store(self.backup_root, 'set')

    def backup(self, **options):
        options.setdefault('mark_lastgood', True)
        return self.store().create([self.src], **options)

    def restore(self, **options):
        return _restore.restore(self.store(), **options)

    def pins(self):
        path = os.path.join(self.store().set_dir, 'PINNED')
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return handle.read().split()

    def backups(self):
        return [info['id'] for info in self.store().list()]

    def read(self, path):
        with open(path, 'rb') as handle:
            return handle.read()


@pytest.fixture
def place(tmp_path):
    return Place(tmp_path)


def same_inode(first, second):
    one, two = os.lstat(first), os.lstat(second)
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)


# -- hardlinks across directories (defect 1) ----------------------------------------------------------------


def _hardlinks_in_sibling_directories(place):
    place.write('a/x', b'A\n')
    os.makedirs(place.path('b'))
    os.link(place.path('a/x'), place.path('b/y'))


def _hardlink_to_a_top_level_file(place):
    place.write('d/f1', b'F\n')
    os.link(place.path('d/f1'), place.path('top'))


def _hardlinks_beside_an_unrelated_file_of_the_same_name(place):
    _hardlinks_in_sibling_directories(place)
    place.write('b/x', b'unrelated\n')


HARDLINK_TREES = {
    'sibling-directories': (_hardlinks_in_sibling_directories, [('a/x', 'b/y', b'A\n')], [('b/x', None)]),
    'top-level-file': (_hardlink_to_a_top_level_file, [('d/f1', 'top', b'F\n')], []),
    'unrelated-same-name': (_hardlinks_beside_an_unrelated_file_of_the_same_name, [('a/x', 'b/y', b'A\n')],
                            [('b/x', b'unrelated\n')]),
}


def _assert_hardlinks_restored(place, case):
    _build, links, others = HARDLINK_TREES[case]
    for first, second, data in links:
        assert same_inode(place.path(first), place.path(second)), '%s and %s are not one inode' % (first, second)
        assert place.read(place.path(first)) == data
    for rel, data in others:
        if data is None:
            assert not os.path.lexists(place.path(rel))
        else:
            assert place.read(place.path(rel)) == data
            assert not same_inode(place.path(rel), place.path(links[0][0]))


@pytest.mark.parametrize('case', sorted(HARDLINK_TREES))
def test_hardlinks_across_directories_are_restored_into_an_empty_place(place, case):
    HARDLINK_TREES[case][0](place)
    place.backup()
    remove_tree(place.src)
    place.restore()
    _assert_hardlinks_restored(place, case)


@pytest.mark.parametrize('case', sorted(HARDLINK_TREES))
def test_hardlinks_across_directories_are_restored_over_a_changed_tree_and_undo_brings_the_change_back(place, case):
    HARDLINK_TREES[case][0](place)
    place.backup()
    before = trees.tree_digest(place.src)
    for rel in HARDLINK_TREES[case][1][0][:2]:
        os.unlink(place.path(rel))
    place.write('new', b'changed\n')
    changed = trees.tree_digest(place.src)
    place.restore()
    _assert_hardlinks_restored(place, case)
    assert trees.tree_digest(place.src) == before
    place.restore(undo=True)
    assert trees.tree_digest(place.src) == changed


def test_a_partial_restore_links_the_members_of_a_hardlink_group_whose_file_lies_outside_it(place):
    # "-rf" sorts first, so the manifest records it as the file and both members below sub/ as its hardlinks
    place.write('-rf', b'shared\n')
    os.makedirs(place.path('sub'))
    os.setxattr(place.path('-rf'), 'user.origin', b'kept')
    for member in ('sub/p', 'sub/q'):
        os.link(place.path('-rf'), place.path(member))
    place.backup()
    for member in ('sub/p', 'sub/q'):
        os.unlink(place.path(member))
        place.write(member, b'broken apart\n')
    place.restore(paths=[place.path('sub')])
    assert same_inode(place.path('sub/p'), place.path('sub/q'))
    assert not same_inode(place.path('sub/p'), place.path('-rf'))  # outside the restored path: left alone
    assert place.read(place.path('sub/q')) == b'shared\n'
    assert os.getxattr(place.path('sub/q'), 'user.origin') == b'kept'


def test_a_partial_restore_leaves_the_times_of_the_directory_holding_it_as_they_were(place):
    place.write('conf/app.conf', b'good\n')
    place.write('conf/other.conf', b'other\n')
    place.backup()
    place.write('conf/app.conf', b'bad\n')
    os.utime(place.path('conf'), ns=(1234567890123456789, 1234567890123456789))
    result = place.restore(paths=[place.path('conf/app.conf')])
    assert place.read(place.path('conf/app.conf')) == b'good\n'
    assert os.lstat(place.path('conf')).st_mtime_ns == 1234567890123456789
    assert result['warnings'] == []


def test_a_directory_whose_only_difference_is_its_mtime_is_restored_and_a_second_run_changes_nothing(place):
    place.write('conf/app.conf', b'good\n')
    os.utime(place.path('conf'), ns=(1000000000000000005, 1000000000000000005))
    place.backup()
    os.utime(place.path('conf'), ns=(1700000000000000000, 1700000000000000000))
    first = place.restore()
    assert first['changed']
    assert first['plan'][0]['changed'] == [{'path': place.path('conf'), 'reasons': ['mtime']}]
    assert os.lstat(place.path('conf')).st_mtime_ns == 1000000000000000005
    assert not place.restore()['changed']


def test_a_backup_after_a_directory_was_touched_is_a_new_backup_whose_restore_keeps_that_mtime(place):
    place.write('conf/app.conf', b'good\n')
    first = place.backup()['id']
    os.utime(place.path('conf'), ns=(1700000000000000000, 1700000000000000000))
    second = place.backup()['id']
    assert second != first
    os.utime(place.path('conf'), ns=(1000000000000000005, 1000000000000000005))
    place.restore(ref=second)
    assert os.lstat(place.path('conf')).st_mtime_ns == 1700000000000000000


# -- symlinks planted inside a backed-up tree (defect 2) ----------------------------------------------------


def _plant_conf_symlink(place, outside_file=None):
    """The issue's reproduction: back up src (conf/c.conf), then make src/conf a symlink to ``outside``."""
    place.write('conf/c.conf', b'good\n')
    place.write('keep', b'untouched\n')
    place.backup()
    remove_tree(place.path('conf'))
    if outside_file is not None:
        trees.write_file(os.path.join(place.outside, 'c.conf'), outside_file)
    os.symlink(place.outside, place.path('conf'))


@pytest.mark.parametrize('outside_file', [None, b'not yours\n'], ids=['absent-outside', 'present-outside'])
def test_sub_path_restore_replaces_a_planted_symlink_instead_of_writing_through_it(place, outside_file):
    _plant_conf_symlink(place, outside_file)
    outside_before = trees.tree_digest(place.outside)
    result = place.restore(paths=[place.path('conf/c.conf')])
    assert trees.tree_digest(place.outside) == outside_before
    assert os.listdir(place.outside) == ([] if outside_file is None else ['c.conf'])
    assert not os.path.islink(place.path('conf')) and os.path.isdir(place.path('conf'))
    assert place.read(place.path('conf/c.conf')) == b'good\n'
    assert [entry['path'] for entry in result['paths']] == [place.path('conf')]
    assert any(place.path('conf') in warning and 'a symlink to ' + place.outside in warning
               for warning in result['warnings']), result['warnings']
    kept = os.path.join(place.store().data_dir(result['displaced_backup']), place.path('conf').lstrip('/'))
    assert os.readlink(kept) == place.outside, 'the pre-restore backup keeps the replaced symlink'
    place.restore(undo=True)
    assert os.readlink(place.path('conf')) == place.outside
    assert trees.tree_digest(place.outside) == outside_before


def test_check_mode_plans_the_widened_restore_and_writes_nothing(place):
    _plant_conf_symlink(place, b'not yours\n')
    result = place.restore(paths=[place.path('conf/c.conf')], check_mode=True)
    assert result['plan'][0]['path'] == place.path('conf')
    assert result['warnings']
    assert os.readlink(place.path('conf')) == place.outside
    with open(os.path.join(place.outside, 'c.conf'), 'rb') as handle:
        assert handle.read() == b'not yours\n'


def test_full_restore_replaces_a_symlink_planted_at_a_child_of_the_backed_up_root(place):
    _plant_conf_symlink(place, b'not yours\n')
    outside_before = trees.tree_digest(place.outside)
    place.restore()
    assert trees.tree_digest(place.outside) == outside_before
    assert os.path.isdir(place.path('conf')) and not os.path.islink(place.path('conf'))
    assert place.read(place.path('conf/c.conf')) == b'good\n'


def test_restore_of_a_path_the_backup_lacks_below_a_planted_symlink_removes_nothing_outside(place):
    place.write('keep', b'untouched\n')
    place.backup()
    os.symlink(place.outside, place.path('conf'))
    trees.write_file(os.path.join(place.outside, 'c.conf'), b'not yours\n')
    result = place.restore(paths=[place.path('conf/c.conf')])
    assert result['changed'] is False
    with open(os.path.join(place.outside, 'c.conf'), 'rb') as handle:
        assert handle.read() == b'not yours\n'


def test_undo_of_a_sub_path_restore_never_writes_through_a_symlink_planted_since(place):
    place.write('conf/c.conf', b'good\n')
    place.backup()
    place.write('conf/c.conf', b'changed\n')
    place.restore(paths=[place.path('conf/c.conf')])
    os.rename(place.path('conf'), os.path.join(place.base, 'conf-aside'))
    os.symlink(place.outside, place.path('conf'))
    result = place.restore(undo=True)
    assert os.listdir(place.outside) == [], 'undo wrote through the planted symlink'
    assert os.readlink(place.path('conf')) == place.outside
    assert any('a symlink to ' + place.outside in warning and 'left alone' in warning
               for warning in result['warnings'])


def test_a_path_below_a_planted_symlink_the_backup_has_no_directory_for_is_left_alone_with_a_warning(place):
    place.write('keep', b'untouched\n')
    place.backup()
    os.symlink(place.outside, place.path('conf'))
    result = place.restore(paths=[place.path('conf/c.conf')], check_mode=True)
    assert any(place.path('conf/c.conf') in warning and 'left alone' in warning for warning in result['warnings'])


def test_a_symlink_planted_after_planning_stops_the_restore_before_anything_is_written_through_it(place):
    place.write('conf/c.conf', b'good\n')
    place.backup()
    place.write('conf/c.conf', b'changed\n')
    plan = faults.FaultPlan(observer=PlantBeforeStaging(place))
    with faults.inject(ENGINE, plan):
        with pytest.raises(_restore.RestoreError) as info:
            place.restore(paths=[place.path('conf/c.conf')])
    assert 'is no longer a directory' in str(info.value) and 'Rolled back' in str(info.value)
    assert os.listdir(place.outside) == []
    assert os.readlink(place.path('conf')) == place.outside


class PlantBeforeStaging:
    """Swaps src/conf for a symlink right after the restore journal is first written (planning is done)."""

    def __init__(self, place):
        self.place = place
        self.done = False

    def before(self, name, args, kwargs):
        return None

    def after(self, name, args, kwargs, result, token):
        if name == 'replace' and '.journal' in str(args[1]) and not self.done:
            self.done = True
            os.rename(self.place.path('conf'), os.path.join(self.place.base, 'conf-aside'))
            os.symlink(self.place.outside, self.place.path('conf'))


# -- live sockets and device nodes (defect 6) -------------------------------------------------------------


def _bind_socket(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    return sock


def test_live_sockets_below_a_restored_directory_are_kept_with_a_warning(place):
    place.write('run/pid', b'1\n')
    place.write('conf', b'good\n')
    place.backup()
    place.write('conf', b'changed\n')
    sock = _bind_socket(place.path('run/app.sock'))
    try:
        inode = os.lstat(place.path('run/app.sock')).st_ino
        result = place.restore()
        assert stat.S_ISSOCK(os.lstat(place.path('run/app.sock')).st_mode)
        assert os.lstat(place.path('run/app.sock')).st_ino == inode
        assert place.read(place.path('conf')) == b'good\n'
        assert any(place.path('run/app.sock') in warning and 'kept' in warning for warning in result['warnings'])
        again = place.restore()
        assert again['changed'] is False, 'a kept socket is no difference'
    finally:
        sock.close()


def test_live_socket_in_a_directory_the_backup_lacks_is_named_in_a_warning(place):
    place.write('conf', b'good\n')
    place.backup()
    sock = _bind_socket(place.path('new/app.sock'))
    try:
        result = place.restore()
        assert not os.path.lexists(place.path('new'))
        assert any(place.path('new/app.sock') in warning and 'removed' in warning for warning in result['warnings'])
    finally:
        sock.close()


@pytest.mark.skipif(os.geteuid() != 0, reason='only root makes device nodes')
def test_live_device_nodes_below_a_restored_directory_are_kept(place):
    place.write('dev/readme', b'devices\n')
    place.backup()
    place.write('dev/readme', b'changed\n')
    os.mknod(place.path('dev/null'), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    result = place.restore()
    assert stat.S_ISCHR(os.lstat(place.path('dev/null')).st_mode)
    assert any(place.path('dev/null') in warning for warning in result['warnings'])


# -- files written during a restore, and what a failed restore leaves (defects 7 and 8) ------------------------


class WriterAfterSwap:
    """Another process: writes a file into the restored tree right after it was swapped in."""

    def __init__(self, path):
        self.path = path
        self.done = False
        self.thread = None

    def before(self, name, args, kwargs):
        return None

    def after(self, name, args, kwargs, result, token):
        if name == 'exchange' and not self.done:
            self.done = True
            self.thread = threading.Thread(target=trees.write_file, args=(self.path, b'written meanwhile\n'))
            self.thread.start()
            self.thread.join()


def _changed_tree(place):
    place.write('conf/c.conf', b'good\n')
    backup_id = place.backup()['id']
    place.write('conf/c.conf', b'changed\n')
    return backup_id


def test_a_file_written_during_the_restore_is_kept_in_a_pinned_rejected_backup(place):
    backup_id = _changed_tree(place)
    writer = WriterAfterSwap(place.path('conf/late.txt'))
    with faults.inject(ENGINE, faults.FaultPlan(observer=writer)):
        with pytest.raises(_restore.RestoreError) as info:
            place.restore()
    rejected = 'rejected-' + backup_id
    assert 'files written during the restore are kept in backup %s' % rejected in str(info.value)
    assert 'every target is exactly as before' not in str(info.value)
    kept = os.path.join(place.store().data_dir(rejected), place.path('conf/late.txt').lstrip('/'))
    assert place.read(kept) == b'written meanwhile\n'
    assert rejected in place.pins()
    assert place.read(place.path('conf/c.conf')) == b'changed\n'


def test_a_failed_restore_removes_its_pre_restore_backup_and_leaves_no_pin(place):
    _changed_tree(place)
    pins, backups = place.pins(), place.backups()
    with faults.inject(ENGINE, faults.FaultPlan(fail_at=1, only={'exchange'}, err=13)):
        with pytest.raises(_restore.RestoreError) as info:
            place.restore()
    message = str(info.value)
    assert 'Rolled back' in message and 'not needed' not in message
    assert 'was removed' in message
    assert place.pins() == pins and place.backups() == backups
    assert not [name for name in os.listdir(place.store().set_dir) if name.startswith('.deleting-')]
    assert place.read(place.path('conf/c.conf')) == b'changed\n'


class Crash(BaseException):
    """The process dies here: nothing after it runs, no clean-up either."""


def test_recovery_that_rolls_an_interrupted_restore_back_removes_its_pre_restore_backup(place, monkeypatch):
    _changed_tree(place)
    pins, backups = place.pins(), place.backups()

    def crash(unit, goal):
        raise Crash()
    monkeypatch.setattr(_restore, 'place', crash)
    with pytest.raises(Crash):
        place.restore()
    monkeypatch.undo()
    assert any(backup_id.startswith('pre-restore-') for backup_id in place.backups())
    place.store().recover()
    assert place.pins() == pins and place.backups() == backups
    assert place.read(place.path('conf/c.conf')) == b'changed\n'
