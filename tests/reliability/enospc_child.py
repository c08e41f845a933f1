"""Run one engine operation on a private tmpfs and report what happened.

Started (by tests/lib/private_tmpfs.py) inside ``unshare -m`` with a small tmpfs mounted at ``argv[2]``;
``argv[1]`` is the case, ``argv[3]`` a scratch directory on the normal disk.
Prints one JSON object.

The ENOSPC cases (test_fsync_and_enospc.py) fill the tmpfs and report the error
the engine raised, the state after it, and every write the engine attempted on
the full file system after its first ENOSPC (a retry would show up there).  The
mount-point cases (test_durability.py) restore into the tmpfs mount point itself,
which cannot be renamed, or recover such a restore, and report what the durability
tracker saw.
"""

import errno
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, '.collections'))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from lib import durability, faults, scenarios, trees  # noqa: E402  pylint: disable=wrong-import-position

WRITES = ('write', 'pwrite', 'writev', 'copy_file_range', 'sendfile', 'posix_fallocate')


class FullDiskWatch:
    """Observer: the first ENOSPC, and the writes to the full file system after it."""

    def __init__(self, full_dev):
        self.full_dev = full_dev
        self.first = None
        self.writes_after = []

    def before(self, name, args, kwargs):
        if self.first is not None and name in WRITES:
            fd = args[1] if name == 'copy_file_range' else args[0]
            try:
                if os.fstat(fd).st_dev == self.full_dev:
                    self.writes_after.append(os.readlink('/proc/self/fd/%d' % fd))
            except OSError:
                pass
        return None

    def after(self, name, args, kwargs, result, token):
        pass

    def error(self, name, args, kwargs, exc):
        if exc.errno == 28 and self.first is None:
            self.first = '%s: %s' % (name, exc)


def fill(path, leave):
    """Fill the file system holding ``path`` until about ``leave`` bytes are free."""
    st = os.statvfs(os.path.dirname(path))
    free = st.f_bavail * st.f_frsize
    with open(path, 'wb') as handle:
        handle.write(b'\0' * max(0, free - leave))


def run(operation, full_dir):
    watch = FullDiskWatch(os.stat(full_dir).st_dev)
    plan = faults.FaultPlan(observer=watch)
    error = None
    with faults.inject(scenarios.engine_modules(), plan):
        try:
            operation()
        except Exception as exc:  # pylint: disable=broad-except
            error = exc
    return {
        'error_type': type(error).__name__ if error else None,
        'error': str(error) if error else None,
        'first_enospc': watch.first,
        'writes_after_enospc': watch.writes_after,
    }


def case_backup(full, scratch):
    store_mod = scenarios.engine('_store')
    live = os.path.join(scratch, 'live', 'app')
    scenarios.build_app_v1(live)
    store = store_mod.Store(os.path.join(full, 'store'), 'app')
    first = store.create([live], mark_lastgood=True)['id']
    with open(os.path.join(live, 'data', 'large.bin'), 'wb') as handle:
        handle.write(os.urandom(512 * 1024))
    report = run(lambda: store.create([live], mark_lastgood=True), full)
    store.recover()
    report.update(
        backups=sorted(info['id'] for info in store.list()),
        first=first,
        first_verifies=store.verify(first)['ok'],
        lastgood=open(os.path.join(store.set_dir, 'LASTGOOD')).read().strip(),
        leftovers=trees.leftovers(full, markers=scenarios.durability.DEFAULT_MARKERS),
    )
    return report


def case_restore(full, scratch):
    store_mod = scenarios.engine('_store')
    restore_mod = scenarios.engine('_restore')
    target = os.path.join(full, 'app')
    scenarios.build_app_v1(target)
    with open(os.path.join(target, 'data', 'large.bin'), 'wb') as handle:
        handle.write(os.urandom(300 * 1024))
    store = store_mod.Store(os.path.join(scratch, 'store'), 'app')
    backup_id = store.create([target], mark_lastgood=True)['id']
    scenarios.change_app_to_v2(target)
    os.unlink(os.path.join(target, 'data', 'large.bin'))
    fill(os.path.join(full, 'filler'), 100 * 1024)
    before = trees.tree_digest(target)
    report = run(lambda: restore_mod.restore(store, store.set_dir), full)
    restore_mod.recover_journal(store.set_dir)
    store.recover()
    journal = os.path.join(store.set_dir, '.journal')
    report.update(
        untouched=trees.tree_digest(target) == before,
        backup_verifies=store.verify(backup_id)['ok'],
        leftovers=trees.leftovers(full, markers=scenarios.durability.DEFAULT_MARKERS),
        journal=os.listdir(journal) if os.path.isdir(journal) else [],
    )
    return report


def case_config(full, scratch):
    config = scenarios.engine('_config')
    path = os.path.join(full, 'etc', 'custom_modes.json')
    os.makedirs(os.path.dirname(path))
    original = json.dumps({'partyMode': {'enabled': True}, 'pad': 'x' * 4000}, indent=2).encode() + b'\n'
    with open(path, 'wb') as handle:
        handle.write(original)
    fill(os.path.join(full, 'filler'), 1024)
    report = run(lambda: config.update(path, set_values={'partyMode.enabled': False}), full)
    with open(path, 'rb') as handle:
        report.update(untouched=handle.read() == original)
    report.update(leftovers=trees.leftovers(full, markers=scenarios.durability.DEFAULT_MARKERS),
                  backups=[name for name in os.listdir(os.path.dirname(path)) if '.bak.' in name])
    del scratch
    return report


