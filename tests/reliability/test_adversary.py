"""A real local user against the store and the restore: root's runs, and a non-root runner's.

The adversary is ``lastgood-adv``, a system user the session creates when it
does not exist (and reuses when it does); the non-root runner is
``lastgood-run``, made the same way.  The adversary acts through ``setpriv``
with its own ids and no groups, so it can do exactly what such a user can: it
owns ``users/adv`` inside the backed-up tree, has a home, and may write to
``shared`` (a root-owned 1777 directory like /tmp) and to whatever a careless
administrator left open.  There it plants symlinks (at backed-up
subdirectories, at the store root, the set directory, a backup directory),
hardlinks to root's files, FIFOs in place of files, renamed directories and
forged backup sets built with the engine's own manifest code.

What is asserted: root's backup, restore, undo, verify, drift and retention
never change anything outside the backed-up paths (every entry of ``outside``,
the adversary's home and root's files is compared before and after: type,
mode, owner, inode, mtime, content), never go through a planted link (every
call the engine makes is watched), and never restore a forged backup -- the
store is refused with an error naming the path and its owner.  The non-root
runner gets the same promises against its neighbour.
"""

import json
import os
import signal
import socket
import sys
import time

import pytest

from lib import adversary, faults, scenarios
from lib.adversary import ReachesInto, changes, run_as, snapshot

pytestmark = pytest.mark.root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, '.collections')
EVIL = b'#!/bin/sh\n# installed by lastgood-adv\nexec /bin/sh -p\n'


def user_or_skip(name):
    try:
        return adversary.ensure_user(name)
    except adversary.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope='session')
def adv():
    return user_or_skip('lastgood-adv')


@pytest.fixture(scope='session')
def runner():
    return user_or_skip('lastgood-run')


def write(path, data, mode=0o644, owner=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)


def mkdir(path, mode=0o755, owner=None):
    os.mkdir(path)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    return path


class World:
    """The machine as the adversary finds it (all below one world-traversable base).

    base/live/app       the backed-up tree, root's; ``users/adv`` in it is the adversary's
    base/outside        root's files outside the tree: what planted links point at
    base/home/adv       the adversary's home
    base/shared         root-owned, mode 1777, like /tmp
    base/store          root's store, as the collection makes it (0700)
    """

    def __init__(self, base, adv):
        self.base = base
        self.adv = adv
        os.chmod(base, 0o755)
        self.live = os.path.join(base, 'live', 'app')
        os.makedirs(self.live)
        os.chmod(os.path.dirname(self.live), 0o755)
        write(os.path.join(self.live, 'etc', 'app.conf'), b'port = 8080\n')
        write(os.path.join(self.live, 'etc', 'secret.key'), b'root secret\n', 0o600)
        write(os.path.join(self.live, 'bin', 'tool'), b'#!/bin/sh\necho tool v1\n', 0o755)
        mine = os.path.join(self.live, 'users', 'adv')
        os.makedirs(mine)
        os.chown(mine, adv.uid, adv.gid)
        write(os.path.join(mine, 'notes.txt'), b'my notes\n', owner=adv)
        os.mkdir(os.path.join(mine, 'docs'))
        os.chown(os.path.join(mine, 'docs'), adv.uid, adv.gid)
        write(os.path.join(mine, 'docs', 'readme'), b'readme v1\n', owner=adv)
        self.mine = mine
        self.outside = mkdir(os.path.join(base, 'outside'))
        write(os.path.join(self.outside, 'passwd'), b'root:x:0:0::/root:/bin/sh\n')
        write(os.path.join(self.outside, 'shadow'), b'root:$6$secret:1::::::\n', 0o600)
        mkdir(os.path.join(self.outside, 'docs'))
        write(os.path.join(self.outside, 'docs', 'readme'), b'root readme outside the tree\n')
        self.home = mkdir(os.path.join(base, 'home'))
        self.adv_home = mkdir(os.path.join(self.home, 'adv'), 0o755, adv)
        self.shared = mkdir(os.path.join(base, 'shared'), 0o1777)
        self.store_root = os.path.join(base, 'store')

    def store(self, root=None, set_name='app'):
        return scenarios.engine('_store').Store(root or self.store_root, set_name)

    def untouched(self):
        """What must never change: everything outside the tree, the adversary's home, root's files in the tree.

        A restore rebuilds the tree, so inside it the inodes may change; nothing a user sees may.
        """
        return {'outside': snapshot(self.outside), 'home': snapshot(self.home),
                'root files': {name: snapshot(os.path.join(self.live, name), inodes=False) for name in ('etc', 'bin')}}

    def as_adv(self, *argv, check=True):
        return run_as(self.adv, *argv, check=check)


