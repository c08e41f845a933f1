"""What a backup keeps and a restore gives back besides content: xattrs of every namespace, POSIX ACLs,
file capabilities, setuid, sparseness, symlink mtimes, fifos -- judged by getfacl, getcap, du and rsync."""

import base64
import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic, _manifest, _restore, _store
from lib import faults, trees
from lib.durability import DurabilityTracker

ENGINE = [_restore, _store, _manifest, _fsatomic]
ROOT = os.geteuid() == 0
HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE)))),
                           '.collections')
NOBODY = 65534
MIB = 1024 * 1024
# an SELinux context as the kernel stores it (NUL-terminated); without an SELinux policy loaded, root writes it raw
SELINUX_LABEL = b'system_u:object_r:httpd_config_t:s0\x00'

needs_root = pytest.mark.skipif(not ROOT, reason='needs root (trusted.*, security.*, chown)')


def tool(*names):
    return pytest.mark.skipif(not all(shutil.which(name) for name in names), reason='needs %s' % ', '.join(names))


def run(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs).stdout


def xattrs_of(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    return {name: os.getxattr(path, name, follow_symlinks=False) for name in sorted(names)}


def snapshot(root):
    """Everything a user (and rsync -aHAXS) can tell about the tree at ``root``, by relative path."""
    out = {}
    inodes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [''] if dirpath == root else []:
            out['.'] = _describe(dirpath, inodes, '.')
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            out[rel] = _describe(path, inodes, rel)
    return out


def _describe(path, inodes, rel):
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    item = {'mode': oct(st.st_mode), 'owner': (st.st_uid, st.st_gid), 'xattrs': xattrs_of(path)}
    if not stat.S_ISDIR(st.st_mode):
        item['mtime_ns'] = st.st_mtime_ns
    if stat.S_ISLNK(st.st_mode):
        item['target'] = os.readlink(path)
    elif kind == stat.S_IFREG:
        with open(path, 'rb') as handle:
            item['sha256'] = hashlib.sha256(handle.read()).hexdigest()
        item['sparse'] = st.st_blocks * 512 < st.st_size
        item['link_of'] = inodes.setdefault((st.st_dev, st.st_ino), rel)
    return item


def getfacl(path):
    return run('getfacl', '--absolute-names', '--physical', '--recursive', path).replace(path, '<root>')


def make_world(base):
    base = str(base)
    app = os.path.join(base, 'live', 'app')
    os.makedirs(app)
    store = _store.Store(os.path.join(base, 'store'), 'app')
    return app, store


def backup(store, app, **options):
    return store.create([app], mark_lastgood=True, **options)


def wipe_and_restore(store, app, **options):
    shutil.rmtree(app)
    return _restore.restore(store, **options)


# -- ACLs ------------------------------------------------------------------------------------

@tool('setfacl', 'getfacl')
def test_acl_mask_comes_back_as_getfacl_showed_it_and_no_permission_is_widened(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'shared.conf'), b'x\n', 0o640)
    # group::r-- with mask::rw-: the group bits of the mode are the mask, not the group entry
    run('setfacl', '-m', 'u:%d:rw,g::r,m::rw' % NOBODY, os.path.join(app, 'shared.conf'))
    before = getfacl(app)
    assert 'group::r--' in before and 'mask::rw-' in before
    backup(store, app)
    result = wipe_and_restore(store, app)
    assert getfacl(app) == before
    assert result['warnings'] == []


@tool('setfacl', 'getfacl')
def test_default_acl_of_a_directory_and_what_its_files_inherited_come_back(tmp_path):
    app, store = make_world(tmp_path)
    os.makedirs(os.path.join(app, 'uploads'))
    run('setfacl', '-d', '-m', 'u:%d:rwx,g::rx,o::-' % NOBODY, os.path.join(app, 'uploads'))
    trees.write_file(os.path.join(app, 'uploads', 'a.txt'), b'a\n', 0o640)
    os.makedirs(os.path.join(app, 'uploads', 'sub'))
    before = getfacl(app)
    assert 'default:user:%d:rwx' % NOBODY in before or 'default:user:nobody:rwx' in before
    backup(store, app)
    wipe_and_restore(store, app)
    assert getfacl(app) == before


