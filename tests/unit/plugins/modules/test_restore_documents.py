"""lastgood.rollback.restore with documents: each document it would write is validated from the backup first."""

import os

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store
from ansible_collections.lastgood.rollback.plugins.modules import restore
from lib.module_runner import run_module
from lib.trees import tree_digest

GOOD = 'server:\n  port: 8080\n'


@pytest.fixture
def backed_up(tmp_path):
    """An app dir backed up as 'known-good' (config.yaml, modes.json), then changed live; returns (app, args)."""
    app = tmp_path / 'app'
    app.mkdir()
    (app / 'config.yaml').write_text(GOOD)
    (app / 'modes.json').write_text('{"customModes": []}\n')
    Store(str(tmp_path / 'store'), 'app').create([str(app)], name='known-good')
    (app / 'config.yaml').write_text('server:\n  port: 9999\n')
    return app, {'backup_root': str(tmp_path / 'store'), 'set': 'app', 'backup': 'known-good'}


def test_valid_documents_are_validated_from_the_backup_then_restored(backed_up):
    app, args = backed_up
    failed, result = run_module(restore, dict(args, documents=[
        {'path': str(app / 'config.yaml'), 'required_keys': ['server.port'], 'validate': 'grep -q 8080 %s'},
        {'path': str(app / 'modes.json'), 'required_keys': ['customModes']}]))
    assert not failed and result['changed'] is True, result
    assert result['validated_documents'] == [str(app / 'config.yaml'), str(app / 'modes.json')]
    assert (app / 'config.yaml').read_text() == GOOD


@pytest.mark.parametrize('document, expected', [
    ({'required_keys': ['server.host']}, 'required key server.host is missing'),
    ({'validate': 'grep -q 9999 %s'}, "validate command 'grep -q 9999 %s' rejected "),
    ({'schema': {'type': 'object', 'properties': {'server': {'type': 'string'}}}}, 'schema violation at server'),
    ({'format': 'json'}, 'is not valid JSON'),
])
def test_an_invalid_document_in_the_backup_refuses_the_restore_and_changes_nothing(backed_up, tmp_path, document,
                                                                                   expected):
    app, args = backed_up
    before = tree_digest(str(tmp_path))
    failed, result = run_module(restore, dict(args, documents=[dict(document, path=str(app / 'config.yaml'))]))
    assert failed and expected in result['msg'], result['msg']
    assert '%s in backup known-good' % (app / 'config.yaml') in result['msg']
    assert 'Nothing was changed' in result['msg'] and result['changed'] is False
    assert tree_digest(str(tmp_path)) == before


def test_a_document_the_backup_does_not_hold_refuses_the_restore(backed_up, tmp_path):
    app, args = backed_up
    (app / 'app.env').write_text('X=1\n')
    before = tree_digest(str(tmp_path))
    failed, result = run_module(restore, dict(args, id=args.pop('backup'), documents=[{'path': str(app / 'app.env')}]))
    assert failed and result['msg'] == (
        'Backup known-good has no readable %s (it was absent when the backup was taken, so restoring it would '
        'remove the file). Nothing was changed. Name a backup that has it.' % (app / 'app.env'))
    assert tree_digest(str(tmp_path)) == before


def test_a_damaged_document_in_the_backup_is_not_validated_as_if_good(backed_up, tmp_path):
    app, args = backed_up
    stored = os.path.join(Store(args['backup_root'], 'app').data_dir('known-good') + str(app / 'config.yaml'))
    with open(stored, 'w') as handle:
        handle.write('server:\n  port: 1\n')
    failed, result = run_module(restore, dict(args, documents=[{'path': str(app / 'config.yaml')}]))
    assert failed and 'does not match its manifest (SHA-256)' in result['msg']


def test_documents_outside_the_restored_paths_are_named_not_validated(backed_up):
    app, args = backed_up
    (app / 'other').mkdir()
    failed, result = run_module(restore, dict(args, paths=[str(app / 'config.yaml')], documents=[
        {'path': str(app / 'config.yaml')}, {'path': str(app / 'modes.json'), 'required_keys': ['nope']}]),
        check_mode=True)
    assert not failed and result['validated_documents'] == [str(app / 'config.yaml')]
    warnings = [item if isinstance(item, str) else item['event']['msg'] for item in result.get('warnings', [])]
    assert any('%s are not written by this restore' % (app / 'modes.json') in warning for warning in warnings)


def test_check_mode_validates_the_documents_too(backed_up, tmp_path):
    app, args = backed_up
    before = tree_digest(str(tmp_path))
    failed, result = run_module(restore, dict(args, documents=[
        {'path': str(app / 'config.yaml'), 'required_keys': ['server.host']}]), check_mode=True)
    assert failed and 'required key server.host is missing' in result['msg']
    assert tree_digest(str(tmp_path)) == before


def test_documents_are_refused_with_undo(backed_up):
    _app, args = backed_up
    args.pop('backup')
    failed, result = run_module(restore, dict(args, undo=True, documents=[{'path': '/x.yaml'}]))
    assert failed and 'documents cannot be validated for an undo' in result['msg']
