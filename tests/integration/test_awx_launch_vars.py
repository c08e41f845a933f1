"""Extra variables as AWX hands them to a job, read by the run-wide defaults of every run playbook.

AWX writes a job's extra variables to a YAML file that ansible-playbook reads with ``-e @file``; a value that is
not exactly the job template's own is written with the ``!unsafe`` tag (awx/main/utils/safe_yaml.py), so Ansible
never renders Jinja in it.  These plays read playbooks/vars/run_defaults.yml as every run playbook does, with an
extra-variables file in that form, and show where the run's controller directory ends up.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')
RUN_DEFAULTS = os.path.join(ROOT, 'playbooks', 'vars', 'run_defaults.yml')
RUN_ID = '20261207T230000Z-abc123'

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

PLAY = '''
- name: Where would this run write its fleet report
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - %s
  tasks:
    - name: Choose the run id, as the fleet gate does
      ansible.builtin.set_fact:
        lastgood_run_id: %s

    - name: Save the controller directory
      ansible.builtin.copy:
        content: "{{ {'dir': lastgood_controller_dir} | to_json }}"
        dest: "{{ out }}/dir.json"
        mode: "0600"
'''


def controller_dir(tmp_path, awx_extravars):
    """The run's controller directory with ``awx_extravars`` (YAML as AWX writes it) as the job's extra variables."""
    (tmp_path / 'play.yml').write_text(PLAY % (RUN_DEFAULTS, RUN_ID))
    (tmp_path / 'extravars').write_text(awx_extravars + "out: !unsafe '%s'\n" % tmp_path)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    run = subprocess.run([ANSIBLE_PLAYBOOK, str(tmp_path / 'play.yml'), '-e', '@%s' % (tmp_path / 'extravars'),
                          '-e', json.dumps({'ansible_python_interpreter': sys.executable})],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads((tmp_path / 'dir.json').read_text())['dir']


def test_a_controller_root_given_at_launch_holds_a_directory_per_run(tmp_path):
    assert controller_dir(tmp_path, "lastgood_controller_root: !unsafe '/srv/lastgood/reports'\n") == \
        '/srv/lastgood/reports/' + RUN_ID


def test_jinja_in_a_controller_dir_given_at_launch_is_not_rendered(tmp_path):
    # What docs/awx.md warns about: the text is taken as it is, one directory for every run.
    given = '/srv/lastgood/reports/{{ lastgood_run_id }}'
    assert controller_dir(tmp_path, "lastgood_controller_dir: !unsafe '%s'\n" % given) == given


def test_jinja_in_the_templates_own_extra_variables_is_rendered(tmp_path):
    # A value equal to the job template's own extra variable is written without the tag.
    assert controller_dir(tmp_path, "lastgood_controller_dir: '/srv/lastgood/reports/{{ lastgood_run_id }}'\n") == \
        '/srv/lastgood/reports/' + RUN_ID


def test_without_extra_variables_each_run_has_its_directory_under_the_home_directory(tmp_path):
    assert controller_dir(tmp_path, '') == '~/.lastgood/runs/' + RUN_ID
