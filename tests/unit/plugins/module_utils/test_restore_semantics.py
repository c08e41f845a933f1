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
