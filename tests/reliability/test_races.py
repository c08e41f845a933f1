"""Races: what happens when something else changes the file system while the engine works.

* mid-restore, a directory the restore is working in (a target directory, the
  stage, the displaced copy) is swapped for a symlink to a directory outside;
  the swap happens right before I/O call k, for a spread of k.  Nothing outside
  may change, whatever the restore then does;
* a source file changes while the backup copies it: the backup notices (copies
  again, or refuses), and what it publishes is never a mix of two versions;
* concurrent runs: racing backups, racing restores and racing lock acquisitions
  are serialised; exactly one lock holder at a time.
"""

import json
import os
import random
import threading
import time

import pytest

from lib import faults, scenarios, trees

SWAP_BUDGET = 60
ROUNDS = 12


class SwapToSymlink:
    """Observer: before call ``at``, replace a directory under ``roots`` by a symlink to ``outside``."""

    def __init__(self, at, roots, outside):
        self.at = at
        self.roots = roots
        self.outside = outside
        self.calls = 0
        self.swapped = None
        self.lock = threading.Lock()

    def _victim(self, args):
        for arg in args[:2]:
            if not isinstance(arg, (str, bytes)):
                continue
            path = os.path.abspath(os.fsdecode(arg))
            for candidate in (path, os.path.dirname(path)):
                # the real path too: never let the harness itself swap something outside
                if any(candidate.startswith(root + '/') and os.path.realpath(candidate).startswith(root + '/')
                       for root in self.roots) and os.path.isdir(candidate) and not os.path.islink(candidate):
                    return candidate
        return None

    def before(self, name, args, kwargs):
        with self.lock:  # the hash and copy pools call in from several threads
            self.calls += 1
            if self.calls >= self.at and self.swapped is None:
                victim = self._victim(args)
                if victim is not None:
                    os.rename(victim, victim + '.swapped-away')
                    os.symlink(self.outside, victim)
                    self.swapped = (self.calls, name, victim)
        return None

    def after(self, name, args, kwargs, result, token):
        pass


def outside_tree(base):
    outside = os.path.join(base, 'outside')
    scenarios.build_app_v1(outside)
    os.makedirs(os.path.join(outside, 'bin', 'sub'), exist_ok=True)
    with open(os.path.join(outside, 'sentinel'), 'w') as handle:
        handle.write('must never change\n')
    return outside


def test_directory_swapped_for_a_symlink_mid_restore_never_lets_a_write_escape(scenario):
    sc = scenario('restore')
    outside = outside_tree(sc.base)
    before = trees.tree_digest(outside)
    modules = scenarios.engine_modules()
    allowed = scenarios.engine_errors()
    log = faults.call_log(modules, sc.run)
    sc.reset()
    moves = frozenset(('open', 'mkdir', 'rename', 'exchange', 'symlink', 'link', 'unlink', 'rmdir'))
    points = faults.sample_points(log, SWAP_BUDGET, critical=moves)
    roots = [os.path.dirname(sc.target)]
    swapped = 0
    problems = []
    for k in points:
        watch = SwapToSymlink(k, roots, outside)
        plan = faults.FaultPlan(observer=watch)
        with faults.inject(modules, plan):
            try:
                sc.run()
            except allowed:
                pass
            except Exception as exc:  # pylint: disable=broad-except
                problems.append('swap before call %d: escaped as %r' % (k, exc))
        if watch.swapped:
            swapped += 1
            faults.record('inputs_fuzzed')
        try:
            sc.recover()
        except allowed:
            pass
        if trees.tree_digest(outside) != before:
            problems.append('%s let a change land outside the target' % (
                'swap of %s before call %d (%s)' % (watch.swapped[2], watch.swapped[0], watch.swapped[1])
                if watch.swapped else 'a restore without any swap (planned before call %d)' % k))
            scenarios.remove_tree(outside)
            outside = outside_tree(sc.base)
            before = trees.tree_digest(outside)
        sc.reset()
    assert not problems, '\n'.join(problems[:20])
    assert swapped >= len(points) // 2, 'only %d of %d planned swaps happened' % (swapped, len(points))


class ChangeWhileRead:
    """Observer: append to ``source`` at the first read of each copy attempt, ``times`` attempts at most."""

    def __init__(self, source, times):
        self.source = source
        self.times = times
        self.spoiled = 0
        self.seen = set()

    def before(self, name, args, kwargs):
        if name in ('read', 'readv') and self.spoiled < self.times:
            try:
                path = os.readlink('/proc/self/fd/%d' % args[0])
            except OSError:
                return None
            if path == self.source and args[0] not in self.seen:
                self.seen.add(args[0])
                self.spoiled += 1
                with open(self.source, 'ab') as handle:
                    handle.write(b'written while the backup read this file %d\n' % self.spoiled)
        return None

    def after(self, name, args, kwargs, result, token):
        if name == 'close':
            self.seen.discard(args[0])


