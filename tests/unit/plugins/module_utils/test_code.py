"""The code rollback's decisions and its one destructive step, on trees and git repositories in a temp dir.

tests/integration/test_level_roles.py runs the same engine through the role on the demo application;
molecule/level3_code runs the whole Level 3 playbook on SSH hosts.
"""

import json
import os
import subprocess

import pytest
from hypothesis import given, strategies as st

from ansible_collections.lastgood.rollback.plugins.module_utils import _code
from ansible_collections.lastgood.rollback.plugins.modules import code_rollback
from lib.module_runner import run_module

PARAMS = {
    'strategy': 'release', 'release': '', 'known_good_marker': 'KNOWN_GOOD', 'bad_marker': 'BAD_RELEASE',
    'git_mode': 'reset', 'target_ref': 'v1', 'revert_commits': [], 'branch': '', 'git_author_name': 'rb',
    'git_author_email': 'rb@lastgood.invalid', 'deploy_command': [], 'revision_file': 'REVISION',
    'remove_paths': ['lib/feature', 'docs/FEATURE*.md'], 'test_command': [], 'apply_command': [],
    'check_command': [], 'check_retries': 0, 'check_delay': 0, 'audit_log': '', 'run_id': 'r1',
}


@given(st.lists(st.one_of(st.integers(0, 10 ** 6).map(str), st.from_regex(r'v[0-9]\.[0-9]', fullmatch=True)),
                unique=True))
def test_deployment_order_puts_numbered_releases_last_by_number(names):
    ordered = _code.deployment_order(names)
    assert sorted(ordered) == sorted(names)
    numbered = [name for name in ordered if name.isdigit()]
    assert [int(name) for name in numbered] == sorted(int(name) for name in numbered)
    assert ordered[len(ordered) - len(numbered):] == numbered


def _release(root, name, *markers, files=()):
    directory = root / 'releases' / name
    directory.mkdir(parents=True)
    for marker in markers:
        (directory / marker).write_text('marked\n')
    for path in files:
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text('x\n')
    return directory


def _params(tmp_path, **options):
    return dict(PARAMS, releases_dir=str(tmp_path / 'releases'), current_link=str(tmp_path / 'current'),
                repo=str(tmp_path / 'code'), **options)


def test_choose_release_skips_bad_and_unmarked_releases_and_hidden_directories(tmp_path):
    for name, markers in (('9', ['KNOWN_GOOD']), ('10', ['KNOWN_GOOD', 'BAD_RELEASE']), ('11', []),
                          ('.old', ['KNOWN_GOOD']), ('v2', ['KNOWN_GOOD'])):
        _release(tmp_path, name, *markers)
    target, good = _code.choose_release(str(tmp_path / 'releases'), '', 'KNOWN_GOOD', 'BAD_RELEASE')
    assert (target, good) == ('9', ['v2', '9'])
    with pytest.raises(_code.CodeError, match='Release 10 does not exist .* or is marked bad'):
        _code.choose_release(str(tmp_path / 'releases'), '10', 'KNOWN_GOOD', 'BAD_RELEASE')
    with pytest.raises(_code.CodeError, match='No release in .* is marked known-good'):
        _code.choose_release(str(tmp_path / 'none'), '', 'KNOWN_GOOD', 'BAD_RELEASE')


def test_find_paths_matches_whole_relative_paths_and_never_crosses_a_slash(tmp_path):
    root = tmp_path / 'r'
    for path in ('lib/feature/a.py', 'docs/FEATURE.md', 'docs/FEATURE-2.md', 'docs/sub/FEATURE.md',
                 'other/lib/feature/b.py', '.hidden/lib/feature'):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text('x\n')
    found = sorted(os.path.relpath(path, root) for path in _code.find_paths(str(root), PARAMS['remove_paths']))
    assert found == ['docs/FEATURE-2.md', 'docs/FEATURE.md', 'lib/feature']


def test_release_rollback_check_mode_changes_nothing(tmp_path):
    _release(tmp_path, '1', 'KNOWN_GOOD', files=['lib/feature/x.py'])
    _release(tmp_path, '2')
    os.symlink('releases/2', tmp_path / 'current')
    result = _code.rollback(_params(tmp_path), check_mode=True)
    assert (result['to_release'], result['changed'], result['switched']) == ('1', True, True)
    assert result['removed'] == ['lib/feature']
    assert os.readlink(tmp_path / 'current') == 'releases/2'
    assert (tmp_path / 'releases' / '1' / 'lib' / 'feature' / 'x.py').exists()


def test_release_rollback_switches_once_and_records_it(tmp_path):
    _release(tmp_path, '1', 'KNOWN_GOOD', files=['lib/feature/x.py', 'app.py'])
    _release(tmp_path, '2', files=['lib/feature/x.py'])
    os.symlink('releases/2', tmp_path / 'current')
    audit = str(tmp_path / 'audit.jsonl')
    result = _code.rollback(_params(tmp_path, audit_log=audit))
    assert os.readlink(tmp_path / 'current') == 'releases/1'
    assert (result['changed'], result['live']['release'], result['removed']) == (True, '1', ['lib/feature'])
    again = _code.rollback(_params(tmp_path, audit_log=audit))
    assert (again['changed'], again['switched'], again['removed']) == (False, False, [])
    with open(audit, encoding='utf-8') as handle:
        events = [json.loads(line)['event'] for line in handle]
    assert events == ['code_rolled_back']


