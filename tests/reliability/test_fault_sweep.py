"""Fail every I/O call of every engine operation, one at a time, and check the promise.

For each scenario (tests/lib/scenarios.py) and each realistic errno, call k of
the operation fails -- once (a transient fault) or from then on (a dead disk)
-- for k = 1, 2, ... until the operation completes.  After each attempt the
engine's recovery runs and the state must be exactly the old one or exactly
the new one, published backups must verify and nothing unfinished may be left.
The clean run at the end of each sweep must also be durable: the tracker in
tests/lib/durability.py finds every change that reached a real name without
the fsyncs that make it survive a power cut.

The default run sweeps every call with EIO and samples every 5th call for the
other errnos; ``-m slow`` sweeps every call with every errno.
"""

import errno
import os
import re

import pytest

from lib import durability, faults, scenarios

NAMES = ('backup', 'restore', 'undo', 'config_update', 'audit_append', 'lock', 'run_state', 'retention')
ERRNOS = [pytest.param(err, id=errno.errorcode[err]) for err in faults.REALISTIC_ERRNOS]
MODES = [pytest.param(False, id='transient'), pytest.param(True, id='persistent')]
SAMPLE_STRIDE = 5
FSYNC_CALLS = ('fsync', 'fdatasync')


def engine_errors():
    """OSError and the error types the engine defines: the only exceptions allowed to escape."""
    allowed = [OSError]
    for module in scenarios.engine_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == module.__name__:
                allowed.append(value)
    return tuple(allowed)


def sweep_scenario(sc, persistent, err, start=1, stride=1):
    """Sweep ``sc``; returns (fault points exercised, problems found)."""
    modules = scenarios.engine_modules()
    allowed = engine_errors()
    problems = []
    box = {}

    def operation():
        box['result'] = None
        box['result'] = sc.run()

    def after_each(k, plan, error):
        tracker = plan.observer
        where = '%s: %s %s at call %d (%s)' % (sc.name, 'persistent' if persistent else 'transient',
                                               errno.errorcode[err], k, plan.fired_call or 'not reached')
        if error is not None and not isinstance(error, allowed):
            problems.append('%s: escaped as %s: %s' % (where, type(error).__name__, error))
        if not plan.fired and sc.durable:
            problems.extend('%s: clean run not durable: %s' % (where, p) for p in tracker.problems())
        if plan.fired_call in FSYNC_CALLS and error is None and not sc.reported_trouble(box['result']):
            failed = tracker.failed_fsync_paths[0] if tracker.failed_fsync_paths else ''
            if not any(re.search(pattern, failed or '') for pattern in sc.best_effort_fsync):
                problems.append('%s: fsync of %s failed but the operation reported success' % (where, failed))
        problems.extend('%s: fsync retried after it failed: %s' % (where, p) for p in tracker.fsyncs_after_failure())
        try:
            sc.recover()
        except Exception as exc:  # pylint: disable=broad-except
            problems.append('%s: recovery failed: %r' % (where, exc))
        problems.extend('%s: %s' % (where, p) for p in sc.verdict(error, box['result']))
        sc.reset()

    points = faults.sweep(modules, operation, after_each, persistent=persistent, err=err,
                          observer_factory=lambda: durability.DurabilityTracker(sc.markers),
                          start=start, stride=stride)
    return points, problems


def assert_clean(problems, sc):
    problems = scenarios.unknown_problems(sc, problems)
    assert not problems, '%d problem(s):\n%s' % (len(problems), '\n'.join(problems[:40]))


@pytest.mark.parametrize('persistent', MODES)
@pytest.mark.parametrize('name', NAMES)
def test_io_fault_at_every_call_leaves_exactly_old_or_new_state(scenario, name, persistent):
    sc = scenario(name)
    points, problems = sweep_scenario(sc, persistent, errno.EIO)
    assert_clean(problems, sc)
    assert points >= 5, '%s made only %d I/O calls; the proxy is not in its path' % (name, points)


