"""The restore engine: verified, all or nothing, journalled; faults and kill -9 leave exactly old or new."""

import collections
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic, _manifest, _restore, _store
from lib import faults, kill9, trees
from lib.durability import DurabilityTracker
from lib.scenarios import clone_tree, remove_tree

ENGINE = [_restore, _store, _manifest, _fsatomic]
MARKERS = ('.lastgood-tmp-', '.staging-', '.deleting-', '.restore-', '.displaced-')
MTIME = trees.MTIME_NS
LATER = MTIME + 10 ** 9
KILLS = 210
SLOW_KILLS = 2400
SEED = int(os.environ.get('RESTORE_SEED', '20261122'))
FAST_TMP = '/dev/shm'
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
COLLECTIONS = os.path.join(os.path.dirname(TESTS), '.collections')


def build_v1(app, etc, small=False):
    """The known-good state: every entry type the store records (``small``: fewer files, for the sweeps)."""
    trees.write_file(os.path.join(app, 'conf', 'app.yml'), b'port: 8080\nfeature: on\n', 0o640)
    trees.write_file(os.path.join(app, 'bin', 'run.sh'), b'#!/bin/sh\nexec app --v1\n', 0o755)
    if not small:
        trees.write_file(os.path.join(app, 'conf', 'secret.key'), b'\x00\x01\x02key-v1', 0o600)
        trees.write_file(os.path.join(app, 'data', 'blob.bin'), bytes(range(256)) * 64)
    os.link(os.path.join(app, 'conf', 'app.yml'), os.path.join(app, 'conf', 'app-hardlink.yml'))
    os.symlink('conf/app.yml', os.path.join(app, 'current'))
    os.makedirs(os.path.join(app, 'empty'))
    os.chmod(os.path.join(app, 'bin'), 0o750)
    trees.write_file(os.path.join(etc, 'app.conf'), b'level = 1\n')


def break_to_v2(app, etc, small=False):
    """A bad deploy: content, modes, added, removed, retargeted and type-changed entries."""
    trees.write_file(os.path.join(app, 'conf', 'app.yml'), b'port: 9090\nfeature: off\n', 0o644, LATER)
    trees.write_file(os.path.join(app, 'bin', 'run.sh'), b'#!/bin/sh\nexec app --v2\n', 0o700, LATER)
    if small:
        trees.write_file(os.path.join(app, 'bin', 'added'), b'added by v2\n')
    else:
        trees.write_file(os.path.join(app, 'conf', 'secret.key'), b'\x00\x01\x02key-v2', 0o600, LATER)
        os.unlink(os.path.join(app, 'data', 'blob.bin'))
        trees.write_file(os.path.join(app, 'data', 'new.txt'), b'added by v2\n')
        trees.write_file(os.path.join(app, 'data', 'big.txt'), b'large text line\n' * 5000)
    os.unlink(os.path.join(app, 'current'))
    os.symlink('bin/run.sh', os.path.join(app, 'current'))
    os.rmdir(os.path.join(app, 'empty'))
    trees.write_file(os.path.join(app, 'empty'), b'now a file\n')
    os.chmod(os.path.join(app, 'bin'), 0o755)
    trees.write_file(os.path.join(etc, 'app.conf'), b'level = 2\n', 0o600, LATER)


class World:
    """Two live targets after a bad deploy and a store whose LASTGOOD backup holds their good state.

    ``old`` is the state before a restore, ``new`` the state a clean restore gives;
    ``reset()`` puts the work directory (live trees and store) back exactly.
    """

    def __init__(self, base, excludes=(), small=False):
        self.base = str(base)
        self.work = os.path.join(self.base, 'work')
        self.template = os.path.join(self.base, 'template')
        self.app = os.path.join(self.work, 'live', 'app')
        self.etc = os.path.join(self.work, 'live', 'etc', 'app.d')
        self.backup_root = os.path.join(self.work, 'store')
        build_v1(self.app, self.etc, small)
        self.backup_id = self.store().create([self.app, self.etc], mark_lastgood=True, excludes=excludes)['id']
        self.new = self.state()
        break_to_v2(self.app, self.etc, small)
        self.old = self.state()
        clone_tree(self.work, self.template)
        # every run starts from a copy, this first one too: a copy's inodes are newer than the manifest beside them,
        # so an incremental backup re-hashes what the engine-written original would have trusted
        self.reset()

    def store(self):
        return _store.Store(self.backup_root, 'app')

    def state(self):
        return trees.tree_digest(self.app), trees.tree_digest(self.etc)

    def reset(self):
        remove_tree(self.work)
        clone_tree(self.template, self.work)

    def snapshot(self, where):
        """Copy the work directory aside, with where each version sits (a copy gets new inodes)."""
        remove_tree(where)
        clone_tree(self.work, where)
        layout = {}
        for path in self.journal_records():
            with open(path) as handle:
                record = json.load(handle)
            layout[path] = [[(slot, _holder(unit, slot)) for slot in ('target', 'stage', 'displaced')]
                            for item in record['items'] for unit in item['units']]
        with open(where + '.layout', 'w') as handle:
            json.dump(layout, handle)

    def restore_snapshot(self, where):
        """Put the copy back and point its journal at the copied versions' new inodes."""
        remove_tree(self.work)
        clone_tree(where, self.work)
        with open(where + '.layout') as handle:
            layout = json.load(handle)
        for path, units in layout.items():
            with open(path) as handle:
                record = json.load(handle)
            flat = [unit for item in record['items'] for unit in item['units']]
            for unit, slots in zip(flat, units):
                for slot, version in slots:
                    if version in ('old', 'new'):
                        unit[version] = _restore._ident(unit[slot])
            with open(path, 'w') as handle:
                json.dump(record, handle)

    def restore(self, **options):
        return _restore.restore(self.store(), **options)

    def recover(self):
        store = self.store()
        reports = _restore.recover_journal(store.set_dir)
        store.recover()
        return reports

    def journal_entries(self):
        directory = os.path.join(self.backup_root, 'app', '.journal')
        return sorted(os.listdir(directory)) if os.path.isdir(directory) else []

    def journal_records(self):
        directory = os.path.join(self.backup_root, 'app', '.journal')
        return [os.path.join(directory, name) for name in self.journal_entries()
                if name.endswith('.json') and not name.startswith('.')]

    def leftovers(self):
        return trees.leftovers(self.work, markers=MARKERS) + self.journal_entries()

    def backup_data(self, backup_id, live_path):
        return os.path.join(self.store().data_dir(backup_id), live_path.lstrip('/'))

    def settled(self, where=''):
        """Recover, then check the promise; returns 'old' or 'new'."""
        self.recover()
        state = self.state()
        assert state in (self.old, self.new), '%s: state is neither old nor new' % where
        assert self.store().verify(self.backup_id)['ok'], '%s: the backup no longer verifies' % where
        assert self.store().resolve(None)['id'] == self.backup_id, '%s: LASTGOOD moved' % where
        assert self.leftovers() == [], '%s: left behind %s' % (where, self.leftovers())
        return 'old' if state == self.old else 'new'


