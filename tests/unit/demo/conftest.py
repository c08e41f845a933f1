"""Make the demo application's package (demo/app/demoapp) importable and give tests an app root."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
APP_SOURCE = os.path.join(REPO_ROOT, 'demo', 'app')
APPCTL = os.path.join(APP_SOURCE, 'appctl')
if APP_SOURCE not in sys.path:
    sys.path.insert(0, APP_SOURCE)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class App:
    """An installed demo app below a temporary root, driven through its own appctl."""

    def __init__(self, root):
        self.root = str(root)
        self.appctl = os.path.join(self.root, 'bin', 'appctl')

    def file(self, name):
        return os.path.join(self.root, name)

    def write(self, name, text):
        with open(self.file(name), 'w') as handle:
            handle.write(text)

    def read(self, name):
        with open(self.file(name)) as handle:
            return handle.read()

    def run(self, *args):
        return subprocess.run([sys.executable, self.appctl] + list(args), capture_output=True, text=True,
                              timeout=60)


@pytest.fixture(scope='session')
def installed_template(tmp_path_factory):
    """One real install per session; tests get copies (building the git history is the slow part)."""
    root = tmp_path_factory.mktemp('template') / 'app'
    subprocess.run([sys.executable, APPCTL, 'install', str(root), '--bind', '127.0.0.1', '--port', '1',
                    '--host-name', 'unit'], check=True, capture_output=True)
    return str(root)


@pytest.fixture
def app(tmp_path, installed_template):
    """A freshly installed app (not started) that listens on a free port of 127.0.0.1 when started."""
    root = tmp_path / 'app'
    shutil.copytree(installed_template, str(root), symlinks=True)
    installed = App(root)
    settings = json.loads(installed.read('settings.json'))
    settings['port'] = _free_port()
    installed.write('settings.json', json.dumps(settings))
    yield installed
    installed.run('stop')
