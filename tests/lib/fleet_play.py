"""Run a play on several local "hosts" (local connection) and one unreachable host, as the fleet action tests do."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')
# h4 is "unreachable": ssh to a port nothing listens on.
INVENTORY = '''
all:
  hosts:
    h1: {}
    h2: {}
    h3: {}
    h4: {ansible_connection: ssh, ansible_host: 127.0.0.1, ansible_port: 1, ansible_ssh_timeout: 2}
  vars:
    ansible_connection: local
'''
_STATS = re.compile(r'^\s*RUN: (\{.*\})\s*$', re.MULTILINE)


def play(work, playbook, variables, *args, inventory=INVENTORY):
    """Play ``playbook`` (YAML text) in ``work``; returns ``(CompletedProcess, custom stats or {})``."""
    (work / 'inventory.yml').write_text(inventory)
    (work / 'play.yml').write_text(playbook)
    variables = dict({'out': str(work), 'ansible_python_interpreter': sys.executable}, **variables)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_SHOW_CUSTOM_STATS='1', ANSIBLE_CALLBACK_RESULT_FORMAT='json')
    run = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(work / 'inventory.yml'), '-e', json.dumps(variables),
                          str(work / 'play.yml')] + list(args), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    stats = _STATS.search(run.stdout)
    return run, json.loads(stats.group(1)) if stats else {}


def saved(work, name):
    """The JSON a play saved as ``<out>/<name>.json``, or None."""
    path = work / ('%s.json' % name)
    return json.loads(path.read_text()) if path.exists() else None
