"""Every operation's clean run is durable, and durable in the right order.

A killed process loses nothing the kernel already has, so crash loops cannot
see a missing fsync; tests/lib/durability.py replays the engine's calls against
the POSIX rules instead (a file's data is durable once fsynced, a directory
entry once its directory is fsynced).  Checked here, for each scenario:

* nothing is published (renamed, exchanged or linked to a real name) before
  what it publishes is durable, and nothing is left non-durable at the end;
* write-ahead: before a restore touches a target, its journal record is durable,
  and so is the entry of every directory that holds it (``.journal`` a run made);
  and so is every stage the record names (recovery goes forward once a target
  moved, and forward needs the stages);
* marks last: LASTGOOD is replaced only once the backup it names is durable;
* and the run did its job, judged without the engine's help (the target holds
  the backup, the log rotated, the lock is held, ...).

These are the tests scripts/mutation_check.py relies on to notice a removed
fsync; they are quick, so it runs them first.
"""

import json
import os

import pytest

from lib import durability, faults, private_tmpfs, scenarios, trees

NAMES = ('backup', 'restore', 'undo', 'config_update', 'audit_append', 'lock', 'run_state', 'retention', 'remove',
         'remove_lastgood', 'retention_runs')


class OrderedTracker(durability.DurabilityTracker):
    """The durability tracker plus ordering rules checked at the moment of a rename or unlink."""

    def __init__(self, markers, rules, unlink_rules=()):
        super().__init__(markers)
        self.rules = rules
        self.unlink_rules = unlink_rules
        self.ordering = []

    def before(self, name, args, kwargs):
        problems = []
        if name in ('replace', 'rename', 'exchange'):
            problems = [rule(self, name, os.fsdecode(args[0]), os.fsdecode(args[1])) for rule in self.rules]
        elif name in ('unlink', 'remove') and isinstance(args[0], (str, bytes)):
            problems = [rule(self, name, os.path.abspath(os.fsdecode(args[0]))) for rule in self.unlink_rules]
        self.ordering.extend(problem for problem in problems if problem)
        return super().before(name, args, kwargs)


def tracker_for(sc):
    unlink_rules = [JournalLast(os.path.join(sc.backup_root, 'app', '.journal'))] if sc.name in (
        'restore', 'undo') else []
    return OrderedTracker(sc.markers, rules_for(sc), unlink_rules)


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
        if not all(tracker.chain_is_durable(record, sc.backup_root) for record in records):
            return '%s(%s -> %s) moves the target before its journal record (and the directories holding it) ' \
                'is durable' % (name, src, dst)
        return None
    return rule


def stages_first(sc):
    """Rule: every stage a journal record names is durable, entry included, before a target moves.

    Recovery settles forward once any target moved, and going forward puts the
    stages in place: a stage whose own directory entry a power cut can take
    would leave recovery with nothing to move.
    """
    journal = os.path.join(sc.backup_root, 'app', '.journal')

    def rule(tracker, name, src, dst):
        if sc.target not in (src, dst) or not os.path.isdir(journal):
            return None
        for entry in sorted(os.listdir(journal)):
            if not entry.endswith('.json') or entry.startswith('.'):
                continue
            with open(os.path.join(journal, entry), encoding='utf-8') as handle:
                record = json.load(handle)
            for item in record['items']:
                for unit in item['units']:
                    stage = unit['stage']
                    if os.path.lexists(stage) and not tracker.chain_is_durable(stage, os.path.dirname(stage)):
                        return '%s(%s -> %s) moves the target before stage %s is durable' % (name, src, dst, stage)
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


class JournalLast:
    """Rule: a journal record is removed only when everything done under it is durable.

    The record is the only way recovery finds what the restore left beside the
    target (stages, displaced copies); if its removal became durable before the
    clean-up did, a power cut would leave them there for good.
    """

    def __init__(self, journal_dir):
        self.journal_dir = journal_dir

    def __call__(self, tracker, name, path):
        if os.path.dirname(path) != self.journal_dir or not path.endswith('.json'):
            return None
        loose = tracker.not_durable_anywhere(exclude=self.journal_dir)
        if loose:
            return 'journal %s removed before its clean-up is durable: %s' % (path, '; '.join(loose[:3]))
        return None


