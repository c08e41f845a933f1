"""A demo application and every lastgood path below one directory, driven by ansible-playbook on localhost.

Every run-wide path (store, run state, audit log, reports) lives below the site's base directory and
is passed as extra vars, as docs/dev/roles.md says a site does.
"""

import contextlib
import json
import os
import subprocess
import sys

from lib.demo_app import APPCTL, App, free_port, run_appctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')

KNOWN_GOOD = '''
- name: Take the known-good backup of the configuration
  hosts: "{{ lastgood_known_good_hosts | default('localhost') }}"
  gather_facts: false
  tasks:
    - name: Back up the configuration and mark it last known good
      lastgood.rollback.backup:
        paths: "{{ lastgood_config_paths_literal }}"
        backup_root: "{{ lastgood_backup_root }}"
        set: app
        name: known-good
        mark_lastgood: true
'''


class Site:
    """A demo app and every lastgood path below one directory, and ways to run playbooks on it."""

    def __init__(self, base):
        self.base = base
        self.app = App(base / 'app')
        self.controller = base / 'controller'
        self.extra = {
            'lastgood_app_root': self.app.root,
            'lastgood_backup_root': str(base / 'store'),
            'lastgood_state_dir': str(base / 'runs'),
            'lastgood_audit_log': str(base / 'log' / 'audit.jsonl'),
            'lastgood_report_dir': str(base / 'reports'),
            'lastgood_controller_dir': str(self.controller),
            'ansible_python_interpreter': sys.executable,
            # The post-rollback stability window of levels 2 and 3, short here.
            'lastgood_stability_seconds': 1,
            'lastgood_stability_interval': 1,
        }

    def playbook(self, path, *args, extra=None):
        variables = dict(self.extra, **(extra or {}))
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
        return subprocess.run([PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', json.dumps(variables), path]
                              + list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                              check=False)

    def take_known_good(self):
        path = self.base / 'known_good.yml'
        path.write_text(KNOWN_GOOD)
        paths = [self.app.file(name) for name in ('config.yaml', 'custom_modes.json', 'app.env')]
        run = self.playbook(str(path), extra={'lastgood_config_paths_literal': paths})
        assert run.returncode == 0, run.stdout + run.stderr

    def report(self):
        return json.loads((self.controller / 'report.json').read_text())

    def run_state(self, run_id):
        return json.loads((self.base / 'runs' / (run_id + '.json')).read_text())

    def audit_events(self, run_id):
        lines = (self.base / 'log' / 'audit.jsonl').read_text().splitlines()
        return [event['event'] for event in map(json.loads, lines) if event.get('run_id') == run_id]

    def start(self, host_name='it'):
        """Install the demo app, start it and take the known-good backup; stop it with ``self.app.run('stop')``."""
        port = free_port()
        install = run_appctl(APPCTL, 'install', self.app.root, '--port', str(port), '--host-name', host_name)
        assert install.returncode == 0, install.stderr
        self.extra['lastgood_metrics_url'] = 'http://127.0.0.1:%d/metrics' % port
        assert self.app.run('start').returncode == 0
        self.take_known_good()


def break_config(site):
    """Push the bad configuration of the runbooks: Party Mode on (a known-bad value), agent limit 0."""
    text = site.app.read('config.yaml')
    site.app.write('config.yaml', text.replace('enabled: false\n  maxAgents: 4', 'enabled: true\n  maxAgents: 0'))
    site.app.write('app.env', 'PARTY_MODE_ENABLED=true\n')
    assert site.app.run('reload').returncode == 0
    assert site.app.run('health').returncode == 1
    return site.app.read('config.yaml')


@contextlib.contextmanager
def running_site(base, host_name='it'):
    """A started Site below ``base`` (its known good taken), stopped again on the way out."""
    site = Site(base)
    try:
        site.start(host_name)
        yield site
    finally:
        site.app.run('stop')