def _holder(unit, slot):
    """Which version of a journal unit sits at ``slot``: 'old', 'new', '-' (nothing) or '?'."""
    found = _restore._ident(unit[slot])
    if found is None:
        return '-'
    return 'old' if found == unit['old'] else 'new' if found == unit['new'] else '?'


@pytest.fixture
def fast_dir(tmp_path):
    """Scratch space on tmpfs when there is one: the sweeps make thousands of real fsyncs."""
    if not os.access(FAST_TMP, os.W_OK):
        yield tmp_path
        return
    path = tempfile.mkdtemp(prefix='lastgood-restore-', dir=FAST_TMP)
    try:
        yield path
    finally:
        remove_tree(path)


@pytest.fixture
def world(fast_dir):
    return World(fast_dir)


@pytest.fixture
def small_world(fast_dir):
    """Fewer files: every sweep below runs the whole restore once per I/O call."""
    return World(fast_dir, small=True)


@contextlib.contextmanager
def exchange_unsupported():
    """A kernel or file system without RENAME_EXCHANGE: the engine must use two journalled renames."""
    real = _fsatomic._exchange_syscall

    def refuse(first, second):
        raise OSError(errno.ENOSYS, 'renameat2 is not available', first)
    _fsatomic._exchange_syscall = refuse
    try:
        yield
    finally:
        _fsatomic._exchange_syscall = real


SWAPS = [pytest.param(contextlib.nullcontext, id='exchange'), pytest.param(exchange_unsupported, id='two-renames')]


# -- behaviour ------------------------------------------------------------------------------------------------


def test_restore_makes_targets_exactly_the_backup_and_keeps_the_displaced_version(world):
    before_app = trees.tree_digest(world.app)
    result = world.restore()
    assert world.state() == world.new
    assert result['changed'] is True
    assert [(entry['path'], entry['state'], entry['verified']) for entry in result['paths']] == [
        (world.app, 'restored', True), (world.etc, 'restored', True)]
    assert result['displaced_backup'] == 'pre-restore-' + world.backup_id
    assert trees.tree_digest(world.backup_data(result['displaced_backup'], world.app)) == before_app
    assert world.store().verify(result['displaced_backup'])['ok']
    assert world.leftovers() == []
    assert 'undo: true puts them back' in result['msg']


def test_second_identical_restore_reports_no_change(world):
    world.restore()
    listed = [info['id'] for info in world.store().list()]
    again = world.restore()
    assert again['changed'] is False
    assert [entry['state'] for entry in again['paths']] == ['unchanged', 'unchanged']
    assert [info['id'] for info in world.store().list()] == listed
    assert world.state() == world.new


def test_check_mode_returns_the_plan_and_writes_nothing(world):
    before = trees.tree_digest(world.work)
    result = world.restore(check_mode=True)
    assert trees.tree_digest(world.work) == before
    assert result['changed'] is True
    plan = {entry['path']: entry for entry in result['plan']}
    app = plan[world.app]
    assert app['added'] == [world.app + '/data/blob.bin']
    assert sorted(app['removed']) == [world.app + '/data/big.txt', world.app + '/data/new.txt']
    reasons = {item['path']: item['reasons'] for item in app['changed']}
    assert 'content' in reasons[world.app + '/conf/secret.key']
    assert reasons[world.app + '/bin'] == ['mode']
    assert reasons[world.app + '/current'] == ['mtime', 'target']
    assert reasons[world.app + '/empty'] == ['type']
    assert plan[world.etc]['changed'][0]['path'] == world.etc + '/app.conf'
    assert [entry['state'] for entry in result['paths']] == ['would be restored'] * 2


