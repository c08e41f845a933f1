"""Fail every I/O call of every engine operation, one at a time, and check the promise.

For each scenario (tests/lib/scenarios.py) and each realistic errno, call k of
the operation fails -- once (a transient fault) or from then on (a dead disk)
-- for k = 1, 2, ... until the operation completes.  After each attempt the
engine's recovery runs and the state must be exactly the old one or exactly
the new one, published backups must verify and nothing unfinished may be left.
The clean run at the end of each sweep must also be durable: the tracker in
tests/lib/durability.py finds every change that reached a real name without
the fsyncs that make it survive a power cut.

The default run sweeps, with EIO, every call of the small operations and, for
the large ones, every call that changes the disk or makes it durable (renames,
fsyncs, mkdir, unlink, the silent ``os.path`` predicates) plus an even spread of
the rest; the other errnos are sampled.  ``-m slow`` sweeps every call with
every errno.
"""

import errno

import pytest

from lib import durability, faults, scenarios

NAMES = ('backup', 'restore', 'undo', 'config_update', 'audit_append', 'lock', 'run_state', 'retention',
         'restore_widened', 'restore_rejected', 'remove', 'remove_lastgood', 'retention_runs')
ERRNOS = [pytest.param(err, id=errno.errorcode[err]) for err in faults.REALISTIC_ERRNOS]
MODES = [pytest.param(False, id='transient'), pytest.param(True, id='persistent')]
EIO_BUDGET = 60           # default run: fault points per EIO sweep (every disk-changing call is one)
ERRNO_BUDGET = 24         # default run: per sweep with another errno (renames always included)
RECOVERY_SNAPSHOTS = 2    # default run: interrupted states whose recovery is swept
SLOW_RECOVERY_SNAPSHOTS = 12  # slow run: interrupted states whose recovery is swept at every call
RECOVERY_BUDGET = 20      # default run: fault points per recovery sweep
RENAMES = frozenset(('replace', 'rename', 'exchange', 'link'))


def assert_clean(problems, sc):
    problems = scenarios.unknown_problems(sc, problems)
    assert not problems, '%d problem(s):\n%s' % (len(problems), '\n'.join(problems[:40]))


def default_points(sc, budget, critical=faults.CRITICAL_CALLS, offset=0):
    """Fault points for the default run: every call of a small operation; for a larger one
    every call in ``critical`` and other calls spread evenly, ``budget`` in all."""
    log = faults.call_log(scenarios.engine_modules(), sc.run)
    sc.reset()
    if len(log) <= budget:
        return None
    return faults.sample_points(log, budget, critical, offset)


@pytest.mark.parametrize('persistent', MODES)
@pytest.mark.parametrize('name', NAMES)
def test_io_fault_at_every_disk_changing_call_leaves_exactly_old_or_new_state(scenario, name, persistent):
    sc = scenario(name)
    points, problems = scenarios.sweep_scenario(sc, persistent, errno.EIO, points=default_points(sc, EIO_BUDGET))
    assert_clean(problems, sc)
    assert points >= 5, '%s made only %d I/O calls; the proxy is not in its path' % (name, points)


# the other errnos, each in one mode (EIO covers both fully): the engine branches on
# errno only for messages and for EXCHANGE_UNSUPPORTED, which none of these is
OTHER_ERRNOS = [pytest.param(errno.ENOSPC, False, id='ENOSPC-transient'),
                pytest.param(errno.EDQUOT, True, id='EDQUOT-persistent'),
                pytest.param(errno.EACCES, False, id='EACCES-transient'),
                pytest.param(errno.EROFS, True, id='EROFS-persistent')]


@pytest.mark.parametrize('err,persistent', OTHER_ERRNOS)
@pytest.mark.parametrize('name', NAMES)
def test_other_errnos_at_sampled_calls_leave_exactly_old_or_new_state(scenario, name, persistent, err):
    sc = scenario(name)
    offset = faults.REALISTIC_ERRNOS.index(err)
    points = default_points(sc, ERRNO_BUDGET, RENAMES, offset)
    points, problems = scenarios.sweep_scenario(sc, persistent, err, points=points)
    assert_clean(problems, sc)
    assert points >= 1


@pytest.mark.slow
@pytest.mark.parametrize('err', ERRNOS)
@pytest.mark.parametrize('persistent', MODES)
@pytest.mark.parametrize('name', NAMES)
def test_every_errno_at_every_call_leaves_exactly_old_or_new_state(scenario, name, persistent, err):
    sc = scenario(name)
    points, problems = scenarios.sweep_scenario(sc, persistent, err)
    assert_clean(problems, sc)
    assert points >= 5


def interrupt(sc, k, modules):
    """Reset, then run the operation with a persistent fault from call k on (its own
    clean-up fails too, so recovery gets the most to do).  Re-running beats copying a
    snapshot: the restore journal names versions by inode, which a copy would change."""
    sc.reset()
    with faults.inject(modules, faults.FaultPlan(fail_at=k, persistent=True)):
        try:
            sc.run()
        except Exception:  # pylint: disable=broad-except
            pass


def interruption_points(sc, limit):
    """Call numbers k whose interruption leaves work for recovery.

    With ``limit``, k is taken right after the calls that move things (renames,
    exchanges, mkdir of a stage), spread evenly, until ``limit`` are found;
    without, every k is tried.
    """
    modules = scenarios.engine_modules()
    log = faults.call_log(modules, sc.run)
    if limit:
        candidates = sorted({k + 1 for k, name in enumerate(log, 1) if name in RENAMES | {'mkdir'}})
        step = max(1, len(candidates) // (limit * 2))
        candidates = candidates[::step]
    else:
        candidates = range(1, len(log) + 1)
    found = []
    for k in candidates:
        if limit and len(found) >= limit:
            break
        interrupt(sc, k, modules)
        if sc.pending_recovery():
            found.append(k)
    sc.reset()
    return found


def sweep_recovery(sc, limit, budget=None):
    modules = scenarios.engine_modules()
    allowed = scenarios.engine_errors()
    problems = []
    points_k = interruption_points(sc, limit)
    if not points_k:
        pytest.skip('%s: no interrupted state leaves work for recovery' % sc.name)
    exercised = 0
    for k in points_k:
        interrupt(sc, k, modules)
        log = faults.call_log(modules, sc.recover)
        points = faults.sample_points(log, budget) if budget and len(log) > budget else None
        for persistent in (False, True):
            interrupt(sc, k, modules)

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
                interrupt(sc, k, modules)

            exercised += faults.sweep(modules, sc.recover, after_each, persistent=persistent, points=points,
                                      observer_factory=lambda: durability.DurabilityTracker(sc.markers))
    sc.reset()
    faults.record('recovery_fault_points', exercised)
    return exercised, problems


@pytest.mark.parametrize('name', NAMES)
def test_fault_during_recovery_then_recovery_again_reaches_old_or_new_state(recovering_scenario, name):
    sc = recovering_scenario(name)
    exercised, problems = sweep_recovery(sc, RECOVERY_SNAPSHOTS, RECOVERY_BUDGET)
    assert_clean(problems, sc)
    assert exercised >= 1


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_fault_at_every_call_of_recovery_from_many_interruptions(recovering_scenario, name):
    sc = recovering_scenario(name)
    exercised, problems = sweep_recovery(sc, SLOW_RECOVERY_SNAPSHOTS)
    assert_clean(problems, sc)
    assert exercised >= 1
