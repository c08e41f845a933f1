"""Checkpoints as a lifecycle through ansible-playbook on localhost: the backup module's state=absent, pinned and
keep_runs, and the playbooks list_checkpoints and delete_checkpoint."""

import json
import os
import time

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _lock, _state, _store
from lib import local_playbook, trees

pytestmark = pytest.mark.skipif(not os.access(local_playbook.ANSIBLE_PLAYBOOK, os.X_OK),
                                reason='run scripts/setup.sh first')

PLAYBOOKS = os.path.join(local_playbook.ROOT, 'playbooks')
MTIME = 1763766900 * 10 ** 9


@pytest.fixture
def site(tmp_path):
    """A live tree and a store (set 'demo') holding: checkpoint 'before' (pinned), a LASTGOOD backup, the newest."""
    app = tmp_path / 'app'
    trees.make_tree(str(app), {'conf/app.yml': 'port: 1\n', 'bin/run': '#!/bin/sh\n'})
    store = _store.Store(str(tmp_path / 'store'), 'demo')
    made = []
    for number, kwargs in enumerate(({'name': 'before'}, {'mark_lastgood': True}, {}), 1):
        trees.write_file(str(app / 'conf' / 'app.yml'), b'port: %d\n' % number, 0o644, MTIME + number)
        made.append(store.create([str(app)], **kwargs)['id'])
        time.sleep(0.01)
    return {'tmp': tmp_path, 'app': str(app), 'store': store, 'ids': made, 'audit': str(tmp_path / 'audit.jsonl')}


def module(site, options, *args, save='result'):
    play = site['tmp'] / 'play.yml'
    play.write_text(local_playbook.module_play('Checkpoint lifecycle', 'Change the store', 'backup', options, save,
                                               ignore_errors=True))
    done, counts = local_playbook.run(play, {'store': str(site['tmp'] / 'store'), 'out': str(site['tmp'])}, *args)
    assert done.returncode == 0 and counts, done.stdout + done.stderr
    return json.loads((site['tmp'] / (save + '.json')).read_text()), counts


def ids(site):
    return [info['id'] for info in site['store'].list()]


def audit_removals(site):
    if not os.path.exists(site['audit']):
        return []
    assert _audit.verify(site['audit'])['ok']
    return [record['detail'] for record in _audit.query(site['audit'], events=['backup_remove'])]


def test_state_absent_removes_a_checkpoint_audited_check_mode_first_then_reports_no_change(site):
    options = 'state: absent\nbackup: before\naudit_log: "%s"' % site['audit']
    predicted, counts = module(site, options, '--check')
    assert predicted['changed'] and predicted['removed'] == ['before'] and counts['changed'] == 1
    assert 'before' in ids(site) and audit_removals(site) == []

    removed, counts = module(site, options)
    assert removed['changed'] and removed['removed'] == ['before'] and removed['forced'] is False
    assert ids(site) == site['ids'][1:]
    assert all(site['store'].verify(backup_id)['ok'] for backup_id in site['ids'][1:])
    [detail] = audit_removals(site)
    assert detail['id'] == 'before' and detail['set'] == 'demo' and detail['pinned'] and not detail['forced']

    again, counts = module(site, options)
    assert again['changed'] is False and again['removed'] == [] and counts['changed'] == 0
    assert len(audit_removals(site)) == 1


@pytest.mark.parametrize('which', [1, 2], ids=['lastgood', 'newest'])
def test_state_absent_refuses_lastgood_and_newest_unless_forced(site, which):
    doomed = site['ids'][which]
    options = 'state: absent\nbackup: %s\naudit_log: "%s"' % (doomed, site['audit'])
    refused, _counts = module(site, options)
    assert refused.get('failed') and 'refusing to remove backup %s' % doomed in refused['msg']
    assert doomed in ids(site) and audit_removals(site) == []

    forced, _counts = module(site, options + '\nforce: true')
    assert forced['changed'] and forced['forced'] is True and doomed not in ids(site)
    assert audit_removals(site)[0]['forced'] is True
    lastgood = os.path.join(site['store'].set_dir, 'LASTGOOD')
    assert os.path.exists(lastgood) == (which != 1)


def test_state_absent_refuses_when_the_audit_log_cannot_be_written(site):
    blocker = site['tmp'] / 'not-a-dir'
    blocker.write_text('')
    result, _counts = module(site, 'state: absent\nbackup: before\naudit_log: "%s/audit.jsonl"' % blocker)
    assert result.get('failed') and 'nothing was removed' in result['msg']
    assert 'before' in ids(site)