@tool('setfacl', 'getfacl')
def test_acls_the_new_entries_inherit_from_the_live_parent_are_removed_when_the_backup_has_none(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'plain.txt'), b'p\n', 0o600)
    os.makedirs(os.path.join(app, 'dir'), 0o700)
    expected = snapshot(app)
    backup(store, app)
    # a default ACL put on the parent afterwards: the stage built there inherits it
    run('setfacl', '-d', '-m', 'u:%d:rwx' % NOBODY, os.path.dirname(app))
    wipe_and_restore(store, app)
    assert snapshot(app) == expected
    assert 'user:%d' % NOBODY not in getfacl(app) and 'user:nobody' not in getfacl(app)


# -- xattrs of every namespace, capabilities, setuid -------------------------------------------

@needs_root
@tool('setcap', 'getcap')
def test_xattrs_of_every_namespace_and_file_capabilities_survive_backup_and_restore(tmp_path):
    app, store = make_world(tmp_path)
    ping = os.path.join(app, 'bin', 'ping')
    trees.write_file(ping, b'\x7fELF fake ping\n', 0o755)
    run('setcap', 'cap_net_raw+ep', ping)
    helper = os.path.join(app, 'bin', 'helper')
    trees.write_file(helper, b'#!/bin/sh\n', 0o755)
    os.chown(helper, 1234, 0)
    os.chmod(helper, 0o4755)  # after the chown, which clears it
    conf = os.path.join(app, 'conf')
    trees.write_file(conf, b'c\n', 0o644)
    os.setxattr(conf, 'user.origin', b'deploy-42')
    os.setxattr(conf, 'trusted.md5', b'\x00\xffbinary')
    os.setxattr(conf, 'security.selinux', SELINUX_LABEL)
    os.chown(conf, 1234, 5678)
    os.setxattr(os.path.join(app, 'bin'), 'user.dir', b'on a directory')
    link = os.path.join(app, 'current')
    os.symlink('conf', link)
    os.setxattr(link, 'trusted.link', b'on the symlink itself', follow_symlinks=False)
    expected = snapshot(app)
    caps = run('getcap', ping).replace(app, '<app>')
    backup(store, app)
    result = wipe_and_restore(store, app)
    assert result['warnings'] == []
    assert snapshot(app) == expected
    assert run('getcap', ping).replace(app, '<app>') == caps
    assert stat.S_IMODE(os.lstat(helper).st_mode) == 0o4755


@needs_root
@tool('setcap')
def test_no_copy_in_the_store_is_a_privileged_binary(tmp_path):
    app, store = make_world(tmp_path)
    ping = os.path.join(app, 'ping')
    trees.write_file(ping, b'\x7fELF\n', 0o6755)
    run('setcap', 'cap_net_raw+ep', ping)
    made = backup(store, app)
    copy = os.path.join(store.data_dir(made['id']), ping.lstrip('/'))
    assert stat.S_IMODE(os.lstat(copy).st_mode) & (stat.S_ISUID | stat.S_ISGID) == 0
    assert xattrs_of(copy) == {}
    recorded = store.load_manifest(made['id']).by_path[ping.lstrip('/')]
    assert recorded.mode == 0o6755 and 'security.capability' in dict(recorded.xattrs)
    assert store.verify(made['id'])['ok']


def test_a_change_of_xattrs_alone_is_drift_and_makes_a_new_backup_that_still_reuses_the_content(tmp_path):
    app, store = make_world(tmp_path)
    path = os.path.join(app, 'f.txt')
    trees.write_file(path, b'same content\n')
    first = backup(store, app)
    os.setxattr(path, 'user.tag', b'v2')
    drift = store.drift(first['id'])
    assert drift['changed'] == [{'path': path, 'reasons': ['xattrs']}]
    second = backup(store, app)
    assert second['new_backup'] and second['reused'] == 1 and second['copied'] == 0
    copies = [os.lstat(os.path.join(store.data_dir(made['id']), path.lstrip('/'))) for made in (first, second)]
    assert copies[0].st_ino == copies[1].st_ino
    assert dict(store.load_manifest(second['id']).by_path[path.lstrip('/')].xattrs) == {'user.tag': b'v2'}
    os.removexattr(path, 'user.tag')
    plan = _restore.restore(store, check_mode=True)['plan'][0]
    assert plan['changed'] == [{'path': path, 'reasons': ['xattrs']}]
    _restore.restore(store)
    assert xattrs_of(path) == {'user.tag': b'v2'}