@pytest.fixture
def world(fast_dir, adv):
    return World(str(fast_dir), adv)


def forge_set(set_dir, set_name, source, files, owner):
    """A complete backup set as the adversary would build it with the engine's own manifest code.

    ``files`` maps a path below ``source`` to (content, mode); the manifest claims
    root owns everything.  The digests are right, so only the store's trust rule
    stands between it and a restore.
    """
    _manifest = scenarios.engine('_manifest')
    _store = scenarios.engine('_store')
    now = time.time()
    backup_id = _store.new_backup_id(now)
    data = os.path.join(set_dir, backup_id, 'data')
    rel = source.lstrip('/')
    for path, (content, mode) in files.items():
        write(os.path.join(data, rel, path), content, mode)
    entries, _special = _manifest.scan(data, [rel])
    _manifest.hash_entries(data, entries)
    for entry in entries:
        entry.uid = entry.gid = 0
    manifest = _manifest.Manifest(backup_id, set_name, _store.iso_utc(now), socket.gethostname(), [source], entries)
    json_bytes = manifest.to_json().encode('utf-8')
    write(os.path.join(set_dir, backup_id, 'MANIFEST.sha256'), _store.sums_bytes(manifest, json_bytes), 0o600)
    write(os.path.join(set_dir, backup_id, 'MANIFEST.json'), json_bytes, 0o600)
    write(os.path.join(set_dir, 'LASTGOOD'), (backup_id + '\n').encode(), 0o600)
    adversary.chown_tree(set_dir, owner)
    return backup_id


def forged_tool():
    return {'bin/tool': (EVIL, 0o4755), 'etc/app.conf': (b'port = 1\n', 0o644)}


def refused(call, *names):
    """Run ``call``; it must be refused with an engine error whose message holds every string in ``names``."""
    with pytest.raises(scenarios.engine_errors()) as info:
        call()
    message = str(info.value)
    for name in names:
        assert name in message, 'the refusal does not name %r: %s' % (name, message)
    return message


def watched(outside, call):
    """Run ``call`` with every engine I/O call watched; returns (result or exception, calls that went outside)."""
    watch = ReachesInto(outside)
    with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=watch)):
        try:
            outcome = call()
        except scenarios.engine_errors() as exc:
            outcome = exc
    return outcome, watch.reached


def assert_no_setuid_anywhere(root):
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            assert not st.st_mode & 0o6000, '%s is setuid/setgid' % os.path.join(dirpath, name)


# -- the store: planted, forged, left open --------------------------------------------------------------------

def test_root_refuses_a_store_root_another_user_planted_and_never_installs_their_forged_set(world):
    """Issue 13, defect 3: ``shared/store`` planted as a symlink into the adversary's home."""
    _restore = scenarios.engine('_restore')
    theirs = os.path.join(world.adv_home, 'store')
    planted = os.path.join(world.shared, 'store')
    world.as_adv('mkdir', '-m', '0755', theirs)
    world.as_adv('ln', '-s', theirs, planted)
    before = world.untouched()
    live_before = snapshot(world.live)
    owner = 'uid %d (%s)' % (world.adv.uid, world.adv.name)
    refused(lambda: world.store(planted).create([world.live], mark_lastgood=True), planted, owner, 'symlink',
            'Nothing was read or written')
    assert not changes(before, world.untouched()), 'the backup wrote into the planted store'
    forge_set(os.path.join(theirs, 'app'), 'app', world.live, forged_tool(), world.adv)
    for call in (lambda: _restore.restore(world.store(planted)),
                 lambda: _restore.restore(world.store(planted), check_mode=True),
                 lambda: world.store(planted).list(), lambda: world.store(planted).resolve(),
                 lambda: world.store(planted).retention(keep_last=1)):
        refused(call, planted, owner)
    assert snapshot(world.live) == live_before, 'the forged backup was restored'
    assert_no_setuid_anywhere(world.live)


