"""Drive the demo application (demo/app) from tests: its package importable, appctl runnable."""

import os
import socket
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_SOURCE = os.path.join(REPO_ROOT, 'demo', 'app')
APPCTL = os.path.join(APP_SOURCE, 'appctl')
if APP_SOURCE not in sys.path:
    sys.path.insert(0, APP_SOURCE)


def free_port():
    """A TCP port of 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_appctl(appctl, *args):
    """Run an appctl (the source's or an installed copy) with this interpreter; never raises on exit status."""
    env = dict(os.environ, DEMO_APP_PYTHON=sys.executable)
    return subprocess.run([appctl] + list(args), capture_output=True, text=True, timeout=60, env=env, check=False)


class App:
    """An installed demo app below ``root``, driven through its own appctl."""

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
        return run_appctl(self.appctl, *args)