def test_undo_puts_back_the_xattrs_and_acls_the_restore_replaced(tmp_path):
    app, store = make_world(tmp_path)
    path = os.path.join(app, 'f.txt')
    trees.write_file(path, b'backed up\n')
    os.setxattr(path, 'user.version', b'backed up')
    backup(store, app)
    trees.write_file(path, b'live\n', 0o640, trees.MTIME_NS + 10 ** 9)
    os.setxattr(path, 'user.version', b'live')
    os.setxattr(path, 'user.only-live', b'x')
    live = snapshot(app)
    _restore.restore(store)
    assert xattrs_of(path) == {'user.version': b'backed up'}
    _restore.restore(store, undo=True)
    assert snapshot(app) == live


def test_hardlinked_files_share_their_xattrs_which_the_manifest_records_once(tmp_path):
    app, store = make_world(tmp_path)
    first = os.path.join(app, 'a', 'x')
    trees.write_file(first, b'A\n')
    os.makedirs(os.path.join(app, 'b'))
    os.link(first, os.path.join(app, 'b', 'y'))
    os.setxattr(first, 'user.inode', b'one')
    made = backup(store, app)
    raw = json.loads(open(store.manifest_path(made['id']), 'rb').read())
    by_path = {entry['path']: entry for entry in raw['entries']}
    assert by_path[first.lstrip('/')]['xattrs'] == {'user.inode': base64.b64encode(b'one').decode()}
    assert 'xattrs' not in by_path[os.path.join(app, 'b', 'y').lstrip('/')]
    _restore.restore(store, paths=[os.path.join(app, 'b')])
    assert store.drift(made['id'])['ok']


# -- non-root: what cannot be set is a warning -------------------------------------------------

@needs_root
def test_restore_as_an_unprivileged_user_warns_about_the_trusted_xattr_it_cannot_set_and_restores_the_rest():
    base = tempfile.mkdtemp(prefix='lastgood-nobody-', dir='/tmp')
    try:
        os.chmod(base, 0o755)
        app = os.path.join(base, 'live', 'app')
        trees.write_file(os.path.join(app, 'f.txt'), b'v1\n', 0o644)
        os.setxattr(os.path.join(app, 'f.txt'), 'user.kept', b'yes')
        os.setxattr(os.path.join(app, 'f.txt'), 'trusted.lost', b'root only')
        store = _store.Store(os.path.join(base, 'store'), 'app')
        backup(store, app)
        trees.write_file(os.path.join(app, 'f.txt'), b'v2\n', 0o644, trees.MTIME_NS + 10 ** 9)
        run('chown', '-R', '%d:%d' % (NOBODY, NOBODY), base)
        script = ('import json, sys; sys.path.insert(0, %r)\n'
                  'from ansible_collections.lastgood.rollback.plugins.module_utils import _restore, _store\n'
                  'result = _restore.restore(_store.Store(%r, "app"))\n'
                  'print(json.dumps({"warnings": result["warnings"], "changed": result["changed"]}))\n'
                  % (COLLECTIONS, os.path.join(base, 'store')))
        done = subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups',
                               '/usr/bin/python3', '-c', script], capture_output=True, text=True, check=False,
                              cwd=base)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result['changed'] is True
        assert len(result['warnings']) == 1
        assert 'trusted.lost' in result['warnings'][0] and app + '/f.txt' in result['warnings'][0]
        with open(os.path.join(app, 'f.txt'), 'rb') as handle:
            assert handle.read() == b'v1\n'
        assert xattrs_of(os.path.join(app, 'f.txt')) == {'user.kept': b'yes'}
    finally:
        shutil.rmtree(base)


def test_an_xattr_the_kernel_refuses_is_a_warning_and_the_verification_does_not_fail_on_it(tmp_path, monkeypatch):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'f.txt'), b'v1\n')
    os.setxattr(os.path.join(app, 'f.txt'), 'user.refused', b'x')
    os.setxattr(os.path.join(app, 'f.txt'), 'user.kept', b'y')
    backup(store, app)
    real = os.setxattr

    def refuse(target, name, value, *args, **kwargs):
        if name == 'user.refused':
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        return real(target, name, value, *args, **kwargs)
    monkeypatch.setattr(_restore.os, 'setxattr', refuse)
    result = wipe_and_restore(store, app)
    assert [state['state'] for state in result['paths']] == ['restored']
    assert len(result['warnings']) == 1 and 'user.refused' in result['warnings'][0]
    assert xattrs_of(os.path.join(app, 'f.txt')) == {'user.kept': b'y'}