@pytest.mark.parametrize('how', ['made by the adversary', 'root-owned but open to all', 'root-owned sticky like /tmp'])
def test_root_refuses_a_backup_root_another_user_owns_or_can_write(world, how):
    _restore = scenarios.engine('_restore')
    root = os.path.join(world.shared, 'store')
    if how == 'made by the adversary':
        world.as_adv('mkdir', '-m', '0755', root)
        named = ('owned by uid %d (%s)' % (world.adv.uid, world.adv.name),)
    else:
        mkdir(root, 0o777 if how == 'root-owned but open to all' else 0o1777)
        named = ('writable by group and others', 'owned by uid 0 (root)')
    forge_dir = os.path.join(world.adv_home, 'forged')
    forge_set(forge_dir, 'app', world.live, forged_tool(), world.adv)
    world.as_adv('mv', forge_dir, os.path.join(root, 'app'))
    live_before = snapshot(world.live)
    for call in (lambda: world.store(root).create([world.live]), lambda: _restore.restore(world.store(root)),
                 lambda: world.store(root).verify(world.store(root).resolve()['id']),
                 lambda: world.store(root).retention(keep_last=1),
                 lambda: scenarios.engine('_store').list_sets(root)):
        refused(call, root + ' is ', *named)
    assert snapshot(world.live) == live_before
    assert_no_setuid_anywhere(world.live)


@pytest.mark.parametrize('where', ['set directory', 'backup directory', 'inside a backup directory'])
def test_root_never_uses_a_set_or_backup_an_open_permission_let_another_user_replace(world, where):
    """A careless chmod opens one level of root's store; the adversary swaps in a forged set or backup there."""
    _restore = scenarios.engine('_restore')
    store = world.store()
    first = store.create([world.live], mark_lastgood=True)['id']
    forge_dir = os.path.join(world.adv_home, 'forged')
    forged_id = forge_set(forge_dir, 'app', world.live, forged_tool(), world.adv)
    if where == 'set directory':
        opened = world.store_root
        os.chmod(opened, 0o777)
        world.as_adv('mv', store.set_dir, os.path.join(world.store_root, 'old-app'))
        world.as_adv('ln', '-s', forge_dir, store.set_dir)
    elif where == 'backup directory':
        opened = store.set_dir
        os.chmod(world.store_root, 0o711)  # traversable, closed to writes: the rule lets that pass
        os.chmod(opened, 0o777)
        world.as_adv('mv', store.backup_dir(first), os.path.join(store.set_dir, 'old'))
        world.as_adv('ln', '-s', os.path.join(forge_dir, forged_id), store.backup_dir(first))
    else:
        opened = store.backup_dir(first)
        os.chmod(world.store_root, 0o711)
        os.chmod(store.set_dir, 0o711)
        os.chmod(opened, 0o777)
        for name in ('MANIFEST.json', 'MANIFEST.sha256', 'data'):
            world.as_adv('mv', os.path.join(store.backup_dir(first), name),
                         os.path.join(store.backup_dir(first), 'old-' + name))
        forged = os.path.join(forge_dir, forged_id)
        with open(os.path.join(forged, 'MANIFEST.json'), 'rb') as handle:
            manifest = json.loads(handle.read().decode('utf-8'))
        manifest['id'] = first
        json_bytes = scenarios.engine('_manifest').loads(json.dumps(manifest).encode()).to_json().encode()
        loaded = scenarios.engine('_manifest').loads(json_bytes)
        write(os.path.join(forged, 'MANIFEST.json'), json_bytes, 0o600, world.adv)
        write(os.path.join(forged, 'MANIFEST.sha256'), scenarios.engine('_store').sums_bytes(loaded, json_bytes),
              0o600, world.adv)
        for name in ('MANIFEST.json', 'MANIFEST.sha256', 'data'):
            world.as_adv('mv', os.path.join(forged, name), os.path.join(store.backup_dir(first), name))
    live_before = snapshot(world.live)
    outcome, reached = watched(forge_dir, lambda: _restore.restore(world.store(), ref=first))
    assert isinstance(outcome, Exception), 'the restore used the store after another user changed it'
    assert opened in str(outcome) or store.backup_dir(first) in str(outcome), outcome
    assert 'Nothing was read' in str(outcome) or 'never followed' in str(outcome), outcome
    assert not reached, 'the engine went through the planted link: %s' % reached[:3]
    assert snapshot(world.live) == live_before, 'the forged backup was restored'
    assert_no_setuid_anywhere(world.live)


