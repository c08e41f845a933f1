import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic, _manifest, _store
from lib import faults, trees
from lib.durability import DurabilityTracker

ENGINE = [_store, _manifest, _fsatomic]
MARKERS = ('.lastgood-tmp-', '.staging-', '.deleting-')
MTIME = 1763766900 * 10 ** 9

TREE = {
    'conf/app.yml': 'port: 8080\n',
    'conf/secret.key': b'\x00\x01\x02secret',
    'bin/run.sh': '#!/bin/sh\nexec app\n',
    'data/blob.bin': bytes(range(256)) * 64,
    'empty': None,
    'current': ('symlink', 'conf/app.yml'),
}


def make_app(root):
    trees.make_tree(root, TREE)
    os.chmod(os.path.join(root, 'conf/secret.key'), 0o600)
    os.chmod(os.path.join(root, 'bin/run.sh'), 0o755)
    os.chmod(os.path.join(root, 'bin'), 0o750)
    os.link(os.path.join(root, 'conf/app.yml'), os.path.join(root, 'conf/app-hardlink.yml'))
    if os.geteuid() == 0:
        os.chown(os.path.join(root, 'data/blob.bin'), 1234, 5678)


@pytest.fixture
def app(tmp_path):
    root = str(tmp_path / 'live' / 'app')
    make_app(root)
    return root


@pytest.fixture
def store(tmp_path):
    return _store.Store(str(tmp_path / 'store'), 'app')


def data_of(store, backup_id, live_path):
    return os.path.join(store.data_dir(backup_id), live_path.lstrip('/'))


def touch(path, content):
    """Rewrite ``path`` with new content and an mtime no earlier write in this test run had."""
    touch.mtime += 10 ** 9
    with open(path, 'wb') as handle:
        handle.write(content)
    os.utime(path, ns=(touch.mtime, touch.mtime))


touch.mtime = MTIME


def flip_bit(path, offset=0, bit=0):
    """Flip one bit in place, keeping size and mtime (what bit rot looks like)."""
    st = os.stat(path)
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ (1 << bit)]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def problems(result):
    return {item['path']: item['problem'] for item in result['mismatches']}


# -- what a backup holds ------------------------------------------------------------------------


def test_backup_reproduces_the_tree_with_modes_owners_symlinks_hardlinks_and_empty_dirs(store, app):
    result = store.create([app])
    copy = data_of(store, result['id'], app)
    assert trees.tree_digest(copy) == trees.tree_digest(app)
    assert os.readlink(os.path.join(copy, 'current')) == 'conf/app.yml'
    assert os.path.isdir(os.path.join(copy, 'empty'))
    assert os.stat(os.path.join(copy, 'conf/app.yml')).st_ino == os.stat(os.path.join(copy, 'conf/app-hardlink.yml')).st_ino
    if os.geteuid() == 0:
        blob = os.stat(os.path.join(copy, 'data/blob.bin'))
        assert (blob.st_uid, blob.st_gid) == (1234, 5678)
    assert result['files'] == 5 and result['copied'] == 4 and result['reused'] == 0
    # a file hardlinked within the tree is stored once and counted once
    assert result['bytes'] == sum(len(v if isinstance(v, bytes) else v.encode()) for v in TREE.values()
                                  if isinstance(v, (str, bytes)))


def test_store_and_set_directories_are_private(store, app):
    store.create([app])
    assert os.stat(store.backup_root).st_mode & 0o777 == 0o700
    assert os.stat(store.set_dir).st_mode & 0o777 == 0o700


def test_results_never_carry_backed_up_contents(store, app):
    result = store.create([app], mark_lastgood=True)
    listing = store.list()
    text = json.dumps([result, listing, store.verify(result['id']), store.drift(result['id'])])
    assert 'secret' not in text and 'port: 8080' not in text


def test_special_files_are_reported_and_left_out(store, app):
    listening = socket.socket(socket.AF_UNIX)
    try:
        listening.bind(os.path.join(app, 'conf/sock'))
        result = store.create([app])
    finally:
        listening.close()
    assert result['special_files'] == [app + '/conf/sock']
    assert not os.path.lexists(os.path.join(data_of(store, result['id'], app), 'conf/sock'))
    assert store.verify(result['id'])['ok']
    assert store.drift(result['id'])['ok']