def test_pinned_unpins_an_existing_checkpoint_and_pins_a_new_backup(site):
    unpinned, counts = module(site, 'backup: before\npinned: false')
    assert unpinned['changed'] and unpinned['pinned'] is False and counts['changed'] == 1
    assert not [info for info in site['store'].list() if info['id'] == 'before'][0]['pinned']
    again, counts = module(site, 'backup: before\npinned: false')
    assert again['changed'] is False and counts['changed'] == 0

    trees.write_file(os.path.join(site['app'], 'conf', 'app.yml'), b'port: 9\n', 0o644, MTIME + 9)
    options = 'paths: ["%s"]\npinned: true' % site['app']
    taken, _counts = module(site, options)
    assert taken['new_backup'] and taken['pinned']
    assert taken['id'] in site['store']._read_pins()  # pylint: disable=protected-access
    same, counts = module(site, options)
    assert same['id'] == taken['id'] and same['changed'] is False and counts['changed'] == 0
    # now retention may remove the unpinned checkpoint (LASTGOOD stays, and the new backup: it is pinned)
    pruned, _counts = module(site, 'backup: %s\nkeep_last: 1' % taken['id'])
    assert pruned['removed'] == ['before', site['ids'][2]]
    assert ids(site) == [site['ids'][1], taken['id']]


def test_keep_runs_releases_and_removes_the_checkpoints_of_old_successful_runs(site):
    state_dir = site['tmp'] / 'runs'
    for number, run_id in enumerate(('r1', 'r2', 'r3'), 10):
        trees.write_file(os.path.join(site['app'], 'conf', 'app.yml'), b'port: %d\n' % number, 0o644, MTIME + number)
        site['store'].create([site['app']], name='run-' + run_id)
        _state.start(str(state_dir), run_id)
        _state.finish(str(state_dir), run_id)
        time.sleep(0.01)
    options = 'backup: run-r3\nkeep_runs: 1\nstate_dir: "%s"' % state_dir
    predicted, _counts = module(site, options, '--check')
    assert predicted['changed'] and predicted['released'] == predicted['removed'] == ['run-r1', 'run-r2']
    assert 'run-r1' in ids(site)
    done, _counts = module(site, options)
    assert done['released'] == done['removed'] == ['run-r1', 'run-r2']
    assert ids(site) == site['ids'] + ['run-r3']
    again, counts = module(site, options)
    assert again['changed'] is False and counts['changed'] == 0


def playbook(site, name, extra=None, *args):
    variables = {'ansible_connection': 'local', 'lastgood_hosts': 'localhost', 'lastgood_backup_root': str(site['tmp'] / 'store'),
                 'lastgood_set': 'demo', 'lastgood_audit_log': site['audit']}
    variables.update(extra or {})
    return local_playbook.run(os.path.join(PLAYBOOKS, name + '.yml'), variables, *args)


def test_list_checkpoints_shows_every_backup_with_its_marks(site):
    done, counts = playbook(site, 'list_checkpoints')
    assert done.returncode == 0 and counts['changed'] == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if 'complete' in line or 'last known good' in line]
    before, marked, newest = site['ids']
    assert any('last known good %s, newest complete %s' % (marked, newest) in line for line in lines)
    assert any(before in line and 'pinned' in line and 'LASTGOOD' not in line for line in lines)
    assert any(marked in line and 'LASTGOOD' in line for line in lines)


def test_delete_checkpoint_removes_it_once_and_refuses_the_lastgood_without_force(site):
    done, counts = playbook(site, 'delete_checkpoint', {'lastgood_delete_checkpoint': 'before'})
    assert done.returncode == 0 and counts['changed'] == 1, done.stdout + done.stderr
    assert 'before' not in ids(site) and audit_removals(site)[0]['id'] == 'before'
    again, counts = playbook(site, 'delete_checkpoint', {'lastgood_delete_checkpoint': 'before'})
    assert again.returncode == 0 and counts['changed'] == 0

    marked = site['ids'][1]
    refused, _counts = playbook(site, 'delete_checkpoint', {'lastgood_delete_checkpoint': marked})
    assert refused.returncode == 2 and 'refusing to remove backup %s' % marked in refused.stdout
    forced, counts = playbook(site, 'delete_checkpoint', {'lastgood_delete_checkpoint': marked,
                                                          'lastgood_delete_force': True})
    assert forced.returncode == 0 and counts['changed'] == 1 and marked not in ids(site)


def test_delete_checkpoint_refuses_while_a_run_holds_the_lock_and_without_a_name(site):
    lock_file = os.path.join(site['store'].set_dir, '.lock')
    _lock.acquire(lock_file, 'run-in-flight', ttl=3600)
    try:
        held, _counts = playbook(site, 'delete_checkpoint', {'lastgood_delete_checkpoint': 'before'})
    finally:
        _lock.release(lock_file, 'run-in-flight')
    assert held.returncode == 2 and 'run-in-flight holds the rollback lock' in held.stdout
    unnamed, _counts = playbook(site, 'delete_checkpoint')
    assert unnamed.returncode == 2 and 'Name the checkpoint to delete' in unnamed.stdout
    assert 'before' in ids(site)
