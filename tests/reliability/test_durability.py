"""Every operation's clean run is durable, and durable in the right order.

A killed process loses nothing the kernel already has, so crash loops cannot
see a missing fsync; tests/lib/durability.py replays the engine's calls against
the POSIX rules instead (a file's data is durable once fsynced, a directory
entry once its directory is fsynced).  Checked here, for each scenario:

* nothing is published (renamed, exchanged or linked to a real name) before
  what it publishes is durable, and nothing is left non-durable at the end;
* write-ahead: before a restore touches a target, its journal record is durable;
* marks last: LASTGOOD is replaced only once the backup it names is durable;
* and the run did its job, judged without the engine's help (the target holds
  the backup, the log rotated, the lock is held, ...).

These are the tests scripts/mutation_check.py relies on to notice a removed
fsync; they are quick, so it runs them first.
"""

import os

import pytest

from lib import durability, faults, scenarios

NAMES = ('backup', 'restore', 'undo', 'config_update', 'audit_append', 'lock', 'run_state', 'retention')


class OrderedTracker(durability.DurabilityTracker):
    """The durability tracker plus ordering rules checked at the moment of a rename."""

    def __init__(self, markers, rules):
        super().__init__(markers)
        self.rules = rules
        self.ordering = []

    def before(self, name, args, kwargs):
        if name in ('replace', 'rename', 'exchange'):
            for rule in self.rules:
                problem = rule(self, name, os.fsdecode(args[0]), os.fsdecode(args[1]))
                if problem:
                    self.ordering.append(problem)
        return super().before(name, args, kwargs)


def journal_first(sc):
    """Rule: the restore's journal record is durable before its target moves."""
    journal = os.path.join(sc.backup_root, 'app', '.journal')

    def rule(tracker, name, src, dst):
        if sc.target not in (src, dst):
            return None
        records = [os.path.join(journal, entry) for entry in os.listdir(journal) if entry.endswith('.json')
                   and not entry.startswith('.')] if os.path.isdir(journal) else []
        if not records:
            return '%s(%s -> %s) moves the target with no journal record on disk' % (name, src, dst)
        if not all(tracker.is_durable(record) for record in records):
            return '%s(%s -> %s) moves the target before its journal record is durable' % (name, src, dst)
        return None
    return rule


def backup_before_mark(sc):
    """Rule: LASTGOOD is replaced only when every published backup directory is durable."""
    set_dir = os.path.join(sc.backup_root, 'app')

    def rule(tracker, name, src, dst):
        if os.path.basename(dst) != 'LASTGOOD' or os.path.dirname(dst) != set_dir:
            return None
        for entry in os.listdir(set_dir):
            path = os.path.join(set_dir, entry)
            if not entry.startswith('.') and os.path.isdir(path) and not tracker.is_durable(path):
                return 'LASTGOOD is replaced before backup %s is durable' % entry
        return None
    return rule


def rules_for(sc):
    if sc.name in ('restore', 'undo'):
        return [journal_first(sc), backup_before_mark(sc)]
    if sc.name in ('backup', 'retention'):
        return [backup_before_mark(sc)]
    return []


@pytest.mark.parametrize('name', NAMES)
def test_clean_run_does_its_job_durably_and_in_order(scenario, name):
    sc = scenario(name)
    if not sc.durable:
        pytest.skip('%s makes no durability promise' % name)
    tracker = OrderedTracker(sc.markers, rules_for(sc))
    plan = faults.FaultPlan(observer=tracker)
    with faults.inject(scenarios.engine_modules(), plan):
        result = sc.run()
    problems = tracker.problems() + tracker.ordering + sc.did_its_job(result)
    assert not problems, '\n'.join(problems)
    assert tracker.fsynced, '%s never fsyncs anything' % name


@pytest.mark.parametrize('name', ('restore', 'undo', 'backup', 'retention'))
def test_recovery_after_an_interruption_is_durable(scenario, name):
    sc = scenario(name)
    modules = scenarios.engine_modules()
    log = faults.call_log(modules, sc.run)
    checked = 0
    for k in sorted({k + 1 for k, call in enumerate(log, 1) if call in ('replace', 'rename', 'exchange')}):
        sc.reset()
        with faults.inject(modules, faults.FaultPlan(fail_at=k, persistent=True)):
            try:
                sc.run()
            except Exception:  # pylint: disable=broad-except
                pass
        if not sc.pending_recovery():
            continue
        tracker = durability.DurabilityTracker(sc.markers)
        faults.call_log(modules, sc.recover, observer=tracker)
        assert not tracker.problems(), 'recovery after call %d: %s' % (k, tracker.problems())
        checked += 1
    assert checked or name in ('retention',), 'no interruption left work for recovery'


def test_audit_line_and_its_new_file_are_durable_even_when_the_head_update_fails(scenario):
    sc = scenario('audit_append')
    modules = scenarios.engine_modules()
    log = faults.call_log(modules, sc.run)
    sc.reset()
    head_replace = max(k for k, call in enumerate(log, 1) if call == 'replace')
    tracker = durability.DurabilityTracker(sc.markers)
    with faults.inject(modules, faults.FaultPlan(fail_at=head_replace, observer=tracker)):
        result = sc.run()
    assert result['head_updated'] is False and result['warning'], 'the fault did not hit the head update'
    assert not tracker.problems(), tracker.problems()


def test_lock_lifecycle_leaves_every_name_durable(fast_dir):
    """Take a free lock, take it again after its guard file vanished, release it: each step durable."""
    _lock = scenarios.engine('_lock')
    path = str(fast_dir / 'run' / 'rollback.lock')
    modules = scenarios.engine_modules()
    steps = (
        ('acquire a free lock', lambda: _lock.acquire(path, 'run-1', ttl=600, pid=os.getpid())),
        ('acquire it again, its guard file gone', lambda: (os.unlink(path + _lock.GUARD_SUFFIX),
                                                           _lock.acquire(path, 'run-1', ttl=600, pid=os.getpid()))),
        ('release it', lambda: _lock.release(path, 'run-1')),
    )
    for what, step in steps:
        tracker = durability.DurabilityTracker()
        with faults.inject(modules, faults.FaultPlan(observer=tracker)):
            step()
        assert not tracker.problems(), '%s: %s' % (what, tracker.problems())
    assert _lock.status(path)['holder'] is None