def rules_for(sc):
    if sc.name in ('restore', 'undo'):
        return [journal_first(sc), stages_first(sc), backup_before_mark(sc)]
    if sc.name in ('backup', 'retention'):
        return [backup_before_mark(sc)]
    return []


@pytest.mark.parametrize('name', NAMES)
def test_clean_run_does_its_job_durably_and_in_order(scenario, name):
    sc = scenario(name)
    if not sc.durable:
        pytest.skip('%s makes no durability promise' % name)
    tracker = tracker_for(sc)
    plan = faults.FaultPlan(observer=tracker)
    with faults.inject(scenarios.engine_modules(), plan):
        result = sc.run()
    problems = tracker.problems() + tracker.ordering + sc.did_its_job(result)
    assert not problems, '\n'.join(problems)
    assert tracker.fsynced, '%s never fsyncs anything' % name


@pytest.mark.parametrize('name', ('restore', 'undo', 'backup', 'retention', 'remove', 'remove_lastgood',
                                  'retention_runs'))
def test_interrupted_operation_plus_recovery_is_durable(scenario, name):
    """One tracker sees the interrupted run and the recovery: whatever the run left
    not durable (a publish whose fsync failed, leftovers it could not remove) is
    durable, or durably gone, once recovery returns."""
    sc = scenario(name)
    modules = scenarios.engine_modules()
    log = faults.call_log(modules, sc.run)
    moves = ('replace', 'rename', 'exchange', 'mkdir', 'fsync', 'link', 'symlink')
    checked = 0
    for k in sorted({k + 1 for k, call in enumerate(log, 1) if call in moves})[::2]:
        sc.reset()
        tracker = durability.DurabilityTracker(sc.markers)
        with faults.inject(modules, faults.FaultPlan(fail_at=k, persistent=True, observer=tracker)):
            try:
                sc.run()
            except Exception:  # pylint: disable=broad-except
                pass
        if not sc.pending_recovery():
            continue
        with faults.inject(modules, faults.FaultPlan(observer=tracker)):
            sc.recover()
        assert not tracker.unsynced(), 'interrupted at call %d (%s): %s' % (k, log[k - 1], tracker.unsynced())
        checked += 1
    assert checked, 'no interruption left work for recovery'


def test_restore_that_carries_excluded_files_over_is_durable(scenario):
    """Files the backup excluded stay in place through a restore (carried into the stage)."""
    sc = scenario('restore')
    _restore = scenarios.engine('_restore')
    store = sc.store()
    os.makedirs(os.path.join(sc.target, 'logs', 'old'))
    os.makedirs(os.path.join(sc.target, 'cache', 'deep'))
    for rel in ('app.log', 'logs/old/x.log', 'cache/deep/blob'):
        with open(os.path.join(sc.target, rel), 'w') as handle:
            handle.write('kept across restores\n')
    backup = store.create([sc.target], name='with-excludes', excludes=['*.log', 'cache'])['id']
    with open(os.path.join(sc.target, 'config.json'), 'w') as handle:
        handle.write('{"broken": 1}\n')
    tracker = durability.DurabilityTracker(sc.markers)
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=tracker)):
        _restore.restore(store, store.set_dir, ref=backup)
    for rel in ('logs/old/x.log', 'cache/deep/blob'):
        assert os.path.exists(os.path.join(sc.target, rel)), 'excluded %s was not kept' % rel
    assert not tracker.problems(), tracker.problems()


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


def test_config_update_that_fails_after_creating_the_file_removes_it_durably(fast_dir):
    _config = scenarios.engine('_config')
    modules = scenarios.engine_modules()
    probe = fast_dir / 'probe'
    probe.mkdir()
    log = faults.call_log(modules, lambda: _config.update(str(probe / 'new.json'), content={'a': 1}, create=True))
    # fail the read-back, after the new file's name was made durable: its removal must be too
    read_back = log.index('read', log.index('replace')) + 1
    tracker = durability.DurabilityTracker()
    target = fast_dir / 'real' / 'new.json'
    target.parent.mkdir()
    with faults.inject(modules, faults.FaultPlan(fail_at=read_back, observer=tracker)):
        with pytest.raises(_config.ConfigError) as failure:
            _config.update(str(target), content={'a': 1}, create=True)
    assert failure.value.restored is True and not target.exists()
    assert not tracker.problems(), tracker.problems()


