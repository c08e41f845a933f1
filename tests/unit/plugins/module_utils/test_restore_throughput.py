"""What makes restores fast without weakening them: one read pass, batched parallel work, checks by identity.

Behaviour only (which files are read, what is refused, what is durable); no timings.
"""

import os
import shutil
import tempfile

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic, _manifest, _restore, _store
from lib import faults, trees
from lib.durability import DurabilityTracker

ENGINE = [_restore, _store, _manifest, _fsatomic]
MARKERS = ('.lastgood-tmp-', '.staging-', '.deleting-', '.restore-', '.displaced-')
# more files than three fsync batches, and more bytes than one copy batch: worker threads do the work
MANY = 3 * _restore.FSYNC_BATCH + 20


class ManyFiles:
    """A live tree of many small files, a LASTGOOD backup of it, then a bad change to one file."""

    def __init__(self, base):
        self.app = os.path.join(base, 'live', 'app')
        self.root = os.path.join(base, 'store')
        trees.write_file(os.path.join(self.app, 'conf', 'app.yml'), b'port: 8080\n', 0o640)
        trees.write_file(os.path.join(self.app, 'bin', 'run.sh'), b'#!/bin/sh\nexec app\n', 0o755)
        for number in range(MANY):
            trees.write_file(os.path.join(self.app, 'many', 'd%d' % (number % 7), 'f%03d' % number),
                             (b'%d\n' % number) * 60)
        os.link(os.path.join(self.app, 'conf', 'app.yml'), os.path.join(self.app, 'conf', 'hardlink.yml'))
        os.symlink('conf/app.yml', os.path.join(self.app, 'current'))
        self.backup_id = self.store().create([self.app], mark_lastgood=True)['id']
        self.new = trees.tree_digest(self.app)
        shutil.rmtree(os.path.join(self.app, 'many', 'd3'))
        trees.write_file(os.path.join(self.app, 'conf', 'app.yml'), b'broken\n')
        self.old = trees.tree_digest(self.app)

    def store(self):
        return _store.Store(self.root, 'app')

    def restore(self, **options):
        return _restore.restore(self.store(), **options)

    def leftovers(self):
        journal = os.path.join(self.store().set_dir, '.journal')
        return trees.leftovers(os.path.dirname(self.app), markers=MARKERS) + (
            [name for name in os.listdir(journal) if not name.startswith('.')] if os.path.isdir(journal) else [])


@pytest.fixture
def many(tmp_path):
    base = tempfile.mkdtemp(prefix='lastgood-restore-', dir='/dev/shm') if os.access('/dev/shm', os.W_OK) \
        else str(tmp_path)
    try:
        yield ManyFiles(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


class ReadCounter:
    """Observer: read()/readv() calls per file, by the path the descriptor points at; and the files read
    once the restored version has been swapped in (``after_swap``)."""

    def __init__(self):
        self.reads = {}
        self.swapped = False
        self.after_swap = set()

    def before(self, name, args, kwargs):
        if name in ('exchange', 'rename'):
            self.swapped = True
        if name in ('read', 'readv'):
            path = os.readlink('/proc/self/fd/%d' % args[0])
            self.reads[path] = self.reads.get(path, 0) + 1
            if self.swapped:
                self.after_swap.add(path)

    def after(self, name, args, kwargs, result, token):
        pass


def test_many_files_are_restored_by_worker_threads_and_the_run_is_durable(many):
    tracker = DurabilityTracker(MARKERS)
    with faults.inject(ENGINE, faults.FaultPlan(observer=tracker)):
        result = many.restore(keep_displaced=False)
    assert trees.tree_digest(many.app) == many.new
    assert [entry['verified'] for entry in result['paths']] == [True]
    assert tracker.problems() == []
    assert many.leftovers() == []


def test_each_restored_file_is_read_from_the_backup_once_and_nothing_restored_is_read_back(many):
    data = many.store().data_dir(many.backup_id)
    counter = ReadCounter()
    with faults.inject(ENGINE, faults.FaultPlan(observer=counter)):
        many.restore(keep_displaced=False)
    from_backup = {path: count for path, count in counter.reads.items() if path.startswith(data + '/')}
    # small files: one read returns the content, one more sees the end
    assert len(from_backup) == MANY + 2 and set(from_backup.values()) == {2}
    assert not [path for path in counter.reads if '/.restore-' in path], 'the stage was read back'
    assert not [path for path in counter.after_swap if path.startswith(many.app + '/')], 'the target was read back'


def test_a_failed_fsync_among_many_stops_the_restore_is_never_retried_and_recovery_settles(many):
    tracker = DurabilityTracker(MARKERS)
    plan = faults.FaultPlan(fail_at=3 * _restore.FSYNC_BATCH // 2, only={'fsync'}, observer=tracker)
    with faults.inject(ENGINE, plan):
        with pytest.raises(_restore.RestoreError) as info:
            many.restore(keep_displaced=False)
    assert plan.fired == 1 and 'fsync failed' in str(info.value) and 'never retried' in str(info.value)
    assert tracker.fsyncs_after_failure() == []
    _restore.recover_journal(many.store().set_dir)
    assert trees.tree_digest(many.app) == many.old and many.leftovers() == []


def test_a_damaged_file_among_many_is_refused_before_the_live_version_is_kept(many):
    damaged = os.path.join(many.store().data_dir(many.backup_id), many.app.lstrip('/'), 'many', 'd3', 'f150')
    with open(damaged, 'r+b') as handle:
        handle.write(b'X')
    with pytest.raises(_restore.RestoreError) as info:
        many.restore()
    message = str(info.value)
    assert 'many/d3/f150: the backup does not match its manifest' in message and 'untouched' in message, message
    assert 'restore another backup' in message
    assert trees.tree_digest(many.app) == many.old and many.leftovers() == []
    assert [backup['id'] for backup in many.store().list()] == [many.backup_id], 'a pre-restore backup was kept'


class ReplaceAfterSwap:
    """Another process replaces a restored file right after the swap: same size, mode and mtime, other bytes."""

    def __init__(self, path):
        self.path = path
        self.done = False

    def before(self, name, args, kwargs):
        return None

    def after(self, name, args, kwargs, result, token):
        if name == 'exchange' and not self.done and os.path.isfile(self.path):
            self.done = True
            st = os.lstat(self.path)
            with open(self.path + '.new', 'wb') as handle:
                handle.write(b'X' * st.st_size)
            os.chmod(self.path + '.new', st.st_mode & 0o7777)
            os.utime(self.path + '.new', ns=(st.st_mtime_ns, st.st_mtime_ns))
            os.rename(self.path + '.new', self.path)


@pytest.mark.parametrize('how', ['replaced', 'rewritten-in-place'])
def test_a_file_changed_behind_the_restore_with_the_same_metadata_fails_verify_after(many, how):
    path = os.path.join(many.app, 'many', 'd3', 'f010')
    observer = ReplaceAfterSwap(path)
    if how == 'rewritten-in-place':
        def rewrite(name, args, kwargs, result, token):
            if name == 'exchange' and not observer.done and os.path.isfile(path):
                observer.done = True
                st = os.lstat(path)
                with open(path, 'r+b') as handle:
                    handle.write(b'X')
                os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns))
        observer.after = rewrite
    with faults.inject(ENGINE, faults.FaultPlan(observer=observer)):
        with pytest.raises(_restore.RestoreError) as info:
            many.restore()
    assert observer.done
    message = str(info.value)
    assert 'verifying the restored targets' in message and 'many/d3/f010: content' in message, message
    assert 'Rolled back' in message
    assert trees.tree_digest(many.app) == many.old and many.leftovers() == []
