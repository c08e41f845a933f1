"""The store's trust rule: only root and the running user may be able to change the store or the way to it."""

import os
import shutil
import subprocess

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _restore, _store, _trust

OTHER = 65534  # nobody: a user other than root and the runner
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root to give a directory to another user')


def mkdir(path, mode=0o755, uid=None):
    os.mkdir(path)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


@pytest.fixture
def base(tmp_path):
    """A directory like /var: the runner's, closed to others' writes."""
    os.chmod(str(tmp_path), 0o755)
    return str(tmp_path)


@pytest.fixture
def live(base):
    app = os.path.join(base, 'live', 'app')
    os.makedirs(app)
    with open(os.path.join(app, 'app.conf'), 'w') as handle:
        handle.write('port = 1\n')
    return app


def refused(call):
    with pytest.raises(_store.StoreError) as info:
        call()
    return str(info.value)


def test_a_store_under_root_owned_directories_closed_to_others_passes(base):
    root = os.path.join(base, 'store')
    assert _trust.check_dirs(root) is False
    assert _trust.check_dirs(root, create=True) is True
    assert os.stat(root).st_mode & 0o777 == 0o700


def test_a_root_owned_sticky_directory_may_be_an_ancestor_but_not_the_backup_root(base, live):
    shared = mkdir(os.path.join(base, 'shared'), 0o1777)
    store = _store.Store(os.path.join(shared, 'store'), 'app')
    assert store.create([live])['new_backup']
    message = refused(lambda: _store.Store(shared, 'app').create([live]))
    assert shared in message and 'writable by group and others' in message and 'mode 1777' in message


@pytest.mark.parametrize('mode, who', [(0o775, 'group'), (0o757, 'others'), (0o777, 'group and others')])
def test_a_backup_root_writable_by_others_is_refused_naming_path_owner_mode_and_fix(base, live, mode, who):
    root = mkdir(os.path.join(base, 'store'), mode)
    message = refused(lambda: _store.Store(root, 'app').create([live]))
    assert root + ' is writable by %s' % who in message
    assert 'mode %04o' % mode in message and 'owned by uid %d' % os.geteuid() in message
    assert 'Nothing was read or written' in message and 'chmod go-w %s' % root in message
    assert os.listdir(root) == []


@needs_root
@pytest.mark.parametrize('which', ['backup root', 'ancestor', 'set directory'])
def test_a_store_directory_owned_by_another_user_is_refused(base, live, which):
    upper = mkdir(os.path.join(base, 'upper'), uid=OTHER if which == 'ancestor' else None)
    root = mkdir(os.path.join(upper, 'store'), 0o700, uid=OTHER if which == 'backup root' else None)
    if which == 'set directory':
        mkdir(os.path.join(root, 'app'), 0o700, uid=OTHER)
    culprit = {'backup root': root, 'ancestor': upper, 'set directory': os.path.join(root, 'app')}[which]
    message = refused(lambda: _store.Store(root, 'app').create([live]))
    assert '%s is owned by uid %d (nobody)' % (culprit, OTHER) in message, message
    assert 'chown root: %s' % culprit in message and 'Nothing was read or written' in message


@needs_root
def test_a_symlink_on_the_way_is_followed_only_when_root_or_the_runner_owns_it(base, live):
    real = mkdir(os.path.join(base, 'real'), 0o700)
    link = os.path.join(base, 'link')
    os.symlink(real, link)
    store = _store.Store(os.path.join(link, 'store'), 'app')
    assert store.create([live])['new_backup']
    assert os.path.isdir(os.path.join(real, 'store', 'app'))
    os.lchown(link, OTHER, OTHER)
    message = refused(lambda: _store.Store(os.path.join(link, 'store'), 'app').list())
    assert '%s is a symlink to %s owned by uid %d (nobody)' % (link, real, OTHER) in message
    assert 'rm %s' % link in message


@needs_root
def test_where_a_trusted_symlink_leads_is_checked_like_the_rest(base, live):
    theirs = mkdir(os.path.join(base, 'theirs'), 0o755, uid=OTHER)
    os.symlink('theirs', os.path.join(base, 'store'))
    message = refused(lambda: _store.Store(os.path.join(base, 'store'), 'app').create([live]))
    assert '%s is owned by uid %d' % (theirs, OTHER) in message
    assert os.listdir(theirs) == []