def test_restore_into_a_mount_point_is_durable(tmp_path):
    """A mount point cannot be renamed: its children are swapped one by one (method files)."""
    report = private_tmpfs.run_child('mountpoint_restore', tmp_path)
    assert report['methods'] == ['files'], 'the mount point was not restored child by child: %r' % report
    assert report['restored'], 'the mount point does not hold the backup afterwards'
    assert not report['problems'], report['problems']


def test_stale_temporary_files_are_removed_durably(scenario):
    """A temporary file a killed write left (and that survived on disk) is removed for good."""
    sc = scenario('audit_append')
    stale = os.path.join(os.path.dirname(sc.log), '.lastgood-tmp-audit.jsonl.head.0badc0de')
    with open(stale, 'w') as handle:
        handle.write('{"sha256": "half')
    tracker = durability.DurabilityTracker(sc.markers)
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=tracker)):
        sc.run()
    assert not os.path.exists(stale)
    assert not tracker.problems(), tracker.problems()


def test_restore_that_creates_the_journal_directory_makes_it_durable_before_the_target_moves(scenario):
    """The first restore of a set makes ``<set>/.journal``: the record is only write-ahead once the
    directory's own entry in the set directory is durable too (a power cut would lose both).

    keep_displaced is off: the copy of the displaced version it would make first is
    written into the set directory, whose fsync would hide a missing one here.
    """
    sc = scenario('restore')
    _restore = scenarios.engine('_restore')
    journal = os.path.join(sc.backup_root, 'app', '.journal')
    if os.path.isdir(journal):
        os.rmdir(journal)  # an empty one the set-up left; the restore under test must make it
    tracker = tracker_for(sc)
    store = sc.store()
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=tracker)):
        result = _restore.restore(store, store.set_dir, keep_displaced=False)
    assert os.path.isdir(journal), 'the restore did not make the journal directory'
    problems = tracker.problems() + tracker.ordering + sc.did_its_job(result)
    assert not problems, '\n'.join(problems)


def test_restore_of_a_file_it_cannot_reopen_fsyncs_it_at_once(scenario):
    """Not as root, a file without the owner-read bit cannot be opened again for the batched
    fsync: it is fsynced before its descriptor is closed, and so is durable when published."""
    sc = scenario('restore')
    _restore = scenarios.engine('_restore')
    store = sc.store()
    secret = os.path.join(sc.target, 'drop-box')
    with open(secret, 'w') as handle:
        handle.write('write-only for its owner\n')
    os.chmod(secret, 0o200)
    backup_id = store.create([sc.target], name='write-only')['id']
    with open(os.path.join(sc.target, 'config.json'), 'w') as handle:
        handle.write('{"broken": 1}\n')
    os.unlink(secret)
    tracker = durability.DurabilityTracker(sc.markers)
    with store.locked():
        manifest = store.load_manifest(backup_id)
        restorer = _restore.Restorer(store, as_root=False)
        with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=tracker)):
            restorer.run(manifest, _restore.select_targets(manifest, None))
    assert os.stat(secret).st_mode & 0o777 == 0o200, 'the write-only file was not restored as it was backed up'
    assert trees.tree_digest(sc.target) == sc.data_digest(backup_id), 'the target does not hold the backup'
    assert not tracker.problems(), tracker.problems()


def test_recovery_that_puts_a_mount_points_mode_back_makes_it_durable(tmp_path):
    """The containers are already gone, so only the fsync of the mount point after its mode
    is put back makes it durable before the journal record is dropped."""
    report = private_tmpfs.run_child('mountpoint_recovery', tmp_path)
    assert report['pending_before'], 'the restore did not stop with its journal record on disk: %r' % report
    assert not report['containers_before'], 'the containers were not gone before recovery: %r' % report
    assert report['restored'], 'the mount point does not hold the backup after recovery'
    assert not report['problems'], report['problems']