def test_a_fault_in_setting_an_xattr_leaves_the_target_exactly_old_or_exactly_new(tmp_path):
    app, store = make_world(tmp_path)

    def build_old():
        shutil.rmtree(app, ignore_errors=True)
        trees.write_file(os.path.join(app, 'f.txt'), b'old\n')
        trees.write_file(os.path.join(app, 'd', 'g.txt'), b'old g\n')

    trees.write_file(os.path.join(app, 'f.txt'), b'new\n')
    trees.write_file(os.path.join(app, 'd', 'g.txt'), b'new g\n')
    os.setxattr(os.path.join(app, 'f.txt'), 'user.a', b'1')
    os.setxattr(os.path.join(app, 'd'), 'user.b', b'2')
    os.mkfifo(os.path.join(app, 'd', 'pipe'), 0o620)
    os.setxattr(os.path.join(app, 'd', 'g.txt'), 'user.c', b'3')
    backup(store, app)
    new = snapshot(app)
    build_old()
    old = snapshot(app)
    outcomes = set()

    def after(k, plan, error):
        _restore.recover_journal(store.set_dir)
        store.recover()
        state = snapshot(app)
        assert state in (old, new), 'fault at %s call %d: neither old nor new' % (plan.fired_call, k)
        if error is None:
            assert state == new
        outcomes.add('new' if state == new else 'old')
        build_old()

    points = faults.sweep(ENGINE, lambda: _restore.restore(store, keep_displaced=False), after,
                          only=('setxattr', 'removexattr', 'listxattr', 'getxattr', 'mkfifo', 'utime'))
    assert points >= 5 and outcomes == {'old', 'new'}


# -- sparse files ------------------------------------------------------------------------------

def make_sparse(path, size=64 * MIB, data_at=(MIB, 40 * MIB)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for offset in data_at:
            os.pwrite(fd, b'data extent %d\n' % offset * 300, offset)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    st = os.lstat(path)
    assert st.st_blocks * 512 < MIB, 'this file system does not keep holes'
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_copy_hashing_writes_only_the_data_of_a_sparse_file_and_hashes_the_holes_as_zeros(tmp_path):
    source = str(tmp_path / 'sparse')
    digest = make_sparse(source)
    copy = str(tmp_path / 'copy')
    src = os.open(source, os.O_RDONLY)
    dst = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert _manifest.copy_hashing(src, dst) == (64 * MIB, digest)
    finally:
        os.close(src)
        os.close(dst)
    assert os.lstat(copy).st_blocks * 512 < MIB
    assert _manifest.sha256_file(copy) == digest


def test_a_sparse_file_stays_sparse_in_the_store_and_after_a_restore(tmp_path):
    app, store = make_world(tmp_path)
    path = os.path.join(app, 'disk.img')
    digest = make_sparse(path)
    trees.write_file(os.path.join(app, 'dense'), b'd' * 100000)
    made = backup(store, app)
    copy = os.path.join(store.data_dir(made['id']), path.lstrip('/'))
    assert os.lstat(copy).st_blocks * 512 < MIB
    assert int(run('du', '-k', copy).split()[0]) < 1024
    wipe_and_restore(store, app)
    assert os.lstat(path).st_size == 64 * MIB and os.lstat(path).st_blocks * 512 < MIB
    assert int(run('du', '-k', path).split()[0]) < 1024
    assert _manifest.sha256_file(path) == digest


# -- symlink mtimes and fifos ------------------------------------------------------------------

def test_symlink_mtime_is_recorded_and_restored(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'f'), b'f\n')
    link = os.path.join(app, 'link')
    os.symlink('f', link)
    os.utime(link, ns=(trees.MTIME_NS, trees.MTIME_NS - 12345), follow_symlinks=False)
    made = backup(store, app)
    assert store.verify(made['id'])['ok']
    wipe_and_restore(store, app)
    assert os.lstat(link).st_mtime_ns == trees.MTIME_NS - 12345


def test_entries_dated_before_1970_are_backed_up_verified_and_restored(tmp_path):
    app, store = make_world(tmp_path)
    old = os.path.join(app, 'old')
    trees.write_file(old, b'from a tarball with a negative mtime\n')
    os.symlink('old', os.path.join(app, 'old-link'))
    before_1970 = -1500000000123456789
    os.utime(old, ns=(before_1970, before_1970))
    os.utime(os.path.join(app, 'old-link'), ns=(before_1970, before_1970 + 1), follow_symlinks=False)
    made = backup(store, app)
    assert store.verify(made['id'])['ok']
    wipe_and_restore(store, app)
    assert os.lstat(old).st_mtime_ns == before_1970
    assert os.lstat(os.path.join(app, 'old-link')).st_mtime_ns == before_1970 + 1