def case_audit(full, scratch):
    audit = scenarios.engine('_audit')
    log = os.path.join(full, 'audit', 'audit.jsonl')
    for number in range(3):
        audit.append(log, 'seed', detail={'n': number})
    fill(os.path.join(full, 'filler'), 0)
    report = run(lambda: audit.append(log, 'checkpoint', detail={'pad': 'y' * 8000}), full)
    os.unlink(os.path.join(full, 'filler'))
    check = audit.verify(log)
    report.update(chain_ok=check['ok'], lines=check['lines'], torn=check['torn_tail_bytes'],
                  leftovers=trees.leftovers(full, markers=scenarios.durability.DEFAULT_MARKERS))
    del scratch
    return report


def _mountpoint_backed_up_then_changed(full, scratch):
    """The store (on the scratch disk) with a backup of the mount point, then the mount point changed."""
    store = scenarios.engine('_store').Store(os.path.join(scratch, 'store'), 'app')
    scenarios.build_app_v1(full)
    backup_id = store.create([full], mark_lastgood=True)['id']
    scenarios.change_app_to_v2(full)
    # added after the backup and first in name order: the first child moved is moved
    # aside into the displaced container, before any swap fsyncs the mount point
    trees.write_file(os.path.join(full, '0-added-after-backup'), b'goes\n', 0o644, scenarios.MTIME)
    os.chmod(full, 0o750)  # the mount point's own mode comes back too
    return store, backup_id


def _holds_backup(full, store, backup_id):
    data = os.path.join(store.data_dir(backup_id), full.lstrip('/'))
    strays = [name for name in os.listdir(full) if name.startswith(scenarios.durability.DEFAULT_MARKERS)]
    return trees.tree_digest(full) == trees.tree_digest(data) and not strays


def case_mountpoint_restore(full, scratch):
    restore_mod = scenarios.engine('_restore')
    store, backup_id = _mountpoint_backed_up_then_changed(full, scratch)
    tracker = durability.DurabilityTracker()
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=tracker)):
        result = restore_mod.restore(store, store.set_dir)
    return {'first_enospc': None, 'writes_after_enospc': [],
            'methods': [entry.get('method') for entry in result['paths']],
            'restored': _holds_backup(full, store, backup_id), 'problems': tracker.problems()}


class KeepJournalRecord(faults.FaultPlan):
    """Fails the unlink of a record in ``journal``: the restore stops just before dropping it."""

    def __init__(self, journal):
        super().__init__()
        self.journal = journal

    def call(self, name, func, args, kwargs, release=None):
        if name == 'unlink' and os.path.dirname(os.path.abspath(os.fsdecode(args[0]))) == self.journal:
            raise faults.InjectedFault(errno.EIO, 'injected EIO in the removal of the journal record', args[0])
        return super().call(name, func, args, kwargs, release)


def case_mountpoint_recovery(full, scratch):
    """Recovery of a mount-point restore that stopped just before dropping its journal record,
    after a power cut lost the mount point's restored mode (its containers were durably gone):
    recovery puts the mode back, and only the fsync of the mount point itself makes that durable."""
    restore_mod = scenarios.engine('_restore')
    store, backup_id = _mountpoint_backed_up_then_changed(full, scratch)
    journal = os.path.abspath(os.path.join(store.set_dir, '.journal'))
    modules = scenarios.engine_modules()
    try:
        with faults.inject(modules, KeepJournalRecord(journal)):
            restore_mod.restore(store, store.set_dir)
    except (OSError, restore_mod.RestoreError):
        pass  # the record is kept; what matters is the state it leaves for recovery
    pending = [name for name in os.listdir(journal) if name.endswith('.json')]
    containers = [name for name in os.listdir(full) if name.startswith(scenarios.durability.DEFAULT_MARKERS)]
    os.chmod(full, 0o750)  # what the power cut lost
    tracker = durability.DurabilityTracker()
    with faults.inject(modules, faults.FaultPlan(observer=tracker)):
        restore_mod.recover_journal(store.set_dir)
    return {'first_enospc': None, 'writes_after_enospc': [], 'pending_before': pending,
            'containers_before': containers, 'restored': _holds_backup(full, store, backup_id),
            'problems': tracker.problems()}


CASES = {'mountpoint_restore': case_mountpoint_restore, 'mountpoint_recovery': case_mountpoint_recovery,
         'backup': case_backup, 'restore': case_restore,
         'config_update': case_config, 'audit_append': case_audit}


def main():
    case, full, scratch = sys.argv[1:4]
    try:
        report = CASES[case](full, scratch)
    except scenarios.Unavailable as exc:
        report = {'unavailable': str(exc)}
    sys.stdout.write(json.dumps(report) + '\n')


if __name__ == '__main__':
    main()
