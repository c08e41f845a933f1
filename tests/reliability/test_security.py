"""Security: other users can neither read backups nor redirect the engine with planted symlinks.

The attacker is a real unprivileged user: commands run through
``setpriv --reuid=65534 --regid=65534 --clear-groups`` (nobody), against a
sandbox whose directories they may traverse like any system directory.

* backups, the set directory, staging directories and the journal are not
  readable by nobody, whatever the modes of the files backed up;
* nobody cannot plant anything in the store or its journal;
* symlinks planted (by someone who could, e.g. before the store's permissions
  were tightened) at the set directory's marks, a predictable staging path or
  the journal are never followed: nothing outside the store changes.
"""

import os
import shutil
import stat
import subprocess

import pytest

from lib import faults, scenarios, trees
from lib.adversary import ReachesInto

NOBODY = 65534


def as_nobody(*argv):
    if os.geteuid() != 0 or not shutil.which('setpriv'):
        pytest.skip('needs root and setpriv(1) to act as another user')
    return subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups', '--'] + list(argv),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)


@pytest.fixture
def sandbox(fast_dir):
    """A world-traversable base (like /var/backups) holding a live tree of secrets and a store."""
    base = fast_dir / 'sandbox'
    base.mkdir()
    os.chmod(str(fast_dir), 0o755)
    os.chmod(str(base), 0o755)
    live = base / 'live' / 'app'
    scenarios.build_app_v1(str(live))
    os.chmod(str(base / 'live'), 0o755)
    os.chmod(str(live), 0o755)
    os.chmod(str(live / 'bin'), 0o755)
    (live / 'secret.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\n')
    os.chmod(str(live / 'secret.key'), 0o644)  # readable in place: the backup must still not leak it
    root = base / 'backups'
    root.mkdir(mode=0o755)
    os.chmod(str(root), 0o755)
    return base


def store_of(base):
    return scenarios.engine('_store').Store(str(base / 'backups'), 'app')


def test_nobody_cannot_read_list_or_plant_anything_in_a_backup(sandbox):
    store = store_of(sandbox)
    backup = store.create([str(sandbox / 'live' / 'app')], mark_lastgood=True)
    secret = os.path.join(store.data_dir(backup['id']), str(sandbox / 'live' / 'app' / 'secret.key').lstrip('/'))
    assert os.path.exists(secret)
    assert stat.S_IMODE(os.stat(store.set_dir).st_mode) & 0o077 == 0, 'the set directory is open to others'
    attempts = {
        'read a backed-up file': as_nobody('cat', secret),
        'list the set': as_nobody('ls', store.set_dir),
        'read the manifest': as_nobody('cat', store.manifest_path(backup['id'])),
        'plant a symlink in the set': as_nobody('ln', '-s', '/tmp', os.path.join(store.set_dir, '.journal')),
        'replace LASTGOOD': as_nobody('sh', '-c', 'echo evil > %s/LASTGOOD' % store.set_dir),
    }
    succeeded = [what for what, proc in attempts.items() if proc.returncode == 0]
    assert not succeeded, 'nobody could: %s' % ', '.join(succeeded)
    assert all(b'Permission denied' in proc.stderr for proc in attempts.values())
    assert store.verify(backup['id'])['ok']


class ProbeAsNobody:
    """Observer: at the first fsync after a staging directory exists, nobody tries to read it."""

    def __init__(self, parent, prefixes):
        self.parent = parent
        self.prefixes = prefixes
        self.results = []

    def before(self, name, args, kwargs):
        if name != 'fsync' or self.results:
            return None
        staged = [n for n in os.listdir(self.parent) if n.startswith(self.prefixes)]
        for name_ in staged:
            path = os.path.join(self.parent, name_)
            files = [os.path.join(d, f) for d, _subdirs, fs in os.walk(path) for f in fs]
            if files:
                self.results.append((path, as_nobody('cat', *files[:5]), as_nobody('ls', '-R', path)))
        return None

    def after(self, name, args, kwargs, result, token):
        pass


