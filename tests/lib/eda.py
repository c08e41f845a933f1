"""Event-Driven Ansible in tests: the collection's event sources run in-process, ansible-rulebook for real.

``load_source`` runs a source file the way ansible-rulebook does (runpy); ``collect`` drives its
``main`` for a while and returns the events it put on the queue.  ``Rulebook`` starts the real
ansible-rulebook on a rulebook of the collection with an inventory and variables, and waits for
files or output it produces.
"""

import asyncio
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from lib.demo_app import APPCTL, App, free_port, run_appctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = os.path.join(ROOT, 'extensions', 'eda', 'plugins', 'event_source')
RULEBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-rulebook')

# A stand-in for a level playbook: records that it ran, on which hosts, with which run id and reason.
STUB_LEVEL = '''
- name: Stand-in for a level playbook
  hosts: "{{{{ {hosts_var} }}}}"
  gather_facts: false
  tasks:
    - name: Record the call
      ansible.builtin.lineinfile:
        path: {calls}
        create: true
        line: "{{{{ {{'level': {level}, 'hosts': ansible_play_hosts, 'run_id': lastgood_run_id, 'reason': lastgood_reason}} | to_json }}}}"
      delegate_to: localhost
      run_once: true
'''


def level1_playbook_runs():
    """Whether lastgood.rollback.rollback_level1 parses here (it needs the run plugins of issue 14)."""
    check = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), '--syntax-check', '-i',
                            'localhost,', 'lastgood.rollback.rollback_level1'], cwd=ROOT, capture_output=True,
                           text=True, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg')),
                           check=False)
    return check.returncode == 0


needs_level1 = pytest.mark.skipif(not level1_playbook_runs(), reason=(
    'lastgood.rollback.rollback_level1 does not parse here (the run, phase and fleet plugins of issue 14 are not '
    'merged yet)'))


def rulebook_available():
    return os.path.exists(RULEBOOK) and shutil.which('java') is not None


needs_rulebook = pytest.mark.skipif(not rulebook_available(),
                                    reason='ansible-rulebook (requirements-dev.txt) and java (openjdk-17-jre-headless) are needed')


def load_source(name):
    return runpy.run_path(os.path.join(SOURCES, name + '.py'))


def collect(source, args, seconds, until=None, settle=0):
    """Run a source's main and return its events: for ``seconds``, or until ``until(events)`` holds and then
    ``settle`` seconds more (to see that nothing else comes)."""
    events = []

    class Queue:
        async def put(self, event):
            json.dumps(event)  # an event must be JSON, as ansible-rulebook needs it
            events.append(event['lastgood'])

    async def run():
        task = asyncio.ensure_future(source['main'](Queue(), args))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not task.done() and not (until and until(events)):
            await asyncio.sleep(0.05)
        if until and until(events):
            await asyncio.sleep(settle)
        assert not task.done() or task.cancelled(), 'the source ended, which ends the rulebook: %r' % task.exception()
        task.cancel()

    asyncio.run(run())
    return events


def install_demo_app(template_root, root, host_name):
    """A copy of an installed demo app at ``root`` on a free port, started, with Party Mode on."""
    shutil.copytree(template_root, root, symlinks=True)
    app = App(root)
    settings = json.loads(app.read('settings.json'))
    settings['port'] = free_port()
    app.write('settings.json', json.dumps(settings))
    assert app.run('start').returncode == 0
    return app, 'http://127.0.0.1:%d' % settings['port']


def demo_template(tmp_path_factory, host_name='eda'):
    root = tmp_path_factory.mktemp('eda-template') / 'app'
    result = run_appctl(APPCTL, 'install', str(root), '--bind', '127.0.0.1', '--port', '1', '--host-name', host_name)
    assert result.returncode == 0, result.stderr
    return str(root)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError('timed out after %g s waiting for %s' % (timeout, what))


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


class Rulebook:
    """ansible-rulebook on one of the collection's rulebooks, output in ``<base>/rulebook-<n>.log``."""

    def __init__(self, base, rulebook, variables, inventory_hosts=('localhost',), inventory=None):
        self.base = str(base)
        self.rulebook = rulebook
        self.runs = 0
        self.process = None
        self.log = None
        self.vars_file = os.path.join(self.base, 'rulebook-vars.yml')
        with open(self.vars_file, 'w') as handle:
            yaml.safe_dump(variables, handle)
        self.inventory = inventory or os.path.join(self.base, 'inventory.yml')
        if not inventory:
            hosts = dict((name, {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable})
                         for name in inventory_hosts)
            with open(self.inventory, 'w') as handle:
                yaml.safe_dump({'all': {'hosts': hosts}}, handle)

    def stub_level(self, level, calls):
        path = os.path.join(self.base, 'stub_level%d.yml' % level)
        with open(path, 'w') as handle:
            handle.write(STUB_LEVEL.format(hosts_var='lastgood_level1_hosts' if level == 1 else 'lastgood_hosts',
                                           calls=calls, level=level))
        return path

    def start(self):
        self.runs += 1
        self.log = os.path.join(self.base, 'rulebook-%d.log' % self.runs)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
                   PATH=os.path.dirname(RULEBOOK) + os.pathsep + os.environ.get('PATH', ''))
        with open(self.log, 'w') as out:
            self.process = subprocess.Popen([RULEBOOK, '-r', self.rulebook, '-i', self.inventory, '--vars',
                                             self.vars_file, '-v'], cwd=self.base, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self):
        with open(self.log) as handle:
            return handle.read()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def wait_output(self, text, timeout=60):
        def seen():
            if text in self.output():
                return True
            if not self.alive():
                raise AssertionError('ansible-rulebook ended before %r:\n%s' % (text, self.output()[-4000:]))
            return False
        return wait_for(seen, timeout, '%r in the rulebook output' % text)

    def stop(self):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
