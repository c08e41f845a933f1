"""lastgood.rollback.preflight run in-process: every check, its name and message, one failure listing them all."""

import json
import os
import subprocess

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _lock, _preflight, _state
from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store
from ansible_collections.lastgood.rollback.plugins.modules import preflight
from ansible_collections.lastgood.rollback.plugins.plugin_utils._phase import name_reachable, phase_result
from lib.module_runner import run_module
from lib.trees import tree_digest


@pytest.fixture
def app(tmp_path):
    root = tmp_path / 'app'
    root.mkdir()
    (root / 'config.yaml').write_text('a: 1\n')
    (root / 'big.bin').write_bytes(b'x' * 10000)
    return root


def _args(tmp_path, **options):
    return dict({'backup_root': str(tmp_path / 'store'), 'set': 'app', 'state_dir': str(tmp_path / 'runs')}, **options)


def _check(result, name):
    return [item for item in result['checks'] if item['name'] == name]


def test_preflight_passes_on_a_fresh_host_and_measures_the_checkpoint(app, tmp_path):
    before = tree_digest(str(tmp_path))
    failed, result = run_module(preflight, _args(tmp_path, paths=[str(app / 'config.yaml')],
                                                 backup_paths=[str(app)], space_multiple=1.5))
    assert not failed and result['ok'] is True and result['changed'] is False
    assert [item['name'] for item in result['checks']] == ['reachable', 'path_exists', 'disk_space', 'lock',
                                                           'runs_in_flight']
    assert result['space']['to_back_up'] == 10005
    assert result['space']['required'] == 15008 and result['space']['free'] > 0
    assert _check(result, 'disk_space')[0]['message'].endswith('(1.5 x 9.77 KB to back up)')
    assert _check(result, 'lock')[0]['message'] == 'lock %s is free' % (tmp_path / 'store' / 'app' / '.lock')
    assert tree_digest(str(tmp_path)) == before, 'preflight wrote something'


def test_preflight_fails_once_listing_every_failed_check(app, tmp_path):
    runs = tmp_path / 'runs'
    runs.mkdir()
    (runs / 'other-run.json').write_text(json.dumps({'status': 'running'}, indent=2))
    (runs / 'done.json').write_text(json.dumps({'status': 'finished'}))
    (runs / 'broken.json').write_text('{"status": "running"')
    lock_path = str(tmp_path / 'store' / 'app' / '.lock')
    os.makedirs(os.path.dirname(lock_path), mode=0o700)
    _lock.acquire(lock_path, 'other-run', pid=os.getpid())
    failed, result = run_module(preflight, _args(tmp_path, paths=[str(app / 'gone')], backup_paths=[str(app)],
                                                 space_multiple=1e15, backups=['lastgood']))
    assert failed and result['failed_checks'] == ['path_exists', 'disk_space', 'lock', 'runs_in_flight', 'backup']
    lines = result['msg'].splitlines()
    assert lines[0].endswith('; nothing was changed:') and len(lines) == 6
    assert lines[1] == '- %s does not exist' % (app / 'gone')
    assert lines[2].endswith(': free space in the store, or lower preflight_space_multiple')
    assert lines[3].startswith('- lock %s is held by run other-run (host ' % lock_path)
    assert lines[4] == ('- run(s) other-run are still running according to %s: resume with -e lastgood_run_id=<id> '
                        'and let them finish before starting another' % runs)
    assert lines[5].startswith('- backup lastgood: no backup in ')


def test_the_run_itself_does_not_count_against_it(tmp_path):
    _state.start(str(tmp_path / 'runs'), 'run-1')
    lock_path = str(tmp_path / 'run.lock')
    _lock.acquire(lock_path, 'run-1', pid=os.getpid())
    failed, result = run_module(preflight, _args(tmp_path, run_id='run-1', lock_path=lock_path))
    assert not failed and result['ok'], result
    assert _check(result, 'lock')[0]['message'] == 'lock %s is held by this run' % lock_path
    failed, result = run_module(preflight, _args(tmp_path, run_id='run-2', lock_path=lock_path, fail=False))
    assert not failed and result['failed_checks'] == ['lock', 'runs_in_flight']


def test_a_damaged_backup_fails_the_backup_check_with_what_differs(app, tmp_path):
    store = Store(str(tmp_path / 'store'), 'app')
    created = store.create([str(app)], name='good')
    with open(os.path.join(created['path'], 'data' + str(app / 'config.yaml')), 'w') as handle:
        handle.write('a: 2\n')
    failed, result = run_module(preflight, _args(tmp_path, backups=['good'], fail=False))
    assert not failed and result['failed_checks'] == ['backup']
    assert _check(result, 'backup')[0]['message'].startswith('backup good (good) does not match its manifest: data')


def test_git_work_trees_must_be_clean_untracked_files_optionally_allowed(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    subprocess.run(['git', 'init', '-q', str(repo)], check=True)
    (repo / 'new.txt').write_text('x')
    found = _preflight.git_check(str(repo), ignore_untracked=False)
    assert not found['ok'] and found['message'] == ('%s has 1 uncommitted change(s) (?? new.txt): commit or stash '
                                                    'them first' % repo)
    assert _preflight.git_check(str(repo), ignore_untracked=True)['ok']
    found = _preflight.git_check(str(tmp_path), ignore_untracked=False)
    assert not found['ok'] and found['message'].startswith('%s is not a git work tree or git failed: ' % tmp_path)


def test_running_runs_reads_the_status_of_each_state_file(tmp_path):
    assert _state.running_runs(str(tmp_path / 'none')) == []
    _state.start(str(tmp_path), 'b-run')
    _state.start(str(tmp_path), 'a-run')
    _state.finish(str(tmp_path), 'a-run')
    (tmp_path / '.lastgood-tmp-c.json').write_text('{"status": "running"}')
    assert _state.running_runs(str(tmp_path)) == ['b-run']


def test_the_controller_names_the_inventory_host_sets_the_fact_and_publishes_stats():
    module_result = {'changed': False, 'host': 'web2.example', 'ok': False, 'failed_checks': ['path_exists'],
                     'space': {}, 'msg': 'x', 'checks': [
                         {'name': 'reachable', 'ok': True, 'message': 'web2.example answers over its connection'},
                         {'name': 'path_exists', 'path': '/a', 'ok': False, 'message': '/a does not exist'}]}
    result = phase_result(name_reachable(module_result, 'web2'), 'web2', 'preflight_result',
                          ('host', 'ok', 'checks', 'failed_checks', 'space'), 'lastgood_preflight',
                          'Preflight failed on %s; nothing was changed:', fail=True)
    assert result['failed'] is True
    assert result['msg'] == 'Preflight failed on web2; nothing was changed:\n- /a does not exist'
    fact = result['ansible_facts']['preflight_result']
    assert fact['host'] == 'web2' and fact['checks'][0]['message'] == 'web2 answers over its connection'
    assert set(fact) == {'host', 'ok', 'checks', 'failed_checks', 'space'}
    assert result['ansible_stats'] == {'data': {'lastgood_preflight': {'web2': {'ok': False,
                                                                                'failed_checks': ['path_exists']}}},
                                       'per_host': False, 'aggregate': True}
    reported = phase_result(module_result, 'web2', 'preflight_result', ('ok',), 'lastgood_preflight', '%s', False)
    assert 'failed' not in reported and reported['msg'] == 'x'