def test_staging_areas_are_unreadable_by_other_users_while_they_are_built(sandbox):
    store = store_of(sandbox)
    store.create([str(sandbox / 'live' / 'app')], mark_lastgood=True)
    probe = ProbeAsNobody(store.set_dir, ('.staging-',))
    (sandbox / 'live' / 'app' / 'secret.key').write_bytes(b'rotated key\n')
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=probe)):
        store.create([str(sandbox / 'live' / 'app')])
    assert probe.results, 'no staging directory was seen while the backup ran'
    for path, read, listing in probe.results:
        assert read.returncode != 0 and listing.returncode != 0, 'nobody could read %s while it was staged' % path


def test_restore_stage_beside_the_target_is_unreadable_while_it_is_built(sandbox):
    _restore = scenarios.engine('_restore')
    store = store_of(sandbox)
    target = sandbox / 'live' / 'app'
    store.create([str(target)], mark_lastgood=True)
    (target / 'config.json').write_text('{"broken": true}\n')
    probe = ProbeAsNobody(str(target.parent), ('.restore-',))
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=probe)):
        _restore.restore(store, store.set_dir)
    assert probe.results, 'no restore stage was seen while the restore ran'
    for path, read, listing in probe.results:
        assert read.returncode != 0 and listing.returncode != 0, 'nobody could read %s while it was staged' % path


def plant(path, target):
    if os.path.isdir(path) and not os.path.islink(path):
        scenarios.remove_tree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def decoy(base):
    outside = os.path.join(str(base), 'decoy')
    os.makedirs(os.path.join(outside, 'dir'))
    with open(os.path.join(outside, 'file'), 'w') as handle:
        handle.write('a file some other user wants overwritten\n')
    return outside


def test_set_directory_planted_as_a_symlink_is_refused_not_followed(sandbox):
    store = store_of(sandbox)
    outside = decoy(sandbox)
    before = trees.tree_digest(outside)
    plant(store.set_dir, os.path.join(outside, 'dir'))
    watch = ReachesInto(outside)
    error = None
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=watch)):
        try:
            store.create([str(sandbox / 'live' / 'app')], mark_lastgood=True)
        except scenarios.engine_errors() as exc:
            error = exc
    assert trees.tree_digest(outside) == before, 'the backup was written through the planted set directory'
    assert not watch.reached, 'the engine went through the planted set directory: %s' % watch.reached[:3]
    assert error is not None and 'symlink' in str(error) and store.set_dir in str(error)
    assert os.path.islink(store.set_dir), 'the planted symlink was replaced instead of refused'


@pytest.mark.parametrize('entry_point', ['list', 'resolve', 'verify', 'mark_lastgood', 'pin', 'retention', 'recover',
                                         'restore'])
def test_every_store_entry_point_refuses_a_set_directory_planted_as_a_symlink(sandbox, entry_point):
    _restore = scenarios.engine('_restore')
    store = store_of(sandbox)
    first = store.create([str(sandbox / 'live' / 'app')], mark_lastgood=True)['id']
    outside = decoy(sandbox)
    # the attacker's copy of a real set, so that following the symlink would find backups to act on
    shutil.copytree(store.set_dir, os.path.join(outside, 'dir', 'app'), symlinks=True)
    before = trees.tree_digest(outside)
    moved = str(sandbox / 'moved-set')
    os.rename(store.set_dir, moved)
    plant(store.set_dir, os.path.join(outside, 'dir', 'app'))
    call = {
        'list': store.list, 'resolve': store.resolve, 'verify': lambda: store.verify(first),
        'mark_lastgood': lambda: store.mark_lastgood(first), 'pin': lambda: store.pin(first),
        'retention': lambda: store.retention(keep_last=1), 'recover': store.recover,
        'restore': lambda: _restore.restore(store, store.set_dir, ref=first),
    }[entry_point]
    watch = ReachesInto(outside)
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=watch)):
        with pytest.raises(scenarios.engine_errors()) as refused:
            call()
    assert 'symlink' in str(refused.value) and store.set_dir in str(refused.value)
    assert not watch.reached, 'the engine went through the planted set directory: %s' % watch.reached[:3]
    assert trees.tree_digest(outside) == before


