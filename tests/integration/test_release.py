"""A release as docs/dev/release.md makes it, in a throwaway clone of this checkout's HEAD: the AWX
project's collections/requirements.yml cannot install a tag that does not exist; a tag made before
the changelog release is refused by the version check; after ``antsibull-changelog release``, a commit
and the tag, ``ansible-galaxy collection install -r`` installs that release from the git repository.

The tags are made in the clone only, never in this checkout.  Git is reached through ``git+file://``:
as root the installs run in a network namespace of their own (nothing but loopback).
"""

import json
import os
import shutil
import subprocess

import pytest
import yaml

from lib.release import ANSIBLE_GALAXY, REPO_ROOT, REQUIREMENTS, clean_env, galaxy, load_yaml, requirement, \
    version_problems

ANTSIBULL_CHANGELOG = os.path.join(REPO_ROOT, '.venv', 'bin', 'antsibull-changelog')
GIT_IDENTITY = ['-c', 'user.name=lastgood release test', '-c', 'user.email=release-test@lastgood.invalid']


def _run(command, cwd, env=None, offline=False):
    if offline and os.geteuid() == 0 and shutil.which('unshare'):
        command = ['unshare', '--net'] + command
    return subprocess.run(command, cwd=str(cwd), env=env or clean_env(), capture_output=True, text=True, check=False)


def _git(clone, *args):
    completed = _run(['git'] + GIT_IDENTITY + list(args), clone)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _install(tmp_path, clone, name):
    """``ansible-galaxy collection install -r`` of the AWX project's requirements.yml, its entry for this
    collection pointed at the clone; the installed collection's directory, or the failed command."""
    requirements = load_yaml(REQUIREMENTS)
    entry = dict(requirement(requirements))
    entry['name'] = 'git+file://%s/.git' % clone
    requirements['collections'] = [entry]
    path = tmp_path / ('%s.yml' % name)
    path.write_text(yaml.safe_dump(requirements))
    target = tmp_path / name
    env = clean_env(PATH=os.path.dirname(ANSIBLE_GALAXY) + os.pathsep + os.environ.get('PATH', ''),
                    HOME=str(tmp_path / 'home'))
    completed = _run([ANSIBLE_GALAXY, 'collection', 'install', '-r', str(path), '-p', str(target)], tmp_path, env,
                     offline=True)
    meta = galaxy()
    return completed, target / 'ansible_collections' / meta['namespace'] / meta['name']


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    """A clone of this checkout's HEAD, before any release step."""
    path = tmp_path_factory.mktemp('release') / 'lastgood.rollback'
    completed = _run(['git', 'clone', '--quiet', '--no-local', REPO_ROOT, str(path)], REPO_ROOT)
    assert completed.returncode == 0, completed.stderr
    # tags of this checkout, if any, are not the release made here
    for tag in _git(path, 'tag', '--list').split():
        _git(path, 'tag', '--delete', tag)
    return path


def test_a_release_is_installed_from_its_git_tag_by_the_awx_project_requirements(clone, tmp_path):
    version = str(galaxy()['version'])
    assert version == str(requirement()['version'])

    # before the release the tag does not exist: the project's requirements cannot be installed
    completed, installed = _install(tmp_path, clone, 'untagged')
    assert completed.returncode != 0 and not installed.exists(), completed.stdout + completed.stderr
    assert "'%s'" % version in completed.stderr, completed.stderr

    # a tag made before the changelog release is refused by the version check
    _git(clone, 'tag', '--annotate', '--message', 'lastgood.rollback %s' % version, version)
    problems = version_problems(str(clone))
    assert any('has no release %s' % version in problem for problem in problems), problems
    _git(clone, 'tag', '--delete', version)

    # the release (docs/dev/release.md): changelog release, commit, tag
    env = clean_env(PATH=os.path.dirname(ANTSIBULL_CHANGELOG) + os.pathsep + os.environ.get('PATH', ''))
    completed = _run([ANTSIBULL_CHANGELOG, 'release'], clone, env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    releases = load_yaml(str(clone / 'changelogs' / 'changelog.yaml'))['releases']
    assert version in map(str, releases), sorted(releases)
    assert (clone / 'CHANGELOG.rst').is_file()
    _git(clone, 'add', '--all')
    _git(clone, 'commit', '--quiet', '--message', 'Release %s' % version)
    _git(clone, 'tag', '--annotate', '--message', 'lastgood.rollback %s' % version, version)
    assert version_problems(str(clone)) == []

    # the AWX project's requirements.yml, pointed at the repository, installs the tagged release
    completed, installed = _install(tmp_path, clone, 'released')
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with open(str(installed / 'MANIFEST.json'), encoding='utf-8') as stream:
        assert json.load(stream)['collection_info']['version'] == version
    # built from the tag with galaxy.yml's build_ignore: the collection, not the repository
    shipped = set(os.listdir(str(installed)))
    assert not shipped & {'awx', 'tests', 'molecule', 'bench', 'demo', 'scripts', 'ansible.cfg'}, sorted(shipped)
    assert {'plugins', 'roles', 'playbooks', 'CHANGELOG.rst'} <= shipped, sorted(shipped)

    # commits after the tag are not what the tag installs
    (clone / 'README.md').write_text('after the release\n')
    _git(clone, 'commit', '--quiet', '--all', '--message', 'after the release')
    completed, again = _install(tmp_path, clone, 'again')
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (again / 'README.md').read_text() != 'after the release\n'