def test_missing_source_is_recorded_as_absent(store, app, tmp_path):
    gone = str(tmp_path / 'live' / 'not-there')
    result = store.create([app, gone])
    assert result['missing'] == [gone]
    assert store.load_manifest(result['id']).sources == [app, gone]
    os.makedirs(gone)
    assert store.drift(result['id'])['added'] == [gone]


@pytest.mark.parametrize('paths, message', [
    (['relative/path'], 'not an absolute path'),
    (['/'], 'refusing to back up "/"'),
    ([], 'non-empty list'),
])
def test_create_refuses_bad_paths(store, paths, message):
    with pytest.raises(_store.StoreError, match=message):
        store.create(paths)


def test_create_refuses_overlapping_paths(store, app):
    with pytest.raises(_store.StoreError, match='overlap'):
        store.create([app, app + '/conf'])


def test_create_refuses_to_back_up_the_store_into_itself(store, app):
    store.create([app])
    with pytest.raises(_store.StoreError, match='inside the backup store'):
        store.create([store.set_dir])


def test_store_inside_a_source_is_left_out_of_the_backup(tmp_path, app):
    inner = _store.Store(os.path.join(app, 'backups'), 'app')
    first = inner.create([app])
    second = inner.create([app])
    assert second['changed'] is False
    assert not os.path.lexists(os.path.join(data_of(inner, first['id'], app), 'backups'))
    assert inner.drift(first['id'])['ok']


# -- verification -------------------------------------------------------------------------------


def test_fresh_backup_verifies_clean(store, app):
    result = store.create([app])
    check = store.verify(result['id'])
    assert check == {'ok': True, 'id': result['id'], 'path': result['path'], 'mismatches': [],
                     'files': 5, 'bytes': result['bytes']}


def test_verify_detects_one_flipped_bit_in_a_backed_up_file(store, app):
    result = store.create([app])
    flip_bit(data_of(store, result['id'], app + '/data/blob.bin'), offset=1000, bit=3)
    rel = 'data' + app + '/data/blob.bin'
    assert problems(store.verify(result['id'])) == {rel: 'changed: content'}


