"""A checkpoint needs no second verify: the backup verifies the staged copy against its manifest before publishing.

A staged copy damaged between the copy and the publish (a truncated, missing, extra or re-moded
file) is refused: no backup of that id exists afterwards, no staging directory is left, and
LASTGOOD is unchanged.  A file the previous backup holds damaged is not hardlinked into the new one.
The result of a published backup says ``verified: true``.
"""

import os

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _store
from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store
from ansible_collections.lastgood.rollback.plugins.modules import backup
from lib.module_runner import run_module


@pytest.fixture
def app(tmp_path):
    root = tmp_path / 'app'
    root.mkdir()
    (root / 'config.yaml').write_text('port: 8080\n')
    (root / 'modes.json').write_text('{"customModes": []}\n')
    return root


def _args(tmp_path, app, **options):
    return dict({'backup_root': str(tmp_path / 'store'), 'set': 'app', 'paths': [str(app)]}, **options)


def _truncate(path):
    with open(path, 'r+b') as handle:
        handle.truncate(1)


def _remove(path):
    os.unlink(path)


def _add_beside(path):
    with open(path + '.extra', 'w') as handle:
        handle.write('x')


def _chmod(path):
    os.chmod(path, 0o777)


@pytest.mark.parametrize('damage', [_truncate, _remove, _add_beside, _chmod])
def test_a_staged_copy_damaged_before_publishing_never_becomes_a_backup(app, tmp_path, monkeypatch, damage):
    store = Store(str(tmp_path / 'store'), 'app')
    good = store.create([str(app)], name='good', mark_lastgood=True)['id']
    (app / 'config.yaml').write_text('port: 9090\n')
    verify_staged = _store._Build._verify  # pylint: disable=protected-access

    def damaged_then_verified(build):
        damage(os.path.join(build.data, str(app / 'config.yaml').lstrip('/')))
        return verify_staged(build)

    monkeypatch.setattr(_store._Build, '_verify', damaged_then_verified)  # pylint: disable=protected-access
    failed, result = run_module(backup, _args(tmp_path, app, name='checkpoint-1'))

    assert failed and 'the staged copy does not match what was read from the sources' in result['msg']
    assert 'No backup was published; existing backups and LASTGOOD are unchanged' in result['msg']
    assert [info['id'] for info in store.list()] == [good]
    assert store.resolve('lastgood')['id'] == good
    assert not [name for name in os.listdir(store.set_dir) if name.startswith('.staging-')]


def test_a_published_checkpoint_says_it_was_verified_and_matches_its_manifest(app, tmp_path):
    failed, result = run_module(backup, _args(tmp_path, app, name='checkpoint-1'))
    assert not failed and result['new_backup'] is True and result['verified'] is True
    assert Store(str(tmp_path / 'store'), 'app').verify('checkpoint-1')['ok'] is True
    failed, again = run_module(backup, _args(tmp_path, app, name='checkpoint-1'))
    assert not failed and again['new_backup'] is False and again['verified'] is False
    failed, predicted = run_module(backup, _args(tmp_path, app, name='checkpoint-2'), check_mode=True)
    assert not failed and predicted['verified'] is False


def test_a_damaged_file_of_the_previous_backup_is_copied_afresh_not_hardlinked(app, tmp_path):
    store = Store(str(tmp_path / 'store'), 'app')
    store.create([str(app)], name='base')
    stored = os.path.join(store.data_dir('base'), str(app / 'modes.json').lstrip('/'))
    mode = os.stat(stored).st_mode
    os.chmod(stored, 0o600)
    with open(stored, 'r+b') as handle:  # same size, other content: only a re-hash shows it
        handle.write(b'[')
    os.chmod(stored, mode)
    (app / 'config.yaml').write_text('port: 9090\n')

    failed, result = run_module(backup, _args(tmp_path, app, name='checkpoint-1', rehash=True))

    assert not failed and result['verified'] is True, result
    assert store.verify('checkpoint-1')['ok'] is True
    assert not os.path.samefile(stored, os.path.join(store.data_dir('checkpoint-1'), str(app / 'modes.json').lstrip('/')))