def test_fifo_is_backed_up_and_restored_with_mode_owner_mtime_and_xattrs(tmp_path):
    app, store = make_world(tmp_path)
    pipe = os.path.join(app, 'run', 'control')
    os.makedirs(os.path.dirname(pipe))
    os.mkfifo(pipe)
    os.chmod(pipe, 0o620)
    if ROOT:
        os.chown(pipe, 1234, 5678)
    os.utime(pipe, ns=(trees.MTIME_NS, trees.MTIME_NS))
    expected = snapshot(app)
    made = backup(store, app)
    assert made['special_files'] == []
    assert store.load_manifest(made['id']).by_path[pipe.lstrip('/')].type == 'fifo'
    assert store.verify(made['id'])['ok'] and store.drift(made['id'])['ok']
    wipe_and_restore(store, app)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert snapshot(app) == expected


# -- the outside oracle --------------------------------------------------------------------------

@tool('rsync', 'setfacl')
def test_rsync_finds_no_difference_between_a_restored_tree_and_a_copy_taken_before_the_backup(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'conf', 'a.conf'), b'a\n', 0o640)
    run('setfacl', '-m', 'u:%d:rw,m::rw' % NOBODY, os.path.join(app, 'conf', 'a.conf'))
    run('setfacl', '-d', '-m', 'u:%d:rx' % NOBODY, os.path.join(app, 'conf'))
    os.setxattr(os.path.join(app, 'conf', 'a.conf'), 'user.x', b'1')
    os.link(os.path.join(app, 'conf', 'a.conf'), os.path.join(app, 'conf', 'hard'))
    os.symlink('conf/a.conf', os.path.join(app, 'link'))
    os.utime(os.path.join(app, 'link'), ns=(trees.MTIME_NS, trees.MTIME_NS), follow_symlinks=False)
    os.mkfifo(os.path.join(app, 'pipe'), 0o600)
    make_sparse(os.path.join(app, 'sparse'))
    copy = str(tmp_path / 'oracle')
    run('rsync', '-aHAXS', app + '/', copy + '/')
    backup(store, app)
    wipe_and_restore(store, app)
    changes = run('rsync', '-aHAXSn', '--itemize-changes', '--checksum', '--delete', copy + '/', app + '/')
    assert changes == ''
    assert int(run('du', '-sk', app).split()[0]) == int(run('du', '-sk', copy).split()[0])


# -- the manifest format -------------------------------------------------------------------------

def as_version_1(store, backup_id):
    """Rewrite a backup's manifest as an engine of manifest version 1 wrote it: no xattrs, the same entries."""
    with open(store.manifest_path(backup_id), 'rb') as handle:
        raw = json.loads(handle.read())
    raw['version'] = 1
    for entry in raw['entries']:
        entry.pop('xattrs', None)
    manifest = _manifest.loads(json.dumps(raw))
    json_bytes = manifest.to_json().encode()
    _fsatomic.atomic_write(store.manifest_path(backup_id), json_bytes)
    _fsatomic.atomic_write(os.path.join(store.backup_dir(backup_id), _store.MANIFEST_SHA256),
                           _store.sums_bytes(manifest, json_bytes))
    return _store.Store(store.backup_root, store.set_name)


def test_a_version_1_manifest_still_loads_verifies_and_restores(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'f.txt'), b'v1\n', 0o640)
    os.symlink('f.txt', os.path.join(app, 'link'))
    made = backup(store, app)
    fresh = as_version_1(store, made['id'])
    assert fresh.load_manifest(made['id']).version == 1
    assert fresh.verify(made['id'])['ok']
    os.setxattr(os.path.join(app, 'f.txt'), 'user.later', b'not in a v1 manifest')
    assert fresh.drift(made['id'])['ok']
    result = wipe_and_restore(fresh, app)
    assert result['paths'][0]['state'] == 'restored'
    with open(os.path.join(app, 'f.txt'), 'rb') as handle:
        assert handle.read() == b'v1\n'
    assert backup(fresh, app)['new_backup'], 'a version-1 latest backup is replaced by a full-fidelity one'


def test_a_version_1_checkpoint_of_an_unchanged_tree_is_reported_unchanged_not_refused(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'f.txt'), b'v1\n')
    os.setxattr(os.path.join(app, 'f.txt'), 'user.a', b'1')
    store.create([app], name='pre-upgrade')
    fresh = as_version_1(store, 'pre-upgrade')
    again = fresh.create([app], name='pre-upgrade')
    assert again['changed'] is False and again['id'] == 'pre-upgrade'


