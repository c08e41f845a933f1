"""Run a playbook on localhost with this checkout's ansible-playbook and ansible.cfg, as the integration tests do."""

import json
import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')
_RECAP = re.compile(r'localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)')


def run(playbook, variables, *args):
    """``(CompletedProcess, {ok, changed, unreachable, failed} or None)`` of ``playbook`` run on localhost.

    ``variables`` are passed as extra vars, with this Python as the interpreter; ``args`` go to
    ansible-playbook (``--check``, ``--diff``, ...).  The counts are None when there is no recap line.
    """
    variables = dict({'ansible_python_interpreter': sys.executable}, **variables)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    completed = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-e', json.dumps(variables), str(playbook)] + list(args),
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    recap = _RECAP.search(completed.stdout)
    counts = dict(zip(('ok', 'changed', 'unreachable', 'failed'), map(int, recap.groups()))) if recap else None
    return completed, counts


# One task of a lastgood.rollback module on localhost, its result saved as JSON for the test to read.
# module_defaults through the action group: backup_root and set are given once for every module.
_MODULE_PLAY = '''
- name: {name}
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/lastgood.rollback.all:
      backup_root: "{{{{ store }}}}"
      set: demo
  tasks:
    - name: {task}
      lastgood.rollback.{module}:
{options}
      register: outcome{ignore}

    - name: Save the result for the test
      ansible.builtin.copy:
        content: "{{{{ outcome | to_json }}}}"
        dest: "{{{{ out }}}}/{save}.json"
        mode: "0600"
      check_mode: false
      diff: false
      changed_when: false
'''


def module_play(name, task, module, options, save, ignore_errors=False):
    """A playbook running ``lastgood.rollback.<module>`` with ``options`` (YAML text) and saving its result
    to ``<out>/<save>.json``; with ``ignore_errors`` a failed task is kept in the result, not the recap."""
    body = textwrap.indent(textwrap.dedent(options).strip('\n'), ' ' * 8) if options.strip() else '        {}'
    return _MODULE_PLAY.format(name=name, task=task, module=module, options=body, save=save,
                               ignore='\n      ignore_errors: true' if ignore_errors else '')