def test_diff_shows_small_text_files_and_only_names_binary_or_large_ones(world):
    result = world.restore(check_mode=True, diff=True)
    texts = {item['before_header']: item for item in result['diff'] if 'before_header' in item}
    assert texts[world.app + '/conf/app.yml']['before'] == 'port: 9090\nfeature: off\n'
    assert texts[world.app + '/conf/app.yml']['after'] == 'port: 8080\nfeature: on\n'
    assert texts[world.etc + '/app.conf']['after'] == 'level = 1\n'
    summary = result['diff'][-1]['prepared']
    assert world.app + '/conf/secret.key (content, mtime); binary' in summary
    assert world.app + '/data/big.txt; larger than' in summary
    everything = json.dumps(result['diff'])
    assert 'key-v1' not in everything and 'key-v2' not in everything and 'large text line' not in everything


def test_corrupted_backup_is_refused_and_target_untouched(world):
    damaged = world.backup_data(world.backup_id, world.app + '/conf/app.yml')
    with open(damaged, 'r+b') as handle:
        handle.write(b'P')
    with pytest.raises(_restore.RestoreError) as info:
        world.restore()
    message = str(info.value)
    assert 'does not match its manifest' in message and 'untouched' in message
    assert 'conf/app.yml' in message
    assert world.state() == world.old
    assert world.leftovers() == []


def _rewrite_manifest(world, change):
    """Replace the backup's manifest by ``change(raw dict)``, with a MANIFEST.sha256 that agrees with it."""
    directory = world.store().backup_dir(world.backup_id)
    with open(os.path.join(directory, 'MANIFEST.json')) as handle:
        raw = json.load(handle)
    change(raw)
    data = (json.dumps(raw, indent=1, sort_keys=True) + '\n').encode()
    with open(os.path.join(directory, 'MANIFEST.json'), 'wb') as handle:
        handle.write(data)
    with open(os.path.join(directory, 'MANIFEST.sha256'), 'w') as handle:
        handle.write('%s  MANIFEST.json\n' % hashlib.sha256(data).hexdigest())


def _hostile_entry(kind, world, sentinel):
    rel_app = world.app.lstrip('/')
    file_entry = {'type': 'file', 'size': 5, 'mode': 0o644, 'uid': 0, 'gid': 0, 'mtime_ns': MTIME,
                  'sha256': hashlib.sha256(b'owned').hexdigest(), 'target': None}
    if kind == 'dot-dot':
        return [dict(file_entry, path=rel_app + '/../../' + os.path.basename(sentinel))]
    if kind == 'absolute':
        return [dict(file_entry, path=sentinel)]
    link = {'path': rel_app + '/escape', 'type': 'symlink', 'size': 0, 'mode': 0o777, 'uid': 0, 'gid': 0,
            'mtime_ns': MTIME, 'sha256': None, 'target': os.path.dirname(sentinel)}
    return [link, dict(file_entry, path=rel_app + '/escape/' + os.path.basename(sentinel))]


@pytest.mark.parametrize('kind', ['dot-dot', 'absolute', 'through-symlink'])
def test_hostile_manifest_entry_is_refused_and_sentinel_outside_root_unchanged(world, kind):
    sentinel = os.path.join(world.work, 'live', 'sentinel')
    trees.write_file(sentinel, b'keep me\n')

    def add_hostile(raw):
        raw['entries'].extend(_hostile_entry(kind, world, sentinel))
        raw['totals'] = _manifest.totals_of([_manifest.Entry(**item) for item in raw['entries']])
    _rewrite_manifest(world, add_hostile)
    with pytest.raises((_restore.RestoreError, _store.StoreError)) as info:
        world.restore()
    assert 'must not be used' in str(info.value) or 'refused' in str(info.value)
    with open(sentinel, 'rb') as handle:
        assert handle.read() == b'keep me\n'
    assert world.state() == world.old


def _unchecked_manifest(rel, entries):
    """A manifest object built without the loader's checks (what a loader bug would let through)."""
    return _manifest.Manifest('hostile', 'app', '2026-11-21T23:15:00Z', 'host', ['/' + rel],
                              [_manifest.Entry(**entry) for entry in entries])


def test_staging_never_writes_through_a_symlink_even_when_the_manifest_checks_are_bypassed(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    data = tmp_path / 'data'
    rel = 'srv/app'
    trees.write_file(str(data / rel / 'escape' / 'owned'), b'owned')
    digest = hashlib.sha256(b'owned').hexdigest()
    manifest = _unchecked_manifest(rel, [
        {'path': rel, 'type': 'dir', 'mode': 0o755},
        {'path': rel + '/escape', 'type': 'symlink', 'mode': 0o777, 'target': str(outside)},
        {'path': rel + '/escape/owned', 'type': 'file', 'size': 5, 'mode': 0o644, 'mtime_ns': MTIME,
         'sha256': digest},
    ])
    with pytest.raises(OSError) as info:
        _restore.build_tree(manifest, rel, str(data), str(tmp_path / 'stage'), as_root=False)
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert os.listdir(str(outside)) == []


def test_staging_never_reads_backup_data_through_a_symlink(world):
    manifest = world.store().load_manifest(world.backup_id)
    conf = world.backup_data(world.backup_id, world.app + '/conf')
    elsewhere = os.path.join(world.work, 'elsewhere')
    os.rename(conf, elsewhere)
    os.symlink(elsewhere, conf)
    stage = os.path.join(world.work, 'live', '.restore-probe')
    with pytest.raises(OSError) as info:
        _restore.build_tree(manifest, world.app.lstrip('/'), world.store().data_dir(world.backup_id), stage,
                            as_root=os.geteuid() == 0)
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)


