"""What a backup or a restore cannot keep as the user may expect reaches Ansible as a warning."""

import os
import socket

from ansible_collections.lastgood.rollback.plugins.modules import backup, restore
from lib import trees
from lib.module_runner import run_module


def warnings_of(result):
    """The warning texts of a module result (newer ansible-core reports each as a structured summary)."""
    return [item if isinstance(item, str) else item['event']['msg'] for item in result.get('warnings', [])]


def _store_args(tmp_path):
    return {'backup_root': str(tmp_path / 'store'), 'set': 'app'}


def test_backup_of_a_source_that_is_a_symlink_warns_that_only_the_link_is_kept(tmp_path):
    trees.write_file(str(tmp_path / 'real' / 'app.conf'), b'x\n')
    os.symlink(str(tmp_path / 'real'), str(tmp_path / 'link'))
    failed, result = run_module(backup, dict(_store_args(tmp_path), paths=[str(tmp_path / 'link')]))
    assert not failed and result['files'] == 0
    assert any(str(tmp_path / 'link') in warning and 'symlink' in warning for warning in warnings_of(result))


def test_backup_warns_about_the_special_files_it_leaves_out(tmp_path):
    trees.write_file(str(tmp_path / 'app' / 'app.conf'), b'x\n')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / 'app' / 'app.sock'))
    try:
        failed, result = run_module(backup, dict(_store_args(tmp_path), paths=[str(tmp_path / 'app')]))
    finally:
        sock.close()
    assert not failed and result['special_files'] == [str(tmp_path / 'app' / 'app.sock')]
    assert any(str(tmp_path / 'app' / 'app.sock') in warning for warning in warnings_of(result))


def test_restore_warns_when_it_replaces_a_planted_symlink_instead_of_following_it(tmp_path):
    app = tmp_path / 'app'
    trees.write_file(str(app / 'conf' / 'c.conf'), b'good\n')
    failed, _result = run_module(backup, dict(_store_args(tmp_path), paths=[str(app)], mark_lastgood=True))
    assert not failed
    trees.write_file(str(app / 'conf' / 'c.conf'), b'bad\n')
    os.rename(str(app / 'conf'), str(tmp_path / 'outside'))
    os.symlink(str(tmp_path / 'outside'), str(app / 'conf'))
    failed, result = run_module(restore, dict(_store_args(tmp_path), paths=[str(app / 'conf' / 'c.conf')]))
    assert not failed, result['msg']
    assert any(str(app / 'conf') in warning and 'symlink' in warning for warning in warnings_of(result))
    with open(str(tmp_path / 'outside' / 'c.conf'), 'rb') as handle:
        assert handle.read() == b'bad\n'