@pytest.mark.parametrize('err', [p for p in ERRNOS if p.values[0] != errno.EIO])
@pytest.mark.parametrize('persistent', MODES)
@pytest.mark.parametrize('name', NAMES)
def test_other_errnos_at_sampled_calls_leave_exactly_old_or_new_state(scenario, name, persistent, err):
    sc = scenario(name)
    offset = 1 + faults.REALISTIC_ERRNOS.index(err) % SAMPLE_STRIDE
    points, problems = sweep_scenario(sc, persistent, err, start=offset, stride=SAMPLE_STRIDE)
    assert_clean(problems, sc)
    assert points >= 1


@pytest.mark.slow
@pytest.mark.parametrize('err', ERRNOS)
@pytest.mark.parametrize('persistent', MODES)
@pytest.mark.parametrize('name', NAMES)
def test_every_errno_at_every_call_leaves_exactly_old_or_new_state(scenario, name, persistent, err):
    sc = scenario(name)
    points, problems = sweep_scenario(sc, persistent, err)
    assert_clean(problems, sc)
    assert points >= 5


def recovery_snapshots(sc, limit):
    """Interrupted states that leave recovery work: [(fault point, snapshot dir)], at most ``limit``."""
    modules = scenarios.engine_modules()
    total = faults.count_calls(modules, sc.run)
    sc.reset()
    step = max(1, total // limit) if limit else 1
    found = []
    for k in range(1, total + 1, step):
        plan = faults.FaultPlan(fail_at=k, persistent=True)
        with faults.inject(modules, plan):
            try:
                sc.run()
            except Exception:  # pylint: disable=broad-except
                pass
        if sc.pending_recovery():
            where = os.path.join(sc.base, 'interrupted-%d' % k)
            sc.snapshot(where)
            found.append((k, where))
        sc.reset()
    return found


def sweep_recovery(sc, limit):
    modules = scenarios.engine_modules()
    allowed = engine_errors()
    problems = []
    snapshots = recovery_snapshots(sc, limit)
    if not snapshots:
        pytest.skip('%s: no interrupted state leaves work for recovery' % sc.name)
    exercised = 0
    for k, snap in snapshots:
        for persistent in (False, True):
            sc.restore_snapshot(snap)

            def after_each(j, plan, error, k=k, persistent=persistent):
                where = '%s interrupted at call %d, recovery %s fault at call %d (%s)' % (
                    sc.name, k, 'persistent' if persistent else 'transient', j, plan.fired_call or 'not reached')
                if error is not None and not isinstance(error, allowed):
                    problems.append('%s: escaped as %s: %s' % (where, type(error).__name__, error))
                if not plan.fired:
                    problems.extend('%s: recovery not durable: %s' % (where, p) for p in plan.observer.problems())
                try:
                    sc.recover()
                except Exception as exc:  # pylint: disable=broad-except
                    problems.append('%s: second, unfaulted recovery failed: %r' % (where, exc))
                problems.extend('%s: %s' % (where, p) for p in sc.verdict(error=error))
                sc.restore_snapshot(snap)

            exercised += faults.sweep(modules, sc.recover, after_each, persistent=persistent,
                                      observer_factory=lambda: durability.DurabilityTracker(sc.markers))
    faults.record('recovery_fault_points', exercised)
    return exercised, problems


@pytest.mark.parametrize('name', NAMES)
def test_fault_during_recovery_then_recovery_again_reaches_old_or_new_state(scenario, name):
    sc = scenario(name)
    if not sc.has_recovery:
        pytest.skip('%s has no recovery step: its writes are single atomic renames' % name)
    exercised, problems = sweep_recovery(sc, limit=6)
    assert_clean(problems, sc)
    assert exercised >= 1


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_fault_during_recovery_at_every_interruption_point(scenario, name):
    sc = scenario(name)
    if not sc.has_recovery:
        pytest.skip('%s has no recovery step: its writes are single atomic renames' % name)
    exercised, problems = sweep_recovery(sc, limit=0)
    assert_clean(problems, sc)
    assert exercised >= 1
