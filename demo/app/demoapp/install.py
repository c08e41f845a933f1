"""Lay out an app root: seed files, a git repository with tagged releases, releases/<n> + current.

The git history is built with fixed dates, so every host gets the same commit
ids for the same tags.
"""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from . import audit, layout

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
SEED = os.path.join(SOURCE, 'seed')

# (version, tags, commit date): the release history of the demo code.
HISTORY = (
    ('0.9.0', ('v0.9.0', 'baseline-before-party-mode'), '2025-01-06T10:00:00Z'),
    ('1.0.0', ('v1.0.0', 'pre-party-mode-v1.0.0'), '2025-02-03T10:00:00Z'),
    ('1.1.0', ('v1.1.0',), '2025-03-03T10:00:00Z'),
)
# Deployed at install, in order; the last one is current.
INITIAL_DEPLOYS = ('v1.0.0', 'v1.1.0')

DEFAULT_KNOWN_BAD = [{
    'key': 'partyMode.enabled',
    'equals': True,
    'reason': 'Party Mode 1.1 leaks context between sessions (SEC-PM-004)',
}]

_GIT_IDENTITY = {
    'GIT_AUTHOR_NAME': 'Demo Release Bot', 'GIT_AUTHOR_EMAIL': 'release-bot@demo.invalid',
    'GIT_COMMITTER_NAME': 'Demo Release Bot', 'GIT_COMMITTER_EMAIL': 'release-bot@demo.invalid',
}


class InstallError(Exception):
    pass


def install(root, bind='127.0.0.1', port=8080, host_name=None, force=False):
    """Create the app root; refuses a root that already holds an app unless ``force``."""
    root = os.path.abspath(root)
    if os.path.exists(layout.path(root, layout.SETTINGS)) and not force:
        raise InstallError('%s already holds the demo app; use --force to reinstall' % root)
    if force and (SOURCE + os.sep).startswith(root + os.sep):
        raise InstallError('cannot reinstall %s with the appctl installed inside it; run demo/app/appctl '
                           'from the source checkout' % root)
    os.makedirs(root, exist_ok=True)
    if force:
        # Empty the root but keep the directory itself: on the fleet it is a mount point.
        for name in os.listdir(root):
            target = os.path.join(root, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
    for name in ('logs', 'run', 'bin', layout.RELEASES):
        os.makedirs(layout.path(root, name), exist_ok=True)
    for name in (layout.CONFIG, layout.REGISTRY):
        shutil.copy(os.path.join(SEED, name), layout.path(root, name))
    settings = {'hostName': host_name, 'bind': bind, 'port': int(port), 'autoReload': False,
                'knownBad': DEFAULT_KNOWN_BAD}
    with open(layout.path(root, layout.SETTINGS), 'w') as handle:
        json.dump(settings, handle, indent=2, sort_keys=True)
        handle.write('\n')
    _copy_program(root)
    _build_repository(layout.path(root, layout.CODE))
    for ref in INITIAL_DEPLOYS:
        deploy(root, ref, record=False)
    audit.append(root, 'APP_INSTALL', version=HISTORY[-1][0], bind=bind, port=int(port))
    return root


def _copy_program(root):
    bin_dir = layout.path(root, 'bin')
    shutil.copy2(os.path.join(SOURCE, 'appctl'), os.path.join(bin_dir, 'appctl'))
    package = os.path.join(bin_dir, 'demoapp')
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(HERE, package, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    shutil.copytree(SEED, os.path.join(bin_dir, 'seed'), dirs_exist_ok=True)


def git(repo, *args, **kwargs):
    env = dict(os.environ, **_GIT_IDENTITY)
    env.update(kwargs.pop('env', {}))
    return subprocess.run(['git', '-C', repo] + list(args), check=True, capture_output=True, env=env, **kwargs)


def _build_repository(repo):
    os.makedirs(repo, exist_ok=True)
    git(repo, 'init', '-q', '-b', 'main')
    git(repo, 'config', 'user.name', _GIT_IDENTITY['GIT_AUTHOR_NAME'])
    git(repo, 'config', 'user.email', _GIT_IDENTITY['GIT_AUTHOR_EMAIL'])
    for version, tags, date in HISTORY:
        # copy, not copy2: a preserved mtime could hide a same-size change from git's index.
        shutil.copytree(os.path.join(SEED, 'code', version), repo, dirs_exist_ok=True, copy_function=shutil.copy)
        git(repo, 'add', '-A')
        git(repo, 'commit', '-q', '-m', 'Release %s' % version,
            env={'GIT_AUTHOR_DATE': date, 'GIT_COMMITTER_DATE': date})
        for tag in tags:
            git(repo, 'tag', tag)


def deploy(root, ref, record=True):
    """Export ``ref`` from the git repository as releases/<n+1> and point ``current`` at it."""
    repo = layout.path(root, layout.CODE)
    try:
        commit = git(repo, 'rev-parse', '--verify', ref + '^{commit}').stdout.decode().strip()
    except subprocess.CalledProcessError:
        raise InstallError('%s is not a commit, branch or tag in %s' % (ref, repo))
    releases = layout.path(root, layout.RELEASES)
    os.makedirs(releases, exist_ok=True)
    numbers = [int(name) for name in os.listdir(releases) if name.isdigit()]
    number = max(numbers) + 1 if numbers else 1
    target = os.path.join(releases, str(number))
    staging = tempfile.mkdtemp(prefix='.deploy-', dir=releases)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(['git', '-C', repo, 'archive', '--format=tar', commit], stdout=archive, check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(staging)  # our own git archive: trusted
    with open(os.path.join(staging, 'REVISION'), 'w') as handle:
        handle.write('%s %s\n' % (commit, ref))
    os.chmod(staging, 0o755)
    os.rename(staging, target)
    link = layout.path(root, layout.CURRENT)
    os.symlink(os.path.join(layout.RELEASES, str(number)), link + '.new')
    os.replace(link + '.new', link)
    if record:
        audit.append(root, 'DEPLOY', ref=ref, commit=commit, release=number)
    return target
