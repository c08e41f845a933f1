"""The restore module through ansible-playbook on localhost: plan with --check --diff, restore, undo."""

import json
import os

import pytest

from lib import local_playbook, trees

pytestmark = pytest.mark.skipif(not os.access(local_playbook.ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

BACKUP = local_playbook.module_play('Take the known-good backup', 'Back up the application and mark it last known good', 'backup', '''
    paths: ["{{ app }}"]
    mark_lastgood: true
''', 'backup')
RESTORE = local_playbook.module_play('Roll the application back', 'Restore the last known good backup', 'restore', '', 'restore')
UNDO = local_playbook.module_play('Take the rollback back', 'Put back what the last restore replaced', 'restore', '''
    undo: true
''', 'undo')


def run_playbook(tmp_path, text, *args):
    path = tmp_path / 'play.yml'
    path.write_text(text)
    variables = {'app': str(tmp_path / 'app'), 'store': str(tmp_path / 'store'), 'out': str(tmp_path)}
    run, counts = local_playbook.run(path, variables, *args)
    assert counts is not None, run.stdout + run.stderr
    return run, counts


def saved(tmp_path, name):
    return json.loads((tmp_path / (name + '.json')).read_text())


@pytest.fixture
def broken_app(tmp_path):
    """An application backed up as last known good, then broken by a deploy; returns (good, broken) digests."""
    app = tmp_path / 'app'
    (app / 'conf').mkdir(parents=True)
    (app / 'conf' / 'app.yml').write_text('port: 8080\n')
    (app / 'bin').mkdir()
    (app / 'bin' / 'run.sh').write_text('#!/bin/sh\nexec app\n')
    (app / 'bin' / 'run.sh').chmod(0o755)
    (app / 'current').symlink_to('conf/app.yml')
    run, counts = run_playbook(tmp_path, BACKUP)
    assert counts['failed'] == 0, run.stdout + run.stderr
    good = trees.tree_digest(str(app))
    (app / 'conf' / 'app.yml').write_text('port: 9999\n')
    (app / 'bin' / 'run.sh').chmod(0o700)
    (app / 'conf' / 'new.yml').write_text('added: true\n')
    return good, trees.tree_digest(str(app))


def test_check_diff_shows_the_plan_and_changes_nothing(tmp_path, broken_app):
    _good, broken = broken_app
    run, counts = run_playbook(tmp_path, RESTORE, '--check', '--diff')
    assert counts['failed'] == 0 and counts['changed'] == 1, run.stdout + run.stderr
    assert trees.tree_digest(str(tmp_path / 'app')) == broken
    assert '-port: 9999' in run.stdout and '+port: 8080' in run.stdout
    result = saved(tmp_path, 'restore')
    [plan] = result['plan']
    app = str(tmp_path / 'app')
    assert plan['removed'] == [app + '/conf/new.yml']
    assert {item['path'] for item in plan['changed']} == {app + '/conf/app.yml', app + '/bin/run.sh'}
    assert result['paths'][0]['state'] == 'would be restored'
    assert 'Check mode' in result['msg']


def test_restore_then_rerun_reports_no_change_then_undo_puts_the_broken_version_back(tmp_path, broken_app):
    good, broken = broken_app
    run, counts = run_playbook(tmp_path, RESTORE)
    assert counts['failed'] == 0 and counts['changed'] == 1, run.stdout + run.stderr
    assert trees.tree_digest(str(tmp_path / 'app')) == good
    restored = saved(tmp_path, 'restore')
    assert restored['paths'][0]['state'] == 'restored' and restored['paths'][0]['verified'] is True
    assert restored['displaced_backup'].startswith('pre-restore-')
    assert 'port: 9999' not in json.dumps(restored), 'contents must not appear outside diff mode'

    again, counts = run_playbook(tmp_path, RESTORE)
    assert counts['failed'] == 0 and counts['changed'] == 0, again.stdout + again.stderr

    undo, counts = run_playbook(tmp_path, UNDO)
    assert counts['failed'] == 0 and counts['changed'] == 1, undo.stdout + undo.stderr
    assert trees.tree_digest(str(tmp_path / 'app')) == broken
    assert saved(tmp_path, 'undo')['undone']['restored'] == restored['backup_id']


def test_restore_of_a_damaged_backup_fails_and_leaves_the_target_untouched(tmp_path, broken_app):
    _good, broken = broken_app
    data = tmp_path / 'store' / 'demo'
    [backup] = [entry for entry in data.iterdir() if entry.is_dir() and not entry.name.startswith('.')]
    damaged = backup / 'data' / str(tmp_path / 'app' / 'conf' / 'app.yml').lstrip('/')
    damaged.write_text('port: 6666\n')
    run, counts = run_playbook(tmp_path, RESTORE)
    assert counts['failed'] == 1
    assert 'does not match its manifest' in run.stdout and 'untouched' in run.stdout
    assert trees.tree_digest(str(tmp_path / 'app')) == broken
