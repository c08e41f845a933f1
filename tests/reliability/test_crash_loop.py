"""Kill the operation with SIGKILL and check that recovery reaches exactly old or new.

Each iteration forks a child that runs one scenario operation (tests/lib/scenarios.py)
and dies by SIGKILL:

* at an exact point: the fault proxy kills the child right after I/O call k, for
  every k -- so every window is hit, including the one between two renames and
  the one between a rename and the fsync of its directory;
* at a random moment: the parent sleeps a random fraction of the operation's
  running time and kills the child from outside, wherever it is (inside a write,
  between threads of the hash pool, in Python code between two calls).

The parent then runs the engine's recovery and checks the same promise as the
fault sweep.  For operations with a recovery step, some iterations also kill the
recovery itself at a random point before the final recovery runs.
"""

import os
import random

import pytest

from lib import faults, kill9, scenarios

NAMES = ('backup', 'restore', 'undo', 'config_update', 'audit_append', 'lock', 'run_state', 'retention',
         'restore_widened', 'restore_rejected', 'remove', 'remove_lastgood', 'retention_runs')
RENAMES = ('replace', 'rename', 'exchange')
CRASH_BUDGET = 32           # default run: kills per scenario at exact points (all disk-changing calls included)
DEFAULT_RANDOM_KILLS = 15
SLOW_RANDOM_KILLS = 300
RECOVERY_CALLS_GUESS = 80   # recovery of these scenarios makes 10-80 calls; a kill past the end is a clean run
SEED = int(os.environ.get('RELIABILITY_SEED', '20261121'))


def clean_duration(sc):
    """How long the operation takes in a child, from fork to exit (calibrates random kills)."""
    sc.reset()
    duration = kill9.seconds_in_child(sc.run)
    sc.reset()
    return duration


class Loop:
    """Runs iterations and collects problems; counts only iterations where the kill landed."""

    def __init__(self, sc):
        self.sc = sc
        self.problems = []
        self.killed = 0
        self.completed = 0

    def settle(self, where, killed):
        if killed:
            self.killed += 1
        else:
            self.completed += 1
        try:
            self.sc.recover()
        except Exception as exc:  # pylint: disable=broad-except
            self.problems.append('%s: recovery failed: %r' % (where, exc))
        self.problems.extend('%s: %s' % (where, p) for p in self.sc.verdict())
        self.sc.reset()


def crash_after_calls(sc, budget=None):
    """Kill right after each I/O call (a sample of ``budget`` that includes every call that
    changes the disk or makes it durable, when given); returns the Loop, windows covered, log."""
    modules = scenarios.engine_modules()
    log = faults.call_log(modules, sc.run)
    sc.reset()
    points = faults.sample_points(log, budget) if budget and len(log) > budget else range(1, len(log) + 1)
    loop = Loop(sc)
    windows = {'after_rename': 0, 'between_renames': 0, 'rename_then_fsync': 0}
    for k in points:
        killed = kill9.kill_after_call(modules, k, sc.run)
        if killed and log[k - 1] in RENAMES:
            windows['after_rename'] += 1
            following = next((name for name in log[k:] if name in RENAMES + ('fsync',)), None)
            if following in RENAMES:
                windows['between_renames'] += 1
            elif following == 'fsync':
                windows['rename_then_fsync'] += 1
        loop.settle('%s killed after call %d (%s)' % (sc.name, k, log[k - 1]), killed)
    return loop, windows, log, len(points)


def crash_randomly(sc, iterations, rng):
    duration = clean_duration(sc)
    loop = Loop(sc)
    for i in range(iterations):
        delay = rng.uniform(0, duration * 1.2)
        killed = kill9.kill_after_delay(delay, sc.run)
        loop.settle('%s killed after %.6fs (iteration %d, seed %d)' % (sc.name, delay, i, SEED), killed)
    return loop