def test_verify_detects_every_single_bit_flip_in_manifest_json(store, app):
    result = store.create([app])
    path = result['manifest']
    original = open(path, 'rb').read()
    with open(path, 'r+b') as handle:
        for index in range(len(original) * 8):
            write_byte(handle, index // 8, original[index // 8] ^ (1 << (index % 8)))
            check = store.verify(result['id'])
            assert not check['ok'], 'bit %d of MANIFEST.json flipped unnoticed' % index
            assert check['mismatches'][0]['path'] == 'MANIFEST.json'
            write_byte(handle, index // 8, original[index // 8])
    assert store.verify(result['id'])['ok']


def write_byte(handle, offset, value):
    handle.seek(offset)
    handle.write(bytes([value]))
    handle.flush()


def test_verify_detects_every_single_bit_flip_in_manifest_sha256(store, app):
    result = store.create([app])
    path = os.path.join(result['path'], 'MANIFEST.sha256')
    original = open(path, 'rb').read()
    with open(path, 'r+b') as handle:
        for index in range(len(original) * 8):
            write_byte(handle, index // 8, original[index // 8] ^ (1 << (index % 8)))
            assert not store.verify(result['id'])['ok'], 'bit %d of MANIFEST.sha256 flipped unnoticed' % index
            write_byte(handle, index // 8, original[index // 8])
    assert store.verify(result['id'])['ok']


def test_verify_detects_a_truncated_manifest(store, app):
    result = store.create([app])
    path = result['manifest']
    original = open(path, 'rb').read()
    for length in (0, 1, len(original) // 2, len(original) - 2):
        with open(path, 'wb') as handle:
            handle.write(original[:length])
        check = store.verify(result['id'])
        assert not check['ok'] and check['mismatches'][0]['path'] == 'MANIFEST.json'
    assert not [info for info in store.list() if info['complete']]


def test_verify_detects_a_missing_file(store, app):
    result = store.create([app])
    os.unlink(data_of(store, result['id'], app + '/bin/run.sh'))
    assert problems(store.verify(result['id'])) == {'data' + app + '/bin/run.sh': 'missing'}


def test_verify_detects_an_extra_file_inside_and_outside_the_sources(store, app):
    result = store.create([app])
    with open(data_of(store, result['id'], app + '/empty/intruder'), 'w') as handle:
        handle.write('x')
    with open(os.path.join(store.data_dir(result['id']), 'stray'), 'w') as handle:
        handle.write('x')
    with open(os.path.join(result['path'], 'NOTES'), 'w') as handle:
        handle.write('x')
    assert set(problems(store.verify(result['id']))) == {'data' + app + '/empty/intruder', 'data/stray', 'NOTES'}


def test_verify_detects_a_mode_change_in_the_backup(store, app):
    result = store.create([app])
    os.chmod(data_of(store, result['id'], app + '/conf/secret.key'), 0o644)
    assert problems(store.verify(result['id'])) == {'data' + app + '/conf/secret.key': 'changed: mode'}


def test_manifest_moved_to_another_backup_directory_is_refused(store, app):
    first = store.create([app])
    second = store.create([app], force=True)
    for name in ('MANIFEST.json', 'MANIFEST.sha256'):
        shutil.copy(os.path.join(first['path'], name), os.path.join(second['path'], name))
    check = store.verify(second['id'])
    assert not check['ok'] and 'moved or tampered' in check['mismatches'][0]['problem']


def test_coreutils_sha256sum_accepts_a_fresh_backup_and_rejects_a_corrupted_one(store, app):
    result = store.create([app])
    ok = subprocess.run(['sha256sum', '--strict', '-c', 'MANIFEST.sha256'], cwd=result['path'],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert 'MANIFEST.json: OK' in ok.stdout
    flip_bit(data_of(store, result['id'], app + '/conf/secret.key'), offset=4)
    bad = subprocess.run(['sha256sum', '-c', 'MANIFEST.sha256'], cwd=result['path'], capture_output=True,
                         text=True, check=False)
    assert bad.returncode == 1
    assert 'data%s/conf/secret.key: FAILED' % app in bad.stdout


def test_file_names_that_are_not_utf8_are_backed_up_and_checkable_by_sha256sum(store, app):
    name = os.path.join(os.fsencode(app), b'conf', b'caf\xe9.conf')
    with open(name, 'wb') as handle:
        handle.write(b'latin-1 name')
    result = store.create([app])
    assert store.verify(result['id'])['ok'] and store.drift(result['id'])['ok']
    ok = subprocess.run(['sha256sum', '--strict', '-c', 'MANIFEST.sha256'], cwd=result['path'],
                        capture_output=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert b'caf\xe9.conf: OK' in ok.stdout


@pytest.mark.parametrize('excludes', [[''], ['a\x00b'], [3], '*.log'])
def test_exclude_patterns_that_a_manifest_could_not_hold_are_refused(store, app, excludes):
    with pytest.raises(_store.StoreError, match='exclude'):
        store.create([app], excludes=excludes)
    assert not os.path.exists(store.backup_root)


def test_drift_reports_added_removed_and_changed_live_entries(store, app):
    result = store.create([app])
    touch(os.path.join(app, 'conf/app.yml'), b'port: 9090\n')
    os.unlink(os.path.join(app, 'bin/run.sh'))
    with open(os.path.join(app, 'new.txt'), 'w') as handle:
        handle.write('new')
    drift = store.drift(result['id'])
    assert not drift['ok']
    assert drift['added'] == [app + '/new.txt']
    assert drift['removed'] == [app + '/bin/run.sh']
    changed = {item['path']: item['reasons'] for item in drift['changed']}
    assert changed[app + '/conf/app.yml'] == ['content']


def test_drift_leaves_out_what_the_backup_excluded(store, app):
    with open(os.path.join(app, 'app.log'), 'w') as handle:
        handle.write('log')
    result = store.create([app], excludes=['*.log'])
    with open(os.path.join(app, 'other.log'), 'w') as handle:
        handle.write('log')
    assert store.drift(result['id'])['ok']
    assert not os.path.lexists(data_of(store, result['id'], app + '/app.log'))


# -- change detection, incremental, checkpoints ---------------------------------------------------


def test_nothing_changed_means_no_new_backup(store, app):
    first = store.create([app])
    second = store.create([app])
    assert second['changed'] is False and second['new_backup'] is False and second['id'] == first['id']
    assert [info['id'] for info in store.list()] == [first['id']]


def test_a_changed_mtime_mode_or_new_file_means_a_new_backup(store, app):
    ids = [store.create([app])['id']]
    os.utime(os.path.join(app, 'conf/app.yml'), ns=(MTIME - 10 ** 9, MTIME - 10 ** 9))
    ids.append(store.create([app])['id'])
    os.chmod(os.path.join(app, 'bin/run.sh'), 0o700)
    ids.append(store.create([app])['id'])
    with open(os.path.join(app, 'empty/new'), 'w') as handle:
        handle.write('n')
    ids.append(store.create([app])['id'])
    assert len(set(ids)) == 4
    assert [info['id'] for info in store.list()] == ids


def test_checksum_always_catches_a_change_that_kept_size_and_mtime(store, app):
    first = store.create([app])
    flip_bit(os.path.join(app, 'data/blob.bin'), offset=10)
    assert store.create([app])['changed'] is False, 'auto trusts size and mtime'
    second = store.create([app], checksum='always')
    assert second['new_backup'] and second['id'] != first['id']
    assert second['reused'] == 3 and second['copied'] == 1
    assert store.verify(second['id'])['ok']
    with open(data_of(store, second['id'], app + '/data/blob.bin'), 'rb') as handle:
        assert handle.read() == open(os.path.join(app, 'data/blob.bin'), 'rb').read()


def test_force_takes_a_backup_of_an_unchanged_tree(store, app):
    first = store.create([app])
    assert store.create([app], force=True)['id'] != first['id']


def test_incremental_backup_of_an_unchanged_tree_hardlinks_every_file(store, app):
    first = store.create([app])
    second = store.create([app], force=True)
    assert second['parent'] == first['id']
    assert second['reused'] == 4 and second['copied'] == 0 and second['copied_bytes'] == 0
    manifest = store.load_manifest(second['id'])
    for entry in manifest.entries:
        if entry.is_content():
            old = os.stat(os.path.join(store.data_dir(first['id']), entry.path))
            new = os.stat(os.path.join(store.data_dir(second['id']), entry.path))
            assert new.st_ino == old.st_ino, entry.path
    assert store.verify(second['id'])['ok']


def test_incremental_backup_copies_only_changed_files(store, app):
    first = store.create([app])
    touch(os.path.join(app, 'bin/run.sh'), b'#!/bin/sh\nexec app --v2\n')
    second = store.create([app])
    assert second['copied'] == 1 and second['reused'] == 3
    run_old = os.stat(data_of(store, first['id'], app + '/bin/run.sh'))
    run_new = os.stat(data_of(store, second['id'], app + '/bin/run.sh'))
    assert run_old.st_ino != run_new.st_ino
    assert store.verify(first['id'])['ok'] and store.verify(second['id'])['ok']


def test_full_backup_shares_no_inode_with_the_previous_one(store, app):
    first = store.create([app])
    second = store.create([app], force=True, incremental=False)
    assert second['reused'] == 0 and second['parent'] is None
    old = os.stat(data_of(store, first['id'], app + '/data/blob.bin')).st_ino
    assert os.stat(data_of(store, second['id'], app + '/data/blob.bin')).st_ino != old


def test_damaged_previous_backup_is_not_hardlinked_into_the_next_one(store, app):
    first = store.create([app])
    flip_bit(data_of(store, first['id'], app + '/data/blob.bin'), offset=7)
    second = store.create([app], force=True)
    assert second['reused'] == 0
    assert first['id'] in second['warnings'][0] and 'backup_verify' in second['warnings'][0]
    assert store.verify(second['id'])['ok']
    assert not store.verify(first['id'])['ok']


def test_named_checkpoint_is_pinned_and_never_overwritten(store, app):
    checkpoint = store.create([app], name='pre-upgrade-42')
    assert checkpoint['id'] == 'pre-upgrade-42' and checkpoint['pinned']
    assert store.resolve('pre-upgrade-42')['pinned']
    again = store.create([app], name='pre-upgrade-42')
    assert again['changed'] is False and again['id'] == 'pre-upgrade-42'
    touch(os.path.join(app, 'conf/app.yml'), b'port: 1\n')
    with pytest.raises(_store.StoreError, match='never overwritten'):
        store.create([app], name='pre-upgrade-42')
    assert store.verify('pre-upgrade-42')['ok']


def test_a_new_checkpoint_name_takes_a_backup_of_an_unchanged_tree(store, app):
    first = store.create([app])
    named = store.create([app], name='before-deploy')
    assert named['new_backup'] and named['parent'] == first['id'] and named['reused'] == 4


@pytest.mark.parametrize('name', ['../escape', 'a/b', '.hidden', 'lastgood', 'LATEST', '', 'x' * 101,
                                  '20261121T231500Z-abcdef'])
def test_checkpoint_names_are_validated(store, app, name):
    with pytest.raises(_store.StoreError):
        store.create([app], name=name)
    assert not os.path.exists(store.set_dir) or store.list() == []


def test_set_names_are_validated(tmp_path):
    for bad in ('../x', 'a/b', '.x', ''):
        with pytest.raises(_store.StoreError):
            _store.Store(str(tmp_path), bad)


def test_check_mode_writes_nothing_and_predicts_the_backup(store, app, tmp_path):
    predicted = store.create([app], check_mode=True, mark_lastgood=True)
    assert predicted['changed'] and predicted['files'] == 5 and predicted['copied'] == 4
    assert not os.path.exists(store.backup_root)
    first = store.create([app])
    before = trees.tree_digest(store.backup_root)
    touch(os.path.join(app, 'bin/run.sh'), b'changed')
    predicted = store.create([app], check_mode=True)
    assert predicted['reused'] == 3 and predicted['copied'] == 1 and predicted['parent'] == first['id']
    assert store.retention(keep_last=1, check_mode=True) == []
    assert trees.tree_digest(store.backup_root) == before


# -- LASTGOOD, resolve, retention -----------------------------------------------------------------


def test_resolve_finds_lastgood_latest_ids_and_names(store, app):
    with pytest.raises(_store.StoreError, match='marked last-good'):
        store.resolve()
    first = store.create([app], mark_lastgood=True)
    second = store.create([app], name='cp1', force=True)
    assert store.resolve()['id'] == first['id'] == store.resolve('lastgood')['id']
    assert store.resolve('latest')['id'] == 'cp1'
    assert store.resolve(second['id'])['id'] == 'cp1'
    with pytest.raises(_store.StoreError, match='does not exist'):
        store.resolve('nope')
    with pytest.raises(_store.StoreError):
        store.resolve('../app')


def test_mark_lastgood_on_an_unchanged_tree_marks_the_latest_backup(store, app):
    first = store.create([app])
    result = store.create([app], mark_lastgood=True)
    assert result['changed'] is True and result['new_backup'] is False and result['lastgood']
    assert store.resolve()['id'] == first['id']
    assert store.create([app], mark_lastgood=True)['changed'] is False


def test_mark_lastgood_refuses_a_backup_with_a_damaged_manifest(store, app):
    result = store.create([app])
    flip_bit(result['manifest'], offset=20)
    with pytest.raises(_store.StoreError, match='must not be used'):
        store.mark_lastgood(result['id'])
    assert not os.path.exists(os.path.join(store.set_dir, 'LASTGOOD'))


def make_history(store, app, count):
    ids = []
    for index in range(count):
        touch(os.path.join(app, 'conf/app.yml'), ('port: %d\n' % index).encode())
        ids.append(store.create([app])['id'])
    return ids


def test_retention_never_removes_lastgood_pinned_or_the_newest_backup(store, app):
    ids = make_history(store, app, 6)
    store.mark_lastgood(ids[1])
    store.pin(ids[3])
    removed = store.retention(keep_last=1)
    assert sorted(removed) == sorted([ids[0], ids[2], ids[4]])
    assert [info['id'] for info in store.list()] == [ids[1], ids[3], ids[5]]
    for backup_id in (ids[1], ids[3], ids[5]):
        assert store.verify(backup_id)['ok'], 'hardlinks shared with removed backups must survive'
    assert store.retention(keep_days=1, now=10 ** 12) == []


def test_retention_keeps_what_either_rule_keeps(store, app):
    ids = make_history(store, app, 4)
    assert store.retention(keep_last=2, keep_days=1, check_mode=True) == []
    assert store.retention(keep_last=2, keep_days=1, now=10 ** 12, check_mode=True) == ids[:2]
    assert store.retention(keep_days=1, now=10 ** 12) == ids[:3]
    assert [info['id'] for info in store.list()] == [ids[3]]


def test_unpinned_checkpoint_can_be_removed_by_retention(store, app):
    store.create([app], name='cp')
    newest = make_history(store, app, 1)[0]
    assert store.retention(keep_last=1) == []
    store.unpin('cp')
    assert store.retention(keep_last=1) == ['cp']
    assert [info['id'] for info in store.list()] == [newest]


def test_retention_refuses_to_run_on_a_damaged_pins_file(store, app):
    make_history(store, app, 3)
    with open(os.path.join(store.set_dir, 'PINNED'), 'w') as handle:
        handle.write('ok\n../bad\n')
    with pytest.raises(_store.StoreError, match='PINNED is damaged'):
        store.retention(keep_last=1)
    assert len(store.list()) == 3


@pytest.mark.parametrize('value', [0, -1, True, '3'])
def test_retention_refuses_nonsense_limits(store, value):
    with pytest.raises(_store.StoreError):
        store.retention(keep_last=value)


# -- recovery, locking, faults -----------------------------------------------------------------------


def test_staging_leftovers_are_never_listed_and_removed_by_the_next_run(store, app):
    first = store.create([app])
    for name in ('.staging-20260101T000000Z-aaaaaa', '.deleting-old', '.lastgood-tmp-LASTGOOD.1234'):
        os.makedirs(os.path.join(store.set_dir, name, 'data'))
    assert [info['id'] for info in store.list()] == [first['id']]
    store.create([app], force=True)
    assert trees.leftovers(store.backup_root, markers=MARKERS) == []


def test_a_backup_directory_without_manifest_is_listed_incomplete_and_ignored(store, app):
    first = store.create([app])
    os.makedirs(os.path.join(store.set_dir, 'half', 'data'))
    infos = {info['id']: info for info in store.list()}
    assert infos['half']['complete'] is False and 'incomplete' in infos['half']['error']
    assert store.resolve('latest')['id'] == first['id']
    with pytest.raises(_store.StoreError, match='cannot be used'):
        store.resolve('half')


@pytest.mark.parametrize('damage', ['flip-a-digest', 'no-manifest'])
def test_a_backup_is_based_on_the_newest_complete_backup_when_the_newest_is_damaged(store, app, damage):
    first = store.create([app])
    second = store.create([app], force=True)
    manifest = store.manifest_path(second['id'])
    if damage == 'no-manifest':
        os.unlink(manifest)
    else:
        flip_bit(manifest, offset=os.path.getsize(manifest) // 2)
    touch(os.path.join(app, 'bin/run.sh'), b'#!/bin/sh\nexec app --v3\n')
    third = store.create([app])
    assert third['parent'] == first['id'] and third['reused'] == 3 and third['copied'] == 1
    assert store.verify(third['id'])['ok']


def test_a_manifest_whose_first_line_lies_about_its_age_does_not_pick_the_base(store, app):
    first = store.create([app])
    second = store.create([app], force=True)
    manifest = store.manifest_path(first['id'])
    with open(manifest, 'rb') as handle:
        text = handle.read()
    # an intact-looking first line claiming the future, in a manifest that then fails its digest check
    with open(manifest, 'wb') as handle:
        handle.write(re.sub(rb'"created": "[^"]*"', b'"created": "2099-01-01T00:00:00.000000Z"', text, count=1))
    third = store.create([app], force=True)
    assert third['parent'] == second['id']


def test_a_second_writer_on_the_same_set_is_refused_while_the_first_holds_the_lock(store, app):
    other = _store.Store(store.backup_root, store.set_name, lock_timeout=0)
    with store.locked():
        with pytest.raises(_store.StoreError, match='is busy'):
            other.create([app])
    assert other.create([app])['new_backup']


def snapshot(store):
    return {info['id']: info['complete'] for info in store.list()}


def reset_store(store, keep_ids, lastgood):
    for name in os.listdir(store.set_dir):
        if name not in keep_ids and name not in ('LASTGOOD', 'PINNED'):
            shutil.rmtree(os.path.join(store.set_dir, name))
    with open(os.path.join(store.set_dir, 'LASTGOOD'), 'w') as handle:
        handle.write(lastgood + '\n')


@pytest.mark.parametrize('persistent', [False, True], ids=['transient', 'persistent'])
def test_fault_at_every_io_step_of_a_backup_publishes_nothing_partial(store, app, persistent):
    base = store.create([app], mark_lastgood=True)
    touch(os.path.join(app, 'conf/app.yml'), b'port: 9\n')
    source_digest = trees.tree_digest(app)
    outcomes = {'failed': 0, 'published_then_failed': 0}

    def operation():
        store.create([app], mark_lastgood=True)

    def check(k, plan, error):
        assert trees.tree_digest(app) == source_digest, 'fault %d: the backup wrote into its source' % k
        if not persistent:
            # one failed call: the failing run cleans up after itself
            assert trees.leftovers(store.backup_root, markers=MARKERS) == [], 'fault %d: no cleanup' % k
        fresh = _store.Store(store.backup_root, store.set_name)
        fresh.recover()
        assert trees.leftovers(store.backup_root, markers=MARKERS) == [], 'fault %d left leftovers' % k
        listed = snapshot(fresh)
        assert all(listed.values()), 'fault %d: an incomplete backup is listed: %s' % (k, listed)
        new = [backup_id for backup_id in listed if backup_id != base['id']]
        assert len(new) <= 1
        for backup_id in listed:
            assert fresh.verify(backup_id)['ok'], 'fault %d: published backup %s does not verify' % (k, backup_id)
        if error is None:
            assert len(new) == 1 and fresh.resolve()['id'] == new[0]
        else:
            assert isinstance(error, _store.StoreError), 'fault %d escaped as %r' % (k, error)
            if new:
                # Only a fault after the publish can leave the new backup: it is complete and verified,
                # and the message says so.
                assert new[0] in str(error) and ('published' in str(error) or 'was created' in str(error))
                outcomes['published_then_failed'] += 1
            else:
                assert 'No backup was published' in str(error) or 'Nothing was' in str(error), str(error)
                assert fresh.resolve()['id'] == base['id']
                outcomes['failed'] += 1
        reset_store(store, {base['id']}, base['id'])

    points = faults.sweep(ENGINE, operation, check, persistent=persistent)
    print('%d fault points: %r' % (points, outcomes))
    assert points > 100
    assert outcomes['failed'] > 50


@pytest.mark.parametrize('persistent', [False, True], ids=['transient', 'persistent'])
def test_fault_at_every_io_step_of_retention_never_removes_a_protected_backup(store, app, tmp_path, persistent):
    store.create([app], name='checkpoint')
    ids = make_history(store, app, 3)
    store.mark_lastgood(ids[0])
    protected = {'checkpoint', ids[0], ids[2]}
    everything = set(snapshot(store))
    pristine = str(tmp_path / 'pristine')
    subprocess.run(['cp', '-a', store.set_dir, pristine], check=True)

    def check(k, plan, error):
        fresh = _store.Store(store.backup_root, store.set_name)
        fresh.recover()
        listed = snapshot(fresh)
        assert protected <= set(listed), 'fault %d removed a protected backup: %s' % (k, sorted(listed))
        assert all(listed.values()), 'fault %d: an incomplete backup is listed: %s' % (k, listed)
        if error is None:
            assert set(listed) == protected, 'fault %d: retention reported success but kept %s' % (k, sorted(listed))
        else:
            assert isinstance(error, _store.StoreError), 'fault %d escaped as %r' % (k, error)
        assert fresh._read_pins() == {'checkpoint'}
        if set(listed) != everything:
            shutil.rmtree(store.set_dir)
            subprocess.run(['cp', '-a', pristine, store.set_dir], check=True)

    points = faults.sweep(ENGINE, lambda: store.retention(keep_last=1), check, persistent=persistent)
    assert points > 30


def test_failed_fsync_is_never_retried_and_aborts_the_backup(store, app):
    base = store.create([app])
    touch(os.path.join(app, 'conf/app.yml'), b'port: 9\n')

    def check(k, plan, error):
        tracker = plan.observer
        assert tracker.fsyncs_after_failure() == [], 'fault %d: fsync retried' % k
        if plan.fired:
            assert error is not None
        _store.Store(store.backup_root, store.set_name).recover()
        reset_store(store, {base['id']}, base['id'])

    points = faults.sweep(ENGINE, lambda: store.create([app]), check, only={'fsync'},
                          observer_factory=DurabilityTracker)
    assert points >= 5


def test_a_successful_backup_is_durable_before_it_is_published(store, app):
    store.create([app])
    touch(os.path.join(app, 'conf/app.yml'), b'port: 9\n')
    tracker = DurabilityTracker(markers=MARKERS)
    plan = faults.FaultPlan(observer=tracker)
    with faults.inject(ENGINE, plan):
        store.create([app], mark_lastgood=True, name='durable')
    assert tracker.problems() == []
    assert 'rename' in plan.log


class WriterDuringCopy:
    """Appends to ``path`` as the engine starts reading it, ``times`` times: a process writing during the backup."""

    def __init__(self, path, times):
        self.path = path
        self.times = times
        self.done = 0

    def before(self, name, args, kwargs):
        if name not in ('read', 'readv') or self.done >= self.times or os.lseek(args[0], 0, os.SEEK_CUR) != 0:
            return
        if os.readlink('/proc/self/fd/%d' % args[0]) == self.path:
            self.done += 1
            with open(self.path, 'ab') as handle:
                handle.write(b'appended')

    def after(self, name, args, kwargs, result, token):
        pass


def test_source_changing_during_copy_is_copied_again(store, app):
    target = os.path.join(app, 'data/blob.bin')
    writer = WriterDuringCopy(target, times=1)
    with faults.inject([_store, _manifest], faults.FaultPlan(observer=writer)):
        result = store.create([app])
    assert writer.done == 1
    with open(data_of(store, result['id'], target), 'rb') as handle:
        assert handle.read() == open(target, 'rb').read()
    assert store.verify(result['id'])['ok']
    assert store.drift(result['id'])['ok']


def test_source_changing_during_every_copy_attempt_fails_the_backup_cleanly(store, app):
    target = os.path.join(app, 'data/blob.bin')
    writer = WriterDuringCopy(target, times=2)
    with faults.inject([_store, _manifest], faults.FaultPlan(observer=writer)):
        with pytest.raises(_store.StoreError) as info:
            store.create([app])
    message = str(info.value)
    assert target in message and 'changed while it was being copied' in message
    assert 'No backup was published' in message
    assert store.list() == []
    assert trees.leftovers(store.backup_root, markers=MARKERS) == []


def test_error_message_names_step_path_state_and_next_step(store, app):
    plan = faults.FaultPlan(fail_at=1, err=errno.ENOSPC, only={'write'})
    with faults.inject(ENGINE, plan):
        with pytest.raises(_store.StoreError) as info:
            store.create([app])
    message = str(info.value)
    for part in ('copying files', 'No space left on device', store.set_dir, 'No backup was published',
                 'LASTGOOD are unchanged', 'Next: free space'):
        assert part in message, message


# -- a full disk, for real ------------------------------------------------------------------------------


def full_disk_scenario(mount, source):
    """Run inside a private mount namespace: a 2 MiB tmpfs store, one small backup, one that cannot fit."""
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', mount], check=True)
    store = _store.Store(os.path.join(mount, 'store'), 'app')
    small = store.create([os.path.join(source, 'small')])
    try:
        store.create([os.path.join(source, 'big')])
        error = None
    except _store.StoreError as exc:
        error = str(exc)
    store.recover()
    print(json.dumps({
        'error': error, 'small': small['id'], 'listed': [info['id'] for info in store.list()],
        'small_ok': store.verify(small['id'])['ok'], 'leftovers': trees.leftovers(mount, markers=MARKERS),
    }))


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'), reason='needs root and unshare')
def test_full_disk_gives_a_clear_error_and_no_partial_backup(tmp_path):
    source = tmp_path / 'src'
    trees.make_tree(str(source), {'small/a': 'small', 'big/one': os.urandom(900 * 1024),
                                  'big/two': os.urandom(900 * 1024), 'big/three': os.urandom(900 * 1024)})
    mount = tmp_path / 'mnt'
    mount.mkdir()
    here = os.path.dirname(os.path.abspath(__file__))
    tests = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    collections = os.path.join(os.path.dirname(tests), '.collections')
    code = ('import sys; sys.path[:0] = %r; import test_store; test_store.full_disk_scenario(%r, %r)'
            % ([here, tests, collections], str(mount), str(source)))
    run = subprocess.run(['unshare', '--mount', '--propagation', 'private', sys.executable, '-c', code],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome['error'] is not None
    assert 'No space left on device' in outcome['error'] and 'No backup was published' in outcome['error']
    assert 'free space' in outcome['error']
    assert outcome['listed'] == [outcome['small']]
    assert outcome['small_ok'] is True
    assert outcome['leftovers'] == []
    assert not os.listdir(str(mount)), 'the tmpfs must have stayed inside the private mount namespace'