@pytest.mark.parametrize('times', [1, 1000], ids=['changes-once', 'keeps-changing'])
def test_source_changing_during_backup_is_detected_never_published_inconsistent(scenario, times):
    sc = scenario('backup')
    _store = scenarios.engine('_store')
    source = os.path.join(sc.target, 'config.json')  # changed since the last backup: copied, not hardlinked
    watch = ChangeWhileRead(source, times)
    error = None
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=watch)):
        try:
            result = sc.run()
        except _store.StoreError as exc:
            error = exc
    assert watch.spoiled >= 1, 'the backup never read the source'
    store = sc.store()
    if error is not None:
        assert 'changed while it was being copied' in str(error)
        assert len(store.list()) == 1, 'a backup was published although the source kept changing'
    else:
        check = store.verify(result['id'])
        assert check['ok'], check['mismatches']
        with open(source, 'rb') as handle:
            live = handle.read()
        with open(os.path.join(store.data_dir(result['id']), source.lstrip('/')), 'rb') as handle:
            assert handle.read() == live, 'the published copy is not the version the source settled on'
    assert times == 1 or error is not None, 'a source that never stopped changing was backed up'
    assert not sc.leftovers()


def race(count, action):
    """Run ``action(i)`` in ``count`` forked children released at the same moment; returns exit codes."""
    read_end, write_end = os.pipe()
    pids = []
    for i in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(write_end)
            os.read(read_end, 1)
            code = 99
            try:
                code = action(i)
            except BaseException:  # pylint: disable=broad-except
                code = 98
            os._exit(code)
        pids.append(pid)
    os.close(read_end)
    time.sleep(0.05)
    os.write(write_end, b'x' * count)
    os.close(write_end)
    return [os.WEXITSTATUS(os.waitpid(pid, 0)[1]) for pid in pids]


def test_racing_lock_acquisitions_have_exactly_one_winner(fast_dir):
    _lock = scenarios.engine('_lock')
    path = str(fast_dir / 'rollback.lock')

    def contender(i):
        try:
            _lock.acquire(path, 'run-%d' % i, ttl=600, pid=os.getppid())
        except _lock.LockHeld:
            return 1
        return 0

    for round_number in range(ROUNDS):
        codes = race(4, contender)
        assert sorted(codes) == [0, 1, 1, 1], 'round %d: exit codes %s' % (round_number, codes)
        holder = _lock.status(path)['holder']['run_id']
        assert holder == 'run-%d' % codes.index(0)
        _lock.release(path, holder)
    faults.record('inputs_fuzzed', ROUNDS)


def test_racing_backups_of_one_set_publish_only_complete_verified_backups(scenario):
    sc = scenario('backup')
    rng = random.Random(9)

    def backup(i):
        with open(os.path.join(sc.target, 'config.json'), 'w') as handle:
            handle.write(json.dumps({'writer': i, 'nonce': rng.random()}))
        try:
            sc.store().create([sc.target], incremental=True, force=True)
        except scenarios.engine('_store').StoreError:
            return 1
        return 0

    for _round in range(ROUNDS // 3):
        codes = race(3, backup)
        assert codes.count(0) >= 1 and set(codes) <= {0, 1}, codes
    problems = sc.store_problems()
    assert not problems, problems
    assert not sc.leftovers()


def test_racing_restores_of_one_target_leave_exactly_one_version(scenario):
    sc = scenario('restore')
    _restore = scenarios.engine('_restore')
    store = sc.store()
    versions = {trees.tree_digest(sc.target)}
    ids = [sc.backup_id, store.create([sc.target], name='v2')['id']]
    versions.add(trees.tree_digest(os.path.join(store.data_dir(ids[0]), sc.target.lstrip('/'))))

    def restorer(i):
        try:
            _restore.restore(sc.store(), store.set_dir, ref=ids[i % 2])
        except (_restore.RestoreError, scenarios.engine('_store').StoreError):
            return 1
        return 0

    for round_number in range(ROUNDS // 3):
        codes = race(3, restorer)
        assert set(codes) <= {0, 1}, codes
        _restore.recover_journal(store.set_dir)
        store.recover()
        state = trees.tree_digest(sc.target)
        assert state in versions, 'round %d: the target is a mix of versions' % round_number
        assert not sc.leftovers(), sc.leftovers()