def manifest_with(entry_changes):
    entries = [_manifest.Entry('app', 'dir', 0, 0o755), _manifest.Entry('app/f', 'file', 0, 0o644, sha256='e' * 64)]
    raw = json.loads(_manifest.Manifest('b1', 'default', '2026-01-01T00:00:00Z', 'h', ['/app'], entries).to_json())
    raw['entries'][1].update(entry_changes)
    return raw


@pytest.mark.parametrize('xattrs, why', [
    ({'user.a': 'not base64!'}, 'not valid base64'),
    ({'user.a': 'YQ'}, 'not valid base64'),
    ({'user.a\u0000b': 'YQ=='}, 'invalid xattr name'),
    ({'': 'YQ=='}, 'invalid xattr name'),
    ({'noprefix': 'YQ=='}, 'invalid xattr name'),
    ({'user.' + 'n' * 251: 'YQ=='}, 'invalid xattr name'),
    ({'user.a': 'A' * 90000}, 'at most'),
    ({'user.a': 7}, 'base64 string'),
    ({}, 'non-empty object'),
    (['user.a'], 'non-empty object'),
])
def test_loader_refuses_malformed_xattrs(xattrs, why):
    with pytest.raises(_manifest.ManifestError) as info:
        _manifest.loads(json.dumps(manifest_with({'xattrs': xattrs})))
    assert why in str(info.value)


def test_loader_refuses_xattrs_or_fifos_in_a_version_1_manifest_and_xattrs_on_a_hardlink():
    raw = manifest_with({'xattrs': {'user.a': 'YQ=='}})
    assert _manifest.loads(json.dumps(raw)).by_path['app/f'].xattrs == (('user.a', b'a'),)
    raw['version'] = 1
    with pytest.raises(_manifest.ManifestError, match='has keys'):
        _manifest.loads(json.dumps(raw))
    fifo = json.loads(_manifest.Manifest('b1', 'default', '2026-01-01T00:00:00Z', 'h', ['/app'], [
        _manifest.Entry('app', 'dir', 0, 0o755), _manifest.Entry('app/f', 'fifo', 0, 0o600)]).to_json())
    assert _manifest.loads(json.dumps(fifo)).by_path['app/f'].type == 'fifo'
    fifo['version'] = 1
    with pytest.raises(_manifest.ManifestError, match='unknown type'):
        _manifest.loads(json.dumps(fifo))
    entries = [_manifest.Entry('app', 'dir', 0, 0o755), _manifest.Entry('app/f', 'file', 1, 0o644, sha256='e' * 64),
               _manifest.Entry('app/g', 'hardlink', 1, 0o644, sha256='e' * 64, target='app/f')]
    raw = json.loads(_manifest.Manifest('b1', 'default', '2026-01-01T00:00:00Z', 'h', ['/app'], entries).to_json())
    raw['entries'][2]['xattrs'] = {'user.a': 'YQ=='}
    with pytest.raises(_manifest.ManifestError, match='hardlink but carries xattrs'):
        _manifest.loads(json.dumps(raw))


def test_an_entry_line_with_xattrs_is_exactly_what_json_dumps_writes():  # pylint: disable=protected-access
    entry = _manifest.Entry('app/f', 'file', 1, 0o644, 0, 0, 5, 'e' * 64,
                            xattrs=(('security.selinux', SELINUX_LABEL), ('user.\u00e9', b'\x00\xff')))
    line = _manifest._entry_json(entry)
    assert line == json.dumps(entry.to_dict(), sort_keys=True)
    assert json.loads(line)['xattrs'] == {'security.selinux': base64.b64encode(SELINUX_LABEL).decode(),
                                          'user.\u00e9': 'AP8='}


def test_backup_and_restore_of_fifos_symlinks_and_xattrs_leave_nothing_unflushed(tmp_path):
    app, store = make_world(tmp_path)
    trees.write_file(os.path.join(app, 'f'), b'f\n')
    os.setxattr(os.path.join(app, 'f'), 'user.a', b'1')
    os.mkfifo(os.path.join(app, 'pipe'), 0o640)
    os.symlink('f', os.path.join(app, 'link'))
    for operation in (lambda: backup(store, app), lambda: wipe_and_restore(store, app)):
        tracker = DurabilityTracker()
        faults.call_log(ENGINE, operation, observer=tracker)
        assert tracker.problems() == []
