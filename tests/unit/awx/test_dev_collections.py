"""The development environment holds the ansible package (for awx.awx); the checkout still wins.

The ansible package installs many collections next to ansible-core.  lastgood.rollback must
still resolve to this checkout (.collections, via ansible.cfg), and awx.awx must be there for
awx/configure.yml.
"""

import json
import os
import subprocess

import pytest

from lib.awx import REPO_ROOT

ANSIBLE_DOC = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-doc')


def _doc(plugin):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'))
    result = subprocess.run([ANSIBLE_DOC, '--json', plugin], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[plugin]['doc']


@pytest.mark.parametrize('config', ['ansible.cfg', os.path.join('awx', 'project', 'ansible.cfg')])
def test_lastgood_rollback_resolves_to_this_checkout(config):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, config))
    result = subprocess.run([os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-galaxy'), 'collection', 'list',
                             'lastgood.rollback', '--format', 'json'], cwd=os.path.dirname(env['ANSIBLE_CONFIG']),
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [os.path.realpath(os.path.join(path, 'lastgood', 'rollback')) for path in found] == [REPO_ROOT]


def test_ansible_doc_reads_this_checkouts_modules_and_the_installed_awx_awx():
    assert os.path.realpath(_doc('lastgood.rollback.backup')['filename']).startswith(REPO_ROOT + os.sep)
    assert 'survey_spec' in _doc('awx.awx.job_template')['options']