def crash_recovery(sc, iterations, rng):
    """Kill the operation, then kill its recovery after a random call, then recover for real.

    The interrupted state is made afresh for each iteration (never copied: the
    restore journal names versions by inode, which a copy would change)."""
    modules = scenarios.engine_modules()
    log = faults.call_log(modules, sc.run)
    sc.reset()
    moves = [k for k, name in enumerate(log, 1) if name in RENAMES + ('mkdir',)]
    loop = Loop(sc)
    for i in range(iterations):
        k = rng.choice(moves) if moves and rng.random() < 0.7 else rng.randint(1, len(log))
        kill9.kill_after_call(modules, k, sc.run)
        if not sc.pending_recovery():
            sc.reset()
            continue
        j = rng.randint(1, RECOVERY_CALLS_GUESS)
        killed = kill9.kill_after_call(modules, j, sc.recover)
        loop.settle('%s killed after call %d, its recovery killed after call %d (iteration %d, seed %d)'
                    % (sc.name, k, j, i, SEED), killed)
    return loop


def assert_clean(loop):
    problems = scenarios.unknown_problems(loop.sc, loop.problems)
    assert not problems, '%d problem(s):\n%s' % (len(problems), '\n'.join(problems[:40]))


def check_windows(loop, windows, log, planned):
    # call counts vary a little between runs (thread pools), so a kill planned near
    # the end may find the operation already finished
    assert loop.killed >= planned * 0.9, 'only %d of %d planned kills landed' % (loop.killed, planned)
    if any(call in RENAMES for call in log):
        assert windows['after_rename'] >= 1
    if any(log[i] in RENAMES and 'fsync' in log[i + 1:] for i in range(len(log))):
        assert windows['rename_then_fsync'] + windows['between_renames'] >= 1


@pytest.mark.parametrize('name', NAMES)
def test_sigkill_after_each_disk_changing_call_recovers_to_old_or_new_state(scenario, name):
    sc = scenario(name)
    loop, windows, log, planned = crash_after_calls(sc, CRASH_BUDGET)
    faults.record('crash_iterations', loop.killed)
    assert_clean(loop)
    check_windows(loop, windows, log, planned)


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_sigkill_after_every_io_call_recovers_to_old_or_new_state(scenario, name):
    sc = scenario(name)
    loop, windows, log, planned = crash_after_calls(sc)
    faults.record('crash_iterations', loop.killed)
    assert_clean(loop)
    check_windows(loop, windows, log, planned)


@pytest.mark.parametrize('name', NAMES)
def test_sigkill_at_random_moments_recovers_to_old_or_new_state(scenario, name):
    sc = scenario(name)
    loop = crash_randomly(sc, DEFAULT_RANDOM_KILLS, random.Random('%s-%d' % (name, SEED)))
    faults.record('crash_iterations', loop.killed)
    assert_clean(loop)
    assert loop.killed + loop.completed == DEFAULT_RANDOM_KILLS


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_sigkill_at_many_random_moments_recovers_to_old_or_new_state(scenario, name):
    sc = scenario(name)
    loop = crash_randomly(sc, SLOW_RANDOM_KILLS, random.Random('%s-slow-%d' % (name, SEED)))
    faults.record('crash_iterations', loop.killed)
    assert_clean(loop)


@pytest.mark.parametrize('name', NAMES)
def test_sigkill_during_recovery_then_recovery_again_reaches_old_or_new_state(recovering_scenario, name):
    sc = recovering_scenario(name)
    loop = crash_recovery(sc, DEFAULT_RANDOM_KILLS, random.Random('%s-recovery-%d' % (name, SEED)))
    faults.record('crash_iterations', loop.killed)
    assert_clean(loop)
    assert loop.killed >= 1, 'no interruption left work for recovery'


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_sigkill_during_recovery_many_times(recovering_scenario, name):
    sc = recovering_scenario(name)
    loop = crash_recovery(sc, SLOW_RANDOM_KILLS, random.Random('%s-recovery-slow-%d' % (name, SEED)))
    faults.record('crash_iterations', loop.killed)
    assert_clean(loop)