def test_partial_restore_touches_only_the_named_paths(world):
    untouched = {path: trees.tree_digest(os.path.join(world.app, path)) for path in ('conf', 'data', 'current')}
    result = world.restore(paths=[world.app + '/bin', world.app + '/empty'])
    assert [entry['path'] for entry in result['paths']] == [world.app + '/bin', world.app + '/empty']
    backed_up = world.backup_data(world.backup_id, world.app + '/bin')
    assert trees.tree_digest(world.app + '/bin') == trees.tree_digest(backed_up)
    assert os.path.isdir(world.app + '/empty')
    assert {path: trees.tree_digest(os.path.join(world.app, path)) for path in untouched} == untouched
    assert trees.tree_digest(world.etc) == world.old[1]
    assert world.leftovers() == []


def test_partial_restore_of_a_path_the_backup_does_not_hold_removes_it_and_undo_brings_it_back(world):
    extra = world.app + '/data/new.txt'
    result = world.restore(paths=[extra])
    assert result['plan'][0]['removed'] == [extra]
    assert not os.path.lexists(extra)
    world.restore(undo=True)
    assert world.state() == world.old


def test_path_outside_the_backup_is_refused(world):
    with pytest.raises(_restore.RestoreError) as info:
        world.restore(paths=[os.path.join(world.work, 'live', 'other')])
    assert 'is not part of backup' in str(info.value)
    assert world.state() == world.old


def test_undo_returns_exactly_the_state_before_the_restore(world):
    restored = world.restore()
    undone = world.restore(undo=True)
    assert world.state() == world.old
    assert undone['backup_id'] == restored['displaced_backup']
    assert undone['undone']['restored'] == world.backup_id
    assert undone['displaced_backup'] == 'pre-undo-' + restored['displaced_backup']
    again = world.restore(undo=True)
    assert again['changed'] is False
    assert world.state() == world.old
    assert world.leftovers() == []


def test_undo_of_a_partial_restore_puts_back_only_what_it_changed(world):
    world.restore(paths=[world.etc])
    world.restore(undo=True)
    assert world.state() == world.old


def test_undo_without_a_completed_restore_is_refused(world):
    with pytest.raises(_restore.RestoreError) as info:
        world.restore(undo=True)
    assert 'nothing to undo' in str(info.value)


def test_undo_after_a_restore_that_kept_nothing_is_refused(world):
    world.restore(keep_displaced=False)
    with pytest.raises(_restore.RestoreError) as info:
        world.restore(undo=True)
    assert 'keep_displaced was off' in str(info.value)
    assert world.state() == world.new


def test_restoring_into_a_missing_target_creates_it_and_undo_removes_it(world):
    remove_tree(os.path.dirname(world.etc))
    before = world.state()
    world.restore()
    assert world.state() == world.new
    world.restore(undo=True)
    assert world.state() == before
    assert not os.path.lexists(world.etc)


def test_excluded_live_entries_survive_a_restore_as_the_same_files(fast_dir):
    world = World(fast_dir, excludes=['*.log', 'cache'])
    trees.write_file(os.path.join(world.app, 'app.log'), b'live log\n')
    trees.write_file(os.path.join(world.app, 'cache', 'blob'), b'cached\n')
    log_inode = os.stat(os.path.join(world.app, 'app.log')).st_ino
    result = world.restore()
    assert result['changed'] is True
    assert os.stat(os.path.join(world.app, 'app.log')).st_ino == log_inode
    with open(os.path.join(world.app, 'cache', 'blob'), 'rb') as handle:
        assert handle.read() == b'cached\n'
    os.unlink(os.path.join(world.app, 'app.log'))
    remove_tree(os.path.join(world.app, 'cache'))
    assert world.state() == world.new


class ConcurrentWriter:
    """Writes a file into the target right after it was swapped in (another process at work)."""

    def __init__(self, path):
        self.path = path
        self.done = False

    def before(self, name, args, kwargs):
        return None

    def after(self, name, args, kwargs, result, token):
        if name == 'exchange' and not self.done:
            self.done = True
            trees.write_file(self.path, b'written meanwhile\n')