def test_relative_symlinks_with_dot_dot_resolve_like_the_kernel(base):
    mkdir(os.path.join(base, 'a'))
    mkdir(os.path.join(base, 'a', 'b'))
    target = mkdir(os.path.join(base, 'target'), 0o777)
    os.symlink('../../target', os.path.join(base, 'a', 'b', 'up'))
    with pytest.raises(_trust.Untrusted) as info:
        _trust.check_dirs(os.path.join(base, 'a', 'b', 'up'))
    assert info.value.path == target


def test_a_symlink_loop_is_an_error_not_a_hang(base):
    os.symlink('loop', os.path.join(base, 'loop'))
    with pytest.raises(OSError):
        _trust.check_dirs(os.path.join(base, 'loop', 'store'))


@pytest.mark.parametrize('entry_point', ['create', 'list', 'resolve', 'verify', 'drift', 'retention', 'recover',
                                         'mark_lastgood', 'pin', 'restore', 'restore-check', 'list_sets'])
def test_every_store_entry_point_refuses_a_store_others_can_write(base, live, entry_point):
    root = os.path.join(base, 'store')
    store = _store.Store(root, 'app')
    first = store.create([live], mark_lastgood=True)['id']
    os.chmod(root, 0o777)
    store = _store.Store(root, 'app')
    call = {
        'create': lambda: store.create([live], force=True), 'list': store.list, 'resolve': store.resolve,
        'verify': lambda: store.verify(first), 'drift': lambda: store.drift(first),
        'retention': lambda: store.retention(keep_last=1), 'recover': store.recover,
        'mark_lastgood': lambda: store.mark_lastgood(first), 'pin': lambda: store.pin(first),
        'restore': lambda: _restore.restore(store, ref=first),
        'restore-check': lambda: _restore.restore(store, ref=first, check_mode=True),
        'list_sets': lambda: _store.list_sets(root),
    }[entry_point]
    assert root + ' is writable by group and others' in refused(call)


def test_a_backup_directory_others_can_write_is_never_used(base, live):
    store = _store.Store(os.path.join(base, 'store'), 'app')
    first = store.create([live], mark_lastgood=True)['id']
    os.chmod(store.backup_dir(first), 0o777)
    message = refused(lambda: store.resolve(first))
    assert store.backup_dir(first) + ' is writable by group and others' in message
    assert [info['complete'] for info in store.list()] == [False]
    with pytest.raises(_store.StoreError):
        _restore.restore(store, ref=first)


def test_a_backup_directory_that_is_a_symlink_is_never_followed(base, live):
    store = _store.Store(os.path.join(base, 'store'), 'app')
    first = store.create([live], mark_lastgood=True)['id']
    moved = os.path.join(base, 'moved')
    os.rename(store.backup_dir(first), moved)
    os.symlink(moved, store.backup_dir(first))
    message = refused(lambda: store.load_manifest(first))
    assert 'is a symlink' in message and store.backup_dir(first) in message


def test_directories_the_store_creates_pass_its_own_rule(base, live):
    old = os.umask(0)
    try:
        store = _store.Store(os.path.join(base, 'new', 'deeper', 'store'), 'app')
        store.create([live], mark_lastgood=True)
    finally:
        os.umask(old)
    for path in (store.backup_root, store.set_dir, store.backup_dir(store.resolve()['id'])):
        assert os.stat(path).st_mode & 0o077 == 0, path
    assert _store.Store(store.backup_root, 'app').verify(store.resolve()['id'])['ok']


@needs_root
def test_the_restore_journal_accepts_only_the_runner_or_root_as_owner(base):
    journal = mkdir(os.path.join(base, '.journal'), 0o700, uid=OTHER)
    with pytest.raises(_restore.JournalError) as info:
        _restore.open_journal_dir(journal, create=False)
    assert 'owned by uid %d (nobody)' % OTHER in str(info.value)
    os.chown(journal, 0, 0)
    os.chmod(journal, 0o770)
    with pytest.raises(_restore.JournalError) as info:
        _restore.open_journal_dir(journal, create=False)
    assert 'writable by group' in str(info.value)


@pytest.mark.skipif(not shutil.which('setfacl'), reason='needs setfacl(1)')
def test_an_acl_granting_another_user_write_shows_in_the_group_bits_and_is_refused(base, live):
    root = mkdir(os.path.join(base, 'store'), 0o700)
    subprocess.run(['setfacl', '-m', 'u:%d:rwx' % OTHER, root], check=True)
    message = refused(lambda: _store.Store(root, 'app').create([live]))
    assert root + ' is writable by group' in message and 'mode 0770' in message