# -- the tree: links, hardlinks, FIFOs and renames in the adversary's part of it --------------------------------

@pytest.mark.parametrize('how', ['replaced by a symlink', 'renamed and replaced by a symlink'])
def test_symlink_planted_at_a_backed_up_subdirectory_is_never_followed(world, how):
    _restore = scenarios.engine('_restore')
    store = world.store()
    first = store.create([world.live], mark_lastgood=True)['id']
    docs = os.path.join(world.mine, 'docs')
    if how == 'replaced by a symlink':
        world.as_adv('rm', '-r', docs)
    else:
        world.as_adv('mv', docs, docs + '.moved')
    world.as_adv('ln', '-s', os.path.join(world.outside, 'docs'), docs)
    before = world.untouched()
    steps = [
        ('backup', lambda: store.create([world.live])),
        ('drift', lambda: store.drift(first)),
        ('verify', lambda: store.verify(first)),
        ('restore', lambda: _restore.restore(store, ref=first)),
        ('undo', lambda: _restore.restore(store, undo=True)),
        ('restore again', lambda: _restore.restore(store, ref=first)),
        ('retention', lambda: store.retention(keep_last=1)),
    ]
    for name, step in steps:
        outcome, reached = watched(world.outside, step)
        assert not isinstance(outcome, Exception), '%s failed: %s' % (name, outcome)
        assert not reached, '%s went through the planted symlink: %s' % (name, reached[:3])
        assert not changes(before, world.untouched()), '%s changed something outside the tree' % name
    assert os.path.isdir(docs) and not os.path.islink(docs)
    with open(os.path.join(docs, 'readme'), 'rb') as handle:
        assert handle.read() == b'readme v1\n'


def test_sub_path_restore_never_writes_through_a_symlink_planted_inside_the_tree(world):
    """Issue 13, defect 2 (fixed on branch i13-restore): restore of ``users/adv/docs/readme`` below a planted link."""
    _restore = scenarios.engine('_restore')
    store = world.store()
    first = store.create([world.live], mark_lastgood=True)['id']
    docs = os.path.join(world.mine, 'docs')
    world.as_adv('rm', '-r', docs)
    world.as_adv('ln', '-s', os.path.join(world.outside, 'docs'), docs)
    before = world.untouched()
    outcome, reached = watched(world.outside, lambda: _restore.restore(store, ref=first,
                                                                       paths=[os.path.join(docs, 'readme')]))
    assert not reached, 'the restore went through the planted symlink: %s' % reached[:3]
    assert not changes(before, world.untouched()), 'the restore wrote outside the tree: %s' % outcome
    if not isinstance(outcome, Exception):
        assert os.path.isdir(docs) and not os.path.islink(docs)


@pytest.mark.parametrize('when', ['before the backup', 'after the backup'])
def test_hardlink_to_a_root_file_in_the_users_subtree_never_changes_the_other_name(world, when):
    _restore = scenarios.engine('_restore')
    victim = os.path.join(world.outside, 'passwd')
    link = os.path.join(world.mine, 'passwd-link')

    def plant():
        # fs.protected_hardlinks stops the adversary from linking a file it cannot write; on a kernel without that
        # protection (or for a link made when it could) the link exists all the same, so plant it as root then.
        if world.as_adv('ln', victim, link, check=False).returncode != 0:
            os.link(victim, link)

    store = world.store()
    if when == 'before the backup':
        plant()
    first = store.create([world.live], mark_lastgood=True)['id']
    if when == 'after the backup':
        plant()
    world.as_adv('sh', '-c', 'echo changed > %s' % os.path.join(world.mine, 'notes.txt'))
    before = world.untouched()
    for name, step in (('restore', lambda: _restore.restore(store, ref=first)),
                       ('undo', lambda: _restore.restore(store, undo=True)),
                       ('verify', lambda: store.verify(first)), ('drift', lambda: store.drift(first)),
                       ('retention', lambda: store.retention(keep_last=1))):
        outcome = step()
        assert not isinstance(outcome, Exception)
        assert not changes(before, world.untouched()), '%s changed %s through its hardlink' % (name, victim)