def test_target_changed_after_the_swap_fails_verification_is_kept_as_a_rejected_backup_then_rolled_back(world):
    plan = faults.FaultPlan(observer=ConcurrentWriter(os.path.join(world.app, 'surprise')))
    with faults.inject(ENGINE, plan):
        with pytest.raises(_restore.RestoreError) as info:
            world.restore()
    message = str(info.value)
    rejected = 'rejected-' + world.backup_id
    assert 'verifying the restored targets' in message and 'surprise' in message
    assert 'Rolled back' in message and 'files written during the restore are kept in backup %s' % rejected in message
    assert [entry['state'] for entry in info.value.paths] == ['untouched', 'untouched']
    assert world.state() == world.old
    with open(world.backup_data(rejected, world.app + '/surprise'), 'rb') as handle:
        assert handle.read() == b'written meanwhile\n', 'the concurrent write is kept'
    info_by_id = {backup['id']: backup for backup in world.store().list()}
    assert info_by_id[rejected]['pinned'] and world.store().verify(rejected)['ok']
    assert not any(backup_id.startswith('pre-restore-') for backup_id in info_by_id)
    assert world.settled() == 'old'


def test_single_file_is_replaced_in_one_atomic_exchange(world):
    path = world.etc + '/app.conf'
    trace = CallTrace()
    trace.plan = faults.FaultPlan(observer=trace)
    with faults.inject(ENGINE, trace.plan):
        result = world.restore(paths=[path])
    assert [entry['state'] for entry in result['paths']] == ['restored']
    with open(path, 'rb') as handle:
        assert handle.read() == b'level = 1\n'
    assert os.stat(path).st_mode & 0o777 == 0o644 and os.stat(path).st_mtime_ns == MTIME
    moves = [(name, arg) for _number, name, arg in trace.calls if name in ('rename', 'exchange', 'replace')
             and os.path.dirname(str(arg)) == world.etc]
    assert [name for name, _arg in moves] == ['exchange'], moves
    assert world.leftovers() == []


def test_without_renameat2_two_journalled_renames_swap_the_target(world):
    with exchange_unsupported():
        log = faults.call_log(ENGINE, world.restore)
    assert world.state() == world.new
    assert log.count('exchange') >= 2 and log.count('rename') >= 4


def test_restore_refuses_a_target_that_contains_the_store(world):
    whole = world.store().create([world.work], name='everything')['id']
    with pytest.raises(_restore.RestoreError) as info:
        world.restore(ref=whole)
    assert 'overlaps the backup store' in str(info.value)
    assert world.store().verify(world.backup_id)['ok']
    assert world.state() == world.old


def test_message_of_a_failed_restore_says_the_target_is_untouched_and_what_to_do(world):
    plan = faults.FaultPlan(fail_at=2, err=errno.ENOSPC, only={'write'})  # call 1 writes the journal
    with faults.inject(ENGINE, plan):
        with pytest.raises(_restore.RestoreError) as info:
            world.restore(keep_displaced=False)
    message = str(info.value)
    assert 'No space left on device' in message
    assert 'Rolled back: every target is exactly as before (untouched)' in message
    assert 'Free space on the file system of the target' in message
    assert info.value.journal is None
    assert world.state() == world.old and world.leftovers() == []


# -- journal and recovery -------------------------------------------------------------------------------------


class CallTrace:
    """Observer that records each I/O call's number in the plan's count, name and first argument."""

    def __init__(self):
        self.plan = None
        self.calls = []

    def before(self, name, args, kwargs):
        self.calls.append((self.plan.calls, name, args[0] if args else None))

    def after(self, name, args, kwargs, result, token):
        pass


def trace_clean_restore(world, swap):
    """The I/O calls of a clean restore, as a CallTrace (the world is reset after it)."""
    trace = CallTrace()
    trace.plan = faults.FaultPlan(observer=trace)
    with swap():
        with faults.inject(ENGINE, trace.plan):
            world.restore()
    world.reset()
    return trace


def call_number(world, swap, name, first_arg):
    """The number of the first I/O call ``name(first_arg, ...)`` a clean restore makes (the world is reset)."""
    trace = trace_clean_restore(world, swap)
    return next(number for number, called, arg in trace.calls if (called, arg) == (name, first_arg))


def interrupt(world, k, swap=contextlib.nullcontext):
    """Run a restore whose I/O fails from call k on (a dead disk); returns the error."""
    with swap():
        with faults.inject(ENGINE, faults.FaultPlan(fail_at=k, persistent=True)):
            try:
                world.restore()
            except (_restore.RestoreError, _store.StoreError) as exc:
                return exc
    return None


def where_versions_are(record):
    """A label for an interrupted state: the phase and, per unit, which version sits where."""
    return record['phase'], tuple(tuple(_holder(unit, slot) for slot in ('target', 'stage', 'displaced'))
                                  for item in record['items'] for unit in item['units'])


def interrupted_states(world, swap, limit=3):
    """Snapshots of distinct interrupted states a dead disk can leave: [(label, k, directory)].

    Tries every 4th call, and every rename/exchange with the call after it; keeps a state
    where a target is absent (between two renames) if there is one, then the first state of
    each other phase, ``limit`` in all.
    """
    trace = trace_clean_restore(world, swap)
    candidates = set(range(1, trace.plan.calls + 1, 4))
    candidates.update(k for number, name, _arg in trace.calls if name in ('rename', 'exchange')
                      for k in (number, number + 1))
    found = {}
    for k in sorted(candidates):
        error = interrupt(world, k, swap)
        journals = world.journal_records()
        if error is not None and journals:
            with open(journals[0]) as handle:
                label = where_versions_are(json.load(handle))
            found.setdefault(label, k)
        world.reset()
    by_k = sorted(found, key=found.get)
    windows = [label for label in by_k if label[0] == 'ready' and any(units[0] == '-' for units in label[1])]
    chosen = windows[:1]
    for label in by_k:
        if len(chosen) < limit and label[0] not in {phase for phase, _units in chosen}:
            chosen.append(label)
    states = []
    for label in sorted(chosen, key=lambda label: found[label]):
        k = found[label]
        interrupt(world, k, swap)
        where = os.path.join(world.base, 'interrupted-%d' % k)
        world.snapshot(where)
        world.reset()
        states.append((label, k, where))
    return states


