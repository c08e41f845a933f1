"""The Galaxy artifact: ``ansible-galaxy collection build`` ships what a user installs and nothing else,
and Galaxy's own import checks (galaxy-importer with ansible-lint and ansible-doc,
tests/galaxy-importer.cfg) accept it without a single warning.

galaxy-importer lives in its own virtualenv, .venv-importer (scripts/setup.sh, requirements-importer.txt).
As root it runs in a network namespace of its own: no Galaxy, no GitHub, nothing but loopback.  It runs
through tests/lib/galaxy_importer_untimed.py, which lifts only its 180 s limit on ansible-lint: a loaded
machine is no finding.
"""

import os
import shutil
import subprocess
import tarfile

import pytest

from lib.release import REPO_ROOT, build, clean_env

IMPORTER_PYTHON = os.path.join(REPO_ROOT, '.venv-importer', 'bin', 'python')
IMPORTER_CONFIG = os.path.join(REPO_ROOT, 'tests', 'galaxy-importer.cfg')
IMPORTER = os.path.join(REPO_ROOT, 'tests', 'lib', 'galaxy_importer_untimed.py')

# What a user installs (galaxy.yml build_ignore keeps the artifact to it), and the build's own files.
SHIPPED = {'plugins', 'roles', 'playbooks', 'meta', 'docs', 'changelogs', 'README.md', 'LICENSES'}
SHIPPED_WHEN_PRESENT = {'extensions', 'CHANGELOG.rst'}
BUILD_FILES = {'MANIFEST.json', 'FILES.json'}


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    return build(REPO_ROOT, tmp_path_factory.mktemp('artifact'))


def test_the_artifact_holds_exactly_what_a_user_installs(artifact):
    with tarfile.open(artifact) as tar:
        top = {member.name.split('/', 1)[0] for member in tar.getmembers()}
    expected = SHIPPED | BUILD_FILES | {name for name in SHIPPED_WHEN_PRESENT
                                        if os.path.exists(os.path.join(REPO_ROOT, name))}
    assert top == expected, 'in the artifact but not to be shipped: %s; missing: %s' % (
        sorted(top - expected), sorted(expected - top))


def test_galaxy_importer_accepts_the_artifact_without_a_warning(artifact, tmp_path):
    assert os.path.isfile(IMPORTER_PYTHON), 'no .venv-importer: run bash scripts/setup.sh'
    (tmp_path / 'ansible').mkdir()
    env = clean_env(
        GALAXY_IMPORTER_CONFIG=IMPORTER_CONFIG,
        GALAXY_IMPORTER_TMP_ROOT_DIR=str(tmp_path),
        GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=str(tmp_path / 'ansible'),
        # ansible-doc and ansible-lint from the importer's virtualenv, as on Galaxy
        PATH=os.path.dirname(IMPORTER_PYTHON) + os.pathsep + os.environ.get('PATH', ''),
        HOME=str(tmp_path),
    )
    command = [IMPORTER_PYTHON, '-P', IMPORTER, artifact]  # -P: tests/lib not on sys.path
    if os.geteuid() == 0 and shutil.which('unshare'):
        command = ['unshare', '--net'] + command
    completed = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    log = completed.stdout + completed.stderr
    problems = [line for line in log.splitlines() if line.startswith(('WARNING', 'ERROR', 'CRITICAL'))]
    assert completed.returncode == 0 and 'Importer processing completed successfully' in log, log
    # the checks ran (a configuration that switched them off would pass with nothing to say)
    assert 'Getting doc strings via ansible-doc' in log, log
    assert 'Linting collection via ansible-lint' in log and '...ansible-lint run complete' in log, log
    assert not problems, 'galaxy-importer: %d warnings or errors:\n%s' % (len(problems), '\n'.join(problems))
