"""A failed fsync aborts and is never retried; a full disk is not retried and leaves things clean.

fsync: every fsync of every operation fails in turn (only fsyncs are counted, so
each one is hit).  The operation must fail (or, where the engine documents a
best-effort write, say so), must never fsync that file again, and recovery must
reach exactly the old or exactly the new state.

ENOSPC: the real thing, not an injected errno.  Each case runs in a child inside
its own mount namespace (``unshare -m``) with a tiny tmpfs mounted over a scratch
directory, fills it, and runs the operation; the fault proxy only watches, to
catch any write to the full file system after the first ENOSPC (a retry).
"""

import errno

import pytest

from lib import private_tmpfs, scenarios

NAMES = ('backup', 'restore', 'undo', 'config_update', 'audit_append', 'lock', 'run_state', 'retention')
FSYNCS = ('fsync', 'fdatasync')


@pytest.mark.parametrize('name', NAMES)
def test_failed_fsync_aborts_the_operation_and_is_never_retried(scenario, name):
    sc = scenario(name)
    points, problems = scenarios.sweep_scenario(sc, False, errno.EIO, only=FSYNCS)
    problems = scenarios.unknown_problems(sc, problems)
    assert not problems, '\n'.join(problems[:40])
    if name not in ('retention',):
        assert points >= 1, '%s never fsyncs' % name


def run_on_full_disk(case, tmp_path, size):
    report = private_tmpfs.run_child(case, tmp_path, 'size=%s,mode=0755' % size)
    assert report['first_enospc'], 'the file system never filled up; the case proves nothing: %r' % report
    assert report['writes_after_enospc'] == [], 'wrote to the full file system after ENOSPC (a retry)'
    return report


def test_backup_onto_a_full_disk_fails_clearly_and_publishes_nothing(tmp_path):
    report = run_on_full_disk('backup', tmp_path, '256k')
    assert report['error_type'] == 'StoreError'
    assert 'No space left on device' in report['error'] and 'No backup was published' in report['error']
    assert report['backups'] == [report['first']], 'a partial backup was published'
    assert report['first_verifies'] and report['lastgood'] == report['first']
    assert report['leftovers'] == []


def test_restore_onto_a_full_disk_leaves_the_target_untouched(tmp_path):
    report = run_on_full_disk('restore', tmp_path, '512k')
    assert report['error_type'] == 'RestoreError'
    assert 'No space left on device' in report['error']
    assert report['untouched'] and report['backup_verifies']
    assert report['leftovers'] == [] and report['journal'] == []


def test_config_update_on_a_full_disk_changes_nothing(tmp_path):
    report = run_on_full_disk('config_update', tmp_path, '64k')
    assert report['error_type'] == 'ConfigError'
    assert 'No space left on device' in report['error']
    assert report['untouched']
    assert report['leftovers'] == [] and report['backups'] == []


def test_audit_append_on_a_full_disk_keeps_the_chain_intact(tmp_path):
    report = run_on_full_disk('audit_append', tmp_path, '64k')
    assert report['error_type'] in ('AuditError', 'OSError')
    assert report['chain_ok'] and report['lines'] == 3 and report['torn'] == 0
    assert report['leftovers'] == []