def test_a_dead_disk_between_the_two_renames_leaves_a_journal_whose_error_says_so(world):
    first = call_number(world, exchange_unsupported, 'rename', world.app)
    with exchange_unsupported():
        error = interrupt(world, first + 1)
    assert error.journal is not None and os.path.isfile(error.journal)
    assert 'rolling back failed too' in str(error) or 'A failed fsync is never retried' in str(error)
    assert 'docs/restore.md' in str(error)
    assert not os.path.lexists(world.app), 'the window between the two renames leaves the target absent'
    reports = world.recover()
    assert [report['direction'] for report in reports] == ['forward']
    assert world.settled() == 'new'


def test_recovery_in_check_mode_reports_what_it_would_do_and_changes_nothing(world):
    first = call_number(world, exchange_unsupported, 'rename', world.app)
    with exchange_unsupported():
        interrupt(world, first + 1)
    before = trees.tree_digest(world.work)
    result = world.restore(check_mode=True)
    assert trees.tree_digest(world.work) == before
    assert [report['direction'] for report in result['recovered']] == ['forward']
    assert result['changed'] is True


def test_next_restore_settles_the_interrupted_one_first_and_reports_it(world):
    first = call_number(world, exchange_unsupported, 'rename', world.app)
    with exchange_unsupported():
        interrupt(world, first + 1)
    result = world.restore()
    assert [report['direction'] for report in result['recovered']] == ['forward']
    assert 'First settled an interrupted restore' in result['msg']
    assert result['changed'] is True
    assert world.state() == world.new and world.leftovers() == []


def _ready_journal(world):
    """A restore stopped by a dead disk at its first swap, after it wrote its ``ready`` record; returns the record."""
    trace = CallTrace()
    trace.plan = faults.FaultPlan(observer=trace)
    with faults.inject(ENGINE, trace.plan):
        world.restore()
    world.reset()
    interrupt(world, next(number for number, name, _arg in trace.calls if name == 'exchange'))
    [path] = world.journal_records()
    with open(path) as handle:
        assert json.load(handle)['phase'] == 'ready'
    return path


def test_recovery_refuses_a_journal_that_names_paths_the_engine_never_uses(world):
    path = _ready_journal(world)
    sentinel = os.path.join(world.work, 'sentinel')
    trees.write_file(sentinel, b'keep me\n')
    with open(path) as handle:
        record = json.load(handle)
    record['items'][0]['units'][0]['displaced'] = sentinel
    with open(path, 'w') as handle:
        json.dump(record, handle)
    state = world.state()
    with pytest.raises(_restore.JournalError) as info:
        world.recover()
    [quarantined] = info.value.quarantined
    assert 'cannot be trusted' in str(info.value) and 'nothing was moved' in str(info.value)
    assert quarantined in str(info.value) and json.load(open(quarantined)) == record
    with open(sentinel, 'rb') as handle:
        assert handle.read() == b'keep me\n'
    assert world.state() == state and not os.path.exists(path)


