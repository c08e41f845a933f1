"""The card's command, ``ansible-playbook rollback-level2.yml -i inventory``, run from the site project awx/project.

The site project is laid out as docs/site-project.md says (wrapper playbooks, ansible.cfg,
collections/requirements.yml, an inventory); in a checkout its ansible.cfg finds the collection where
scripts/setup.sh links it.  Nothing here points Ansible at the repository's own ansible.cfg.
"""

import json
import os
import subprocess

import pytest

from lib.demo_site import PLAYBOOK, ROOT, break_config, running_site

PROJECT = os.path.join(ROOT, 'awx', 'project')

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


def from_project(*args, extra=None):
    env = dict((key, value) for key, value in os.environ.items()
               if not key.startswith('ANSIBLE_') or key in ('ANSIBLE_NOCOLOR',))
    env['ANSIBLE_NOCOLOR'] = '1'
    command = [PLAYBOOK] + list(args) + (['-e', json.dumps(extra)] if extra else [])
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600, check=False)


def inventory(tmp_path):
    """An inventory of one host, this machine, named as a site would name it."""
    path = tmp_path / 'inventory.yml'
    path.write_text('all:\n  hosts:\n    app1:\n      ansible_connection: local\n')
    return str(path)


def test_the_level2_wrapper_rolls_back_from_the_site_project_with_its_inventory(tmp_path):
    with running_site(tmp_path) as site:
        good = site.app.read('config.yaml')
        break_config(site)

        run = from_project('rollback-level2.yml', '-i', inventory(tmp_path),
                           extra=dict(site.extra, lastgood_run_id='it-site-project'))

        assert run.returncode == 0, run.stdout + run.stderr
        assert site.app.read('config.yaml') == good
        assert site.app.run('health').returncode == 0
        assert site.report()['run']['outcome'] == 'success'
        assert site.report()['hosts']['app1']['outcome'] == 'success'


@pytest.mark.parametrize('given', [None, 'empty', 'other-group'])
def test_a_run_that_matches_no_host_fails_saying_so_and_changes_nothing(tmp_path, given):
    args = ['rollback-level2.yml']
    extra = {'lastgood_state_dir': str(tmp_path / 'runs'), 'lastgood_audit_log': str(tmp_path / 'audit.jsonl')}
    if given == 'empty':
        (tmp_path / 'empty.yml').write_text('all: {}\n')
        args += ['-i', str(tmp_path / 'empty.yml')]
    elif given == 'other-group':
        (tmp_path / 'inventory.yml').write_text('all:\n  children:\n    db:\n      hosts:\n        db1: {}\n')
        args += ['-i', str(tmp_path / 'inventory.yml')]
        extra['lastgood_hosts'] = 'app'

    run = from_project(*args, extra=extra)

    assert run.returncode == 2, run.stdout + run.stderr
    pattern = 'app' if given == 'other-group' else 'all'
    assert "No host of the inventory matches '%s'" % pattern in run.stdout
    assert 'Give the inventory with -i' in run.stdout
    assert os.listdir(str(tmp_path)) == (['inventory.yml'] if given == 'other-group' else
                                         ['empty.yml'] if given == 'empty' else [])


def test_the_level4_refusal_names_the_variable_the_operator_sets(tmp_path):
    with running_site(tmp_path) as site:
        before = site.app.read('config.yaml')

        run = from_project('rollback-level4.yml', '-i', inventory(tmp_path), extra=dict(site.extra, lastgood_run_id='it-l4'))

        assert run.returncode == 2, run.stdout + run.stderr
        said = ' '.join(run.stdout.split())
        assert 'Level 4 full restore refused; nothing was changed on any host.' in said
        assert 'recorded in lastgood_approvals (the variable of the rollback_level4 playbook' in said
        assert site.app.read('config.yaml') == before