@pytest.mark.parametrize('where', ['journal', 'lastgood', 'pinned', 'checkpoint-staging', 'lastrestore'])
def test_symlink_planted_in_the_store_is_never_followed(sandbox, where):
    _restore = scenarios.engine('_restore')
    store = store_of(sandbox)
    target = sandbox / 'live' / 'app'
    first = store.create([str(target)], mark_lastgood=True)['id']
    outside = decoy(sandbox)
    before = trees.tree_digest(outside)
    planted = {
        'journal': (os.path.join(store.set_dir, '.journal'), os.path.join(outside, 'dir')),
        'lastgood': (os.path.join(store.set_dir, 'LASTGOOD'), os.path.join(outside, 'file')),
        'pinned': (os.path.join(store.set_dir, 'PINNED'), os.path.join(outside, 'file')),
        'checkpoint-staging': (os.path.join(store.set_dir, '.staging-before-upgrade'), os.path.join(outside, 'dir')),
        'lastrestore': (os.path.join(store.set_dir, 'LASTRESTORE'), os.path.join(outside, 'file')),
    }[where]
    if where == 'lastgood':
        plant(*planted)
    (target / 'config.json').write_text('{"changed": 1}\n')
    if where != 'lastgood':
        plant(*planted)
    errors = scenarios.engine_errors()
    watch = ReachesInto(outside)
    for step in (lambda: store.create([str(target)], name='before-upgrade', mark_lastgood=True),
                 lambda: _restore.restore(store, store.set_dir, ref=first),
                 lambda: store.retention(keep_last=1)):
        with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=watch)):
            try:
                step()
            except errors as exc:
                assert str(exc)
        assert trees.tree_digest(outside) == before, 'a planted %s symlink was followed' % where
    assert not watch.reached, 'the engine went through the planted %s symlink: %s' % (where, watch.reached[:3])
    for info in store.list():
        assert info['complete'] and store.verify(info['id'])['ok'], info


@pytest.mark.parametrize('planted', ['symlink', 'file', 'directory-of-another-user'])
def test_restore_refuses_a_planted_journal_directory_with_a_clear_error(sandbox, planted):
    if planted == 'directory-of-another-user' and os.geteuid() != 0:
        pytest.skip('needs root to make a directory owned by another user')
    _restore = scenarios.engine('_restore')
    store = store_of(sandbox)
    target = sandbox / 'live' / 'app'
    first = store.create([str(target)], mark_lastgood=True)['id']
    (target / 'config.json').write_text('{"changed": 1}\n')
    changed = trees.tree_digest(str(target))
    outside = decoy(sandbox)
    before = trees.tree_digest(outside)
    journal = os.path.join(store.set_dir, '.journal')
    if planted == 'symlink':
        plant(journal, os.path.join(outside, 'dir'))
    elif planted == 'file':
        with open(journal, 'w') as handle:
            handle.write('{}\n')
    else:
        os.mkdir(journal, 0o700)
        os.chown(journal, NOBODY, NOBODY)
    watch = ReachesInto(outside)
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=watch)):
        with pytest.raises(scenarios.engine_errors()) as refused:
            _restore.restore(store, store.set_dir, ref=first)
    message = str(refused.value)
    assert journal in message and 'Nothing was done' in message, message
    assert {'symlink': 'a symlink to', 'file': 'not a directory',
            'directory-of-another-user': 'owned by uid %d' % NOBODY}[planted] in message, message
    assert not watch.reached and trees.tree_digest(outside) == before
    assert trees.tree_digest(str(target)) == changed, 'the target was touched'
    assert os.path.lexists(journal), 'the planted journal was removed instead of refused'
