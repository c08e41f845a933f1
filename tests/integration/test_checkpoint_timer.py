"""The systemd units for periodic checkpoints on hosts without AWX (roles/checkpoint/files/systemd).

systemd-analyze checks the units and their calendars; the service's own command line, with its profile
file pointed at a temporary store, takes a checkpoint through ansible-playbook on localhost.
"""

import configparser
import datetime
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.lastgood.rollback.plugins.module_utils import _store
from lib import local_playbook

UNITS = os.path.join(local_playbook.ROOT, 'roles', 'checkpoint', 'files', 'systemd')
SERVICE = 'lastgood-checkpoint@.service'
TIMERS = {'periodic': 'lastgood-checkpoint-periodic.timer', 'critical': 'lastgood-checkpoint-critical.timer'}
ANALYZE = shutil.which('systemd-analyze')


def unit(name):
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=('=',))
    parser.optionxform = str
    parser.read(os.path.join(UNITS, name))
    return parser


@pytest.mark.skipif(ANALYZE is None, reason='systemd-analyze is not installed')
def test_systemd_analyze_accepts_the_units(tmp_path):
    for name in [SERVICE] + list(TIMERS.values()):
        shutil.copy(os.path.join(UNITS, name), str(tmp_path))
    for profile in TIMERS:  # an instance of the template, as the timers start it
        shutil.copy(os.path.join(UNITS, SERVICE), str(tmp_path / ('lastgood-checkpoint@%s.service' % profile)))
    names = [str(tmp_path / name) for name in sorted(os.listdir(str(tmp_path)))]
    done = subprocess.run([ANALYZE, 'verify', '--man=no'] + names, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.skipif(ANALYZE is None, reason='systemd-analyze is not installed')
@pytest.mark.parametrize('profile, minutes', [('periodic', 120), ('critical', 15)])
def test_the_timers_fire_every_2_hours_and_every_15_minutes(profile, minutes):
    timer = unit(TIMERS[profile])
    assert timer['Timer']['Unit'] == 'lastgood-checkpoint@%s.service' % profile
    done = subprocess.run([ANALYZE, 'calendar', '--iterations=4', timer['Timer']['OnCalendar']],
                          capture_output=True, text=True, check=True)
    stamps = re.findall(r'(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})', done.stdout)
    moments = [datetime.datetime.strptime(stamp, '%Y-%m-%d %H:%M:%S') for stamp in stamps]
    gaps = {int((later - earlier).total_seconds() // 60) for earlier, later in zip(moments, moments[1:])}
    assert gaps == {minutes}, done.stdout


@pytest.mark.skipif(not os.access(local_playbook.ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')
def test_the_service_command_takes_a_checkpoint_of_its_profile(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    (app / 'config.yaml').write_text('a: 1\n')
    with open(os.path.join(UNITS, 'checkpoint-critical.yml')) as handle:
        profile = yaml.safe_load(handle)
    assert profile['lastgood_set'] == 'critical' and profile['lastgood_keep_runs'] == 96
    profile.update(lastgood_checkpoint_paths=[str(app / 'config.yaml')], lastgood_backup_root=str(tmp_path / 'store'),
                   lastgood_state_dir=str(tmp_path / 'runs'), lastgood_audit_log=str(tmp_path / 'audit.jsonl'),
                   lastgood_report_dir=str(tmp_path / 'reports'), lastgood_controller_dir=str(tmp_path / 'controller'),
                   ansible_python_interpreter=sys.executable)
    (tmp_path / 'checkpoint-critical.yml').write_text(yaml.safe_dump(profile))
    command = unit(SERVICE)['Service']['ExecStart'].replace('%i', 'critical').replace(
        '/etc/lastgood/', str(tmp_path) + '/')
    env = dict(os.environ, ANSIBLE_PLAYBOOK=local_playbook.ANSIBLE_PLAYBOOK, ANSIBLE_NOCOLOR='1',
               ANSIBLE_CONFIG=os.path.join(local_playbook.ROOT, 'ansible.cfg'))
    argv = re.match(r"^/bin/sh -c '(.*)'$", command).group(1)
    for _run in range(2):
        done = subprocess.run(['/bin/sh', '-c', argv], cwd=local_playbook.ROOT, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    infos = _store.Store(str(tmp_path / 'store'), 'critical').list()
    assert len(infos) == 2 and all(info['complete'] and info['id'].startswith('run-') for info in infos)
    assert all(info['pinned'] for info in infos)