JOURNAL_DAMAGE = [
    ('empty', lambda data: b''),
    ('truncated', lambda data: data[:len(data) // 2]),
    ('flipped byte', lambda data: bytes([data[0] ^ 0x20]) + data[1:]),
    ('garbage', lambda data: b'\x8f\x00 not a journal \x01' * 8),
    ('invalid utf-8', lambda data: data.replace(b'"ready"', b'"re\xffdy"')),
]


@pytest.mark.parametrize('name, damage', JOURNAL_DAMAGE, ids=[case[0] for case in JOURNAL_DAMAGE])
def test_a_corrupt_journal_is_moved_aside_read_only_and_recovery_moves_nothing(world, name, damage):
    path = _ready_journal(world)
    token = os.path.basename(path)[:-len('.json')]
    with open(path, 'rb') as handle:
        data = damage(handle.read())
    with open(path, 'wb') as handle:
        handle.write(data)
    state = world.state()
    beside = sorted(os.listdir(os.path.dirname(world.app)))
    with pytest.raises(_restore.JournalError) as info:
        world.recover()
    [quarantined] = info.value.quarantined
    message = str(info.value)
    assert quarantined in message and 'nothing was moved' in message and token in message
    with open(quarantined, 'rb') as handle:
        assert handle.read() == data
    assert os.stat(quarantined).st_mode & 0o777 == 0o444 and not os.path.exists(path)
    assert world.state() == state and sorted(os.listdir(os.path.dirname(world.app))) == beside
    assert world.store().verify(world.backup_id)['ok'], 'the backup is intact'
    # moved aside, the record no longer blocks: the restore run again puts the backup back
    world.restore()
    assert world.state() == world.new


def test_recovery_leaves_a_journal_written_on_another_host_alone(world):
    path = _ready_journal(world)
    with open(path) as handle:
        record = json.load(handle)
    record['host'] = 'some-other-host'
    with open(path, 'w') as handle:
        json.dump(record, handle)
    with pytest.raises(_restore.JournalError) as info:
        world.recover()
    assert "'some-other-host'" in str(info.value)
    assert os.path.isfile(path)


def test_recovery_is_idempotent(world):
    path = _ready_journal(world)
    shutil.copy(path, path + '.saved')
    world.recover()
    state = world.state()
    os.rename(path + '.saved', path)
    world.recover()
    assert world.state() == state
    assert world.settled() in ('old', 'new')


# -- fault injection ------------------------------------------------------------------------------------------


def _check_error_is_honest(world, error, where):
    """What a failed restore says must be true before any recovery runs."""
    assert isinstance(error, (_restore.RestoreError, _store.StoreError)), '%s: escaped as %r' % (where, error)
    if getattr(error, 'journal', None):
        assert os.path.isfile(error.journal), '%s: names a journal that is not there' % where
    elif 'untouched' in str(error):
        assert world.state() == world.old, '%s: says untouched but the target changed' % where


@pytest.mark.parametrize('persistent', [False, True], ids=['transient', 'persistent'])
@pytest.mark.parametrize('swap', SWAPS)
def test_io_fault_at_every_call_then_recovery_leaves_exactly_old_or_new(small_world, swap, persistent):
    world = small_world
    # the exchange sweep also fails every call of the pre-restore backup; the two-rename one skips it
    keep = swap is contextlib.nullcontext
    outcomes = collections.Counter()

    def after(k, plan, error):
        where = 'fault at call %d (%s)' % (k, plan.fired_call)
        tracker = plan.observer
        assert tracker.fsyncs_after_failure() == [], '%s: fsync retried after it failed' % where
        if error is not None:
            _check_error_is_honest(world, error, where)
        elif plan.fired:
            assert world.state() == world.new, '%s: reported success without restoring' % where
        else:
            assert tracker.problems() == [], 'clean run not durable: %s' % tracker.problems()
        outcomes[world.settled(where)] += 1
        world.reset()

    with swap():
        points = faults.sweep(ENGINE, lambda: world.restore(keep_displaced=keep), after, persistent=persistent,
                              observer_factory=lambda: DurabilityTracker(MARKERS))
    assert points >= 200
    assert outcomes['old'] > 0 and outcomes['new'] > 0


@pytest.mark.parametrize('swap', SWAPS)
def test_fault_during_recovery_then_recovery_again_reaches_old_or_new(small_world, swap):
    world = small_world
    states = interrupted_states(world, swap)
    labels = [label for label, _k, _where in states]
    assert any(phase == 'ready' and any(places[0] == '-' for places in units) for phase, units in labels) or \
        swap is contextlib.nullcontext, 'no interruption hit the window between the two renames'
    exercised = 0
    for label, k, snapshot in states:
        for persistent in (False, True):
            world.restore_snapshot(snapshot)

            def after(j, plan, error, label=label, k=k, persistent=persistent):
                where = 'interrupted at call %d %s, recovery %s fault at call %d' % (
                    k, label, 'persistent' if persistent else 'transient', j)
                assert error is None or isinstance(error, (OSError, _restore.RestoreError, _store.StoreError)), \
                    '%s: escaped as %r' % (where, error)
                assert plan.observer.fsyncs_after_failure() == [], '%s: fsync retried' % where
                world.settled(where)
                world.restore_snapshot(snapshot)

            with swap():
                exercised += faults.sweep(ENGINE, world.recover, after, persistent=persistent,
                                          observer_factory=lambda: DurabilityTracker(MARKERS))
    assert len(states) == 3 and exercised >= 20


# -- kill -9 ------------------------------------------------------------------------------------------------


def kill_loop(world, iterations):
    """Kill restores (and some recoveries) at exact calls and at random moments; check each outcome.

    First every rename/exchange and the call after it, with and without RENAME_EXCHANGE
    (the windows between two renames and between a rename and its directory fsync);
    then random calls and random moments.
    """
    rng = random.Random(SEED)
    modes = {}
    windows = []
    for swap in (contextlib.nullcontext, exchange_unsupported):
        with swap():
            log = faults.call_log(ENGINE, world.restore)
        world.reset()
        with swap():
            modes[swap] = (len(log), kill9.seconds_in_child(world.restore))
        world.reset()
        renames = [index for index, name in enumerate(log, 1) if name in ('rename', 'exchange', 'replace')]
        windows.extend((swap, k) for k in sorted(set(renames) | {index + 1 for index in renames}))
    killed = collections.Counter()
    outcomes = collections.Counter()
    for iteration in range(iterations):
        if iteration < len(windows):
            swap, k = windows[iteration]
            how = 'window'
        else:
            swap = exchange_unsupported if iteration % 2 else contextlib.nullcontext
            how = 'call' if iteration % 3 else 'moment'
        total, duration = modes[swap]
        with swap():
            if how == 'window':
                died = kill9.kill_after_call(ENGINE, k, world.restore)
            elif how == 'call':
                died = kill9.kill_after_call(ENGINE, rng.randint(1, total), world.restore)
            else:
                died = kill9.kill_after_delay(rng.uniform(0, duration), world.restore)
            if died and world.journal_entries() and iteration % 4 == 0:
                kill9.kill_after_call(ENGINE, rng.randint(1, 60), world.recover)
        killed[how] += died
        outcomes[world.settled('iteration %d (%s)' % (iteration, how))] += 1
        world.reset()
    return killed, outcomes


def test_kill_9_at_any_moment_then_recovery_leaves_exactly_old_or_new(small_world):
    world = small_world
    killed, outcomes = kill_loop(world, KILLS)
    faults.record('crash_iterations', KILLS)
    assert killed['window'] >= 20 and killed['call'] >= 50
    assert outcomes['old'] > 0 and outcomes['new'] > 0


@pytest.mark.slow
def test_kill_9_thousands_of_times_then_recovery_leaves_exactly_old_or_new(world):
    killed, outcomes = kill_loop(world, SLOW_KILLS)
    faults.record('crash_iterations', SLOW_KILLS)
    assert sum(killed.values()) >= SLOW_KILLS // 2
    assert outcomes['old'] > 0 and outcomes['new'] > 0


# -- a mount point ----------------------------------------------------------------------------------------------


_LIBC = ctypes.CDLL(None, use_errno=True)
MS_BIND = 4096


def _mount_bind(path):
    if _LIBC.mount(path.encode(), path.encode(), None, MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), 'mount --bind failed', path)


def _umount(path):
    if _LIBC.umount2(path.encode(), 0) != 0:
        err = ctypes.get_errno()
        held = [os.readlink('/proc/self/fd/' + fd) for fd in os.listdir('/proc/self/fd')
                if os.readlink('/proc/self/fd/' + fd).startswith(path)]
        raise OSError(err, 'umount failed; descriptors held below it: %s' % held, path)


def mount_point_scenario(base):
    """Run inside a private mount namespace: the target is a bind mount, so it can only be restored entry by entry."""
    world = World(base, small=True)

    def remount_after(action):
        _umount(world.app)
        action()
        _mount_bind(world.app)

    _mount_bind(world.app)
    assert _restore.is_mount_point(world.app) and not os.path.ismount(world.app)
    result = world.restore()
    outcome = {'methods': [entry['method'] for entry in result['paths']], 'clean': world.state() == world.new,
               'still_mounted': _restore.is_mount_point(world.app), 'leftovers': world.leftovers()}
    world.restore(undo=True)
    outcome['undo'] = world.state() == world.old and _restore.is_mount_point(world.app)
    remount_after(world.reset)
    counts = collections.Counter()
    problems = []

    def after(k, plan, error):
        where = 'fault at call %d (%s)' % (k, plan.fired_call)
        try:
            world.recover()
            counts['new' if trees.tree_digest(world.app) == world.new[0] else
                   'old' if trees.tree_digest(world.app) == world.old[0] else 'neither'] += 1
            assert trees.tree_digest(world.etc) == world.old[1], '%s: a path not asked for changed' % where
            assert world.store().verify(world.backup_id)['ok'], '%s: the backup no longer verifies' % where
            assert world.leftovers() == [], '%s: left behind %s' % (where, world.leftovers())
            if not _restore.is_mount_point(world.app):
                problems.append('%s: the mount point was replaced' % where)
        except AssertionError as exc:
            problems.append(str(exc))
        remount_after(world.reset)

    # only the mount point, without the pre-restore backup (the other sweeps fail every call of that)
    for persistent in (False, True):
        counts['points'] += faults.sweep(ENGINE, lambda: world.restore(paths=[world.app], keep_displaced=False),
                                         after, persistent=persistent)
    outcome.update(counts=dict(counts), problems=problems[:10])
    print(json.dumps(outcome))


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'), reason='needs root and unshare')
def test_mount_point_target_is_restored_entry_by_entry_and_survives_every_fault(fast_dir):
    code = ('import sys; sys.path[:0] = %r; import test_restore; test_restore.mount_point_scenario(%r)'
            % ([HERE, TESTS, COLLECTIONS], os.path.join(fast_dir, 'mnt')))
    run = subprocess.run(['unshare', '--mount', '--propagation', 'private', sys.executable, '-c', code],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome['methods'] == ['files', 'swap']
    assert outcome['clean'] and outcome['still_mounted'] and outcome['leftovers'] == []
    assert outcome['undo'] is True
    assert outcome['problems'] == []
    assert outcome['counts']['points'] >= 100 and outcome['counts']['old'] and outcome['counts']['new']
    assert 'neither' not in outcome['counts']


def test_a_backup_settles_the_journal_an_interrupted_restore_left_before_anything_else(world):
    first = call_number(world, exchange_unsupported, 'rename', world.app)
    with exchange_unsupported():
        interrupt(world, first + 1)
    assert world.journal_records(), 'the dead disk between the two renames leaves a journal'
    assert not os.path.lexists(world.app)

    store = world.store()
    result = store.create([world.app, world.etc], name='after-the-crash')

    assert not world.journal_records()
    assert world.settled() == 'new'
    assert any(line.startswith('journal ') and 'rolled forward' in line for line in store.recovered)
    assert store.verify(result['id'])['ok'], 'the checkpoint taken after recovery holds the settled state'