def test_fifo_planted_in_place_of_a_file_never_hangs_a_backup_or_a_restore(world):
    _restore = scenarios.engine('_restore')
    store = world.store()
    first = store.create([world.live], mark_lastgood=True)['id']
    notes = os.path.join(world.mine, 'notes.txt')
    world.as_adv('rm', notes)
    world.as_adv('mkfifo', notes)
    previous = signal.signal(signal.SIGALRM, lambda *_args: pytest.fail('the engine blocked on a planted FIFO'))
    signal.alarm(60)
    try:
        result = store.create([world.live])
        recorded = store.load_manifest(result['id']).by_path[notes.lstrip('/')]
        assert recorded.type == 'fifo'
        outcome = _restore.restore(store, ref=first)
        assert outcome['changed']
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class SwapToFifo:
    """Observer: when the backup opens ``path`` to copy it, the adversary has just swapped it for a FIFO."""

    def __init__(self, world, path):
        self.world = world
        self.path = path
        self.swapped = False

    def before(self, name, args, kwargs):
        if name == 'open' and not self.swapped and args and args[0] == self.path:
            self.swapped = True
            self.world.as_adv('sh', '-c', 'rm "$1" && mkfifo "$1"', 'sh', self.path)

    def after(self, name, args, kwargs, result, token):
        pass


def test_fifo_swapped_in_while_the_backup_copies_never_hangs_it(world):
    store = world.store()
    notes = os.path.join(world.mine, 'notes.txt')
    swap = SwapToFifo(world, notes)
    previous = signal.signal(signal.SIGALRM, lambda *_args: pytest.fail('the backup blocked on a planted FIFO'))
    signal.alarm(60)
    try:
        with faults.inject(scenarios.engine_modules(), faults.FaultPlan(observer=swap)):
            message = refused(lambda: store.create([world.live]), notes, 'No backup was published')
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert swap.swapped and 'regular file' in message


# -- a non-root runner and its neighbour ------------------------------------------------------------------------

DRIVER = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.lastgood.rollback.plugins.module_utils import _restore, _store
op = json.loads(sys.argv[2])
store = _store.Store(op['root'], 'app')
try:
    if op['do'] == 'backup':
        result = store.create(op['paths'], mark_lastgood=True)
    elif op['do'] == 'restore':
        result = _restore.restore(store, paths=op.get('paths'))
    elif op['do'] == 'undo':
        result = _restore.restore(store, undo=True)
    elif op['do'] == 'verify':
        result = store.verify(store.resolve()['id'])
    elif op['do'] == 'drift':
        result = store.drift(store.resolve()['id'])
    else:
        result = store.retention(keep_last=1)
except (_store.StoreError, _restore.RestoreError) as exc:
    print(json.dumps({'error': str(exc)}))
else:
    print(json.dumps({'result': result}, default=str))