def test_a_failed_test_in_the_release_leaves_the_running_code_alone(tmp_path):
    _release(tmp_path, '1', 'KNOWN_GOOD')
    _release(tmp_path, '2')
    os.symlink('releases/2', tmp_path / 'current')
    with pytest.raises(_code.CodeError, match='tests in release 1 failed.*running code is unchanged'):
        _code.rollback(_params(tmp_path, test_command=['false']))
    assert os.readlink(tmp_path / 'current') == 'releases/2'


@pytest.mark.parametrize('step', ['symlink', 'rename', 'fsync_dir'])
def test_the_link_swap_interrupted_at_each_step_leaves_current_on_a_whole_release(tmp_path, monkeypatch, step):
    _release(tmp_path, '1', 'KNOWN_GOOD')
    _release(tmp_path, '2')
    os.symlink('releases/2', tmp_path / 'current')

    def boom(*_args, **_kwargs):
        raise OSError('injected failure at %s' % step)

    monkeypatch.setattr(_code.os if step != 'fsync_dir' else _code, step, boom)
    with pytest.raises(OSError, match='injected'):
        _code.rollback(_params(tmp_path))
    monkeypatch.undo()
    assert os.readlink(tmp_path / 'current') in ('releases/2', 'releases/1')
    assert os.path.isdir(tmp_path / 'current')
    # the swap link never stays behind unless the failure came after the rename
    assert not [name for name in os.listdir(tmp_path) if name.startswith('.lastgood-tmp-')]
    # a rerun finishes the job
    _code.rollback(_params(tmp_path))
    assert os.readlink(tmp_path / 'current') == 'releases/1'


def _git(repo, *args):
    return subprocess.run(['git', '-C', str(repo)] + list(args), check=True, capture_output=True, text=True,
                          env=dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@t.invalid',
                                   GIT_COMMITTER_NAME='t', GIT_COMMITTER_EMAIL='t@t.invalid')).stdout.strip()


@pytest.fixture()
def repo(tmp_path):
    code = tmp_path / 'code'
    code.mkdir()
    _git(code, 'init', '--quiet', '--initial-branch=main')
    (code / 'app.py').write_text('one\n')
    _git(code, 'add', '.')
    _git(code, 'commit', '--quiet', '-m', 'one')
    _git(code, 'tag', 'v1')
    (code / 'app.py').write_text('two\n')
    (code / 'lib' / 'feature').mkdir(parents=True)
    (code / 'lib' / 'feature' / 'f.py').write_text('f\n')
    _git(code, 'add', '.')
    _git(code, 'commit', '--quiet', '-m', 'two')
    return code


def test_git_reset_makes_the_rollback_branch_once(tmp_path, repo):
    result = _code.rollback(_params(tmp_path, strategy='git'))
    assert result['branch'] == 'rollback-r1' and result['changed'] is True
    assert _git(repo, 'rev-parse', '--abbrev-ref', 'HEAD') == 'rollback-r1'
    assert (repo / 'app.py').read_text() == 'one\n'
    again = _code.rollback(_params(tmp_path, strategy='git'))
    assert again['changed'] is False and again['to_commit'] == result['to_commit']


def test_git_revert_that_conflicts_puts_the_work_tree_back(tmp_path, repo):
    head = _git(repo, 'rev-parse', 'HEAD')
    (repo / 'app.py').write_text('three\n')
    _git(repo, 'commit', '--quiet', '-am', 'three')
    head = _git(repo, 'rev-parse', 'HEAD')
    with pytest.raises(_code.CodeError, match='back on main and the rollback branch rollback-r1 was deleted'):
        _code.rollback(_params(tmp_path, strategy='git', git_mode='revert', revert_commits=['v1']))
    assert _git(repo, 'rev-parse', '--abbrev-ref', 'HEAD') == 'main'
    assert _git(repo, 'rev-parse', 'HEAD') == head
    assert _git(repo, 'status', '--porcelain') == ''


def test_git_refuses_a_dirty_work_tree_and_an_unknown_ref(tmp_path, repo):
    with pytest.raises(_code.CodeError, match='nope is not a commit'):
        _code.rollback(_params(tmp_path, strategy='git', target_ref='nope'))
    (repo / 'app.py').write_text('dirty\n')
    with pytest.raises(_code.CodeError, match='uncommitted changes'):
        _code.rollback(_params(tmp_path, strategy='git'))
    assert _git(repo, 'rev-parse', '--abbrev-ref', 'HEAD') == 'main'


def test_the_module_takes_a_null_option_as_its_default(tmp_path):
    """An empty AWX survey answer arrives as null: the module reads it as the option's default."""
    _release(tmp_path, '1', 'KNOWN_GOOD')
    _release(tmp_path, '2')
    os.symlink('releases/2', tmp_path / 'current')
    args = {'release': None, 'releases_dir': str(tmp_path / 'releases'),
            'current_link': str(tmp_path / 'current'), 'repo': str(tmp_path / 'code'), 'audit_log': '',
            'target_ref': None, 'run_id': None}
    failed, result = run_module(code_rollback, args, check_mode=True)
    assert not failed, result
    assert (result['strategy'], result['to_release'], result['changed']) == ('release', '1', True)