'''


class Runner:
    """The engine run by ``lastgood-run`` (a non-root user) in a separate process."""

    def __init__(self, world, user):
        self.world = world
        self.user = user
        self.driver = os.path.join(world.base, 'driver.py')
        write(self.driver, DRIVER.encode())
        self.python = None
        for candidate in (sys.executable, '/usr/bin/python3'):
            if run_as(user, candidate, '-c', 'pass', check=False).returncode == 0:
                self.python = candidate
                break
        if self.python is None:
            pytest.skip('no Python interpreter the user %s may run' % user.name)
        self.home = mkdir(os.path.join(world.home, 'run'), 0o711, user)
        self.live = os.path.join(self.home, 'app')
        for rel, data in (('conf/app.conf', b'mode = 1\n'), ('drop/inbox.txt', b'inbox v1\n'),
                          ('drop/sub/report.txt', b'report v1\n')):
            write(os.path.join(self.live, rel), data, owner=user)
        adversary.chown_tree(self.live, user)
        # a shared inbox: the neighbour may add, rename and remove entries in drop/
        os.chmod(os.path.join(self.live, 'drop'), 0o777)
        self.outside = mkdir(os.path.join(self.home, 'outside'), 0o755, user)
        write(os.path.join(self.outside, 'private.conf'), b'runner private\n', owner=user)
        self.store_root = os.path.join(self.home, 'store')

    def run(self, do, root=None, **extra):
        op = dict(extra, do=do, root=root or self.store_root)
        proc = run_as(self.user, self.python, self.driver, COLLECTIONS, json.dumps(op), check=False,
                      env=dict(os.environ, PYTHONDONTWRITEBYTECODE='1'))
        assert proc.returncode == 0, proc.stderr.decode(errors='replace')
        return json.loads(proc.stdout.decode())


@pytest.fixture
def non_root(world, runner):
    return Runner(world, runner)


def test_non_root_runner_backs_up_restores_and_undoes_in_its_own_store(non_root):
    assert 'result' in non_root.run('backup', paths=[non_root.live])
    write(os.path.join(non_root.live, 'conf', 'app.conf'), b'mode = 2\n', owner=non_root.user)
    outcome = non_root.run('restore')
    assert 'result' in outcome and outcome['result']['changed'], outcome
    with open(os.path.join(non_root.live, 'conf', 'app.conf'), 'rb') as handle:
        assert handle.read() == b'mode = 1\n'
    assert 'result' in non_root.run('undo')
    assert non_root.run('verify')['result']['ok']


@pytest.mark.parametrize('how', ['symlink into the neighbour\'s home', 'directory the neighbour made'])
def test_non_root_runner_refuses_a_store_its_neighbour_planted_and_their_forged_set(non_root, how):
    world = non_root.world
    planted = os.path.join(world.shared, 'run-store')
    theirs = os.path.join(world.adv_home, 'store')
    world.as_adv('mkdir', '-m', '0755', theirs)
    if how.startswith('symlink'):
        world.as_adv('ln', '-s', theirs, planted)
    else:
        world.as_adv('mkdir', '-m', '0777', planted)
    forge_dir = os.path.join(world.adv_home, 'forged')
    forge_set(forge_dir, 'app', non_root.live, {'conf/app.conf': (b'mode = evil\n', 0o644)}, world.adv)
    world.as_adv('mv', forge_dir, os.path.join(theirs if how.startswith('symlink') else planted, 'app'))
    owner = 'owned by uid %d (%s)' % (world.adv.uid, world.adv.name)
    home_before = snapshot(world.adv_home)
    live_before = snapshot(non_root.live)
    for do in ('backup', 'restore', 'verify', 'drift', 'retention'):
        outcome = non_root.run(do, root=planted, paths=[non_root.live])
        assert 'error' in outcome, '%s used the planted store: %s' % (do, outcome)
        assert planted in outcome['error'] and owner in outcome['error'], outcome['error']
    assert snapshot(world.adv_home) == home_before
    assert snapshot(non_root.live) == live_before


def test_non_root_runner_never_writes_through_a_link_its_neighbour_planted_in_the_tree(non_root):
    world = non_root.world
    assert 'result' in non_root.run('backup', paths=[non_root.live])
    inbox = os.path.join(non_root.live, 'drop', 'inbox.txt')
    world.as_adv('rm', '-f', inbox)
    world.as_adv('ln', '-s', os.path.join(non_root.outside, 'private.conf'), inbox)
    before = snapshot(non_root.outside)
    for do in ('drift', 'restore', 'undo', 'restore', 'retention'):
        outcome = non_root.run(do)
        assert 'result' in outcome, outcome
        assert snapshot(non_root.outside) == before, '%s changed the runner\'s file through the link' % do
    assert not os.path.islink(inbox)


def test_non_root_sub_path_restore_never_writes_through_a_directory_link_its_neighbour_planted(non_root):
    """Issue 13, defect 2 for a non-root runner (fixed on branch i13-restore)."""
    world = non_root.world
    assert 'result' in non_root.run('backup', paths=[non_root.live])
    sub = os.path.join(non_root.live, 'drop', 'sub')
    world.as_adv('mv', sub, sub + '.moved')
    world.as_adv('ln', '-s', non_root.outside, sub)
    before = snapshot(non_root.outside)
    outcome = non_root.run('restore', paths=[os.path.join(sub, 'report.txt')])
    assert snapshot(non_root.outside) == before, 'the restore wrote through the planted link: %s' % outcome
    if 'result' in outcome:
        assert os.path.isdir(sub) and not os.path.islink(sub)
